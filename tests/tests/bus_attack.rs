//! Issue 10's attack sequence, which worked against an unauthenticated bus, replayed against a
//! whole vnfm whose roles each run as their own identity: every attack tried as every
//! identity, as far as each gets. Afterwards every VNF is still there and a failed VDU is still
//! healed.

use std::time::Duration;

use async_nats::HeaderMap;
use events::envelope::{Actor, ActorKind, Envelope, SCHEMA_VERSION};
use events::monitor::{Failure, MonitorEvent, MonitorMessage, TargetRef};
use events::names::{self, AggregateKind, headers};
use events::spec::PolicyAction;
use events::vnf::VnfEvent;
use monitor::share::PARTITIONS;
use testkit::Identity;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use vnfm_tests::attacker::{Attacker, Outcome};
use vnfm_tests::{PATIENCE, System, monitored_vnfd};

/// How often the intruder writes every lease key: the issue's figure, twice per renewal of a
/// monitor (`monitor::share::RENEW_INTERVAL`), so no renewal finds a lease of its own.
const LEASE_WRITE_INTERVAL: Duration = Duration::from_millis(500);

/// What the intruder writes into the leases: a holder no monitor is named.
const INTRUDER: &str = "intruder";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issues_attacks_leave_every_vnf_there_and_healed() {
    let mut system = System::start().await;
    // Refusals are what this test is about.
    system.violations_expected = true;
    let logged = system
        .active_vnf(&monitored_vnfd("ping", "log", false))
        .await;
    let respawned = system
        .active_vnf(&monitored_vnfd("ping", "respawn", false))
        .await;
    system.probed_instance(&logged, 0).await;
    system.probed_instance(&respawned, 0).await;

    forged_failure_report(&system, &logged).await;
    forged_delete(&system, &logged).await;
    destroy_streams_and_consumers(&system).await;
    squat_leases(&system, &respawned).await;

    for vnf_id in [&logged, &respawned] {
        let (code, shown) = system.get(&format!("/vnfs/{vnf_id}")).await;
        assert_eq!(code, 200, "{shown}");
        assert_eq!(shown["vnf"]["status"], "ACTIVE", "{shown}");
    }
    let old = system.vnf(&respawned).await.instances[0].clone();
    system.kill_vdu(&old.instance_id).await;
    system.wait_respawned(&respawned, &old).await;
}

/// The last sequence of the VNF's subject.
async fn last_sequence(system: &System, vnf_id: &str) -> u64 {
    let history = system.history(vnf_id).await;
    history.last().expect("the VNF's create").sequence
}

/// Attack 1: a failure report naming `log_and_kill` for a VDU whose policy is `log`, with the
/// VNF's real instance and action id, so that only the action is wrong. Every identity but the
/// monitor's and the conductor's (which reports the failures its VIMs show, drift) is refused;
/// those two are stored, and the conductor answers each with `bad_action` and changes nothing.
async fn forged_failure_report(system: &System, vnf_id: &str) {
    let vnf = system.vnf(vnf_id).await;
    let instance = &vnf.instances[0];
    let before = last_sequence(system, vnf_id).await;
    let watcher = system.nats.client().await;
    let mut answers = watcher
        .subscribe(names::bad_action_subject(vnf_id))
        .await
        .unwrap();
    watcher.flush().await.unwrap();
    for identity in Identity::ALL {
        let failure = Failure {
            failure_id: format!("forged-by-{}", identity.name()),
            monitor: Actor::new(ActorKind::Monitor, INTRUDER),
            target: TargetRef {
                vnf_id: vnf_id.to_owned(),
                vdu: instance.vdu.clone(),
                instance_id: instance.instance_id.clone(),
                mgmt_ip: instance.mgmt_ip,
                action_id: vnf.action_id.clone().expect("a monitored VNF"),
            },
            action: PolicyAction::LogAndKill,
            attempts: 2,
            reason: "forged".into(),
            detected_at: now(),
        };
        let mut message_id = HeaderMap::new();
        message_id.insert(headers::MSG_ID, failure.failure_id.as_str());
        let payload =
            serde_json::to_vec(&MonitorMessage::new(MonitorEvent::Failure(failure))).unwrap();
        let mut attacker = Attacker::connect(&system.nats, identity).await;
        let outcome = attacker
            .try_request_with_headers(&names::failure_subject(vnf_id), message_id, payload)
            .await;
        if matches!(identity, Identity::Monitor | Identity::Conductor) {
            assert!(
                matches!(&outcome, Outcome::Answered(ack) if ack.contains("\"seq\"")),
                "a {identity:?}'s report is stored: {outcome:?}"
            );
        } else {
            assert_eq!(outcome, Outcome::Refused, "{identity:?} reports a failure");
        }
    }
    let mut answered_ids = Vec::new();
    for _ in 0..2 {
        let answer = events::fixtures::next_monitor_event(&mut answers, PATIENCE).await;
        let MonitorEvent::BadAction {
            failure_id, reason, ..
        } = answer
        else {
            panic!("not a bad_action: {answer:?}")
        };
        assert!(reason.contains("log_and_kill"), "{reason}");
        answered_ids.push(failure_id);
    }
    answered_ids.sort();
    assert_eq!(answered_ids, ["forged-by-conductor", "forged-by-monitor"]);
    // The answer comes after the decision: had the conductor appended, it would be there now.
    assert_eq!(
        last_sequence(system, vnf_id).await,
        before,
        "nothing appended to the VNF: no DeleteRequested, no heal"
    );
    let stream = system
        .log
        .jetstream()
        .get_stream(names::MONITOR_STREAM)
        .await
        .unwrap();
    let reports = events::read::subject(
        &system.log.jetstream().client(),
        &stream,
        &names::failure_subject(vnf_id),
    )
    .await
    .unwrap();
    assert_eq!(
        reports.len(),
        2,
        "only the monitor's and the conductor's reports are stored"
    );
    // And the answer did not switch the VDU's monitoring off: it is still probed.
    let answered = now();
    system.wait_probed(instance.mgmt_ip, answered, true).await;
}

