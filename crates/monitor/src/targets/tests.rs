//! The target fold without an engine: which attempts are due, and which targets are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use events::monitor::ProbeOutcome;
use events::vnf::VnfEvent;

use super::*;
use crate::share::PARTITIONS;
use crate::testing::{
    BOOTED_AT, INTERVAL_MS, OUTSIDE, created, created_at, instance_id, ip, probe_cidrs,
};

fn every_partition() -> BTreeSet<u32> {
    (0..PARTITIONS).collect()
}

/// The due attempts' and refusals' management IPs at `now`, each attempt recorded as up.
fn tick(
    targets: &mut Targets,
    now: OffsetDateTime,
    owned: &BTreeSet<u32>,
) -> (Vec<Ipv4Addr>, Vec<Target>) {
    let due = targets.due(now, owned);
    for vnf_id in due.seeds {
        targets.seeded(Seed {
            vnf_id,
            down: Vec::new(),
        });
    }
    let mut started = Vec::new();
    for start in due.starts {
        let tracker = targets.trackers.get_mut(&start.target.instance_id).unwrap();
        tracker.record(ProbeOutcome::Up { rtt_us: 1 }, now);
        started.push(start.target.mgmt_ip);
    }
    (started, due.refused)
}

#[test]
fn a_target_outside_the_probe_ranges_is_never_due_and_is_reported_once() {
    let mut targets = Targets::new(probe_cidrs());
    targets.apply(1, "vnf-1", created_at("vnf-1", &[ip(1, 0), OUTSIDE], "a1"));
    let owned = every_partition();
    let (started, refused) = tick(&mut targets, BOOTED_AT, &owned);
    assert!(started.is_empty(), "the VNF's states are read first");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].instance_id, instance_id("vnf-1", 1));
    assert_eq!(refused[0].mgmt_ip, OUTSIDE);
    let mut probed = Vec::new();
    for second in 1..=5 {
        if second == 3 {
            // A later message re-derives the VNF's targets: the refusal is not made again.
            let attached = VnfEvent::MonitorAttached {
                action_id: "a2".into(),
            };
            targets.apply(1, "vnf-1", vec![attached]);
        }
        let (started, refused) = tick(
            &mut targets,
            BOOTED_AT + time::Duration::seconds(second),
            &owned,
        );
        assert!(
            refused.is_empty(),
            "reported again at {second} s: {refused:?}"
        );
        probed.extend(started);
    }
    assert!(!probed.contains(&OUTSIDE), "{probed:?}");
    assert_eq!(
        probed.len(),
        5,
        "the target inside is probed every second: {probed:?}"
    );
    assert_eq!(
        targets.census().targets,
        1,
        "a refused target is not counted"
    );
}

#[test]
fn a_refused_target_is_reported_by_the_monitor_that_holds_its_partition() {
    let mut targets = Targets::new(probe_cidrs());
    targets.apply(1, "vnf-1", created_at("vnf-1", &[OUTSIDE], "a1"));
    let (_, refused) = tick(&mut targets, BOOTED_AT, &BTreeSet::new());
    assert!(refused.is_empty(), "not this monitor's target");
    let owned = BTreeSet::from([share::partition("vnf-1")]);
    let (_, refused) = tick(&mut targets, BOOTED_AT + time::Duration::seconds(1), &owned);
    assert_eq!(refused.len(), 1, "reported once the partition is held");
    let (_, refused) = tick(
        &mut targets,
        BOOTED_AT + time::Duration::seconds(2),
        &BTreeSet::new(),
    );
    assert!(refused.is_empty());
    let (_, refused) = tick(&mut targets, BOOTED_AT + time::Duration::seconds(3), &owned);
    assert_eq!(
        refused.len(),
        1,
        "taken back, reported again, as by any monitor taking the partition over"
    );
    let (_, refused) = tick(&mut targets, BOOTED_AT + time::Duration::seconds(4), &owned);
    assert!(refused.is_empty(), "once while the partition is held");
}

