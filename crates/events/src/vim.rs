//! The VIM aggregate: a registered OpenStack VIM (Tacker's `vim-register`), its credentials
//! (sealed), whether it is its project's default, and the status its last check found.
//!
//! The built-in `local` VIM ([`LOCAL_VIM_ID`]) is no aggregate: it always exists, belongs to
//! no project and is never registered, updated or deleted. Which VIM is a project's default is
//! derived from the rows ([`Vim::default_since`]; the most recently made default wins), never
//! written across aggregates.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::SCHEMA_VERSION;

/// The id of the built-in VIM (network namespaces on the conductor's host): the VIM of every
/// VNF created without one while no registered VIM is its project's default.
pub const LOCAL_VIM_ID: &str = "local";
/// The type of the built-in VIM, as `vim-list` shows it.
pub const LOCAL_VIM_TYPE: &str = "local";
/// The one type a VIM can be registered with.
pub const OPENSTACK_VIM_TYPE: &str = "openstack";
/// Where a VIM's credentials ([`VimDetails::auth`]) are bound when sealed
/// ([`secrets::seal_secrets`](crate::secrets::seal_secrets)).
pub const AUTH_PATH: &str = "/auth";
/// The longest reason a status record keeps: a Keystone error body can be long, and the
/// reason is shown in every list.
pub const STATUS_REASON_CHARS_MAX: usize = 1_000;

/// A VIM's credentials as Keystone v3 takes them: a password (with the user's name and
/// domain) or an application credential, scoped to a project. Stored as JSON in
/// [`VimDetails::auth`], sealed: `password` and `application_credential_secret` are secret
/// fields there ([`secrets::is_secret_name`](crate::secrets::is_secret_name)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VimCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_domain_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_credential_secret: Option<String>,
    /// The project the VIM's resources are made in (Tacker's `vim_project.name`).
    pub project_name: String,
    #[serde(default)]
    pub project_domain_name: String,
    /// Whether the VIM's TLS certificates are checked (Tacker's `cert_verify`, default true).
    #[serde(default = "yes")]
    pub cert_verify: bool,
}

fn yes() -> bool {
    true
}

/// A field of a VIM's registration that has the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CredentialError {
    /// Where, as the API names it (`vim.auth_cred.password`).
    pub field: &'static str,
    pub message: String,
}

impl VimCredentials {
    /// Whether Keystone could take these credentials: a project, and a user with a password
    /// or an application credential (id and secret), never half of each.
    pub fn check(&self) -> Result<(), CredentialError> {
        let given = |field: &Option<String>| field.as_deref().is_some_and(|v| !v.is_empty());
        let fail = |field, message: &str| {
            Err(CredentialError {
                field,
                message: message.to_owned(),
            })
        };
        if self.project_name.is_empty() {
            return fail("vim.vim_project.name", "required, the project to deploy in");
        }
        let application =
            given(&self.application_credential_id) || given(&self.application_credential_secret);
        if application {
            if !given(&self.application_credential_id) {
                return fail(
                    "vim.auth_cred.application_credential_id",
                    "required with application_credential_secret",
                );
            }
            if !given(&self.application_credential_secret) {
                return fail(
                    "vim.auth_cred.application_credential_secret",
                    "required with application_credential_id",
                );
            }
            if given(&self.password) {
                return fail(
                    "vim.auth_cred.password",
                    "give a password or an application credential, not both",
                );
            }
            return Ok(());
        }
        if !given(&self.username) {
            return fail(
                "vim.auth_cred.username",
                "required (or application_credential_id and application_credential_secret)",
            );
        }
        if !given(&self.password) {
            return fail("vim.auth_cred.password", "required with username");
        }
        Ok(())
    }
}

/// Whether `url` is an `http` or `https` URL with a host, as Keystone's `auth_url` must be.
pub fn check_auth_url(url: &str) -> Result<(), CredentialError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(CredentialError {
            field: "vim.auth_url",
            message: format!("must be an http:// or https:// URL with a host, not {url:?}"),
        }),
    }
}

