//! In-memory copies of KV buckets, kept by watching them, that requests read without a round
//! trip to NATS: a projector table ([`Mirror`]) for lists and shows, and the monitors' VDU
//! states ([`MonitorStates`]) for shows. A show thus costs no NATS request, so the API's
//! latency does not depend on how busy nats-server is with monitoring traffic.
//!
//! Rows only move forward: a row replaces its predecessor only when it has applied at least
//! as much of the log (`last_sequence`), so the watch and the gateway's own read-back after a
//! command (which can be ahead of the projector) can both feed it in any order.
//!
//! A table's copy also keeps a census of its live rows by project ([`Census`]), kept with every
//! row it takes or drops: the quotas' use and a create's name check read it instead of passing
//! over every row, which made each create cost more the larger the fleet.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use events::monitor::InstanceMonitorState;
use events::nats_error::NatsError;
use events::store;
use events::vim::Vim;
use events::vnf::{SharedSpecs, ThinVec, Vnf};
use events::vnfd::VnfdListing;
use futures::StreamExt;
use projector::table::Row;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use tokio::sync::{broadcast, oneshot};

/// Pause before re-watching a bucket after the watch failed or ended (NATS restarting, a
/// leader moving); long enough not to spin, short next to a client's patience.
const WATCH_RETRY_DELAY: Duration = Duration::from_secs(1);

/// One table's rows by key.
///
/// Each row is its own allocation: a B-tree node holds eleven entries and is often half full,
/// so rows held inline (a VNF's is 760 bytes) would waste more than they hold.
#[derive(Debug)]
pub(crate) struct Mirror<A> {
    rows: RwLock<BTreeMap<String, Box<Row<A>>>>,
    /// What the rows share (the VNFs' VNFD specs), written under `rows`' write lock.
    specs: Mutex<SharedSpecs>,
    /// The live rows counted by project and name, written under `rows`' write lock.
    census: Mutex<Tally>,
}

impl<A> Default for Mirror<A> {
    fn default() -> Self {
        Mirror {
            rows: RwLock::new(BTreeMap::new()),
            specs: Mutex::default(),
            census: Mutex::default(),
        }
    }
}

/// What a live row counts for in its project.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted<'a> {
    pub(crate) project: &'a str,
    pub(crate) name: &'a str,
    /// The instances it holds or is about to (a VNF's; none for the others).
    pub(crate) instances: usize,
}

/// A row that a project's census counts while it lives.
pub(crate) trait Census {
    /// `None` for a row that does not count: not created yet, or deleted.
    fn counted(&self) -> Option<Counted<'_>>;
}

/// A VNF counts from its create until its delete, with its instances and those its pending
/// change adds (as the quotas count them).
impl Census for Vnf {
    fn counted(&self) -> Option<Counted<'_>> {
        let details = self.details.as_ref().filter(|_| self.exists())?;
        Some(Counted {
            project: &details.tenant_id,
            name: &details.name,
            instances: self.instances.len() + self.pending.as_ref().map_or(0, |p| p.add.len()),
        })
    }
}

impl Census for VnfdListing {
    fn counted(&self) -> Option<Counted<'_>> {
        let descriptor = self.live()?;
        Some(Counted {
            project: &descriptor.tenant_id,
            name: &descriptor.name,
            instances: 0,
        })
    }
}

impl Census for Vim {
    fn counted(&self) -> Option<Counted<'_>> {
        let details = self.live()?;
        Some(Counted {
            project: &details.tenant_id,
            name: &details.name,
            instances: 0,
        })
    }
}

/// A project's live rows in one table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProjectUse {
    pub(crate) live: usize,
    pub(crate) instances: usize,
}

/// The census itself. Names are counted by a keyed hash of project and name, not held: a
/// create whose name hashes to no live row's is unique at once, and one that does (a clash,
/// or rarely another name with the same hash) looks at the rows.
#[derive(Debug, Default)]
struct Tally {
    by_project: HashMap<String, ProjectUse>,
    names: HashMap<u64, u32>,
    hasher: RandomState,
}

impl Tally {
    fn name_key(&self, project: &str, name: &str) -> u64 {
        self.hasher.hash_one((project, name))
    }

    fn add(&mut self, counted: Counted<'_>) {
        let used = self
            .by_project
            .entry(counted.project.to_owned())
            .or_default();
        used.live += 1;
        used.instances += counted.instances;
        *self
            .names
            .entry(self.name_key(counted.project, counted.name))
            .or_default() += 1;
    }

