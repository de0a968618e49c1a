//! The mapping of a VDU onto OpenStack, as Tacker made it: the names and tags that make an
//! instance's resources findable, the request bodies of its ports and server, the flavor a
//! VDU's `nfv_compute` asks for, the server group of a placement policy, and how Nova's and
//! Neutron's answers read. Pure: no HTTP here.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use events::spec::{ComputeSpec, ConnectionPoint, Placement, PlacementPolicy};
use serde_json::{Map, Value, json};

/// Every server and port vnfm makes carries this tag: `tagged_inventory` lists by it.
pub const VNFM_TAG: &str = "vnfm";
/// The port of the VDU's management connection point carries this tag too: its fixed IP is
/// the instance's management IP.
pub const MGMT_TAG: &str = "vnfm-mgmt";
/// Prefix of the tag that names the instance (`vnfm-instance-<instance id>`): the idempotency
/// key of a server and its ports.
pub const INSTANCE_TAG_PREFIX: &str = "vnfm-instance-";
/// Prefix of the tag that names the VNF.
pub const VNF_TAG_PREFIX: &str = "vnfm-vnf-";
/// Server metadata keys: the instance id (checked on every lookup: Nova's tag filter does not
/// apply to servers still in the API's build queue), the VNF, the VDU, and the server group.
pub const META_INSTANCE_ID: &str = "vnfm_instance_id";
pub const META_VNF_ID: &str = "vnfm_vnf_id";
pub const META_VDU: &str = "vnfm_vdu";
/// The server group the server was placed in: a delete removes the group once it is empty.
pub const META_SERVER_GROUP: &str = "vnfm_server_group";
pub const META_CONFIG_DIGEST: &str = "vnfm_config_digest";
/// Nova and Neutron refuse tags longer than this (characters).
pub const TAG_CHARS_MAX: usize = 60;
/// Nova refuses metadata keys and values longer than this (characters).
pub const METADATA_CHARS_MAX: usize = 255;

pub fn instance_tag(instance_id: &str) -> String {
    format!("{INSTANCE_TAG_PREFIX}{instance_id}")
}

pub fn vnf_tag(vnf_id: &str) -> String {
    format!("{VNF_TAG_PREFIX}{vnf_id}")
}

/// The tags of an instance's server, and of its ports (with [`MGMT_TAG`] on the management
/// port). Every one within Nova's and Neutron's length limit, or the reason why not.
pub fn tags(vnf_id: &str, instance_id: &str) -> Result<Vec<String>, String> {
    let tags = vec![
        VNFM_TAG.to_owned(),
        instance_tag(instance_id),
        vnf_tag(vnf_id),
    ];
    match tags
        .iter()
        .find(|t| t.chars().count() > TAG_CHARS_MAX || t.contains([',', '/']))
    {
        Some(bad) => Err(format!(
            "the tag {bad:?} is longer than {TAG_CHARS_MAX} characters or holds ',' or '/': \
             instance and VNF ids must be short plain ids"
        )),
        None => Ok(tags),
    }
}

/// The Neutron name of an instance's port for connection point `cp`: unique per instance, so
/// that a re-run deploy finds the port it made before.
pub fn port_name(instance_id: &str, cp: &str) -> String {
    format!("vnfm-{instance_id}-{cp}")
}

/// The Nova name of an instance's server (for people; the tags are the key).
pub fn server_name(vdu: &str, instance_id: &str) -> String {
    format!("vnfm-{vdu}-{instance_id}")
}

/// The flavor vnfm finds or makes for `nfv_compute`: `vnfm-<cpus>c-<MB>m-<GB>g`.
pub fn flavor_name(compute: &ComputeSpec) -> String {
    format!(
        "vnfm-{}c-{}m-{}g",
        compute.num_cpus,
        compute.mem_size_mb,
        compute.disk_size_gb.unwrap_or(0)
    )
}

/// `POST /flavors` for `nfv_compute` (needs the admin role).
pub fn flavor_body(compute: &ComputeSpec) -> Value {
    json!({"flavor": {
        "name": flavor_name(compute),
        "vcpus": compute.num_cpus,
        "ram": compute.mem_size_mb,
        "disk": compute.disk_size_gb.unwrap_or(0),
        "os-flavor-access:is_public": true,
    }})
}

/// The Nova server group of a placement policy in a VNF: one per VNF and policy.
pub fn server_group_name(vnf_id: &str, policy: &PlacementPolicy) -> String {
    format!("vnfm-{vnf_id}-{}", policy.name)
}

