//! The normalised VNFD: what onboarding extracts from Tacker's TOSCA, once.
//!
//! Every later component reads these types from the log; none re-parses YAML.

use serde::{Deserialize, Serialize};

/// A VNFD, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    /// True when any VDU carries a monitoring policy.
    pub fn is_monitored(&self) -> bool {
        self.vdus.iter().any(|vdu| vdu.monitoring_policy.is_some())
    }
}

/// One VDU (`tosca.nodes.nfv.VDU.Tacker`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}
