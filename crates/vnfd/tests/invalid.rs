//! Refused VNFDs: each error names the field at fault, and hostile input fails fast.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use events::spec::{MonitorDriver, PolicyAction};
use vnfd::{VNFD_BYTES_MAX, VnfdError, parse_json, parse_yaml};

/// How long a hostile document may take to be refused, in a debug build on a busy machine;
/// each one here takes a few milliseconds.
const HOSTILE_PARSE_TIME_MAX: Duration = Duration::from_secs(1);

const VDU1: &str = "topology_template.node_templates.VDU1";
const POLICY: &str = "topology_template.node_templates.VDU1.properties.monitoring_policy";
const PARAMETERS: &str =
    "topology_template.node_templates.VDU1.properties.monitoring_policy.parameters";

/// A valid VNFD that each case breaks in one place.
const BASE: &str = "\
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
description: base
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: cirros
        monitoring_policy:
          name: ping
          parameters:
            count: 3
          actions:
            failure: respawn
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
";

const SCALING: &str = "
  policies:
    - SP1:
        type: tosca.policies.tacker.Scaling
        properties:
          targets: [VDU1]
          min_instances: 1
          max_instances: 3
";

/// `BASE` with `from` replaced by `to`, checking that `from` was there.
fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE lacks {from:?}");
    BASE.replacen(from, to, 1)
}

fn base_with_scaling() -> String {
    format!("{BASE}{SCALING}")
}

fn scaling_with(from: &str, to: &str) -> String {
    assert!(SCALING.contains(from), "SCALING lacks {from:?}");
    format!("{BASE}{}", SCALING.replacen(from, to, 1))
}

fn refused(text: &str) -> VnfdError {
    match parse_yaml(text) {
        Ok(parsed) => panic!("accepted {text:?} as {:?}", parsed.spec),
        Err(e) => e,
    }
}

/// Asserts that `text` is refused as invalid at `field`, with a message that mentions
/// `mentions`.
#[track_caller]
fn assert_invalid(text: &str, field: &str, mentions: &str) {
    let error = refused(text);
    assert!(
        matches!(error, VnfdError::Invalid { .. }),
        "expected Invalid, got {error:?}"
    );
    assert_eq!(error.field(), field, "{error}");
    let message = error.to_string();
    assert!(message.contains(mentions), "{message:?} lacks {mentions:?}");
}

#[test]
fn base_is_valid() {
    let spec = parse_yaml(BASE).expect("BASE parses").spec;
    let policy = spec.vdus[0].monitoring_policy.clone().expect("monitored");
    assert_eq!(policy.count, 3);
    let spec = parse_yaml(&base_with_scaling())
        .expect("BASE with SCALING parses")
        .spec;
    assert_eq!(spec.scaling_policies[0].default_instances, 1);
}

#[test]
fn unknown_driver() {
    assert_invalid(
        &base_with("name: ping", "name: snmp"),
        &format!("{POLICY}.name"),
        "unknown monitoring driver \"snmp\"; expected ping, http_ping",
    );
}

#[test]
fn noop_driver_means_no_monitoring() {
    let spec = parse_yaml(&base_with("name: ping", "name: noop"))
        .expect("parses")
        .spec;
    assert_eq!(spec.vdus[0].monitoring_policy, None);
}

#[test]
fn http_ping_spellings() {
    for name in ["http_ping", "http-ping"] {
        let text = base_with("name: ping", &format!("name: {name}"));
        let policy = parse_yaml(&text).expect("parses").spec.vdus[0]
            .monitoring_policy
            .clone()
            .expect("monitored");
        assert_eq!(policy.driver, MonitorDriver::HttpPing);
        assert_eq!((policy.port, policy.retry), (Some(80), 5));
    }
}

