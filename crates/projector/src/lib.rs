//! The projector: a durable consumer of the lifecycle log that keeps the queryable VNF and
//! VNFD tables (JetStream KV buckets), and the rebuild that recomputes them from the log.
//!
//! The projector never publishes to the log and never calls a VIM; the tables hold nothing
//! that the log does not, so they can always be rebuilt. Any number of projectors may share
//! the durable consumer: a row is only written on top of its predecessor message.

pub mod table;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, kv};
use cqrs_es::Aggregate;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use events::consume::Durable;
use events::envelope::{self, Envelope};
use events::names::{self, AggregateKind};
use events::store::{self, EventLog};
use events::vnf::Vnf;
use events::vnfd::Vnfd;
use table::{Row, Step, VnfRow, VnfdRow};

/// How long the server waits for a projector's ack before redelivering. A row update is two
/// KV round trips, far below this; what a crashed projector held is projected again (by
/// itself restarted, or by another) this long after the crash. A slow write that outlives it
/// is harmless: the predecessor check makes a second projection of a message a no-op.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// How long to put back a message whose predecessor is not applied yet.
const GAP_RETRY_DELAY: Duration = Duration::from_millis(50);
/// How often a row write is re-tried after another projector changed the row in between.
const ROW_WRITE_ATTEMPTS_MAX: u32 = 16;
/// Messages a projector holds unacknowledged. Rows are written one at a time, so this only
/// bounds what a crashed projector leaves for redelivery.
const ACK_PENDING_MAX: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("NATS: {context}: {source}")]
    Nats {
        context: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error("row {key} cannot be read: {source}")]
    Row {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("row {key} kept changing under {ROW_WRITE_ATTEMPTS_MAX} attempts")]
    Contended { key: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

fn nats(context: &'static str, source: impl Into<async_nats::Error>) -> ProjectorError {
    ProjectorError::Nats {
        context,
        source: source.into(),
    }
}

/// The two tables.
#[derive(Clone)]
pub struct Tables {
    pub vnfs: kv::Store,
    pub vnfds: kv::Store,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables").finish_non_exhaustive()
    }
}

impl Tables {
    /// Opens the tables, creating the buckets when missing.
    pub async fn open(
        jetstream: &jetstream::Context,
        replicas: usize,
    ) -> Result<Self, ProjectorError> {
        let open = |bucket: &'static str| {
            let config = kv::Config {
                bucket: bucket.into(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            };
            store::open_bucket(jetstream, config, "opening a table")
        };
        Ok(Tables {
            vnfs: open(names::VNF_TABLE_BUCKET).await?,
            vnfds: open(names::VNFD_TABLE_BUCKET).await?,
        })
    }

    fn bucket(&self, kind: AggregateKind) -> &kv::Store {
        match kind {
            AggregateKind::Vnf => &self.vnfs,
            AggregateKind::Vnfd => &self.vnfds,
        }
    }

    /// One VNF row, if the table has it (deleted VNFs stay as rows with `deleted` set).
    pub async fn vnf(&self, vnf_id: &str) -> Result<Option<VnfRow>, ProjectorError> {
        read_row(&self.vnfs, vnf_id)
            .await
            .map(|r| r.map(|(row, _)| row))
    }

    pub async fn vnfd(&self, vnfd_id: &str) -> Result<Option<VnfdRow>, ProjectorError> {
        read_row(&self.vnfds, vnfd_id)
            .await
            .map(|r| r.map(|(row, _)| row))
    }

    /// Every row of a table.
    pub async fn all<A: DeserializeOwned>(
        &self,
        kind: AggregateKind,
    ) -> Result<BTreeMap<String, Row<A>>, ProjectorError> {
        let bucket = self.bucket(kind);
        let mut keys = match bucket.keys().await {
            Ok(keys) => keys.boxed(),
            Err(e) => return Err(nats("listing a table", e)),
        };
        let mut rows = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| nats("listing a table", e))?;
            if let Some((row, _)) = read_row(bucket, &key).await? {
                rows.insert(key, row);
            }
        }
        Ok(rows)
    }
}

async fn read_row<A: DeserializeOwned>(
    bucket: &kv::Store,
    key: &str,
) -> Result<Option<(Row<A>, u64)>, ProjectorError> {
    let Some(entry) = bucket
        .entry(key)
        .await
        .map_err(|e| nats("reading a row", e))?
    else {
        return Ok(None);
    };
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    let row = serde_json::from_slice(&entry.value).map_err(|source| ProjectorError::Row {
        key: key.to_owned(),
        source,
    })?;
    Ok(Some((row, entry.revision)))
}

