//! `vnfm-bench-fleet`: a fleet of N VDUs on the loopback VIM, printed (nothing asserted). Run
//! with `ops/bench-fleet [--vdus N] [--monitors M] [--window-s S] [--concurrency C]
//! [--keep-logs DIR]` (root: the monitors open raw ICMP sockets and the loopback VIM's
//! blocklist is an ipset). With `--keep-logs`, every role's log is copied into DIR (one
//! `<role>.log` each) after the storm, so that a figure can be explained from them.
//!
//! Every role is a `vnfm` process of its own (`$VNFM_BIN`, the release build under
//! `ops/bench-fleet`) over one nats-server: a gateway, a projector, two conductors on `--vim
//! loopback` and M monitors, each with `--metrics-listen` (the gateway without per-project
//! quotas: `ops/bench-fleet` sets `VNFM_QUOTA_VNFS` and `VNFM_QUOTA_INSTANCES` to 0). The
//! gateway runs on the first half of the CPUs and the monitors on the others ([`Placement`]),
//! the rest on all. One VNFD, one VDU pinged every 30 s
//! (retry 2, respawn); N VNFs created through the API, C at a time. Then, in order:
//!
//! 1. the time to create the fleet (every create answered, then every VNF ACTIVE) and the rate;
//! 2. each role's cold start on the resulting log: a monitor restarted until it holds as many
//!    partitions again and has read the log, and until it has probed every target in them, the
//!    gateway until it answers a show, the projector until a VNF created after its restart is shown ACTIVE;
//! 3. over a window of S seconds: the share of probe attempts that started within 1 s of
//!    their schedule (the monitors' `vnfm_probe_lateness_seconds` histogram), CPU and RSS of
//!    every role (from `/proc`), the gateway's memory per VNF (the restarted gateway's RSS
//!    against its RSS before the fleet), and the telemetry stream's bytes per probe attempt (and what
//!    of it rosters and rounds took: a roster published in a short window weighs on it far
//!    more than at steady state, where it goes out once in `ROSTER_REPUBLISH_ROUNDS` rounds);
//!    and the failure reports and heal claims so far, each of a VDU judged down while it
//!    answered (none was blocked yet);
//! 4. a storm: 1 % of the VDUs blocked at once (`vnfm vim loopback block`, addresses on
//!    stdin); detection → claim p50/p99 from the log (each VNF's `HealStarted` recorded_at
//!    minus its failure's `detected_at`), split at the failure report's time in the monitor
//!    stream (the monitor's leg, then the conductors'), claims per second, and the gateway's
//!    show p99 during the storm against before it (shows from a thread of their own, beside the
//!    gateway), the slowest claims (VNF, both legs), and the
//!    monitors' lease renewals (how many took over a second, leases lost) before and during it.
//!    The blocked addresses are unblocked afterwards.
//!
//! Its last line is `fleet: vdus=N monitors=M on_time=P% storm_claim_p99_ms=X
//! show_p99_ratio=R`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use time::OffsetDateTime;

use bench::metrics::{Scrape, scrape};
use bench::{
    Placement, child_pid_with_arg, cpu_time, load_average, rss_bytes, set_cpus, set_thread_cpus,
};
use conductor::vim::loopback::Blocklist;
use events::monitor::cidr::LOOPBACK_VIM_RANGE;
use events::telemetry;
use events::vnf::VnfEvent;
use testkit::RoleProcess;
use vnfm_tests::{System, mgmt_ips, monitored_vnfd};

/// The fleet: a million VDUs.
const VDUS_DEFAULT: usize = 1_000_000;
/// Monitor processes the targets are shared among.
const MONITORS_DEFAULT: usize = 10;
/// The window the on-time share, CPU, RSS and telemetry bytes are measured over: the issue's
/// five minutes.
const WINDOW_S_DEFAULT: u64 = 300;
/// Creates in flight at once through the API.
const CREATE_CONCURRENCY_DEFAULT: usize = 64;
/// The most of any of them the bench takes: the loopback VIM holds 8,388,606 addresses, of
/// which a conductor may fill half; monitors and concurrency past these are typos.
const VDUS_MAX: usize = 4_000_000;
const MONITORS_MAX: usize = 64;
const CREATE_CONCURRENCY_MAX: usize = 4_096;
const WINDOW_S_MAX: u64 = 86_400;
/// The VDUs' ping interval, as the issue sets it.
const PING_INTERVAL_S: u64 = 30;
/// An attempt is on time when it starts within this of its schedule: the one second,
/// which is also a bucket bound of the lateness histogram (`events::telemetry::HISTOGRAMS`).
const ON_TIME_S: f64 = 1.0;
/// The share of VDUs blocked in the storm, in percent.
const STORM_PERCENT: usize = 1;
/// Conductors, as the issue sets it.
const CONDUCTORS: usize = 2;
/// How long the baseline shows (before the storm) run.
const SHOW_BASELINE: Duration = Duration::from_secs(10);
/// How long a role may take to say it runs (a release build on a loaded machine).
const ROLE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one VNF may take to become ACTIVE once its create is answered and the bench looks.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the monitors may take to hold every target, and a restarted role to serve: long
/// enough for a large log, reported as an error past it.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(1_800);
/// How long the storm's heals may take, from the block to the last heal completed: a detection
/// needs up to an interval and the retries, then every claim and respawn.
const STORM_TIMEOUT: Duration = Duration::from_secs(1_800);
/// How often the waits below look again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often a monitor sets its targets gauge (every ten of its 100 ms ticks), and a poll more.
const TARGETS_GAUGE_PERIOD: Duration = Duration::from_millis(1_100);

