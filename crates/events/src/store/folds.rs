//! The folds a process loaded last, kept so that the next load of the same aggregate reads
//! only what was appended since ([`crate::read::subject_after`]) instead of its whole history.
//!
//! A fold is the aggregate as of a stream sequence: exactly the subject's messages up to it,
//! applied in order. The log is append-only and never purged, so a kept fold stays true and
//! only ever needs its tail; a subject whose last message lies before a kept fold's sequence
//! is not the subject that was folded (the stream was made anew), and the fold is dropped.
//!
//! Only folds of at least [`FOLD_MESSAGES_MIN`] messages are kept: a short history costs a
//! few direct gets to read again, and a long one (a VNFD from which thousands of VNFs were
//! created, each recording its use; a VNF with a long heal history) is what grew with the log.
//! The cache is bounded by count and by the payload bytes folded into its entries (a proxy for
//! the aggregates' size), the least recently used evicted first. It is per process: every
//! process still loads any aggregate from the log alone.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use super::Skipped;

/// Folds of fewer messages than this are not kept.
pub const FOLD_MESSAGES_MIN: usize = 8;
/// The most folds kept at once.
pub const FOLDS_KEPT_MAX: usize = 256;
/// The most payload bytes the kept folds were made from, together. A VNFD's template is at
/// most 1 MiB, so this keeps dozens of the largest and thousands of ordinary aggregates.
pub const FOLDS_KEPT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// An aggregate as of a stream sequence.
#[derive(Debug, Clone)]
pub struct Fold<A> {
    pub aggregate: A,
    /// Stream sequence of the last message folded (skipped or not); 0 for none.
    pub last_sequence: u64,
    /// Messages folded so far, skipped ones included.
    pub messages: usize,
    /// Payload bytes of those messages.
    pub bytes: usize,
    pub skipped: Vec<Skipped>,
}

impl<A: Default> Default for Fold<A> {
    fn default() -> Self {
        Fold {
            aggregate: A::default(),
            last_sequence: 0,
            messages: 0,
            bytes: 0,
            skipped: Vec::new(),
        }
    }
}

struct Kept {
    fold: Box<dyn Any + Send + Sync>,
    last_sequence: u64,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Entries {
    by_subject: HashMap<String, Kept>,
    bytes: usize,
    clock: u64,
}

/// The kept folds, by subject. Shared by the clones of one [`super::EventLog`].
#[derive(Default)]
pub struct Folds {
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for Folds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.lock();
        f.debug_struct("Folds")
            .field("kept", &entries.by_subject.len())
            .field("bytes", &entries.bytes)
            .finish()
    }
}

