//! The publisher: stores the monitor's messages and state writes through a [`Sink`] (NATS in
//! production), retrying what is not stored.
//!
//! Reports go first: failure reports and VDU state changes (and the monitor's other reports)
//! are stored before telemetry (rosters, rounds) and state writes that were queued earlier, so
//! that a failure is not held up behind a round's thousands of state writes (up to
//! [`JOBS_AHEAD_MAX`] of them taken ahead; a report further back waits for room). Jobs are
//! stored several at once ([`REPORTS_IN_FLIGHT_MAX`], [`BULK_IN_FLIGHT_MAX`]), but never two of
//! one sequence ([`Publish::sequence`]: a VNF's, or the monitor's own), so within each lane a
//! sequence keeps its order (a roster before the rounds that name it; a target's transitions
//! in the order they happened).
//!
//! A failure report, a VDU state change or a roster is retried with back-off until it is
//! stored or the monitor stops; round results and state writes (telemetry, and rewritten by
//! later rounds) are given up after [`ATTEMPTS_MAX`] with a log line that says so. A job that can never be
//! stored ([`is_permanent`]: it does not encode, or is larger than the server accepts) is
//! given up at once, whatever its kind. Once the monitor stops,
//! the publisher keeps going only until its drain deadline, then says what it did not
//! deliver. It never decides what to publish, and never writes a state it could not encode.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use events::monitor::{InstanceMonitorState, MonitorEvent, MonitorMessage};
use events::nats_error::NatsErrorKind;
use events::store::StoreError;
use events::telemetry;

use crate::MonitorError;
use crate::judge::Outgoing;

/// Attempts to store a round's results or a state write before giving up on it: a later
/// round carries newer ones, and a stuck telemetry message must not hold up the reports
/// queued behind it for long.
pub const ATTEMPTS_MAX: u32 = 5;
/// Pause after a first failed attempt; it doubles with each further one.
pub const RETRY_DELAY_FIRST: Duration = Duration::from_millis(200);
/// The longest pause between attempts: a NATS leader election takes a few seconds, and a
/// report must follow soon after the stream is back.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(5);
/// Jobs taken from the inbox ahead of the one being stored, so that a report queued behind
/// them can go first: a round's state writes for a few thousand VNFs. More would only hold
/// memory the inbox's own bound already limits.
pub const JOBS_AHEAD_MAX: usize = 4_096;
/// Reports stored at once, each waiting for its acknowledgement. One at a time, a round that
/// found 66 VDUs down stored their 132 reports one after the other, each a round trip to a
/// busy nats-server, and the last failure reached the conductors about a second after it was
/// detected (`ops/bench-fleet`'s storm at 20,000 VDUs).
pub const REPORTS_IN_FLIGHT_MAX: usize = 64;
/// Telemetry and state writes stored at once: they are not waited for by anyone, and each
/// round's writes come in a burst that must not crowd out the API's reads on nats-server.
pub const BULK_IN_FLIGHT_MAX: usize = 4;

/// Where the publisher stores things: the monitor stream and the state bucket.
pub trait Sink: Send + Sync + 'static {
    /// Publishes `payload` on `subject` and waits for the stream's acknowledgement.
    fn publish(
        &self,
        subject: &str,
        payload: Bytes,
        message_id: Option<&str>,
    ) -> impl Future<Output = Result<(), MonitorError>> + Send;
    fn put_state(
        &self,
        vnf_id: &str,
        value: Bytes,
    ) -> impl Future<Output = Result<(), MonitorError>> + Send;
    fn delete_state(&self, vnf_id: &str) -> impl Future<Output = Result<(), MonitorError>> + Send;
}

/// Work for the publisher.
#[derive(Debug, Clone)]
pub enum Publish {
    Message {
        subject: String,
        message: Box<MonitorMessage>,
        /// Set for failure reports, so a retried publish is stored once.
        message_id: Option<String>,
    },
    /// A VNF's states, or `None` to delete them.
    State {
        vnf_id: String,
        states: Option<BTreeMap<String, InstanceMonitorState>>,
    },
}

