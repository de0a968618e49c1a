//! A `vnfm gateway` process under the open-file limit a service gets by default (1,024),
//! attacked by more slow-loris connections than it can hold open: a normal show is still
//! answered within a second, and the slow connections are closed once their header timeout
//! has passed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vnfm_tests::{System, sample};

/// The open-file limit of a service started without one of its own (systemd's default).
const OPEN_FILES_MAX: u32 = 1024;
/// More slow connections than the gateway process has descriptors.
const SLOW_CONNECTIONS: usize = 1200;
/// How often a slow connection sends one more header line, as the attack in issue 11 did.
const SLOW_LINE_INTERVAL: Duration = Duration::from_secs(5);
/// The longest a normal show may take during the attack.
const SHOW_WITHIN: Duration = Duration::from_secs(1);
/// Shows made during the attack, one a second.
const SHOWS: u32 = 8;
/// What a debug build on a loaded 2-core machine may add to the header timeout before a
/// connection is seen closed.
const CLOSE_MARGIN: Duration = Duration::from_secs(3);

/// Applies the open-file limit to the running process `pid`, as a unit file's
/// `LimitNOFILE=1024` would have at its start, and checks that it took.
fn limit_open_files(pid: u32) {
    let limit = format!("--nofile={OPEN_FILES_MAX}:{OPEN_FILES_MAX}");
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &limit])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit {limit} on {pid}: {status}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        [OPEN_FILES_MAX.to_string(), OPEN_FILES_MAX.to_string()],
        "{open_files}"
    );
}

/// One slow-loris connection: a request line, then one header line every
/// [`SLOW_LINE_INTERVAL`], never the blank line that ends the header. Answers how long after
/// `started` the gateway closed it, or `None` if it was still open at `give_up`.
async fn slow_loris(gateway: SocketAddr, started: Instant, give_up: Instant) -> Option<Duration> {
    let mut stream = TcpStream::connect(gateway).await.ok()?;
    let mut line = format!("GET /v1.0/vnfds HTTP/1.1\r\nHost: {gateway}\r\n");
    let mut buffer = [0; 512];
    for n in 0.. {
        if stream.write_all(line.as_bytes()).await.is_err() {
            return Some(started.elapsed());
        }
        line = format!("X-Slow-{n}: {n}\r\n");
        let next_line = tokio::time::Instant::now() + SLOW_LINE_INTERVAL;
        loop {
            tokio::select! {
                read = stream.read(&mut buffer) => match read {
                    // An answer (a 408 or 503) is read on; the close ends it.
                    Ok(read) if read > 0 => {}
                    _ => return Some(started.elapsed()),
                },
                () = tokio::time::sleep_until(next_line) => break,
            }
        }
        if Instant::now() > give_up {
            return None;
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_connections_neither_starve_a_show_nor_stay_open() {
    let mut system = System::start_separate().await;
    let vnfd_id = system.onboard(&sample("tosca-vnfd-monitor.yaml")).await;
    let gateway = system.process("gateway");
    limit_open_files(gateway.pid());
    let address: SocketAddr = system
        .api
        .trim_start_matches("http://")
        .trim_end_matches("/v1.0")
        .parse()
        .unwrap();

    let started = Instant::now();
    let give_up = started + gateway::HEADER_READ_TIMEOUT + SLOW_LINE_INTERVAL * 2;
    let attack: Vec<_> = (0..SLOW_CONNECTIONS)
        .map(|_| tokio::spawn(slow_loris(address, started, give_up)))
        .collect();
    // Every slow connection has had time to connect and send its first line.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let show = format!("{}/vnfds/{vnfd_id}", system.api);
    for n in 0..SHOWS {
        // A client of its own each time: a new connection, as a CLI call makes.
        let client = reqwest::Client::new();
        let asked = Instant::now();
        let answer = tokio::time::timeout(SHOW_WITHIN, client.get(&show).send())
            .await
            .unwrap_or_else(|_| panic!("show {n} was not answered within {SHOW_WITHIN:?}"))
            .unwrap_or_else(|e| panic!("show {n}: {e}"));
        assert_eq!(answer.status().as_u16(), 200, "show {n}");
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(asked.elapsed())).await;
    }

    let mut closed_after = Vec::new();
    for connection in attack {
        closed_after.push(connection.await.unwrap());
    }
    let deadline = gateway::HEADER_READ_TIMEOUT + CLOSE_MARGIN;
    let late = closed_after
        .iter()
        .filter(|closed| closed.is_none_or(|after| after > deadline))
        .count();
    assert_eq!(
        late, 0,
        "slow connections still open {deadline:?} after the attack began"
    );
    let log = system.process("gateway").log();
    assert!(
        !log.contains("Cannot accept"),
        "accept failed under the limit:\n{log}"
    );
}
