//! A VDU's `user_data` is a secret: the parser returns it beside the spec, never in it.

const VNFD: &str = "\
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
topology_template:
  inputs:
    greeting:
      type: string
      default: hello
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: vnfm-guest
        flavor: m1.tiny
        config_drive: true
        user_data_format: RAW
        user_data: |
          #!/bin/sh
          echo marker-3f9c > /tmp/marker
    VDU2:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: vnfm-guest
        flavor: m1.tiny
        user_data: { get_input: greeting }
    VDU3:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: vnfm-guest
        flavor: m1.tiny
";

const SCRIPT: &str = "#!/bin/sh\necho marker-3f9c > /tmp/marker\n";

#[test]
fn parse_returns_user_data_by_vdu_and_keeps_it_out_of_the_spec() {
    let parsed = vnfd::parse_yaml(VNFD).expect("parses");
    assert_eq!(parsed.user_data["VDU1"], SCRIPT);
    assert_eq!(parsed.user_data["VDU2"], "hello");
    assert!(!parsed.user_data.contains_key("VDU3"));
    assert!(parsed.spec.vdus[0].config_drive);
    let spec = serde_json::to_string(&parsed.spec).expect("serialises");
    assert!(!spec.contains("marker-3f9c"), "{spec}");
    assert!(!spec.contains("user_data"), "{spec}");
}

#[test]
fn resolve_vnf_resolves_user_data_with_the_parameters() {
    let resolved = vnfd::resolve_vnf(VNFD, Some(&serde_json::json!({"greeting": "bonjour"})))
        .expect("resolves");
    assert_eq!(resolved.user_data["VDU1"], SCRIPT);
    assert_eq!(resolved.user_data["VDU2"], "bonjour");
    assert_eq!(
        resolved.spec,
        vnfd::resolve(VNFD, Some(&serde_json::json!({"greeting": "bonjour"}))).unwrap()
    );
}
