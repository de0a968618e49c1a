//! Tacker's TOSCA dialect: from the document tree to a `VnfdSpec`, checking every field
//! vnfm acts on and ignoring the ones it does not (`mgmt_driver`, reservation...). A VDU's
//! `nfv_compute`, zone, metadata, key, config drive and connection points (each with its VL's
//! network) and the placement policies are kept for a VIM that maps them (OpenStack's);
//! `user_data` never is in the spec: it is a secret, sealed in the stored template, and
//! [`user_data`] reads it apart for the VNF that will be sealed with the VNF's key.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;

use std::collections::BTreeMap;

use events::spec::{
    Aggregation, AlarmAction, AlarmTrigger, Comparison, ComputeSpec, ConnectionPoint,
    MonitorDriver, MonitoringPolicy, Placement, PlacementPolicy, PolicyAction, ScaleDirection,
    ScalingPolicy, VduSpec, VnfdSpec,
};

use crate::error::{VnfdError, invalid};
use crate::grammar::{
    self, ALARMING_TYPE, CP_TYPE, PLACEMENT_TYPE, SCALING_TYPE, VDU_TYPE, VL_TYPE, check_keys,
};
use crate::tree::{Map, Node, quote};

const NODE_TEMPLATES: &str = "topology_template.node_templates";
const POLICIES: &str = "topology_template.policies";

// Tacker's defaults for `monitoring_policy.parameters`, from its ping and http_ping drivers.
const MONITORING_DELAY_MS_DEFAULT: u64 = 30_000;
const COUNT_DEFAULT: u32 = 5;
const INTERVAL_MS_DEFAULT: u64 = 1_000;
const TIMEOUT_MS_DEFAULT: u64 = 5_000;
const PING_RETRY_DEFAULT: u32 = 1;
const HTTP_PING_RETRY_DEFAULT: u32 = 5;
const HTTP_PING_PORT_DEFAULT: u16 = 80;

/// One day: no VDU needs longer to boot, and a larger figure is more likely milliseconds
/// written where Tacker wants seconds.
const MONITORING_DELAY_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// One hour, for a probe's timeout and the gap between its echo requests: a monitor that
/// waits longer no longer detects a failure in useful time.
const PROBE_WAIT_MS_MAX: u64 = 60 * 60 * 1000;
/// The spec counts time in whole milliseconds; a shorter interval or timeout would round
/// to zero.
const PROBE_WAIT_MS_MIN: u64 = 1;
/// Echo requests per probe, and failed probes before acting: beyond a thousand, a probe is
/// a load test and a failure is never acted on.
const COUNT_MAX: u32 = 1_000;
const RETRY_MAX: u32 = 1_000;

// Defaults of a `tosca.policies.tacker.Scaling` policy's properties.
const INCREMENT_DEFAULT: u32 = 1;
const COOLDOWN_S_DEFAULT: u32 = 120;
const MIN_INSTANCES_DEFAULT: u32 = 1;
const MAX_INSTANCES_DEFAULT: u32 = 1;
/// Instances of one VDU in one VNF: each is a VIM call on every scale and a management IP to
/// probe, and a VNFD asking for more is more likely mistyped than planned.
const INSTANCES_MAX: u32 = 100;
/// A day between scaling actions already means never; more is a unit mistake.
const COOLDOWN_S_MAX: u32 = 24 * 60 * 60;

/// Tacker's (Aodh's) default alarm evaluation period, when a trigger names neither `period`
/// nor `granularity`.
const ALARM_PERIOD_S_DEFAULT: u32 = 60;
/// A day: an alarm evaluated less often than daily acts too late to scale anything.
const ALARM_PERIOD_S_MAX: u32 = 24 * 60 * 60;
/// Periods in a row: beyond a hundred, `evaluations × period` outlasts any useful reaction.
const ALARM_EVALUATIONS_MAX: u32 = 100;

/// Names of VDUs, management connection points and scaling policies end up in VIM resource
/// names, log fields and the API; keep them short and plain.
const NAME_BYTES_MAX: usize = 64;

const PING_PARAMETERS: &[&str] = &["monitoring_delay", "count", "interval", "timeout", "retry"];
const HTTP_PING_PARAMETERS: &[&str] = &[
    "monitoring_delay",
    "count",
    "interval",
    "timeout",
    "retry",
    "port",
];
const SCALING_PROPERTIES: &[&str] = &[
    "targets",
    "increment",
    "cooldown",
    "min_instances",
    "max_instances",
    "default_instances",
    "target_cpu_utilization_percentage",
];

/// A node template, with its name and type read.
struct NodeTemplate<'a> {
    name: &'a str,
    type_name: &'a str,
    body: &'a Map,
    field: String,
}

