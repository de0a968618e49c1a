//! The trusted bus, tried against the real nats-server with the configuration vnfm generates
//! (`events::access`): every identity is refused every operation of the table that is not its
//! job, an anonymous client is refused, and the reader reads everything.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::json;
use testkit::{Identity, NatsServer};
use vnfm_tests::attacker::{Attacker, Outcome};

use events::names;

/// How long an allowed operation may take to be answered on an idle local server.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// One operation of the table and the identities whose job it is.
struct Operation {
    what: &'static str,
    subject: String,
    payload: String,
    allowed: &'static [Identity],
}

fn operations() -> Vec<Operation> {
    use Identity::{Admin, Conductor, Gateway, Monitor, Projector, Reader};
    let vnf = "6b1d4f8e-1f0a-4e49-9a0f-2f4c1c5d7e01";
    let api = "$JS.API";
    let op = |what, subject: String, payload: &str, allowed| Operation {
        what,
        subject,
        payload: payload.to_owned(),
        allowed,
    };
    vec![
        op(
            "append to a VNF's lifecycle subject",
            names::vnf_subject(vnf),
            "{}",
            &[Gateway, Conductor],
        ),
        op(
            "append to a VIM's lifecycle subject",
            names::vim_subject(vnf),
            "{}",
            &[Gateway, Conductor],
        ),
        op(
            "write a VIM table row",
            format!("$KV.{}.{vnf}", names::VIM_TABLE_BUCKET),
            "{}",
            &[Projector],
        ),
        op(
            "read a VNF's data key",
            format!(
                "{api}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{}",
                names::data_key_name(names::AggregateKind::Vnf, vnf),
                bucket = names::DATA_KEY_BUCKET
            ),
            "",
            // A conductor's, to open the VDUs' user_data for the servers it deploys.
            &[Gateway, Conductor],
        ),
        op(
            "read a VNFD's data key",
            format!(
                "{api}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{}",
                names::data_key_name(names::AggregateKind::Vnfd, vnf),
                bucket = names::DATA_KEY_BUCKET
            ),
            "",
            &[Gateway],
        ),
        op(
            "read a VIM's data key",
            format!(
                "{api}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{}",
                names::data_key_name(names::AggregateKind::Vim, vnf),
                bucket = names::DATA_KEY_BUCKET
            ),
            "",
            &[Gateway, Conductor],
        ),
        op(
            "read any data key by its sequence",
            format!("{api}.DIRECT.GET.KV_{}", names::DATA_KEY_BUCKET),
            r#"{"seq": 1}"#,
            &[Gateway],
        ),
        op(
            "publish a failure report",
            names::failure_subject(vnf),
            "{}",
            // A probe's, or a drift's (`conductor::reconcile`).
            &[Monitor, Conductor],
        ),
        op(
            "publish a VDU state change",
            names::vdu_state_subject(vnf),
            "{}",
            &[Monitor],
        ),
        op(
            "publish a probe round's roster",
            names::roster_subject("m", "0123abcd"),
            "{}",
            &[Monitor],
        ),
        op(
            "publish a bad_action answer",
            names::bad_action_subject(vnf),
            "{}",
            &[Conductor],
        ),
        op(
            "write a monitor lease",
            format!("$KV.{}.partition.7", names::MONITOR_LEASE_BUCKET),
            "attacker",
            &[Monitor],
        ),
        op(
            "write a VNF table row",
            format!("$KV.{}.{vnf}", names::VNF_TABLE_BUCKET),
            "{}",
            &[Projector],
        ),
        op(
            "write a monitor state row",
            format!("$KV.{}.{vnf}", names::MONITOR_STATE_BUCKET),
            "{}",
            // The projector deletes a deleted VNF's states, which a subject cannot tell from
            // a put.
            &[Monitor, Projector],
        ),
        op(
            "delete the lifecycle stream",
            format!("{api}.STREAM.DELETE.{}", names::LIFECYCLE_STREAM),
            "",
            &[],
        ),
        // The admin's, to remove the probe rounds an older build left there (`setup`).
        op(
            "purge the monitor stream",
            format!("{api}.STREAM.PURGE.{}", names::MONITOR_STREAM),
            "{}",
            &[Admin],
        ),
        op(
            "purge the telemetry stream",
            format!("{api}.STREAM.PURGE.{}", names::TELEMETRY_STREAM),
            "{}",
            &[],
        ),
        op(
            "read a probe round",
            format!("{api}.DIRECT.GET.{}", names::TELEMETRY_STREAM),
            r#"{"last_by_subj": "vnfm.monitor.round.m"}"#,
            &[Gateway, Reader],
        ),
        op(
            "read a probe round's roster by its subject",
            format!(
                "{api}.DIRECT.GET.{}.{}",
                names::TELEMETRY_STREAM,
                names::roster_subject("m", "0123abcd")
            ),
            "",
            &[Gateway, Reader],
        ),
        op(
            "delete a message of the monitor stream",
            format!("{api}.STREAM.MSG.DELETE.{}", names::MONITOR_STREAM),
            r#"{"seq": 1}"#,
            &[],
        ),
        op(
            "update the lifecycle stream",
            format!("{api}.STREAM.UPDATE.{}", names::LIFECYCLE_STREAM),
            &json!({"name": names::LIFECYCLE_STREAM, "subjects": ["vnfm.lifecycle.>"], "max_msgs": 1}).to_string(),
            &[Admin],
        ),
        op(
            "create a stream",
            format!("{api}.STREAM.CREATE.ATTACKER"),
            r#"{"name": "ATTACKER", "subjects": ["vnfm.>"]}"#,
            &[],
        ),
        op(
            "delete the heal consumer",
            format!(
                "{api}.CONSUMER.DELETE.{}.{}",
                names::FAILURE_STREAM,
                names::HEAL_CONSUMER
            ),
            "",
            &[Conductor],
        ),
        op(
            "pull failure reports from the heal consumer",
            format!(
                "{api}.CONSUMER.MSG.NEXT.{}.{}",
                names::FAILURE_STREAM,
                names::HEAL_CONSUMER
            ),
            r#"{"batch": 1, "no_wait": true}"#,
            &[Conductor],
        ),
        op(
            "redefine the projector's consumer",
            format!(
                "{api}.CONSUMER.CREATE.{}.{}",
                names::LIFECYCLE_STREAM,
                names::PROJECTOR_CONSUMER
            ),
            "{}",
            &[Admin, Projector],
        ),
        op(
            "write a chunk of the monitors' snapshot",
            format!("$O.{}.C.attacker", names::MONITOR_SNAPSHOT_BUCKET),
            "{}",
            &[Monitor],
        ),
        op(
            "write the monitors' snapshot's metadata",
            format!("$O.{}.M.bGlmZWN5Y2xl", names::MONITOR_SNAPSHOT_BUCKET),
            "{}",
            &[Monitor],
        ),
        // A put purges the version it replaces.
        op(
            "purge the snapshot bucket",
            format!(
                "{api}.STREAM.PURGE.{}",
                names::object_store_stream(names::MONITOR_SNAPSHOT_BUCKET)
            ),
            "{}",
            &[Monitor],
        ),
        op(
            "read the monitors' snapshot's metadata",
            format!(
                "{api}.DIRECT.GET.{}.$O.{}.M.bGlmZWN5Y2xl",
                names::object_store_stream(names::MONITOR_SNAPSHOT_BUCKET),
                names::MONITOR_SNAPSHOT_BUCKET
            ),
            "",
            &[Monitor, Reader],
        ),
        op(
            "delete the snapshot bucket",
            format!(
                "{api}.STREAM.DELETE.{}",
                names::object_store_stream(names::MONITOR_SNAPSHOT_BUCKET)
            ),
            "",
            &[],
        ),
        op(
            "delete the lease bucket",
            format!("{api}.STREAM.DELETE.KV_{}", names::MONITOR_LEASE_BUCKET),
            "",
            &[],
        ),
    ]
}

