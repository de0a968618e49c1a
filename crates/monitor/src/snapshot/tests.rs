//! The snapshot without NATS: a fold cut anywhere, written down, read back and folded on
//! gives the fold of the whole history, and every refusal names its reason.

use std::time::Duration;

use events::monitor::Target;
use events::spec::ScaleDirection;
use events::vnf::{Instance, PlannedInstance, VnfEvent};

use super::*;
use crate::targets::Targets;
use crate::testing::{BOOTED_AT, created, ip, probe_cidrs};

/// One lifecycle message: its VNF and events.
type Message = (&'static str, Vec<VnfEvent>);

/// A history with a create of three VNFs, a new action id, a scale out, a delete and a VNF
/// created after it.
fn history() -> Vec<Message> {
    let scaled = Instance {
        instance_id: "vnf-1-VDU1-scaled".into(),
        vdu: "VDU1".into(),
        mgmt_ip: ip(1, 9),
        booted_at: BOOTED_AT,
    };
    vec![
        ("vnf-1", created("vnf-1", 1, 1, "a1")),
        ("vnf-2", created("vnf-2", 2, 2, "a2")),
        (
            "vnf-1",
            vec![VnfEvent::ScaleRequested {
                operation_id: "scale".into(),
                policy: "SP1".into(),
                direction: ScaleDirection::Out,
                add: vec![PlannedInstance {
                    vdu: "VDU1".into(),
                    instance_id: scaled.instance_id.clone(),
                }],
                remove: Vec::new(),
                at: Some(BOOTED_AT),
            }],
        ),
        ("vnf-3", created("vnf-3", 3, 1, "a3")),
        (
            "vnf-1",
            vec![VnfEvent::ScaleCompleted {
                operation_id: "scale".into(),
                added: vec![scaled],
                removed: Vec::new(),
            }],
        ),
        (
            "vnf-2",
            vec![VnfEvent::MonitorAttached {
                action_id: "a2-new".into(),
            }],
        ),
        (
            "vnf-3",
            vec![VnfEvent::DeleteRequested {
                operation_id: "delete".into(),
            }],
        ),
        (
            "vnf-3",
            vec![VnfEvent::Deleted {
                operation_id: "delete".into(),
            }],
        ),
        ("vnf-4", created("vnf-4", 4, 1, "a4")),
    ]
}

/// Folds `messages` into `fold`, numbering them from `first` (stream sequences).
fn fold_into(fold: &mut Fold, first: u64, messages: &[Message]) {
    for (sequence, (vnf_id, events)) in (first..).zip(messages) {
        fold.apply(sequence, vnf_id, events.clone());
    }
}

fn every_partition() -> BTreeSet<u32> {
    (0..crate::share::PARTITIONS).collect()
}

fn fold_of(messages: &[Message]) -> Fold {
    let mut fold = Fold::default();
    fold_into(&mut fold, 1, messages);
    fold
}

/// Every target `targets` holds, by instance id, once it holds every partition.
fn held(targets: &mut Targets) -> Vec<Target> {
    targets.due(BOOTED_AT, &every_partition());
    let mut held: Vec<Target> = targets
        .trackers
        .values()
        .map(|t| Target::clone(&t.target))
        .collect();
    held.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    held
}

#[test]
fn a_snapshot_taken_anywhere_plus_the_tail_equals_the_whole_fold() {
    let history = history();
    let last = history.len() as u64;
    let whole = fold_of(&history);
    assert_eq!(whole.sequence, last);
    assert!(!whole.vnfs.contains_key("vnf-3"), "a deleted VNF leaves");
    let mut replayed = Targets::new(probe_cidrs());
    for (sequence, (vnf_id, events)) in (1..).zip(&history) {
        replayed.apply(sequence, vnf_id, events.clone());
    }
    assert_eq!(
        held(&mut replayed).len(),
        5,
        "vnf-1 twice, vnf-2 twice, vnf-4"
    );
    for cut in 0..=history.len() {
        let snapshot = encode(&fold_of(&history[..cut])).unwrap();
        let mut restored = decode(&snapshot, last).unwrap();
        assert_eq!(restored.sequence, cut as u64);
        let mut targets = Targets::restore(probe_cidrs(), restored.clone());
        // Held before the tail is folded, where `replayed` is taken after the whole log: a
        // taken partition derives what its messages would have.
        targets.due(BOOTED_AT, &every_partition());
        fold_into(&mut restored, cut as u64 + 1, &history[cut..]);
        let comparison = compare(&whole, &restored);
        assert_eq!(comparison.difference, None, "cut after {cut}");
        assert_eq!(comparison.vnfs, 3);
        for (sequence, (vnf_id, events)) in (cut as u64 + 1..).zip(&history[cut..]) {
            targets.apply(sequence, vnf_id, events.clone());
        }
        assert_eq!(held(&mut targets), held(&mut replayed), "cut after {cut}");
        assert_eq!(targets.fold(), replayed.fold(), "cut after {cut}");
    }
}

#[test]
fn a_vnfd_spec_shared_by_many_vnfs_is_stored_once() {
    let one: Vec<Message> = vec![("vnf-1", created("vnf-1", 1, 1, "a1"))];
    let spec_bytes = serde_json::to_vec(&fold_of(&one).vnfs["vnf-1"].vnfd)
        .unwrap()
        .len();
    let ids: Vec<String> = (0..50).map(|n| format!("vnf-{n}")).collect();
    let mut fold = Fold::default();
    for (sequence, id) in (1..).zip(&ids) {
        fold.apply(sequence, id, created(id, 1, 1, "a"));
    }
    let one_vnf = encode(&fold_of(&one)).unwrap().len();
    let fifty = encode(&fold).unwrap();
    let start = fifty.iter().position(|b| *b == b'\n').unwrap() + 1;
    let body: serde_json::Value = serde_json::from_slice(&fifty[start..]).unwrap();
    assert_eq!(body["vnfds"].as_object().unwrap().len(), 1, "{body}");
    assert_eq!(body["vnfs"].as_object().unwrap().len(), 50);
    assert!(
        fifty.len() < 50 * (one_vnf - spec_bytes) + spec_bytes * 2,
        "{} bytes for 50 VNFs, {one_vnf} for one whose spec is {spec_bytes}",
        fifty.len()
    );
    assert_eq!(decode(&fifty, 50).unwrap(), fold);
    // In memory too, folded or decoded: one spec, held by every VNF.
    let spec = |fold: &Fold, id: &str| fold.vnfs[id].vnfd.clone().unwrap();
    let decoded = decode(&fifty, 50).unwrap();
    for id in &ids {
        assert!(Arc::ptr_eq(&spec(&fold, id), &spec(&fold, "vnf-0")), "{id}");
        assert!(
            Arc::ptr_eq(&spec(&decoded, id), &spec(&decoded, "vnf-0")),
            "{id}"
        );
    }
}

#[test]
fn a_snapshot_that_is_not_one_of_this_schema_or_beyond_the_log_is_refused() {
    let fold = fold_of(&history());
    let good = encode(&fold).unwrap();
    let header_end = good.iter().position(|b| *b == b'\n').unwrap();
    let body = &good[header_end..];
    let with_header = |header: &str| [header.as_bytes(), body].concat();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"\x00garbage{".to_vec(),
            "not a monitor snapshot: no header line",
        ),
        (
            with_header("vnfm-projector-snapshot 1 9"),
            "is not `vnfm-monitor-snapshot <schema> <sequence>`",
        ),
        (
            with_header("vnfm-monitor-snapshot one 9"),
            "not a monitor snapshot: the schema \"one\"",
        ),
        (
            with_header("vnfm-monitor-snapshot 1 9"),
            "a snapshot of schema 1, this build reads 2",
        ),
        (
            with_header("vnfm-monitor-snapshot 2 10"),
            "covers stream sequence 10, beyond the log's last 9",
        ),
        (
            good[..good.len() - 10].to_vec(),
            "the snapshot's body does not decode",
        ),
    ];
    for (bytes, reason) in cases {
        let error = decode(&bytes, 9).expect_err(reason).to_string();
        assert!(error.contains(reason), "{error:?} does not say {reason:?}");
    }
    // A spec changed after it was stored under its digest.
    let text = String::from_utf8(good.clone()).unwrap();
    let tampered = text.replacen("\"VDU1\"", "\"VDU9\"", 1);
    assert_ne!(tampered, text);
    let error = decode(tampered.as_bytes(), 9).unwrap_err();
    assert!(matches!(error, SnapshotError::VnfdDigest { .. }), "{error}");
    assert_eq!(decode(&good, 9).unwrap(), fold);
}

