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
//!
//! Monitoring cannot be switched off in silence: a monitor that holds no partition while the
//! live monitors (those with a membership key) hold fewer than all of them is [`starved`] (the
//! rest are leased to strangers, or free and lost in a race), and says so at every renewal
//! while it lasts, from the second in a row ([`STARVED_RENEWALS_MIN`]): an error line and a
//! `Starved` event on its suspect subject.
//!
//! The decisions ([`partition`], [`fair_share`], [`rebalance`], [`starved`]) are pure; [`hold`]
//! is the KV shell around them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use events::envelope::{Actor, ActorKind};
use events::monitor::MonitorEvent;
use events::names;
use events::nats_error::NatsError;
use events::store::{self, StoreError};
use events::telemetry;

use crate::judge::Outgoing;
use crate::publisher::Publish;

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

/// Renewals in a row a monitor must find itself starved before it raises the alarm: two
/// monitors starting together race for the same free partitions, and the one that loses every
/// create holds nothing for one renewal, then takes the partitions still free at the next.
pub const STARVED_RENEWALS_MIN: u32 = 2;
/// Holders not live monitors that a starved monitor's log line names: enough to recognise an
/// intruder, while a lease bucket full of distinct names cannot flood the log.
const UNKNOWN_HOLDERS_LOGGED_MAX: usize = 8;
/// Characters of an unknown holder's name that are logged: a lease value can be as large as
/// a NATS message, and monitor names are far shorter.
const HOLDER_NAME_LOGGED_MAX_CHARS: usize = 64;

use names::{LEASE_MEMBER_PREFIX as MEMBER_PREFIX, LEASE_PARTITION_PREFIX as PARTITION_PREFIX};

/// The lease bucket's key of a partition.
pub(crate) fn lease_key(partition: u32) -> String {
    format!("{PARTITION_PREFIX}{partition}")
}

/// The partition of a VNF: its [`hash`] modulo [`PARTITIONS`].
pub fn partition(vnf_id: &str) -> u32 {
    hash(vnf_id) % PARTITIONS
}

/// FNV-1a of a VNF's id: stable across processes and builds.
pub(crate) fn hash(vnf_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in vnf_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
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

/// What a starved monitor reports: it holds no partition, and the live monitors hold fewer
/// than all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starvation {
    /// Live monitors (membership keys), this one included.
    pub members: usize,
    /// Partitions leased to live monitors.
    pub held_by_members: usize,
    /// Partitions leased to holders that are not live monitors.
    pub held_by_unknown: usize,
    /// Some of those holders' names, each shortened (see [`UNKNOWN_HOLDERS_LOGGED_MAX`]).
    pub unknown_holders: BTreeSet<String>,
}

/// Whether a monitor that holds `held` partitions is starved, given the live `members` (the
/// tokens of their membership keys) and the holder of every partition leased to another
/// name (`holders`: partition to lease value). A holder is live when its name's token has a
/// membership key.
pub fn starved(
    held: usize,
    members: &BTreeSet<String>,
    holders: &BTreeMap<u32, String>,
) -> Option<Starvation> {
    let held_by_members = holders
        .values()
        .filter(|holder| members.contains(&names::token(holder)))
        .count();
    if held > 0 || held_by_members >= PARTITIONS as usize {
        return None;
    }
    let unknown: Vec<&String> = holders
        .values()
        .filter(|holder| !members.contains(&names::token(holder)))
        .collect();
    let unknown_holders = unknown
        .iter()
        .map(|holder| holder.chars().take(HOLDER_NAME_LOGGED_MAX_CHARS).collect())
        .collect::<BTreeSet<String>>()
        .into_iter()
        .take(UNKNOWN_HOLDERS_LOGGED_MAX)
        .collect();
    Some(Starvation {
        members: members.len(),
        held_by_members,
        held_by_unknown: unknown.len(),
        unknown_holders,
    })
}

/// How many renewals in a row a monitor has found itself starved.
#[derive(Debug, Default)]
pub struct Starving(u32);

impl Starving {
    /// Records one renewal's finding; answers it when it is an alarm: starved for
    /// [`STARVED_RENEWALS_MIN`] renewals in a row, this one included.
    pub fn observe(&mut self, found: Option<Starvation>) -> Option<Starvation> {
        self.0 = if found.is_some() {
            self.0.saturating_add(1)
        } else {
            0
        };
        found.filter(|_| self.0 >= STARVED_RENEWALS_MIN)
    }
}