/// Nova's policy for a placement policy: a policy that is not strict is Nova's soft one,
/// as Tacker's translation made it.
pub fn nova_policy(policy: &PlacementPolicy) -> &'static str {
    match (policy.policy, policy.strict) {
        (Placement::Affinity, true) => "affinity",
        (Placement::AntiAffinity, true) => "anti-affinity",
        (Placement::Affinity, false) => "soft-affinity",
        (Placement::AntiAffinity, false) => "soft-anti-affinity",
    }
}

/// `POST /os-server-groups` (microversion 2.64: one `policy`).
pub fn server_group_body(vnf_id: &str, policy: &PlacementPolicy) -> Value {
    json!({"server_group": {
        "name": server_group_name(vnf_id, policy),
        "policy": nova_policy(policy),
    }})
}

/// What a connection point's port needs besides the CP itself, looked up by the VIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInputs<'a> {
    pub cp: &'a ConnectionPoint,
    pub network_id: String,
    pub security_group_ids: Vec<String>,
}

/// `POST /v2.0/ports` for one connection point of an instance. `with_tags`: Neutron takes
/// tags in the create (its `tag-creation` extension); otherwise they are put after.
pub fn port_body(
    inputs: &PortInputs,
    vnf_id: &str,
    vdu: &str,
    instance_id: &str,
    tags: &[String],
    with_tags: bool,
) -> Result<Value, String> {
    let cp = inputs.cp;
    let mut port = Map::new();
    port.insert("name".into(), port_name(instance_id, &cp.name).into());
    port.insert("network_id".into(), inputs.network_id.clone().into());
    port.insert("admin_state_up".into(), true.into());
    port.insert(
        "description".into(),
        format!(
            "vnfm VNF {vnf_id} VDU {vdu} instance {instance_id} CP {}",
            cp.name
        )
        .into(),
    );
    if let Some(ip) = &cp.ip_address {
        port.insert("fixed_ips".into(), json!([{"ip_address": ip}]));
    }
    if let Some(mac) = &cp.mac_address {
        port.insert("mac_address".into(), mac.clone().into());
    }
    if cp.anti_spoofing_protection {
        if !inputs.security_group_ids.is_empty() {
            port.insert("security_groups".into(), json!(inputs.security_group_ids));
        }
    } else {
        if !inputs.security_group_ids.is_empty() {
            return Err(format!(
                "connection point {} turns anti_spoofing_protection off and names security \
                 groups: Neutron puts no security group on a port without port security",
                cp.name
            ));
        }
        port.insert("port_security_enabled".into(), false.into());
    }
    if with_tags {
        port.insert("tags".into(), json!(port_tags(cp, tags)));
    }
    Ok(json!({ "port": port }))
}

/// A port's tags: the instance's, and [`MGMT_TAG`] on the management port.
pub fn port_tags(cp: &ConnectionPoint, tags: &[String]) -> Vec<String> {
    let mut tags = tags.to_vec();
    if cp.management {
        tags.push(MGMT_TAG.to_owned());
    }
    tags
}

/// What the server needs besides the VDU, looked up by the VIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInputs<'a> {
    pub vnf_id: &'a str,
    pub vdu: &'a str,
    pub instance_id: &'a str,
    pub image_id: String,
    pub flavor_id: String,
    /// The instance's port ids, in connection point order.
    pub port_ids: Vec<String>,
    pub availability_zone: Option<&'a str>,
    pub metadata: &'a BTreeMap<String, String>,
    pub key_name: Option<&'a str>,
    pub user_data: Option<&'a str>,
    pub config_drive: bool,
    pub server_group_id: Option<String>,
    pub tags: &'a [String],
}

