//! The one reader of probe rounds: a replay of the telemetry stream's round messages (see
//! [`StreamRead`]), each expanded into its probe results with its roster
//! ([`rounds::unpack`](crate::monitor::rounds::unpack)), rosters found by one direct get of
//! their subject's last message and kept by digest for the rest of the read.
//!
//! The board's round-trip times, the end-to-end tests' "probed" and the benches read rounds
//! through here. A round message that does not decode (garbage, or a round of the JSON format
//! before rosters, which carried its results inline and is no longer read), whose roster is no
//! longer in the stream (evicted first, being older), or that does not match its roster is
//! skipped and counted ([`Skipped`]), never an error of the read.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::stream;
use time::OffsetDateTime;

use super::{StreamRead, timed};
use crate::envelope::Actor;
use crate::monitor::rounds::{self, Roster};
use crate::monitor::{MonitorEvent, MonitorMessage, ProbeResult};
use crate::names;
use crate::nats_error::{NatsError, NatsErrorKind};

/// Rosters one read keeps: the read of a monitor with 128,000 targets (64 rosters of
/// [`rounds::ROUND_TARGETS_PER_MESSAGE_MAX`]) fetches each once; past that, one is dropped
/// for each new one (and fetched again if needed). At about 400 KB a full roster in memory,
/// a read holds at most about 25 MB of them.
pub const ROSTERS_CACHED_MAX: usize = 64;

/// One round message, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// The round message's stream sequence.
    pub sequence: u64,
    pub monitor: Actor,
    /// When the round was judged; every result carries this time.
    pub at: OffsetDateTime,
    /// How many targets the monitor had when the round ended.
    pub targets: usize,
    /// The round's results, in its roster's order.
    pub results: Vec<ProbeResult>,
}

/// Round messages a read skipped, by why.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Not a round message of this format (garbage, or an older format).
    pub undecodable: usize,
    /// No roster that decodes and matches its digest is in the stream under it (evicted,
    /// being older).
    pub without_roster: usize,
    /// The round does not match its roster, or its outcomes do not decode
    /// ([`rounds::RoundError`]).
    pub invalid: usize,
}

impl Skipped {
    pub fn total(&self) -> usize {
        self.undecodable + self.without_roster + self.invalid
    }
}

/// A replay of the telemetry stream's rounds, expanded with their rosters.
pub struct RoundRead {
    stream: stream::Stream,
    read: StreamRead,
    /// Rosters by subject, checked: `None` for one that is not in the stream, does not decode
    /// or does not match its digest.
    rosters: HashMap<String, Option<Arc<Roster>>>,
    skipped: Skipped,
}

impl std::fmt::Debug for RoundRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundRead")
            .field("read", &self.read)
            .field("rosters", &self.rosters.len())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl RoundRead {
    /// Every round of every monitor in `stream` (the telemetry stream), from sequence `from`.
    pub async fn open(stream: &stream::Stream, from: u64) -> Result<Self, NatsError> {
        let read = StreamRead::open(stream, names::ROUND_SUBJECTS, from).await?;
        Ok(Self::new(stream, read))
    }

    /// Every round of every monitor in `stream` stored at `start` or later.
    pub async fn since(stream: &stream::Stream, start: OffsetDateTime) -> Result<Self, NatsError> {
        let read = StreamRead::since(stream, names::ROUND_SUBJECTS, start).await?;
        Ok(Self::new(stream, read))
    }

    fn new(stream: &stream::Stream, read: StreamRead) -> Self {
        RoundRead {
            stream: stream.clone(),
            read,
            rosters: HashMap::new(),
            skipped: Skipped::default(),
        }
    }

    /// What was skipped so far.
    pub fn skipped(&self) -> Skipped {
        self.skipped
    }

    /// The next round that reads whole, oldest first; `None` once the last round message
    /// present at the start is read.
    pub async fn next(&mut self) -> Result<Option<Round>, NatsError> {
        while let Some(message) = self.read.next().await? {
            let Ok(MonitorMessage {
                event:
                    MonitorEvent::Round {
                        monitor,
                        at,
                        targets,
                        packed,
                    },
                ..
            }) = serde_json::from_slice(&message.payload)
            else {
                self.skipped.undecodable += 1;
                tracing::debug!(sequence = message.sequence, "Not a round message; skipped.");
                continue;
            };
            let subject = names::roster_subject(&monitor.id, &packed.roster);
            let Some(roster) = self.roster(subject).await? else {
                self.skipped.without_roster += 1;
                tracing::debug!(sequence = message.sequence, roster = %packed.roster, "Round's roster not in the stream; skipped.");
                continue;
            };
            match rounds::unpack(&packed, &roster, at) {
                Ok(results) => {
                    return Ok(Some(Round {
                        sequence: message.sequence,
                        monitor,
                        at,
                        targets,
                        results,
                    }));
                }
                Err(error) => {
                    self.skipped.invalid += 1;
                    tracing::debug!(sequence = message.sequence, %error, "Round does not read; skipped.");
                }
            }
        }
        Ok(None)
    }

    /// The roster on `subject`, from the cache or by a direct get of the subject's last
    /// message; `None` if the stream has none that decodes.
    async fn roster(&mut self, subject: String) -> Result<Option<Arc<Roster>>, NatsError> {
        if let Some(roster) = self.rosters.get(&subject) {
            return Ok(roster.clone());
        }
        let context = "reading a probe round's roster";
        let roster = match timed(
            context,
            self.stream.get_last_raw_message_by_subject(&subject),
        )
        .await?
        {
            Ok(message) => match serde_json::from_slice(&message.payload) {
                Ok(MonitorMessage {
                    event: MonitorEvent::Roster { roster, .. },
                    ..
                }) => match roster.check() {
                    Ok(()) => Some(Arc::new(roster)),
                    Err(error) => {
                        tracing::debug!(%subject, %error, "Roster does not match its digest.");
                        None
                    }
                },
                _ => None,
            },
            Err(e) => {
                let error = NatsError::new(context, e);
                if error.kind() != NatsErrorKind::NotFound {
                    return Err(error);
                }
                None
            }
        };
        if self.rosters.len() >= ROSTERS_CACHED_MAX
            && let Some(dropped) = self.rosters.keys().next().cloned()
        {
            self.rosters.remove(&dropped);
        }
        self.rosters.insert(subject, roster.clone());
        Ok(roster)
    }
}

#[cfg(test)]
mod tests;