#[test]
fn a_refused_target_of_a_deleted_vnf_is_forgotten() {
    let mut targets = Targets::new(probe_cidrs());
    targets.apply(1, "vnf-1", created_at("vnf-1", &[OUTSIDE], "a1"));
    let deleted = VnfEvent::DeleteRequested {
        operation_id: "delete".into(),
    };
    targets.apply(1, "vnf-1", vec![deleted]);
    let (_, refused) = tick(&mut targets, BOOTED_AT, &every_partition());
    assert!(refused.is_empty(), "{refused:?}");
    assert!(targets.refused.is_empty());
}

#[test]
fn only_the_targets_of_the_partitions_held_are_due_and_counted() {
    let mut targets = Targets::new(probe_cidrs());
    // Two VNFs in different partitions.
    let (a, b) = ("vnf-1", "vnf-2");
    assert_ne!(share::partition(a), share::partition(b));
    targets.apply(1, a, created_at(a, &[ip(1, 0)], "a1"));
    targets.apply(2, b, created_at(b, &[ip(2, 0)], "a2"));
    let only_a = BTreeSet::from([share::partition(a)]);
    tick(&mut targets, BOOTED_AT, &only_a);
    let (started, _) = tick(
        &mut targets,
        BOOTED_AT + time::Duration::seconds(1),
        &only_a,
    );
    assert_eq!(started, vec![ip(1, 0)]);
    assert_eq!(targets.census().targets, 1);
    // The other partition taken: its target is due at once (after its states are read).
    let owned = BTreeSet::from([share::partition(a), share::partition(b)]);
    tick(&mut targets, BOOTED_AT + time::Duration::seconds(2), &owned);
    let (mut started, _) = tick(&mut targets, BOOTED_AT + time::Duration::seconds(3), &owned);
    started.sort();
    assert_eq!(started, vec![ip(1, 0), ip(2, 0)]);
    assert_eq!(targets.census().targets, 2);
    // A deleted VNF leaves its partition's index.
    let deleted = VnfEvent::Deleted {
        operation_id: "vnf-2-delete".into(),
    };
    targets.apply(3, b, vec![deleted]);
    assert_eq!(targets.census().targets, 1);
}

/// The states of a VNF that loses its last target are deleted by the monitor holding its
/// partition even if another monitor wrote them: one that took the partition over a moment
/// before has written none yet, and the one before it no longer looks at the VNF.
#[test]
fn a_deleted_vnf_s_states_are_deleted_by_its_holder_whoever_wrote_them() {
    let mut targets = Targets::new(probe_cidrs());
    let (a, b) = ("vnf-1", "vnf-2");
    targets.apply(1, a, created_at(a, &[ip(1, 0)], "a1"));
    targets.apply(2, b, created_at(b, &[ip(2, 0)], "a2"));
    let only_a = BTreeSet::from([share::partition(a)]);
    tick(&mut targets, BOOTED_AT, &only_a);
    let deleted = || {
        vec![VnfEvent::Deleted {
            operation_id: "delete".into(),
        }]
    };
    assert_eq!(
        targets.apply(3, a, deleted()),
        Some((a.to_owned(), None)),
        "taken over, no states written here yet"
    );
    assert_eq!(
        targets.apply(4, b, deleted()),
        None,
        "not held: its holder's"
    );
}

