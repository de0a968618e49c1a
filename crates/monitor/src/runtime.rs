//! The monitor's NATS shell: opens its stream and buckets, follows the lifecycle log and the
//! `bad_action` answers (decoding them for the [`Engine`]), reads seeds from the state bucket,
//! keeps the leases, and stops within its drain deadline.
//!
//! It decides nothing about probing; it never lets one undecodable message stop it: such a
//! message is skipped, counted in [`Skips`] and logged with where it was and why.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use events::envelope;
use events::monitor::{InstanceMonitorState, MonitorEvent, MonitorMessage};
use events::names;
use events::nats_error::NatsError;
use events::store::{self, EventLog};
use events::telemetry;
use events::vnf::VnfEvent;

use crate::clock::SystemClock;
use crate::engine::{Engine, EngineConfig, Input, Seeds, Wiring};
use crate::probe::{Probe, Prober};
use crate::publisher::{self, Publish, Sink};
use crate::snapshot::Fold;
use crate::targets::Seed;
use crate::{MonitorConfig, MonitorError, share, snapshot_store};

/// A batch of seeds at least this large is read in one pass over the whole state bucket rather
/// than one get per VNF: a monitor starting on 100,000 VNFs makes one read, not 100,000 round
/// trips, even when it holds a tenth of them.
const SEEDS_BULK_MIN: usize = 256;
/// How long one pass over the state bucket may take before the batch is read VNF by VNF.
const SEEDS_BULK_TIMEOUT: Duration = Duration::from_secs(30);
/// Gets of single VNFs' states in flight at once, for a batch read one by one.
const SEED_GETS_IN_FLIGHT: usize = 64;
/// Pause between attempts to follow the lifecycle log again after its consumer ended.
const FOLLOW_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Decoded inputs waiting for the engine. The followers wait on a full queue, which only
/// delays what the engine learns; a replay's burst of a thousand VNFs fits.
const INPUTS_QUEUE: usize = 1_024;
/// Jobs waiting to be published. Rounds are batched, so this is generous.
const PUBLISH_QUEUE: usize = 16_384;
/// Folds waiting for the snapshot writer: none beyond the one it is writing (the engine
/// tries again at a later tick), so that at most two copies of the fold are alive.
const SNAPSHOT_QUEUE: usize = 1;
/// How long a stopping monitor may take to give its leases back and store what it has
/// queued, whatever the state of NATS: well inside the ten seconds an orchestrator usually
/// waits between SIGTERM and SIGKILL.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Messages skipped because they did not decode, by where they were read.
#[derive(Debug, Default)]
pub struct Skips {
    pub lifecycle: AtomicU64,
    pub bad_actions: AtomicU64,
    pub states: AtomicU64,
}

impl Skips {
    fn count(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// One monitor instance.
pub struct Monitor<P = Prober> {
    log: EventLog,
    probe: Arc<P>,
    config: MonitorConfig,
    drain: Duration,
    skips: Arc<Skips>,
}

impl<P> std::fmt::Debug for Monitor<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("config", &self.config)
            .field("drain", &self.drain)
            .finish_non_exhaustive()
    }
}

/// The monitor stream and the state bucket, as the publisher's [`Sink`].
#[derive(Debug, Clone)]
pub struct NatsSink {
    pub jetstream: jetstream::Context,
    pub states: kv::Store,
}

impl Sink for NatsSink {
    async fn publish(
        &self,
        subject: &str,
        payload: Bytes,
        message_id: Option<&str>,
    ) -> Result<(), MonitorError> {
        let mut publish = jetstream::message::PublishMessage::build().payload(payload);
        if let Some(id) = message_id {
            publish = publish.message_id(id);
        }
        let ack = self
            .jetstream
            .send_publish(subject.to_owned(), publish)
            .await
            .map_err(|e| NatsError::new("publishing a monitor message", e))?;
        ack.await
            .map_err(|e| NatsError::new("storing a monitor message", e))?;
        Ok(())
    }

    async fn put_state(&self, vnf_id: &str, value: Bytes) -> Result<(), MonitorError> {
        self.states
            .put(vnf_id, value)
            .await
            .map_err(|e| NatsError::new("writing a VNF's monitor states", e))?;
        Ok(())
    }

    async fn delete_state(&self, vnf_id: &str) -> Result<(), MonitorError> {
        self.states
            .delete(vnf_id)
            .await
            .map_err(|e| NatsError::new("deleting a VNF's monitor states", e))?;
        Ok(())
    }
}

/// Seeds read from the state bucket.
#[derive(Debug, Clone)]
pub struct BucketSeeds {
    pub states: kv::Store,
    pub skips: Arc<Skips>,
}

