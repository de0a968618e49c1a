//! Alarms in: Tacker's alarm receiver (`POST /v1.0/vnfs/{id}/triggers` and the alarm URL
//! `POST /v1.0/vnfs/{id}/{trigger}/{action}/{key}`), Alertmanager's webhook
//! (`POST /v1.0/alertmanager`). The rules that make Prometheus fire them are
//! [`crate::prometheus`]'s.
//!
//! This module only reads requests, checks the VNF's alarm key and appends a
//! [`VnfCommand::Alarm`]: the VNF aggregate decides what an alarm does (an occurrence acts once,
//! the trigger's action within its cooldown and the heal limit), and a conductor carries it
//! out as it would an API request.
//!
//! The alarm key: a VNF whose VNFD has alarm triggers gets, at its create, a random key of
//! [`ALARM_KEY_BYTES`], sealed in its attributes as [`ALARM_KEY_FIELD`] (never in clear in the
//! log, never logged). Its show displays, as Tacker did, one alarm URL per trigger
//! (`attributes.<trigger>`), to callers who see the VNF's secrets. The two Tacker routes take
//! that key (in the URL, or as `params.credential`) instead of an API token, since Aodh sends
//! none; it is compared in constant time, and a wrong or missing key stores nothing (401).
//!
//! Tacker's occurrences: an alarm notification acts when `current` is `alarm`, under the
//! occurrence id `tacker:<alarm_id>` (`tacker:<trigger>` without one), so Aodh's repeats of an
//! alarm that stays raised act once. An `ok` for that alarm frees the occurrence (recorded
//! only if the alarm had acted), so that its next `alarm` acts again; `insufficient data` does
//! nothing. Alertmanager's occurrences are `am:<fingerprint>:<startsAt>`: a firing episode
//! keeps its `startsAt` through every re-send, and a new episode has a new one.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use events::envelope::{Actor, ActorKind, Cause};
use events::names::AggregateKind;
use events::secrets;
use events::spec::{AlarmAction, ScaleDirection};
use events::store::CommandError;
use events::vnf::{ATTRIBUTES_PATH, AlarmRecord, AlarmSource, Vnf, VnfCommand, VnfError};
use projector::table::VnfRow;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{Caller, Gateway, Owned, input, visible};

/// Where a VNF's alarm key is kept in its attributes (sealed: the name holds "key").
pub(crate) const ALARM_KEY_FIELD: &str = "alarm_key";
/// The alarm key's randomness: as much as an API token's, so guessing it is no easier.
const ALARM_KEY_BYTES: usize = 32;
/// Alerts acted on per Alertmanager payload. Alertmanager sends a group's alerts together
/// (every firing alert of the group at each `group_interval`); with the rules grouped per VNF
/// and trigger, a group holds a few. Each alert is an append, about a millisecond, so 256
/// keep a payload well inside the request timeout. Alerts beyond it are answered as refused
/// (set `max_alerts` in Alertmanager's `webhook_config` to stay under it).
pub const ALERTS_PER_PAYLOAD_MAX: usize = 256;
/// The payload version of Alertmanager's webhook this receiver reads.
const ALERTMANAGER_PAYLOAD_VERSION: &str = "4";

/// A fresh alarm key: 32 random bytes as 64 hex digits (URL-safe as they are).
pub(crate) fn new_alarm_key() -> Result<String, ApiError> {
    let mut bytes = [0u8; ALARM_KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("making an alarm key", &e))?;
    Ok(hex::encode(bytes))
}

/// Whether the request is one of the two Tacker alarm routes, which the VNF's alarm key
/// authenticates instead of an API token.
pub(crate) fn is_keyed_route(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["v1.0", "vnfs", _, "triggers"] | ["v1.0", "vnfs", _, _, _, _]
    )
}