#[tokio::test]
async fn every_identity_is_refused_what_is_not_its_job() {
    let server = NatsServer::start().await;
    let log = events::fixtures::log(server.client().await).await;
    let mut refused = 0;
    for identity in Identity::ALL {
        let mut attacker = Attacker::connect(&server, identity).await;
        for operation in operations() {
            if operation.allowed.contains(&identity) {
                // Allowed operations are what the roles do all through the end-to-end suite,
                // which runs with these identities; destructive ones are not tried here.
                continue;
            }
            let outcome = attacker
                .try_request(&operation.subject, &operation.payload)
                .await;
            assert_eq!(
                outcome,
                Outcome::Refused,
                "{identity:?} may not {}",
                operation.what
            );
            refused += 1;
        }
        for other in Identity::ALL.into_iter().filter(|other| *other != identity) {
            let inbox = format!("{}.>", other.inbox_prefix());
            assert_eq!(
                attacker.try_subscribe(&inbox).await,
                Outcome::Refused,
                "{identity:?} may not read {other:?}'s replies"
            );
        }
    }
    println!("{refused} forbidden operations refused");
    assert!(
        server.permission_violations().len() >= refused,
        "the server logs each refusal"
    );
    // The same kind of operation, by the identity whose job it is, is answered: the refusals
    // above are the permissions', not a broken server.
    let mut monitor = Attacker::connect(&server, Identity::Monitor).await;
    let Outcome::Answered(ack) = monitor
        .try_request(&names::failure_subject("v"), "{}")
        .await
    else {
        panic!("a monitor may report a failure");
    };
    assert!(ack.contains("\"seq\""), "{ack}");
    // Nothing was lost on the way.
    for stream in [
        names::LIFECYCLE_STREAM,
        names::MONITOR_STREAM,
        names::FAILURE_STREAM,
        names::TELEMETRY_STREAM,
    ] {
        log.jetstream().get_stream(stream).await.unwrap();
    }
    let mut lifecycle = log
        .jetstream()
        .get_stream(names::LIFECYCLE_STREAM)
        .await
        .unwrap();
    assert_eq!(lifecycle.info().await.unwrap().config.max_messages, -1);
}

