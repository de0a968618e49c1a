//! The target fold without an engine: which attempts are due, and which targets are refused.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use events::monitor::ProbeOutcome;
use events::vnf::VnfEvent;

use super::*;
use crate::share::PARTITIONS;
use crate::testing::{BOOTED_AT, OUTSIDE, created_at, instance_id, ip, probe_cidrs};

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
        targets.census(&owned).targets,
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
    assert!(
        refused.is_empty(),
        "once per monitor, whatever its partitions do"
    );
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
    assert_eq!(targets.census(&only_a).targets, 1);
    // The other partition taken: its target is due at once (after its states are read).
    let owned = BTreeSet::from([share::partition(a), share::partition(b)]);
    tick(&mut targets, BOOTED_AT + time::Duration::seconds(2), &owned);
    let (mut started, _) = tick(&mut targets, BOOTED_AT + time::Duration::seconds(3), &owned);
    started.sort();
    assert_eq!(started, vec![ip(1, 0), ip(2, 0)]);
    assert_eq!(targets.census(&owned).targets, 2);
    // A deleted VNF leaves its partition's index.
    let deleted = VnfEvent::Deleted {
        operation_id: "vnf-2-delete".into(),
    };
    targets.apply(3, b, vec![deleted]);
    assert_eq!(targets.census(&owned).targets, 1);
}
