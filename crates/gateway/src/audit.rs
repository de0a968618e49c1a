//! Tacker's events (`GET /v1.0/events`), answered from the lifecycle log rather than a table:
//! every stored event is shown with the state it left its resource in and who caused it.
//!
//! An event's id is `stream sequence × 1000 + its index within the message` ([`EVENT_ID_STRIDE`]):
//! stable, unique, ordered like the log, and enough to find the event again with one read.
//!
//! A stored message that does not decode is shown as one event saying that it was skipped and
//! why (with the id of its first event), and the resource's history goes on around it.

use std::collections::HashMap;

use events::envelope::Actor;
use events::names::{self, AggregateKind};
use events::nats_error::NatsError;
use events::read::Stored;
use events::store::{self, EventLog, Logged, Recorded, Skipped, StoreError};
use events::vnf::{OperationKind, Vnf, VnfEvent};
use events::vnfd::{TemplateSource, Vnfd, VnfdEvent};
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{render, story};

/// Event ids per lifecycle message. A command yields a handful of events; an event past this
/// index would share an id with the next message's, so it is left out (and logged).
pub const EVENT_ID_STRIDE: u64 = 1000;
/// Events on a page of `GET /v1.0/events` (without `resource_id`) when the request names no
/// `limit`: what python-tackerclient's `event-list` shows, the newest.
pub const EVENTS_PAGE_DEFAULT_ITEMS: usize = 100;
/// The most events on one such page; a larger `limit` is refused.
pub const EVENTS_PAGE_MAX_ITEMS: usize = 1_000;

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
pub struct TackerEvent {
    pub id: u64,
    pub resource_id: String,
    pub resource_type: &'static str,
    pub resource_state: String,
    pub timestamp: OffsetDateTime,
    pub event_type: &'static str,
    pub event_details: String,
}

