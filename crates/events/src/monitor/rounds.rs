//! Compact probe rounds, without I/O: a round's results split into a **roster** (who was
//! probed: its targets, sorted, named by a digest of their content) and a **packed round**
//! (how each of them answered, a few bytes each, in roster order, naming the roster by its
//! digest).
//!
//! At steady state a monitor probes the same targets round after round, so the roster is
//! published once (and again every [`ROSTER_REPUBLISH_ROUNDS`] rounds, see there) and each
//! round costs one or two bytes per target: an up target is the varint of its round-trip time in
//! steps of [`RTT_QUANTUM_US`] shifted left by one (`steps << 1`), a down
//! one the varint of `(reason_index << 1) | 1`, with the round's distinct down reasons listed
//! once. The bytes are base64 in the round's JSON, so the message stays JSON on the bus.
//! Every result of a packed round carries the round's time (`at`, when the round was judged,
//! at or after each of its attempts ended).
//!
//! [`pack`] and [`unpack`] are the one encoder and decoder; [`RosterMemory`] decides when a
//! monitor publishes a roster. Bad input (a roster that is not the round's, a truncated or
//! garbled payload) is a [`RoundError`] naming what was wrong, never a panic.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::{ProbeOutcome, ProbeResult, Target, TargetRef};

/// Targets in one roster, and so results in one round message. A roster of this many
/// targets is about 380 KB of JSON (190 bytes a target: three UUIDs, a VDU name, an
/// address), well under NATS's default 1 MiB payload; a larger round is split into several
/// rosters and round messages, each under its own digest.
pub const ROUND_TARGETS_PER_MESSAGE_MAX: usize = 2_000;
/// The largest roster message's JSON: half of NATS's default 1 MiB payload, so that a roster
/// of long names is split before the server would refuse it.
pub const ROSTER_BYTES_MAX: usize = 512 * 1024;
/// What a roster message holds beside its targets (schema version, type, monitor, digest),
/// reserved when a round is split by [`ROSTER_BYTES_MAX`]: a monitor's name is a host name,
/// far shorter.
const ROSTER_ENVELOPE_BYTES_MAX: usize = 4 * 1024;
/// The largest packed payload of one round message (outcomes and down reasons, before
/// base64): [`ROUND_TARGETS_PER_MESSAGE_MAX`] varints of at most 10 bytes are 20 KB, which
/// leaves room for the down reasons of a round in which every target failed differently
/// (a prober's reason is a short sentence). Base64 makes it 4/3 of this, far below 1 MiB.
pub const ROUND_PAYLOAD_BYTES_MAX: usize = 256 * 1024;
/// A monitor publishes a roster again after this many round messages named it, even when
/// unchanged.
///
/// Why: the telemetry stream evicts its oldest messages first, so a roster published once
/// would be evicted while the rounds that name it are still stored, and they could no longer
/// be read. Published every N rounds, a roster is at most N rounds older than the rounds
/// that use it, so only the oldest N rounds of each roster in the stream can outlive it (they
/// are counted and skipped by readers, see `read::rounds`).
///
/// Why this many: the re-publication costs a roster (about 190 bytes a target) every N rounds,
/// that is 190/N bytes per probe result: 0.32 at 600, beside about 1.4 to 2.7 for the packed
/// outcome itself (one or two varint bytes of a loopback round-trip time, base64), which
/// keeps a round within the 4-byte budget of issue 13 (see the test
/// `steady_state_costs_at_most_four_bytes_per_result`). 600 rounds is 10 minutes at a 1-second
/// interval and 5 hours at 30 seconds: a small slice of a stream kept for a week.
pub const ROSTER_REPUBLISH_ROUNDS: u64 = 600;
/// Rosters a monitor remembers having published: one per round message of its largest round
/// ([`ROUND_TARGETS_PER_MESSAGE_MAX`] targets each, so 2,048,000 targets), and rounds of other
/// intervals beside. A roster forgotten is only published again sooner than needed.
pub const ROSTERS_REMEMBERED_MAX: usize = 1_024;
/// Bytes of SHA-256 kept in a roster's digest (hex, twice as many characters): 128 bits, so
/// that two different rosters never share one.
pub const ROSTER_DIGEST_BYTES: usize = 16;
/// The step of a stored round-trip time: a time is stored to the nearest multiple of this.
/// Four microseconds is below what a probe's scheduling jitter adds to a loopback round
/// trip, and it keeps every time under 256 µs (loopback under load) one varint byte.
pub const RTT_QUANTUM_US: u64 = 4;
/// The longest varint of a `u64`.
const VARINT_BYTES_MAX: usize = 10;

