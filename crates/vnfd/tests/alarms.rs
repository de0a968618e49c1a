//! Alarming policies: the triggers a VNFD's `tosca.policies.tacker.Alarming` policies define,
//! as the spec keeps them, and each refusal at its path.

use events::spec::{Aggregation, AlarmAction, AlarmTrigger, Comparison, ScaleDirection};
use vnfd::parse_yaml;

const TRIGGERS: &str = "topology_template.policies.AP1.triggers";

/// Tacker's `tosca-vnfd-alarm-scale.yaml`, with a respawn policy beside it.
const BASE: &str = "\
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: cirros
    VDU2:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: cirros
    CP1:
      type: tosca.nodes.nfv.CP.Tacker
      properties:
        management: true
      requirements:
        - virtualBinding:
            node: VDU1
  policies:
    - AP1:
        type: tosca.policies.tacker.Alarming
        triggers:
          cpu_high:
            event_type:
              type: tosca.events.resource.utilization
              implementation: ceilometer
            metric: cpu_util
            condition:
              threshold: 80
              constraint: utilization greater_than 80%
              granularity: 60
              evaluations: 2
              aggregation_method: mean
              resource_type: instance
              comparison_operator: gt
            metadata: SG1
            action: [SP1]
          cpu_low:
            event_type:
              type: tosca.events.resource.utilization
              implementation: ceilometer
            metrics: cpu_util
            condition:
              threshold: 10.5
              period: 300
              granularity: 60
              aggregation_method: max
              comparison_operator: le
            action: SP1
    - SP1:
        type: tosca.policies.tacker.Scaling
        properties:
          targets: [VDU1]
          min_instances: 1
          max_instances: 3
    - RP1:
        type: tosca.policies.tacker.Alarming
        targets: [VDU2]
        triggers:
          mem_high:
            event_type:
              type: tosca.events.resource.utilization
            metric: memory.usage
            condition:
              threshold: 90
              comparison_operator: ge
            action: [respawn, log]
";

#[track_caller]
fn assert_refused(from: &str, to: &str, field: &str, mentions: &str) {
    assert!(BASE.contains(from), "BASE lacks {from:?}");
    let text = BASE.replacen(from, to, 1);
    let error = parse_yaml(&text).expect_err(to);
    assert_eq!(error.field(), field, "{error}");
    assert!(
        error.to_string().contains(mentions),
        "{error} lacks {mentions:?}"
    );
}

#[test]
fn every_trigger_is_kept_with_tackers_defaults() {
    let spec = parse_yaml(BASE).expect("BASE parses").spec;
    let out = ScaleDirection::Out;
    assert_eq!(
        spec.alarm_triggers,
        vec![
            AlarmTrigger {
                policy: "AP1".into(),
                name: "cpu_high".into(),
                metric: "cpu_util".into(),
                comparison: Comparison::Gt,
                threshold: 80.0,
                evaluations: 2,
                period_s: 60,
                aggregation: Aggregation::Mean,
                actions: vec![AlarmAction::Scale {
                    policy: "SP1".into(),
                    direction: out,
                }],
                vdus: vec![],
            },
            AlarmTrigger {
                policy: "AP1".into(),
                name: "cpu_low".into(),
                metric: "cpu_util".into(),
                comparison: Comparison::Le,
                threshold: 10.5,
                evaluations: 1,
                // `period` wins over `granularity`.
                period_s: 300,
                aggregation: Aggregation::Max,
                actions: vec![AlarmAction::Scale {
                    policy: "SP1".into(),
                    direction: ScaleDirection::In,
                }],
                vdus: vec![],
            },
            AlarmTrigger {
                policy: "RP1".into(),
                name: "mem_high".into(),
                metric: "memory.usage".into(),
                comparison: Comparison::Ge,
                threshold: 90.0,
                evaluations: 1,
                period_s: 60,
                aggregation: Aggregation::Mean,
                actions: vec![AlarmAction::Respawn, AlarmAction::Log],
                vdus: vec!["VDU2".into()],
            },
        ]
    );
    let names: Vec<String> = spec.alarm_triggers[0]
        .actions
        .iter()
        .chain(&spec.alarm_triggers[1].actions)
        .chain(&spec.alarm_triggers[2].actions)
        .map(AlarmAction::name)
        .collect();
    assert_eq!(names, ["SP1-out", "SP1-in", "respawn", "log"]);
    assert_eq!(
        spec.alarm_trigger("cpu_low")
            .and_then(|t| t.action("SP1-in")),
        Some(&spec.alarm_triggers[1].actions[0])
    );
}

