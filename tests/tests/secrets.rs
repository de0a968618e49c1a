//! Secrets never sit in the log in clear: a password planted in a VNFD's `user_data` and in a
//! VNF's `param_values` is sealed before it is appended (the raw lifecycle stream, read as the
//! reader identity, holds neither), shown to the owning project's member, hidden from its
//! reader and from lists, and unreadable for good once the VNF and the VNFD are deleted (their
//! data keys are destroyed), while their events stay and `rebuild --verify` is still exact.

use async_nats::jetstream;
use events::keyring::Keyring;
use events::names::{self, AggregateKind};
use events::read::StreamRead;
use events::secrets::HIDDEN;
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{Identity, eventually};
use vnfm_tests::{Options, PATIENCE, System, call, client_with, sample, token_file};

const VNFD_PASSWORD: &str = "vnfd-pw-5UP3R-s3cret";
const VNF_PASSWORD: &str = "vnf-pw-h4Xx0r-s3cret";

/// Every lifecycle message's payload, as the reader identity (`nats sub`, `vnfm audit`) gets it.
async fn raw_lifecycle(system: &System) -> Vec<String> {
    let reader = jetstream::new(system.nats.client_as(Identity::Reader).await);
    let stream = reader
        .get_stream(names::LIFECYCLE_STREAM)
        .await
        .expect("the reader reads the lifecycle stream");
    let mut read = StreamRead::open(&stream, names::LIFECYCLE_SUBJECTS, 1)
        .await
        .expect("a replay");
    let mut payloads = Vec::new();
    while let Some(message) = read.next().await.expect("the replay goes on") {
        payloads.push(String::from_utf8_lossy(&message.payload).into_owned());
    }
    payloads
}

fn holds(body: &Value, text: &str) -> bool {
    body.to_string().contains(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_on_the_log_shown_to_owners_and_shredded_with_their_vnf() {
    let (tokens, _dir) = token_file(&[
        ("t-alice", "alice", "p1", "member"),
        ("t-rita", "rita", "p1", "reader"),
    ]);
    let system = System::start_with(Options {
        auth: Some(tokens),
        ..Options::default()
    })
    .await;
    let api = &system.api;
    let (alice, rita) = (client_with("t-alice"), client_with("t-rita"));

    let template = sample("tosca-vnfd-monitoring-vdu-autoheal.yaml")
        .replace("sleep 90", &format!("echo {VNFD_PASSWORD} | passwd"));
    let body = json!({"vnfd": {"name": "secret", "attributes": {"vnfd": template}}});
    let (code, made) = call(&alice, api, Method::POST, "/vnfds", Some(body)).await;
    assert_eq!(code, 201, "{made}");
    assert!(
        holds(&made, VNFD_PASSWORD),
        "the owner sees the template: {made}"
    );
    let vnfd_id = made["vnfd"]["id"].as_str().unwrap().to_owned();
    let body = json!({"vnf": {"name": "secret", "vnfd_id": vnfd_id,
        "attributes": {"param_values": {"admin_password": VNF_PASSWORD}}}});
    let (code, made) = call(&alice, api, Method::POST, "/vnfs", Some(body)).await;
    assert_eq!(code, 201, "{made}");
    let vnf_id = made["vnf"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        made["vnf"]["attributes"]["param_values"]["admin_password"], VNF_PASSWORD,
        "the owner sees what it gave: {made}"
    );

    let payloads = raw_lifecycle(&system).await;
    assert!(payloads.len() >= 2, "{payloads:?}");
    for payload in &payloads {
        assert!(
            !payload.contains(VNFD_PASSWORD) && !payload.contains(VNF_PASSWORD),
            "a secret in clear on the log: {payload}"
        );
    }
    assert!(
        payloads
            .iter()
            .any(|p| p.contains(events::secrets::SEALED_TAG)),
        "nothing sealed on the log: {payloads:?}"
    );

    let vnfd_path = format!("/vnfds/{vnfd_id}");
    let vnf_path = format!("/vnfs/{vnf_id}");
    let (_, shown) = call(&alice, api, Method::GET, &vnfd_path, None).await;
    assert!(holds(&shown, VNFD_PASSWORD), "{shown}");
    let (_, shown) = call(&alice, api, Method::GET, &vnf_path, None).await;
    assert!(holds(&shown, VNF_PASSWORD), "{shown}");
    for path in [
        &vnfd_path,
        &vnf_path,
        &"/vnfs".to_owned(),
        &"/vnfds".to_owned(),
    ] {
        let (code, shown) = call(&rita, api, Method::GET, path, None).await;
        assert_eq!(code, 200, "{path}: {shown}");
        assert!(
            !holds(&shown, VNFD_PASSWORD) && !holds(&shown, VNF_PASSWORD) && holds(&shown, HIDDEN),
            "the reader sees a secret at {path}: {shown}"
        );
    }
    let (_, listed) = call(&alice, api, Method::GET, "/vnfs", None).await;
    assert!(
        !holds(&listed, VNF_PASSWORD),
        "a list shows a secret: {listed}"
    );

    // A VNF is deleted once its create is done (PENDING_CREATE refuses a delete).
    eventually(format!("{vnf_path} is ACTIVE"), PATIENCE, || async {
        match call(&alice, api, Method::GET, &vnf_path, None).await {
            (200, vnf) if vnf["vnf"]["status"] == "ACTIVE" => Ok(()),
            (_, other) => Err(other),
        }
    })
    .await;
    let (code, body) = call(&alice, api, Method::DELETE, &vnf_path, None).await;
    assert_eq!(code, 204, "{body}");
    eventually(format!("{vnfd_path} is deleted"), PATIENCE, || async {
        match call(&alice, api, Method::DELETE, &vnfd_path, None).await {
            (204, _) => Ok(()),
            (409, body) => Err(body),
            (code, body) => panic!("DELETE {vnfd_path}: {code} {body}"),
        }
    })
    .await;

    // The data keys are destroyed: no gateway, with the master key, can open the events'
    // secrets any more, and the events stay.
    let keyring = Keyring::open(
        &jetstream::new(system.nats.client_as(Identity::Gateway).await),
        system.nats.access().master_key(),
    )
    .await
    .expect("the keyring");
    for (kind, id) in [
        (AggregateKind::Vnf, &vnf_id),
        (AggregateKind::Vnfd, &vnfd_id),
    ] {
        eventually(
            format!("the data key of {kind:?} {id} is destroyed"),
            PATIENCE,
            || {
                let keyring = &keyring;
                async move {
                    match keyring.get(kind, id).await {
                        Ok(None) => Ok(()),
                        Ok(Some(_)) => Err("still there".to_owned()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            },
        )
        .await;
    }
    let after = raw_lifecycle(&system).await;
    assert!(after.len() > payloads.len(), "the events stay");
    let (_, events) = call(&alice, api, Method::GET, "/events", None).await;
    assert!(
        !holds(&events, VNFD_PASSWORD) && !holds(&events, VNF_PASSWORD),
        "{events}"
    );
    system.verify_tables().await;
}
