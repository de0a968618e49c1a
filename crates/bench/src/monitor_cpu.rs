//! `vnfm-bench monitor-cpu`: what a monitor's probing costs in CPU per attempt at steady state,
//! the figure a fleet's size divides by. The gateway measurement's monitor alone: 10,000 VNFs'
//! VDUs pinged every second on loopback, no requests, and for [`WINDOWS`] windows of [`WINDOW`]
//! its attempts (from its `/metrics`) against its user and system CPU time and the
//! nats-server's, which stores its telemetry and state writes.
//!
//! On loopback the system time includes the kernel answering each ping on the monitor's own
//! CPU, which a real VDU does on its own: the figure overstates a deployment's, never
//! understates it.

use std::time::{Duration, Instant};

use bench::metrics::scrape;
use bench::{IdleSpinners, cpu_time, user_system_time};
use events::fixtures;
use events::telemetry;
use testkit::Durability;

use crate::{Bus, MONITOR_WARM_UP, VNFS, cores, nats_server_pid, start_monitor, write_vnfs};

/// Windows measured, and how long each lasts: long against the 10 ms resolution of the CPU
/// times, and each spanning many of the monitor's one-second rounds and state refreshes.
const WINDOWS: usize = 5;
const WINDOW: Duration = Duration::from_secs(30);

/// The counters one window is the difference of.
struct Reading {
    at: Instant,
    attempts: f64,
    monitor: (Duration, Duration),
    nats_server: Duration,
}

pub async fn monitor_cpu() -> anyhow::Result<()> {
    let server = Bus::Identities.server(Durability::SyncAlways).await;
    let nats_server = nats_server_pid(&server)?;
    let log = fixtures::log(server.client().await).await;
    write_vnfs(&log).await;
    let _spinners = IdleSpinners::start(cores())?;
    let (mut monitor, metrics) = start_monitor(&server).await?;
    tokio::time::sleep(MONITOR_WARM_UP).await;
    let http = reqwest::Client::new();
    let read = || async {
        anyhow::Ok(Reading {
            at: Instant::now(),
            attempts: scrape(&http, &metrics)
                .await?
                .total(telemetry::PROBE_ATTEMPTS),
            monitor: user_system_time(monitor.pid()),
            nats_server: cpu_time(nats_server),
        })
    };
    println!(
        "monitor CPU per attempt ({VNFS} VDUs pinged every second on loopback, {WINDOWS} \
         windows of {} s after {} s of warm-up; us of CPU per attempt):",
        WINDOW.as_secs(),
        MONITOR_WARM_UP.as_secs()
    );
    let mut totals = Vec::with_capacity(WINDOWS);
    for window in 1..=WINDOWS {
        let before = read().await?;
        tokio::time::sleep(WINDOW).await;
        let after = read().await?;
        let attempts = after.attempts - before.attempts;
        anyhow::ensure!(
            attempts > 0.0,
            "the monitor started no attempt in window {window}:\n{}",
            monitor.log()
        );
        let per_attempt = |cpu: Duration| cpu.as_secs_f64() * 1e6 / attempts;
        let user = per_attempt(after.monitor.0.saturating_sub(before.monitor.0));
        let system = per_attempt(after.monitor.1.saturating_sub(before.monitor.1));
        println!(
            "  window {window}: {attempts:.0} attempts ({:.0}/s); monitor user {user:.1}, \
             system {system:.1}, total {:.1}; nats-server {:.1}",
            attempts / (after.at - before.at).as_secs_f64(),
            user + system,
            per_attempt(after.nats_server.saturating_sub(before.nats_server))
        );
        totals.push(user + system);
    }
    if let Some(status) = monitor.exit_status() {
        anyhow::bail!("the monitor exited early ({status}):\n{}", monitor.log());
    }
    totals.sort_by(f64::total_cmp);
    println!(
        "monitor CPU per attempt: median {:.1} us (min {:.1}, max {:.1})",
        totals[WINDOWS / 2],
        totals[0],
        totals[WINDOWS - 1]
    );
    Ok(())
}
