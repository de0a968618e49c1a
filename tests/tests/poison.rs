//! Messages that do not decode, appended by an identity allowed to write there (a gateway to a
//! VNF's lifecycle subject, a monitor to the monitor stream), never make the VNF unusable: show, scale, events, delete, audit and
//! rebuild all still work, and every one of them says which message was skipped.

use async_nats::jetstream;
use serde_json::{Value, json};
use testkit::Identity;
use vnfm_tests::{System, mgmt_ips, sample};

/// Garbage, and a well-formed envelope (or monitor message) of an event type no build knows.
fn poison(vnf_id: &str) -> [Vec<u8>; 2] {
    let unknown_type = json!({
        "schema_version": 2, "aggregate": "vnf", "aggregate_id": vnf_id,
        "actor": {"kind": "user", "id": "mallory"}, "command_id": "c", "correlation_id": "c",
        "causation_id": "c", "recorded_at": "2026-11-25T10:00:00Z",
        "events": [{"type": "Exploded"}],
    });
    [
        b"\x00 not JSON {".to_vec(),
        unknown_type.to_string().into_bytes(),
    ]
}

/// Publishes `payloads` on `subject` as `identity` (one allowed to write there, which could be
/// compromised or buggy); answers their stream sequences.
async fn append(
    system: &System,
    identity: Identity,
    subject: &str,
    payloads: [Vec<u8>; 2],
) -> Vec<u64> {
    let client = system.nats.client_as(identity).await;
    let jetstream = jetstream::new(client);
    let mut sequences = Vec::new();
    for payload in payloads {
        let ack = jetstream
            .publish(subject.to_owned(), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
        sequences.push(ack.sequence);
    }
    sequences
}

fn status(vnf: &Value) -> &str {
    vnf["vnf"]["status"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_do_not_decode_are_skipped_everywhere_and_shown_as_skipped() {
    let system = System::start().await;
    let vnf_id = system.active_vnf(&sample("tosca-vnfd-scale.yaml")).await;
    let lifecycle_subject = events::names::vnf_subject(&vnf_id);
    let poisoned = append(
        &system,
        Identity::Gateway,
        &lifecycle_subject,
        poison(&vnf_id),
    )
    .await;
    let failure_subject = events::names::failure_subject(&vnf_id);
    append(
        &system,
        Identity::Monitor,
        &failure_subject,
        poison(&vnf_id),
    )
    .await;

    // Show.
    let (code, shown) = system.get(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(code, 200, "{shown}");
    assert_eq!(status(&shown), "ACTIVE", "{shown}");
    let before = mgmt_ips(&shown).len();

    // Scale out: decided on the messages that decode, appended behind the skipped ones.
    let (code, body) = system
        .post(
            &format!("/vnfs/{vnf_id}/actions"),
            json!({"scale": {"type": "out", "policy": "SP1"}}),
        )
        .await;
    assert!(code == 201 || code == 202, "{code} {body}");
    system
        .wait_vnf(&vnf_id, "scaled out", |_, v| {
            status(v) == "ACTIVE" && mgmt_ips(v).len() > before
        })
        .await;

    // Events: the history, with one event per skipped message saying so.
    let (code, listed) = system.get(&format!("/events?resource_id={vnf_id}")).await;
    assert_eq!(code, 200, "{listed}");
    let details: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_details"].as_str().unwrap())
        .collect();
    for sequence in &poisoned {
        let skipped = format!("message #{sequence} skipped");
        assert!(
            details.iter().any(|d| d.contains(&skipped)),
            "no event says {skipped}: {details:#?}"
        );
    }
    assert!(
        details.iter().any(|d| d.contains("scale completed")),
        "{details:#?}"
    );

    // Audit as stored: the whole history, and the skipped messages named.
    let mut audit = system.spawn_role("audit", &["audit", &vnf_id, "--json"]);
    let exit = audit.wait_exit(vnfm_tests::PATIENCE).await;
    let printed = audit.log();
    assert!(exit.success(), "vnfm audit: {exit}\n{printed}");
    for sequence in &poisoned {
        let skipped = format!("lifecycle message #{sequence} skipped");
        assert!(printed.contains(&skipped), "{skipped} not in:\n{printed}");
    }
    assert!(printed.contains("ScaleCompleted"), "{printed}");
    // The user and project of each request: the gateway's `--auth none` caller.
    assert!(
        printed.contains("by user:anonymous (project admin) (command"),
        "{printed}"
    );

    // Delete: the VNF goes.
    let (code, body) = system.delete(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(code, 204, "{body}");
    system
        .wait_vnf(&vnf_id, "deleted (404)", |code, _| code == 404)
        .await;

    // Rebuild: the live tables equal the log with the same messages skipped.
    let verification = projector::verify(
        &system.log,
        &system.tables,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(verification.differences, Vec::<String>::new());
    let skipped: Vec<u64> = verification
        .undecodable
        .iter()
        .map(|s| s.sequence)
        .collect();
    assert_eq!(skipped, poisoned);
    system.verify_tables().await;
}