impl Folds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves nothing half-changed that matters: at worst a
        // fold is missing or counted, and every fold kept is whole.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the fold kept for `subject`, if any (of this aggregate type).
    pub fn get<A: Clone + Send + Sync + 'static>(&self, subject: &str) -> Option<Fold<A>> {
        let mut entries = self.lock();
        entries.clock += 1;
        let now = entries.clock;
        let kept = entries.by_subject.get_mut(subject)?;
        kept.used = now;
        kept.fold.downcast_ref::<Fold<A>>().cloned()
    }

    /// Forgets the fold kept for `subject`.
    pub fn forget(&self, subject: &str) {
        let mut entries = self.lock();
        if let Some(kept) = entries.by_subject.remove(subject) {
            entries.bytes -= kept.bytes;
        }
    }

    /// Keeps `fold` for `subject` if it is long enough and newer than the one kept, then evicts
    /// the least recently used folds until the bounds hold.
    pub fn keep<A: Clone + Send + Sync + 'static>(&self, subject: &str, fold: &Fold<A>) {
        if fold.messages < FOLD_MESSAGES_MIN || fold.bytes > FOLDS_KEPT_BYTES_MAX {
            return;
        }
        let mut entries = self.lock();
        if entries
            .by_subject
            .get(subject)
            .is_some_and(|kept| kept.last_sequence >= fold.last_sequence)
        {
            return;
        }
        entries.clock += 1;
        let kept = Kept {
            fold: Box::new(fold.clone()),
            last_sequence: fold.last_sequence,
            bytes: fold.bytes,
            used: entries.clock,
        };
        entries.bytes += kept.bytes;
        if let Some(old) = entries.by_subject.insert(subject.to_owned(), kept) {
            entries.bytes -= old.bytes;
        }
        while entries.by_subject.len() > FOLDS_KEPT_MAX || entries.bytes > FOLDS_KEPT_BYTES_MAX {
            let Some(oldest) = entries
                .by_subject
                .iter()
                .min_by_key(|(_, kept)| kept.used)
                .map(|(subject, _)| subject.clone())
            else {
                break;
            };
            if let Some(evicted) = entries.by_subject.remove(&oldest) {
                entries.bytes -= evicted.bytes;
            }
        }
    }

    /// How many folds are kept, and the payload bytes they were made from.
    pub fn kept(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.by_subject.len(), entries.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(last_sequence: u64, messages: usize, bytes: usize) -> Fold<Vec<u64>> {
        Fold {
            aggregate: vec![last_sequence],
            last_sequence,
            messages,
            bytes,
            skipped: Vec::new(),
        }
    }

    #[test]
    fn a_short_history_is_not_kept_and_a_long_one_is() {
        let folds = Folds::default();
        folds.keep("s", &fold(7, FOLD_MESSAGES_MIN - 1, 10));
        assert!(folds.get::<Vec<u64>>("s").is_none());
        folds.keep("s", &fold(9, FOLD_MESSAGES_MIN, 10));
        assert_eq!(folds.get::<Vec<u64>>("s").unwrap().aggregate, vec![9]);
        // Another aggregate type under the same subject is not this fold.
        assert!(folds.get::<Vec<u32>>("s").is_none());
    }

    #[test]
    fn an_older_fold_never_replaces_a_newer_one() {
        let folds = Folds::default();
        folds.keep("s", &fold(20, 10, 10));
        folds.keep("s", &fold(15, 10, 10));
        assert_eq!(folds.get::<Vec<u64>>("s").unwrap().last_sequence, 20);
        folds.keep("s", &fold(25, 11, 30));
        assert_eq!(folds.get::<Vec<u64>>("s").unwrap().last_sequence, 25);
        assert_eq!(folds.kept(), (1, 30));
        folds.forget("s");
        assert_eq!(folds.kept(), (0, 0));
    }

    #[test]
    fn the_least_recently_used_go_first_when_a_bound_is_passed() {
        let folds = Folds::default();
        for n in 0..FOLDS_KEPT_MAX {
            folds.keep(&format!("s{n}"), &fold(1, 10, 1));
        }
        // s0 is used again, so s1 is now the least recently used.
        assert!(folds.get::<Vec<u64>>("s0").is_some());
        folds.keep("new", &fold(1, 10, 1));
        assert_eq!(folds.kept().0, FOLDS_KEPT_MAX);
        assert!(folds.get::<Vec<u64>>("s0").is_some());
        assert!(folds.get::<Vec<u64>>("s1").is_none());
        // Two folds of three fifths of the byte bound: the second evicts every other.
        let large = FOLDS_KEPT_BYTES_MAX * 3 / 5;
        folds.keep("big1", &fold(1, 10, large));
        folds.keep("big2", &fold(1, 10, large));
        assert_eq!(folds.kept(), (1, large));
        assert!(folds.get::<Vec<u64>>("big1").is_none());
        assert!(folds.get::<Vec<u64>>("big2").is_some());
        // A fold larger than the whole bound is never kept.
        folds.keep("huge", &fold(1, 10, FOLDS_KEPT_BYTES_MAX + 1));
        assert!(folds.get::<Vec<u64>>("huge").is_none());
    }
}