/// Replaces the shown VNF's `attributes.alarm_key` with one alarm URL per trigger, as Tacker
/// showed them: `{base}/v1.0/vnfs/{id}/{trigger}/{action}/{key}` (the trigger's first action;
/// hidden unless the key was opened for this caller).
pub(crate) fn show_alarm_urls(vnf_json: &mut Value, row: &VnfRow, base: &str) {
    let Some(attributes) = vnf_json
        .get_mut("attributes")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(key) = attributes.remove(ALARM_KEY_FIELD) else {
        return;
    };
    let vnf_id = row
        .state
        .details
        .as_ref()
        .map_or("", |details| details.vnf_id.as_str());
    let triggers = row.state.vnfd.iter().flat_map(|spec| &spec.alarm_triggers);
    for trigger in triggers {
        let Some(action) = trigger.actions.first() else {
            continue;
        };
        let url = match key.as_str() {
            Some(key) if key != secrets::HIDDEN => Value::String(format!(
                "{base}/v1.0/vnfs/{vnf_id}/{}/{}/{key}",
                trigger.name,
                action.name()
            )),
            _ => Value::String(secrets::HIDDEN.to_owned()),
        };
        attributes.insert(trigger.name.clone(), url);
    }
}

/// `POST /v1.0/vnfs/{id}/triggers` with Tacker's body: `{"trigger": {"policy_name": TRIGGER,
/// "action_name": ACTION, "params": {"data": {"alarm_id": X, "current": "alarm"},
/// "credential": KEY}}}`.
pub(crate) async fn triggers(
    State(gateway): State<Gateway>,
    Path(vnf_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let row = keyed_vnf(&gateway, &vnf_id).await?;
    let body = input::json_object(&headers, body).await?;
    let trigger = input::root_object(&body, "trigger")?;
    let params = as_object(input::object_or_empty(trigger, "params", "trigger")?);
    let credential = params.get("credential").and_then(Value::as_str);
    check_key(&gateway, &row, &vnf_id, credential).await?;
    let policy_name = input::required_string(trigger, "policy_name", "trigger")?;
    let action_name = input::required_string(trigger, "action_name", "trigger")?;
    let data = as_object(input::object_or_empty(&params, "data", "trigger.params")?);
    receive(&gateway, &row, &vnf_id, &policy_name, &action_name, &data).await
}

/// The object `input::object_or_empty` answered.
fn as_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        _ => Map::new(),
    }
}

/// `POST /v1.0/vnfs/{id}/{trigger}/{action}/{key}`: Tacker's alarm URL, where Aodh posts its
/// notification (`{"alarm_id", "current", "previous", "reason", ...}`).
pub(crate) async fn alarm_url(
    State(gateway): State<Gateway>,
    Path((vnf_id, trigger, action, key)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let row = keyed_vnf(&gateway, &vnf_id).await?;
    check_key(&gateway, &row, &vnf_id, Some(&key)).await?;
    let data = as_object(input::json_object(&headers, body).await?);
    receive(&gateway, &row, &vnf_id, &trigger, &action, &data).await
}

/// The row of a VNF that exists, else 404; the caller is not known yet (the key says who).
async fn keyed_vnf(gateway: &Gateway, vnf_id: &str) -> Result<VnfRow, ApiError> {
    if !input::is_resource_id(vnf_id) {
        return Err(ApiError::vnf_not_found(vnf_id));
    }
    gateway
        .vnf_row(vnf_id)
        .await?
        .filter(|row| row.state.exists())
        .ok_or_else(|| ApiError::vnf_not_found(vnf_id))
}

/// 401 unless `given` is the VNF's alarm key; 404 when the VNF has none (created before alarm
/// keys, or its VNFD has no trigger).
async fn check_key(
    gateway: &Gateway,
    row: &VnfRow,
    vnf_id: &str,
    given: Option<&str>,
) -> Result<(), ApiError> {
    let no_key = || {
        ApiError::not_found(
            "AlarmUrlNotFound",
            format!(
                "VNF {vnf_id} has no alarm key: it was created before vnfm kept alarm keys, or \
                 its VNFD has no alarm trigger; its triggers take no alarm (create the VNF again)"
            ),
        )
    };
    let sealed = row
        .state
        .details
        .as_ref()
        .and_then(|details| details.attributes.get(ALARM_KEY_FIELD))
        .ok_or_else(no_key)?;
    let data_key = gateway
        .existing_data_key(AggregateKind::Vnf, vnf_id)
        .await?
        .ok_or_else(no_key)?;
    let opened = secrets::open_secrets(
        &json!({ ALARM_KEY_FIELD: sealed }),
        &data_key,
        ATTRIBUTES_PATH,
    )
    .map_err(|e| ApiError::internal("opening a VNF's alarm key", &e))?;
    let key = opened
        .get(ALARM_KEY_FIELD)
        .and_then(Value::as_str)
        .ok_or_else(no_key)?;
    let matches = given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(key.as_bytes())));
    if !matches {
        tracing::info!(vnf_id, "Alarm refused: wrong or missing alarm key.");
        return Err(ApiError::wrong_alarm_key(vnf_id));
    }
    Ok(())
}

