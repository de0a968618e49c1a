//! The NATS shell against a real nats-server (testkit), with a scripted probe: undecodable
//! messages are skipped and counted while probing goes on, seeds round-trip through the state
//! bucket, and a monitor whose NATS is gone stops within its drain deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use events::fixtures;
use events::monitor::{InstanceMonitorState, MonitorEvent, MonitorMessage};
use events::store::EventLog;
use events::vnf::{Vnf, VnfEvent};
use testkit::NatsServer;

use super::*;
use crate::snapshot::Schedule;
use crate::testing::{
    BOOTED_AT, OUTSIDE, ScriptedProbe, created, created_at, instance_id, ip, probe_cidrs,
};

/// How long a test waits for what a live monitor should do within a few rounds.
const WAIT: Duration = Duration::from_secs(15);

/// Waits until `count()` has reached `wanted`.
async fn counted<N>(what: &str, wanted: N, count: impl Fn() -> N)
where
    N: PartialOrd + std::fmt::Display,
{
    testkit::eventually(what, WAIT, || async {
        let seen = count();
        if seen >= wanted {
            Ok(())
        } else {
            Err(format!("{seen} so far"))
        }
    })
    .await;
}

async fn create(log: &EventLog, vnf_id: &str, vnf: u8) {
    let events = created(vnf_id, vnf, 1, &format!("a-{vnf_id}"));
    log.append::<Vnf>(vnf_id, 0, &fixtures::user(), events)
        .await
        .unwrap();
}

/// A monitor on `server` with a scripted probe, stopped by sending on the answer's sender.
struct Started {
    probe: Arc<ScriptedProbe>,
    skips: Arc<Skips>,
    shutdown: oneshot::Sender<()>,
    running: tokio::task::JoinHandle<Result<(), MonitorError>>,
}

fn start(log: &EventLog, drain: Duration) -> Started {
    let config = MonitorConfig {
        instance: "m1".into(),
        probe_cidrs: probe_cidrs(),
        ..MonitorConfig::default()
    };
    start_with(log, drain, config)
}

fn start_with(log: &EventLog, drain: Duration, config: MonitorConfig) -> Started {
    let probe = Arc::new(ScriptedProbe::default());
    let monitor = Monitor::new(log.clone(), probe.clone(), config).with_drain_deadline(drain);
    let skips = monitor.skips();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    Started {
        probe,
        skips,
        shutdown,
        running,
    }
}

