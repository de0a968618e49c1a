//! The fleet at a glance, as the status board shows it: pure folds over the rows, the
//! monitors' VDU states, the last hour of the lifecycle log and the monitor leases. The board's
//! handlers read those and hand them here; nothing here reads NATS or a clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use events::monitor::{InstanceMonitorState, MonitorEvent};
use events::names;
use events::vnf::{Vnf, VnfEvent};
use serde::Serialize;
use time::OffsetDateTime;

/// VDU instances of the shown VNFs by what their monitors last said.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct InstanceCounts {
    pub up: usize,
    pub down: usize,
    /// Monitored, and not judged yet (within the monitoring delay, or not probed yet).
    pub pending: usize,
    /// Of a VDU without a monitoring policy.
    pub unmonitored: usize,
}

/// VNFs by Tacker status, and their instances by monitor state.
pub(crate) fn census<'a>(
    vnfs: impl IntoIterator<Item = &'a Vnf>,
    states: impl Fn(&str) -> BTreeMap<String, InstanceMonitorState>,
) -> (BTreeMap<&'static str, usize>, InstanceCounts) {
    let mut by_status = BTreeMap::new();
    let mut instances = InstanceCounts::default();
    for vnf in vnfs {
        let (Some(status), Some(details)) = (vnf.status, vnf.details.as_ref()) else {
            continue;
        };
        *by_status.entry(status.as_str()).or_default() += 1;
        let known = states(&details.vnf_id);
        for instance in &vnf.instances {
            if vnf.monitoring_policy(&instance.vdu).is_none() {
                instances.unmonitored += 1;
                continue;
            }
            match known.get(&instance.instance_id).map(|s| s.state.as_str()) {
                Some("up") => instances.up += 1,
                Some("down") => instances.down += 1,
                _ => instances.pending += 1,
            }
        }
    }
    (by_status, instances)
}

/// How the board names a respawn an alarm asked for.
const ALARM_RESPAWN: &str = "respawn (alarm)";

/// One heal of the last hour: from the failure its monitor declared to the heal's completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Heal {
    pub vnf_id: String,
    pub vdu: String,
    pub action: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
    /// Failure declared → the heal recorded complete (the VNF ACTIVE again); `None` while it
    /// runs, or when it failed.
    pub latency_ms: Option<u64>,
}

/// The failures and heals recorded in a window of the lifecycle log, folded message by
/// message ([`Heals::apply`]).
#[derive(Debug, Default)]
pub(crate) struct Heals {
    /// Heals by (VNF, operation), in the order they started.
    started: Vec<Heal>,
    running: HashMap<(String, String), usize>,
    /// Failures the conductors acted on: healed, logged, or left alone at the heal limit.
    pub failures: usize,
}

impl Heals {
    /// Folds one VNF event recorded at `recorded_at`.
    pub(crate) fn apply(&mut self, vnf_id: &str, recorded_at: OffsetDateTime, event: &VnfEvent) {
        match event {
            VnfEvent::HealStarted {
                operation_id,
                failure,
                ..
            } => {
                self.failures += 1;
                self.start(
                    operation_id,
                    Heal {
                        vnf_id: vnf_id.to_owned(),
                        vdu: failure.target.vdu.clone(),
                        action: failure.action.as_str(),
                        detected_at: failure.detected_at,
                        latency_ms: None,
                    },
                );
            }
            // An alarm's respawn is a heal too, timed from its claim (the alarm carries no
            // detection time of its own).
            VnfEvent::AlarmRespawnStarted {
                operation_id,
                add,
                at,
                ..
            } => {
                let vdus: BTreeSet<&str> = add.iter().map(|p| p.vdu.as_str()).collect();
                self.start(
                    operation_id,
                    Heal {
                        vnf_id: vnf_id.to_owned(),
                        vdu: vdus.into_iter().collect::<Vec<_>>().join(", "),
                        action: ALARM_RESPAWN,
                        detected_at: *at,
                        latency_ms: None,
                    },
                );
            }
            VnfEvent::HealCompleted { operation_id, .. } => {
                if let Some(&index) = self.running.get(&(vnf_id.to_owned(), operation_id.clone())) {
                    let heal = &mut self.started[index];
                    let elapsed = recorded_at - heal.detected_at;
                    heal.latency_ms =
                        Some(u64::try_from(elapsed.whole_milliseconds()).unwrap_or(0));
                }
            }
            VnfEvent::FailureLogged { .. }
            | VnfEvent::VimDriftFound { .. }
            | VnfEvent::RespawnLimitReached {
                failure: Some(_), ..
            } => {
                self.failures += 1;
            }
            _ => {}
        }
    }

    fn start(&mut self, operation_id: &str, heal: Heal) {
        self.running.insert(
            (heal.vnf_id.clone(), operation_id.to_owned()),
            self.started.len(),
        );
        self.started.push(heal);
    }