impl Seeds for BucketSeeds {
    /// The VNFs' recorded states: a batch of [`SEEDS_BULK_MIN`] or more from one pass over the
    /// whole bucket, a smaller one (or one whose pass failed) one get per VNF. An unreadable
    /// or undecodable entry counts as none.
    async fn read(&self, vnf_ids: Vec<String>) -> Vec<Seed> {
        if vnf_ids.len() >= SEEDS_BULK_MIN {
            match self.read_bucket(&vnf_ids).await {
                Ok(mut found) => {
                    return vnf_ids
                        .into_iter()
                        .map(|vnf_id| {
                            let entry = found.remove(&vnf_id);
                            self.seed(vnf_id, entry)
                        })
                        .collect();
                }
                Err(e) => {
                    tracing::warn!(vnfs = vnf_ids.len(), error = %e, "Cannot read the state bucket in one pass; reading the VNFs' states one by one.");
                }
            }
        }
        futures::stream::iter(vnf_ids)
            .map(|vnf_id| self.read_one(vnf_id))
            .buffer_unordered(SEED_GETS_IN_FLIGHT)
            .collect()
            .await
    }
}

impl BucketSeeds {
    async fn read_one(&self, vnf_id: String) -> Seed {
        match self.states.entry(&vnf_id).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                self.seed(vnf_id, Some((entry.revision, entry.value)))
            }
            Ok(_) => self.seed(vnf_id, None),
            Err(e) => {
                tracing::warn!(vnf_id, error = %e, "Cannot read the VNF's monitor states; probing it afresh.");
                self.seed(vnf_id, None)
            }
        }
    }

    /// The last value (and its sequence) of every key of `wanted` in the bucket, from one
    /// watch of every key's last entry, within [`SEEDS_BULK_TIMEOUT`].
    async fn read_bucket(
        &self,
        wanted: &[String],
    ) -> Result<HashMap<String, (u64, Bytes)>, NatsError> {
        let wanted: HashSet<&str> = wanted.iter().map(String::as_str).collect();
        let pass = async {
            let mut found = HashMap::new();
            let (mut watch, empty) = store::watch_every_key(&self.states).await?;
            if empty {
                return Ok(found);
            }
            while let Some(entry) = watch.next().await {
                let entry = entry.map_err(|e| NatsError::new("reading the state bucket", e))?;
                let caught_up = entry.delta == 0;
                if entry.operation == kv::Operation::Put && wanted.contains(entry.key.as_str()) {
                    found.insert(entry.key, (entry.revision, entry.value));
                } else {
                    found.remove(&entry.key);
                }
                if caught_up {
                    break;
                }
            }
            Ok(found)
        };
        tokio::time::timeout(SEEDS_BULK_TIMEOUT, pass)
            .await
            .map_err(|_| {
                NatsError::other(
                    "reading the state bucket",
                    format!("not read whole within {} s", SEEDS_BULK_TIMEOUT.as_secs()),
                )
            })?
    }

    /// The seed of a VNF whose states entry is `entry` (its sequence and value), or none.
    fn seed(&self, vnf_id: String, entry: Option<(u64, Bytes)>) -> Seed {
        let Some((sequence, value)) = entry else {
            return Seed::from_states(vnf_id, BTreeMap::new());
        };
        match serde_json::from_slice::<BTreeMap<String, InstanceMonitorState>>(&value) {
            Ok(states) => Seed::from_states(vnf_id, states),
            Err(e) => {
                let skipped = Skips::count(&self.skips.states);
                tracing::warn!(vnf_id, sequence, error = %e, skipped, "Undecodable monitor states; skipped, probing the VNF afresh.");
                Seed::from_states(vnf_id, BTreeMap::new())
            }
        }
    }
}

impl<P: Probe> Monitor<P> {
    pub fn new(log: EventLog, probe: Arc<P>, config: MonitorConfig) -> Self {
        Monitor {
            log,
            probe,
            config,
            drain: DRAIN_DEADLINE,
            skips: Arc::new(Skips::default()),
        }
    }

