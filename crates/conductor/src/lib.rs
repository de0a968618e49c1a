//! The conductor: carries out the VNF operations the log asks for, through a VIM, and records
//! their outcome as events.
//!
//! Conductors share one durable consumer of the VNF subjects. Work is keyed by the operation id
//! recorded in the request event: the VIM calls are idempotent under the planned instance ids,
//! and the completion is only accepted while the operation is still pending, so a redelivered
//! or doubly delivered request does its work once. A conductor never writes the tables and
//! never decides a VNF's fate on its own memory: it reloads the VNF from the log first, and the
//! aggregate decides the plan, the policy action and the completion; this crate only calls
//! the VIM and appends what the aggregate answers.
//!
//! A message no conductor can handle is parked (term'd, never redelivered); a consumer that
//! keeps failing stops the conductor (`supervise`), never a conductor that runs on with one.

pub mod drift;
pub mod reconcile;
mod supervise;
pub mod vim;
pub mod vims;
mod vnfd_use;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures::FutureExt;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use events::consume::Durable;
use events::envelope::{self, Actor, Cause, Envelope, SCHEMA_VERSION};
use events::keyring::Keyring;
use events::monitor::{Failure, MonitorEvent, MonitorMessage};
use events::names;
use events::nats_error::NatsError;
use events::store::{self, CommandError, EventLog, StoreError};
use events::telemetry;
use events::vnf::{
    Instance, OperationKind, PendingOperation, PlannedInstance, RespawnLimit, Vnf, VnfCommand,
    VnfError, VnfEvent,
};
use events::vnfd::{Vnfd, VnfdCommand};
use supervise::{Restarts, Verdict};
use vim::{DeployRequest, Vim};
use vims::{Vims, VimsError};

/// Tunables of a conductor.
#[derive(Debug, Clone)]
pub struct ConductorConfig {
    /// This instance's name, recorded as the actor of every event it causes.
    pub instance: String,
    /// How long the server waits for an ack before handing the request to another conductor.
    /// A conductor working on a request reports progress at a third of this.
    pub ack_wait: Duration,
    /// How many heals a VNF may have in a window before it is left in ERROR.
    pub respawn_limit: RespawnLimit,
    /// Fault injection for tests: the conductor stops itself (SIGSTOP) the first time it
    /// reaches this point of a heal, so that a test can kill it there or resume it later.
    pub stop_at: Option<StopPoint>,
    /// How often the registered VIMs are checked (authenticated and called once) and their
    /// status recorded when it changed.
    pub vim_check_interval: Duration,
    /// How often what each registered VIM reports is reconciled with the log (drift).
    pub drift_interval: Duration,
}

/// The points of a heal at which a conductor can crash or stall, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPoint {
    /// The failure report is in hand; nothing is recorded.
    BeforeClaim,
    /// `HandleFailure` is recorded; no VIM call is made.
    AfterClaim,
    /// The new instances are deployed; the failed ones are not deleted yet.
    DuringVim,
    /// The outcome is recorded; the failure report is not acked.
    BeforeAck,
}

impl StopPoint {
    pub const ALL: [StopPoint; 4] = [
        StopPoint::BeforeClaim,
        StopPoint::AfterClaim,
        StopPoint::DuringVim,
        StopPoint::BeforeAck,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StopPoint::BeforeClaim => "before-claim",
            StopPoint::AfterClaim => "after-claim",
            StopPoint::DuringVim => "during-vim",
            StopPoint::BeforeAck => "before-ack",
        }
    }
}

impl std::str::FromStr for StopPoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StopPoint::ALL
            .into_iter()
            .find(|point| point.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = StopPoint::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown stop point {text:?}; one of {}", known.join(", "))
            })
    }
}

impl Default for ConductorConfig {
    fn default() -> Self {
        ConductorConfig {
            instance: format!("conductor-{}", std::process::id()),
            ack_wait: ACK_WAIT_DEFAULT,
            respawn_limit: RespawnLimit::default(),
            stop_at: None,
            vim_check_interval: VIM_CHECK_INTERVAL_DEFAULT,
            drift_interval: DRIFT_INTERVAL_DEFAULT,
        }
    }
}

