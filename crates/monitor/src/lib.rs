//! The monitor role: probes every monitored VDU instance and reports what it sees.
//!
//! A monitor keeps no target list of its own: it replays the lifecycle log (an ordered consumer
//! of every VNF subject) through the VNF aggregate and [`events::monitor::targets`], and follows
//! it live, so a scale or respawn changes the probed IPs and a delete stops them. Each round's
//! results, each VDU going down or coming back, and each failure (after `retry` failed
//! attempts) are events on the monitor stream; conductors act on the failures. Probing never
//! waits on an action.
//!
//! A monitor never appends to the lifecycle log and never calls a VIM.

pub mod probe;
pub mod share;
pub mod tracker;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv};
use bytes::Bytes;
use cqrs_es::Aggregate;
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use events::envelope::{self, Actor, ActorKind};
use events::monitor::{
    self as schema, Failure, InstanceMonitorState, MonitorEvent, MonitorMessage, ProbeOutcome,
    ProbeResult, Target, TargetRef,
};
use events::names;
use events::spec::MonitorDriver;
use events::store::{self, EventLog, LogConfig, StoreError};
use events::vnf::{Vnf, VnfEvent};
use probe::Prober;
use tracker::{Health, Tracker, Transition};

/// Seeds read but not yet taken by the loop; the reads themselves are not bounded by it.
const SEEDS_QUEUE: usize = 1_024;
/// Pause between attempts to follow the lifecycle log again after its consumer ended.
const FOLLOW_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How often due targets are looked for. Attempts start on interval boundaries; a tenth of a
/// second keeps them close to the boundary without spinning.
const TICK: Duration = Duration::from_millis(100);
/// Results waiting to be folded into their round. Attempts block on a full queue, which only
/// slows probing down; a round of 100,000 targets fits.
const RESULTS_QUEUE: usize = 131_072;
/// Messages waiting to be published. Rounds are batched, so this is generous.
const PUBLISH_QUEUE: usize = 16_384;
/// Results per round message, keeping each message far below NATS's default 1 MiB payload.
const ROUND_RESULTS_PER_MESSAGE_MAX: usize = 2_000;
/// Attempts running at once. Each holds a task and the prober's echo slots; about a thousand
/// gave the best rate without losses on two cores (see `ops/bench-icmp`), where a task per
/// target all at once cost twice the CPU per target.
const ATTEMPTS_IN_FLIGHT_MAX: usize = 1_024;
/// How long a VNF's states stay unwritten when nothing changes (a change is written at once):
/// at least this, plus up to [`STATE_REFRESH_SPREAD`] chosen by the VNF's partition, so that
/// the refreshes of VNFs first probed together do not stay together. With 10,000 VNFs that is
/// about 170 writes a second, spread out, where a fixed ten seconds made a burst of 10,000
/// writes every ten seconds on the nats-server the API also reads from.
const STATE_REFRESH_MIN: time::Duration = time::Duration::seconds(30);
const STATE_REFRESH_SPREAD: time::Duration = time::Duration::seconds(60);
/// Attempts to publish a failure report before giving up on it (it is reported again on the
/// next down episode); a failure must survive a leader election.
const PUBLISH_ATTEMPTS_MAX: u32 = 5;