    /// How long the monitor may take to stop once `shutdown` resolves (default
    /// [`DRAIN_DEADLINE`]).
    #[must_use]
    pub fn with_drain_deadline(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// The counts of skipped messages, shared with the running monitor.
    pub fn skips(&self) -> Arc<Skips> {
        self.skips.clone()
    }

    /// Probes until `shutdown` resolves, then stops within the drain deadline.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), MonitorError> {
        let jetstream = self.log.jetstream().clone();
        store::open_monitor_stream(&jetstream).await?;
        store::open_telemetry_stream(&jetstream).await?;
        let states = store::open_monitor_states(&jetstream).await?;
        let leases = share::open_leases(&jetstream).await?;
        let snapshots = store::open_monitor_snapshots(&jetstream).await?;
        let start = restore(&snapshots, &self.log).await;
        let after = start.sequence;
        let lifecycle = follow_lifecycle(&self.log, after).await?;
        let bad_actions = jetstream
            .client()
            .subscribe(names::BAD_ACTION_SUBJECTS)
            .await
            .map_err(|e| NatsError::other("following bad_action reports", e))?;

        let (inputs, engine_inputs) = mpsc::channel::<Input>(INPUTS_QUEUE);
        // The engine (and the lease task, its starvation alarms) send jobs; the publisher task
        // stores them until both are gone. Setting `stop` starts the publisher's drain deadline.
        let (outbox, inbox) = mpsc::channel::<Publish>(PUBLISH_QUEUE);
        let (stop, stopped) = watch::channel(false);
        // The engine hands folds to the snapshot writer; dropping the engine ends the writer
        // after the snapshot it is storing, which the drain waits for.
        let (snapshot_sender, folds) = mpsc::channel::<Fold>(SNAPSHOT_QUEUE);
        let snapshot_writer = tokio::spawn(snapshot_store::run_writer(snapshots, folds));
        let sink = NatsSink {
            jetstream,
            states: states.clone(),
        };
        let publisher = tokio::spawn(publisher::run(sink, inbox, stopped, self.drain));
        // The lease task publishes the partitions this monitor holds; the engine probes only
        // targets in them. Setting `stop_leases` makes it give its leases back and end (and
        // drop its sender of alarms).
        let (owned_sender, owned) = watch::channel(Arc::new(BTreeSet::new()));
        let (stop_leases, leases_stopped) = watch::channel(false);
        // Driven by this task rather than spawned: a monitor that dies (or whose task is
        // dropped) stops renewing at once, as a killed process would.
        let lease_task = share::hold(
            leases,
            self.config.instance.clone(),
            owned_sender,
            outbox.clone(),
            leases_stopped,
        );
        tokio::pin!(lease_task);
        let seeds = BucketSeeds {
            states,
            skips: self.skips.clone(),
        };
        let engine = Engine::new(
            self.probe.clone(),
            Arc::new(SystemClock),
            Arc::new(seeds),
            EngineConfig {
                instance: self.config.instance.clone(),
                suspect_failures_min: self.config.suspect_failures_min,
                probe_cidrs: self.config.probe_cidrs.clone(),
                snapshots: self.config.snapshots,
            },
        )
        .restoring(start);
        let wiring = Wiring {
            inputs: engine_inputs,
            owned,
            outbox,
            snapshots: snapshot_sender,
        };
        tracing::info!(instance = %self.config.instance, "Monitor running.");
        let mut leases_held = true;
        // Dropping the engine (when this select ends) drops its outbox: the publisher drains.
        tokio::select! {
            () = shutdown => tracing::info!("Monitor stopping."),
            () = &mut lease_task => {
                tracing::warn!("Lease task ended; the monitor stops.");
                leases_held = false;
            }
            () = engine.run(wiring) => tracing::warn!("Engine ended; the monitor stops."),
            () = follow_lifecycle_into(&self.log, after, lifecycle, inputs.clone(), &self.skips) => {}
            () = follow_bad_actions(bad_actions, inputs, &self.skips) => {}
        }
        stop.send_replace(true);
        stop_leases.send_replace(true);
        let leases_given_back = async {
            if leases_held && tokio::time::timeout(self.drain, lease_task).await.is_err() {
                tracing::warn!("Leases not given back within the drain deadline; they expire.");
            }
        };
        let snapshot_stored = async {
            if tokio::time::timeout(self.drain, snapshot_writer)
                .await
                .is_err()
            {
                tracing::warn!(
                    "The snapshot being written was not stored within the drain deadline."
                );
            }
        };
        let ((), undelivered, ()) = tokio::join!(leases_given_back, publisher, snapshot_stored);
        match undelivered {
            Ok(undelivered) if undelivered.is_empty() => tracing::info!("Monitor stopped."),
            Ok(_) => tracing::warn!("Monitor stopped; some jobs were not delivered."),
            Err(e) => tracing::error!(error = %e, "Monitor publisher failed."),
        }
        Ok(())
    }
}

