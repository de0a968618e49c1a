//! Prometheus' side of alarm-driven policies: where to scrape, and when to alert.
//!
//! `GET /v1.0/prometheus/targets` is Prometheus' HTTP service discovery (`http_sd_configs`):
//! one target group per running VDU instance whose metrics an alarm trigger of its VNF's VNFD
//! watches, at `<management IP>:<VDU_METRICS_PORT>`, labelled with what the generated rules
//! and the Alertmanager receiver need (`vnf_id`, `vnfd_id`, `vdu`, `instance_id`, `project`).
//! It answers from the gateway's copy of the VNF table, filtered by the caller's project like
//! every list, and never names a secret. [`target_groups`] is the pure part.
//!
//! `GET /v1.0/prometheus/rules` is the rule file the VNFDs' alarm triggers mean (one alerting
//! rule per trigger, [`render_rules`] the pure part), for the operator to put where
//! Prometheus' `rule_files` reads it; the alerts it raises come back through
//! [`crate::alarms`]' Alertmanager receiver.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use events::spec::{Aggregation, AlarmTrigger, VDU_METRICS_PORT};
use events::vnf::Vnf;
use projector::table::Row;
use serde::Serialize;
use serde_json::Value;

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

/// `GET /v1.0/prometheus/rules`: a Prometheus rule file with one alerting rule per trigger of
/// each VNFD that live VNFs the caller sees were made from.
pub(crate) async fn rules(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
) -> Result<(StatusCode, HeaderMap, String), ApiError> {
    let watched = gateway.vnf_mirror().collect(|row| {
        let vnf = &row.state;
        let (spec, details) = (vnf.vnfd.as_ref()?, vnf.details.as_ref()?);
        (vnf.exists() && visible(&caller, row) && !spec.alarm_triggers.is_empty()).then(|| {
            WatchedVnf {
                vnf_id: details.vnf_id.clone(),
                vnfd_id: details.vnfd_id.clone(),
                vnfd_name: gateway
                    .vnfd_mirror()
                    .get(&details.vnfd_id)
                    .and_then(|row| row.state.descriptor.as_ref().map(|d| d.name.clone()))
                    .or_else(|| spec.template_name.clone())
                    .unwrap_or_else(|| details.vnfd_id.clone()),
                triggers: spec.alarm_triggers.clone(),
            }
        })
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/yaml"),
    );
    Ok((StatusCode::OK, headers, render_rules(&rule_groups(watched))))
}

/// A live VNF whose VNFD has alarm triggers, as its log recorded them (thresholds resolved).
#[derive(Debug, Clone)]
pub(crate) struct WatchedVnf {
    pub vnf_id: String,
    pub vnfd_id: String,
    pub vnfd_name: String,
    pub triggers: Vec<AlarmTrigger>,
}

/// The triggers of one VNFD's VNFs, for [`render_rules`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleGroup {
    /// The group's name, unique in the file: `vnfd-<id>`, with `-<n>` for a VNFD's variants.
    pub name: String,
    pub vnfd_id: String,
    pub vnfd_name: String,
    /// The VNFs these rules are for when the VNFD's VNFs do not all share its triggers (their
    /// thresholds came from `get_input`); `None` when one set of rules serves them all.
    pub vnf_ids: Option<Vec<String>>,
    pub triggers: Vec<AlarmTrigger>,
}

/// Groups the VNFs by VNFD, and within a VNFD by their triggers: one rule group per VNFD when
/// its VNFs share their triggers (the common case: one rule serves any number of VNFs), else one
/// per distinct set, each selecting its VNFs by id. Groups in VNFD id order, variants in the
/// order of their first VNF's id.
pub(crate) fn rule_groups(mut vnfs: Vec<WatchedVnf>) -> Vec<RuleGroup> {
    vnfs.sort_by(|a, b| (&a.vnfd_id, &a.vnf_id).cmp(&(&b.vnfd_id, &b.vnf_id)));
    let mut by_vnfd: BTreeMap<String, Vec<RuleGroup>> = BTreeMap::new();
    for vnf in vnfs {
        let variants = by_vnfd.entry(vnf.vnfd_id.clone()).or_default();
        match variants.iter_mut().find(|v| v.triggers == vnf.triggers) {
            Some(variant) => variant
                .vnf_ids
                .get_or_insert_with(Vec::new)
                .push(vnf.vnf_id),
            None => variants.push(RuleGroup {
                name: String::new(),
                vnfd_id: vnf.vnfd_id,
                vnfd_name: vnf.vnfd_name,
                vnf_ids: Some(vec![vnf.vnf_id]),
                triggers: vnf.triggers,
            }),
        }
    }
    by_vnfd
        .into_values()
        .flat_map(|mut variants| {
            let shared = variants.len() == 1;
            for (n, variant) in variants.iter_mut().enumerate() {
                if shared {
                    variant.name = format!("vnfd-{}", variant.vnfd_id);
                    variant.vnf_ids = None;
                } else {
                    variant.name = format!("vnfd-{}-{}", variant.vnfd_id, n + 1);
                }
            }
            variants
        })
        .collect()
}