    fn subtract(&mut self, counted: Counted<'_>) {
        if let Some(used) = self.by_project.get_mut(counted.project) {
            used.live = used.live.saturating_sub(1);
            used.instances = used.instances.saturating_sub(counted.instances);
            if used.live == 0 {
                self.by_project.remove(counted.project);
            }
        }
        if let Entry::Occupied(mut holders) = self
            .names
            .entry(self.name_key(counted.project, counted.name))
        {
            *holders.get_mut() -= 1;
            if *holders.get() == 0 {
                holders.remove();
            }
        }
    }
}

/// What the mirror keeps of a row: the parts many rows hold alike once, and nothing that no
/// show, list or board reads.
pub(crate) trait Share {
    fn share(&mut self, _specs: &mut SharedSpecs) {}
}

/// A VNF holds its VNFD's spec: one copy per VNFD however many VNFs. Its sealed `user_data`
/// (read only by the conductor that deploys a VDU) and the aggregate's own bookkeeping
/// (failure reports and alarms already handled, when heals and scalings happened, replaced and
/// orphaned instances) are dropped: the API never shows them, and the bookkeeping would make a
/// VNF's memory grow with its heal history. Its instances keep no spare room.
impl Share for Vnf {
    fn share(&mut self, specs: &mut SharedSpecs) {
        specs.share(self);
        if let Some(details) = self.details.as_mut() {
            details.user_data = None;
        }
        self.shrink_to_fit();
        self.handled_failures = ThinVec::new();
        self.handled_alarms = ThinVec::new();
        self.heals_at = ThinVec::new();
        self.dead_instances = ThinVec::new();
        self.orphans = ThinVec::new();
        self.scaled_at = BTreeMap::new();
    }
}

impl Share for VnfdListing {}
impl Share for Vim {}

impl<A: Clone + Share + Census> Mirror<A> {
    /// Keeps `row` unless the mirror already holds a row that applied more of the log.
    pub(crate) fn offer(&self, key: &str, mut row: Row<A>) {
        let mut rows = self
            .rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = rows.get(key);
        if held.is_some_and(|held| held.last_sequence > row.last_sequence) {
            return;
        }
        row.state.share(
            &mut self
                .specs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut census = self.census();
        if let Some(counted) = held.and_then(|held| held.state.counted()) {
            census.subtract(counted);
        }
        if let Some(counted) = row.state.counted() {
            census.add(counted);
        }
        drop(census);
        rows.insert(key.to_owned(), Box::new(row));
    }

    fn remove(&self, key: &str) {
        let mut rows = self
            .rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(counted) = rows
            .remove(key)
            .as_ref()
            .and_then(|row| row.state.counted())
        {
            self.census().subtract(counted);
        }
    }
}

impl<A> Mirror<A> {
    fn census(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.census
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `project`'s live rows and their instances.
    pub(crate) fn project_use(&self, project: &str) -> ProjectUse {
        self.census()
            .by_project
            .get(project)
            .copied()
            .unwrap_or_default()
    }

    /// False when no live row of `project` has `name`; true when one may (look at the rows).
    fn may_have_name(&self, project: &str, name: &str) -> bool {
        let census = self.census();
        census.names.contains_key(&census.name_key(project, name))
    }
}

impl<A: Clone + Census> Mirror<A> {
    /// The key of the live row of `project` with `name` (the least, should the log hold more
    /// than one), other than `except`. The rows are looked at only when the census says one
    /// may have the name.
    pub(crate) fn holder(&self, project: &str, name: &str, except: &str) -> Option<String> {
        if !self.may_have_name(project, name) {
            return None;
        }
        self.collect_keyed(|key, row| {
            let counted = row.state.counted()?;
            (counted.project == project && counted.name == name && key != except)
                .then(|| key.to_owned())
        })
        .into_iter()
        .min()
    }
}

impl<A: Clone> Mirror<A> {
    pub(crate) fn get(&self, key: &str) -> Option<Row<A>> {
        let rows = self
            .rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.get(key).map(|row| Row::clone(row))
    }

    /// `view` of every row it accepts, without copying the rows.
    pub(crate) fn collect<T>(&self, mut view: impl FnMut(&Row<A>) -> Option<T>) -> Vec<T> {
        self.collect_keyed(|_, row| view(row))
    }