pub(crate) fn vnfd_spec(root: &Node) -> Result<VnfdSpec, VnfdError> {
    let root = match root {
        Node::Map(map) => map,
        Node::Null => return Err(invalid("", "the VNFD is empty")),
        other => {
            return Err(invalid(
                "",
                format!(
                    "the VNFD must be a mapping of TOSCA sections, not {}",
                    other.describe()
                ),
            ));
        }
    };
    grammar::check_sections(root)?;
    let description = optional_string(root.get("description"), "description")?;
    let template_name = match optional_map(root.get("metadata"), "metadata")? {
        Some(metadata) => optional_string(metadata.get("template_name"), "metadata.template_name")?,
        None => None,
    };
    let topology = required_map(root.get("topology_template"), "topology_template")?;
    let templates = required_map(topology.get("node_templates"), NODE_TEMPLATES)?
        .iter()
        .map(|(name, node)| node_template(name, node))
        .collect::<Result<Vec<_>, _>>()?;
    if !templates.iter().any(|t| t.type_name == VDU_TYPE) {
        return Err(invalid(
            NODE_TEMPLATES,
            format!("the VNFD has no VDU: add a node template of type {VDU_TYPE}"),
        ));
    }

    let mgmt_cps = management_cps(&templates)?;
    let mut cps_by_vdu = connection_points(&templates)?;
    let vdus = templates
        .iter()
        .filter(|t| t.type_name == VDU_TYPE)
        .map(|vdu| {
            let cps = cps_by_vdu.remove(vdu.name).unwrap_or_default();
            vdu_spec(vdu, &mgmt_cps, cps)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let vdu_names: HashSet<&str> = vdus.iter().map(|vdu| vdu.name.as_str()).collect();
    let Policies {
        scaling: scaling_policies,
        triggers: alarm_triggers,
        placement: placement_policies,
    } = match topology.get("policies") {
        None | Some(Node::Null) => Policies::default(),
        Some(policies) => policies_of(policies, &vdu_names)?,
    };
    Ok(VnfdSpec {
        template_name: template_name.map(str::to_owned),
        description: description.map(str::to_owned),
        vdus,
        scaling_policies,
        inputs: Vec::new(),
        alarm_triggers,
        placement_policies,
    })
}

/// Each VDU's `user_data` (Tacker's property; `user_data_format` RAW, the only one Tacker's
/// legacy API used, is the string itself), by VDU name. Read from a tree [`vnfd_spec`]
/// accepted; a `user_data` still awaiting an input (onboarding) is left out.
pub(crate) fn user_data(root: &Node) -> BTreeMap<String, String> {
    let Node::Map(root) = root else {
        return BTreeMap::new();
    };
    let templates = match root.get("topology_template") {
        Some(Node::Map(topology)) => match topology.get("node_templates") {
            Some(Node::Map(templates)) => templates,
            _ => return BTreeMap::new(),
        },
        _ => return BTreeMap::new(),
    };
    templates
        .iter()
        .filter_map(|(name, node)| {
            let Node::Map(body) = node else { return None };
            if !matches!(body.get("type"), Some(Node::String(t)) if t == VDU_TYPE) {
                return None;
            }
            let Some(Node::Map(properties)) = body.get("properties") else {
                return None;
            };
            match properties.get("user_data") {
                Some(Node::String(text)) => Some((name.to_string(), text.clone())),
                _ => None,
            }
        })
        .collect()
}

fn node_template<'a>(name: &'a str, node: &'a Node) -> Result<NodeTemplate<'a>, VnfdError> {
    let field = format!("{NODE_TEMPLATES}.{name}");
    let body = expect_map(node, &field)?;
    let type_name = required_string(body.get("type"), &format!("{field}.type"))?;
    grammar::check_node(type_name, body, &field)?;
    Ok(NodeTemplate {
        name,
        type_name,
        body,
        field,
    })
}

/// The management connection points of the VDUs that have one, checking every CP's
/// binding on the way.
struct ManagementCps<'a> {
    by_vdu: HashMap<&'a str, &'a str>,
    /// VDUs bound to a CP whose `management` awaits an input (onboarding): whether they have
    /// a management connection is known at VNF create.
    pending: HashSet<&'a str>,
}

fn management_cps<'a>(templates: &[NodeTemplate<'a>]) -> Result<ManagementCps<'a>, VnfdError> {
    let types: HashMap<&str, &str> = templates.iter().map(|t| (t.name, t.type_name)).collect();
    let mut mgmt_cps = HashMap::new();
    let mut pending = HashSet::new();
    for cp in templates.iter().filter(|t| t.type_name == CP_TYPE) {
        let properties_field = format!("{}.properties", cp.field);
        let properties = optional_map(cp.body.get("properties"), &properties_field)?;
        let management = match properties {
            Some(properties) => flag(
                properties.get("management"),
                &format!("{properties_field}.management"),
            )?,
            None => false,
        };
        let management_pending =
            properties.is_some_and(|p| matches!(p.raw("management"), Some(Node::Input(_))));
        let binding = virtual_binding(cp)?;
        if let Some((vdu, binding_field)) = &binding {
            match types.get(vdu) {
                Some(&type_name) if type_name == VDU_TYPE => {}
                Some(type_name) => {
                    return Err(invalid(
                        binding_field,
                        format!("{} binds to {vdu}, a {type_name}, not a VDU", cp.name),
                    ));
                }
                None => {
                    return Err(invalid(
                        binding_field,
                        format!(
                            "{} binds to {}, which is not a node template",
                            cp.name,
                            quote(vdu)
                        ),
                    ));
                }
            }
        }
        // A management CP bound to no VDU manages nothing (Tacker accepted it).
        let Some((vdu, _)) = binding else {
            continue;
        };
        if management_pending {
            pending.insert(vdu);
        }
        if !management {
            continue;
        }
        check_name(cp.name, &cp.field)?;
        if let Some(first) = mgmt_cps.insert(vdu, cp.name) {
            return Err(invalid(
                &cp.field,
                format!(
                    "{vdu} already has the management connection point {first}; a VDU has exactly one"
                ),
            ));
        }
    }
    Ok(ManagementCps {
        by_vdu: mgmt_cps,
        pending,
    })
}

/// The VDU a connection point binds to, and where the binding was written: the
/// `virtualBinding` item of `requirements`, as `{node: VDU1}` or as the short `VDU1`.
fn virtual_binding<'a>(cp: &NodeTemplate<'a>) -> Result<Option<(&'a str, String)>, VnfdError> {
    let field = format!("{}.requirements", cp.field);
    let requirements = match cp.body.get("requirements") {
        None | Some(Node::Null) => return Ok(None),
        Some(Node::Seq(items)) => items,
        Some(other) => {
            return Err(invalid(
                field,
                format!("must be a list of requirements, not {}", other.describe()),
            ));
        }
    };
    let mut found = None;
    for (i, item) in requirements.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        let Some(binding) = expect_map(item, &item_field)?.get("virtualBinding") else {
            continue;
        };
        let binding_field = format!("{item_field}.virtualBinding");
        let (vdu, vdu_field) = match binding {
            Node::String(vdu) => (vdu.as_str(), binding_field),
            Node::Map(binding) => {
                let node_field = format!("{binding_field}.node");
                (
                    required_string(binding.get("node"), &node_field)?,
                    node_field,
                )
            }
            other => {
                return Err(invalid(
                    binding_field,
                    format!(
                        "must name a VDU, as `node: VDU1` or `VDU1`, not {}",
                        other.describe()
                    ),
                ));
            }
        };
        if found.is_some() {
            return Err(invalid(
                vdu_field,
                format!(
                    "{} has a second virtualBinding; a connection point binds to one VDU",
                    cp.name
                ),
            ));
        }
        found = Some((vdu, vdu_field));
    }
    Ok(found)
}