/// What one Tacker alarm notification does: `alarm` runs the action, `ok` frees the
/// occurrence, anything else nothing.
async fn receive(
    gateway: &Gateway,
    row: &VnfRow,
    vnf_id: &str,
    trigger: &str,
    action_name: &str,
    data: &Map<String, Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let current = data
        .get("current")
        .and_then(Value::as_str)
        .unwrap_or("alarm");
    let alarm_id = data
        .get("alarm_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .unwrap_or(trigger);
    let occurrence_id = format!("tacker:{alarm_id}");
    let project = row.state.tenant_id().unwrap_or_default().to_owned();
    let actor = Actor::new(ActorKind::Alarm, trigger).in_project(&project);
    let answer = |outcome: &str, operation_id: Option<String>| {
        Json(json!({ "alarm": {
            "vnf_id": vnf_id,
            "trigger": trigger,
            "action": action_name,
            "occurrence_id": occurrence_id,
            "current": current,
            "outcome": outcome,
            "operation_id": operation_id,
        }}))
    };
    match current {
        "alarm" => {}
        "ok" => {
            let command = VnfCommand::ClearAlarm {
                occurrence_id: occurrence_id.clone(),
            };
            let executed = gateway
                .log()
                .execute::<Vnf>(vnf_id, command, &(), &Cause::user_request(actor))
                .await
                .map_err(|e| alarm_error(vnf_id, e))?;
            let outcome = if executed.events.is_empty() {
                "nothing to clear"
            } else {
                gateway.refresh_vnf(vnf_id).await?;
                "cleared"
            };
            return Ok((StatusCode::ACCEPTED, answer(outcome, None)));
        }
        _ => return Ok((StatusCode::ACCEPTED, answer("nothing to do", None))),
    }
    let action = parse_action(action_name).ok_or_else(|| {
        ApiError::invalid_input(format!(
            "trigger.action_name: {action_name:?} is no alarm action; expected respawn, log, \
             log_and_kill or <scaling policy>-out / -in"
        ))
    })?;
    let alarm = AlarmRecord {
        occurrence_id: occurrence_id.clone(),
        trigger: trigger.to_owned(),
        action,
        source: AlarmSource::Tacker,
        received_by: actor.clone(),
        instance_id: None,
    };
    let (outcome, operation_id) = act(gateway, row, vnf_id, alarm, actor).await?;
    Ok((StatusCode::ACCEPTED, answer(outcome, operation_id)))
}

/// Tacker's action name as an action: `respawn`, `log`, `log_and_kill`, `<policy>-out`,
/// `<policy>-in`.
fn parse_action(name: &str) -> Option<AlarmAction> {
    Some(match name {
        "respawn" => AlarmAction::Respawn,
        "log" => AlarmAction::Log,
        "log_and_kill" => AlarmAction::LogAndKill,
        other => {
            let (policy, direction) = match other.rsplit_once('-')? {
                (policy, "out") => (policy, ScaleDirection::Out),
                (policy, "in") => (policy, ScaleDirection::In),
                _ => return None,
            };
            if policy.is_empty() {
                return None;
            }
            AlarmAction::Scale {
                policy: policy.to_owned(),
                direction,
            }
        }
    })
}

/// Appends the alarm (a scale out first within the project's instance quota); answers
/// `acted` with the operation's id, or `already handled`.
async fn act(
    gateway: &Gateway,
    row: &VnfRow,
    vnf_id: &str,
    alarm: AlarmRecord,
    actor: Actor,
) -> Result<(&'static str, Option<String>), ApiError> {
    if let AlarmAction::Scale {
        policy,
        direction: ScaleDirection::Out,
    } = &alarm.action
    {
        let vnf = &row.state;
        if let (Some(project), Some(scaling)) = (
            vnf.tenant_id(),
            vnf.vnfd
                .as_ref()
                .and_then(|spec| spec.scaling_policy(policy)),
        ) {
            gateway.within_quota(project, |quotas, usage| {
                quotas.scale_out(project, scaling, usage)
            })?;
        }
    }
    // A fresh id per delivery: the aggregate's claim, not the id, makes an occurrence act
    // once, and an occurrence freed by `ok` must plan new instances when it acts again.
    let operation_id = uuid::Uuid::new_v4().to_string();
    let (trigger, action) = (alarm.trigger.clone(), alarm.action.name());
    let occurrence_id = alarm.occurrence_id.clone();
    let command = VnfCommand::Alarm {
        alarm,
        operation_id: operation_id.clone(),
        at: time::OffsetDateTime::now_utc(),
        limit: gateway.config().respawn_limit,
    };
    let executed = gateway
        .log()
        .execute::<Vnf>(vnf_id, command, &(), &Cause::user_request(actor))
        .await
        .map_err(|e| alarm_error(vnf_id, e))?;
    if executed.events.is_empty() {
        tracing::info!(
            vnf_id,
            trigger,
            action,
            occurrence_id,
            "Alarm already handled."
        );
        return Ok(("already handled", None));
    }
    tracing::info!(
        vnf_id,
        trigger,
        action,
        occurrence_id,
        operation_id,
        "Alarm claimed."
    );
    gateway.refresh_vnf(vnf_id).await?;
    Ok(("acted", Some(operation_id)))
}

/// A refused alarm, as the client sees it.
fn alarm_error(vnf_id: &str, error: CommandError<VnfError>) -> ApiError {
    match error {
        CommandError::Rejected(VnfError::NotFound) => ApiError::vnf_not_found(vnf_id),
        CommandError::Rejected(e @ VnfError::Cooldown { .. }) => {
            ApiError::conflict("VNFScaleCooldown", e.to_string())
        }
        CommandError::Rejected(e @ VnfError::ScaleLimit { .. }) => {
            ApiError::conflict("VNFScaleLimit", e.to_string())
        }
        CommandError::Rejected(
            e @ (VnfError::InvalidState { .. }
            | VnfError::Busy { .. }
            | VnfError::NotHealable { .. }
            | VnfError::StaleAlarm { .. }),
        ) => ApiError::conflict("VNFInvalidState", e.to_string()),
        CommandError::Rejected(
            e @ (VnfError::UnknownTrigger { .. }
            | VnfError::NotTheTriggersAction { .. }
            | VnfError::UnknownScalingPolicy { .. }),
        ) => ApiError::invalid_input(format!("trigger: {e}")),
        CommandError::Rejected(
            e @ (VnfError::AlreadyExists
            | VnfError::StaleOperation { .. }
            | VnfError::PlanMismatch { .. }
            | VnfError::StaleFailure { .. }
            | VnfError::NotThePolicy { .. }
            | VnfError::DriftHasPolicy { .. }),
        ) => ApiError::internal("an alarm on a VNF", &e),
        CommandError::Store(e) => ApiError::store("appending an alarm", &e),
    }
}

/// `POST /v1.0/alertmanager`: Alertmanager's webhook (payload version 4). Each firing alert
/// whose labels name a VNF the caller may act on (`vnf_id`) and one of its triggers
/// (`trigger`) runs the trigger's first action, once per occurrence
/// (`am:<fingerprint>:<startsAt>`); resolved alerts do nothing. Answers 200 with what became of
/// each alert: Alertmanager re-sends on 5xx only, so a refused alert is reported, not failed.
pub(crate) async fn alertmanager(
    State(gateway): State<Gateway>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = input::json_object(&headers, body).await?;
    let version = body.get("version").and_then(Value::as_str);
    if version != Some(ALERTMANAGER_PAYLOAD_VERSION) {
        return Err(ApiError::invalid_input(format!(
            "version: this receiver reads Alertmanager's webhook payload version \
             {ALERTMANAGER_PAYLOAD_VERSION}, not {version:?}"
        )));
    }
    let alerts = body
        .get("alerts")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid_input("alerts: required, a list of alerts"))?;
    let mut answers = Vec::with_capacity(alerts.len());
    for (index, alert) in alerts.iter().enumerate() {
        let answer = if index < ALERTS_PER_PAYLOAD_MAX {
            match one_alert(&gateway, &caller, alert).await {
                Ok(answer) => answer,
                Err(e) if e.status().is_server_error() => return Err(e),
                Err(e) => json!({ "outcome": "refused", "reason": e.message() }),
            }
        } else {
            json!({
                "outcome": "refused",
                "reason": format!(
                    "beyond the {ALERTS_PER_PAYLOAD_MAX} alerts a payload may carry; set \
                     max_alerts in Alertmanager's webhook_config"
                ),
            })
        };
        let mut answer = answer;
        answer["index"] = json!(index);
        if let Some(fingerprint) = alert.get("fingerprint") {
            answer["fingerprint"] = fingerprint.clone();
        }
        answers.push(answer);
    }
    Ok(Json(json!({ "alerts": answers })))
}