/// The alarm of a starved monitor: an error line and a `Starved` event on its suspect subject.
pub fn alarm(starvation: &Starvation, monitor: &Actor, at: OffsetDateTime) -> Outgoing {
    tracing::error!(
        members = starvation.members,
        held_by_members = starvation.held_by_members,
        held_by_unknown = starvation.held_by_unknown,
        unknown_holders = ?starvation.unknown_holders,
        "This monitor holds no partition while live monitors hold fewer than all {PARTITIONS}: some VNFs may be monitored by nobody."
    );
    Outgoing {
        subject: names::suspect_subject(&monitor.id),
        event: MonitorEvent::Starved {
            monitor: monitor.clone(),
            at,
            members: starvation.members,
            held_by_members: starvation.held_by_members,
            held_by_unknown: starvation.held_by_unknown,
        },
        message_id: None,
    }
}

/// The partitions this monitor holds, as the lease task last saw them.
pub type Owned = watch::Receiver<Arc<BTreeSet<u32>>>;

/// Binds to the lease bucket, whose entries expire [`LEASE_TTL`] after their last write.
pub async fn open_leases(jetstream: &jetstream::Context) -> Result<kv::Store, StoreError> {
    store::open_bucket(jetstream, names::MONITOR_LEASE_BUCKET).await
}

/// Keeps this monitor's membership and leases until `stop` fires, publishing the partitions it
/// holds on `owned` and, at each renewal while it is [`starved`], an alarm on `alarms`; gives
/// every lease back on the way out.
pub async fn hold(
    leases: kv::Store,
    instance: String,
    owned: watch::Sender<Arc<BTreeSet<u32>>>,
    alarms: mpsc::Sender<Publish>,
    mut stop: watch::Receiver<bool>,
) {
    let monitor = Actor::new(ActorKind::Monitor, instance.clone());
    // Revisions of the leases held: a renewal is a compare-and-set on them.
    let mut held: BTreeMap<u32, u64> = BTreeMap::new();
    let mut starving = Starving::default();
    let member_key = format!("{MEMBER_PREFIX}{}", names::token(&instance));
    let mut tick = tokio::time::interval(RENEW_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let renewal = std::time::Instant::now();
        if let Err(e) = leases.put(&member_key, instance.clone().into()).await {
            tracing::warn!(error = %e, "Cannot renew membership.");
            continue;
        }
        // Renew what is held, all at once and right after the membership: one after the other,
        // each write slowed by a busy host, they add up (leases expired while 20,000 VNFs were
        // created). A failed compare-and-set means the lease was lost.
        let renewals = held.iter().map(|(&partition, &revision)| {
            let (leases, value) = (&leases, instance.clone().into());
            async move {
                let renewed = leases.update(&lease_key(partition), value, revision).await;
                (partition, renewed)
            }
        });
        let mut renewed = BTreeMap::new();
        for (partition, outcome) in futures::future::join_all(renewals).await {
            match outcome {
                Ok(revision) => {
                    renewed.insert(partition, revision);
                }
                Err(e) => {
                    metrics::counter!(telemetry::MONITOR_LEASES_LOST).increment(1);
                    tracing::warn!(partition, error = %e, "Lease lost.");
                }
            }
        }
        held = renewed;
        let live = match members(&leases).await {
            Ok(live) => Some(live),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot list the monitors.");
                None
            }
        };
        let members = live.as_ref().map_or(1, |live| live.len().max(1));
        let mut free = Vec::new();
        // Who holds each partition this monitor does not, read all at once.
        let mut holders = BTreeMap::new();
        let reads = (0..PARTITIONS)
            .filter(|partition| !held.contains_key(partition))
            .map(|partition| {
                let leases = &leases;
                async move { (partition, leases.entry(&lease_key(partition)).await) }
            });
        for (partition, read) in futures::future::join_all(reads).await {
            let key = lease_key(partition);
            match read {
                Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                    // Held under this monitor's name by its previous life (a restart under a
                    // stable name): take it back now rather than after the lease expires.
                    if entry.value == instance.as_bytes()
                        && let Ok(revision) = leases
                            .update(&key, instance.clone().into(), entry.revision)
                            .await
                    {
                        held.insert(partition, revision);
                    } else {
                        holders.insert(partition, String::from_utf8_lossy(&entry.value).into());
                    }
                }
                Ok(_) => free.push(partition),
                Err(e) => tracing::debug!(partition, error = %e, "Lease unreadable."),
            }
        }
        let held_set: BTreeSet<u32> = held.keys().copied().collect();
        let (take, release) = rebalance(&held_set, &free, members);
        for partition in release {
            if let Some(revision) = held.remove(&partition) {
                let _ = leases
                    .delete_expect_revision(&lease_key(partition), Some(revision))
                    .await;
            }
        }
        for partition in take {
            if let Ok(revision) = leases
                .create(&lease_key(partition), instance.clone().into())
                .await
            {
                held.insert(partition, revision);
            }
        }
        let found = live
            .as_ref()
            .map(|live| starved(held.len(), live, &holders));
        // A renewal that could not list the monitors neither raises nor clears the alarm.
        if let Some(starvation) = found.and_then(|found| starving.observe(found)) {
            let alarm = alarm(&starvation, &monitor, OffsetDateTime::now_utc());
            // Never waits: a renewal must not stall behind the publisher, and a lost alarm is
            // raised again at the next renewal.
            if alarms.try_send(Publish::from(alarm)).is_err() {
                tracing::warn!(
                    "Publisher queue full or gone; this starvation alarm is not stored."
                );
            }
        }
        metrics::histogram!(telemetry::MONITOR_LEASE_RENEWAL).record(renewal.elapsed());
        let now: BTreeSet<u32> = held.keys().copied().collect();
        if **owned.borrow() != now {
            tracing::info!(partitions = now.len(), members, "Monitor share changed.");
            owned.send_replace(Arc::new(now));
        }
    }
    for (partition, revision) in held {
        let _ = leases
            .delete_expect_revision(&lease_key(partition), Some(revision))
            .await;
    }
    let _ = leases.delete(&member_key).await;
    owned.send_replace(Arc::new(BTreeSet::new()));
}

