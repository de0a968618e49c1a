//! The VNF aggregate: Tacker's VNF lifecycle, its VDU instances and its monitor attachment.
//!
//! Every operation is two-phase: a user command records a request with its plan (the
//! instance ids to deploy or remove, derived from the operation id) and a pending status; a
//! conductor carries the plan out through the VIM and records the completion or the failure
//! under the same operation id. A completion for an operation that is no longer pending is
//! refused as stale, which is what makes redelivered work harmless.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Weak};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
pub use thin_vec::ThinVec;
use time::OffsetDateTime;

use crate::envelope::{Actor, SCHEMA_VERSION};
use crate::spec::{AlarmAction, MonitoringPolicy, PolicyAction, VnfdSpec};

/// Tacker's VNF statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VnfStatus {
    PendingCreate,
    Active,
    Error,
    Dead,
    PendingUpdate,
    PendingDelete,
    PendingScaleIn,
    PendingScaleOut,
    PendingHeal,
}

impl VnfStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VnfStatus::PendingCreate => "PENDING_CREATE",
            VnfStatus::Active => "ACTIVE",
            VnfStatus::Error => "ERROR",
            VnfStatus::Dead => "DEAD",
            VnfStatus::PendingUpdate => "PENDING_UPDATE",
            VnfStatus::PendingDelete => "PENDING_DELETE",
            VnfStatus::PendingScaleIn => "PENDING_SCALE_IN",
            VnfStatus::PendingScaleOut => "PENDING_SCALE_OUT",
            VnfStatus::PendingHeal => "PENDING_HEAL",
        }
    }
}

/// Where the sealed values of a VNF's `attributes` are bound (see `events::secrets`).
pub const ATTRIBUTES_PATH: &str = "/attributes";
/// Where the sealed values of a VNF's `placement_attr` are bound.
pub const PLACEMENT_ATTR_PATH: &str = "/placement_attr";
/// Where a VNF's sealed `user_data` (VDU name -> the VDU's `user_data`) is bound.
pub const USER_DATA_PATH: &str = "/user_data";

/// What the user asked for when creating the VNF, kept as given but for its secret-bearing
/// fields, which the gateway seals (`events::secrets`) before the create is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VnfDetails {
    pub vnf_id: String,
    pub name: String,
    pub description: String,
    pub tenant_id: String,
    pub vnfd_id: String,
    pub vim_id: String,
    pub attributes: serde_json::Value,
    pub placement_attr: serde_json::Value,
    /// Each VDU's `user_data` from the VNFD (VDU name -> text), sealed whole with the VNF's
    /// data key under [`USER_DATA_PATH`]; none (absent or null) when no VDU has one, and in
    /// events recorded before it was kept. Read by the conductor that deploys the VDU; the API
    /// never shows it. Boxed: most VNFs have none, and a `Value` is 72 bytes inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<Box<serde_json::Value>>,
}

/// A running VDU instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub instance_id: String,
    pub vdu: String,
    pub mgmt_ip: Ipv4Addr,
    /// When the VIM reported the instance up; monitoring delays count from here.
    #[serde(with = "time::serde::rfc3339")]
    pub booted_at: OffsetDateTime,
}

/// An instance an operation is to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedInstance {
    pub vdu: String,
    pub instance_id: String,
}

pub use crate::spec::ScaleDirection;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Create,
    ScaleOut,
    ScaleIn,
    Delete,
    /// Tacker's respawn: every instance of the VNF replaced, the VNF DEAD meanwhile.
    Respawn,
    /// Only the failed instance rebuilt, the VNF PENDING_HEAL meanwhile.
    VduAutoheal,
    /// A new `config` handed to the VIM (`tacker vnf-update`), the VNF PENDING_UPDATE meanwhile.
    Update,
}

impl OperationKind {
    fn pending_status(self) -> VnfStatus {
        match self {
            OperationKind::Create => VnfStatus::PendingCreate,
            OperationKind::ScaleOut => VnfStatus::PendingScaleOut,
            OperationKind::ScaleIn => VnfStatus::PendingScaleIn,
            OperationKind::Delete => VnfStatus::PendingDelete,
            OperationKind::Respawn => VnfStatus::Dead,
            OperationKind::VduAutoheal => VnfStatus::PendingHeal,
            OperationKind::Update => VnfStatus::PendingUpdate,
        }
    }

    pub const ALL: [OperationKind; 7] = [
        OperationKind::Create,
        OperationKind::ScaleOut,
        OperationKind::ScaleIn,
        OperationKind::Delete,
        OperationKind::Respawn,
        OperationKind::VduAutoheal,
        OperationKind::Update,
    ];
}

/// Beyond Tacker: how many heals (respawn or vdu_autoheal) a VNF may have in a window before
/// it goes to ERROR and waits for a person, so a flapping VDU is not rebuilt forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespawnLimit {
    pub heals_max: u32,
    pub window: time::Duration,
}

impl Default for RespawnLimit {
    /// Three in ten minutes: enough for a real fault to be healed twice more, few enough that a
    /// VDU that dies on every boot is given up on within minutes.
    fn default() -> Self {
        RespawnLimit {
            heals_max: 3,
            window: time::Duration::minutes(10),
        }
    }
}

/// Failure ids a VNF remembers as handled, so a redelivered report changes nothing. Reports are
/// redelivered within seconds; sixteen covers every VDU of a large VNF failing at once.
const HANDLED_FAILURES_MAX: usize = 16;

/// A failure as the lifecycle log records it: the monitor's report a conductor acted on.
///
/// The lifecycle log's own type, not the monitor stream's message: the lifecycle schema is never
/// edited, so it must not move when the monitor stream's does. The JSON shape is the one the
/// monitor's report had when this type was split from it, so stored events still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Unique per report; conductors derive their command ids from it.
    pub failure_id: String,
    pub monitor: Actor,
    #[serde(flatten)]
    pub target: FailedInstance,
    /// The action the report named; a conductor acts only when it is the VDU's policy action.
    pub action: PolicyAction,
    pub attempts: u32,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
}

/// The VDU instance a failure is about, under the monitor action id it was probed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedInstance {
    pub vnf_id: String,
    pub vdu: String,
    pub instance_id: String,
    pub mgmt_ip: Ipv4Addr,
    pub action_id: String,
}

