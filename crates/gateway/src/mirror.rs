//! An in-memory copy of a projector table, kept by watching its KV bucket, that list requests
//! read without a round trip per row.
//!
//! Rows only move forward: a row replaces its predecessor only when it has applied at least
//! as much of the log (`last_sequence`), so the watch and the gateway's own read-back after a
//! command (which can be ahead of the projector) can both feed it in any order.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use projector::table::Row;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

/// The KV key pattern that matches every row (a NATS wildcard, not a lifecycle subject).
const ALL_ROWS: &str = ">";
/// Pause before re-watching a bucket after the watch failed or ended (NATS restarting, a
/// leader moving); long enough not to spin, short next to a client's patience.
const WATCH_RETRY_DELAY: Duration = Duration::from_secs(1);

/// One table's rows by key.
#[derive(Debug)]
pub(crate) struct Mirror<A> {
    rows: RwLock<BTreeMap<String, Row<A>>>,
}

impl<A> Default for Mirror<A> {
    fn default() -> Self {
        Mirror {
            rows: RwLock::new(BTreeMap::new()),
        }
    }
}

impl<A: Clone> Mirror<A> {
    /// Keeps `row` unless the mirror already holds a row that applied more of the log.
    pub(crate) fn offer(&self, key: &str, row: Row<A>) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        match rows.get(key) {
            Some(held) if held.last_sequence > row.last_sequence => {}
            _ => {
                rows.insert(key.to_owned(), row);
            }
        }
    }

    fn remove(&self, key: &str) {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        rows.remove(key);
    }

    pub(crate) fn get(&self, key: &str) -> Option<Row<A>> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        rows.get(key).cloned()
    }

    /// `view` of every row it accepts, without copying the rows.
    pub(crate) fn collect<T>(&self, mut view: impl FnMut(&Row<A>) -> Option<T>) -> Vec<T> {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        rows.values().filter_map(&mut view).collect()
    }
}

/// Keeps `mirror` equal to `bucket` until the task is aborted. `synced` is signalled once the
/// mirror holds every row the bucket had when the watch began.
pub(crate) async fn follow<A>(
    bucket: kv::Store,
    mirror: Arc<Mirror<A>>,
    synced: oneshot::Sender<()>,
) where
    A: Clone + DeserializeOwned,
{
    let mut synced = Some(synced);
    loop {
        match follow_once(&bucket, &mirror, &mut synced).await {
            Ok(()) => tracing::warn!(bucket = %bucket.name, "Table watch ended; watching again."),
            Err(e) => {
                tracing::warn!(bucket = %bucket.name, error = %e, "Table watch failed; watching again.");
            }
        }
        tokio::time::sleep(WATCH_RETRY_DELAY).await;
    }
}

async fn follow_once<A>(
    bucket: &kv::Store,
    mirror: &Mirror<A>,
    synced: &mut Option<oneshot::Sender<()>>,
) -> Result<(), async_nats::Error>
where
    A: Clone + DeserializeOwned,
{
    let mut signal = || {
        if let Some(synced) = synced.take() {
            // The receiver is gone once `Gateway::new` stopped waiting; nothing to tell then.
            let _ = synced.send(());
        }
    };
    // An empty bucket delivers nothing to a watch, so there would be no last entry to wait for.
    // (`Store::status` answers from the handle's cache, so ask the stream itself.)
    let empty = bucket.stream.clone().info().await?.state.messages == 0;
    let mut watch = bucket.watch_with_history(ALL_ROWS).await?;
    if empty {
        signal();
    }
    while let Some(entry) = watch.next().await {
        let entry = entry?;
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<Row<A>>(&entry.value) {
                Ok(row) => mirror.offer(&entry.key, row),
                Err(e) => {
                    tracing::warn!(bucket = %bucket.name, key = %entry.key, error = %e, "Unreadable row; not mirrored.");
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => mirror.remove(&entry.key),
        }
        if entry.delta == 0 {
            signal();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn row(last_sequence: u64, state: u32) -> Row<u32> {
        Row {
            state,
            created_at: datetime!(2026-11-25 10:00 UTC),
            updated_at: datetime!(2026-11-25 10:00 UTC),
            last_sequence,
        }
    }

    #[test]
    fn rows_only_move_forward() {
        let mirror = Mirror::default();
        mirror.offer("a", row(5, 1));
        mirror.offer("a", row(3, 2));
        assert_eq!(mirror.get("a").map(|r| r.state), Some(1));
        mirror.offer("a", row(7, 3));
        assert_eq!(mirror.get("a").map(|r| r.state), Some(3));
        mirror.offer("b", row(1, 4));
        assert_eq!(mirror.collect(|r| Some(r.state)), vec![3, 4]);
        mirror.remove("a");
        assert_eq!(mirror.get("a"), None);
    }
}
