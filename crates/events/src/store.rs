//! The event store: cqrs-es aggregates persisted on the JetStream lifecycle stream.
//!
//! One subject per aggregate. An append is one message carrying the command's events, published
//! with `Nats-Expected-Last-Subject-Sequence` (optimistic concurrency) and a `Nats-Msg-Id`
//! derived from the command (so a retry after a timeout stores nothing twice). Loading reads the
//! subject's messages from the stream leader and applies them to a fresh aggregate, or to the
//! fold this process kept of a long history ([`folds`]), reading only what was appended since;
//! any process can load any aggregate from the log alone. A stored message that does not decode
//! (garbage, an unknown event type, a newer schema) is skipped, logged and counted
//! ([`Skipped`]); it never makes an aggregate unloadable, and it still counts as the subject's
//! last sequence for the next append.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventEnvelope, EventStore};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::envelope::{self, Cause, Envelope, SCHEMA_VERSION};
use crate::names::{self, AggregateKind};
use crate::nats_error::{NatsError, NatsErrorKind};
use crate::read::{self, Stored};
use crate::telemetry;
use crate::vim::Vim;
use crate::vnf::Vnf;
use crate::vnfd::Vnfd;
use folds::{Fold, Folds};

/// How often an append is re-sent after a timeout or a lost connection before giving up.
/// Three covers a leader election in a three-node cluster (a few seconds) at the publish timeout.
const PUBLISH_ATTEMPTS_MAX: u32 = 3;
/// How often a command is re-decided after losing an optimistic-concurrency race. Each retry
/// reloads the aggregate after a random pause ([`CONFLICT_BACKOFF_MAX`]). The hottest aggregate is
/// a VNFD from which many VNFs are created at once (each records itself as a user); 32 rounds
/// with backoff let dozens of simultaneous creates through.
const CONFLICT_RETRIES_MAX: u32 = 32;
/// The longest random pause before re-deciding: it doubles from 1 ms with each lost race up to
/// this, so that racing writers spread out instead of colliding again in lockstep.
const CONFLICT_BACKOFF_MAX: Duration = Duration::from_millis(64);

/// An aggregate that lives on the lifecycle log.
pub trait Logged: Aggregate<Event: Serialize + DeserializeOwned> + Clone + 'static {
    const KIND: AggregateKind;
    fn subject(aggregate_id: &str) -> String;
}

impl Logged for Vnf {
    const KIND: AggregateKind = AggregateKind::Vnf;
    fn subject(aggregate_id: &str) -> String {
        names::vnf_subject(aggregate_id)
    }
}

impl Logged for Vnfd {
    const KIND: AggregateKind = AggregateKind::Vnfd;
    fn subject(aggregate_id: &str) -> String {
        names::vnfd_subject(aggregate_id)
    }
}

impl Logged for Vim {
    const KIND: AggregateKind = AggregateKind::Vim;
    fn subject(aggregate_id: &str) -> String {
        names::vim_subject(aggregate_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the aggregate since it was loaded.
    #[error("conflict: the aggregate changed since it was loaded")]
    Conflict,
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// A stream or bucket the role binds to was never made.
    #[error("{0}")]
    NotProvisioned(String),
    #[error("event cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// A stream or bucket cannot be made as asked (a bound out of range): what was wrong.
    #[error("{0}")]
    Misconfigured(String),
}

/// Why a command did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command (a user error, or a stale operation).
    #[error(transparent)]
    Rejected(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored lifecycle message, decoded.
#[derive(Debug, Clone)]
pub struct Recorded<E> {
    /// The message's stream sequence: the position in the log.
    pub sequence: u64,
    pub envelope: Envelope<E>,
}

/// A stored message that was left out because it does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The message's stream sequence.
    pub sequence: u64,
    /// Why it does not decode.
    pub reason: String,
    /// When the server stored it.
    pub stored_at: OffsetDateTime,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "message #{} skipped: it does not decode ({})",
            self.sequence, self.reason
        )
    }
}

/// A subject's messages in the order of the log: each decoded, or skipped because it does not
/// decode.
#[derive(Debug)]
pub struct History<E> {
    /// Every message, oldest first.
    pub messages: Vec<Result<Recorded<E>, Skipped>>,
    /// Stream sequence of the subject's last message, skipped or not; 0 when it is empty.
    pub last_sequence: u64,
}

