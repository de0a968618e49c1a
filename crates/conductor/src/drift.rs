//! Drift: what a registered VIM reports, reconciled with what the log says runs there. Pure:
//! the VIM's inventory and the VNFs in, the findings out; `reconcile` does the reading, the
//! publishing and the recording.
//!
//! A running instance of an ACTIVE VNF whose server is gone, in ERROR or SHUTOFF is a drift.
//! For a VDU with a monitoring policy it becomes a failure report for that policy, with the
//! failure id [`drift_id`] of the instance and the state, so that every conductor and every
//! period reports the same failure and the VNF's claim (`HandleFailure`) makes its handling
//! exclusive; for a VDU without one it becomes [`VnfCommand::RecordVimDrift`], the VNF's ERROR.
//! BUILD and other transient states are not drift, nor is anything of a VNF with an operation
//! pending (its instances are being deployed or replaced).
//!
//! It never decides a VNF's fate: the aggregate does, when the finding is claimed or recorded.
//!
//! [`VnfCommand::RecordVimDrift`]: events::vnf::VnfCommand::RecordVimDrift

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use events::envelope::Actor;
use events::monitor::{Failure, TargetRef};
use events::vnf::{Instance, VimDrift, Vnf, VnfStatus, drift_id};

use crate::vim::openstack::{ServerState, TaggedInventory};

/// One server of an instance, as the VIM lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub server_id: String,
    pub state: ServerState,
}

/// The servers of each instance id in `inventory`.
pub fn servers_by_instance(inventory: &TaggedInventory) -> BTreeMap<String, Vec<Seen>> {
    let mut servers: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for server in &inventory.servers {
        servers
            .entry(server.instance_id.clone())
            .or_default()
            .push(Seen {
                server_id: server.server_id.clone(),
                state: server.state.clone(),
            });
    }
    servers
}

/// What the reconciliation found wrong with one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A monitored VDU's instance: a failure report for its policy, to go where the monitors'
    /// go, so that the heal path handles it like a probe failure.
    Failure(Failure),
    /// A VDU without a monitoring policy: the VNF's ERROR.
    Error(VimDrift),
}

/// The drift of one instance: its VIM state (`gone`, `ERROR`, `SHUTOFF`) and the reason, or
/// `None` when its servers are as they should be or on their way (BUILD, REBOOT...).
pub fn instance_drift(instance_id: &str, servers: &[Seen]) -> Option<(&'static str, String)> {
    if servers.is_empty() {
        return Some((
            "gone",
            format!("the VIM reports the server of instance {instance_id} gone"),
        ));
    }
    // A second server that is fine (a redeploy's) means the instance still runs.
    let mut drifted = None;
    for seen in servers {
        match &seen.state {
            ServerState::Shutoff => {
                drifted.get_or_insert((
                    "SHUTOFF",
                    format!("the VIM reports server {} SHUTOFF", seen.server_id),
                ));
            }
            ServerState::Error { fault } => {
                drifted.get_or_insert((
                    "ERROR",
                    format!("the VIM reports server {} ERROR: {fault}", seen.server_id),
                ));
            }
            // Listed as gone only for a moment (`list_servers` drops those).
            ServerState::Gone => {}
            ServerState::Active | ServerState::Build | ServerState::Other(_) => return None,
        }
    }
    drifted.or_else(|| {
        Some((
            "gone",
            format!("the VIM reports the server of instance {instance_id} gone"),
        ))
    })
}

/// The findings of one VNF against its VIM's `servers` (by instance id), found by `found_by`
/// at `at`: one per drifted running instance, for an ACTIVE VNF with no operation pending.
pub fn plan(
    vnf_id: &str,
    vnf: &Vnf,
    servers: &BTreeMap<String, Vec<Seen>>,
    found_by: &Actor,
    at: OffsetDateTime,
) -> Vec<Finding> {
    if !vnf.exists() || vnf.status != Some(VnfStatus::Active) || vnf.pending.is_some() {
        return Vec::new();
    }
    let no_servers = Vec::new();
    vnf.instances
        .iter()
        .filter_map(|instance| {
            let seen = servers.get(&instance.instance_id).unwrap_or(&no_servers);
            let (vim_state, reason) = instance_drift(&instance.instance_id, seen)?;
            finding(vnf_id, vnf, instance, vim_state, reason, found_by, at)
        })
        .collect()
}