/// Runs one projector until `shutdown` resolves, then finishes the message in hand.
pub async fn run(
    log: EventLog,
    tables: Tables,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let mut messages = Durable::new(
        log.stream().clone(),
        consumer::pull::Config {
            durable_name: Some(names::PROJECTOR_CONSUMER.into()),
            filter_subject: names::LIFECYCLE_SUBJECTS.into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: ACK_PENDING_MAX,
            ..Default::default()
        },
    );
    tokio::pin!(shutdown);
    tracing::info!("Projector running.");
    loop {
        let message = tokio::select! {
            () = &mut shutdown => break,
            message = messages.next() => message,
        };
        let ack = match project(&tables, &message).await {
            Ok(ack) => ack,
            Err(e) => {
                tracing::error!(subject = %message.subject, error = %e, "Cannot project; will retry.");
                AckKind::Nak(Some(GAP_RETRY_DELAY))
            }
        };
        if let Err(e) = message.ack_with(ack).await {
            tracing::warn!(error = %e, "Ack lost; the message will be redelivered and skipped.");
        }
    }
    tracing::info!("Projector stopped.");
    Ok(())
}

async fn project(tables: &Tables, message: &jetstream::Message) -> Result<AckKind, ProjectorError> {
    let Some((kind, id)) = names::parse_lifecycle_subject(&message.subject) else {
        return Ok(AckKind::Term);
    };
    let sequence = message
        .info()
        .map_err(|e| nats("reading message info", e))?
        .stream_sequence;
    let previous = message
        .headers
        .as_ref()
        .and_then(|h| h.get(names::headers::EXPECTED_LAST_SUBJECT_SEQUENCE))
        .and_then(|v| v.as_str().parse().ok());
    match kind {
        AggregateKind::Vnf => {
            apply_to_row::<Vnf>(&tables.vnfs, id, sequence, previous, &message.payload).await
        }
        AggregateKind::Vnfd => {
            apply_to_row::<Vnfd>(&tables.vnfds, id, sequence, previous, &message.payload).await
        }
    }
}

async fn apply_to_row<A>(
    bucket: &kv::Store,
    key: &str,
    sequence: u64,
    previous: Option<u64>,
    payload: &[u8],
) -> Result<AckKind, ProjectorError>
where
    A: Aggregate + Clone + Serialize + DeserializeOwned,
{
    let envelope: Envelope<A::Event> = match envelope::decode(payload) {
        Ok(envelope) => envelope,
        Err(e) => {
            // A message this build cannot read will not become readable by retrying.
            tracing::error!(key, sequence, error = %e, "Undecodable lifecycle message; skipped.");
            return Ok(AckKind::Term);
        }
    };
    for _ in 0..ROW_WRITE_ATTEMPTS_MAX {
        let current = read_row::<A>(bucket, key).await?;
        let row = current.as_ref().map(|(row, _)| row);
        match table::step(row, sequence, previous, envelope.clone()) {
            Step::AlreadyApplied => return Ok(AckKind::Ack),
            Step::Gap {
                row_sequence,
                previous,
            } => {
                tracing::debug!(
                    key,
                    sequence,
                    row_sequence,
                    previous,
                    "Predecessor not applied yet."
                );
                return Ok(AckKind::Nak(Some(GAP_RETRY_DELAY)));
            }
            Step::Apply(next) => {
                let value = bytes::Bytes::from(serde_json::to_vec(&next).map_err(|source| {
                    ProjectorError::Row {
                        key: key.to_owned(),
                        source,
                    }
                })?);
                let written = match current {
                    Some((_, revision)) => bucket.update(key, value, revision).await.is_ok(),
                    None => bucket.create(key, value).await.is_ok(),
                };
                if written {
                    return Ok(AckKind::Ack);
                }
            }
        }
    }
    Err(ProjectorError::Contended {
        key: key.to_owned(),
    })
}

/// The tables recomputed from the log, up to a stream sequence.
#[derive(Debug, Default, PartialEq)]
pub struct Rebuilt {
    pub vnfs: BTreeMap<String, VnfRow>,
    pub vnfds: BTreeMap<String, VnfdRow>,
    /// The last stream sequence folded in.
    pub through_sequence: u64,
}

/// Replays the whole lifecycle log through the same fold the projector uses.
pub async fn rebuild(log: &EventLog) -> Result<Rebuilt, ProjectorError> {
    let mut stream = log.stream().clone();
    let last = stream
        .info()
        .await
        .map_err(|e| nats("reading the log's state", e))?
        .state
        .last_sequence;
    let mut rebuilt = Rebuilt {
        through_sequence: last,
        ..Default::default()
    };
    if last == 0 {
        return Ok(rebuilt);
    }
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: names::LIFECYCLE_SUBJECTS.into(),
            ..Default::default()
        })
        .await
        .map_err(|e| nats("replaying the log", e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| nats("replaying the log", e))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| nats("replaying the log", e))?;
        let sequence = message
            .info()
            .map_err(|e| nats("replaying the log", e))?
            .stream_sequence;
        if sequence > last {
            break;
        }
        if let Some((kind, id)) = names::parse_lifecycle_subject(&message.subject) {
            match kind {
                AggregateKind::Vnf => {
                    fold::<Vnf>(&mut rebuilt.vnfs, id, sequence, &message.payload)
                }
                AggregateKind::Vnfd => {
                    fold::<Vnfd>(&mut rebuilt.vnfds, id, sequence, &message.payload)
                }
            }
        }
        if sequence >= last {
            break;
        }
    }
    Ok(rebuilt)
}

