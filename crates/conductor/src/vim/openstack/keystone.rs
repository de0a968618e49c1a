//! Keystone v3: the authentication request bodies, the service catalog and when a token is
//! renewed. Pure: the HTTP call is the VIM's (`super::Session`).

use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

/// Renew a token when less than this is left of it: longer than the longest operation the
/// driver runs under one token (a deploy waits at most `SERVER_ACTIVE_TIMEOUT`, a delete
/// `SERVER_GONE_TIMEOUT`), so no token expires halfway through a call; a small part of
/// Keystone's default token life (one hour).
pub const TOKEN_RENEWAL_MARGIN: Duration = Duration::minutes(5);

/// Whether a token that expires at `expires_at` must be renewed at `now`.
pub fn needs_renewal(now: OffsetDateTime, expires_at: OffsetDateTime) -> bool {
    expires_at - now < TOKEN_RENEWAL_MARGIN
}

/// How the VIM proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// A user's password, the token scoped to a project.
    Password { username: String, password: String },
    /// An application credential (scoped to its project by Keystone itself).
    ApplicationCredential { id: String, secret: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::ApplicationCredential { id, .. } => f
                .debug_struct("ApplicationCredential")
                .field("id", id)
                .field("secret", &"<redacted>")
                .finish(),
        }
    }
}

/// The Keystone v3 root of `auth_url`, which Tacker's VIM files give with or without `/v3`.
pub fn v3_root(auth_url: &str) -> String {
    let url = auth_url.trim_end_matches('/');
    if url.ends_with("/v3") {
        url.to_owned()
    } else {
        format!("{url}/v3")
    }
}

/// The body of `POST /v3/auth/tokens`.
pub fn auth_body(
    credentials: &Credentials,
    project_name: &str,
    project_domain_name: &str,
    user_domain_name: &str,
) -> Value {
    match credentials {
        Credentials::Password { username, password } => json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": {"name": user_domain_name}, "password": password}}},
            "scope": {"project": {"name": project_name, "domain": {"name": project_domain_name}}},
        }}),
        Credentials::ApplicationCredential { id, secret } => json!({"auth": {
            "identity": {"methods": ["application_credential"],
                         "application_credential": {"id": id, "secret": secret}},
        }}),
    }
}

/// The public endpoints the driver calls, as the token's catalog names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Nova's, as given (`.../v2.1`, perhaps with the project id).
    pub compute: String,
    /// Neutron's root; the API is under `/v2.0`.
    pub network: String,
    /// Glance's root; the API is under `/v2`.
    pub image: String,
}

