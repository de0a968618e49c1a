//! Tacker's VIM registry (`/v1.0/vims`) in process against a real nats-server, with a
//! projector filling the tables, and the VIM a VNF create picks. No conductor runs: a VIM's
//! check result is recorded on the log by the test, as a conductor would.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use events::fixtures;
use events::keyring::Keyring;
use events::names::{self, AggregateKind};
use events::read::StreamRead;
use events::secrets;
use events::store::EventLog;
use events::vim::{AUTH_PATH, Vim, VimCommand, VimStatus};
use gateway::auth::TokenFile;
use gateway::{Gateway, GatewayConfig};
use projector::Tables;
use serde_json::{Value, json};
use testkit::{NatsServer, eventually};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// How long a test waits for the projector (and the gateway's mirror) to show a change.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
const MONITOR: &str = include_str!("../../vnfd/tests/samples/tosca-vnfd-monitor.yaml");
const PASSWORD: &str = "s3cret-Pa55word-for-the-vim";

/// Two projects: a member and a reader in `p1`, a member in `p2`, and an admin.
const USERS: [(&str, &str, &str, &str); 4] = [
    ("t-alice", "alice", "p1", "member"),
    ("t-rita", "rita", "p1", "reader"),
    ("t-bob", "bob", "p2", "member"),
    ("t-root", "root", "admin", "admin"),
];

struct Api {
    router: Router,
    log: EventLog,
    nats: NatsServer,
    projector: JoinHandle<()>,
    _gateway: Gateway,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.projector.abort();
    }
}

