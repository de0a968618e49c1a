//! `vnfm-bench monitor-cold-start [VNFS] [MESSAGES_PER_VNF]`: a monitor's cold start on a long
//! lifecycle log, without and with a snapshot (issue 13: 100,000 VNFs, at least 1,000,000
//! lifecycle messages with scale and heal history, serving within 10 s).
//!
//! The log is written straight to the lifecycle stream (raw publishes of the envelopes the
//! aggregates would append, no expected-sequence check: only the monitor's read is measured).
//! Each VNF is created with one monitored instance on the loopback VIM's range, then goes
//! through heals, scale-outs and scale-ins, ending with one instance. A `vnfm monitor` process
//! (`$VNFM_BIN`, the release build under `ops/bench`) is started on it three times, killed
//! (kill -9) in between: without a snapshot; again, writing one once it has replayed the
//! log; and from that snapshot. With `--no-replay`, the bench folds the log into the snapshot
//! itself and the monitor starts from it twice (the second time with every VNF's states
//! recorded); then a projector projects the log from its start, is killed and started again,
//! and a gateway starts on the tables: how long each takes to serve, and the gateway's memory
//! per VNF. Each start prints the time until the monitor holds every target and until it has
//! probed as many (from its `/metrics`).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use time::OffsetDateTime;

use events::access::Identity;
use events::envelope::{Envelope, SCHEMA_VERSION};
use events::fixtures;
use events::monitor::{Failure, TargetRef};
use events::names::{self, AggregateKind};
use events::setup::{self, LogConfig, TELEMETRY_STREAM_BYTES_MIN};
use events::spec::{PolicyAction, ScaleDirection};
use events::store::{self, EventLog};
use events::telemetry;
use events::vnf::{Instance, PlannedInstance, VnfEvent};
use monitor::snapshot_store;
use testkit::{Durability, NatsServer, RoleProcess};

use crate::{IN_FLIGHT, cause, vnfd};
use bench::metrics::scrape;
use bench::rss_bytes;

/// VNFs written by default, and lifecycle messages each: issue 13's million messages.
pub const VNFS_DEFAULT: usize = 100_000;
pub const MESSAGES_PER_VNF_DEFAULT: usize = 10;
/// A create takes two messages (requested with the monitor attached, completed); each cycle
/// after it two more (heal, scale out, scale in, in turn).
const CREATE_MESSAGES: usize = 2;
/// The generations of instances a VNF may go through: each has an address of its own
/// (`ADDRESSES_PER_VNF` per VNF), so no two VNFs share one.
const ADDRESSES_PER_VNF: usize = 16;
/// The most messages a VNF may have: one address per cycle, and one for the create.
const MESSAGES_PER_VNF_MAX: usize = CREATE_MESSAGES + 2 * (ADDRESSES_PER_VNF - 1);
/// How long a start may take before the bench gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a projector may take to project the whole log from its start (about 500 s for a
/// million messages here): not a cold start, the bench's set-up for the restarts.
const PROJECTION_TIMEOUT: Duration = Duration::from_secs(1_800);
/// How often the monitor's `/metrics` is read during a start.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often a cheap condition timed to the millisecond (a row, a show) is polled.
const QUICK_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The monitor's name, the same at every start so that it takes its leases back at once.
const MONITOR: &str = "monitor-bench";

/// Instance `generation` of VNF number `n`: its id and address in the loopback VIM's range.
fn instance(n: usize, generation: usize) -> (String, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(127, 128, 0, 0));
    let offset = u32::try_from(n * ADDRESSES_PER_VNF + generation).expect("within the /9");
    (
        format!("vnf-{n}-i{generation}"),
        Ipv4Addr::from(base + offset),
    )
}

fn running(n: usize, generation: usize) -> Instance {
    let (instance_id, mgmt_ip) = instance(n, generation);
    Instance {
        instance_id,
        vdu: "VDU1".into(),
        mgmt_ip,
        booted_at: OffsetDateTime::now_utc(),
    }
}

fn planned(n: usize, generation: usize) -> PlannedInstance {
    PlannedInstance {
        vdu: "VDU1".into(),
        instance_id: instance(n, generation).0,
    }
}