/// What a conductor found on a VNF's VIM that the log does not account for: the server of a
/// running instance gone, in ERROR or SHUTOFF, behind vnfm's back (drift). A VDU with a
/// monitoring policy has it handled as a failure report (`HandleFailure`); one without makes
/// the VNF ERROR with this ([`VnfCommand::RecordVimDrift`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VimDrift {
    /// [`drift_id`] of the instance and the VIM state: every conductor, every period, derives
    /// the same one, so the VNF records it once.
    pub drift_id: String,
    pub vdu: String,
    pub instance_id: String,
    /// The state as the VIM reports it: `gone`, `ERROR` or `SHUTOFF`.
    pub vim_state: String,
    /// For a person: "the VIM reports server <id> SHUTOFF", with Nova's fault for ERROR.
    pub reason: String,
    /// The conductor whose reconciliation found it.
    pub found_by: Actor,
    #[serde(with = "time::serde::rfc3339")]
    pub found_at: OffsetDateTime,
}

/// The id of the drift of `instance_id` into `vim_state` (`gone`, `ERROR`, `SHUTOFF`): UUIDv5,
/// so that every conductor and every period names the same drift, which the VNF's claim (of
/// the failure, or of the drift itself) makes exclusive. Serves as the failure id of the
/// failure report a drift of a monitored VDU becomes.
pub fn drift_id(instance_id: &str, vim_state: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{instance_id}/vim-drift/{vim_state}").as_bytes(),
    )
    .to_string()
}

/// Alarm occurrences a VNF remembers as handled, so a repeated notification acts once. What
/// is re-sent at once is one occurrence per trigger (Alertmanager re-sends a group's firing
/// alerts every `repeat_interval`, each with its first `startsAt`; Aodh re-posts an alarm that
/// stays in `alarm`), and the rules aggregate per VNF, so a VNF has as many live occurrences
/// as its VNFD has triggers: Tacker's samples have one or two. Sixty-four is far beyond that
/// and keeps the aggregate, which the VNF table stores, small. An occurrence pushed out by 64
/// later ones acts again if re-sent, within its scaling policy's cooldown and the heal limit.
pub const HANDLED_ALARMS_MAX: usize = 64;

/// Who sent an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmSource {
    /// Tacker's alarm receiver (`/v1.0/vnfs/{id}/triggers` or the alarm URL): Aodh, or anybody
    /// holding the VNF's alarm key.
    Tacker,
    /// Alertmanager's webhook (`/v1.0/alertmanager`).
    Alertmanager,
}

impl AlarmSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmSource::Tacker => "Tacker's alarm receiver",
            AlarmSource::Alertmanager => "Alertmanager",
        }
    }
}

/// An alarm as the lifecycle log records it: one occurrence of a VNFD trigger firing, and the
/// trigger's action it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// One per occurrence (`tacker:<alarm id>`, `am:<fingerprint>:<startsAt>`): its repeats
    /// act once.
    pub occurrence_id: String,
    /// The trigger's name in the VNF's VNFD.
    pub trigger: String,
    pub action: AlarmAction,
    pub source: AlarmSource,
    /// Who delivered it: `alarm:<trigger>` for a key-checked alarm URL, the user for a token.
    pub received_by: Actor,
    /// The instance the alarm is about (an alert's `instance_id` label), when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// The operation a conductor has yet to carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOperation {
    pub operation_id: String,
    pub kind: OperationKind,
    /// Instances to deploy.
    pub add: Vec<PlannedInstance>,
    /// Instance ids to remove.
    pub remove: Vec<String>,
}