#[test]
fn bad_parameter_values_name_their_field() {
    for (parameter, parameter_name) in [
        ("count: -1", "count"),
        ("count: 0", "count"),
        ("count: 2.5", "count"),
        ("count: 1001", "count"),
        ("count: true", "count"),
        ("count: [3]", "count"),
        ("count:", "count"),
        ("count: 99999999999999999999999999", "count"),
        ("timeout: soon", "timeout"),
        ("timeout: .nan", "timeout"),
        ("timeout: .inf", "timeout"),
        ("timeout: 'inf'", "timeout"),
        ("timeout: 0", "timeout"),
        ("timeout: 3601", "timeout"),
        ("interval: 0.0001", "interval"),
        ("interval: -1", "interval"),
        ("monitoring_delay: -1", "monitoring_delay"),
        ("monitoring_delay: 86401", "monitoring_delay"),
        ("retry: 0", "retry"),
        ("retry: 1001", "retry"),
    ] {
        let text = base_with("count: 3", parameter);
        let error = refused(&text);
        assert_eq!(
            error.field(),
            format!("{PARAMETERS}.{parameter_name}"),
            "{parameter}: {error}"
        );
    }
}

#[test]
fn negative_count() {
    assert_invalid(
        &base_with("count: 3", "count: -1"),
        &format!("{PARAMETERS}.count"),
        "must be a whole number from 1 to 1000, not -1",
    );
}

#[test]
fn non_numeric_timeout() {
    assert_invalid(
        &base_with("count: 3", "timeout: soon"),
        &format!("{PARAMETERS}.timeout"),
        "must be a number, not \"soon\"",
    );
}

#[test]
fn zero_retry() {
    assert_invalid(
        &base_with("count: 3", "retry: 0"),
        &format!("{PARAMETERS}.retry"),
        "not 0",
    );
}

#[test]
fn port_out_of_range() {
    let text = base_with("name: ping", "name: http_ping").replacen("count: 3", "port: 70000", 1);
    assert_invalid(
        &text,
        &format!("{PARAMETERS}.port"),
        "from 1 to 65535, not 70000",
    );
}

#[test]
fn port_is_for_http_ping_only() {
    assert_invalid(
        &base_with("count: 3", "port: 8080"),
        &format!("{PARAMETERS}.port"),
        "unknown ping parameter \"port\"",
    );
}

#[test]
fn unknown_parameter() {
    assert_invalid(
        &base_with("count: 3", "cnt: 3"),
        &format!("{PARAMETERS}.cnt"),
        "unknown ping parameter \"cnt\"",
    );
}

#[test]
fn numbers_as_tacker_wrote_them() {
    let text = base_with(
        "count: 3",
        "count: '4'\n            interval: 0.5\n            timeout: \"2.5\"\n            monitoring_delay: 0",
    );
    let policy = parse_yaml(&text).expect("parses").spec.vdus[0]
        .monitoring_policy
        .clone()
        .expect("monitored");
    assert_eq!(policy.count, 4);
    assert_eq!(policy.interval_ms, 500);
    assert_eq!(policy.timeout_ms, 2_500);
    assert_eq!(policy.monitoring_delay_ms, 0);
}

#[test]
fn missing_failure_action() {
    let field = format!("{POLICY}.actions.failure");
    let without_actions = base_with("          actions:\n            failure: respawn\n", "");
    assert_invalid(&without_actions, &field, "is required");
    assert_invalid(
        &base_with("actions:\n            failure: respawn", "actions: respawn"),
        &format!("{POLICY}.actions"),
        "must be a mapping",
    );
    let empty_actions = base_with(
        "          actions:\n            failure: respawn\n",
        "          actions: {}\n",
    );
    assert_invalid(&empty_actions, &field, "is required");
}

#[test]
fn unknown_action() {
    assert_invalid(
        &base_with("failure: respawn", "failure: reboot"),
        &format!("{POLICY}.actions.failure"),
        "unknown action \"reboot\"; expected respawn, log, log_and_kill or vdu_autoheal",
    );
}

#[test]
fn every_known_action() {
    for (name, action) in [
        ("respawn", PolicyAction::Respawn),
        ("log", PolicyAction::Log),
        ("log_and_kill", PolicyAction::LogAndKill),
        ("vdu_autoheal", PolicyAction::VduAutoheal),
    ] {
        let text = base_with("failure: respawn", &format!("failure: {name}"));
        let policy = parse_yaml(&text).expect("parses").spec.vdus[0]
            .monitoring_policy
            .clone()
            .expect("monitored");
        assert_eq!(policy.failure_action, action);
    }
}