#[test]
fn a_monitor_tracks_only_the_partitions_it_holds_and_starts_a_taken_one_afresh() {
    let mut targets = Targets::new(probe_cidrs());
    let vnf_ids: Vec<String> = (0..200).map(|n| format!("vnf-{n}")).collect();
    for (n, vnf_id) in (0u8..).zip(&vnf_ids) {
        targets.apply(u64::from(n), vnf_id, created(vnf_id, n, 1, "a1"));
    }
    assert!(targets.trackers.is_empty(), "nothing held, nothing tracked");
    let (a, b) = (share::partition("vnf-1"), share::partition("vnf-2"));
    let in_partition = |p: u32| {
        vnf_ids
            .iter()
            .filter(|id| share::partition(id) == p)
            .count()
    };
    let owned = BTreeSet::from([a, b]);
    tick(&mut targets, BOOTED_AT, &owned);
    assert_eq!(targets.trackers.len(), in_partition(a) + in_partition(b));
    // A message for a VNF of a partition not held is folded, and derives nothing.
    let other = vnf_ids
        .iter()
        .find(|id| !owned.contains(&share::partition(id)))
        .unwrap();
    let attached = VnfEvent::MonitorAttached {
        action_id: "a2".into(),
    };
    assert_eq!(targets.apply(300, other, vec![attached]), None);
    assert_eq!(targets.trackers.len(), in_partition(a) + in_partition(b));
    assert_eq!(
        targets.fold().vnfs[other.as_str()].action_id.as_deref(),
        Some("a2")
    );
    // Down and reported, then given away: the trackers go.
    let down = ProbeOutcome::Down {
        reason: "no reply".into(),
    };
    let vnf_1 = instance_id("vnf-1", 0);
    for second in 1..=2 {
        let due = targets.due(BOOTED_AT + time::Duration::seconds(second), &owned);
        assert!(due.starts.iter().any(|s| s.target.instance_id == vnf_1));
        let tracker = targets.trackers.get_mut(&vnf_1).unwrap();
        tracker.record(down.clone(), BOOTED_AT + time::Duration::seconds(second));
    }
    assert!(targets.trackers[&vnf_1].failure_reported());
    let only_b = BTreeSet::from([b]);
    tick(
        &mut targets,
        BOOTED_AT + time::Duration::seconds(3),
        &only_b,
    );
    assert_eq!(targets.trackers.len(), in_partition(b));
    assert_eq!(targets.census().targets, in_partition(b));
    // Taken back: its states are read again before it is probed, and a seed read for it
    // while it was away is dropped.
    let due = targets.due(BOOTED_AT + time::Duration::seconds(4), &owned);
    assert!(
        due.starts
            .iter()
            .all(|s| share::partition(&s.target.vnf_id) == b)
    );
    assert!(due.seeds.contains(&"vnf-1".to_owned()), "{:?}", due.seeds);
    assert!(!targets.trackers[&vnf_1].failure_reported(), "afresh");
    targets.seeded(Seed {
        vnf_id: "vnf-1".into(),
        down: vec![(vnf_1.clone(), BOOTED_AT)],
    });
    assert!(
        targets.trackers[&vnf_1].failure_reported(),
        "the episode continues from the states"
    );
    tick(
        &mut targets,
        BOOTED_AT + time::Duration::seconds(5),
        &only_b,
    );
    targets.seeded(Seed {
        vnf_id: "vnf-1".into(),
        down: Vec::new(),
    });
    let due = targets.due(BOOTED_AT + time::Duration::seconds(6), &owned);
    assert!(
        due.seeds.contains(&"vnf-1".to_owned()),
        "a seed taken while away does not count"
    );
}

#[test]
fn partitions_fill_as_many_phases_as_their_targets_need() {
    let owned = BTreeSet::from([3, 9, 17, 40]);
    let slots = |held| -> Vec<(u32, u32, u32)> {
        phases(&owned, held)
            .map(|(p, phase)| (p, phase.slot, phase.slots))
            .collect()
    };
    assert_eq!(
        slots(PHASE_TARGETS),
        [(3, 0, 1), (9, 0, 1), (17, 0, 1), (40, 0, 1)],
        "one phase holds them all"
    );
    assert_eq!(
        slots(2 * PHASE_TARGETS + 1),
        [(3, 0, 3), (9, 0, 3), (17, 1, 3), (40, 2, 3)]
    );
    assert_eq!(
        slots(100 * PHASE_TARGETS),
        [(3, 0, 4), (9, 1, 4), (17, 2, 4), (40, 3, 4)],
        "no more phases than partitions"
    );
    assert_eq!(slots(0), [(3, 0, 1), (9, 0, 1), (17, 0, 1), (40, 0, 1)]);
}

