//! The nats-server configurations in `ops/nats/` run as their comments say: with the users
//! `vnfm nats-config` generates, they refuse anonymous clients and let vnfm's identities in;
//! the cluster's (with its route TLS) are valid; and a role that brings no credentials to such
//! a server is told at once what it lacks.

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use events::access::Identity;
use events::credentials::{self, Seed};

/// How long the started server may take to accept clients.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A copy of `ops/nats/` in a fresh directory, used as the working directory the comments
/// start the servers from, with `auth.conf` and `cluster-auth.conf` generated as they say.
fn operator_checkout() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("a temporary directory");
    let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/nats");
    let copy = root.path().join("ops/nats");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&ops).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    for (file, args) in [
        ("auth.conf", &["--credentials-dir", "data/credentials"][..]),
        (
            "cluster-auth.conf",
            &[
                "--credentials-dir",
                "data/credentials",
                "--tls-dir",
                "data/tls",
            ][..],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vnfm"))
            .arg("nats-config")
            .args(args)
            .current_dir(root.path())
            .output()
            .expect("run vnfm nats-config");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(copy.join(file), out.stdout).unwrap();
    }
    root
}

fn nats_server(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(testkit::nats_server_bin());
    command.args(args).current_dir(root);
    command
}

/// A server killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_cluster_configs_with_their_route_tls_are_valid() {
    let root = operator_checkout();
    for node in 1..=3 {
        let config = format!("ops/nats/cluster-{node}.conf");
        let out = nats_server(root.path(), &["-t", "-c", &config])
            .output()
            .expect("run nats-server -t");
        assert!(
            out.status.success(),
            "{config}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(root.path().join("data/tls/ca.pem").exists());
}

#[tokio::test]
async fn the_single_node_config_lets_in_vnfm_s_identities_and_nobody_else() {
    let root = operator_checkout();
    let port = testkit::free_port();
    let port_flag = port.to_string();
    let _server = Server(
        nats_server(
            root.path(),
            &[
                "-c",
                "ops/nats/single.conf",
                "-sd",
                "data/nats",
                "-p",
                &port_flag,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server"),
    );
    let started = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            started.elapsed() < SERVER_START_TIMEOUT,
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("nats://127.0.0.1:{port}");
    assert!(
        async_nats::connect(&url).await.is_err(),
        "an anonymous client is let in"
    );
    let seed_file: PathBuf =
        credentials::seed_path(&root.path().join("data/credentials"), Identity::Admin);
    let admin = Seed::read(&seed_file).unwrap();
    let client = credentials::connect_options(Identity::Admin, &admin)
        .connect(&url)
        .await
        .expect("the admin identity is let in");
    drop(client);

    // A role without its seed is told so at once, naming the flag.
    let refused = Command::new(env!("CARGO_BIN_EXE_vnfm"))
        .args(["projector", "--nats-url", &url])
        .output()
        .expect("run vnfm projector");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("refused this client") && said.contains("--nats-nkey"),
        "{said}"
    );
    // With its seed it gets past the door, and is told what is missing next.
    let projector =
        credentials::seed_path(&root.path().join("data/credentials"), Identity::Projector);
    let unprovisioned = Command::new(env!("CARGO_BIN_EXE_vnfm"))
        .args(["projector", "--nats-url", &url, "--nats-nkey"])
        .arg(&projector)
        .output()
        .expect("run vnfm projector");
    let said = String::from_utf8_lossy(&unprovisioned.stderr);
    assert!(said.contains("run `vnfm setup`"), "{said}");
}
