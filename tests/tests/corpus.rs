//! Every legacy VNFD Tacker accepted (`crates/vnfd/tests/corpus/`, see its `table.json`)
//! onboards, instantiates to ACTIVE (with Tacker's own param file where the table gives one),
//! and is deleted cleanly, VNF and VNFD, leaving nothing in the kernel.

use serde_json::{Value, json};
use vnfm_tests::System;

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/vnfd/tests/corpus");

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{CORPUS_DIR}/{file}"))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vnfd_tacker_accepted_instantiates_and_deletes_cleanly() {
    let table: Value = serde_json::from_str(&read("table.json")).expect("table.json is JSON");
    let system = System::start().await;
    let mut instantiated = 0;
    for row in table["vnfds"].as_array().expect("a list of VNFDs") {
        if row["tacker"] != "accepted" {
            continue;
        }
        let file = row["file"].as_str().expect("a file");
        let (code, onboarded) = system
            .post(
                "/vnfds",
                json!({"vnfd": {"name": format!("corpus-{instantiated}"),
                                "attributes": {"vnfd": read(file)}}}),
            )
            .await;
        assert_eq!(code, 201, "{file}: {onboarded}");
        let vnfd_id = onboarded["vnfd"]["id"].as_str().expect("an id").to_owned();
        let mut attributes = json!({});
        if let Some(params) = row["param_values"].as_str() {
            attributes["param_values"] = json!(read(params));
        }
        let (code, created) = system
            .post(
                "/vnfs",
                json!({"vnf": {"name": format!("corpus-{instantiated}"), "vnfd_id": vnfd_id,
                               "attributes": attributes}}),
            )
            .await;
        assert_eq!(code, 201, "{file}: {created}");
        let vnf_id = created["vnf"]["id"].as_str().expect("an id").to_owned();
        system
            .wait_vnf(&vnf_id, &format!("ACTIVE ({file})"), |code, vnf| {
                assert_ne!(vnf["vnf"]["status"], "ERROR", "{file}: {vnf}");
                code == 200 && vnf["vnf"]["status"] == "ACTIVE"
            })
            .await;
        let (code, body) = system.delete(&format!("/vnfs/{vnf_id}")).await;
        assert!(code == 204 || code == 202, "{file}: {code} {body}");
        system
            .wait_vnf(&vnf_id, &format!("deleted ({file})"), |code, _| code == 404)
            .await;
        system
            .delete_released_vnfd(&format!("/vnfds/{vnfd_id}"))
            .await;
        instantiated += 1;
    }
    assert!(instantiated > 60, "{instantiated} instantiated");
    let remnants = system.remnants();
    assert!(remnants.is_empty(), "left in the kernel: {remnants:?}");
}
