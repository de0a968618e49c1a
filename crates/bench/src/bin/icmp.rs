//! `vnfm-bench-icmp`: the monitor's ICMP prober against fping, on the same loopback targets
//! in the same run; measures and prints, asserts nothing. Run with `ops/bench-icmp` (as root:
//! both open raw ICMP sockets).
//!
//! 1. For each target count, `fping -c1` once over all targets, then the prober with one
//!    attempt (one echo request) per target: rate, CPU time per target and replies lost of
//!    each, and their ratio against the goal (rate at least half of fping's, CPU per target
//!    at most twice fping's, nothing lost).
//! 2. The prober alone over more targets than one fping run takes (fping 5.1 stops at
//!    65,535: it gives every target its own sequence number).
//! 3. The same with a task per target on a 2-worker runtime, all at once, bounded only by the
//!    prober's own in-flight limit: the cost the monitor role avoids by running at most 1,024
//!    attempts at a time.
//!
//! Every target is in 127.0.0.0/8, which Linux answers on loopback: no packet leaves the host.

use std::future::{Future, ready};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use tokio::runtime::{Builder, Runtime};

use monitor::probe::{ProbeOutcome, Prober};

/// Target counts compared against fping.
const COMPARED_TARGETS: [u32; 2] = [10_000, 50_000];
/// Targets for the prober alone: more than fping takes in one run.
const PROBER_ONLY_TARGETS: u32 = 100_000;
/// The first target; the others follow it. From 127.1.0.1 up, any count here stays inside
/// 127.0.0.0/8 and clear of 127.0.0.1.
const FIRST_TARGET: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);
/// One attempt's timeout for both tools: loopback answers in microseconds, so this only
/// bounds a lost reply's wait; fping's `-t` gets the same.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Prober attempts this benchmark keeps in flight (parts 1 and 2), on a current-thread
/// runtime. Measured on 2 cores, 100,000 targets: 256 in flight gave 70–79k targets/s,
/// 1,024 gave 91–93k/s, 4,096 73–90k/s, all at once 55–61k/s; never a loss. One thread
/// because fping is one: on a 2-worker runtime every reply wakes its waiter across threads,
/// which cost twice the CPU per target (part 3 shows it).
const IN_FLIGHT_MAX: usize = 1_024;
/// Workers of the runtime in part 3: one per core of the reference machine.
const MONITOR_WORKERS: usize = 2;
/// Targets pinged by each tool just before its measured run, so that neither pays
/// first-use costs (page faults, a cold runtime) inside the figures.
const WARM_UP_TARGETS: usize = 1_000;
/// fping, from Debian's package (`ops/bench-icmp` installs it), found on the PATH.
const FPING: &str = "fping";

/// What one run over the targets cost.
struct Run {
    targets: u32,
    replies: u32,
    wall: Duration,
    cpu: Duration,
}

impl Run {
    fn rate_per_s(&self) -> f64 {
        f64::from(self.targets) / self.wall.as_secs_f64()
    }

    fn cpu_us_per_target(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / f64::from(self.targets)
    }

    fn lost(&self) -> u32 {
        self.targets - self.replies
    }

    fn print(&self, tool: &str) {
        println!(
            "  {tool:<7} {:>7.0} targets/s  {:>5.1} µs CPU/target  \
             (wall {:.3} s, CPU {:.3} s)  lost {}",
            self.rate_per_s(),
            self.cpu_us_per_target(),
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.lost()
        );
    }
}

fn main() -> anyhow::Result<()> {
    let version = Command::new(FPING)
        .arg("--version")
        .output()
        .context("fping is not installed (ops/bench-icmp installs it)")?;
    let runtime = Builder::new_current_thread().enable_all().build()?;
    let receive_buffer_bytes =
        runtime.block_on(async { Prober::new().map(|prober| prober.receive_buffer_bytes()) })?;
    println!(
        "{}; prober receive buffer {} MiB; 1 echo request per target, timeout {} ms",
        String::from_utf8_lossy(&version.stdout).trim(),
        receive_buffer_bytes >> 20,
        TIMEOUT.as_millis()
    );
    println!("Prober on a current-thread runtime, {IN_FLIGHT_MAX} attempts in flight:");

    for count in COMPARED_TARGETS {
        let targets = targets(count);
        let fping = fping(&targets)?;
        let prober = prober_run(&runtime, &targets, bounded)?;
        println!("{count} loopback targets:");
        fping.print("fping");
        prober.print("prober");
        println!(
            "  prober/fping: rate {:.2}x (goal >= 0.5x), CPU/target {:.2}x (goal <= 2x), \
             lost {} (goal 0)",
            prober.rate_per_s() / fping.rate_per_s(),
            prober.cpu_us_per_target() / fping.cpu_us_per_target(),
            prober.lost()
        );
    }

    let targets = targets(PROBER_ONLY_TARGETS);
    println!("{PROBER_ONLY_TARGETS} loopback targets, prober alone (fping takes at most 65,535):");
    prober_run(&runtime, &targets, bounded)?.print("prober");

    let workers = Builder::new_multi_thread()
        .worker_threads(MONITOR_WORKERS)
        .enable_all()
        .build()?;
    println!(
        "{PROBER_ONLY_TARGETS} loopback targets, a task per target all at once on a \
         {MONITOR_WORKERS}-worker runtime, unbounded:"
    );
    prober_run(&workers, &targets, task_per_target)?.print("prober");
    Ok(())
}