fn vdu_spec(
    vdu: &NodeTemplate,
    mgmt_cps: &ManagementCps,
    connection_points: Vec<ConnectionPoint>,
) -> Result<VduSpec, VnfdError> {
    check_name(vdu.name, &vdu.field)?;
    let mgmt_cp = mgmt_cps.by_vdu.get(vdu.name);
    let field = format!("{}.properties", vdu.field);
    let properties = optional_map(vdu.body.get("properties"), &field)?;
    let property = |key: &str| {
        (
            properties.and_then(|p| p.get(key)),
            format!("{field}.{key}"),
        )
    };
    let (image, image_field) = property("image");
    let (flavor, flavor_field) = property("flavor");
    let (policy, policy_field) = property("monitoring_policy");
    let monitoring_policy = monitoring_policy(policy, &policy_field)?;
    if monitoring_policy.is_some() && mgmt_cp.is_none() && !mgmt_cps.pending.contains(vdu.name) {
        return Err(invalid(
            policy_field,
            format!(
                "{name} has no management connection point, so it has no address to probe: \
                 add a {CP_TYPE} with `management: true` and a virtualBinding to {name}, \
                 or drop the monitoring policy",
                name = vdu.name
            ),
        ));
    }
    let (availability_zone, availability_zone_field) = property("availability_zone");
    let (metadata, metadata_field) = property("metadata");
    let (key_name, key_name_field) = property("key_name");
    let (config_drive, config_drive_field) = property("config_drive");
    Ok(VduSpec {
        name: vdu.name.to_owned(),
        image: optional_string(image, &image_field)?.map(str::to_owned),
        flavor: optional_string(flavor, &flavor_field)?.map(str::to_owned),
        mgmt_cp: mgmt_cp.map(|cp| (*cp).to_owned()),
        monitoring_policy,
        nfv_compute: nfv_compute(vdu)?,
        availability_zone: optional_string(availability_zone, &availability_zone_field)?
            .map(str::to_owned),
        metadata: text_map(metadata, &metadata_field)?,
        key_name: optional_string(key_name, &key_name_field)?.map(str::to_owned),
        config_drive: flag(config_drive, &config_drive_field)?,
        connection_points,
    })
}

/// A VDU's `capabilities.nfv_compute.properties` (checked against the type by the grammar
/// already); none without them, or while `num_cpus` or `mem_size` await an input.
fn nfv_compute(vdu: &NodeTemplate) -> Result<Option<ComputeSpec>, VnfdError> {
    let field = format!("{}.capabilities.nfv_compute.properties", vdu.field);
    let properties = vdu
        .body
        .get("capabilities")
        .and_then(|c| match c {
            Node::Map(c) => c.get("nfv_compute"),
            _ => None,
        })
        .and_then(|n| match n {
            Node::Map(n) => n.get("properties"),
            _ => None,
        });
    let Some(properties) = optional_map(properties, &field)? else {
        return Ok(None);
    };
    let (Some(num_cpus), Some(mem_size)) = (properties.get("num_cpus"), properties.get("mem_size"))
    else {
        return Ok(None);
    };
    let num_cpus = whole(num_cpus, &format!("{field}.num_cpus"), 1, u32::MAX)?;
    let mem_size_mb = size_in(mem_size, &format!("{field}.mem_size"), BYTES_PER_MB)?;
    let disk_size_gb = properties
        .get("disk_size")
        .map(|disk| size_in(disk, &format!("{field}.disk_size"), BYTES_PER_GB))
        .transpose()?;
    Ok(Some(ComputeSpec {
        num_cpus,
        mem_size_mb,
        disk_size_gb,
    }))
}

const BYTES_PER_MB: f64 = 1e6;
const BYTES_PER_GB: f64 = 1e9;

/// TOSCA's `scalar-unit.size` units with their sizes in bytes, as tosca-parser and Tacker's
/// `convert_unit_size_to_num` knew them (matched without regard to case).
const SIZE_UNITS: &[(&str, f64)] = &[
    ("B", 1.0),
    ("kB", 1e3),
    ("KiB", 1024.0),
    ("MB", 1e6),
    ("MiB", 1_048_576.0),
    ("GB", 1e9),
    ("GiB", 1_073_741_824.0),
    ("TB", 1e12),
    ("TiB", 1_099_511_627_776.0),
];

