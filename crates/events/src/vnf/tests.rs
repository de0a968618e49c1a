//! Given/when/then for every branch of the VNF aggregate's commands.

use cqrs_es::test::TestFramework;
use time::macros::datetime;

use super::*;
use crate::fixtures;
use crate::spec::PolicyAction;

type Given = TestFramework<Vnf>;

const CREATE_OP: &str = "op-create";

/// VDU1 (monitored or not) scaled by SP1 (1..=3, starting at 2); VDU2 unscaled.
fn vnfd(monitored: bool) -> VnfdSpec {
    let policy = monitored.then(|| fixtures::ping(PolicyAction::Respawn));
    VnfdSpec {
        scaling_policies: vec![fixtures::scaling("SP1", "VDU1", 1, 3, 2)],
        ..fixtures::spec(vec![
            fixtures::vdu("VDU1", policy),
            fixtures::vdu("VDU2", None),
        ])
    }
}

fn details() -> VnfDetails {
    fixtures::details("vnf-1", "vnfd-1")
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

/// When the tests' scales are asked for.
const SCALED_AT: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

fn scale(direction: ScaleDirection) -> VnfCommand {
    VnfCommand::Scale {
        operation_id: "op-scale".into(),
        policy: "SP1".into(),
        direction,
        at: SCALED_AT,
    }
}

/// One more VDU1 instance requested by SP1 under "op-scale".
fn scale_out_requested() -> VnfEvent {
    VnfEvent::ScaleRequested {
        operation_id: "op-scale".into(),
        policy: "SP1".into(),
        direction: ScaleDirection::Out,
        add: vec![planned("op-scale", "VDU1", 0)],
        remove: vec![],
        at: Some(SCALED_AT),
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
    for event in events {
        vnf.apply(event);
    }
    vnf
}

#[test]
fn create_plans_default_instances_and_attaches_the_monitor() {
    Given::with(())
        .given_no_previous_events()
        .when(VnfCommand::Create {
            details: Box::new(details()),
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
            details: Box::new(details()),
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
            details: Box::new(details()),
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
            at: Some(SCALED_AT),
        }]);
}

#[test]
fn scale_out_beyond_max_is_refused_with_the_reason() {
    let mut events = active();
    let add = vec![planned("op-scale", "VDU1", 0)];
    events.push(scale_out_requested());
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
            at: Some(SCALED_AT),
        }]);
    let mut events = active();
    events.push(VnfEvent::ScaleRequested {
        operation_id: "op-scale".into(),
        policy: "SP1".into(),
        direction: ScaleDirection::In,
        add: vec![],
        remove: vec![newest.clone()],
        at: Some(SCALED_AT),
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
            at: SCALED_AT,
        })
        .then_expect_error(VnfError::UnknownScalingPolicy {
            policy: "SP9".into(),
        });
}

