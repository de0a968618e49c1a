//! Alarm-driven scaling end to end with real components: Debian's Prometheus discovers the
//! VDUs from vnfm (`/v1.0/prometheus/targets`) and evaluates the rules vnfm renders from the
//! VNFD's alarm triggers (`/v1.0/prometheus/rules`); Debian's Alertmanager sends the firing
//! alert to vnfm's webhook (`/v1.0/alertmanager`), both with a project member's token as a
//! bearer token. A VDU's metric raised above the scale-out trigger's threshold scales the VNF
//! out exactly once, however often the alert is re-sent; lowered below the scale-in trigger's
//! threshold, the VNF scales in, but not before the scaling policy's cooldown has passed.

use events::vnf::{ScaleDirection, VnfEvent};
use time::OffsetDateTime;
use vnfm_tests::prometheus::Monitoring;
use vnfm_tests::{Options, PATIENCE, System, client_with, token_file};

/// The scaling policy's cooldown: long enough that the scale-in alert (two one-second
/// evaluations after the metric drops) fires inside it, short enough for a test.
const COOLDOWN_S: i64 = 8;
/// How many more notifications Alertmanager sends (a re-send every 2 s) after the scale-out
/// before the test checks that none of them scaled out again.
const RESENDS_WATCHED: u64 = 2;

fn alarm_vnfd() -> String {
    format!(
        "tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
description: Scales out on high CPU, in on low, as Tacker's alarm scaling sample
metadata:
  template_name: alarm-scale
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: cirros-0.5.2-x86_64-disk
        flavor: m1.tiny
        metadata: {{metering.server_group: SG1}}
    CP1:
      type: tosca.nodes.nfv.CP.Tacker
      properties:
        management: true
      requirements:
        - virtualLink:
            node: VL1
        - virtualBinding:
            node: VDU1
    VL1:
      type: tosca.nodes.nfv.VL
      properties:
        network_name: net_mgmt
        vendor: Tacker
  policies:
    - SP1:
        type: tosca.policies.tacker.Scaling
        targets: [VDU1]
        properties:
          increment: 1
          cooldown: {COOLDOWN_S}
          min_instances: 1
          max_instances: 3
          default_instances: 1
    - vdu_cpu_usage_monitoring_policy:
        type: tosca.policies.tacker.Alarming
        triggers:
          vdu_hcpu_usage_scaling_out:
            event_type:
              type: tosca.events.resource.utilization
              implementation: ceilometer
            metric: cpu_util
            condition:
              threshold: 80
              constraint: utilization greater_than 80%
              granularity: 1
              evaluations: 2
              aggregation_method: mean
              resource_type: instance
              comparison_operator: gt
            metadata: SG1
            action: [SP1]
          vdu_lcpu_usage_scaling_in:
            event_type:
              type: tosca.events.resource.utilization
              implementation: ceilometer
            metric: cpu_util
            condition:
              threshold: 10
              constraint: utilization less_than 10%
              granularity: 1
              evaluations: 2
              aggregation_method: mean
              resource_type: instance
              comparison_operator: lt
            metadata: SG1
            action: [SP1]
"
    )
}

/// The scale requests on the VNF's log, in order, each with when it was asked for: the
/// moment its policy's cooldown counts from. (The envelope's `recorded_at` is taken later, by
/// the append, and by a varying amount: a scale-in measured by it came 7.9997 s after a
/// scale-out whose cooldown of 8 s the aggregate had let pass.)
async fn scales(system: &System, vnf_id: &str) -> Vec<(ScaleDirection, OffsetDateTime)> {
    system
        .history(vnf_id)
        .await
        .into_iter()
        .flat_map(|recorded| recorded.envelope.events)
        .filter_map(|event| match event {
            VnfEvent::ScaleRequested { direction, at, .. } => Some((
                direction,
                at.expect("a scale records when it was asked for"),
            )),
            _ => None,
        })
        .collect()
}

/// Waits until the VNF, as `client` sees it, is ACTIVE with `count` instances of VDU1.
async fn wait_instances(client: &reqwest::Client, api: &str, vnf_id: &str, count: usize) {
    let path = format!("/vnfs/{vnf_id}");
    let what = format!("VNF {vnf_id} is ACTIVE with {count} instance(s)");
    testkit::eventually(what, PATIENCE, || async {
        let (code, vnf) = vnfm_tests::call(client, api, reqwest::Method::GET, &path, None).await;
        let ips = vnf["vnf"]["mgmt_ip_address"]
            .as_str()
            .and_then(|ips| serde_json::from_str::<serde_json::Value>(ips).ok());
        let instances = ips.map(|ips| match &ips["VDU1"] {
            serde_json::Value::String(_) => 1,
            serde_json::Value::Array(many) => many.len(),
            _ => 0,
        });
        if code == 200 && vnf["vnf"]["status"] == "ACTIVE" && instances == Some(count) {
            Ok(())
        } else {
            Err(format!("{code}: {vnf}"))
        }
    })
    .await;
}

