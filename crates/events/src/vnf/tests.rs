//! Given/when/then for every branch of the VNF aggregate's commands.

use cqrs_es::test::TestFramework;
use time::macros::datetime;

use super::*;
use crate::spec::{MonitorDriver, MonitoringPolicy, PolicyAction, ScalingPolicy, VduSpec};

type Given = TestFramework<Vnf>;

const CREATE_OP: &str = "op-create";

fn vdu(name: &str, monitored: bool) -> VduSpec {
    VduSpec {
        name: name.into(),
        image: None,
        flavor: None,
        mgmt_cp: format!("CP-{name}"),
        monitoring_policy: monitored.then_some(MonitoringPolicy {
            driver: MonitorDriver::Ping,
            monitoring_delay_ms: 45_000,
            count: 3,
            interval_ms: 1_000,
            timeout_ms: 2_000,
            retry: 1,
            port: None,
            failure_action: PolicyAction::Respawn,
        }),
    }
}

/// VDU1 scaled by SP1 (1..=3, starting at 2); VDU2 unscaled.
fn vnfd(monitored: bool) -> VnfdSpec {
    VnfdSpec {
        template_name: None,
        description: None,
        vdus: vec![vdu("VDU1", monitored), vdu("VDU2", false)],
        scaling_policies: vec![ScalingPolicy {
            name: "SP1".into(),
            targets: vec!["VDU1".into()],
            increment: 1,
            min_instances: 1,
            max_instances: 3,
            default_instances: 2,
            cooldown_s: 120,
        }],
    }
}

fn details() -> VnfDetails {
    VnfDetails {
        vnf_id: "vnf-1".into(),
        name: "vnf1".into(),
        description: String::new(),
        tenant_id: "admin".into(),
        vnfd_id: "vnfd-1".into(),
        vim_id: "local".into(),
        attributes: serde_json::json!({}),
        placement_attr: serde_json::json!({}),
    }
}

fn planned(op: &str, vdu: &str, n: u32) -> PlannedInstance {
    PlannedInstance {
        vdu: vdu.into(),
        instance_id: planned_instance_id(op, vdu, n),
    }
}

fn create_plan() -> Vec<PlannedInstance> {
    vec![
        planned(CREATE_OP, "VDU1", 0),
        planned(CREATE_OP, "VDU1", 1),
        planned(CREATE_OP, "VDU2", 0),
    ]
}

fn running(plan: &[PlannedInstance], first_ip: u8) -> Vec<Instance> {
    plan.iter()
        .zip(first_ip..)
        .map(|(p, n)| Instance {
            instance_id: p.instance_id.clone(),
            vdu: p.vdu.clone(),
            mgmt_ip: Ipv4Addr::new(198, 18, 0, n),
            booted_at: datetime!(2026-11-25 10:00 UTC),
        })
        .collect()
}

fn create_requested(monitored: bool) -> VnfEvent {
    VnfEvent::CreateRequested {
        details: details(),
        vnfd: vnfd(monitored),
        operation_id: CREATE_OP.into(),
        add: create_plan(),
    }
}

fn active() -> Vec<VnfEvent> {
    vec![
        create_requested(false),
        VnfEvent::CreateCompleted {
            operation_id: CREATE_OP.into(),
            instances: running(&create_plan(), 1),
        },
    ]
}

fn scale(direction: ScaleDirection) -> VnfCommand {
    VnfCommand::Scale {
        operation_id: "op-scale".into(),
        policy: "SP1".into(),
        direction,
    }
}

fn fail(op: &str) -> VnfCommand {
    VnfCommand::FailOperation {
        operation_id: op.into(),
        reason: "VIM down".into(),
    }
}

fn state_after(events: Vec<VnfEvent>) -> Vnf {
    let mut vnf = Vnf::default();
    events.into_iter().for_each(|e| vnf.apply(e));
    vnf
}