#[test]
fn a_monitor_holding_many_targets_starts_them_in_phases_once_an_interval() {
    const VNFS: u8 = 250;
    const INSTANCES: u8 = 20;
    let mut targets = Targets::new(probe_cidrs());
    for vnf in 0..VNFS {
        let vnf_id = format!("vnf-{vnf}");
        let ips: Vec<Ipv4Addr> = (0..INSTANCES).map(|n| ip(vnf, n)).collect();
        targets.apply(u64::from(vnf), &vnf_id, created_at(&vnf_id, &ips, "a1"));
    }
    let held = usize::from(VNFS) * usize::from(INSTANCES);
    let owned = every_partition();
    let interval = time::Duration::milliseconds(i64::try_from(INTERVAL_MS).unwrap());
    let step = time::Duration::milliseconds(10);
    // Three intervals, ticked every 10 ms: each target starts once in each after its states
    // are read, the first on the boundary (as after a restart: at once), and the rounds of the
    // next (when their attempts were due) are the phases of the interval.
    let mut starts: HashMap<String, usize> = HashMap::new();
    let mut rounds: BTreeMap<i128, usize> = BTreeMap::new();
    let mut now = BOOTED_AT;
    let mut looked_at = 0;
    while now < BOOTED_AT + interval * 3 {
        let due = targets.due(now, &owned);
        looked_at += due.looked_at;
        for vnf_id in due.seeds {
            let down = Vec::new();
            targets.seeded(Seed { vnf_id, down });
        }
        for start in due.starts {
            *starts.entry(start.target.instance_id.clone()).or_default() += 1;
            *rounds.entry(start.round).or_default() += 1;
            let tracker = targets.trackers.get_mut(&start.target.instance_id).unwrap();
            tracker.record(ProbeOutcome::Up { rtt_us: 1 }, now);
        }
        now += step;
    }
    assert_eq!(starts.len(), held);
    assert!(starts.values().all(|n| (2..=3).contains(n)), "{starts:?}");
    // Each target looked at on its reads and starts, not at each of the 300 ticks.
    assert!(looked_at <= 5 * held, "{looked_at} looks at {held} targets");
    let slots = held.div_ceil(PHASE_TARGETS);
    let boundary = BOOTED_AT.unix_timestamp_nanos();
    assert_eq!(rounds.remove(&boundary), Some(held), "all at once, first");
    let boundary = (BOOTED_AT + interval).unix_timestamp_nanos();
    let phase = interval.whole_nanoseconds() / i128::try_from(slots).unwrap();
    let first: Vec<i128> = rounds.keys().take(slots).copied().collect();
    let expected: Vec<i128> = (0..slots)
        .map(|slot| boundary + i128::try_from(slot).unwrap() * phase)
        .collect();
    assert_eq!(first, expected, "one round per phase");
    assert!(
        rounds.values().all(|n| *n <= PHASE_TARGETS),
        "no phase starts more than {PHASE_TARGETS}: {rounds:?}"
    );
}

/// A tick looks through a partition only when one of its attempts is due or its targets
/// changed, so each target is looked at about once an interval, not at every tick (ten a
/// second in the engine), which had been most of an idle monitor's CPU.
#[test]
fn a_tick_looks_only_at_partitions_with_an_attempt_due_or_a_change() {
    const VNFS: u8 = 100;
    let mut targets = Targets::new(probe_cidrs());
    for vnf in 0..VNFS {
        let vnf_id = format!("vnf-{vnf}");
        targets.apply(u64::from(vnf), &vnf_id, created(&vnf_id, vnf, 1, "a1"));
    }
    let owned = every_partition();
    let ms = time::Duration::milliseconds;
    tick(&mut targets, BOOTED_AT, &owned);
    let (started, _) = tick(&mut targets, BOOTED_AT + ms(10), &owned);
    assert_eq!(started.len(), usize::from(VNFS), "all started once seeded");
    let between = targets.due(BOOTED_AT + ms(500), &owned);
    assert_eq!(between.looked_at, 0, "nothing due before the next boundary");
    assert!(between.starts.is_empty());
    // A VNF created meanwhile: its partition alone is looked through.
    let new = "vnf-new";
    targets.apply(u64::from(VNFS), new, created(new, 200, 1, "a1"));
    let partition = share::partition(new);
    let in_partition = (0..VNFS)
        .filter(|vnf| share::partition(&format!("vnf-{vnf}")) == partition)
        .count()
        + 1;
    let changed = targets.due(BOOTED_AT + ms(600), &owned);
    assert_eq!(changed.looked_at, in_partition);
    assert_eq!(changed.seeds, vec![new.to_owned()]);
    // Waiting for its seed, the new target keeps its partition looked at; once it is read,
    // nothing more is looked at until the boundary.
    targets.seeded(Seed {
        vnf_id: new.into(),
        down: Vec::new(),
    });
    let (started, _) = tick(&mut targets, BOOTED_AT + ms(700), &owned);
    assert_eq!(started, vec![ip(200, 0)]);
    assert_eq!(targets.due(BOOTED_AT + ms(800), &owned).looked_at, 0);
    // On the boundary, every target is looked at once; those started on it are started again
    // (the new one started late, so its next attempt is on the boundary after).
    let at_boundary = targets.due(BOOTED_AT + ms(1_000), &owned);
    assert_eq!(at_boundary.looked_at, usize::from(VNFS) + 1);
    assert_eq!(at_boundary.starts.len(), usize::from(VNFS));
    // Partitions given away leave the others as they were: nothing is due, nothing looked at.
    let half: BTreeSet<u32> = (0..PARTITIONS / 2).collect();
    assert_eq!(targets.due(BOOTED_AT + ms(1_100), &half).looked_at, 0);
}