    /// The heals, newest first.
    pub(crate) fn newest_first(mut self) -> Vec<Heal> {
        self.started.reverse();
        self.started
    }
}

/// The median and the largest of the heals' latencies (milliseconds), `None` without any.
pub(crate) fn latency_summary(heals: &[Heal]) -> Option<(u64, u64)> {
    let mut latencies: Vec<u64> = heals.iter().filter_map(|h| h.latency_ms).collect();
    latencies.sort_unstable();
    let max = *latencies.last()?;
    Some((latencies[latencies.len() / 2], max))
}

/// A live monitor: the partitions it holds, and what it said of itself lately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct MonitorShare {
    pub name: String,
    pub partitions: Vec<u32>,
    /// Its latest suspect or starved report in the window, in words.
    pub suspect: Option<String>,
}

/// The monitors and their partitions from the lease bucket's entries (key, value), and their
/// suspect reports; also the partitions nobody live holds.
pub(crate) fn monitors<'a>(
    leases: impl IntoIterator<Item = (&'a str, &'a str)>,
    reports: impl IntoIterator<Item = &'a MonitorEvent>,
    partitions: u32,
) -> (Vec<MonitorShare>, Vec<u32>) {
    fn share<'s>(
        shares: &'s mut BTreeMap<String, MonitorShare>,
        name: &str,
    ) -> &'s mut MonitorShare {
        shares
            .entry(name.to_owned())
            .or_insert_with(|| MonitorShare {
                name: name.to_owned(),
                partitions: Vec::new(),
                suspect: None,
            })
    }
    let mut shares: BTreeMap<String, MonitorShare> = BTreeMap::new();
    let mut held: BTreeMap<u32, String> = BTreeMap::new();
    for (key, value) in leases {
        if let Some(member) = key.strip_prefix(names::LEASE_MEMBER_PREFIX) {
            share(&mut shares, member);
        } else if let Some(partition) = key
            .strip_prefix(names::LEASE_PARTITION_PREFIX)
            .and_then(|p| p.parse().ok())
        {
            held.insert(partition, names::token(value));
        }
    }
    let mut unheld = Vec::new();
    for partition in 0..partitions {
        match held.get(&partition) {
            Some(holder) => share(&mut shares, holder).partitions.push(partition),
            None => unheld.push(partition),
        }
    }
    for report in reports {
        let (monitor, text) = match report {
            MonitorEvent::SuspectedFault {
                monitor,
                failed,
                targets,
                ..
            } => (
                monitor,
                format!("suspects itself: {failed} of {targets} targets failed in one round"),
            ),
            MonitorEvent::Starved {
                monitor,
                members,
                held_by_members,
                held_by_unknown,
                ..
            } => (
                monitor,
                format!(
                    "starved: holds nothing while {members} live monitor(s) hold {held_by_members} partition(s) and strangers {held_by_unknown}"
                ),
            ),
            _ => continue,
        };
        if let Some(entry) = shares.get_mut(&names::token(&monitor.id)) {
            entry.suspect = Some(text);
        }
    }
    (shares.into_values().collect(), unheld)
}

#[cfg(test)]
mod tests {
    use events::envelope::{Actor, ActorKind};
    use events::fixtures::{self, spec, vdu};
    use events::spec::PolicyAction;
    use events::vnf::{FailedInstance, FailureRecord, Instance, PlannedInstance, VnfStatus};
    use time::macros::datetime;

    use super::*;

    fn failure(id: &str, at: OffsetDateTime) -> FailureRecord {
        FailureRecord {
            failure_id: id.into(),
            monitor: Actor::new(ActorKind::Monitor, "monitor-1"),
            target: FailedInstance {
                vnf_id: "v".into(),
                vdu: "VDU1".into(),
                instance_id: "i".into(),
                mgmt_ip: "198.18.0.2".parse().unwrap(),
                action_id: "a".into(),
            },
            action: PolicyAction::Respawn,
            attempts: 2,
            reason: "no reply".into(),
            detected_at: at,
        }
    }

    #[test]
    fn a_heal_s_latency_runs_from_the_failure_to_its_completion() {
        let detected = datetime!(2026-12-01 10:00:00 UTC);
        let mut heals = Heals::default();
        heals.apply(
            "v",
            detected + time::Duration::milliseconds(5),
            &VnfEvent::HealStarted {
                operation_id: "op".into(),
                failure: failure("f", detected),
                add: Vec::new(),
                remove: Vec::new(),
                at: detected,
            },
        );
        heals.apply(
            "v",
            detected,
            &VnfEvent::FailureLogged {
                failure: failure("g", detected),
            },
        );
        heals.apply(
            "v",
            detected + time::Duration::milliseconds(57),
            &VnfEvent::HealCompleted {
                operation_id: "op".into(),
                added: Vec::new(),
                removed: Vec::new(),
            },
        );
        assert_eq!(heals.failures, 2);
        let heals = heals.newest_first();
        assert_eq!(heals.len(), 1);
        assert_eq!(heals[0].latency_ms, Some(57));
        assert_eq!(heals[0].action, "respawn");
        assert_eq!(latency_summary(&heals), Some((57, 57)));
        assert_eq!(latency_summary(&[]), None);
    }

