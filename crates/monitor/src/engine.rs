//! The monitor's engine: one loop that starts due attempts in their phases, folds the
//! decoded lifecycle events and `bad_action` answers it is fed, and hands each finished round
//! to the judge and the result to the publisher's queue.
//!
//! It never touches NATS: its inputs arrive decoded on a channel, seeds come from a [`Seeds`]
//! source, probes from a [`Probe`], the time from a [`Clock`], and what it publishes leaves
//! as [`Publish`] jobs. So it runs on tokio's paused clock in tests.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, mpsc};

use events::envelope::{Actor, ActorKind};
use events::monitor::TargetRef;
use events::monitor::cidr::ProbeCidrs;
use events::monitor::rounds::RosterMemory;
use events::telemetry;
use events::vnf::VnfEvent;

use crate::clock::Clock;
use crate::judge::{self, Attempt, Round};
use crate::probe::Probe;
use crate::publisher::Publish;
use crate::share::Owned;
use crate::snapshot::{self, Fold};
use crate::targets::{Seed, StateWrite, Targets};

/// How often due targets are looked for. Attempts start on interval boundaries shifted by
/// their partition's phase; a tenth of a second keeps them close to it without spinning.
pub const TICK: Duration = Duration::from_millis(100);
/// Results waiting to be folded into their round. Attempts block on a full queue, which only
/// slows probing down; a round of 100,000 targets fits.
const RESULTS_QUEUE: usize = 131_072;
/// Seeds read but not yet taken by the loop; the reads themselves are not bounded by it.
const SEEDS_QUEUE: usize = 1_024;
/// Attempts running at once. Each holds a task and the prober's echo slots; about a thousand
/// gave the best rate without losses on two cores (see `ops/bench-icmp`), where a task per
/// target all at once cost twice the CPU per target.
const ATTEMPTS_IN_FLIGHT_MAX: usize = 1_024;
/// Ticks between two settings of the targets-held gauge outside rounds (a second), unless the
/// partitions held change, which sets it at once: a monitor whose targets are all gone judges
/// no round that would set it. Counting the targets walks them all, which a round's judge does
/// anyway, so once a second costs no more than a round.
const TARGETS_GAUGE_TICKS: u32 = 10;

/// What the engine is fed, decoded.
#[derive(Debug)]
pub enum Input {
    /// One lifecycle message's events for a VNF, and where the message is in the stream.
    Lifecycle {
        sequence: u64,
        vnf_id: String,
        events: Vec<VnfEvent>,
    },
    /// A conductor called a job stale.
    BadAction { target: TargetRef, reason: String },
}

/// Where VNFs' recorded states are read from when this monitor takes them over.
pub trait Seeds: Send + Sync + 'static {
    /// One seed for each of `vnf_ids`, in any order.
    fn read(&self, vnf_ids: Vec<String>) -> impl Future<Output = Vec<Seed>> + Send;
}

/// The engine's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This instance's name, recorded in every result and failure it reports.
    pub instance: String,
    /// The fewest failures in one round that can make the monitor suspect itself.
    pub suspect_failures_min: usize,
    /// The ranges the monitor may probe; a target outside them is reported, never probed.
    pub probe_cidrs: ProbeCidrs,
    /// When the holder of [`snapshot::WRITER_PARTITION`] hands its lifecycle fold to the
    /// snapshot writer ([`snapshot::due`]).
    pub snapshots: snapshot::Schedule,
}

/// The engine's connections to its shell.
#[derive(Debug)]
pub struct Wiring {
    /// Decoded inputs; the shell's followers send, the engine receives. Closing it changes
    /// nothing (the engine keeps probing what it knows).
    pub inputs: mpsc::Receiver<Input>,
    /// The partitions this monitor holds, published by the lease task.
    pub owned: Owned,
    /// Jobs for the publisher; the engine sends, the publisher receives. Dropping the engine
    /// drops it, which lets the publisher drain.
    pub outbox: mpsc::Sender<Publish>,
    /// Copies of the lifecycle fold to snapshot; the engine sends (never waiting: a full queue
    /// means the writer is still at the last one, and this one waits for the next tick), the
    /// snapshot writer receives. Closed, nothing is snapshotted.
    pub snapshots: mpsc::Sender<Fold>,
}

/// The engine of one monitor.
pub struct Engine<P, C, S> {
    probe: Arc<P>,
    clock: Arc<C>,
    seeds: Arc<S>,
    config: EngineConfig,
    /// The lifecycle fold it starts from: a snapshot's, or an empty one.
    start: Fold,
}