fn finding(
    vnf_id: &str,
    vnf: &Vnf,
    instance: &Instance,
    vim_state: &str,
    reason: String,
    found_by: &Actor,
    at: OffsetDateTime,
) -> Option<Finding> {
    let drift_id = drift_id(&instance.instance_id, vim_state);
    match vnf.monitoring_policy(&instance.vdu) {
        Some(policy) => {
            // A monitored VNF has its monitor action id from its create; without one no
            // report would be accepted.
            let action_id = vnf.action_id.clone()?;
            Some(Finding::Failure(Failure {
                failure_id: drift_id,
                monitor: found_by.clone(),
                target: TargetRef {
                    vnf_id: vnf_id.to_owned(),
                    vdu: instance.vdu.clone(),
                    instance_id: instance.instance_id.clone(),
                    mgmt_ip: instance.mgmt_ip,
                    action_id,
                },
                action: policy.failure_action,
                attempts: 1,
                reason,
                detected_at: at,
            }))
        }
        None => Some(Finding::Error(VimDrift {
            drift_id,
            vdu: instance.vdu.clone(),
            instance_id: instance.instance_id.clone(),
            vim_state: vim_state.to_owned(),
            reason: format!("{reason} (VDU {} has no monitoring policy)", instance.vdu),
            found_by: found_by.clone(),
            found_at: at,
        })),
    }
}

/// The instance ids a VNF owns: its running instances and those its pending operation is
/// deploying. A failed operation's leftovers (`orphans`) are owned by no instance.
pub fn owned_instances<'a>(vnfs: impl IntoIterator<Item = &'a Vnf>) -> BTreeSet<String> {
    vnfs.into_iter()
        .filter(|vnf| vnf.exists())
        .flat_map(|vnf| {
            vnf.instances.iter().map(|i| i.instance_id.clone()).chain(
                vnf.pending
                    .iter()
                    .flat_map(|p| p.add.iter().map(|a| a.instance_id.clone())),
            )
        })
        .collect()
}

/// A server or port vnfm tagged that no live VNF's instance owns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Orphan {
    pub vim_id: String,
    /// `server` or `port`.
    pub kind: &'static str,
    /// The server's or port's id in OpenStack.
    pub openstack_id: String,
    pub instance_id: String,
    /// The VNF its tags name, if they name one.
    pub vnf_id: Option<String>,
}

