//! The round judge over plain data: the same round, census, time and ids always give the
//! same verdict.

use events::envelope::{Actor, ActorKind};
use events::monitor::{ProbeOutcome, ProbeResult, Target, TargetRef};
use events::spec::PolicyAction;

use super::*;
use crate::testing::{BOOTED_AT, instance_id, ip, policy};

fn target(n: u8) -> Target {
    Target {
        vnf_id: "vnf-1".into(),
        vdu: "VDU1".into(),
        instance_id: instance_id("vnf-1", n),
        mgmt_ip: ip(1, n),
        action_id: "a1".into(),
        policy: policy(PolicyAction::Respawn),
        booted_at: BOOTED_AT,
    }
}

fn monitor() -> Actor {
    Actor::new(ActorKind::Monitor, "m1")
}

fn down(n: u8) -> (Arc<Target>, ProbeOutcome) {
    let outcome = ProbeOutcome::Down {
        reason: "no reply".into(),
    };
    (Arc::new(target(n)), outcome)
}

/// A round in which instance 0 failed for good.
fn failed_round() -> Round {
    let failed = Transition::Failed {
        attempts: 2,
        reason: "no reply".into(),
    };
    Round {
        running: 0,
        results: vec![down(0)],
        transitions: vec![(target(0).into(), failed, BOOTED_AT)],
        touched: IdSet::from_iter(["vnf-1".to_owned()]),
        changed: IdSet::from_iter(["vnf-1".to_owned()]),
    }
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("failure-{n}")
    }
}

const AT: OffsetDateTime = BOOTED_AT;

/// The verdict on `round` with `failing` of `targets` failing, a suspect minimum of five, at
/// [`AT`], with failure ids `failure-1`, `failure-2`, ...
fn judged(round: Round, targets: usize, failing: usize) -> Verdict {
    let census = Census { targets, failing };
    judge(
        round,
        census,
        5,
        &monitor(),
        AT,
        ids(),
        &mut RosterMemory::default(),
    )
}

#[test]
fn a_failure_is_reported_with_the_id_passed_in() {
    let verdict = judged(failed_round(), 10, 1);
    let subjects: Vec<&str> = verdict
        .messages
        .iter()
        .map(|m| m.subject.as_str())
        .collect();
    assert_eq!(
        subjects,
        [
            names::roster_subject(
                "m1",
                &rounds::Roster::new(vec![TargetRef::from(&target(0))]).digest
            ),
            names::round_subject("m1"),
            // The report before the state change: the conductors wait for it.
            names::failure_subject("vnf-1"),
            names::vdu_state_subject("vnf-1")
        ]
    );
    let report = &verdict.messages[2];
    assert_eq!(report.message_id.as_deref(), Some("failure-1"));
    let MonitorEvent::Failure(failure) = &report.event else {
        panic!("not a failure: {report:?}")
    };
    assert_eq!(failure.failure_id, "failure-1");
    assert_eq!(failure.action, PolicyAction::Respawn);
    assert_eq!(failure.target, TargetRef::from(&target(0)));
    assert!(verdict.unreport.is_empty());
    assert_eq!(
        verdict,
        judged(failed_round(), 10, 1),
        "the same round gives the same verdict"
    );
}

#[test]
fn a_round_with_a_failure_while_most_targets_fail_is_suspect() {
    let verdict = judged(failed_round(), 10, 6);
    assert!(
        !verdict.messages.iter().any(|m| matches!(
            m.event,
            MonitorEvent::Failure(_) | MonitorEvent::VduDown { .. }
        )),
        "no action fired"
    );
    assert_suspect(&verdict, 6, 10);
    assert_eq!(verdict.unreport, [instance_id("vnf-1", 0)]);
}

/// The verdict holds a suspected fault of `failed` of `targets`.
fn assert_suspect(verdict: &Verdict, failed: usize, targets: usize) {
    let suspect = MonitorEvent::SuspectedFault {
        monitor: monitor(),
        at: AT,
        failed,
        targets,
    };
    assert!(
        verdict.messages.iter().any(|m| m.event == suspect),
        "{suspect:?} in {:?}",
        verdict.messages
    );
}

#[test]
fn a_round_in_which_most_of_its_own_targets_fail_is_suspect() {
    // One phase of a monitor's twenty targets: six of its eight fail, the first to see the
    // host's network go; the census still counts the other phases' successes.
    let mut round = failed_round();
    round.results = (0..8)
        .map(|n| match n {
            0..6 => down(n),
            _ => (down(n).0, ProbeOutcome::Up { rtt_us: 40 }),
        })
        .collect();
    let verdict = judged(round, 20, 6);
    assert_eq!(
        verdict.unreport,
        [instance_id("vnf-1", 0)],
        "no action fired"
    );
    assert_suspect(&verdict, 6, 8);
    let mut few = failed_round();
    few.results = (0..4).map(down).collect();
    assert!(
        judged(few, 20, 4).unreport.is_empty(),
        "a round below the minimum still heals"
    );
}

#[test]
fn failing_targets_without_a_declared_failure_are_not_suspect() {
    let mut round = failed_round();
    round.transitions.clear();
    let verdict = judged(round, 10, 9);
    assert_eq!(
        verdict.messages.len(),
        2,
        "the round's results (and roster) only"
    );
}

#[test]
fn below_the_minimum_a_small_deployment_still_heals() {
    let verdict = judged(failed_round(), 3, 3);
    assert!(
        verdict
            .messages
            .iter()
            .any(|m| matches!(m.event, MonitorEvent::Failure(_)))
    );
}

/// [`failed_round`] still running `running` attempts, with `up` results besides its failure.
fn running_round(up: usize, running: usize) -> Round {
    let mut round = failed_round();
    round.results.extend(up_round(up, 40).results);
    round.running = running;
    round
}