impl TackerEvent {
    pub fn to_json(&self) -> Value {
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
pub trait Audited: Logged + Clone {
    const RESOURCE_TYPE: &'static str;
    /// True when the events of a message that decodes, folded from the default aggregate, tell
    /// and leave the same state whatever came before them on the subject: a page then needs
    /// no earlier history of the resource.
    const TOLD_BY_ITS_EVENTS: bool;

    /// Tacker's event type for `event`, applied to `before`, and a sentence saying what
    /// happened and who (`actor`) did it.
    fn describe(before: &Self, event: &Self::Event, actor: &Actor) -> (&'static str, String);

    /// Tacker's `resource_state` of the aggregate as an event left it.
    fn resource_state(after: &Self) -> String;
}

impl Audited for Vnf {
    const RESOURCE_TYPE: &'static str = "vnf";
    /// A VNF's status after most events depends on what came before (a monitor attached, a
    /// failure logged).
    const TOLD_BY_ITS_EVENTS: bool = false;

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
    /// `describe` reads nothing of the VNFD before, and its state is `OnBoarded` until its
    /// `Deleted`, after which no event can be recorded (use and delete need it live, a release
    /// needs a user, and a VNFD is deleted only without users): a page of VNFD messages never
    /// reads a VNFD's history, where its 1 MB template is.
    const TOLD_BY_ITS_EVENTS: bool = true;

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
pub async fn resource_events<A: Audited>(
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

/// Why a page of events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Nats(#[from] NatsError),
}

/// Where a page of events lies in the log. Event ids are positions in the log (see
/// [`EVENT_ID_STRIDE`]), so a marker need not name an event that exists: it is a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagePlace {
    /// The newest events.
    Newest,
    /// The oldest events with an id greater than this one.
    After(u64),
    /// The newest events with an id less than this one.
    Before(u64),
}

/// A page of events, oldest first, and the part of the log it covered.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    pub events: Vec<TackerEvent>,
    /// Events older than the page may exist: the id a previous page reads before.
    pub older_than: Option<u64>,
    /// Events newer than the page exist (stored when the page was read): the id a next page
    /// reads after.
    pub newer_than: Option<u64>,
}

/// The most bytes of lifecycle messages (payloads) one page of events reads: a page of 1 MB
/// VNFD messages stops after about this much, shorter than asked, with a link to the rest.
/// At least one message is always read, so every page moves on.
pub const EVENTS_PAGE_READ_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The most lifecycle messages one page of events reads: VIM messages show no event, so a
/// run of them must not make one page walk the whole log.
pub const EVENTS_PAGE_READ_MESSAGES_MAX: u64 = 2_000;

/// The lifecycle messages of one page, oldest first, and where the reading stopped.
struct PageRead {
    messages: Vec<Stored>,
    /// The stream's first and last sequence when the page was read.
    first: u64,
    last: u64,
}

/// A page of at most `limit` events at `place`, each with the exact state it left its
/// resource in. Reads the lifecycle stream by sequence (batched direct gets, see
/// [`events::read::run`]), from the marker's sequence onwards (or backwards), never more than [`EVENTS_PAGE_READ_BYTES_MAX`]
/// and [`EVENTS_PAGE_READ_MESSAGES_MAX`]; the states are folded over the page, from each
/// resource's subject for one whose history began before it.
pub async fn page(log: &EventLog, place: PagePlace, limit: usize) -> Result<EventsPage, PageError> {
    let read = read_page(log, place, limit).await?;
    let mut vnfs: HashMap<String, Vnf> =
        states_before(log, needing_history::<Vnf>(&read.messages)).await?;
    let mut vnfds: HashMap<String, Vnfd> =
        states_before(log, needing_history::<Vnfd>(&read.messages)).await?;
    let mut events = Vec::new();
    for message in &read.messages {
        match names::parse_lifecycle_subject(&message.subject) {
            Some((AggregateKind::Vnf, id)) => page_step(&mut vnfs, &mut events, id, message),
            Some((AggregateKind::Vnfd, id)) => page_step(&mut vnfds, &mut events, id, message),
            Some((AggregateKind::Vim, _)) | None => {}
        }
    }
    Ok(cut_page(events, &read, place, limit))
}

/// Subject reads in flight while a page gathers the states its resources were in before it.
const PAGE_STATE_READS_IN_FLIGHT: usize = 16;

/// The resources of kind `A` on a page whose history began before it, each with the sequence
/// of its first message on the page. Pure.
fn needing_history<A: Audited>(messages: &[Stored]) -> Vec<(String, u64)>
where
    A::Event: DeserializeOwned,
{
    let mut seen = std::collections::HashSet::new();
    let mut needed = Vec::new();
    for message in messages {
        let Some((kind, id)) = names::parse_lifecycle_subject(&message.subject) else {
            continue;
        };
        if kind != A::KIND || !seen.insert(id) {
            continue;
        }
        // The writer's expected last sequence of the subject: 0 on a resource's first message.
        let starts_history =
            message.header(names::headers::EXPECTED_LAST_SUBJECT_SEQUENCE) == Some("0");
        let told =
            A::TOLD_BY_ITS_EVENTS && events::envelope::decode::<A::Event>(&message.payload).is_ok();
        if !starts_history && !told {
            needed.push((id.to_owned(), message.sequence));
        }
    }
    needed
}

/// Each resource as the messages of its subject before the given sequence left it, read a
/// few subjects at a time.
async fn states_before<A: Audited>(
    log: &EventLog,
    needed: Vec<(String, u64)>,
) -> Result<HashMap<String, A>, StoreError> {
    futures::stream::iter(needed)
        .map(|(id, before)| async move {
            let state = state_before::<A>(log, &id, before).await?;
            Ok::<_, StoreError>((id, state))
        })
        .buffer_unordered(PAGE_STATE_READS_IN_FLIGHT)
        .try_collect()
        .await
}

/// Adds the events of one page message of `resource_id`, folding them into its state in
/// `states` (the default aggregate where its history begins on the page). Pure.
fn page_step<A: Audited>(
    states: &mut HashMap<String, A>,
    events: &mut Vec<TackerEvent>,
    resource_id: &str,
    message: &Stored,
) {
    let state = states.entry(resource_id.to_owned()).or_default();
    events.extend(audit_stored(
        state,
        resource_id,
        store::decode_or_skip(message),
    ));
}

/// The page `place` asks for out of the events of the messages read: those beyond the marker,
/// at most `limit`, and what lies beside them. Pure.
fn cut_page(
    events: Vec<TackerEvent>,
    read: &PageRead,
    place: PagePlace,
    limit: usize,
) -> EventsPage {
    let lowest_read = read.messages.first().map(|m| m.sequence);
    let highest_read = read.messages.last().map(|m| m.sequence);
    match place {
        PagePlace::After(marker) => {
            let events: Vec<TackerEvent> = events
                .into_iter()
                .filter(|e| e.id > marker)
                .take(limit)
                .collect();
            let covered = events
                .last()
                .map(|e| e.id)
                .or(highest_read.map(|s| s * EVENT_ID_STRIDE + (EVENT_ID_STRIDE - 1)))
                .unwrap_or(marker);
            let read_all = highest_read.is_none_or(|s| s >= read.last) && events.len() < limit;
            let earlier = marker > 0 && marker / EVENT_ID_STRIDE >= read.first;
            EventsPage {
                older_than: earlier
                    .then(|| events.first().map_or(marker.saturating_add(1), |e| e.id)),
                newer_than: (!read_all).then_some(covered),
                events,
            }
        }
        PagePlace::Newest | PagePlace::Before(_) => {
            let before = match place {
                PagePlace::Before(marker) => marker,
                _ => u64::MAX,
            };
            let mut events: Vec<TackerEvent> =
                events.into_iter().filter(|e| e.id < before).collect();
            let cut = events.len().saturating_sub(limit);
            let events = events.split_off(cut);
            let covered = events
                .first()
                .map(|e| e.id)
                .or(lowest_read.map(|s| s * EVENT_ID_STRIDE))
                .unwrap_or(before);
            let older = cut > 0 || lowest_read.is_some_and(|s| s > read.first);
            EventsPage {
                older_than: older.then_some(covered),
                newer_than: matches!(place, PagePlace::Before(_))
                    .then(|| events.last().map_or(before.saturating_sub(1), |e| e.id)),
                events,
            }
        }
    }
}

/// Reads the lifecycle messages of one page: forwards from the marker's message until
/// `limit` events lie past the marker, backwards from it (or from the newest) until `limit`
/// lie before it, within the read bounds.
async fn read_page(log: &EventLog, place: PagePlace, limit: usize) -> Result<PageRead, PageError> {
    let mut stream = log.stream().clone();
    let state = tokio::time::timeout(events::read::READ_MESSAGE_TIMEOUT, stream.info())
        .await
        .map_err(|elapsed| NatsError::timed_out("reading the lifecycle stream's state", elapsed))?
        .map_err(|e| NatsError::new("reading the lifecycle stream's state", e))?
        .state
        .clone();
    let (first, last) = (state.first_sequence.max(1), state.last_sequence);
    let mut read = PageRead {
        messages: Vec::new(),
        first,
        last,
    };
    let forward = matches!(place, PagePlace::After(_));
    let mut sequence = match place {
        PagePlace::Newest => last,
        PagePlace::After(marker) => (marker / EVENT_ID_STRIDE).max(first),
        PagePlace::Before(marker) => (marker.saturating_sub(1) / EVENT_ID_STRIDE).min(last),
    };
    let client = log.jetstream().client();
    let (mut bytes, mut messages, mut counted) = (0_usize, 0_u64, 0_usize);
    let more = |bytes: usize, messages: u64, counted: usize| {
        counted < limit
            && messages < EVENTS_PAGE_READ_MESSAGES_MAX
            && (messages == 0 || bytes < EVENTS_PAGE_READ_BYTES_MAX)
    };
    // Runs of messages in batched direct gets, each about as long as the events still wanted
    // (most messages tell one), walked one message at a time.
    'read: while last > 0 && (first..=last).contains(&sequence) && more(bytes, messages, counted) {
        let wanted = u64::try_from(limit - counted)
            .unwrap_or(u64::MAX)
            .min(EVENTS_PAGE_READ_MESSAGES_MAX - messages);
        let budget = EVENTS_PAGE_READ_BYTES_MAX.saturating_sub(bytes);
        let (run, past) = if forward {
            let through = sequence.saturating_add(wanted - 1).min(last);
            let run = events::read::run(&client, log.stream(), sequence, through, budget).await?;
            (run, through + 1)
        } else {
            let from = sequence.saturating_sub(wanted - 1).max(first);
            let mut run =
                events::read::newest_run(&client, log.stream(), from, sequence, budget).await?;
            run.reverse();
            (run, from - 1)
        };
        let mut walked = false;
        for message in run {
            if !more(bytes, messages, counted) {
                break 'read;
            }
            walked = true;
            messages += 1;
            bytes += message.payload.len();
            counted += events_beyond(&message, place);
            // Stream sequences start at 1, so walking back ends at 0, outside `first..=last`.
            sequence = if forward {
                message.sequence + 1
            } else {
                message.sequence.saturating_sub(1)
            };
            read.messages.push(message);
        }
        if !walked {
            // Nothing stored in the run's range.
            sequence = past;
        }
    }
    if !forward {
        read.messages.reverse();
    }
    Ok(read)
}

/// How many of a VNF or VNFD message's events lie beyond `place`'s marker (a message that
/// does not decode shows one).
fn events_beyond(message: &Stored, place: PagePlace) -> usize {
    if !matches!(
        names::parse_lifecycle_subject(&message.subject),
        Some((AggregateKind::Vnf | AggregateKind::Vnfd, _))
    ) {
        return 0;
    }
    let count = events::envelope::decode::<serde::de::IgnoredAny>(&message.payload)
        .map_or(1, |envelope| envelope.events.len());
    let count = u64::try_from(count)
        .unwrap_or(u64::MAX)
        .min(EVENT_ID_STRIDE);
    let base = message.sequence * EVENT_ID_STRIDE;
    let beyond = match place {
        PagePlace::Newest => count,
        PagePlace::After(marker) => {
            (base + count).saturating_sub(marker.saturating_add(1).max(base))
        }
        PagePlace::Before(marker) => marker.saturating_sub(base).min(count),
    };
    usize::try_from(beyond).unwrap_or(usize::MAX)
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

        // Only the last message is on the page: its resource's earlier state is read first.
        let newest = page(&log, PagePlace::Newest, 2).await.unwrap();
        assert_eq!(
            shape(&newest.events),
            vec![("MONITOR", "PENDING_DELETE"), ("DELETE", "PENDING_DELETE")]
        );
        assert_eq!((newest.older_than, newest.newer_than), (Some(4000), None));
        assert_eq!(
            page(&log, PagePlace::Newest, 1000).await.unwrap().events,
            history
        );
        // A page cut inside a message, and the pages beside it.
        let second = page(&log, PagePlace::After(1000), 2).await.unwrap();
        assert_eq!(second.events, history[1..3]);
        assert_eq!(
            (second.older_than, second.newer_than),
            (Some(1001), Some(2000))
        );
        let before = page(&log, PagePlace::Before(3000), 2).await.unwrap();
        assert_eq!(before.events, history[1..3]);
        assert_eq!(
            (before.older_than, before.newer_than),
            (Some(1001), Some(2000))
        );
        let last = page(&log, PagePlace::After(3000), 5).await.unwrap();
        assert_eq!(last.events, history[4..]);
        assert_eq!(last.newer_than, None);

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
        assert_eq!(
            page(&log, PagePlace::Newest, 1000).await.unwrap().events,
            history
        );
        assert_eq!(
            page(&log, PagePlace::Newest, 2).await.unwrap().events,
            history[6..]
        );
        assert_eq!(
            event_by_id(&log, 6000).await.unwrap().as_ref(),
            Some(&history[7])
        );
    }