#[test]
fn a_policy_scales_again_only_after_its_cooldown() {
    let mut vnfd = vnfd(false);
    vnfd.scaling_policies[0].cooldown_s = 60;
    let mut events = vec![
        VnfEvent::CreateRequested {
            details: details(),
            vnfd,
            operation_id: CREATE_OP.into(),
            add: create_plan(),
        },
        VnfEvent::CreateCompleted {
            operation_id: CREATE_OP.into(),
            instances: running(&create_plan(), 1),
        },
        scale_out_requested(),
    ];
    events.push(VnfEvent::ScaleCompleted {
        operation_id: "op-scale".into(),
        added: running(&[planned("op-scale", "VDU1", 0)], 9),
        removed: vec![],
    });
    let again_at = |seconds: i64| VnfCommand::Scale {
        operation_id: "op-again".into(),
        policy: "SP1".into(),
        direction: ScaleDirection::In,
        at: SCALED_AT + time::Duration::seconds(seconds),
    };
    Given::with(())
        .given(events.clone())
        .when(again_at(30))
        .then_expect_error(VnfError::Cooldown {
            policy: "SP1".into(),
            cooldown_s: 60,
            seconds_left: 30,
        });
    let result = Given::with(())
        .given(events)
        .when(again_at(60))
        .inspect_result();
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn a_scale_recorded_without_its_time_starts_no_cooldown() {
    let old = serde_json::json!({"type": "ScaleRequested", "operation_id": "o", "policy": "SP1",
        "direction": "out", "add": [], "remove": []});
    let event: VnfEvent = serde_json::from_value(old).unwrap();
    let mut vnf = Vnf::default();
    vnf.apply(event);
    assert!(vnf.scaled_at.is_empty());
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
    events.push(scale_out_requested());
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
fn delete_plans_every_running_instance_and_every_orphan() {
    // Given an active VNF whose scale out failed (its planned instance is an orphan),
    let mut events = active();
    events.push(scale_out_requested());
    events.push(VnfEvent::OperationFailed {
        operation_id: "op-scale".into(),
        reason: "VIM down".into(),
    });
    // when the delete is requested,
    events.push(VnfEvent::DeleteRequested {
        operation_id: "op-del".into(),
    });
    // then the pending delete removes the running instances and the orphan, nothing else.
    let pending = state_after(events).pending.unwrap();
    let mut wanted: Vec<String> = create_plan().into_iter().map(|p| p.instance_id).collect();
    wanted.push(planned_instance_id("op-scale", "VDU1", 0));
    assert_eq!(pending.kind, OperationKind::Delete);
    assert_eq!(pending.remove, wanted);
    assert!(pending.add.is_empty());
}

#[test]
fn completion_names_the_command_each_pending_kind_calls_for() {
    let added = running(&[planned("op", "VDU1", 0)], 9);
    let pending = |kind| PendingOperation {
        operation_id: "op".into(),
        kind,
        add: vec![planned("op", "VDU1", 0)],
        remove: vec![],
    };
    let cases = [
        (
            OperationKind::Create,
            VnfCommand::CompleteCreate {
                operation_id: "op".into(),
                instances: added.clone(),
            },
        ),
        (
            OperationKind::ScaleOut,
            VnfCommand::CompleteScale {
                operation_id: "op".into(),
                added: added.clone(),
            },
        ),
        (
            OperationKind::ScaleIn,
            VnfCommand::CompleteScale {
                operation_id: "op".into(),
                added: added.clone(),
            },
        ),
        (
            OperationKind::Delete,
            VnfCommand::CompleteDelete {
                operation_id: "op".into(),
            },
        ),
        (
            OperationKind::Respawn,
            VnfCommand::CompleteHeal {
                operation_id: "op".into(),
                added: added.clone(),
            },
        ),
        (
            OperationKind::VduAutoheal,
            VnfCommand::CompleteHeal {
                operation_id: "op".into(),
                added: added.clone(),
            },
        ),
        (
            OperationKind::Update,
            VnfCommand::CompleteUpdate {
                operation_id: "op".into(),
            },
        ),
    ];
    for (kind, wanted) in cases {
        assert_eq!(
            pending(kind).completion(Ok(added.clone())),
            wanted,
            "{kind:?}"
        );
        assert_eq!(
            pending(kind).completion(Err("VIM down".into())),
            fail("op"),
            "{kind:?}"
        );
    }
}

#[test]
fn the_completion_of_a_pending_delete_deletes_the_vnf() {
    // Given a requested delete, when the conductor records the completion the pending
    // operation names, then the VNF is deleted.
    let mut events = active();
    events.push(VnfEvent::DeleteRequested {
        operation_id: "op-del".into(),
    });
    let pending = state_after(events.clone()).pending.unwrap();
    Given::with(())
        .given(events)
        .when(pending.completion(Ok(Vec::new())))
        .then_expect_events(vec![VnfEvent::Deleted {
            operation_id: "op-del".into(),
        }]);
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

    const ACTION: &str = "act-1";

    /// An active VNF whose VDU1 is monitored with `action` as its failure action.
    fn monitored_active(action: PolicyAction) -> Vec<VnfEvent> {
        let mut vnfd = vnfd(true);
        if let Some(policy) = &mut vnfd.vdus[0].monitoring_policy {
            policy.failure_action = action;
        }
        vec![
            VnfEvent::CreateRequested {
                details: details(),
                vnfd,
                operation_id: CREATE_OP.into(),
                add: create_plan(),
            },
            VnfEvent::MonitorAttached {
                action_id: ACTION.into(),
            },
            VnfEvent::CreateCompleted {
                operation_id: CREATE_OP.into(),
                instances: running(&create_plan(), 1),
            },
        ]
    }

    fn failure(id: &str, instance_index: usize, action: PolicyAction) -> FailureRecord {
        let instance = &running(&create_plan(), 1)[instance_index];
        FailureRecord {
            failure_id: id.into(),
            monitor: Actor::new(ActorKind::Monitor, "m1"),
            target: FailedInstance {
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

    fn handle(failure: FailureRecord) -> VnfCommand {
        VnfCommand::HandleFailure {
            operation_id: format!("heal-{}", failure.failure_id),
            failure,
            at: AT,
            limit: RespawnLimit::default(),
        }
    }

    fn heal_started(failure: FailureRecord) -> VnfEvent {
        let op = format!("heal-{}", failure.failure_id);
        let events = Given::with(())
            .given(monitored_active(failure.action))
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
        let mut events = monitored_active(PolicyAction::Respawn);
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
        let mut events = monitored_active(PolicyAction::VduAutoheal);
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
        let mut events = monitored_active(PolicyAction::VduAutoheal);
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
        let mut events = monitored_active(PolicyAction::Respawn);
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
            .given(monitored_active(PolicyAction::Respawn))
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
        let mut events = monitored_active(PolicyAction::VduAutoheal);
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
        let mut events = monitored_active(PolicyAction::Respawn);
        events.push(scale_out_requested());
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
            .given(monitored_active(PolicyAction::Log))
            .when(handle(f.clone()))
            .then_expect_events(vec![VnfEvent::FailureLogged { failure: f.clone() }]);
        let mut events = monitored_active(PolicyAction::Log);
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
            .given(monitored_active(PolicyAction::LogAndKill))
            .when(handle(f.clone()))
            .then_expect_events(vec![
                VnfEvent::FailureLogged { failure: f },
                VnfEvent::DeleteRequested {
                    operation_id: "heal-f1".into(),
                },
            ]);
    }

    #[test]
    fn a_report_naming_another_action_than_the_policy_is_refused() {
        // Given VDU1's policy is `log`, when a report names `log_and_kill`, then nothing is
        // recorded and the report is refused (the conductor answers `bad_action`).
        Given::with(())
            .given(monitored_active(PolicyAction::Log))
            .when(handle(failure("f1", 0, PolicyAction::LogAndKill)))
            .then_expect_error(VnfError::NotThePolicy {
                vdu: "VDU1".into(),
                reported: PolicyAction::LogAndKill,
                policy: Some(PolicyAction::Log),
            });
    }

    #[test]
    fn a_report_about_a_vdu_without_monitoring_policy_is_refused() {
        // Instance 2 is VDU2's, which has no monitoring policy.
        let mut f = failure("f1", 2, PolicyAction::Respawn);
        f.target.vdu = "VDU1".into(); // The VNF's own record of the instance decides.
        Given::with(())
            .given(monitored_active(PolicyAction::Respawn))
            .when(handle(f))
            .then_expect_error(VnfError::NotThePolicy {
                vdu: "VDU2".into(),
                reported: PolicyAction::Respawn,
                policy: None,
            });
    }

    #[test]
    fn failure_events_stored_before_the_record_type_was_split_still_decode() {
        // Exactly what `FailureLogged` looked like when it embedded the monitor's report.
        let stored = serde_json::json!({
            "type": "FailureLogged",
            "failure": {
                "failure_id": "f1",
                "monitor": { "kind": "monitor", "id": "m1" },
                "vnf_id": "vnf-1",
                "vdu": "VDU1",
                "instance_id": planned_instance_id(CREATE_OP, "VDU1", 0),
                "mgmt_ip": "198.18.0.1",
                "action_id": ACTION,
                "action": "log",
                "attempts": 1,
                "reason": "no reply",
                "detected_at": "2026-11-25T10:05:00Z"
            }
        });
        let event: VnfEvent = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(
            event,
            VnfEvent::FailureLogged {
                failure: failure("f1", 0, PolicyAction::Log)
            }
        );
        assert_eq!(serde_json::to_value(&event).unwrap(), stored);
    }

    #[test]
    fn heals_stop_at_the_limit_and_the_vnf_goes_to_error() {
        let mut events = monitored_active(PolicyAction::VduAutoheal);
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
        let mut events = monitored_active(PolicyAction::VduAutoheal);
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
        let mut events = monitored_active(PolicyAction::Respawn);
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

mod update {
    use super::*;

    fn update(op: &str) -> VnfCommand {
        VnfCommand::Update {
            operation_id: op.into(),
            config: serde_json::json!({"vdus": {"VDU1": {"config": {"mode": "fast"}}}}),
        }
    }

    fn update_requested(op: &str) -> VnfEvent {
        VnfEvent::UpdateRequested {
            operation_id: op.into(),
            config: serde_json::json!({"vdus": {"VDU1": {"config": {"mode": "fast"}}}}),
        }
    }

    #[test]
    fn an_active_vnf_records_its_new_config_and_waits_for_the_vim() {
        Given::with(())
            .given(active())
            .when(update("op-up"))
            .then_expect_events(vec![update_requested("op-up")]);
        let mut events = active();
        events.push(update_requested("op-up"));
        let vnf = state_after(events);
        assert_eq!(vnf.status, Some(VnfStatus::PendingUpdate));
        assert_eq!(
            vnf.details.unwrap().attributes["config"]["vdus"]["VDU1"]["config"]["mode"],
            "fast"
        );
        assert_eq!(vnf.pending.unwrap().kind, OperationKind::Update);
    }

    #[test]
    fn a_vnf_that_is_not_active_refuses_an_update() {
        let mut pending_update = active();
        pending_update.push(update_requested("op-up"));
        for given in [vec![create_requested(false)], pending_update] {
            let status = state_after(given.clone()).status.unwrap();
            Given::with(())
                .given(given)
                .when(update("op-2"))
                .then_expect_error(VnfError::InvalidState {
                    status,
                    action: "update",
                });
        }
    }

    #[test]
    fn the_vims_completion_makes_the_vnf_active_again_once() {
        let mut events = active();
        events.push(update_requested("op-up"));
        Given::with(())
            .given(events.clone())
            .when(VnfCommand::CompleteUpdate {
                operation_id: "op-up".into(),
            })
            .then_expect_events(vec![VnfEvent::UpdateCompleted {
                operation_id: "op-up".into(),
            }]);
        events.push(VnfEvent::UpdateCompleted {
            operation_id: "op-up".into(),
        });
        assert_eq!(state_after(events.clone()).status, Some(VnfStatus::Active));
        // A redelivered completion is stale.
        Given::with(())
            .given(events)
            .when(VnfCommand::CompleteUpdate {
                operation_id: "op-up".into(),
            })
            .then_expect_error(VnfError::StaleOperation {
                operation_id: "op-up".into(),
            });
    }
}

mod alarms {
    use super::*;
    use crate::envelope::{Actor, ActorKind};
    use crate::spec::AlarmAction;

    const AT: OffsetDateTime = datetime!(2026-11-25 10:05 UTC);
    const COOLDOWN_S: u64 = 60;

    /// `vnfd(false)` with SP1 cooling down for a minute, and triggers: `cpu_high` scales SP1
    /// out, `cpu_low` in; `mem_high` respawns VDU2 (or logs); `broken` logs and kills.
    fn vnfd_with_triggers() -> VnfdSpec {
        let mut vnfd = vnfd(false);
        vnfd.scaling_policies[0].cooldown_s = COOLDOWN_S;
        vnfd.alarm_triggers = vec![
            fixtures::scaling_trigger("cpu_high", "SP1", ScaleDirection::Out),
            fixtures::scaling_trigger("cpu_low", "SP1", ScaleDirection::In),
            crate::spec::AlarmTrigger {
                vdus: vec!["VDU2".into()],
                ..fixtures::trigger("mem_high", vec![AlarmAction::Respawn, AlarmAction::Log])
            },
            fixtures::trigger("broken", vec![AlarmAction::LogAndKill]),
        ];
        vnfd
    }

    fn active() -> Vec<VnfEvent> {
        vec![
            VnfEvent::CreateRequested {
                details: details(),
                vnfd: vnfd_with_triggers(),
                operation_id: CREATE_OP.into(),
                add: create_plan(),
            },
            VnfEvent::CreateCompleted {
                operation_id: CREATE_OP.into(),
                instances: running(&create_plan(), 1),
            },
        ]
    }

    fn record(occurrence: &str, trigger: &str, action: AlarmAction) -> AlarmRecord {
        AlarmRecord {
            occurrence_id: occurrence.into(),
            trigger: trigger.into(),
            action,
            source: AlarmSource::Tacker,
            received_by: Actor::new(ActorKind::Alarm, trigger).in_project(fixtures::TENANT),
            instance_id: None,
        }
    }

    fn scale_action(direction: ScaleDirection) -> AlarmAction {
        AlarmAction::Scale {
            policy: "SP1".into(),
            direction,
        }
    }

    fn alarm_at(alarm: AlarmRecord, at: OffsetDateTime) -> VnfCommand {
        VnfCommand::Alarm {
            operation_id: format!("op-{}", alarm.occurrence_id),
            alarm,
            at,
            limit: RespawnLimit::default(),
        }
    }

    fn alarm(alarm: AlarmRecord) -> VnfCommand {
        alarm_at(alarm, AT)
    }

    #[test]
    fn a_scaling_alarm_claims_its_occurrence_and_requests_the_scale_together() {
        let high = record("tacker:a1", "cpu_high", scale_action(ScaleDirection::Out));
        Given::with(())
            .given(active())
            .when(alarm(high.clone()))
            .then_expect_events(vec![
                VnfEvent::AlarmClaimed {
                    alarm: high.clone(),
                    at: AT,
                },
                VnfEvent::ScaleRequested {
                    operation_id: "op-tacker:a1".into(),
                    policy: "SP1".into(),
                    direction: ScaleDirection::Out,
                    add: vec![planned("op-tacker:a1", "VDU1", 0)],
                    remove: vec![],
                    at: Some(AT),
                },
            ]);
    }

    #[test]
    fn an_occurrence_already_claimed_changes_nothing_even_after_its_operation() {
        let high = record("tacker:a1", "cpu_high", scale_action(ScaleDirection::Out));
        let mut events = active();
        events.extend(
            Given::with(())
                .given(active())
                .when(alarm(high.clone()))
                .inspect_result()
                .unwrap(),
        );
        Given::with(())
            .given(events.clone())
            .when(alarm(high.clone()))
            .then_expect_events(vec![]);
        events.push(VnfEvent::ScaleCompleted {
            operation_id: "op-tacker:a1".into(),
            added: running(&[planned("op-tacker:a1", "VDU1", 0)], 9),
            removed: vec![],
        });
        // Long after the cooldown: still the same occurrence.
        Given::with(())
            .given(events)
            .when(alarm_at(high, AT + time::Duration::hours(1)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_ok_frees_the_occurrence_so_that_its_next_alarm_acts() {
        let mem = record("tacker:a1", "mem_high", AlarmAction::Log);
        let mut events = active();
        events.push(VnfEvent::AlarmLogged {
            alarm: mem.clone(),
            at: AT,
        });
        Given::with(())
            .given(events.clone())
            .when(alarm(mem.clone()))
            .then_expect_events(vec![]);
        let clear = VnfCommand::ClearAlarm {
            occurrence_id: "tacker:a1".into(),
        };
        Given::with(())
            .given(events.clone())
            .when(clear.clone())
            .then_expect_events(vec![VnfEvent::AlarmCleared {
                occurrence_id: "tacker:a1".into(),
            }]);
        // An ok for an alarm that never acted records nothing.
        Given::with(())
            .given(active())
            .when(clear)
            .then_expect_events(vec![]);
        events.push(VnfEvent::AlarmCleared {
            occurrence_id: "tacker:a1".into(),
        });
        let later = AT + time::Duration::minutes(1);
        Given::with(())
            .given(events)
            .when(alarm_at(mem.clone(), later))
            .then_expect_events(vec![VnfEvent::AlarmLogged {
                alarm: mem,
                at: later,
            }]);
    }

    #[test]
    fn an_unknown_trigger_or_an_action_not_the_triggers_is_refused() {
        Given::with(())
            .given(active())
            .when(alarm(record("t:1", "disk_full", AlarmAction::Log)))
            .then_expect_error(VnfError::UnknownTrigger {
                trigger: "disk_full".into(),
            });
        Given::with(())
            .given(active())
            .when(alarm(record(
                "t:1",
                "cpu_high",
                scale_action(ScaleDirection::In),
            )))
            .then_expect_error(VnfError::NotTheTriggersAction {
                trigger: "cpu_high".into(),
                action: "SP1-in".into(),
                actions: vec!["SP1-out".into()],
            });
    }

    #[test]
    fn a_scale_in_alarm_inside_the_cooldown_is_refused_with_the_seconds_left() {
        let mut events = active();
        events.push(scale_out_requested());
        events.push(VnfEvent::ScaleCompleted {
            operation_id: "op-scale".into(),
            added: running(&[planned("op-scale", "VDU1", 0)], 9),
            removed: vec![],
        });
        let at = SCALED_AT + time::Duration::seconds(20);
        Given::with(())
            .given(events)
            .when(alarm_at(
                record("am:f:1", "cpu_low", scale_action(ScaleDirection::In)),
                at,
            ))
            .then_expect_error(VnfError::Cooldown {
                policy: "SP1".into(),
                cooldown_s: COOLDOWN_S,
                seconds_left: 40,
            });
    }

    #[test]
    fn a_scale_out_alarm_at_max_instances_is_refused_as_the_apis_scale() {
        let mut events = active();
        events.push(scale_out_requested());
        events.push(VnfEvent::ScaleCompleted {
            operation_id: "op-scale".into(),
            added: running(&[planned("op-scale", "VDU1", 0)], 9),
            removed: vec![],
        });
        let result = Given::with(())
            .given(events)
            .when(alarm_at(
                record("am:f:1", "cpu_high", scale_action(ScaleDirection::Out)),
                SCALED_AT + time::Duration::hours(1),
            ))
            .inspect_result();
        assert!(
            matches!(result, Err(VnfError::ScaleLimit { limit: 3, .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_respawn_alarm_replaces_its_triggers_vdus_and_a_heal_completion_ends_it() {
        let mem = record("am:f:1", "mem_high", AlarmAction::Respawn);
        let op = "op-am:f:1";
        let vdu2 = running(&create_plan(), 1)[2].instance_id.clone();
        let started = VnfEvent::AlarmRespawnStarted {
            operation_id: op.into(),
            occurrence_id: "am:f:1".into(),
            add: vec![planned(op, "VDU2", 0)],
            remove: vec![vdu2.clone()],
            at: AT,
        };
        Given::with(())
            .given(active())
            .when(alarm(mem.clone()))
            .then_expect_events(vec![
                VnfEvent::AlarmClaimed {
                    alarm: mem.clone(),
                    at: AT,
                },
                started.clone(),
            ]);
        let mut events = active();
        events.push(VnfEvent::AlarmClaimed { alarm: mem, at: AT });
        events.push(started);
        let vnf = state_after(events.clone());
        assert_eq!(vnf.status, Some(VnfStatus::Dead));
        assert_eq!(vnf.heals_at, [AT]);
        let pending = vnf.pending.clone().expect("a respawn pending");
        assert_eq!(pending.kind, OperationKind::Respawn);
        // The conductor's completion is a failure's heal's.
        let added = running(&pending.add, 20);
        let completion = pending.completion(Ok(added.clone()));
        Given::with(())
            .given(events)
            .when(completion)
            .then_expect_events(vec![VnfEvent::HealCompleted {
                operation_id: op.into(),
                added,
                removed: vec![vdu2],
            }]);
    }

    #[test]
    fn a_respawn_alarm_naming_an_instance_replaces_only_it() {
        let vdu1 = running(&create_plan(), 1)[1].instance_id.clone();
        let named = AlarmRecord {
            instance_id: Some(vdu1.clone()),
            ..record("am:f:1", "mem_high", AlarmAction::Respawn)
        };
        let result = Given::with(())
            .given(active())
            .when(alarm(named.clone()))
            .inspect_result()
            .unwrap();
        let [_, VnfEvent::AlarmRespawnStarted { add, remove, .. }] = &result[..] else {
            panic!("{result:?}")
        };
        assert_eq!(remove, &[vdu1]);
        assert_eq!(add, &[planned("op-am:f:1", "VDU1", 0)]);
        let gone = AlarmRecord {
            instance_id: Some("gone".into()),
            ..named
        };
        let result = Given::with(())
            .given(active())
            .when(alarm(gone))
            .inspect_result();
        assert!(
            matches!(result, Err(VnfError::StaleAlarm { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn respawn_alarms_count_toward_the_heal_limit() {
        let mut events = active();
        for n in 0..3 {
            let op = format!("h{n}");
            events.push(VnfEvent::AlarmClaimed {
                alarm: record(&format!("am:{n}"), "mem_high", AlarmAction::Respawn),
                at: AT,
            });
            events.push(VnfEvent::AlarmRespawnStarted {
                operation_id: op.clone(),
                occurrence_id: format!("am:{n}"),
                add: vec![],
                remove: vec![],
                at: AT - time::Duration::minutes(n),
            });
            events.push(VnfEvent::HealCompleted {
                operation_id: op,
                added: vec![],
                removed: vec![],
            });
        }
        let fourth = record("am:4", "mem_high", AlarmAction::Respawn);
        let result = Given::with(())
            .given(events.clone())
            .when(alarm(fourth.clone()))
            .inspect_result()
            .unwrap();
        let [
            VnfEvent::RespawnLimitReached {
                failure: None,
                alarm: Some(limited),
                reason,
            },
        ] = &result[..]
        else {
            panic!("{result:?}")
        };
        assert_eq!(limited, &fourth);
        assert!(reason.contains("limit of 3"), "{reason}");
        events.extend(result);
        let vnf = state_after(events.clone());
        assert_eq!(vnf.status, Some(VnfStatus::Error));
        // The occurrence is handled: its repeats change nothing.
        Given::with(())
            .given(events)
            .when(alarm(fourth))
            .then_expect_events(vec![]);
    }

    #[test]
    fn log_records_the_alarm_and_log_and_kill_also_requests_the_delete() {
        let logged = record("t:1", "mem_high", AlarmAction::Log);
        Given::with(())
            .given(active())
            .when(alarm(logged.clone()))
            .then_expect_events(vec![VnfEvent::AlarmLogged {
                alarm: logged,
                at: AT,
            }]);
        let kill = record("t:2", "broken", AlarmAction::LogAndKill);
        Given::with(())
            .given(active())
            .when(alarm(kill.clone()))
            .then_expect_events(vec![
                VnfEvent::AlarmLogged {
                    alarm: kill,
                    at: AT,
                },
                VnfEvent::DeleteRequested {
                    operation_id: "op-t:2".into(),
                },
            ]);
    }

    #[test]
    fn the_claimed_occurrences_are_bounded() {
        let mut events = active();
        for n in 0..=HANDLED_ALARMS_MAX {
            events.push(VnfEvent::AlarmLogged {
                alarm: record(&format!("t:{n}"), "mem_high", AlarmAction::Log),
                at: AT,
            });
        }
        let vnf = state_after(events);
        assert_eq!(vnf.handled_alarms.len(), HANDLED_ALARMS_MAX);
        assert_eq!(vnf.handled_alarms.first().map(String::as_str), Some("t:1"));
    }

    #[test]
    fn a_limit_reached_stored_before_alarms_still_decodes() {
        let failure = FailureRecord {
            failure_id: "f1".into(),
            monitor: Actor::new(ActorKind::Monitor, "m1"),
            target: FailedInstance {
                vnf_id: "vnf-1".into(),
                vdu: "VDU1".into(),
                instance_id: "i1".into(),
                mgmt_ip: Ipv4Addr::new(198, 18, 0, 1),
                action_id: "a1".into(),
            },
            action: PolicyAction::Respawn,
            attempts: 1,
            reason: "no reply".into(),
            detected_at: AT,
        };
        let stored = serde_json::json!({
            "type": "RespawnLimitReached",
            "failure": serde_json::to_value(&failure).unwrap(),
            "reason": "too many",
        });
        let event: VnfEvent = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(
            event,
            VnfEvent::RespawnLimitReached {
                failure: Some(failure),
                alarm: None,
                reason: "too many".into(),
            }
        );
        assert_eq!(serde_json::to_value(&event).unwrap(), stored);
    }
}

mod vim_drift {
    use super::*;
    use crate::envelope::{Actor, ActorKind};

    /// The drift of the running instance at `index` (of [`active`]'s plan) into `vim_state`.
    fn drift(index: usize, vim_state: &str) -> VimDrift {
        let instance = &running(&create_plan(), 1)[index];
        VimDrift {
            drift_id: drift_id(&instance.instance_id, vim_state),
            vdu: instance.vdu.clone(),
            instance_id: instance.instance_id.clone(),
            vim_state: vim_state.into(),
            reason: format!("the VIM reports server s-{index} {vim_state}"),
            found_by: Actor::new(ActorKind::Conductor, "c1"),
            found_at: datetime!(2026-11-25 10:05 UTC),
        }
    }

    fn record(drift: VimDrift) -> VnfCommand {
        VnfCommand::RecordVimDrift { drift }
    }

    #[test]
    fn a_drift_id_is_the_same_for_the_same_instance_and_state_only() {
        assert_eq!(drift_id("i-1", "SHUTOFF"), drift_id("i-1", "SHUTOFF"));
        assert_ne!(drift_id("i-1", "SHUTOFF"), drift_id("i-1", "gone"));
        assert_ne!(drift_id("i-1", "gone"), drift_id("i-2", "gone"));
    }

    #[test]
    fn a_drift_of_a_vdu_without_a_policy_makes_the_vnf_error_with_the_reason() {
        let found = drift(2, "SHUTOFF");
        Given::with(())
            .given(active())
            .when(record(found.clone()))
            .then_expect_events(vec![VnfEvent::VimDriftFound {
                drift: found.clone(),
            }]);
        let mut events = active();
        events.push(VnfEvent::VimDriftFound { drift: found });
        let vnf = state_after(events);
        assert_eq!(vnf.status, Some(VnfStatus::Error));
        assert_eq!(
            vnf.error_reason.as_deref(),
            Some("the VIM reports server s-2 SHUTOFF")
        );
        assert_eq!(vnf.failure_count, 1);
        // Its instances stay recorded: a person decides (a delete removes them).
        assert_eq!(vnf.instances.len(), 3);
    }

    #[test]
    fn the_same_drift_again_records_nothing() {
        let found = drift(0, "gone");
        let mut events = active();
        events.push(VnfEvent::VimDriftFound {
            drift: found.clone(),
        });
        Given::with(())
            .given(events)
            .when(record(found))
            .then_expect_events(vec![]);
    }

    #[test]
    fn another_state_of_a_vnf_already_in_error_is_not_healable() {
        let mut events = active();
        events.push(VnfEvent::VimDriftFound {
            drift: drift(0, "SHUTOFF"),
        });
        Given::with(())
            .given(events)
            .when(record(drift(0, "gone")))
            .then_expect_error(VnfError::NotHealable {
                status: VnfStatus::Error,
            });
    }

    #[test]
    fn a_drift_of_an_instance_being_replaced_is_no_drift() {
        let mut events = active();
        events.push(VnfEvent::ScaleRequested {
            operation_id: "op-scale".into(),
            policy: "SP1".into(),
            direction: ScaleDirection::In,
            add: vec![],
            remove: vec![planned(CREATE_OP, "VDU1", 1).instance_id],
            at: Some(SCALED_AT),
        });
        Given::with(())
            .given(events.clone())
            .when(record(drift(1, "gone")))
            .then_expect_events(vec![]);
        // Another instance while the scale runs: the drift waits for it.
        Given::with(())
            .given(events)
            .when(record(drift(2, "gone")))
            .then_expect_error(VnfError::Busy {
                status: VnfStatus::PendingScaleIn,
            });
    }

    #[test]
    fn a_drift_of_an_instance_the_vnf_no_longer_runs_is_stale() {
        let mut gone = drift(0, "gone");
        gone.instance_id = "i-replaced".into();
        gone.drift_id = drift_id("i-replaced", "gone");
        Given::with(())
            .given(active())
            .when(record(gone))
            .then_expect_error(VnfError::StaleFailure {
                reason: "instance i-replaced is no longer part of the VNF".into(),
            });
    }

    #[test]
    fn a_drift_of_a_monitored_vdu_is_left_to_its_policy() {
        let events = vec![
            create_requested(true),
            VnfEvent::CreateCompleted {
                operation_id: CREATE_OP.into(),
                instances: running(&create_plan(), 1),
            },
        ];
        Given::with(())
            .given(events)
            .when(record(drift(0, "ERROR")))
            .then_expect_error(VnfError::DriftHasPolicy {
                vdu: "VDU1".into(),
                policy: PolicyAction::Respawn,
            });
    }

    #[test]
    fn a_drift_of_a_deleted_vnf_is_not_found() {
        Given::with(())
            .given(vec![])
            .when(record(drift(0, "gone")))
            .then_expect_error(VnfError::NotFound);
    }
}

#[test]
fn user_data_is_sealed_whole_with_the_vnf_key_and_old_details_decode_without_it() {
    use crate::secrets::{self, DataKey};
    let key = DataKey::generate().unwrap();
    let clear = serde_json::json!({"VDU1": "#!/bin/sh\necho marker-77\n"});
    let sealed = VnfDetails {
        user_data: Some(Box::new(
            secrets::seal(&clear, &key, USER_DATA_PATH).unwrap(),
        )),
        ..details()
    };
    let encoded = serde_json::to_string(&sealed).unwrap();
    assert!(!encoded.contains("marker-77"), "{encoded}");
    let decoded: VnfDetails = serde_json::from_str(&encoded).unwrap();
    let user_data = decoded.user_data.expect("user_data");
    assert_eq!(
        secrets::open_secrets(&user_data, &key, USER_DATA_PATH).unwrap(),
        clear
    );
    assert!(secrets::open_secrets(&user_data, &key, ATTRIBUTES_PATH).is_err());

    // Details recorded before user_data was kept have none, and none is written.
    let old = serde_json::to_value(details()).unwrap();
    assert!(old.get("user_data").is_none());
    let decoded: VnfDetails = serde_json::from_value(old.clone()).unwrap();
    assert!(decoded.user_data.is_none());
    // Nor do details that say null.
    let mut null = old;
    null["user_data"] = serde_json::Value::Null;
    let decoded: VnfDetails = serde_json::from_value(null).unwrap();
    assert!(decoded.user_data.is_none());
}