/// A size (`512 MB`, `1 GB`, or a bare number, already in the target unit) as a whole number
/// of the unit `unit_bytes` bytes long, rounded down as Tacker's flavor translation did.
pub(crate) fn size_in(node: &Node, field: &str, unit_bytes: f64) -> Result<u64, VnfdError> {
    let wrong = || {
        invalid(
            field,
            format!(
                "must be a size such as 512 MB or 1 GB, not {}",
                node.describe()
            ),
        )
    };
    let value = match node {
        Node::Number(n) => *n,
        Node::String(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let number: f64 = number.parse().map_err(|_| wrong())?;
            let unit = unit.trim();
            if unit.is_empty() {
                number
            } else {
                let (_, bytes) = SIZE_UNITS
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                    .ok_or_else(|| {
                        invalid(
                            field,
                            format!(
                                "unknown size unit {}; expected one of {}",
                                quote(unit),
                                SIZE_UNITS
                                    .iter()
                                    .map(|(name, _)| *name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })?;
                number * bytes / unit_bytes
            }
        }
        _ => return Err(wrong()),
    };
    // A petabyte of memory or disk for one VDU is a unit mistake.
    if !value.is_finite() || !(0.0..=1e15 / unit_bytes).contains(&value) {
        return Err(wrong());
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked above: finite, non-negative and far below u64::MAX; truncation is Tacker's rounding"
    )]
    let whole = value as u64;
    Ok(whole)
}

/// A mapping of scalars, each kept as its text (`metadata`).
fn text_map(node: Option<&Node>, field: &str) -> Result<BTreeMap<String, String>, VnfdError> {
    let Some(map) = optional_map(node, field)? else {
        return Ok(BTreeMap::new());
    };
    map.iter()
        .filter(|(_, value)| !matches!(value, Node::Null | Node::Input(_)))
        .map(|(key, value)| {
            let text = match value {
                Node::String(s) => s.clone(),
                Node::Bool(b) => b.to_string(),
                Node::Number(n) => n.to_string(),
                other => {
                    return Err(invalid(
                        format!("{field}.{key}"),
                        format!("must be a string, not {}", other.describe()),
                    ));
                }
            };
            Ok((key.to_owned(), text))
        })
        .collect()
}

/// The connection points of each VDU, in order (`order` first, then template order), with
/// the `network_name` of the VL each links to.
fn connection_points<'a>(
    templates: &[NodeTemplate<'a>],
) -> Result<HashMap<&'a str, Vec<ConnectionPoint>>, VnfdError> {
    let networks: HashMap<&str, Option<&str>> = templates
        .iter()
        .filter(|t| t.type_name == VL_TYPE)
        .map(|vl| {
            let name = match vl.body.get("properties") {
                Some(Node::Map(p)) => match p.get("network_name") {
                    Some(Node::String(name)) => Some(name.as_str()),
                    _ => None,
                },
                _ => None,
            };
            (vl.name, name)
        })
        .collect();
    let mut by_vdu: HashMap<&str, Vec<ConnectionPoint>> = HashMap::new();
    for cp in templates.iter().filter(|t| t.type_name == CP_TYPE) {
        let Some((vdu, _)) = virtual_binding(cp)? else {
            continue;
        };
        let field = format!("{}.properties", cp.field);
        let properties = optional_map(cp.body.get("properties"), &field)?;
        let property = |key: &str| {
            (
                properties.and_then(|p| p.get(key)),
                format!("{field}.{key}"),
            )
        };
        let (management, management_field) = property("management");
        let (anti_spoofing, anti_spoofing_field) = property("anti_spoofing_protection");
        let (security_groups, security_groups_field) = property("security_groups");
        let (ip_address, ip_address_field) = property("ip_address");
        let (mac_address, mac_address_field) = property("mac_address");
        let (order, order_field) = property("order");
        let security_groups = match security_groups {
            None | Some(Node::Null) => Vec::new(),
            Some(Node::Seq(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    string(item, &format!("{security_groups_field}[{i}]")).map(str::to_owned)
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(invalid(
                    security_groups_field,
                    format!("must be a list of names or ids, not {}", other.describe()),
                ));
            }
        };
        let network_name = virtual_link(cp)?
            .and_then(|vl| networks.get(vl).copied().flatten())
            .map(str::to_owned);
        by_vdu.entry(vdu).or_default().push(ConnectionPoint {
            name: cp.name.to_owned(),
            network_name,
            management: flag(management, &management_field)?,
            anti_spoofing_protection: match anti_spoofing {
                None | Some(Node::Null) => true,
                some => flag(some, &anti_spoofing_field)?,
            },
            security_groups,
            ip_address: optional_string(ip_address, &ip_address_field)?.map(str::to_owned),
            mac_address: optional_string(mac_address, &mac_address_field)?.map(str::to_owned),
            order: order
                .map(|order| whole(order, &order_field, 0, u32::MAX))
                .transpose()?,
        });
    }
    for cps in by_vdu.values_mut() {
        // Stable: connection points without an order keep the template's.
        cps.sort_by_key(|cp| (cp.order.is_none(), cp.order));
    }
    Ok(by_vdu)
}

/// The node a connection point's `virtualLink` requirement names (`{node: VL1}` or `VL1`).
fn virtual_link<'a>(cp: &NodeTemplate<'a>) -> Result<Option<&'a str>, VnfdError> {
    let field = format!("{}.requirements", cp.field);
    let Some(Node::Seq(requirements)) = cp.body.get("requirements") else {
        // Anything but a list was refused by `virtual_binding`.
        return Ok(None);
    };
    for (i, item) in requirements.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        match expect_map(item, &item_field)?.get("virtualLink") {
            None | Some(Node::Null) => {}
            Some(Node::String(vl)) => return Ok(Some(vl.as_str())),
            Some(Node::Map(link)) => {
                return optional_string(
                    link.get("node"),
                    &format!("{item_field}.virtualLink.node"),
                );
            }
            Some(other) => {
                return Err(invalid(
                    format!("{item_field}.virtualLink"),
                    format!(
                        "must name a VL, as `node: VL1` or `VL1`, not {}",
                        other.describe()
                    ),
                ));
            }
        }
    }
    Ok(None)
}