/// What a token answer holds that the driver uses.
#[derive(Debug, Clone)]
pub struct Issued {
    pub expires_at: OffsetDateTime,
    pub project_id: String,
    pub endpoints: Endpoints,
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    expires_at: String,
    project: Option<Id>,
    #[serde(default)]
    catalog: Vec<Service>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct Service {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct Endpoint {
    interface: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    region_id: Option<String>,
    url: String,
}

/// Reads a token answer's body: expiry, project and the public endpoints of compute,
/// network and image (in `region`, when given). The error says what is missing.
pub fn issued(body: &Value, region: Option<&str>) -> Result<Issued, String> {
    let body: TokenBody = serde_json::from_value(body.clone())
        .map_err(|e| format!("Keystone's token answer does not read: {e}"))?;
    let expires_at = OffsetDateTime::parse(
        &body.token.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| format!("Keystone's expires_at {:?}: {e}", body.token.expires_at))?;
    let project_id = body
        .token
        .project
        .map(|p| p.id)
        .ok_or("Keystone issued a token scoped to no project")?;
    let find = |kind: &str| -> Result<String, String> {
        body.token
            .catalog
            .iter()
            .filter(|s| s.kind == kind)
            .flat_map(|s| &s.endpoints)
            .find(|e| {
                e.interface == "public"
                    && region.is_none_or(|r| {
                        e.region.as_deref() == Some(r) || e.region_id.as_deref() == Some(r)
                    })
            })
            .map(|e| e.url.trim_end_matches('/').to_owned())
            .ok_or_else(|| {
                format!(
                    "the service catalog has no public {kind} endpoint{}",
                    region
                        .map(|r| format!(" in region {r}"))
                        .unwrap_or_default()
                )
            })
    };
    Ok(Issued {
        expires_at,
        project_id,
        endpoints: Endpoints {
            compute: find("compute")?,
            network: find("network")?,
            image: find("image")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_renewed_when_less_than_the_margin_is_left() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        assert!(!needs_renewal(now, now + Duration::hours(1)));
        assert!(!needs_renewal(now, now + TOKEN_RENEWAL_MARGIN));
        assert!(needs_renewal(
            now,
            now + TOKEN_RENEWAL_MARGIN - Duration::seconds(1)
        ));
        assert!(needs_renewal(now, now - Duration::seconds(1)), "expired");
    }

    #[test]
    fn auth_urls_get_v3_once() {
        assert_eq!(v3_root("http://127.0.0.1:5000"), "http://127.0.0.1:5000/v3");
        assert_eq!(
            v3_root("http://127.0.0.1:5000/v3/"),
            "http://127.0.0.1:5000/v3"
        );
        assert_eq!(v3_root("http://h/identity"), "http://h/identity/v3");
    }

    #[test]
    fn password_and_application_credential_bodies() {
        let password = Credentials::Password {
            username: "nfv_user".into(),
            password: "s3cret".into(),
        };
        let body = auth_body(&password, "nfv", "Default", "UserDomain");
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["domain"]["name"],
            "UserDomain"
        );
        assert_eq!(body["auth"]["scope"]["project"]["name"], "nfv");
        assert_eq!(
            body["auth"]["scope"]["project"]["domain"]["name"],
            "Default"
        );
        assert!(!format!("{password:?}").contains("s3cret"));

        let application = Credentials::ApplicationCredential {
            id: "abc".into(),
            secret: "s3cret".into(),
        };
        let body = auth_body(&application, "ignored", "Default", "Default");
        assert_eq!(
            body["auth"]["identity"]["methods"][0],
            "application_credential"
        );
        assert_eq!(
            body["auth"]["identity"]["application_credential"]["id"],
            "abc"
        );
        assert!(body["auth"].get("scope").is_none(), "Keystone scopes it");
        assert!(!format!("{application:?}").contains("s3cret"));
    }

    #[test]
    fn the_catalog_yields_public_endpoints_of_the_region() {
        let body = json!({"token": {
        "expires_at": "2026-12-01T12:47:44.000000Z",
        "project": {"id": "p1", "name": "nfv"},
        "catalog": [
            {"type": "compute", "endpoints": [
                {"interface": "internal", "region": "RegionOne", "url": "http://internal:8774/v2.1"},
                {"interface": "public", "region": "RegionTwo", "url": "http://two:8774/v2.1"},
                {"interface": "public", "region": "RegionOne", "url": "http://one:8774/v2.1/"}]},
            {"type": "network", "endpoints": [
                {"interface": "public", "region": "RegionOne", "url": "http://one:9696"}]},
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://one:9292"}]},
        ]}});
        let issued = issued(&body, Some("RegionOne")).expect("reads");
        assert_eq!(issued.project_id, "p1");
        assert_eq!(issued.endpoints.compute, "http://one:8774/v2.1");
        assert_eq!(issued.endpoints.network, "http://one:9696");
        assert_eq!(issued.endpoints.image, "http://one:9292");
        assert_eq!(issued.expires_at.unix_timestamp(), 1_796_129_264);
        // Without a region, the first public one.
        let any = super::issued(&body, None).expect("reads");
        assert_eq!(any.endpoints.compute, "http://two:8774/v2.1");
        let missing = super::issued(&body, Some("RegionThree")).expect_err("no such region");
        assert!(
            missing.contains("public compute endpoint in region RegionThree"),
            "{missing}"
        );
    }
}
