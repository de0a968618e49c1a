//! Issue 13: failures never share retention with telemetry, and nothing but their handling
//! removes them. Conductors are stopped while failures of real VNFs are reported and probe
//! rounds are written many times past the telemetry stream's bound; started again, they handle
//! every failure once, and the handled reports leave the failure stream (their copies stay in
//! the monitor stream).
//!
//! Made cheap for CI: the telemetry bound is set small for the test ([`TELEMETRY_BOUND_BYTES`],
//! the way `vnfm setup` sets it), the rounds are raw publishes of realistic round messages and
//! their rosters as the monitor identity, and the failures fall on [`VNFS`] VNFs whose VDU's policy is `log`
//! (each report a claim on the log, `FailureLogged`, with no VIM work), so that the test pays
//! for a handful of namespaces, not one per failure. It reports the issue's [`FAILURES`] =
//! 2,000, 100 per VNF: many more than what a VNF remembers as handled
//! (`HANDLED_FAILURES_MAX`, 16). The claims are what costs here: each is a command on a VNF
//! whose history grows with every claim, which the event store's kept folds read only the tail
//! of (25 s for the whole test on the 2-core machine under a load of 7; 57 s before the folds).

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::net::Ipv4Addr;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use events::envelope::{Actor, ActorKind};
use events::monitor::{
    Failure, MonitorEvent, MonitorMessage, ProbeOutcome, ProbeResult, TargetRef, rounds,
};
use events::names::{self, headers};
use events::read::StreamRead;
use events::setup::{self, LogConfig};
use events::spec::PolicyAction;
use events::vnf::VnfEvent;
use futures::future::try_join_all;
use testkit::{Identity, eventually_every};
use time::OffsetDateTime;
use vnfm_tests::{System, monitored_vnfd};

/// The telemetry stream's bound for this test (the default is 1 GiB).
const TELEMETRY_BOUND_BYTES: usize = 8 * 1024 * 1024;
/// Telemetry written in all: the 100 MB, twelve times the bound.
const TELEMETRY_WRITTEN_BYTES: usize = 100 * 1000 * 1000;
/// Telemetry written before the first failure report: twice the bound, so that its eviction
/// shows on the stream's first sequence.
const TELEMETRY_BEFORE_BYTES: usize = 2 * TELEMETRY_BOUND_BYTES;
/// Failure reports: the count.
const FAILURES: usize = 2_000;
/// The VNFs they fall on: few enough to deploy in seconds on the local VIM, 100 reports each.
const VNFS: usize = 20;
/// Failure reports sent at once, between two writes of telemetry.
const REPORTS_BETWEEN_ROUNDS: usize = 20;
/// Results in one round message: a monitor with a thousand targets in one tick.
const RESULTS_PER_ROUND: usize = 1_000;
/// Telemetry messages in flight at once while the test writes telemetry.
const ROUNDS_IN_FLIGHT: usize = 16;
/// How long the restarted conductors may take to claim every failure: 2,000 appends.
const HANDLED_PATIENCE: Duration = Duration::from_secs(120);
/// Pause between two looks at the heal consumer.
const COUNT_INTERVAL: Duration = Duration::from_millis(250);