/// What one carrying out of an operation recorded on the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// Its completion.
    Completed,
    /// Its failure (`OperationFailed`).
    Failed,
    /// Nothing: it was done already, or another conductor recorded it first.
    Nothing,
}

/// Which durable consumer a loop serves.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Lifecycle requests (create, scale, delete) on the VNF subjects.
    Lifecycle,
    /// Failure reports on the monitor stream.
    Heal,
}

/// A stable id derived from another: a redelivered message yields the same command.
fn derived_id(from: &str, step: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{from}/{step}").as_bytes(),
    )
    .to_string()
}

/// Ten seconds: a VIM call on the local VIM takes milliseconds and progress acks (every third
/// of this) keep long operations alive, so this only bounds how long a crashed or stalled
/// conductor's work waits for another.
pub const ACK_WAIT_DEFAULT: Duration = Duration::from_secs(10);
/// Thirty seconds between checks of the registered VIMs: a VIM that stops answering shows
/// `UNREACHABLE` within about that, and every conductor's check costs each VIM one Keystone
/// authentication and one Nova call per period.
pub const VIM_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
/// Fifteen seconds between reconciliations of the registered VIMs with the log: a server
/// deleted or stopped behind vnfm's back is acted on within about that (Tacker walked its VNFs
/// every 10 s; Kubernetes and Masakari notice a failure in about 30 s), and each period costs
/// each VIM one Nova and one Neutron list per conductor, plus a read of the VNF table.
pub const DRIFT_INTERVAL_DEFAULT: Duration = Duration::from_secs(15);
/// Operations each of a conductor's consumers carries out at once (from reading the VNF to
/// recording the outcome). Each holds a few VIM calls; more would only queue inside the VIM.
pub const OPERATIONS_IN_FLIGHT_MAX: usize = 32;
/// Failure reports the heal consumer holds at once, unacked, their ack wait kept by progress
/// reports. More than the operations: a heal's claim is recorded as soon as its report is in
/// hand, and only its VIM work waits for one of the operations. With one operation per report
/// in hand, a storm's claims waited behind the VIM work of the heals before them (part of the
/// claims' tail at 60,000 VDUs in `ops/bench-fleet`, while 32 heals held every slot). The lifecycle
/// consumer holds as many messages as it carries out operations: they can be large, and each
/// needs an operation anyway.
const FAILURES_IN_HAND_MAX: usize = 256;
/// Delay before a request that failed on a transient error (NATS down) is offered again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long a conductor stopping itself at a test's stop point waits for the SIGSTOP to land:
/// it lands within microseconds; the wait only keeps this thread from running on before it.
const STOP_LANDING_WAIT: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A consumer kept failing: the conductor stops rather than run on without it.
    #[error(
        "consumer {consumer} failed {failures} times within {} s; the conductor stops: {last_error}",
        supervise::FAILURE_WINDOW_S
    )]
    ConsumerFailed {
        consumer: &'static str,
        failures: usize,
        /// The last failure, in the message rather than as a `source`, so that a chain
        /// printed with `{:#}` names it once.
        last_error: Box<ConductorError>,
    },
    /// The conductor stopped while the operation waited for one of
    /// [`OPERATIONS_IN_FLIGHT_MAX`]: it is left, pending, to the next conductor its request
    /// is offered to.
    #[error("the conductor is stopping; the operation is left to another conductor")]
    Stopping,
}

/// One conductor instance.
#[derive(Clone)]
pub struct Conductor {
    log: EventLog,
    vims: Arc<Vims>,
    config: ConductorConfig,
    /// Set once the stop point has fired, so that a resumed conductor goes on.
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Conductor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conductor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Conductor {
    /// A conductor that drives `local` (the built-in VIM) only.
    pub fn new(log: EventLog, local: Arc<dyn Vim>, config: ConductorConfig) -> Self {
        Conductor {
            log,
            vims: Arc::new(Vims::local_only(local)),
            config,
            stopped: Arc::default(),
        }
    }

    /// The same conductor, driving the VIMs registered on the log too: their credentials
    /// open with their data keys, which `keyring` unwraps with the master key.
    #[must_use]
    pub fn with_registered_vims(self, keyring: Keyring) -> Self {
        let vims = Arc::new(self.vims.with_registry(self.log.clone(), keyring));
        Conductor { vims, ..self }
    }

    /// Stops this process (SIGSTOP) if `point` is the configured stop point reached first.
    fn stop_point(&self, point: StopPoint) {
        if self.config.stop_at == Some(point)
            && !self.stopped.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tracing::warn!(
                point = point.as_str(),
                "Stop point reached; stopping this process."
            );
            let this = rustix::process::getpid();
            if let Err(e) = rustix::process::kill_process(this, rustix::process::Signal::STOP) {
                tracing::error!(error = %e, "Cannot stop at the stop point.");
                return;
            }
            // The signal is the process's, and another thread may be the one to take it: this
            // thread must not go past the point before the stop lands, so it waits in a
            // syscall, where the stop catches it. After the resume the sleep is long over.
            std::thread::sleep(STOP_LANDING_WAIT);
        }
    }