impl From<Outgoing> for Publish {
    fn from(outgoing: Outgoing) -> Self {
        Publish::Message {
            subject: outgoing.subject,
            message: Box::new(MonitorMessage::new(outgoing.event)),
            message_id: outgoing.message_id,
        }
    }
}

/// What a job is, for the retry rule and the shutdown count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RoundResults,
    /// The roster of round messages (`events::monitor::rounds`): retried until stored, since
    /// every round that names it is unreadable without it until the monitor publishes it
    /// again, [`ROSTER_REPUBLISH_ROUNDS`](events::monitor::rounds::ROSTER_REPUBLISH_ROUNDS)
    /// rounds later.
    Roster,
    StateWrite,
    FailureReport,
    /// A VDU going down or coming back, a suspected fault or a starved monitor, a refused
    /// target.
    StateChange,
}

impl Kind {
    /// Whether a job of this kind is a report, stored before the telemetry and state writes
    /// queued ahead of it.
    pub fn is_report(self) -> bool {
        matches!(self, Kind::FailureReport | Kind::StateChange)
    }
}

/// Jobs taken from the inbox and not stored yet, reports and the rest, each in order, and
/// what is being stored.
#[derive(Debug, Default)]
struct Lanes {
    reports: VecDeque<Publish>,
    bulk: VecDeque<Publish>,
    /// The jobs being stored, by the number [`Lanes::start`] gave them.
    started: HashMap<u64, Arc<Publish>>,
    /// Jobs started so far: the next one's number.
    starts: u64,
    /// The sequences of the jobs being stored, and how many of them are reports.
    busy: HashSet<Option<String>>,
    reports_in_flight: usize,
}

impl Lanes {
    fn push(&mut self, job: Publish) {
        if job.kind().is_report() {
            self.reports.push_back(job);
        } else {
            self.bulk.push_back(job);
        }
    }

    /// The next job to store and its number, marked as being stored: the first report of a
    /// sequence not being stored while reports have room, else the first such job of the rest
    /// while they have.
    fn start(&mut self) -> Option<(u64, Arc<Publish>)> {
        let in_flight = self.busy.len();
        let bulk_in_flight = in_flight - self.reports_in_flight;
        let free = |lane: &VecDeque<Publish>, busy: &HashSet<Option<String>>| {
            lane.iter().position(|job| !busy.contains(&job.sequence()))
        };
        let job = if self.reports_in_flight < REPORTS_IN_FLIGHT_MAX
            && let Some(at) = free(&self.reports, &self.busy)
        {
            self.reports_in_flight += 1;
            self.reports.remove(at)
        } else if bulk_in_flight < BULK_IN_FLIGHT_MAX
            && let Some(at) = free(&self.bulk, &self.busy)
        {
            self.bulk.remove(at)
        } else {
            None
        }?;
        self.busy.insert(job.sequence());
        let (number, job) = (self.starts, Arc::new(job));
        self.starts += 1;
        self.started.insert(number, job.clone());
        Some((number, job))
    }

    /// Job `number` is stored or given up: answers it.
    fn finish(&mut self, number: u64) -> Option<Arc<Publish>> {
        let job = self.started.remove(&number)?;
        self.busy.remove(&job.sequence());
        if job.kind().is_report() {
            self.reports_in_flight -= 1;
        }
        Some(job)
    }

    fn len(&self) -> usize {
        self.reports.len() + self.bulk.len()
    }

    /// Takes what waits in `inbox`, without waiting, up to [`JOBS_AHEAD_MAX`].
    fn fill(&mut self, inbox: &mut mpsc::Receiver<Publish>) {
        while self.len() < JOBS_AHEAD_MAX {
            match inbox.try_recv() {
                Ok(job) => self.push(job),
                Err(_) => return,
            }
        }
    }

