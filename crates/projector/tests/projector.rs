//! The projector against a real nats-server: rows follow the log, redelivery changes nothing,
//! and a rebuild from the log equals the live tables.

use std::time::Duration;

use events::envelope::{Actor, ActorKind, Cause};
use events::spec::VnfdSpec;
use events::store::{EventLog, LogConfig};
use events::vnfd::{TemplateSource, Vnfd, VnfdCommand, VnfdDescriptor, VnfdEvent};
use projector::Tables;
use testkit::NatsServer;

fn user() -> Cause {
    Cause::user_request(Actor::new(ActorKind::User, "admin"))
}

fn onboard(id: &str) -> VnfdCommand {
    VnfdCommand::Onboard(VnfdDescriptor {
        vnfd_id: id.into(),
        name: format!("vnfd-{id}"),
        description: String::new(),
        tenant_id: "admin".into(),
        template_source: TemplateSource::Onboarded,
        template_yaml: String::new(),
        spec: VnfdSpec {
            template_name: None,
            description: None,
            vdus: vec![],
            scaling_policies: vec![],
        },
    })
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rows_follow_the_log_and_a_rebuild_equals_them() {
    let server = NatsServer::start().await;
    let log = EventLog::open(server.client().await, &LogConfig::default())
        .await
        .unwrap();
    let tables = Tables::open(log.jetstream(), 1).await.unwrap();
    // Two projectors share the durable consumer, as in a scaled-out deployment.
    for _ in 0..2 {
        tokio::spawn(projector::run(
            log.clone(),
            tables.clone(),
            futures::future::pending(),
        ));
    }
    for n in 0..20 {
        let id = format!("d{n}");
        log.execute::<Vnfd>(&id, onboard(&id), &(), &user())
            .await
            .unwrap();
        for vnf in 0..3 {
            let command = VnfdCommand::Use {
                vnf_id: format!("v{vnf}"),
            };
            log.execute::<Vnfd>(&id, command, &(), &user())
                .await
                .unwrap();
        }
    }
    log.execute::<Vnfd>(
        "d0",
        VnfdCommand::Release {
            vnf_id: "v0".into(),
        },
        &(),
        &user(),
    )
    .await
    .unwrap();
    eventually("every row projected", || async {
        let row = tables.vnfd("d19").await.unwrap();
        row.is_some_and(|r| r.state.users.len() == 3)
    })
    .await;
    eventually("the release projected", || async {
        tables
            .vnfd("d0")
            .await
            .unwrap()
            .is_some_and(|r| r.state.users.len() == 2)
    })
    .await;
    let verification = projector::verify(&log, &tables, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(verification.differences, Vec::<String>::new());
    assert_eq!(verification.compared, 20);

    // A row tampered with behind the projector's back is caught by the verification.
    let mut row = tables.vnfd("d3").await.unwrap().unwrap();
    row.state.users.clear();
    tables
        .vnfds
        .put("d3", serde_json::to_vec(&row).unwrap().into())
        .await
        .unwrap();
    let verification = projector::verify(&log, &tables, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        verification.differences.len(),
        1,
        "{:?}",
        verification.differences
    );
    assert!(verification.differences[0].contains("d3"));
}

/// Opens the log and the tables on a fresh server.
async fn open(server: &NatsServer) -> (EventLog, Tables) {
    let log = EventLog::open(server.client().await, &LogConfig::default())
        .await
        .unwrap();
    let tables = Tables::open(log.jetstream(), 1).await.unwrap();
    (log, tables)
}

#[tokio::test]
async fn an_undecodable_message_is_parked_and_its_subject_projects_on() {
    let server = NatsServer::start().await;
    let (log, tables) = open(&server).await;
    log.execute::<Vnfd>("d1", onboard("d1"), &(), &user())
        .await
        .unwrap();
    let garbage = log
        .jetstream()
        .publish(events::names::vnfd_subject("d1"), "not JSON".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    // The next append names the garbage as its predecessor.
    let used_by = VnfdEvent::UsedBy {
        vnf_id: "v1".into(),
    };
    let used = log
        .append::<Vnfd>("d1", garbage, &user(), vec![used_by])
        .await
        .unwrap();
    tokio::spawn(projector::run(
        log.clone(),
        tables.clone(),
        futures::future::pending(),
    ));
    eventually("the message after the garbage projected", || async {
        tables
            .vnfd("d1")
            .await
            .unwrap()
            .is_some_and(|row| row.last_sequence == used && row.state.users.contains("v1"))
    })
    .await;
    // Parked: nothing left pending or waiting for redelivery.
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = log
        .stream()
        .get_consumer(events::names::PROJECTOR_CONSUMER)
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0), "{info:?}");
    assert!(info.ack_floor.stream_sequence >= used, "{info:?}");

    let verification = projector::verify(&log, &tables, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(verification.differences, Vec::<String>::new());
    assert_eq!(verification.compared, 1);
    let undecodable: Vec<u64> = verification
        .undecodable
        .iter()
        .map(|s| s.sequence)
        .collect();
    assert_eq!(undecodable, vec![garbage]);
}

/// The log and tables on a fresh server whose VNFD table refuses any row as too large: every
/// write fails, and never for contention.
async fn open_with_tiny_vnfd_table(server: &NatsServer) -> (EventLog, Tables) {
    let log = EventLog::open(server.client().await, &LogConfig::default())
        .await
        .unwrap();
    log.jetstream()
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: events::names::VNFD_TABLE_BUCKET.into(),
            max_value_size: 16,
            ..Default::default()
        })
        .await
        .unwrap();
    let tables = Tables::open(log.jetstream(), 1).await.unwrap();
    (log, tables)
}

#[tokio::test]
async fn a_row_write_that_fails_for_another_reason_than_contention_is_an_error_at_once() {
    let server = NatsServer::start().await;
    let (log, tables) = open_with_tiny_vnfd_table(&server).await;
    log.execute::<Vnfd>("d1", onboard("d1"), &(), &user())
        .await
        .unwrap();
    let error = projector::write_rebuild(&log, &tables).await.unwrap_err();
    match &error {
        projector::ProjectorError::Nats(e) => {
            assert_eq!(e.kind(), events::nats_error::NatsErrorKind::TooLarge, "{e}");
        }
        other => panic!("not a NATS error of its kind: {other}"),
    }
}

#[tokio::test]
async fn a_message_whose_row_is_too_large_to_store_is_parked_not_offered_for_ever() {
    let server = NatsServer::start().await;
    let (log, tables) = open_with_tiny_vnfd_table(&server).await;
    let onboarded = log
        .execute::<Vnfd>("d1", onboard("d1"), &(), &user())
        .await
        .unwrap()
        .sequence;
    tokio::spawn(projector::run(
        log.clone(),
        tables.clone(),
        futures::future::pending(),
    ));
    eventually(
        "the message parked: nothing pending, acked past it",
        || async {
            // Absent until the projector opens it.
            let Ok(mut consumer) = log
                .stream()
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                    events::names::PROJECTOR_CONSUMER,
                )
                .await
            else {
                return false;
            };
            let info = consumer.info().await.unwrap();
            (info.num_ack_pending, info.num_pending) == (0, 0)
                && info.ack_floor.stream_sequence >= onboarded
        },
    )
    .await;
    assert!(tables.vnfd("d1").await.unwrap().is_none(), "no row written");
}