/// Sets `cpu_util` on every running instance of the VNF, as its workload would.
async fn set_cpu(system: &System, vnf_id: &str, value: u32) {
    for instance in system.vnf(vnf_id).await.instances {
        let path = conductor::vim::local::metrics_path(&system.vim_prefix, &instance.instance_id);
        std::fs::write(path, format!("# TYPE cpu_util gauge\ncpu_util {value}\n"))
            .expect("write the VDU's metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_alert_scales_out_once_and_in_after_the_cooldown() {
    let (tokens, _dir) = token_file(&[("t-alice", "alice", "p1", "member")]);
    let system = System::start_with(Options {
        auth: Some(tokens),
        ..Options::default()
    })
    .await;
    let api = &system.api;
    let alice = client_with("t-alice");
    let vnfd_id = vnfm_tests::onboard(&alice, api, &alarm_vnfd()).await;
    let body = serde_json::json!({"vnf": {"name": "web", "vnfd_id": vnfd_id}});
    let (code, created) =
        vnfm_tests::call(&alice, api, reqwest::Method::POST, "/vnfs", Some(body)).await;
    assert_eq!(code, 201, "{created}");
    let vnf_id = created["vnf"]["id"].as_str().unwrap().to_owned();
    wait_instances(&alice, api, &vnf_id, 1).await;
    set_cpu(&system, &vnf_id, 50).await;

    // What an operator does: the rules from vnfm into Prometheus' rule file.
    let rules = alice
        .get(format!("{api}/prometheus/rules"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(rules.contains("vdu_hcpu_usage_scaling_out"), "{rules}");
    let monitoring = Monitoring::start(api, "t-alice", &rules).await;

    // Prometheus finds the VDU through vnfm and scrapes its metrics.
    let instance_id = system.vnf(&vnf_id).await.instances[0].instance_id.clone();
    testkit::eventually("Prometheus scrapes the VDU", PATIENCE, || async {
        let targets = monitoring.active_targets().await;
        let up = targets.iter().any(|t| {
            t["labels"]["instance_id"] == instance_id.as_str()
                && t["labels"]["vnf_id"] == vnf_id.as_str()
                && t["health"] == "up"
        });
        if up {
            Ok(())
        } else {
            Err(format!("{targets:?}\n{}", monitoring.logs()))
        }
    })
    .await;
    assert!(scales(&system, &vnf_id).await.is_empty(), "50% is no alarm");

    // High CPU: the alert fires after two evaluations and the VNF scales out, once.
    set_cpu(&system, &vnf_id, 95).await;
    wait_instances(&alice, api, &vnf_id, 2).await;
    let firing = monitoring.alerts().await;
    assert!(
        firing
            .iter()
            .any(|a| a["labels"]["trigger"] == "vdu_hcpu_usage_scaling_out"
                && a["labels"]["vnf_id"] == vnf_id.as_str()),
        "{firing:?}"
    );
    // The alert keeps firing (the new instance reports no CPU yet, the mean stays 95) and
    // Alertmanager keeps re-sending it: still one scale-out.
    let sent = monitoring.webhook_notifications().await;
    testkit::eventually(
        format!("Alertmanager re-sends the alert {RESENDS_WATCHED} times"),
        PATIENCE,
        || async {
            let now = monitoring.webhook_notifications().await;
            if now >= sent + RESENDS_WATCHED {
                Ok(())
            } else {
                Err(format!("{now} sent, {sent} at the scale-out"))
            }
        },
    )
    .await;
    let after_out = scales(&system, &vnf_id).await;
    assert_eq!(after_out.len(), 1, "{after_out:?}\n{}", monitoring.logs());
    let (direction, scaled_out_at) = after_out[0];
    assert_eq!(direction, ScaleDirection::Out);

    // Low CPU on both: the scale-in alert fires inside the cooldown, is refused, and acts
    // when a re-send comes after the cooldown.
    set_cpu(&system, &vnf_id, 3).await;
    wait_instances(&alice, api, &vnf_id, 1).await;
    let all = scales(&system, &vnf_id).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let (direction, scaled_in_at) = all[1];
    assert_eq!(direction, ScaleDirection::In);
    assert!(
        scaled_in_at - scaled_out_at >= time::Duration::seconds(COOLDOWN_S),
        "scaled in {} after the scale-out, inside the {COOLDOWN_S} s cooldown",
        scaled_in_at - scaled_out_at
    );
}
