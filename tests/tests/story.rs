//! The operator's words, end to end: `vnfm audit` tells a VNF's respawn, scale out and delete
//! as a story, one line per event, and `vnfm tail` shows a heal as it happens, both as the
//! reader identity against every role.

use std::time::Duration;

use events::vnf::VnfStatus;
use vnfm_tests::{PATIENCE, System, monitored_vnfd};

/// How long a tail has to print a line once the log holds its message: far more than a
/// delivery takes, well under a heal's own wait.
const TAIL_LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// The lines of a `vnfm` run's output that are story lines (the log's own lines name a level).
fn story_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|line| line.starts_with("20") && line.contains("  +"))
        .filter(|line| !line.contains(" INFO ") && !line.contains(" WARN "))
        .collect()
}

/// The index of the first of `lines` after `from` that contains `needle`.
fn find(lines: &[&str], from: usize, needle: &str) -> usize {
    lines[from..]
        .iter()
        .position(|line| line.contains(needle))
        .map_or_else(
            || panic!("no line with {needle:?} after line {from} in:\n{lines:#?}"),
            |at| from + at,
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_tells_a_respawn_a_scale_out_and_a_delete_and_tail_shows_the_heal_live() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "respawn", false))
        .await;
    let old = system.probed_instance(&vnf_id, 0).await;

    // Tails started now see only what happens from now on.
    let mut tail_one = system.spawn_role("tail --vnf", &["tail", "--vnf", &vnf_id]);
    let mut tail_all = system.spawn_role("tail", &["tail"]);
    for tail in [&mut tail_one, &mut tail_all] {
        tail.wait_for_log("Tailing the log.", PATIENCE).await;
    }
    assert!(
        !tail_one.log().contains("create requested"),
        "a tail told the past:\n{}",
        tail_one.log()
    );

    system.kill_vdu(&old.instance_id).await;
    let down = format!("VDU VDU1 {} down (monitor-", old.mgmt_ip);
    tail_one.wait_for_log(&down, TAIL_LINE_TIMEOUT).await;
    tail_one
        .wait_for_log("respawn claimed by conductor-", TAIL_LINE_TIMEOUT)
        .await;
    tail_one
        .wait_for_log("after the failure", TAIL_LINE_TIMEOUT)
        .await;
    // Following every VNF, each line names its VNF.
    let short_id = &vnf_id[..gateway::story::SHORT_ID_CHARS];
    tail_all
        .wait_for_log("after the failure", TAIL_LINE_TIMEOUT)
        .await;
    let all = tail_all.log();
    let healed_line = story_lines(&all)
        .into_iter()
        .find(|line| line.contains("after the failure"))
        .unwrap_or_else(|| panic!("no heal line in:\n{all}"))
        .to_owned();
    assert!(
        healed_line.contains(&format!("Z  {short_id}  ")),
        "{healed_line}"
    );
    let healed = system.wait_respawned(&vnf_id, &old).await;
    let new = &healed.instances[0];
    assert!(
        healed_line.contains(&format!("ACTIVE with VDU1 {}, ", new.mgmt_ip)),
        "{healed_line}"
    );

    let scale = serde_json::json!({"scale": {"type": "out", "policy": "SP1"}});
    let (code, body) = system.post(&format!("/vnfs/{vnf_id}/actions"), scale).await;
    assert_eq!(code, 201, "{body}");
    let out = system
        .wait_log(&vnf_id, "scaled out", |v| {
            v.status == Some(VnfStatus::Active) && v.instances.len() == 2
        })
        .await;
    let added = &out.instances[1];
    let (code, body) = system.delete(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(code, 204, "{body}");
    system
        .wait_vnf(&vnf_id, "deleted (404)", |code, _| code == 404)
        .await;

    let mut audit = system.spawn_role("audit", &["audit", &vnf_id]);
    let exit = audit.wait_exit(PATIENCE).await;
    let printed = audit.log();
    assert!(exit.success(), "vnfm audit: {exit}\n{printed}");
    let lines = story_lines(&printed);
    // The story in order, each line found after the one before.
    let mut at = find(&lines, 0, "create requested by anonymous (admin) from VNFD");
    assert!(
        lines[at].contains("  +0.000s  anonymous (admin) "),
        "{}",
        lines[at]
    );
    for needle in [
        &format!("ACTIVE with VDU1 {}", old.mgmt_ip),
        &down,
        "failed pings: ",
        "respawn claimed by conductor-",
        &format!("ACTIVE with VDU1 {}, ", new.mgmt_ip),
        "after the failure",
        "scale out by policy SP1 requested by anonymous (admin): 1 instance to add",
        &format!("scaled out: VDU1 {} added", added.mgmt_ip),
        "delete requested by anonymous (admin)",
        " deleted",
    ] {
        at = find(&lines, at, needle);
    }
    assert!(
        !printed.contains("\"type\""),
        "the story printed raw events:\n{printed}"
    );

    // --json: the stored messages as they are; --until before the VNF existed: nothing.
    let mut raw = system.spawn_role("audit --json", &["audit", &vnf_id, "--json"]);
    assert!(raw.wait_exit(PATIENCE).await.success(), "{}", raw.log());
    assert!(raw.log().contains("\"HealCompleted\""), "{}", raw.log());
    let mut before = system.spawn_role(
        "audit --until",
        &["audit", &vnf_id, "--until", "2000-01-01T00:00:00Z"],
    );
    assert!(
        before.wait_exit(PATIENCE).await.success(),
        "{}",
        before.log()
    );
    assert_eq!(story_lines(&before.log()), Vec::<&str>::new());

    // The tails saw the scale and the delete too, and stop on SIGTERM.
    tail_one.wait_for_log(" deleted\n", TAIL_LINE_TIMEOUT).await;
    for tail in [&mut tail_one, &mut tail_all] {
        tail.terminate();
        let status = tail.wait_exit(PATIENCE).await;
        assert!(
            status.success(),
            "{}: {status}\n{}",
            tail.label(),
            tail.log()
        );
    }
}
