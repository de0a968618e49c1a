//! The projector against a real nats-server: rows follow the log, redelivery changes nothing,
//! and a rebuild from the log equals the live tables.

use std::time::Duration;

use events::access::Identity;
use events::fixtures::{self, conductor, onboard, user};
use events::store::EventLog;
use events::vnf::{Vnf, VnfCommand};
use events::vnfd::{Vnfd, VnfdCommand, VnfdEvent};
use projector::Tables;
use testkit::{NatsServer, eventually};

/// How long the projector may take to catch up with what a test appended: milliseconds on an
/// idle machine; 10 s absorbs a busy one.
const PROJECTED_PATIENCE: Duration = Duration::from_secs(10);

/// `Ok` when `row` is there and `wanted` holds of it, else the row as it stands.
fn row_where<R: std::fmt::Debug>(
    row: Option<R>,
    wanted: impl FnOnce(&R) -> bool,
) -> Result<(), String> {
    match row {
        Some(row) if wanted(&row) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

#[tokio::test]
async fn rows_follow_the_log_and_a_rebuild_equals_them() {
    let server = NatsServer::start().await;
    let (log, tables) = open(&server).await;
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
    eventually("every row is projected", PROJECTED_PATIENCE, || async {
        row_where(tables.vnfd("d19").await.unwrap(), |r| r.state.users == 3)
    })
    .await;
    eventually("the release is projected", PROJECTED_PATIENCE, || async {
        row_where(tables.vnfd("d0").await.unwrap(), |r| r.state.users == 2)
    })
    .await;
    let verification = projector::verify(&log, &tables, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(verification.differences, Vec::<String>::new());
    assert_eq!(verification.compared, 20);

    // A row tampered with behind the projector's back is caught by the verification.
    let mut row = tables.vnfd("d3").await.unwrap().unwrap();
    row.state.users = 0;
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
    let log = fixtures::log(server.client().await).await;
    let tables = Tables::open(log.jetstream()).await.unwrap();
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
    eventually(
        "the message after the garbage is projected",
        PROJECTED_PATIENCE,
        || async {
            row_where(tables.vnfd("d1").await.unwrap(), |row| {
                row.last_sequence == used && row.state.users == 1
            })
        },
    )
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

/// The log and tables on a fresh server whose VNFD table (made anew by the superuser) refuses
/// any row as too large: every
/// write fails, and never for contention.
async fn open_with_tiny_vnfd_table(server: &NatsServer) -> (EventLog, Tables) {
    let log = fixtures::log(server.client().await).await;
    log.jetstream()
        .create_or_update_key_value(async_nats::jetstream::kv::Config {
            bucket: events::names::VNFD_TABLE_BUCKET.into(),
            max_value_size: 16,
            ..Default::default()
        })
        .await
        .unwrap();
    let tables = Tables::open(log.jetstream()).await.unwrap();
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
        PROJECTED_PATIENCE,
        || async {
            // Absent until the projector opens it.
            let Ok(mut consumer) = log
                .stream()
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                    events::names::PROJECTOR_CONSUMER,
                )
                .await
            else {
                return Err("no projector consumer yet".to_owned());
            };
            let info = consumer.info().await.unwrap();
            let (pending, acked) = (
                (info.num_ack_pending, info.num_pending),
                info.ack_floor.stream_sequence,
            );
            if pending == (0, 0) && acked >= onboarded {
                Ok(())
            } else {
                Err(format!("pending {pending:?}, acked to {acked}"))
            }
        },
    )
    .await;
    assert!(tables.vnfd("d1").await.unwrap().is_none(), "no row written");
}

#[tokio::test]
async fn a_deleted_vnf_s_monitor_states_are_deleted_whoever_holds_its_partition() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    // The projector on its own identity, as deployed: deleting states is within its rights.
    let projector_log = EventLog::open(server.client_as(Identity::Projector).await)
        .await
        .unwrap();
    let tables = Tables::open(projector_log.jetstream()).await.unwrap();
    tokio::spawn(projector::run(
        projector_log,
        tables.clone(),
        futures::future::pending(),
    ));
    // States a monitor wrote for two VNFs; no monitor runs, as while a dead monitor's lease
    // runs out.
    let states = events::store::open_monitor_states(log.jetstream())
        .await
        .unwrap();
    for vnf_id in ["v1", "v2"] {
        states.put(vnf_id, r#"{"i1":{}}"#.into()).await.unwrap();
    }
    let spec = fixtures::spec(vec![fixtures::vdu("VDU1", None)]);
    for vnf_id in ["v1", "v2"] {
        let create = fixtures::create(vnf_id, "d1", spec.clone(), &format!("{vnf_id}-create"));
        log.execute::<Vnf>(vnf_id, create, &(), &user())
            .await
            .unwrap();
    }
    // v1 fails to deploy, and a user deletes it.
    let commands = [
        (
            VnfCommand::FailOperation {
                operation_id: "v1-create".into(),
                reason: "no room".into(),
            },
            conductor("c1"),
        ),
        (
            VnfCommand::Delete {
                operation_id: "v1-delete".into(),
            },
            user(),
        ),
        (
            VnfCommand::CompleteDelete {
                operation_id: "v1-delete".into(),
            },
            conductor("c1"),
        ),
    ];
    for (command, cause) in commands {
        log.execute::<Vnf>("v1", command, &(), &cause)
            .await
            .unwrap();
    }
    eventually("v1's row stands deleted", PROJECTED_PATIENCE, || async {
        row_where(tables.vnf("v1").await.unwrap(), |r| r.state.deleted)
    })
    .await;
    eventually("v1's states are deleted", PROJECTED_PATIENCE, || async {
        match states.get("v1").await.unwrap() {
            None => Ok(()),
            Some(value) => Err(format!("still {value:?}")),
        }
    })
    .await;
    assert!(states.get("v2").await.unwrap().is_some(), "v2 lives on");
    assert_eq!(server.permission_violations(), Vec::<String>::new());
}
