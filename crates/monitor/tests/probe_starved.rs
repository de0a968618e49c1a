//! The prober starved of CPU, against loopback addresses (every 127.0.0.0/8 address answers
//! ICMP on Linux). Needs root (raw ICMP socket). A test binary of its own: every raw ICMP
//! socket on the host receives every ICMP packet, and the 10,000 exchanges of this test would
//! fill the receive buffers of the other prober tests running beside it, and theirs its own.

use std::net::Ipv4Addr;
use std::time::Duration;

use monitor::probe::{ProbeOutcome, Prober};

/// A host busy enough that the monitor gets no CPU for longer than its attempts' timeouts: the
/// replies come in time and wait in the socket, and every attempt's timer has run out by the
/// time the monitor runs again. The replies still count: the targets are up, not down.
#[test]
fn replies_that_came_while_the_prober_was_starved_count() {
    const ATTEMPTS: u32 = 10_000;
    const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);
    const STARVED_FOR: Duration = Duration::from_millis(600);
    // One thread, so that one task can hold it as other processes hold a busy host's CPUs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let down = runtime.block_on(async {
        let prober = Prober::new().unwrap();
        let first = u32::from(Ipv4Addr::new(127, 6, 0, 1));
        let attempts: Vec<_> = (0..ATTEMPTS)
            .map(|i| {
                let prober = prober.clone();
                let ip = Ipv4Addr::from(first + i);
                tokio::spawn(async move { prober.ping(ip, 1, ATTEMPT_TIMEOUT).await })
            })
            .collect();
        // Queued behind every attempt, so it runs once they have all sent their request. A
        // blocking sleep, not a paused clock: it is the starvation under test, real replies
        // arriving while nothing on the thread runs.
        tokio::spawn(async { std::thread::sleep(STARVED_FOR) });
        let mut down = Vec::new();
        for attempt in attempts {
            if let ProbeOutcome::Down { reason } = attempt.await.unwrap() {
                down.push(reason);
            }
        }
        down
    });
    assert!(
        down.is_empty(),
        "{} of {ATTEMPTS} down, first: {:?}",
        down.len(),
        down.first()
    );
}