/// A VDU's `monitoring_policy`: `name` (the driver), `parameters`, `actions`.
fn monitoring_policy(
    node: Option<&Node>,
    field: &str,
) -> Result<Option<MonitoringPolicy>, VnfdError> {
    let Some(policy) = optional_map(node, field)? else {
        return Ok(None);
    };
    check_keys(policy, field, &["name", "parameters", "actions"], "key")?;
    let name_field = format!("{field}.name");
    let driver = match required_string(policy.get("name"), &name_field)? {
        "ping" => MonitorDriver::Ping,
        // Tacker's docs wrote `http-ping`; its code registered `http_ping`.
        "http_ping" | "http-ping" => MonitorDriver::HttpPing,
        "noop" => return Ok(None),
        other => {
            return Err(invalid(
                name_field,
                format!(
                    "unknown monitoring driver {}; expected ping, http_ping (or http-ping) or noop",
                    quote(other)
                ),
            ));
        }
    };

    let field_parameters = format!("{field}.parameters");
    let parameters = optional_map(policy.get("parameters"), &field_parameters)?;
    let (allowed, retry_default) = match driver {
        MonitorDriver::Ping => (PING_PARAMETERS, PING_RETRY_DEFAULT),
        MonitorDriver::HttpPing => (HTTP_PING_PARAMETERS, HTTP_PING_RETRY_DEFAULT),
    };
    if let Some(parameters) = parameters {
        let noun = format!("{} parameter", driver.as_str());
        check_keys(parameters, &field_parameters, allowed, &noun)?;
    }
    let parameter = |key: &str| {
        (
            parameters.and_then(|p| p.get(key)),
            format!("{field_parameters}.{key}"),
        )
    };
    let seconds_parameter = |key: &str, min_ms, max_ms, default_ms| {
        let (node, field) = parameter(key);
        node.map_or(Ok(default_ms), |node| {
            seconds_ms(node, &field, min_ms, max_ms)
        })
    };
    let whole_parameter = |key: &str, min, max, default| {
        let (node, field) = parameter(key);
        node.map_or(Ok(default), |node| whole(node, &field, min, max))
    };

    let monitoring_delay_ms = seconds_parameter(
        "monitoring_delay",
        0,
        MONITORING_DELAY_MS_MAX,
        MONITORING_DELAY_MS_DEFAULT,
    )?;
    let count = whole_parameter("count", 1, COUNT_MAX, COUNT_DEFAULT)?;
    let interval_ms = seconds_parameter(
        "interval",
        PROBE_WAIT_MS_MIN,
        PROBE_WAIT_MS_MAX,
        INTERVAL_MS_DEFAULT,
    )?;
    let timeout_ms = seconds_parameter(
        "timeout",
        PROBE_WAIT_MS_MIN,
        PROBE_WAIT_MS_MAX,
        TIMEOUT_MS_DEFAULT,
    )?;
    let retry = whole_parameter("retry", 1, RETRY_MAX, retry_default)?;
    let port = match driver {
        MonitorDriver::Ping => None,
        MonitorDriver::HttpPing => {
            let (node, field) = parameter("port");
            Some(node.map_or(Ok(HTTP_PING_PORT_DEFAULT), |node| {
                whole(node, &field, 1, u16::MAX)
            })?)
        }
    };

    Ok(Some(MonitoringPolicy {
        driver,
        monitoring_delay_ms,
        count,
        interval_ms,
        timeout_ms,
        retry,
        port,
        failure_action: failure_action(policy.get("actions"), &format!("{field}.actions"))?,
    }))
}

/// `actions: {failure: ...}`: Tacker knew no other event, and defaulted no action.
fn failure_action(node: Option<&Node>, field: &str) -> Result<PolicyAction, VnfdError> {
    let failure_field = format!("{field}.failure");
    let actions = optional_map(node, field)?;
    if let Some(actions) = actions {
        check_keys(actions, field, &["failure"], "event")?;
    }
    let failure = actions.and_then(|a| a.get("failure"));
    let expected = "respawn, log, log_and_kill or vdu_autoheal";
    match required_string(failure, &failure_field)? {
        "respawn" => Ok(PolicyAction::Respawn),
        "log" => Ok(PolicyAction::Log),
        "log_and_kill" => Ok(PolicyAction::LogAndKill),
        "vdu_autoheal" => Ok(PolicyAction::VduAutoheal),
        other => Err(invalid(
            failure_field,
            format!("unknown action {}; expected {expected}", quote(other)),
        )),
    }
}

/// `topology_template.policies`: a list of single-entry mappings, as Tacker wrote it, or
/// one mapping of names to policies. Every policy is checked against Tacker's policy types;
/// scaling policies and alarming policies' triggers are kept (placement, reservation... are
/// checked and otherwise ignored).
/// The policies vnfm acts on.
#[derive(Default)]
struct Policies {
    scaling: Vec<ScalingPolicy>,
    triggers: Vec<AlarmTrigger>,
    placement: Vec<PlacementPolicy>,
}

fn policies_of(node: &Node, vdu_names: &HashSet<&str>) -> Result<Policies, VnfdError> {
    let policies: Vec<(&str, &Node)> = match node {
        Node::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| policy_entry(i, item))
            .collect::<Result<_, _>>()?,
        Node::Map(policies) => policies.iter().collect(),
        other => {
            return Err(invalid(
                POLICIES,
                format!("must be a list of policies, not {}", other.describe()),
            ));
        }
    };

    let mut names = HashSet::new();
    // Which scaling policy scales each VDU: at most one may.
    let mut scaled_by: HashMap<&str, &str> = HashMap::new();
    let mut scaling = Vec::new();
    let mut alarming = Vec::new();
    let mut placement = Vec::new();
    for (name, policy) in policies {
        let field = format!("{POLICIES}.{name}");
        if !names.insert(name) {
            return Err(invalid(field, format!("a second policy is named {name}")));
        }
        let policy = expect_map(policy, &field)?;
        match grammar::check_policy(policy, &field)? {
            SCALING_TYPE => scaling.push(scaling_policy(
                name,
                policy,
                &field,
                vdu_names,
                &mut scaled_by,
            )?),
            ALARMING_TYPE => alarming.push((name, policy, field)),
            PLACEMENT_TYPE => placement.push(placement_policy(name, policy, &field, vdu_names)?),
            _ => {}
        }
    }
    // Triggers name scaling policies, which may come after them in the template.
    let mut triggers: Vec<AlarmTrigger> = Vec::new();
    for (name, policy, field) in alarming {
        for trigger in alarm_triggers(name, policy, &field, vdu_names, &scaling)? {
            if let Some(first) = triggers.iter().find(|t| t.name == trigger.0.name) {
                return Err(invalid(
                    trigger.1,
                    format!(
                        "a trigger named {} is already in policy {}; trigger names are unique in a VNFD \
                         (alarm URLs and alerts name a trigger by it)",
                        first.name, first.policy
                    ),
                ));
            }
            triggers.push(trigger.0);
        }
    }
    Ok(Policies {
        scaling,
        triggers,
        placement,
    })
}

