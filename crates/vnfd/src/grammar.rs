//! The legacy VNFD grammar as Tacker's type files defined it (`tacker/tosca/lib/tacker_defs.yaml`
//! and `tacker_nfv_defs.yaml` at openstack/tacker 0ec99497, the last commit before the legacy
//! VNFM's removal, with the TOSCA and NFV profile types they derive from, as tosca-parser
//! read them): which node and policy types exist, which properties each takes, of which type
//! and constraints. Unknown types, properties and trigger keys are refused with their path.
//!
//! This module only says whether a template is well-formed; `tosca` reads what vnfm acts on.

use crate::error::{VnfdError, invalid};
use crate::tree::{Map, Node, quote};

/// A property's value type, as the type files declare it.
#[derive(Clone, Copy)]
enum Ty {
    String,
    Float,
    Boolean,
    Map,
    List,
    /// A string among these (`constraints: valid_values`).
    OneOf(&'static [&'static str]),
    /// An integer among these.
    IntegerOneOf(&'static [i64]),
    /// An integer from `.0` to `.1` inclusive (`in_range`, `greater_or_equal`).
    IntegerIn(i64, i64),
    /// TOSCA's `scalar-unit.size` (`10 GB`), or a bare number.
    Size,
    /// Any value: what the type files leave open (trigger actions, event types).
    Any,
    /// A mapping of these properties (a TOSCA data type).
    Data(&'static [Prop]),
}

/// One property of a type.
struct Prop {
    name: &'static str,
    ty: Ty,
    required: bool,
}

const fn opt(name: &'static str, ty: Ty) -> Prop {
    Prop {
        name,
        ty,
        required: false,
    }
}

const fn req(name: &'static str, ty: Ty) -> Prop {
    Prop {
        name,
        ty,
        required: true,
    }
}

pub(crate) const VDU_TYPE: &str = "tosca.nodes.nfv.VDU.Tacker";
pub(crate) const CP_TYPE: &str = "tosca.nodes.nfv.CP.Tacker";
pub(crate) const SCALING_TYPE: &str = "tosca.policies.tacker.Scaling";
pub(crate) const PLACEMENT_TYPE: &str = "tosca.policies.tacker.Placement";
pub(crate) const VL_TYPE: &str = "tosca.nodes.nfv.VL";

const INTEGER_MAX: i64 = i64::MAX;

/// `tosca.datatypes.tacker.VduReservationMetadata`.
const RESERVATION_METADATA: &[Prop] = &[req("resource_type", Ty::String), req("id", Ty::String)];

/// `tosca.nodes.nfv.VDU.Tacker`.
const VDU_PROPERTIES: &[Prop] = &[
    opt("name", Ty::String),
    opt("image", Ty::String),
    opt("flavor", Ty::String),
    opt("availability_zone", Ty::String),
    opt("metadata", Ty::Map),
    opt("config_drive", Ty::Boolean),
    opt("placement_policy", Ty::String),
    opt("app_monitoring_policy", Ty::Map),
    opt("monitoring_policy", Ty::Map),
    opt("config", Ty::String),
    opt("mgmt_driver", Ty::String),
    opt("service_type", Ty::String),
    opt("user_data", Ty::String),
    opt("user_data_format", Ty::String),
    opt("key_name", Ty::String),
    opt("vnfcs", Ty::Map),
    opt("namespace", Ty::String),
    opt("mapping_ports", Ty::List),
    opt("labels", Ty::List),
    opt("reservation_metadata", Ty::Data(RESERVATION_METADATA)),
    opt("maintenance", Ty::Boolean),
];

/// `tosca.datatypes.compute_properties`, the VDU's `nfv_compute` capability.
const COMPUTE_PROPERTIES: &[Prop] = &[
    req("num_cpus", Ty::IntegerIn(1, INTEGER_MAX)),
    req("mem_size", Ty::Size),
    opt("disk_size", Ty::Size),
    opt("mem_page_size", Ty::String),
    opt("numa_node_count", Ty::IntegerIn(1, INTEGER_MAX)),
    opt("numa_nodes", Ty::Map),
    opt("cpu_allocation", Ty::Data(CPU_ALLOCATION)),
];

/// `nfv_compute`'s `cpu_allocation`, as Tacker's flavor translation checked it
/// (`tacker/tosca/utils.py`, `CPU_PROP_KEY_SET` and `CPU_PROP_VAL_MAP`).
const CPU_ALLOCATION: &[Prop] = &[
    opt("cpu_affinity", Ty::OneOf(&["shared", "dedicated"])),
    opt("thread_allocation", Ty::String),
    opt("socket_count", Ty::IntegerIn(1, INTEGER_MAX)),
    opt("thread_count", Ty::IntegerIn(1, INTEGER_MAX)),
    opt("core_count", Ty::IntegerIn(1, INTEGER_MAX)),
];

/// `tosca.nodes.nfv.CP.Tacker`, with `tosca.nodes.network.Port`'s properties it derives.
const CP_PROPERTIES: &[Prop] = &[
    opt("mac_address", Ty::String),
    opt("name", Ty::String),
    opt("management", Ty::Boolean),
    opt("anti_spoofing_protection", Ty::Boolean),
    opt("allowed_address_pairs", Ty::List),
    opt("security_groups", Ty::List),
    opt("type", Ty::OneOf(&["sriov", "vnic"])),
    opt("ip_address", Ty::String),
    opt("order", Ty::IntegerIn(0, INTEGER_MAX)),
    opt("is_default", Ty::Boolean),
    opt("ip_range_start", Ty::String),
    opt("ip_range_end", Ty::String),
];

/// `tosca.nodes.nfv.VL`, with `tosca.nodes.network.Network`'s properties it derives. The NFV
/// profile requires `vendor`; vnfm never reads it and has always taken a VL without one.
const VL_PROPERTIES: &[Prop] = &[
    opt("vendor", Ty::String),
    opt("ip_version", Ty::IntegerOneOf(&[4, 6])),
    opt("cidr", Ty::String),
    opt("start_ip", Ty::String),
    opt("end_ip", Ty::String),
    opt("gateway_ip", Ty::String),
    opt("network_name", Ty::String),
    opt("network_id", Ty::String),
    opt("segmentation_id", Ty::String),
    opt("network_type", Ty::String),
    opt("physical_network", Ty::String),
    opt("dhcp_enabled", Ty::Boolean),
];

/// `tosca.nodes.BlockStorage.Tacker`, with `tosca.nodes.BlockStorage`'s properties.
const BLOCK_STORAGE_PROPERTIES: &[Prop] = &[
    opt("image", Ty::String),
    opt("size", Ty::Size),
    opt("volume_id", Ty::String),
    opt("snapshot_id", Ty::String),
];

const BLOCK_STORAGE_ATTACHMENT_PROPERTIES: &[Prop] = &[req("location", Ty::String)];

/// `tosca.nodes.nfv.VNFC.Tacker`: `tosca.nodes.SoftwareComponent`'s properties.
const VNFC_PROPERTIES: &[Prop] = &[
    opt("component_version", Ty::String),
    opt("admin_credential", Ty::Map),
];

/// `tosca.nodes.network.FloatingIP`, which Tacker's translator to Heat handled (its
/// floating IP samples and functional test).
const FLOATING_IP_PROPERTIES: &[Prop] = &[
    opt("floating_network", Ty::String),
    opt("floating_ip_address", Ty::String),
];

/// The node types a legacy VNFD may use, with their properties.
const NODE_TYPES: &[(&str, &[Prop])] = &[
    (VDU_TYPE, VDU_PROPERTIES),
    (CP_TYPE, CP_PROPERTIES),
    (VL_TYPE, VL_PROPERTIES),
    ("tosca.nodes.BlockStorage.Tacker", BLOCK_STORAGE_PROPERTIES),
    (
        "tosca.nodes.BlockStorageAttachment",
        BLOCK_STORAGE_ATTACHMENT_PROPERTIES,
    ),
    ("tosca.nodes.nfv.VNFC.Tacker", VNFC_PROPERTIES),
    ("tosca.nodes.network.FloatingIP", FLOATING_IP_PROPERTIES),
];

/// TOSCA's node template keynames.
const NODE_TEMPLATE_KEYS: &[&str] = &[
    "type",
    "description",
    "directives",
    "metadata",
    "properties",
    "attributes",
    "requirements",
    "capabilities",
    "interfaces",
    "artifacts",
    "node_filter",
    "copy",
];

const PLACEMENT_PROPERTIES: &[Prop] = &[
    opt("policy", Ty::OneOf(&["affinity", "anti-affinity"])),
    opt("strict", Ty::Boolean),
];

const MONITORING_PROPERTIES: &[Prop] = &[
    req("name", Ty::String),
    opt("parameters", Ty::Map),
    req("actions", Ty::Map),
];

const APP_MONITORING_PROPERTIES: &[Prop] = &[req("name", Ty::String), opt("parameters", Ty::Map)];

/// The policy types of Tacker's type files, with their properties. The misspelling
/// `tosca.policy.tacker.Scaling` is not among them: Tacker refused it too.
const POLICY_TYPES: &[(&str, &[Prop])] = &[
    // Its properties are read, and checked, where vnfm acts on them: `tosca::scaling_policy`.
    (SCALING_TYPE, &[]),
    (PLACEMENT_TYPE, PLACEMENT_PROPERTIES),
    (ALARMING_TYPE, &[]),
    (RESERVATION_TYPE, &[]),
    ("tosca.policies.tacker.Monitoring", MONITORING_PROPERTIES),
    (
        "tosca.policies.tacker.Monitoring.NoOp",
        MONITORING_PROPERTIES,
    ),
    (
        "tosca.policies.tacker.Monitoring.Ping",
        MONITORING_PROPERTIES,
    ),
    (
        "tosca.policies.tacker.Monitoring.HttpPing",
        MONITORING_PROPERTIES,
    ),
    (
        "tosca.policies.tacker.AppMonitoring",
        APP_MONITORING_PROPERTIES,
    ),
    (
        "tosca.policies.tacker.Monitoring.Zabbix",
        APP_MONITORING_PROPERTIES,
    ),
    ("tosca.policies.tacker.Failure", &[]),
    ("tosca.policies.tacker.Failure.Respawn", &[]),
    ("tosca.policies.tacker.Failure.Terminate", &[]),
    ("tosca.policies.tacker.Failure.Log", &[]),
];

pub(crate) const ALARMING_TYPE: &str = "tosca.policies.tacker.Alarming";
const RESERVATION_TYPE: &str = "tosca.policies.tacker.Reservation";

/// TOSCA's policy keynames, with Tacker's `triggers` (alarming) and `reservation`.
const POLICY_KEYS: &[&str] = &[
    "type",
    "description",
    "metadata",
    "properties",
    "targets",
    "triggers",
    "reservation",
];

/// A trigger of `tosca.policies.tacker.Alarming`: Tacker's type (`event_type`, `metrics`,
/// `condition`, `action`) and the keys tosca-parser's trigger added for Tacker's samples
/// (`metric`, `metadata`) besides TOSCA's own.
const TRIGGER_PROPERTIES: &[Prop] = &[
    req("event_type", Ty::Any),
    opt("metrics", Ty::String),
    opt("metric", Ty::String),
    opt("condition", Ty::Data(CONDITION_PROPERTIES)),
    req("action", Ty::Any),
    opt("metadata", Ty::String),
    opt("description", Ty::String),
    opt("schedule", Ty::Any),
    opt("target_filter", Ty::Any),
];

/// A trigger's `condition`: TOSCA's keys and those of Tacker's alarm monitor (Aodh).
const CONDITION_PROPERTIES: &[Prop] = &[
    opt("constraint", Ty::String),
    opt("period", Ty::Any),
    opt("evaluations", Ty::IntegerIn(1, INTEGER_MAX)),
    opt("method", Ty::String),
    opt("threshold", Ty::Float),
    opt(
        "comparison_operator",
        Ty::OneOf(&["gt", "ge", "lt", "le", "eq", "ne"]),
    ),
    opt("granularity", Ty::IntegerIn(1, INTEGER_MAX)),
    opt("aggregation_method", Ty::String),
    opt("resource_type", Ty::String),
];

/// `tosca.policies.tacker.Reservation`'s `reservation`.
const RESERVATION_PROPERTIES: &[Prop] = &[
    req("start_actions", Ty::List),
    req("before_end_actions", Ty::List),
    req("end_actions", Ty::List),
    req("properties", Ty::Data(&[req("lease_id", Ty::String)])),
];

/// TOSCA's service template keynames (tosca-parser's `SECTIONS`).
const TEMPLATE_KEYS: &[&str] = &[
    "tosca_definitions_version",
    "tosca_default_namespace",
    "template_name",
    "template_author",
    "template_version",
    "description",
    "metadata",
    "imports",
    "dsl_definitions",
    "repositories",
    "topology_template",
    "node_types",
    "relationship_types",
    "relationship_templates",
    "capability_types",
    "artifact_types",
    "data_types",
    "interface_types",
    "policy_types",
    "group_types",
];

/// TOSCA's topology template keynames.
const TOPOLOGY_KEYS: &[&str] = &[
    "description",
    "inputs",
    "node_templates",
    "relationship_templates",
    "groups",
    "policies",
    "outputs",
    "substitution_mappings",
    "workflows",
];

/// Checks the document's sections and those of its `topology_template`.
pub(crate) fn check_sections(root: &Map) -> Result<(), VnfdError> {
    check_keys(root, "", TEMPLATE_KEYS, "section")?;
    match root.raw("topology_template") {
        Some(Node::Map(topology)) => {
            check_keys(topology, "topology_template", TOPOLOGY_KEYS, "section")
        }
        _ => Ok(()),
    }
}

/// Checks a node template's keys, type, properties and (for a VDU) its `nfv_compute`.
pub(crate) fn check_node(type_name: &str, body: &Map, field: &str) -> Result<(), VnfdError> {
    check_keys(body, field, NODE_TEMPLATE_KEYS, "node template key")?;
    let Some((_, properties)) = NODE_TYPES.iter().find(|(name, _)| *name == type_name) else {
        let known: Vec<&str> = NODE_TYPES.iter().map(|(name, _)| *name).collect();
        return Err(invalid(
            format!("{field}.type"),
            format!(
                "unknown node type {}; a legacy VNFD uses {}",
                quote(type_name),
                known.join(", ")
            ),
        ));
    };
    check_properties(
        body.raw("properties"),
        &format!("{field}.properties"),
        properties,
    )?;
    if type_name == VDU_TYPE {
        let capabilities_field = format!("{field}.capabilities");
        if let Some(capabilities) = mapping(body.raw("capabilities"), &capabilities_field)? {
            let compute_field = format!("{capabilities_field}.nfv_compute");
            if let Some(compute) = mapping(capabilities.raw("nfv_compute"), &compute_field)? {
                check_keys(compute, &compute_field, &["properties"], "capability key")?;
                check_properties(
                    compute.raw("properties"),
                    &format!("{compute_field}.properties"),
                    COMPUTE_PROPERTIES,
                )?;
            }
        }
    }
    Ok(())
}

/// Checks a policy's keys, type, properties, and an alarming policy's triggers or a
/// reservation policy's `reservation`. Answers the policy's type.
pub(crate) fn check_policy<'a>(policy: &'a Map, field: &str) -> Result<&'a str, VnfdError> {
    check_keys(policy, field, POLICY_KEYS, "policy key")?;
    let type_field = format!("{field}.type");
    let type_name = match policy.raw("type") {
        Some(Node::String(t)) => t.as_str(),
        None | Some(Node::Null) => return Err(invalid(type_field, "is required but missing")),
        Some(other) => {
            return Err(invalid(
                type_field,
                format!("must be a string, not {}", other.describe()),
            ));
        }
    };
    let Some((_, properties)) = POLICY_TYPES.iter().find(|(name, _)| *name == type_name) else {
        let known: Vec<&str> = POLICY_TYPES.iter().map(|(name, _)| *name).collect();
        return Err(invalid(
            type_field,
            format!(
                "unknown policy type {}; Tacker's types are {}",
                quote(type_name),
                known.join(", ")
            ),
        ));
    };
    if type_name != SCALING_TYPE {
        check_properties(
            policy.raw("properties"),
            &format!("{field}.properties"),
            properties,
        )?;
    }
    let triggers_field = format!("{field}.triggers");
    match (type_name, policy.raw("triggers")) {
        (ALARMING_TYPE, triggers) => {
            let Some(triggers) = mapping(triggers, &triggers_field)? else {
                return Err(invalid(triggers_field, "an alarming policy needs triggers"));
            };
            for (name, trigger) in triggers.iter() {
                check_value(
                    trigger,
                    Ty::Data(TRIGGER_PROPERTIES),
                    &format!("{triggers_field}.{name}"),
                )?;
            }
        }
        (_, None | Some(Node::Null)) => {}
        (_, Some(_)) => {
            return Err(invalid(
                triggers_field,
                format!("only a {ALARMING_TYPE} policy has triggers"),
            ));
        }
    }
    let reservation_field = format!("{field}.reservation");
    match (type_name, policy.raw("reservation")) {
        (RESERVATION_TYPE, None | Some(Node::Null)) => {
            return Err(invalid(reservation_field, "is required but missing"));
        }
        (RESERVATION_TYPE, Some(reservation)) => {
            check_value(
                reservation,
                Ty::Data(RESERVATION_PROPERTIES),
                &reservation_field,
            )?;
        }
        (_, None | Some(Node::Null)) => {}
        (_, Some(_)) => {
            return Err(invalid(
                reservation_field,
                format!("only a {RESERVATION_TYPE} policy has a reservation"),
            ));
        }
    }
    Ok(type_name)
}

