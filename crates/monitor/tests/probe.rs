//! The prober against real targets on this host: loopback addresses (every 127.0.0.0/8
//! address answers ICMP on Linux), a silent host in a network namespace this test makes,
//! and TCP listeners on 127.0.0.1. Needs root (raw ICMP socket, `ip netns`).

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::future::join_all;
use monitor::probe::{ProbeOutcome, Prober};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Generous for loopback, where a reply takes microseconds.
const TIMEOUT: Duration = Duration::from_secs(2);
/// A short timeout for the probes that are meant to run out of time.
const SHORT_TIMEOUT: Duration = Duration::from_millis(400);
/// How late past its timeout a Down may come: scheduling slack on a busy 2-core machine.
const LATE_MAX: Duration = Duration::from_millis(500);

fn assert_up(outcome: &ProbeOutcome, what: &str) {
    assert!(
        matches!(outcome, ProbeOutcome::Up { .. }),
        "{what}: {outcome:?}"
    );
}

fn down_reason(outcome: ProbeOutcome, what: &str) -> String {
    match outcome {
        ProbeOutcome::Down { reason } => reason,
        up @ ProbeOutcome::Up { .. } => panic!("{what}: expected Down, got {up:?}"),
    }
}

#[tokio::test]
async fn ping_of_loopback_is_up() {
    let prober = Prober::new().unwrap();
    let outcome = prober.ping(Ipv4Addr::LOCALHOST, 1, TIMEOUT).await;
    assert_up(&outcome, "127.0.0.1");
    // Several back-to-back requests in one attempt are answered too.
    assert_up(
        &prober.ping(Ipv4Addr::LOCALHOST, 5, TIMEOUT).await,
        "127.0.0.1, 5 requests",
    );
}

#[tokio::test]
async fn the_receive_buffer_is_raised_far_past_the_kernel_default() {
    let prober = Prober::new().unwrap();
    // The kernel default is 208 KiB and rmem_max here 4 MiB; as root the prober forces more.
    assert!(
        prober.receive_buffer_bytes() >= 16 << 20,
        "{}",
        prober.receive_buffer_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_loopback_targets_at_once_are_all_up() {
    let prober = Prober::new().unwrap();
    let first = u32::from(Ipv4Addr::new(127, 3, 0, 1));
    let targets: Vec<Ipv4Addr> = (0..2_000).map(|i| Ipv4Addr::from(first + i)).collect();
    let outcomes = join_all(targets.iter().map(|&ip| prober.ping(ip, 1, TIMEOUT))).await;
    let down: Vec<_> = targets
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| !matches!(outcome, ProbeOutcome::Up { .. }))
        .collect();
    assert!(
        down.is_empty(),
        "{} of 2000 down, first: {:?}",
        down.len(),
        down.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_thousand_tasks_at_once_lose_nothing() {
    // More replies than the receive buffer holds unread: the prober's own bound on echo
    // requests in flight keeps them from overflowing it, however many tasks start at once.
    let prober = Prober::new().unwrap();
    let first = u32::from(Ipv4Addr::new(127, 5, 0, 1));
    let attempts: Vec<_> = (0..40_000)
        .map(|i| {
            let prober = prober.clone();
            tokio::spawn(async move { prober.ping(Ipv4Addr::from(first + i), 1, TIMEOUT).await })
        })
        .collect();
    let mut down = 0;
    for attempt in attempts {
        if !matches!(attempt.await.unwrap(), ProbeOutcome::Up { .. }) {
            down += 1;
        }
    }
    assert_eq!(down, 0, "of 40,000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attempts_to_one_ip_never_clash() {
    let prober = Prober::new().unwrap();
    let ip = Ipv4Addr::new(127, 4, 0, 1);
    // 300 attempts of 5 requests each, all in flight together: 1,500 requests to one IP.
    let outcomes = join_all((0..300).map(|_| prober.ping(ip, 5, TIMEOUT))).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_up(outcome, &format!("attempt {i}"));
    }
}

#[tokio::test]
async fn ping_of_a_silent_host_is_down_after_the_timeout() {
    let host = SilentHost::create();
    let prober = Prober::new().unwrap();
    // The path works while the host still answers ...
    assert_up(
        &prober.ping(host.addr, 1, TIMEOUT).await,
        "the namespace before it goes silent",
    );
    host.stop_answering_echo();
    // ... so this Down is the host's silence.
    let started = Instant::now();
    let outcome = prober.ping(host.addr, 3, SHORT_TIMEOUT).await;
    let elapsed = started.elapsed();
    let reason = down_reason(outcome, "silent host");
    assert!(reason.contains("no echo reply within 400 ms"), "{reason}");
    assert!(
        elapsed >= SHORT_TIMEOUT && elapsed < SHORT_TIMEOUT + LATE_MAX,
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn http_200_is_up() {
    let (port, first_line) = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let prober = Prober::new().unwrap();
    let outcome = prober.http(Ipv4Addr::LOCALHOST, port, TIMEOUT).await;
    assert_up(&outcome, "200");
    assert_eq!(first_line.await.unwrap(), "GET / HTTP/1.1");
}

#[tokio::test]
async fn http_302_is_up() {
    let (port, _) = serve_once("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n").await;
    let prober = Prober::new().unwrap();
    assert_up(
        &prober.http(Ipv4Addr::LOCALHOST, port, TIMEOUT).await,
        "302",
    );
}

#[tokio::test]
async fn http_503_is_down_naming_the_status() {
    let (port, _) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
    let prober = Prober::new().unwrap();
    let reason = down_reason(prober.http(Ipv4Addr::LOCALHOST, port, TIMEOUT).await, "503");
    assert_eq!(reason, "HTTP status 503");
}

#[tokio::test]
async fn http_not_http_is_down_as_malformed() {
    let (port, _) = serve_once("SSH-2.0-OpenSSH_9.2\r\n").await;
    let prober = Prober::new().unwrap();
    let reason = down_reason(
        prober.http(Ipv4Addr::LOCALHOST, port, TIMEOUT).await,
        "ssh banner",
    );
    assert!(reason.contains("malformed HTTP status line"), "{reason}");
}

#[tokio::test]
async fn http_to_a_closed_port_is_down_refused() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let prober = Prober::new().unwrap();
    let started = Instant::now();
    let reason = down_reason(
        prober.http(Ipv4Addr::LOCALHOST, port, TIMEOUT).await,
        "closed port",
    );
    assert!(reason.contains("refused"), "{reason}");
    assert!(started.elapsed() < TIMEOUT, "a refusal is immediate");
}

#[tokio::test]
async fn http_to_a_listener_that_never_answers_is_down_after_the_timeout() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds the connection, never writing a byte.
    let holder = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let prober = Prober::new().unwrap();
    let started = Instant::now();
    let reason = down_reason(
        prober.http(Ipv4Addr::LOCALHOST, port, SHORT_TIMEOUT).await,
        "silent listener",
    );
    let elapsed = started.elapsed();
    assert!(reason.contains("no HTTP status"), "{reason}");
    assert!(reason.contains("within 400 ms"), "{reason}");
    assert!(
        elapsed >= SHORT_TIMEOUT && elapsed < SHORT_TIMEOUT + LATE_MAX,
        "{elapsed:?}"
    );
    holder.abort();
}

/// A listener on 127.0.0.1 that answers one connection with `response` once it has read the
/// request's head, then closes. Gives the port, and the request's first line.
async fn serve_once(response: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = stream.read(&mut buf).await.unwrap();
            assert!(read > 0, "the request ended before its head did");
            head.extend_from_slice(&buf[..read]);
        }
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let head = String::from_utf8(head).unwrap();
        head.lines().next().unwrap_or_default().to_owned()
    });
    (port, server)
}

