//! The round reader against a real nats-server, as the reader identity: rounds expanded with
//! their rosters, and whatever does not read skipped and counted.

use std::net::Ipv4Addr;

use async_nats::jetstream;
use testkit::{Identity, NatsServer};
use time::macros::datetime;

use super::*;
use crate::envelope::ActorKind;
use crate::monitor::rounds::PackedRound;
use crate::monitor::{ProbeOutcome, TargetRef};
use crate::setup::{self, LogConfig, TELEMETRY_STREAM_BYTES_MIN};

const AT: OffsetDateTime = datetime!(2026-12-02 01:00 UTC);

fn result(n: u8, outcome: ProbeOutcome) -> ProbeResult {
    ProbeResult {
        target: TargetRef {
            vnf_id: format!("vnf-{n}"),
            vdu: "VDU1".into(),
            instance_id: format!("instance-{n}"),
            mgmt_ip: Ipv4Addr::new(127, 128, 0, n),
            action_id: format!("action-{n}"),
        },
        outcome,
        at: AT,
    }
}

async fn publish(jetstream: &jetstream::Context, subject: String, event: MonitorEvent) -> u64 {
    let payload = serde_json::to_vec(&MonitorMessage::new(event)).unwrap();
    jetstream
        .publish(subject, payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

fn round(monitor: &Actor, packed: PackedRound) -> MonitorEvent {
    MonitorEvent::Round {
        monitor: monitor.clone(),
        at: AT,
        targets: 2,
        packed,
    }
}

#[tokio::test]
async fn rounds_read_with_their_rosters_and_the_rest_is_skipped_and_counted() {
    let server = NatsServer::start().await;
    let admin = jetstream::new(server.client_as(Identity::Admin).await);
    setup::provision(
        &admin,
        &LogConfig {
            telemetry_bytes_max: TELEMETRY_STREAM_BYTES_MIN,
            ..LogConfig::default()
        },
    )
    .await
    .unwrap();
    let monitor_bus = jetstream::new(server.client_as(Identity::Monitor).await);
    let monitor = Actor::new(ActorKind::Monitor, "m.1");
    let results = vec![
        result(1, ProbeOutcome::Up { rtt_us: 44 }),
        result(
            2,
            ProbeOutcome::Down {
                reason: "timeout".into(),
            },
        ),
    ];
    let (roster, packed) = rounds::pack_results(results.clone()).unwrap().remove(0);
    let roster_subject = names::roster_subject(&monitor.id, &roster.digest);
    let round_subject = names::round_subject(&monitor.id);
    publish(
        &monitor_bus,
        roster_subject.clone(),
        MonitorEvent::Roster {
            monitor: monitor.clone(),
            roster: roster.clone(),
        },
    )
    .await;
    let first = publish(
        &monitor_bus,
        round_subject.clone(),
        round(&monitor, packed.clone()),
    )
    .await;
    // Garbage, and a round of the format before rosters.
    for payload in [
        "garbage".to_owned(),
        serde_json::json!({"schema_version": 1, "type": "Round", "monitor": monitor, "at": "2026-12-02T01:00:00Z", "targets": 2, "results": []}).to_string(),
    ] {
        monitor_bus
            .publish(round_subject.clone(), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A round whose roster was never stored (evicted, in the stream's terms).
    let (_, orphan) = rounds::pack_results(vec![result(9, ProbeOutcome::Up { rtt_us: 1 })])
        .unwrap()
        .remove(0);
    publish(&monitor_bus, round_subject.clone(), round(&monitor, orphan)).await;
    // A round that names the roster but does not match it.
    let truncated = PackedRound {
        count: 1,
        ..packed.clone()
    };
    publish(
        &monitor_bus,
        round_subject.clone(),
        round(&monitor, truncated),
    )
    .await;
    // A roster subject whose message is no roster.
    let (bogus, _) = rounds::pack_results(vec![result(7, ProbeOutcome::Up { rtt_us: 1 })])
        .unwrap()
        .remove(0);
    monitor_bus
        .publish(
            names::roster_subject(&monitor.id, &bogus.digest),
            "not a roster".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let bogus_round = PackedRound {
        roster: bogus.digest.clone(),
        ..packed.clone()
    };
    publish(
        &monitor_bus,
        round_subject.clone(),
        round(&monitor, bogus_round),
    )
    .await;
    // A roster whose targets do not match its digest (tampered with).
    let (mut tampered, tampered_round) =
        rounds::pack_results(vec![result(8, ProbeOutcome::Up { rtt_us: 1 })])
            .unwrap()
            .remove(0);
    tampered.targets[0].mgmt_ip = Ipv4Addr::new(10, 0, 0, 8);
    publish(
        &monitor_bus,
        names::roster_subject(&monitor.id, &tampered.digest),
        MonitorEvent::Roster {
            monitor: monitor.clone(),
            roster: tampered,
        },
    )
    .await;
    publish(
        &monitor_bus,
        round_subject.clone(),
        round(&monitor, tampered_round),
    )
    .await;
    let last = publish(&monitor_bus, round_subject, round(&monitor, packed)).await;

    let reader = jetstream::new(server.client_as(Identity::Reader).await);
    let telemetry = reader.get_stream(names::TELEMETRY_STREAM).await.unwrap();
    let mut read = RoundRead::open(&telemetry, 1).await.unwrap();
    let mut read_rounds = Vec::new();
    while let Some(round) = read.next().await.unwrap() {
        read_rounds.push(round);
    }
    let expected = |sequence| Round {
        sequence,
        monitor: monitor.clone(),
        at: AT,
        targets: 2,
        results: results.clone(),
    };
    assert_eq!(read_rounds, [expected(first), expected(last)]);
    assert_eq!(
        read.skipped(),
        Skipped {
            undecodable: 2,
            without_roster: 3,
            invalid: 1,
        }
    );
    assert_eq!(
        server.permission_violations(),
        Vec::<String>::new(),
        "the monitor publishes rosters, the reader reads them"
    );

    // A read since a time after every message reads nothing.
    let mut later = RoundRead::since(
        &telemetry,
        OffsetDateTime::now_utc() + time::Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(later.next().await.unwrap(), None);
}
