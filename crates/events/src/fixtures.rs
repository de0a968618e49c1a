//! Test fixtures: the VNFD specs, VNF details and causes that tests across the workspace build
//! their scenarios from, written once. Compiled for this crate's own tests and, through the
//! `fixtures` feature, for other crates' tests and benchmarks; no role enables it.
//!
//! Each function gives the plain case; a test that needs another value says so with struct
//! update syntax (`MonitoringPolicy { retry: 3, ..fixtures::ping(PolicyAction::Log) }`), so
//! what matters to it stands in the test.

use crate::envelope::{Actor, ActorKind, Cause};
use crate::spec::{
    MonitorDriver, MonitoringPolicy, PolicyAction, ScalingPolicy, VduSpec, VnfdSpec,
};
use crate::vnf::VnfDetails;

/// The tenant every fixture belongs to.
pub const TENANT: &str = "admin";

/// A fresh request of the user `admin`.
pub fn user() -> Cause {
    Cause::user_request(Actor::new(ActorKind::User, TENANT))
}

/// A fresh command of a conductor named `name`.
pub fn conductor(name: &str) -> Cause {
    Cause::user_request(Actor::new(ActorKind::Conductor, name))
}

/// A ping policy probing once a second with a one-second timeout, no start delay, one ping
/// per round and one retry, acting with `action`.
pub fn ping(action: PolicyAction) -> MonitoringPolicy {
    MonitoringPolicy {
        driver: MonitorDriver::Ping,
        monitoring_delay_ms: 0,
        count: 1,
        interval_ms: 1_000,
        timeout_ms: 1_000,
        retry: 1,
        port: None,
        failure_action: action,
    }
}

/// A VDU named `name` with the management connection point `CP-<name>`.
pub fn vdu(name: &str, monitoring_policy: Option<MonitoringPolicy>) -> VduSpec {
    VduSpec {
        name: name.into(),
        image: None,
        flavor: None,
        mgmt_cp: format!("CP-{name}"),
        monitoring_policy,
    }
}

/// A VNFD of these VDUs with no scaling policy.
pub fn spec(vdus: Vec<VduSpec>) -> VnfdSpec {
    VnfdSpec {
        template_name: None,
        description: None,
        vdus,
        scaling_policies: vec![],
    }
}

/// A scaling policy `name` of the VDU `target`, one instance a step between `min` and `max`
/// instances, starting at `default`, with no cooldown.
pub fn scaling(name: &str, target: &str, min: u32, max: u32, default: u32) -> ScalingPolicy {
    ScalingPolicy {
        name: name.into(),
        targets: vec![target.into()],
        increment: 1,
        min_instances: min,
        max_instances: max,
        default_instances: default,
        cooldown_s: 0,
    }
}

/// The details of a VNF `vnf_id` (also its name) made from the VNFD `vnfd_id` on the local VIM.
pub fn details(vnf_id: &str, vnfd_id: &str) -> VnfDetails {
    VnfDetails {
        vnf_id: vnf_id.into(),
        name: vnf_id.into(),
        description: String::new(),
        tenant_id: TENANT.into(),
        vnfd_id: vnfd_id.into(),
        vim_id: "local".into(),
        attributes: serde_json::json!({}),
        placement_attr: serde_json::json!({}),
    }
}