fn is_report(message: &Outgoing) -> bool {
    matches!(message.event, MonitorEvent::Failure(_))
}

#[test]
fn a_failure_is_announced_before_its_round_ends_once_the_round_cannot_turn_suspect() {
    // One failure and eight answers in, two attempts still running: were both to fail, three
    // of eleven would have failed.
    let mut round = running_round(8, 2);
    let census = || Census {
        targets: 20,
        failing: 1,
    };
    let announced = early(&mut round, census, 3, &monitor(), ids());
    let subjects: Vec<&str> = announced.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            names::failure_subject("vnf-1"),
            names::vdu_state_subject("vnf-1")
        ]
    );
    assert_eq!(announced[0].message_id.as_deref(), Some("failure-1"));
    assert!(round.transitions.is_empty(), "announced once");
    // The whole round, once in, goes out without the failure again.
    round.running = 0;
    let verdict = judged(round, 20, 1);
    assert!(!verdict.messages.iter().any(is_report), "{verdict:?}");
    assert_eq!(
        verdict.messages.last().unwrap().subject,
        names::round_subject("m1")
    );
}

#[test]
fn a_round_that_may_still_turn_suspect_announces_nothing_before_it_ends() {
    // By its own results: one failure and two answers in, three still running.
    let mut round = running_round(2, 3);
    let untaken = || -> Census { panic!("the census is not needed") };
    assert!(early(&mut round, untaken, 3, &monitor(), ids()).is_empty());
    // By the census: most of the monitor's targets would fail were the two running to.
    let mut by_census = running_round(20, 2);
    let census = || Census {
        targets: 10,
        failing: 4,
    };
    assert!(early(&mut by_census, census, 3, &monitor(), ids()).is_empty());
    for kept in [round, by_census] {
        assert_eq!(
            kept.transitions.len(),
            1,
            "left for the whole round's verdict"
        );
        let mut whole = kept;
        whole.running = 0;
        assert!(judged(whole, 20, 1).messages.iter().any(is_report));
    }
}

/// A round of `count` targets, all up, with round-trip times `rtt_us + n`.
fn up_round(count: usize, rtt_us: u64) -> Round {
    let results = (0..count)
        .map(|n| {
            let target = Target {
                instance_id: format!("instance-{n:06}"),
                ..target(0)
            };
            // Whole steps, which a packed round keeps exactly.
            let outcome = ProbeOutcome::Up {
                rtt_us: (rtt_us + n as u64) * rounds::RTT_QUANTUM_US,
            };
            (Arc::new(target), outcome)
        })
        .collect();
    Round {
        results,
        ..Round::default()
    }
}

/// The round messages' results, read back with the rosters published before them.
fn expanded(messages: &[Outgoing], published: &mut Vec<rounds::Roster>) -> Vec<ProbeResult> {
    let mut results = Vec::new();
    for message in messages {
        match &message.event {
            MonitorEvent::Roster { roster, .. } => {
                assert_eq!(message.subject, names::roster_subject("m1", &roster.digest));
                published.push(roster.clone());
            }
            MonitorEvent::Round { packed, at, .. } => {
                assert_eq!(message.subject, names::round_subject("m1"));
                let roster = published
                    .iter()
                    .find(|r| r.digest == packed.roster)
                    .expect("the round's roster was published before it");
                results.extend(rounds::unpack(packed, roster, *at).unwrap());
            }
            other => panic!("not telemetry: {other:?}"),
        }
    }
    results
}

#[test]
fn a_large_round_is_split_into_messages_each_after_its_roster() {
    let count = rounds::ROUND_TARGETS_PER_MESSAGE_MAX + 1;
    let round = up_round(count, 30);
    let sent = round.results.clone();
    let verdict = judged(round, count, 0);
    let kinds: Vec<&str> = verdict
        .messages
        .iter()
        .map(|m| match &m.event {
            MonitorEvent::Roster { .. } => "roster",
            MonitorEvent::Round { .. } => "round",
            other => panic!("not telemetry: {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["roster", "round", "roster", "round"]);
    let read = expanded(&verdict.messages, &mut Vec::new());
    let mut at_round_time: Vec<ProbeResult> = sent
        .into_iter()
        .map(|(target, outcome)| ProbeResult {
            target: TargetRef::from(&*target),
            outcome,
            at: AT,
        })
        .collect();
    at_round_time.sort_by(|a, b| a.target.instance_id.cmp(&b.target.instance_id));
    assert_eq!(read, at_round_time);
}

#[test]
fn at_steady_state_a_roster_goes_out_once_and_again_every_republish_rounds() {
    let mut rosters = RosterMemory::default();
    let mut published = Vec::new();
    let mut judge_one = |rtt_us| {
        let verdict = judge(
            up_round(3, rtt_us),
            Census {
                targets: 3,
                failing: 0,
            },
            5,
            &monitor(),
            AT,
            ids(),
            &mut rosters,
        );
        let results = expanded(&verdict.messages, &mut published);
        assert_eq!(results.len(), 3);
        assert_eq!(
            results[2].outcome,
            ProbeOutcome::Up {
                rtt_us: (rtt_us + 2) * rounds::RTT_QUANTUM_US
            }
        );
        verdict.messages.len()
    };
    assert_eq!(judge_one(10), 2, "the first round brings its roster");
    for n in 1..rounds::ROSTER_REPUBLISH_ROUNDS {
        assert_eq!(judge_one(10 + n), 1, "round {n}: the round alone");
    }
    assert_eq!(judge_one(7), 2, "the roster again");
    assert_eq!(published.len(), 2);
    assert_eq!(published[0], published[1]);
}
