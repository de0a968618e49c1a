//! The store against a real nats-server.

use cqrs_es::CqrsFramework;
use testkit::NatsServer;

use super::*;
use crate::fixtures::{self, onboarded, user};
use crate::vnfd::{VnfdCommand, VnfdError, VnfdEvent};

#[tokio::test]
async fn appended_events_load_back_in_order() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let first = log
        .append::<Vnfd>("d1", 0, &user(), vec![onboarded("d1")])
        .await
        .unwrap();
    let used = VnfdEvent::UsedBy {
        vnf_id: "v1".into(),
    };
    let second = log
        .append::<Vnfd>("d1", first, &user(), vec![used])
        .await
        .unwrap();
    let loaded = log.load::<Vnfd>("d1").await.unwrap();
    assert_eq!(loaded.last_sequence, second);
    assert!(loaded.aggregate.live().is_some());
    assert!(loaded.aggregate.users.contains("v1"));
    let recorded = log
        .read_subject::<VnfdEvent>(&names::vnfd_subject("d1"))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].envelope.cause.actor.id, "admin");
}

#[tokio::test]
async fn two_writers_racing_on_one_aggregate_exactly_one_wins() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let base = log
        .append::<Vnfd>("d1", 0, &user(), vec![onboarded("d1")])
        .await
        .unwrap();
    let writer = |vnf: &str| {
        let log = log.clone();
        let event = VnfdEvent::UsedBy { vnf_id: vnf.into() };
        async move { log.append::<Vnfd>("d1", base, &user(), vec![event]).await }
    };
    let (a, b) = tokio::join!(writer("v1"), writer("v2"));
    let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
    let conflicts = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict)))
        .count();
    assert_eq!((wins, conflicts), (1, 1), "{a:?} {b:?}");
    let recorded = log
        .read_subject::<VnfdEvent>(&names::vnfd_subject("d1"))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 2);
}

#[tokio::test]
async fn a_retried_append_is_stored_once() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let cause = user();
    let first = log
        .append::<Vnfd>("d1", 0, &cause, vec![onboarded("d1")])
        .await
        .unwrap();
    // The same command sent again, as after a lost acknowledgement.
    let again = log
        .append::<Vnfd>("d1", 0, &cause, vec![onboarded("d1")])
        .await
        .unwrap();
    assert_eq!(first, again);
    let recorded = log
        .read_subject::<VnfdEvent>(&names::vnfd_subject("d1"))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
    // A different command with the same stale expectation is a conflict, not a duplicate.
    let other = log
        .append::<Vnfd>("d1", 0, &user(), vec![onboarded("d1")])
        .await;
    assert!(matches!(other, Err(StoreError::Conflict)), "{other:?}");
}

#[tokio::test]
async fn execute_redecides_after_losing_a_race() {
    // A burst of VNF creates from one VNFD: every one records itself as a user of it.
    // Two dozen: every one loses up to 23 races; 48 ran out of re-decisions on a loaded
    // 2-core machine.
    const USERS: usize = 24;
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    log.append::<Vnfd>("d1", 0, &user(), vec![onboarded("d1")])
        .await
        .unwrap();
    let users = (0..USERS).map(|n| {
        let log = log.clone();
        async move {
            let command = VnfdCommand::Use {
                vnf_id: format!("v{n}"),
            };
            log.execute::<Vnfd>("d1", command, &(), &user()).await
        }
    });
    for result in futures::future::join_all(users).await {
        result.expect("every use commits after re-deciding");
    }
    let loaded = log.load::<Vnfd>("d1").await.unwrap();
    assert_eq!(loaded.aggregate.users.len(), USERS);
    let refused = log
        .execute::<Vnfd>("d1", VnfdCommand::Delete, &(), &user())
        .await;
    assert!(
        matches!(
            refused,
            Err(CommandError::Rejected(VnfdError::InUse { .. }))
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn cqrs_framework_runs_on_the_store() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let cqrs = CqrsFramework::new(JetStreamStore::<Vnfd>::new(log.clone()), vec![], ());
    cqrs.execute_with_metadata("d1", fixtures::onboard("d1"), user().to_metadata())
        .await
        .unwrap();
    let events = JetStreamStore::<Vnfd>::new(log.clone())
        .load_events("d1")
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].metadata["actor_id"], "admin");
}

#[tokio::test]
async fn the_lifecycle_stream_refuses_deletes_and_purges() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    let sequence = log
        .append::<Vnfd>("d1", 0, &user(), vec![onboarded("d1")])
        .await
        .unwrap();
    assert!(log.stream().delete_message(sequence).await.is_err());
    assert!(log.stream().purge().await.is_err());
    assert!(log.read_at(sequence).await.unwrap().is_some());
}

/// Three messages no build of this schema can read, as any NATS client could append them:
/// garbage, an envelope with an event type that does not exist, and a newer schema.
const UNDECODABLE: [&str; 3] = [
    "this is not JSON",
    r#"{"schema_version":2,"aggregate":"vnfd","aggregate_id":"d1","actor":{"kind":"user","id":"x"},"command_id":"c","correlation_id":"c","causation_id":"c","recorded_at":"2026-11-25T10:00:00Z","events":[{"type":"Exploded"}]}"#,
    r#"{"schema_version":99}"#,
];

