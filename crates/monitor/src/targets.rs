//! The target fold, without I/O: the VNFs as the lifecycle log left them, a [`Tracker`] per
//! monitored VDU instance of the partitions the monitor holds, inside the ranges it may
//! probe, and which of them are due for an attempt; a target outside those ranges gets no
//! tracker and is reported once instead.
//!
//! Every monitor folds the whole log (a partition it takes over is probed at once, from the
//! VNFs as they stand), but derives targets only for the partitions it holds: they are derived
//! when it takes a partition and dropped when it gives it away, so its trackers follow its
//! share of the fleet, not the fleet.
//!
//! It never probes, publishes or reads NATS: the engine feeds it decoded events and acts on
//! what it answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use time::OffsetDateTime;

use events::monitor::cidr::ProbeCidrs;
use events::monitor::{self as schema, InstanceMonitorState, ProbeOutcome, Target};
use events::vnf::{Vnf, VnfEvent};

use crate::share;
use crate::snapshot::Fold;
use crate::tracker::{Health, Phase, Tracker};
use crate::{IdMap, IdSet};

/// How often a VNF's unchanged states are written again (a change is written at once): each
/// VNF on its own instant of the period, shifted from the epoch's by a hash of its id
/// ([`next_refresh`]), so that the refreshes come at an even rate, whenever the VNFs were last
/// written. A refresh only moves the states' `last_probed_at` and `last_result`, which the API
/// shows as of the last write.
///
/// Why ten minutes, not the 30 to 90 s (by partition) before: every write is a message
/// nats-server stores and fsyncs, and that every gateway's watch receives. At 30 to 90 s,
/// 1,000,000 VNFs would make about 17,000 writes a second, more than the 6,800 fsynced
/// publishes a second this machine took (README, appends with `sync_interval: always`); at
/// ten minutes, 1,700 (17 for 10,000 VNFs, against 170). On the API's side, in `ops/bench
/// gateway` (2026-12-04, one run each, shows 0.5 ms apart) the show p99 with the monitor
/// running was 1.66 and 1.50 times the same paused at 30 to 90 s, 1.34 and 1.50 then 1.44
/// and 1.58 at ten minutes, and 1.30 and 1.23 with no refresh at all: within the noise.
const STATE_REFRESH: time::Duration = time::Duration::minutes(10);

/// Attempts a monitor starts on one instant, about: the partitions it holds are spread over as
/// many phases of the interval as keep each phase's targets under this (see [`phases`]).
///
/// Why: with every target on the interval's boundary, a monitor holding 5,000 started them all
/// at once, through its 1,024 attempts in flight on one thread, and a quarter of them started
/// more than a second late (`ops/bench-fleet`, 20,000 VDUs on 4 monitors); holding 2,500, all
/// were on time. A phase is also a round: the roster of one round message
/// ([`ROUND_TARGETS_PER_MESSAGE_MAX`](events::monitor::rounds::ROUND_TARGETS_PER_MESSAGE_MAX)
/// is 2,000 too), judged as a sample of the monitor's targets (see `judge`).
pub const PHASE_TARGETS: usize = 2_000;

/// The phase of each partition in `owned`, in order, given how many targets they hold in all:
/// as many phases as it takes for each to hold at most about [`PHASE_TARGETS`], and no more
/// than there are partitions; the partitions, in order, fill the phases in equal numbers
/// (their VNFs are spread by a hash, so their targets are too).
pub fn phases(owned: &BTreeSet<u32>, held: usize) -> impl Iterator<Item = (u32, Phase)> + '_ {
    let partitions = u32::try_from(owned.len()).unwrap_or(u32::MAX).max(1);
    let wanted = u32::try_from(held.div_ceil(PHASE_TARGETS)).unwrap_or(u32::MAX);
    let slots = wanted.clamp(1, partitions);
    owned.iter().zip(0u32..).map(move |(&partition, rank)| {
        let slot = rank * slots / partitions;
        (partition, Phase { slot, slots })
    })
}

/// What the state bucket said about a VNF when this monitor took it over: the instances that
/// were down (a failure already reported), and since when. Probing waits for it, so that a
/// monitor taking over or restarting continues an episode instead of reporting it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub vnf_id: String,
    pub down: Vec<(String, OffsetDateTime)>,
}