impl PendingOperation {
    /// The command that records this operation's outcome: the completion its kind calls for,
    /// with the instances the VIM deployed, or `FailOperation` with the reason it failed.
    pub fn completion(&self, outcome: Result<Vec<Instance>, String>) -> VnfCommand {
        let operation_id = self.operation_id.clone();
        let added = match outcome {
            Ok(added) => added,
            Err(reason) => {
                return VnfCommand::FailOperation {
                    operation_id,
                    reason,
                };
            }
        };
        match self.kind {
            OperationKind::Create => VnfCommand::CompleteCreate {
                operation_id,
                instances: added,
            },
            OperationKind::ScaleOut | OperationKind::ScaleIn => VnfCommand::CompleteScale {
                operation_id,
                added,
            },
            OperationKind::Delete => VnfCommand::CompleteDelete { operation_id },
            OperationKind::Respawn | OperationKind::VduAutoheal => VnfCommand::CompleteHeal {
                operation_id,
                added,
            },
            OperationKind::Update => VnfCommand::CompleteUpdate { operation_id },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum VnfCommand {
    Create {
        details: Box<VnfDetails>,
        vnfd: VnfdSpec,
        operation_id: String,
    },
    Scale {
        operation_id: String,
        policy: String,
        direction: ScaleDirection,
        /// When the scale was asked for: a policy scales again only after its `cooldown`.
        at: OffsetDateTime,
    },
    Delete {
        operation_id: String,
    },
    /// `PUT /v1.0/vnfs/{id}`: a new `config` for the VNF, sealed by the gateway as the
    /// `config` of its attributes (bound under [`ATTRIBUTES_PATH`]), to be handed to the VIM.
    Update {
        operation_id: String,
        config: serde_json::Value,
    },
    /// A conductor deployed the pending operation's planned instances (create, scale out).
    CompleteCreate {
        operation_id: String,
        instances: Vec<Instance>,
    },
    CompleteScale {
        operation_id: String,
        added: Vec<Instance>,
    },
    CompleteDelete {
        operation_id: String,
    },
    /// A conductor handed the pending update's config to the VIM.
    CompleteUpdate {
        operation_id: String,
    },
    FailOperation {
        operation_id: String,
        reason: String,
    },
    /// A monitor reported a failure: claim it and run the VDU's policy action (the
    /// specification's `execute_policy_action`).
    HandleFailure {
        failure: FailureRecord,
        /// The heal operation's id, derived from the failure id by the caller.
        operation_id: String,
        at: OffsetDateTime,
        limit: RespawnLimit,
    },
    CompleteHeal {
        operation_id: String,
        added: Vec<Instance>,
    },
    /// An alarm of one of the VNFD's triggers fired: claim its occurrence and run the action it
    /// asks for (a scale as `Scale` would, a respawn as a failure's would).
    Alarm {
        alarm: AlarmRecord,
        /// The operation's id (a scale's or a respawn's), derived from the occurrence by the
        /// caller, so that a re-decided alarm plans the same instances.
        operation_id: String,
        at: OffsetDateTime,
        limit: RespawnLimit,
    },
    /// The alarm of `occurrence_id` is over (`ok`): its next firing acts again.
    ClearAlarm {
        occurrence_id: String,
    },
    /// A conductor found a running instance of a VDU without a monitoring policy gone, in
    /// ERROR or SHUTOFF on its VIM: the VNF goes ERROR with the reason. Once per drift id.
    RecordVimDrift {
        drift: VimDrift,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum VnfEvent {
    CreateRequested {
        details: VnfDetails,
        vnfd: VnfdSpec,
        operation_id: String,
        add: Vec<PlannedInstance>,
    },
    /// The VNF is to be monitored under `action_id` (the specification's monitor action id).
    MonitorAttached {
        action_id: String,
    },
    CreateCompleted {
        operation_id: String,
        instances: Vec<Instance>,
    },
    ScaleRequested {
        operation_id: String,
        policy: String,
        direction: ScaleDirection,
        add: Vec<PlannedInstance>,
        remove: Vec<String>,
        /// When it was asked for; absent in events recorded before cooldowns were kept (such
        /// a scale starts no cooldown).
        #[serde(
            default,
            with = "time::serde::rfc3339::option",
            skip_serializing_if = "Option::is_none"
        )]
        at: Option<OffsetDateTime>,
    },
    ScaleCompleted {
        operation_id: String,
        added: Vec<Instance>,
        removed: Vec<String>,
    },
    /// The plan (every running instance and every orphan) is not recorded: it is derived in
    /// `apply` from the state the log already holds, so events stored before and after read
    /// the same and need no upcaster.
    DeleteRequested {
        operation_id: String,
    },
    /// A new config for the VNF, which becomes its `attributes.config`; a conductor hands it
    /// to the VIM.
    UpdateRequested {
        operation_id: String,
        config: serde_json::Value,
    },
    /// The VIM has the config.
    UpdateCompleted {
        operation_id: String,
    },
    /// Every monitor stops probing the VNF (the specification's `kill`).
    MonitorDetached {
        action_id: String,
    },
    Deleted {
        operation_id: String,
    },
    OperationFailed {
        operation_id: String,
        reason: String,
    },
    /// A conductor claimed a failure and starts healing (respawn or vdu_autoheal).
    HealStarted {
        operation_id: String,
        failure: FailureRecord,
        add: Vec<PlannedInstance>,
        remove: Vec<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    HealCompleted {
        operation_id: String,
        added: Vec<Instance>,
        removed: Vec<String>,
    },
    /// A failure recorded by the `log` or `log_and_kill` action.
    FailureLogged {
        failure: FailureRecord,
    },
    /// Too many heals in the window: no further automatic action. Names the failure or the
    /// alarm that asked for the heal (events written before alarms always name a failure).
    RespawnLimitReached {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<FailureRecord>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alarm: Option<AlarmRecord>,
        reason: String,
    },
    /// An alarm's occurrence is claimed: the events after it in the same message are its
    /// action (a `ScaleRequested`, an `AlarmRespawnStarted`).
    AlarmClaimed {
        alarm: AlarmRecord,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// An alarm's respawn: the instances it replaces (the alarm's instance, else every
    /// instance of its trigger's VDUs), the VNF DEAD meanwhile; completed by `HealCompleted`.
    AlarmRespawnStarted {
        operation_id: String,
        occurrence_id: String,
        add: Vec<PlannedInstance>,
        remove: Vec<String>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// An alarm recorded by the `log` or `log_and_kill` action (its occurrence claimed).
    AlarmLogged {
        alarm: AlarmRecord,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The alarm of `occurrence_id` is over; its next firing acts again.
    AlarmCleared {
        occurrence_id: String,
    },
    /// The VIM reports a running instance of a VDU without a monitoring policy gone, in ERROR
    /// or SHUTOFF: the VNF is ERROR with the drift's reason.
    VimDriftFound {
        drift: VimDrift,
    },
}

impl DomainEvent for VnfEvent {
    fn event_type(&self) -> String {
        match self {
            VnfEvent::CreateRequested { .. } => "CreateRequested",
            VnfEvent::MonitorAttached { .. } => "MonitorAttached",
            VnfEvent::CreateCompleted { .. } => "CreateCompleted",
            VnfEvent::ScaleRequested { .. } => "ScaleRequested",
            VnfEvent::ScaleCompleted { .. } => "ScaleCompleted",
            VnfEvent::DeleteRequested { .. } => "DeleteRequested",
            VnfEvent::UpdateRequested { .. } => "UpdateRequested",
            VnfEvent::UpdateCompleted { .. } => "UpdateCompleted",
            VnfEvent::MonitorDetached { .. } => "MonitorDetached",
            VnfEvent::Deleted { .. } => "Deleted",
            VnfEvent::OperationFailed { .. } => "OperationFailed",
            VnfEvent::HealStarted { .. } => "HealStarted",
            VnfEvent::HealCompleted { .. } => "HealCompleted",
            VnfEvent::FailureLogged { .. } => "FailureLogged",
            VnfEvent::RespawnLimitReached { .. } => "RespawnLimitReached",
            VnfEvent::AlarmClaimed { .. } => "AlarmClaimed",
            VnfEvent::AlarmRespawnStarted { .. } => "AlarmRespawnStarted",
            VnfEvent::AlarmLogged { .. } => "AlarmLogged",
            VnfEvent::AlarmCleared { .. } => "AlarmCleared",
            VnfEvent::VimDriftFound { .. } => "VimDriftFound",
        }
        .into()
    }

    fn event_version(&self) -> String {
        SCHEMA_VERSION.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VnfError {
    #[error("VNF not found")]
    NotFound,
    #[error("VNF already exists")]
    AlreadyExists,
    #[error("VNF is {}: cannot {action} it now", .status.as_str())]
    InvalidState {
        status: VnfStatus,
        action: &'static str,
    },
    #[error("VNF has no scaling policy named {policy:?}")]
    UnknownScalingPolicy { policy: String },
    #[error(
        "scaling {} by policy {policy} would take VDU {vdu} from {current} to {wanted} instances, beyond its {bound} of {limit}",
        .direction.as_str()
    )]
    ScaleLimit {
        policy: String,
        direction: ScaleDirection,
        vdu: String,
        current: u32,
        wanted: i64,
        bound: &'static str,
        limit: u32,
    },
    /// The policy scaled less than its `cooldown` ago.
    #[error(
        "scaling policy {policy} is cooling down: it scaled less than its cooldown of {cooldown_s} s ago; retry in {seconds_left} s"
    )]
    Cooldown {
        policy: String,
        cooldown_s: u64,
        seconds_left: u64,
    },
    #[error("operation {operation_id} is not pending")]
    StaleOperation { operation_id: String },
    /// The failure report is not about the VNF's current monitor action or instance: the
    /// specification's `bad_action`.
    #[error("stale failure report: {reason}")]
    StaleFailure { reason: String },
    /// The failure report names an action that is not the VDU's monitoring policy action, or
    /// the VDU has no monitoring policy: also answered with `bad_action`.
    #[error(
        "failure report names {}, but VDU {vdu}'s monitoring policy is {}",
        .reported.as_str(),
        .policy.map_or("absent", PolicyAction::as_str)
    )]
    NotThePolicy {
        vdu: String,
        reported: PolicyAction,
        policy: Option<PolicyAction>,
    },
    /// Another operation is in progress; the failure is to be handled after it.
    #[error("VNF is {} with an operation in progress", .status.as_str())]
    Busy { status: VnfStatus },
    #[error("VNF is {}: no automatic action", .status.as_str())]
    NotHealable { status: VnfStatus },
    /// An alarm names a trigger the VNF's VNFD does not have.
    #[error("the VNF's VNFD has no alarm trigger named {trigger:?}")]
    UnknownTrigger { trigger: String },
    /// An alarm asks for an action its trigger does not run.
    #[error("alarm trigger {trigger} has no action {action:?}; its actions are {}", .actions.join(", "))]
    NotTheTriggersAction {
        trigger: String,
        action: String,
        actions: Vec<String>,
    },
    /// A drift of a VDU that has a monitoring policy is a failure report for that policy
    /// (`HandleFailure`), never the VNF's ERROR.
    #[error("VDU {vdu} has a monitoring policy ({}): its drift is handled as a failure", .policy.as_str())]
    DriftHasPolicy { vdu: String, policy: PolicyAction },
    /// An alarm is about an instance the VNF no longer runs.
    #[error("stale alarm: {reason}")]
    StaleAlarm { reason: String },
    #[error("completion of operation {operation_id} does not match its plan: {detail}")]
    PlanMismatch {
        operation_id: String,
        detail: String,
    },
}

/// The VNF as its events left it. The projector stores exactly this in the VNF table.
///
/// Every process holds many (a monitor's fold, the gateway's mirror), most with no operation
/// pending and nothing in their bookkeeping lists, so those take a pointer each inline: the
/// lists are `ThinVec`s (one word, where a `VecDeque` is four) and the pending operation is
/// boxed (80 bytes otherwise). The details are boxed too (296 bytes otherwise): every monitor
/// folds every VNF and drops its details. A VNF is 192 bytes inline (720 before all three).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vnf {
    pub details: Option<Box<VnfDetails>>,
    /// The VNFD's spec as the create recorded it. Shared: copies of one VNFD's spec in many
    /// VNFs held by one process can be one allocation ([`SharedSpecs`]).
    pub vnfd: Option<Arc<VnfdSpec>>,
    pub status: Option<VnfStatus>,
    pub deleted: bool,
    /// The running VDU instances, oldest first.
    pub instances: Vec<Instance>,
    pub pending: Option<Box<PendingOperation>>,
    /// The monitor action id while monitors are attached.
    pub action_id: Option<String>,
    /// Planned instances of failed operations: a later delete removes them too.
    pub orphans: ThinVec<String>,
    pub error_reason: Option<String>,
    /// Failures the monitors reported and a conductor acted upon.
    pub failure_count: u32,
    /// The create operation's id; Tacker's `instance_id` (the stack) of the VNF.
    pub stack_id: Option<String>,
    /// Instances that failed and were replaced, oldest first.
    pub dead_instances: ThinVec<String>,
    /// When recent heals started (at most the limit's count is kept).
    pub heals_at: ThinVec<OffsetDateTime>,
    /// Failure reports already handled (bounded), so a redelivery changes nothing.
    pub handled_failures: ThinVec<String>,
    /// When each scaling policy last scaled (asked for), for its cooldown.
    pub scaled_at: BTreeMap<String, OffsetDateTime>,
    /// Alarm occurrences already claimed (at most [`HANDLED_ALARMS_MAX`]), so a repeated
    /// notification changes nothing. Absent from rows stored before alarms.
    #[serde(default)]
    pub handled_alarms: ThinVec<String>,
}

/// The size of [`SharedSpecs`]' index below which it is never pruned.
const SHARED_SPECS_PRUNE_MIN: usize = 64;

/// One allocation per distinct VNFD spec among the VNFs one process holds (the gateway's
/// mirror, a monitor's fold): a hundred thousand VNFs created from one VNFD hold one spec, not
/// a hundred thousand copies. Specs are indexed by their VNFD's id and shared only when equal,
/// so a VNF whose recorded spec differs keeps its own. The index holds no spec alive: it is
/// pruned of specs nobody holds any more whenever it doubles.
#[derive(Debug, Clone, Default)]
pub struct SharedSpecs {
    by_vnfd: HashMap<String, Weak<VnfdSpec>>,
    /// The index's size after its last pruning.
    pruned_len: usize,
}

impl SharedSpecs {
    /// Makes `vnf`'s spec the one already held for its VNFD when they are equal, or the one
    /// held from now on when none is.
    pub fn share(&mut self, vnf: &mut Vnf) {
        let (Some(spec), Some(details)) = (vnf.vnfd.as_mut(), vnf.details.as_ref()) else {
            return;
        };
        match self.by_vnfd.get(&details.vnfd_id).and_then(Weak::upgrade) {
            Some(held) if Arc::ptr_eq(&held, spec) => {}
            Some(held) if *held == **spec => *spec = held,
            Some(_) => {}
            None => {
                self.by_vnfd
                    .insert(details.vnfd_id.clone(), Arc::downgrade(spec));
                if self.by_vnfd.len() >= 2 * self.pruned_len.max(SHARED_SPECS_PRUNE_MIN) {
                    self.by_vnfd.retain(|_, spec| spec.strong_count() > 0);
                    self.pruned_len = self.by_vnfd.len();
                }
            }
        }
    }

    /// VNFDs whose spec is indexed (some possibly no longer held).
    pub fn indexed(&self) -> usize {
        self.by_vnfd.len()
    }
}

/// Deterministic instance ids: a retried or redelivered operation plans the same instances.
pub fn planned_instance_id(operation_id: &str, vdu: &str, index: u32) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{operation_id}/{vdu}/{index}").as_bytes(),
    )
    .to_string()
}