/// What a registered VIM is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VimDetails {
    pub vim_id: String,
    pub name: String,
    pub description: String,
    /// The vnfm project that registered it (Tacker's `tenant_id`).
    pub tenant_id: String,
    /// [`OPENSTACK_VIM_TYPE`].
    pub vim_type: String,
    /// Keystone's endpoint.
    pub auth_url: String,
    /// [`VimCredentials`] as JSON, its secret fields sealed with the VIM's data key at
    /// [`AUTH_PATH`] (`names::data_key_name(AggregateKind::Vim, id)`).
    pub auth: serde_json::Value,
    pub is_default: bool,
    /// Tacker's `placement_attr` (e.g. `{"regions": [...]}`), as given.
    #[serde(default)]
    pub placement_attr: serde_json::Value,
    /// When it was registered: the moment it became its project's default, when it did.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

/// Why a VIM's stored credentials could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenCredentialsError {
    #[error(transparent)]
    Sealed(#[from] crate::secrets::SecretError),
    #[error("a VIM's credentials do not read: {0}")]
    Shape(#[from] serde_json::Error),
}

impl VimDetails {
    /// The VIM's credentials, opened with its data key (`keyring::Keyring::get` of
    /// `AggregateKind::Vim` and the VIM's id: gateways and, to reach the VIM, conductors).
    pub fn credentials(
        &self,
        key: &crate::secrets::DataKey,
    ) -> Result<VimCredentials, OpenCredentialsError> {
        let plain = crate::secrets::open_secrets(&self.auth, key, AUTH_PATH)?;
        Ok(serde_json::from_value(plain)?)
    }
}

/// What a VIM's last check found; `Pending` until its first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VimStatus {
    #[default]
    Pending,
    Reachable,
    Unreachable,
}

impl VimStatus {
    /// As Tacker showed it.
    pub fn as_str(self) -> &'static str {
        match self {
            VimStatus::Pending => "PENDING",
            VimStatus::Reachable => "REACHABLE",
            VimStatus::Unreachable => "UNREACHABLE",
        }
    }
}