/// The lifecycle messages of VNF number `n` (`id`): a create, then heals, scale-outs and
/// scale-ins in turn, `messages` in all; it ends with one running instance.
fn history(n: usize, id: &str, messages: usize) -> Vec<Vec<VnfEvent>> {
    let operation = format!("create-{n}");
    let mut history = vec![
        vec![
            VnfEvent::CreateRequested {
                details: fixtures::details(&format!("bench-{n}"), "vnfd-bench"),
                vnfd: vnfd(),
                operation_id: operation.clone(),
                add: vec![planned(n, 0)],
            },
            VnfEvent::MonitorAttached {
                action_id: format!("action-{n}"),
            },
        ],
        vec![VnfEvent::CreateCompleted {
            operation_id: operation,
            instances: vec![running(n, 0)],
        }],
    ];
    // The instances running, oldest first, and the next generation's number.
    let mut current = vec![0];
    let mut next = 1;
    let mut cycle = 0;
    while history.len() + 2 <= messages {
        let operation = format!("op-{n}-{cycle}");
        let at = OffsetDateTime::now_utc();
        match cycle % 3 {
            // A heal of the oldest instance.
            0 => {
                let old = current.remove(0);
                let (old_id, old_ip) = instance(n, old);
                let failure = Failure {
                    failure_id: format!("failure-{n}-{cycle}"),
                    monitor: cause().actor,
                    target: TargetRef {
                        vnf_id: id.to_owned(),
                        vdu: "VDU1".into(),
                        instance_id: old_id.clone(),
                        mgmt_ip: old_ip,
                        action_id: format!("action-{n}"),
                    },
                    action: PolicyAction::Respawn,
                    attempts: 3,
                    reason: "no reply".into(),
                    detected_at: at,
                };
                history.push(vec![VnfEvent::HealStarted {
                    operation_id: operation.clone(),
                    failure: failure.into(),
                    add: vec![planned(n, next)],
                    remove: vec![old_id.clone()],
                    at,
                }]);
                history.push(vec![VnfEvent::HealCompleted {
                    operation_id: operation,
                    added: vec![running(n, next)],
                    removed: vec![old_id],
                }]);
                current.push(next);
                next += 1;
            }
            // A scale out by one.
            1 => {
                history.push(vec![VnfEvent::ScaleRequested {
                    operation_id: operation.clone(),
                    policy: "SP1".into(),
                    direction: ScaleDirection::Out,
                    add: vec![planned(n, next)],
                    remove: Vec::new(),
                    at: Some(at),
                }]);
                history.push(vec![VnfEvent::ScaleCompleted {
                    operation_id: operation,
                    added: vec![running(n, next)],
                    removed: Vec::new(),
                }]);
                current.push(next);
                next += 1;
            }
            // A scale in of the oldest instance.
            _ => {
                let old = instance(n, current.remove(0)).0;
                history.push(vec![VnfEvent::ScaleRequested {
                    operation_id: operation.clone(),
                    policy: "SP1".into(),
                    direction: ScaleDirection::In,
                    add: Vec::new(),
                    remove: vec![old.clone()],
                    at: Some(at),
                }]);
                history.push(vec![VnfEvent::ScaleCompleted {
                    operation_id: operation,
                    added: Vec::new(),
                    removed: vec![old],
                }]);
            }
        }
        cycle += 1;
    }
    history
}

/// VNF number `n`'s id.
fn vnf_id(n: usize) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &n.to_be_bytes()).to_string()
}

/// The lifecycle message of VNF `id` that records `events`, as the event store writes it.
fn payload(id: &str, events: Vec<VnfEvent>) -> bytes::Bytes {
    let envelope = Envelope {
        schema_version: SCHEMA_VERSION,
        aggregate: AggregateKind::Vnf,
        aggregate_id: id.to_owned(),
        cause: cause(),
        recorded_at: OffsetDateTime::now_utc(),
        events,
    };
    serde_json::to_vec(&envelope).expect("encodable").into()
}