/// Who was probed in a round message: its targets in canonical order, and their digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub digest: String,
    pub targets: Vec<TargetRef>,
}

impl Roster {
    /// The roster of `targets`, sorted canonically (by instance id, then the rest).
    pub fn new(mut targets: Vec<TargetRef>) -> Roster {
        targets.sort_by(|a, b| canonical_order(a.listing(), b.listing()));
        Roster {
            digest: digest(&targets),
            targets,
        }
    }

    /// Whether the targets digest to the roster's digest: a reader checks a roster it read
    /// once, before [`unpack`] trusts it for every round that names it.
    pub fn check(&self) -> Result<(), RoundError> {
        let actual = digest(&self.targets);
        if actual != self.digest {
            return Err(RoundError::RosterCorrupt {
                claimed: self.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// How the targets of one roster answered in one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedRound {
    /// The digest of the roster whose targets, in its order, these outcomes are.
    pub roster: String,
    /// Results in the message: the roster's length.
    pub count: usize,
    /// The distinct reasons of the round's down outcomes, indexed by the outcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Base64 of one varint per target: `(rtt_us / RTT_QUANTUM_US) << 1` up (to the nearest
    /// step), `(reason index << 1) | 1` down.
    pub outcomes: String,
}

/// What was wrong with a round or a roster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoundError {
    #[error(
        "target {instance_id} alone takes {bytes} bytes of roster, more than {ROSTER_BYTES_MAX}"
    )]
    TargetTooLarge { instance_id: String, bytes: usize },
    #[error("packed round is {bytes} bytes, more than {ROUND_PAYLOAD_BYTES_MAX}")]
    PayloadTooLarge { bytes: usize },
    #[error("round names roster {round}, but the roster given is {roster}")]
    RosterMismatch { round: String, roster: String },
    #[error("roster says it is {claimed}, but its targets digest to {actual}")]
    RosterCorrupt { claimed: String, actual: String },
    #[error("round counts {count} results, but its roster has {targets} targets")]
    CountMismatch { count: usize, targets: usize },
    #[error("round counts {count} results, more than {ROUND_TARGETS_PER_MESSAGE_MAX}")]
    TooManyTargets { count: usize },
    #[error("round's outcomes are not base64: {0}")]
    NotBase64(String),
    #[error("round's outcomes end at byte {offset}, inside the outcome of target {index}")]
    Truncated { index: usize, offset: usize },
    #[error("round's outcome of target {index} at byte {offset} is no valid varint")]
    BadVarint { index: usize, offset: usize },
    #[error("round's outcome of target {index} names down reason {reason}, of {reasons}")]
    UnknownReason {
        index: usize,
        reason: u64,
        reasons: usize,
    },
    #[error("round's outcomes hold {extra} bytes past the last target's")]
    TrailingBytes { extra: usize },
}

/// A target as a roster lists it, borrowed from whatever holds it: what [`pack`] sorts,
/// digests and measures. A monitor packs each round from the targets it holds, and copies
/// them into a [`Roster`] only for a roster it publishes ([`Packed::roster`]), once in
/// [`ROSTER_REPUBLISH_ROUNDS`] rounds at steady state. Its JSON is a [`TargetRef`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Listing<'a> {
    pub vnf_id: &'a str,
    pub vdu: &'a str,
    pub instance_id: &'a str,
    pub mgmt_ip: Ipv4Addr,
    pub action_id: &'a str,
}