#[tokio::test]
async fn undecodable_messages_are_skipped_and_counted_while_probing_goes_on() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    create(&log, "vnf-1", 1).await;
    let jetstream = log.jetstream().clone();
    let states = store::open_monitor_states(&jetstream).await.unwrap();
    states.put("vnf-2", "not json".into()).await.unwrap();
    let started = start(&log, DRAIN_DEADLINE);
    let probe = started.probe.clone();
    counted("vnf-1 is probed", 1, || probe.count(ip(1, 0))).await;

    // Garbage, an unknown event type and a future schema on vnf-1's subject, by a plain client.
    let subject = names::vnf_subject("vnf-1");
    let stored = log
        .stream()
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap();
    let valid: serde_json::Value = serde_json::from_slice(&stored.payload).unwrap();
    let mut unknown_type = valid.clone();
    unknown_type["events"][0]["type"] = "FromTheFuture".into();
    let mut future_schema = valid.clone();
    future_schema["schema_version"] = 999.into();
    for payload in [
        b"\x00garbage{".to_vec(),
        serde_json::to_vec(&unknown_type).unwrap(),
        serde_json::to_vec(&future_schema).unwrap(),
    ] {
        jetstream
            .publish(subject.clone(), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    jetstream
        .client()
        .publish(names::bad_action_subject("vnf-1"), "garbage".into())
        .await
        .unwrap();
    // A VNF created after the garbage is followed; its undecodable states count as none.
    create(&log, "vnf-2", 2).await;

    let skips = started.skips.clone();
    counted("three lifecycle messages are skipped", 3, || {
        skips.lifecycle.load(Ordering::Relaxed)
    })
    .await;
    counted("the bad_action message is skipped", 1, || {
        skips.bad_actions.load(Ordering::Relaxed)
    })
    .await;
    let before = probe.count(ip(1, 0));
    counted("vnf-1 is still probed", before + 2, || {
        probe.count(ip(1, 0))
    })
    .await;
    counted("vnf-2 is probed", 2, || probe.count(ip(2, 0))).await;
    assert_eq!(skips.lifecycle.load(Ordering::Relaxed), 3);
    assert_eq!(skips.bad_actions.load(Ordering::Relaxed), 1);
    assert_eq!(skips.states.load(Ordering::Relaxed), 1);
    assert!(!started.running.is_finished(), "the monitor runs on");
    started.shutdown.send(()).unwrap();
    started.running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_reported_episode_round_trips_through_the_state_bucket() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let jetstream = log.jetstream().clone();
    let states = store::open_monitor_states(&jetstream).await.unwrap();
    let sink = NatsSink {
        jetstream,
        states: states.clone(),
    };
    let down = InstanceMonitorState {
        vdu: "VDU1".into(),
        mgmt_ip: ip(1, 0),
        state: "down".into(),
        since: Some(BOOTED_AT),
        last_result: None,
        last_probed_at: Some(BOOTED_AT),
        monitor: "m0".into(),
    };
    let up = InstanceMonitorState {
        state: "up".into(),
        mgmt_ip: ip(1, 1),
        ..down.clone()
    };
    let recorded = BTreeMap::from([
        (instance_id("vnf-1", 0), down),
        (instance_id("vnf-1", 1), up),
    ]);
    publisher::put_state(&sink, "vnf-1", &recorded)
        .await
        .unwrap();
    let seeds = BucketSeeds {
        states,
        skips: Arc::default(),
    };
    let read = seeds.read(vec!["vnf-1".into(), "vnf-9".into()]).await;
    let seed = |vnf_id: &str| read.iter().find(|seed| seed.vnf_id == vnf_id).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(seed("vnf-1").down, [(instance_id("vnf-1", 0), BOOTED_AT)]);
    assert!(seed("vnf-9").down.is_empty());
}

/// The seeds of `vnf_ids`, sorted by VNF id.
async fn sorted_seeds(seeds: &BucketSeeds, vnf_ids: Vec<String>) -> Vec<Seed> {
    let mut read = seeds.read(vnf_ids).await;
    read.sort_by(|a, b| a.vnf_id.cmp(&b.vnf_id));
    read
}

#[tokio::test]
async fn a_large_batch_of_seeds_is_read_in_one_pass_as_one_by_one() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let states = store::open_monitor_states(log.jetstream()).await.unwrap();
    let vnf_id = |n: usize| format!("vnf-{n:04}");
    // 300 VNFs recorded: every third down since its own time, one undecodable, one deleted;
    // 40 asked for that were never recorded.
    for n in 0..300 {
        let since = BOOTED_AT + Duration::from_secs(u64::try_from(n).unwrap());
        let state = InstanceMonitorState {
            vdu: "VDU1".into(),
            mgmt_ip: ip(1, 0),
            state: if n % 3 == 0 { "down" } else { "up" }.into(),
            since: Some(since),
            last_result: None,
            last_probed_at: Some(since),
            monitor: "m0".into(),
        };
        let recorded = BTreeMap::from([(instance_id(&vnf_id(n), 0), state)]);
        states
            .put(vnf_id(n), serde_json::to_vec(&recorded).unwrap().into())
            .await
            .unwrap();
    }
    states.put(vnf_id(7), "not json".into()).await.unwrap();
    states.delete(vnf_id(9)).await.unwrap();
    let asked: Vec<String> = (0..340).map(vnf_id).collect();
    assert!(asked.len() >= SEEDS_BULK_MIN);

    let skips = Arc::new(Skips::default());
    let seeds = BucketSeeds {
        states,
        skips: skips.clone(),
    };
    let bulk = sorted_seeds(&seeds, asked.clone()).await;
    assert_eq!(
        skips.states.load(Ordering::Relaxed),
        1,
        "the undecodable entry"
    );
    let mut one_by_one = Vec::new();
    for vnf_id in &asked {
        one_by_one.extend(sorted_seeds(&seeds, vec![vnf_id.clone()]).await);
    }
    assert_eq!(bulk, one_by_one);
    assert_eq!(bulk.len(), 340);
    let down: Vec<&str> = bulk
        .iter()
        .filter(|seed| !seed.down.is_empty())
        .map(|seed| seed.vnf_id.as_str())
        .collect();
    // Every third of the 300, less the deleted vnf-0009.
    assert_eq!(down.len(), 99, "{down:?}");
    assert!(!down.contains(&"vnf-0009"));
    assert_eq!(
        bulk[3].down,
        [(
            instance_id(&vnf_id(3), 0),
            BOOTED_AT + Duration::from_secs(3)
        )]
    );
}

