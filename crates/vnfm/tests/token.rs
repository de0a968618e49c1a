//! `vnfm token create` prints a new token alone and stores only its hash, in a file its owner
//! alone may read; a gateway refuses a token file others may read, naming the flag.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

/// The exit code of a refused flag.
const USAGE_EXIT_CODE: i32 = 2;

fn vnfm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vnfm"))
        .args(args)
        .env_remove("VNFM_TOKEN_FILE")
        .output()
        .expect("run vnfm")
}

fn create(path: &str, user: &str, roles: &[&str]) -> String {
    let mut args = vec![
        "token",
        "create",
        "--token-file",
        path,
        "--user",
        user,
        "--project",
        "p1",
    ];
    for role in roles {
        args.extend(["--role", role]);
    }
    let output = vnfm(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn token_create_prints_the_token_alone_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tokens");
    let path_arg = path.to_str().expect("a UTF-8 path");

    let printed = create(path_arg, "alice", &["member", "reader"]);
    let token = printed.strip_suffix('\n').expect("one line");
    assert!(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{printed:?}"
    );
    let second = create(path_arg, "bob", &["admin"]);
    assert_ne!(second, printed);

    let text = std::fs::read_to_string(&path).expect("the token file");
    assert!(!text.contains(token), "the token itself is stored:\n{text}");
    let first_line = text.lines().next().expect("a line");
    assert_eq!(
        first_line,
        format!("{} alice p1 member,reader", gateway::auth::hash_hex(token))
    );
    assert_eq!(text.lines().count(), 2);
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let refused = vnfm(&[
        "token",
        "create",
        "--token-file",
        path_arg,
        "--user",
        "carol",
        "--project",
        "p1",
        "--role",
        "root",
    ]);
    assert_eq!(refused.status.code(), Some(USAGE_EXIT_CODE));
    assert!(refused.stdout.is_empty());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--role: unknown role \"root\""));
}

#[test]
fn a_token_file_others_may_read_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tokens");
    let path_arg = path.to_str().expect("a UTF-8 path");
    create(path_arg, "alice", &["member"]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for role in ["gateway", "up"] {
        let output = vnfm(&[
            role,
            "--auth",
            "token",
            "--token-file",
            path_arg,
            "--nats-url",
            "nats://127.0.0.1:1",
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(USAGE_EXIT_CODE), "{stderr}");
        assert!(
            stderr.contains("--token-file: ") && stderr.contains("open to group or others"),
            "{stderr}"
        );
    }
}