/// The command line, checked.
struct Args {
    vdus: usize,
    monitors: usize,
    window: Duration,
    concurrency: usize,
    /// Where to copy the roles' logs, if anywhere.
    keep_logs: Option<std::path::PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        vdus: VDUS_DEFAULT,
        monitors: MONITORS_DEFAULT,
        window: Duration::from_secs(WINDOW_S_DEFAULT),
        concurrency: CREATE_CONCURRENCY_DEFAULT,
        keep_logs: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = |max: u64| -> anyhow::Result<u64> {
            let n: u64 = value
                .parse()
                .with_context(|| format!("{flag} {value:?}: not a whole number"))?;
            anyhow::ensure!(
                (1..=max).contains(&n),
                "{flag} {n}: must be between 1 and {max}"
            );
            Ok(n)
        };
        match flag.as_str() {
            "--vdus" => args.vdus = usize::try_from(number(VDUS_MAX as u64)?)?,
            "--monitors" => args.monitors = usize::try_from(number(MONITORS_MAX as u64)?)?,
            "--window-s" => args.window = Duration::from_secs(number(WINDOW_S_MAX)?),
            "--concurrency" => {
                args.concurrency = usize::try_from(number(CREATE_CONCURRENCY_MAX as u64)?)?;
            }
            "--keep-logs" => {
                let dir = std::path::PathBuf::from(value);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("--keep-logs {}", dir.display()))?;
                args.keep_logs = Some(dir);
            }
            _ => anyhow::bail!(
                "unknown flag {flag:?}; usage: vnfm-bench-fleet [--vdus N] [--monitors M] \
                 [--window-s S] [--concurrency C] [--keep-logs DIR]"
            ),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let Args {
        vdus,
        monitors,
        window,
        concurrency,
        keep_logs,
    } = args;
    println!(
        "fleet of {vdus} VDUs (one VNF each, ping every {PING_INTERVAL_S} s, retry 2, respawn) on \
         the loopback VIM; {monitors} monitors, {CONDUCTORS} conductors, a gateway, a projector \
         and nats-server as separate processes; {} cores; load {}",
        std::thread::available_parallelism().map_or(1, usize::from),
        load_average()
    );
    let metrics = ["--metrics-listen", "127.0.0.1:0"];
    let mut system = System::start_separate_with(&metrics).await;
    // The conductors make the blocklist at start; the system removes it when dropped.
    system.blocklist = Some(Blocklist::new(&system.vim_prefix).context("the blocklist")?);
    let nats_pid = child_pid_with_arg(
        &system
            .nats
            .store_dir()
            .parent()
            .context("the store's parent")?
            .to_string_lossy(),
    )?;
    let mut conductors = Vec::new();
    for n in 1..=CONDUCTORS {
        let mut flags = vec!["--vim", "loopback"];
        flags.extend(metrics);
        conductors.push(
            system
                .spawn_conductor(&format!("conductor-{n}"), &flags)
                .await,
        );
    }
    let range = LOOPBACK_VIM_RANGE.to_string();
    let mut monitor_processes = Vec::new();
    for n in 1..=monitors {
        let mut flags = vec!["--probe-cidrs", range.as_str()];
        flags.extend(metrics);
        monitor_processes.push(
            system
                .spawn_monitor_with(&format!("monitor-{n}"), &flags)
                .await,
        );
    }
    let placement = Placement::halves();
    match &placement {
        Some(placement) => println!(
            "placement: the gateway and the storm's show client (a thread of its own) on CPUs \
             {:?}, the monitors on CPUs {:?}, the rest on all (a restarted role on all until its \
             cold start is measured)",
            placement.first, placement.second
        ),
        None => println!("placement: none, one CPU"),
    }
    place(placement.as_ref(), &mut system, &monitor_processes)?;
    let http = reqwest::Client::new();

    // 1. The fleet.
    let vnfd_id = system.onboard(&fleet_vnfd()).await;
    let gateway_rss_empty = rss_bytes(system.process("gateway").pid());
    let gateway_heap_empty = gateway_heap(&mut system, &http).await?;
    let started = Instant::now();
    let ids = create_fleet(&system.api, &http, &vnfd_id, vdus, concurrency).await?;
    let answered = started.elapsed();
    wait_active(&system.api, &http, &ids, concurrency).await?;
    let active = started.elapsed();
    println!(
        "create: {vdus} creates answered in {:.1} s ({:.0} creates/s, {concurrency} in flight); \
         all ACTIVE after {:.1} s ({:.0} VNFs/s); load {}",
        answered.as_secs_f64(),
        rate(vdus, answered),
        active.as_secs_f64(),
        rate(vdus, active),
        load_average()
    );
    wait_held(&monitor_processes, &http, vdus).await?;
    println!(
        "monitors hold all {vdus} targets {:.1} s after the last VNF was ACTIVE; load {}",
        started.elapsed().saturating_sub(active).as_secs_f64(),
        load_average()
    );

    // 2. Cold starts on the resulting log.
    let lifecycle = system
        .log
        .jetstream()
        .get_stream(events::names::LIFECYCLE_STREAM)
        .await?
        .info()
        .await?
        .state
        .clone();
    println!(
        "cold starts on a lifecycle log of {} messages ({:.1} MB); load {}",
        lifecycle.messages,
        lifecycle.bytes as f64 / 1e6,
        load_average()
    );
    cold_start_monitor(&mut monitor_processes[0], &http).await?;
    cold_start_gateway(&mut system, &http, &ids[0]).await?;
    cold_start_projector(&mut system, &http, &vnfd_id).await?;
    place(placement.as_ref(), &mut system, &monitor_processes)?;
    // The restarted monitor's targets have had an interval to be probed again.
    tokio::time::sleep(Duration::from_secs(PING_INTERVAL_S)).await;

