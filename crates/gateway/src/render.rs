//! How table rows look on the wire: Tacker's VNF, VNFD and VIM objects, built by plain
//! functions over the rows (no I/O).

use std::collections::{BTreeMap, HashMap};

use events::secrets::{self, DataKey};
use events::spec::{MonitoringPolicy, VnfdSpec};
use events::vim::{LOCAL_VIM_ID, LOCAL_VIM_TYPE, VimStatus};
use events::vnf::{ATTRIBUTES_PATH, PLACEMENT_ATTR_PATH, Vnf};
use events::vnfd::TEMPLATE_PATH;
use projector::table::{VimRow, VnfRow, VnfdRow};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Tacker's `mgmt_driver`; vnfm manages no VNF configuration, so every VNFD has `noop`.
const MGMT_DRIVER: &str = "noop";
/// Tacker's `service_types` of a VNFD.
const SERVICE_TYPE: &str = "vnfd";
/// The resource type of a VDU instance in `GET /v1.0/vnfs/{id}/resources`, as Tacker's Heat
/// stacks named a server.
pub(crate) const VDU_RESOURCE_TYPE: &str = "OS::Nova::Server";

/// A timestamp as Tacker's API showed it: UTC, whole seconds (`2026-11-25T10:00:00Z`).
pub(crate) fn timestamp(at: OffsetDateTime) -> String {
    let whole = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    whole.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// Tacker's VNFD object, for a VNFD that exists (onboarded, not deleted); its template opened
/// with `key` when given, else shown as hidden.
pub(crate) fn vnfd_json(row: &VnfdRow, key: Option<&DataKey>) -> Option<Value> {
    let descriptor = row.state.live()?;
    Some(json!({
        "id": descriptor.vnfd_id,
        "tenant_id": descriptor.tenant_id,
        "name": descriptor.name,
        "description": descriptor.description,
        "mgmt_driver": MGMT_DRIVER,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "template_source": descriptor.template_source.as_str(),
        "service_types": [SERVICE_TYPE],
        "attributes": {"vnfd": secrets::reveal(&descriptor.template_yaml, key, TEMPLATE_PATH)},
    }))
}

/// Tacker's VIM object, for a registered VIM that exists; `defaults` maps each project to its
/// default VIM's id. Its credentials are shown without any secret field (Tacker masked the
/// password): the user, the domains, the project and `cert_verify`. `status_reason` (beyond
/// Tacker) is why the last check found it so.
pub(crate) fn vim_json(row: &VimRow, defaults: &HashMap<String, String>) -> Option<Value> {
    let details = row.state.live()?;
    let mut auth_cred = match &details.auth {
        Value::Object(auth) => auth
            .iter()
            .filter(|(name, _)| !secrets::is_secret_name(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        _ => Map::new(),
    };
    let cert_verify = auth_cred
        .get("cert_verify")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    auth_cred.insert(
        "cert_verify".into(),
        json!(if cert_verify { "True" } else { "False" }),
    );
    auth_cred.insert("auth_url".into(), json!(details.auth_url));
    let project = |key: &str| auth_cred.get(key).cloned().unwrap_or(json!(""));
    let vim_project = json!({
        "name": project("project_name"),
        "project_domain_name": project("project_domain_name"),
    });
    let is_default = defaults.get(&details.tenant_id) == Some(&details.vim_id);
    Some(json!({
        "id": details.vim_id,
        "tenant_id": details.tenant_id,
        "name": details.name,
        "description": details.description,
        "type": details.vim_type,
        "auth_url": details.auth_url,
        "auth_cred": auth_cred,
        "vim_project": vim_project,
        "placement_attr": details.placement_attr,
        "shared": false,
        "is_default": is_default,
        "status": row.state.status.as_str(),
        "status_reason": row.state.reason,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    }))
}

/// The built-in VIM as a VIM object: every project's, always reachable, dated `since` (when
/// the deployment's log was made).
pub(crate) fn local_vim_json(is_default: bool, since: &str) -> Value {
    json!({
        "id": LOCAL_VIM_ID,
        "tenant_id": "",
        "name": LOCAL_VIM_ID,
        "description": "The built-in VIM: a network namespace per VDU on the conductors' hosts",
        "type": LOCAL_VIM_TYPE,
        "auth_url": "",
        "auth_cred": {},
        "vim_project": {},
        "placement_attr": {},
        "shared": true,
        "is_default": is_default,
        "status": VimStatus::Reachable.as_str(),
        "status_reason": null,
        "created_at": since,
        "updated_at": since,
    })
}

/// Tacker's VNF object, for a VNF that exists (created, not deleted); its secrets opened with
/// `key` when given, else shown as hidden.
pub(crate) fn vnf_json(row: &VnfRow, key: Option<&DataKey>) -> Option<Value> {
    let vnf = &row.state;
    if !vnf.exists() {
        return None;
    }
    let details = vnf.details.as_ref()?;
    let status = vnf.status?;
    let mut attributes = match secrets::reveal(&details.attributes, key, ATTRIBUTES_PATH) {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    if let Some(policy) = vnf.vnfd.as_deref().and_then(monitoring_policy) {
        attributes.insert("monitoring_policy".into(), Value::String(policy));
    }
    Some(json!({
        "id": details.vnf_id,
        "tenant_id": details.tenant_id,
        "name": details.name,
        "description": details.description,
        "vnfd_id": details.vnfd_id,
        "vim_id": details.vim_id,
        "instance_id": vnf.stack_id,
        "status": status.as_str(),
        "mgmt_ip_address": mgmt_ip_address(vnf),
        "error_reason": vnf.error_reason,
        "placement_attr": secrets::reveal(&details.placement_attr, key, PLACEMENT_ATTR_PATH),
        "attributes": attributes,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "action_id": vnf.action_id,
    }))
}

/// `mgmt_ip_address` as Tacker sent it: a JSON *string* holding an object from VDU name to
/// its management IP, or to a list of them when the VDU has several instances; `null` while
/// the VNF has no instance.
pub(crate) fn mgmt_ip_address(vnf: &Vnf) -> Value {
    let ips = vnf.mgmt_ips();
    if ips.is_empty() {
        return Value::Null;
    }
    let object: Map<String, Value> = ips
        .into_iter()
        .map(|(vdu, ips)| {
            let value = match ips.as_slice() {
                [one] => Value::String(one.to_string()),
                many => Value::Array(many.iter().map(|ip| json!(ip.to_string())).collect()),
            };
            (vdu, value)
        })
        .collect();
    Value::String(Value::Object(object).to_string())
}

/// `attributes.monitoring_policy` as Tacker kept it: a JSON *string* of
/// `{"vdus": {VDU: {driver: {"name", "actions", "parameters"}}}}`, times in seconds. `None`
/// when no VDU is monitored.
pub(crate) fn monitoring_policy(spec: &VnfdSpec) -> Option<String> {
    let vdus: BTreeMap<&str, Value> = spec
        .vdus
        .iter()
        .filter_map(|vdu| {
            let policy = vdu.monitoring_policy.as_ref()?;
            let driver = policy.driver.as_str();
            Some((vdu.name.as_str(), json!({ driver: policy_json(policy) })))
        })
        .collect();
    if vdus.is_empty() {
        return None;
    }
    Some(json!({ "vdus": vdus }).to_string())
}

fn policy_json(policy: &MonitoringPolicy) -> Value {
    let mut parameters = json!({
        "monitoring_delay": seconds(policy.monitoring_delay_ms),
        "count": policy.count,
        "interval": seconds(policy.interval_ms),
        "timeout": seconds(policy.timeout_ms),
        "retry": policy.retry,
    });
    if let Some(port) = policy.port {
        parameters["port"] = json!(port);
    }
    json!({
        "name": policy.driver.as_str(),
        "actions": {"failure": policy.failure_action.as_str()},
        "parameters": parameters,
    })
}

/// Milliseconds as the seconds a VNFD wrote: a whole number when whole, else a fraction.
fn seconds(ms: u64) -> Value {
    if ms.is_multiple_of(1000) {
        json!(ms / 1000)
    } else {
        // Exact for every value a VNFD can hold (the parser caps them far below 2^53 ms).
        json!(ms as f64 / 1000.0)
    }
}

/// Each VDU instance's monitor state, grouped by VDU: `{"VDU1": [{"instance_id", "mgmt_ip",
/// "state", "since", "last_result", "last_probed_at", "monitor"}]}`. Instances no monitor has
/// reported on yet show as `pending`.
pub(crate) fn monitor_json(
    row: &VnfRow,
    states: &BTreeMap<String, events::monitor::InstanceMonitorState>,
) -> Value {
    let monitored = |vdu: &str| {
        row.state
            .vnfd
            .as_ref()
            .and_then(|vnfd| vnfd.vdu(vdu))
            .is_some_and(|v| v.monitoring_policy.is_some())
    };
    let time = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
    let mut by_vdu: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for instance in row.state.instances.iter().filter(|i| monitored(&i.vdu)) {
        let state = states.get(&instance.instance_id);
        by_vdu.entry(&instance.vdu).or_default().push(json!({
            "instance_id": instance.instance_id,
            "mgmt_ip": instance.mgmt_ip.to_string(),
            "state": state.map_or("pending", |s| s.state.as_str()),
            "since": time(state.and_then(|s| s.since)),
            "last_result": state.and_then(|s| s.last_result.clone()),
            "last_probed_at": time(state.and_then(|s| s.last_probed_at)),
            "monitor": state.map(|s| s.monitor.clone()),
        }));
    }
    json!(by_vdu)
}

#[cfg(test)]
mod tests {
    use events::fixtures::{self, spec, vdu};
    use events::spec::{MonitorDriver, PolicyAction};
    use events::vnf::Instance;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn monitoring_policy_is_a_json_string_in_seconds() {
        let ping = MonitoringPolicy {
            monitoring_delay_ms: 45_000,
            count: 3,
            interval_ms: 500,
            timeout_ms: 2_000,
            ..fixtures::ping(PolicyAction::Respawn)
        };
        let http = MonitoringPolicy {
            driver: MonitorDriver::HttpPing,
            port: Some(8000),
            failure_action: PolicyAction::Log,
            ..ping.clone()
        };
        let text = monitoring_policy(&spec(vec![
            vdu("VDU1", Some(ping)),
            vdu("VDU2", None),
            vdu("VDU3", Some(http)),
        ]))
        .expect("monitored");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!({"vdus": {
                "VDU1": {"ping": {
                    "name": "ping",
                    "actions": {"failure": "respawn"},
                    "parameters": {"monitoring_delay": 45, "count": 3, "interval": 0.5, "timeout": 2, "retry": 1},
                }},
                "VDU3": {"http_ping": {
                    "name": "http_ping",
                    "actions": {"failure": "log"},
                    "parameters": {"monitoring_delay": 45, "count": 3, "interval": 0.5, "timeout": 2, "retry": 1, "port": 8000},
                }},
            }})
        );
        assert_eq!(monitoring_policy(&spec(vec![vdu("VDU1", None)])), None);
    }

    #[test]
    fn mgmt_ips_are_a_string_with_lists_for_scaled_vdus() {
        let instance = |vdu: &str, ip: [u8; 4]| Instance {
            instance_id: format!("{vdu}-{}", ip[3]),
            vdu: vdu.into(),
            mgmt_ip: ip.into(),
            booted_at: datetime!(2026-11-25 10:00 UTC),
        };
        let mut vnf = Vnf::default();
        assert_eq!(mgmt_ip_address(&vnf), Value::Null);
        vnf.instances = vec![
            instance("VDU1", [198, 18, 0, 3]),
            instance("VDU2", [198, 18, 0, 4]),
            instance("VDU1", [198, 18, 0, 5]),
        ];
        let Value::String(text) = mgmt_ip_address(&vnf) else {
            panic!("not a string")
        };
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"VDU1": ["198.18.0.3", "198.18.0.5"], "VDU2": "198.18.0.4"})
        );
    }

    #[test]
    fn timestamps_are_utc_whole_seconds() {
        assert_eq!(
            timestamp(datetime!(2026-11-25 11:00:00.123 +01:00)),
            "2026-11-25T10:00:00Z"
        );
    }
}