    /// `view` of every row it accepts, with the row's key, without copying the rows.
    pub(crate) fn collect_keyed<T>(
        &self,
        mut view: impl FnMut(&str, &Row<A>) -> Option<T>,
    ) -> Vec<T> {
        let rows = self
            .rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.iter()
            .filter_map(|(key, row)| view(key, row))
            .collect()
    }
}

/// Each instance's last known state by VNF, as the monitors wrote them.
///
/// A VNF's states are held as a slice sorted by instance id, not as the map they are read
/// into and shown as: a map's first node has room for eleven instances, nearly 2 KB for the
/// one instance most VNFs have.
#[derive(Debug, Default)]
pub(crate) struct MonitorStates {
    by_vnf: RwLock<HashMap<String, InstanceStates>>,
}

/// One VNF's instance states, sorted by instance id: read from the bucket's JSON object
/// straight into a slice, with no map built only to be dropped.
#[derive(Debug)]
struct InstanceStates(Box<[(String, InstanceMonitorState)]>);

impl<'de> Deserialize<'de> for InstanceStates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<(String, InstanceMonitorState)>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("an object of instance states by instance id")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(1));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(pairs)
            }
        }
        let mut pairs = deserializer.deserialize_map(Pairs)?;
        // A repeated id keeps its last state, as a map would.
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        Ok(InstanceStates(pairs.into_boxed_slice()))
    }
}

impl MonitorStates {
    /// The VNF's instance states (empty when none is known).
    pub(crate) fn get(&self, vnf_id: &str) -> BTreeMap<String, InstanceMonitorState> {
        let by_vnf = self
            .by_vnf
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_vnf
            .get(vnf_id)
            .map(|states| states.0.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Which copy a [`Change`] is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Vnf,
    Vnfd,
    /// A VNF's VDU states.
    Monitor,
}

impl ChangeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Vnf => "vnf",
            ChangeKind::Vnfd => "vnfd",
            ChangeKind::Monitor => "monitor",
        }
    }
}

/// An entry of a watched bucket changed: the status board's live feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub kind: ChangeKind,
    /// The entry's key: the VNF's or VNFD's id.
    pub id: String,
}

/// A copy that announces each change it takes on `changes` (nobody listening is fine).
pub(crate) struct Announcing {
    pub copy: Arc<dyn BucketCopy>,
    pub kind: ChangeKind,
    pub changes: broadcast::Sender<Change>,
}

impl Announcing {
    fn announce(&self, key: &str) {
        // An error only says that no board is listening.
        let _ = self.changes.send(Change {
            kind: self.kind,
            id: key.to_owned(),
        });
    }
}

impl BucketCopy for Announcing {
    fn put(&self, key: &str, value: &[u8]) -> Result<(), serde_json::Error> {
        self.copy.put(key, value)?;
        self.announce(key);
        Ok(())
    }

    fn remove(&self, key: &str) {
        self.copy.remove(key);
        self.announce(key);
    }
}

/// Where a watched bucket's entries go.
pub(crate) trait BucketCopy: Send + Sync {
    fn put(&self, key: &str, value: &[u8]) -> Result<(), serde_json::Error>;
    fn remove(&self, key: &str);
}

impl<A: Clone + Share + Census + DeserializeOwned + Send + Sync> BucketCopy for Mirror<A> {
    fn put(&self, key: &str, value: &[u8]) -> Result<(), serde_json::Error> {
        self.offer(key, serde_json::from_slice(value)?);
        Ok(())
    }

    fn remove(&self, key: &str) {
        Mirror::remove(self, key);
    }
}

impl BucketCopy for MonitorStates {
    fn put(&self, key: &str, value: &[u8]) -> Result<(), serde_json::Error> {
        let states: InstanceStates = serde_json::from_slice(value)?;
        let mut by_vnf = self
            .by_vnf
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_vnf.insert(key.to_owned(), states);
        Ok(())
    }

    fn remove(&self, key: &str) {
        let mut by_vnf = self
            .by_vnf
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_vnf.remove(key);
    }
}

/// Keeps `copy` equal to `bucket` until the task is aborted. `synced` is signalled once the
/// copy holds every entry the bucket had when the watch began.
pub(crate) async fn follow(
    bucket: kv::Store,
    copy: Arc<dyn BucketCopy>,
    synced: oneshot::Sender<()>,
) {
    let mut synced = Some(synced);
    loop {
        match follow_once(&bucket, copy.as_ref(), &mut synced).await {
            Ok(()) => tracing::warn!(bucket = %bucket.name, "Bucket watch ended; watching again."),
            Err(e) => {
                tracing::warn!(bucket = %bucket.name, error = %e, "Bucket watch failed; watching again.");
            }
        }
        tokio::time::sleep(WATCH_RETRY_DELAY).await;
    }
}