#[tokio::test]
async fn an_anonymous_client_is_refused() {
    let server = NatsServer::start().await;
    vnfm_tests::attacker::assert_anonymous_refused(&server.url()).await;
}

#[tokio::test]
async fn the_reader_sees_every_event_and_can_follow_a_stream() {
    let server = NatsServer::start().await;
    let log = events::fixtures::log(server.client().await).await;
    let reader = server.client_as(Identity::Reader).await;
    let mut live = reader.subscribe("vnfm.>").await.unwrap();
    reader.flush().await.unwrap();
    let gateway = events::store::EventLog::open(server.client_as(Identity::Gateway).await)
        .await
        .unwrap();
    gateway
        .execute::<events::vnfd::Vnfd>(
            "d1",
            events::fixtures::onboard("d1"),
            &(),
            &events::fixtures::user(),
        )
        .await
        .unwrap();
    let message = tokio::time::timeout(ANSWER_TIMEOUT, live.next())
        .await
        .expect("the reader sees the event live")
        .unwrap();
    assert_eq!(message.subject.as_str(), names::vnfd_subject("d1"));
    let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(event["aggregate_id"], "d1", "{event}");
    // And reads the log as it stands, as `vnfm audit` does.
    let as_reader = events::store::EventLog::open(reader).await.unwrap();
    let history = as_reader
        .read_subject::<events::vnfd::VnfdEvent>(&names::vnfd_subject("d1"))
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    drop(log);
}

/// A push consumer delivers as the server, not as its creator (nats-server#8274), but only to a
/// subject somebody listens to. Nobody may listen to a table's subjects, so an identity that
/// may follow a stream cannot have it delivered into a table.
#[tokio::test]
async fn no_consumer_can_deliver_a_stream_into_a_table() {
    let server = NatsServer::start().await;
    let log = events::fixtures::log(server.client().await).await;
    let table = format!("$KV.{}.forged", names::VNF_TABLE_BUCKET);
    let mut reader = Attacker::connect(&server, Identity::Reader).await;
    for identity in Identity::ALL {
        let mut listener = Attacker::connect(&server, identity).await;
        assert_eq!(
            listener.try_subscribe(&table).await,
            Outcome::Refused,
            "{identity:?} may not listen to a table's subject"
        );
    }
    let config = json!({
        "stream_name": names::MONITOR_STREAM,
        "config": {"deliver_subject": table, "ack_policy": "none", "deliver_policy": "all"},
    });
    reader
        .try_request(
            &format!("$JS.API.CONSUMER.CREATE.{}", names::MONITOR_STREAM),
            &config.to_string(),
        )
        .await;
    let mut monitor = Attacker::connect(&server, Identity::Monitor).await;
    monitor
        .try_request(&names::failure_subject("v"), "{\"forged\": true}")
        .await;
    // The consumer would deliver within milliseconds; give it ample time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut vnfs = log
        .jetstream()
        .get_stream(format!("KV_{}", names::VNF_TABLE_BUCKET))
        .await
        .unwrap();
    assert_eq!(
        vnfs.info().await.unwrap().state.messages,
        0,
        "the monitor stream was delivered into the VNF table"
    );
}

