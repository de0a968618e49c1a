//! The normalised VNFD: what onboarding extracts from Tacker's TOSCA, once.
//!
//! Every later component reads these types from the log; none re-parses YAML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The port a VDU watched by an alarm trigger serves its metrics on (`GET /metrics`,
/// Prometheus' text format): Prometheus' node exporter's, what a VM image that exports
/// metrics most likely has open.
pub const VDU_METRICS_PORT: u16 = 9100;

/// A VNFD, normalised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VnfdSpec {
    /// `metadata.template_name`, when the template has one.
    pub template_name: Option<String>,
    pub description: Option<String>,
    /// The VDUs, in template order.
    pub vdus: Vec<VduSpec>,
    pub scaling_policies: Vec<ScalingPolicy>,
    /// The names of the template's `topology_template.inputs`: a VNF made from it resolves
    /// them with its `param_values` (the template, sealed, holds the rest). Absent in
    /// events written before parameters existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The triggers of the VNFD's `tosca.policies.tacker.Alarming` policies, in template
    /// order. Absent in events written before alarms were kept (such a VNF has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarm_triggers: Vec<AlarmTrigger>,
    /// The VNFD's `tosca.policies.tacker.Placement` policies, in template order. Absent in
    /// events written before placement was kept (such a VNF places its VDUs freely).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_policies: Vec<PlacementPolicy>,
}

impl VnfdSpec {
    pub fn vdu(&self, name: &str) -> Option<&VduSpec> {
        self.vdus.iter().find(|vdu| vdu.name == name)
    }

    pub fn scaling_policy(&self, name: &str) -> Option<&ScalingPolicy> {
        self.scaling_policies.iter().find(|p| p.name == name)
    }

    /// How many instances of `vdu` a new VNF starts with: the `default_instances` of the
    /// scaling policy that targets it, else one.
    pub fn initial_instances(&self, vdu: &str) -> u32 {
        self.scaling_policies
            .iter()
            .find(|p| p.targets.iter().any(|t| t == vdu))
            .map_or(1, |p| p.default_instances)
    }

    /// Whether an alarm trigger watches `vdu`'s metrics: its instances then serve them on
    /// [`VDU_METRICS_PORT`], and Prometheus' service discovery lists them.
    pub fn metrics_watched(&self, vdu: &str) -> bool {
        self.alarm_triggers
            .iter()
            .any(|t| t.vdus.is_empty() || t.vdus.iter().any(|v| v == vdu))
    }

    /// The alarm trigger named `name`.
    pub fn alarm_trigger(&self, name: &str) -> Option<&AlarmTrigger> {
        self.alarm_triggers.iter().find(|t| t.name == name)
    }

    /// The placement policies that target `vdu`, in template order.
    pub fn placement_of(&self, vdu: &str) -> Vec<PlacementPolicy> {
        self.placement_policies
            .iter()
            .filter(|p| p.targets.iter().any(|t| t == vdu))
            .cloned()
            .collect()
    }

    /// True when any VDU carries a monitoring policy.
    pub fn is_monitored(&self) -> bool {
        self.vdus.iter().any(|vdu| vdu.monitoring_policy.is_some())
    }
}

/// One VDU (`tosca.nodes.nfv.VDU.Tacker`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VduSpec {
    pub name: String,
    pub image: Option<String>,
    pub flavor: Option<String>,
    /// The connection point with `management: true` bound to this VDU; none when the VDU
    /// has no management connection (Tacker's NS samples): it is deployed and listed, and
    /// never monitored. Events written before this was optional always hold one.
    #[serde(default)]
    pub mgmt_cp: Option<String>,
    pub monitoring_policy: Option<MonitoringPolicy>,
    /// The `nfv_compute` capability: what a flavor for the VDU must hold, when the VDU names
    /// no `flavor`. Absent when the VNFD gives none (and in events written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfv_compute: Option<ComputeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// The VDU's `metadata`, every value as text: it becomes the server's metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub config_drive: bool,
    /// The connection points bound to the VDU, ordered by their `order` (those without one
    /// after, in template order): each is one port of the instance, in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_points: Vec<ConnectionPoint>,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde passes a reference"
)]
fn is_false(value: &bool) -> bool {
    !*value
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde passes a reference"
)]
fn is_true(value: &bool) -> bool {
    *value
}

fn yes() -> bool {
    true
}

/// A VDU's `nfv_compute` properties, in the units a flavor counts them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeSpec {
    pub num_cpus: u32,
    /// `mem_size`, in MB as Tacker converted it (decimal units: `1 GB` is 1000 MB, `1 GiB`
    /// 1024 MB; a bare number is MB).
    pub mem_size_mb: u64,
    /// `disk_size`, in GB the same way (a bare number is GB); none when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size_gb: Option<u64>,
}

