//! The VNF lifecycle end to end, through the gateway's HTTP API, with real namespaces:
//! onboard → create → ACTIVE with reachable IPs → scale out, in refused inside the policy's
//! cooldown, in → delete → 404, nothing left,
//! VNFD delete refused while used and accepted after; the tables equal a rebuild of the log.

use std::time::Duration;

use serde_json::{Value, json};
use vnfm_tests::{System, answers_ping, mgmt_ips, sample};

/// SP1's cooldown in this test: the sample's 120 s, made short enough to wait out.
const COOLDOWN: Duration = Duration::from_secs(1);

fn status(vnf: &Value) -> &str {
    vnf["vnf"]["status"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_scale_delete_through_the_gateway() {
    let system = System::start().await;

    // Onboard the scaling sample (SP1 scales VDU1 and VDU2 from 2, between 1 and 3).
    let template = sample("tosca-vnfd-scale.yaml").replace(
        "cooldown: 120",
        &format!("cooldown: {}", COOLDOWN.as_secs()),
    );
    let (code, vnfd) = system
        .post(
            "/vnfds.json",
            json!({"vnfd": {"name": "scaling", "attributes": {"vnfd": template}}}),
        )
        .await;
    assert_eq!(code, 201, "{vnfd}");
    let vnfd_id = vnfd["vnfd"]["id"].as_str().unwrap().to_owned();

    // Create: PENDING_CREATE at once, readable at once, then ACTIVE with one IP per instance.
    let (code, vnf) = system
        .post(
            "/vnfs.json",
            json!({"vnf": {"name": "vnf1", "vnfd_id": vnfd_id, "attributes": {}}}),
        )
        .await;
    assert_eq!(code, 201, "{vnf}");
    assert_eq!(status(&vnf), "PENDING_CREATE");
    let vnf_id = vnf["vnf"]["id"].as_str().unwrap().to_owned();
    let (code, shown) = system.get(&format!("/vnfs/{vnf_id}.json")).await;
    assert_eq!(
        code, 200,
        "a show right after a create answered {code}: {shown}"
    );
    let active = system
        .wait_vnf(&vnf_id, "ACTIVE", |_, v| status(v) == "ACTIVE")
        .await;
    let ips = mgmt_ips(&active);
    assert_eq!(ips.len(), 4, "two instances of two VDUs: {active}");
    for ip in &ips {
        assert!(answers_ping(*ip).await, "{ip} does not answer ping");
    }
    let (code, resources) = system.get(&format!("/vnfs/{vnf_id}/resources.json")).await;
    assert_eq!(code, 200, "{resources}");
    assert_eq!(resources["resources"].as_array().unwrap().len(), 4);

    // The VNFD cannot go while the VNF uses it.
    let (code, refused) = system.delete(&format!("/vnfds/{vnfd_id}.json")).await;
    assert_eq!(code, 409, "{refused}");
    assert!(
        refused["TackerError"]["message"]
            .as_str()
            .unwrap()
            .contains(&vnf_id)
    );

    // Scale out: one more instance of each target VDU; then a second scale out exceeds max.
    let scale = |kind: &str| json!({"scale": {"type": kind, "policy": "SP1"}});
    let (code, body) = system
        .post(&format!("/vnfs/{vnf_id}/actions.json"), scale("out"))
        .await;
    assert!(code == 201 || code == 202, "{code} {body}");
    let scaled = system
        .wait_vnf(&vnf_id, "scaled out", |_, v| {
            status(v) == "ACTIVE" && mgmt_ips(v).len() == 6
        })
        .await;
    let new_ips: Vec<_> = mgmt_ips(&scaled)
        .into_iter()
        .filter(|ip| !ips.contains(ip))
        .collect();
    assert_eq!(new_ips.len(), 2);
    for ip in &new_ips {
        assert!(
            answers_ping(*ip).await,
            "scaled-out {ip} does not answer ping"
        );
    }
    let (code, body) = system
        .post(&format!("/vnfs/{vnf_id}/actions.json"), scale("out"))
        .await;
    assert_eq!(code, 409, "beyond max_instances: {body}");
    assert!(
        body["TackerError"]["message"]
            .as_str()
            .unwrap()
            .contains("max_instances")
    );

    // Scale in, at once: SP1 is cooling down (the sample's 120 s made 1 s here).
    let (code, body) = system
        .post(&format!("/vnfs/{vnf_id}/actions.json"), scale("in"))
        .await;
    assert_eq!(code, 409, "inside the cooldown: {body}");
    assert_eq!(body["TackerError"]["type"], "VNFScaleCooldown", "{body}");
    assert!(
        body["TackerError"]["message"]
            .as_str()
            .unwrap()
            .contains("retry in 1 s"),
        "{body}"
    );

    // Scale in after the cooldown: back to four, and the removed instances are gone.
    tokio::time::sleep(COOLDOWN).await;
    let (code, body) = system
        .post(&format!("/vnfs/{vnf_id}/actions.json"), scale("in"))
        .await;
    assert!(code == 201 || code == 202, "{code} {body}");
    let scaled_in = system
        .wait_vnf(&vnf_id, "scaled in", |_, v| {
            status(v) == "ACTIVE" && mgmt_ips(v).len() == 4
        })
        .await;
    for ip in &new_ips {
        assert!(!mgmt_ips(&scaled_in).contains(ip));
        assert!(!answers_ping(*ip).await, "scaled-in {ip} still answers");
    }

    // The events API tells the story from the log.
    let (code, events) = system
        .get(&format!(
            "/events.json?resource_id={vnf_id}&resource_type=vnf"
        ))
        .await;
    assert_eq!(code, 200, "{events}");
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"CREATE") && types.contains(&"SCALE"),
        "{types:?}"
    );

    // Delete: PENDING_DELETE, then 404, and no namespace left behind.
    let (code, body) = system.delete(&format!("/vnfs/{vnf_id}.json")).await;
    assert_eq!(code, 204, "{body}");
    system
        .wait_vnf(&vnf_id, "deleted (404)", |code, _| code == 404)
        .await;
    assert!(
        system.remnants().is_empty(),
        "left behind: {:?}",
        system.remnants()
    );
    for ip in &ips {
        assert!(!answers_ping(*ip).await, "{ip} answers after the delete");
    }

    // Now the VNFD can go (the release is recorded right after the delete).
    system
        .delete_released_vnfd(&format!("/vnfds/{vnfd_id}.json"))
        .await;
    let (code, _) = system.get(&format!("/vnfds/{vnfd_id}.json")).await;
    assert_eq!(code, 404);

    // The live tables equal a rebuild of the log.
    let verification = projector::verify(&system.log, &system.tables, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(verification.differences, Vec::<String>::new());
    assert_eq!(verification.compared, 2, "one VNF and one VNFD row");
}