/// Writes `vnfs` VNFs of `messages` messages each to the lifecycle stream, a VNF's messages in
/// order and VNFs interleaved (every VNF's create, then every VNF's first cycle, ...), as a
/// long-lived fleet's log is. Answers the messages written and the stream's last sequence.
async fn write_log(
    server: &NatsServer,
    vnfs: usize,
    messages: usize,
) -> anyhow::Result<(usize, u64)> {
    let client = server.client().await;
    // The smallest telemetry bound: 100,000 targets pinged every second write megabytes of
    // rounds a second, which nothing here reads.
    let config = LogConfig {
        telemetry_bytes_max: TELEMETRY_STREAM_BYTES_MIN,
        ..LogConfig::default()
    };
    setup::provision(&async_nats::jetstream::new(client.clone()), &config).await?;
    let log = EventLog::open(client).await?;
    let jetstream = log.jetstream().clone();
    let ids: Vec<String> = (0..vnfs).map(vnf_id).collect();
    let histories: Vec<Vec<Vec<VnfEvent>>> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| history(n, id, messages))
        .collect();
    let started = Instant::now();
    let mut written = 0;
    for step in 0..messages {
        let batch: Vec<(String, bytes::Bytes)> = histories
            .iter()
            .zip(&ids)
            .filter_map(|(history, id)| Some((id, history.get(step)?)))
            .map(|(id, events)| (names::vnf_subject(id), payload(id, events.clone())))
            .collect();
        written += batch.len();
        futures::stream::iter(batch)
            .map(|(subject, payload)| {
                let jetstream = jetstream.clone();
                async move { jetstream.publish(subject, payload).await?.await.map(|_| ()) }
            })
            .buffer_unordered(IN_FLIGHT)
            .for_each(|r| {
                r.expect("a lifecycle message stored");
                async {}
            })
            .await;
    }
    let mut stream = log.stream().clone();
    let state = stream.info().await?.state.clone();
    println!(
        "monitor cold start: wrote {written} lifecycle messages ({vnfs} VNFs of {messages}: a \
         create, heals, scale-outs and scale-ins) in {:.1} s; the stream holds {} bytes",
        started.elapsed().as_secs_f64(),
        state.bytes
    );
    Ok((written, state.last_sequence))
}

