//! Monitoring and healing end to end: the specification's own scenarios (instantiation,
//! deletion, scale) and every policy action, with real ICMP and HTTP against namespaces the
//! local VIM creates. "Probed" is read from the monitor stream, never assumed.

use std::time::Duration;

use events::vnf::{RespawnLimit, VnfEvent, VnfStatus};
use time::OffsetDateTime;
use vnfm_tests::{Options, System, monitored_vnfd};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Scenario 1: the monitor job exists under the VNF's action id, the ping runs, an unreachable
/// VDU is respawned once, and the new management IP is probed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instantiation_ping_respawn_and_the_new_ip_is_probed() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "respawn", false))
        .await;
    let vnf = system.vnf(&vnf_id).await;
    let action_id = vnf.action_id.clone().expect("a monitor action id");
    let old = vnf.instances[0].clone();
    let (_, shown) = system.get(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(shown["vnf"]["action_id"], action_id.as_str());

    let probed = system.wait_probed(old.mgmt_ip, old.booted_at, true).await;
    assert_eq!(probed.target.action_id, action_id);
    assert_eq!(probed.target.instance_id, old.instance_id);
    let shown = system
        .wait_vnf(&vnf_id, "shown up", |_, v| {
            v["vnf"]["monitor"]["VDU1"][0]["state"] == "up"
        })
        .await;
    assert!(
        shown["vnf"]["monitor"]["VDU1"][0]["last_result"]["rtt_us"].is_u64(),
        "{shown}"
    );

    system.kill_vdu(&old.instance_id).await;
    let healed = system
        .wait_log(&vnf_id, "respawned", |v| {
            v.status == Some(VnfStatus::Active) && v.instances[0].instance_id != old.instance_id
        })
        .await;
    let new = &healed.instances[0];
    assert_ne!(
        new.mgmt_ip, old.mgmt_ip,
        "a respawn gives a new management IP"
    );
    assert_eq!(healed.failure_count, 1);
    assert_eq!(healed.dead_instances, vec![old.instance_id.clone()]);
    system.wait_probed(new.mgmt_ip, new.booted_at, true).await;

    // One failure, one respawn: the story in the log names monitor, conductor and action id.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events: Vec<_> = system.history(&vnf_id).await;
    let heals: Vec<_> = events
        .iter()
        .filter(|r| {
            r.envelope
                .events
                .iter()
                .any(|e| matches!(e, VnfEvent::HealStarted { .. }))
        })
        .collect();
    assert_eq!(heals.len(), 1, "exactly one respawn");
    let VnfEvent::HealStarted { failure, .. } = &heals[0].envelope.events[0] else {
        unreachable!()
    };
    assert_eq!(failure.target.action_id, action_id);
    assert_eq!(failure.target.instance_id, old.instance_id);
    assert!(
        failure.monitor.id.starts_with("monitor-"),
        "{:?}",
        failure.monitor
    );
    assert!(heals[0].envelope.cause.actor.id.starts_with("conductor-"));
    assert_eq!(heals[0].envelope.cause.correlation_id, failure.failure_id);
    let (_, listed) = system
        .get(&format!("/events?resource_id={vnf_id}&event_type=HEAL"))
        .await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 2, "{listed}");
}