impl From<Listing<'_>> for TargetRef {
    fn from(listing: Listing<'_>) -> Self {
        TargetRef {
            vnf_id: listing.vnf_id.to_owned(),
            vdu: listing.vdu.to_owned(),
            instance_id: listing.instance_id.to_owned(),
            mgmt_ip: listing.mgmt_ip,
            action_id: listing.action_id.to_owned(),
        }
    }
}

/// What holds a target a roster can list: a [`TargetRef`] (a roster's own), or a monitor's
/// [`Target`], shared or not.
pub trait Listed {
    fn listing(&self) -> Listing<'_>;
}

/// [`Listed`] for a type with a target's five fields, by the same names.
macro_rules! listed_by_fields {
    ($($holder:ty),*) => {$(
        impl Listed for $holder {
            fn listing(&self) -> Listing<'_> {
                Listing {
                    vnf_id: &self.vnf_id,
                    vdu: &self.vdu,
                    instance_id: &self.instance_id,
                    mgmt_ip: self.mgmt_ip,
                    action_id: &self.action_id,
                }
            }
        }
    )*};
}

listed_by_fields!(TargetRef, Target);

impl<T: Listed> Listed for Arc<T> {
    fn listing(&self) -> Listing<'_> {
        T::listing(self)
    }
}

/// The canonical order of a roster's targets: by instance id (unique among a round's
/// targets), then by the rest, so that the order is total whatever the input.
fn canonical_order(a: Listing<'_>, b: Listing<'_>) -> std::cmp::Ordering {
    (a.instance_id, a.vnf_id, a.vdu, a.mgmt_ip, a.action_id).cmp(&(
        b.instance_id,
        b.vnf_id,
        b.vdu,
        b.mgmt_ip,
        b.action_id,
    ))
}

/// The digest of targets in this order: the first [`ROSTER_DIGEST_BYTES`] of the SHA-256 of
/// their canonical encoding (each field length-prefixed, so no two lists encode alike), hex.
pub fn digest<T: Listed>(targets: &[T]) -> String {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(&(targets.len() as u64).to_le_bytes());
    for target in targets.iter().map(Listed::listing) {
        field(target.vnf_id.as_bytes());
        field(target.vdu.as_bytes());
        field(target.instance_id.as_bytes());
        field(&target.mgmt_ip.octets());
        field(target.action_id.as_bytes());
    }
    hex::encode(&hash.finalize()[..ROSTER_DIGEST_BYTES])
}

/// One round message's share of a round: its targets in roster order, as the packer was given
/// them, and how they answered (naming their roster by its digest).
#[derive(Debug)]
pub struct Packed<T> {
    pub targets: Vec<T>,
    pub round: PackedRound,
}

impl<T: Listed> Packed<T> {
    /// The roster the round names, its targets copied: to publish it.
    pub fn roster(&self) -> Roster {
        Roster {
            digest: self.round.roster.clone(),
            targets: self
                .targets
                .iter()
                .map(|target| TargetRef::from(target.listing()))
                .collect(),
        }
    }
}

/// A round's results as packed rounds, one per round message, each with its targets (whose
/// roster [`Packed::roster`] makes): sorted canonically, split every
/// [`ROUND_TARGETS_PER_MESSAGE_MAX`] targets or before a roster would pass
/// [`ROSTER_BYTES_MAX`].
pub fn pack<T: Listed>(mut results: Vec<(T, ProbeOutcome)>) -> Result<Vec<Packed<T>>, RoundError> {
    results.sort_by(|(a, _), (b, _)| canonical_order(a.listing(), b.listing()));
    let mut chunks: Vec<Vec<(T, ProbeOutcome)>> = Vec::new();
    let mut roster_bytes = 0;
    for result in results {
        // The target's JSON in the roster's list, with its comma.
        let listing = result.0.listing();
        let bytes = target_json_bytes(listing) + 1;
        if bytes > ROSTER_BYTES_MAX - ROSTER_ENVELOPE_BYTES_MAX {
            return Err(RoundError::TargetTooLarge {
                instance_id: listing.instance_id.to_owned(),
                bytes,
            });
        }
        let full = chunks.last().is_none_or(|chunk| {
            chunk.len() >= ROUND_TARGETS_PER_MESSAGE_MAX
                || roster_bytes + bytes > ROSTER_BYTES_MAX - ROSTER_ENVELOPE_BYTES_MAX
        });
        if full {
            chunks.push(Vec::new());
            roster_bytes = 0;
        }
        roster_bytes += bytes;
        chunks
            .last_mut()
            .expect("a chunk was just pushed")
            .push(result);
    }
    chunks.into_iter().map(pack_chunk).collect()
}

