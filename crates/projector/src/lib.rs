//! The projector: a durable consumer of the lifecycle log that keeps the queryable VNF, VNFD
//! and VIM tables (JetStream KV buckets), and the rebuild that recomputes them from the log.
//!
//! The projector never publishes to the log and never calls a VIM; the tables hold nothing
//! that the log does not, so they can always be rebuilt. Any number of projectors may share
//! the durable consumer: a row is only written on top of its predecessor message.
//!
//! A lifecycle message that does not decode moves its row past it unchanged (so the
//! subject's next message still finds its predecessor) and is parked; the rebuild skips it the
//! same way, so the two agree. Only a lost compare-and-set on a row (wrong last revision, key
//! already exists) is retried as contention; every other NATS error is returned. A message
//! whose row is too large to store is parked too (`is_permanent`), never offered again for
//! ever.
//!
//! Once a VNF's, VNFD's or VIM's row stands deleted, the projector destroys the aggregate's data key
//! ([`keyring::shred`]) before it acks: the secrets its events sealed become unreadable for
//! good, while the events stay. It deletes a deleted VNF's VDU states from the monitors' state
//! bucket too (best effort, `Erasures::erase`): the monitor holding the VNF's partition
//! deletes them as well, but a VNF deleted while no monitor holds its partition (a dead
//! monitor's lease running out) would keep them for ever.

pub mod table;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, kv};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use events::consume::Durable;
use events::envelope::{self, DecodeError};
use events::keyring;
use events::names::{self, AggregateKind};
use events::nats_error::{NatsError, NatsErrorKind};
use events::read::{Stored, StreamRead};
use events::store::{self, EventLog, Skipped};
use events::vim::Vim;
use events::vnf::Vnf;
use events::vnfd::VnfdListing;
use table::{Projection, Row, Step, VimRow, VnfRow, VnfdRow};

/// How long the server waits for a projector's ack before redelivering. A row update is two
/// KV round trips, far below this; what a crashed projector held is projected again (by
/// itself restarted, or by another) this long after the crash. A slow write that outlives it
/// is harmless: the predecessor check makes a second projection of a message a no-op.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// How long to put back a message whose predecessor is not applied yet.
const GAP_RETRY_DELAY: Duration = Duration::from_millis(50);
/// How often a row write is re-tried after another projector changed the row in between.
const ROW_WRITE_ATTEMPTS_MAX: u32 = 16;
/// How often [`verify`] looks at the projector's position while waiting for it to catch up:
/// a row update takes about a millisecond, so this adds little to the wait and few requests.
const CATCH_UP_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Messages a projector holds unacknowledged. Rows are written one at a time, so this only
/// bounds what a crashed projector leaves for redelivery.
const ACK_PENDING_MAX: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Nats(#[from] NatsError),
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

/// The tables.
#[derive(Clone)]
pub struct Tables {
    pub vnfs: kv::Store,
    pub vnfds: kv::Store,
    pub vims: kv::Store,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables").finish_non_exhaustive()
    }
}

impl Tables {
    /// Binds to the tables' buckets.
    pub async fn open(jetstream: &jetstream::Context) -> Result<Self, ProjectorError> {
        Ok(Tables {
            vnfs: store::open_bucket(jetstream, names::VNF_TABLE_BUCKET).await?,
            vnfds: store::open_bucket(jetstream, names::VNFD_TABLE_BUCKET).await?,
            vims: store::open_bucket(jetstream, names::VIM_TABLE_BUCKET).await?,
        })
    }