impl Seed {
    /// The seed recorded in a VNF's states: its instances that were down, and since when.
    pub fn from_states(vnf_id: String, states: BTreeMap<String, InstanceMonitorState>) -> Seed {
        let down = states
            .into_iter()
            .filter(|(_, state)| state.state == Health::Down.as_str())
            .filter_map(|(instance_id, state)| Some((instance_id, state.since?)))
            .collect();
        Seed { vnf_id, down }
    }
}

/// One attempt to start: the target, and the round it belongs to (when it was due: its
/// interval boundary shifted by its phase, in Unix nanoseconds).
#[derive(Debug, Clone)]
pub struct Start {
    pub round: i128,
    pub target: Arc<Target>,
}

/// What is due at one tick.
#[derive(Debug, Default)]
pub struct Due {
    pub starts: Vec<Start>,
    /// VNFs whose recorded states are to be read before their targets are probed.
    pub seeds: Vec<String>,
    /// Targets outside the ranges the monitor may probe, in the partitions it holds, that it
    /// has not reported yet: to be reported, never probed.
    pub refused: Vec<Target>,
    /// Targets looked at to find these: what the pass cost.
    pub looked_at: usize,
}

/// How [`Targets::due`] last left a partition: the phase it looked through the partition's
/// targets in, and the earliest moment one of them is due after that (`None`: none is until
/// something changes them). Until then, and while nothing changes the partition, `due` passes
/// it by: a tick looks only at the partitions with an attempt due, so each target is looked at
/// about once an interval, not at every tick.
#[derive(Debug, Clone, Copy)]
struct Looked {
    phase: Phase,
    next: Option<OffsetDateTime>,
}

/// A target outside the ranges the monitor may probe.
#[derive(Debug)]
struct Refused {
    target: Target,
    /// Whether this monitor has reported it (once per VNF, instance and address).
    reported: bool,
}

/// What the loop knows: the VNFs as the log left them and a tracker per target of the
/// partitions it holds.
#[derive(Debug)]
pub struct Targets {
    /// The ranges this monitor may probe (`--probe-cidrs`).
    allowed: ProbeCidrs,
    /// The VNFs as the log left them, and the last lifecycle message folded.
    fold: Fold,
    /// The partitions whose targets are derived: everything below holds only their VNFs.
    derived_for: BTreeSet<u32>,
    pub(crate) trackers: IdMap<String, Tracker>,
    /// Each VNF's instance ids, by the VNF's partition: what a partition given away drops,
    /// and what [`due`](Self::due) looks through.
    by_vnf: Vec<IdMap<String, IdSet<String>>>,
    /// The instance ids in each partition's `by_vnf`, counted: what [`phases`] spreads.
    held: Vec<usize>,
    /// Each partition as [`due`](Self::due) last left it; `None`: to be looked through at the
    /// next tick (its targets changed since).
    looked: Vec<Option<Looked>>,
    /// When each written VNF's states are to be written again if nothing changes.
    states_due: IdMap<String, OffsetDateTime>,
    /// VNFs whose last recorded states this monitor has read since it took their partition;
    /// only they are probed (see [`Seed`]).
    seeded: IdSet<String>,
    /// VNFs whose states are being read.
    seeding: IdSet<String>,
    /// Targets outside `allowed`, by instance id: they have no tracker.
    refused: IdMap<String, Refused>,
    /// Whether a refused target may be due for its report: one was added, or the partitions
    /// held changed, since `refused` was last looked through.
    refused_changed: bool,
}

/// When the VNF's states, written at `at`, are written again unless they change: the VNF's
/// first instant after `at`, its instants being [`STATE_REFRESH`] apart and shifted from the
/// epoch's by the hash of its id's share of the period.
fn next_refresh(vnf_id: &str, at: OffsetDateTime) -> OffsetDateTime {
    let period = STATE_REFRESH.whole_nanoseconds();
    let offset = (period * i128::from(share::hash(vnf_id))) >> 32;
    let slot = (at.unix_timestamp_nanos() - offset).div_euclid(period) + 1;
    OffsetDateTime::from_unix_timestamp_nanos(slot * period + offset).unwrap_or(at + STATE_REFRESH)
}