/// The servers, then the ports, of `inventory` whose instance is not in `owned`.
pub fn orphans(vim_id: &str, inventory: &TaggedInventory, owned: &BTreeSet<String>) -> Vec<Orphan> {
    let servers = inventory
        .servers
        .iter()
        .filter(|s| !owned.contains(&s.instance_id))
        .map(|s| Orphan {
            vim_id: vim_id.to_owned(),
            kind: "server",
            openstack_id: s.server_id.clone(),
            instance_id: s.instance_id.clone(),
            vnf_id: s.vnf_id.clone(),
        });
    let ports = inventory
        .ports
        .iter()
        .filter(|p| !owned.contains(&p.instance_id))
        .map(|p| Orphan {
            vim_id: vim_id.to_owned(),
            kind: "port",
            openstack_id: p.port_id.clone(),
            instance_id: p.instance_id.clone(),
            vnf_id: p.vnf_id.clone(),
        });
    servers.chain(ports).collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use events::envelope::ActorKind;
    use events::fixtures;
    use events::spec::PolicyAction;
    use events::vnf::{OperationKind, PendingOperation, PlannedInstance};
    use time::macros::datetime;

    use super::*;
    use crate::vim::openstack::{TaggedPort, TaggedServer};

    const AT: OffsetDateTime = datetime!(2026-12-01 18:00 UTC);

    fn conductor() -> Actor {
        Actor::new(ActorKind::Conductor, "c1")
    }

    fn instance(id: &str, vdu: &str, last_octet: u8) -> Instance {
        Instance {
            instance_id: id.into(),
            vdu: vdu.into(),
            mgmt_ip: Ipv4Addr::new(198, 51, 100, last_octet),
            booted_at: datetime!(2026-12-01 17:00 UTC),
        }
    }

    /// An ACTIVE VNF: VDU1 monitored (ping → respawn) with instance i-1, VDU2 not, with i-2.
    fn given_active_vnf() -> Vnf {
        Vnf {
            details: Some(Box::new(fixtures::details("vnf-1", "vnfd-1"))),
            vnfd: Some(std::sync::Arc::new(fixtures::spec(vec![
                fixtures::vdu("VDU1", Some(fixtures::ping(PolicyAction::Respawn))),
                fixtures::vdu("VDU2", None),
            ]))),
            status: Some(VnfStatus::Active),
            instances: vec![instance("i-1", "VDU1", 11), instance("i-2", "VDU2", 12)],
            action_id: Some("act-1".into()),
            ..Vnf::default()
        }
    }

    fn server(instance_id: &str, server_id: &str, state: ServerState) -> TaggedServer {
        TaggedServer {
            server_id: server_id.into(),
            instance_id: instance_id.into(),
            vnf_id: Some("vnf-1".into()),
            state,
        }
    }

    fn inventory(servers: Vec<TaggedServer>) -> TaggedInventory {
        TaggedInventory {
            servers,
            ports: vec![],
        }
    }

    fn when_planned(vnf: &Vnf, servers: Vec<TaggedServer>) -> Vec<Finding> {
        plan(
            "vnf-1",
            vnf,
            &servers_by_instance(&inventory(servers)),
            &conductor(),
            AT,
        )
    }

    #[test]
    fn servers_as_they_should_be_or_building_are_no_drift() {
        let vnf = given_active_vnf();
        for state in [
            ServerState::Active,
            ServerState::Build,
            ServerState::Other("REBOOT".into()),
        ] {
            let findings = when_planned(
                &vnf,
                vec![
                    server("i-1", "s-1", state.clone()),
                    server("i-2", "s-2", ServerState::Active),
                ],
            );
            assert_eq!(findings, vec![], "{state:?}");
        }
    }

    #[test]
    fn a_monitored_vdus_server_gone_is_a_failure_report_for_its_policy() {
        let vnf = given_active_vnf();
        let findings = when_planned(&vnf, vec![server("i-2", "s-2", ServerState::Active)]);
        assert_eq!(
            findings,
            vec![Finding::Failure(Failure {
                failure_id: drift_id("i-1", "gone"),
                monitor: conductor(),
                target: TargetRef {
                    vnf_id: "vnf-1".into(),
                    vdu: "VDU1".into(),
                    instance_id: "i-1".into(),
                    mgmt_ip: Ipv4Addr::new(198, 51, 100, 11),
                    action_id: "act-1".into(),
                },
                action: PolicyAction::Respawn,
                attempts: 1,
                reason: "the VIM reports the server of instance i-1 gone".into(),
                detected_at: AT,
            })]
        );
    }

    #[test]
    fn every_period_and_conductor_derives_the_same_failure_id_per_state() {
        let vnf = given_active_vnf();
        let shutoff = |at| {
            plan(
                "vnf-1",
                &vnf,
                &servers_by_instance(&inventory(vec![
                    server("i-1", "s-1", ServerState::Shutoff),
                    server("i-2", "s-2", ServerState::Active),
                ])),
                &Actor::new(ActorKind::Conductor, "another"),
                at,
            )
        };
        let ids = |findings: Vec<Finding>| -> Vec<String> {
            findings
                .into_iter()
                .map(|f| match f {
                    Finding::Failure(f) => f.failure_id,
                    Finding::Error(d) => d.drift_id,
                })
                .collect()
        };
        let first = ids(shutoff(AT));
        assert_eq!(first, vec![drift_id("i-1", "SHUTOFF")]);
        assert_eq!(ids(shutoff(AT + time::Duration::seconds(15))), first);
        assert_ne!(first, vec![drift_id("i-1", "gone")]);
    }

    #[test]
    fn an_unmonitored_vdus_server_in_error_makes_an_error_with_novas_fault() {
        let vnf = given_active_vnf();
        let findings = when_planned(
            &vnf,
            vec![
                server("i-1", "s-1", ServerState::Active),
                server(
                    "i-2",
                    "s-2",
                    ServerState::Error {
                        fault: "No valid host was found.".into(),
                    },
                ),
            ],
        );
        assert_eq!(
            findings,
            vec![Finding::Error(VimDrift {
                drift_id: drift_id("i-2", "ERROR"),
                vdu: "VDU2".into(),
                instance_id: "i-2".into(),
                vim_state: "ERROR".into(),
                reason: "the VIM reports server s-2 ERROR: No valid host was found. (VDU VDU2 has no monitoring policy)".into(),
                found_by: conductor(),
                found_at: AT,
            })]
        );
    }

    #[test]
    fn a_vnf_not_active_or_with_an_operation_pending_has_no_drift() {
        let mut pending = given_active_vnf();
        pending.status = Some(VnfStatus::Dead);
        pending.pending = Some(Box::new(PendingOperation {
            operation_id: "op-heal".into(),
            kind: OperationKind::Respawn,
            add: vec![PlannedInstance {
                vdu: "VDU1".into(),
                instance_id: "i-3".into(),
            }],
            remove: vec!["i-1".into(), "i-2".into()],
        }));
        assert_eq!(when_planned(&pending, vec![]), vec![]);
        let mut error = given_active_vnf();
        error.status = Some(VnfStatus::Error);
        assert_eq!(when_planned(&error, vec![]), vec![]);
        let mut deleted = given_active_vnf();
        deleted.deleted = true;
        assert_eq!(when_planned(&deleted, vec![]), vec![]);
    }

    #[test]
    fn a_second_server_that_runs_keeps_the_instance_alive() {
        let vnf = given_active_vnf();
        let findings = when_planned(
            &vnf,
            vec![
                server("i-1", "s-1", ServerState::Shutoff),
                server("i-1", "s-1b", ServerState::Active),
                server("i-2", "s-2", ServerState::Active),
            ],
        );
        assert_eq!(findings, vec![]);
    }

    #[test]
    fn orphans_are_the_tagged_servers_and_ports_no_live_instance_owns() {
        let mut vnf = given_active_vnf();
        vnf.orphans = vec!["i-failed".into()].into();
        let mut creating = given_active_vnf();
        creating.instances = vec![];
        creating.status = Some(VnfStatus::PendingCreate);
        creating.pending = Some(Box::new(PendingOperation {
            operation_id: "op-create".into(),
            kind: OperationKind::Create,
            add: vec![PlannedInstance {
                vdu: "VDU1".into(),
                instance_id: "i-new".into(),
            }],
            remove: vec![],
        }));
        let mut deleted = given_active_vnf();
        deleted.deleted = true;
        deleted.instances = vec![instance("i-of-deleted", "VDU1", 20)];
        let owned = owned_instances([&vnf, &creating, &deleted]);
        let inventory = TaggedInventory {
            servers: vec![
                server("i-1", "s-1", ServerState::Active),
                server("i-new", "s-new", ServerState::Build),
                server(
                    "i-failed",
                    "s-failed",
                    ServerState::Error { fault: "x".into() },
                ),
                server("i-of-deleted", "s-del", ServerState::Active),
            ],
            ports: vec![
                TaggedPort {
                    port_id: "p-1".into(),
                    instance_id: "i-1".into(),
                    vnf_id: Some("vnf-1".into()),
                    server_id: Some("s-1".into()),
                },
                TaggedPort {
                    port_id: "p-stray".into(),
                    instance_id: "i-stray".into(),
                    vnf_id: None,
                    server_id: None,
                },
            ],
        };
        let found: Vec<(&str, String, String)> = orphans("vim-1", &inventory, &owned)
            .into_iter()
            .map(|o| (o.kind, o.openstack_id, o.instance_id))
            .collect();
        assert_eq!(
            found,
            vec![
                ("server", "s-failed".into(), "i-failed".into()),
                ("server", "s-del".into(), "i-of-deleted".into()),
                ("port", "p-stray".into(), "i-stray".into()),
            ]
        );
    }
}