/// Tunables of a monitor.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// This instance's name, recorded in every result and failure it reports.
    pub instance: String,
    /// The fewest failures in one round that can make the monitor suspect itself.
    pub suspect_failures_min: usize,
    pub log: LogConfig,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            instance: format!("monitor-{}", std::process::id()),
            // Ten: a small deployment (fewer targets) still heals when all of them fail.
            suspect_failures_min: 10,
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("NATS: {context}: {source}")]
    Nats {
        context: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Probe(#[from] probe::ProbeError),
}

fn nats(context: &'static str, source: impl Into<async_nats::Error>) -> MonitorError {
    MonitorError::Nats {
        context,
        source: source.into(),
    }
}

/// One finished attempt, on its way back to the monitor's loop.
struct Attempt {
    round: i128,
    target: TargetRef,
    outcome: ProbeOutcome,
    at: OffsetDateTime,
}

/// Attempts that started on one interval boundary. Each is recorded in its target's tracker
/// as soon as it ends, so a slow attempt (a silent VDU runs to its timeout) holds up no other
/// target's next one. What the round changed is announced once all its attempts are in, so
/// that it can be judged whole (see [`tracker::round_is_suspect`]), and in the order rounds
/// started, so that a target's transitions keep their order.
#[derive(Default)]
struct Round {
    running: usize,
    results: Vec<ProbeResult>,
    transitions: Vec<(Target, Transition, OffsetDateTime)>,
    /// VNFs with a result in this round, and those of them whose health changed.
    touched: HashSet<String>,
    changed: HashSet<String>,
}

/// Work for the publisher task.
enum Publish {
    Message {
        subject: String,
        message: Box<MonitorMessage>,
        /// Set for failure reports, so a retried publish is stored once.
        message_id: Option<String>,
    },
    State {
        vnf_id: String,
        states: Option<BTreeMap<String, InstanceMonitorState>>,
    },
}

/// One monitor instance.
pub struct Monitor {
    log: EventLog,
    client: async_nats::Client,
    prober: Arc<Prober>,
    /// Taken by each attempt task for the length of its probe; bounds attempts in flight.
    attempts: Arc<tokio::sync::Semaphore>,
    config: MonitorConfig,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the loop knows: the VNFs as the log left them and a tracker per target.
#[derive(Default)]
struct Targets {
    vnfs: HashMap<String, Vnf>,
    trackers: HashMap<String, Tracker>,
    by_vnf: HashMap<String, HashSet<String>>,
    /// When each written VNF's states are to be written again if nothing changes.
    states_due: HashMap<String, OffsetDateTime>,
    /// VNFs whose last recorded states this monitor has read since it took their partition;
    /// only they are probed (see [`Seed`]).
    seeded: HashSet<String>,
    /// VNFs whose states are being read.
    seeding: HashSet<String>,
}

/// What the state bucket said about a VNF when this monitor took it over: the instances that
/// were down (a failure already reported), and since when. Probing waits for it, so that a
/// monitor taking over or restarting continues an episode instead of reporting it again.
struct Seed {
    vnf_id: String,
    down: Vec<(String, OffsetDateTime)>,
}

/// How long the VNF's unchanged states wait before they are written again.
fn state_refresh(vnf_id: &str) -> time::Duration {
    let spread = f64::from(share::partition(vnf_id)) / f64::from(share::PARTITIONS);
    STATE_REFRESH_MIN + STATE_REFRESH_SPREAD * spread
}

/// Reads the VNF's recorded states from the bucket; an unreadable entry counts as none.
async fn read_seed(states: kv::Store, vnf_id: String) -> Seed {
    let down = match states.get(&vnf_id).await {
        Ok(Some(value)) => serde_json::from_slice::<BTreeMap<String, InstanceMonitorState>>(&value)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, state)| state.state == Health::Down.as_str())
            .filter_map(|(instance_id, state)| Some((instance_id, state.since?)))
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(vnf_id, error = %e, "Cannot read the VNF's monitor states; probing it afresh.");
            Vec::new()
        }
    };
    Seed { vnf_id, down }
}

impl Targets {
    /// Folds one lifecycle message and re-derives the VNF's targets.
    fn apply(&mut self, vnf_id: &str, events: Vec<VnfEvent>) {
        let vnf = self.vnfs.entry(vnf_id.to_owned()).or_default();
        events.into_iter().for_each(|e| vnf.apply(e));
        let derived = schema::targets(vnf_id, vnf);
        if vnf.deleted {
            self.vnfs.remove(vnf_id);
            self.seeded.remove(vnf_id);
        }
        let wanted: HashSet<String> = derived.iter().map(|t| t.instance_id.clone()).collect();
        let known = self.by_vnf.entry(vnf_id.to_owned()).or_default();
        for gone in known.difference(&wanted) {
            self.trackers.remove(gone);
        }
        for target in derived {
            match self.trackers.get_mut(&target.instance_id) {
                Some(tracker) => tracker.update(target),
                None => {
                    tracing::info!(vnf_id, instance_id = %target.instance_id, mgmt_ip = %target.mgmt_ip, "Monitoring VDU instance.");
                    self.trackers
                        .insert(target.instance_id.clone(), Tracker::new(target));
                }
            }
        }
        *known = wanted;
        if known.is_empty() {
            self.by_vnf.remove(vnf_id);
        }
    }