/// Checks `properties` (at `field`) against a type's `allowed` ones.
fn check_properties(
    properties: Option<&Node>,
    field: &str,
    allowed: &'static [Prop],
) -> Result<(), VnfdError> {
    match properties {
        None | Some(Node::Null) => {
            check_value(&Node::Map(Map::default()), Ty::Data(allowed), field)
        }
        Some(properties) => check_value(properties, Ty::Data(allowed), field),
    }
}

/// Checks one value against its type. A value still waiting for its input passes: it is
/// checked once the VNF create gives it.
fn check_value(node: &Node, ty: Ty, field: &str) -> Result<(), VnfdError> {
    let wrong = |expected: &str| {
        Err(invalid(
            field,
            format!("must be {expected}, not {}", node.describe()),
        ))
    };
    match (ty, node) {
        (_, Node::Input(_))
        | (Ty::Any, _)
        | (Ty::String | Ty::Size, Node::String(_))
        | (Ty::Map, Node::Map(_))
        | (Ty::List, Node::Seq(_)) => Ok(()),
        (Ty::Size, Node::Number(n)) if *n >= 0.0 => Ok(()),
        (Ty::Boolean, node) if boolean(node).is_some() => Ok(()),
        (Ty::Float, node) if number(node).is_some() => Ok(()),
        (Ty::IntegerIn(min, max), node) => match integer(node) {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ if max == INTEGER_MAX => wrong(&format!("a whole number from {min}")),
            _ => wrong(&format!("a whole number from {min} to {max}")),
        },
        (Ty::IntegerOneOf(valid), node) => match integer(node) {
            Some(n) if valid.contains(&n) => Ok(()),
            _ => wrong(&format!(
                "one of {}",
                valid
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        (Ty::OneOf(valid), Node::String(s)) if valid.contains(&s.as_str()) => Ok(()),
        (Ty::OneOf(valid), _) => wrong(&format!("one of {}", valid.join(", "))),
        (Ty::Data(props), Node::Map(map)) => {
            if let Some((key, _)) = map
                .iter()
                .find(|(key, _)| !props.iter().any(|p| p.name == *key))
            {
                return Err(invalid(
                    format!("{field}.{key}"),
                    format!(
                        "unknown property {}; expected one of {}",
                        quote(key),
                        props.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            for prop in props {
                let prop_field = format!("{field}.{}", prop.name);
                match map.raw(prop.name) {
                    None | Some(Node::Null) if prop.required => {
                        return Err(invalid(prop_field, "is required but missing"));
                    }
                    None | Some(Node::Null) => {}
                    Some(value) => check_value(value, prop.ty, &prop_field)?,
                }
            }
            Ok(())
        }
        (Ty::String, _) => wrong("a string"),
        (Ty::Float, _) => wrong("a number"),
        (Ty::Boolean, _) => wrong("true or false"),
        (Ty::Map | Ty::Data(_), _) => wrong("a mapping"),
        (Ty::List, _) => wrong("a list"),
        (Ty::Size, _) => wrong("a size, such as 10 GB"),
    }
}

/// A boolean, also as the strings tosca-parser and PyYAML read as one (`"true"`, `yes`).
pub(crate) fn boolean(node: &Node) -> Option<bool> {
    match node {
        Node::Bool(b) => Some(*b),
        Node::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A number, also as a string holding one.
pub(crate) fn number(node: &Node) -> Option<f64> {
    match node {
        Node::Number(n) => Some(*n),
        Node::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|n| n.is_finite())
}

/// A whole number, also as a string holding one.
pub(crate) fn integer(node: &Node) -> Option<i64> {
    let n = number(node)?;
    // Whole and within i64: the cast is exact.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "whole and within ±2^63 (checked): exact"
    )]
    let whole = (n.fract() == 0.0 && n.abs() < 9.2e18).then_some(n as i64);
    whole
}

fn mapping<'a>(node: Option<&'a Node>, field: &str) -> Result<Option<&'a Map>, VnfdError> {
    match node {
        None | Some(Node::Null | Node::Input(_)) => Ok(None),
        Some(Node::Map(map)) => Ok(Some(map)),
        Some(other) => Err(invalid(
            field,
            format!("must be a mapping, not {}", other.describe()),
        )),
    }
}

/// Refuses any key of `map` not in `allowed`.
pub(crate) fn check_keys(
    map: &Map,
    field: &str,
    allowed: &[&str],
    noun: &str,
) -> Result<(), VnfdError> {
    match map.iter().find(|(key, _)| !allowed.contains(key)) {
        None => Ok(()),
        Some((key, _)) => Err(invalid(
            if field.is_empty() {
                key.to_owned()
            } else {
                format!("{field}.{key}")
            },
            format!(
                "unknown {noun} {}; expected one of {}",
                quote(key),
                allowed.join(", ")
            ),
        )),
    }
}