    /// Drains every job not stored: those being stored, then those not started.
    fn drain(&mut self) -> Vec<Arc<Publish>> {
        let mut started: Vec<(u64, Arc<Publish>)> = self.started.drain().collect();
        started.sort_by_key(|(number, _)| *number);
        let waiting = self.reports.drain(..).chain(self.bulk.drain(..));
        started
            .into_iter()
            .map(|(_, job)| job)
            .chain(waiting.map(Arc::new))
            .collect()
    }
}

impl Publish {
    /// The sequence the job is stored in, never two at once: the VNF its state or message is
    /// about, or `None` for the monitor's own (rounds and rosters, suspected faults, starved).
    pub fn sequence(&self) -> Option<String> {
        match self {
            Publish::State { vnf_id, .. } => Some(vnf_id.clone()),
            Publish::Message { message, .. } => match &message.event {
                MonitorEvent::VduDown { target, .. }
                | MonitorEvent::VduUp { target, .. }
                | MonitorEvent::BadAction { target, .. }
                | MonitorEvent::TargetRefused { target, .. } => Some(target.vnf_id.clone()),
                MonitorEvent::Failure(failure) => Some(failure.target.vnf_id.clone()),
                MonitorEvent::Round { .. }
                | MonitorEvent::Roster { .. }
                | MonitorEvent::SuspectedFault { .. }
                | MonitorEvent::Starved { .. } => None,
            },
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Publish::State { .. } => Kind::StateWrite,
            Publish::Message { message, .. } => match message.event {
                MonitorEvent::Round { .. } => Kind::RoundResults,
                MonitorEvent::Roster { .. } => Kind::Roster,
                MonitorEvent::Failure(_) => Kind::FailureReport,
                _ => Kind::StateChange,
            },
        }
    }
}

/// The pause before attempt `attempt + 1` of a job of `kind` after `attempt` failed, or `None`
/// to give it up.
pub fn retry_delay(kind: Kind, attempt: u32) -> Option<Duration> {
    let until_stored = matches!(kind, Kind::FailureReport | Kind::StateChange | Kind::Roster);
    if !until_stored && attempt >= ATTEMPTS_MAX {
        return None;
    }
    let doublings = attempt.saturating_sub(1).min(16);
    Some((RETRY_DELAY_FIRST * 2u32.pow(doublings)).min(RETRY_DELAY_MAX))
}

/// What the publisher did not deliver, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Undelivered {
    pub round_results: usize,
    pub rosters: usize,
    pub state_writes: usize,
    pub failure_reports: usize,
    pub state_changes: usize,
}

