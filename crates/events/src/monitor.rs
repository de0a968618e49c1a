//! What monitors probe and what they report: the pure derivation of a VNF's monitor targets
//! from its state, and the schemas of the monitor stream.
//!
//! The same [`targets`] runs in a live monitor and in a replay, so what was probed can always be
//! explained from the log.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{Actor, SCHEMA_VERSION};
use crate::spec::{MonitoringPolicy, PolicyAction};
use crate::vnf::{FailedInstance, FailureRecord, Vnf, VnfStatus};

pub mod cidr;
pub mod rounds;

use cidr::ProbeCidrs;

/// One VDU instance to probe, under the VNF's monitor action id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub vnf_id: String,
    pub vdu: String,
    pub instance_id: String,
    pub mgmt_ip: Ipv4Addr,
    pub action_id: String,
    pub policy: MonitoringPolicy,
    /// The instance's (re)boot: the monitoring delay counts from here.
    #[serde(with = "time::serde::rfc3339")]
    pub booted_at: OffsetDateTime,
}

/// Statuses in which a VNF's running instances are probed. A DEAD VNF is being respawned and
/// an ERROR one waits for a person; neither is probed.
const PROBED_STATUSES: &[VnfStatus] = &[
    VnfStatus::Active,
    VnfStatus::PendingScaleOut,
    VnfStatus::PendingScaleIn,
    VnfStatus::PendingHeal,
];

/// The targets of one VNF: every running instance whose VDU has a monitoring policy, while the
/// monitor is attached, except instances an operation in progress is removing.
pub fn targets(vnf_id: &str, vnf: &Vnf) -> Vec<Target> {
    let (Some(action_id), Some(vnfd), Some(status)) = (&vnf.action_id, &vnf.vnfd, vnf.status)
    else {
        return Vec::new();
    };
    if vnf.deleted || !PROBED_STATUSES.contains(&status) {
        return Vec::new();
    }
    let leaving = |instance_id: &String| {
        vnf.pending
            .as_ref()
            .is_some_and(|p| p.remove.contains(instance_id))
    };
    vnf.instances
        .iter()
        .filter(|instance| !leaving(&instance.instance_id))
        .filter_map(|instance| {
            let policy = vnfd.vdu(&instance.vdu)?.monitoring_policy.clone()?;
            Some(Target {
                vnf_id: vnf_id.to_owned(),
                vdu: instance.vdu.clone(),
                instance_id: instance.instance_id.clone(),
                mgmt_ip: instance.mgmt_ip,
                action_id: action_id.clone(),
                policy,
                booted_at: instance.booted_at,
            })
        })
        .collect()
}

/// The outcome of one probe attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProbeOutcome {
    Up { rtt_us: u64 },
    Down { reason: String },
}

impl ProbeOutcome {
    pub fn is_up(&self) -> bool {
        matches!(self, ProbeOutcome::Up { .. })
    }
}

/// Which VDU instance a monitor message is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRef {
    pub vnf_id: String,
    pub vdu: String,
    pub instance_id: String,
    pub mgmt_ip: Ipv4Addr,
    pub action_id: String,
}

impl From<&Target> for TargetRef {
    fn from(target: &Target) -> Self {
        TargetRef {
            vnf_id: target.vnf_id.clone(),
            vdu: target.vdu.clone(),
            instance_id: target.instance_id.clone(),
            mgmt_ip: target.mgmt_ip,
            action_id: target.action_id.clone(),
        }
    }
}

/// One attempt's result inside a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub target: TargetRef,
    #[serde(flatten)]
    pub outcome: ProbeOutcome,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A failure report: `retry` attempts in a row failed. Conductors act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Unique per report; conductors derive their command ids from it.
    pub failure_id: String,
    pub monitor: Actor,
    #[serde(flatten)]
    pub target: TargetRef,
    pub action: PolicyAction,
    pub attempts: u32,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
}

