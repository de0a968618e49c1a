//! The grammar of Tacker's type files: what they define is accepted, what they do not is
//! refused at its path.

use vnfd::parse_yaml;

const BASE: &str = "\
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      capabilities:
        nfv_compute:
          properties:
            num_cpus: 1
            mem_size: 512 MB
            disk_size: 1 GB
      properties:
        image: cirros
        availability_zone: nova
        config_drive: true
        key_name: userKey
        user_data_format: RAW
        user_data: |
          #!/bin/sh
        reservation_metadata:
          resource_type: virtual_instance
          id: 8b01bdf8
    CP1:
      type: tosca.nodes.nfv.CP.Tacker
      properties:
        management: true
        order: 0
        type: vnic
        anti_spoofing_protection: false
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
        ip_version: 4
  policies:
    - SP1:
        type: tosca.policies.tacker.Scaling
        properties:
          targets: [VDU1]
          increment: 1
          min_instances: 0
          max_instances: 3
          default_instances: 0
          cooldown: 60
    - PP1:
        type: tosca.policies.tacker.Placement
        properties:
          policy: anti-affinity
          strict: false
        targets: [VDU1]
    - AP1:
        type: tosca.policies.tacker.Alarming
        triggers:
          cpu_high:
            event_type:
              type: tosca.events.resource.utilization
              implementation: ceilometer
            metric: cpu_util
            condition:
              threshold: 50
              constraint: utilization greater_than 50%
              granularity: 600
              evaluations: 1
              aggregation_method: mean
              comparison_operator: gt
              resource_type: instance
            metadata: SG1
            action: [SP1-out]
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
fn what_tackers_types_define_is_accepted() {
    let spec = parse_yaml(BASE).expect("BASE parses").spec;
    assert_eq!(spec.scaling_policies[0].default_instances, 0);
    assert_eq!(spec.initial_instances("VDU1"), 0);
}

#[test]
fn unknown_types_properties_and_keys_are_refused_at_their_path() {
    let policies = "topology_template.policies";
    assert_refused(
        "type: tosca.policies.tacker.Scaling",
        "type: tosca.policy.tacker.Scaling",
        &format!("{policies}.SP1.type"),
        "unknown policy type \"tosca.policy.tacker.Scaling\"",
    );
    assert_refused(
        "policy: anti-affinity",
        "policy: invalid",
        &format!("{policies}.PP1.properties.policy"),
        "must be one of affinity, anti-affinity, not \"invalid\"",
    );
    assert_refused(
        "            metadata: SG1",
        "            metadata: SG1\n            actions: [respawn]",
        &format!("{policies}.AP1.triggers.cpu_high.actions"),
        "unknown property \"actions\"",
    );
    assert_refused(
        "              granularity: 600",
        "              granularity: 600\n              periodicity: 5",
        &format!("{policies}.AP1.triggers.cpu_high.condition.periodicity"),
        "unknown property",
    );
    assert_refused(
        "            event_type:\n              type: tosca.events.resource.utilization\n              implementation: ceilometer\n",
        "",
        &format!("{policies}.AP1.triggers.cpu_high.event_type"),
        "is required",
    );
    assert_refused(
        "topology_template:\n",
        "topology_template:\n  input: {}\n",
        "topology_template.input",
        "unknown section \"input\"",
    );
    assert_refused(
        "topology_template:\n",
        "imprts: []\ntopology_template:\n",
        "imprts",
        "unknown section \"imprts\"",
    );
    assert_refused(
        "        key_name: userKey",
        "        key_nam: userKey",
        "topology_template.node_templates.VDU1.properties.key_nam",
        "unknown property \"key_nam\"",
    );
    assert_refused(
        "        config_drive: true",
        "        config_drive: maybe",
        "topology_template.node_templates.VDU1.properties.config_drive",
        "true or false",
    );
    assert_refused(
        "        type: vnic",
        "        type: virtio",
        "topology_template.node_templates.CP1.properties.type",
        "sriov, vnic",
    );
    assert_refused(
        "        ip_version: 4",
        "        ip_version: 5",
        "topology_template.node_templates.VL1.properties.ip_version",
        "one of 4, 6",
    );
    assert_refused(
        "            num_cpus: 1",
        "            num_cpus: 0",
        "topology_template.node_templates.VDU1.capabilities.nfv_compute.properties.num_cpus",
        "from 1",
    );
    assert_refused(
        "          id: 8b01bdf8\n",
        "",
        "topology_template.node_templates.VDU1.properties.reservation_metadata.id",
        "is required",
    );
    assert_refused(
        "      type: tosca.nodes.nfv.VL",
        "      type: tosca.nodes.nfv.VL\n      propertes: {}",
        "topology_template.node_templates.VL1.propertes",
        "unknown node template key",
    );
    assert_refused(
        "        targets: [VDU1]\n    - AP1",
        "        targets: [VDU1]\n        trigers: {}\n    - AP1",
        &format!("{policies}.PP1.trigers"),
        "unknown policy key",
    );
}
