//! The `vnfm` binary refuses every bad flag value by name before it connects to anything, says
//! "cannot reach NATS" when nothing answers, and writes no colour codes into a pipe.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Well under the binary's connect timeout (10 s): a refused flag answers at once, so a run
/// that takes this long tried to connect.
const REFUSAL_TIME_MAX: Duration = Duration::from_secs(3);

/// A loopback NATS URL on which nothing listens.
fn dead_nats_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("nats://127.0.0.1:{port}")
}

fn vnfm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vnfm"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("run vnfm")
}

#[test]
fn every_bad_flag_is_refused_by_name_before_connecting() {
    let url = dead_nats_url();
    let dir = std::env::temp_dir().join(format!("vnfm-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let empty_token = dir.join("empty-token");
    std::fs::write(&empty_token, "\n").expect("write the empty token file");
    let empty_token = empty_token.to_str().expect("a UTF-8 path");
    let missing_token = dir.join("missing-token");
    let missing_token = missing_token.to_str().expect("a UTF-8 path");
    let cases: &[(&str, &[&str])] = &[
        ("--ack-wait-s", &["conductor", "--ack-wait-s", "0"]),
        ("--ack-wait-s", &["conductor", "--ack-wait-s", "-1"]),
        ("--heals-max", &["conductor", "--heals-max", "33"]),
        ("--heals-max", &["up", "--heals-max", "0"]),
        ("--heal-window-s", &["conductor", "--heal-window-s", "-1"]),
        ("--heal-window-s", &["up", "--heal-window-s", "-1"]),
        ("--vim-prefix", &["conductor", "--vim-prefix", "Bad!"]),
        ("--replicas", &["setup", "--replicas", "0"]),
        ("--nats-nkey", &["projector", "--nats-nkey", missing_token]),
        ("--nats-nkey", &["monitor", "--nats-nkey", empty_token]),
        (
            "--nats-tls-ca",
            &["conductor", "--nats-tls-ca", empty_token],
        ),
        (
            "--suspect-failures-min",
            &["monitor", "--suspect-failures-min", "0"],
        ),
        (
            "--probe-cidrs",
            &["monitor", "--probe-cidrs", "169.254.0.0"],
        ),
        ("--probe-cidrs", &["up", "--probe-cidrs", ""]),
        ("--token-file", &["gateway", "--auth", "token"]),
        (
            "--token-file",
            &["gateway", "--auth", "token", "--token-file", missing_token],
        ),
        (
            "--token-file",
            &["up", "--auth", "token", "--token-file", empty_token],
        ),
        ("--auth", &["gateway", "--listen", "0.0.0.0:9890"]),
        ("--master-key", &["gateway"]),
        ("--master-key", &["up", "--master-key", empty_token]),
        (
            "--nats-url",
            &["audit", "vnf-1", "--nats-url", "http://127.0.0.1:1"],
        ),
    ];
    for (flag, args) in cases {
        let mut args = args.to_vec();
        if !args.contains(&"--nats-url") {
            args.extend(["--nats-url", &url]);
        }
        let started = Instant::now();
        let output = vnfm(&args);
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted:\n{stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} does not name {flag}:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
        assert!(
            !stderr.contains("reach NATS")
                && !stderr.contains("connecting to NATS")
                && took < REFUSAL_TIME_MAX,
            "{args:?} tried to connect ({took:?}):\n{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let output = vnfm(&[
        "conductor",
        "--ack-wait-s",
        "0",
        "--heals-max",
        "33",
        "--heal-window-s",
        "-1",
        "--nats-url",
        &dead_nats_url(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    for expected in [
        "--ack-wait-s: must be 1..=3600 seconds, got 0",
        "--heals-max: must be 1..=32 heals, got 33",
        "--heal-window-s: must be 1..=604800 seconds, got -1",
    ] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }
}

/// `vnfm up` (which logs as it starts) and a `vnfm projector`, each against a NATS URL where
/// nothing listens: both say they cannot reach it, after the connect timeout and not as a
/// version problem, and the log written into the pipe carries no colour codes.
#[test]
fn an_unreachable_nats_is_named_and_the_piped_log_has_no_colour() {
    let url = dead_nats_url();
    // `up` makes its credentials in its data dir before it connects: never in the checkout.
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let data_dir = data_dir.path().to_str().expect("a UTF-8 path");
    std::thread::scope(|scope| {
        let runs = [
            vec!["up", "--data-dir", data_dir, "--nats-url", &url],
            vec!["projector", "--nats-url", &url],
        ]
        .map(|args| scope.spawn(move || vnfm(&args)));
        for run in runs {
            let output = run.join().expect("the run ends");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{stderr}");
            assert!(
                stderr.contains(&format!("cannot reach NATS at {url}")),
                "{stderr}"
            );
            assert!(!stderr.contains("version"), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                !stderr.contains("\x1b["),
                "colour codes in a pipe: {stderr:?}"
            );
        }
    });
}
