//! Test fixtures: the VNFD specs, VNF details, commands and causes that tests across the
//! workspace build their scenarios from, the event log opened as every role opens it, and the
//! wait for the next monitor message, written once. Compiled for this crate's own tests and,
//! through the `fixtures` feature, for other crates' tests and benchmarks; no role enables it,
//! and nothing here is a decision of vnfm.
//!
//! Each function gives the plain case; a test that needs another value says so with struct
//! update syntax (`MonitoringPolicy { retry: 3, ..fixtures::ping(PolicyAction::Log) }`), so
//! what matters to it stands in the test.

use crate::envelope::{Actor, ActorKind, Cause};
use crate::monitor::{MonitorEvent, MonitorMessage};
use crate::setup::{self, LogConfig};
use crate::spec::{
    Aggregation, AlarmAction, AlarmTrigger, Comparison, MonitorDriver, MonitoringPolicy,
    PolicyAction, ScaleDirection, ScalingPolicy, VduSpec, VnfdSpec,
};
use crate::store::EventLog;
use crate::vnf::{VnfCommand, VnfDetails};
use crate::vnfd::{TemplateSource, VnfdCommand, VnfdDescriptor, VnfdEvent};

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
        mgmt_cp: Some(format!("CP-{name}")),
        monitoring_policy,
        ..VduSpec::default()
    }
}

/// A VNFD of these VDUs with no scaling policy.
pub fn spec(vdus: Vec<VduSpec>) -> VnfdSpec {
    VnfdSpec {
        template_name: None,
        description: None,
        vdus,
        scaling_policies: vec![],
        inputs: vec![],
        alarm_triggers: vec![],
        placement_policies: vec![],
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

/// An alarm trigger `name` of the policy `AP1` on `cpu_util` above 80 (mean, one period of a
/// minute) running `actions`, on every VDU.
pub fn trigger(name: &str, actions: Vec<AlarmAction>) -> AlarmTrigger {
    AlarmTrigger {
        policy: "AP1".into(),
        name: name.into(),
        metric: "cpu_util".into(),
        comparison: Comparison::Gt,
        threshold: 80.0,
        evaluations: 1,
        period_s: 60,
        aggregation: Aggregation::Mean,
        actions,
        vdus: vec![],
    }
}

/// A scaling trigger `name` of `policy` in `direction` (below 10 for in, above 80 for out).
pub fn scaling_trigger(name: &str, policy: &str, direction: ScaleDirection) -> AlarmTrigger {
    let action = AlarmAction::Scale {
        policy: policy.into(),
        direction,
    };
    match direction {
        ScaleDirection::Out => trigger(name, vec![action]),
        ScaleDirection::In => AlarmTrigger {
            comparison: Comparison::Lt,
            threshold: 10.0,
            ..trigger(name, vec![action])
        },
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
        user_data: None,
    }
}

/// The VNFD `vnfd_id` (also its name) of the tenant [`TENANT`], onboarded with `spec` and no
/// template text.
pub fn descriptor(vnfd_id: &str, spec: VnfdSpec) -> VnfdDescriptor {
    VnfdDescriptor {
        vnfd_id: vnfd_id.into(),
        name: vnfd_id.into(),
        description: String::new(),
        tenant_id: TENANT.into(),
        template_source: TemplateSource::Onboarded,
        template_yaml: serde_json::Value::String(String::new()),
        spec,
    }
}

/// The command that onboards the VNFD `vnfd_id` with no VDU.
pub fn onboard(vnfd_id: &str) -> VnfdCommand {
    VnfdCommand::Onboard(Box::new(descriptor(vnfd_id, spec(vec![]))))
}

/// The event of the VNFD `vnfd_id` onboarded with no VDU.
pub fn onboarded(vnfd_id: &str) -> VnfdEvent {
    VnfdEvent::Onboarded(Box::new(descriptor(vnfd_id, spec(vec![]))))
}

/// The command that creates the VNF `vnf_id` from the VNFD `vnfd_id` with `vnfd` under the
/// operation `operation_id`.
pub fn create(vnf_id: &str, vnfd_id: &str, vnfd: VnfdSpec, operation_id: &str) -> VnfCommand {
    VnfCommand::Create {
        details: Box::new(details(vnf_id, vnfd_id)),
        vnfd,
        operation_id: operation_id.into(),
    }
}

/// Every stream and bucket made (as `vnfm setup` makes them, so `client` must be allowed to),
/// and the event log over `client`, as every role opens it.
///
/// # Panics
///
/// When the log cannot be made or opened: a test cannot go on without it.
pub async fn log(client: async_nats::Client) -> EventLog {
    setup::provision(
        &async_nats::jetstream::new(client.clone()),
        &LogConfig::default(),
    )
    .await
    .expect("make the streams and buckets");
    EventLog::open(client).await.expect("open the event log")
}

/// The event of the next message on `subscription`, a monitor-stream subject.
///
/// # Panics
///
/// When none comes within `patience`, or it is no monitor message.
pub async fn next_monitor_event(
    subscription: &mut async_nats::Subscriber,
    patience: std::time::Duration,
) -> MonitorEvent {
    let message = tokio::time::timeout(patience, futures::StreamExt::next(subscription))
        .await
        .unwrap_or_else(|_| panic!("no message within {patience:?}"))
        .expect("the subscription is open");
    let decoded: MonitorMessage =
        serde_json::from_slice(&message.payload).expect("a monitor message");
    decoded.event
}