/// A `tosca.policies.tacker.Placement` policy (its properties checked by the grammar), with
/// Tacker's defaults: affinity, strict.
fn placement_policy(
    name: &str,
    policy: &Map,
    field: &str,
    vdu_names: &HashSet<&str>,
) -> Result<PlacementPolicy, VnfdError> {
    check_name(name, field)?;
    let properties_field = format!("{field}.properties");
    let properties = optional_map(policy.get("properties"), &properties_field)?;
    let kind_field = format!("{properties_field}.policy");
    let kind = match optional_string(properties.and_then(|p| p.get("policy")), &kind_field)? {
        None | Some("affinity") => Placement::Affinity,
        Some("anti-affinity") => Placement::AntiAffinity,
        Some(other) => {
            return Err(invalid(
                kind_field,
                format!(
                    "unknown placement {}; expected affinity or anti-affinity",
                    quote(other)
                ),
            ));
        }
    };
    let strict = match properties.and_then(|p| p.get("strict")) {
        None | Some(Node::Null) => true,
        some => flag(some, &format!("{properties_field}.strict"))?,
    };
    let description = optional_string(policy.get("description"), &format!("{field}.description"))?;
    let targets_field = format!("{field}.targets");
    let targets = match policy.get("targets") {
        Some(Node::Seq(targets)) if !targets.is_empty() => targets,
        None | Some(Node::Null | Node::Seq(_)) => {
            return Err(invalid(
                targets_field,
                "must name at least one VDU to place",
            ));
        }
        Some(other) => {
            return Err(invalid(
                targets_field,
                format!("must be a list of VDU names, not {}", other.describe()),
            ));
        }
    };
    let mut names = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let target_field = format!("{targets_field}[{i}]");
        let vdu = string(target, &target_field)?;
        if !vdu_names.contains(vdu) {
            return Err(invalid(
                target_field,
                format!("{} is not a VDU of this VNFD", quote(vdu)),
            ));
        }
        names.push(vdu.to_owned());
    }
    Ok(PlacementPolicy {
        name: name.to_owned(),
        policy: kind,
        strict,
        description: description.map(str::to_owned),
        targets: names,
    })
}

/// The triggers of the alarming policy `name` (checked by the grammar already), each with
/// the path it was read at.
fn alarm_triggers(
    name: &str,
    policy: &Map,
    field: &str,
    vdu_names: &HashSet<&str>,
    scaling: &[ScalingPolicy],
) -> Result<Vec<(AlarmTrigger, String)>, VnfdError> {
    let vdus = match policy.get("targets") {
        None | Some(Node::Null) => Vec::new(),
        Some(Node::Seq(targets)) => {
            let mut vdus = Vec::with_capacity(targets.len());
            for (i, target) in targets.iter().enumerate() {
                let target_field = format!("{field}.targets[{i}]");
                let vdu = string(target, &target_field)?;
                if !vdu_names.contains(vdu) {
                    return Err(invalid(
                        target_field,
                        format!("{} is not a VDU of this VNFD", quote(vdu)),
                    ));
                }
                vdus.push(vdu.to_owned());
            }
            vdus
        }
        Some(other) => {
            return Err(invalid(
                format!("{field}.targets"),
                format!("must be a list of VDU names, not {}", other.describe()),
            ));
        }
    };
    let triggers_field = format!("{field}.triggers");
    let Some(Node::Map(triggers)) = policy.get("triggers") else {
        return Err(invalid(triggers_field, "an alarming policy needs triggers"));
    };
    let mut parsed = Vec::with_capacity(triggers.len());
    for (trigger_name, trigger) in triggers.iter() {
        let trigger_field = format!("{triggers_field}.{trigger_name}");
        // A trigger whose values await inputs is read at VNF create, when they have them.
        if awaits_input(trigger) {
            continue;
        }
        let trigger = expect_map(trigger, &trigger_field)?;
        let read = alarm_trigger(name, trigger_name, trigger, &trigger_field, scaling)?;
        parsed.push((
            AlarmTrigger {
                vdus: vdus.clone(),
                ..read
            },
            trigger_field,
        ));
    }
    Ok(parsed)
}

/// Whether `node` holds a `get_input` still without its value (onboarding).
fn awaits_input(node: &Node) -> bool {
    match node {
        Node::Input(_) => true,
        Node::Map(map) => map.iter().any(|(_, value)| awaits_input(value)),
        Node::Seq(items) => items.iter().any(awaits_input),
        _ => false,
    }
}

fn alarm_trigger(
    policy: &str,
    name: &str,
    trigger: &Map,
    field: &str,
    scaling: &[ScalingPolicy],
) -> Result<AlarmTrigger, VnfdError> {
    check_name(name, field)?;
    let metric = match (trigger.get("metric"), trigger.get("metrics")) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("{field}.metrics"),
                "give metric or Tacker's older metrics, not both",
            ));
        }
        (Some(metric), None) => string(metric, &format!("{field}.metric"))?,
        (None, Some(metrics)) => string(metrics, &format!("{field}.metrics"))?,
        (None, None) => {
            return Err(invalid(
                format!("{field}.metric"),
                "is required but missing: the metric the alarm watches",
            ));
        }
    };
    if metric.trim().is_empty() {
        return Err(invalid(format!("{field}.metric"), "must not be empty"));
    }
    let condition_field = format!("{field}.condition");
    let condition = required_map(trigger.get("condition"), &condition_field)?;
    let at = |key: &str| (condition.get(key), format!("{condition_field}.{key}"));

    let (comparison, comparison_field) = at("comparison_operator");
    let comparison = match required_string(comparison, &comparison_field)? {
        "gt" => Comparison::Gt,
        "ge" => Comparison::Ge,
        "lt" => Comparison::Lt,
        "le" => Comparison::Le,
        "eq" => Comparison::Eq,
        "ne" => Comparison::Ne,
        other => {
            return Err(invalid(
                comparison_field,
                format!(
                    "unknown comparison {}; expected gt, ge, lt, le, eq or ne",
                    quote(other)
                ),
            ));
        }
    };
    let (threshold, threshold_field) = at("threshold");
    let threshold = number(
        threshold.ok_or_else(|| invalid(&threshold_field, "is required but missing"))?,
        &threshold_field,
    )?;
    let (evaluations, evaluations_field) = at("evaluations");
    let evaluations = evaluations.map_or(Ok(1), |node| {
        whole(node, &evaluations_field, 1, ALARM_EVALUATIONS_MAX)
    })?;
    let period_s = match (at("period"), at("granularity")) {
        ((Some(period), field), _) | ((None, _), (Some(period), field)) => {
            whole(period, &field, 1, ALARM_PERIOD_S_MAX)?
        }
        ((None, _), (None, _)) => ALARM_PERIOD_S_DEFAULT,
    };
    let (aggregation, aggregation_field) = at("aggregation_method");
    let aggregation = match optional_string(aggregation, &aggregation_field)? {
        None => Aggregation::Mean,
        Some(method) => Aggregation::from_name(method).ok_or_else(|| {
            invalid(
                &aggregation_field,
                format!(
                    "unknown aggregation method {}; expected {}",
                    quote(method),
                    Aggregation::NAMES
                ),
            )
        })?,
    };
    let actions = alarm_actions(
        trigger.get("action"),
        &format!("{field}.action"),
        comparison,
        scaling,
    )?;
    Ok(AlarmTrigger {
        policy: policy.to_owned(),
        name: name.to_owned(),
        metric: metric.to_owned(),
        comparison,
        threshold,
        evaluations,
        period_s,
        aggregation,
        actions,
        vdus: Vec::new(),
    })
}