/// `POST /servers` (microversion 2.52 or later: tags in the create).
pub fn server_body(inputs: &ServerInputs) -> Result<Value, String> {
    let mut metadata: Map<String, Value> = inputs
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    for (key, value) in [
        (META_INSTANCE_ID, inputs.instance_id),
        (META_VNF_ID, inputs.vnf_id),
        (META_VDU, inputs.vdu),
    ] {
        if metadata.insert(key.to_owned(), value.into()).is_some() {
            return Err(format!(
                "the VDU's metadata sets {key}, which vnfm keeps for itself"
            ));
        }
    }
    if let Some(group) = &inputs.server_group_id
        && metadata
            .insert(META_SERVER_GROUP.to_owned(), group.clone().into())
            .is_some()
    {
        return Err(format!(
            "the VDU's metadata sets {META_SERVER_GROUP}, which vnfm keeps for itself"
        ));
    }
    if let Some((key, _)) = metadata.iter().find(|(k, v)| {
        k.chars().count() > METADATA_CHARS_MAX
            || v.as_str()
                .is_some_and(|v| v.chars().count() > METADATA_CHARS_MAX)
    }) {
        return Err(format!(
            "metadata {key:?}: Nova takes keys and values of at most {METADATA_CHARS_MAX} characters"
        ));
    }
    let networks = if inputs.port_ids.is_empty() {
        json!("none")
    } else {
        Value::Array(
            inputs
                .port_ids
                .iter()
                .map(|id| json!({"port": id}))
                .collect(),
        )
    };
    let mut server = Map::new();
    server.insert(
        "name".into(),
        server_name(inputs.vdu, inputs.instance_id).into(),
    );
    server.insert("imageRef".into(), inputs.image_id.clone().into());
    server.insert("flavorRef".into(), inputs.flavor_id.clone().into());
    server.insert("networks".into(), networks);
    server.insert("metadata".into(), Value::Object(metadata));
    server.insert("tags".into(), json!(inputs.tags));
    if let Some(zone) = inputs.availability_zone {
        server.insert("availability_zone".into(), zone.into());
    }
    if let Some(key) = inputs.key_name {
        server.insert("key_name".into(), key.into());
    }
    if let Some(user_data) = inputs.user_data {
        server.insert(
            "user_data".into(),
            base64::engine::general_purpose::STANDARD
                .encode(user_data)
                .into(),
        );
    }
    if inputs.config_drive {
        server.insert("config_drive".into(), true.into());
    }
    let mut body = Map::new();
    body.insert("server".into(), Value::Object(server));
    if let Some(group) = &inputs.server_group_id {
        body.insert("os:scheduler_hints".into(), json!({ "group": group }));
    }
    Ok(Value::Object(body))
}

/// A server as Nova reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    Active,
    Build,
    /// With Nova's fault message.
    Error {
        fault: String,
    },
    Shutoff,
    /// No server carries the instance's id (never made, deleted, or deleted behind vnfm's
    /// back).
    Gone,
    /// Any other status (`PAUSED`, `SUSPENDED`, `REBOOT`...), as Nova spells it.
    Other(String),
}

/// The state of a server body (`GET /servers/{id}`'s `server`).
pub fn server_state(server: &Value) -> ServerState {
    match server["status"].as_str().unwrap_or_default() {
        "ACTIVE" => ServerState::Active,
        "BUILD" => ServerState::Build,
        "ERROR" => ServerState::Error {
            fault: fault_message(server),
        },
        "SHUTOFF" => ServerState::Shutoff,
        "DELETED" | "SOFT_DELETED" => ServerState::Gone,
        other => ServerState::Other(other.to_owned()),
    }
}

/// Nova's fault message of a server in ERROR (its `fault.message`, with `details` when that
/// is short), or a sentence saying Nova gave none.
pub fn fault_message(server: &Value) -> String {
    let fault = &server["fault"];
    match fault["message"].as_str() {
        Some(message) => match fault["code"].as_u64() {
            Some(code) => format!("{message} (fault code {code})"),
            None => message.to_owned(),
        },
        None => "Nova reported no fault message".to_owned(),
    }
}

/// Whether `server` (from a list by the instance's tag) really is the instance's: its
/// metadata names it. Nova applies no tag filter to servers still in its API's build queue.
pub fn is_instance(server: &Value, instance_id: &str) -> bool {
    server["metadata"][META_INSTANCE_ID].as_str() == Some(instance_id)
}

/// The instance id a tagged server or port carries.
pub fn instance_of(tags: &Value) -> Option<String> {
    tags.as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|t| t.strip_prefix(INSTANCE_TAG_PREFIX))
        .map(str::to_owned)
}

/// The VNF id a tagged server or port carries.
pub fn vnf_of(tags: &Value) -> Option<String> {
    tags.as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|t| t.strip_prefix(VNF_TAG_PREFIX))
        .map(str::to_owned)
}