    // 3. The window.
    let mut roles: Vec<(String, u32)> = vec![
        ("nats-server".to_owned(), nats_pid),
        ("gateway".to_owned(), system.process("gateway").pid()),
        ("projector".to_owned(), system.process("projector").pid()),
    ];
    roles.extend(
        conductors
            .iter()
            .chain(&monitor_processes)
            .map(|p| (p.label().to_owned(), p.pid())),
    );
    roles.push(("bench client".to_owned(), std::process::id()));
    let cpu_before: Vec<Duration> = roles.iter().map(|(_, pid)| cpu_time(*pid)).collect();
    let probes_before = probe_totals(&monitor_processes, &http).await?;
    let (telemetry_before, telemetry_last_before) = telemetry_bytes(&system).await?;
    let window_started = Instant::now();
    tokio::time::sleep(window).await;
    let seconds = window_started.elapsed().as_secs_f64();
    let probes = probe_totals(&monitor_processes, &http)
        .await?
        .since(&probes_before);
    let written = telemetry_bytes(&system)
        .await?
        .0
        .saturating_sub(telemetry_before);
    let split = telemetry_split(&system, telemetry_last_before + 1).await?;
    let on_time = probes.on_time_percent();
    println!(
        "over {seconds:.0} s: {} probe attempts ({:.0}/s, {} down), {on_time:.3} % started within \
         {ON_TIME_S} s of schedule (goal >= 99.9 %); telemetry {:.1} MB, {:.2} bytes per probe \
         result (goal <= 4); load {}",
        probes.attempts,
        probes.attempts / seconds,
        probes.down,
        written as f64 / 1e6,
        written as f64 / probes.attempts.max(1.0),
        load_average()
    );
    println!(
        "  of which rosters: {} messages, {:.1} KB; rounds: {} messages, {:.1} KB, {:.2} bytes \
         per probe result (subjects and payloads, without the store's own bytes)",
        split.roster_messages,
        split.roster_bytes as f64 / 1e3,
        split.round_messages,
        split.round_bytes as f64 / 1e3,
        split.round_bytes as f64 / probes.attempts.max(1.0),
    );
    println!("CPU (share of one core over the window) and RSS at its end, per role:");
    for ((label, pid), before) in roles.iter().zip(&cpu_before) {
        println!(
            "  {label}: CPU {:.1} %, RSS {:.1} MB",
            (cpu_time(*pid).saturating_sub(*before)).as_secs_f64() / seconds * 100.0,
            rss_bytes(*pid) as f64 / 1e6
        );
    }
    // The gateway restarted with every row (its cold start above) against one that held none.
    let gateway_rss = rss_bytes(system.process("gateway").pid());
    let gateway_heap = gateway_heap(&mut system, &http).await?;
    let per_vnf = |full: f64, empty: f64| (full - empty).max(0.0) / 1024.0 / vdus as f64;
    println!(
        "gateway memory: RSS {:.1} MB holding {vdus} VNFs against {:.1} MB holding none before \
         the fleet: {:.2} KiB per VNF (goal <= 2)",
        gateway_rss as f64 / 1e6,
        gateway_rss_empty as f64 / 1e6,
        per_vnf(gateway_rss as f64, gateway_rss_empty as f64),
    );
    println!(
        "  its heap: {:.1} MB in live allocations against {:.1} MB before, {:.2} KiB per VNF; \
         {:.1} MB freed and kept by malloc against {:.1} MB before",
        gateway_heap.in_use / 1e6,
        gateway_heap_empty.in_use / 1e6,
        per_vnf(gateway_heap.in_use, gateway_heap_empty.in_use),
        gateway_heap.free / 1e6,
        gateway_heap_empty.free / 1e6,
    );
    // Every monitor folds the whole log and tracks only the targets of the partitions it holds.
    for monitor in &monitor_processes {
        let page = scrape(&http, &monitor.metrics_url()?).await?;
        let heap = Heap::of(&page, monitor.label())?;
        println!(
            "  {} heap: {:.1} MB in live allocations holding {:.0} targets, {:.2} KiB per VNF \
             of the fleet",
            monitor.label(),
            heap.in_use / 1e6,
            page.total(telemetry::MONITOR_TARGETS),
            heap.in_use / 1024.0 / vdus as f64,
        );
    }

    // No VDU was blocked yet: every failure reported so far is a VDU judged down while it
    // answered, and every claim a heal it did not need.
    println!(
        "before the storm, no VDU blocked: {} failure reports stored, {:.0} heals claimed",
        failure_reports(&system).await?,
        roles_total(&conductors, &http, telemetry::HEALS_CLAIMED).await?
    );

