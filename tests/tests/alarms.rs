//! Alarm-driven scaling end to end: Tacker's alarm URL, shown by the VNF, posted to as Aodh
//! would (no API token, the VNF's alarm key in the URL), scales the VNF out through a real
//! conductor and the local VIM; repeats of the alarm act once.

use events::envelope::ActorKind;
use events::vnf::{VnfEvent, VnfStatus};
use serde_json::json;
use vnfm_tests::{System, answers_ping, mgmt_ips, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triggers_scale_out_reaches_active_with_one_more_instance() {
    let system = System::start().await;
    // SP1 scales VDU1 from 1 up to 3; the trigger scales out above 80 % CPU.
    let vnf_id = system
        .active_vnf(&sample("tosca-vnfd-alarm-scale.yaml"))
        .await;
    let (code, shown) = system.get(&format!("/vnfs/{vnf_id}")).await;
    assert_eq!(code, 200, "{shown}");
    assert_eq!(mgmt_ips(&shown).len(), 1, "{shown}");
    let url = shown["vnf"]["attributes"]["vdu_hcpu_usage_scaling_out"]
        .as_str()
        .unwrap_or_else(|| panic!("no alarm URL in {shown}"))
        .to_owned();
    assert!(
        url.contains("/vdu_hcpu_usage_scaling_out/SP1-out/"),
        "{url}"
    );

    // Aodh's notification, twice (it repeats an alarm that stays raised), without a token.
    let aodh = reqwest::Client::new();
    let notification = json!({"alarm_id": "cpu-1", "current": "alarm", "previous": "ok",
                              "reason": "1 sample above 80", "severity": "low"});
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let answer = aodh
            .post(&url)
            .json(&notification)
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(answer.status().as_u16(), 202);
        let body: serde_json::Value = answer.json().await.expect("a JSON answer");
        outcomes.push(
            body["alarm"]["outcome"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(outcomes, ["acted", "already handled"]);

    let scaled = system
        .wait_vnf(&vnf_id, "ACTIVE with two instances", |_, v| {
            v["vnf"]["status"] == "ACTIVE" && mgmt_ips(v).len() == 2
        })
        .await;
    for ip in mgmt_ips(&scaled) {
        assert!(answers_ping(ip).await, "{ip} answers");
    }
    let vnf = system.vnf(&vnf_id).await;
    assert_eq!(vnf.status, Some(VnfStatus::Active));
    let history = system.history(&vnf_id).await;
    let claims: Vec<_> = history
        .iter()
        .filter(|r| {
            r.envelope
                .events
                .iter()
                .any(|e| matches!(e, VnfEvent::AlarmClaimed { .. }))
        })
        .collect();
    assert_eq!(claims.len(), 1, "one claim");
    assert!(
        matches!(
            &claims[0].envelope.events[..],
            [
                VnfEvent::AlarmClaimed { .. },
                VnfEvent::ScaleRequested { .. }
            ]
        ),
        "the claim and the scale in one message: {:?}",
        claims[0].envelope.events
    );
    let actor = &claims[0].envelope.cause.actor;
    assert_eq!(
        (actor.kind, actor.id.as_str()),
        (ActorKind::Alarm, "vdu_hcpu_usage_scaling_out")
    );
    system.verify_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_respawn_alarm_replaces_the_instance_through_a_conductor() {
    let system = System::start().await;
    let vnf_id = system
        .active_vnf(&sample("tosca-vnfd-alarm-respawn.yaml"))
        .await;
    let before = system.vnf(&vnf_id).await.instances;
    let (_, shown) = system.get(&format!("/vnfs/{vnf_id}")).await;
    let url = shown["vnf"]["attributes"]["vdu_hcpu_usage_respawning"]
        .as_str()
        .unwrap_or_else(|| panic!("no alarm URL in {shown}"))
        .to_owned();
    let answer = reqwest::Client::new()
        .post(&url)
        .json(&json!({"alarm_id": "cpu-1", "current": "alarm"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(answer.status().as_u16(), 202);
    let healed = system
        .wait_log(&vnf_id, "respawned", |v| {
            v.status == Some(VnfStatus::Active)
                && v.instances.len() == before.len()
                && v.instances[0].instance_id != before[0].instance_id
        })
        .await;
    assert_eq!(healed.heals_at.len(), 1, "it counts toward the heal limit");
    assert!(answers_ping(healed.instances[0].mgmt_ip).await);
    let history = system.history(&vnf_id).await;
    let completed = history
        .iter()
        .flat_map(|r| &r.envelope.events)
        .filter(|e| matches!(e, VnfEvent::HealCompleted { .. }))
        .count();
    assert_eq!(completed, 1, "completed as a failure's heal is");
}
