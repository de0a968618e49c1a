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

fn down(n: u8) -> ProbeResult {
    ProbeResult {
        target: TargetRef::from(&target(n)),
        outcome: ProbeOutcome::Down {
            reason: "no reply".into(),
        },
        at: BOOTED_AT,
    }
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
        transitions: vec![(target(0), failed, BOOTED_AT)],
        touched: ["vnf-1".to_owned()].into(),
        changed: ["vnf-1".to_owned()].into(),
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
    judge(round, census, 5, &monitor(), AT, ids())
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
            names::round_subject("m1"),
            names::vdu_state_subject("vnf-1"),
            names::failure_subject("vnf-1")
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
    assert!(verdict.messages.iter().any(|m| m.event
        == MonitorEvent::SuspectedFault {
            monitor: monitor(),
            at: AT,
            failed: 6,
            targets: 10
        }));
    assert_eq!(verdict.unreport, [instance_id("vnf-1", 0)]);
}

#[test]
fn failing_targets_without_a_declared_failure_are_not_suspect() {
    let mut round = failed_round();
    round.transitions.clear();
    let verdict = judged(round, 10, 9);
    assert_eq!(verdict.messages.len(), 1, "the round's results only");
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

#[test]
fn a_large_round_is_split_into_messages() {
    let mut round = failed_round();
    round.transitions.clear();
    round.results = vec![down(0); ROUND_RESULTS_PER_MESSAGE_MAX + 1];
    let verdict = judged(round, 1, 1);
    let sizes: Vec<usize> = verdict
        .messages
        .iter()
        .map(|m| match &m.event {
            MonitorEvent::Round { results, .. } => results.len(),
            other => panic!("not a round: {other:?}"),
        })
        .collect();
    assert_eq!(sizes, [ROUND_RESULTS_PER_MESSAGE_MAX, 1]);
}