impl<P: Probe, C: Clock, S: Seeds> Engine<P, C, S> {
    pub fn new(probe: Arc<P>, clock: Arc<C>, seeds: Arc<S>, config: EngineConfig) -> Self {
        Engine {
            probe,
            clock,
            seeds,
            config,
            start: Fold::default(),
        }
    }

    /// Starts from `fold` (a snapshot's) rather than from nothing: its VNFs' targets are held
    /// at once, and the lifecycle inputs are the messages after its sequence.
    #[must_use]
    pub fn restoring(mut self, fold: Fold) -> Self {
        self.start = fold;
        self
    }

    fn actor(&self) -> Actor {
        Actor::new(ActorKind::Monitor, self.config.instance.clone())
    }

    /// Probes until dropped, or until the publisher is gone.
    pub async fn run(mut self, wiring: Wiring) {
        let Wiring {
            mut inputs,
            owned,
            outbox,
            snapshots,
        } = wiring;
        // Finished attempts come back here; attempt tasks hold senders until they finish.
        let (results, mut finished) = mpsc::channel::<Attempt>(RESULTS_QUEUE);
        // Seeds read come back here.
        let (seeds_sender, mut seeds_read) = mpsc::channel::<Seed>(SEEDS_QUEUE);
        // Taken by each attempt task for the length of its probe; bounds attempts in flight.
        let attempts = Arc::new(Semaphore::new(ATTEMPTS_IN_FLIGHT_MAX));
        let start = std::mem::take(&mut self.start);
        let mut targets = Targets::restore(self.config.probe_cidrs.clone(), start);
        // When the last snapshot was handed over (the start counts as one), and how many
        // lifecycle messages were folded since.
        let mut snapshot_at = self.clock.now();
        let mut folded_since: u64 = 0;
        let mut rounds: BTreeMap<i128, Round> = BTreeMap::new();
        // The rosters this monitor published, which the judge consults for each round.
        let mut rosters = RosterMemory::default();
        let mut inputs_open = true;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ticks: u32 = 0;
        // The partitions the gauges were last set for.
        let mut gauged = Arc::new(BTreeSet::new());
        let monitor = self.actor();
        loop {
            let jobs = tokio::select! {
                input = inputs.recv(), if inputs_open => match input {
                    Some(Input::Lifecycle { sequence, vnf_id, events }) => {
                        folded_since += 1;
                        targets.apply(sequence, &vnf_id, events).map(state_job).into_iter().collect()
                    }
                    Some(Input::BadAction { target, reason }) => {
                        if targets.drop_job(&target.instance_id, &target.action_id) {
                            tracing::info!(instance_id = %target.instance_id, reason, "Dropping a job a conductor called stale.");
                        }
                        Vec::new()
                    }
                    None => {
                        inputs_open = false;
                        Vec::new()
                    }
                },
                _ = tick.tick() => {
                    let owned = owned.borrow().clone();
                    let now = self.clock.now();
                    let since = std::time::Duration::try_from(now - snapshot_at).unwrap_or_default();
                    let writer = owned.contains(&snapshot::WRITER_PARTITION);
                    if snapshot::due(writer, since, &self.config.snapshots, folded_since)
                        && hand_over(&snapshots, targets.fold())
                    {
                        snapshot_at = now;
                        folded_since = 0;
                    }
                    let due = targets.due(now, &owned);
                    if ticks == 0 || *owned != *gauged {
                        // Both at once, once `due` derived the partitions' targets: a reader
                        // that sees the partitions sees their targets.
                        let held = targets.census().targets;
                        metrics::gauge!(telemetry::MONITOR_TARGETS).set(held as f64);
                        metrics::gauge!(telemetry::MONITOR_PARTITIONS).set(owned.len() as f64);
                        gauged = owned.clone();
                    }
                    ticks = (ticks + 1) % TARGETS_GAUGE_TICKS;
                    if !due.seeds.is_empty() {
                        let (source, sender) = (self.seeds.clone(), seeds_sender.clone());
                        let vnf_ids = due.seeds;
                        tokio::spawn(async move {
                            for seed in source.read(vnf_ids).await {
                                if sender.send(seed).await.is_err() {
                                    return;
                                }
                            }
                        });
                    }
                    for start in due.starts {
                        rounds.entry(start.round).or_default().running += 1;
                        let (probe, clock, results, attempts) =
                            (self.probe.clone(), self.clock.clone(), results.clone(), attempts.clone());
                        tokio::spawn(async move {
                            let permit = attempts.acquire_owned().await.expect("never closed");
                            let lateness_ns = clock.now().unix_timestamp_nanos() - start.round;
                            metrics::histogram!(telemetry::PROBE_LATENESS)
                                .record(lateness_ns.max(0) as f64 / 1e9);
                            let outcome = probe.probe(&start.target).await;
                            drop(permit);
                            metrics::counter!(
                                telemetry::PROBE_ATTEMPTS,
                                "driver" => start.target.policy.driver.as_str(),
                                "outcome" => if outcome.is_up() { "up" } else { "down" },
                            )
                            .increment(1);
                            let attempt = Attempt {
                                round: start.round,
                                target: start.target,
                                outcome,
                                at: clock.now(),
                            };
                            let _ = results.send(attempt).await;
                        });
                    }
                    due.refused
                        .iter()
                        .map(|target| judge::refusal(target, &self.config.probe_cidrs, &monitor, now))
                        .map(Publish::from)
                        .collect()
                }
                Some(seed) = seeds_read.recv() => {
                    targets.seeded(seed);
                    Vec::new()
                }
                Some(attempt) = finished.recv() => {
                    if let Some(round) = rounds.get_mut(&attempt.round) {
                        round.running -= 1;
                        round.record(&mut targets, attempt);
                    }
                    let mut jobs = self.finish_rounds(&mut targets, &mut rounds, &mut rosters, &monitor);
                    jobs.extend(self.announce_early(&targets, &mut rounds, &monitor));
                    jobs
                }
            };
            for job in jobs {
                if outbox.send(job).await.is_err() {
                    tracing::warn!("Publisher gone; the monitor's engine stops.");
                    return;
                }
            }
        }
    }