/// A projector projects the whole log from its start, is killed (kill -9) and started again;
/// then a gateway starts on the tables. Prints how long each took to serve (the goals:
/// 5 s each) and the gateway's memory against a gateway started on empty tables.
async fn projector_and_gateway(
    server: &NatsServer,
    vnfs: usize,
    empty_gateway_rss: u64,
) -> anyhow::Result<()> {
    let jetstream = async_nats::jetstream::new(server.client().await);
    let lifecycle = jetstream.get_stream(names::LIFECYCLE_STREAM).await?;
    let tables = projector::Tables::open(&jetstream).await?;
    let http = reqwest::Client::new();

    let started = Instant::now();
    let mut projector = server.spawn_as("projector", Identity::Projector, &["projector"]);
    let last = lifecycle.clone().info().await?.state.last_sequence;
    testkit::poll(PROJECTION_TIMEOUT, POLL_INTERVAL, || async {
        match lifecycle.consumer_info(names::PROJECTOR_CONSUMER).await {
            Ok(info) if info.ack_floor.stream_sequence >= last => Ok(()),
            Ok(info) => Err(format!("acked through {}", info.ack_floor.stream_sequence)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|seen| anyhow::anyhow!("the projector has not projected the log: {seen}"))?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "  a projector from the log's start: projected its {last} messages in {took:.1} s \
         ({:.0} messages/s)",
        last as f64 / took
    );

    projector.kill();
    let restarted = Instant::now();
    let mut projector = server.spawn_as("projector", Identity::Projector, &["projector"]);
    projector
        .wait_for_log("Projector running.", START_TIMEOUT)
        .await;
    let running = restarted.elapsed();
    let id = vnf_id(vnfs);
    let create = history(vnfs, &id, CREATE_MESSAGES).swap_remove(0);
    jetstream
        .publish(names::vnf_subject(&id), payload(&id, create))
        .await?
        .await?;
    testkit::poll(START_TIMEOUT, QUICK_POLL_INTERVAL, || async {
        match tables.vnfs.get(&id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("no row".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|seen| anyhow::anyhow!("the restarted projector has not projected a VNF: {seen}"))?;
    println!(
        "  projector restarted (kill -9): running after {:.2} s, a VNF created then projected \
         after {:.2} s (goal <= 5 s)",
        running.as_secs_f64(),
        restarted.elapsed().as_secs_f64()
    );
    drop(projector);

    let (gateway, listening) = timed_gateway(server, &http, Some(&vnf_id(0))).await?;
    let rss = rss_bytes(gateway.pid());
    println!(
        "  gateway on the tables and VDU states of {} VNFs: listening after {:.2} s; RSS {:.1} \
         MB against {:.1} MB on empty ones: {:.2} KiB per VNF (goal <= 2)",
        vnfs + 1,
        listening.as_secs_f64(),
        rss as f64 / 1e6,
        empty_gateway_rss as f64 / 1e6,
        rss.saturating_sub(empty_gateway_rss) as f64 / 1024.0 / (vnfs + 1) as f64
    );
    Ok(())
}

/// Starts a gateway; answers it and how long it took to listen, having printed how long until
/// it answered a show of `show` (when given).
async fn timed_gateway(
    server: &NatsServer,
    http: &reqwest::Client,
    show: Option<&str>,
) -> anyhow::Result<(RoleProcess, Duration)> {
    let started = Instant::now();
    let mut gateway = server.spawn_as(
        "gateway",
        Identity::Gateway,
        &["gateway", "--listen", "127.0.0.1:0"],
    );
    let address = gateway.wait_for_listen_address(START_TIMEOUT).await;
    let listening = started.elapsed();
    if let Some(trimmed) = gateway
        .log()
        .lines()
        .find(|line| line.contains("free pages given back"))
    {
        println!("  gateway: {trimmed}");
    }
    if let Some(vnf_id) = show {
        let url = format!("http://{address}/v1.0/vnfs/{vnf_id}");
        testkit::poll(START_TIMEOUT, QUICK_POLL_INTERVAL, || async {
            match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(response.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .map_err(|seen| anyhow::anyhow!("the gateway does not answer a show: {seen}"))?;
        println!(
            "  gateway started: answers a show after {:.2} s (goal <= 5 s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok((gateway, listening))
}

/// Folds the whole lifecycle log as a monitor would and stores the fold as the monitors'
/// snapshot.
async fn fold_into_snapshot(server: &NatsServer) -> anyhow::Result<()> {
    let started = Instant::now();
    let jetstream = async_nats::jetstream::new(server.client().await);
    let lifecycle = jetstream.get_stream(names::LIFECYCLE_STREAM).await?;
    let mut fold = monitor::snapshot::Fold::default();
    let (skipped, through) =
        snapshot_store::fold_log(&lifecycle, 1, u64::MAX, &mut fold, |_, _| {}).await?;
    anyhow::ensure!(skipped == 0, "{skipped} lifecycle messages did not decode");
    let folded = started.elapsed();
    let snapshots = store::open_monitor_snapshots(&jetstream).await?;
    let written = snapshot_store::write(&snapshots, fold).await?;
    println!(
        "  the bench folded the log through sequence {through} in {:.1} s and stored the \
         snapshot in {:.1} s more: {written:?}",
        folded.as_secs_f64(),
        started.elapsed().saturating_sub(folded).as_secs_f64()
    );
    Ok(())
}

/// Starts a monitor with `flags` and prints the times until it holds `targets` targets and
/// until it has made as many attempts; answers the process and the first of the two times.
async fn timed_start(
    server: &NatsServer,
    label: &str,
    flags: &[&str],
    targets: usize,
) -> anyhow::Result<(RoleProcess, Duration)> {
    let http = reqwest::Client::new();
    let mut args = vec![
        "monitor",
        "--name",
        MONITOR,
        "--probe-cidrs",
        "127.128.0.0/9",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend(flags);
    let started = Instant::now();
    let mut monitor = server.spawn_as(MONITOR, Identity::Monitor, &args);
    let url = monitor.wait_for_metrics_url(START_TIMEOUT).await;
    let mut holds = None;
    loop {
        let page = scrape(&http, &url).await?;
        let held = page.total(telemetry::MONITOR_TARGETS);
        let attempts = page.total(telemetry::PROBE_ATTEMPTS);
        if holds.is_none() && held >= targets as f64 {
            holds = Some(started.elapsed());
        }
        if let Some(holds) = holds
            && attempts >= targets as f64
        {
            let resumed = monitor
                .log()
                .lines()
                .find(|line| line.contains("Resuming from the lifecycle snapshot"))
                .map(|line| format!("; {}", line.trim()))
                .unwrap_or_default();
            println!(
                "  {label}: holds {targets} targets after {:.2} s, has probed as many after \
                 {:.2} s{resumed}",
                holds.as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
            return Ok((monitor, holds));
        }
        anyhow::ensure!(
            started.elapsed() < START_TIMEOUT,
            "{label}: after {START_TIMEOUT:?} the monitor holds {held} targets and made \
             {attempts} attempts"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// How the snapshot the last starts begin from is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshotting {
    /// By a monitor that replayed the whole log (two replays from the start, timed).
    Replaying,
    /// By the bench, folding the log as `vnfm verify-snapshot` does: no replay is timed.
    Folding,
}

pub async fn monitor_cold_start(
    vnfs: usize,
    messages: usize,
    snapshotting: Snapshotting,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (CREATE_MESSAGES..=MESSAGES_PER_VNF_MAX).contains(&messages),
        "MESSAGES_PER_VNF must be {CREATE_MESSAGES}..={MESSAGES_PER_VNF_MAX}, got {messages}"
    );
    // A create is two messages and each cycle after it two more: an odd count cannot be met.
    anyhow::ensure!(
        messages.is_multiple_of(2),
        "MESSAGES_PER_VNF must be even (a create and each cycle are two messages), got {messages}"
    );
    // The server's default sync: the log's writing is not what is measured.
    let server = NatsServer::start_with(Durability::ServerDefault).await;
    let (written, last) = write_log(&server, vnfs, messages).await?;
    println!("monitor cold start on {written} messages, {vnfs} targets:");
    if snapshotting == Snapshotting::Folding {
        return from_folded_snapshot(&server, vnfs).await;
    }
    let (mut monitor, replay) = timed_start(&server, "without a snapshot", &[], vnfs).await?;
    monitor.kill();
    // Again, snapshotting once the replay is over (a fifth longer than it took the first
    // time, and some); until a snapshot covers the whole log.
    let interval_s = (replay.as_secs() * 6 / 5 + 5).to_string();
    let after_replay = [
        "--snapshot-interval-s",
        &interval_s,
        "--snapshot-messages-min",
        "1",
    ];
    let (mut monitor, _) = timed_start(
        &server,
        "without a snapshot, writing one after the replay",
        &after_replay,
        vnfs,
    )
    .await?;
    let reader = async_nats::jetstream::new(server.client_as(Identity::Reader).await);
    let snapshots = store::open_monitor_snapshots(&reader).await?;
    let since = Instant::now();
    while snapshot_store::stored_sequence(&snapshots).await? != Some(last) {
        anyhow::ensure!(
            since.elapsed() < START_TIMEOUT,
            "no snapshot of the whole log after {START_TIMEOUT:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    for line in monitor.log().lines().filter(|line| {
        line.contains("Lifecycle snapshot written.")
            || line.contains("Lifecycle fold handed to the snapshot writer.")
    }) {
        println!("    {}", line.trim());
    }
    monitor.kill();
    let (mut monitor, _) = timed_start(&server, "from the snapshot", &[], vnfs).await?;
    monitor.kill();
    println!("monitor cold start: goal <= 10 s to serve on 100,000 VNFs and 1,000,000 messages");
    Ok(())
}

/// The `--no-replay` starts: the bench folds the log into the snapshot, the monitor starts
/// from it twice, then the projector and the gateway start on the same log.
async fn from_folded_snapshot(server: &NatsServer, vnfs: usize) -> anyhow::Result<()> {
    // A gateway before any table or VDU state is written: the baseline of its memory.
    let (empty, _) = timed_gateway(server, &reqwest::Client::new(), None).await?;
    let empty_gateway_rss = rss_bytes(empty.pid());
    drop(empty);
    fold_into_snapshot(server).await?;
    // The first start finds the state bucket empty; the second, every VNF's states as the
    // first wrote them, as a monitor restarting in a running fleet does.
    let states =
        store::open_monitor_states(&async_nats::jetstream::new(server.client().await)).await?;
    let (mut monitor, _) =
        timed_start(server, "from the snapshot, no states recorded", &[], vnfs).await?;
    let since = Instant::now();
    testkit::poll(START_TIMEOUT, POLL_INTERVAL, || async {
        match states.stream.clone().info().await {
            Ok(info) if info.state.subjects_count >= vnfs as u64 => Ok(()),
            Ok(info) => Err(format!("{} VNFs' states", info.state.subjects_count)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|seen| anyhow::anyhow!("the state bucket is not full: {seen}"))?;
    println!(
        "  the state bucket holds all {vnfs} VNFs' states {:.1} s later",
        since.elapsed().as_secs_f64()
    );
    monitor.kill();
    let (mut monitor, _) = timed_start(server, "from the snapshot again", &[], vnfs).await?;
    monitor.kill();
    projector_and_gateway(server, vnfs, empty_gateway_rss).await?;
    println!("monitor cold start: goal <= 10 s to serve on 100,000 VNFs and 1,000,000 messages");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor::snapshot::{self, Fold};

    /// Issue 13's 100,000 VNFs of this bench's history fit in a snapshot a monitor reads.
    #[test]
    fn a_snapshot_of_the_benchs_fleet_fits_the_bound() {
        let vnfs = 1_000;
        let mut fold = Fold::default();
        let mut sequence = 0;
        for n in 0..vnfs {
            let id = format!("{n:08}-0000-0000-0000-000000000000");
            for events in history(n, &id, MESSAGES_PER_VNF_DEFAULT) {
                sequence += 1;
                fold.apply(sequence, &id, events);
            }
        }
        let bytes = snapshot::encode(&fold).unwrap().len();
        let per_vnf = bytes / vnfs;
        let fleet = per_vnf * VNFS_DEFAULT;
        println!("{per_vnf} bytes a VNF; {fleet} bytes for {VNFS_DEFAULT} VNFs");
        assert!(
            i64::try_from(fleet).unwrap() < events::setup::SNAPSHOT_BYTES_MAX,
            "{fleet} bytes"
        );
    }
}
