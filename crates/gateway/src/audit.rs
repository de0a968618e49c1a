//! Tacker's events (`GET /v1.0/events`), answered from the lifecycle log rather than a table:
//! every stored event is shown with the state it left its resource in and who caused it.
//!
//! An event's id is `stream sequence × 1000 + its index within the message` ([`EVENT_ID_STRIDE`]):
//! stable, unique, ordered like the log, and enough to find the event again with one read.
//!
//! A stored message that does not decode is shown as one event saying that it was skipped and
//! why (with the id of its first event), and the resource's history goes on around it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use events::envelope::Actor;
use events::names::{self, AggregateKind};
use events::nats_error::NatsError;
use events::read::{Stored, StreamRead};
use events::store::{self, EventLog, Logged, Recorded, Skipped, StoreError};
use events::vnf::{OperationKind, Vnf, VnfEvent};
use events::vnfd::{TemplateSource, Vnfd, VnfdEvent};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{render, story};

/// Event ids per lifecycle message. A command yields a handful of events; an event past this
/// index would share an id with the next message's, so it is left out (and logged).
pub(crate) const EVENT_ID_STRIDE: u64 = 1000;
/// How many of the newest lifecycle messages a list without `resource_id` reads. Bounds the
/// work of one request whatever the log's length; `resource_id` reads a resource's whole
/// history instead.
pub(crate) const EVENTS_WINDOW_MESSAGES_MAX: u64 = 1000;

/// Tacker's event types.
pub(crate) mod event_type {
    pub const CREATE: &str = "CREATE";
    pub const UPDATE: &str = "UPDATE";
    pub const DELETE: &str = "DELETE";
    pub const MONITOR: &str = "MONITOR";
    pub const SCALE: &str = "SCALE";
    pub const HEAL: &str = "HEAL";
    /// A stored message that does not decode: Tacker has no type for it, and UPDATE is the one
    /// that claims least.
    pub const SKIPPED: &str = UPDATE;
}

/// Tacker's `resource_state` of a VNFD that exists, and of one that was deleted.
const VNFD_ONBOARDED: &str = "OnBoarded";
const VNFD_GONE: &str = "Not Applicable";

/// One event as `GET /v1.0/events` shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TackerEvent {
    pub id: u64,
    pub resource_id: String,
    pub resource_type: &'static str,
    pub resource_state: String,
    pub timestamp: OffsetDateTime,
    pub event_type: &'static str,
    pub event_details: String,
}

impl TackerEvent {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "resource_id": self.resource_id,
            "resource_type": self.resource_type,
            "resource_state": self.resource_state,
            "timestamp": render::timestamp(self.timestamp),
            "event_type": self.event_type,
            "event_details": self.event_details,
        })
    }
}

/// An aggregate whose events the audit can tell.
pub(crate) trait Audited: Logged + Clone {
    const RESOURCE_TYPE: &'static str;

    /// Tacker's event type for `event`, applied to `before`, and a sentence saying what
    /// happened and who (`actor`) did it.
    fn describe(before: &Self, event: &Self::Event, actor: &Actor) -> (&'static str, String);

    /// Tacker's `resource_state` of the aggregate as an event left it.
    fn resource_state(after: &Self) -> String;
}

impl Audited for Vnf {
    const RESOURCE_TYPE: &'static str = "vnf";