    fn states(
        &self,
        vnf_id: &str,
        monitor: &str,
    ) -> Option<BTreeMap<String, InstanceMonitorState>> {
        let instances = self.by_vnf.get(vnf_id)?;
        Some(
            instances
                .iter()
                .filter_map(|id| self.trackers.get(id))
                .map(|t| {
                    let state = InstanceMonitorState {
                        vdu: t.target.vdu.clone(),
                        mgmt_ip: t.target.mgmt_ip,
                        state: t.health.as_str().into(),
                        since: t.since,
                        last_result: t.last_outcome.clone(),
                        last_probed_at: t.last_probed_at,
                        monitor: monitor.to_owned(),
                    };
                    (t.target.instance_id.clone(), state)
                })
                .collect(),
        )
    }
}

impl Monitor {
    pub fn new(log: EventLog, prober: Arc<Prober>, config: MonitorConfig) -> Self {
        let client = log.jetstream().client();
        Monitor {
            log,
            client,
            prober,
            attempts: Arc::new(tokio::sync::Semaphore::new(ATTEMPTS_IN_FLIGHT_MAX)),
            config,
        }
    }

    /// The VNF subjects of the lifecycle log after stream sequence `after`, then live.
    async fn follow_lifecycle(
        &self,
        after: u64,
    ) -> Result<consumer::pull::Ordered, async_nats::Error> {
        let deliver_policy = match after {
            0 => consumer::DeliverPolicy::All,
            _ => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
        };
        let consumer = self
            .log
            .stream()
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: names::VNF_SUBJECTS.into(),
                deliver_policy,
                ..Default::default()
            })
            .await?;
        Ok(consumer.messages().await?)
    }

    fn actor(&self) -> Actor {
        Actor::new(ActorKind::Monitor, self.config.instance.clone())
    }

    /// Records a finished attempt in its target's tracker and its round.
    fn record(targets: &mut Targets, round: &mut Round, attempt: Attempt) {
        let Attempt {
            target,
            outcome,
            at,
            ..
        } = attempt;
        if let Some(tracker) = targets.trackers.get_mut(&target.instance_id) {
            let health = tracker.health;
            if let Some(transition) = tracker.record(outcome.clone(), at) {
                round
                    .transitions
                    .push((tracker.target.clone(), transition, at));
            }
            if tracker.health != health {
                round.changed.insert(target.vnf_id.clone());
            }
            round.touched.insert(target.vnf_id.clone());
        }
        round.results.push(ProbeResult {
            target,
            outcome,
            at,
        });
    }

    /// Takes a VNF's seed: down instances continue their reported episode.
    fn seeded(targets: &mut Targets, seed: Seed) {
        targets.seeding.remove(&seed.vnf_id);
        for (instance_id, since) in seed.down {
            if let Some(tracker) = targets.trackers.get_mut(&instance_id) {
                tracing::info!(vnf_id = %seed.vnf_id, %instance_id, %since, "Continuing a reported failure.");
                tracker.resume_down(since);
            }
        }
        targets.seeded.insert(seed.vnf_id);
    }

    /// Probes until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), MonitorError> {
        let jetstream = self.log.jetstream().clone();
        store::open_monitor_stream(&jetstream, &self.config.log).await?;
        let states = store::open_monitor_states(&jetstream, &self.config.log).await?;
        let mut lifecycle = self
            .follow_lifecycle(0)
            .await
            .map_err(|e| nats("following the lifecycle log", e))?;
        // The last lifecycle message folded: where to follow on from if the consumer ends.
        let mut lifecycle_sequence = 0;
        let mut bad_actions = self
            .client
            .subscribe(names::BAD_ACTION_SUBJECTS)
            .await
            .map_err(|e| nats("following bad_action reports", e))?;
        // The loop sends finished attempts here; attempt tasks hold senders until they finish.
        let (results, mut finished) = mpsc::channel::<Attempt>(RESULTS_QUEUE);
        // The loop sends messages and state writes; the publisher task drains it. Dropping the
        // sender at shutdown lets the publisher finish what is queued and stop.
        let (outbox, inbox) = mpsc::channel::<Publish>(PUBLISH_QUEUE);
        let leases = share::open_leases(&jetstream, &self.config.log)
            .await
            .map_err(|e| nats("opening the monitor leases", e))?;
        // Seeds read from the state bucket come back here.
        let (seeds, mut seeds_read) = mpsc::channel::<Seed>(SEEDS_QUEUE);
        let publisher = tokio::spawn(publish(jetstream, states.clone(), inbox));
        // The lease task publishes the partitions this monitor holds; the loop probes only
        // targets in them. Setting `stop_leases` makes it give its leases back and end.
        let (owned_sender, owned) = watch::channel(Arc::new(BTreeSet::new()));
        let (stop_leases, leases_stopped) = watch::channel(false);
        // Driven by this loop rather than spawned: a monitor that dies (or whose task is
        // dropped) stops renewing at once, as a killed process would.
        let lease_task = share::hold(
            leases,
            self.config.instance.clone(),
            owned_sender,
            leases_stopped,
        );
        tokio::pin!(lease_task);
        let mut leases_held = true;

        let mut targets = Targets::default();
        // The ownership `targets.seeded` was last pruned for.
        let mut seeds_for = owned.borrow().clone();
        let mut rounds: BTreeMap<i128, Round> = BTreeMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::pin!(shutdown);
        tracing::info!(instance = %self.config.instance, "Monitor running.");
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = &mut lease_task => {
                    tracing::warn!("Lease task ended; the monitor stops.");
                    leases_held = false;
                    break;
                }
                message = lifecycle.next() => match message {
                    Some(Ok(message)) => {
                        if let Ok(info) = message.info() {
                            lifecycle_sequence = info.stream_sequence;
                        }
                        let Some((_, vnf_id)) = names::parse_lifecycle_subject(&message.subject) else { continue };
                        match envelope::decode::<VnfEvent>(&message.payload) {
                            Ok(envelope) => {
                                targets.apply(vnf_id, envelope.events);
                                if !targets.by_vnf.contains_key(vnf_id) && targets.states_due.remove(vnf_id).is_some() {
                                    let _ = outbox.send(Publish::State { vnf_id: vnf_id.to_owned(), states: None }).await;
                                }
                            }
                            Err(e) => tracing::error!(vnf_id, error = %e, "Undecodable lifecycle message; skipped."),
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "Lifecycle consumer hiccup; continuing."),
                    None => {
                        tracing::warn!(after = lifecycle_sequence, "Lifecycle consumer ended; following on.");
                        lifecycle = loop {
                            match self.follow_lifecycle(lifecycle_sequence).await {
                                Ok(messages) => break messages,
                                Err(e) => {
                                    tracing::warn!(error = %e, "Cannot follow the lifecycle log; retrying.");
                                    tokio::time::sleep(FOLLOW_RETRY_DELAY).await;
                                }
                            }
                        };
                    }
                },
                Some(message) = bad_actions.next() => {
                    if let Ok(MonitorMessage { event: MonitorEvent::BadAction { target, reason, .. }, .. }) =
                        serde_json::from_slice(&message.payload)
                        && let Some(tracker) = targets.trackers.get_mut(&target.instance_id)
                        && tracker.target.action_id == target.action_id
                    {
                        tracing::info!(instance_id = %target.instance_id, reason, "Dropping a job a conductor called stale.");
                        tracker.dropped = true;
                    }
                }
                _ = tick.tick() => {
                    let owned = owned.borrow().clone();
                    if !Arc::ptr_eq(&owned, &seeds_for) {
                        // Partitions given away are read again if they come back.
                        targets.seeded.retain(|vnf_id| owned.contains(&share::partition(vnf_id)));
                        seeds_for = owned.clone();
                    }
                    self.start_due(&mut targets, &mut rounds, &results, &owned, &states, &seeds);
                }
                Some(seed) = seeds_read.recv() => Self::seeded(&mut targets, seed),
                Some(attempt) = finished.recv() => {
                    if let Some(round) = rounds.get_mut(&attempt.round) {
                        round.running -= 1;
                        Self::record(&mut targets, round, attempt);
                    }
                    // The rounds that are in, up to the first one still running.
                    while let Some(entry) = rounds.first_entry() && entry.get().running == 0 {
                        let round = entry.remove();
                        let owned = owned.borrow().clone();
                        self.finish_round(&mut targets, round, &outbox, &owned).await;
                    }
                }
            }
        }
        stop_leases.send_replace(true);
        if leases_held {
            lease_task.await;
        }
        drop(outbox);
        let _ = publisher.await;
        tracing::info!("Monitor stopped.");
        Ok(())
    }

    /// Starts the attempts that are due on targets this monitor holds; a target of a VNF whose
    /// recorded states are not read yet waits for them (and the read is started).
    fn start_due(
        &self,
        targets: &mut Targets,
        rounds: &mut BTreeMap<i128, Round>,
        results: &mpsc::Sender<Attempt>,
        owned: &BTreeSet<u32>,
        states: &kv::Store,
        seeds: &mpsc::Sender<Seed>,
    ) {
        let now = OffsetDateTime::now_utc();
        let Targets {
            trackers,
            seeded,
            seeding,
            ..
        } = targets;
        let due = trackers
            .values_mut()
            .filter(|t| t.is_due(now) && owned.contains(&share::partition(&t.target.vnf_id)));
        for tracker in due {
            let vnf_id = &tracker.target.vnf_id;
            if !seeded.contains(vnf_id) {
                if seeding.insert(vnf_id.clone()) {
                    let (states, seeds, vnf_id) = (states.clone(), seeds.clone(), vnf_id.clone());
                    tokio::spawn(async move {
                        let _ = seeds.send(read_seed(states, vnf_id).await).await;
                    });
                }
                continue;
            }
            let round = tracker.next_due.unix_timestamp_nanos();
            tracker.start(now);
            rounds.entry(round).or_default().running += 1;
            let target = tracker.target.clone();
            let prober = self.prober.clone();
            let results = results.clone();
            let attempts = self.attempts.clone();
            tokio::spawn(async move {
                let permit = attempts.acquire_owned().await.expect("never closed");
                let outcome = attempt(&prober, &target).await;
                drop(permit);
                let attempt = Attempt {
                    round,
                    target: TargetRef::from(&target),
                    outcome,
                    at: OffsetDateTime::now_utc(),
                };
                let _ = results.send(attempt).await;
            });
        }
    }

    /// Announces a round whose attempts are all in (and recorded): its results, a suspected
    /// fault or its transitions, and the states of the VNFs it changed or found stale.
    async fn finish_round(
        &self,
        targets: &mut Targets,
        round: Round,
        outbox: &mpsc::Sender<Publish>,
        owned: &BTreeSet<u32>,
    ) {
        let monitor = self.actor();
        let Round {
            results,
            transitions,
            touched,
            changed,
            ..
        } = round;
        // The targets this monitor answers for: those in the partitions it holds.
        let mine: Vec<&Tracker> = targets
            .trackers
            .values()
            .filter(|t| owned.contains(&share::partition(&t.target.vnf_id)))
            .collect();
        let (owned_targets, failing) = (
            mine.len(),
            mine.iter()
                .filter(|t| matches!(t.last_outcome, Some(ProbeOutcome::Down { .. })))
                .count(),
        );
        // A round is judged by every target whose latest attempt failed, not only by those whose
        // `retry` ran out in it: targets killed together cross their thresholds in neighbouring
        // rounds. It only matters when the round would fire an action.
        let declared = transitions
            .iter()
            .any(|(_, t, _)| matches!(t, Transition::Failed { .. }));
        let suspect = declared
            && tracker::round_is_suspect(failing, owned_targets, self.config.suspect_failures_min);
        let at = OffsetDateTime::now_utc();
        for chunk in results.chunks(ROUND_RESULTS_PER_MESSAGE_MAX) {
            let event = MonitorEvent::Round {
                monitor: monitor.clone(),
                at,
                targets: owned_targets,
                results: chunk.to_vec(),
            };
            self.send(
                outbox,
                names::round_subject(&self.config.instance),
                event,
                None,
            )
            .await;
        }
        if suspect {
            tracing::error!(
                failing,
                targets = owned_targets,
                "Most targets failed at once: suspecting this monitor, firing no actions."
            );
            let event = MonitorEvent::SuspectedFault {
                monitor: monitor.clone(),
                at,
                failed: failing,
                targets: owned_targets,
            };
            self.send(
                outbox,
                names::suspect_subject(&self.config.instance),
                event,
                None,
            )
            .await;
        }
        for (target, transition, since) in transitions {
            let reference = TargetRef::from(&target);
            match transition {
                Transition::Failed { .. } if suspect => {
                    if let Some(tracker) = targets.trackers.get_mut(&target.instance_id) {
                        tracker.unreport();
                    }
                }
                Transition::Failed { attempts, reason } => {
                    tracing::warn!(vnf_id = %target.vnf_id, instance_id = %target.instance_id, mgmt_ip = %target.mgmt_ip, reason, "VDU failed.");
                    let down = MonitorEvent::VduDown {
                        monitor: monitor.clone(),
                        target: reference.clone(),
                        reason: reason.clone(),
                        since,
                    };
                    self.send(outbox, names::vdu_state_subject(&target.vnf_id), down, None)
                        .await;
                    let failure = Failure {
                        failure_id: uuid::Uuid::new_v4().to_string(),
                        monitor: monitor.clone(),
                        target: reference,
                        action: target.policy.failure_action,
                        attempts,
                        reason,
                        detected_at: since,
                    };
                    let message_id = Some(failure.failure_id.clone());
                    self.send(
                        outbox,
                        names::failure_subject(&target.vnf_id),
                        MonitorEvent::Failure(failure),
                        message_id,
                    )
                    .await;
                }
                Transition::Recovered => {
                    tracing::info!(vnf_id = %target.vnf_id, instance_id = %target.instance_id, "VDU answers again.");
                    let up = MonitorEvent::VduUp {
                        monitor: monitor.clone(),
                        target: reference,
                        since,
                    };
                    self.send(outbox, names::vdu_state_subject(&target.vnf_id), up, None)
                        .await;
                }
            }
        }
        for vnf_id in touched {
            let stale = targets.states_due.get(&vnf_id).is_none_or(|due| at >= *due);
            if stale || changed.contains(&vnf_id) {
                targets
                    .states_due
                    .insert(vnf_id.clone(), at + state_refresh(&vnf_id));
                let states = targets.states(&vnf_id, &self.config.instance);
                let _ = outbox.send(Publish::State { vnf_id, states }).await;
            }
        }
    }

    async fn send(
        &self,
        outbox: &mpsc::Sender<Publish>,
        subject: String,
        event: MonitorEvent,
        message_id: Option<String>,
    ) {
        let job = Publish::Message {
            subject,
            message: Box::new(MonitorMessage::new(event)),
            message_id,
        };
        if outbox.send(job).await.is_err() {
            tracing::warn!("Publisher gone; a monitor message is lost.");
        }
    }
}