/// `count` loopback addresses from `FIRST_TARGET` on.
fn targets(count: u32) -> Vec<Ipv4Addr> {
    let first = u32::from(FIRST_TARGET);
    (0..count).map(|i| Ipv4Addr::from(first + i)).collect()
}

/// One `fping -c1` over all targets, after a warm-up run: its wall time, its CPU time (the
/// children's CPU time from /proc, at clock-tick resolution: fping is this process's only
/// child) and the replies its summary counts.
fn fping(targets: &[Ipv4Addr]) -> anyhow::Result<Run> {
    fping_once(&targets[..targets.len().min(WARM_UP_TARGETS)])?;
    fping_once(targets)
}

fn fping_once(targets: &[Ipv4Addr]) -> anyhow::Result<Run> {
    let list: String = targets
        .iter()
        .map(|ip| format!("{ip}\n"))
        .collect::<Vec<_>>()
        .concat();
    let timeout_ms = TIMEOUT.as_millis().to_string();
    let cpu_before = bench::children_cpu_time();
    let started = Instant::now();
    // -c1: one request per target, and a summary line per target; -i0: no gap between
    // requests to different targets (allowed as root); -r0: no retry; -q: summaries only;
    // -t: the timeout; the targets on stdin.
    let mut child = Command::new(FPING)
        .args(["-c1", "-i0", "-r0", "-q", "-t", &timeout_ms])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start fping")?;
    let mut stdin = child.stdin.take().context("fping has no stdin")?;
    stdin.write_all(list.as_bytes())?;
    drop(stdin);
    let output = child.wait_with_output()?;
    let wall = started.elapsed();
    let cpu = bench::children_cpu_time().saturating_sub(cpu_before);
    // Exit 1 means some target did not answer, which the count below reports as lost.
    if !matches!(output.status.code(), Some(0 | 1)) {
        bail!(
            "fping failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summaries = String::from_utf8_lossy(&output.stderr);
    Ok(Run {
        targets: u32::try_from(targets.len())?,
        replies: summaries.lines().filter_map(fping_replies).sum(),
        wall,
        cpu,
    })
}

/// The received count of one fping summary line:
/// `127.1.0.1 : xmt/rcv/%loss = 1/1/0%, min/avg/max = 0.04/0.04/0.04`.
fn fping_replies(line: &str) -> Option<u32> {
    let counts = line.split("xmt/rcv/%loss = ").nth(1)?;
    counts.split('/').nth(1)?.parse().ok()
}

/// One run of `start` over `targets` on `runtime`, with a prober of its own, warmed up
/// first: wall time, this process's CPU time (every thread: the runtime's and surge-ping's
/// receive task) and the replies. The prober is open only for its run: every raw ICMP
/// socket on the host gets a copy of every ICMP packet, so one left open would take CPU
/// from fping (whose socket closes when it exits).
fn prober_run<F, Fut>(runtime: &Runtime, targets: &[Ipv4Addr], start: F) -> anyhow::Result<Run>
where
    F: Fn(Prober, Vec<Ipv4Addr>) -> Fut,
    Fut: Future<Output = u32>,
{
    runtime.block_on(async {
        let prober = Prober::new()?;
        let warm_up = targets[..targets.len().min(WARM_UP_TARGETS)].to_vec();
        start(prober.clone(), warm_up).await;
        let cpu_before = bench::cpu_time(std::process::id());
        let started = Instant::now();
        let replies = start(prober, targets.to_vec()).await;
        let wall = started.elapsed();
        Ok(Run {
            targets: u32::try_from(targets.len())?,
            replies,
            wall,
            cpu: bench::cpu_time(std::process::id()).saturating_sub(cpu_before),
        })
    })
}

/// One attempt per target, at most `IN_FLIGHT_MAX` at once, all in this task: the replies.
async fn bounded(prober: Prober, targets: Vec<Ipv4Addr>) -> u32 {
    let up = futures::stream::iter(targets)
        .map(|ip| prober.ping(ip, 1, TIMEOUT))
        .buffer_unordered(IN_FLIGHT_MAX)
        .filter(|outcome| ready(matches!(outcome, ProbeOutcome::Up { .. })))
        .count()
        .await;
    u32::try_from(up).expect("at most one reply per target, and targets are counted in u32")
}

/// One attempt per target, each in a task of its own, all spawned at once: the replies.
async fn task_per_target(prober: Prober, targets: Vec<Ipv4Addr>) -> u32 {
    let attempts: Vec<_> = targets
        .into_iter()
        .map(|ip| {
            let prober = prober.clone();
            tokio::spawn(async move { prober.ping(ip, 1, TIMEOUT).await })
        })
        .collect();
    let mut up = 0;
    for attempt in attempts {
        if matches!(attempt.await, Ok(ProbeOutcome::Up { .. })) {
            up += 1;
        }
    }
    up
}
