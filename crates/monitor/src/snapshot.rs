//! The monitor's lifecycle fold and its snapshot, without I/O: every VNF not deleted as its
//! aggregate, and the stream sequence of the last lifecycle message folded into it.
//!
//! A snapshot is that fold written down ([`encode`]) so that a monitor's cold start reads it
//! ([`decode`]) and replays only the log after it, instead of the whole log: what a start costs
//! then follows the number of VNFs, not the length of their history. It is a cache of the log,
//! never its truth: derived from the log, verifiable against it ([`compare`], `vnfm
//! verify-snapshot`), and one that does not decode, is of another schema or claims a sequence
//! beyond the log is refused (a [`SnapshotError`] naming why) and the log replayed instead.
//!
//! It keeps each VNF's whole aggregate but its details, not only what
//! [`events::monitor::targets`] reads today: later lifecycle messages are applied on top of
//! it, and `apply` reads fields (pending operation, instances, orphans) that `targets` does
//! not. The details (name, description, tenant, VIM, attributes) are read by neither and are
//! dropped as the VNF is folded: every monitor folds every VNF, and with them a fleet VNF cost
//! it 1,091 bytes, without them (and boxed in `Vnf`) 611. Each VNF carries a copy of its
//! VNFD's spec; a snapshot stores each distinct spec once, by the SHA-256 of its JSON, so that
//! 100,000 VNFs of one VNFD do not carry 100,000 copies.
//!
//! It never reads NATS or the clock: the runtime stores and reads the bytes, the engine says
//! when ([`due`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use events::spec::VnfdSpec;
use events::vnf::{SharedSpecs, Vnf, VnfEvent};

/// The schema of the snapshot written by this build. A snapshot of another schema is refused
/// (and the log replayed): a snapshot is a cache, so a schema change needs no upcaster.
///
/// 2: VNFs without their details.
pub const SCHEMA_VERSION: u32 = 2;
/// The first word of a snapshot's header line, so that anything else is refused as such.
const MAGIC: &str = "vnfm-monitor-snapshot";
/// The longest header line read: the magic, a version and a sequence fit many times over.
const HEADER_BYTES_MAX: usize = 128;
/// The partition whose holder writes snapshots: one monitor at a time (the lease makes it
/// one, but for a handover's few seconds), whichever it is.
pub const WRITER_PARTITION: u32 = 0;
/// How often the writer snapshots by default: a cold start replays at most this much of the
/// log after its snapshot. Five minutes of lifecycle messages is a few hundred thousand at the
/// busiest create rate measured (about 800 messages a second, `ops/bench-fleet`), which a
/// monitor folds in a few seconds; a snapshot of 100,000 VNFs is about 150 MB to store, which
/// every minute would be a needless load on the nats-server the API reads from.
pub const INTERVAL_DEFAULT: Duration = Duration::from_secs(300);
/// The shortest and longest `--snapshot-interval-s` accepted: a second (tests), a day.
pub const INTERVAL_MIN: Duration = Duration::from_secs(1);
pub const INTERVAL_MAX: Duration = Duration::from_secs(24 * 3600);
/// The fewest lifecycle messages folded since the last snapshot that make the next one worth
/// writing, by default: a monitor folds a thousand in milliseconds at its start, where
/// rewriting a snapshot of 100,000 VNFs takes seconds.
pub const MESSAGES_MIN_DEFAULT: u64 = 1_000;
/// The range of `--snapshot-messages-min`: from every message (tests) to ten million (a
/// snapshot a day on the busiest log).
pub const MESSAGES_MIN_MIN: u64 = 1;
pub const MESSAGES_MIN_MAX: u64 = 10_000_000;

/// When the writer snapshots: every `interval`, when at least `messages_min` lifecycle
/// messages were folded since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub messages_min: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            interval: INTERVAL_DEFAULT,
            messages_min: MESSAGES_MIN_DEFAULT,
        }
    }
}