/// A state write the fold asks for: the VNF's states, or `None` to delete them.
pub type StateWrite = (String, Option<BTreeMap<String, InstanceMonitorState>>);

impl Targets {
    /// No VNFs yet; targets outside `allowed` will never be probed.
    pub fn new(allowed: ProbeCidrs) -> Self {
        Targets {
            allowed,
            fold: Fold::default(),
            derived_for: BTreeSet::new(),
            trackers: IdMap::default(),
            by_vnf: (0..share::PARTITIONS).map(|_| IdMap::default()).collect(),
            held: vec![0; share::PARTITIONS as usize],
            looked: vec![None; share::PARTITIONS as usize],
            states_due: IdMap::default(),
            seeded: IdSet::default(),
            seeding: IdSet::default(),
            refused: IdMap::default(),
            refused_changed: false,
        }
    }

    /// Starts from a restored lifecycle fold (a snapshot's): the targets of the partitions
    /// held are derived from it as from a replayed one, so that folding the log after the
    /// snapshot on top gives what folding the whole log gives.
    pub fn restore(allowed: ProbeCidrs, fold: Fold) -> Self {
        Targets {
            fold,
            ..Targets::new(allowed)
        }
    }

    /// The lifecycle fold: what a snapshot writes down.
    pub fn fold(&self) -> &Fold {
        &self.fold
    }

    /// Folds one lifecycle message, stored at stream sequence `sequence`, and re-derives the
    /// VNF's targets if its partition is held. Answers a state delete when the VNF lost its
    /// last target here, or after this monitor wrote its states.
    pub fn apply(
        &mut self,
        sequence: u64,
        vnf_id: &str,
        events: Vec<VnfEvent>,
    ) -> Option<StateWrite> {
        let vnf = self.fold.apply(sequence, vnf_id, events);
        if !self.derived_for.contains(&share::partition(vnf_id)) {
            return None;
        }
        if vnf.deleted {
            self.seeded.remove(vnf_id);
        }
        self.derive(vnf_id, &vnf)
    }

    /// Derives the targets of the partitions `owned` and drops those of the others, if
    /// `owned` changed since the last call. A partition taken (again) starts afresh: its VNFs'
    /// states are read again (see [`Seed`]), and its refused targets reported again, as by any
    /// monitor taking it over.
    fn hold(&mut self, owned: &BTreeSet<u32>) {
        if *owned == self.derived_for {
            return;
        }
        let given: Vec<u32> = self.derived_for.difference(owned).copied().collect();
        for &partition in &given {
            let index = partition as usize;
            let Some(vnfs) = self.by_vnf.get_mut(index) else {
                continue;
            };
            for (vnf_id, instance_ids) in std::mem::take(vnfs) {
                for instance_id in &instance_ids {
                    self.trackers.remove(instance_id);
                    self.refused.remove(instance_id);
                }
                self.states_due.remove(&vnf_id);
            }
            self.held[index] = 0;
            self.looked[index] = None;
        }
        if !given.is_empty() {
            // A monitor alone at first takes every partition, then gives most of them away.
            self.trackers.shrink_to_fit();
            self.states_due.shrink_to_fit();
        }
        let in_owned = |vnf_id: &String| owned.contains(&share::partition(vnf_id));
        self.seeded.retain(in_owned);
        self.seeding.retain(in_owned);
        let taken: BTreeSet<u32> = owned.difference(&self.derived_for).copied().collect();
        self.derived_for.clone_from(owned);
        if !taken.is_empty() {
            let vnfs: Vec<(String, Arc<Vnf>)> = self
                .fold
                .vnfs
                .iter()
                .filter(|(vnf_id, _)| taken.contains(&share::partition(vnf_id)))
                .map(|(vnf_id, vnf)| (vnf_id.clone(), vnf.clone()))
                .collect();
            for (vnf_id, vnf) in vnfs {
                self.derive(&vnf_id, &vnf);
            }
        }
        self.refused_changed = true;
    }