/// A `tosca.nodes.nfv.CP.Tacker` bound to a VDU: one port of each of its instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionPoint {
    pub name: String,
    /// The `network_name` of the VL its `virtualLink` requirement names; none without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub management: bool,
    /// Tacker's default is true: port security stays on unless the VNFD turns it off.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub anti_spoofing_protection: bool,
    /// Names or ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
}

/// A `tosca.policies.tacker.Placement` policy: its targets' instances are placed on one host
/// (affinity) or on different hosts (anti-affinity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementPolicy {
    pub name: String,
    /// Tacker's default: affinity.
    pub policy: Placement,
    /// Tacker's default: true. When false, the scheduler may break the rule rather than
    /// fail the deployment (Nova's soft policies).
    pub strict: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// VDU names.
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    Affinity,
    AntiAffinity,
}

impl Placement {
    /// Tacker's (and Nova's) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Affinity => "affinity",
            Placement::AntiAffinity => "anti-affinity",
        }
    }
}

/// A VDU's `monitoring_policy`, with Tacker's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringPolicy {
    pub driver: MonitorDriver,
    /// Time after each (re)boot of the instance before the first probe.
    pub monitoring_delay_ms: u64,
    /// Echo requests per ping probe.
    pub count: u32,
    /// Time between echo requests of one ping probe.
    pub interval_ms: u64,
    /// Time a probe waits for its answer.
    pub timeout_ms: u64,
    /// Whole-probe attempts that must fail before the VDU counts as failed.
    pub retry: u32,
    /// TCP port of `http_ping`; absent for `ping`.
    pub port: Option<u16>,
    pub failure_action: PolicyAction,
}

/// How a VDU is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorDriver {
    Ping,
    HttpPing,
}

impl MonitorDriver {
    /// Tacker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorDriver::Ping => "ping",
            MonitorDriver::HttpPing => "http_ping",
        }
    }
}

/// What a conductor does when a VDU fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    Respawn,
    Log,
    LogAndKill,
    VduAutoheal,
}

impl PolicyAction {
    /// Tacker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::Respawn => "respawn",
            PolicyAction::Log => "log",
            PolicyAction::LogAndKill => "log_and_kill",
            PolicyAction::VduAutoheal => "vdu_autoheal",
        }
    }
}

/// A `tosca.policies.tacker.Scaling` policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingPolicy {
    pub name: String,
    pub targets: Vec<String>,
    pub increment: u32,
    pub min_instances: u32,
    pub max_instances: u32,
    pub default_instances: u32,
    pub cooldown_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleDirection {
    Out,
    In,
}

impl ScaleDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleDirection::Out => "out",
            ScaleDirection::In => "in",
        }
    }
}

/// One trigger of a `tosca.policies.tacker.Alarming` policy: when `metric`, aggregated over a
/// VNF's instances, compares to `threshold` for `evaluations` periods, run `actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmTrigger {
    /// The alarming policy's name.
    pub policy: String,
    /// The trigger's name (its key under `triggers`), unique in a VNFD: alarm URLs, alert
    /// labels and the receiver's `policy_name` name a trigger by it.
    pub name: String,
    /// `metric`, or Tacker's older `metrics`.
    pub metric: String,
    pub comparison: Comparison,
    pub threshold: f64,
    /// Periods in a row the condition must hold.
    pub evaluations: u32,
    /// `condition.period`, else `condition.granularity`.
    pub period_s: u32,
    pub aggregation: Aggregation,
    /// In the order the VNFD lists them; a scaling action's direction follows from the
    /// comparison (out for gt/ge, in for lt/le), as Tacker's did.
    pub actions: Vec<AlarmAction>,
    /// The policy's `targets` (VDU names); empty means every VDU.
    pub vdus: Vec<String>,
}

impl AlarmTrigger {
    /// The action Tacker's `action_name` (or an alarm URL's action segment) names, if it is
    /// one of this trigger's.
    pub fn action(&self, name: &str) -> Option<&AlarmAction> {
        self.actions.iter().find(|a| a.name() == name)
    }
}

/// `condition.comparison_operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Comparison {
    /// Tacker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Gt => "gt",
            Comparison::Ge => "ge",
            Comparison::Lt => "lt",
            Comparison::Le => "le",
            Comparison::Eq => "eq",
            Comparison::Ne => "ne",
        }
    }

    /// PromQL's operator.
    pub fn operator(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "==",
            Comparison::Ne => "!=",
        }
    }

    /// The scaling direction an alarm on this comparison asks for (Tacker's rule: out when the
    /// metric is high, in when low); none for eq and ne.
    pub fn scale_direction(self) -> Option<ScaleDirection> {
        match self {
            Comparison::Gt | Comparison::Ge => Some(ScaleDirection::Out),
            Comparison::Lt | Comparison::Le => Some(ScaleDirection::In),
            Comparison::Eq | Comparison::Ne => None,
        }
    }
}