/// The lifecycle fold: every VNF whose subject the log holds and that is not deleted, as its
/// aggregate, and the stream sequence of the last message folded (0: none).
///
/// VNFs are shared (`Arc`) so that the writer takes a copy of the whole fold by counting
/// references, and a VNF changed meanwhile is copied then (`Arc::make_mut`), not before. Their
/// VNFD specs are shared too: one copy per VNFD ([`SharedSpecs`]).
#[derive(Debug, Clone, Default)]
pub struct Fold {
    pub sequence: u64,
    pub vnfs: HashMap<String, Arc<Vnf>>,
    /// The index that makes VNFs of one VNFD hold one spec; not part of what the fold is.
    specs: SharedSpecs,
}

/// Two folds are equal when they hold the same VNFs at the same sequence.
impl PartialEq for Fold {
    fn eq(&self, other: &Self) -> bool {
        self.sequence == other.sequence && self.vnfs == other.vnfs
    }
}

impl Fold {
    /// Folds one lifecycle message, stored at `sequence`, into its VNF; answers the VNF as it
    /// now stands. A VNF that is deleted leaves the fold (a later message on its subject would
    /// start a VNF afresh, as a full replay does).
    pub fn apply(&mut self, sequence: u64, vnf_id: &str, events: Vec<VnfEvent>) -> Arc<Vnf> {
        self.sequence = self.sequence.max(sequence);
        let shared = self.vnfs.entry(vnf_id.to_owned()).or_default();
        let vnf = Arc::make_mut(shared);
        for event in events {
            vnf.apply(event);
        }
        vnf.shrink_to_fit();
        self.specs.share(vnf);
        // Shared by their VNFD's id, which only the details hold: dropped once it is shared
        // (only a create sets both), see the module's comment.
        vnf.details = None;
        let answer = shared.clone();
        if answer.deleted {
            self.vnfs.remove(vnf_id);
        }
        answer
    }
}

/// Why a snapshot was refused (and the log replayed instead).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a monitor snapshot: {0}")]
    NotASnapshot(String),
    #[error("a snapshot of schema {found}, this build reads {SCHEMA_VERSION}")]
    Schema { found: u32 },
    #[error("the snapshot covers stream sequence {sequence}, beyond the log's last {last}")]
    BeyondLog { sequence: u64, last: u64 },
    #[error("the snapshot is {bytes} bytes, more than the {max} a monitor reads")]
    TooLarge { bytes: u64, max: u64 },
    #[error("the snapshot's body does not decode: {0}")]
    Body(#[from] serde_json::Error),
    #[error("VNF {vnf_id} names VNFD spec {digest}, which the snapshot does not hold")]
    UnknownVnfd { vnf_id: String, digest: String },
    #[error("the VNFD spec stored as {digest} has the digest {actual}")]
    VnfdDigest { digest: String, actual: String },
    #[error("VNF {vnf_id} is deleted, which no fold holds")]
    Deleted { vnf_id: String },
    #[error("VNF {vnf_id} carries its VNFD's spec inline, which a snapshot stores apart")]
    InlineVnfd { vnf_id: String },
}

/// The body of a snapshot after its header line.
#[derive(Serialize, Deserialize)]
struct Body {
    /// Every distinct VNFD spec, by [`digest`].
    vnfds: BTreeMap<String, VnfdSpec>,
    vnfs: BTreeMap<String, StoredVnf>,
}

/// One VNF as a snapshot stores it: the aggregate without its VNFD spec, and the spec's digest.
#[derive(Serialize, Deserialize)]
struct StoredVnf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vnfd: Option<String>,
    vnf: Vnf,
}