/// One probe attempt by the target's driver.
async fn attempt(prober: &Prober, target: &Target) -> ProbeOutcome {
    let policy = &target.policy;
    let timeout = Duration::from_millis(policy.timeout_ms);
    match policy.driver {
        MonitorDriver::Ping => prober.ping(target.mgmt_ip, policy.count, timeout).await,
        MonitorDriver::HttpPing => {
            let port = policy.port.unwrap_or(80);
            prober.http(target.mgmt_ip, port, timeout).await
        }
    }
}

/// Publishes monitor messages and state writes in order until the outbox closes.
async fn publish(
    jetstream: jetstream::Context,
    states: kv::Store,
    mut inbox: mpsc::Receiver<Publish>,
) {
    while let Some(job) = inbox.recv().await {
        match job {
            Publish::Message {
                subject,
                message,
                message_id,
            } => {
                let payload = match serde_json::to_vec(&message) {
                    Ok(payload) => Bytes::from(payload),
                    Err(e) => {
                        tracing::error!(error = %e, "Unencodable monitor message.");
                        continue;
                    }
                };
                for attempt in 1..=PUBLISH_ATTEMPTS_MAX {
                    let mut publish =
                        jetstream::message::PublishMessage::build().payload(payload.clone());
                    if let Some(id) = &message_id {
                        publish = publish.message_id(id);
                    }
                    let acked = match jetstream.send_publish(subject.clone(), publish).await {
                        Ok(ack) => ack.await.map(|_| ()),
                        Err(e) => Err(e),
                    };
                    match acked {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(subject, attempt, error = %e, "Monitor message not stored; retrying.");
                            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt)))
                                .await;
                        }
                    }
                }
            }
            Publish::State {
                vnf_id,
                states: Some(states_of_vnf),
            } => {
                let value = serde_json::to_vec(&states_of_vnf).unwrap_or_default();
                if let Err(e) = states.put(&vnf_id, value.into()).await {
                    tracing::debug!(vnf_id, error = %e, "Monitor state not written.");
                }
            }
            Publish::State {
                vnf_id,
                states: None,
            } => {
                let _ = states.delete(&vnf_id).await;
            }
        }
    }
}
