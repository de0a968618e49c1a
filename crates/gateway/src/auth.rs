//! Who is asking, for which project, and what they may do: the [`Principal`] an
//! [`Authenticator`] makes of a request's `X-Auth-Token`, and the pure rules of what a
//! principal may see and change (Tacker's policy: `admin` acts on every project, `member` on
//! its own, `reader` only reads).
//!
//! Nothing here reads a request or the log: the gateway's middleware calls the authenticator,
//! its handlers ask the principal. A back end never decides what a principal may do.

mod token_file;

use std::collections::BTreeSet;
use std::fmt;

use events::envelope::{Actor, ActorKind};

pub use token_file::{
    ReloadError, TOKEN_FILE_RELOAD_CHECK_INTERVAL, TokenEntry, TokenFile, TokenFileError,
    append_line, check_word, entry_line, hash_hex, new_token, parse_roles, parse_token_file,
};

/// A role as Tacker's (OpenStack's) policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Every project's resources; may create for another project (`tenant_id` in a body).
    Admin,
    /// Its own project's resources, read and write.
    Member,
    /// Its own project's resources, read only.
    Reader,
}

impl Role {
    /// The role a Keystone or token-file role name stands for; `None` for a role vnfm does
    /// not know, which is ignored (Keystone gives users roles of other services too).
    pub fn parse(name: &str) -> Option<Role> {
        match name.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            // `_member_` is the member role of Keystone deployments older than Queens.
            "member" | "_member_" => Some(Role::Member),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Reader => "reader",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated user, acting for one project with some roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub project_id: String,
    pub roles: BTreeSet<Role>,
}

/// What a request does to the resources it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    /// GET and HEAD read; every other method writes (or is refused later as unknown).
    pub fn of_method(method: &axum::http::Method) -> Access {
        if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
            Access::Read
        } else {
            Access::Write
        }
    }
}

/// The user of `--auth none`.
pub const ANONYMOUS_USER_ID: &str = "anonymous";
/// The project of `--auth none`: Tacker's noauth context acted for the `admin` tenant.
pub const ANONYMOUS_PROJECT_ID: &str = "admin";

impl Principal {
    /// The principal of every request under `--auth none` (loopback only): an admin.
    pub fn anonymous_admin() -> Principal {
        Principal {
            user_id: ANONYMOUS_USER_ID.into(),
            project_id: ANONYMOUS_PROJECT_ID.into(),
            roles: BTreeSet::from([Role::Admin]),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// Whether this principal may make a request of this kind at all. Readers read; members
    /// and admins read and write; a principal with no known role does nothing.
    pub fn may(&self, access: Access) -> bool {
        match access {
            Access::Read => !self.roles.is_empty(),
            Access::Write => self.is_admin() || self.roles.contains(&Role::Member),
        }
    }

    /// Whether this principal sees resources of `project_id` (else they answer 404).
    pub fn sees(&self, project_id: &str) -> bool {
        self.is_admin() || self.project_id == project_id
    }

    /// Whether this principal is shown the secrets (`user_data`, `config`, passwords) of
    /// resources of `project_id`: an admin, or a member of that project; never a reader.
    pub fn sees_secrets_of(&self, project_id: &str) -> bool {
        self.sees(project_id) && self.may(Access::Write)
    }

    /// The project a new resource belongs to: the body's `tenant_id` when given and allowed,
    /// else the principal's project. As Tacker's API base (`_populate_tenant_id`, from
    /// Neutron's), a non-admin naming another project is refused with 400.
    pub fn tenant_for(&self, requested: Option<String>) -> Result<String, ForeignTenant> {
        match requested {
            None => Ok(self.project_id.clone()),
            Some(tenant) if tenant == self.project_id || self.is_admin() => Ok(tenant),
            Some(tenant) => Err(ForeignTenant { tenant }),
        }
    }

    /// The actor recorded on the log for this principal's commands.
    pub fn actor(&self) -> Actor {
        Actor::new(ActorKind::User, &self.user_id).in_project(&self.project_id)
    }
}

/// The token of an `Authorization: Bearer <token>` header (what Alertmanager's `http_config`
/// sends), if the request has one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// A non-admin asked to create a resource in a project that is not its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant_id: Specifying 'tenant_id' other than authenticated tenant in request requires admin privileges (given {tenant:?})"
)]
pub struct ForeignTenant {
    pub tenant: String,
}