impl Undelivered {
    fn count(&mut self, job: &Publish) {
        match job.kind() {
            Kind::RoundResults => self.round_results += 1,
            Kind::Roster => self.rosters += 1,
            Kind::StateWrite => self.state_writes += 1,
            Kind::FailureReport => self.failure_reports += 1,
            Kind::StateChange => self.state_changes += 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Undelivered::default()
    }
}

/// JSON of a message or a VNF's states; failing to encode is an error, never an empty value.
pub fn encode(value: &impl Serialize) -> Result<Bytes, MonitorError> {
    Ok(Bytes::from(serde_json::to_vec(value)?))
}

/// Writes a VNF's states; nothing is written if they do not encode.
pub async fn put_state(
    sink: &impl Sink,
    vnf_id: &str,
    states: &impl Serialize,
) -> Result<(), MonitorError> {
    sink.put_state(vnf_id, encode(states)?).await
}

/// One attempt at a job.
async fn store(sink: &impl Sink, job: &Publish) -> Result<(), MonitorError> {
    match job {
        Publish::Message {
            subject,
            message,
            message_id,
        } => {
            sink.publish(subject, encode(message)?, message_id.as_deref())
                .await
        }
        Publish::State {
            vnf_id,
            states: Some(states),
        } => put_state(sink, vnf_id, states).await,
        Publish::State {
            vnf_id,
            states: None,
        } => sink.delete_state(vnf_id).await,
    }
}

/// Whether a job whose attempt failed with `error` can never be stored, so that trying again
/// is pointless: a value that does not encode, or a message larger than the server accepts.
pub fn is_permanent(error: &MonitorError) -> bool {
    match error {
        MonitorError::Encode(_) => true,
        MonitorError::Nats(e) | MonitorError::Store(StoreError::Nats(e)) => {
            e.kind() == NatsErrorKind::TooLarge
        }
        MonitorError::Store(_) | MonitorError::Probe(_) => false,
    }
}

/// Tries a job until it is stored or given up; answers whether it was stored.
async fn deliver(sink: &impl Sink, job: &Publish) -> bool {
    let kind = job.kind();
    let mut attempt = 1;
    loop {
        let error = match store(sink, job).await {
            Ok(()) => {
                if kind == Kind::FailureReport {
                    metrics::counter!(telemetry::FAILURES_REPORTED).increment(1);
                }
                return true;
            }
            Err(e) if is_permanent(&e) => {
                tracing::error!(?kind, error = %e, "Monitor job can never be stored; given up.");
                return false;
            }
            Err(e) => e,
        };
        let Some(delay) = retry_delay(kind, attempt) else {
            tracing::warn!(?kind, attempt, error = %error, "Monitor job not stored; given up.");
            return false;
        };
        tracing::warn!(?kind, attempt, retry_in_ms = delay.as_millis(), error = %error, "Monitor job not stored; retrying.");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// Stores jobs (reports first, see the module's note) until `inbox` closes, or until `drain` has passed since `stop` was
/// set. Answers what was not delivered, and logs it (with each failure id) when not nothing.
pub async fn run(
    sink: impl Sink,
    mut inbox: mpsc::Receiver<Publish>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> Undelivered {
    let deadline = async move {
        // A dropped sender means the monitor is gone: the drain starts as well.
        let _ = stop.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(drain).await;
    };
    tokio::pin!(deadline);
    let mut undelivered = Undelivered::default();
    let mut lost_failures = Vec::new();
    let mut lost = |job: &Publish, undelivered: &mut Undelivered| {
        undelivered.count(job);
        if let Publish::Message {
            message_id: Some(id),
            ..
        } = job
            && job.kind() == Kind::FailureReport
        {
            lost_failures.push(id.clone());
        }
    };
    let mut lanes = Lanes::default();
    // The jobs being stored, each answering its number and whether it was stored.
    let mut in_flight = FuturesUnordered::new();
    let mut inbox_open = true;
    loop {
        lanes.fill(&mut inbox);
        while let Some((number, job)) = lanes.start() {
            let sink = &sink;
            in_flight.push(async move { (number, deliver(sink, &job).await) });
        }
        if !inbox_open && in_flight.is_empty() && lanes.len() == 0 {
            break;
        }
        tokio::select! {
            biased;
            () = &mut deadline => break,
            Some((number, stored)) = in_flight.next() => {
                if let Some(job) = lanes.finish(number)
                    && !stored
                {
                    lost(&job, &mut undelivered);
                }
            }
            job = inbox.recv(), if inbox_open && lanes.len() < JOBS_AHEAD_MAX => match job {
                Some(job) => lanes.push(job),
                None => inbox_open = false,
            },
        }
    }
    inbox.close();
    // What was being stored when the deadline passed is counted with the rest: its last
    // attempt may or may not have reached the server.
    drop(in_flight);
    for job in lanes.drain() {
        lost(&job, &mut undelivered);
    }
    while let Ok(job) = inbox.try_recv() {
        lost(&job, &mut undelivered);
    }
    if !undelivered.is_empty() {
        tracing::error!(
            round_results = undelivered.round_results,
            rosters = undelivered.rosters,
            state_writes = undelivered.state_writes,
            failure_reports = undelivered.failure_reports,
            state_changes = undelivered.state_changes,
            failure_ids = ?lost_failures,
            "Monitor stopped with jobs undelivered."
        );
    }
    undelivered
}

#[cfg(test)]
mod tests;
