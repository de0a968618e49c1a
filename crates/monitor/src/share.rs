//! How monitors share the targets: the VNFs are split into [`PARTITIONS`] partitions by a
//! stable hash of the VNF id, and each partition is leased to one live monitor through a KV
//! bucket whose entries expire unless renewed.
//!
//! Every [`RENEW_INTERVAL`] a monitor renews its membership and its leases (compare-and-set on
//! the revision it holds), takes free partitions up to its fair share (the partitions divided
//! by the live members, rounded up) and gives back what it holds beyond it. A monitor that
//! dies stops renewing; its leases expire after [`LEASE_TTL`] and the others take them on
//! their next renewal, so its targets are probed again within TTL + interval. A new monitor
//! lowers everyone's fair share, so the others give it its share without a restart.
//! `create` is atomic, so no partition has two holders; a holder paused past the TTL finds its
//! revision gone at its next renewal and drops the partition.
//!
//! A lease's value is its holder's name. A monitor restarted under the same name (`--name`)
//! takes the leases of its previous life back on its first renewal, so it probes again within
//! a round of starting instead of waiting for them to expire. Names must therefore be unique
//! among live monitors; the default (role and process id) is.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use tokio::sync::watch;

use events::names;
use events::nats_error::NatsError;
use events::store::{self, StoreError};

/// Partitions of the VNFs. Far more than monitors are ever run, so shares stay even; few
/// enough that a renewal round (one request per partition) stays cheap.
pub const PARTITIONS: u32 = 64;
/// How often a monitor renews its membership and leases.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(1);
/// How long a lease or membership outlives its last renewal (the lease bucket's `max_age`, set
/// by `events::setup`): four renewals, so a few lost renewals do not move partitions, and a
/// dead monitor's targets are probed by another within TTL + renewal + a probe interval,
/// about 6 s, well inside issue 4's ten.
pub use events::setup::LEASE_TTL;

const MEMBER_PREFIX: &str = "member.";
const PARTITION_PREFIX: &str = "partition.";

/// The partition of a VNF: FNV-1a of its id, stable across processes and builds.
pub fn partition(vnf_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in vnf_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % PARTITIONS
}

/// How many partitions each of `members` live monitors should hold.
pub fn fair_share(members: usize) -> usize {
    (PARTITIONS as usize).div_ceil(members.max(1))
}

/// Which free partitions to take and which held ones to give back.
pub fn rebalance(held: &BTreeSet<u32>, free: &[u32], members: usize) -> (Vec<u32>, Vec<u32>) {
    let share = fair_share(members);
    if held.len() > share {
        let release = held
            .iter()
            .rev()
            .take(held.len() - share)
            .copied()
            .collect();
        (Vec::new(), release)
    } else {
        let take = free.iter().take(share - held.len()).copied().collect();
        (take, Vec::new())
    }
}

/// The partitions this monitor holds, as the lease task last saw them.
pub type Owned = watch::Receiver<Arc<BTreeSet<u32>>>;

/// Binds to the lease bucket, whose entries expire [`LEASE_TTL`] after their last write.
pub async fn open_leases(jetstream: &jetstream::Context) -> Result<kv::Store, StoreError> {
    store::open_bucket(jetstream, names::MONITOR_LEASE_BUCKET).await
}