/// Why a request's token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `X-Auth-Token`, or an empty one (401).
    #[error("no X-Auth-Token given")]
    Missing,
    /// A token this back end does not know, or no longer knows (401).
    #[error("the X-Auth-Token is not valid")]
    Invalid,
    /// The back end could not decide (Keystone down, say) (503).
    #[error("the authentication back end is unavailable: {0}")]
    Unavailable(String),
}

/// Turns a request's token into a principal. The gateway holds one, shared by every request.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError>;
}

/// `--auth none`: every request is the anonymous admin, whatever its token.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

#[async_trait::async_trait]
impl Authenticator for NoAuth {
    async fn authenticate(&self, _token: &str) -> Result<Principal, AuthError> {
        Ok(Principal::anonymous_admin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(project: &str, roles: &[Role]) -> Principal {
        Principal {
            user_id: "u".into(),
            project_id: project.into(),
            roles: roles.iter().copied().collect(),
        }
    }

    #[test]
    fn a_bearer_token_is_read_from_authorization_and_nothing_else_is() {
        let with = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                axum::http::header::AUTHORIZATION,
                value.parse().expect("a header value"),
            );
            headers
        };
        assert_eq!(bearer_token(&with("Bearer t-1")), Some("t-1"));
        assert_eq!(bearer_token(&with("bearer  t-1 ")), Some("t-1"));
        assert_eq!(bearer_token(&with("Basic dTpw")), None);
        assert_eq!(bearer_token(&with("Bearer ")), None);
        assert_eq!(bearer_token(&axum::http::HeaderMap::new()), None);
    }

    #[test]
    fn role_names_parse_as_openstack_writes_them() {
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("Member"), Some(Role::Member));
        assert_eq!(Role::parse("_member_"), Some(Role::Member));
        assert_eq!(Role::parse("reader"), Some(Role::Reader));
        assert_eq!(Role::parse("heat_stack_owner"), None);
    }

    #[test]
    fn what_each_role_may_do() {
        let admin = principal("p1", &[Role::Admin]);
        let member = principal("p1", &[Role::Member]);
        let reader = principal("p1", &[Role::Reader]);
        let nobody = principal("p1", &[]);
        for (who, reads, writes, sees_p2) in [
            (&admin, true, true, true),
            (&member, true, true, false),
            (&reader, true, false, false),
            (&nobody, false, false, false),
        ] {
            assert_eq!(who.may(Access::Read), reads, "{who:?}");
            assert_eq!(who.may(Access::Write), writes, "{who:?}");
            assert_eq!(who.sees("p2"), sees_p2, "{who:?}");
            assert!(who.sees("p1") || !reads, "{who:?}");
        }
    }

    #[test]
    fn only_an_admin_creates_for_another_project() {
        let member = principal("p1", &[Role::Member]);
        assert_eq!(member.tenant_for(None), Ok("p1".into()));
        assert_eq!(member.tenant_for(Some("p1".into())), Ok("p1".into()));
        assert_eq!(
            member.tenant_for(Some("p2".into())),
            Err(ForeignTenant {
                tenant: "p2".into()
            })
        );
        let admin = principal("p1", &[Role::Admin]);
        assert_eq!(admin.tenant_for(Some("p2".into())), Ok("p2".into()));
    }

    #[test]
    fn methods_map_to_access() {
        use axum::http::Method;
        assert_eq!(Access::of_method(&Method::GET), Access::Read);
        assert_eq!(Access::of_method(&Method::HEAD), Access::Read);
        for method in [Method::POST, Method::DELETE, Method::PUT, Method::PATCH] {
            assert_eq!(Access::of_method(&method), Access::Write);
        }
    }
}
