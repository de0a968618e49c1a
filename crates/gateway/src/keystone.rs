//! The Keystone back end of the API's authentication: a user's `X-Auth-Token` is validated
//! against OpenStack Keystone v3 (`GET /v3/auth/tokens`, asked with the service's own token,
//! which it gets with the credentials it is given), and each valid token is cached until its
//! expiry or [`TOKEN_CACHE_TTL_MAX`], whichever comes first, in a cache bounded by
//! [`TOKEN_CACHE_ENTRIES_MAX`] ([`TokenCache`], pure). Tokens are kept only as SHA-256 hashes.
//! It decides nothing about what a user may do: it answers who they are.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// How long a validated token is trusted without asking Keystone again: a revoked token stops
/// working within this (keystonemiddleware's own default, `token_cache_time`, is the same).
pub const TOKEN_CACHE_TTL_MAX: Duration = Duration::from_secs(300);
/// The most tokens the cache holds: a busy API's active users, at about 200 bytes each.
pub const TOKEN_CACHE_ENTRIES_MAX: usize = 10_000;
/// How long a request to Keystone may take before the API answers 503.
const KEYSTONE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long before its expiry the service token is renewed, so that no validation is asked
/// with a token that expires on the way.
const SERVICE_TOKEN_RENEW_BEFORE: Duration = Duration::from_secs(60);
/// The largest credentials file read: a few names and a password.
const CREDENTIALS_FILE_BYTES_MAX: u64 = 64 * 1024;

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub user_id: String,
    pub project_id: String,
    /// The role names on the project (`admin`, `member`, `reader`, …).
    pub roles: Vec<String>,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeystoneError {
    /// Keystone says the token is not (or no longer) valid, or it is scoped to no project.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// Keystone could not be asked, or refused the service's own credentials.
    #[error("Keystone is unavailable: {0}")]
    Unavailable(String),
}

/// The service's own credentials (a JSON file, mode 0600): a user with the `service` or
/// `admin` role, allowed to validate other users' tokens.
#[derive(Clone, Deserialize)]
pub struct ServiceCredentials {
    pub user_name: String,
    #[serde(default = "default_domain")]
    pub user_domain_id: String,
    pub password: String,
    pub project_name: String,
    #[serde(default = "default_domain")]
    pub project_domain_id: String,
}

fn default_domain() -> String {
    "default".to_owned()
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCredentials")
            .field("user_name", &self.user_name)
            .field("project_name", &self.project_name)
            .finish_non_exhaustive()
    }
}

impl ServiceCredentials {
    /// Reads the credentials file; refuses one that others can read.
    pub fn read(path: &Path) -> Result<ServiceCredentials, String> {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} can be read by others (mode {mode:04o}); chmod 600 it",
                path.display()
            ));
        }
        if metadata.len() > CREDENTIALS_FILE_BYTES_MAX {
            return Err(format!(
                "{} is larger than {CREDENTIALS_FILE_BYTES_MAX} bytes",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a credentials object (user_name, password, project_name): {e}",
                path.display()
            )
        })
    }
}