#[test]
fn action_for_another_event() {
    assert_invalid(
        &base_with(
            "failure: respawn",
            "failure: respawn\n            success: log",
        ),
        &format!("{POLICY}.actions.success"),
        "unknown event \"success\"",
    );
}

#[test]
fn unknown_policy_key() {
    assert_invalid(
        &base_with("parameters:", "paramters:"),
        &format!("{POLICY}.paramters"),
        "unknown key \"paramters\"",
    );
}

#[test]
fn scaling_target_is_not_a_vdu() {
    assert_invalid(
        &scaling_with("targets: [VDU1]", "targets: [VDU1, VDU9]"),
        "topology_template.policies.SP1.properties.targets[1]",
        "\"VDU9\" is not a VDU of this VNFD",
    );
    // A connection point is a node template, but not a VDU.
    assert_invalid(
        &scaling_with("targets: [VDU1]", "targets: [CP1]"),
        "topology_template.policies.SP1.properties.targets[0]",
        "not a VDU",
    );
}

#[test]
fn scaling_bounds() {
    let properties = "topology_template.policies.SP1.properties";
    for (from, to, field, mentions) in [
        (
            "targets: [VDU1]",
            "targets: []",
            "targets",
            "at least one VDU",
        ),
        (
            "targets: [VDU1]",
            "targets: VDU1",
            "targets",
            "must be a list",
        ),
        (
            "targets: [VDU1]",
            "targets: [VDU1, VDU1]",
            "targets[1]",
            "listed twice",
        ),
        (
            "min_instances: 1",
            "min_instances: 4",
            "max_instances",
            "below min_instances",
        ),
        (
            "max_instances: 3",
            "max_instances: 101",
            "max_instances",
            "from 1 to 100",
        ),
        (
            "min_instances: 1",
            "increment: 0",
            "increment",
            "from 1 to 100",
        ),
        (
            "min_instances: 1",
            "cooldown: -5",
            "cooldown",
            "from 0 to 86400",
        ),
        (
            "min_instances: 1",
            "default_instances: 4",
            "default_instances",
            "between",
        ),
        (
            "min_instances: 1",
            "min_instances: 1\n          max: 3",
            "max",
            "unknown scaling property",
        ),
    ] {
        let error = refused(&scaling_with(from, to));
        assert_eq!(
            error.field(),
            format!("{properties}.{field}"),
            "{to}: {error}"
        );
        assert!(error.to_string().contains(mentions), "{to}: {error}");
    }
}

#[test]
fn scaling_defaults() {
    let text = scaling_with(
        "          min_instances: 1\n          max_instances: 3\n",
        "",
    );
    let spec = parse_yaml(&text).expect("parses").spec;
    let sp1 = &spec.scaling_policies[0];
    assert_eq!(
        (
            sp1.increment,
            sp1.cooldown_s,
            sp1.min_instances,
            sp1.max_instances,
            sp1.default_instances
        ),
        (1, 120, 1, 1, 1)
    );
}

#[test]
fn a_vdu_has_one_scaling_policy() {
    let second = "    - SP2:\n        type: tosca.policies.tacker.Scaling\n        properties:\n          targets: [VDU1]\n";
    assert_invalid(
        &format!("{}{second}", base_with_scaling()),
        "topology_template.policies.SP2.properties.targets[0]",
        "already scaled by SP1",
    );
    let same_name = second.replace("SP2", "SP1");
    assert_invalid(
        &format!("{}{same_name}", base_with_scaling()),
        "topology_template.policies.SP1",
        "a second policy is named SP1",
    );
}

#[test]
fn policies_as_a_mapping_and_targets_beside_type() {
    let text = format!(
        "{BASE}  policies:\n    SP1:\n      type: tosca.policies.tacker.Scaling\n      targets: [VDU1]\n      properties:\n        max_instances: 2\n"
    );
    let spec = parse_yaml(&text).expect("parses").spec;
    assert_eq!(spec.scaling_policies[0].targets, ["VDU1"]);
    assert_eq!(spec.scaling_policies[0].max_instances, 2);
}

