//! The gateway's Keystone back end against a real Keystone (Debian's package, installed by
//! `ops/install-keystone.sh`): a user's token names its user, project and roles; a made-up or
//! unscoped token is refused; the service's credentials file must be private.

use gateway::keystone::{Keystone as Validator, KeystoneError, ServiceCredentials};
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