    #[test]
    fn an_alarm_s_respawn_is_a_heal_timed_from_its_claim() {
        let claimed = datetime!(2026-12-01 10:00:00 UTC);
        let mut heals = Heals::default();
        let planned = |vdu: &str, id: &str| PlannedInstance {
            vdu: vdu.into(),
            instance_id: id.into(),
        };
        heals.apply(
            "v",
            claimed,
            &VnfEvent::AlarmRespawnStarted {
                operation_id: "op".into(),
                occurrence_id: "tacker:a1".into(),
                add: vec![
                    planned("VDU2", "n1"),
                    planned("VDU1", "n2"),
                    planned("VDU1", "n3"),
                ],
                remove: vec!["o1".into(), "o2".into(), "o3".into()],
                at: claimed,
            },
        );
        heals.apply(
            "v",
            claimed + time::Duration::milliseconds(80),
            &VnfEvent::HealCompleted {
                operation_id: "op".into(),
                added: Vec::new(),
                removed: Vec::new(),
            },
        );
        assert_eq!(heals.failures, 0, "an alarm is no failure");
        let heals = heals.newest_first();
        assert_eq!(heals.len(), 1);
        assert_eq!(heals[0].vdu, "VDU1, VDU2");
        assert_eq!(heals[0].action, "respawn (alarm)");
        assert_eq!(heals[0].latency_ms, Some(80));
    }

    #[test]
    fn monitors_are_listed_with_their_partitions_and_what_they_suspect() {
        let leases = [
            ("member.monitor-1", "monitor-1"),
            ("member.monitor-2", "monitor-2"),
            ("partition.0", "monitor-1"),
            ("partition.2", "monitor-1"),
            ("partition.1", "intruder"),
        ];
        let reports = [MonitorEvent::SuspectedFault {
            monitor: Actor::new(ActorKind::Monitor, "monitor-2"),
            at: datetime!(2026-12-01 10:00:00 UTC),
            failed: 9,
            targets: 10,
        }];
        let (shares, unheld) = monitors(leases, &reports, 4);
        let by_name: BTreeMap<&str, &MonitorShare> =
            shares.iter().map(|s| (s.name.as_str(), s)).collect();
        assert_eq!(by_name["monitor-1"].partitions, [0, 2]);
        assert_eq!(by_name["intruder"].partitions, [1]);
        assert!(by_name["monitor-2"].partitions.is_empty());
        assert!(
            by_name["monitor-2"]
                .suspect
                .as_deref()
                .unwrap()
                .contains("9 of 10")
        );
        assert_eq!(unheld, [3]);
    }

    #[test]
    fn instances_are_counted_by_their_monitor_state() {
        let instance = |id: &str, vdu: &str| Instance {
            instance_id: id.into(),
            vdu: vdu.into(),
            mgmt_ip: "198.18.0.2".parse().unwrap(),
            booted_at: datetime!(2026-12-01 10:00 UTC),
        };
        let vnf = Vnf {
            details: Some(Box::new(fixtures::details("v", "d"))),
            vnfd: Some(std::sync::Arc::new(spec(vec![
                vdu("VDU1", Some(fixtures::ping(PolicyAction::Respawn))),
                vdu("VDU2", None),
            ]))),
            status: Some(VnfStatus::Active),
            instances: vec![
                instance("a", "VDU1"),
                instance("b", "VDU1"),
                instance("c", "VDU1"),
                instance("d", "VDU2"),
            ],
            ..Vnf::default()
        };
        let state = |state: &str| InstanceMonitorState {
            vdu: "VDU1".into(),
            mgmt_ip: "198.18.0.2".parse().unwrap(),
            state: state.into(),
            since: None,
            last_result: None,
            last_probed_at: None,
            monitor: "monitor-1".into(),
        };
        let states = |vnf_id: &str| {
            assert_eq!(vnf_id, "v");
            BTreeMap::from([
                ("a".to_owned(), state("up")),
                ("b".to_owned(), state("down")),
            ])
        };
        let (by_status, instances) = census([&vnf], states);
        assert_eq!(by_status, BTreeMap::from([("ACTIVE", 1)]));
        assert_eq!(
            instances,
            InstanceCounts {
                up: 1,
                down: 1,
                pending: 1,
                unmonitored: 1
            }
        );
    }
}