/// The live monitors: the tokens of their membership keys.
async fn members(leases: &kv::Store) -> Result<BTreeSet<String>, NatsError> {
    let context = "listing the monitors";
    let mut keys = leases
        .keys()
        .await
        .map_err(|e| NatsError::new(context, e))?
        .boxed();
    let mut members = BTreeSet::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| NatsError::new(context, e))?;
        if let Some(member) = key.strip_prefix(MEMBER_PREFIX) {
            members.insert(member.to_owned());
        }
    }
    Ok(members)
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

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| names::token(name)).collect()
    }

    /// Partitions `range` leased to `holder`.
    fn leased(holders: &mut BTreeMap<u32, String>, range: std::ops::Range<u32>, holder: &str) {
        holders.extend(range.map(|partition| (partition, holder.to_owned())));
    }

    #[test]
    fn a_monitor_without_partitions_while_strangers_hold_them_is_starved() {
        let mut holders = BTreeMap::new();
        leased(&mut holders, 0..60, "intruder");
        leased(&mut holders, 60..62, "m.2");
        let starvation = starved(0, &live(&["m1", "m.2"]), &holders).expect("starved");
        assert_eq!(
            starvation,
            Starvation {
                members: 2,
                held_by_members: 2,
                held_by_unknown: 60,
                unknown_holders: BTreeSet::from(["intruder".to_owned()]),
            }
        );
        let free = BTreeMap::new();
        assert!(
            starved(0, &live(&["m1"]), &free).is_some(),
            "free partitions it could not take"
        );
    }

    #[test]
    fn a_monitor_without_partitions_while_live_monitors_hold_all_is_not_starved() {
        let mut holders = BTreeMap::new();
        leased(&mut holders, 0..32, "m2");
        leased(&mut holders, 32..64, "m3");
        assert_eq!(starved(0, &live(&["m1", "m2", "m3"]), &holders), None);
    }

    #[test]
    fn a_monitor_holding_a_partition_is_never_starved() {
        let mut holders = BTreeMap::new();
        leased(&mut holders, 1..64, "intruder");
        assert_eq!(starved(1, &live(&["m1"]), &holders), None);
    }

    #[test]
    fn the_alarm_is_raised_from_the_second_starved_renewal_in_a_row() {
        let found = || starved(0, &live(&["m1"]), &BTreeMap::new());
        let mut starving = Starving::default();
        assert_eq!(starving.observe(found()), None, "a lost race at start");
        assert_eq!(starving.observe(None), None);
        assert_eq!(starving.observe(found()), None);
        assert_eq!(starving.observe(found()), found(), "starved twice in a row");
        assert_eq!(
            starving.observe(found()),
            found(),
            "every renewal while it lasts"
        );
        assert_eq!(starving.observe(None), None);
        assert_eq!(starving.observe(found()), None);
    }

    #[test]
    fn the_unknown_holders_reported_are_few_and_short() {
        let mut holders = BTreeMap::new();
        for partition in 0..PARTITIONS {
            holders.insert(partition, format!("{partition:02}{}", "x".repeat(1_000)));
        }
        let starvation = starved(0, &live(&["m1"]), &holders).expect("starved");
        assert_eq!(starvation.held_by_unknown, 64);
        assert_eq!(starvation.unknown_holders.len(), UNKNOWN_HOLDERS_LOGGED_MAX);
        assert!(
            starvation
                .unknown_holders
                .iter()
                .all(|name| name.chars().count() == HOLDER_NAME_LOGGED_MAX_CHARS)
        );
    }

    #[test]
    fn a_monitor_gives_back_what_exceeds_its_share() {
        let held: BTreeSet<u32> = (0..64).collect();
        let (take, release) = rebalance(&held, &[], 2);
        assert!(take.is_empty());
        assert_eq!(release.len(), 32);
    }
}