    fn describe(before: &Vnf, event: &VnfEvent, actor: &Actor) -> (&'static str, String) {
        use event_type::{CREATE, DELETE, HEAL, MONITOR, SCALE, UPDATE};
        match event {
            VnfEvent::CreateRequested { details, add, .. } => (
                CREATE,
                format!(
                    "VNF create requested by {actor} from VNFD {} ({} instance(s) planned)",
                    details.vnfd_id,
                    add.len()
                ),
            ),
            VnfEvent::MonitorAttached { action_id } => (
                MONITOR,
                format!("Monitoring attached under action {action_id} by {actor}"),
            ),
            VnfEvent::CreateCompleted { instances, .. } => (
                CREATE,
                format!(
                    "VNF create completed by {actor}; management IPs: {}",
                    story::instances_phrase(instances)
                ),
            ),
            VnfEvent::ScaleRequested {
                policy,
                direction,
                add,
                remove,
                ..
            } => (
                SCALE,
                format!(
                    "VNF scale {} by policy {policy} requested by {actor} ({} instance(s) to add, {} to remove)",
                    direction.as_str(),
                    add.len(),
                    remove.len()
                ),
            ),
            VnfEvent::ScaleCompleted { added, removed, .. } => (
                SCALE,
                format!(
                    "VNF scale completed by {actor}: {} instance(s) added, {} removed",
                    added.len(),
                    removed.len()
                ),
            ),
            VnfEvent::UpdateRequested { .. } => {
                (UPDATE, format!("VNF config update requested by {actor}"))
            }
            VnfEvent::UpdateCompleted { .. } => (
                UPDATE,
                format!("VNF config update completed by {actor}: the VIM has the new config"),
            ),
            VnfEvent::DeleteRequested { .. } => {
                (DELETE, format!("VNF delete requested by {actor}"))
            }
            VnfEvent::MonitorDetached { action_id } => (
                MONITOR,
                format!("Monitoring under action {action_id} detached by {actor}"),
            ),
            VnfEvent::Deleted { .. } => (DELETE, format!("VNF delete completed by {actor}")),
            VnfEvent::HealStarted { failure, add, .. } => (
                HEAL,
                format!(
                    "{} of VDU {} instance {} ({}) started by {actor} on a failure reported by {} under action {}: {} ({} instance(s) to rebuild)",
                    failure.action.as_str(),
                    failure.target.vdu,
                    failure.target.instance_id,
                    failure.target.mgmt_ip,
                    failure.monitor,
                    failure.target.action_id,
                    failure.reason,
                    add.len()
                ),
            ),
            VnfEvent::HealCompleted { added, .. } => (
                HEAL,
                format!(
                    "Heal completed by {actor}; new management IPs: {}",
                    story::instances_phrase(added)
                ),
            ),
            VnfEvent::FailureLogged { failure } => (
                MONITOR,
                format!(
                    "Failure of VDU {} instance {} ({}) logged by {actor} ({}), reported by {} under action {}: {}",
                    failure.target.vdu,
                    failure.target.instance_id,
                    failure.target.mgmt_ip,
                    failure.action.as_str(),
                    failure.monitor,
                    failure.target.action_id,
                    failure.reason
                ),
            ),
            VnfEvent::RespawnLimitReached { reason, .. } => (
                HEAL,
                format!("No automatic action, decided by {actor}: {reason}"),
            ),
            VnfEvent::AlarmClaimed { alarm, .. } => (
                MONITOR,
                format!(
                    "Alarm {} claimed by {actor} for action {}: {}",
                    alarm.trigger,
                    alarm.action.name(),
                    occurrence_phrase(alarm)
                ),
            ),
            VnfEvent::AlarmRespawnStarted { add, remove, .. } => (
                HEAL,
                format!(
                    "respawn on an alarm started by {actor} ({} instance(s) to replace, {} to rebuild)",
                    remove.len(),
                    add.len()
                ),
            ),
            VnfEvent::AlarmLogged { alarm, .. } => (
                MONITOR,
                format!(
                    "Alarm {} logged by {actor} ({}): {}",
                    alarm.trigger,
                    alarm.action.name(),
                    occurrence_phrase(alarm)
                ),
            ),
            VnfEvent::AlarmCleared { occurrence_id } => (
                MONITOR,
                format!(
                    "Alarm occurrence {occurrence_id} cleared by {actor}: its next firing acts again"
                ),
            ),
            VnfEvent::VimDriftFound { drift } => (
                MONITOR,
                format!(
                    "VIM drift of VDU {} instance {} found by {actor}: {}; the VNF is ERROR",
                    drift.vdu, drift.instance_id, drift.reason
                ),
            ),
            VnfEvent::OperationFailed { reason, .. } => {
                let operation = before.pending.as_ref().map(|p| p.kind);
                let kind = match operation {
                    Some(OperationKind::Create) => CREATE,
                    Some(OperationKind::ScaleOut | OperationKind::ScaleIn) => SCALE,
                    Some(OperationKind::Delete) => DELETE,
                    Some(OperationKind::Respawn | OperationKind::VduAutoheal) => HEAL,
                    Some(OperationKind::Update) | None => UPDATE,
                };
                (
                    kind,
                    format!(
                        "VNF {} failed, reported by {actor}: {reason}",
                        story::operation_name(operation)
                    ),
                )
            }
        }
    }