/// A Keystone the API validates tokens with.
pub struct Keystone {
    /// `…/v3`, without a trailing slash.
    url: String,
    credentials: ServiceCredentials,
    http: reqwest::Client,
    service_token: Mutex<Option<(String, OffsetDateTime)>>,
    cache: Mutex<TokenCache>,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Keystone {
    /// A Keystone at `url` (its v3 root, e.g. `http://keystone:5000/v3`; a root without
    /// `/v3` gets it added).
    pub fn new(url: &str, credentials: ServiceCredentials) -> Result<Keystone, KeystoneError> {
        let url = url.trim_end_matches('/');
        let url = if url.ends_with("/v3") {
            url.to_owned()
        } else {
            format!("{url}/v3")
        };
        // No idle connections kept: only a cache miss asks, and some Keystone front ends
        // (uwsgi's plain HTTP socket) close each connection after one answer.
        let http = reqwest::Client::builder()
            .timeout(KEYSTONE_REQUEST_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| KeystoneError::Unavailable(e.to_string()))?;
        Ok(Keystone {
            url,
            credentials,
            http,
            service_token: Mutex::new(None),
            cache: Mutex::new(TokenCache::new(TOKEN_CACHE_ENTRIES_MAX)),
        })
    }

    /// Who `token` names, from the cache or from Keystone.
    pub async fn validate(&self, token: &str) -> Result<Validated, KeystoneError> {
        let key = TokenCache::key(token);
        let now = OffsetDateTime::now_utc();
        if let Some(found) = self.cache.lock().await.get(&key, now) {
            return Ok(found);
        }
        let validated = self.ask(token).await?;
        self.cache.lock().await.insert(key, validated.clone(), now);
        Ok(validated)
    }

    /// `GET /v3/auth/tokens` for `token`, with the service's token; asks for a new service
    /// token once if Keystone no longer takes the one held.
    async fn ask(&self, token: &str) -> Result<Validated, KeystoneError> {
        for attempt in 0..2 {
            let service = self.service_token(attempt > 0).await?;
            let answer = self
                .http
                .get(format!("{}/auth/tokens", self.url))
                .header("X-Auth-Token", &service)
                .header("X-Subject-Token", token)
                .send()
                .await
                .map_err(|e| KeystoneError::Unavailable(e.to_string()))?;
            match answer.status().as_u16() {
                200 => {
                    let body: TokenBody = answer
                        .json()
                        .await
                        .map_err(|e| KeystoneError::Unavailable(e.to_string()))?;
                    return body.validated();
                }
                // The service token itself is no longer taken: get a new one, once.
                401 if attempt == 0 => {}
                401 | 404 => return Err(KeystoneError::Invalid(answer.status().to_string())),
                other => {
                    return Err(KeystoneError::Unavailable(format!(
                        "GET /v3/auth/tokens answered {other}"
                    )));
                }
            }
        }
        Err(KeystoneError::Unavailable(
            "Keystone refused the service's own token".to_owned(),
        ))
    }

    /// The service's token, renewed when it is about to expire or `renew` says so.
    async fn service_token(&self, renew: bool) -> Result<String, KeystoneError> {
        let mut held = self.service_token.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some((token, expires_at)) = held.as_ref()
            && !renew
            && *expires_at - SERVICE_TOKEN_RENEW_BEFORE > now
        {
            return Ok(token.clone());
        }
        let c = &self.credentials;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.user_name, "domain": {"id": c.user_domain_id}, "password": c.password}}},
            "scope": {"project": {"name": c.project_name, "domain": {"id": c.project_domain_id}}},
        }});
        let answer = self
            .http
            .post(format!("{}/auth/tokens", self.url))
            .json(&body)
            .send()
            .await
            .map_err(|e| KeystoneError::Unavailable(e.to_string()))?;
        if answer.status().as_u16() != 201 {
            return Err(KeystoneError::Unavailable(format!(
                "Keystone refused the service's credentials ({})",
                answer.status()
            )));
        }
        let token = answer
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| KeystoneError::Unavailable("no X-Subject-Token".to_owned()))?;
        let body: TokenBody = answer
            .json()
            .await
            .map_err(|e| KeystoneError::Unavailable(e.to_string()))?;
        *held = Some((token.clone(), body.token.expires_at));
        Ok(token)
    }
}

#[async_trait::async_trait]
impl crate::auth::Authenticator for Keystone {
    async fn authenticate(
        &self,
        token: &str,
    ) -> Result<crate::auth::Principal, crate::auth::AuthError> {
        use crate::auth::{AuthError, Principal, Role};
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        match self.validate(token).await {
            Ok(validated) => Ok(Principal {
                user_id: validated.user_id,
                project_id: validated.project_id,
                roles: validated
                    .roles
                    .iter()
                    .filter_map(|name| Role::parse(name))
                    .collect(),
            }),
            Err(KeystoneError::Invalid(why)) => {
                tracing::info!(reason = why, "Keystone refused a token.");
                Err(AuthError::Invalid)
            }
            Err(KeystoneError::Unavailable(why)) => Err(AuthError::Unavailable(why)),
        }
    }
}

/// The part of Keystone's token body the API needs.
#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    user: Named,
    project: Option<Named>,
    #[serde(default)]
    roles: Vec<Role>,
    #[serde(with = "keystone_time")]
    expires_at: OffsetDateTime,
}

#[derive(Deserialize)]
struct Named {
    id: String,
}

#[derive(Deserialize)]
struct Role {
    name: String,
}

