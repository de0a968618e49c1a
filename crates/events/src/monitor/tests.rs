//! The target derivation: what is probed follows the log.

use time::macros::datetime;

use super::*;
use crate::fixtures;
use crate::vnf::{Instance, OperationKind, PendingOperation};

fn instance(id: &str, vdu: &str, last_octet: u8) -> Instance {
    Instance {
        instance_id: id.into(),
        vdu: vdu.into(),
        mgmt_ip: Ipv4Addr::new(198, 18, 0, last_octet),
        booted_at: datetime!(2026-11-25 10:00 UTC),
    }
}

/// VDU1 monitored (two instances), VDU2 not.
fn vnf(status: VnfStatus) -> Vnf {
    Vnf {
        details: Some(Box::new(fixtures::details("v1", "d1"))),
        vnfd: Some(std::sync::Arc::new(fixtures::spec(vec![
            fixtures::vdu("VDU1", Some(fixtures::ping(PolicyAction::Respawn))),
            fixtures::vdu("VDU2", None),
        ]))),
        status: Some(status),
        instances: vec![
            instance("a", "VDU1", 1),
            instance("b", "VDU1", 3),
            instance("c", "VDU2", 5),
        ],
        action_id: Some("act-1".into()),
        ..Vnf::default()
    }
}

fn ids(targets: &[Target]) -> Vec<&str> {
    targets.iter().map(|t| t.instance_id.as_str()).collect()
}

#[test]
fn an_active_vnf_is_probed_on_its_monitored_instances() {
    let targets = targets("v1", &vnf(VnfStatus::Active));
    assert_eq!(ids(&targets), ["a", "b"]);
    assert_eq!(targets[0].action_id, "act-1");
    assert_eq!(targets[1].mgmt_ip, Ipv4Addr::new(198, 18, 0, 3));
}

#[test]
fn nothing_is_probed_without_a_monitor_or_after_deletion() {
    let mut detached = vnf(VnfStatus::Active);
    detached.action_id = None;
    assert!(targets("v1", &detached).is_empty());
    let mut deleted = vnf(VnfStatus::Active);
    deleted.deleted = true;
    assert!(targets("v1", &deleted).is_empty());
}

#[test]
fn dead_pending_create_and_error_vnfs_are_not_probed() {
    for status in [
        VnfStatus::Dead,
        VnfStatus::PendingCreate,
        VnfStatus::Error,
        VnfStatus::PendingDelete,
    ] {
        assert!(targets("v1", &vnf(status)).is_empty(), "{status:?}");
    }
}

#[test]
fn instances_being_removed_are_no_longer_probed() {
    let mut scaling_in = vnf(VnfStatus::PendingScaleIn);
    scaling_in.pending = Some(Box::new(PendingOperation {
        operation_id: "op".into(),
        kind: OperationKind::ScaleIn,
        add: vec![],
        remove: vec!["b".into()],
    }));
    assert_eq!(ids(&targets("v1", &scaling_in)), ["a"]);
}

#[test]
fn the_lifecycle_record_of_a_report_has_the_report_shape() {
    let failure = Failure {
        failure_id: "f1".into(),
        monitor: Actor::new(crate::envelope::ActorKind::Monitor, "m1"),
        target: TargetRef {
            vnf_id: "vnf-1".into(),
            vdu: "VDU1".into(),
            instance_id: "i1".into(),
            mgmt_ip: Ipv4Addr::new(198, 18, 0, 1),
            action_id: "act-1".into(),
        },
        action: PolicyAction::Log,
        attempts: 2,
        reason: "no reply".into(),
        detected_at: datetime!(2026-11-25 10:05 UTC),
    };
    let report = serde_json::to_value(&failure).unwrap();
    let record = serde_json::to_value(FailureRecord::from(failure)).unwrap();
    assert_eq!(record, report);
}

fn target_ref(mgmt_ip: Ipv4Addr) -> TargetRef {
    TargetRef {
        vnf_id: "vnf-1".into(),
        vdu: "VDU1".into(),
        instance_id: "i1".into(),
        mgmt_ip,
        action_id: "act-1".into(),
    }
}

#[test]
fn a_refused_target_is_one_message_per_vnf_instance_and_address() {
    let metadata = Ipv4Addr::new(169, 254, 169, 254);
    let id = target_refused_id(&target_ref(metadata));
    assert_eq!(id, target_refused_id(&target_ref(metadata)));
    let other_action = TargetRef {
        action_id: "act-2".into(),
        ..target_ref(metadata)
    };
    assert_eq!(
        id,
        target_refused_id(&other_action),
        "the action id is not part of it"
    );
    assert_ne!(
        id,
        target_refused_id(&target_ref(Ipv4Addr::new(10, 0, 0, 1)))
    );
    let message = MonitorMessage::new(MonitorEvent::TargetRefused {
        monitor: Actor::new(crate::envelope::ActorKind::Monitor, "m1"),
        target: target_ref(metadata),
        allowed: cidr::LOCAL_VIM_RANGE.into(),
        at: datetime!(2026-11-25 10:05 UTC),
    });
    let json = serde_json::to_value(&message).unwrap();
    assert_eq!(json["type"], "TargetRefused");
    assert_eq!(json["mgmt_ip"], "169.254.169.254");
    assert_eq!(json["allowed"], serde_json::json!(["198.18.0.0/15"]));
    assert_eq!(
        serde_json::from_value::<MonitorMessage>(json).unwrap(),
        message
    );
}

#[test]
fn a_suspected_fault_stored_before_starvation_existed_still_decodes() {
    let stored = r#"{"schema_version":1,"type":"SuspectedFault","monitor":{"kind":"monitor","id":"m1"},"at":"2026-11-25T10:05:00Z","failed":2,"targets":3}"#;
    let message: MonitorMessage = serde_json::from_str(stored).unwrap();
    assert!(matches!(
        message.event,
        MonitorEvent::SuspectedFault {
            failed: 2,
            targets: 3,
            ..
        }
    ));
}
