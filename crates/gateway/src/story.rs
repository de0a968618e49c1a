//! The story of a VNF: its lifecycle messages and what monitors and conductors said about it
//! on the monitor stream, merged in time order and told one line per event in words ("VDU WEB
//! 198.18.3.219 down (monitor-1, 2 failed pings: no reply)", "respawn claimed by conductor-2",
//! "ACTIVE with WEB 198.18.3.223, 57 ms after the failure").
//!
//! Pure but for [`read`], which fetches what a whole story is told from: it takes messages
//! already read (and decodes monitor payloads itself), and never prints a VNF's attributes
//! (they may hold sealed secrets). `vnfm audit` tells a
//! whole history with [`story`]; `vnfm tail` and the board tell messages as they come with
//! one [`VnfStory`] per VNF.

use std::fmt;

use cqrs_es::Aggregate;
use events::envelope::{Actor, ActorKind};
use events::monitor::{MonitorEvent, MonitorMessage, TargetRef};
use events::names;
use events::read::Stored;
use events::spec::MonitorDriver;
use events::store::{EventLog, History, Recorded, Skipped, StoreError};
use events::vnf::{AlarmRecord, FailureRecord, Instance, OperationKind, Vnf, VnfEvent};
use time::{Duration, OffsetDateTime, UtcOffset};

/// A VNF's lifecycle history and what the monitor stream says about it (while its retention
/// keeps it), as [`story`] tells them and `vnfm audit --json` prints them.
///
/// # Errors
///
/// When the log or the monitor stream cannot be read.
pub async fn read(
    log: &EventLog,
    vnf_id: &str,
) -> Result<(History<VnfEvent>, Vec<Stored>), StoreError> {
    let history = log.history(&names::vnf_subject(vnf_id)).await?;
    let mut monitor_messages = Vec::new();
    if let Ok(monitor_stream) = log.jetstream().get_stream(names::MONITOR_STREAM).await {
        for subject in names::monitor_subjects_of(vnf_id) {
            monitor_messages.extend(
                events::read::subject(&log.jetstream().client(), &monitor_stream, &subject).await?,
            );
        }
    }
    Ok((history, monitor_messages))
}

/// The story of a history and monitor messages as [`read`] answers them.
pub fn tell(
    vnf_id: &str,
    history: History<VnfEvent>,
    monitor_messages: &[Stored],
) -> Vec<StoryLine> {
    let messages = history
        .messages
        .into_iter()
        .map(Told::Lifecycle)
        .chain(monitor_messages.iter().map(Told::monitor))
        .collect();
    story(vnf_id, messages)
}

/// Characters of a VNF id that name it in lines about many VNFs (`vnfm tail`): the first group
/// of its UUID, as short as git's abbreviations and unique enough among a fleet's live VNFs.
pub const SHORT_ID_CHARS: usize = 8;

/// Who a line is about when nobody can be named (a message that does not decode).
const NOBODY: &str = "?";

/// One message of a VNF's history, as read: a lifecycle message (decoded or skipped) or a
/// monitor-stream message with the time the server stored it.
#[derive(Debug, Clone)]
pub enum Told {
    Lifecycle(Result<Recorded<VnfEvent>, Skipped>),
    Monitor {
        stored_at: OffsetDateTime,
        message: Result<MonitorEvent, Skipped>,
    },
}

impl Told {
    /// A monitor-stream message as stored: decoded, or skipped with the reason.
    pub fn monitor(stored: &Stored) -> Told {
        let message = serde_json::from_slice::<MonitorMessage>(&stored.payload)
            .map(|m| m.event)
            .map_err(|e| Skipped {
                sequence: stored.sequence,
                reason: e.to_string(),
                stored_at: stored.time,
            });
        Told::Monitor {
            stored_at: stored.time,
            message,
        }
    }

    /// When it happened: the lifecycle message's recording, the monitor message's storing.
    pub fn at(&self) -> OffsetDateTime {
        match self {
            Told::Lifecycle(Ok(recorded)) => recorded.envelope.recorded_at,
            Told::Lifecycle(Err(skipped)) => skipped.stored_at,
            Told::Monitor { stored_at, .. } => *stored_at,
        }
    }
}