/// The SHA-256 of a VNFD spec's JSON, in hex: its key in a snapshot.
fn digest(spec: &VnfdSpec) -> Result<String, serde_json::Error> {
    let hash = Sha256::digest(serde_json::to_vec(spec)?);
    let mut hex = String::with_capacity(64);
    for byte in hash {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(hex)
}

/// The snapshot of `fold`: a header line (`vnfm-monitor-snapshot <schema> <sequence>`), then
/// the VNFs and their VNFD specs, each spec once, as JSON.
pub fn encode(fold: &Fold) -> Result<Vec<u8>, serde_json::Error> {
    // The specs seen so far and their digests: VNFs of one VNFD are found equal to the last
    // spec seen without hashing it again.
    let mut known: Vec<(&VnfdSpec, String)> = Vec::new();
    let mut body = Body {
        vnfds: BTreeMap::new(),
        vnfs: BTreeMap::new(),
    };
    for (vnf_id, vnf) in &fold.vnfs {
        let vnfd = match &vnf.vnfd {
            None => None,
            Some(spec) => {
                let spec: &VnfdSpec = spec;
                let seen = known.iter().rev().find(|(seen, _)| *seen == spec);
                let digest = if let Some((_, digest)) = seen {
                    digest.clone()
                } else {
                    let digest = digest(spec)?;
                    body.vnfds.insert(digest.clone(), spec.clone());
                    known.push((spec, digest.clone()));
                    digest
                };
                Some(digest)
            }
        };
        body.vnfs.insert(
            vnf_id.clone(),
            StoredVnf {
                vnfd,
                vnf: without_vnfd(vnf),
            },
        );
    }
    let mut bytes = format!("{MAGIC} {SCHEMA_VERSION} {}\n", fold.sequence).into_bytes();
    serde_json::to_writer(&mut bytes, &body)?;
    Ok(bytes)
}

/// A copy of `vnf` without its VNFD spec. Every field is named, so that a field added to the
/// aggregate fails to compile here rather than going missing from snapshots.
fn without_vnfd(vnf: &Vnf) -> Vnf {
    let Vnf {
        details,
        vnfd: _,
        status,
        deleted,
        instances,
        pending,
        action_id,
        orphans,
        error_reason,
        failure_count,
        stack_id,
        dead_instances,
        heals_at,
        handled_failures,
        scaled_at,
        handled_alarms,
    } = vnf;
    Vnf {
        details: details.clone(),
        vnfd: None,
        status: *status,
        deleted: *deleted,
        instances: instances.clone(),
        pending: pending.clone(),
        action_id: action_id.clone(),
        orphans: orphans.clone(),
        error_reason: error_reason.clone(),
        failure_count: *failure_count,
        stack_id: stack_id.clone(),
        dead_instances: dead_instances.clone(),
        heals_at: heals_at.clone(),
        handled_failures: handled_failures.clone(),
        scaled_at: scaled_at.clone(),
        handled_alarms: handled_alarms.clone(),
    }
}

/// The schema and sequence a snapshot's header line names, and where its body starts.
fn header(bytes: &[u8]) -> Result<(u32, u64, usize), SnapshotError> {
    let window = &bytes[..bytes.len().min(HEADER_BYTES_MAX)];
    let end = window
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| SnapshotError::NotASnapshot("no header line".into()))?;
    let line = std::str::from_utf8(&window[..end])
        .map_err(|_| SnapshotError::NotASnapshot("a header line that is not text".into()))?;
    let words: Vec<&str> = line.split(' ').collect();
    let [MAGIC, schema, sequence] = words.as_slice() else {
        return Err(SnapshotError::NotASnapshot(format!(
            "the header line {line:?} is not `{MAGIC} <schema> <sequence>`"
        )));
    };
    let schema = schema
        .parse()
        .map_err(|_| SnapshotError::NotASnapshot(format!("the schema {schema:?}")))?;
    let sequence = sequence
        .parse()
        .map_err(|_| SnapshotError::NotASnapshot(format!("the sequence {sequence:?}")))?;
    Ok((schema, sequence, end + 1))
}