#[test]
fn cp_binding_a_missing_vdu() {
    assert_invalid(
        &base_with("            node: VDU1", "            node: VDU9"),
        "topology_template.node_templates.CP1.requirements[1].virtualBinding.node",
        "CP1 binds to \"VDU9\", which is not a node template",
    );
    assert_invalid(
        &base_with(
            "        - virtualBinding:\n            node: VDU1",
            "        - virtualBinding: VDU9",
        ),
        "topology_template.node_templates.CP1.requirements[1].virtualBinding",
        "which is not a node template",
    );
    assert_invalid(
        &base_with("            node: VDU1", "            node: VL1"),
        "topology_template.node_templates.CP1.requirements[1].virtualBinding.node",
        "CP1 binds to VL1, a tosca.nodes.nfv.VL, not a VDU",
    );
}

#[test]
fn short_virtual_binding() {
    let text = base_with(
        "        - virtualBinding:\n            node: VDU1",
        "        - virtualBinding: VDU1",
    );
    assert_eq!(
        parse_yaml(&text).expect("parses").spec.vdus[0]
            .mgmt_cp
            .as_deref(),
        Some("CP1")
    );
}

#[test]
fn vdu_without_management_cp() {
    // Deployed and listed, never monitored (Tacker's NS samples have such VDUs)...
    let unmonitored = base_with("management: true", "management: false").replace(
        "        monitoring_policy:\n          name: ping\n          parameters:\n            count: 3\n          actions:\n            failure: respawn\n",
        "",
    );
    let spec = parse_yaml(&unmonitored).expect("parses").spec;
    assert_eq!(spec.vdus[0].mgmt_cp, None);
    assert!(!spec.is_monitored());
    // ...so a monitoring policy on one has nothing to probe.
    assert_invalid(
        &base_with("management: true", "management: false"),
        POLICY,
        "VDU1 has no management connection point, so it has no address to probe",
    );
}

#[test]
fn vdu_with_two_management_cps() {
    let second = "    CP2:\n      type: tosca.nodes.nfv.CP.Tacker\n      properties:\n        management: yes\n      requirements:\n        - virtualBinding: VDU1\n";
    assert_invalid(
        &format!("{BASE}{second}"),
        "topology_template.node_templates.CP2",
        "VDU1 already has the management connection point CP1",
    );
}

#[test]
fn management_cp_without_binding() {
    // Tacker accepted it: the CP manages no VDU, and VDU1 then has no management address.
    let unbound = base_with("        - virtualBinding:\n            node: VDU1\n", "");
    assert_invalid(&unbound, POLICY, "VDU1 has no management connection point");
    let unmonitored = unbound.replace("name: ping", "name: noop");
    let spec = parse_yaml(&unmonitored).expect("parses").spec;
    assert_eq!(spec.vdus[0].mgmt_cp, None);
}

#[test]
fn structure() {
    assert_invalid(
        &base_with(
            "    VDU1:\n      type: tosca.nodes.nfv.VDU.Tacker",
            "    VDU1:\n      type: tosca.nodes.nfv.Other",
        ),
        "topology_template.node_templates.VDU1.type",
        "unknown node type \"tosca.nodes.nfv.Other\"",
    );
    assert_invalid(
        &base_with("topology_template:", "topology:"),
        "topology",
        "unknown section \"topology\"",
    );
    assert_invalid(
        &base_with("  node_templates:", "  nodes:"),
        "topology_template.nodes",
        "unknown section \"nodes\"",
    );
    assert_invalid(
        "tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0\n",
        "topology_template",
        "is required",
    );
    assert_invalid(
        &base_with("      type: tosca.nodes.nfv.VL\n", ""),
        "topology_template.node_templates.VL1",
        "must be a mapping",
    );
    assert_invalid(
        &base_with("image: cirros", "image: [cirros]"),
        &format!("{VDU1}.properties.image"),
        "must be a string",
    );
    assert_invalid(
        &base_with("    VDU1:", "    VDU.1:").replace("node: VDU1", "node: VDU.1"),
        "topology_template.node_templates.VDU.1",
        "letters, digits",
    );
}