    /// Re-derives the VNF's targets from `vnf`, as it now stands.
    fn derive(&mut self, vnf_id: &str, vnf: &Vnf) -> Option<StateWrite> {
        let derived = schema::targets(vnf_id, vnf);
        let wanted: IdSet<String> = derived.iter().map(|t| t.instance_id.clone()).collect();
        let index = share::partition(vnf_id) as usize;
        self.looked[index] = None;
        let partition = &mut self.by_vnf[index];
        let known = partition.entry(vnf_id.to_owned()).or_default();
        for gone in known.difference(&wanted) {
            self.trackers.remove(gone);
            self.refused.remove(gone);
        }
        for target in derived {
            if !self.allowed.contains(target.mgmt_ip) {
                self.trackers.remove(&target.instance_id);
                match self.refused.get_mut(&target.instance_id) {
                    Some(refused) if refused.target.mgmt_ip == target.mgmt_ip => {
                        refused.target = target;
                    }
                    _ => {
                        let refused = Refused {
                            target,
                            reported: false,
                        };
                        self.refused
                            .insert(refused.target.instance_id.clone(), refused);
                        self.refused_changed = true;
                    }
                }
                continue;
            }
            self.refused.remove(&target.instance_id);
            if let Some(tracker) = self.trackers.get_mut(&target.instance_id) {
                tracker.update(target);
            } else {
                tracing::info!(vnf_id, instance_id = %target.instance_id, mgmt_ip = %target.mgmt_ip, "Monitoring VDU instance.");
                self.trackers
                    .insert(target.instance_id.clone(), Tracker::new(target));
            }
        }
        let had_targets = !known.is_empty();
        self.held[index] = self.held[index] - known.len() + wanted.len();
        *known = wanted;
        if known.is_empty() {
            partition.remove(vnf_id);
            self.states_due.remove(vnf_id);
            // Whether or not this monitor wrote them: the monitor that held the partition
            // before may have, and it no longer looks at the VNF.
            if had_targets {
                return Some((vnf_id.to_owned(), None));
            }
        }
        None
    }

    /// A conductor called a job stale (`bad_action`): the instance is not probed until the
    /// log gives it a new action id. An answer about an older action id changes nothing, and
    /// neither does one about an instance this monitor sees answering: `bad_action` answers a
    /// reported failure, and a report about a VDU that is up is not this monitor's (another
    /// identity forged it), so it must not switch the VDU's monitoring off.
    pub fn drop_job(&mut self, instance_id: &str, action_id: &str) -> bool {
        match self.trackers.get_mut(instance_id) {
            Some(tracker)
                if tracker.target.action_id == action_id && tracker.failure_reported() =>
            {
                tracker.dropped = true;
                true
            }
            _ => false,
        }
    }

    /// Takes a VNF's seed: down instances continue their reported episode. A seed read for
    /// a partition given away meanwhile is dropped.
    pub fn seeded(&mut self, seed: Seed) {
        self.seeding.remove(&seed.vnf_id);
        if !self.derived_for.contains(&share::partition(&seed.vnf_id)) {
            return;
        }
        for (instance_id, since) in seed.down {
            if let Some(tracker) = self.trackers.get_mut(&instance_id) {
                tracing::info!(vnf_id = %seed.vnf_id, %instance_id, %since, "Continuing a reported failure.");
                tracker.resume_down(since);
            }
        }
        self.seeded.insert(seed.vnf_id);
    }