/// The rule file: a group per [`RuleGroup`], an alerting rule per trigger:
/// `alert: <vnfd name>-<trigger>`, `expr: <agg> by (vnf_id) (<metric>{vnfd_id="<id>"}) <op>
/// <threshold>` (with `vnf_id=~"<id>|..."` beside `vnfd_id` for a VNFD's variant),
/// `for: <evaluations × period>s`, `labels: {trigger: <name>}` (`vnf_id` comes from the `by`).
/// Strings are written as JSON strings, which YAML reads as they are.
pub(crate) fn render_rules(groups: &[RuleGroup]) -> String {
    if groups.is_empty() {
        return "groups: []\n".to_owned();
    }
    let mut yaml = String::from("groups:\n");
    for group in groups {
        let _ = writeln!(yaml, "  - name: {}", quoted(&group.name));
        let _ = writeln!(yaml, "    rules:");
        let mut labels = format!("vnfd_id={}", quoted(&group.vnfd_id));
        if let Some(vnf_ids) = &group.vnf_ids {
            // VNF ids are UUIDs: nothing in them is special to a regular expression.
            let _ = write!(labels, ",vnf_id=~{}", quoted(&vnf_ids.join("|")));
        }
        for trigger in &group.triggers {
            let selector = format!("{}{{{labels}}}", metric_name(&trigger.metric));
            let aggregated = match trigger.aggregation {
                Aggregation::Median => format!("quantile by (vnf_id) (0.5, {selector})"),
                other => format!("{} by (vnf_id) ({selector})", promql_aggregation(other)),
            };
            let expr = format!(
                "{aggregated} {} {}",
                trigger.comparison.operator(),
                trigger.threshold
            );
            let for_s = u64::from(trigger.evaluations) * u64::from(trigger.period_s);
            let _ = writeln!(
                yaml,
                "      - alert: {}",
                quoted(&format!("{}-{}", group.vnfd_name, trigger.name))
            );
            let _ = writeln!(yaml, "        expr: {}", quoted(&expr));
            let _ = writeln!(yaml, "        for: {for_s}s");
            let _ = writeln!(yaml, "        labels:");
            let _ = writeln!(yaml, "          trigger: {}", quoted(&trigger.name));
        }
    }
    yaml
}

fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// PromQL's aggregation operator for a Tacker aggregation method. `last`: each series' value
/// in an instant vector is already its last sample, and a VNF's instances are combined by
/// their mean.
fn promql_aggregation(aggregation: Aggregation) -> &'static str {
    match aggregation {
        Aggregation::Mean | Aggregation::Last => "avg",
        Aggregation::Max => "max",
        Aggregation::Min => "min",
        Aggregation::Sum => "sum",
        Aggregation::Count => "count",
        Aggregation::Std => "stddev",
        Aggregation::Median => "quantile",
    }
}