/// A trigger's `action`: a list (or one string) of `respawn`, `log`, `log_and_kill` or a
/// scaling policy's name, which scales out for gt/ge and in for lt/le, as Tacker's did (or
/// `<policy>-out` / `-in`, the direction written out).
fn alarm_actions(
    node: Option<&Node>,
    field: &str,
    comparison: Comparison,
    scaling: &[ScalingPolicy],
) -> Result<Vec<AlarmAction>, VnfdError> {
    let items: Vec<(&Node, String)> = match node {
        None | Some(Node::Null) => return Err(invalid(field, "is required but missing")),
        Some(Node::Seq(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| (item, format!("{field}[{i}]")))
            .collect(),
        Some(Node::Seq(_)) => return Err(invalid(field, "must name at least one action")),
        Some(one) => vec![(one, field.to_owned())],
    };
    let mut actions: Vec<AlarmAction> = Vec::with_capacity(items.len());
    for (item, item_field) in items {
        let action = match string(item, &item_field)? {
            "respawn" => AlarmAction::Respawn,
            "log" => AlarmAction::Log,
            "log_and_kill" => AlarmAction::LogAndKill,
            other => {
                // Tacker's older samples wrote the direction themselves (`SP1-out`).
                let (name, written) = match other.rsplit_once('-') {
                    Some((name, "out")) if scaling.iter().any(|p| p.name == name) => {
                        (name, Some(ScaleDirection::Out))
                    }
                    Some((name, "in")) if scaling.iter().any(|p| p.name == name) => {
                        (name, Some(ScaleDirection::In))
                    }
                    _ => (other, None),
                };
                let Some(policy) = scaling.iter().find(|p| p.name == name) else {
                    let policies: Vec<&str> = scaling.iter().map(|p| p.name.as_str()).collect();
                    return Err(invalid(
                        item_field,
                        format!(
                            "unknown action {}; expected respawn, log, log_and_kill or a scaling \
                             policy of this VNFD ({})",
                            quote(other),
                            if policies.is_empty() {
                                "it has none".to_owned()
                            } else {
                                policies.join(", ")
                            }
                        ),
                    ));
                };
                let Some(direction) = written.or(comparison.scale_direction()) else {
                    return Err(invalid(
                        item_field,
                        format!(
                            "scaling policy {} cannot follow a {} comparison: the direction of a \
                             scaling alarm is out for gt/ge and in for lt/le",
                            policy.name,
                            comparison.as_str()
                        ),
                    ));
                };
                AlarmAction::Scale {
                    policy: policy.name.clone(),
                    direction,
                }
            }
        };
        if actions.contains(&action) {
            return Err(invalid(
                item_field,
                format!("{} is listed twice", action.name()),
            ));
        }
        actions.push(action);
    }
    Ok(actions)
}

/// One item of the policy list: a mapping of the policy's name to its definition.
fn policy_entry(i: usize, item: &Node) -> Result<(&str, &Node), VnfdError> {
    let entry = match item {
        Node::Map(policy) if policy.len() == 1 => policy.iter().next(),
        _ => None,
    };
    entry.ok_or_else(|| {
        let found = match item {
            Node::Map(map) => format!("a mapping of {} entries", map.len()),
            other => other.describe(),
        };
        invalid(
            format!("{POLICIES}[{i}]"),
            format!("each policy must be a mapping of one name to its definition, not {found}"),
        )
    })
}

fn scaling_policy<'a>(
    name: &'a str,
    policy: &'a Map,
    field: &str,
    vdu_names: &HashSet<&str>,
    scaled_by: &mut HashMap<&'a str, &'a str>,
) -> Result<ScalingPolicy, VnfdError> {
    check_name(name, field)?;
    let properties_field = format!("{field}.properties");
    let properties = optional_map(policy.get("properties"), &properties_field)?;
    if let Some(properties) = properties {
        check_keys(
            properties,
            &properties_field,
            SCALING_PROPERTIES,
            "scaling property",
        )?;
    }
    let property = |key: &str| {
        (
            properties.and_then(|p| p.get(key)),
            format!("{properties_field}.{key}"),
        )
    };

    // TOSCA puts `targets` beside `type`; Tacker's samples put it under `properties`.
    let (targets, targets_field) = match (policy.get("targets"), property("targets")) {
        (Some(_), (Some(_), _)) => {
            return Err(invalid(
                format!("{field}.targets"),
                "targets are given both here and under properties; keep one",
            ));
        }
        (Some(targets), _) => (Some(targets), format!("{field}.targets")),
        (None, property) => property,
    };
    let targets = match targets {
        Some(Node::Seq(targets)) if !targets.is_empty() => targets,
        None | Some(Node::Null | Node::Seq(_)) => {
            return Err(invalid(
                targets_field,
                "must name at least one VDU to scale",
            ));
        }
        Some(other) => {
            return Err(invalid(
                targets_field,
                format!("must be a list of VDU names, not {}", other.describe()),
            ));
        }
    };
    let mut target_names = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let target_field = format!("{targets_field}[{i}]");
        let vdu = string(target, &target_field)?;
        if !vdu_names.contains(vdu) {
            return Err(invalid(
                target_field,
                format!("{} is not a VDU of this VNFD", quote(vdu)),
            ));
        }
        if let Some(other) = scaled_by.insert(vdu, name) {
            let message = if other == name {
                format!("{vdu} is listed twice")
            } else {
                format!("{vdu} is already scaled by {other}; a VDU may have one scaling policy")
            };
            return Err(invalid(target_field, message));
        }
        target_names.push(vdu.to_owned());
    }

    let whole_property = |key: &str, min, max, default| {
        let (node, field) = property(key);
        node.map_or(Ok(default), |node| whole(node, &field, min, max))
    };
    let increment = whole_property("increment", 1, INSTANCES_MAX, INCREMENT_DEFAULT)?;
    let cooldown_s = whole_property("cooldown", 0, COOLDOWN_S_MAX, COOLDOWN_S_DEFAULT)?;
    let min_instances = whole_property("min_instances", 0, INSTANCES_MAX, MIN_INSTANCES_DEFAULT)?;
    let max_instances = whole_property("max_instances", 1, INSTANCES_MAX, MAX_INSTANCES_DEFAULT)?;
    if max_instances < min_instances {
        let (given, field) = property("max_instances");
        let default = if given.is_none() { ", the default" } else { "" };
        return Err(invalid(
            field,
            format!(
                "max_instances ({max_instances}{default}) is below min_instances ({min_instances})"
            ),
        ));
    }
    // Unless told otherwise, a new VNF starts with at least one instance of every VDU, even
    // where it may scale in to none.
    // Tacker's reservation samples start with none (`default_instances: 0`).
    let default_instances =
        whole_property("default_instances", 0, INSTANCES_MAX, min_instances.max(1))?;
    if !(min_instances..=max_instances).contains(&default_instances) {
        return Err(invalid(
            property("default_instances").1,
            format!(
                "default_instances ({default_instances}) must lie between min_instances \
                 ({min_instances}) and max_instances ({max_instances})"
            ),
        ));
    }
    Ok(ScalingPolicy {
        name: name.to_owned(),
        targets: target_names,
        increment,
        min_instances,
        max_instances,
        default_instances,
        cooldown_s: u64::from(cooldown_s),
    })
}