    #[tokio::test]
    async fn an_empty_log_has_no_events() {
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        for place in [
            PagePlace::Newest,
            PagePlace::After(0),
            PagePlace::Before(5000),
        ] {
            let empty = page(&log, place, 1000).await.unwrap();
            assert!(empty.events.is_empty(), "{place:?}: {empty:?}");
            assert_eq!(empty.older_than, None, "{place:?}");
        }
    }

    /// Pages of 3 from the oldest by their `newer_than` markers while VNFs are created: every
    /// event once, in order, with the state the whole history gives it, the events created
    /// during the walk included.
    #[tokio::test]
    async fn walking_the_pages_shows_every_event_once_while_vnfs_are_created() {
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        let ids: Vec<String> = (0..40_u32)
            .map(|n| format!("5b3c0a40-8d0c-4a7a-9d55-{n:012}"))
            .collect();
        whole_life(&log, &ids[0]).await;
        let writer = {
            let (log, ids) = (log.clone(), ids.clone());
            tokio::spawn(async move {
                for id in &ids[1..] {
                    let monitored =
                        fixtures::vdu("VDU1", Some(fixtures::ping(PolicyAction::Respawn)));
                    let create =
                        fixtures::create(id, "d1", fixtures::spec(vec![monitored]), "op-create");
                    log.execute::<Vnf>(id, create, &(), &user()).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut walked: Vec<TackerEvent> = Vec::new();
        let mut marker = 0;
        let mut pages = 0;
        loop {
            let written = writer.is_finished();
            let next = page(&log, PagePlace::After(marker), 3).await.unwrap();
            pages += 1;
            assert!(next.events.len() <= 3, "{next:?}");
            walked.extend(next.events);
            match next.newer_than {
                Some(newer) => marker = newer,
                None if written => break,
                // Caught up with the writer: wait, then go on after the last event seen.
                None => {
                    marker = walked.last().map_or(marker, |last| last.id);
                    tokio::task::yield_now().await;
                }
            }
            assert!(pages < 1_000, "the walk does not end: {walked:?}");
        }
        writer.await.unwrap();
        let mut whole = Vec::new();
        for id in &ids {
            whole.extend(resource_events::<Vnf>(&log, id, None).await.unwrap());
        }
        whole.sort_by_key(|e| e.id);
        assert_eq!(whole.len(), 6 + 39 * 2);
        assert_eq!(walked, whole);

        // Backwards from the newest by the `older_than` markers: the same events.
        let mut backwards = page(&log, PagePlace::Newest, 4).await.unwrap();
        let mut walked_back = backwards.events.clone();
        while let Some(older) = backwards.older_than {
            backwards = page(&log, PagePlace::Before(older), 4).await.unwrap();
            walked_back.splice(0..0, backwards.events.iter().cloned());
        }
        assert_eq!(walked_back, whole);
    }

    /// A page of large messages stops reading at [`EVENTS_PAGE_READ_BYTES_MAX`], shorter than
    /// asked, and the next page goes on from there.
    #[tokio::test]
    async fn a_page_of_large_messages_reads_a_bounded_number_of_bytes() {
        let nats = NatsServer::start().await;
        let log = fixtures::log(nats.client().await).await;
        let message_bytes = 900_000;
        let per_page = EVENTS_PAGE_READ_BYTES_MAX.div_ceil(message_bytes);
        for n in 0..8_u32 {
            let vnfd_id = format!("6b3c0a40-8d0c-4a7a-9d55-{n:012}");
            log.jetstream()
                .publish(
                    names::vnfd_subject(&vnfd_id),
                    vec![b'x'; message_bytes].into(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let first = page(&log, PagePlace::After(0), 100).await.unwrap();
        assert_eq!(first.events.len(), per_page, "{:?}", first.newer_than);
        let marker = first.newer_than.expect("more to read");
        let rest = page(&log, PagePlace::After(marker), 100).await.unwrap();
        assert_eq!(rest.events.len(), 8 - per_page);
        assert_eq!(rest.newer_than, None);
        let newest = page(&log, PagePlace::Newest, 100).await.unwrap();
        assert_eq!(newest.events.len(), per_page);
        assert!(newest.older_than.is_some());
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
        before.pending = Some(Box::new(PendingOperation {
            operation_id: "op".into(),
            kind: OperationKind::ScaleOut,
            add: vec![],
            remove: vec![],
        }));
        let (kind, details) = Vnf::describe(&before, &failed, &actor);
        assert_eq!(kind, event_type::SCALE);
        assert_eq!(
            details,
            "VNF scale failed, reported by conductor:c-1: VIM down"
        );
    }
}