    fn actor(&self) -> Actor {
        Actor::new(envelope::ActorKind::Conductor, self.config.instance.clone())
    }

    /// Consumes VNF requests and failure reports until `shutdown` resolves, then finishes the
    /// operations it has begun; a request in hand still waiting for an operation is put back
    /// for another conductor.
    ///
    /// A consumer that fails is opened again after a pause; one that keeps failing ends the
    /// conductor with [`ConductorError::ConsumerFailed`], never a conductor that runs on with
    /// one consumer. The other consumer's operations in hand are then dropped unacked, and
    /// redelivered to another conductor, as after a crash.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ConductorError> {
        store::open_monitor_stream(self.log.jetstream()).await?;
        let shutdown = shutdown.shared();
        let lifecycle = supervised(names::CONDUCTOR_CONSUMER, shutdown.clone(), || {
            self.consume(Work::Lifecycle, shutdown.clone())
        });
        let heals = supervised(names::HEAL_CONSUMER, shutdown.clone(), || {
            self.consume(Work::Heal, shutdown.clone())
        });
        let checks = self.check_vims(shutdown.clone());
        let drift = self.reconcile_drift(shutdown.clone());
        tokio::try_join!(lifecycle, heals, checks, drift).map(|((), (), (), ())| ())
    }

    /// Reconciles what the registered VIMs report with the log every `drift_interval` until
    /// `shutdown` (`reconcile`), the first time one period after the start. A reconciliation
    /// that cannot reach the log is logged and tried again next period.
    async fn reconcile_drift(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ConductorError> {
        tokio::pin!(shutdown);
        if !self.vims.has_registry() {
            shutdown.await;
            return Ok(());
        }
        let actor = self.actor();
        let start = tokio::time::Instant::now() + self.config.drift_interval;
        let mut ticks = tokio::time::interval_at(start, self.config.drift_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = ticks.tick() => {}
            }
            let reconciled = tokio::select! {
                () = &mut shutdown => return Ok(()),
                reconciled = reconcile::reconcile(&self.log, &self.vims, &actor) => reconciled,
            };
            match reconciled {
                Ok(done) if done.failures + done.errors > 0 => {
                    tracing::info!(
                        vims = done.vims,
                        failures = done.failures,
                        errors = done.errors,
                        "VIM drift acted on."
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "VIM drift not reconciled; next period."),
            }
        }
    }

    /// Checks the registered VIMs every `vim_check_interval` until `shutdown`, the first time
    /// at once. A check that cannot reach the log is logged and tried again next period.
    async fn check_vims(&self, shutdown: impl Future<Output = ()>) -> Result<(), ConductorError> {
        tokio::pin!(shutdown);
        if !self.vims.has_registry() {
            shutdown.await;
            return Ok(());
        }
        let actor = self.actor();
        let mut ticks = tokio::time::interval(self.config.vim_check_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = ticks.tick() => {}
            }
            let checked = tokio::select! {
                () = &mut shutdown => return Ok(()),
                checked = self.vims.check_all(&actor) => checked,
            };
            if let Err(e) = checked {
                tracing::warn!(error = %e, "VIM check not finished; next period.");
            }
        }
    }

    async fn consume(
        &self,
        work: Work,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ConductorError> {
        let (stream, name, config) = match work {
            Work::Lifecycle => (
                self.log.stream().clone(),
                names::CONDUCTOR_CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(names::CONDUCTOR_CONSUMER.into()),
                    filter_subject: names::VNF_SUBJECTS.into(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            ),
            // `setup` made this consumer; the conductor only sets its own ack wait on it.
            Work::Heal => (
                self.log
                    .jetstream()
                    .get_stream(names::FAILURE_STREAM)
                    .await
                    .map_err(|e| NatsError::new("opening the failure stream", e))?,
                names::HEAL_CONSUMER,
                events::setup::heal_consumer(),
            ),
        };
        let mut messages = Durable::new(
            stream,
            consumer::pull::Config {
                ack_wait: self.config.ack_wait,
                ..config
            },
        );
        // Ends with this consumer's loop (aborted below).
        let lag = tokio::spawn(messages.report_lag());
        // Bounds the messages in hand; a permit is held by each spawned task.
        let in_hand = match work {
            Work::Lifecycle => OPERATIONS_IN_FLIGHT_MAX,
            Work::Heal => FAILURES_IN_HAND_MAX,
        };
        let permits = Arc::new(Semaphore::new(in_hand));
        // Bounds the operations carried out; shared by this consumer's tasks.
        let operations = Arc::new(Semaphore::new(OPERATIONS_IN_FLIGHT_MAX));
        let mut in_flight = JoinSet::new();
        tokio::pin!(shutdown);
        tracing::info!(instance = %self.config.instance, consumer = name, "Conductor consuming.");
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = permits.clone().acquire_owned() => permit.expect("semaphore never closed"),
            };
            let message = tokio::select! {
                () = &mut shutdown => break,
                message = messages.next() => message,
            };
            let request = match decode(work, &message.payload) {
                Ok(request) => request,
                Err(reason) => {
                    messages.park(&message, &reason).await;
                    continue;
                }
            };
            let (conductor, operations) = (self.clone(), operations.clone());
            in_flight.spawn(async move {
                let ack = match request {
                    Request::Lifecycle(envelope) => {
                        conductor
                            .handle_request(&message, &envelope, &operations)
                            .await
                    }
                    Request::Heal(failure) => {
                        conductor
                            .handle_failure(&message, &failure, &operations)
                            .await
                    }
                };
                if let Err(e) = message.ack_with(ack).await {
                    tracing::warn!(error = %e, "Ack lost; the message will be redelivered and found done.");
                }
                drop(permit);
            });
            while let Some(joined) = in_flight.try_join_next() {
                log_panic(name, joined);
            }
        }
        lag.abort();
        // What waits for an operation is put back rather than carried out: a stopping conductor
        // finishes only the operations it has begun (its claims are recorded either way).
        operations.close();
        tracing::info!(
            consumer = name,
            in_hand = in_flight.len(),
            operations = OPERATIONS_IN_FLIGHT_MAX - operations.available_permits(),
            "Conductor draining."
        );
        while let Some(joined) = in_flight.join_next().await {
            log_panic(name, joined);
        }
        Ok(())
    }

    async fn handle_request(
        &self,
        message: &jetstream::Message,
        envelope: &Envelope<VnfEvent>,
        operations: &Semaphore,
    ) -> AckKind {
        let work = self.carry_out(envelope, operations);
        match with_progress(message, self.config.ack_wait / 3, work).await {
            Ok(()) => AckKind::Ack,
            Err(e) => {
                tracing::warn!(vnf_id = %envelope.aggregate_id, error = %e, "Request not finished; it will be offered again.");
                AckKind::Nak(Some(RETRY_DELAY))
            }
        }
    }

    /// Claims a failure on the VNF's subject and runs its policy action (the specification's
    /// `execute_policy_action`); acks only once the outcome is stored.
    async fn handle_failure(
        &self,
        message: &jetstream::Message,
        failure: &Failure,
        operations: &Semaphore,
    ) -> AckKind {
        let work = self.execute_policy_action(failure, operations);
        match with_progress(message, self.config.ack_wait / 3, work).await {
            Ok(ack) => {
                self.stop_point(StopPoint::BeforeAck);
                ack
            }
            Err(e) => {
                tracing::warn!(failure_id = %failure.failure_id, error = %e, "Failure not handled yet; it will be offered again.");
                AckKind::Nak(Some(RETRY_DELAY))
            }
        }
    }

    async fn execute_policy_action(
        &self,
        failure: &Failure,
        operations: &Semaphore,
    ) -> Result<AckKind, ConductorError> {
        self.stop_point(StopPoint::BeforeClaim);
        let vnf_id = &failure.target.vnf_id;
        let operation_id = derived_id(&failure.failure_id, "heal");
        let claim = Cause {
            actor: self.actor(),
            command_id: derived_id(&failure.failure_id, "claim"),
            correlation_id: failure.failure_id.clone(),
            causation_id: failure.failure_id.clone(),
        };
        let command = VnfCommand::HandleFailure {
            failure: failure.clone().into(),
            operation_id: operation_id.clone(),
            at: OffsetDateTime::now_utc(),
            limit: self.config.respawn_limit,
        };
        match self.log.execute::<Vnf>(vnf_id, command, &(), &claim).await {
            Ok(executed) => {
                let healing = executed
                    .aggregate
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.operation_id == operation_id);
                if healing {
                    if !executed.events.is_empty() {
                        metrics::counter!(telemetry::HEALS_CLAIMED).increment(1);
                    }
                    self.stop_point(StopPoint::AfterClaim);
                    tracing::info!(vnf_id, failure_id = %failure.failure_id, action = failure.action.as_str(), "Healing.");
                    let completion = Cause::follow_up(
                        self.actor(),
                        &claim.correlation_id,
                        &claim.command_id,
                        &operation_id,
                    );
                    match self
                        .carry_out_operation(vnf_id, &operation_id, &completion, operations)
                        .await?
                    {
                        Recorded::Completed => {
                            metrics::counter!(telemetry::HEALS_COMPLETED).increment(1);
                            let latency = OffsetDateTime::now_utc() - failure.detected_at;
                            metrics::histogram!(telemetry::HEAL_LATENCY)
                                .record(latency.as_seconds_f64().max(0.0));
                        }
                        Recorded::Failed => {
                            metrics::counter!(telemetry::HEALS_FAILED).increment(1);
                        }
                        Recorded::Nothing => {}
                    }
                } else if !executed.events.is_empty() {
                    tracing::info!(vnf_id, failure_id = %failure.failure_id, action = failure.action.as_str(), "Policy action recorded.");
                }
                Ok(AckKind::Ack)
            }
            Err(CommandError::Rejected(VnfError::Busy { status })) => {
                tracing::info!(
                    vnf_id,
                    status = status.as_str(),
                    "VNF busy; the failure waits."
                );
                Ok(AckKind::Nak(Some(RETRY_DELAY)))
            }
            Err(CommandError::Rejected(
                e @ (VnfError::StaleFailure { .. }
                | VnfError::NotThePolicy { .. }
                | VnfError::NotFound),
            )) => {
                tracing::info!(vnf_id, failure_id = %failure.failure_id, reason = %e, "bad_action: failure report refused.");
                self.reject(failure, &e.to_string()).await?;
                Ok(AckKind::Ack)
            }
            Err(CommandError::Rejected(e)) => {
                tracing::warn!(vnf_id, failure_id = %failure.failure_id, reason = %e, "No automatic action.");
                Ok(AckKind::Ack)
            }
            Err(CommandError::Store(e)) => Err(e.into()),
        }
    }

    /// Answers a stale failure report with `bad_action`, so that monitors drop that job.
    async fn reject(&self, failure: &Failure, reason: &str) -> Result<(), ConductorError> {
        let message = MonitorMessage::new(MonitorEvent::BadAction {
            failure_id: failure.failure_id.clone(),
            conductor: self.actor(),
            target: failure.target.clone(),
            reason: reason.to_owned(),
        });
        let payload = serde_json::to_vec(&message).map_err(StoreError::from)?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(derived_id(&failure.failure_id, "bad_action"));
        self.log
            .jetstream()
            .send_publish(names::bad_action_subject(&failure.target.vnf_id), publish)
            .await
            .map_err(|e| NatsError::new("publishing bad_action", e))?
            .await
            .map_err(|e| NatsError::new("storing bad_action", e))?;
        Ok(())
    }

    /// Carries out every request in one stored message.
    async fn carry_out(
        &self,
        envelope: &Envelope<VnfEvent>,
        operations: &Semaphore,
    ) -> Result<(), ConductorError> {
        for event in &envelope.events {
            let (VnfEvent::CreateRequested { operation_id, .. }
            | VnfEvent::ScaleRequested { operation_id, .. }
            | VnfEvent::UpdateRequested { operation_id, .. }
            | VnfEvent::AlarmRespawnStarted { operation_id, .. }
            | VnfEvent::DeleteRequested { operation_id }) = event
            else {
                continue;
            };
            let cause = Cause::follow_up(
                self.actor(),
                &envelope.cause.correlation_id,
                &envelope.cause.command_id,
                operation_id,
            );
            self.carry_out_operation(&envelope.aggregate_id, operation_id, &cause, operations)
                .await?;
        }
        Ok(())
    }

    /// Carries out one operation if it is still pending, recording the outcome under `cause`,
    /// once one of `operations` is free; answers Ok when it is already done, with what this
    /// call recorded, and [`ConductorError::Stopping`] when `operations` closed first.
    async fn carry_out_operation(
        &self,
        vnf_id: &str,
        operation_id: &str,
        cause: &Cause,
        operations: &Semaphore,
    ) -> Result<Recorded, ConductorError> {
        let Ok(_operation) = operations.acquire().await else {
            return Err(ConductorError::Stopping);
        };
        let loaded = self.log.load::<Vnf>(vnf_id).await?;
        let vnf = loaded.aggregate;
        let Some(pending) = vnf
            .pending
            .clone()
            .filter(|p| p.operation_id == operation_id)
        else {
            if vnf.deleted {
                // A redelivered delete whose VNFD release may not have been recorded.
                self.release_vnfd(&vnf, vnf_id, cause).await?;
            }
            tracing::info!(
                vnf_id,
                operation_id,
                "Operation already done; nothing to do."
            );
            return Ok(Recorded::Nothing);
        };
        tracing::info!(vnf_id, operation_id, kind = ?pending.kind, "Carrying out operation.");
        let vim_id = vnf
            .details
            .as_ref()
            .map_or(events::vim::LOCAL_VIM_ID, |details| details.vim_id.as_str());
        let vim = match self.vims.get(vim_id).await {
            Ok(vim) => Ok(vim),
            Err(VimsError::Store(e)) => return Err(e.into()),
            Err(VimsError::Unusable(reason)) => Err(reason),
        };
        // Only a registered VIM's servers take user_data (the local VIM ignores it), and only
        // an operation that deploys needs it opened.
        let sealed_user_data = vnf
            .details
            .as_ref()
            .filter(|_| vim_id != events::vim::LOCAL_VIM_ID && !pending.add.is_empty())
            .and_then(|details| details.user_data.as_deref())
            .unwrap_or(&serde_json::Value::Null);
        let (vim, user_data) = match self.vims.user_data(vnf_id, sealed_user_data).await {
            Ok(user_data) => (vim, user_data),
            Err(VimsError::Store(e)) => return Err(e.into()),
            Err(VimsError::Unusable(reason)) => (vim.and(Err(reason)), BTreeMap::new()),
        };
        let outcome = self
            .carry_out_plan(&vnf, vnf_id, &pending, vim.as_deref(), &user_data, cause)
            .await?;
        if let (Err(e), Ok(vim)) = (&outcome, &vim) {
            tracing::warn!(vnf_id, operation_id, error = %e, "Operation failed.");
            self.undo_deploys(vim.as_ref(), &pending).await;
        }
        let recorded = if outcome.is_ok() {
            Recorded::Completed
        } else {
            Recorded::Failed
        };
        let command = pending.completion(outcome.map_err(|e| e.to_string()));
        let completed_delete = matches!(command, VnfCommand::CompleteDelete { .. });
        match self.log.execute::<Vnf>(vnf_id, command, &(), cause).await {
            Ok(executed) => {
                if completed_delete {
                    self.release_vnfd(&executed.aggregate, vnf_id, cause)
                        .await?;
                }
                tracing::info!(vnf_id, operation_id, "Operation recorded.");
                Ok(recorded)
            }
            Err(CommandError::Rejected(VnfError::StaleOperation { .. })) => {
                tracing::info!(
                    vnf_id,
                    operation_id,
                    "Another conductor recorded the operation first."
                );
                Ok(Recorded::Nothing)
            }
            Err(CommandError::Rejected(e)) => {
                tracing::error!(vnf_id, operation_id, error = %e, "Completion refused.");
                Ok(Recorded::Nothing)
            }
            Err(CommandError::Store(e)) => Err(e.into()),
        }
    }

    /// Deploys the planned instances and removes the planned removals (and, for an update,
    /// hands the VNF's config to the VIM); answers the deployed ones.
    async fn execute_plan(
        &self,
        vim: &dyn Vim,
        vnf: &Vnf,
        vnf_id: &str,
        pending: &PendingOperation,
        user_data: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, vim::VimError> {
        // All at once: a cloud builds servers side by side (one at a time, a VNF of several
        // VDUs would take the sum of their boots). On a failure the others are dropped, and
        // `undo_deploys` removes whatever each had made.
        let added = futures::future::try_join_all(pending.add.iter().map(|planned| {
            let user_data = user_data.get(&planned.vdu).map(String::as_str);
            self.deploy(vim, vnf, vnf_id, &pending.operation_id, planned, user_data)
        }))
        .await?;
        if matches!(
            pending.kind,
            OperationKind::Respawn | OperationKind::VduAutoheal
        ) {
            self.stop_point(StopPoint::DuringVim);
        }
        for instance_id in &pending.remove {
            vim.delete_vdu(instance_id).await?;
        }
        if pending.kind == OperationKind::Update {
            let config = vnf
                .details
                .as_ref()
                .and_then(|details| details.attributes.get("config"))
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            vim.apply_config(&vim::ConfigRequest {
                operation_id: pending.operation_id.clone(),
                vnf_id: vnf_id.to_owned(),
                instance_ids: vnf
                    .instances
                    .iter()
                    .map(|i| i.instance_id.clone())
                    .collect(),
                config,
            })
            .await?;
        }
        Ok(added)
    }

    async fn deploy(
        &self,
        vim: &dyn Vim,
        vnf: &Vnf,
        vnf_id: &str,
        operation_id: &str,
        planned: &PlannedInstance,
        user_data: Option<&str>,
    ) -> Result<Instance, vim::VimError> {
        let http_port = vnf
            .monitoring_policy(&planned.vdu)
            .and_then(|policy| policy.port);
        let deployed = vim
            .deploy_vdu(&DeployRequest {
                operation_id: operation_id.to_owned(),
                vnf_id: vnf_id.to_owned(),
                vdu: planned.vdu.clone(),
                instance_id: planned.instance_id.clone(),
                http_port,
                metrics_port: vnf
                    .vnfd
                    .as_ref()
                    .is_some_and(|spec| spec.metrics_watched(&planned.vdu))
                    .then_some(events::spec::VDU_METRICS_PORT),
                vdu_spec: vnf
                    .vnfd
                    .as_ref()
                    .and_then(|spec| spec.vdu(&planned.vdu))
                    .cloned(),
                placement: vnf
                    .vnfd
                    .as_ref()
                    .map(|spec| spec.placement_of(&planned.vdu))
                    .unwrap_or_default(),
                // Opened from the VNF's sealed user_data (`Vims::user_data`).
                user_data: user_data.map(str::to_owned),
            })
            .await?;
        Ok(Instance {
            instance_id: deployed.instance_id,
            vdu: planned.vdu.clone(),
            mgmt_ip: deployed.mgmt_ip,
            booted_at: OffsetDateTime::now_utc(),
        })
    }

    /// Best effort: a failed operation leaves no half-deployed instance running.
    async fn undo_deploys(&self, vim: &dyn Vim, pending: &PendingOperation) {
        for planned in &pending.add {
            if let Err(e) = vim.delete_vdu(&planned.instance_id).await {
                tracing::warn!(instance_id = %planned.instance_id, error = %e, "Cannot undo a deploy; a later delete will retry.");
            }
        }
    }

    async fn release_vnfd(
        &self,
        vnf: &Vnf,
        vnf_id: &str,
        cause: &Cause,
    ) -> Result<(), ConductorError> {
        let Some(details) = &vnf.details else {
            return Ok(());
        };
        let release = VnfdCommand::Release {
            vnf_id: vnf_id.to_owned(),
        };
        let cause = Cause::follow_up(
            cause.actor.clone(),
            &cause.correlation_id,
            &cause.command_id,
            "release",
        );
        match self
            .log
            .execute::<Vnfd>(&details.vnfd_id, release, &(), &cause)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(_)) => Ok(()),
            Err(CommandError::Store(e)) => Err(e.into()),
        }
    }
}

