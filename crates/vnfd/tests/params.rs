//! Parameters: `topology_template.inputs`, `get_input` anywhere a value may stand, and a
//! VNF's `param_values` checked against the inputs.

use serde_json::json;
use vnfd::{VnfdError, parse_yaml, resolve};

const TEMPLATE: &str = "\
tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
topology_template:
  inputs:
    image_name:
      type: string
    management:
      type: string
    instances:
      type: integer
      default: 2
      constraints:
        - in_range: [1, 3]
    placement:
      type: string
      default: affinity
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU.Tacker
      properties:
        image: { get_input: image_name }
        flavor: m1.tiny
    CP1:
      type: tosca.nodes.nfv.CP.Tacker
      properties:
        management: { get_input: management }
      requirements:
        - virtualBinding:
            node: VDU1
  policies:
    - SP1:
        type: tosca.policies.tacker.Scaling
        properties:
          targets: [VDU1]
          min_instances: 1
          max_instances: 3
          default_instances: { get_input: instances }
    - PP1:
        type: tosca.policies.tacker.Placement
        properties:
          policy: { get_input: placement }
        targets: [VDU1]
";

fn parameter_error(params: &serde_json::Value) -> (String, String) {
    parameter_error_in(TEMPLATE, params)
}

fn parameter_error_in(template: &str, params: &serde_json::Value) -> (String, String) {
    match resolve(template, Some(params)) {
        Err(VnfdError::Parameter { name, message }) => (name, message),
        other => panic!("{params}: expected a parameter error, got {other:?}"),
    }
}

#[test]
fn onboarding_takes_defaults_and_leaves_inputs_without_one_to_the_vnf() {
    let spec = parse_yaml(TEMPLATE).expect("onboards").spec;
    assert_eq!(
        spec.inputs,
        ["image_name", "management", "instances", "placement"]
    );
    assert_eq!(spec.vdus[0].image, None, "image_name has no default yet");
    assert_eq!(spec.scaling_policies[0].default_instances, 2);
}

#[test]
fn param_values_feed_the_spec() {
    // As python-tackerclient's --param-file sends them: the file's YAML text.
    let text = json!("{image_name: cirros, management: 'true', instances: '3'}");
    let spec = resolve(TEMPLATE, Some(&text)).expect("resolves");
    assert_eq!(spec.vdus[0].image.as_deref(), Some("cirros"));
    assert_eq!(spec.vdus[0].mgmt_cp.as_deref(), Some("CP1"));
    assert_eq!(spec.scaling_policies[0].default_instances, 3);
    // And as an object, with the default of `instances`.
    let object = json!({"image_name": "ubuntu", "management": "false"});
    let spec = resolve(TEMPLATE, Some(&object)).expect("resolves");
    assert_eq!(spec.vdus[0].image.as_deref(), Some("ubuntu"));
    assert_eq!(spec.vdus[0].mgmt_cp, None);
    assert_eq!(spec.scaling_policies[0].default_instances, 2);
}

#[test]
fn a_missing_unknown_or_ill_typed_parameter_is_named() {
    let (name, message) = parameter_error(&json!({"management": "true"}));
    assert_eq!(name, "image_name");
    assert!(message.contains("no default"), "{message}");
    let missing = resolve(TEMPLATE, None).expect_err("image_name is required");
    assert!(missing.to_string().starts_with("image_name: "), "{missing}");

    let (name, message) =
        parameter_error(&json!({"image_name": "c", "management": "true", "instances": "many"}));
    assert_eq!(name, "instances");
    assert!(message.contains("of type integer"), "{message}");

    let (name, message) =
        parameter_error(&json!({"image_name": "c", "management": "true", "instances": 7}));
    assert_eq!(name, "instances");
    assert!(message.contains("[1, 3]"), "{message}");

    // A name the VNFD does not take is ignored, as Tacker ignored it.
    let extra = json!({"image_name": "c", "management": "true", "flavour": "x"});
    assert!(resolve(TEMPLATE, Some(&extra)).is_ok());

    let (name, message) = parameter_error(&json!({"image_name": ["c"], "management": "true"}));
    assert_eq!(name, "image_name");
    assert!(message.contains("of type string"), "{message}");

    let (name, _) = parameter_error(&json!("[not, a, mapping]"));
    assert_eq!(name, "");
}

#[test]
fn a_parameter_is_checked_where_it_lands() {
    let params = json!({"image_name": "c", "management": "true", "placement": "spread"});
    let error = resolve(TEMPLATE, Some(&params)).expect_err("not a placement policy");
    assert_eq!(
        error.field(),
        "topology_template.policies.PP1.properties.policy"
    );
    assert!(
        error.to_string().contains("affinity, anti-affinity"),
        "{error}"
    );
}

#[test]
fn input_definitions_are_checked_at_onboarding() {
    let bad_default = TEMPLATE.replace("default: 2", "default: 5");
    let error = parse_yaml(&bad_default).expect_err("default out of range");
    assert_eq!(error.field(), "topology_template.inputs.instances.default");

    let bad_type = TEMPLATE.replace("type: integer", "type: number");
    let error = parse_yaml(&bad_type).expect_err("no such type");
    assert_eq!(error.field(), "topology_template.inputs.instances.type");

    let bad_key = TEMPLATE.replace("      default: affinity", "      defualt: affinity");
    let error = parse_yaml(&bad_key).expect_err("no such key");
    assert_eq!(error.field(), "topology_template.inputs.placement.defualt");

    let bad_constraint = TEMPLATE.replace("in_range: [1, 3]", "between: [1, 3]");
    let error = parse_yaml(&bad_constraint).expect_err("no such constraint");
    assert_eq!(
        error.field(),
        "topology_template.inputs.instances.constraints[0].between"
    );
}

#[test]
fn an_undeclared_input_is_taken_from_param_values() {
    // Tacker's reservation sample names inputs it never declares.
    let undeclared = TEMPLATE.replace("get_input: image_name", "get_input: image");
    let spec = parse_yaml(&undeclared).expect("onboards").spec;
    assert!(spec.inputs.contains(&"image".to_owned()));
    let params = json!({"image": "cirros", "image_name": "unused", "management": "true"});
    let spec = resolve(&undeclared, Some(&params)).expect("resolves");
    assert_eq!(spec.vdus[0].image.as_deref(), Some("cirros"));
    let (name, _) = match resolve(
        &undeclared,
        Some(&json!({"image_name": "x", "management": "true"})),
    ) {
        Err(VnfdError::Parameter { name, message }) => (name, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(name, "image");
}
