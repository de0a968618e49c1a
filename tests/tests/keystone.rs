//! The gateway's Keystone back end against a real Keystone (Debian's package, installed by
//! `ops/install-keystone.sh`): a user's token names its user, project and roles; a made-up or
//! unscoped token is refused; the service's credentials file must be private.

use gateway::keystone::{Keystone as Validator, KeystoneError, ServiceCredentials};
use vnfm_tests::client_with;
use vnfm_tests::keystone::Keystone;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_tokens_name_their_user_project_and_roles() {
    let keystone = Keystone::start().await;
    let project = keystone.project("tenant-a").await;
    let member = keystone.user("alice", "alice-pw", &project, "member").await;
    let token = keystone.token("alice", "alice-pw", "tenant-a").await;

    let credentials =
        ServiceCredentials::read(&keystone.service_credentials()).expect("the service's file");
    let validator = Validator::new(&keystone.url, credentials).expect("a validator");
    let validated = validator.validate(&token).await.expect("a valid token");
    assert_eq!(validated.user_id, member);
    assert_eq!(validated.project_id, project);
    assert!(
        validated.roles.iter().any(|r| r == "member"),
        "{:?}",
        validated.roles
    );
    // Cached: the same answer without asking (the token is still valid either way).
    assert_eq!(validator.validate(&token).await.unwrap(), validated);
    assert!(matches!(
        validator.validate("gAAAAAnot-a-token").await,
        Err(KeystoneError::Invalid(_))
    ));

    // A credentials file that others can read is refused, naming the mode.
    let exposed = keystone.service_credentials();
    std::fs::set_permissions(
        &exposed,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let refused = ServiceCredentials::read(&exposed).unwrap_err();
    assert!(refused.contains("mode 0644"), "{refused}");
}

/// The API behind Keystone: a member of one project onboards a VNFD; a member of another
/// project neither lists nor shows it (404); a reader of the first lists it and may not write
/// (403); a made-up token is refused (401); the log names the user; and python-tackerclient
/// 1.14.0, unmodified, finds the API in Keystone's catalog and lists with its own Keystone
/// session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_behind_keystone_isolates_projects_and_tackers_client_works() {
    use std::sync::Arc;

    use reqwest::Method;
    use serde_json::json;
    use vnfm_tests::{Options, System, call, sample};

    let keystone = Keystone::start().await;
    let tenant_a = keystone.project("tenant-a").await;
    let tenant_b = keystone.project("tenant-b").await;
    let alice = keystone
        .user("alice", "alice-pw", &tenant_a, "member")
        .await;
    keystone.user("rita", "rita-pw", &tenant_a, "reader").await;
    keystone.user("bob", "bob-pw", &tenant_b, "member").await;
    let credentials = ServiceCredentials::read(&keystone.service_credentials()).unwrap();
    let validator = Arc::new(Validator::new(&keystone.url, credentials).unwrap());
    let system = System::start_with(Options {
        auth: Some(validator),
        ..Options::default()
    })
    .await;
    let api = &system.api;
    let as_alice = client_with(&keystone.token("alice", "alice-pw", "tenant-a").await);
    let as_rita = client_with(&keystone.token("rita", "rita-pw", "tenant-a").await);
    let as_bob = client_with(&keystone.token("bob", "bob-pw", "tenant-b").await);

    let vnfd = json!({"vnfd": {"name": "scaling",
        "attributes": {"vnfd": sample("tosca-vnfd-scale.yaml")}}});
    let (code, made) = call(&as_alice, api, Method::POST, "/vnfds", Some(vnfd.clone())).await;
    assert_eq!(code, 201, "{made}");
    let vnfd_id = made["vnfd"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made["vnfd"]["tenant_id"], tenant_a.as_str(), "{made}");

    let (code, shown) = call(
        &as_bob,
        api,
        Method::GET,
        &format!("/vnfds/{vnfd_id}"),
        None,
    )
    .await;
    assert_eq!(code, 404, "another project's VNFD: {shown}");
    let (_, listed) = call(&as_bob, api, Method::GET, "/vnfds", None).await;
    assert_eq!(listed["vnfds"], json!([]), "{listed}");
    let (code, listed) = call(&as_rita, api, Method::GET, "/vnfds", None).await;
    assert_eq!(code, 200);
    assert_eq!(listed["vnfds"][0]["id"], vnfd_id.as_str(), "{listed}");
    let (code, refused) = call(&as_rita, api, Method::POST, "/vnfds", Some(vnfd)).await;
    assert_eq!(code, 403, "a reader writes: {refused}");
    let (code, _) = call(
        &client_with("gAAAAAforged"),
        api,
        Method::GET,
        "/vnfds",
        None,
    )
    .await;
    assert_eq!(code, 401);

    let history = system
        .log
        .read_subject::<events::vnfd::VnfdEvent>(&events::names::vnfd_subject(&vnfd_id))
        .await
        .unwrap();
    let actor = &history[0].envelope.cause.actor;
    assert_eq!(actor.id, alice, "the log names the user");
    assert_eq!(actor.project.as_deref(), Some(tenant_a.as_str()));

    // Tacker's own client: Keystone's catalog names the API as nfv-orchestration.
    keystone
        .endpoint("nfv-orchestration", api.trim_end_matches("/v1.0"))
        .await;
    let tacker =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/.venv-tacker/bin/tacker");
    let url = keystone.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(tacker)
            .args(["--os-auth-strategy", "keystone", "--os-auth-url", &url])
            .args(["--os-username", "alice", "--os-password", "alice-pw"])
            .args(["--os-project-name", "tenant-a"])
            .args([
                "--os-user-domain-id",
                "default",
                "--os-project-domain-id",
                "default",
            ])
            .arg("vnfd-list")
            .output()
            .expect("run tacker (ops/install-tackerclient.sh)")
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains(&vnfd_id),
        "tacker vnfd-list: {}\n{said}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