    fn resource_state(after: &Vnf) -> String {
        after.status.map_or("", |s| s.as_str()).to_owned()
    }
}

/// Where an alarm came from: its occurrence, its source, who received it, its instance.
fn occurrence_phrase(alarm: &events::vnf::AlarmRecord) -> String {
    format!(
        "occurrence {} from {}, received by {}{}",
        alarm.occurrence_id,
        alarm.source.as_str(),
        alarm.received_by,
        story::alarm_instance_phrase(alarm)
    )
}

impl Audited for Vnfd {
    const RESOURCE_TYPE: &'static str = "vnfd";

    fn describe(_before: &Vnfd, event: &VnfdEvent, actor: &Actor) -> (&'static str, String) {
        use event_type::{CREATE, DELETE, UPDATE};
        match event {
            VnfdEvent::Onboarded(descriptor) => {
                let how = match descriptor.template_source {
                    TemplateSource::Onboarded => "onboarded",
                    TemplateSource::Inline => "onboarded inline with a VNF",
                };
                (CREATE, format!("VNFD {} {how} by {actor}", descriptor.name))
            }
            VnfdEvent::UsedBy { vnf_id } => (
                UPDATE,
                format!("VNFD put in use by VNF {vnf_id}, recorded by {actor}"),
            ),
            VnfdEvent::ReleasedBy { vnf_id } => (
                UPDATE,
                format!("VNFD released by VNF {vnf_id}, recorded by {actor}"),
            ),
            VnfdEvent::Deleted => (DELETE, format!("VNFD deleted by {actor}")),
        }
    }