#[tokio::test]
async fn a_monitor_whose_nats_is_gone_stops_within_its_drain_deadline() {
    let mut server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    create(&log, "vnf-1", 1).await;
    let drain = Duration::from_secs(2);
    let started = start(&log, drain);
    let probe = started.probe.clone();
    counted("vnf-1 is probed", 1, || probe.count(ip(1, 0))).await;
    server.kill();
    // Rounds keep coming while nothing can be stored.
    let before = probe.count(ip(1, 0));
    counted("vnf-1 is probed after the kill", before + 2, || {
        probe.count(ip(1, 0))
    })
    .await;
    let stopping = Instant::now();
    started.shutdown.send(()).unwrap();
    started.running.await.unwrap().unwrap();
    let took = stopping.elapsed();
    assert!(
        took < drain + Duration::from_secs(1),
        "stopped after {took:?}"
    );
}

/// A plain subscription to `subject`, in place once this returns.
async fn subscribe(log: &EventLog, subject: String) -> async_nats::Subscriber {
    let client = log.jetstream().client();
    let subscription = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    subscription
}

/// Waits for the next message of `subscription` and decodes it.
async fn next_event(subscription: &mut async_nats::Subscriber, what: &str) -> MonitorEvent {
    let message = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap_or_else(|_| panic!("{what} never came"))
        .expect("the subscription is open");
    serde_json::from_slice::<MonitorMessage>(&message.payload)
        .expect("a monitor message")
        .event
}

#[tokio::test]
async fn a_management_ip_outside_the_probe_ranges_is_reported_once_and_never_probed() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let subject = names::refused_target_subject("vnf-9");
    let mut refusals = subscribe(&log, subject.clone()).await;
    create(&log, "vnf-1", 1).await;
    let forged = created_at("vnf-9", &[OUTSIDE], "a-vnf-9");
    log.append::<Vnf>("vnf-9", 0, &fixtures::user(), forged)
        .await
        .unwrap();

    let started = start(&log, DRAIN_DEADLINE);
    let MonitorEvent::TargetRefused {
        monitor,
        target,
        allowed,
        ..
    } = next_event(&mut refusals, "the refusal").await
    else {
        panic!("not a refusal");
    };
    assert_eq!(
        (monitor.id.as_str(), target.vnf_id.as_str(), target.mgmt_ip),
        ("m1", "vnf-9", OUTSIDE)
    );
    assert_eq!(allowed, probe_cidrs());
    let probe = started.probe.clone();
    let before = probe.count(ip(1, 0));
    counted("vnf-1 is probed for three more rounds", before + 3, || {
        probe.count(ip(1, 0))
    })
    .await;
    assert_eq!(probe.count(OUTSIDE), 0, "never probed");
    assert!(
        refusals.next().now_or_never().is_none(),
        "reported once, not every round"
    );
    started.shutdown.send(()).unwrap();
    started.running.await.unwrap().unwrap();

    // The same monitor restarted reports it again; the stream stores it once.
    let restarted = start(&log, DRAIN_DEADLINE);
    next_event(&mut refusals, "the restarted monitor's refusal").await;
    let stream = log
        .jetstream()
        .get_stream(names::MONITOR_STREAM)
        .await
        .unwrap();
    let stored = events::read::subject(&log.jetstream().client(), &stream, &subject)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "one message per refused target");
    assert_eq!(restarted.probe.count(OUTSIDE), 0);
    restarted.shutdown.send(()).unwrap();
    restarted.running.await.unwrap().unwrap();
}

/// How often the intruder rewrites every lease: well inside the leases' TTL, as the attack
/// on an unprotected bus did.
const INTRUDER_REFRESH: Duration = Duration::from_millis(500);