    // 4. The storm.
    let leases_before = lease_totals(&monitor_processes, &http).await?;
    let show_cpus = placement
        .as_ref()
        .map(|placement| placement.first.as_slice());
    let storm = storm(&system, &conductors, &http, &ids, concurrency, show_cpus).await?;
    let leases_after = lease_totals(&monitor_processes, &http).await?;
    println!(
        "storm: {} VDUs ({STORM_PERCENT} %) blocked at once; detection -> claim p50 {:.1} ms, p99 \
         {:.1} ms (goal <= 1000); {:.0} claims/s over {:.2} s; all claimed {:.1} s and all \
         respawned {:.1} s after the block; meanwhile {:.0} heals claimed of VDUs not blocked; \
         load {}",
        storm.victims,
        ms(storm.claim.p50),
        ms(storm.claim.p99),
        rate(storm.victims, storm.claims_span),
        storm.claims_span.as_secs_f64(),
        storm.all_claimed.as_secs_f64(),
        storm.all_healed.as_secs_f64(),
        storm.others_claimed,
        load_average()
    );
    println!(
        "  of which detection -> failure report stored p50 {:.1} ms, p99 {:.1} ms; stored -> \
         claim p50 {:.1} ms, p99 {:.1} ms",
        ms(storm.reported.p50),
        ms(storm.reported.p99),
        ms(storm.taken.p50),
        ms(storm.taken.p99),
    );
    for slow in &storm.slowest {
        println!(
            "  slow claim: VNF {} detected at {}, report stored after {:.1} ms, claimed after \
             {:.1} ms",
            slow.vnf_id,
            slow.detected,
            slow.legs().map_or(f64::NAN, |(reported, _)| ms(reported)),
            ms(slow.latency())
        );
    }
    let storm_leases = leases_after.since(&leases_before);
    println!(
        "monitors' lease renewals before the storm (since each monitor started): {:.0}, {:.0} \
         over 1 s, {:.0} leases lost; during it: {:.0}, {:.0} over 1 s, {:.0} leases lost",
        leases_before.renewals,
        leases_before.slow,
        leases_before.lost,
        storm_leases.renewals,
        storm_leases.slow,
        storm_leases.lost,
    );
    let show_ratio = ms(storm.shows_during.p99) / ms(storm.shows_before.p99);
    println!(
        "gateway show: before the storm p50 {:.2} ms p99 {:.2} ms ({} shows); during it p50 \
         {:.2} ms p99 {:.2} ms ({} shows); p99 during / before {show_ratio:.2} (goal <= 2)",
        ms(storm.shows_before.p50),
        ms(storm.shows_before.p99),
        storm.shows_before.count,
        ms(storm.shows_during.p50),
        ms(storm.shows_during.p99),
        storm.shows_during.count
    );
    if let Some(dir) = &keep_logs {
        let mut logs: Vec<(String, String)> = ["gateway", "projector"]
            .into_iter()
            .map(|label| (label.to_owned(), system.process(label).log()))
            .collect();
        logs.extend(
            conductors
                .iter()
                .chain(&monitor_processes)
                .map(|p| (p.label().to_owned(), p.log())),
        );
        for (label, log) in logs {
            let path = dir.join(format!("{label}.log"));
            std::fs::write(&path, log).with_context(|| format!("write {}", path.display()))?;
        }
        println!("role logs kept in {}", dir.display());
    }
    for process in conductors.iter_mut().chain(monitor_processes.iter_mut()) {
        if let Some(status) = process.exit_status() {
            anyhow::bail!(
                "{} exited early ({status}):\n{}",
                process.label(),
                process.log()
            );
        }
    }
    println!(
        "fleet: vdus={vdus} monitors={monitors} on_time={on_time:.3}% storm_claim_p99_ms={:.1} \
         show_p99_ratio={show_ratio:.2}",
        ms(storm.claim.p99)
    );
    Ok(())
}

/// Puts the gateway and the monitors on their halves of the CPUs ([`Placement`]): at the start,
/// and again after the cold starts, whose restarted processes start on every CPU.
fn place(
    placement: Option<&Placement>,
    system: &mut System,
    monitors: &[RoleProcess],
) -> anyhow::Result<()> {
    let Some(placement) = placement else {
        return Ok(());
    };
    set_cpus(system.process("gateway").pid(), &placement.first)?;
    for monitor in monitors {
        set_cpus(monitor.pid(), &placement.second)?;
    }
    Ok(())
}

/// The fleet's VNFD: the tests' ping-monitored VDU, pinged every [`PING_INTERVAL_S`].
fn fleet_vnfd() -> String {
    let vnfd = monitored_vnfd("ping", "respawn", false);
    let short = "interval: 0.5,";
    assert!(vnfd.contains(short), "the tests' VNFD changed: {vnfd}");
    vnfd.replace(short, &format!("interval: {PING_INTERVAL_S},"))
}