/// A conductor reaches a registered VIM with its credentials, so it reads that VIM's data key
/// (with the master key), and a VNF's (its VDUs' user_data), and no VNFD's.
#[tokio::test]
async fn a_conductor_opens_a_vims_and_a_vnfs_data_key_and_no_other() {
    use events::keyring::Keyring;
    use events::names::AggregateKind;
    let server = NatsServer::start().await;
    events::fixtures::log(server.client().await).await;
    let id = "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11";
    let master = server.access().master_key();
    let keyring_as = |identity| {
        let (server, master) = (&server, master.clone());
        async move {
            let jetstream = jetstream::new(server.client_as(identity).await);
            Keyring::open(&jetstream, master)
                .await
                .expect("bind the data keys")
        }
    };
    let gateway = keyring_as(Identity::Gateway).await;
    let made = gateway.key_for(AggregateKind::Vim, id).await.unwrap();
    let vnf_key = gateway.key_for(AggregateKind::Vnf, id).await.unwrap();
    gateway.key_for(AggregateKind::Vnfd, id).await.unwrap();
    let conductor = keyring_as(Identity::Conductor).await;
    let read = conductor
        .get(AggregateKind::Vim, id)
        .await
        .expect("a conductor reads a VIM's key")
        .expect("the key is there");
    assert_eq!(read.to_hex(), made.to_hex());
    let read = conductor
        .get(AggregateKind::Vnf, id)
        .await
        .expect("a conductor reads a VNF's key")
        .expect("the key is there");
    assert_eq!(read.to_hex(), vnf_key.to_hex());
    assert!(
        conductor.get(AggregateKind::Vnfd, id).await.is_err(),
        "a conductor may not read a VNFD's key"
    );
}

/// A monitor writes and reads its lifecycle snapshot and the reader reads it (`vnfm
/// verify-snapshot`) with their own rights, and the server refuses them nothing on the way.
#[tokio::test]
async fn a_monitor_writes_and_reads_its_snapshot_and_the_reader_reads_it() {
    use monitor::snapshot::Fold;
    use monitor::snapshot_store::{self, Written};
    let server = NatsServer::start().await;
    events::fixtures::log(server.client().await).await;
    let gateway = events::store::EventLog::open(server.client_as(Identity::Gateway).await)
        .await
        .unwrap();
    let vnf_id = "6b1d4f8e-1f0a-4e49-9a0f-2f4c1c5d7e01";
    let spec = events::fixtures::spec(vec![events::fixtures::vdu("VDU1", None)]);
    gateway
        .execute::<events::vnf::Vnf>(
            vnf_id,
            events::fixtures::create(vnf_id, "d1", spec, "create"),
            &(),
            &events::fixtures::user(),
        )
        .await
        .unwrap();
    let as_identity = |identity| {
        let server = &server;
        async move {
            let log = events::store::EventLog::open(server.client_as(identity).await)
                .await
                .unwrap();
            let store = events::store::open_monitor_snapshots(log.jetstream())
                .await
                .unwrap_or_else(|e| panic!("{identity:?} binds to the snapshot bucket: {e}"));
            (log, store)
        }
    };
    let (log, store) = as_identity(Identity::Monitor).await;
    let mut fold = Fold::default();
    for stored in events::read::subject(
        &log.jetstream().client(),
        log.stream(),
        &names::vnf_subject(vnf_id),
    )
    .await
    .unwrap()
    {
        let envelope = events::envelope::decode::<events::vnf::VnfEvent>(&stored.payload).unwrap();
        fold.apply(stored.sequence, vnf_id, envelope.events);
    }
    // Stored, replaced (the put purges the first version's chunks), and kept over an older.
    for (written, expected) in [
        (Fold::default(), true),
        (fold.clone(), true),
        (Fold::default(), false),
    ] {
        let written = snapshot_store::write(&store, written).await.unwrap();
        assert_eq!(
            matches!(written, Written::Stored { .. }),
            expected,
            "{written:?}"
        );
    }
    assert_eq!(
        snapshot_store::read(&store, log.stream()).await.unwrap(),
        Some(fold.clone())
    );
    let (log, store) = as_identity(Identity::Reader).await;
    let verification = snapshot_store::verify(&store, log.stream())
        .await
        .unwrap()
        .expect("a snapshot");
    assert!(verification.matches(), "{verification:?}");
    assert_eq!(
        server.permission_violations(),
        Vec::<String>::new(),
        "refused on the way"
    );
}