#[tokio::test]
async fn a_monitor_whose_partitions_are_all_leased_to_an_intruder_says_so_until_it_holds_one() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    create(&log, "vnf-1", 1).await;
    let mut suspects = subscribe(&log, names::suspect_subject("m1")).await;
    // An intruder with write access to the lease bucket leases every partition to itself,
    // with plain puts, faster than the leases expire, until told to stop.
    let leases = share::open_leases(log.jetstream()).await.unwrap();
    let (stop_intruder, mut intruder_stopped) = watch::channel(false);
    let (leased, all_leased) = oneshot::channel();
    let intruder = tokio::spawn(async move {
        let mut leased = Some(leased);
        loop {
            for partition in 0..share::PARTITIONS {
                leases
                    .put(share::lease_key(partition), "intruder".into())
                    .await
                    .unwrap();
            }
            if let Some(leased) = leased.take() {
                let _ = leased.send(());
            }
            tokio::select! {
                () = tokio::time::sleep(INTRUDER_REFRESH) => {}
                _ = intruder_stopped.wait_for(|stopped| *stopped) => return,
            }
        }
    });
    all_leased.await.unwrap();

    let started = start(&log, DRAIN_DEADLINE);
    for alarm in 1..=3 {
        let event = next_event(&mut suspects, "the starvation alarm").await;
        assert!(
            matches!(
                event,
                MonitorEvent::Starved {
                    members: 1,
                    held_by_members: 0,
                    held_by_unknown: 64,
                    ..
                }
            ),
            "alarm {alarm}: {event:?}"
        );
    }
    assert_eq!(started.probe.count(ip(1, 0)), 0, "nothing is probed");

    stop_intruder.send_replace(true);
    intruder.await.unwrap();
    let probe = started.probe.clone();
    counted("vnf-1 is probed once the leases expire", 1, || {
        probe.count(ip(1, 0))
    })
    .await;
    let holding_since = time::OffsetDateTime::now_utc();
    counted("vnf-1 is probed for two more rounds", 3, || {
        probe.count(ip(1, 0))
    })
    .await;
    while let Some(message) = suspects.next().now_or_never().flatten() {
        let event = serde_json::from_slice::<MonitorMessage>(&message.payload)
            .unwrap()
            .event;
        if let MonitorEvent::Starved { at, .. } = event {
            assert!(
                at < holding_since,
                "an alarm at {at} after probing began at {holding_since}"
            );
        }
    }
    started.shutdown.send(()).unwrap();
    started.running.await.unwrap().unwrap();
}

/// A failure stream's bound in the test below: room for a few failure reports.
const FULL_STREAM_BYTES: i64 = 4096;

/// A failure report numbered `n`, as the judge makes one.
fn failure_report(n: usize) -> Publish {
    use events::envelope::{Actor, ActorKind};
    use events::monitor::{Failure, TargetRef};
    let failure = Failure {
        failure_id: format!("failure-{n}"),
        monitor: Actor::new(ActorKind::Monitor, "m1"),
        target: TargetRef {
            vnf_id: "vnf-1".into(),
            vdu: "VDU1".into(),
            instance_id: instance_id("vnf-1", 0),
            mgmt_ip: ip(1, 0),
            action_id: "a1".into(),
        },
        action: events::spec::PolicyAction::Respawn,
        attempts: 2,
        reason: "no reply".into(),
        detected_at: BOOTED_AT,
    };
    Publish::Message {
        subject: names::failure_subject("vnf-1"),
        message: Box::new(MonitorMessage::new(MonitorEvent::Failure(failure))),
        message_id: Some(format!("failure-{n}")),
    }
}

/// Nothing but handling removes a failure report: when the failure stream is full every report
/// in it stays, a new one is refused with an error the publisher retries (not one it gives up
/// on), and it is stored once the stream has room again.
#[tokio::test]
async fn a_full_failure_stream_keeps_every_report_and_a_new_one_waits_for_room() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let jetstream = log.jetstream().clone();
    let mut stream = jetstream.get_stream(names::FAILURE_STREAM).await.unwrap();
    let provisioned = stream.info().await.unwrap().config.clone();
    assert_eq!(provisioned.discard, jetstream::stream::DiscardPolicy::New);
    jetstream
        .update_stream(jetstream::stream::Config {
            max_bytes: FULL_STREAM_BYTES,
            ..provisioned.clone()
        })
        .await
        .unwrap();
    let sink = NatsSink {
        jetstream: jetstream.clone(),
        states: store::open_monitor_states(&jetstream).await.unwrap(),
    };
    let mut stored = 0;
    let refusal = loop {
        let Publish::Message {
            subject,
            message,
            message_id,
        } = failure_report(stored)
        else {
            unreachable!("a report is a message")
        };
        let payload = publisher::encode(&message).unwrap();
        match sink.publish(&subject, payload, message_id.as_deref()).await {
            Ok(()) => stored += 1,
            Err(refused) => break refused,
        }
        assert!(
            stored < 100,
            "a {FULL_STREAM_BYTES}-byte stream took {stored} reports"
        );
    };
    assert!(stored > 0, "room for one report at least");
    assert!(!publisher::is_permanent(&refusal), "{refusal}");
    assert!(refusal.to_string().contains("maximum bytes"), "{refusal}");
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!(
        (state.first_sequence, state.messages),
        (1, stored as u64),
        "nothing evicted"
    );

    // The publisher retries the refused report until the stream has room (an operator raised
    // the bound again).
    let (outbox, inbox) = mpsc::channel(1);
    let (_stop, stopped) = watch::channel(false);
    let publishing = tokio::spawn(publisher::run(sink, inbox, stopped, DRAIN_DEADLINE));
    outbox.send(failure_report(stored)).await.unwrap();
    // Long enough for a few attempts (200 ms, then doubling).
    tokio::time::sleep(publisher::RETRY_DELAY_FIRST * 4).await;
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        stored as u64,
        "refused while full"
    );
    jetstream.update_stream(provisioned).await.unwrap();
    testkit::eventually("the waiting report stored", WAIT, || async {
        let messages = jetstream
            .get_stream(names::FAILURE_STREAM)
            .await
            .map_err(|e| e.to_string())?
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .messages;
        if messages == stored as u64 + 1 {
            Ok(())
        } else {
            Err(format!("{messages} messages"))
        }
    })
    .await;
    drop(outbox);
    let undelivered = publishing.await.unwrap();
    assert!(undelivered.is_empty(), "{undelivered:?}");
}