/// [`pack`] of whole results, with each round message's roster made: for those who hold
/// [`ProbeResult`]s (each result's own time is not packed: a packed round has one).
pub fn pack_results(results: Vec<ProbeResult>) -> Result<Vec<(Roster, PackedRound)>, RoundError> {
    let results = results.into_iter().map(|r| (r.target, r.outcome)).collect();
    Ok(pack(results)?
        .into_iter()
        .map(|packed| (packed.roster(), packed.round))
        .collect())
}

/// The length of a target's JSON, as a roster message spells it: counted as it is written,
/// never kept (a monitor measures every target of every round).
fn target_json_bytes(target: Listing<'_>) -> usize {
    let mut counted = Counted(0);
    // Serialising a struct of strings and an address cannot fail; a length of 0 on the
    // impossible error would only let the server refuse the roster (`TooLarge`).
    serde_json::to_writer(&mut counted, &target).map_or(0, |()| counted.0)
}

/// A writer that only counts the bytes written to it.
struct Counted(usize);

impl std::io::Write for Counted {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One round message's roster and packed outcomes.
fn pack_chunk<T: Listed>(results: Vec<(T, ProbeOutcome)>) -> Result<Packed<T>, RoundError> {
    let count = results.len();
    let mut reasons: Vec<String> = Vec::new();
    let mut reason_index: HashMap<String, u64> = HashMap::new();
    let mut outcomes = Vec::with_capacity(count * 2);
    let mut targets = Vec::with_capacity(count);
    for (target, outcome) in results {
        let value = match outcome {
            ProbeOutcome::Up { rtt_us } => {
                // At most u64::MAX / 4 steps: shifted left by one, still a u64.
                let steps = rtt_us.saturating_add(RTT_QUANTUM_US / 2) / RTT_QUANTUM_US;
                steps << 1
            }
            ProbeOutcome::Down { reason } => {
                let next = reasons.len() as u64;
                let index = *reason_index.entry(reason.clone()).or_insert_with(|| {
                    reasons.push(reason);
                    next
                });
                (index << 1) | 1
            }
        };
        put_varint(&mut outcomes, value);
        targets.push(target);
    }
    let bytes = outcomes.len() + reasons.iter().map(String::len).sum::<usize>();
    if bytes > ROUND_PAYLOAD_BYTES_MAX {
        return Err(RoundError::PayloadTooLarge { bytes });
    }
    // Already in canonical order: `pack` sorted the results.
    let round = PackedRound {
        roster: digest(&targets),
        count,
        reasons,
        outcomes: BASE64.encode(outcomes),
    };
    Ok(Packed { targets, round })
}

/// The results of a packed round, given its roster (checked once by [`Roster::check`]: a
/// roster's digest is not computed again for each round), each stamped with the round's time
/// `at`.
pub fn unpack(
    round: &PackedRound,
    roster: &Roster,
    at: OffsetDateTime,
) -> Result<Vec<ProbeResult>, RoundError> {
    if round.roster != roster.digest {
        return Err(RoundError::RosterMismatch {
            round: round.roster.clone(),
            roster: roster.digest.clone(),
        });
    }
    if round.count > ROUND_TARGETS_PER_MESSAGE_MAX {
        return Err(RoundError::TooManyTargets { count: round.count });
    }
    if round.count != roster.targets.len() {
        return Err(RoundError::CountMismatch {
            count: round.count,
            targets: roster.targets.len(),
        });
    }
    if round.outcomes.len() > ROUND_PAYLOAD_BYTES_MAX.div_ceil(3) * 4 {
        return Err(RoundError::PayloadTooLarge {
            bytes: round.outcomes.len() / 4 * 3,
        });
    }
    let bytes = BASE64
        .decode(&round.outcomes)
        .map_err(|e| RoundError::NotBase64(e.to_string()))?;
    let mut offset = 0;
    let mut results = Vec::with_capacity(round.count);
    for (index, target) in roster.targets.iter().enumerate() {
        let (value, read) = varint(&bytes[offset..]).map_err(|bad| match bad {
            Varint::Truncated => RoundError::Truncated {
                index,
                offset: bytes.len(),
            },
            Varint::Overlong => RoundError::BadVarint { index, offset },
        })?;
        offset += read;
        let outcome = if value & 1 == 0 {
            ProbeOutcome::Up {
                rtt_us: (value >> 1) * RTT_QUANTUM_US,
            }
        } else {
            let reason = value >> 1;
            let text = usize::try_from(reason)
                .ok()
                .and_then(|i| round.reasons.get(i))
                .ok_or(RoundError::UnknownReason {
                    index,
                    reason,
                    reasons: round.reasons.len(),
                })?;
            ProbeOutcome::Down {
                reason: text.clone(),
            }
        };
        results.push(ProbeResult {
            target: target.clone(),
            outcome,
            at,
        });
    }
    if offset != bytes.len() {
        return Err(RoundError::TrailingBytes {
            extra: bytes.len() - offset,
        });
    }
    Ok(results)
}

/// Appends `value` as a LEB128 varint: seven bits a byte, low first, the high bit set on every
/// byte but the last.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    // The low seven bits, which always fit a byte.
    let low = |value: u64| u8::try_from(value & 0x7f).unwrap_or_default();
    while value >= 0x80 {
        out.push(low(value) | 0x80);
        value >>= 7;
    }
    out.push(low(value));
}