/// The monitor action id of a VNF created by `operation_id`.
pub fn monitor_action_id(operation_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{operation_id}/monitor").as_bytes(),
    )
    .to_string()
}

impl Vnf {
    /// Gives back the room its instance list has beyond what it holds, for a VNF kept long: a
    /// list of one instance, grown by a push or decoded, has room for four (216 bytes more).
    pub fn shrink_to_fit(&mut self) {
        self.instances.shrink_to_fit();
    }

    /// True for a VNF that was created and not deleted.
    pub fn exists(&self) -> bool {
        self.status.is_some() && !self.deleted
    }

    /// Management IPs per VDU, VDUs in VNFD order, instances oldest first.
    pub fn mgmt_ips(&self) -> BTreeMap<String, Vec<Ipv4Addr>> {
        let mut ips: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        for instance in &self.instances {
            ips.entry(instance.vdu.clone())
                .or_default()
                .push(instance.mgmt_ip);
        }
        ips
    }

    /// The monitoring policy of `vdu` as the VNF's VNFD records it, if it has one.
    pub fn monitoring_policy(&self, vdu: &str) -> Option<&MonitoringPolicy> {
        self.vnfd
            .as_ref()
            .and_then(|vnfd| vnfd.vdu(vdu))
            .and_then(|vdu| vdu.monitoring_policy.as_ref())
    }

