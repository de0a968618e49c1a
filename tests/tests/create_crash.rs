//! Issue 9, item 2: a gateway killed (kill -9) at any point of a VNF create leaves no VNFD "in
//! use" by a VNF that does not exist. The gateway runs as a separate `vnfm gateway` process
//! started with the hidden `--stop-at`; the create hangs there and the process is killed. A
//! second gateway (the system's own) then shows what is left: either no VNF at all, or a VNF
//! that a conductor finishes and that can be deleted; either way the VNFD can be deleted.

use std::time::Duration;

use gateway::CreateStopPoint;
use serde_json::{Value, json};
use testkit::eventually;
use vnfm_tests::{ANY_LOOPBACK_PORT, PATIENCE, System, monitored_vnfd};

/// How long the stopping gateway may take to start: a debug build connecting to a local server.
const GATEWAY_START_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the create's VNFD comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vnfd {
    /// Onboarded first, named by `vnfd_id`.
    Onboarded,
    /// Given inline as `vnfd_template`.
    Inline,
}

/// The ids in a list answer's `key` array.
fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// A gateway started with `--stop-at point` is killed there during a create from `vnfd`; the
/// VNF then either does not exist or is finished and deleted, and the VNFD can be deleted.
async fn a_gateway_killed_at(point: CreateStopPoint, vnfd: Vnfd) {
    let system = System::start_separate().await;
    let _conductor = system.spawn_conductor("conductor-1", &[]).await;
    let mut stopping = system.spawn_role(
        "gateway-stopping",
        &[
            "gateway",
            "--listen",
            ANY_LOOPBACK_PORT,
            "--stop-at",
            point.as_str(),
        ],
    );
    let listen = stopping
        .wait_for_listen_address(GATEWAY_START_TIMEOUT)
        .await;

    let template = monitored_vnfd("ping", "log", false);
    let mut vnf = json!({"name": "crashed"});
    match vnfd {
        Vnfd::Onboarded => vnf["vnfd_id"] = system.onboard(&template).await.into(),
        Vnfd::Inline => vnf["vnfd_template"] = template.into(),
    }
    let create = system
        .http
        .post(format!("http://{listen}/v1.0/vnfs"))
        .header("X-Auth-Token", "")
        .json(&json!({ "vnf": vnf }))
        .send();
    let create = tokio::spawn(create);
    stopping.wait_for_log("Stop point reached", PATIENCE).await;
    stopping.kill();
    let answer = create.await.expect("the request task");
    assert!(answer.is_err(), "the killed gateway answered: {answer:?}");

    // What the killed gateway left, as the surviving gateway shows it once its copy of the
    // table has the killed gateway's last append (an inline VNFD is onboarded by that one).
    let vnfd_id = &eventually(
        "one VNFD, onboarded or inline, is listed",
        PATIENCE,
        || async {
            let (code, vnfds) = system.get("/vnfds?template_source=all").await;
            match ids(&vnfds, "vnfds").as_slice() {
                [vnfd_id] if code == 200 => Ok(vnfd_id.clone()),
                _ => Err(format!("{code} {vnfds}")),
            }
        },
    )
    .await;
    if point == CreateStopPoint::AfterCreate {
        // The create is recorded: a conductor finishes it, and then it can be deleted.
        let vnf_id = eventually("the recorded VNF is listed", PATIENCE, || async {
            let (_, vnfs) = system.get("/vnfs").await;
            ids(&vnfs, "vnfs").pop().ok_or(vnfs)
        })
        .await;
        system
            .wait_vnf(&vnf_id, "ACTIVE", |code, body| {
                code == 200 && body["vnf"]["status"] == "ACTIVE"
            })
            .await;
        // The conductor took the VNFD into use, as the killed gateway could not.
        let (code, body) = system.delete(&format!("/vnfds/{vnfd_id}")).await;
        assert_eq!(code, 409, "{body}");
        let (code, body) = system.delete(&format!("/vnfs/{vnf_id}")).await;
        assert_eq!(code, 204, "{body}");
        system
            .wait_vnf(&vnf_id, "deleted (404)", |code, _| code == 404)
            .await;
    }
    let (code, vnfs) = system.get("/vnfs").await;
    assert_eq!(
        (code, ids(&vnfs, "vnfs")),
        (200, vec![]),
        "no VNF half-exists"
    );

    // The VNFD is used by nothing, once the conductor has recorded the release of a deleted VNF.
    let path = format!("/vnfds/{vnfd_id}");
    system.delete_released_vnfd(&path).await;
    let (code, _) = system.get(&path).await;
    assert_eq!(code, 404);
    // A create from the deleted VNFD is refused up front, and records nothing.
    let body = json!({"vnf": {"name": "late", "vnfd_id": vnfd_id}});
    let (code, refused) = system.post("/vnfs", body).await;
    assert_eq!(code, 404, "{refused}");
    let (_, vnfs) = system.get("/vnfs").await;
    assert_eq!(ids(&vnfs, "vnfs"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_after_onboarding_an_inline_vnfd_leaves_it_deletable() {
    a_gateway_killed_at(CreateStopPoint::AfterInlineVnfd, Vnfd::Inline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_before_recording_the_create_leaves_the_vnfd_deletable() {
    a_gateway_killed_at(CreateStopPoint::BeforeCreate, Vnfd::Onboarded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_before_recording_an_inline_create_leaves_the_vnfd_deletable() {
    a_gateway_killed_at(CreateStopPoint::BeforeCreate, Vnfd::Inline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_after_recording_the_create_leaves_a_vnf_that_can_be_deleted() {
    a_gateway_killed_at(CreateStopPoint::AfterCreate, Vnfd::Onboarded).await;
}