/// The management IP among an instance's ports: the first IPv4 fixed IP of the port tagged
/// [`MGMT_TAG`], else of its first port (a VDU without a management connection point).
pub fn mgmt_ip(ports: &[Value]) -> Option<std::net::Ipv4Addr> {
    let has_mgmt_tag = |p: &&Value| {
        p["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == MGMT_TAG))
    };
    let port = ports.iter().find(has_mgmt_tag).or_else(|| {
        ports
            .iter()
            .min_by_key(|p| p["name"].as_str().map(str::to_owned))
    })?;
    port["fixed_ips"]
        .as_array()?
        .iter()
        .find_map(|ip| ip["ip_address"].as_str()?.parse().ok())
}

/// Whether `value` is written as an id (a UUID) rather than a name.
pub fn looks_like_id(value: &str) -> bool {
    uuid::Uuid::try_parse(value).is_ok()
}

/// Longest part of an error body quoted in a `VimError`.
const ERROR_BODY_CHARS_MAX: usize = 300;

/// The message of an OpenStack error body: Nova's `{"badRequest": {"message": ...}}`,
/// Neutron's `{"NeutronError": {"message": ...}}`, Keystone's `{"error": {"message": ...}}`,
/// else the start of the text.
pub fn error_message(body: &str) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) {
        if let Some(message) = map.get("message").and_then(Value::as_str) {
            return message.to_owned();
        }
        if let Some(message) = map
            .values()
            .find_map(|v| v.get("message").and_then(Value::as_str))
        {
            return message.to_owned();
        }
    }
    let text = body.trim();
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(ERROR_BODY_CHARS_MAX).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else if head.is_empty() {
        "no message".to_owned()
    } else {
        head
    }
}

/// Tries after the first that a call meeting a transient failure (a timeout, a refused
/// connection, an HTTP 5xx) gets: with [`RETRY_FIRST_DELAY`] doubling, 2 + 4 + 8 + 16 = 30 s
/// of waiting, enough for an API process to restart or a loaded one to catch up.
pub const TRANSIENT_RETRIES: u32 = 4;
/// The wait before the first retry; each later one waits twice the one before.
pub const RETRY_FIRST_DELAY: Duration = Duration::from_secs(2);

/// The wait before retry number `retry` (1 is the first), or `None` once
/// [`TRANSIENT_RETRIES`] are spent.
pub fn retry_delay(retry: u32) -> Option<Duration> {
    (1..=TRANSIENT_RETRIES)
        .contains(&retry)
        .then(|| RETRY_FIRST_DELAY * 2u32.pow(retry - 1))
}