fn check_name(name: &str, field: &str) -> Result<(), VnfdError> {
    let plain = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        return Ok(());
    }
    Err(invalid(
        field,
        format!(
            "the name {} must be 1 to {NAME_BYTES_MAX} ASCII letters, digits, '_' or '-'",
            quote(name)
        ),
    ))
}

fn expect_map<'a>(node: &'a Node, field: &str) -> Result<&'a Map, VnfdError> {
    match node {
        Node::Map(map) => Ok(map),
        other => Err(invalid(
            field,
            format!("must be a mapping, not {}", other.describe()),
        )),
    }
}

fn optional_map<'a>(node: Option<&'a Node>, field: &str) -> Result<Option<&'a Map>, VnfdError> {
    match node {
        None | Some(Node::Null) => Ok(None),
        Some(node) => expect_map(node, field).map(Some),
    }
}

fn required_map<'a>(node: Option<&'a Node>, field: &str) -> Result<&'a Map, VnfdError> {
    optional_map(node, field)?.ok_or_else(|| invalid(field, "is required but missing"))
}

fn string<'a>(node: &'a Node, field: &str) -> Result<&'a str, VnfdError> {
    match node {
        Node::String(s) => Ok(s),
        other => Err(invalid(
            field,
            format!("must be a string, not {}", other.describe()),
        )),
    }
}

fn optional_string<'a>(node: Option<&'a Node>, field: &str) -> Result<Option<&'a str>, VnfdError> {
    match node {
        None | Some(Node::Null) => Ok(None),
        Some(node) => string(node, field).map(Some),
    }
}

fn required_string<'a>(node: Option<&'a Node>, field: &str) -> Result<&'a str, VnfdError> {
    optional_string(node, field)?.ok_or_else(|| invalid(field, "is required but missing"))
}

/// A boolean, also in the spellings (`yes`, `on`, `"true"`) that Tacker's PyYAML and
/// tosca-parser read as booleans and a YAML 1.2 parser reads as strings.
fn flag(node: Option<&Node>, field: &str) -> Result<bool, VnfdError> {
    match node {
        None | Some(Node::Null) => Ok(false),
        Some(node) => grammar::boolean(node).ok_or_else(|| {
            invalid(
                field,
                format!("must be true or false, not {}", node.describe()),
            )
        }),
    }
}

/// A number as Tacker's templates wrote one: an integer, a float, or a string holding one.
fn number(node: &Node, field: &str) -> Result<f64, VnfdError> {
    let value = match node {
        Node::Number(n) => Some(*n),
        Node::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(invalid(
            field,
            format!("must be a number, not {}", node.describe()),
        )),
    }
}

/// A whole number in `min..=max`.
fn whole<T>(node: &Node, field: &str, min: T, max: T) -> Result<T, VnfdError>
where
    T: Copy + Display + Into<f64> + TryFrom<u64>,
{
    let value = number(node, field)?;
    let out_of_range = || {
        invalid(
            field,
            format!(
                "must be a whole number from {min} to {max}, not {}",
                node.describe()
            ),
        )
    };
    if value.fract() != 0.0 || value < min.into() || value > max.into() {
        return Err(out_of_range());
    }
    // In range, hence non-negative and whole: the cast is exact.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked above: whole and within a u64 range"
    )]
    let value = value as u64;
    T::try_from(value).map_err(|_| out_of_range())
}

/// Seconds, as Tacker wrote time (fractions allowed), to whole milliseconds in
/// `min_ms..=max_ms`.
fn seconds_ms(node: &Node, field: &str, min_ms: u64, max_ms: u64) -> Result<u64, VnfdError> {
    let ms = (number(node, field)? * 1000.0).round();
    if ms < min_ms as f64 || ms > max_ms as f64 {
        return Err(invalid(
            field,
            format!(
                "must be from {} to {} seconds, not {}",
                min_ms as f64 / 1000.0,
                max_ms as f64 / 1000.0,
                node.describe()
            ),
        ));
    }
    // In range, hence non-negative and whole: the cast is exact.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked above: whole and within min_ms..=max_ms"
    )]
    let ms = ms as u64;
    Ok(ms)
}
