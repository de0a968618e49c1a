//! Prometheus' side of alarm-driven policies: where to scrape.
//!
//! `GET /v1.0/prometheus/targets` is Prometheus' HTTP service discovery (`http_sd_configs`):
//! one target group per running VDU instance whose metrics an alarm trigger of its VNF's VNFD
//! watches, at `<management IP>:<VDU_METRICS_PORT>`, labelled with what the generated rules
//! and the Alertmanager receiver need (`vnf_id`, `vnfd_id`, `vdu`, `instance_id`, `project`).
//! It answers from the gateway's copy of the VNF table, filtered by the caller's project like
//! every list, and never names a secret. [`target_groups`] is the pure part.

use axum::Json;
use axum::extract::State;
use events::spec::VDU_METRICS_PORT;
use events::vnf::Vnf;
use projector::table::Row;
use serde::Serialize;

use crate::{ApiError, Caller, Gateway, visible};

/// One target group of Prometheus' HTTP service discovery format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TargetGroup {
    pub(crate) targets: Vec<String>,
    pub(crate) labels: TargetLabels,
}

/// The labels Prometheus attaches to every sample scraped from the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TargetLabels {
    pub(crate) vnf_id: String,
    pub(crate) vnfd_id: String,
    pub(crate) vdu: String,
    pub(crate) instance_id: String,
    pub(crate) project: String,
}

/// `GET /v1.0/prometheus/targets`.
pub(crate) async fn targets(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
) -> Result<Json<Vec<TargetGroup>>, ApiError> {
    let groups = gateway
        .vnf_mirror()
        .collect(|row| visible(&caller, row).then(|| target_groups(row)))
        .into_iter()
        .flatten()
        .collect();
    Ok(Json(groups))
}

/// The target groups of one VNF: each running instance of a VDU whose metrics an alarm
/// trigger watches; none for a VNF that is gone or has no such VDU.
pub(crate) fn target_groups(row: &Row<Vnf>) -> Vec<TargetGroup> {
    let vnf = &row.state;
    let (Some(details), Some(spec)) = (vnf.details.as_ref(), vnf.vnfd.as_ref()) else {
        return Vec::new();
    };
    if !vnf.exists() {
        return Vec::new();
    }
    vnf.instances
        .iter()
        .filter(|instance| spec.metrics_watched(&instance.vdu))
        .map(|instance| TargetGroup {
            targets: vec![format!("{}:{VDU_METRICS_PORT}", instance.mgmt_ip)],
            labels: TargetLabels {
                vnf_id: details.vnf_id.clone(),
                vnfd_id: details.vnfd_id.clone(),
                vdu: instance.vdu.clone(),
                instance_id: instance.instance_id.clone(),
                project: details.tenant_id.clone(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use events::fixtures;
    use events::spec::{Aggregation, AlarmAction, AlarmTrigger, Comparison};
    use events::vnf::{Instance, VnfStatus};
    use time::macros::datetime;

    use super::*;

    fn instance(vdu: &str, id: &str, last_octet: u8) -> Instance {
        Instance {
            instance_id: id.to_owned(),
            vdu: vdu.to_owned(),
            mgmt_ip: Ipv4Addr::new(198, 18, 0, last_octet),
            booted_at: datetime!(2026-12-01 10:00 UTC),
        }
    }

    /// A VNF with VDU1 (two instances) and VDU2 (one), whose trigger watches `watched`.
    fn row(watched: &[&str]) -> Row<Vnf> {
        let mut spec = fixtures::spec(vec![
            fixtures::vdu("VDU1", None),
            fixtures::vdu("VDU2", None),
        ]);
        spec.alarm_triggers = vec![AlarmTrigger {
            policy: "AP1".into(),
            name: "cpu_high".into(),
            metric: "cpu_util".into(),
            comparison: Comparison::Gt,
            threshold: 80.0,
            evaluations: 1,
            period_s: 60,
            aggregation: Aggregation::Mean,
            actions: vec![AlarmAction::Respawn],
            vdus: watched.iter().map(|v| (*v).to_owned()).collect(),
        }];
        let vnf = Vnf {
            details: Some(fixtures::details("vnf-1", "vnfd-1")),
            vnfd: Some(spec),
            status: Some(VnfStatus::Active),
            instances: vec![
                instance("VDU1", "i-1", 3),
                instance("VDU2", "i-2", 5),
                instance("VDU1", "i-3", 7),
            ],
            ..Vnf::default()
        };
        Row {
            state: vnf,
            created_at: datetime!(2026-12-01 10:00 UTC),
            updated_at: datetime!(2026-12-01 10:00 UTC),
            last_sequence: 1,
        }
    }

    #[test]
    fn each_watched_instance_is_one_target_group_with_its_labels() {
        let groups = target_groups(&row(&["VDU1"]));
        assert_eq!(
            groups,
            ["i-1", "i-3"]
                .iter()
                .zip([3, 7])
                .map(|(id, octet)| TargetGroup {
                    targets: vec![format!("198.18.0.{octet}:9100")],
                    labels: TargetLabels {
                        vnf_id: "vnf-1".into(),
                        vnfd_id: "vnfd-1".into(),
                        vdu: "VDU1".into(),
                        instance_id: (*id).to_owned(),
                        project: fixtures::TENANT.into(),
                    },
                })
                .collect::<Vec<_>>()
        );
        // A trigger without targets watches every VDU.
        assert_eq!(target_groups(&row(&[])).len(), 3);
    }

    #[test]
    fn a_vnf_without_triggers_or_gone_has_no_target() {
        let mut unwatched = row(&[]);
        if let Some(spec) = unwatched.state.vnfd.as_mut() {
            spec.alarm_triggers.clear();
        }
        assert!(target_groups(&unwatched).is_empty());
        let mut deleted = row(&[]);
        deleted.state.deleted = true;
        assert!(target_groups(&deleted).is_empty());
    }
}