/// Whether an HTTP status says "not now" rather than "no": an API that failed inside (500,
/// a database or message-queue timeout on a loaded cloud), or a proxy or service that cannot
/// answer now (502, 503, 504).
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTANCE: &str = "0b6f5d9e-4c51-5d1a-9a7e-3f4b1c2d3e4f";
    const VNF: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

    fn cp(name: &str) -> ConnectionPoint {
        ConnectionPoint {
            name: name.into(),
            network_name: Some("net_mgmt".into()),
            management: false,
            anti_spoofing_protection: true,
            security_groups: vec![],
            ip_address: None,
            mac_address: None,
            order: None,
        }
    }

    #[test]
    fn flavors_are_named_by_their_sizes() {
        let compute = ComputeSpec {
            num_cpus: 1,
            mem_size_mb: 256,
            disk_size_gb: Some(1),
        };
        assert_eq!(flavor_name(&compute), "vnfm-1c-256m-1g");
        assert_eq!(
            flavor_body(&compute),
            json!({"flavor": {"name": "vnfm-1c-256m-1g", "vcpus": 1, "ram": 256, "disk": 1,
                              "os-flavor-access:is_public": true}})
        );
        let diskless = ComputeSpec {
            disk_size_gb: None,
            ..compute
        };
        assert_eq!(flavor_name(&diskless), "vnfm-1c-256m-0g");
    }

    #[test]
    fn tags_name_the_instance_and_vnf_within_the_limits() {
        let tags = tags(VNF, INSTANCE).expect("fit");
        assert_eq!(tags[0], "vnfm");
        assert_eq!(instance_of(&json!(tags)).as_deref(), Some(INSTANCE));
        assert_eq!(vnf_of(&json!(tags)).as_deref(), Some(VNF));
        assert!(tags.iter().all(|t| t.len() <= TAG_CHARS_MAX));
        let long = "x".repeat(50);
        assert!(super::tags(VNF, &long).is_err());
        assert!(super::tags("a/b", INSTANCE).is_err());
    }

    #[test]
    fn a_management_port_with_ip_mac_and_security_groups() {
        let mgmt = ConnectionPoint {
            management: true,
            ip_address: Some("198.51.100.50".into()),
            mac_address: Some("fa:16:3e:00:00:01".into()),
            ..cp("CP1")
        };
        let inputs = PortInputs {
            cp: &mgmt,
            network_id: "net-1".into(),
            security_group_ids: vec!["sg-1".into()],
        };
        let tags = tags(VNF, INSTANCE).expect("fit");
        let body = port_body(&inputs, VNF, "VDU1", INSTANCE, &tags, true).expect("a body");
        let port = &body["port"];
        assert_eq!(port["name"], format!("vnfm-{INSTANCE}-CP1"));
        assert_eq!(port["network_id"], "net-1");
        assert_eq!(port["fixed_ips"], json!([{"ip_address": "198.51.100.50"}]));
        assert_eq!(port["mac_address"], "fa:16:3e:00:00:01");
        assert_eq!(port["security_groups"], json!(["sg-1"]));
        assert!(port.get("port_security_enabled").is_none());
        assert_eq!(
            port["tags"],
            json!([
                "vnfm",
                format!("vnfm-instance-{INSTANCE}"),
                format!("vnfm-vnf-{VNF}"),
                "vnfm-mgmt"
            ])
        );
        let untagged = port_body(&inputs, VNF, "VDU1", INSTANCE, &tags, false).expect("a body");
        assert!(untagged["port"].get("tags").is_none());
    }

    #[test]
    fn anti_spoofing_off_disables_port_security_and_refuses_security_groups() {
        let open = ConnectionPoint {
            anti_spoofing_protection: false,
            ..cp("CP2")
        };
        let mut inputs = PortInputs {
            cp: &open,
            network_id: "net-1".into(),
            security_group_ids: vec![],
        };
        let body = port_body(&inputs, VNF, "VDU1", INSTANCE, &[], false).expect("a body");
        assert_eq!(body["port"]["port_security_enabled"], false);
        assert!(body["port"].get("fixed_ips").is_none());
        inputs.security_group_ids = vec!["sg-1".into()];
        let refused = port_body(&inputs, VNF, "VDU1", INSTANCE, &[], false).expect_err("refused");
        assert!(refused.contains("CP2"), "{refused}");
    }

    fn server_inputs<'a>(
        metadata: &'a BTreeMap<String, String>,
        tags: &'a [String],
    ) -> ServerInputs<'a> {
        ServerInputs {
            vnf_id: VNF,
            vdu: "VDU1",
            instance_id: INSTANCE,
            image_id: "img-1".into(),
            flavor_id: "fl-1".into(),
            port_ids: vec!["p-1".into(), "p-2".into()],
            availability_zone: Some("nova"),
            metadata,
            key_name: Some("userKey"),
            user_data: Some("#!/bin/sh\necho hi\n"),
            config_drive: true,
            server_group_id: Some("g-1".into()),
            tags,
        }
    }

    #[test]
    fn a_server_carries_every_vdu_property_and_its_keys() {
        let metadata = BTreeMap::from([("role".to_owned(), "web".to_owned())]);
        let tags = tags(VNF, INSTANCE).expect("fit");
        let body = server_body(&server_inputs(&metadata, &tags)).expect("a body");
        let server = &body["server"];
        assert_eq!(server["name"], format!("vnfm-VDU1-{INSTANCE}"));
        assert_eq!(server["imageRef"], "img-1");
        assert_eq!(server["flavorRef"], "fl-1");
        assert_eq!(
            server["networks"],
            json!([{"port": "p-1"}, {"port": "p-2"}])
        );
        assert_eq!(server["availability_zone"], "nova");
        assert_eq!(server["key_name"], "userKey");
        assert_eq!(server["config_drive"], true);
        assert_eq!(server["user_data"], "IyEvYmluL3NoCmVjaG8gaGkK");
        assert_eq!(server["metadata"]["role"], "web");
        assert_eq!(server["metadata"][META_INSTANCE_ID], INSTANCE);
        assert_eq!(server["metadata"][META_VNF_ID], VNF);
        assert_eq!(server["tags"], json!(tags));
        assert_eq!(body["os:scheduler_hints"], json!({"group": "g-1"}));
        assert_eq!(server["metadata"][META_SERVER_GROUP], "g-1");
        assert!(is_instance(
            &json!({"metadata": server["metadata"]}),
            INSTANCE
        ));
        assert!(!is_instance(&json!({"metadata": {}}), INSTANCE));
    }

    #[test]
    fn a_minimal_server_has_no_optional_keys_and_vnfm_keys_are_its_own() {
        let metadata = BTreeMap::new();
        let tags = tags(VNF, INSTANCE).expect("fit");
        let inputs = ServerInputs {
            port_ids: vec![],
            availability_zone: None,
            key_name: None,
            user_data: None,
            config_drive: false,
            server_group_id: None,
            ..server_inputs(&metadata, &tags)
        };
        let body = server_body(&inputs).expect("a body");
        let server = body["server"].as_object().expect("an object");
        assert_eq!(server["networks"], "none");
        for key in ["availability_zone", "key_name", "user_data", "config_drive"] {
            assert!(!server.contains_key(key), "{key}");
        }
        assert!(body.get("os:scheduler_hints").is_none());
        let taken = BTreeMap::from([(META_VNF_ID.to_owned(), "x".to_owned())]);
        assert!(
            server_body(&ServerInputs {
                metadata: &taken,
                ..inputs
            })
            .is_err()
        );
    }

    #[test]
    fn placement_policies_become_nova_server_groups() {
        let policy = PlacementPolicy {
            name: "spread".into(),
            policy: Placement::AntiAffinity,
            strict: true,
            description: None,
            targets: vec!["VDU1".into()],
        };
        assert_eq!(
            server_group_body(VNF, &policy),
            json!({"server_group": {"name": format!("vnfm-{VNF}-spread"), "policy": "anti-affinity"}})
        );
        let soft = PlacementPolicy {
            strict: false,
            ..policy.clone()
        };
        assert_eq!(nova_policy(&soft), "soft-anti-affinity");
        let together = PlacementPolicy {
            policy: Placement::Affinity,
            ..soft
        };
        assert_eq!(nova_policy(&together), "soft-affinity");
    }

    #[test]
    fn server_states_and_faults_read_from_nova() {
        assert_eq!(
            server_state(&json!({"status": "ACTIVE"})),
            ServerState::Active
        );
        assert_eq!(
            server_state(&json!({"status": "BUILD"})),
            ServerState::Build
        );
        assert_eq!(
            server_state(&json!({"status": "SHUTOFF"})),
            ServerState::Shutoff
        );
        assert_eq!(
            server_state(&json!({"status": "ERROR",
                "fault": {"message": "No valid host was found. ", "code": 500}})),
            ServerState::Error {
                fault: "No valid host was found.  (fault code 500)".into()
            }
        );
        assert_eq!(
            server_state(&json!({"status": "PAUSED"})),
            ServerState::Other("PAUSED".into())
        );
    }

    #[test]
    fn the_management_ip_is_the_management_ports() {
        let ports = [
            json!({"name": "vnfm-i-CP1", "tags": ["vnfm"],
                   "fixed_ips": [{"ip_address": "10.0.0.5"}]}),
            json!({"name": "vnfm-i-CP2", "tags": ["vnfm", "vnfm-mgmt"],
                   "fixed_ips": [{"ip_address": "2001:db8::5"}, {"ip_address": "198.51.100.7"}]}),
        ];
        assert_eq!(
            mgmt_ip(&ports),
            Some("198.51.100.7".parse().expect("an IP"))
        );
        assert_eq!(
            mgmt_ip(&ports[..1]),
            Some("10.0.0.5".parse().expect("an IP")),
            "without a management port, the first"
        );
        assert_eq!(mgmt_ip(&[]), None);
    }

    #[test]
    fn error_bodies_yield_their_message() {
        assert_eq!(
            error_message(r#"{"badRequest": {"message": "Invalid imageRef", "code": 400}}"#),
            "Invalid imageRef"
        );
        assert_eq!(
            error_message(
                r#"{"NeutronError": {"type": "X", "message": "Quota exceeded", "detail": ""}}"#
            ),
            "Quota exceeded"
        );
        assert_eq!(error_message("  "), "no message");
        assert!(error_message(&"x".repeat(1000)).ends_with('…'));
    }

    #[test]
    fn transient_failures_are_retried_four_times_doubling_from_two_seconds() {
        let delays: Vec<_> = (1..=5).map(retry_delay).collect();
        assert_eq!(
            delays,
            [2, 4, 8, 16]
                .map(|s| Some(Duration::from_secs(s)))
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
        assert_eq!(retry_delay(0), None);
    }

    #[test]
    fn only_server_side_statuses_are_transient() {
        for status in [500, 502, 503, 504] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [200, 400, 401, 403, 404, 409, 413, 501] {
            assert!(!is_transient_status(status), "{status}");
        }
    }
}