/// What one alert of a payload does; a refusal is an `Err` of a client status.
async fn one_alert(
    gateway: &Gateway,
    caller: &Principal,
    alert: &Value,
) -> Result<Value, ApiError> {
    let status = alert.get("status").and_then(Value::as_str);
    let label = |name: &str| {
        alert
            .get("labels")
            .and_then(|labels| labels.get(name))
            .and_then(Value::as_str)
    };
    let (Some(vnf_id), Some(trigger)) = (label("vnf_id"), label("trigger")) else {
        return Err(ApiError::invalid_input(
            "labels: an alert needs vnf_id and trigger labels (the rules of \
             /v1.0/prometheus/rules set both)",
        ));
    };
    let base = json!({ "vnf_id": vnf_id, "trigger": trigger });
    let with = |outcome: &str, operation_id: Option<String>| {
        let mut answer = base.clone();
        answer["outcome"] = json!(outcome);
        answer["operation_id"] = json!(operation_id);
        answer
    };
    if status != Some("firing") {
        return Ok(with("resolved: nothing to do", None));
    }
    let field = |name: &str| {
        alert
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::invalid_input(format!("{name}: required in a firing alert")))
    };
    let (fingerprint, starts_at) = (field("fingerprint")?, field("startsAt")?);
    let row = if input::is_resource_id(vnf_id) {
        gateway.vnf_row(vnf_id).await?
    } else {
        None
    };
    let row = row
        .filter(|row| row.state.exists() && visible(caller, row))
        .ok_or_else(|| ApiError::vnf_not_found(vnf_id))?;
    let action = row
        .state
        .vnfd
        .as_ref()
        .and_then(|spec| spec.alarm_trigger(trigger))
        .and_then(|t| t.actions.first().cloned())
        .ok_or_else(|| {
            ApiError::invalid_input(format!(
                "labels.trigger: VNF {vnf_id}'s VNFD has no alarm trigger named {trigger:?}"
            ))
        })?;
    let alarm = AlarmRecord {
        occurrence_id: format!("am:{fingerprint}:{starts_at}"),
        trigger: trigger.to_owned(),
        action,
        source: AlarmSource::Alertmanager,
        received_by: caller.actor(),
        instance_id: label("instance_id").map(str::to_owned),
    };
    let (outcome, operation_id) = act(gateway, &row, vnf_id, alarm, caller.actor()).await?;
    Ok(with(outcome, operation_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tackers_action_names_are_read() {
        assert_eq!(parse_action("respawn"), Some(AlarmAction::Respawn));
        assert_eq!(
            parse_action("SP-1-in"),
            Some(AlarmAction::Scale {
                policy: "SP-1".into(),
                direction: ScaleDirection::In
            })
        );
        assert_eq!(parse_action("SP1"), None);
        assert_eq!(parse_action("-out"), None);
    }

    #[test]
    fn only_posts_to_the_two_alarm_routes_go_without_a_token() {
        let id = "0b9c3d0e-1a2b-4c3d-8e9f-001122334455";
        assert!(is_keyed_route(
            &Method::POST,
            &format!("/v1.0/vnfs/{id}/triggers")
        ));
        assert!(is_keyed_route(
            &Method::POST,
            &format!("/v1.0/vnfs/{id}/t/respawn/k")
        ));
        assert!(!is_keyed_route(
            &Method::GET,
            &format!("/v1.0/vnfs/{id}/triggers")
        ));
        assert!(!is_keyed_route(
            &Method::POST,
            &format!("/v1.0/vnfs/{id}/actions")
        ));
        assert!(!is_keyed_route(&Method::POST, "/v1.0/alertmanager"));
    }
}