    fn bucket(&self, kind: AggregateKind) -> &kv::Store {
        match kind {
            AggregateKind::Vnf => &self.vnfs,
            AggregateKind::Vnfd => &self.vnfds,
            AggregateKind::Vim => &self.vims,
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

    /// One registered VIM's row (deleted VIMs stay as rows with `deleted` set).
    pub async fn vim(&self, vim_id: &str) -> Result<Option<VimRow>, ProjectorError> {
        read_row(&self.vims, vim_id)
            .await
            .map(|r| r.map(|(row, _)| row))
    }

    /// Every row of a table.
    pub async fn all<A: DeserializeOwned>(
        &self,
        kind: AggregateKind,
    ) -> Result<BTreeMap<String, Row<A>>, ProjectorError> {
        let bucket = self.bucket(kind);
        let mut keys = bucket
            .keys()
            .await
            .map_err(|e| NatsError::new("listing a table", e))?
            .boxed();
        let mut rows = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| NatsError::new("listing a table", e))?;
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
        .map_err(|e| NatsError::new("reading a row", e))?
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
    let erasures = Erasures {
        data_keys: keyring::open_bucket(log.jetstream()).await?,
        monitor_states: store::open_monitor_states(log.jetstream()).await?,
    };
    // Ends with the loop (aborted below).
    let lag = tokio::spawn(messages.report_lag());
    tokio::pin!(shutdown);
    tracing::info!("Projector running.");
    loop {
        let message = tokio::select! {
            () = &mut shutdown => break,
            message = messages.next() => message,
        };
        let projected = project(&tables, &erasures, &message).await.or_else(|e| {
            if is_permanent(&e) {
                Ok(Projected::Park(e.to_string()))
            } else {
                Err(e)
            }
        });
        let ack = match projected {
            Ok(Projected::Done) => AckKind::Ack,
            Ok(Projected::Gap) => AckKind::Nak(Some(GAP_RETRY_DELAY)),
            Ok(Projected::Park(reason)) => {
                messages.park(&message, &reason).await;
                continue;
            }
            Err(e) => {
                tracing::error!(subject = %message.subject, error = %e, "Cannot project; will retry.");
                AckKind::Nak(Some(GAP_RETRY_DELAY))
            }
        };
        if let Err(e) = message.ack_with(ack).await {
            tracing::warn!(error = %e, "Ack lost; the message will be redelivered and skipped.");
        }
    }
    lag.abort();
    tracing::info!("Projector stopped.");
    Ok(())
}

/// Whether projecting a message failed in a way that trying it again can never mend, so that
/// the message is parked rather than offered again for ever: a row larger than the table
/// accepts ([`NatsErrorKind::TooLarge`]).
///
/// A row that does not read is not permanent: a newer projector may have written it, and can
/// project the message that this one cannot. Contention and every other NATS kind may pass.
fn is_permanent(error: &ProjectorError) -> bool {
    match error {
        ProjectorError::Nats(e) | ProjectorError::Store(store::StoreError::Nats(e)) => {
            e.kind() == NatsErrorKind::TooLarge
        }
        ProjectorError::Row { .. }
        | ProjectorError::Contended { .. }
        | ProjectorError::Store(_) => false,
    }
}

/// What became of a message.
#[derive(Debug)]
enum Projected {
    /// Its row reflects it (now, or already before).
    Done,
    /// Its predecessor on the subject is not in the row yet: try again shortly.
    Gap,
    /// It can never be projected (for this reason): park it. Its row, if it has a subject, has
    /// moved past it.
    Park(String),
}

/// What the projector erases once an aggregate's row stands deleted.
struct Erasures {
    data_keys: kv::Store,
    monitor_states: kv::Store,
}

impl Erasures {
    /// Destroys the deleted aggregate's data key and, for a VNF, deletes its VDU states.
    /// Idempotent.
    ///
    /// Only the data key must go before the message is acked: the states are what the API
    /// shows of a VNF it no longer shows, a few hundred bytes. A delete that fails (say, on a
    /// server whose permissions predate it: `vnfm nats-config` prints the current ones) is
    /// logged and left, rather than holding the row's message back for ever.
    async fn erase(&self, kind: AggregateKind, id: &str) -> Result<(), NatsError> {
        keyring::shred(&self.data_keys, kind, id).await?;
        if kind == AggregateKind::Vnf
            && let Err(e) = self.monitor_states.delete(id).await
        {
            tracing::warn!(vnf_id = id, error = %e, "Cannot delete a deleted VNF's monitor states; they stay.");
        }
        Ok(())
    }
}

async fn project(
    tables: &Tables,
    erasures: &Erasures,
    message: &jetstream::Message,
) -> Result<Projected, ProjectorError> {
    let Some((kind, id)) = names::parse_lifecycle_subject(&message.subject) else {
        return Ok(Projected::Park("not a lifecycle subject".into()));
    };
    let info = message
        .info()
        .map_err(|e| NatsError::other("reading message info", e))?;
    let at = Position {
        sequence: info.stream_sequence,
        previous: message
            .headers
            .as_ref()
            .and_then(|h| h.get(names::headers::EXPECTED_LAST_SUBJECT_SEQUENCE))
            .and_then(|v| v.as_str().parse().ok()),
        stored_at: info.published,
    };
    let (projected, deleted) = match kind {
        AggregateKind::Vnf => {
            let (projected, row) =
                apply_to_row::<Vnf>(&tables.vnfs, id, at, &message.payload).await?;
            (projected, row.is_some_and(|row| row.state.deleted))
        }
        AggregateKind::Vnfd => {
            let (projected, row) =
                apply_to_row::<VnfdListing>(&tables.vnfds, id, at, &message.payload).await?;
            (projected, row.is_some_and(|row| row.state.deleted))
        }
        AggregateKind::Vim => {
            let (projected, row) =
                apply_to_row::<Vim>(&tables.vims, id, at, &message.payload).await?;
            (projected, row.is_some_and(|row| row.state.deleted))
        }
    };
    if deleted {
        erasures.erase(kind, id).await?;
    }
    Ok(projected)
}

/// Where a message sits on its subject.
#[derive(Debug, Clone, Copy)]
struct Position {
    sequence: u64,
    /// The predecessor the writer expected, when the message names one.
    previous: Option<u64>,
    /// When the server stored it.
    stored_at: OffsetDateTime,
}

/// The row's next state for the message with `payload` at `at`: its events applied, or, when
/// it does not decode, the row moved past it (and the decode error).
fn next_row<A: Projection + DeserializeOwned>(
    row: Option<&Row<A>>,
    at: Position,
    payload: &[u8],
) -> (Step<A>, Option<DecodeError>) {
    match envelope::decode::<table::EventOf<A>>(payload) {
        Ok(envelope) => (table::step(row, at.sequence, at.previous, envelope), None),
        Err(e) => (
            table::skip(row, at.sequence, at.previous, at.stored_at),
            Some(e),
        ),
    }
}

/// Projects the message into its row; answers what became of it, and the row as it stands
/// after (none while its predecessor is missing).
async fn apply_to_row<A>(
    bucket: &kv::Store,
    key: &str,
    at: Position,
    payload: &[u8],
) -> Result<(Projected, Option<Row<A>>), ProjectorError>
where
    A: Projection + Serialize + DeserializeOwned,
{
    for _ in 0..ROW_WRITE_ATTEMPTS_MAX {
        let current = read_row::<A>(bucket, key).await?;
        let (step, undecodable) = next_row(current.as_ref().map(|(row, _)| row), at, payload);
        let projected = match undecodable {
            // A message this build cannot read will not become readable by retrying.
            Some(e) => Projected::Park(e.to_string()),
            None => Projected::Done,
        };
        match step {
            Step::AlreadyApplied => return Ok((projected, current.map(|(row, _)| row))),
            Step::Gap {
                row_sequence,
                previous,
            } => {
                tracing::debug!(
                    key,
                    sequence = at.sequence,
                    row_sequence,
                    previous,
                    "Predecessor not applied yet."
                );
                return Ok((Projected::Gap, None));
            }
            Step::Apply(next) => {
                let revision = current.map(|(_, revision)| revision);
                if write_row(bucket, key, &next, revision).await? {
                    return Ok((projected, Some(next)));
                }
            }
        }
    }
    Err(ProjectorError::Contended {
        key: key.to_owned(),
    })
}

/// Writes `row` under `key` if the key is still at `revision` (absent for `None`). `false`
/// when another writer got there first; any other failure is an error.
async fn write_row<A: Serialize>(
    bucket: &kv::Store,
    key: &str,
    row: &Row<A>,
    revision: Option<u64>,
) -> Result<bool, ProjectorError> {
    let value =
        bytes::Bytes::from(
            serde_json::to_vec(row).map_err(|source| ProjectorError::Row {
                key: key.to_owned(),
                source,
            })?,
        );
    let written = match revision {
        Some(revision) => bucket
            .update(key, value, revision)
            .await
            .map_err(|e| NatsError::new("updating a row", e)),
        None => bucket
            .create(key, value)
            .await
            .map_err(|e| NatsError::new("creating a row", e)),
    };
    match written {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == NatsErrorKind::Conflict => {
            tracing::debug!(key, error = %e, "Row changed under the write; reading it again.");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// The tables recomputed from the log, up to a stream sequence.
#[derive(Debug, Default, PartialEq)]
pub struct Rebuilt {
    pub vnfs: BTreeMap<String, VnfRow>,
    pub vnfds: BTreeMap<String, VnfdRow>,
    pub vims: BTreeMap<String, VimRow>,
    /// The last stream sequence folded in.
    pub through_sequence: u64,
    /// The messages left out because they do not decode, oldest first.
    pub skipped: Vec<Skipped>,
}

/// Replays the whole lifecycle log through the same fold the projector uses.
pub async fn rebuild(log: &EventLog) -> Result<Rebuilt, ProjectorError> {
    let mut read = StreamRead::open(log.stream(), names::LIFECYCLE_SUBJECTS, 1).await?;
    let mut rebuilt = Rebuilt {
        through_sequence: read.through(),
        ..Default::default()
    };
    while let Some(message) = read.next().await? {
        let skipped = match names::parse_lifecycle_subject(&message.subject) {
            Some((AggregateKind::Vnf, id)) => fold(&mut rebuilt.vnfs, id, &message),
            Some((AggregateKind::Vnfd, id)) => fold(&mut rebuilt.vnfds, id, &message),
            Some((AggregateKind::Vim, id)) => fold(&mut rebuilt.vims, id, &message),
            None => Some("not a lifecycle subject".to_owned()),
        };
        if let Some(reason) = skipped {
            tracing::warn!(subject = %message.subject, sequence = message.sequence, reason, "Lifecycle message skipped.");
            rebuilt.skipped.push(Skipped {
                sequence: message.sequence,
                reason,
                stored_at: message.time,
            });
        }
    }
    Ok(rebuilt)
}

/// Folds `message` into its row; why it was skipped, if it does not decode.
fn fold<A>(rows: &mut BTreeMap<String, Row<A>>, key: &str, message: &Stored) -> Option<String>
where
    A: Projection + DeserializeOwned,
{
    let at = Position {
        sequence: message.sequence,
        previous: None,
        stored_at: message.time,
    };
    let (step, undecodable) = next_row(rows.get(key), at, &message.payload);
    if let Step::Apply(row) = step {
        rows.insert(key.to_owned(), row);
    }
    undecodable.map(|e| e.to_string())
}

/// Where the live tables and a rebuild disagree.
#[derive(Debug, Default)]
pub struct Verification {
    pub compared: usize,
    /// Rows changed after the rebuild's snapshot, so not comparable.
    pub skipped: usize,
    pub differences: Vec<String>,
    /// Lifecycle messages that do not decode, left out of both the live tables and the
    /// rebuild.
    pub undecodable: Vec<Skipped>,
}

/// Compares the live tables with a rebuild of the log, once the projector has caught up.
pub async fn verify(
    log: &EventLog,
    tables: &Tables,
    catch_up: Duration,
) -> Result<Verification, ProjectorError> {
    let rebuilt = rebuild(log).await?;
    wait_for_projector(log, rebuilt.through_sequence, catch_up).await?;
    let mut verification = Verification {
        undecodable: rebuilt.skipped,
        ..Verification::default()
    };
    compare(
        "VNF",
        &tables.all::<Vnf>(AggregateKind::Vnf).await?,
        &rebuilt.vnfs,
        rebuilt.through_sequence,
        &mut verification,
    );
    compare(
        "VNFD",
        &tables.all::<VnfdListing>(AggregateKind::Vnfd).await?,
        &rebuilt.vnfds,
        rebuilt.through_sequence,
        &mut verification,
    );
    compare(
        "VIM",
        &tables.all::<Vim>(AggregateKind::Vim).await?,
        &rebuilt.vims,
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
            .map_err(|e| NatsError::other("finding the projector consumer", e))?;
        let info = consumer
            .info()
            .await
            .map_err(|e| NatsError::new("reading the projector's position", e))?;
        if info.ack_floor.stream_sequence >= through || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(CATCH_UP_POLL_INTERVAL).await;
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
    for (key, row) in &rebuilt.vims {
        written += usize::from(repair_row(&tables.vims, key, row).await?);
    }
    Ok(written)
}

async fn repair_row<A>(bucket: &kv::Store, key: &str, row: &Row<A>) -> Result<bool, ProjectorError>
where
    A: Serialize + DeserializeOwned + PartialEq,
{
    for _ in 0..ROW_WRITE_ATTEMPTS_MAX {
        let revision = match read_row::<A>(bucket, key).await {
            Ok(Some((live, _))) if live.last_sequence >= row.last_sequence => return Ok(false),
            Ok(live) => live.map(|(_, revision)| revision),
            // An unreadable row is replaced outright, on top of the revision it has.
            Err(ProjectorError::Row { .. }) => bucket
                .entry(key)
                .await
                .map_err(|e| NatsError::new("reading a row", e))?
                .map(|entry| entry.revision),
            Err(e) => return Err(e),
        };
        if write_row(bucket, key, row, revision).await? {
            return Ok(true);
        }
    }
    Err(ProjectorError::Contended {
        key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};
    use async_nats::jetstream::kv::UpdateError;

    use super::*;

    fn row_write_failed(kind: PublishErrorKind) -> ProjectorError {
        let update = UpdateError::from(PublishError::new(kind));
        NatsError::new("updating a row", update).into()
    }

    #[test]
    fn only_a_row_too_large_to_store_parks_its_message() {
        assert!(is_permanent(&row_write_failed(
            PublishErrorKind::MaxPayloadExceeded
        )));
        assert!(!is_permanent(&row_write_failed(PublishErrorKind::TimedOut)));
        assert!(!is_permanent(&row_write_failed(
            PublishErrorKind::WrongLastSequence
        )));
        assert!(!is_permanent(&row_write_failed(
            PublishErrorKind::BrokenPipe
        )));
        assert!(!is_permanent(&ProjectorError::Contended {
            key: "k".into()
        }));
        let unreadable = serde_json::from_slice::<u32>(b"{").unwrap_err();
        assert!(!is_permanent(&ProjectorError::Row {
            key: "k".into(),
            source: unreadable,
        }));
    }
}