/// What a fleet VNF costs every monitor (its aggregate in the fold; the VNFD's spec is
/// shared), and what its target costs the one monitor holding its partition (tracker, index,
/// seeded mark), in glibc's heap with each allocation's header and rounding. `ops/bench-fleet`
/// prints each monitor's whole heap.
#[test]
fn a_fleet_vnf_costs_every_monitor_its_aggregate_and_only_its_holder_a_tracker() {
    const VNFS: u32 = 2_000;
    const FOLD_BYTES_MAX: isize = 768;
    const TARGET_BYTES_MAX: isize = 1_536;
    let messages: Vec<(String, Vec<VnfEvent>)> = (0..VNFS)
        .map(|n| {
            let vnf_id = format!("{n:08x}-0000-4000-8000-000000000001");
            let events = created_at(&vnf_id, &[Ipv4Addr::from(0x7f01_0000 + n)], "a1");
            (vnf_id, events)
        })
        .collect();
    let mut targets = Targets::new(probe_cidrs());
    let before = testkit::heap::chunks();
    for (sequence, (vnf_id, events)) in (1..).zip(&messages) {
        targets.apply(sequence, vnf_id, events.clone());
    }
    let folded = testkit::heap::chunks() - before;
    tick(&mut targets, BOOTED_AT, &every_partition());
    let tracked = testkit::heap::chunks() - before - folded;
    let vnfs = isize::try_from(VNFS).unwrap();
    println!(
        "a fleet VNF costs every monitor {} bytes, and the monitor holding it {} bytes more",
        folded / vnfs,
        tracked / vnfs
    );
    assert_eq!(targets.census().targets, usize::try_from(VNFS).unwrap());
    assert!(folded / vnfs <= FOLD_BYTES_MAX, "{} bytes", folded / vnfs);
    assert!(
        tracked / vnfs <= TARGET_BYTES_MAX,
        "{} bytes",
        tracked / vnfs
    );
}

/// Unchanged states are written again once a period, each VNF on its own instant: VNFs
/// written together are refreshed at an even rate over the next period, and a VNF keeps its
/// instant whenever it was last written.
#[test]
fn refreshes_of_vnfs_written_together_come_evenly_over_the_period() {
    const VNFS: usize = 10_000;
    const TENTHS: usize = 10;
    let mut counts = [0usize; TENTHS];
    for n in 0..VNFS {
        let vnf_id = format!("{n:08x}-0000-4000-8000-000000000001");
        let next = next_refresh(&vnf_id, BOOTED_AT);
        assert!(
            next > BOOTED_AT && next <= BOOTED_AT + STATE_REFRESH,
            "{vnf_id}: {next}"
        );
        assert_eq!(
            next_refresh(&vnf_id, next),
            next + STATE_REFRESH,
            "{vnf_id}"
        );
        let earlier = next - time::Duration::seconds(1);
        assert_eq!(next_refresh(&vnf_id, earlier), next, "{vnf_id}");
        let tenth = (next - BOOTED_AT).whole_nanoseconds() * i128::try_from(TENTHS).unwrap()
            / STATE_REFRESH.whole_nanoseconds();
        counts[usize::try_from(tenth).unwrap().min(TENTHS - 1)] += 1;
    }
    let even = VNFS / TENTHS;
    assert!(
        counts.iter().all(|count| count.abs_diff(even) <= even / 10),
        "VNFs refreshed in each tenth of the period: {counts:?}"
    );
}
