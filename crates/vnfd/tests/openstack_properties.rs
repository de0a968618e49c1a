//! The VDU properties an OpenStack VIM maps (Tacker's own samples in `tests/corpus/`): the
//! `nfv_compute` sizes, zone, key, connection points with their VL's network, placement.

use std::path::Path;

use events::spec::{ComputeSpec, ConnectionPoint, Placement, PlacementPolicy, VnfdSpec};

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

fn parse(file: &str) -> VnfdSpec {
    let path = Path::new(CORPUS_DIR).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    vnfd::parse_yaml(&text)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .spec
}

fn cp(name: &str, network: &str) -> ConnectionPoint {
    ConnectionPoint {
        name: name.to_owned(),
        network_name: Some(network.to_owned()),
        management: false,
        anti_spoofing_protection: true,
        security_groups: vec![],
        ip_address: None,
        mac_address: None,
        order: None,
    }
}

#[test]
fn mac_and_ip_sample_keeps_sizes_zone_key_and_its_port() {
    let spec = parse("samples/tosca-vnfd-mac-ip.yaml");
    let vdu = &spec.vdus[0];
    assert_eq!(
        vdu.nfv_compute,
        Some(ComputeSpec {
            num_cpus: 1,
            mem_size_mb: 512,
            disk_size_gb: Some(1),
        })
    );
    assert_eq!(vdu.availability_zone.as_deref(), Some("nova"));
    assert_eq!(vdu.key_name.as_deref(), Some("userKey"));
    assert!(!vdu.config_drive);
    assert_eq!(
        vdu.connection_points,
        vec![ConnectionPoint {
            management: true,
            anti_spoofing_protection: false,
            ip_address: Some("10.10.1.12".to_owned()),
            mac_address: Some("6c:40:08:a0:de:0a".to_owned()),
            order: Some(0),
            ..cp("CP1", "net1")
        }]
    );
}

#[test]
fn security_groups_are_kept_and_anti_spoofing_defaults_to_on() {
    let spec = parse("samples/tosca-vnfd-secgroups.yaml");
    let cps = &spec.vdus[0].connection_points;
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].security_groups, ["default", "test_secgrp"]);
    assert!(cps[0].anti_spoofing_protection);
    assert_eq!(cps[0].network_name.as_deref(), Some("net_mgmt"));
}

#[test]
fn connection_points_follow_their_order() {
    let spec = parse("samples/tosca-vnfd-network.yaml");
    let orders: Vec<Option<u32>> = spec.vdus[0]
        .connection_points
        .iter()
        .map(|cp| cp.order)
        .collect();
    assert_eq!(orders, [Some(0), Some(1), Some(2)]);
    assert!(spec.vdus[0].connection_points[0].management);
}

#[test]
fn placement_policies_are_kept_with_their_targets() {
    let spec = parse("samples/tosca-placement-policy-anti-affinity.yaml");
    let policy = PlacementPolicy {
        name: "my_compute_placement_policy".to_owned(),
        policy: Placement::AntiAffinity,
        strict: true,
        description: Some(
            "Apply anti-affinity placement policy to the application servers".to_owned(),
        ),
        targets: vec!["VDU1".to_owned(), "VDU2".to_owned()],
    };
    assert_eq!(spec.placement_policies, std::slice::from_ref(&policy));
    assert_eq!(spec.placement_of("VDU2"), [policy]);
    assert_eq!(
        spec.vdus[1].nfv_compute.map(|c| c.num_cpus),
        Some(2),
        "VDU2's nfv_compute"
    );
}

const MINIMAL: &str = "
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      capabilities:
        nfv_compute:
          properties:
            num_cpus: 1
            mem_size: MEM
            disk_size: DISK
      properties:
        image: vnfm-guest
        config_drive: true
        metadata: {role: web, weight: 3}
    CP1:
      type: tosca.nodes.nfv.CP.Tacker
      properties: {management: true}
      requirements:
        - virtualLink: VL1
        - virtualBinding: VDU1
    VL1:
      type: tosca.nodes.nfv.VL
      properties: {network_name: net_mgmt}
  policies:
    - together:
        type: tosca.policies.tacker.Placement
        properties: {strict: false}
        targets: [VDU1]
";

fn minimal(mem: &str, disk: &str) -> Result<VnfdSpec, vnfd::VnfdError> {
    vnfd::parse_yaml(&MINIMAL.replace("MEM", mem).replace("DISK", disk)).map(|p| p.spec)
}

#[test]
fn sizes_convert_as_tackers_flavor_translation_did() {
    let sizes = |mem: &str, disk: &str| {
        let compute = minimal(mem, disk)
            .unwrap_or_else(|e| panic!("{mem} / {disk}: {e}"))
            .vdus[0]
            .nfv_compute
            .expect("nfv_compute");
        (compute.mem_size_mb, compute.disk_size_gb)
    };
    assert_eq!(sizes("256 MB", "1 GB"), (256, Some(1)));
    // Decimal units, as Tacker's `convert_unit_size_to_num`: 2 GB is 2000 MB.
    assert_eq!(sizes("2 GB", "10 GB"), (2000, Some(10)));
    // Binary units count in bytes too: a GiB is 1,073.7 MB (Nova then reads that as MiB).
    assert_eq!(sizes("1 GiB", "1 TB"), (1073, Some(1000)));
    assert_eq!(sizes("512mb", "1gb"), (512, Some(1)));
    // A bare number is already in the flavor's unit.
    assert_eq!(sizes("1024", "20"), (1024, Some(20)));
    // Rounded down: half a gigabyte of disk is none.
    assert_eq!(sizes("512 MB", "512 MB"), (512, Some(0)));
    let wrong = minimal("512 parsecs", "1 GB").expect_err("an unknown unit");
    assert!(
        wrong.to_string().contains("mem_size") && wrong.to_string().contains("parsecs"),
        "{wrong}"
    );
}

#[test]
fn minimal_vdu_keeps_metadata_config_drive_and_a_soft_affinity() {
    let spec = minimal("256 MB", "1 GB").expect("parses");
    let vdu = &spec.vdus[0];
    assert!(vdu.config_drive);
    assert_eq!(vdu.metadata.get("role").map(String::as_str), Some("web"));
    assert_eq!(vdu.metadata.get("weight").map(String::as_str), Some("3"));
    assert_eq!(
        vdu.connection_points,
        [ConnectionPoint {
            management: true,
            ..cp("CP1", "net_mgmt")
        }]
    );
    let policy = &spec.placement_policies[0];
    assert_eq!(policy.policy, Placement::Affinity, "Tacker's default");
    assert!(!policy.strict);
}
