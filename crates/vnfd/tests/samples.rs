//! Tacker's own sample VNFDs (copied verbatim into `tests/samples/`, provenance in
//! `tests/samples/SOURCES.md`) all parse, into what Tacker made of them.

use std::path::{Path, PathBuf};

use events::spec::{MonitorDriver, MonitoringPolicy, PolicyAction, ScalingPolicy, VnfdSpec};
use vnfd::{ParsedVnfd, parse_json, parse_yaml};

const SAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samples");

fn sample_paths() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("samples folder is readable") {
            let path = entry.expect("samples folder is readable").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new(SAMPLES_DIR), &mut found);
    found.sort();
    found
}

fn read(sample: &str) -> String {
    let path = Path::new(SAMPLES_DIR).join(sample);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(sample: &str) -> VnfdSpec {
    match parse_yaml(&read(sample)) {
        Ok(parsed) => parsed.spec,
        Err(e) => panic!("{sample}: {e}"),
    }
}

fn ping(interval_ms: u64, failure_action: PolicyAction) -> MonitoringPolicy {
    MonitoringPolicy {
        driver: MonitorDriver::Ping,
        monitoring_delay_ms: 45_000,
        count: 3,
        interval_ms,
        timeout_ms: 2_000,
        retry: 1,
        port: None,
        failure_action,
    }
}

fn vdu_names(spec: &VnfdSpec) -> Vec<&str> {
    spec.vdus.iter().map(|vdu| vdu.name.as_str()).collect()
}

fn mgmt_cps(spec: &VnfdSpec) -> Vec<&str> {
    spec.vdus
        .iter()
        .map(|vdu| vdu.mgmt_cp.as_deref().unwrap_or_default())
        .collect()
}

#[test]
fn every_sample_parses_and_keeps_its_text() {
    let paths = sample_paths();
    assert_eq!(paths.len(), 11, "samples found: {paths:?}");
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("sample is readable");
        match parse_yaml(&text) {
            Ok(parsed) => assert_eq!(parsed.template_yaml, text, "{}", path.display()),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

#[test]
fn ping_monitor() {
    let spec = parse("tosca-vnfd-monitor.yaml");
    assert_eq!(spec.template_name.as_deref(), Some("sample-tosca-vnfd"));
    assert_eq!(spec.description.as_deref(), Some("Demo example"));
    assert_eq!(vdu_names(&spec), ["VDU1"]);
    let vdu = &spec.vdus[0];
    assert_eq!(vdu.image.as_deref(), Some("cirros-0.5.2-x86_64-disk"));
    assert_eq!(vdu.flavor, None);
    assert_eq!(vdu.mgmt_cp.as_deref(), Some("CP1"));
    assert_eq!(
        vdu.monitoring_policy,
        Some(ping(1_000, PolicyAction::Respawn))
    );
    assert!(spec.scaling_policies.is_empty());
}

#[test]
fn http_monitor_fills_tacker_defaults() {
    let spec = parse("tosca-vnfd-http-monitor.yaml");
    assert_eq!(
        spec.vdus[0].monitoring_policy,
        Some(MonitoringPolicy {
            driver: MonitorDriver::HttpPing,
            monitoring_delay_ms: 30_000,
            count: 5,
            interval_ms: 1_000,
            timeout_ms: 10_000,
            retry: 5,
            port: Some(8000),
            failure_action: PolicyAction::Respawn,
        })
    );
}

#[test]
fn multi_vdu_keeps_template_order() {
    let spec = parse("tosca-vnfd-monitor-multi-vdu.yaml");
    // The typo is Tacker's own.
    assert_eq!(
        spec.template_name.as_deref(),
        Some("tosca-vnfd-monitoir-multi-vdu")
    );
    assert_eq!(vdu_names(&spec), ["VDU1", "VDU2", "VDU3"]);
    assert_eq!(mgmt_cps(&spec), ["CP11", "CP21", "CP31"]);
    let flavors: Vec<_> = spec.vdus.iter().map(|v| v.flavor.as_deref()).collect();
    assert_eq!(flavors, [None, Some("m1.medium"), Some("m1.tiny")]);
    for vdu in &spec.vdus {
        assert_eq!(
            vdu.monitoring_policy,
            Some(ping(1_000, PolicyAction::Respawn))
        );
    }
}

#[test]
fn functional_multi_vdu_with_duplicate_key() {
    let spec = parse("functional-test-samples/sample-tosca-vnfd-multi-vdu-monitoring.yaml");
    assert_eq!(vdu_names(&spec), ["VDU1", "VDU2", "VDU3"]);
    assert_eq!(mgmt_cps(&spec), ["CP11", "CP21", "CP31"]);
    for vdu in &spec.vdus {
        assert_eq!(
            vdu.monitoring_policy,
            Some(ping(10_000, PolicyAction::Respawn))
        );
    }
}

#[test]
fn functional_ping_monitor() {
    let spec = parse("functional-test-samples/sample-tosca-vnfd-monitor.yaml");
    assert_eq!(
        spec.template_name.as_deref(),
        Some("sample-tosca-vnfd-monitor")
    );
    assert_eq!(spec.vdus[0].flavor.as_deref(), Some("m1.tiny"));
    assert_eq!(
        spec.vdus[0].monitoring_policy,
        Some(ping(10_000, PolicyAction::Respawn))
    );
}

#[test]
fn vdu_autoheal_with_duplicate_key() {
    for sample in [
        "tosca-vnfd-monitoring-vdu-autoheal.yaml",
        "functional-test-samples/sample-tosca-vnfd-single-vdu-monitoring-vdu-autoheal.yaml",
    ] {
        let spec = parse(sample);
        assert_eq!(
            spec.vdus[0].monitoring_policy,
            Some(ping(1_000, PolicyAction::VduAutoheal)),
            "{sample}"
        );
    }
}

#[test]
fn no_monitor() {
    let spec = parse("functional-test-samples/sample-tosca-vnfd-no-monitor.yaml");
    assert_eq!(vdu_names(&spec), ["VDU1"]);
    assert_eq!(spec.vdus[0].mgmt_cp.as_deref(), Some("CP1"));
    assert_eq!(spec.vdus[0].monitoring_policy, None);
    assert!(!spec.is_monitored());
}

#[test]
fn scaling_policy() {
    let spec = parse("tosca-vnfd-scale.yaml");
    assert_eq!(vdu_names(&spec), ["VDU1", "VDU2"]);
    assert_eq!(mgmt_cps(&spec), ["CP1", "CP2"]);
    assert!(!spec.is_monitored());
    assert_eq!(
        spec.scaling_policies,
        [ScalingPolicy {
            name: "SP1".to_owned(),
            targets: vec!["VDU1".to_owned(), "VDU2".to_owned()],
            increment: 1,
            min_instances: 1,
            max_instances: 3,
            default_instances: 2,
            cooldown_s: 120,
        }]
    );
    assert_eq!(spec.initial_instances("VDU2"), 2);
}

#[test]
fn alarm_policies_are_ignored() {
    let spec = parse("tosca-vnfd-alarm-respawn.yaml");
    assert_eq!(vdu_names(&spec), ["VDU1"]);
    assert!(spec.scaling_policies.is_empty());
    assert!(!spec.is_monitored());

    let spec = parse("tosca-vnfd-alarm-scale.yaml");
    let names: Vec<_> = spec.scaling_policies.iter().map(|p| &p.name).collect();
    assert_eq!(names, ["SP1"]);
    let sp1 = &spec.scaling_policies[0];
    assert_eq!(sp1.targets, ["VDU1"]);
    assert_eq!(
        (sp1.min_instances, sp1.max_instances, sp1.default_instances),
        (1, 3, 1)
    );
}

/// python-tackerclient sends the TOSCA as a JSON object; it must mean the same.
#[test]
fn json_input_yields_the_same_spec() {
    for path in sample_paths() {
        let text = std::fs::read_to_string(&path).expect("sample is readable");
        let from_yaml = parse_yaml(&text).expect("sample parses").spec;
        let json = vnfd::yaml_to_json(&text).expect("sample is YAML");

        let ParsedVnfd {
            spec,
            template_yaml,
            ..
        } = parse_json(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(spec, from_yaml, "{}", path.display());
        // The rendering shown as attributes.vnfd reads back as the same VNFD.
        let reparsed = parse_yaml(&template_yaml).expect("rendering parses").spec;
        assert_eq!(reparsed, from_yaml, "{}", path.display());

        // Tacker also took the template as a YAML string inside the JSON.
        let as_string = parse_json(&serde_json::Value::String(text.clone())).expect("parses");
        assert_eq!(as_string.spec, from_yaml, "{}", path.display());
        assert_eq!(as_string.template_yaml, text);
    }
}