#[test]
fn create_plans_default_instances_and_attaches_the_monitor() {
    Given::with(())
        .given_no_previous_events()
        .when(VnfCommand::Create {
            details: details(),
            vnfd: vnfd(true),
            operation_id: CREATE_OP.into(),
        })
        .then_expect_events(vec![
            create_requested(true),
            VnfEvent::MonitorAttached {
                action_id: monitor_action_id(CREATE_OP),
            },
        ]);
}

#[test]
fn create_without_monitoring_policy_attaches_no_monitor() {
    Given::with(())
        .given_no_previous_events()
        .when(VnfCommand::Create {
            details: details(),
            vnfd: vnfd(false),
            operation_id: CREATE_OP.into(),
        })
        .then_expect_events(vec![create_requested(false)]);
}

#[test]
fn create_of_an_existing_vnf_is_refused() {
    Given::with(())
        .given(vec![create_requested(false)])
        .when(VnfCommand::Create {
            details: details(),
            vnfd: vnfd(false),
            operation_id: "other".into(),
        })
        .then_expect_error(VnfError::AlreadyExists);
}

#[test]
fn complete_create_makes_the_vnf_active() {
    Given::with(())
        .given(vec![create_requested(false)])
        .when(VnfCommand::CompleteCreate {
            operation_id: CREATE_OP.into(),
            instances: running(&create_plan(), 1),
        })
        .then_expect_events(vec![active()[1].clone()]);
    let vnf = state_after(active());
    assert_eq!(vnf.status, Some(VnfStatus::Active));
    assert_eq!(vnf.mgmt_ips()["VDU1"].len(), 2);
    assert_eq!(vnf.pending, None);
}

#[test]
fn complete_create_twice_is_stale() {
    Given::with(())
        .given(active())
        .when(VnfCommand::CompleteCreate {
            operation_id: CREATE_OP.into(),
            instances: running(&create_plan(), 1),
        })
        .then_expect_error(VnfError::StaleOperation {
            operation_id: CREATE_OP.into(),
        });
}

#[test]
fn complete_create_must_match_the_plan() {
    let result = Given::with(())
        .given(vec![create_requested(false)])
        .when(VnfCommand::CompleteCreate {
            operation_id: CREATE_OP.into(),
            instances: running(&create_plan()[..1], 1),
        })
        .inspect_result();
    assert!(
        matches!(result, Err(VnfError::PlanMismatch { .. })),
        "{result:?}"
    );
}

#[test]
fn scale_out_plans_one_more_instance() {
    Given::with(())
        .given(active())
        .when(scale(ScaleDirection::Out))
        .then_expect_events(vec![VnfEvent::ScaleRequested {
            operation_id: "op-scale".into(),
            policy: "SP1".into(),
            direction: ScaleDirection::Out,
            add: vec![planned("op-scale", "VDU1", 0)],
            remove: vec![],
        }]);
}