    fn resource_state(after: &Vnfd) -> String {
        if after.deleted {
            VNFD_GONE
        } else {
            VNFD_ONBOARDED
        }
        .to_owned()
    }
}

/// The events of one stored message, folding each into `state` as it goes.
fn audit_message<A: Audited>(
    state: &mut A,
    resource_id: &str,
    recorded: Recorded<A::Event>,
) -> Vec<TackerEvent> {
    let envelope = recorded.envelope;
    let mut audited = Vec::with_capacity(envelope.events.len());
    for (index, event) in (0_u64..).zip(envelope.events) {
        if index >= EVENT_ID_STRIDE {
            tracing::warn!(
                sequence = recorded.sequence,
                "Lifecycle message holds more events than event ids allow; the rest are not shown."
            );
            break;
        }
        let (event_type, event_details) = A::describe(state, &event, &envelope.cause.actor);
        state.apply(event);
        audited.push(TackerEvent {
            id: recorded.sequence * EVENT_ID_STRIDE + index,
            resource_id: resource_id.to_owned(),
            resource_type: A::RESOURCE_TYPE,
            resource_state: A::resource_state(state),
            timestamp: envelope.recorded_at,
            event_type,
            event_details,
        });
    }
    audited
}

/// The event that stands for a message of the resource that does not decode: the resource's
/// state is as the messages before it left it.
fn skipped_message<A: Audited>(state: &A, resource_id: &str, skipped: &Skipped) -> TackerEvent {
    TackerEvent {
        id: skipped.sequence * EVENT_ID_STRIDE,
        resource_id: resource_id.to_owned(),
        resource_type: A::RESOURCE_TYPE,
        resource_state: A::resource_state(state),
        timestamp: skipped.stored_at,
        event_type: event_type::SKIPPED,
        event_details: format!("Lifecycle {skipped}"),
    }
}

/// The events of one stored message, decoded or skipped, folding each into `state`.
fn audit_stored<A: Audited>(
    state: &mut A,
    resource_id: &str,
    message: Result<Recorded<A::Event>, Skipped>,
) -> Vec<TackerEvent> {
    match message {
        Ok(recorded) => audit_message(state, resource_id, recorded),
        Err(skipped) => vec![skipped_message(state, resource_id, &skipped)],
    }
}

/// Every event of one resource, oldest first; with `through`, only those of messages up to
/// that stream sequence.
pub(crate) async fn resource_events<A: Audited>(
    log: &EventLog,
    resource_id: &str,
    through: Option<u64>,
) -> Result<Vec<TackerEvent>, StoreError>
where
    A::Event: DeserializeOwned,
{
    let history = log.history::<A::Event>(&A::subject(resource_id)).await?;
    let mut state = A::default();
    let mut audited = Vec::new();
    for message in history.messages {
        let sequence = match &message {
            Ok(recorded) => recorded.sequence,
            Err(skipped) => skipped.sequence,
        };
        if through.is_some_and(|through| sequence > through) {
            break;
        }
        audited.extend(audit_stored(&mut state, resource_id, message));
    }
    Ok(audited)
}

/// The event with Tacker id `id`, if the log has it.
pub(crate) async fn event_by_id(
    log: &EventLog,
    id: u64,
) -> Result<Option<TackerEvent>, StoreError> {
    let sequence = id / EVENT_ID_STRIDE;
    let Some(message) = log.read_at(sequence).await? else {
        return Ok(None);
    };
    let Some((kind, resource_id)) = names::parse_lifecycle_subject(&message.subject) else {
        return Ok(None);
    };
    let events = match kind {
        AggregateKind::Vnf => resource_events::<Vnf>(log, resource_id, Some(sequence)).await?,
        AggregateKind::Vnfd => resource_events::<Vnfd>(log, resource_id, Some(sequence)).await?,
        // Tacker's events are of VNFDs and VNFs; a VIM's history is on its subject.
        AggregateKind::Vim => return Ok(None),
    };
    Ok(events.into_iter().find(|event| event.id == id))
}

/// Why the window of newest events could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WindowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Nats(#[from] NatsError),
}

/// The events of the newest `messages_max` lifecycle messages, oldest first.
///
/// Each resource's state is folded from its first message in the window; a resource whose
/// history began before the window has that earlier part read from its subject first, so
/// every `resource_state` is exact.
pub(crate) async fn recent_events(
    log: &EventLog,
    messages_max: u64,
) -> Result<Vec<TackerEvent>, WindowError> {
    let mut read =
        StreamRead::newest(log.stream(), names::LIFECYCLE_SUBJECTS, messages_max).await?;
    let mut vnfs: HashMap<String, Vnf> = HashMap::new();
    let mut vnfds: HashMap<String, Vnfd> = HashMap::new();
    let mut events = Vec::new();
    while let Some(message) = read.next().await? {
        match names::parse_lifecycle_subject(&message.subject) {
            Some((AggregateKind::Vnf, id)) => {
                window_step(log, &mut vnfs, &mut events, id, &message).await?;
            }
            Some((AggregateKind::Vnfd, id)) => {
                window_step(log, &mut vnfds, &mut events, id, &message).await?;
            }
            Some((AggregateKind::Vim, _)) | None => {}
        }
    }
    Ok(events)
}