/// The fold a snapshot holds, checked: of this build's schema, covering no sequence beyond
/// `last_sequence` (the lifecycle stream's last), every VNFD spec under its own digest, every
/// VNF's spec present and no VNF deleted.
pub fn decode(bytes: &[u8], last_sequence: u64) -> Result<Fold, SnapshotError> {
    let (schema, sequence, start) = header(bytes)?;
    if schema != SCHEMA_VERSION {
        return Err(SnapshotError::Schema { found: schema });
    }
    if sequence > last_sequence {
        return Err(SnapshotError::BeyondLog {
            sequence,
            last: last_sequence,
        });
    }
    let body: Body = serde_json::from_slice(&bytes[start..])?;
    for (stored, spec) in &body.vnfds {
        let actual = digest(spec)?;
        if actual != *stored {
            return Err(SnapshotError::VnfdDigest {
                digest: stored.clone(),
                actual,
            });
        }
    }
    // Each spec once in memory too, however many VNFs hold it.
    let specs_by_digest: BTreeMap<String, Arc<VnfdSpec>> = body
        .vnfds
        .into_iter()
        .map(|(digest, spec)| (digest, Arc::new(spec)))
        .collect();
    // VNFs are stored without their details, which hold the VNFD id that `SharedSpecs`
    // indexes by: the digests share the specs here.
    let mut vnfs = HashMap::with_capacity(body.vnfs.len());
    for (vnf_id, StoredVnf { vnfd, mut vnf }) in body.vnfs {
        if vnf.deleted {
            return Err(SnapshotError::Deleted { vnf_id });
        }
        if vnf.vnfd.is_some() {
            return Err(SnapshotError::InlineVnfd { vnf_id });
        }
        if let Some(digest) = vnfd {
            let Some(spec) = specs_by_digest.get(&digest) else {
                return Err(SnapshotError::UnknownVnfd { vnf_id, digest });
            };
            vnf.vnfd = Some(spec.clone());
        }
        vnf.shrink_to_fit();
        vnfs.insert(vnf_id, Arc::new(vnf));
    }
    Ok(Fold {
        sequence,
        vnfs,
        specs: SharedSpecs::default(),
    })
}

/// Whether the writer snapshots now: it holds [`WRITER_PARTITION`], the schedule's interval
/// has passed since its last snapshot (or its start), and at least its `messages_min`
/// lifecycle messages were folded since.
pub fn due(
    holds_writer_partition: bool,
    since_last: Duration,
    schedule: &Schedule,
    folded_since: u64,
) -> bool {
    holds_writer_partition
        && since_last >= schedule.interval
        && folded_since >= schedule.messages_min
}

/// How two folds compare: the VNFs looked at, and the first difference, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// VNFs in either fold.
    pub vnfs: usize,
    pub difference: Option<Difference>,
}

/// Where two folds first differ (VNFs in id order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Sequence {
        expected: u64,
        found: u64,
    },
    /// The VNF is in the expected fold alone.
    Missing {
        vnf_id: String,
    },
    /// The VNF is in the found fold alone.
    Extra {
        vnf_id: String,
    },
    /// The VNF is in both, as different aggregates.
    Differs {
        vnf_id: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Sequence { expected, found } => {
                write!(f, "covers sequence {found}, expected {expected}")
            }
            Difference::Missing { vnf_id } => write!(f, "VNF {vnf_id} is missing"),
            Difference::Extra { vnf_id } => write!(f, "VNF {vnf_id} should not be there"),
            Difference::Differs { vnf_id } => write!(f, "VNF {vnf_id} differs"),
        }
    }
}

/// Compares `found` with `expected`: their sequences, then each VNF in id order.
pub fn compare(expected: &Fold, found: &Fold) -> Comparison {
    let ids: BTreeSet<&String> = expected.vnfs.keys().chain(found.vnfs.keys()).collect();
    let vnfs = ids.len();
    if expected.sequence != found.sequence {
        let difference = Difference::Sequence {
            expected: expected.sequence,
            found: found.sequence,
        };
        return Comparison {
            vnfs,
            difference: Some(difference),
        };
    }
    let difference = ids.into_iter().find_map(|vnf_id| {
        match (expected.vnfs.get(vnf_id), found.vnfs.get(vnf_id)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) => Some(Difference::Differs {
                vnf_id: vnf_id.clone(),
            }),
            (Some(_), None) => Some(Difference::Missing {
                vnf_id: vnf_id.clone(),
            }),
            (None, _) => Some(Difference::Extra {
                vnf_id: vnf_id.clone(),
            }),
        }
    });
    Comparison { vnfs, difference }
}

#[cfg(test)]
mod tests;