/// Scenario 2: deleting an ACTIVE VNF stops every probe of its IPs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_stops_the_monitor_job() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "respawn", true))
        .await;
    let vnf = system.vnf(&vnf_id).await;
    let ips: Vec<_> = vnf.instances.iter().map(|i| i.mgmt_ip).collect();
    for instance in &vnf.instances {
        system
            .wait_probed(instance.mgmt_ip, instance.booted_at, true)
            .await;
    }
    let (code, _) = system.delete(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(code, 204);
    system
        .wait_vnf(&vnf_id, "deleted", |code, _| code == 404)
        .await;
    // Attempts already running when the delete landed may still report; none may start later.
    let settled = now() + time::Duration::seconds(2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let late: Vec<_> = system
        .probe_results()
        .await
        .into_iter()
        .filter(|r| ips.contains(&r.target.mgmt_ip) && r.at > settled)
        .collect();
    assert!(late.is_empty(), "probed after the delete: {late:?}");
    assert!(system.remnants().is_empty());
}

/// Scenario 3: scale out and the monitor probes one more IP; scale in and the removed IP is no
/// longer probed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_changes_the_probed_ips() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "respawn", false))
        .await;
    let first = system.probed_instance(&vnf_id, 0).await;
    let scale = |kind: &str| serde_json::json!({"scale": {"type": kind, "policy": "SP1"}});
    let (code, body) = system
        .post(&format!("/vnfs/{vnf_id}/actions"), scale("out"))
        .await;
    assert_eq!(code, 201, "{body}");
    let out = system
        .wait_log(&vnf_id, "scaled out", |v| {
            v.status == Some(VnfStatus::Active) && v.instances.len() == 2
        })
        .await;
    let added = out.instances[1].clone();
    system
        .wait_probed(added.mgmt_ip, added.booted_at, true)
        .await;

    let (code, body) = system
        .post(&format!("/vnfs/{vnf_id}/actions"), scale("in"))
        .await;
    assert_eq!(code, 201, "{body}");
    system
        .wait_log(&vnf_id, "scaled in", |v| {
            v.status == Some(VnfStatus::Active) && v.instances.len() == 1
        })
        .await;
    let settled = now() + time::Duration::seconds(2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let results = system.probe_results().await;
    assert!(
        !results
            .iter()
            .any(|r| r.target.mgmt_ip == added.mgmt_ip && r.at > settled),
        "the removed IP is still probed"
    );
    assert!(
        results
            .iter()
            .any(|r| r.target.mgmt_ip == first.mgmt_ip && r.at > settled),
        "the remaining IP is no longer probed"
    );
}

/// Beyond Tacker: a VDU that fails after every heal stops at the limit, in ERROR with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_vdu_stops_at_the_respawn_limit() {
    let system = System::start_with(Options {
        respawn_limit: RespawnLimit {
            heals_max: 2,
            window: time::Duration::minutes(10),
        },
        ..Options::default()
    })
    .await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "respawn", false))
        .await;
    for heal in 1..=2 {
        let instance = system.probed_instance(&vnf_id, 0).await;
        system.kill_vdu(&instance.instance_id).await;
        system
            .wait_log(&vnf_id, "healed", |v| {
                v.failure_count == heal && v.status == Some(VnfStatus::Active)
            })
            .await;
    }
    let instance = system.probed_instance(&vnf_id, 0).await;
    system.kill_vdu(&instance.instance_id).await;
    let given_up = system
        .wait_log(&vnf_id, "given up", |v| v.status == Some(VnfStatus::Error))
        .await;
    assert_eq!(given_up.failure_count, 2, "no third heal");
    assert!(given_up.error_reason.unwrap().contains("limit of 2"));
    let (_, shown) = system.get(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(shown["vnf"]["status"], "ERROR");
    assert!(
        shown["vnf"]["error_reason"]
            .as_str()
            .unwrap()
            .contains("limit")
    );
}

/// `log` records the failure once per episode and touches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_records_one_failure_per_episode() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "log", false))
        .await;
    let instance = system.probed_instance(&vnf_id, 0).await;
    system.kill_vdu(&instance.instance_id).await;
    system
        .wait_log(&vnf_id, "logged", |v| v.failure_count == 1)
        .await;
    // The VDU stays down for several more rounds: still one record.
    let down_since = now();
    system
        .wait_probed(
            instance.mgmt_ip,
            down_since + time::Duration::seconds(2),
            false,
        )
        .await;
    let vnf = system.vnf(&vnf_id).await;
    assert_eq!(vnf.failure_count, 1);
    assert_eq!(vnf.status, Some(VnfStatus::Active));
    assert_eq!(vnf.instances[0].instance_id, instance.instance_id);
    let shown = system
        .wait_vnf(&vnf_id, "shown down", |_, v| {
            v["vnf"]["monitor"]["VDU1"][0]["state"] == "down"
        })
        .await;
    assert!(shown["vnf"]["monitor"]["VDU1"][0]["since"].is_string());
}

/// A VDU that stops answering (no ICMP error either) holds up no other VDU's probes: its attempts run to their
/// timeout, here twice the interval, while the others keep to their interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_vdu_does_not_slow_the_probing_of_the_others() {
    let system = System::start().await;
    let template = monitored_vnfd("ping", "log", false);
    let vnf_ids = system.active_vnfs(&template, 2).await;
    let dead = system.probed_instance(&vnf_ids[0], 0).await;
    let alive = system.probed_instance(&vnf_ids[1], 0).await;
    system.silence_vdu(&dead.instance_id).await;
    system.wait_probed(dead.mgmt_ip, now(), false).await;
    let window = Duration::from_secs(5);
    let from = now();
    tokio::time::sleep(window).await;
    let to = now();
    // Results are published once their round is in: wait for the live VDU's first one after
    // the window, published after every earlier one.
    system.wait_probed(alive.mgmt_ip, to, true).await;
    let probes = system
        .probe_results()
        .await
        .into_iter()
        .filter(|r| r.target.mgmt_ip == alive.mgmt_ip && r.at > from && r.at <= to)
        .count();
    println!("the live VDU was probed {probes} times in {window:?}");
    // Every 0.5 s: 10 in the window, less a boundary or two; held up by the dead VDU's
    // one-second timeouts it was 4.
    assert!(
        probes >= 8,
        "the live VDU was probed {probes} times in {window:?} at a 0.5 s interval"
    );
}