/// A Prometheus metric name for a Tacker metric: every character outside
/// `[a-zA-Z0-9_:]` becomes `_`, and a leading digit gets a `_` before it (`memory.usage` is
/// `memory_usage`, `5xx-rate` is `_5xx_rate`).
pub(crate) fn metric_name(metric: &str) -> String {
    let mut name: String = metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use events::fixtures;
    use events::spec::{Aggregation, AlarmAction, AlarmTrigger, Comparison, ScaleDirection};
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
            vdus: watched.iter().map(|v| (*v).to_owned()).collect(),
            ..fixtures::trigger("cpu_high", vec![AlarmAction::Respawn])
        }];
        let vnf = Vnf {
            details: Some(Box::new(fixtures::details("vnf-1", "vnfd-1"))),
            vnfd: Some(spec.into()),
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
            std::sync::Arc::make_mut(spec).alarm_triggers.clear();
        }
        assert!(target_groups(&unwatched).is_empty());
        let mut deleted = row(&[]);
        deleted.state.deleted = true;
        assert!(target_groups(&deleted).is_empty());
    }

    #[test]
    fn one_rule_per_trigger_with_its_aggregation_comparison_and_duration() {
        let triggers = vec![
            AlarmTrigger {
                evaluations: 3,
                period_s: 20,
                ..fixtures::scaling_trigger("cpu_high", "SP1", ScaleDirection::Out)
            },
            AlarmTrigger {
                metric: "memory.usage".into(),
                aggregation: Aggregation::Median,
                comparison: Comparison::Le,
                threshold: 10.5,
                ..fixtures::trigger("mem_low", vec![AlarmAction::Log])
            },
        ];
        let groups = [RuleGroup {
            name: "vnfd-d1".into(),
            vnfd_id: "d1".into(),
            vnfd_name: "web".into(),
            vnf_ids: None,
            triggers: triggers.clone(),
        }];
        assert_eq!(
            render_rules(&groups),
            "groups:
  - name: \"vnfd-d1\"
    rules:
      - alert: \"web-cpu_high\"
        expr: \"avg by (vnf_id) (cpu_util{vnfd_id=\\\"d1\\\"}) > 80\"
        for: 60s
        labels:
          trigger: \"cpu_high\"
      - alert: \"web-mem_low\"
        expr: \"quantile by (vnf_id) (0.5, memory_usage{vnfd_id=\\\"d1\\\"}) <= 10.5\"
        for: 60s
        labels:
          trigger: \"mem_low\"
"
        );
        assert_eq!(render_rules(&[]), "groups: []\n");

        let variant = [RuleGroup {
            name: "vnfd-d1-2".into(),
            vnf_ids: Some(vec!["v1".into(), "v3".into()]),
            triggers: triggers[..1].to_vec(),
            ..groups[0].clone()
        }];
        let rendered = render_rules(&variant);
        assert!(rendered.contains("- name: \"vnfd-d1-2\""), "{rendered}");
        assert!(
            rendered.contains(
                "expr: \"avg by (vnf_id) (cpu_util{vnfd_id=\\\"d1\\\",vnf_id=~\\\"v1|v3\\\"}) > 80\""
            ),
            "{rendered}"
        );
    }

    #[test]
    fn vnfs_sharing_their_triggers_share_one_group_and_the_others_get_their_own() {
        let high = fixtures::trigger("cpu_high", vec![AlarmAction::Respawn]);
        let higher = AlarmTrigger {
            threshold: 95.0,
            ..high.clone()
        };
        let vnf = |vnf_id: &str, vnfd_id: &str, trigger: &AlarmTrigger| WatchedVnf {
            vnf_id: vnf_id.into(),
            vnfd_id: vnfd_id.into(),
            vnfd_name: format!("name-{vnfd_id}"),
            triggers: vec![trigger.clone()],
        };
        let groups = rule_groups(vec![
            vnf("v4", "d2", &high),
            vnf("v2", "d1", &high),
            vnf("v3", "d2", &higher),
            vnf("v1", "d1", &high),
            vnf("v5", "d2", &high),
        ]);
        let summary: Vec<(&str, Option<Vec<String>>, f64)> = groups
            .iter()
            .map(|g| (g.name.as_str(), g.vnf_ids.clone(), g.triggers[0].threshold))
            .collect();
        assert_eq!(
            summary,
            [
                ("vnfd-d1", None, 80.0),
                ("vnfd-d2-1", Some(vec!["v3".to_owned()]), 95.0),
                (
                    "vnfd-d2-2",
                    Some(vec!["v4".to_owned(), "v5".to_owned()]),
                    80.0
                ),
            ]
        );
        assert!(rule_groups(Vec::new()).is_empty());
    }

    #[test]
    fn metric_names_are_made_valid_prometheus_names() {
        assert_eq!(metric_name("cpu_util"), "cpu_util");
        assert_eq!(metric_name("memory.usage"), "memory_usage");
        assert_eq!(metric_name("5xx-rate"), "_5xx_rate");
        assert_eq!(metric_name("ns:metric"), "ns:metric");
    }
}