impl<E> History<E> {
    /// The messages that decode and those skipped, each oldest first.
    pub fn split(self) -> (Vec<Recorded<E>>, Vec<Skipped>) {
        let mut recorded = Vec::with_capacity(self.messages.len());
        let mut skipped = Vec::new();
        for message in self.messages {
            match message {
                Ok(message) => recorded.push(message),
                Err(message) => skipped.push(message),
            }
        }
        (recorded, skipped)
    }
}

impl<E: DeserializeOwned> History<E> {
    /// Decodes `messages` (one subject's, oldest first), skipping and logging those that do
    /// not decode.
    fn decode(messages: &[Stored]) -> Self {
        History {
            messages: messages.iter().map(decode_or_skip).collect(),
            last_sequence: messages.last().map_or(0, |m| m.sequence),
        }
    }
}

/// `message` decoded, or why it is skipped (logged here, once, with its sequence).
pub fn decode_or_skip<E: DeserializeOwned>(message: &Stored) -> Result<Recorded<E>, Skipped> {
    match envelope::decode(&message.payload) {
        Ok(envelope) => Ok(Recorded {
            sequence: message.sequence,
            envelope,
        }),
        Err(e) => {
            tracing::warn!(
                subject = %message.subject,
                sequence = message.sequence,
                error = %e,
                "Stored message does not decode; skipped."
            );
            Err(Skipped {
                sequence: message.sequence,
                reason: e.to_string(),
                stored_at: message.time,
            })
        }
    }
}

/// An aggregate as loaded from its subject.
#[derive(Debug)]
pub struct Loaded<A> {
    pub aggregate_id: String,
    pub aggregate: A,
    /// Stream sequence of the subject's last message (a skipped one too); 0 when the subject
    /// is empty. The next append expects it.
    pub last_sequence: u64,
    /// The subject's messages that do not decode, left out of `aggregate`.
    pub skipped: Vec<Skipped>,
}

impl<A: Aggregate> AggregateContext<A> for Loaded<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

/// What a committed command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    pub aggregate: A,
    pub events: Vec<A::Event>,
    /// Stream sequence of the appended message; the previous one when nothing was appended.
    pub sequence: u64,
}