#[tokio::test]
async fn undecodable_messages_are_skipped_counted_and_still_count_for_the_next_append() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    log.append::<Vnfd>("d1", 0, &user(), vec![onboarded("d1")])
        .await
        .unwrap();
    let mut bad_sequences = Vec::new();
    for payload in UNDECODABLE {
        let ack = log
            .jetstream()
            .publish(names::vnfd_subject("d1"), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
        bad_sequences.push(ack.sequence);
    }

    let loaded = log.load::<Vnfd>("d1").await.unwrap();
    assert!(loaded.aggregate.live().is_some());
    let skipped: Vec<u64> = loaded.skipped.iter().map(|s| s.sequence).collect();
    assert_eq!(skipped, bad_sequences);
    assert!(
        loaded.skipped[0].reason.contains("not JSON"),
        "{:?}",
        loaded.skipped
    );
    assert_eq!(loaded.last_sequence, bad_sequences[2]);

    // A command after the bad messages decides on the rest and appends behind them.
    let executed = log
        .execute::<Vnfd>(
            "d1",
            VnfdCommand::Use {
                vnf_id: "v1".into(),
            },
            &(),
            &user(),
        )
        .await
        .unwrap();
    assert!(executed.sequence > bad_sequences[2]);
    let history = log
        .history::<VnfdEvent>(&names::vnfd_subject("d1"))
        .await
        .unwrap();
    assert_eq!(history.last_sequence, executed.sequence);
    let (recorded, skipped) = history.split();
    assert_eq!(recorded.len(), 2);
    assert_eq!(skipped.len(), 3);
    let events = JetStreamStore::<Vnfd>::new(log.clone())
        .load_events("d1")
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

/// Loads `d1` through a handle of its own (a fresh process: nothing kept).
async fn fresh_load(server: &NatsServer) -> Loaded<Vnfd> {
    fixtures::log(server.client().await)
        .await
        .load::<Vnfd>("d1")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_load_starts_from_the_kept_fold_and_ends_where_a_full_replay_does() {
    let server = NatsServer::start().await;
    let log = fixtures::log(server.client().await).await;
    // Another process writing to the same aggregate.
    let other = fixtures::log(server.client().await).await;
    log.append::<Vnfd>("d1", 0, &user(), vec![onboarded("d1")])
        .await
        .unwrap();
    let subject = names::vnfd_subject("d1");
    let take = |log: &EventLog, vnf: String| {
        let log = log.clone();
        async move {
            let command = VnfdCommand::Use { vnf_id: vnf };
            log.execute::<Vnfd>("d1", command, &(), &user())
                .await
                .unwrap()
        }
    };
    for n in 0..folds::FOLD_MESSAGES_MIN {
        take(&log, format!("v{n}")).await;
    }
    assert_eq!(log.folds.kept().0, 1, "a long history is kept");
    // The other writer appends, and a message that does not decode lands in between.
    take(&other, "w1".into()).await;
    let garbage = log
        .jetstream()
        .publish(subject.clone(), UNDECODABLE[0].into())
        .await
        .unwrap()
        .await
        .unwrap();
    take(&other, "w2".into()).await;
    let kept_through = log.folds.get::<Vnfd>(&subject).unwrap().last_sequence;
    let loaded = log.load::<Vnfd>("d1").await.unwrap();
    let full = fresh_load(&server).await;
    assert!(loaded.last_sequence > kept_through);
    assert_eq!(loaded.aggregate, full.aggregate);
    assert_eq!(loaded.last_sequence, full.last_sequence);
    assert_eq!(loaded.skipped, full.skipped);
    assert_eq!(loaded.skipped[0].sequence, garbage.sequence);
    assert!(loaded.aggregate.users.contains("w2"));
    // Racing writers through the kept fold and through a fresh one: every use lands once.
    let racers = (0..8).map(|n| {
        let log = if n % 2 == 0 {
            log.clone()
        } else {
            other.clone()
        };
        take(&log, format!("r{n}"))
    });
    futures::future::join_all(racers).await;
    let loaded = log.load::<Vnfd>("d1").await.unwrap();
    assert_eq!(loaded.aggregate, fresh_load(&server).await.aggregate);
    assert_eq!(
        loaded.aggregate.users.len(),
        folds::FOLD_MESSAGES_MIN + 2 + 8
    );

    // What a load starts from is the kept fold: one marked here shows through the tail.
    let mut marked = log.folds.get::<Vnfd>(&subject).unwrap();
    marked
        .aggregate
        .users
        .insert("only-in-the-kept-fold".into());
    log.folds.forget(&subject);
    log.folds.keep(&subject, &marked);
    take(&other, "after".into()).await;
    let users = log.load::<Vnfd>("d1").await.unwrap().aggregate.users;
    assert!(users.contains("only-in-the-kept-fold") && users.contains("after"));
}