/// `log_and_kill` records the failure and deletes the VNF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_kill_deletes_the_vnf() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "log_and_kill", false))
        .await;
    let instance = system.probed_instance(&vnf_id, 0).await;
    system.kill_vdu(&instance.instance_id).await;
    system
        .wait_vnf(&vnf_id, "killed", |code, _| code == 404)
        .await;
    let vnf = system.vnf(&vnf_id).await;
    assert!(vnf.deleted);
    assert_eq!(vnf.failure_count, 1);
    assert!(system.remnants().is_empty(), "{:?}", system.remnants());
}

/// `vdu_autoheal` rebuilds only the failed VDU and keeps the VNF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vdu_autoheal_rebuilds_only_the_failed_vdu() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("ping", "vdu_autoheal", true))
        .await;
    let before = system.vnf(&vnf_id).await;
    let (vdu1, vdu2) = (before.instances[0].clone(), before.instances[1].clone());
    system.wait_probed(vdu1.mgmt_ip, vdu1.booted_at, true).await;
    system.kill_vdu(&vdu1.instance_id).await;
    let after = system
        .wait_log(&vnf_id, "autohealed", |v| {
            v.status == Some(VnfStatus::Active) && v.failure_count == 1
        })
        .await;
    assert!(
        after
            .instances
            .iter()
            .any(|i| i.instance_id == vdu2.instance_id),
        "VDU2 kept"
    );
    let rebuilt = after.instances.iter().find(|i| i.vdu == "VDU1").unwrap();
    assert_ne!(rebuilt.instance_id, vdu1.instance_id);
    system
        .wait_probed(rebuilt.mgmt_ip, rebuilt.booted_at, true)
        .await;
    let statuses: Vec<_> = system
        .history(&vnf_id)
        .await
        .iter()
        .flat_map(|r| r.envelope.events.clone())
        .filter_map(|e| match e {
            VnfEvent::HealStarted { failure, .. } => Some(failure.action),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, vec![events::spec::PolicyAction::VduAutoheal]);
}

/// `http_ping`: the responder answers, and an unreachable VDU is respawned with a responder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ping_respawns_an_unreachable_vdu() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&monitored_vnfd("http_ping", "respawn", false))
        .await;
    let old = system.probed_instance(&vnf_id, 0).await;
    system.kill_vdu(&old.instance_id).await;
    let healed = system
        .wait_log(&vnf_id, "respawned", |v| {
            v.status == Some(VnfStatus::Active) && v.failure_count == 1
        })
        .await;
    let new = &healed.instances[0];
    system.wait_probed(new.mgmt_ip, new.booted_at, true).await;
}

/// Beyond Tacker: when most of a monitor's targets fail in one round, the monitor suspects
/// itself and fires no action (one broken monitor host must not respawn the fleet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_that_sees_most_targets_fail_at_once_suspects_itself() {
    use events::fixtures;
    use events::monitor::MonitorEvent;

    let system = System::start().await;
    let template = monitored_vnfd("ping", "respawn", false);
    let mut vnf_ids = Vec::new();
    for _ in 0..12 {
        vnf_ids.push(system.active_vnf(&template).await);
    }
    let mut instances = Vec::new();
    for vnf_id in &vnf_ids {
        let instance = system.probed_instance(vnf_id, 0).await;
        instances.push(instance);
    }
    let client = system.nats.client().await;
    let mut suspicions = client
        .subscribe(events::names::SUSPECT_SUBJECTS)
        .await
        .unwrap();
    futures::future::join_all(instances.iter().map(|i| system.kill_vdu(&i.instance_id))).await;
    let event = fixtures::next_monitor_event(&mut suspicions, Duration::from_secs(20)).await;
    let MonitorEvent::SuspectedFault {
        failed, targets, ..
    } = event
    else {
        panic!("not a suspected fault: {event:?}")
    };
    assert_eq!((failed, targets), (12, 12));
    // Several more rounds: still no action on any VNF.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for vnf_id in &vnf_ids {
        let vnf = system.vnf(vnf_id).await;
        assert_eq!(vnf.failure_count, 0, "{vnf_id} was acted upon");
        assert_eq!(vnf.status, Some(VnfStatus::Active));
    }
}