/// The lifecycle fold to start from: the stored snapshot's when there is one and it is
/// accepted, else an empty one (the whole log is replayed). A refusal is logged and counted.
async fn restore(snapshots: &jetstream::object_store::ObjectStore, log: &EventLog) -> Fold {
    let started = std::time::Instant::now();
    match snapshot_store::read(snapshots, log.stream()).await {
        Ok(Some(fold)) => {
            metrics::counter!(telemetry::MONITOR_SNAPSHOTS, "outcome" => "restored").increment(1);
            tracing::info!(
                vnfs = fold.vnfs.len(),
                sequence = fold.sequence,
                read_ms = started.elapsed().as_millis(),
                "Resuming from the lifecycle snapshot; following the log after it."
            );
            fold
        }
        Ok(None) => {
            tracing::info!("No lifecycle snapshot; replaying the log.");
            Fold::default()
        }
        Err(e) => {
            metrics::counter!(telemetry::MONITOR_SNAPSHOTS, "outcome" => "refused").increment(1);
            tracing::warn!(error = %e, "Lifecycle snapshot refused; replaying the whole log.");
            Fold::default()
        }
    }
}

/// The VNF subjects of the lifecycle log after stream sequence `after`, then live.
async fn follow_lifecycle(
    log: &EventLog,
    after: u64,
) -> Result<consumer::pull::Ordered, NatsError> {
    let deliver_policy = match after {
        0 => consumer::DeliverPolicy::All,
        _ => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        },
    };
    let consumer = log
        .stream()
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: names::VNF_SUBJECTS.into(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| NatsError::new("following the lifecycle log", e))?;
    metrics::gauge!(telemetry::MONITOR_LIFECYCLE_PENDING)
        .set(consumer.cached_info().num_pending as f64);
    consumer
        .messages()
        .await
        .map_err(|e| NatsError::new("reading the lifecycle log", e))
}

/// Decodes the lifecycle log for the engine, following on after its consumer ends; returns
/// only when the engine is gone. An undecodable message is skipped, counted and logged.
async fn follow_lifecycle_into(
    log: &EventLog,
    after: u64,
    mut lifecycle: consumer::pull::Ordered,
    inputs: mpsc::Sender<Input>,
    skips: &Skips,
) {
    // The last lifecycle message read (at first, the snapshot's): where to follow on from if
    // the consumer ends.
    let mut sequence = after;
    let pending = metrics::gauge!(telemetry::MONITOR_LIFECYCLE_PENDING);
    loop {
        let message = match lifecycle.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Lifecycle consumer hiccup; continuing.");
                continue;
            }
            None => {
                tracing::warn!(after = sequence, "Lifecycle consumer ended; following on.");
                lifecycle = loop {
                    match follow_lifecycle(log, sequence).await {
                        Ok(messages) => break messages,
                        Err(e) => {
                            tracing::warn!(error = %e, "Cannot follow the lifecycle log; retrying.");
                            tokio::time::sleep(FOLLOW_RETRY_DELAY).await;
                        }
                    }
                };
                continue;
            }
        };
        if let Ok(info) = message.info() {
            sequence = info.stream_sequence;
            pending.set(info.pending as f64);
        }
        let Some((_, vnf_id)) = names::parse_lifecycle_subject(&message.subject) else {
            continue;
        };
        let events = match envelope::decode::<VnfEvent>(&message.payload) {
            Ok(envelope) => envelope.events,
            Err(e) => {
                let skipped = Skips::count(&skips.lifecycle);
                tracing::error!(vnf_id, sequence, error = %e, skipped, "Undecodable lifecycle message; skipped.");
                continue;
            }
        };
        let input = Input::Lifecycle {
            sequence,
            vnf_id: vnf_id.to_owned(),
            events,
        };
        if inputs.send(input).await.is_err() {
            return;
        }
    }
}

/// Decodes `bad_action` answers for the engine; returns when the subscription or the engine
/// is gone. An undecodable answer is skipped, counted and logged.
async fn follow_bad_actions(
    mut bad_actions: async_nats::Subscriber,
    inputs: mpsc::Sender<Input>,
    skips: &Skips,
) {
    while let Some(message) = bad_actions.next().await {
        let input = match serde_json::from_slice::<MonitorMessage>(&message.payload) {
            Ok(MonitorMessage {
                event: MonitorEvent::BadAction { target, reason, .. },
                ..
            }) => Input::BadAction { target, reason },
            Ok(_) => continue,
            Err(e) => {
                let skipped = Skips::count(&skips.bad_actions);
                tracing::warn!(subject = %message.subject, error = %e, skipped, "Undecodable bad_action answer; skipped.");
                continue;
            }
        };
        if inputs.send(input).await.is_err() {
            return;
        }
    }
    tracing::warn!("bad_action subscription ended.");
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests;
