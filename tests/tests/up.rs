//! `vnfm up` with its embedded nats-server, as an operator runs it: it makes every identity's
//! seed on first start and keeps them, its server refuses anonymous clients, and the reader's
//! seed reads every event and publishes nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use events::credentials::{self, Seed};
use events::names;
use futures::StreamExt as _;
use testkit::{Identity, RoleProcess, eventually};
use vnfm_tests::attacker::{self, Attacker, Outcome};
use vnfm_tests::{PATIENCE, monitored_vnfd, start_up};

/// How long `vnfm up` may take to exit after SIGTERM: its drain deadline (`DRAIN_DEADLINE`,
/// 10 s, in crates/vnfm/src/roles.rs) and two seconds for a debug build to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(12);

/// What `vnfm up` logs before the NATS URL it serves.
const URL_LOG: &str = "using NATS at ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_makes_the_identities_once_and_lets_in_only_them() {
    let (data_dir, listen, mut up) = start_up(&[]).await;
    let api = format!("http://{listen}/v1.0");

    let credentials_dir = data_dir.path().join("credentials");
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&credentials_dir), 0o700, "the credentials dir");
    let seeds: BTreeMap<Identity, Vec<u8>> = Identity::ALL
        .into_iter()
        .map(|identity| {
            let path = credentials::seed_path(&credentials_dir, identity);
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            (identity, std::fs::read(&path).unwrap())
        })
        .collect();
    let master_key = credentials::master_key_path(&credentials_dir);
    assert_eq!(mode(&master_key), 0o600, "the master key");
    let master_key_bytes = std::fs::read(&master_key).unwrap();

    let url = nats_url(&up.log(), "nats://");
    attacker::assert_anonymous_refused(&url).await;
    let seed = Seed::read(&credentials::seed_path(&credentials_dir, Identity::Reader))
        .expect("the reader's seed");
    let mut reader = Attacker::connect_to(
        &url,
        credentials::connect_options(Identity::Reader, &seed),
        Identity::Reader,
    )
    .await;
    let mut events = reader.client.subscribe("vnfm.>").await.unwrap();
    reader.client.flush().await.unwrap();
    let http = reqwest::Client::new();
    let template = monitored_vnfd("ping", "log", false);
    let vnfd_id = vnfm_tests::onboard(&http, &api, &template).await;
    let onboarded = tokio::time::timeout(PATIENCE, async {
        loop {
            let message = events.next().await.expect("the subscription is open");
            if message.subject.as_str() == names::vnfd_subject(&vnfd_id) {
                break message;
            }
        }
    })
    .await
    .expect("the reader sees the VNFD onboarded");
    let event: serde_json::Value = serde_json::from_slice(&onboarded.payload).unwrap();
    assert_eq!(event["aggregate_id"], vnfd_id.as_str(), "{event}");
    assert_eq!(
        reader
            .try_request(&names::vnf_subject("forged"), "{}")
            .await,
        Outcome::Refused,
        "the reader appends to the lifecycle log"
    );

    stop(&mut up).await;
    up.restart();
    up.wait_for_log("Gateway listening", PATIENCE).await;
    for (identity, bytes) in &seeds {
        let path = credentials::seed_path(&credentials_dir, *identity);
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
    assert_eq!(std::fs::read(&master_key).unwrap(), master_key_bytes);
    eventually(format!("VNFD {vnfd_id} is listed"), PATIENCE, || async {
        let (code, listed) =
            vnfm_tests::call(&http, &api, reqwest::Method::GET, "/vnfds", None).await;
        let ids: Vec<&str> = listed["vnfds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|vnfd| vnfd["id"].as_str())
            .collect();
        if code == 200 && ids.contains(&vnfd_id.as_str()) {
            Ok(())
        } else {
            Err(format!("{code}: {listed}"))
        }
    })
    .await;
    // The same master key opens the template sealed before the restart.
    let (_, shown) = vnfm_tests::call(
        &http,
        &api,
        reqwest::Method::GET,
        &format!("/vnfds/{vnfd_id}"),
        None,
    )
    .await;
    assert_eq!(
        shown["vnfd"]["attributes"]["vnfd"],
        template.as_str(),
        "{shown}"
    );

    // Killed outright, `vnfm up` takes its nats-server with it: the server gets the
    // parent-death signal and closes the store.
    let pid_file = data_dir.path().join("nats-server.pid");
    let server = read_pid(&pid_file);
    assert_ne!(server, 0, "no pid in {}", pid_file.display());
    up.kill();
    eventually(
        "the server ends with its killed vnfm up",
        STOP_TIMEOUT,
        || async {
            if alive(server) {
                Err(format!("pid {server} is alive"))
            } else {
                Ok(())
            }
        },
    )
    .await;
    // A server still serving the data dir when `vnfm up` starts (one started by hand with its
    // configuration, or one slow to end) is stopped before another starts: two servers never
    // share a store. It listens on a port of its own (`-p` overrides the configuration's):
    // the other tests' `vnfm up`s may take the port the killed one had, and a leftover that
    // cannot listen ends before `vnfm up` can find it.
    let leftover = std::process::Command::new(testkit::nats_server_bin())
        .arg("-c")
        .arg(data_dir.path().join("nats-server.conf"))
        .args(["-p", &testkit::free_port().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a nats-server on the data dir's configuration");
    let leftover_pid = i32::try_from(leftover.id()).expect("a pid");
    // Reaped as soon as it ends: `vnfm up` waits for the pid to be gone.
    let leftover = std::thread::spawn(move || {
        let mut leftover = leftover;
        leftover.wait()
    });
    // Serving: its pid file names it and it listens (its ports file, `ports_file_dir`).
    let ports_file = data_dir
        .path()
        .join(format!("nats-server_{leftover_pid}.ports"));
    eventually("the leftover server serves", PATIENCE, || async {
        let written = read_pid(&pid_file);
        if written != leftover_pid {
            Err(format!("the pid file names {written}"))
        } else if !ports_file.exists() {
            Err(format!("no {}", ports_file.display()))
        } else {
            Ok(())
        }
    })
    .await;
    up.restart();
    up.wait_for_log("Gateway listening", PATIENCE).await;
    eventually("the leftover server was stopped", STOP_TIMEOUT, || async {
        if leftover.is_finished() {
            Ok(())
        } else {
            Err("it runs")
        }
    })
    .await;
    leftover
        .join()
        .expect("the reaper")
        .expect("the leftover's status");
    assert!(
        up.log().contains("left by an earlier vnfm up"),
        "{}",
        up.log()
    );
    // Stopped by its signal, so that it stops its nats-server.
    stop(&mut up).await;
}

/// The pid a server's pid file names (0 while it names none).
fn read_pid(pid_file: &Path) -> i32 {
    std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// True while a process with that pid exists.
fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `vnfm up --tls` serves NATS over TLS only, with a CA it made in `<data-dir>/tls/`: a client
/// that trusts the CA and brings an identity gets in; one that does not speak TLS, or brings
/// no identity, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_tls_serves_nats_over_tls_only() {
    let (data_dir, _, mut up) = start_up(&["--tls"]).await;
    let url = nats_url(&up.log(), "tls://");
    let ca = data_dir.path().join("tls/ca.pem");
    let reader = Seed::read(&credentials::seed_path(
        &data_dir.path().join("credentials"),
        Identity::Reader,
    ))
    .expect("the reader's seed");
    let client = credentials::connect_options(Identity::Reader, &reader)
        .add_root_certificates(ca.clone())
        .require_tls(true)
        .connect(&url)
        .await
        .expect("a client trusting the CA gets in");
    drop(client);
    // Every role got in the same way, and the server saw nothing go wrong (a bare TCP probe
    // of a TLS port shows as a failed handshake).
    assert!(
        !up.log().contains("[ERR]"),
        "the server logged an error:\n{}",
        up.log()
    );
    let plain = url.replace("tls://", "nats://");
    assert!(
        credentials::connect_options(Identity::Reader, &reader)
            .connect(&plain)
            .await
            .is_err(),
        "a client without TLS gets in"
    );
    assert!(
        async_nats::ConnectOptions::new()
            .add_root_certificates(ca)
            .require_tls(true)
            .connect(&url)
            .await
            .is_err(),
        "an anonymous client over TLS gets in"
    );
    stop(&mut up).await;
}

/// `vnfm up --auth token`: the API takes the tokens `vnfm token create` makes, a token added
/// while it runs works without a restart and a removed one stops working, and each project
/// sees only its own VNFDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_token_auth_serves_created_tokens_and_rotates_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tokens = dir.path().join("tokens");
    let tokens_arg = tokens.to_str().expect("a UTF-8 path");
    let alice = token_create(tokens_arg, "alice", "p1");
    let (_data_dir, listen, mut up) =
        start_up(&["--auth", "token", "--token-file", tokens_arg]).await;
    let api = format!("http://{listen}/v1.0");
    let http = reqwest::Client::new();
    let get_as = |token: &str| {
        let request = http
            .get(format!("{api}/vnfds"))
            .header("X-Auth-Token", token);
        async move {
            let response = request.send().await.expect("the gateway answers");
            let status = response.status().as_u16();
            (
                status,
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    assert_eq!(get_as("").await.0, 401);
    assert_eq!(get_as("not-a-token").await.0, 401);
    assert_eq!(get_as(&alice).await.0, 200);
    let body =
        serde_json::json!({"vnfd": {"attributes": {"vnfd": monitored_vnfd("ping", "log", false)}}});
    let onboarded = http
        .post(format!("{api}/vnfds"))
        .header("X-Auth-Token", &alice)
        .json(&body)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(onboarded.status().as_u16(), 201);

    // Added while the gateway runs: in force within the reload interval.
    let before_bob = std::fs::read_to_string(&tokens).expect("the token file");
    let bob = token_create(tokens_arg, "bob", "p2");
    eventually("bob's new token is accepted", PATIENCE, || async {
        match get_as(&bob).await {
            (200, listed) if listed == serde_json::json!({"vnfds": []}) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (_, listed) = get_as(&alice).await;
    assert_eq!(
        listed["vnfds"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    // Removed: refused again, and alice's still works.
    std::fs::write(&tokens, before_bob).expect("rewrite the token file");
    eventually("bob's removed token is refused", PATIENCE, || async {
        match get_as(&bob).await.0 {
            401 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    assert_eq!(get_as(&alice).await.0, 200);
    stop(&mut up).await;
}

/// `vnfm token create` for a member of `project`; answers the token it printed.
fn token_create(token_file: &str, user: &str, project: &str) -> String {
    let output = std::process::Command::new(testkit::vnfm_bin())
        .args([
            "token",
            "create",
            "--token-file",
            token_file,
            "--user",
            user,
            "--project",
            project,
            "--role",
            "member",
        ])
        .output()
        .expect("run vnfm token create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim_end()
        .to_owned()
}

/// The NATS URL `vnfm up` says it uses, from its log; it starts with `scheme`.
fn nats_url(log: &str, scheme: &str) -> String {
    let (_, rest) = log
        .split_once(URL_LOG)
        .unwrap_or_else(|| panic!("no {URL_LOG:?} in the log:\n{log}"));
    let url = rest.split(';').next().unwrap_or_default().trim();
    assert!(url.starts_with(scheme), "{url}");
    url.to_owned()
}

/// Stops `up` with SIGTERM and waits for it to exit cleanly.
async fn stop(up: &mut RoleProcess) {
    up.terminate();
    let status = up.wait_exit(STOP_TIMEOUT).await;
    assert!(status.success(), "vnfm up: {status}\n{}", up.log());
}