#[test]
fn the_first_difference_is_named() {
    let history = history();
    let whole = fold_of(&history);
    let mut other = whole.clone();
    other.vnfs.remove("vnf-2");
    assert_eq!(
        compare(&whole, &other).difference,
        Some(Difference::Missing {
            vnf_id: "vnf-2".into()
        })
    );
    let mut other = whole.clone();
    let attached = VnfEvent::MonitorAttached {
        action_id: "a2-other".into(),
    };
    fold_into(&mut other, whole.sequence, &[("vnf-2", vec![attached])]);
    assert_eq!(
        compare(&whole, &other).difference.unwrap().to_string(),
        "VNF vnf-2 differs"
    );
    let mut other = fold_of(&history[..8]);
    other.sequence = whole.sequence;
    fold_into(
        &mut other,
        whole.sequence,
        &[("vnf-5", created("vnf-5", 5, 1, "a5"))],
    );
    assert_eq!(
        compare(&whole, &other).difference,
        Some(Difference::Missing {
            vnf_id: "vnf-4".into()
        })
    );
    let behind = fold_of(&history[..8]);
    assert_eq!(
        compare(&whole, &behind).difference.unwrap().to_string(),
        "covers sequence 8, expected 9"
    );
}

#[test]
fn only_the_writer_partitions_holder_snapshots_after_the_interval_and_enough_messages() {
    let schedule = Schedule {
        interval: Duration::from_secs(60),
        messages_min: 100,
    };
    let minute = Duration::from_secs(60);
    assert!(due(true, minute, &schedule, 100));
    assert!(!due(false, minute, &schedule, 100), "not the writer");
    assert!(
        !due(true, Duration::from_millis(59_999), &schedule, 100),
        "too soon"
    );
    assert!(!due(true, minute * 10, &schedule, 99), "too little folded");
}