impl TokenBody {
    fn validated(self) -> Result<Validated, KeystoneError> {
        let project = self.token.project.ok_or_else(|| {
            KeystoneError::Invalid("the token is scoped to no project".to_owned())
        })?;
        Ok(Validated {
            user_id: self.token.user.id,
            project_id: project.id,
            roles: self.token.roles.into_iter().map(|r| r.name).collect(),
            expires_at: self.token.expires_at,
        })
    }
}

/// Keystone's times: RFC 3339 with microseconds (`2026-12-01T12:47:44.000000Z`).
mod keystone_time {
    use serde::{Deserialize, Deserializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

/// Valid tokens by the SHA-256 of the token, each until its expiry or [`TOKEN_CACHE_TTL_MAX`]
/// after it was validated; at most `capacity`, the soonest to expire leaving first. Pure: the
/// time comes in.
#[derive(Debug)]
pub struct TokenCache {
    entries: HashMap<[u8; 32], (Validated, OffsetDateTime)>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// The cache's key of `token`.
    pub fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// What `key` names, if cached and not stale at `now`.
    pub fn get(&mut self, key: &[u8; 32], now: OffsetDateTime) -> Option<Validated> {
        match self.entries.get(key) {
            Some((validated, until)) if *until > now => Some(validated.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches `validated`, asked at `now`.
    pub fn insert(&mut self, key: [u8; 32], validated: Validated, now: OffsetDateTime) {
        let until = validated.expires_at.min(now + TOKEN_CACHE_TTL_MAX);
        if until <= now {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= self.capacity
                && let Some(soonest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(key, _)| *key)
            {
                self.entries.remove(&soonest);
            }
        }
        self.entries.insert(key, (validated, until));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn validated(user: &str, expires_at: OffsetDateTime) -> Validated {
        Validated {
            user_id: user.into(),
            project_id: "p".into(),
            roles: vec!["member".into()],
            expires_at,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    #[test]
    fn a_token_is_cached_until_its_expiry_or_the_ttl_whichever_is_first() {
        let mut cache = TokenCache::new(10);
        let soon = NOW + time::Duration::seconds(60);
        cache.insert(TokenCache::key("a"), validated("a", soon), NOW);
        cache.insert(
            TokenCache::key("b"),
            validated("b", NOW + time::Duration::hours(1)),
            NOW,
        );
        let later = NOW + time::Duration::seconds(90);
        assert_eq!(cache.get(&TokenCache::key("a"), later), None, "expired");
        assert!(cache.get(&TokenCache::key("b"), later).is_some());
        let past_ttl = NOW + TOKEN_CACHE_TTL_MAX + time::Duration::seconds(1);
        assert_eq!(
            cache.get(&TokenCache::key("b"), past_ttl),
            None,
            "asked again"
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_drops_the_soonest_to_expire() {
        let mut cache = TokenCache::new(2);
        cache.insert(
            TokenCache::key("a"),
            validated("a", NOW + time::Duration::seconds(100)),
            NOW,
        );
        cache.insert(
            TokenCache::key("b"),
            validated("b", NOW + time::Duration::seconds(50)),
            NOW,
        );
        cache.insert(
            TokenCache::key("c"),
            validated("c", NOW + time::Duration::seconds(200)),
            NOW,
        );
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&TokenCache::key("b"), NOW), None);
        assert!(cache.get(&TokenCache::key("a"), NOW).is_some());
        assert!(cache.get(&TokenCache::key("c"), NOW).is_some());
    }

    #[test]
    fn keystone_token_bodies_are_read() {
        let body = r#"{"token": {"user": {"id": "u1", "name": "x"}, "project": {"id": "p1"},
            "roles": [{"id": "r", "name": "reader"}], "expires_at": "2026-12-01T12:47:44.000000Z"}}"#;
        let parsed: TokenBody = serde_json::from_str(body).unwrap();
        let validated = parsed.validated().unwrap();
        assert_eq!(validated.user_id, "u1");
        assert_eq!(validated.project_id, "p1");
        assert_eq!(validated.roles, ["reader"]);
        let unscoped: TokenBody = serde_json::from_str(
            r#"{"token": {"user": {"id": "u1"}, "expires_at": "2026-12-01T12:47:44Z"}}"#,
        )
        .unwrap();
        assert!(matches!(
            unscoped.validated(),
            Err(KeystoneError::Invalid(_))
        ));
    }
}