    fn instance_count(&self, vdu: &str) -> u32 {
        let count = self.instances.iter().filter(|i| i.vdu == vdu).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The VNF's status while it exists; `NotFound` before its create and after its delete.
    fn live_status(&self) -> Result<VnfStatus, VnfError> {
        self.status
            .filter(|_| !self.deleted)
            .ok_or(VnfError::NotFound)
    }

    fn require_status(&self, allowed: &[VnfStatus], action: &'static str) -> Result<(), VnfError> {
        let status = self.live_status()?;
        if allowed.contains(&status) {
            Ok(())
        } else {
            Err(VnfError::InvalidState { status, action })
        }
    }

    fn require_pending(
        &self,
        operation_id: &str,
        kinds: &[OperationKind],
    ) -> Result<&PendingOperation, VnfError> {
        self.pending
            .as_deref()
            .filter(|p| p.operation_id == operation_id && kinds.contains(&p.kind))
            .ok_or_else(|| VnfError::StaleOperation {
                operation_id: operation_id.to_owned(),
            })
    }

    /// Refuses a scale by `policy_name` at `at` within the policy's cooldown after its last.
    fn check_cooldown(&self, policy_name: &str, at: OffsetDateTime) -> Result<(), VnfError> {
        let cooldown_s = self
            .vnfd
            .as_ref()
            .and_then(|vnfd| vnfd.scaling_policy(policy_name))
            .map_or(0, |policy| policy.cooldown_s);
        let Some(last) = self.scaled_at.get(policy_name) else {
            return Ok(());
        };
        let ready = *last + time::Duration::seconds(i64::try_from(cooldown_s).unwrap_or(i64::MAX));
        if at >= ready {
            return Ok(());
        }
        // Rounded up: "retry in 0 s" would be a lie.
        let left = ready - at;
        let seconds_left = u64::try_from(left.whole_seconds()).unwrap_or(0)
            + u64::from(left.subsec_nanoseconds() > 0);
        Err(VnfError::Cooldown {
            policy: policy_name.to_owned(),
            cooldown_s,
            seconds_left,
        })
    }

    fn plan_scale(
        &self,
        operation_id: &str,
        policy_name: &str,
        direction: ScaleDirection,
    ) -> Result<(Vec<PlannedInstance>, Vec<String>), VnfError> {
        let vnfd = self.vnfd.as_ref().ok_or(VnfError::NotFound)?;
        let policy =
            vnfd.scaling_policy(policy_name)
                .ok_or_else(|| VnfError::UnknownScalingPolicy {
                    policy: policy_name.to_owned(),
                })?;
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for vdu in &policy.targets {
            let current = self.instance_count(vdu);
            let limit_error = |wanted: i64, bound, limit| VnfError::ScaleLimit {
                policy: policy.name.clone(),
                direction,
                vdu: vdu.clone(),
                current,
                wanted,
                bound,
                limit,
            };
            match direction {
                ScaleDirection::Out => {
                    let wanted = i64::from(current) + i64::from(policy.increment);
                    if wanted > i64::from(policy.max_instances) {
                        return Err(limit_error(wanted, "max_instances", policy.max_instances));
                    }
                    add.extend((0..policy.increment).map(|n| PlannedInstance {
                        vdu: vdu.clone(),
                        instance_id: planned_instance_id(operation_id, vdu, n),
                    }));
                }
                ScaleDirection::In => {
                    let wanted = i64::from(current) - i64::from(policy.increment);
                    if wanted < i64::from(policy.min_instances) {
                        return Err(limit_error(wanted, "min_instances", policy.min_instances));
                    }
                    let newest_first = self.instances.iter().rev().filter(|i| &i.vdu == vdu);
                    remove.extend(
                        newest_first
                            .take(policy.increment as usize)
                            .map(|i| i.instance_id.clone()),
                    );
                }
            }
        }
        Ok((add, remove))
    }
}

/// Checks that a completion deployed exactly the planned instances.
fn check_plan(pending: &PendingOperation, instances: &[Instance]) -> Result<(), VnfError> {
    let planned: Vec<(&str, &str)> = pending
        .add
        .iter()
        .map(|p| (p.vdu.as_str(), p.instance_id.as_str()))
        .collect();
    let deployed: Vec<(&str, &str)> = instances
        .iter()
        .map(|i| (i.vdu.as_str(), i.instance_id.as_str()))
        .collect();
    if planned == deployed {
        Ok(())
    } else {
        Err(VnfError::PlanMismatch {
            operation_id: pending.operation_id.clone(),
            detail: format!("planned {planned:?}, reported {deployed:?}"),
        })
    }
}

const ACTIVE_OR_FAILED: &[VnfStatus] = &[VnfStatus::Active, VnfStatus::Error, VnfStatus::Dead];

impl Aggregate for Vnf {
    const TYPE: &'static str = "vnf";
    type Command = VnfCommand;
    type Event = VnfEvent;
    type Error = VnfError;
    type Services = ();