fn fold<A>(rows: &mut BTreeMap<String, Row<A>>, key: &str, sequence: u64, payload: &[u8])
where
    A: Aggregate + Clone + DeserializeOwned,
{
    let Ok(envelope) = envelope::decode::<A::Event>(payload) else {
        tracing::error!(key, sequence, "Undecodable lifecycle message; skipped.");
        return;
    };
    if let Step::Apply(row) = table::step(rows.get(key), sequence, None, envelope) {
        rows.insert(key.to_owned(), row);
    }
}

/// Where the live tables and a rebuild disagree.
#[derive(Debug, Default)]
pub struct Verification {
    pub compared: usize,
    /// Rows changed after the rebuild's snapshot, so not comparable.
    pub skipped: usize,
    pub differences: Vec<String>,
}

/// Compares the live tables with a rebuild of the log, once the projector has caught up.
pub async fn verify(
    log: &EventLog,
    tables: &Tables,
    catch_up: Duration,
) -> Result<Verification, ProjectorError> {
    let rebuilt = rebuild(log).await?;
    wait_for_projector(log, rebuilt.through_sequence, catch_up).await?;
    let mut verification = Verification::default();
    compare(
        "VNF",
        &tables.all::<Vnf>(AggregateKind::Vnf).await?,
        &rebuilt.vnfs,
        rebuilt.through_sequence,
        &mut verification,
    );
    compare(
        "VNFD",
        &tables.all::<Vnfd>(AggregateKind::Vnfd).await?,
        &rebuilt.vnfds,
        rebuilt.through_sequence,
        &mut verification,
    );
    Ok(verification)
}

fn compare<A: PartialEq + std::fmt::Debug>(
    what: &str,
    live: &BTreeMap<String, Row<A>>,
    rebuilt: &BTreeMap<String, Row<A>>,
    through: u64,
    verification: &mut Verification,
) {
    let keys: std::collections::BTreeSet<&String> = live.keys().chain(rebuilt.keys()).collect();
    for key in keys {
        match (live.get(key), rebuilt.get(key)) {
            (Some(l), _) if l.last_sequence > through => verification.skipped += 1,
            (Some(l), Some(r)) if l == r => verification.compared += 1,
            (Some(l), Some(r)) => {
                verification.compared += 1;
                verification.differences.push(format!(
                    "{what} {key}: live row at sequence {} differs from the log's at {}:\n  live: {l:?}\n  log:  {r:?}",
                    l.last_sequence, r.last_sequence
                ));
            }
            (Some(_), None) => verification
                .differences
                .push(format!("{what} {key}: in the live table, not in the log")),
            (None, Some(_)) => verification.differences.push(format!(
                "{what} {key}: in the log, missing from the live table"
            )),
            (None, None) => {}
        }
    }
}

async fn wait_for_projector(
    log: &EventLog,
    through: u64,
    patience: Duration,
) -> Result<(), ProjectorError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let mut consumer: consumer::PullConsumer = log
            .stream()
            .get_consumer(names::PROJECTOR_CONSUMER)
            .await
            .map_err(|e| nats("finding the projector consumer", e))?;
        let info = consumer
            .info()
            .await
            .map_err(|e| nats("reading the projector's position", e))?;
        if info.ack_floor.stream_sequence >= through || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes a rebuild of the log into the tables, repairing rows that are missing or behind.
/// A row is only replaced by a later one (compare-and-set), so a live projector is never undone.
/// Returns how many rows were written.
pub async fn write_rebuild(log: &EventLog, tables: &Tables) -> Result<usize, ProjectorError> {
    let rebuilt = rebuild(log).await?;
    let mut written = 0;
    for (key, row) in &rebuilt.vnfs {
        written += usize::from(repair_row(&tables.vnfs, key, row).await?);
    }
    for (key, row) in &rebuilt.vnfds {
        written += usize::from(repair_row(&tables.vnfds, key, row).await?);
    }
    Ok(written)
}

async fn repair_row<A>(bucket: &kv::Store, key: &str, row: &Row<A>) -> Result<bool, ProjectorError>
where
    A: Serialize + DeserializeOwned + PartialEq,
{
    let value =
        bytes::Bytes::from(
            serde_json::to_vec(row).map_err(|source| ProjectorError::Row {
                key: key.to_owned(),
                source,
            })?,
        );
    for _ in 0..ROW_WRITE_ATTEMPTS_MAX {
        let written = match read_row::<A>(bucket, key).await {
            Ok(Some((live, _))) if live.last_sequence >= row.last_sequence => return Ok(false),
            Ok(Some((_, revision))) => bucket.update(key, value.clone(), revision).await.is_ok(),
            Ok(None) => bucket.create(key, value.clone()).await.is_ok(),
            // An unreadable row is replaced outright.
            Err(ProjectorError::Row { .. }) => bucket.put(key, value.clone()).await.is_ok(),
            Err(e) => return Err(e),
        };
        if written {
            return Ok(true);
        }
    }
    Err(ProjectorError::Contended {
        key: key.to_owned(),
    })
}