/// A handle on the lifecycle stream. Cheap to clone; shares the NATS connection and the folds
/// kept.
#[derive(Clone)]
pub struct EventLog {
    jetstream: jetstream::Context,
    stream: stream::Stream,
    folds: Arc<Folds>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl EventLog {
    /// Binds to the lifecycle stream, which [`setup::provision`](crate::setup::provision) made.
    pub async fn open(client: async_nats::Client) -> Result<Self, StoreError> {
        let jetstream = jetstream::new(client);
        let stream = bind_stream(&jetstream, names::LIFECYCLE_STREAM).await?;
        Ok(EventLog {
            jetstream,
            stream,
            folds: Arc::default(),
        })
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn stream(&self) -> &stream::Stream {
        &self.stream
    }

    /// Every message on `subject` that decodes, oldest first, read from the stream leader;
    /// the others are skipped and logged (see [`EventLog::history`]).
    pub async fn read_subject<E: DeserializeOwned>(
        &self,
        subject: &str,
    ) -> Result<Vec<Recorded<E>>, StoreError> {
        Ok(self.history(subject).await?.split().0)
    }

    /// Every message on `subject`, oldest first, read from the stream leader: those that
    /// decode, and those skipped because they do not.
    pub async fn history<E: DeserializeOwned>(
        &self,
        subject: &str,
    ) -> Result<History<E>, StoreError> {
        Ok(History::decode(
            &read::subject(&self.jetstream.client(), &self.stream, subject).await?,
        ))
    }

    /// The stored message at `sequence`, whatever its subject.
    pub async fn read_at(&self, sequence: u64) -> Result<Option<StreamMessage>, StoreError> {
        found(
            self.stream.get_raw_message(sequence).await,
            "reading a message",
        )
    }

    async fn last_message(&self, subject: &str) -> Result<Option<StreamMessage>, StoreError> {
        found(
            self.stream.get_last_raw_message_by_subject(subject).await,
            "reading an aggregate's last message",
        )
    }

    /// Loads an aggregate by replaying its subject (or the part appended since the fold this
    /// process kept of it). Messages that do not decode are left out and listed in
    /// [`Loaded::skipped`].
    pub async fn load<A: Logged>(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError> {
        let subject = A::subject(aggregate_id);
        let mut fold = self.folds.get::<A>(&subject).unwrap_or_default();
        let mut tail = read::subject_after(
            &self.jetstream.client(),
            &self.stream,
            &subject,
            fold.last_sequence,
        )
        .await?;
        if tail.last_sequence < fold.last_sequence {
            tracing::warn!(
                subject,
                kept = fold.last_sequence,
                last = tail.last_sequence,
                "The log ends before a kept fold; reading the subject anew."
            );
            self.folds.forget(&subject);
            fold = Fold::default();
            tail = read::subject_after(&self.jetstream.client(), &self.stream, &subject, 0).await?;
        }
        for message in &tail.messages {
            fold.messages += 1;
            fold.bytes += message.payload.len();
            match decode_or_skip::<A::Event>(message) {
                Ok(recorded) => recorded
                    .envelope
                    .events
                    .into_iter()
                    .for_each(|e| fold.aggregate.apply(e)),
                Err(skipped) => fold.skipped.push(skipped),
            }
        }
        fold.last_sequence = fold.last_sequence.max(tail.last_sequence);
        if !tail.messages.is_empty() {
            self.folds.keep(&subject, &fold);
        }
        Ok(Loaded {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: fold.aggregate,
            last_sequence: fold.last_sequence,
            skipped: fold.skipped,
        })
    }

    /// Appends one command's events to the aggregate's subject, expecting `expected_sequence`
    /// to be its last. Returns the new message's stream sequence.
    pub async fn append<A: Logged>(
        &self,
        aggregate_id: &str,
        expected_sequence: u64,
        cause: &Cause,
        events: Vec<A::Event>,
    ) -> Result<u64, StoreError> {
        let envelope = Envelope {
            schema_version: SCHEMA_VERSION,
            aggregate: A::KIND,
            aggregate_id: aggregate_id.to_owned(),
            cause: cause.clone(),
            recorded_at: OffsetDateTime::now_utc(),
            events,
        };
        let payload = bytes::Bytes::from(serde_json::to_vec(&envelope)?);
        let subject = A::subject(aggregate_id);
        let message_id = format!("{}@{}", cause.command_id, aggregate_id);
        let started = std::time::Instant::now();
        let appended = self
            .publish_expecting(&subject, &message_id, expected_sequence, payload)
            .await;
        let outcome = match &appended {
            Ok(_) => "stored",
            Err(StoreError::Conflict) => "conflict",
            Err(_) => "error",
        };
        metrics::histogram!(telemetry::APPEND_LATENCY, "outcome" => outcome)
            .record(started.elapsed());
        appended
    }

    async fn publish_expecting(
        &self,
        subject: &str,
        message_id: &str,
        expected_sequence: u64,
        payload: bytes::Bytes,
    ) -> Result<u64, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(message_id)
                .expected_last_subject_sequence(expected_sequence);
            let acked = match self
                .jetstream
                .send_publish(subject.to_owned(), publish)
                .await
            {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            let error = match acked {
                Ok(ack) => return Ok(ack.sequence),
                Err(error) => error,
            };
            match error.kind() {
                // A retry of an append that was stored: single-replica servers answer "wrong
                // last sequence" rather than "duplicate", so look at what is there.
                PublishErrorKind::WrongLastSequence => {
                    return match self.last_message(subject).await? {
                        Some(last) if stored_id(&last) == Some(message_id) => Ok(last.sequence),
                        _ => Err(StoreError::Conflict),
                    };
                }
                PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe
                    if attempt < PUBLISH_ATTEMPTS_MAX =>
                {
                    tracing::warn!(subject, attempt, error = %error, "Append not acknowledged; retrying.");
                }
                _ => {
                    return Err(NatsError::new("appending to the lifecycle log", error).into());
                }
            }
        }
    }

    /// Loads, decides and appends, re-deciding after a lost race.
    pub async fn execute<A: Logged>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        cause: &Cause,
    ) -> Result<Executed<A>, CommandError<A::Error>>
    where
        A::Command: Clone,
    {
        let mut conflicts = 0;
        loop {
            let mut loaded = self.load::<A>(aggregate_id).await?;
            let sink = EventSink::default();
            loaded
                .aggregate
                .handle(command.clone(), services, &sink)
                .await
                .map_err(CommandError::Rejected)?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(Executed {
                    aggregate: loaded.aggregate,
                    events,
                    sequence: loaded.last_sequence,
                });
            }
            match self
                .append::<A>(aggregate_id, loaded.last_sequence, cause, events.clone())
                .await
            {
                Ok(sequence) => {
                    return Ok(Executed {
                        aggregate: loaded.aggregate,
                        events,
                        sequence,
                    });
                }
                Err(StoreError::Conflict) if conflicts < CONFLICT_RETRIES_MAX => {
                    conflicts += 1;
                    tracing::debug!(aggregate_id, conflicts, "Lost an append race; re-deciding.");
                    tokio::time::sleep(conflict_backoff(conflicts)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A random pause in `[0, min(2^conflicts ms, CONFLICT_BACKOFF_MAX))`.
fn conflict_backoff(conflicts: u32) -> Duration {
    let ceiling = Duration::from_millis(1 << conflicts.min(16)).min(CONFLICT_BACKOFF_MAX);
    // Any uniform source will do; a v4 UUID is random and already a dependency.
    let fraction = (uuid::Uuid::new_v4().as_u128() % 1_000) as u32;
    ceiling * fraction / 1_000
}

/// Binds to the monitor stream: VDU state changes, `bad_action` rejections, suspect reports,
/// refused targets and the failure reports' copies.
pub async fn open_monitor_stream(
    jetstream: &jetstream::Context,
) -> Result<stream::Stream, StoreError> {
    bind_stream(jetstream, names::MONITOR_STREAM).await
}

/// Binds to the telemetry stream: probe rounds.
pub async fn open_telemetry_stream(
    jetstream: &jetstream::Context,
) -> Result<stream::Stream, StoreError> {
    bind_stream(jetstream, names::TELEMETRY_STREAM).await
}

/// Binds to the bucket in which monitors keep each VNF's last known VDU states.
pub async fn open_monitor_states(
    jetstream: &jetstream::Context,
) -> Result<jetstream::kv::Store, StoreError> {
    open_bucket(jetstream, names::MONITOR_STATE_BUCKET).await
}

/// Binds to the object store bucket in which monitors keep their lifecycle snapshots.
pub async fn open_monitor_snapshots(
    jetstream: &jetstream::Context,
) -> Result<jetstream::object_store::ObjectStore, StoreError> {
    let bucket = names::MONITOR_SNAPSHOT_BUCKET;
    // The bucket's stream first: its error tells a missing bucket from an unreachable server.
    bind_stream(jetstream, &names::object_store_stream(bucket)).await?;
    jetstream
        .get_object_store(bucket)
        .await
        .map_err(|e| NatsError::other("opening an object store bucket", e).into())
}

/// Binds to the stream `name`; one that does not exist is an error naming it and the step that
/// makes it (roles never create a stream: they may not).
async fn bind_stream(
    jetstream: &jetstream::Context,
    name: &str,
) -> Result<stream::Stream, StoreError> {
    jetstream
        .get_stream(name)
        .await
        .map_err(|e| not_provisioned(NatsError::new("opening a stream", e), "stream", name))
}

/// Binds to the KV bucket `bucket`, which [`setup::provision`](crate::setup::provision) made;
/// every role opens the buckets it uses this way.
pub async fn open_bucket(
    jetstream: &jetstream::Context,
    bucket: &'static str,
) -> Result<jetstream::kv::Store, StoreError> {
    // The bucket's stream first: its error tells a missing bucket from an unreachable server.
    bind_stream(jetstream, &format!("KV_{bucket}")).await?;
    jetstream
        .get_key_value(bucket)
        .await
        .map_err(|e| NatsError::other("opening a bucket", e).into())
}

/// A watch of `bucket`: every key's last entry, then every change; and whether the bucket was
/// empty when it began. An empty bucket's watch delivers nothing until a change, so a reader
/// that waits for the watch to catch up (an entry with `delta` 0) must not wait then.
pub async fn watch_every_key(
    bucket: &jetstream::kv::Store,
) -> Result<(jetstream::kv::Watch, bool), NatsError> {
    // `Store::status` answers from the handle's cache, so ask the stream itself.
    let mut stream = bucket.stream.clone();
    let info = stream
        .info()
        .await
        .map_err(|e| NatsError::new("reading a bucket's size", e))?;
    let watch = bucket
        .watch_with_history(ALL_KEYS)
        .await
        .map_err(|e| NatsError::new("watching a bucket", e))?;
    Ok((watch, info.state.messages == 0))
}

/// The KV key pattern that matches every key (a NATS wildcard, not a lifecycle subject).
const ALL_KEYS: &str = ">";

/// `error`, or when it says the stream is missing, an error that says what to run.
fn not_provisioned(error: NatsError, what: &str, name: &str) -> StoreError {
    if error.kind() == NatsErrorKind::NotFound {
        StoreError::NotProvisioned(format!(
            "the {what} {name} does not exist: run `vnfm setup` (or `vnfm up`) with the admin identity first"
        ))
    } else {
        error.into()
    }
}

/// The message a direct get found, or `None` when there is none.
fn found(
    got: Result<StreamMessage, stream::LastRawMessageError>,
    context: &'static str,
) -> Result<Option<StreamMessage>, StoreError> {
    match got {
        Ok(message) => Ok(Some(message)),
        Err(e) => match NatsError::new(context, e) {
            error if error.kind() == NatsErrorKind::NotFound => Ok(None),
            error => Err(error.into()),
        },
    }
}

fn stored_id(message: &StreamMessage) -> Option<&str> {
    message
        .headers
        .get(names::headers::MSG_ID)
        .map(async_nats::HeaderValue::as_str)
}

/// The cqrs-es face of the log, so a `CqrsFramework` can run on it too.
pub struct JetStreamStore<A> {
    log: EventLog,
    aggregate: PhantomData<fn() -> A>,
}

impl<A> JetStreamStore<A> {
    pub fn new(log: EventLog) -> Self {
        JetStreamStore {
            log,
            aggregate: PhantomData,
        }
    }
}

fn aggregate_error<E: std::error::Error>(error: StoreError) -> AggregateError<E> {
    match error {
        StoreError::Conflict => AggregateError::AggregateConflict,
        StoreError::Encode(_) => AggregateError::DeserializationError(Box::new(error)),
        StoreError::Nats(_) | StoreError::NotProvisioned(_) | StoreError::Misconfigured(_) => {
            AggregateError::DatabaseConnectionError(Box::new(error))
        }
    }
}

impl<A: Logged> EventStore<A> for JetStreamStore<A> {
    type AC = Loaded<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let recorded = self
            .log
            .read_subject::<A::Event>(&A::subject(aggregate_id))
            .await
            .map_err(aggregate_error)?;
        let mut envelopes = Vec::new();
        for message in recorded {
            let metadata = message.envelope.cause.to_metadata();
            for payload in message.envelope.events {
                envelopes.push(EventEnvelope {
                    aggregate_id: aggregate_id.to_owned(),
                    sequence: envelopes.len() + 1,
                    payload,
                    metadata: metadata.clone(),
                });
            }
        }
        Ok(envelopes)
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Loaded<A>, AggregateError<A::Error>> {
        self.log.load(aggregate_id).await.map_err(aggregate_error)
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Loaded<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let cause = Cause::from_metadata(&metadata).ok_or_else(|| {
            AggregateError::UnexpectedError("commit without actor and cause metadata".into())
        })?;
        self.log
            .append::<A>(
                &context.aggregate_id,
                context.last_sequence,
                &cause,
                events.clone(),
            )
            .await
            .map_err(aggregate_error)?;
        Ok(events
            .into_iter()
            .enumerate()
            .map(|(n, payload)| EventEnvelope {
                aggregate_id: context.aggregate_id.clone(),
                sequence: n + 1,
                payload,
                metadata: metadata.clone(),
            })
            .collect())
    }
}

pub mod folds;

#[cfg(test)]
mod tests;
