//! Where lifecycle snapshots live: the object store bucket
//! [`names::MONITOR_SNAPSHOT_BUCKET`], one object ([`names::MONITOR_SNAPSHOT_OBJECT`]). The
//! I/O around [`snapshot`]: [`read`] at a monitor's start, [`run_writer`] beside the engine
//! of the monitor that holds the writer partition, and [`verify`] for `vnfm verify-snapshot`.
//!
//! It decides nothing a snapshot holds; encoding, checking and comparing are
//! [`snapshot`]'s. It never writes a snapshot over one that covers a later sequence.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::{InfoErrorKind, ObjectInfo, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use events::envelope;
use events::names;
use events::nats_error::NatsError;
use events::read::StreamRead;
use events::setup::{SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES};
use events::telemetry;
use events::vnf::VnfEvent;

use crate::snapshot::{self, Comparison, Fold, SnapshotError};

/// The snapshot object's metadata key holding the sequence it covers, so that a writer can
/// tell a later snapshot from an older one without reading it.
const SEQUENCE_KEY: &str = "sequence";

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotIoError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error(transparent)]
    Refused(#[from] SnapshotError),
    #[error("the snapshot's encoding task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The limit as the reader and writer count it.
fn bytes_max() -> u64 {
    u64::try_from(SNAPSHOT_BYTES_MAX).unwrap_or(u64::MAX)
}

/// The sequence a stored snapshot says it covers (from its metadata), if it says.
fn sequence_of(info: &ObjectInfo) -> Option<u64> {
    info.metadata.get(SEQUENCE_KEY)?.parse().ok()
}

/// The sequence the stored snapshot says it covers, from its metadata alone (`None`: there is
/// no snapshot, or it does not say).
pub async fn stored_sequence(store: &ObjectStore) -> Result<Option<u64>, SnapshotIoError> {
    match store.info(names::MONITOR_SNAPSHOT_OBJECT).await {
        Ok(info) if !info.deleted => Ok(sequence_of(&info)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == InfoErrorKind::NotFound => Ok(None),
        Err(e) => Err(NatsError::other("reading the snapshot's metadata", e).into()),
    }
}

/// The lifecycle stream's last sequence.
async fn last_sequence(lifecycle: &stream::Stream) -> Result<u64, NatsError> {
    let mut lifecycle = lifecycle.clone();
    let info = lifecycle
        .info()
        .await
        .map_err(|e| NatsError::new("reading the lifecycle stream's state", e))?;
    Ok(info.state.last_sequence)
}

/// The stored snapshot, checked against the lifecycle stream (`None`: there is none). Its
/// bytes are read up to [`SNAPSHOT_BYTES_MAX`] and decoded off the async threads.
pub async fn read(
    store: &ObjectStore,
    lifecycle: &stream::Stream,
) -> Result<Option<Fold>, SnapshotIoError> {
    let info = match store.info(names::MONITOR_SNAPSHOT_OBJECT).await {
        Ok(info) => info,
        Err(e) if e.kind() == InfoErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NatsError::other("reading the snapshot's metadata", e).into()),
    };
    if info.deleted {
        return Ok(None);
    }
    let size = u64::try_from(info.size).unwrap_or(u64::MAX);
    if size > bytes_max() {
        return Err(SnapshotError::TooLarge {
            bytes: size,
            max: bytes_max(),
        }
        .into());
    }
    let last = last_sequence(lifecycle).await?;
    let object = store
        .get(names::MONITOR_SNAPSHOT_OBJECT)
        .await
        .map_err(|e| NatsError::other("reading the snapshot", e))?;
    let mut bytes = Vec::with_capacity(info.size);
    object
        .take(bytes_max() + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| NatsError::other("reading the snapshot", e))?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > bytes_max() {
        return Err(SnapshotError::TooLarge {
            bytes: read,
            max: bytes_max(),
        }
        .into());
    }
    let fold = tokio::task::spawn_blocking(move || snapshot::decode(&bytes, last)).await??;
    Ok(Some(fold))
}

/// What [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored: its size, and how long encoding and storing took.
    Stored {
        bytes: usize,
        encode: Duration,
        store: Duration,
    },
    /// Not stored: the bucket holds a snapshot covering `stored`, as late or later.
    Kept { stored: u64 },
}

/// Stores `fold` as the snapshot, unless the stored one covers as late a sequence or later.
/// Encodes off the async threads.
pub async fn write(store: &ObjectStore, fold: Fold) -> Result<Written, SnapshotIoError> {
    let sequence = fold.sequence;
    let started = Instant::now();
    let bytes = tokio::task::spawn_blocking(move || snapshot::encode(&fold)).await??;
    let encode = started.elapsed();
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > bytes_max() {
        return Err(SnapshotError::TooLarge {
            bytes: size,
            max: bytes_max(),
        }
        .into());
    }
    if let Some(stored) = stored_sequence(store)
        .await?
        .filter(|stored| *stored >= sequence)
    {
        return Ok(Written::Kept { stored });
    }
    let meta = ObjectMetadata {
        name: names::MONITOR_SNAPSHOT_OBJECT.to_owned(),
        description: Some("the monitors' lifecycle fold (vnfm verify-snapshot checks it)".into()),
        metadata: HashMap::from([(SEQUENCE_KEY.to_owned(), sequence.to_string())]),
        // The bucket refuses larger messages (`events::setup`).
        chunk_size: Some(SNAPSHOT_CHUNK_BYTES),
        ..Default::default()
    };
    let started = Instant::now();
    store
        .put(meta, &mut bytes.as_slice())
        .await
        .map_err(|e| NatsError::other("storing the snapshot", e))?;
    Ok(Written::Stored {
        bytes: bytes.len(),
        encode,
        store: started.elapsed(),
    })
}