/// Creates `count` VNFs of `vnfd_id` through the API, `concurrency` at a time; answers their
/// ids in creation order.
async fn create_fleet(
    api: &str,
    http: &reqwest::Client,
    vnfd_id: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let creates = futures::stream::iter(0..count).map(|n| async move {
        let body = serde_json::json!({"vnf": {"name": format!("fleet-{n}"), "vnfd_id": vnfd_id}});
        let (code, vnf) =
            vnfm_tests::call(http, api, reqwest::Method::POST, "/vnfs", Some(body)).await;
        anyhow::ensure!(code == 201, "create fleet-{n}: {code} {vnf}");
        vnf["vnf"]["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("create fleet-{n}: no id in {vnf}"))
    });
    // The rate of each tenth of the fleet: whether a create costs more as the fleet grows.
    let tenth = count.div_ceil(10).max(1);
    let mut ids = Vec::with_capacity(count);
    let mut slice_started = Instant::now();
    let mut created = creates.buffered(concurrency);
    while let Some(id) = created.next().await {
        ids.push(id?);
        if ids.len() % tenth == 0 || ids.len() == count {
            let slice = ids.len() - (ids.len() - 1) / tenth * tenth;
            println!(
                "    {} created; the last {slice} at {:.0}/s; load {}",
                ids.len(),
                slice as f64 / slice_started.elapsed().as_secs_f64(),
                load_average()
            );
            slice_started = Instant::now();
        }
    }
    Ok(ids)
}

/// Waits until every VNF of `ids` is shown ACTIVE, `concurrency` shows at a time.
async fn wait_active(
    api: &str,
    http: &reqwest::Client,
    ids: &[String],
    concurrency: usize,
) -> anyhow::Result<()> {
    let waits = futures::stream::iter(ids).map(|id| async move {
        let since = Instant::now();
        loop {
            let (code, vnf) = vnfm_tests::call(
                http,
                api,
                reqwest::Method::GET,
                &format!("/vnfs/{id}"),
                None,
            )
            .await;
            match vnf["vnf"]["status"].as_str() {
                Some("ACTIVE") => return Ok(()),
                Some("ERROR") => anyhow::bail!("VNF {id} went to ERROR: {vnf}"),
                _ if since.elapsed() > ACTIVE_TIMEOUT => {
                    anyhow::bail!("VNF {id} not ACTIVE after {ACTIVE_TIMEOUT:?}: {code} {vnf}")
                }
                _ => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    });
    let mut waits = waits.buffer_unordered(concurrency);
    while let Some(done) = waits.next().await {
        done?;
    }
    Ok(())
}

fn rate(count: usize, span: Duration) -> f64 {
    count as f64 / span.as_secs_f64().max(f64::EPSILON)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// A role's heap, as its `/metrics` says: bytes in live allocations, and freed and kept by
/// malloc.
struct Heap {
    in_use: f64,
    free: f64,
}

impl Heap {
    fn of(page: &Scrape, role: &str) -> anyhow::Result<Heap> {
        let bytes = |name: &str| {
            page.get(name)
                .with_context(|| format!("{role}'s /metrics has no {name}"))
        };
        Ok(Heap {
            in_use: bytes(events::telemetry::HEAP_IN_USE)?,
            free: bytes(events::telemetry::HEAP_FREE)?,
        })
    }
}

async fn gateway_heap(system: &mut System, http: &reqwest::Client) -> anyhow::Result<Heap> {
    let page = scrape(
        http,
        &system
            .process("gateway")
            .wait_for_metrics_url(ROLE_START_TIMEOUT)
            .await,
    )
    .await?;
    Heap::of(&page, "the gateway")
}

/// The probe counters of every monitor, summed.
#[derive(Clone, Copy, Default)]
struct ProbeTotals {
    attempts: f64,
    down: f64,
    /// Lateness observations, and those within [`ON_TIME_S`].
    timed: f64,
    on_time: f64,
}

impl ProbeTotals {
    fn since(&self, before: &ProbeTotals) -> ProbeTotals {
        ProbeTotals {
            attempts: self.attempts - before.attempts,
            down: self.down - before.down,
            timed: self.timed - before.timed,
            on_time: self.on_time - before.on_time,
        }
    }

    fn on_time_percent(&self) -> f64 {
        if self.timed > 0.0 {
            self.on_time / self.timed * 100.0
        } else {
            0.0
        }
    }
}

async fn probe_totals(
    monitors: &[RoleProcess],
    http: &reqwest::Client,
) -> anyhow::Result<ProbeTotals> {
    let mut totals = ProbeTotals::default();
    for monitor in monitors {
        let page = scrape(http, &monitor.metrics_url()?).await?;
        totals.attempts += page.total(telemetry::PROBE_ATTEMPTS);
        totals.down += page.sum(telemetry::PROBE_ATTEMPTS, |l| {
            l.contains("outcome=\"down\"")
        });
        let (timed, on_time) = page.observed(telemetry::PROBE_LATENESS, ON_TIME_S);
        totals.timed += timed;
        totals.on_time += on_time;
    }
    Ok(totals)
}

/// Waits until the monitors together hold `vdus` targets.
async fn wait_held(
    monitors: &[RoleProcess],
    http: &reqwest::Client,
    vdus: usize,
) -> anyhow::Result<()> {
    let since = Instant::now();
    loop {
        let mut total = 0.0;
        for monitor in monitors {
            let page = scrape(http, &monitor.metrics_url()?).await?;
            total += page.total(telemetry::MONITOR_TARGETS);
        }
        if total >= vdus as f64 {
            return Ok(());
        }
        anyhow::ensure!(
            since.elapsed() < SETTLE_TIMEOUT,
            "the monitors hold {total} of {vdus} targets after {SETTLE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Restarts a monitor (kill -9, as a crash) and prints the time until it holds as many
/// partitions again and has read the lifecycle log to its end, and until it has probed as many
/// targets as it then holds. The partitions may not be the same ones: leases that expired while
/// monitors were starved of CPU during the creates may have moved, and then its targets are not
/// the same count either. The targets are read once the gauge has been set since the catch-up
/// (it is set every [`TARGETS_GAUGE_PERIOD`]): before it, they are the part of the log read.
async fn cold_start_monitor(
    monitor: &mut RoleProcess,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    let before = scrape(http, &monitor.metrics_url()?).await?;
    let held_before = before.total(telemetry::MONITOR_TARGETS);
    let partitions_before = before.total(telemetry::MONITOR_PARTITIONS);
    let restarted = Instant::now();
    monitor.restart();
    let url = monitor.wait_for_metrics_url(ROLE_START_TIMEOUT).await;
    let mut caught_up = None;
    let mut held = None;
    loop {
        let page = scrape(http, &url).await?;
        let partitions = page.total(telemetry::MONITOR_PARTITIONS);
        let pending = page.get(telemetry::MONITOR_LIFECYCLE_PENDING);
        let attempts = page.total(telemetry::PROBE_ATTEMPTS);
        if caught_up.is_none() && partitions >= partitions_before && pending == Some(0.0) {
            caught_up = Some(restarted.elapsed());
        }
        if let Some(at) = caught_up
            && held.is_none()
            && restarted.elapsed() >= at + TARGETS_GAUGE_PERIOD
        {
            held = Some(page.total(telemetry::MONITOR_TARGETS));
        }
        if let (Some(at), Some(held)) = (caught_up, held)
            && attempts >= held
        {
            println!(
                "  monitor: restarted (kill -9) holding {held_before} targets in \
                 {partitions_before} partitions; holds as many partitions again and has read the \
                 log after {:.2} s, with {held} targets; has probed as many after {:.2} s; load {}",
                at.as_secs_f64(),
                restarted.elapsed().as_secs_f64(),
                load_average()
            );
            return Ok(());
        }
        anyhow::ensure!(
            restarted.elapsed() < SETTLE_TIMEOUT,
            "{}: after {SETTLE_TIMEOUT:?} holds {partitions} of {partitions_before} partitions, \
             {pending:?} lifecycle messages unread, and made {attempts} attempts",
            monitor.label()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Restarts the gateway and prints the time until it answers a show.
async fn cold_start_gateway(
    system: &mut System,
    http: &reqwest::Client,
    vnf_id: &str,
) -> anyhow::Result<()> {
    let restarted = Instant::now();
    let gateway = system.process("gateway");
    gateway.restart();
    let listen = gateway.wait_for_listen_address(SETTLE_TIMEOUT).await;
    let listening = restarted.elapsed();
    system.api = format!("http://{listen}/v1.0");
    loop {
        let shown = http
            .get(format!("{}/vnfs/{vnf_id}", system.api))
            .send()
            .await
            .map(|r| r.status() == 200);
        if shown.unwrap_or(false) {
            break;
        }
        anyhow::ensure!(
            restarted.elapsed() < SETTLE_TIMEOUT,
            "the gateway does not show {vnf_id} {SETTLE_TIMEOUT:?} after its restart"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "  gateway: restarted (kill -9); listening after {:.2} s, answers a show after {:.2} s; \
         load {}",
        listening.as_secs_f64(),
        restarted.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

/// Restarts the projector, creates a VNF right away and prints the time until the projector
/// says it runs and until the gateway shows the new VNF ACTIVE (projected by it).
async fn cold_start_projector(
    system: &mut System,
    http: &reqwest::Client,
    vnfd_id: &str,
) -> anyhow::Result<()> {
    let restarted = Instant::now();
    system.process("projector").restart();
    let body = serde_json::json!({"vnf": {"name": "after-projector-restart", "vnfd_id": vnfd_id}});
    let (code, created) = system.post("/vnfs", body).await;
    anyhow::ensure!(
        code == 201,
        "create after the projector's restart: {code} {created}"
    );
    let id = created["vnf"]["id"].as_str().context("an id")?.to_owned();
    system
        .process("projector")
        .wait_for_log("Projector running.", SETTLE_TIMEOUT)
        .await;
    let running = restarted.elapsed();
    loop {
        let (_, shown) = vnfm_tests::call(
            http,
            &system.api,
            reqwest::Method::GET,
            &format!("/vnfs/{id}"),
            None,
        )
        .await;
        if shown["vnf"]["status"] == "ACTIVE" {
            break;
        }
        anyhow::ensure!(
            restarted.elapsed() < SETTLE_TIMEOUT,
            "VNF {id} not shown ACTIVE {SETTLE_TIMEOUT:?} after the projector's restart: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "  projector: restarted (kill -9); running after {:.2} s, a VNF created at its restart \
         shown ACTIVE after {:.2} s; load {}",
        running.as_secs_f64(),
        restarted.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

/// The telemetry stream's bytes and last sequence now.
async fn telemetry_bytes(system: &System) -> anyhow::Result<(u64, u64)> {
    let state = system
        .log
        .jetstream()
        .get_stream(events::names::TELEMETRY_STREAM)
        .await?
        .info()
        .await?
        .state
        .clone();
    Ok((state.bytes, state.last_sequence))
}

/// The telemetry stream's messages from a sequence on, by kind: what the rosters cost and
/// what the rounds themselves cost (subject and payload bytes).
#[derive(Default)]
struct TelemetrySplit {
    roster_messages: usize,
    roster_bytes: usize,
    round_messages: usize,
    round_bytes: usize,
}

async fn telemetry_split(system: &System, from: u64) -> anyhow::Result<TelemetrySplit> {
    use events::monitor::{MonitorEvent, MonitorMessage};
    let stream = system
        .log
        .jetstream()
        .get_stream(events::names::TELEMETRY_STREAM)
        .await?;
    let mut read =
        events::read::StreamRead::open(&stream, events::names::ALL_MONITOR_SUBJECTS, from).await?;
    let mut split = TelemetrySplit::default();
    while let Some(message) = read.next().await? {
        let bytes = message.subject.len() + message.payload.len();
        match serde_json::from_slice::<MonitorMessage>(&message.payload).map(|m| m.event) {
            Ok(MonitorEvent::Roster { .. }) => {
                split.roster_messages += 1;
                split.roster_bytes += bytes;
            }
            Ok(MonitorEvent::Round { .. }) => {
                split.round_messages += 1;
                split.round_bytes += bytes;
            }
            _ => {}
        }
    }
    Ok(split)
}

/// A median, a 99th percentile and how many samples they are of.
struct Percentiles {
    p50: Duration,
    p99: Duration,
    count: usize,
}

fn percentiles(mut samples: Vec<Duration>) -> anyhow::Result<Percentiles> {
    anyhow::ensure!(!samples.is_empty(), "no samples");
    samples.sort_unstable();
    let at = |share: usize| samples[(samples.len() * share / 100).min(samples.len() - 1)];
    Ok(Percentiles {
        p50: at(50),
        p99: at(99),
        count: samples.len(),
    })
}

/// What the storm measured.
struct Storm {
    victims: usize,
    claim: Percentiles,
    /// The claim's two legs: from detection to the failure report stored in the monitor
    /// stream, and from there to the claim.
    reported: Percentiles,
    taken: Percentiles,
    /// From the first claim recorded to the last.
    claims_span: Duration,
    all_claimed: Duration,
    all_healed: Duration,
    /// Heals claimed meanwhile of VDUs that were not blocked.
    others_claimed: f64,
    shows_before: Percentiles,
    shows_during: Percentiles,
    /// The [`SLOWEST_CLAIMS`] slowest claims, slowest first.
    slowest: Vec<Claim>,
}

/// Claims of the storm printed one by one, slowest first: the tail behind its p99.
const SLOWEST_CLAIMS: usize = 3;

/// One VDU's claim in the storm, to look for in the roles' logs.
struct Claim {
    vnf_id: String,
    detected: OffsetDateTime,
    /// When its failure report was stored (unknown when the report read back was of a later
    /// failure).
    stored: Option<OffsetDateTime>,
    claimed: OffsetDateTime,
}

impl Claim {
    /// Detection to claim.
    fn latency(&self) -> Duration {
        elapsed(self.detected, self.claimed)
    }

    /// Detection to the report stored (the monitor's leg) and from there to the claim (the
    /// conductors'), when the report is known.
    fn legs(&self) -> Option<(Duration, Duration)> {
        let stored = self.stored?;
        Some((
            elapsed(self.detected, stored),
            elapsed(stored, self.claimed),
        ))
    }
}

/// From `from` to `to`; nothing when the clocks put `to` first.
fn elapsed(from: OffsetDateTime, to: OffsetDateTime) -> Duration {
    Duration::try_from(to - from).unwrap_or(Duration::ZERO)
}

/// Shows of the fleet's VNFs one after another (a stride through `ids`) until `stop` says so;
/// answers their latencies.
async fn shows_until(
    api: String,
    http: reqwest::Client,
    ids: Vec<String>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<Duration>> {
    /// A prime stride, so that the shows visit VNFs all over the table.
    const STRIDE: usize = 7_919;
    let mut latencies = Vec::new();
    let mut n = 0;
    while !*stop.borrow_and_update() {
        let id = &ids[(n * STRIDE) % ids.len()];
        n += 1;
        let started = Instant::now();
        let response = http.get(format!("{api}/vnfs/{id}")).send().await?;
        anyhow::ensure!(response.status() == 200, "show {id}: {}", response.status());
        response.bytes().await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Runs [`shows_until`] on a thread of its own, with a one-thread runtime and its own HTTP
/// client, on `cpus` if given (beside the gateway): the shows' client apart from the bench's
/// polling of the roles, as a remote client would be. Answers a sender that stops it and the
/// latencies once stopped.
fn spawn_shows(
    system: &System,
    ids: &[String],
    cpus: Option<&[usize]>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::sync::oneshot::Receiver<anyhow::Result<Vec<Duration>>>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done, latencies) = tokio::sync::oneshot::channel();
    let api = system.api.clone();
    let ids = ids.to_vec();
    let cpus = cpus.map(<[usize]>::to_vec);
    std::thread::spawn(move || {
        let shows = || -> anyhow::Result<Vec<Duration>> {
            if let Some(cpus) = &cpus {
                set_thread_cpus(cpus)?;
            }
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(shows_until(api, reqwest::Client::new(), ids, stopped))
        };
        // The receiver is dropped only if the bench has failed meanwhile.
        let _ = done.send(shows());
    });
    (stop, latencies)
}

/// Sums a counter over the conductors' `/metrics`.
/// Failure reports on the monitor stream, of every VNF.
async fn failure_reports(system: &System) -> anyhow::Result<usize> {
    let stream = system
        .log
        .jetstream()
        .get_stream(events::names::MONITOR_STREAM)
        .await?;
    let mut subjects = stream
        .info_with_subjects(events::names::FAILURE_SUBJECTS)
        .await?;
    let mut reports = 0;
    while let Some(subject) = subjects.next().await {
        reports += subject?.1;
    }
    Ok(reports)
}

async fn roles_total(
    roles: &[RoleProcess],
    http: &reqwest::Client,
    name: &str,
) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for role in roles {
        total += scrape(http, &role.metrics_url()?).await?.total(name);
    }
    Ok(total)
}

/// The monitors' lease renewals so far, summed.
#[derive(Clone, Copy, Default)]
struct LeaseTotals {
    renewals: f64,
    /// Renewals that took over a second.
    slow: f64,
    lost: f64,
}

impl LeaseTotals {
    fn since(&self, before: &LeaseTotals) -> LeaseTotals {
        LeaseTotals {
            renewals: self.renewals - before.renewals,
            slow: self.slow - before.slow,
            lost: self.lost - before.lost,
        }
    }
}

async fn lease_totals(
    monitors: &[RoleProcess],
    http: &reqwest::Client,
) -> anyhow::Result<LeaseTotals> {
    let mut totals = LeaseTotals::default();
    for monitor in monitors {
        let page = scrape(http, &monitor.metrics_url()?).await?;
        let (renewals, within_a_second) = page.observed(telemetry::MONITOR_LEASE_RENEWAL, 1.0);
        totals.renewals += renewals;
        totals.slow += renewals - within_a_second;
        totals.lost += page.total(telemetry::MONITOR_LEASES_LOST);
    }
    Ok(totals)
}

/// Runs `vnfm vim loopback <verb> --vim-prefix <prefix>` with `addresses` on stdin.
async fn loopback(verb: &str, prefix: &str, addresses: &[Ipv4Addr]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(testkit::vnfm_bin())
        .args(["vim", "loopback", verb, "--vim-prefix", prefix])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("run vnfm vim loopback")?;
    let mut input = child.stdin.take().context("its stdin")?;
    let lines = addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    input.write_all(lines.as_bytes()).await?;
    drop(input);
    let output = child.wait_with_output().await?;
    anyhow::ensure!(
        output.status.success(),
        "vnfm vim loopback {verb}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Blocks [`STORM_PERCENT`] of the VDUs (every hundredth VNF's) at once, with shows running
/// ([`spawn_shows`], on `show_cpus` if given),
/// until every one is claimed and respawned; unblocks them after.
async fn storm(
    system: &System,
    conductors: &[RoleProcess],
    http: &reqwest::Client,
    ids: &[String],
    concurrency: usize,
    show_cpus: Option<&[usize]>,
) -> anyhow::Result<Storm> {
    let victims: Vec<String> = ids.iter().step_by(100 / STORM_PERCENT).cloned().collect();
    let addresses = futures::stream::iter(&victims)
        .map(|id| async move {
            let (code, vnf) = system.get(&format!("/vnfs/{id}")).await;
            anyhow::ensure!(code == 200, "show {id}: {code} {vnf}");
            Ok(mgmt_ips(&vnf))
        })
        .buffered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?
        .concat();
    let claimed_before = roles_total(conductors, http, telemetry::HEALS_CLAIMED).await?;
    let healed_before = roles_total(conductors, http, telemetry::HEALS_COMPLETED).await?;

    let (stop, before) = spawn_shows(system, ids, show_cpus);
    tokio::time::sleep(SHOW_BASELINE).await;
    stop.send_replace(true);
    let shows_before = percentiles(before.await??)?;

    let (stop, during) = spawn_shows(system, ids, show_cpus);
    let blocked = Instant::now();
    let blocked_at = OffsetDateTime::now_utc();
    loopback("block", &system.vim_prefix, &addresses).await?;
    let target = victims.len() as f64;
    let mut all_claimed = None;
    let all_healed = loop {
        let claimed =
            roles_total(conductors, http, telemetry::HEALS_CLAIMED).await? - claimed_before;
        let healed =
            roles_total(conductors, http, telemetry::HEALS_COMPLETED).await? - healed_before;
        if all_claimed.is_none() && claimed >= target {
            all_claimed = Some(blocked.elapsed());
        }
        if healed >= target {
            break blocked.elapsed();
        }
        anyhow::ensure!(
            blocked.elapsed() < STORM_TIMEOUT,
            "after {STORM_TIMEOUT:?}: {claimed} of {target} heals claimed, {healed} completed"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    stop.send_replace(true);
    let shows_during = percentiles(during.await??)?;
    loopback("unblock", &system.vim_prefix, &addresses).await?;

    // The conductors' totals count every claim: a VDU not blocked but judged down (a monitor
    // starved of CPU) counts too. Each blocked VDU's own claim is waited for on its log.
    let claimed_in_all =
        roles_total(conductors, http, telemetry::HEALS_CLAIMED).await? - claimed_before;
    let mut each = Vec::with_capacity(victims.len());
    let monitor_stream = system
        .log
        .jetstream()
        .get_stream(events::names::MONITOR_STREAM)
        .await?;
    for id in &victims {
        let (failure_id, detected, claimed) = loop {
            if let Some(claim) = first_claim_after(&system.history(id).await, blocked_at) {
                break claim;
            }
            anyhow::ensure!(
                blocked.elapsed() < STORM_TIMEOUT,
                "VNF {id}: no HealStarted on its log {STORM_TIMEOUT:?} after the block"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        let report = monitor_stream
            .get_last_raw_message_by_subject(&events::names::failure_subject(id))
            .await?;
        let stored: events::monitor::MonitorMessage = serde_json::from_slice(&report.payload)?;
        let ours = matches!(&stored.event,
            events::monitor::MonitorEvent::Failure(failure) if failure.failure_id == failure_id);
        each.push(Claim {
            vnf_id: id.clone(),
            detected,
            stored: ours.then_some(report.time),
            claimed,
        });
    }
    let claims = each.iter().map(Claim::latency).collect();
    let (reported, taken): (Vec<_>, Vec<_>) = each.iter().filter_map(Claim::legs).unzip();
    let first = each
        .iter()
        .map(|claim| claim.claimed)
        .min()
        .context("no claims")?;
    let last = each
        .iter()
        .map(|claim| claim.claimed)
        .max()
        .context("no claims")?;
    let mut slowest = each;
    slowest.sort_by_key(|claim| std::cmp::Reverse(claim.latency()));
    slowest.truncate(SLOWEST_CLAIMS);
    Ok(Storm {
        victims: victims.len(),
        claim: percentiles(claims)?,
        reported: percentiles(reported).context("no failure report read back")?,
        taken: percentiles(taken).context("no failure report read back")?,
        claims_span: Duration::try_from(last - first).unwrap_or(Duration::ZERO),
        all_claimed: all_claimed.unwrap_or(all_healed),
        others_claimed: (claimed_in_all - target).max(0.0),
        all_healed,
        shows_before,
        shows_during,
        slowest,
    })
}

/// A VNF's first heal recorded at or after `after`: its failure's id and `detected_at`, and
/// its `HealStarted`'s `recorded_at`.
fn first_claim_after(
    history: &[events::store::Recorded<VnfEvent>],
    after: OffsetDateTime,
) -> Option<(String, OffsetDateTime, OffsetDateTime)> {
    history
        .iter()
        .filter(|recorded| recorded.envelope.recorded_at >= after)
        .find_map(|recorded| {
            recorded
                .envelope
                .events
                .iter()
                .find_map(|event| match event {
                    VnfEvent::HealStarted { failure, .. } => Some((
                        failure.failure_id.clone(),
                        failure.detected_at,
                        recorded.envelope.recorded_at,
                    )),
                    _ => None,
                })
        })
}
