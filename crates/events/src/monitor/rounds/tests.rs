//! Packing and unpacking rounds: what goes in comes out, bad input is a named error, and the
//! steady state fits issue 13's budget.

use std::net::Ipv4Addr;

use time::macros::datetime;

use super::*;
use crate::envelope::{Actor, ActorKind};
use crate::monitor::{MonitorEvent, MonitorMessage};
use crate::names;

const AT: OffsetDateTime = datetime!(2026-12-02 01:00 UTC);

/// A UUID-shaped id, as the log's ids are (36 characters), distinct per `kind` and `n`.
fn id(kind: u8, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

fn target(n: usize) -> TargetRef {
    let host = u32::try_from(n).unwrap();
    TargetRef {
        vnf_id: id(1, n),
        vdu: "VDU1".into(),
        instance_id: id(2, n),
        mgmt_ip: Ipv4Addr::from(0x7f80_0000 | host),
        action_id: id(3, n),
    }
}

fn up(n: usize, rtt_us: u64) -> ProbeResult {
    ProbeResult {
        target: target(n),
        outcome: ProbeOutcome::Up { rtt_us },
        at: AT,
    }
}

fn down(n: usize, reason: &str) -> ProbeResult {
    ProbeResult {
        target: target(n),
        outcome: ProbeOutcome::Down {
            reason: reason.into(),
        },
        at: AT,
    }
}

fn sorted(mut results: Vec<ProbeResult>) -> Vec<ProbeResult> {
    results.sort_by(|a, b| a.target.instance_id.cmp(&b.target.instance_id));
    results
}

fn one(results: Vec<ProbeResult>) -> (Roster, PackedRound) {
    let mut packed = pack_results(results).unwrap();
    assert_eq!(packed.len(), 1);
    packed.remove(0)
}

#[test]
fn a_round_trips_through_its_roster_in_canonical_order() {
    let results = vec![
        up(3, 40),
        down(1, "timeout"),
        up(2, 1_000_000),
        down(0, "unreachable"),
        down(4, "timeout"),
        up(5, 0),
    ];
    let (roster, packed) = one(results.clone());
    assert_eq!(packed.roster, roster.digest);
    assert_eq!(packed.count, 6);
    assert_eq!(packed.reasons, ["unreachable", "timeout"]);
    assert_eq!(unpack(&packed, &roster, AT).unwrap(), sorted(results));
}

#[test]
fn the_same_targets_make_the_same_roster_whatever_their_order_or_outcome() {
    let (a, _) = one(vec![up(1, 10), up(2, 20)]);
    let (b, _) = one(vec![down(2, "x"), up(1, 99)]);
    assert_eq!(a, b);
    let (c, _) = one(vec![up(1, 10), up(3, 20)]);
    assert_ne!(a.digest, c.digest);
    assert_eq!(a.digest.len(), 2 * ROSTER_DIGEST_BYTES);
    assert_eq!(Roster::new(vec![target(2), target(1)]), a);
}

#[test]
fn a_changed_field_of_one_target_changes_the_digest() {
    let base = vec![target(1), target(2)];
    let mut moved = base.clone();
    moved[1].mgmt_ip = Ipv4Addr::new(127, 128, 9, 9);
    let mut renamed = base.clone();
    renamed[0].action_id.push('x');
    for other in [moved, renamed] {
        assert_ne!(digest(&base), digest(&other));
    }
}

#[test]
fn the_wrong_roster_or_a_tampered_one_is_refused_by_name() {
    let (roster, packed) = one(vec![up(1, 10), up(2, 20)]);
    let (other, _) = one(vec![up(1, 10), up(3, 20)]);
    assert_eq!(
        unpack(&packed, &other, AT),
        Err(RoundError::RosterMismatch {
            round: packed.roster.clone(),
            roster: other.digest.clone(),
        })
    );
    let mut tampered = roster.clone();
    tampered.targets[0].mgmt_ip = Ipv4Addr::new(10, 0, 0, 1);
    assert_eq!(roster.check(), Ok(()));
    assert!(matches!(
        tampered.check(),
        Err(RoundError::RosterCorrupt { .. })
    ));
    let mut miscounted = packed.clone();
    miscounted.count = 3;
    assert_eq!(
        unpack(&miscounted, &roster, AT),
        Err(RoundError::CountMismatch {
            count: 3,
            targets: 2
        })
    );
}

#[test]
fn truncated_or_garbled_outcomes_are_errors_never_panics() {
    let (roster, packed) = one(vec![up(1, 300), up(2, 5_000), down(3, "timeout")]);
    let bytes = BASE64.decode(&packed.outcomes).unwrap();
    let with = |outcomes: &[u8]| PackedRound {
        outcomes: BASE64.encode(outcomes),
        ..packed.clone()
    };
    // Cut anywhere: never a panic, always a named error.
    for cut in 0..bytes.len() {
        let error = unpack(&with(&bytes[..cut]), &roster, AT).unwrap_err();
        assert!(
            matches!(error, RoundError::Truncated { .. }),
            "{cut}: {error}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        unpack(&with(&longer), &roster, AT),
        Err(RoundError::TrailingBytes { extra: 1 })
    );
    let overlong = [0xff; 11];
    assert_eq!(
        unpack(&with(&overlong), &roster, AT),
        Err(RoundError::BadVarint {
            index: 0,
            offset: 0
        })
    );
    // Down, reason 7 of 1.
    let mut unknown = bytes[..bytes.len() - 1].to_vec();
    unknown.push(0x0f);
    assert_eq!(
        unpack(&with(&unknown), &roster, AT),
        Err(RoundError::UnknownReason {
            index: 2,
            reason: 7,
            reasons: 1
        })
    );
    let garbage = PackedRound {
        outcomes: "not base64!".into(),
        ..packed.clone()
    };
    assert!(matches!(
        unpack(&garbage, &roster, AT),
        Err(RoundError::NotBase64(_))
    ));
    // Every byte value in every position: decoded or refused, never a panic.
    for position in 0..bytes.len() {
        for value in 0..=u8::MAX {
            let mut noisy = bytes.clone();
            noisy[position] = value;
            let _ = unpack(&with(&noisy), &roster, AT);
        }
    }
}

#[test]
fn a_large_round_is_split_into_rosters_within_their_bounds() {
    let count = 2 * ROUND_TARGETS_PER_MESSAGE_MAX + 1;
    let results: Vec<ProbeResult> = (0..count).map(|n| up(n, 48)).collect();
    let packed = pack_results(results.clone()).unwrap();
    let sizes: Vec<usize> = packed.iter().map(|(r, _)| r.targets.len()).collect();
    assert_eq!(
        sizes,
        [
            ROUND_TARGETS_PER_MESSAGE_MAX,
            ROUND_TARGETS_PER_MESSAGE_MAX,
            1
        ]
    );
    let mut back = Vec::new();
    for (roster, round) in &packed {
        back.extend(unpack(round, roster, AT).unwrap());
    }
    assert_eq!(back, sorted(results));

    // Long names split by bytes before the count.
    let long: Vec<ProbeResult> = (0..ROUND_TARGETS_PER_MESSAGE_MAX)
        .map(|n| {
            let mut result = up(n, 50);
            result.target.vdu = "V".repeat(1_000);
            result
        })
        .collect();
    let packed = pack_results(long).unwrap();
    assert!(packed.len() > 1, "{} rosters", packed.len());
    for (roster, _) in &packed {
        let message = MonitorMessage::new(MonitorEvent::Roster {
            monitor: Actor::new(ActorKind::Monitor, "m"),
            roster: roster.clone(),
        });
        let bytes = serde_json::to_vec(&message).unwrap().len();
        assert!(bytes <= ROSTER_BYTES_MAX, "{bytes}");
    }
    let mut huge = up(0, 1);
    huge.target.vdu = "V".repeat(ROSTER_BYTES_MAX);
    assert!(matches!(
        pack_results(vec![huge]),
        Err(RoundError::TargetTooLarge { .. })
    ));
}

#[test]
fn a_round_trip_time_is_kept_to_the_nearest_step() {
    let results = vec![up(0, 41), up(1, 42), up(2, 1), up(3, u64::MAX)];
    let (roster, packed) = one(results);
    let back: Vec<u64> = unpack(&packed, &roster, AT)
        .unwrap()
        .into_iter()
        .map(|r| match r.outcome {
            ProbeOutcome::Up { rtt_us } => rtt_us,
            ProbeOutcome::Down { .. } => panic!("down"),
        })
        .collect();
    assert_eq!(
        back,
        [40, 44, 0, u64::MAX / RTT_QUANTUM_US * RTT_QUANTUM_US]
    );
}

#[test]
fn a_roster_is_published_when_new_and_again_after_republish_rounds_named_it() {
    let mut memory = RosterMemory::default();
    assert!(memory.due("a"));
    assert!(memory.due("b"), "a new roster");
    for n in 1..ROSTER_REPUBLISH_ROUNDS {
        assert!(!memory.due("a"), "named {n} times since");
        if n % 3 == 0 {
            assert!(!memory.due("b"), "b is counted apart");
        }
    }
    assert!(memory.due("a"), "republished");
    assert!(!memory.due("a"));
    assert!(!memory.due("b"), "b was named a third as often");
}

#[test]
fn roster_memory_is_bounded_and_forgets_the_oldest_publication() {
    let mut memory = RosterMemory::default();
    for n in 0..=ROSTERS_REMEMBERED_MAX {
        assert!(memory.due(&n.to_string()));
    }
    assert_eq!(memory.published.len(), ROSTERS_REMEMBERED_MAX);
    assert!(memory.due("0"), "the oldest was forgotten");
    assert!(!memory.due(&ROSTERS_REMEMBERED_MAX.to_string()));
}

/// What the file store keeps per message beside its subject and payload (nats-server's
/// record header, 22 bytes, and its checksum, 8).
const STORED_MESSAGE_OVERHEAD_BYTES: usize = 30;

/// Stored bytes of `event` published by monitor `m` on `subject`.
fn stored(subject: &str, event: MonitorEvent) -> usize {
    let payload = serde_json::to_vec(&MonitorMessage::new(event)).unwrap();
    STORED_MESSAGE_OVERHEAD_BYTES + subject.len() + payload.len()
}

/// Issue 13's measurement: 1,000 targets, all up, loopback round-trip times as a loaded
/// machine measures them (60 to 249 µs, as `ops/bench-fleet` saw at 5,000 VDUs),
/// one round message per round and the roster again every [`ROSTER_REPUBLISH_ROUNDS`]
/// rounds. Prints the figure (`cargo test -p events --lib steady_state -- --nocapture`).
#[test]
fn steady_state_costs_at_most_four_bytes_per_result() {
    const TARGETS: usize = 1_000;
    let monitor = Actor::new(ActorKind::Monitor, "monitor-host-1.example.net-4242");
    let results: Vec<ProbeResult> = (0..TARGETS)
        .map(|n| up(n, 60 + (n as u64 * 37) % 190))
        .collect();
    let (roster, packed) = one(results);
    let round_bytes = stored(
        &names::round_subject(&monitor.id),
        MonitorEvent::Round {
            monitor: monitor.clone(),
            at: AT,
            targets: TARGETS,
            packed,
        },
    );
    let roster_bytes = stored(
        &names::roster_subject(&monitor.id, &roster.digest),
        MonitorEvent::Roster {
            monitor: monitor.clone(),
            roster,
        },
    );
    let per_result = (round_bytes as f64 + roster_bytes as f64 / ROSTER_REPUBLISH_ROUNDS as f64)
        / TARGETS as f64;
    println!(
        "steady state, {TARGETS} targets up: round message {round_bytes} bytes, roster \
         {roster_bytes} bytes every {ROSTER_REPUBLISH_ROUNDS} rounds: {per_result:.2} bytes \
         per probe result"
    );
    assert!(per_result <= 4.0, "{per_result:.2} bytes per probe result");
}

#[test]
fn a_target_is_measured_as_long_as_its_json() {
    let mut quoted = target(7);
    quoted.vdu = "V\"D\\U\n\u{1}é".into();
    for target in [target(0), quoted] {
        let json = serde_json::to_vec(&target).unwrap();
        assert_eq!(
            target_json_bytes(target.listing()),
            json.len(),
            "{target:?}"
        );
    }
}