    /// The attempts due at `now` on targets in the partitions `owned` (derived first if they
    /// changed, see [`hold`](Self::hold)), each partition in its phase ([`phases`]), marked
    /// started; a target of a VNF whose recorded states are not read yet waits for them (and
    /// their read is asked for once). Targets outside the probe ranges are never due; each is
    /// answered once as refused.
    pub fn due(&mut self, now: OffsetDateTime, owned: &BTreeSet<u32>) -> Due {
        self.hold(owned);
        let mut due = Due::default();
        if std::mem::take(&mut self.refused_changed) {
            let unreported = self.refused.values_mut().filter(|r| !r.reported);
            for refused in unreported {
                refused.reported = true;
                due.refused.push(refused.target.clone());
            }
        }
        let held = owned
            .iter()
            .filter_map(|p| self.held.get(*p as usize))
            .sum();
        for (partition, phase) in phases(owned, held) {
            let index = partition as usize;
            let looked = self.looked.get(index).copied().flatten();
            if looked.is_some_and(|l| l.phase == phase && l.next.is_none_or(|next| now < next)) {
                continue;
            }
            let Some(partition) = self.by_vnf.get(index) else {
                continue;
            };
            let mut next: Option<OffsetDateTime> = None;
            for instance_id in partition.values().flatten() {
                let Some(tracker) = self.trackers.get_mut(instance_id) else {
                    continue; // refused: outside the probe ranges
                };
                due.looked_at += 1;
                if tracker.is_due(now, phase) {
                    let vnf_id = &tracker.target.vnf_id;
                    if self.seeded.contains(vnf_id) {
                        let round = tracker.due_at(phase).unix_timestamp_nanos();
                        tracker.start(now, phase);
                        due.starts.push(Start {
                            round,
                            target: tracker.target.clone(),
                        });
                    } else if self.seeding.insert(vnf_id.clone()) {
                        due.seeds.push(vnf_id.clone());
                    }
                }
                // Running, its next attempt is already set; waiting for its seed, it is due
                // now, so the partition is looked through again at the next tick.
                if !tracker.dropped {
                    let at = tracker.due_at(phase);
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            self.looked[index] = Some(Looked { phase, next });
        }
        due
    }

    /// How many targets of the partitions held there are (as of the last [`due`](Self::due)),
    /// and how many of them failed their latest attempt.
    pub fn census(&self) -> Census {
        let mine = self.trackers.values();
        let (mut targets, mut failing) = (0, 0);
        for tracker in mine {
            targets += 1;
            if matches!(tracker.last_outcome, Some(ProbeOutcome::Down { .. })) {
                failing += 1;
            }
        }
        Census { targets, failing }
    }

    /// Forgets the failures of a suspect round (see [`Tracker::unreport`]).
    pub fn unreport(&mut self, instance_ids: &[String]) {
        for id in instance_ids {
            if let Some(tracker) = self.trackers.get_mut(id) {
                tracker.unreport();
            }
        }
    }

    /// The state writes after a round at `at`: every touched VNF whose health changed or whose
    /// written states are due for a refresh, but those of partitions given away meanwhile
    /// (their new holder writes them).
    pub fn state_writes(
        &mut self,
        touched: IdSet<String>,
        changed: &IdSet<String>,
        at: OffsetDateTime,
        monitor: &str,
    ) -> Vec<StateWrite> {
        let mut writes = Vec::new();
        let held = touched
            .into_iter()
            .filter(|vnf_id| self.derived_for.contains(&share::partition(vnf_id)));
        for vnf_id in held {
            let stale = self.states_due.get(&vnf_id).is_none_or(|due| at >= *due);
            if stale || changed.contains(&vnf_id) {
                self.states_due
                    .insert(vnf_id.clone(), next_refresh(&vnf_id, at));
                let states = self.states(&vnf_id, monitor);
                writes.push((vnf_id, states));
            }
        }
        writes
    }

    fn states(
        &self,
        vnf_id: &str,
        monitor: &str,
    ) -> Option<BTreeMap<String, InstanceMonitorState>> {
        let instances = self.by_vnf[share::partition(vnf_id) as usize].get(vnf_id)?;
        Some(
            instances
                .iter()
                .filter_map(|id| self.trackers.get(id))
                .map(|t| {
                    let state = InstanceMonitorState {
                        vdu: t.target.vdu.clone(),
                        mgmt_ip: t.target.mgmt_ip,
                        state: t.health.as_str().into(),
                        since: t.since,
                        last_result: t.last_outcome.clone(),
                        last_probed_at: t.last_probed_at,
                        monitor: monitor.to_owned(),
                    };
                    (t.target.instance_id.clone(), state)
                })
                .collect(),
        )
    }
}

/// A monitor's targets at the end of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// The targets in the partitions the monitor holds.
    pub targets: usize,
    /// Those of them whose latest attempt failed.
    pub failing: usize,
}

#[cfg(test)]
mod tests;