/// `condition.aggregation_method`: how a VNF's instances' values are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    Mean,
    Max,
    Min,
    Sum,
    Count,
    /// Gnocchi's `last`: the latest value of each instance, combined by their mean.
    Last,
    Std,
    Median,
}

impl Aggregation {
    /// Tacker's (Gnocchi's) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::Max => "max",
            Aggregation::Min => "min",
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::Last => "last",
            Aggregation::Std => "std",
            Aggregation::Median => "median",
        }
    }

    /// The spellings `from_name` takes, for error messages.
    pub const NAMES: &'static str = "mean (or avg), max, min, sum, count, last, std, median";

    pub fn from_name(name: &str) -> Option<Aggregation> {
        Some(match name {
            "mean" | "avg" => Aggregation::Mean,
            "max" => Aggregation::Max,
            "min" => Aggregation::Min,
            "sum" => Aggregation::Sum,
            "count" => Aggregation::Count,
            "last" => Aggregation::Last,
            "std" | "stddev" => Aggregation::Std,
            "median" => Aggregation::Median,
            _ => return None,
        })
    }
}

/// What an alarm runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmAction {
    Respawn,
    Log,
    LogAndKill,
    Scale {
        policy: String,
        direction: ScaleDirection,
    },
}

impl AlarmAction {
    /// Tacker's action name: `respawn`, `log`, `log_and_kill`, or `<policy>-out` / `-in`.
    pub fn name(&self) -> String {
        match self {
            AlarmAction::Respawn => "respawn".to_owned(),
            AlarmAction::Log => "log".to_owned(),
            AlarmAction::LogAndKill => "log_and_kill".to_owned(),
            AlarmAction::Scale { policy, direction } => format!("{policy}-{}", direction.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_stored_before_optional_management_and_inputs_still_reads() {
        // As a VNFD onboarded before either existed was stored.
        let stored = serde_json::json!({
            "template_name": null,
            "description": null,
            "vdus": [{"name": "VDU1", "image": null, "flavor": null, "mgmt_cp": "CP1",
                      "monitoring_policy": null}],
            "scaling_policies": [],
        });
        let spec: VnfdSpec = serde_json::from_value(stored.clone()).expect("decodes");
        assert_eq!(spec.vdus[0].mgmt_cp.as_deref(), Some("CP1"));
        assert!(spec.inputs.is_empty());
        assert!(spec.alarm_triggers.is_empty());
        // A spec without inputs is written exactly as before.
        assert_eq!(serde_json::to_value(&spec).expect("encodes"), stored);
        // A VDU without a management connection point.
        let mut without = stored;
        without["vdus"][0]
            .as_object_mut()
            .expect("an object")
            .remove("mgmt_cp");
        let spec: VnfdSpec = serde_json::from_value(without).expect("decodes");
        assert_eq!(spec.vdus[0].mgmt_cp, None);
    }

    #[test]
    fn openstack_properties_round_trip_and_default_as_tacker_did() {
        let stored = serde_json::json!({
            "template_name": null,
            "description": null,
            "vdus": [{"name": "VDU1", "image": "vnfm-guest", "flavor": null, "mgmt_cp": "CP1",
                      "monitoring_policy": null,
                      "nfv_compute": {"num_cpus": 1, "mem_size_mb": 256, "disk_size_gb": 1},
                      "config_drive": true,
                      "metadata": {"role": "web"},
                      "connection_points": [
                          {"name": "CP1", "network_name": "net_mgmt", "management": true},
                          {"name": "CP2", "anti_spoofing_protection": false, "order": 1}]}],
            "scaling_policies": [],
            "placement_policies": [{"name": "P", "policy": "anti-affinity", "strict": false,
                                    "targets": ["VDU1"]}],
        });
        let spec: VnfdSpec = serde_json::from_value(stored.clone()).expect("decodes");
        let vdu = &spec.vdus[0];
        assert!(
            vdu.connection_points[0].anti_spoofing_protection,
            "default on"
        );
        assert!(!vdu.connection_points[1].anti_spoofing_protection);
        assert_eq!(spec.placement_of("VDU1")[0].policy, Placement::AntiAffinity);
        assert!(spec.placement_of("VDU2").is_empty());
        assert_eq!(serde_json::to_value(&spec).expect("encodes"), stored);
    }
}