#[test]
fn scale_out_beyond_max_is_refused_with_the_reason() {
    let mut events = active();
    let add = vec![planned("op-scale", "VDU1", 0)];
    events.push(VnfEvent::ScaleRequested {
        operation_id: "op-scale".into(),
        policy: "SP1".into(),
        direction: ScaleDirection::Out,
        add: add.clone(),
        remove: vec![],
    });
    events.push(VnfEvent::ScaleCompleted {
        operation_id: "op-scale".into(),
        added: running(&add, 9),
        removed: vec![],
    });
    let result = Given::with(())
        .given(events)
        .when(scale(ScaleDirection::Out))
        .inspect_result();
    let Err(err) = result else {
        panic!("scale beyond max accepted: {result:?}")
    };
    assert!(
        matches!(err, VnfError::ScaleLimit { limit: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("max_instances of 3"), "{err}");
}

#[test]
fn scale_in_removes_the_newest_instance_and_respects_min() {
    let newest = planned_instance_id(CREATE_OP, "VDU1", 1);
    Given::with(())
        .given(active())
        .when(scale(ScaleDirection::In))
        .then_expect_events(vec![VnfEvent::ScaleRequested {
            operation_id: "op-scale".into(),
            policy: "SP1".into(),
            direction: ScaleDirection::In,
            add: vec![],
            remove: vec![newest.clone()],
        }]);
    let mut events = active();
    events.push(VnfEvent::ScaleRequested {
        operation_id: "op-scale".into(),
        policy: "SP1".into(),
        direction: ScaleDirection::In,
        add: vec![],
        remove: vec![newest.clone()],
    });
    events.push(VnfEvent::ScaleCompleted {
        operation_id: "op-scale".into(),
        added: vec![],
        removed: vec![newest],
    });
    let vnf = state_after(events.clone());
    assert_eq!(vnf.mgmt_ips()["VDU1"].len(), 1);
    let result = Given::with(())
        .given(events)
        .when(scale(ScaleDirection::In))
        .inspect_result();
    assert!(
        matches!(
            result,
            Err(VnfError::ScaleLimit {
                bound: "min_instances",
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn scale_with_an_unknown_policy_is_refused() {
    Given::with(())
        .given(active())
        .when(VnfCommand::Scale {
            operation_id: "op".into(),
            policy: "SP9".into(),
            direction: ScaleDirection::Out,
        })
        .then_expect_error(VnfError::UnknownScalingPolicy {
            policy: "SP9".into(),
        });
}

#[test]
fn scale_while_pending_is_refused() {
    Given::with(())
        .given(vec![create_requested(false)])
        .when(scale(ScaleDirection::Out))
        .then_expect_error(VnfError::InvalidState {
            status: VnfStatus::PendingCreate,
            action: "scale",
        });
}

#[test]
fn scale_of_a_missing_vnf_is_not_found() {
    Given::with(())
        .given_no_previous_events()
        .when(scale(ScaleDirection::Out))
        .then_expect_error(VnfError::NotFound);
}

#[test]
fn complete_scale_applies_the_plan() {
    let mut events = active();
    let add = vec![planned("op-scale", "VDU1", 0)];
    events.push(VnfEvent::ScaleRequested {
        operation_id: "op-scale".into(),
        policy: "SP1".into(),
        direction: ScaleDirection::Out,
        add: add.clone(),
        remove: vec![],
    });
    Given::with(())
        .given(events)
        .when(VnfCommand::CompleteScale {
            operation_id: "op-scale".into(),
            added: running(&add, 9),
        })
        .then_expect_events(vec![VnfEvent::ScaleCompleted {
            operation_id: "op-scale".into(),
            added: running(&add, 9),
            removed: vec![],
        }]);
}

#[test]
fn complete_scale_of_another_operation_is_stale() {
    Given::with(())
        .given(active())
        .when(VnfCommand::CompleteScale {
            operation_id: "op-x".into(),
            added: vec![],
        })
        .then_expect_error(VnfError::StaleOperation {
            operation_id: "op-x".into(),
        });
}

#[test]
fn delete_then_complete_detaches_the_monitor() {
    let mut events = vec![
        create_requested(true),
        VnfEvent::MonitorAttached {
            action_id: "a1".into(),
        },
        VnfEvent::CreateCompleted {
            operation_id: CREATE_OP.into(),
            instances: running(&create_plan(), 1),
        },
    ];
    Given::with(())
        .given(events.clone())
        .when(VnfCommand::Delete {
            operation_id: "op-del".into(),
        })
        .then_expect_events(vec![VnfEvent::DeleteRequested {
            operation_id: "op-del".into(),
        }]);
    events.push(VnfEvent::DeleteRequested {
        operation_id: "op-del".into(),
    });
    Given::with(())
        .given(events.clone())
        .when(VnfCommand::CompleteDelete {
            operation_id: "op-del".into(),
        })
        .then_expect_events(vec![
            VnfEvent::MonitorDetached {
                action_id: "a1".into(),
            },
            VnfEvent::Deleted {
                operation_id: "op-del".into(),
            },
        ]);
}

#[test]
fn delete_while_pending_or_after_deletion_is_refused() {
    Given::with(())
        .given(vec![create_requested(false)])
        .when(VnfCommand::Delete {
            operation_id: "op-del".into(),
        })
        .then_expect_error(VnfError::InvalidState {
            status: VnfStatus::PendingCreate,
            action: "delete",
        });
    let mut events = active();
    events.push(VnfEvent::DeleteRequested {
        operation_id: "op-del".into(),
    });
    events.push(VnfEvent::Deleted {
        operation_id: "op-del".into(),
    });
    Given::with(())
        .given(events)
        .when(VnfCommand::Delete {
            operation_id: "op-del2".into(),
        })
        .then_expect_error(VnfError::NotFound);
}

#[test]
fn complete_delete_without_a_pending_delete_is_stale() {
    Given::with(())
        .given(active())
        .when(VnfCommand::CompleteDelete {
            operation_id: "op-del".into(),
        })
        .then_expect_error(VnfError::StaleOperation {
            operation_id: "op-del".into(),
        });
}

#[test]
fn failed_create_goes_to_error_and_remembers_orphans() {
    Given::with(())
        .given(vec![create_requested(false)])
        .when(fail(CREATE_OP))
        .then_expect_events(vec![VnfEvent::OperationFailed {
            operation_id: CREATE_OP.into(),
            reason: "VIM down".into(),
        }]);
    let vnf = state_after(vec![
        create_requested(false),
        VnfEvent::OperationFailed {
            operation_id: CREATE_OP.into(),
            reason: "VIM down".into(),
        },
    ]);
    assert_eq!(vnf.status, Some(VnfStatus::Error));
    assert_eq!(vnf.error_reason.as_deref(), Some("VIM down"));
    assert_eq!(vnf.orphans.len(), 3);
}

#[test]
fn a_vnf_in_error_can_be_deleted() {
    Given::with(())
        .given(vec![
            create_requested(false),
            VnfEvent::OperationFailed {
                operation_id: CREATE_OP.into(),
                reason: "VIM down".into(),
            },
        ])
        .when(VnfCommand::Delete {
            operation_id: "op-del".into(),
        })
        .then_expect_events(vec![VnfEvent::DeleteRequested {
            operation_id: "op-del".into(),
        }]);
}

#[test]
fn fail_of_a_finished_operation_is_stale() {
    Given::with(())
        .given(active())
        .when(fail(CREATE_OP))
        .then_expect_error(VnfError::StaleOperation {
            operation_id: CREATE_OP.into(),
        });
}

mod heal {
    use super::*;
    use crate::envelope::{Actor, ActorKind};
    use crate::monitor::{Failure, TargetRef};

    const ACTION: &str = "act-1";

    fn monitored_active() -> Vec<VnfEvent> {
        vec![
            create_requested(true),
            VnfEvent::MonitorAttached {
                action_id: ACTION.into(),
            },
            VnfEvent::CreateCompleted {
                operation_id: CREATE_OP.into(),
                instances: running(&create_plan(), 1),
            },
        ]
    }

    fn failure(id: &str, instance_index: usize, action: PolicyAction) -> Failure {
        let instance = &running(&create_plan(), 1)[instance_index];
        Failure {
            failure_id: id.into(),
            monitor: Actor::new(ActorKind::Monitor, "m1"),
            target: TargetRef {
                vnf_id: "vnf-1".into(),
                vdu: instance.vdu.clone(),
                instance_id: instance.instance_id.clone(),
                mgmt_ip: instance.mgmt_ip,
                action_id: ACTION.into(),
            },
            action,
            attempts: 1,
            reason: "no reply".into(),
            detected_at: datetime!(2026-11-25 10:05 UTC),
        }
    }

    const AT: OffsetDateTime = datetime!(2026-11-25 10:05 UTC);

    fn handle(failure: Failure) -> VnfCommand {
        VnfCommand::HandleFailure {
            operation_id: format!("heal-{}", failure.failure_id),
            failure,
            at: AT,
            limit: RespawnLimit::default(),
        }
    }

    fn heal_started(failure: Failure) -> VnfEvent {
        let op = format!("heal-{}", failure.failure_id);
        let events = Given::with(())
            .given(monitored_active())
            .when(handle(failure))
            .inspect_result()
            .unwrap();
        assert!(
            matches!(&events[..], [VnfEvent::HealStarted { operation_id, .. }] if *operation_id == op)
        );
        events.into_iter().next().unwrap()
    }

    #[test]
    fn respawn_replaces_every_instance_and_marks_the_vnf_dead() {
        let started = heal_started(failure("f1", 0, PolicyAction::Respawn));
        let VnfEvent::HealStarted { add, remove, .. } = &started else {
            unreachable!()
        };
        assert_eq!(add.len(), 3);
        assert_eq!(remove.len(), 3);
        let mut events = monitored_active();
        events.push(started.clone());
        let vnf = state_after(events);
        assert_eq!(vnf.status, Some(VnfStatus::Dead));
        assert_eq!(vnf.failure_count, 1);
        assert_eq!(
            vnf.dead_instances,
            vec![planned_instance_id(CREATE_OP, "VDU1", 0)]
        );
    }

    #[test]
    fn vdu_autoheal_replaces_only_the_failed_instance() {
        let started = heal_started(failure("f1", 1, PolicyAction::VduAutoheal));
        let VnfEvent::HealStarted { add, remove, .. } = &started else {
            unreachable!()
        };
        assert_eq!(remove, &vec![planned_instance_id(CREATE_OP, "VDU1", 1)]);
        assert_eq!(add.len(), 1);
        assert_eq!(add[0].vdu, "VDU1");
        let mut events = monitored_active();
        events.push(started);
        assert_eq!(state_after(events).status, Some(VnfStatus::PendingHeal));
    }

    #[test]
    fn complete_heal_makes_the_vnf_active_with_new_instances() {
        let started = heal_started(failure("f1", 1, PolicyAction::VduAutoheal));
        let VnfEvent::HealStarted {
            add, operation_id, ..
        } = started.clone()
        else {
            unreachable!()
        };
        let mut events = monitored_active();
        events.push(started);
        let added = running(&add, 40);
        Given::with(())
            .given(events.clone())
            .when(VnfCommand::CompleteHeal {
                operation_id: operation_id.clone(),
                added: added.clone(),
            })
            .then_expect_events(vec![VnfEvent::HealCompleted {
                operation_id,
                added: added.clone(),
                removed: vec![planned_instance_id(CREATE_OP, "VDU1", 1)],
            }]);
    }

    #[test]
    fn a_second_report_of_the_same_failure_changes_nothing() {
        let f = failure("f1", 0, PolicyAction::Respawn);
        let mut events = monitored_active();
        events.push(heal_started(f.clone()));
        // The same report again, and another monitor's report of the instance being replaced.
        Given::with(())
            .given(events.clone())
            .when(handle(f))
            .then_expect_events(vec![]);
        Given::with(())
            .given(events)
            .when(handle(failure(
                "f2-other-monitor",
                0,
                PolicyAction::Respawn,
            )))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_report_under_another_action_id_is_stale() {
        let mut f = failure("f1", 0, PolicyAction::Respawn);
        f.target.action_id = "old".into();
        let result = Given::with(())
            .given(monitored_active())
            .when(handle(f))
            .inspect_result();
        assert!(
            matches!(result, Err(VnfError::StaleFailure { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_report_about_a_replaced_instance_is_stale() {
        let f = failure("f1", 0, PolicyAction::VduAutoheal);
        let started = heal_started(f);
        let VnfEvent::HealStarted {
            add, operation_id, ..
        } = started.clone()
        else {
            unreachable!()
        };
        let mut events = monitored_active();
        events.push(started);
        events.push(VnfEvent::HealCompleted {
            operation_id,
            added: running(&add, 40),
            removed: vec![planned_instance_id(CREATE_OP, "VDU1", 0)],
        });
        let result = Given::with(())
            .given(events)
            .when(handle(failure("f9", 0, PolicyAction::VduAutoheal)))
            .inspect_result();
        assert!(
            matches!(result, Err(VnfError::StaleFailure { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_report_while_another_operation_runs_waits() {
        let mut events = monitored_active();
        events.push(VnfEvent::ScaleRequested {
            operation_id: "op-scale".into(),
            policy: "SP1".into(),
            direction: ScaleDirection::Out,
            add: vec![planned("op-scale", "VDU1", 0)],
            remove: vec![],
        });
        Given::with(())
            .given(events)
            .when(handle(failure("f1", 0, PolicyAction::Respawn)))
            .then_expect_error(VnfError::Busy {
                status: VnfStatus::PendingScaleOut,
            });
    }

    #[test]
    fn log_records_once_and_keeps_the_vnf_active() {
        let f = failure("f1", 0, PolicyAction::Log);
        Given::with(())
            .given(monitored_active())
            .when(handle(f.clone()))
            .then_expect_events(vec![VnfEvent::FailureLogged { failure: f.clone() }]);
        let mut events = monitored_active();
        events.push(VnfEvent::FailureLogged { failure: f.clone() });
        assert_eq!(state_after(events.clone()).status, Some(VnfStatus::Active));
        Given::with(())
            .given(events)
            .when(handle(f))
            .then_expect_events(vec![]);
    }

    #[test]
    fn log_and_kill_records_and_requests_the_delete() {
        let f = failure("f1", 0, PolicyAction::LogAndKill);
        Given::with(())
            .given(monitored_active())
            .when(handle(f.clone()))
            .then_expect_events(vec![
                VnfEvent::FailureLogged { failure: f },
                VnfEvent::DeleteRequested {
                    operation_id: "heal-f1".into(),
                },
            ]);
    }

    #[test]
    fn heals_stop_at_the_limit_and_the_vnf_goes_to_error() {
        let mut events = monitored_active();
        for n in 0..3 {
            events.push(VnfEvent::HealStarted {
                operation_id: format!("h{n}"),
                failure: failure(&format!("old{n}"), 0, PolicyAction::VduAutoheal),
                add: vec![],
                remove: vec![],
                at: AT - time::Duration::minutes(n),
            });
            events.push(VnfEvent::HealCompleted {
                operation_id: format!("h{n}"),
                added: vec![],
                removed: vec![],
            });
        }
        let result = Given::with(())
            .given(events.clone())
            .when(handle(failure("f4", 0, PolicyAction::VduAutoheal)))
            .inspect_result()
            .unwrap();
        let [VnfEvent::RespawnLimitReached { reason, .. }] = &result[..] else {
            panic!("{result:?}")
        };
        assert!(reason.contains("limit of 3"), "{reason}");
        events.extend(result);
        let vnf = state_after(events.clone());
        assert_eq!(vnf.status, Some(VnfStatus::Error));
        // No further automatic action.
        Given::with(())
            .given(events)
            .when(handle(failure("f5", 0, PolicyAction::VduAutoheal)))
            .then_expect_error(VnfError::NotHealable {
                status: VnfStatus::Error,
            });
    }

    #[test]
    fn heals_outside_the_window_do_not_count() {
        let mut events = monitored_active();
        for n in 0..3 {
            events.push(VnfEvent::HealStarted {
                operation_id: format!("h{n}"),
                failure: failure(&format!("old{n}"), 0, PolicyAction::VduAutoheal),
                add: vec![],
                remove: vec![],
                at: AT - time::Duration::minutes(30 + n),
            });
            events.push(VnfEvent::HealCompleted {
                operation_id: format!("h{n}"),
                added: vec![],
                removed: vec![],
            });
        }
        let result = Given::with(())
            .given(events)
            .when(handle(failure("f4", 0, PolicyAction::VduAutoheal)))
            .inspect_result()
            .unwrap();
        assert!(
            matches!(&result[..], [VnfEvent::HealStarted { .. }]),
            "{result:?}"
        );
    }

    #[test]
    fn a_dead_vnf_being_respawned_cannot_be_deleted() {
        let mut events = monitored_active();
        events.push(heal_started(failure("f1", 0, PolicyAction::Respawn)));
        Given::with(())
            .given(events)
            .when(VnfCommand::Delete {
                operation_id: "d".into(),
            })
            .then_expect_error(VnfError::InvalidState {
                status: VnfStatus::Dead,
                action: "delete",
            });
    }
}