/// A change of a VIM (Tacker's `vim-update`): each field given replaces the VIM's own.
/// `is_default: Some(true)` marks it default anew even when it was (the default made last is
/// its project's default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VimChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// New credentials, sealed as [`VimDetails::auth`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VimCommand {
    Register(Box<VimDetails>),
    /// `at` dates the change: a VIM made default now is the default from then on.
    Update {
        changes: Box<VimChanges>,
        at: OffsetDateTime,
    },
    /// A check's result (a conductor's). Recorded only when the status or the reason
    /// changed; `Pending` is no result and is refused.
    RecordStatus {
        status: VimStatus,
        reason: Option<String>,
        at: OffsetDateTime,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum VimEvent {
    #[serde(rename = "VimRegistered")]
    Registered(Box<VimDetails>),
    /// Only what changed. New credentials make the status `Pending` again.
    #[serde(rename = "VimUpdated")]
    Updated {
        changes: Box<VimChanges>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    #[serde(rename = "VimStatusRecorded")]
    StatusRecorded {
        status: VimStatus,
        reason: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    #[serde(rename = "VimDeleted")]
    Deleted,
}

impl DomainEvent for VimEvent {
    fn event_type(&self) -> String {
        match self {
            VimEvent::Registered(_) => "VimRegistered",
            VimEvent::Updated { .. } => "VimUpdated",
            VimEvent::StatusRecorded { .. } => "VimStatusRecorded",
            VimEvent::Deleted => "VimDeleted",
        }
        .into()
    }

    fn event_version(&self) -> String {
        SCHEMA_VERSION.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VimError {
    #[error("VIM not found")]
    NotFound,
    #[error("VIM already exists")]
    AlreadyExists,
    #[error("PENDING is no check result: record REACHABLE or UNREACHABLE")]
    PendingIsNoResult,
}

/// The VIM as its events left it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vim {
    pub details: Option<VimDetails>,
    pub deleted: bool,
    pub status: VimStatus,
    /// Why the last check found it so (an unreachable VIM's error), if it said.
    pub reason: Option<String>,
    /// When the status was last recorded.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub status_at: Option<OffsetDateTime>,
    /// Since when it is marked its project's default (`None` when it is not): of a
    /// project's VIMs so marked, the one marked last is the default.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub default_since: Option<OffsetDateTime>,
}

impl Vim {
    /// The details of a VIM that exists (registered and not deleted).
    pub fn live(&self) -> Option<&VimDetails> {
        self.details.as_ref().filter(|_| !self.deleted)
    }
}

impl Aggregate for Vim {
    const TYPE: &'static str = "vim";
    type Command = VimCommand;
    type Event = VimEvent;
    type Error = VimError;
    type Services = ();

    async fn handle(
        &mut self,
        command: VimCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), VimError> {
        match command {
            VimCommand::Register(details) => {
                if self.details.is_some() {
                    return Err(VimError::AlreadyExists);
                }
                sink.write(VimEvent::Registered(details), self).await;
            }
            VimCommand::Update { mut changes, at } => {
                let details = self.live().ok_or(VimError::NotFound)?;
                // Only what changes is recorded.
                let same = |new: &Option<String>, old: &str| new.as_deref() == Some(old);
                if same(&changes.name, &details.name) {
                    changes.name = None;
                }
                if same(&changes.description, &details.description) {
                    changes.description = None;
                }
                if same(&changes.auth_url, &details.auth_url) {
                    changes.auth_url = None;
                }
                // Marking a default VIM default again is recorded: it is the default made
                // last, and so its project's default again.
                if changes.is_default == Some(false) && !details.is_default {
                    changes.is_default = None;
                }
                if *changes != VimChanges::default() {
                    sink.write(VimEvent::Updated { changes, at }, self).await;
                }
            }
            VimCommand::RecordStatus { status, reason, at } => {
                self.live().ok_or(VimError::NotFound)?;
                if status == VimStatus::Pending {
                    return Err(VimError::PendingIsNoResult);
                }
                let reason = reason.map(|r| r.chars().take(STATUS_REASON_CHARS_MAX).collect());
                if status != self.status || reason != self.reason {
                    sink.write(VimEvent::StatusRecorded { status, reason, at }, self)
                        .await;
                }
            }
            VimCommand::Delete => {
                self.live().ok_or(VimError::NotFound)?;
                sink.write(VimEvent::Deleted, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: VimEvent) {
        match event {
            VimEvent::Registered(details) => {
                self.default_since = details.is_default.then_some(details.registered_at);
                self.details = Some(*details);
            }
            VimEvent::Updated { changes, at } => {
                let Some(details) = self.details.as_mut() else {
                    return;
                };
                let VimChanges {
                    name,
                    description,
                    is_default,
                    auth_url,
                    auth,
                } = *changes;
                if let Some(name) = name {
                    details.name = name;
                }
                if let Some(description) = description {
                    details.description = description;
                }
                if let Some(is_default) = is_default {
                    details.is_default = is_default;
                    self.default_since = is_default.then_some(at);
                }
                let new_endpoint = auth_url.is_some() || auth.is_some();
                if let Some(auth_url) = auth_url {
                    details.auth_url = auth_url;
                }
                if let Some(auth) = auth {
                    details.auth = auth;
                }
                if new_endpoint {
                    // What was checked is not what the VIM is now.
                    self.status = VimStatus::Pending;
                    self.reason = None;
                    self.status_at = None;
                }
            }
            VimEvent::StatusRecorded { status, reason, at } => {
                self.status = status;
                self.reason = reason;
                self.status_at = Some(at);
            }
            VimEvent::Deleted => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    type Given = TestFramework<Vim>;

    const AT: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);
    const LATER: OffsetDateTime = datetime!(2026-12-01 11:00 UTC);

    fn details(is_default: bool) -> VimDetails {
        VimDetails {
            vim_id: "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11".into(),
            name: "site-a".into(),
            description: String::new(),
            tenant_id: "p1".into(),
            vim_type: OPENSTACK_VIM_TYPE.into(),
            auth_url: "http://127.0.0.1:1/v3".into(),
            auth: json!({"username": "u", "password": {"$sealed": "x"}, "project_name": "p"}),
            is_default,
            placement_attr: json!({}),
            registered_at: AT,
        }
    }

    fn registered() -> VimEvent {
        VimEvent::Registered(Box::new(details(false)))
    }

    fn record(status: VimStatus, reason: Option<&str>) -> VimCommand {
        VimCommand::RecordStatus {
            status,
            reason: reason.map(str::to_owned),
            at: LATER,
        }
    }

    fn recorded(status: VimStatus, reason: Option<&str>) -> VimEvent {
        VimEvent::StatusRecorded {
            status,
            reason: reason.map(str::to_owned),
            at: LATER,
        }
    }

    #[test]
    fn register_records_the_vim_pending_and_twice_is_refused() {
        Given::with(())
            .given_no_previous_events()
            .when(VimCommand::Register(Box::new(details(false))))
            .then_expect_events(vec![registered()]);
        Given::with(())
            .given(vec![registered()])
            .when(VimCommand::Register(Box::new(details(false))))
            .then_expect_error(VimError::AlreadyExists);
        let mut vim = Vim::default();
        vim.apply(registered());
        assert_eq!(vim.status, VimStatus::Pending);
        assert_eq!(vim.status.as_str(), "PENDING");
        assert_eq!(vim.default_since, None);
    }

    #[test]
    fn a_status_is_recorded_only_when_it_or_its_reason_changes() {
        Given::with(())
            .given(vec![registered()])
            .when(record(VimStatus::Reachable, None))
            .then_expect_events(vec![recorded(VimStatus::Reachable, None)]);
        Given::with(())
            .given(vec![registered(), recorded(VimStatus::Reachable, None)])
            .when(record(VimStatus::Reachable, None))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![
                registered(),
                recorded(VimStatus::Unreachable, Some("401")),
            ])
            .when(record(VimStatus::Unreachable, Some("401")))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![
                registered(),
                recorded(VimStatus::Unreachable, Some("401")),
            ])
            .when(record(VimStatus::Unreachable, Some("timed out")))
            .then_expect_events(vec![recorded(VimStatus::Unreachable, Some("timed out"))]);
        Given::with(())
            .given(vec![registered()])
            .when(record(VimStatus::Pending, None))
            .then_expect_error(VimError::PendingIsNoResult);
        Given::with(())
            .given(vec![registered(), VimEvent::Deleted])
            .when(record(VimStatus::Reachable, None))
            .then_expect_error(VimError::NotFound);
    }

    #[test]
    fn a_long_reason_is_cut() {
        let long = "x".repeat(STATUS_REASON_CHARS_MAX + 10);
        Given::with(())
            .given(vec![registered()])
            .when(record(VimStatus::Unreachable, Some(&long)))
            .then_expect_events(vec![recorded(
                VimStatus::Unreachable,
                Some(&long[..STATUS_REASON_CHARS_MAX]),
            )]);
    }

    #[test]
    fn an_update_records_only_what_changes() {
        let update = |changes: VimChanges| VimCommand::Update {
            changes: Box::new(changes),
            at: LATER,
        };
        Given::with(())
            .given(vec![registered()])
            .when(update(VimChanges {
                name: Some("site-a".into()),
                is_default: Some(true),
                ..VimChanges::default()
            }))
            .then_expect_events(vec![VimEvent::Updated {
                changes: Box::new(VimChanges {
                    is_default: Some(true),
                    ..VimChanges::default()
                }),
                at: LATER,
            }]);
        Given::with(())
            .given(vec![registered()])
            .when(update(VimChanges {
                description: Some(String::new()),
                is_default: Some(false),
                ..VimChanges::default()
            }))
            .then_expect_events(vec![]);
        let made_default_again = VimEvent::Updated {
            changes: Box::new(VimChanges {
                is_default: Some(true),
                ..VimChanges::default()
            }),
            at: LATER,
        };
        Given::with(())
            .given(vec![VimEvent::Registered(Box::new(details(true)))])
            .when(update(VimChanges {
                is_default: Some(true),
                ..VimChanges::default()
            }))
            .then_expect_events(vec![made_default_again]);
        Given::with(())
            .given(vec![registered(), VimEvent::Deleted])
            .when(update(VimChanges::default()))
            .then_expect_error(VimError::NotFound);
    }

    #[test]
    fn new_credentials_make_the_status_pending_and_a_default_is_dated() {
        let mut vim = Vim::default();
        vim.apply(VimEvent::Registered(Box::new(details(true))));
        assert_eq!(vim.default_since, Some(AT));
        vim.apply(recorded(VimStatus::Unreachable, Some("401")));
        vim.apply(VimEvent::Updated {
            changes: Box::new(VimChanges {
                auth: Some(json!({"username": "u2"})),
                ..VimChanges::default()
            }),
            at: LATER,
        });
        assert_eq!(
            (vim.status, vim.reason.as_deref()),
            (VimStatus::Pending, None)
        );
        vim.apply(VimEvent::Updated {
            changes: Box::new(VimChanges {
                is_default: Some(false),
                ..VimChanges::default()
            }),
            at: LATER,
        });
        assert_eq!(vim.default_since, None);
        vim.apply(VimEvent::Updated {
            changes: Box::new(VimChanges {
                is_default: Some(true),
                ..VimChanges::default()
            }),
            at: LATER,
        });
        assert_eq!(vim.default_since, Some(LATER));
    }

    #[test]
    fn delete_succeeds_once() {
        Given::with(())
            .given(vec![registered()])
            .when(VimCommand::Delete)
            .then_expect_events(vec![VimEvent::Deleted]);
        Given::with(())
            .given(vec![registered(), VimEvent::Deleted])
            .when(VimCommand::Delete)
            .then_expect_error(VimError::NotFound);
        Given::with(())
            .given_no_previous_events()
            .when(VimCommand::Delete)
            .then_expect_error(VimError::NotFound);
    }

    #[test]
    fn events_are_named_as_the_log_shows_them() {
        let value = serde_json::to_value(recorded(VimStatus::Unreachable, Some("401"))).unwrap();
        assert_eq!(value["type"], "VimStatusRecorded");
        assert_eq!(value["status"], "UNREACHABLE");
        assert_eq!(
            serde_json::to_value(registered()).unwrap()["type"],
            "VimRegistered"
        );
    }

    #[test]
    fn credentials_need_a_project_and_a_password_or_an_application_credential() {
        let password = VimCredentials {
            username: Some("u".into()),
            password: Some("p".into()),
            project_name: "demo".into(),
            ..VimCredentials::default()
        };
        assert_eq!(password.check(), Ok(()));
        let field = |c: VimCredentials| c.check().unwrap_err().field;
        assert_eq!(
            field(VimCredentials {
                password: None,
                ..password.clone()
            }),
            "vim.auth_cred.password"
        );
        assert_eq!(
            field(VimCredentials {
                username: Some(String::new()),
                ..password.clone()
            }),
            "vim.auth_cred.username"
        );
        assert_eq!(
            field(VimCredentials {
                project_name: String::new(),
                ..password.clone()
            }),
            "vim.vim_project.name"
        );
        let application = VimCredentials {
            application_credential_id: Some("id".into()),
            application_credential_secret: Some("s".into()),
            project_name: "demo".into(),
            ..VimCredentials::default()
        };
        assert_eq!(application.check(), Ok(()));
        assert_eq!(
            field(VimCredentials {
                application_credential_secret: None,
                ..application.clone()
            }),
            "vim.auth_cred.application_credential_secret"
        );
        assert_eq!(
            field(VimCredentials {
                password: Some("p".into()),
                ..application
            }),
            "vim.auth_cred.password"
        );
        let parsed: VimCredentials =
            serde_json::from_value(json!({"project_name": "demo"})).unwrap();
        assert!(parsed.cert_verify);
    }

    #[test]
    fn credentials_are_sealed_in_the_details_and_open_with_the_vims_key() {
        let key = crate::secrets::DataKey::generate().unwrap();
        let credentials = VimCredentials {
            username: Some("nfv".into()),
            password: Some("pw-1234".into()),
            project_name: "demo".into(),
            ..VimCredentials::default()
        };
        let plain = serde_json::to_value(&credentials).unwrap();
        let auth = crate::secrets::seal_secrets(&plain, &key, AUTH_PATH).unwrap();
        assert!(!auth.to_string().contains("pw-1234"), "{auth}");
        assert_eq!(auth["username"], "nfv");
        let details = VimDetails {
            auth,
            ..details(false)
        };
        assert_eq!(details.credentials(&key).unwrap(), credentials);
        let other = crate::secrets::DataKey::generate().unwrap();
        assert!(details.credentials(&other).is_err());
    }

    #[test]
    fn an_auth_url_is_http_or_https_with_a_host() {
        assert!(check_auth_url("http://127.0.0.1:1/v3").is_ok());
        assert!(check_auth_url("https://keystone.example/identity/v3").is_ok());
        assert!(check_auth_url("ftp://x/v3").is_err());
        assert!(check_auth_url("http:///v3").is_err());
        assert!(check_auth_url("keystone:5000").is_err());
    }
}