/// Why a varint could not be read.
enum Varint {
    /// The bytes ended inside it.
    Truncated,
    /// Longer than a `u64`'s, or bits past 64.
    Overlong,
}

/// The varint at the start of `bytes`, and how many bytes it took.
fn varint(bytes: &[u8]) -> Result<(u64, usize), Varint> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if i >= VARINT_BYTES_MAX || (i == VARINT_BYTES_MAX - 1 && byte > 1) {
            return Err(Varint::Overlong);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(Varint::Truncated)
}

/// Which rosters a monitor has published, and how many of its round messages named each
/// since: it decides whether a round message's roster is published with it (new, or named by
/// [`ROSTER_REPUBLISH_ROUNDS`] round messages since its last publication). Counted per roster,
/// not in the monitor's rounds: a monitor judges a round per phase of the interval (see the
/// monitor's `targets`), and each phase's roster is named once per interval. Bounded by
/// [`ROSTERS_REMEMBERED_MAX`], forgetting the roster published longest ago.
#[derive(Debug, Default)]
pub struct RosterMemory {
    /// Publications so far: the clock of [`Published::at`].
    publications: u64,
    /// Each remembered roster's digest, and its last publication.
    published: HashMap<String, Published>,
}

#[derive(Debug)]
struct Published {
    /// Which of the monitor's publications it was.
    at: u64,
    /// Round messages that named the roster since.
    named: u64,
}

impl RosterMemory {
    /// Whether the roster `digest`, named by a round message about to go out, is to be
    /// published before it; if so, remembered as published now.
    pub fn due(&mut self, digest: &str) -> bool {
        if let Some(published) = self.published.get_mut(digest) {
            published.named += 1;
            if published.named < ROSTER_REPUBLISH_ROUNDS {
                return false;
            }
        } else if self.published.len() >= ROSTERS_REMEMBERED_MAX {
            let oldest = self
                .published
                .iter()
                .min_by_key(|(_, published)| published.at)
                .map(|(digest, _)| digest.clone());
            if let Some(oldest) = oldest {
                self.published.remove(&oldest);
            }
        }
        self.publications += 1;
        let published = Published {
            at: self.publications,
            named: 0,
        };
        self.published.insert(digest.to_owned(), published);
        true
    }
}

#[cfg(test)]
mod tests;