/// How many of the failure reports `reported` (by id) `stream` holds.
async fn reports_held(stream: &jetstream::stream::Stream, reported: &[String]) -> usize {
    let mut held = 0;
    let mut read = StreamRead::open(stream, names::FAILURE_SUBJECTS, 1)
        .await
        .unwrap();
    while let Some(stored) = read.next().await.unwrap() {
        if let Ok(MonitorMessage {
            event: MonitorEvent::Failure(report),
            ..
        }) = serde_json::from_slice(&stored.payload)
        {
            held += usize::from(reported.contains(&report.failure_id));
        }
    }
    held
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A round message as a monitor publishes it, after its roster: `RESULTS_PER_ROUND` targets,
/// all up. Both are written again and again, a roster with every round: what a monitor whose
/// targets change every round writes, the heaviest telemetry there is (at steady state a
/// monitor's rounds differ in their times alone and the roster goes out once in
/// `ROSTER_REPUBLISH_ROUNDS`).
fn telemetry_messages() -> Vec<(String, bytes::Bytes)> {
    let results = (0..RESULTS_PER_ROUND)
        .map(|i| {
            let host = u32::try_from(i).unwrap();
            ProbeResult {
                target: TargetRef {
                    vnf_id: uuid::Uuid::new_v4().to_string(),
                    vdu: "VDU1".into(),
                    instance_id: uuid::Uuid::new_v4().to_string(),
                    mgmt_ip: Ipv4Addr::from(0x7f00_0000 | host),
                    action_id: uuid::Uuid::new_v4().to_string(),
                },
                outcome: ProbeOutcome::Up { rtt_us: 180 },
                at: now(),
            }
        })
        .collect();
    let monitor = Actor::new(ActorKind::Monitor, "telemetry-writer");
    let (roster, packed) = rounds::pack_results(results).unwrap().remove(0);
    let encode =
        |event| bytes::Bytes::from(serde_json::to_vec(&MonitorMessage::new(event)).unwrap());
    vec![
        (
            names::roster_subject(&monitor.id, &roster.digest),
            encode(MonitorEvent::Roster {
                monitor: monitor.clone(),
                roster,
            }),
        ),
        (
            names::round_subject(&monitor.id),
            encode(MonitorEvent::Round {
                monitor,
                at: now(),
                targets: RESULTS_PER_ROUND,
                packed,
            }),
        ),
    ]
}

/// Writes at least `bytes` of `messages` (in turn) as the monitor; answers the bytes written
/// and the telemetry stream's last sequence.
async fn write_telemetry(
    monitor: &jetstream::Context,
    messages: &[(String, bytes::Bytes)],
    bytes: usize,
) -> (usize, u64) {
    let mut written = 0;
    let mut last = 0;
    let mut next = 0;
    while written < bytes {
        let mut acks = Vec::with_capacity(ROUNDS_IN_FLIGHT);
        while acks.len() < ROUNDS_IN_FLIGHT && written < bytes {
            let (subject, payload) = &messages[next % messages.len()];
            next += 1;
            written += payload.len();
            let sent = monitor.publish(subject.clone(), payload.clone()).await;
            acks.push(sent.expect("a telemetry message sent").into_future());
        }
        for ack in try_join_all(acks).await.expect("telemetry messages stored") {
            assert_eq!(ack.stream, names::TELEMETRY_STREAM, "telemetry's stream");
            last = last.max(ack.sequence);
        }
    }
    (written, last)
}

/// The failure report `failure_id` of the VNF's single instance, as a monitor sends it.
fn failure(system_vnf: &events::vnf::Vnf, vnf_id: &str, failure_id: String) -> Failure {
    let instance = &system_vnf.instances[0];
    Failure {
        failure_id,
        monitor: Actor::new(ActorKind::Monitor, "telemetry-writer"),
        target: TargetRef {
            vnf_id: vnf_id.to_owned(),
            vdu: instance.vdu.clone(),
            instance_id: instance.instance_id.clone(),
            mgmt_ip: instance.mgmt_ip,
            action_id: system_vnf.action_id.clone().expect("a monitored VNF"),
        },
        action: PolicyAction::Log,
        attempts: 2,
        reason: "no answer to 2 pings".into(),
        detected_at: now(),
    }
}

/// How many times each failure id is claimed (`FailureLogged`) on the VNFs' subjects.
async fn claims(system: &System, vnf_ids: &[String]) -> BTreeMap<String, usize> {
    let mut claimed = BTreeMap::new();
    for vnf_id in vnf_ids {
        for recorded in system.history(vnf_id).await {
            for event in &recorded.envelope.events {
                if let VnfEvent::FailureLogged { failure } = event {
                    *claimed.entry(failure.failure_id.clone()).or_insert(0) += 1;
                }
            }
        }
    }
    claimed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_reported_while_conductors_are_down_survive_telemetry_and_are_handled_once() {
    let started = std::time::Instant::now();
    let system = System::start_separate().await;
    // The telemetry bound set where the streams are set up, as the admin.
    let admin = jetstream::new(system.nats.client_as(Identity::Admin).await);
    setup::provision(
        &admin,
        &LogConfig {
            telemetry_bytes_max: i64::try_from(TELEMETRY_BOUND_BYTES).unwrap(),
            ..LogConfig::default()
        },
    )
    .await
    .expect("the telemetry bound set");

    let mut first = system.spawn_conductor("conductor-1", &[]).await;
    let vnf_ids = system
        .active_vnfs(&monitored_vnfd("ping", "log", false), VNFS)
        .await;
    let mut vnfs = Vec::new();
    for vnf_id in &vnf_ids {
        vnfs.push((vnf_id.clone(), system.vnf(vnf_id).await));
    }
    println!("{VNFS} VNFs active after {:?}", started.elapsed());
    // The heal consumer exists (the conductor made it); now nobody consumes it.
    first.terminate();
    first.wait_exit(Duration::from_secs(30)).await;

    let monitor = jetstream::new(system.nats.client_as(Identity::Monitor).await);
    let telemetry = telemetry_messages();
    let (before, last_before) = write_telemetry(&monitor, &telemetry, TELEMETRY_BEFORE_BYTES).await;
    let mut written = before;
    let mut reported = Vec::with_capacity(FAILURES);
    let telemetry_between = (TELEMETRY_WRITTEN_BYTES - before) / FAILURES * REPORTS_BETWEEN_ROUNDS;
    for batch in (0..FAILURES)
        .collect::<Vec<_>>()
        .chunks(REPORTS_BETWEEN_ROUNDS)
    {
        let mut acks = Vec::with_capacity(batch.len());
        for &n in batch {
            let (vnf_id, vnf) = &vnfs[n % VNFS];
            let report = failure(vnf, vnf_id, format!("failure-{n}"));
            let mut message_id = HeaderMap::new();
            message_id.insert(headers::MSG_ID, report.failure_id.as_str());
            reported.push(report.failure_id.clone());
            let payload =
                serde_json::to_vec(&MonitorMessage::new(MonitorEvent::Failure(report))).unwrap();
            let sent = monitor
                .publish_with_headers(names::failure_subject(vnf_id), message_id, payload.into())
                .await;
            acks.push(sent.expect("a failure report sent").into_future());
        }
        for ack in try_join_all(acks).await.expect("failure reports stored") {
            assert_eq!(
                ack.stream,
                names::FAILURE_STREAM,
                "a failure report's stream"
            );
        }
        // Telemetry keeps flowing between the reports.
        written += write_telemetry(&monitor, &telemetry, telemetry_between)
            .await
            .0;
    }
    if written < TELEMETRY_WRITTEN_BYTES {
        written += write_telemetry(&monitor, &telemetry, TELEMETRY_WRITTEN_BYTES - written)
            .await
            .0;
    }

    println!(
        "reports and telemetry written after {:?}",
        started.elapsed()
    );
    let mut telemetry = system
        .log
        .jetstream()
        .get_stream(names::TELEMETRY_STREAM)
        .await
        .unwrap();
    let state = telemetry.info().await.unwrap().state.clone();
    println!(
        "telemetry: {written} bytes written, bound {TELEMETRY_BOUND_BYTES}; the stream holds \
         {} bytes, sequences {}..={}; the last round before the failures was {last_before}",
        state.bytes, state.first_sequence, state.last_sequence
    );
    assert!(
        written >= 4 * TELEMETRY_BOUND_BYTES,
        "telemetry written several times past its bound"
    );
    assert!(
        state.bytes <= u64::try_from(TELEMETRY_BOUND_BYTES).unwrap(),
        "the telemetry stream keeps to its bound"
    );
    assert!(
        state.first_sequence > last_before,
        "every round written before the failures was evicted"
    );
    let jetstream = system.log.jetstream();
    let failure_stream = jetstream.get_stream(names::FAILURE_STREAM).await.unwrap();
    let monitor_stream = jetstream.get_stream(names::MONITOR_STREAM).await.unwrap();
    assert_eq!(
        reports_held(&failure_stream, &reported).await,
        FAILURES,
        "every failure report waits in the failure stream"
    );

    // Conductors started again handle every failure, each once.
    let restarted = [
        system.spawn_conductor("conductor-2", &[]).await,
        system.spawn_conductor("conductor-3", &[]).await,
    ];
    // Every report acked (a conductor acks once it has claimed and carried out the action):
    // nothing left to deliver or redeliver.
    eventually_every(
        "the heal consumer drained",
        HANDLED_PATIENCE,
        COUNT_INTERVAL,
        || async {
            let mut consumer = failure_stream
                .get_consumer::<jetstream::consumer::pull::Config>(names::HEAL_CONSUMER)
                .await
                .map_err(|e| e.to_string())?;
            let info = consumer.info().await.map_err(|e| e.to_string())?;
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{} pending, {} unacked",
                    info.num_pending, info.num_ack_pending
                ))
            }
        },
    )
    .await;
    println!("every failure handled after {:?}", started.elapsed());
    // Handled, they leave the failure stream; their copies stay in the monitor stream for the
    // audit.
    eventually_every(
        "the handled reports leave the failure stream",
        HANDLED_PATIENCE,
        COUNT_INTERVAL,
        || async {
            match reports_held(&failure_stream, &reported).await {
                0 => Ok(()),
                held => Err(format!("{held} held")),
            }
        },
    )
    .await;
    assert_eq!(
        reports_held(&monitor_stream, &reported).await,
        FAILURES,
        "every failure report's copy is in the monitor stream"
    );
    let claimed = claims(&system, &vnf_ids).await;
    let twice: Vec<_> = claimed.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "claimed more than once: {twice:?}");
    let mut expected = reported;
    expected.sort();
    assert_eq!(
        claimed.into_keys().collect::<Vec<_>>(),
        expected,
        "every failure reported is claimed, and nothing else"
    );
    drop(restarted);
}