    /// Judges the rounds that are in, up to the first one still running.
    fn finish_rounds(
        &self,
        targets: &mut Targets,
        rounds: &mut BTreeMap<i128, Round>,
        rosters: &mut RosterMemory,
        monitor: &Actor,
    ) -> Vec<Publish> {
        let mut jobs = Vec::new();
        while let Some(entry) = rounds.first_entry()
            && entry.get().running == 0
        {
            let round = entry.remove();
            let at = self.clock.now();
            let census = targets.census();
            metrics::gauge!(telemetry::MONITOR_TARGETS).set(census.targets as f64);
            let verdict = judge::judge(
                round,
                census,
                self.config.suspect_failures_min,
                monitor,
                at,
                || uuid::Uuid::new_v4().to_string(),
                rosters,
            );
            targets.unreport(&verdict.unreport);
            jobs.extend(verdict.messages.into_iter().map(Publish::from));
            let writes = targets.state_writes(verdict.touched, &verdict.changed, at, &monitor.id);
            jobs.extend(writes.into_iter().map(state_job));
        }
        jobs
    }

    /// Announces what the oldest round still running has changed so far, if nothing it can
    /// still find would make it suspect (see [`judge::early`]).
    fn announce_early(
        &self,
        targets: &Targets,
        rounds: &mut BTreeMap<i128, Round>,
        monitor: &Actor,
    ) -> Vec<Publish> {
        let Some(mut oldest) = rounds.first_entry() else {
            return Vec::new();
        };
        judge::early(
            oldest.get_mut(),
            || targets.census(),
            self.config.suspect_failures_min,
            monitor,
            || uuid::Uuid::new_v4().to_string(),
        )
        .into_iter()
        .map(Publish::from)
        .collect()
    }
}

/// Hands a copy of the fold to the snapshot writer unless it is busy (or gone); answers
/// whether it took it. The copy counts references, one per VNF: the probe loop does not wait
/// for a snapshot to be encoded.
fn hand_over(snapshots: &mpsc::Sender<Fold>, fold: &Fold) -> bool {
    let started = std::time::Instant::now();
    let copy = fold.clone();
    let copied_us = started.elapsed().as_micros();
    let (vnfs, sequence) = (copy.vnfs.len(), copy.sequence);
    match snapshots.try_send(copy) {
        Ok(()) => {
            tracing::info!(
                vnfs,
                sequence,
                copied_us,
                "Lifecycle fold handed to the snapshot writer."
            );
            true
        }
        Err(TrySendError::Full(_) | TrySendError::Closed(_)) => false,
    }
}

fn state_job((vnf_id, states): StateWrite) -> Publish {
    Publish::State { vnf_id, states }
}

#[cfg(test)]
mod tests;