async fn follow_once(
    bucket: &kv::Store,
    copy: &dyn BucketCopy,
    synced: &mut Option<oneshot::Sender<()>>,
) -> Result<(), NatsError> {
    let mut signal = || {
        if let Some(synced) = synced.take() {
            // The receiver is gone once `Gateway::new` stopped waiting; nothing to tell then.
            let _ = synced.send(());
        }
    };
    let (mut watch, empty) = store::watch_every_key(bucket).await?;
    if empty {
        signal();
    }
    while let Some(entry) = watch.next().await {
        let entry = entry.map_err(|e| NatsError::new("watching a table", e))?;
        match entry.operation {
            kv::Operation::Put => {
                if let Err(e) = copy.put(&entry.key, &entry.value) {
                    tracing::warn!(bucket = %bucket.name, key = %entry.key, error = %e, "Unreadable entry; not copied.");
                }
            }
            kv::Operation::Delete | kv::Operation::Purge => copy.remove(&entry.key),
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

    impl Share for u32 {}

    impl Census for u32 {
        fn counted(&self) -> Option<Counted<'_>> {
            None
        }
    }

    fn row<A>(last_sequence: u64, state: A) -> Row<A> {
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

    fn vnf(vnf_id: &str, vnfd_id: &str, vdu: &str) -> Vnf {
        use events::fixtures;
        Vnf {
            details: Some(Box::new(fixtures::details(vnf_id, vnfd_id))),
            vnfd: Some(Arc::new(fixtures::spec(vec![fixtures::vdu(vdu, None)]))),
            ..Vnf::default()
        }
    }

    fn spec_of(mirror: &Mirror<Vnf>, key: &str) -> Arc<events::spec::VnfdSpec> {
        mirror.get(key).unwrap().state.vnfd.unwrap()
    }

    #[test]
    fn vnfs_of_one_vnfd_hold_one_copy_of_its_spec() {
        let mirror = Mirror::default();
        // Each row decoded on its own: three equal specs in three allocations.
        mirror.offer("v1", row(1, vnf("v1", "d1", "VDU1")));
        mirror.offer("v2", row(2, vnf("v2", "d1", "VDU1")));
        mirror.offer("v3", row(3, vnf("v3", "d2", "VDU1")));
        assert!(Arc::ptr_eq(
            &spec_of(&mirror, "v1"),
            &spec_of(&mirror, "v2")
        ));
        // Another VNFD's spec is its own, even when equal.
        assert!(!Arc::ptr_eq(
            &spec_of(&mirror, "v1"),
            &spec_of(&mirror, "v3")
        ));
        // A spec recorded differently for the same VNFD id is kept apart, not replaced.
        mirror.offer("v4", row(4, vnf("v4", "d1", "VDU9")));
        assert_eq!(spec_of(&mirror, "v4").vdus[0].name, "VDU9");
        // A newer row of v1 (decoded afresh) shares the held copy again.
        mirror.offer("v1", row(5, vnf("v1", "d1", "VDU1")));
        assert!(Arc::ptr_eq(
            &spec_of(&mirror, "v1"),
            &spec_of(&mirror, "v2")
        ));
    }

    /// A VNF of `project` named `name`, with `instances` instances: live or deleted.
    fn named_vnf(project: &str, name: &str, instances: usize, deleted: bool) -> Vnf {
        use events::vnf::{Instance, VnfStatus};
        let mut vnf = vnf(name, "d1", "VDU1");
        let details = vnf.details.as_mut().unwrap();
        (details.tenant_id, details.name) = (project.into(), name.into());
        vnf.status = Some(VnfStatus::Active);
        vnf.deleted = deleted;
        vnf.instances = (0..instances)
            .map(|n| Instance {
                instance_id: format!("{name}-{n}"),
                vdu: "VDU1".into(),
                mgmt_ip: std::net::Ipv4Addr::LOCALHOST,
                booted_at: datetime!(2026-11-25 10:00 UTC),
            })
            .collect();
        vnf
    }

    /// The census as a pass over every row would find it (as quotas and names were checked
    /// before the census).
    fn counted_by_a_pass(mirror: &Mirror<Vnf>, project: &str) -> (ProjectUse, Vec<String>) {
        let ours = mirror.collect(|row| {
            let counted = row.state.counted().filter(|c| c.project == project)?;
            Some((counted.instances, counted.name.to_owned()))
        });
        let used = ProjectUse {
            live: ours.len(),
            instances: ours.iter().map(|(instances, _)| instances).sum(),
        };
        (used, ours.into_iter().map(|(_, name)| name).collect())
    }

    #[test]
    fn the_census_follows_every_row_taken_and_dropped() {
        let mirror = Mirror::default();
        let check = |mirror: &Mirror<Vnf>| {
            for project in ["p1", "p2"] {
                let (used, names) = counted_by_a_pass(mirror, project);
                assert_eq!(mirror.project_use(project), used, "{project}");
                for name in ["a", "b", "c"] {
                    let held = names.iter().any(|n| n == name);
                    assert_eq!(
                        mirror.holder(project, name, "-").is_some(),
                        held,
                        "{project}/{name}"
                    );
                }
            }
        };
        mirror.offer("v1", row(1, named_vnf("p1", "a", 1, false)));
        mirror.offer("v2", row(2, named_vnf("p1", "b", 2, false)));
        mirror.offer("v3", row(3, named_vnf("p2", "a", 1, false)));
        check(&mirror);
        assert_eq!(
            mirror.project_use("p1"),
            ProjectUse {
                live: 2,
                instances: 3
            }
        );
        assert!(!mirror.may_have_name("p1", "c"));
        assert_eq!(mirror.holder("p1", "b", "-").as_deref(), Some("v2"));
        assert_eq!(mirror.holder("p1", "b", "v2"), None, "its own name");
        // Scaled out, then an older row of it offered again: counted once, as it stands.
        mirror.offer("v2", row(4, named_vnf("p1", "b", 3, false)));
        mirror.offer("v2", row(2, named_vnf("p1", "b", 2, false)));
        check(&mirror);
        assert_eq!(mirror.project_use("p1").instances, 4);
        // Deleted (a tombstone row), then its key dropped: its name is free again.
        mirror.offer("v1", row(5, named_vnf("p1", "a", 1, true)));
        check(&mirror);
        assert!(!mirror.may_have_name("p1", "a"));
        assert!(mirror.may_have_name("p2", "a"));
        mirror.remove("v1");
        mirror.remove("v3");
        check(&mirror);
        assert_eq!(mirror.project_use("p2"), ProjectUse::default());
        assert!(!mirror.may_have_name("p2", "a"));
        assert_eq!(mirror.census().by_project.len(), 1);
    }

    /// A VNF of the fleet benchmark's: one monitored VDU instance, up, created from one VNFD.
    fn fleet_vnf_entries(n: usize, spec: &events::spec::VnfdSpec) -> (Vec<u8>, Vec<u8>) {
        use events::monitor::ProbeOutcome;
        use events::vnf::{Instance, VnfStatus};
        let at = datetime!(2026-11-25 10:00 UTC);
        let uuid = |k: usize| format!("{n:08x}-0000-4000-8000-{k:012x}");
        let vnf_id = uuid(1);
        let instance_id = uuid(2);
        let mgmt_ip = std::net::Ipv4Addr::from(0x7f00_0000 + u32::try_from(n).unwrap());
        let mut details =
            events::fixtures::details(&vnf_id, "0f0e0d0c-0000-4000-8000-000000000001");
        details.name = format!("fleet-{n}");
        details.description = "Demo example".into();
        let vnf = Vnf {
            details: Some(Box::new(details)),
            vnfd: Some(Arc::new(spec.clone())),
            status: Some(VnfStatus::Active),
            instances: vec![Instance {
                instance_id: instance_id.clone(),
                vdu: "VDU1".into(),
                mgmt_ip,
                booted_at: at,
            }],
            action_id: Some(uuid(3)),
            stack_id: Some(uuid(4)),
            ..Vnf::default()
        };
        let states = BTreeMap::from([(
            instance_id,
            InstanceMonitorState {
                vdu: "VDU1".into(),
                mgmt_ip,
                state: "up".into(),
                since: Some(at),
                last_result: Some(ProbeOutcome::Up { rtt_us: 120 }),
                last_probed_at: Some(at),
                monitor: "monitor-1".into(),
            },
        )]);
        (
            serde_json::to_vec(&row(u64::try_from(n).unwrap(), vnf)).unwrap(),
            serde_json::to_vec(&states).unwrap(),
        )
    }

    #[test]
    fn a_vnf_is_held_without_its_user_data_and_the_aggregates_bookkeeping() {
        let at = datetime!(2026-11-25 10:00 UTC);
        let mut full = vnf("v1", "d1", "VDU1");
        full.failure_count = 2;
        full.handled_failures = vec!["f1".to_owned(), "f2".to_owned()].into();
        full.handled_alarms = vec!["a1".to_owned()].into();
        full.heals_at = vec![at, at].into();
        full.dead_instances = vec!["i0".to_owned(), "i1".to_owned()].into();
        full.orphans = vec!["i9".to_owned()].into();
        full.scaled_at = BTreeMap::from([("SP1".to_owned(), at)]);
        let mut details = full.details.clone().unwrap();
        details.user_data = Some(Box::new(serde_json::json!({"sealed": "ciphertext"})));
        full.details = Some(details);
        let mirror = Mirror::default();
        mirror.offer("v1", row(1, full.clone()));
        let held = mirror.get("v1").unwrap().state;
        let mut details = full.details.clone().unwrap();
        details.user_data = None;
        let shown = Vnf {
            details: Some(details),
            handled_failures: ThinVec::new(),
            handled_alarms: ThinVec::new(),
            heals_at: ThinVec::new(),
            dead_instances: ThinVec::new(),
            orphans: ThinVec::new(),
            scaled_at: BTreeMap::new(),
            ..full
        };
        assert_eq!(held, shown);
        assert_eq!(held.failure_count, 2);
    }

    #[test]
    fn instance_states_are_held_as_the_bucket_has_them() {
        let state = |vdu: &str| {
            serde_json::json!({"vdu": vdu, "mgmt_ip": "127.0.0.1", "state": "up", "since": null,
                "last_result": null, "last_probed_at": null, "monitor": "m1"})
        };
        // Out of order, and one id twice: the later state is the one kept, as a map keeps it.
        let value = format!(
            r#"{{"i2": {}, "i1": {}, "i2": {}}}"#,
            state("VDU2"),
            state("VDU1"),
            state("VDU3")
        );
        let states = MonitorStates::default();
        BucketCopy::put(&states, "v1", value.as_bytes()).unwrap();
        let held = states.get("v1");
        let vdus: Vec<(&str, &str)> = held
            .iter()
            .map(|(id, state)| (id.as_str(), state.vdu.as_str()))
            .collect();
        assert_eq!(vdus, [("i1", "VDU1"), ("i2", "VDU3")]);
        assert!(BucketCopy::put(&states, "v2", b"[]").is_err());
        assert!(states.get("v2").is_empty());
    }

    /// What the mirror's own allocations come to per VNF, allocator overhead aside; the fleet
    /// benchmark prints the process's resident memory per VNF.
    #[test]
    fn a_fleet_vnf_costs_the_gateway_under_2_kib() {
        const VNFS: usize = 2_000;
        const GOAL_BYTES: usize = 2_048;
        let spec = events::fixtures::spec(vec![events::fixtures::vdu("VDU1", None)]);
        let entries: Vec<(String, Vec<u8>, Vec<u8>)> = (0..VNFS)
            .map(|n| {
                let (vnf, states) = fleet_vnf_entries(n, &spec);
                (format!("{n:08x}"), vnf, states)
            })
            .collect();
        let vnfs = Mirror::<Vnf>::default();
        let monitor_states = MonitorStates::default();
        let before = testkit::heap::held();
        let chunks_before = testkit::heap::chunks();
        for (key, vnf, _) in &entries {
            BucketCopy::put(&vnfs, key, vnf).unwrap();
        }
        let rows = testkit::heap::held() - before;
        for (key, _, states) in &entries {
            BucketCopy::put(&monitor_states, key, states).unwrap();
        }
        let held = usize::try_from(testkit::heap::held() - before).unwrap();
        let chunks = usize::try_from(testkit::heap::chunks() - chunks_before).unwrap();
        let rows = usize::try_from(rows).unwrap();
        println!(
            "a fleet VNF costs the gateway {} bytes: its row {}, its VDU states {}; {} bytes of \
             glibc's heap with each allocation's header and rounding",
            held / VNFS,
            rows / VNFS,
            (held - rows) / VNFS,
            chunks / VNFS
        );
        assert!(
            chunks / VNFS <= GOAL_BYTES,
            "{} bytes per VNF",
            chunks / VNFS
        );
        // The copies answer as the entries say.
        let shown = vnfs.get(&entries[7].0).unwrap();
        assert_eq!(shown.state.details.unwrap().name, "fleet-7");
        let states = monitor_states.get(&entries[7].0);
        assert_eq!(serde_json::to_vec(&states).unwrap(), entries[7].2);
    }
}