#[test]
fn not_a_mapping() {
    assert_invalid(
        "- VDU1\n- VDU2\n",
        "",
        "must be a mapping of TOSCA sections, not a list",
    );
    assert_invalid("just text\n", "", "not \"just text\"");
}

#[test]
fn empty_document() {
    for text in ["", "\n", "# only a comment\n", "---\n"] {
        assert_invalid(text, "", "the VNFD is empty");
    }
}

#[test]
fn broken_yaml() {
    for text in [
        "a: [1, 2\n",
        "a: 1\n---\nb: 2\n",
        "a: *undefined\n",
        "a: !custom 1\n",
    ] {
        let error = refused(text);
        assert!(
            matches!(error, VnfdError::Malformed { .. }),
            "{text:?}: {error:?}"
        );
        assert_eq!(error.field(), "");
    }
}

#[test]
fn oversize_text() {
    let padding = format!("# {}\n", "x".repeat(VNFD_BYTES_MAX));
    let text = format!("{BASE}{padding}");
    let error = refused(&text);
    assert_eq!(
        error,
        VnfdError::TooLarge {
            len_bytes: text.len()
        }
    );
    assert_eq!(error.field(), "");

    // The same limit holds for the YAML rendering of JSON input.
    let mut json = vnfd::yaml_to_json(BASE).expect("BASE is YAML");
    json["description"] = serde_json::Value::String("x".repeat(VNFD_BYTES_MAX));
    assert!(matches!(parse_json(&json), Err(VnfdError::TooLarge { .. })));
}

#[track_caller]
fn assert_refused_fast(text: &str, mentions: &str) {
    assert!(text.len() <= VNFD_BYTES_MAX, "{} bytes", text.len());
    let started = Instant::now();
    let error = refused(text);
    let elapsed = started.elapsed();
    assert!(elapsed < HOSTILE_PARSE_TIME_MAX, "took {elapsed:?}");
    match &error {
        VnfdError::Malformed { message } => {
            assert!(message.contains(mentions), "{message:?} lacks {mentions:?}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert_eq!(error.field(), "");
}

/// The classic "billion laughs": nine levels of nine aliases each.
#[test]
fn alias_bomb() {
    let mut text = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=9 {
        let aliases = vec![format!("*l{}", level - 1); 9].join(", ");
        writeln!(text, "l{level}: &l{level} [{aliases}]").unwrap();
    }
    assert_refused_fast(&text, "aliases");
}

/// A few thousand aliases of one wide anchor: few alias jumps, but gigabytes expanded.
#[test]
fn wide_alias_bomb() {
    let wide = vec!["x"; 40_000].join(",");
    let aliases = vec!["*w"; 5_000].join(",");
    assert_refused_fast(&format!("w: &w [{wide}]\nb: [{aliases}]\n"), "aliases");

    let long = "x".repeat(200_000);
    let aliases = vec!["*s"; 5_000].join(",");
    assert_refused_fast(&format!("s: &s {long}\nb: [{aliases}]\n"), "aliases");
}

#[test]
fn deeply_nested_document() {
    let depth = 100_000;
    let flow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_refused_fast(&flow, "deeper than 64 levels");

    let block = format!("{}x\n", "- ".repeat(depth));
    assert_refused_fast(&block, "deeper than 64 levels");

    let mapping = format!("{}{{}}", "{a: ".repeat(depth / 2)) + &"}".repeat(depth / 2);
    assert_refused_fast(&mapping, "deeper than 64 levels");
}

#[test]
fn json_errors_name_the_same_fields() {
    let mut json = vnfd::yaml_to_json(BASE).expect("BASE is YAML");
    let parameters = &mut json["topology_template"]["node_templates"]["VDU1"]["properties"]["monitoring_policy"]
        ["parameters"];
    parameters["count"] = serde_json::json!(-1);
    let error = parse_json(&json).expect_err("refused");
    assert_eq!(error.field(), format!("{PARAMETERS}.count"));

    assert_eq!(
        parse_json(&serde_json::json!([1, 2]))
            .expect_err("refused")
            .field(),
        ""
    );
}