/// Keeps this monitor's membership and leases until `stop` fires, publishing the partitions it
/// holds on `owned`; gives every lease back on the way out.
pub async fn hold(
    leases: kv::Store,
    instance: String,
    owned: watch::Sender<Arc<BTreeSet<u32>>>,
    mut stop: watch::Receiver<bool>,
) {
    // Revisions of the leases held: a renewal is a compare-and-set on them.
    let mut held: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    let member_key = format!("{MEMBER_PREFIX}{}", names::token(&instance));
    let mut tick = tokio::time::interval(RENEW_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if let Err(e) = leases.put(&member_key, instance.clone().into()).await {
            tracing::warn!(error = %e, "Cannot renew membership.");
            continue;
        }
        let members = count_members(&leases).await.unwrap_or(1);
        // Renew what is held; a failed compare-and-set means the lease was lost.
        let mut renewed = std::collections::BTreeMap::new();
        for (partition, revision) in &held {
            let key = format!("{PARTITION_PREFIX}{partition}");
            match leases
                .update(&key, instance.clone().into(), *revision)
                .await
            {
                Ok(revision) => {
                    renewed.insert(*partition, revision);
                }
                Err(e) => tracing::warn!(partition, error = %e, "Lease lost."),
            }
        }
        held = renewed;
        let mut free = Vec::new();
        for partition in 0..PARTITIONS {
            if held.contains_key(&partition) {
                continue;
            }
            let key = format!("{PARTITION_PREFIX}{partition}");
            match leases.entry(&key).await {
                Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                    // Held under this monitor's name by its previous life (a restart under a
                    // stable name): take it back now rather than after the lease expires.
                    if entry.value == instance.as_bytes()
                        && let Ok(revision) = leases
                            .update(&key, instance.clone().into(), entry.revision)
                            .await
                    {
                        held.insert(partition, revision);
                    }
                }
                Ok(_) => free.push(partition),
                Err(e) => tracing::debug!(partition, error = %e, "Lease unreadable."),
            }
        }
        let held_set: BTreeSet<u32> = held.keys().copied().collect();
        let (take, release) = rebalance(&held_set, &free, members);
        for partition in release {
            let key = format!("{PARTITION_PREFIX}{partition}");
            if let Some(revision) = held.remove(&partition) {
                let _ = leases.delete_expect_revision(&key, Some(revision)).await;
            }
        }
        for partition in take {
            let key = format!("{PARTITION_PREFIX}{partition}");
            if let Ok(revision) = leases.create(&key, instance.clone().into()).await {
                held.insert(partition, revision);
            }
        }
        let now: BTreeSet<u32> = held.keys().copied().collect();
        if **owned.borrow() != now {
            tracing::info!(partitions = now.len(), members, "Monitor share changed.");
            owned.send_replace(Arc::new(now));
        }
    }
    for (partition, revision) in held {
        let key = format!("{PARTITION_PREFIX}{partition}");
        let _ = leases.delete_expect_revision(&key, Some(revision)).await;
    }
    let _ = leases.delete(&member_key).await;
    owned.send_replace(Arc::new(BTreeSet::new()));
}

async fn count_members(leases: &kv::Store) -> Result<usize, NatsError> {
    let context = "counting the monitors";
    let mut keys = leases
        .keys()
        .await
        .map_err(|e| NatsError::new(context, e))?
        .boxed();
    let mut members = 0;
    while let Some(key) = keys.next().await {
        if key
            .map_err(|e| NatsError::new(context, e))?
            .starts_with(MEMBER_PREFIX)
        {
            members += 1;
        }
    }
    Ok(members.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(
            partition("5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11"),
            partition("5b3c0a40-8d0c-4a7a-9d55-6a7d2c6c0b11")
        );
        let used: BTreeSet<u32> = (0..1_000).map(|n| partition(&format!("vnf-{n}"))).collect();
        assert_eq!(
            used.len(),
            PARTITIONS as usize,
            "a thousand VNFs use every partition"
        );
    }

    #[test]
    fn fair_shares_cover_every_partition() {
        assert_eq!(fair_share(1), 64);
        assert_eq!(fair_share(3), 22);
        assert!(fair_share(3) * 3 >= PARTITIONS as usize);
        assert_eq!(fair_share(0), 64);
    }

    #[test]
    fn a_monitor_takes_free_partitions_up_to_its_share() {
        let held = BTreeSet::from([1, 2]);
        let (take, release) = rebalance(&held, &[5, 6, 7], 32);
        assert_eq!((take, release), (vec![], vec![]), "share of 2 already held");
        let (take, _) = rebalance(&held, &[5, 6, 7], 16);
        assert_eq!(take, vec![5, 6]);
    }

    #[test]
    fn a_monitor_gives_back_what_exceeds_its_share() {
        let held: BTreeSet<u32> = (0..64).collect();
        let (take, release) = rebalance(&held, &[], 2);
        assert!(take.is_empty());
        assert_eq!(release.len(), 32);
    }
}