/// The lifecycle log's record of a report (the dependency runs monitor → vnf, never back).
impl From<Failure> for FailureRecord {
    fn from(failure: Failure) -> Self {
        let TargetRef {
            vnf_id,
            vdu,
            instance_id,
            mgmt_ip,
            action_id,
        } = failure.target;
        FailureRecord {
            failure_id: failure.failure_id,
            monitor: failure.monitor,
            target: FailedInstance {
                vnf_id,
                vdu,
                instance_id,
                mgmt_ip,
                action_id,
            },
            action: failure.action,
            attempts: failure.attempts,
            reason: failure.reason,
            detected_at: failure.detected_at,
        }
    }
}

/// Everything on the monitor stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MonitorEvent {
    /// The attempts one monitor finished in one round (or in a part of it: one message per
    /// roster), packed: their outcomes in the order of the roster the round names, each
    /// result at the round's time. [`rounds::unpack`] reads it with its roster.
    Round {
        monitor: Actor,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// How many targets the monitor had when the round ended.
        targets: usize,
        #[serde(flatten)]
        packed: rounds::PackedRound,
    },
    /// Who a monitor's rounds probed: a roster of targets, named by its digest, which the
    /// rounds that use it name (see [`rounds`]).
    Roster {
        monitor: Actor,
        #[serde(flatten)]
        roster: rounds::Roster,
    },
    VduDown {
        monitor: Actor,
        #[serde(flatten)]
        target: TargetRef,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    VduUp {
        monitor: Actor,
        #[serde(flatten)]
        target: TargetRef,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    Failure(Failure),
    /// A conductor refused a failure report as stale (the specification's `bad_action`).
    BadAction {
        failure_id: String,
        conductor: Actor,
        #[serde(flatten)]
        target: TargetRef,
        reason: String,
    },
    /// Most of a monitor's targets failed in one round: the monitor suspects itself and
    /// reports no failures for that round.
    SuspectedFault {
        monitor: Actor,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        failed: usize,
        targets: usize,
    },
    /// A target outside the ranges monitors may probe (`--probe-cidrs`): it is never probed.
    /// Each monitor that holds it reports it once, under [`target_refused_id`], so copies
    /// from other monitors or a restart are stored once within the duplicate window.
    TargetRefused {
        monitor: Actor,
        #[serde(flatten)]
        target: TargetRef,
        /// The ranges the monitor may probe.
        allowed: ProbeCidrs,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A monitor holds no partition while live monitors hold fewer than all of them: the
    /// rest are leased to holders that are not live monitors (or free and not taken), so some
    /// targets may be probed by nobody. Sent at every lease renewal while it lasts (from the
    /// second in a row: one is a lost race at start).
    Starved {
        monitor: Actor,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        /// Live monitors (membership keys), this one included.
        members: usize,
        /// Partitions leased to live monitors.
        held_by_members: usize,
        /// Partitions leased to holders that are not live monitors.
        held_by_unknown: usize,
    },
}

/// The message id of a [`MonitorEvent::TargetRefused`]: UUIDv5 of the VNF, the instance and
/// the address, so every report of one refused target is one message.
pub fn target_refused_id(target: &TargetRef) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!(
            "{}/{}/{}/refused",
            target.vnf_id, target.instance_id, target.mgmt_ip
        )
        .as_bytes(),
    )
    .to_string()
}

/// A monitor-stream message: one event with its schema version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorMessage {
    pub schema_version: u32,
    #[serde(flatten)]
    pub event: MonitorEvent,
}

impl MonitorMessage {
    pub fn new(event: MonitorEvent) -> Self {
        MonitorMessage {
            schema_version: SCHEMA_VERSION,
            event,
        }
    }
}

/// One instance's last known state, as monitors keep it for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceMonitorState {
    pub vdu: String,
    pub mgmt_ip: Ipv4Addr,
    /// "up", "down", or "pending" (within the monitoring delay, or not probed yet).
    pub state: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    pub last_result: Option<ProbeOutcome>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_probed_at: Option<OffsetDateTime>,
    pub monitor: String,
}

#[cfg(test)]
mod tests;