/// Stores every fold the engine hands over, one at a time, until the engine drops its sender;
/// a fold that cannot be stored is logged and counted, and the next one tried in its turn.
pub async fn run_writer(store: ObjectStore, mut folds: mpsc::Receiver<Fold>) {
    while let Some(fold) = folds.recv().await {
        let (vnfs, sequence) = (fold.vnfs.len(), fold.sequence);
        match write(&store, fold).await {
            Ok(Written::Stored {
                bytes,
                encode,
                store,
            }) => {
                metrics::counter!(telemetry::MONITOR_SNAPSHOTS, "outcome" => "written")
                    .increment(1);
                tracing::info!(
                    vnfs,
                    sequence,
                    bytes,
                    encode_ms = encode.as_millis(),
                    store_ms = store.as_millis(),
                    "Lifecycle snapshot written."
                );
            }
            Ok(Written::Kept { stored }) => {
                tracing::info!(
                    sequence,
                    stored,
                    "A snapshot as late or later is stored; kept it."
                );
            }
            Err(e) => {
                metrics::counter!(telemetry::MONITOR_SNAPSHOTS, "outcome" => "failed").increment(1);
                tracing::warn!(vnfs, sequence, error = %e, "Lifecycle snapshot not written.");
            }
        }
    }
}

/// Folds the VNF subjects of the lifecycle stream into `fold`, from sequence `from` up to
/// `until` (at most the last message present when the read began); calls `before` with the
/// fold and each message's sequence before folding it, so that a caller can look at the fold
/// as it passes a sequence. Messages that do not decode are skipped and counted, as a monitor
/// skips them. Answers the count skipped and the last sequence read.
pub async fn fold_log(
    lifecycle: &stream::Stream,
    from: u64,
    until: u64,
    fold: &mut Fold,
    mut before: impl FnMut(&Fold, u64),
) -> Result<(u64, u64), NatsError> {
    let mut read = StreamRead::open(lifecycle, names::VNF_SUBJECTS, from).await?;
    let (mut skipped, mut through) = (0, from.saturating_sub(1));
    while let Some(message) = read.next().await? {
        if message.sequence > until {
            break;
        }
        through = message.sequence;
        before(fold, message.sequence);
        let Some((_, vnf_id)) = names::parse_lifecycle_subject(&message.subject) else {
            continue;
        };
        match envelope::decode::<VnfEvent>(&message.payload) {
            Ok(envelope) => {
                fold.apply(message.sequence, vnf_id, envelope.events);
            }
            Err(_) => skipped += 1,
        }
    }
    Ok((skipped, through))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The sequence the snapshot covers.
    pub sequence: u64,
    /// The log folded up to the snapshot's sequence against the snapshot.
    pub at_snapshot: Comparison,
    /// The whole log folded against the snapshot with the log after it folded on top, both
    /// up to the last VNF message present when the check began.
    pub at_end: Comparison,
    /// That last sequence.
    pub end: u64,
    /// Lifecycle messages that did not decode, skipped by every fold as monitors skip them
    /// (counted in the whole log's fold).
    pub skipped: u64,
}

impl Verification {
    pub fn matches(&self) -> bool {
        self.at_snapshot.difference.is_none() && self.at_end.difference.is_none()
    }
}

/// Checks the stored snapshot against the log: the log folded from its start up to the
/// snapshot's sequence must equal the snapshot, and the snapshot with the rest of the log
/// folded on top must equal the whole log folded. `None`: there is no snapshot.
pub async fn verify(
    store: &ObjectStore,
    lifecycle: &stream::Stream,
) -> Result<Option<Verification>, SnapshotIoError> {
    let Some(restored) = read(store, lifecycle).await? else {
        return Ok(None);
    };
    let sequence = restored.sequence;
    // The whole log, looked at as it passes the snapshot's sequence.
    let mut full = Fold::default();
    let mut at_snapshot: Option<Fold> = None;
    let (skipped, end) = fold_log(lifecycle, 1, u64::MAX, &mut full, |fold, next| {
        if at_snapshot.is_none() && next > sequence {
            at_snapshot = Some(fold.clone());
        }
    })
    .await?;
    let at_snapshot = at_snapshot.unwrap_or_else(|| full.clone());
    // The snapshot, then the log after it up to the same end (later messages are left out).
    let mut tail = restored.clone();
    fold_log(lifecycle, sequence + 1, end, &mut tail, |_, _| {}).await?;
    Ok(Some(Verification {
        sequence,
        at_snapshot: snapshot::compare(&at_snapshot, &restored),
        at_end: snapshot::compare(&full, &tail),
        end,
        skipped,
    }))
}