/// One line of a story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryLine {
    pub vnf_id: String,
    pub at: OffsetDateTime,
    /// Since the first line of this VNF's story.
    pub since_first: Duration,
    /// The user (and project), monitor or conductor that did it.
    pub who: String,
    pub text: String,
}

impl StoryLine {
    /// The line with the VNF's short id after the time, for output about many VNFs.
    pub fn with_vnf(&self) -> WithVnf<'_> {
        WithVnf(self)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, vnf: Option<&str>) -> fmt::Result {
        write!(f, "{}  ", Timestamp(self.at))?;
        if let Some(vnf) = vnf {
            write!(f, "{vnf:<SHORT_ID_CHARS$}  ")?;
        }
        write!(
            f,
            "{:>10}  {:<16} {}",
            Relative(self.since_first).to_string(),
            self.who,
            self.text
        )
    }
}

/// `2026-12-01T10:00:03.120Z  +3.120s  monitor-1    VDU WEB 198.18.3.219 down (…)`
impl fmt::Display for StoryLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, None)
    }
}

/// A [`StoryLine`] shown with its VNF's short id.
pub struct WithVnf<'a>(&'a StoryLine);

impl fmt::Display for WithVnf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, Some(short_id(&self.0.vnf_id)))
    }
}

/// The first [`SHORT_ID_CHARS`] characters of a VNF id.
pub fn short_id(vnf_id: &str) -> &str {
    vnf_id
        .char_indices()
        .nth(SHORT_ID_CHARS)
        .map_or(vnf_id, |(end, _)| &vnf_id[..end])
}

/// A time in UTC to the millisecond: `2026-12-01T10:00:03.120Z`.
struct Timestamp(OffsetDateTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.0.to_offset(UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
    }
}

/// A time since the first line: `+3.120s`, `+2m05.300s`, `+1h02m05s`, `+3d04h`.
struct Relative(Duration);

impl fmt::Display for Relative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ms = self.0.whole_milliseconds().max(0);
        let (secs, ms) = (total_ms / 1000, total_ms % 1000);
        let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
        if mins == 0 {
            write!(f, "+{secs}.{ms:03}s")
        } else if hours == 0 {
            write!(f, "+{mins}m{:02}.{ms:03}s", secs % 60)
        } else if days == 0 {
            write!(f, "+{hours}h{:02}m{:02}s", mins % 60, secs % 60)
        } else {
            write!(f, "+{days}d{:02}h", hours % 24)
        }
    }
}

/// A latency in words: `57 ms`, `3.2 s`, `2 min 5 s`.
fn latency(duration: Duration) -> String {
    let ms = duration.whole_milliseconds().max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{}.{} s", ms / 1000, ms % 1000 / 100)
    } else {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// `1 instance`, `2 instances`.
fn count(n: usize, thing: &str) -> String {
    format!("{n} {}", plural(n, thing))
}

/// `thing` as `n` of them are called.
fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        thing.to_owned()
    } else {
        format!("{thing}s")
    }
}

/// Who did it, in a line: a user's id and project (`alice (p1)`), a component's name.
pub fn who(actor: &Actor) -> String {
    match (&actor.kind, &actor.project) {
        (ActorKind::User, Some(project)) => format!("{} ({project})", actor.id),
        (ActorKind::Alarm, _) => format!("alarm {}", actor.id),
        _ => actor.id.clone(),
    }
}