/// Adds the events of one window message of `resource_id`, with the state of its resource in
/// `states`.
async fn window_step<A: Audited>(
    log: &EventLog,
    states: &mut HashMap<String, A>,
    events: &mut Vec<TackerEvent>,
    resource_id: &str,
    message: &Stored,
) -> Result<(), StoreError>
where
    A::Event: DeserializeOwned,
{
    // The writer's expected last sequence of the subject: 0 on a resource's first message.
    let starts_history =
        message.header(names::headers::EXPECTED_LAST_SUBJECT_SEQUENCE) == Some("0");
    let state = match states.entry(resource_id.to_owned()) {
        Entry::Occupied(held) => held.into_mut(),
        Entry::Vacant(slot) => {
            let before = if starts_history {
                A::default()
            } else {
                state_before::<A>(log, resource_id, message.sequence).await?
            };
            slot.insert(before)
        }
    };
    events.extend(audit_stored(
        state,
        resource_id,
        store::decode_or_skip(message),
    ));
    Ok(())
}

/// The aggregate as the messages of its subject before `before` left it.
async fn state_before<A: Logged>(
    log: &EventLog,
    resource_id: &str,
    before: u64,
) -> Result<A, StoreError> {
    let recorded = log
        .read_subject::<A::Event>(&A::subject(resource_id))
        .await?;
    let mut state = A::default();
    for message in recorded.into_iter().take_while(|m| m.sequence < before) {
        message
            .envelope
            .events
            .into_iter()
            .for_each(|e| state.apply(e));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use events::envelope::ActorKind;
    use events::fixtures::{self, user};
    use events::spec::PolicyAction;
    use events::vnf::{Instance, PendingOperation, VnfCommand, VnfStatus};
    use testkit::NatsServer;

    use super::*;

    /// A monitored VNF through create, completion, delete request and deletion: four messages,
    /// the first and the last with two events each.
    async fn whole_life(log: &EventLog, vnf_id: &str) {
        let monitored = fixtures::vdu("VDU1", Some(fixtures::ping(PolicyAction::Respawn)));
        let create = fixtures::create(vnf_id, "d1", fixtures::spec(vec![monitored]), "op-create");
        log.execute::<Vnf>(vnf_id, create, &(), &user())
            .await
            .unwrap();
        let pending = log
            .load::<Vnf>(vnf_id)
            .await
            .unwrap()
            .aggregate
            .pending
            .unwrap();
        let instances = pending
            .add
            .iter()
            .map(|p| Instance {
                instance_id: p.instance_id.clone(),
                vdu: p.vdu.clone(),
                mgmt_ip: Ipv4Addr::new(198, 18, 0, 3),
                booted_at: OffsetDateTime::now_utc(),
            })
            .collect();
        let complete = VnfCommand::CompleteCreate {
            operation_id: "op-create".into(),
            instances,
        };
        log.execute::<Vnf>(vnf_id, complete, &(), &fixtures::conductor("c-1"))
            .await
            .unwrap();
        let delete = VnfCommand::Delete {
            operation_id: "op-delete".into(),
        };
        log.execute::<Vnf>(vnf_id, delete, &(), &user())
            .await
            .unwrap();
        let deleted = VnfCommand::CompleteDelete {
            operation_id: "op-delete".into(),
        };
        log.execute::<Vnf>(vnf_id, deleted, &(), &fixtures::conductor("c-1"))
            .await
            .unwrap();
    }

    fn shape(events: &[TackerEvent]) -> Vec<(&str, &str)> {
        events
            .iter()
            .map(|e| (e.event_type, e.resource_state.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn every_event_shows_the_state_it_left_even_in_a_window_that_starts_mid_history() {
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        let vnf_id = "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11";
        whole_life(&log, vnf_id).await;

        let history = resource_events::<Vnf>(&log, vnf_id, None).await.unwrap();
        assert_eq!(
            shape(&history),
            vec![
                ("CREATE", "PENDING_CREATE"),
                ("MONITOR", "PENDING_CREATE"),
                ("CREATE", "ACTIVE"),
                ("DELETE", "PENDING_DELETE"),
                ("MONITOR", "PENDING_DELETE"),
                ("DELETE", "PENDING_DELETE"),
            ]
        );
        let ids: Vec<u64> = history.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1000, 1001, 2000, 3000, 4000, 4001]);
        assert!(
            history[0].event_details.contains("by user:admin"),
            "{:?}",
            history[0]
        );
        assert!(
            history[2].event_details.contains("by conductor:c-1"),
            "{:?}",
            history[2]
        );
        assert!(
            history[2].event_details.contains("198.18.0.3"),
            "{:?}",
            history[2]
        );

        // Only the last message is in the window: its resource's earlier state is read first.
        let window = recent_events(&log, 1).await.unwrap();
        assert_eq!(
            shape(&window),
            vec![("MONITOR", "PENDING_DELETE"), ("DELETE", "PENDING_DELETE")]
        );
        assert_eq!(recent_events(&log, 1000).await.unwrap(), history);

        let found = event_by_id(&log, 1001).await.unwrap();
        assert_eq!(found.as_ref(), Some(&history[1]));
        assert_eq!(event_by_id(&log, 1002).await.unwrap(), None);
        assert_eq!(event_by_id(&log, 9000).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_message_that_does_not_decode_is_shown_as_skipped_among_the_rest() {
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        let vnf_id = "5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b12";
        whole_life(&log, vnf_id).await;
        let unknown_type = json!({
            "schema_version": 2, "aggregate": "vnf", "aggregate_id": vnf_id,
            "actor": {"kind": "user", "id": "x"}, "command_id": "c", "correlation_id": "c",
            "causation_id": "c", "recorded_at": "2026-11-25T10:00:00Z",
            "events": [{"type": "Exploded"}],
        });
        for payload in [b"not JSON".to_vec(), unknown_type.to_string().into_bytes()] {
            log.jetstream()
                .publish(names::vnf_subject(vnf_id), payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }

        let history = resource_events::<Vnf>(&log, vnf_id, None).await.unwrap();
        assert_eq!(history.len(), 8, "{history:?}");
        let skipped: Vec<(u64, &str, &str)> = history[6..]
            .iter()
            .map(|e| (e.id, e.event_type, e.resource_state.as_str()))
            .collect();
        assert_eq!(
            skipped,
            vec![
                (5000, "UPDATE", "PENDING_DELETE"),
                (6000, "UPDATE", "PENDING_DELETE")
            ]
        );
        assert!(
            history[6]
                .event_details
                .starts_with("Lifecycle message #5 skipped: it does not decode"),
            "{:?}",
            history[6]
        );
        assert_eq!(recent_events(&log, 1000).await.unwrap(), history);
        assert_eq!(recent_events(&log, 2).await.unwrap(), history[6..]);
        assert_eq!(
            event_by_id(&log, 6000).await.unwrap().as_ref(),
            Some(&history[7])
        );
    }

    #[tokio::test]
    async fn an_empty_log_has_no_events() {
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        assert!(recent_events(&log, 1000).await.unwrap().is_empty());
    }

    #[test]
    fn a_failure_is_told_as_the_operation_it_ended() {
        let actor = Actor::new(ActorKind::Conductor, "c-1");
        let failed = VnfEvent::OperationFailed {
            operation_id: "op".into(),
            reason: "VIM down".into(),
        };
        let mut before = Vnf {
            status: Some(VnfStatus::PendingScaleOut),
            ..Vnf::default()
        };
        before.pending = Some(PendingOperation {
            operation_id: "op".into(),
            kind: OperationKind::ScaleOut,
            add: vec![],
            remove: vec![],
        });
        let (kind, details) = Vnf::describe(&before, &failed, &actor);
        assert_eq!(kind, event_type::SCALE);
        assert_eq!(
            details,
            "VNF scale failed, reported by conductor:c-1: VIM down"
        );
    }
}