/// Attack 2: a `DeleteRequested` appended to the VNF's subject as the gateway appends one
/// (envelope, message id, expected last sequence), by every identity that may not append.
/// The gateway and the conductor may append lifecycle events by design: that is their job, and
/// what bounds them is the aggregate's decision (and, for the gateway's callers, the API's own
/// authentication, a separate issue), not the bus.
async fn forged_delete(system: &System, vnf_id: &str) {
    let before = last_sequence(system, vnf_id).await;
    let cause = events::fixtures::user();
    let envelope = Envelope {
        schema_version: SCHEMA_VERSION,
        aggregate: AggregateKind::Vnf,
        aggregate_id: vnf_id.to_owned(),
        cause: cause.clone(),
        recorded_at: now(),
        events: vec![VnfEvent::DeleteRequested {
            operation_id: cause.command_id.clone(),
        }],
    };
    let payload = serde_json::to_vec(&envelope).unwrap();
    for identity in [
        Identity::Monitor,
        Identity::Projector,
        Identity::Reader,
        Identity::Admin,
    ] {
        let mut append = HeaderMap::new();
        append.insert(
            headers::MSG_ID,
            format!("{}@{vnf_id}", cause.command_id).as_str(),
        );
        append.insert(
            headers::EXPECTED_LAST_SUBJECT_SEQUENCE,
            before.to_string().as_str(),
        );
        let mut attacker = Attacker::connect(&system.nats, identity).await;
        let outcome = attacker
            .try_request_with_headers(&names::vnf_subject(vnf_id), append, &payload)
            .await;
        assert_eq!(outcome, Outcome::Refused, "{identity:?} appends a delete");
    }
    assert_eq!(last_sequence(system, vnf_id).await, before);
    let (_, shown) = system.get(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(shown["vnf"]["status"], "ACTIVE", "{shown}");
}

/// vnfm's durable consumers: stream, name, and the identity that owns it.
const DURABLES: [(&str, &str, Identity); 3] = [
    (
        names::FAILURE_STREAM,
        names::HEAL_CONSUMER,
        Identity::Conductor,
    ),
    (
        names::LIFECYCLE_STREAM,
        names::PROJECTOR_CONSUMER,
        Identity::Projector,
    ),
    (
        names::LIFECYCLE_STREAM,
        names::CONDUCTOR_CONSUMER,
        Identity::Conductor,
    ),
];

/// Attack 3: deleting and purging every stream and bucket, and deleting the durable consumers,
/// as every identity. A consumer's owner and the admin may delete it (to make it again), and
/// the admin may purge the monitor stream (of the probe rounds an older build left there), a
/// monitor its snapshot bucket (of the version a put replaces): those destructive operations
/// are allowed, and not tried.
async fn destroy_streams_and_consumers(system: &System) {
    let api = "$JS.API";
    let mut tries: Vec<(String, Vec<Identity>)> = Vec::new();
    let streams = [
        names::LIFECYCLE_STREAM,
        names::MONITOR_STREAM,
        names::FAILURE_STREAM,
        names::TELEMETRY_STREAM,
    ]
    .map(str::to_owned)
    .into_iter()
    .chain(names::BUCKETS.map(|bucket| format!("KV_{bucket}")))
    .chain(names::OBJECT_BUCKETS.map(names::object_store_stream));
    let snapshots = names::object_store_stream(names::MONITOR_SNAPSHOT_BUCKET);
    for stream in streams {
        let purgers = if stream == names::MONITOR_STREAM {
            vec![Identity::Admin]
        } else if stream == snapshots {
            // A snapshot's put purges the version it replaces.
            vec![Identity::Monitor]
        } else {
            Vec::new()
        };
        tries.push((format!("{api}.STREAM.DELETE.{stream}"), Vec::new()));
        tries.push((format!("{api}.STREAM.PURGE.{stream}"), purgers));
    }
    for (stream, consumer, owner) in DURABLES {
        tries.push((
            format!("{api}.CONSUMER.DELETE.{stream}.{consumer}"),
            vec![owner],
        ));
    }
    let lifecycle_before = stream_messages(system, names::LIFECYCLE_STREAM).await;
    for identity in Identity::ALL {
        let mut attacker = Attacker::connect(&system.nats, identity).await;
        for (subject, allowed) in &tries {
            if allowed.contains(&identity) {
                continue;
            }
            let outcome = attacker.try_request(subject, "").await;
            assert_eq!(outcome, Outcome::Refused, "{identity:?} on {subject}");
        }
    }
    assert_eq!(
        stream_messages(system, names::LIFECYCLE_STREAM).await,
        lifecycle_before,
        "the log is whole"
    );
    let jetstream = system.log.jetstream();
    for bucket in names::BUCKETS {
        jetstream.get_key_value(bucket).await.unwrap();
    }
    for bucket in names::OBJECT_BUCKETS {
        jetstream.get_object_store(bucket).await.unwrap();
    }
    for (stream, consumer, _) in DURABLES {
        let stream = jetstream.get_stream(stream).await.unwrap();
        stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
            .await
            .unwrap_or_else(|e| panic!("consumer {consumer}: {e}"));
    }
}

/// How many messages `stream` holds now.
async fn stream_messages(system: &System, stream: &str) -> u64 {
    let mut stream = system.log.jetstream().get_stream(stream).await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// Attack 4: writing every partition lease (`monitor::share`'s `partition.<n>` keys) every
/// half second. Every identity but the monitor's is refused. The monitor's writes land: the
/// running monitor loses every partition and raises the starvation alarm, and once the
/// intruder stops, it takes them back and probes `vnf_id` again.
async fn squat_leases(system: &System, vnf_id: &str) {
    let keys: Vec<String> = (0..PARTITIONS)
        .map(|partition| format!("$KV.{}.partition.{partition}", names::MONITOR_LEASE_BUCKET))
        .collect();
    for identity in Identity::ALL
        .into_iter()
        .filter(|identity| *identity != Identity::Monitor)
    {
        let mut attacker = Attacker::connect(&system.nats, identity).await;
        for key in &keys {
            let outcome = attacker.try_request(key, INTRUDER).await;
            assert_eq!(outcome, Outcome::Refused, "{identity:?} writes {key}");
        }
    }
    let watcher = system.nats.client().await;
    let mut alarms = watcher.subscribe(names::SUSPECT_SUBJECTS).await.unwrap();
    watcher.flush().await.unwrap();
    let attacker = Attacker::connect(&system.nats, Identity::Monitor).await;
    let (stop, stopped) = oneshot::channel();
    let intruder = tokio::spawn(write_leases(attacker, keys, stopped));
    let alarm = events::fixtures::next_monitor_event(&mut alarms, PATIENCE).await;
    let MonitorEvent::Starved {
        monitor: starved,
        held_by_members,
        held_by_unknown,
        ..
    } = alarm
    else {
        panic!("not a starvation alarm: {alarm:?}")
    };
    assert!(starved.id.starts_with("monitor-"), "{starved:?}");
    assert_eq!(held_by_members, 0);
    assert_eq!(
        held_by_unknown, PARTITIONS as usize,
        "the intruder holds every lease"
    );
    stop.send(()).expect("the intruder writes on");
    let rounds = intruder.await.expect("every write of the intruder landed");
    assert!(rounds > 0);
    let stopped_at = now();
    let instance = system.vnf(vnf_id).await.instances[0].clone();
    system.wait_probed(instance.mgmt_ip, stopped_at, true).await;
}

/// Writes every key of `keys` as `attacker` every [`LEASE_WRITE_INTERVAL`] until `stop` fires;
/// answers how many rounds it wrote.
///
/// # Panics
///
/// When a write is not stored.
async fn write_leases(
    mut attacker: Attacker,
    keys: Vec<String>,
    mut stop: oneshot::Receiver<()>,
) -> u32 {
    let mut tick = tokio::time::interval(LEASE_WRITE_INTERVAL);
    let mut rounds = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return rounds,
        }
        for key in &keys {
            let outcome = attacker.try_request(key, INTRUDER).await;
            assert!(
                matches!(&outcome, Outcome::Answered(ack) if ack.contains("\"seq\"")),
                "{key}: {outcome:?}"
            );
        }
        rounds += 1;
    }
}