/// Instances as their VDU and management IP: `WEB 198.18.3.219, WEB 198.18.3.220` (the audit
/// events' words too).
pub fn instances_phrase(instances: &[Instance]) -> String {
    instances
        .iter()
        .map(|i| format!("{} {}", i.vdu, i.mgmt_ip))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The operation a failure ended, in a word (the audit events' words too).
pub fn operation_name(kind: Option<OperationKind>) -> &'static str {
    match kind {
        Some(OperationKind::Create) => "create",
        Some(OperationKind::ScaleOut | OperationKind::ScaleIn) => "scale",
        Some(OperationKind::Delete) => "delete",
        Some(OperationKind::Respawn | OperationKind::VduAutoheal) => "heal",
        Some(OperationKind::Update) => "config update",
        None => "operation",
    }
}

/// A VNF's whole story: `messages` (its lifecycle messages and its monitor-stream messages, in
/// any order) merged in time order, the lifecycle first among equal times.
pub fn story(vnf_id: &str, mut messages: Vec<Told>) -> Vec<StoryLine> {
    // Stable: messages of one stream keep their stream order among equal times.
    messages.sort_by_key(|told| (told.at(), matches!(told, Told::Monitor { .. })));
    let mut story = VnfStory::new(vnf_id);
    messages
        .into_iter()
        .flat_map(|told| story.tell(told))
        .collect()
}

/// One VNF's story as it goes: the VNF as its lifecycle messages so far left it, and what a
/// line needs from earlier ones (when the story began, which failure a heal answers).
#[derive(Debug, Clone)]
pub struct VnfStory {
    vnf_id: String,
    vnf: Vnf,
    first_at: Option<OffsetDateTime>,
    /// When the failure the heal in progress answers was detected.
    heal_failure_detected_at: Option<OffsetDateTime>,
}

impl VnfStory {
    pub fn new(vnf_id: &str) -> VnfStory {
        VnfStory {
            vnf_id: vnf_id.to_owned(),
            vnf: Vnf::default(),
            first_at: None,
            heal_failure_detected_at: None,
        }
    }

    /// Takes in a lifecycle message told before this story began (a tail's start): the VNF's
    /// state moves on, no line is told.
    pub fn absorb(&mut self, recorded: Recorded<VnfEvent>) {
        for event in recorded.envelope.events {
            self.note(&event);
            self.vnf.apply(event);
        }
    }

    /// True once the VNF is deleted: nothing more is to be told of it.
    pub fn is_over(&self) -> bool {
        self.vnf.deleted
    }

    /// The lines of one message, in order.
    pub fn tell(&mut self, told: Told) -> Vec<StoryLine> {
        let at = told.at();
        let first_at = *self.first_at.get_or_insert(at);
        let vnf_id = self.vnf_id.clone();
        let line = |who: String, text: String| StoryLine {
            vnf_id: vnf_id.clone(),
            at,
            since_first: at - first_at,
            who,
            text,
        };
        match told {
            Told::Lifecycle(Err(skipped)) => {
                vec![line(NOBODY.into(), format!("lifecycle {skipped}"))]
            }
            Told::Monitor {
                message: Err(skipped),
                ..
            } => vec![line(NOBODY.into(), format!("monitor {skipped}"))],
            Told::Monitor {
                message: Ok(event), ..
            } => self
                .monitor_text(&event)
                .map(|(who, text)| line(who, text))
                .into_iter()
                .collect(),
            Told::Lifecycle(Ok(recorded)) => {
                let actor = recorded.envelope.cause.actor;
                let mut lines = Vec::with_capacity(recorded.envelope.events.len());
                for event in recorded.envelope.events {
                    let text = self.lifecycle_text(&event, &actor, at);
                    lines.push(line(who(&actor), text));
                    self.note(&event);
                    self.vnf.apply(event);
                }
                lines
            }
        }
    }

    /// Remembers what later lines need from `event`, before it is applied.
    fn note(&mut self, event: &VnfEvent) {
        match event {
            VnfEvent::HealStarted { failure, .. } => {
                self.heal_failure_detected_at = Some(failure.detected_at);
            }
            VnfEvent::HealCompleted { .. } | VnfEvent::OperationFailed { .. } => {
                self.heal_failure_detected_at = None;
            }
            _ => {}
        }
    }

    /// What `event`, recorded at `at` for `actor`, did to the VNF as it stands before it.
    fn lifecycle_text(&self, event: &VnfEvent, actor: &Actor, at: OffsetDateTime) -> String {
        let by = who(actor);
        match event {
            VnfEvent::CreateRequested { details, add, .. } => format!(
                "create requested by {by} from VNFD {}: {} planned",
                details.vnfd_id,
                count(add.len(), "instance")
            ),
            VnfEvent::MonitorAttached { action_id } => {
                format!("monitored under action {action_id}")
            }
            VnfEvent::CreateCompleted { instances, .. } => {
                format!("ACTIVE with {}", instances_or_none(instances))
            }
            VnfEvent::ScaleRequested {
                policy,
                direction,
                add,
                remove,
                ..
            } => {
                let change = if remove.is_empty() {
                    format!("{} to add", count(add.len(), "instance"))
                } else if add.is_empty() {
                    format!("{} to remove", count(remove.len(), "instance"))
                } else {
                    format!(
                        "{} to add, {} to remove",
                        count(add.len(), "instance"),
                        count(remove.len(), "instance")
                    )
                };
                format!(
                    "scale {} by policy {policy} requested by {by}: {change}",
                    direction.as_str()
                )
            }
            VnfEvent::ScaleCompleted { added, removed, .. } => {
                let direction = match self.vnf.pending.as_ref().map(|p| p.kind) {
                    Some(OperationKind::ScaleIn) => "in",
                    Some(OperationKind::ScaleOut) => "out",
                    _ if added.is_empty() => "in",
                    _ => "out",
                };
                let mut changes = Vec::new();
                if !added.is_empty() {
                    changes.push(format!("{} added", instances_phrase(added)));
                }
                if !removed.is_empty() {
                    changes.push(format!("{} removed", self.removed_phrase(removed)));
                }
                if changes.is_empty() {
                    changes.push("nothing changed".into());
                }
                format!("scaled {direction}: {}", changes.join(", "))
            }
            VnfEvent::UpdateRequested { .. } => format!("config update requested by {by}"),
            VnfEvent::UpdateCompleted { .. } => "ACTIVE with the new config".into(),
            VnfEvent::DeleteRequested { .. } => format!("delete requested by {by}"),
            VnfEvent::MonitorDetached { action_id } => {
                format!("monitoring under action {action_id} detached")
            }
            VnfEvent::Deleted { .. } => "deleted".into(),
            VnfEvent::OperationFailed { reason, .. } => format!(
                "{} failed: {reason}",
                operation_name(self.vnf.pending.as_ref().map(|p| p.kind))
            ),
            VnfEvent::HealStarted { failure, add, .. } => format!(
                "{} claimed by {by} for VDU {}: {} to rebuild",
                failure.action.as_str(),
                failed_vdu(failure),
                count(add.len(), "instance")
            ),
            VnfEvent::HealCompleted { added, .. } => {
                let active = format!("ACTIVE with {}", instances_or_none(added));
                match self.heal_failure_detected_at {
                    Some(detected_at) => {
                        format!("{active}, {} after the failure", latency(at - detected_at))
                    }
                    None => format!("{active} again"),
                }
            }
            VnfEvent::FailureLogged { failure } => {
                format!(
                    "failure of VDU {} logged by {by} ({})",
                    failed_vdu(failure),
                    failure.action.as_str()
                )
            }
            VnfEvent::RespawnLimitReached {
                failure,
                alarm,
                reason,
            } => {
                let what = match (failure, alarm) {
                    (Some(failure), _) => format!("VDU {}", failed_vdu(failure)),
                    (None, Some(alarm)) => format!("alarm {}", alarm.trigger),
                    (None, None) => "the VNF".to_owned(),
                };
                format!("no automatic action for {what}, decided by {by}: {reason}")
            }
            VnfEvent::AlarmClaimed { alarm, .. } => format!(
                "alarm {} ({}) claimed by {by}, from {}{}",
                alarm.trigger,
                alarm.action.name(),
                alarm.source.as_str(),
                alarm_instance_phrase(alarm)
            ),
            VnfEvent::AlarmRespawnStarted { add, .. } => format!(
                "respawn on the alarm: {} to rebuild",
                count(add.len(), "instance")
            ),
            VnfEvent::AlarmLogged { alarm, .. } => format!(
                "alarm {} logged by {by} ({}), from {}{}",
                alarm.trigger,
                alarm.action.name(),
                alarm.source.as_str(),
                alarm_instance_phrase(alarm)
            ),
            VnfEvent::AlarmCleared { occurrence_id } => {
                format!("alarm {occurrence_id} over: its next firing acts again")
            }
            VnfEvent::VimDriftFound { drift } => format!(
                "VIM drift of {} instance {}, found by {by}: {}; the VNF is ERROR",
                drift.vdu, drift.instance_id, drift.reason
            ),
        }
    }

    /// Who did `event` and what it says about the VNF; `None` for the monitor stream's events
    /// about no one VNF (rounds, a monitor's own faults).
    fn monitor_text(&self, event: &MonitorEvent) -> Option<(String, String)> {
        Some(match event {
            // A conductor's report is a drift its reconciliation found, not a probe's.
            MonitorEvent::Failure(failure)
                if failure.monitor.kind == events::envelope::ActorKind::Conductor =>
            {
                (
                    who(&failure.monitor),
                    format!(
                        "VDU {} down (VIM drift found by {}: {})",
                        vdu(&failure.target),
                        who(&failure.monitor),
                        failure.reason
                    ),
                )
            }
            MonitorEvent::Failure(failure) => (
                who(&failure.monitor),
                format!(
                    "VDU {} down ({}, {}: {})",
                    vdu(&failure.target),
                    who(&failure.monitor),
                    self.failed_probes(&failure.target.vdu, failure.attempts),
                    failure.reason
                ),
            ),
            MonitorEvent::VduDown {
                monitor,
                target,
                reason,
                ..
            } => (
                who(monitor),
                format!("monitor state of VDU {}: down ({reason})", vdu(target)),
            ),
            MonitorEvent::VduUp {
                monitor, target, ..
            } => (
                who(monitor),
                format!("monitor state of VDU {}: up", vdu(target)),
            ),
            MonitorEvent::BadAction {
                conductor,
                target,
                reason,
                ..
            } => (
                who(conductor),
                format!(
                    "failure report of VDU {} refused as stale by {}: {reason}",
                    vdu(target),
                    who(conductor)
                ),
            ),
            MonitorEvent::TargetRefused {
                monitor,
                target,
                allowed,
                ..
            } => (
                who(monitor),
                format!(
                    "VDU {} not probed by {}: outside the ranges it may probe ({allowed})",
                    vdu(target),
                    who(monitor)
                ),
            ),
            MonitorEvent::Round { .. }
            | MonitorEvent::Roster { .. }
            | MonitorEvent::SuspectedFault { .. }
            | MonitorEvent::Starved { .. } => return None,
        })
    }

    /// `2 failed pings`, `1 failed HTTP ping`, or `3 failed probes` when the VDU's monitoring
    /// policy is not known (a tail that began after the VNF's creation was told).
    fn failed_probes(&self, vdu_name: &str, attempts: u32) -> String {
        let driver = self
            .vnf
            .vnfd
            .as_ref()
            .and_then(|vnfd| vnfd.vdu(vdu_name))
            .and_then(|vdu| vdu.monitoring_policy.as_ref())
            .map(|policy| policy.driver);
        let probe = match driver {
            Some(MonitorDriver::Ping) => "ping",
            Some(MonitorDriver::HttpPing) => "HTTP ping",
            None => "probe",
        };
        format!("{attempts} failed {}", plural(attempts as usize, probe))
    }

    /// Removed instance ids as their VDU and IP where the VNF knows them.
    fn removed_phrase(&self, removed: &[String]) -> String {
        removed
            .iter()
            .map(|id| {
                self.vnf
                    .instances
                    .iter()
                    .find(|i| &i.instance_id == id)
                    .map_or_else(
                        || format!("instance {id}"),
                        |i| format!("{} {}", i.vdu, i.mgmt_ip),
                    )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Instances as their VDU and IP, or `no instances`.
fn instances_or_none(instances: &[Instance]) -> String {
    if instances.is_empty() {
        "no instances".into()
    } else {
        instances_phrase(instances)
    }
}

/// A monitored instance as its VDU and management IP: `WEB 198.18.3.219`.
fn vdu(target: &TargetRef) -> String {
    format!("{} {}", target.vdu, target.mgmt_ip)
}

/// The instance an alarm names, as a phrase to end its line with (the audit events' too).
pub fn alarm_instance_phrase(alarm: &AlarmRecord) -> String {
    alarm
        .instance_id
        .as_ref()
        .map_or_else(String::new, |id| format!(" about instance {id}"))
}

/// A failed instance as its VDU and management IP: `WEB 198.18.3.219`.
fn failed_vdu(failure: &FailureRecord) -> String {
    format!("{} {}", failure.target.vdu, failure.target.mgmt_ip)
}

#[cfg(test)]
mod tests;