impl Api {
    async fn start() -> Api {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("tokens");
        for (token, user, project, role) in USERS {
            let line = gateway::auth::entry_line(token, user, project, &[role.to_owned()])
                .expect("a valid entry");
            gateway::auth::append_line(&path, &line).expect("write the token file");
        }
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        let tables = Tables::open(log.jetstream())
            .await
            .expect("open the tables");
        let projector = {
            let (log, tables) = (log.clone(), tables.clone());
            tokio::spawn(async move {
                projector::run(log, tables, futures::future::pending())
                    .await
                    .expect("projector runs");
            })
        };
        let config = GatewayConfig {
            auth: Arc::new(TokenFile::open(&path).expect("the token file is accepted")),
            instance: "gateway-test".into(),
            master_key: nats.access().master_key(),
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(log.clone(), tables, config)
            .await
            .expect("start the gateway");
        Api {
            router: gateway.router(),
            log,
            nats,
            projector,
            _gateway: gateway,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("x-auth-token", token)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("a request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        (status, value)
    }

    /// Registers a VIM as `vim-register --config-file` sends it; answers the VIM object.
    async fn register(&self, token: &str, name: &str, is_default: bool) -> Value {
        let (status, vim) = self
            .call(
                token,
                "POST",
                "/v1.0/vims.json",
                Some(&register_body(name, is_default)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{vim}");
        vim["vim"].clone()
    }

    async fn onboard(&self, token: &str) -> String {
        let body = json!({"vnfd": {"name": "monitor", "attributes": {"vnfd": MONITOR}}});
        let (status, vnfd) = self
            .call(token, "POST", "/v1.0/vnfds.json", Some(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{vnfd}");
        id_of(&vnfd["vnfd"])
    }

    async fn create_vnf(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            token,
            "POST",
            "/v1.0/vnfs.json",
            Some(&json!({ "vnf": body })),
        )
        .await
    }

    /// The VIM's credentials as stored, opened with its data key.
    async fn stored_credentials(&self, vim_id: &str) -> Value {
        let loaded = self.log.load::<Vim>(vim_id).await.expect("load the VIM");
        let details = loaded.aggregate.details.expect("a registered VIM");
        let keyring = Keyring::open(self.log.jetstream(), self.nats.access().master_key())
            .await
            .expect("open the keyring");
        let key = keyring
            .get(AggregateKind::Vim, vim_id)
            .await
            .expect("read the key")
            .expect("the VIM has a key");
        secrets::open_secrets(&details.auth, &key, AUTH_PATH).expect("the credentials open")
    }

    /// The names of the VIMs `token` lists.
    async fn listed(&self, token: &str) -> Vec<(String, bool)> {
        let (status, list) = self.call(token, "GET", "/v1.0/vims.json", None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["vims"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|vim| {
                (
                    vim["name"].as_str().unwrap().to_owned(),
                    vim["is_default"].as_bool().unwrap(),
                )
            })
            .collect()
    }
}

/// A `vim-register` body of python-tackerclient 1.14.0 for a config file with a password.
fn register_body(name: &str, is_default: bool) -> Value {
    json!({"vim": {
        "name": name,
        "description": "",
        "is_default": is_default,
        "type": "openstack",
        "auth_url": "http://127.0.0.1:1/v3",
        "vim_project": {"name": "demo", "project_domain_name": "Default"},
        "auth_cred": {
            "username": "nfv_user",
            "password": PASSWORD,
            "user_domain_name": "Default",
            "cert_verify": "False",
        },
    }})
}

fn id_of(object: &Value) -> String {
    object["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {object}"))
        .to_owned()
}

#[track_caller]
fn error_message(body: &Value, kind: &str) -> String {
    assert_eq!(body["TackerError"]["type"], kind, "{body}");
    body["TackerError"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_vim_is_registered_shown_without_its_password_and_seen_by_its_project_only() {
    let api = Api::start().await;
    let vim = api.register("t-alice", "site-a", false).await;
    let vim_id = id_of(&vim);
    assert_eq!(vim["status"], "PENDING");
    assert_eq!(vim["type"], "openstack");
    assert_eq!(vim["tenant_id"], "p1");
    assert_eq!(vim["auth_url"], "http://127.0.0.1:1/v3");
    assert_eq!(
        vim["vim_project"],
        json!({"name": "demo", "project_domain_name": "Default"})
    );
    assert_eq!(vim["auth_cred"]["username"], "nfv_user");
    assert_eq!(vim["auth_cred"]["user_domain_name"], "Default");
    assert_eq!(vim["auth_cred"]["cert_verify"], "False");
    assert_eq!(vim["is_default"], false);
    assert!(!vim.to_string().contains(PASSWORD), "{vim}");
    assert!(vim["auth_cred"].get("password").is_none(), "{vim}");

    let (status, shown) = api
        .call("t-rita", "GET", &format!("/v1.0/vims/{vim_id}.json"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(!shown.to_string().contains(PASSWORD), "{shown}");
    assert_eq!(
        api.listed("t-alice").await,
        [("local".to_owned(), true), ("site-a".to_owned(), false)]
    );
    // Another project sees only the built-in VIM; an admin sees every project's.
    assert_eq!(api.listed("t-bob").await, [("local".to_owned(), true)]);
    let (status, _) = api
        .call("t-bob", "GET", &format!("/v1.0/vims/{vim_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api.listed("t-root").await.len(), 2);
    // The log holds the password sealed, never in clear.
    let mut read = StreamRead::open(api.log.stream(), names::LIFECYCLE_SUBJECTS, 1)
        .await
        .expect("read the log");
    let mut messages = 0;
    while let Some(message) = read.next().await.expect("a message") {
        messages += 1;
        assert!(
            !String::from_utf8_lossy(&message.payload).contains(PASSWORD),
            "the password in clear on {}",
            message.subject
        );
    }
    assert!(messages > 0);
    assert_eq!(api.stored_credentials(&vim_id).await["password"], PASSWORD);

    // The built-in VIM.
    let (status, local) = api.call("t-bob", "GET", "/v1.0/vims/local", None).await;
    assert_eq!(status, StatusCode::OK, "{local}");
    assert_eq!(
        (&local["vim"]["type"], &local["vim"]["status"]),
        (&json!("local"), &json!("REACHABLE"))
    );
    // tackerclient's name lookup: `?name=` with `fields=id`.
    let (_, found) = api
        .call(
            "t-alice",
            "GET",
            "/v1.0/vims.json?name=site-a&fields=id",
            None,
        )
        .await;
    assert_eq!(found, json!({"vims": [{"id": vim_id}]}));
    let (_, found) = api
        .call("t-alice", "GET", "/v1.0/vims.json?id=local&fields=id", None)
        .await;
    assert_eq!(found, json!({"vims": [{"id": "local"}]}));
    // Paged like the other lists.
    let (_, page) = api
        .call("t-alice", "GET", "/v1.0/vims.json?limit=1", None)
        .await;
    assert_eq!(page["vims"].as_array().unwrap().len(), 1);
    assert_eq!(page["vims_links"][0]["rel"], "next", "{page}");
}

#[tokio::test]
async fn a_registration_is_checked_field_by_field() {
    let api = Api::start().await;
    api.register("t-alice", "site-a", false).await;
    let cases: [(&str, Value, StatusCode, &str); 7] = [
        (
            "type",
            json!("kubernetes"),
            StatusCode::BAD_REQUEST,
            "vim.type",
        ),
        ("type", json!("local"), StatusCode::BAD_REQUEST, "vim.type"),
        (
            "auth_url",
            json!("keystone:5000"),
            StatusCode::BAD_REQUEST,
            "vim.auth_url",
        ),
        (
            "auth_cred",
            json!({"username": "u", "password": ""}),
            StatusCode::BAD_REQUEST,
            "vim.auth_cred.password",
        ),
        (
            "auth_cred",
            json!({"application_credential_id": "id"}),
            StatusCode::BAD_REQUEST,
            "vim.auth_cred.application_credential_secret",
        ),
        (
            "vim_project",
            json!({"name": ""}),
            StatusCode::BAD_REQUEST,
            "vim.vim_project.name",
        ),
        ("name", json!("site-a"), StatusCode::CONFLICT, "VIM name"),
    ];
    for (field, value, expected, named) in cases {
        let mut body = register_body("other", false);
        body["vim"][field] = value;
        let (status, refused) = api.call("t-alice", "POST", "/v1.0/vims", Some(&body)).await;
        assert_eq!(status, expected, "{field}: {refused}");
        let message = refused["TackerError"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{field}: {message}");
    }
    // An application credential instead of a password.
    let mut body = register_body("app", false);
    body["vim"]["auth_cred"] = json!({
        "application_credential_id": "3f6d", "application_credential_secret": PASSWORD,
    });
    let (status, vim) = api.call("t-alice", "POST", "/v1.0/vims", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{vim}");
    assert_eq!(vim["vim"]["auth_cred"]["application_credential_id"], "3f6d");
    assert!(!vim.to_string().contains(PASSWORD), "{vim}");
    // The same name in another project is another VIM; a reader registers nothing.
    api.register("t-bob", "site-a", false).await;
    let (status, _) = api
        .call(
            "t-rita",
            "POST",
            "/v1.0/vims",
            Some(&register_body("r", false)),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_update_changes_what_it_names_and_keeps_a_password_left_out() {
    let api = Api::start().await;
    let vim_id = id_of(&api.register("t-alice", "site-a", false).await);
    let uri = format!("/v1.0/vims/{vim_id}.json");
    api.log
        .execute::<Vim>(
            &vim_id,
            VimCommand::RecordStatus {
                status: VimStatus::Reachable,
                reason: None,
                at: OffsetDateTime::now_utc(),
            },
            &(),
            &fixtures::conductor("c-1"),
        )
        .await
        .expect("record a check");
    // `vim-update --name --description`.
    let body = json!({"vim": {"name": "site-b", "description": "the second"}});
    let (status, updated) = api.call("t-alice", "PUT", &uri, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["vim"]["name"], &updated["vim"]["description"]),
        (&json!("site-b"), &json!("the second"))
    );
    assert_eq!(updated["vim"]["status"], "REACHABLE");
    // `vim-update --config-file` without the password: the stored one stays, and the VIM is
    // checked again.
    let body = json!({"vim": {
        "vim_project": {"name": "demo2", "project_domain_name": "Default"},
        "auth_cred": {"username": "other", "password": "", "user_domain_name": "Default", "cert_verify": "True"},
    }});
    let (status, updated) = api.call("t-alice", "PUT", &uri, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["vim"]["status"], "PENDING");
    assert_eq!(updated["vim"]["vim_project"]["name"], "demo2");
    let stored = api.stored_credentials(&vim_id).await;
    assert_eq!(
        (&stored["username"], &stored["password"]),
        (&json!("other"), &json!(PASSWORD))
    );
    // A new password replaces it.
    let body = json!({"vim": {"auth_cred": {"password": "new-one"}}});
    let (status, _) = api.call("t-alice", "PUT", &uri, Some(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.stored_credentials(&vim_id).await["password"], "new-one");
    // What cannot change.
    let body = json!({"vim": {"type": "kubernetes"}});
    let (status, refused) = api.call("t-alice", "PUT", &uri, Some(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(error_message(&refused, "InvalidInput").contains("vim.type"));
    let (status, _) = api.call("t-bob", "PUT", &uri, Some(&body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The built-in VIM is nobody's to change.
    let body = json!({"vim": {"name": "mine"}});
    let (status, refused) = api
        .call("t-root", "PUT", "/v1.0/vims/local", Some(&body))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let (status, refused) = api.call("t-root", "DELETE", "/v1.0/vims/local", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(error_message(&refused, "VimIsBuiltIn").contains("built-in"));
}

#[tokio::test]
async fn a_vnf_is_made_on_the_named_vim_else_the_latest_default_and_holds_it() {
    let api = Api::start().await;
    let vnfd_id = api.onboard("t-alice").await;
    let vnf = |name: &str| json!({"name": name, "vnfd_id": vnfd_id, "attributes": {}});
    // Without a registered default: the built-in VIM.
    let (status, created) = api.create_vnf("t-alice", vnf("v0")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["vnf"]["vim_id"], "local");

    let site_a = id_of(&api.register("t-alice", "site-a", true).await);
    let (_, created) = api.create_vnf("t-alice", vnf("v1")).await;
    assert_eq!(created["vnf"]["vim_id"], site_a.as_str());
    assert_eq!(
        api.listed("t-alice").await,
        [("local".to_owned(), false), ("site-a".to_owned(), true)]
    );
    // Another project's default is its own.
    assert_eq!(api.listed("t-bob").await, [("local".to_owned(), true)]);
    // The default made last wins, and making one default again moves it back.
    let site_b = id_of(&api.register("t-alice", "site-b", true).await);
    let (_, created) = api.create_vnf("t-alice", vnf("v2")).await;
    assert_eq!(created["vnf"]["vim_id"], site_b.as_str());
    let body = json!({"vim": {"is_default": true}});
    let (status, _) = api
        .call(
            "t-alice",
            "PUT",
            &format!("/v1.0/vims/{site_a}"),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, created) = api.create_vnf("t-alice", vnf("v3")).await;
    assert_eq!(created["vnf"]["vim_id"], site_a.as_str());
    // Named by id or by name (`vim_name`), or `local`.
    let mut by_id = vnf("v4");
    by_id["vim_id"] = json!(site_b);
    let (_, created) = api.create_vnf("t-alice", by_id).await;
    assert_eq!(created["vnf"]["vim_id"], site_b.as_str());
    let mut by_name = vnf("v5");
    by_name["vim_name"] = json!("site-b");
    let (_, created) = api.create_vnf("t-alice", by_name).await;
    assert_eq!(created["vnf"]["vim_id"], site_b.as_str());
    let mut local = vnf("v6");
    local["vim_id"] = json!("local");
    let (_, created) = api.create_vnf("t-alice", local).await;
    assert_eq!(created["vnf"]["vim_id"], "local");
    // A VIM that does not exist, or is another project's, is not found.
    for vim_id in [uuid::Uuid::new_v4().to_string(), "nope".to_owned()] {
        let mut body = vnf("v7");
        body["vim_id"] = json!(vim_id);
        let (status, refused) = api.create_vnf("t-alice", body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
        assert!(error_message(&refused, "VimNotFoundException").contains(&vim_id));
    }
    let mut body = vnf("v7");
    body["vim_id"] = json!(site_a);
    let (status, _) = api.create_vnf("t-bob", body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An unreachable VIM refuses new VNFs with its check's reason.
    api.log
        .execute::<Vim>(
            &site_a,
            VimCommand::RecordStatus {
                status: VimStatus::Unreachable,
                reason: Some(
                    "Keystone answered 401: The request you have made requires authentication."
                        .into(),
                ),
                at: OffsetDateTime::now_utc(),
            },
            &(),
            &fixtures::conductor("c-1"),
        )
        .await
        .expect("record a check");
    let (status, refused) = eventually("the VIM shows UNREACHABLE", CATCH_UP_TIMEOUT, || async {
        let (status, refused) = api.create_vnf("t-alice", vnf("v8")).await;
        if status == StatusCode::CONFLICT {
            Ok((status, refused))
        } else {
            Err(format!("{status} {refused}"))
        }
    })
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_message(&refused, "VimUnreachableException").contains("answered 401"));
    let (_, shown) = api
        .call("t-alice", "GET", &format!("/v1.0/vims/{site_a}"), None)
        .await;
    assert_eq!(shown["vim"]["status"], "UNREACHABLE");
    assert!(
        shown["vim"]["status_reason"]
            .as_str()
            .unwrap()
            .contains("401")
    );

    // A VIM in use is not deleted; the refusal counts its VNFs and names some.
    let (status, refused) = api
        .call("t-alice", "DELETE", &format!("/v1.0/vims/{site_b}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let message = error_message(&refused, "VimInUseException");
    assert!(message.contains("3 VNF(s)"), "{message}");
    // Unused, it is: gone from the list, its name free again.
    let site_c = id_of(&api.register("t-alice", "site-c", false).await);
    let (status, _) = api
        .call("t-alice", "DELETE", &format!("/v1.0/vims/{site_c}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call("t-alice", "GET", &format!("/v1.0/vims/{site_c}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.register("t-alice", "site-c", false).await;
}