    async fn handle(
        &mut self,
        command: VnfCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), VnfError> {
        match command {
            VnfCommand::Create {
                details,
                vnfd,
                operation_id,
            } => {
                if self.status.is_some() {
                    return Err(VnfError::AlreadyExists);
                }
                let add = vnfd
                    .vdus
                    .iter()
                    .flat_map(|vdu| {
                        (0..vnfd.initial_instances(&vdu.name)).map(|n| PlannedInstance {
                            vdu: vdu.name.clone(),
                            instance_id: planned_instance_id(&operation_id, &vdu.name, n),
                        })
                    })
                    .collect();
                let monitored = vnfd.is_monitored();
                let action_id = monitor_action_id(&operation_id);
                let requested = VnfEvent::CreateRequested {
                    details: *details,
                    vnfd,
                    operation_id,
                    add,
                };
                sink.write(requested, self).await;
                if monitored {
                    sink.write(VnfEvent::MonitorAttached { action_id }, self)
                        .await;
                }
            }
            VnfCommand::Scale {
                operation_id,
                policy,
                direction,
                at,
            } => {
                let requested = self.decide_scale(operation_id, policy, direction, at)?;
                sink.write(requested, self).await;
            }
            VnfCommand::Delete { operation_id } => {
                self.require_status(ACTIVE_OR_FAILED, "delete")?;
                if let (Some(_), Some(status)) = (&self.pending, self.status) {
                    return Err(VnfError::InvalidState {
                        status,
                        action: "delete",
                    });
                }
                sink.write(VnfEvent::DeleteRequested { operation_id }, self)
                    .await;
            }
            VnfCommand::Update {
                operation_id,
                config,
            } => {
                self.require_status(&[VnfStatus::Active], "update")?;
                sink.write(
                    VnfEvent::UpdateRequested {
                        operation_id,
                        config,
                    },
                    self,
                )
                .await;
            }
            VnfCommand::CompleteUpdate { operation_id } => {
                self.require_pending(&operation_id, &[OperationKind::Update])?;
                sink.write(VnfEvent::UpdateCompleted { operation_id }, self)
                    .await;
            }
            VnfCommand::CompleteCreate {
                operation_id,
                instances,
            } => {
                let pending = self.require_pending(&operation_id, &[OperationKind::Create])?;
                check_plan(pending, &instances)?;
                let completed = VnfEvent::CreateCompleted {
                    operation_id,
                    instances,
                };
                sink.write(completed, self).await;
            }
            VnfCommand::CompleteScale {
                operation_id,
                added,
            } => {
                let kinds = [OperationKind::ScaleOut, OperationKind::ScaleIn];
                let pending = self.require_pending(&operation_id, &kinds)?;
                check_plan(pending, &added)?;
                let removed = pending.remove.clone();
                let completed = VnfEvent::ScaleCompleted {
                    operation_id,
                    added,
                    removed,
                };
                sink.write(completed, self).await;
            }
            VnfCommand::CompleteDelete { operation_id } => {
                self.require_pending(&operation_id, &[OperationKind::Delete])?;
                if let Some(action_id) = self.action_id.clone() {
                    sink.write(VnfEvent::MonitorDetached { action_id }, self)
                        .await;
                }
                sink.write(VnfEvent::Deleted { operation_id }, self).await;
            }
            VnfCommand::FailOperation {
                operation_id,
                reason,
            } => {
                self.require_pending(&operation_id, &OperationKind::ALL)?;
                let failed = VnfEvent::OperationFailed {
                    operation_id,
                    reason,
                };
                sink.write(failed, self).await;
            }
            VnfCommand::HandleFailure {
                failure,
                operation_id,
                at,
                limit,
            } => {
                for event in self.decide_failure(failure, operation_id, at, limit)? {
                    sink.write(event, self).await;
                }
            }
            VnfCommand::Alarm {
                alarm,
                operation_id,
                at,
                limit,
            } => {
                for event in self.decide_alarm(alarm, operation_id, at, limit)? {
                    sink.write(event, self).await;
                }
            }
            VnfCommand::ClearAlarm { occurrence_id } => {
                if !self.exists() {
                    return Err(VnfError::NotFound);
                }
                if self.handled_alarms.contains(&occurrence_id) {
                    sink.write(VnfEvent::AlarmCleared { occurrence_id }, self)
                        .await;
                }
            }
            VnfCommand::RecordVimDrift { drift } => {
                for event in self.decide_vim_drift(drift)? {
                    sink.write(event, self).await;
                }
            }
            VnfCommand::CompleteHeal {
                operation_id,
                added,
            } => {
                let kinds = [OperationKind::Respawn, OperationKind::VduAutoheal];
                let pending = self.require_pending(&operation_id, &kinds)?;
                check_plan(pending, &added)?;
                let removed = pending.remove.clone();
                let completed = VnfEvent::HealCompleted {
                    operation_id,
                    added,
                    removed,
                };
                sink.write(completed, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: VnfEvent) {
        match event {
            VnfEvent::CreateRequested {
                details,
                vnfd,
                operation_id,
                add,
            } => {
                self.details = Some(Box::new(details));
                self.vnfd = Some(Arc::new(vnfd));
                self.stack_id = Some(operation_id.clone());
                self.begin(operation_id, OperationKind::Create, add, Vec::new());
            }
            VnfEvent::MonitorAttached { action_id } => self.action_id = Some(action_id),
            VnfEvent::CreateCompleted { instances, .. } => {
                self.instances = instances;
                self.finish();
            }
            VnfEvent::ScaleRequested {
                operation_id,
                policy,
                direction,
                add,
                remove,
                at,
            } => {
                if let Some(at) = at {
                    self.scaled_at.insert(policy, at);
                }
                let kind = match direction {
                    ScaleDirection::Out => OperationKind::ScaleOut,
                    ScaleDirection::In => OperationKind::ScaleIn,
                };
                self.begin(operation_id, kind, add, remove);
            }
            VnfEvent::ScaleCompleted { added, removed, .. } => {
                self.instances.retain(|i| !removed.contains(&i.instance_id));
                self.instances.extend(added);
                self.finish();
            }
            VnfEvent::DeleteRequested { operation_id } => {
                let remove = self
                    .instances
                    .iter()
                    .map(|i| i.instance_id.clone())
                    .chain(self.orphans.iter().cloned())
                    .collect();
                self.begin(operation_id, OperationKind::Delete, Vec::new(), remove);
            }
            VnfEvent::UpdateRequested {
                operation_id,
                config,
            } => {
                if let Some(details) = &mut self.details {
                    if !details.attributes.is_object() {
                        details.attributes = serde_json::Value::Object(serde_json::Map::new());
                    }
                    details.attributes["config"] = config;
                }
                self.begin(operation_id, OperationKind::Update, Vec::new(), Vec::new());
            }
            VnfEvent::UpdateCompleted { .. } => self.finish(),
            VnfEvent::MonitorDetached { .. } => self.action_id = None,
            VnfEvent::Deleted { .. } => {
                self.deleted = true;
                self.instances.clear();
                self.orphans.clear();
                self.pending = None;
            }
            VnfEvent::HealStarted {
                operation_id,
                failure,
                add,
                remove,
                at,
            } => {
                self.record_failure(&failure);
                self.dead_instances.push(failure.target.instance_id);
                self.record_heal(at);
                let kind = match failure.action {
                    PolicyAction::VduAutoheal => OperationKind::VduAutoheal,
                    _ => OperationKind::Respawn,
                };
                self.begin(operation_id, kind, add, remove);
            }
            VnfEvent::HealCompleted { added, removed, .. } => {
                self.instances.retain(|i| !removed.contains(&i.instance_id));
                self.instances.extend(added);
                self.finish();
            }
            VnfEvent::FailureLogged { failure } => {
                self.record_failure(&failure);
                if failure.action == PolicyAction::LogAndKill {
                    self.status = Some(VnfStatus::Dead);
                }
            }
            VnfEvent::RespawnLimitReached {
                failure,
                alarm,
                reason,
            } => {
                if let Some(failure) = failure {
                    self.remember_handled(&failure.failure_id);
                }
                if let Some(alarm) = alarm {
                    self.remember_alarm(alarm.occurrence_id);
                }
                self.status = Some(VnfStatus::Error);
                self.error_reason = Some(reason);
            }
            VnfEvent::AlarmClaimed { alarm, .. } | VnfEvent::AlarmLogged { alarm, .. } => {
                self.remember_alarm(alarm.occurrence_id);
            }
            VnfEvent::AlarmRespawnStarted {
                operation_id,
                add,
                remove,
                at,
                ..
            } => {
                self.record_heal(at);
                self.begin(operation_id, OperationKind::Respawn, add, remove);
            }
            VnfEvent::AlarmCleared { occurrence_id } => {
                self.handled_alarms.retain(|id| *id != occurrence_id);
            }
            VnfEvent::VimDriftFound { drift } => {
                self.failure_count += 1;
                self.remember_handled(&drift.drift_id);
                self.status = Some(VnfStatus::Error);
                self.error_reason = Some(drift.reason);
            }
            VnfEvent::OperationFailed { reason, .. } => {
                if let Some(pending) = self.pending.take() {
                    let running = |id: &String| self.instances.iter().any(|i| &i.instance_id == id);
                    let orphans: Vec<String> = pending
                        .add
                        .into_iter()
                        .map(|p| p.instance_id)
                        .filter(|id| !running(id))
                        .collect();
                    self.orphans.extend(orphans);
                }
                self.status = Some(VnfStatus::Error);
                self.error_reason = Some(reason);
            }
        }
    }
}

/// Heal start times kept: more than any sensible `heals_max`, and the most a
/// [`RespawnLimit::heals_max`] can be and still be reached.
pub const HEALS_REMEMBERED_MAX: usize = 32;

/// Appends `item`, dropping the oldest beyond `max`: the aggregate's bounded memories.
fn push_bounded<T>(items: &mut ThinVec<T>, item: T, max: usize) {
    items.push(item);
    let over = items.len().saturating_sub(max);
    items.drain(..over);
}

impl Vnf {
    fn record_failure(&mut self, failure: &FailureRecord) {
        self.failure_count += 1;
        self.remember_handled(&failure.failure_id);
    }

    fn record_heal(&mut self, at: OffsetDateTime) {
        push_bounded(&mut self.heals_at, at, HEALS_REMEMBERED_MAX);
    }

    fn remember_alarm(&mut self, occurrence_id: String) {
        push_bounded(&mut self.handled_alarms, occurrence_id, HANDLED_ALARMS_MAX);
    }

    /// A scale by `policy` asked for at `at`, or why not: the VNF must be ACTIVE, the policy
    /// within its instance bounds and out of its cooldown. The API's scale and an alarm's.
    fn decide_scale(
        &self,
        operation_id: String,
        policy: String,
        direction: ScaleDirection,
        at: OffsetDateTime,
    ) -> Result<VnfEvent, VnfError> {
        self.require_status(&[VnfStatus::Active], "scale")?;
        let (add, remove) = self.plan_scale(&operation_id, &policy, direction)?;
        self.check_cooldown(&policy, at)?;
        Ok(VnfEvent::ScaleRequested {
            operation_id,
            policy,
            direction,
            add,
            remove,
            at: Some(at),
        })
    }

    /// Why a heal at `at` may not start under `limit`, if it may not: `what` is the heal.
    fn heal_limit_reason(
        &self,
        at: OffsetDateTime,
        limit: RespawnLimit,
        what: &str,
    ) -> Option<String> {
        let since = at - limit.window;
        let recent = self.heals_at.iter().filter(|t| **t > since).count();
        (recent >= limit.heals_max as usize).then(|| {
            format!(
                "{what} not attempted: {recent} heals in the last {} s reached the limit of {}",
                limit.window.whole_seconds(),
                limit.heals_max
            )
        })
    }

    /// What an alarm does, in this order: an occurrence already claimed, nothing; a trigger or
    /// action the VNF's VNFD does not define, refused; else the claim and the action (a scale
    /// as [`VnfCommand::Scale`] decides it, a respawn within the heal limit, a log, a log and
    /// a delete), in one message.
    fn decide_alarm(
        &self,
        alarm: AlarmRecord,
        operation_id: String,
        at: OffsetDateTime,
        limit: RespawnLimit,
    ) -> Result<Vec<VnfEvent>, VnfError> {
        let status = self.live_status()?;
        if self.handled_alarms.contains(&alarm.occurrence_id) {
            return Ok(Vec::new());
        }
        let trigger = self
            .vnfd
            .as_ref()
            .and_then(|vnfd| vnfd.alarm_trigger(&alarm.trigger))
            .ok_or_else(|| VnfError::UnknownTrigger {
                trigger: alarm.trigger.clone(),
            })?;
        if !trigger.actions.contains(&alarm.action) {
            return Err(VnfError::NotTheTriggersAction {
                trigger: trigger.name.clone(),
                action: alarm.action.name(),
                actions: trigger.actions.iter().map(AlarmAction::name).collect(),
            });
        }
        let vdus = trigger.vdus.clone();
        let action = alarm.action.clone();
        let claimed = |alarm| VnfEvent::AlarmClaimed { alarm, at };
        Ok(match action {
            AlarmAction::Scale { policy, direction } => {
                let requested = self.decide_scale(operation_id, policy, direction, at)?;
                vec![claimed(alarm), requested]
            }
            AlarmAction::Log => vec![VnfEvent::AlarmLogged { alarm, at }],
            AlarmAction::LogAndKill => {
                self.require_status(ACTIVE_OR_FAILED, "delete")?;
                if self.pending.is_some() {
                    return Err(VnfError::InvalidState {
                        status,
                        action: "delete",
                    });
                }
                vec![
                    VnfEvent::AlarmLogged { alarm, at },
                    VnfEvent::DeleteRequested { operation_id },
                ]
            }
            AlarmAction::Respawn => {
                if self.pending.is_some() {
                    return Err(VnfError::Busy { status });
                }
                if status != VnfStatus::Active {
                    return Err(VnfError::NotHealable { status });
                }
                let replaced = |i: &Instance| match &alarm.instance_id {
                    Some(id) => &i.instance_id == id,
                    None => vdus.is_empty() || vdus.contains(&i.vdu),
                };
                if let Some(id) = &alarm.instance_id
                    && !self.instances.iter().any(|i| &i.instance_id == id)
                {
                    return Err(VnfError::StaleAlarm {
                        reason: format!("instance {id} is no longer part of the VNF"),
                    });
                }
                let what = format!("respawn for alarm {}", alarm.trigger);
                if let Some(reason) = self.heal_limit_reason(at, limit, &what) {
                    return Ok(vec![VnfEvent::RespawnLimitReached {
                        failure: None,
                        alarm: Some(alarm),
                        reason,
                    }]);
                }
                let (add, remove) = self.plan_heal(&operation_id, replaced);
                let occurrence_id = alarm.occurrence_id.clone();
                vec![
                    claimed(alarm),
                    VnfEvent::AlarmRespawnStarted {
                        operation_id,
                        occurrence_id,
                        add,
                        remove,
                        at,
                    },
                ]
            }
        })
    }

    fn remember_handled(&mut self, failure_id: &str) {
        push_bounded(
            &mut self.handled_failures,
            failure_id.to_owned(),
            HANDLED_FAILURES_MAX,
        );
    }

    /// The policy action for a failure report, or why there is none.
    fn decide_failure(
        &self,
        failure: FailureRecord,
        operation_id: String,
        at: OffsetDateTime,
        limit: RespawnLimit,
    ) -> Result<Vec<VnfEvent>, VnfError> {
        let status = self.live_status()?;
        if self.handled_failures.contains(&failure.failure_id) {
            return Ok(Vec::new());
        }
        let target = &failure.target;
        if self.action_id.as_deref() != Some(target.action_id.as_str()) {
            return Err(VnfError::StaleFailure {
                reason: format!(
                    "monitor action id {} is not the VNF's current one ({})",
                    target.action_id,
                    self.action_id.as_deref().unwrap_or("none")
                ),
            });
        }
        let being_replaced = self
            .pending
            .as_ref()
            .is_some_and(|p| p.remove.contains(&target.instance_id));
        if being_replaced {
            return Ok(Vec::new());
        }
        let Some(instance) = self
            .instances
            .iter()
            .find(|i| i.instance_id == target.instance_id)
        else {
            return Err(VnfError::StaleFailure {
                reason: format!(
                    "instance {} is no longer part of the VNF",
                    target.instance_id
                ),
            });
        };
        // The VNF's own record of the VDU's policy decides, never the report.
        let policy = self
            .monitoring_policy(&instance.vdu)
            .map(|policy| policy.failure_action);
        if policy != Some(failure.action) {
            return Err(VnfError::NotThePolicy {
                vdu: instance.vdu.clone(),
                reported: failure.action,
                policy,
            });
        }
        if self.pending.is_some() {
            return Err(VnfError::Busy { status });
        }
        if status != VnfStatus::Active {
            return Err(VnfError::NotHealable { status });
        }
        Ok(match failure.action {
            PolicyAction::Log => vec![VnfEvent::FailureLogged { failure }],
            PolicyAction::LogAndKill => vec![
                VnfEvent::FailureLogged { failure },
                VnfEvent::DeleteRequested { operation_id },
            ],
            PolicyAction::Respawn | PolicyAction::VduAutoheal => {
                let what = format!(
                    "{} of VDU instance {}",
                    failure.action.as_str(),
                    target.instance_id
                );
                if let Some(reason) = self.heal_limit_reason(at, limit, &what) {
                    return Ok(vec![VnfEvent::RespawnLimitReached {
                        failure: Some(failure),
                        alarm: None,
                        reason,
                    }]);
                }
                // Respawn replaces every instance (as Tacker re-created the whole VNF);
                // vdu_autoheal only the failed one.
                let failed = target.instance_id.clone();
                let (add, remove) = match failure.action {
                    PolicyAction::VduAutoheal => {
                        self.plan_heal(&operation_id, |i| i.instance_id == failed)
                    }
                    _ => self.plan_heal(&operation_id, |_| true),
                };
                vec![VnfEvent::HealStarted {
                    operation_id,
                    failure,
                    add,
                    remove,
                    at,
                }]
            }
        })
    }

    /// What a drift of a VDU without a monitoring policy does, in this order: a drift already
    /// recorded, or of an instance an operation is replacing, nothing; of an instance the VNF
    /// no longer runs, stale; of a VDU with a policy, refused (a failure report's job); while
    /// another operation runs, busy; else the VNF goes ERROR with the reason.
    fn decide_vim_drift(&self, drift: VimDrift) -> Result<Vec<VnfEvent>, VnfError> {
        let status = self.live_status()?;
        if self.handled_failures.contains(&drift.drift_id) {
            return Ok(Vec::new());
        }
        let being_replaced = self
            .pending
            .as_ref()
            .is_some_and(|p| p.remove.contains(&drift.instance_id));
        if being_replaced {
            return Ok(Vec::new());
        }
        let Some(instance) = self
            .instances
            .iter()
            .find(|i| i.instance_id == drift.instance_id)
        else {
            return Err(VnfError::StaleFailure {
                reason: format!(
                    "instance {} is no longer part of the VNF",
                    drift.instance_id
                ),
            });
        };
        if let Some(policy) = self.monitoring_policy(&instance.vdu) {
            return Err(VnfError::DriftHasPolicy {
                vdu: instance.vdu.clone(),
                policy: policy.failure_action,
            });
        }
        if self.pending.is_some() {
            return Err(VnfError::Busy { status });
        }
        if status != VnfStatus::Active {
            return Err(VnfError::NotHealable { status });
        }
        Ok(vec![VnfEvent::VimDriftFound { drift }])
    }

    /// The replacement of the instances `replaced` picks (a heal's plan). Replacements keep
    /// the VDU and get new ids, hence new management IPs.
    fn plan_heal(
        &self,
        operation_id: &str,
        replaced: impl Fn(&Instance) -> bool,
    ) -> (Vec<PlannedInstance>, Vec<String>) {
        let replaced: Vec<&Instance> = self.instances.iter().filter(|i| replaced(i)).collect();
        let mut per_vdu: BTreeMap<&str, u32> = BTreeMap::new();
        let add = replaced
            .iter()
            .map(|instance| {
                let n = per_vdu.entry(instance.vdu.as_str()).or_default();
                let planned = PlannedInstance {
                    vdu: instance.vdu.clone(),
                    instance_id: planned_instance_id(operation_id, &instance.vdu, *n),
                };
                *n += 1;
                planned
            })
            .collect();
        let remove = replaced.iter().map(|i| i.instance_id.clone()).collect();
        (add, remove)
    }

    fn begin(
        &mut self,
        operation_id: String,
        kind: OperationKind,
        add: Vec<PlannedInstance>,
        remove: Vec<String>,
    ) {
        self.status = Some(kind.pending_status());
        self.pending = Some(Box::new(PendingOperation {
            operation_id,
            kind,
            add,
            remove,
        }));
    }

    fn finish(&mut self) {
        self.pending = None;
        self.status = Some(VnfStatus::Active);
        self.error_reason = None;
    }
}

#[cfg(test)]
mod tests;