#[test]
fn a_direction_written_out_and_avg_are_taken() {
    let text = BASE
        .replacen("action: [SP1]", "action: [SP1-in, log_and_kill]", 1)
        .replacen("aggregation_method: mean", "aggregation_method: avg", 1);
    let spec = parse_yaml(&text).expect("parses").spec;
    let trigger = &spec.alarm_triggers[0];
    assert_eq!(trigger.aggregation, Aggregation::Mean);
    assert_eq!(
        trigger.actions,
        vec![
            AlarmAction::Scale {
                policy: "SP1".into(),
                direction: ScaleDirection::In
            },
            AlarmAction::LogAndKill
        ]
    );
}

#[test]
fn each_refusal_names_its_path() {
    assert_refused(
        "            action: [SP1]",
        "            action: [SP9]",
        &format!("{TRIGGERS}.cpu_high.action[0]"),
        "unknown action \"SP9\"",
    );
    assert_refused(
        "            metric: cpu_util\n            condition:\n              threshold: 80",
        "            condition:\n              threshold: 80",
        &format!("{TRIGGERS}.cpu_high.metric"),
        "required",
    );
    assert_refused(
        "            metrics: cpu_util",
        "            metrics: cpu_util\n            metric: cpu_util",
        &format!("{TRIGGERS}.cpu_low.metrics"),
        "not both",
    );
    assert_refused(
        "              threshold: 80\n",
        "",
        &format!("{TRIGGERS}.cpu_high.condition.threshold"),
        "required",
    );
    assert_refused(
        "              comparison_operator: le",
        "              comparison_operator: eq",
        &format!("{TRIGGERS}.cpu_low.action"),
        "out for gt/ge and in for lt/le",
    );
    assert_refused(
        "              aggregation_method: max",
        "              aggregation_method: rate",
        &format!("{TRIGGERS}.cpu_low.condition.aggregation_method"),
        "unknown aggregation method \"rate\"",
    );
    assert_refused(
        "          mem_high:",
        "          cpu_high:",
        "topology_template.policies.RP1.triggers.cpu_high",
        "already in policy AP1",
    );
    assert_refused(
        "        targets: [VDU2]",
        "        targets: [VDU3]",
        "topology_template.policies.RP1.targets[0]",
        "\"VDU3\" is not a VDU",
    );
    assert_refused(
        "            action: [respawn, log]",
        "            action: [respawn, respawn]",
        "topology_template.policies.RP1.triggers.mem_high.action[1]",
        "listed twice",
    );
    assert_refused(
        "              period: 300",
        "              period: 0",
        &format!("{TRIGGERS}.cpu_low.condition.period"),
        "whole number from 1",
    );
}

#[test]
fn a_trigger_whose_values_await_inputs_is_read_when_they_have_them() {
    let text = BASE
        .replacen(
            "topology_template:\n",
            "topology_template:\n  inputs:\n    high:\n      type: integer\n",
            1,
        )
        .replacen("threshold: 80", "threshold: {get_input: high}", 1);
    let onboarded = parse_yaml(&text).expect("onboards").spec;
    let names: Vec<&str> = onboarded
        .alarm_triggers
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["cpu_low", "mem_high"],
        "cpu_high waits for its input"
    );
    let resolved = vnfd::resolve(&text, Some(&serde_json::json!({"high": 95}))).expect("resolves");
    let high = resolved.alarm_trigger("cpu_high").expect("read at create");
    assert!((high.threshold - 95.0).abs() < f64::EPSILON);
}