/// An operation that panicked leaves its message unacked (it is offered again after the ack
/// wait); say so rather than drop the panic silently.
fn log_panic(consumer: &'static str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        tracing::error!(consumer, error = %e, "Operation panicked; its message will be offered again.");
    }
}

/// A message a conductor can act on, decoded.
enum Request {
    /// A lifecycle message, which may carry requests (create, scale, delete).
    Lifecycle(Envelope<VnfEvent>),
    /// A failure report.
    Heal(Failure),
}

/// Decodes a message of `work`'s consumer; why no conductor can ever handle it (undecodable,
/// of an unknown type, of a newer schema, not a failure report), which parks it.
fn decode(work: Work, payload: &[u8]) -> Result<Request, String> {
    match work {
        Work::Lifecycle => envelope::decode::<VnfEvent>(payload)
            .map(Request::Lifecycle)
            .map_err(|e| e.to_string()),
        Work::Heal => match serde_json::from_slice::<MonitorMessage>(payload) {
            Ok(MonitorMessage { schema_version, .. }) if schema_version > SCHEMA_VERSION => {
                Err(format!(
                    "schema version {schema_version} is newer than this conductor's {SCHEMA_VERSION}"
                ))
            }
            Ok(MonitorMessage {
                event: MonitorEvent::Failure(failure),
                ..
            }) => Ok(Request::Heal(failure)),
            Ok(_) => Err("not a failure report".to_owned()),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Runs the consumer `run` makes until it ends (at `shutdown`), opening it again after each
/// failure as [`Restarts`] says, until it says to give up.
async fn supervised<F, Fut>(
    consumer: &'static str,
    shutdown: impl Future<Output = ()>,
    mut run: F,
) -> Result<(), ConductorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ConductorError>>,
{
    tokio::pin!(shutdown);
    let mut restarts = Restarts::default();
    loop {
        let error = match run().await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        match restarts.on_failure(tokio::time::Instant::now()) {
            Verdict::RetryAfter(delay) => {
                tracing::warn!(consumer, error = %error, delay_ms = delay.as_millis(), "Consumer failed; opening it again after a pause.");
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Verdict::GiveUp { failures } => {
                tracing::error!(consumer, failures, error = %error, "Consumer keeps failing; the conductor stops.");
                return Err(ConductorError::ConsumerFailed {
                    consumer,
                    failures,
                    last_error: Box::new(error),
                });
            }
        }
    }
}

/// Runs `work`, telling the server every `every` that the message is still being worked on.
async fn with_progress<T>(
    message: &jetstream::Message,
    every: Duration,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = ticker.tick() => {
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "Progress ack lost.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn failed() -> ConductorError {
        NatsError::other("opening the monitor stream", "stream not found").into()
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_that_keeps_failing_stops_the_conductor_with_its_name() {
        let started = tokio::time::Instant::now();
        let runs = Cell::new(0);
        let result = supervised("conductor-heal", futures::future::pending(), || {
            runs.set(runs.get() + 1);
            async { Err(failed()) }
        })
        .await;
        let Err(error @ ConductorError::ConsumerFailed { .. }) = result else {
            panic!("{result:?}")
        };
        let text = error.to_string();
        assert!(text.contains("conductor-heal"), "{text}");
        assert!(text.contains("stream not found"), "{text}");
        assert_eq!(runs.get(), supervise::FAILURES_PER_WINDOW_MAX);
        // Re-opened after 1 + 2 + 4 + 8 + 16 s of pauses.
        assert_eq!(started.elapsed(), Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_that_fails_then_recovers_runs_on() {
        let runs = Cell::new(0);
        let result = supervised("conductor", futures::future::pending(), || {
            runs.set(runs.get() + 1);
            let outcome = if runs.get() < 3 {
                Err(failed())
            } else {
                Ok(())
            };
            async { outcome }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(runs.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_during_a_pause_ends_the_consumer_cleanly() {
        let started = tokio::time::Instant::now();
        let shutdown = tokio::time::sleep(Duration::from_millis(500));
        let result = supervised("conductor", shutdown, || async { Err(failed()) }).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }
}