#[tokio::test]
async fn a_restarted_monitor_resumes_from_its_snapshot_and_one_refused_costs_a_full_replay() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    create(&log, "vnf-1", 1).await;
    create(&log, "vnf-2", 2).await;
    let config = MonitorConfig {
        instance: "m1".into(),
        probe_cidrs: probe_cidrs(),
        snapshots: Schedule {
            interval: Duration::from_secs(1),
            messages_min: 1,
        },
        ..MonitorConfig::default()
    };
    let started = start_with(&log, DRAIN_DEADLINE, config.clone());
    let snapshots = store::open_monitor_snapshots(log.jetstream())
        .await
        .unwrap();
    let written = testkit::eventually("a snapshot of both VNFs", WAIT, || async {
        match snapshot_store::read(&snapshots, log.stream()).await {
            Ok(Some(fold)) if fold.vnfs.len() == 2 => Ok(fold),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    started.shutdown.send(()).unwrap();
    started.running.await.unwrap().unwrap();

    // After the snapshot: a VNF created, one deleted.
    create(&log, "vnf-3", 3).await;
    let delete = vec![
        VnfEvent::DeleteRequested {
            operation_id: "delete".into(),
        },
        VnfEvent::Deleted {
            operation_id: "delete".into(),
        },
    ];
    log.append::<Vnf>("vnf-1", 1, &fixtures::user(), delete)
        .await
        .unwrap();
    let verification = snapshot_store::verify(&snapshots, log.stream())
        .await
        .unwrap()
        .expect("a snapshot");
    assert!(verification.matches(), "{verification:?}");
    assert_eq!(verification.sequence, written.sequence);
    assert_eq!(verification.at_snapshot.vnfs, 2);
    assert_eq!(verification.end, 4);

    let restarted = start_with(&log, DRAIN_DEADLINE, config.clone());
    let probe = restarted.probe.clone();
    counted("vnf-2 is probed", 2, || probe.count(ip(2, 0))).await;
    counted("vnf-3 is probed", 2, || probe.count(ip(3, 0))).await;
    assert_eq!(probe.count(ip(1, 0)), 0, "the deleted VNF is not probed");
    restarted.shutdown.send(()).unwrap();
    restarted.running.await.unwrap().unwrap();

    // A snapshot that is not one: refused, and the whole log replayed.
    let mut garbage: &[u8] = b"\x00garbage{";
    snapshots
        .put(names::MONITOR_SNAPSHOT_OBJECT, &mut garbage)
        .await
        .unwrap();
    let refused = snapshot_store::read(&snapshots, log.stream()).await;
    assert!(
        matches!(refused, Err(snapshot_store::SnapshotIoError::Refused(_))),
        "{refused:?}"
    );
    let replayed = start_with(
        &log,
        DRAIN_DEADLINE,
        MonitorConfig {
            snapshots: Schedule::default(),
            ..config
        },
    );
    let probe = replayed.probe.clone();
    counted("vnf-2 is probed", 2, || probe.count(ip(2, 0))).await;
    counted("vnf-3 is probed", 2, || probe.count(ip(3, 0))).await;
    assert_eq!(probe.count(ip(1, 0)), 0, "the deleted VNF is not probed");
    replayed.shutdown.send(()).unwrap();
    replayed.running.await.unwrap().unwrap();
}