/// A network namespace joined to the host by a veth pair with a /31 from 198.18.0.0/15 (the
/// range reserved for test beds): the host routes `addr` to it and nowhere else. Removed on
/// drop, which also removes the veth pair and its route.
struct SilentHost {
    namespace: String,
    addr: Ipv4Addr,
}

impl SilentHost {
    fn create() -> SilentHost {
        let pid = std::process::id();
        // Slots from the top of the range, away from the local VIM's (it starts at the
        // bottom), one per test process.
        let slot = (1u32 << 16) - 1 - pid % 4096;
        let host_side = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + 2 * slot);
        let addr = Ipv4Addr::from(u32::from(host_side) + 1);
        let namespace = format!("probetest-{pid}");
        let (host_if, inner_if) = (format!("prbh{pid}"), format!("prbn{pid}"));
        // Leftovers of an earlier run with this pid; the command fails when there are none.
        let _ = Command::new("ip")
            .args(["netns", "del", &namespace])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &namespace]);
        let host = SilentHost { namespace, addr };
        let ns = host.namespace.as_str();
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &inner_if, "netns", ns,
        ]);
        ip(&["addr", "add", &format!("{host_side}/31"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/31"),
            "dev",
            &inner_if,
        ]);
        ip(&["-n", ns, "link", "set", &inner_if, "up"]);
        // Never send a probe anywhere else: the host must route `addr` into the veth.
        let route = ip(&["route", "get", &addr.to_string()]);
        assert!(
            route.contains(&format!("dev {host_if}")),
            "{addr} is not routed into the test namespace: {route}"
        );
        host
    }

    /// The namespace's kernel ignores echo requests from now on (the sysctl is per
    /// namespace): the address stays reachable and nothing answers a ping.
    fn stop_answering_echo(&self) {
        ip(&[
            "netns",
            "exec",
            &self.namespace,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all",
        ]);
    }
}

impl Drop for SilentHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
    }
}

/// Runs `ip` with `args`, panicking with its stderr if it fails; gives its stdout.
fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
