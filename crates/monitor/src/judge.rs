//! The round judge, without I/O: what a round of attempts means once all of them are in, as
//! plain data (the messages to publish and the failures to forget), and what of it can be
//! told before then ([`early`]).
//!
//! It never publishes, reads a clock or makes an id: the time and the failure ids are passed
//! in, so the same round always yields the same verdict.

use std::sync::Arc;

use time::OffsetDateTime;

use events::envelope::Actor;
use events::monitor::cidr::ProbeCidrs;
use events::monitor::rounds::{self, RosterMemory};
use events::monitor::{self as schema, Failure, MonitorEvent, ProbeOutcome, Target, TargetRef};
use events::names;

use crate::IdSet;
use crate::targets::{Census, Targets};
use crate::tracker::{self, Transition};

/// One finished attempt, on its way back to the engine.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub round: i128,
    pub target: Arc<Target>,
    pub outcome: ProbeOutcome,
    pub at: OffsetDateTime,
}

/// Attempts due on one instant: an interval boundary, shifted by a phase. Each is recorded in
/// its target's tracker as soon as it ends, so a slow attempt (a silent VDU runs to its
/// timeout) holds up no other target's next one. What the round changed is announced once all its attempts are in, so
/// that it can be judged whole (see [`tracker::round_is_suspect`]), and in the order rounds
/// started, so that a target's transitions keep their order; or earlier, once nothing the
/// round can still find would make it suspect (see [`early`]).
#[derive(Debug, Default)]
pub struct Round {
    pub running: usize,
    /// Each finished attempt's target and outcome: packed from the targets the monitor holds
    /// (see [`rounds::pack`]), so that a result copies no id.
    pub results: Vec<(Arc<Target>, ProbeOutcome)>,
    pub transitions: Vec<(Arc<Target>, Transition, OffsetDateTime)>,
    /// VNFs with a result in this round, and those of them whose health changed.
    pub touched: IdSet<String>,
    pub changed: IdSet<String>,
}

impl Round {
    /// Records a finished attempt in its target's tracker (if the target is still known) and
    /// in this round.
    pub fn record(&mut self, targets: &mut Targets, attempt: Attempt) {
        let Attempt {
            target,
            outcome,
            at,
            ..
        } = attempt;
        if let Some(tracker) = targets.trackers.get_mut(&target.instance_id) {
            let health = tracker.health;
            if let Some(transition) = tracker.record(outcome.clone(), at) {
                self.transitions
                    .push((tracker.target.clone(), transition, at));
            }
            if tracker.health != health {
                self.changed.insert(target.vnf_id.clone());
            }
            self.touched.insert(target.vnf_id.clone());
        }
        self.results.push((target, outcome));
    }

    /// Whether nothing this round can still find makes it suspect: were every attempt still
    /// running to fail, neither its own results nor the monitor's targets (`census`, as they
    /// stand) would be mostly failing.
    fn cannot_turn_suspect(&self, census: impl FnOnce() -> Census, failures_min: usize) -> bool {
        let failing = self.results.iter().filter(|(_, o)| !o.is_up()).count();
        let suspect_if_all_fail = |failing: usize, of: usize| {
            tracker::round_is_suspect(failing + self.running, of, failures_min)
        };
        // Its own results first: counting them costs less than the census, and a round that
        // may still be suspect by them needs no census.
        if suspect_if_all_fail(failing, self.results.len() + self.running) {
            return false;
        }
        let census = census();
        !suspect_if_all_fail(census.failing, census.targets)
    }
}

/// The transitions of a round still running, announced at once when nothing the round can
/// still find would make it suspect ([`Round::cannot_turn_suspect`]); none otherwise. A failure
/// detected early in a round is then reported at once, not once the round's last attempt is
/// in: a phase's attempts end over about half a second at 20,000 VDUs on 4 monitors
/// (`ops/bench-fleet`), and that wait was the storm's slowest claims. The round's results,
/// its census and whatever it changes later are judged when it is whole ([`judge`]). Only
/// the oldest round still running may be passed in, so that a target's transitions keep their
/// order. `census` counts the monitor's targets now; it is only taken when the round's own
/// results leave the question open.
pub fn early(
    round: &mut Round,
    census: impl FnOnce() -> Census,
    failures_min: usize,
    monitor: &Actor,
    failure_id: impl FnMut() -> String,
) -> Vec<Outgoing> {
    if round.transitions.is_empty() || !round.cannot_turn_suspect(census, failures_min) {
        return Vec::new();
    }
    let mut verdict = Verdict::default();
    announce(
        std::mem::take(&mut round.transitions),
        false,
        monitor,
        failure_id,
        &mut verdict,
    );
    verdict.messages
}

/// One monitor message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub subject: String,
    pub event: MonitorEvent,
    /// Set for failure reports (the failure id) and refused targets, so a retried publish is
    /// stored once.
    pub message_id: Option<String>,
}

/// The report of a target outside the ranges the monitor may probe (`allowed`), made once
/// when the target comes due (see [`crate::targets::Due::refused`]): an error line and a
/// `TargetRefused` message whose id derives from the VNF, the instance and the address, so
/// that every monitor's report of it is stored once.
pub fn refusal(
    target: &Target,
    allowed: &ProbeCidrs,
    monitor: &Actor,
    at: OffsetDateTime,
) -> Outgoing {
    tracing::error!(
        vnf_id = %target.vnf_id,
        instance_id = %target.instance_id,
        mgmt_ip = %target.mgmt_ip,
        allowed = %allowed,
        "Management IP outside the ranges this monitor may probe (--probe-cidrs): never probed."
    );
    let target = TargetRef::from(target);
    Outgoing {
        subject: names::refused_target_subject(&target.vnf_id),
        message_id: Some(schema::target_refused_id(&target)),
        event: MonitorEvent::TargetRefused {
            monitor: monitor.clone(),
            target,
            allowed: allowed.clone(),
            at,
        },
    }
}

/// What a round means.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// In order: the round's results, a suspected fault, then each transition.
    pub messages: Vec<Outgoing>,
    /// Instances whose failure was not reported because the round was suspect.
    pub unreport: Vec<String>,
    pub touched: IdSet<String>,
    pub changed: IdSet<String>,
}

/// Judges a round whose attempts are all in. `census` counts the monitor's targets after it;
/// `at` stamps the round and its suspected fault; `failure_id` names each failure reported;
/// `rosters` is what the monitor published of its rosters, which says whether a round
/// message's roster goes out before it (see [`rounds`]).
///
/// The round's results go out packed, one round message per roster of at most
/// [`rounds::ROUND_TARGETS_PER_MESSAGE_MAX`] targets, each preceded by its roster when that is
/// new or due again.
///
/// A round is judged by every target whose latest attempt failed, not only by those whose
/// `retry` ran out in it: targets killed together cross their thresholds in neighbouring
/// rounds. It is also judged by its own results: a round is one phase of the monitor's
/// targets (see `targets::phases`), a sample of them all, so when the monitor's host loses the
/// network, the first phase to see it fails whole while the census still counts the other
/// phases' successes. Suspicion only matters when the round would fire an action.
pub fn judge(
    round: Round,
    census: Census,
    suspect_failures_min: usize,
    monitor: &Actor,
    at: OffsetDateTime,
    failure_id: impl FnMut() -> String,
    rosters: &mut RosterMemory,
) -> Verdict {
    let Round {
        results,
        transitions,
        touched,
        changed,
        ..
    } = round;
    let declared = transitions
        .iter()
        .any(|(_, t, _)| matches!(t, Transition::Failed { .. }));
    let in_round = (
        results.iter().filter(|(_, o)| !o.is_up()).count(),
        results.len(),
    );
    // What made the round suspect: the census's failing and targets, or the round's own.
    let suspect = [(census.failing, census.targets), in_round]
        .into_iter()
        .find(|&(failing, targets)| {
            declared && tracker::round_is_suspect(failing, targets, suspect_failures_min)
        });
    let mut verdict = Verdict {
        touched,
        changed,
        ..Verdict::default()
    };
    let round_subject = names::round_subject(&monitor.id);
    match rounds::pack(results) {
        Ok(packed) => {
            for chunk in packed {
                // Its roster copied only when it is to be published.
                if rosters.due(&chunk.round.roster) {
                    verdict.messages.push(Outgoing {
                        subject: names::roster_subject(&monitor.id, &chunk.round.roster),
                        event: MonitorEvent::Roster {
                            monitor: monitor.clone(),
                            roster: chunk.roster(),
                        },
                        message_id: None,
                    });
                }
                verdict.messages.push(Outgoing {
                    subject: round_subject.clone(),
                    event: MonitorEvent::Round {
                        monitor: monitor.clone(),
                        at,
                        targets: census.targets,
                        packed: chunk.round,
                    },
                    message_id: None,
                });
            }
        }
        // Only a target too large for any roster or an impossible round-trip time gets here:
        // the round's telemetry is lost, its verdict stands.
        Err(error) => {
            tracing::error!(%error, "Round results do not pack; this round's telemetry is not stored.");
        }
    }
    if let Some((failed, targets)) = suspect {
        tracing::error!(
            failed,
            targets,
            "Most targets failed at once: suspecting this monitor, firing no actions."
        );
        verdict.messages.push(Outgoing {
            subject: names::suspect_subject(&monitor.id),
            event: MonitorEvent::SuspectedFault {
                monitor: monitor.clone(),
                at,
                failed,
                targets,
            },
            message_id: None,
        });
    }
    announce(
        transitions,
        suspect.is_some(),
        monitor,
        failure_id,
        &mut verdict,
    );
    verdict
}

/// The messages of `transitions`, in order, onto `verdict`: a failure's report then its state
/// change, a recovery's state change. In a `suspect` round a failure is not reported; its
/// instance goes onto `unreport` instead.
fn announce(
    transitions: Vec<(Arc<Target>, Transition, OffsetDateTime)>,
    suspect: bool,
    monitor: &Actor,
    mut failure_id: impl FnMut() -> String,
    verdict: &mut Verdict,
) {
    for (target, transition, since) in transitions {
        let reference = TargetRef::from(&*target);
        let state_subject = names::vdu_state_subject(&target.vnf_id);
        match transition {
            Transition::Failed { .. } if suspect => {
                verdict.unreport.push(target.instance_id.clone());
            }
            Transition::Failed { attempts, reason } => {
                tracing::warn!(vnf_id = %target.vnf_id, instance_id = %target.instance_id, mgmt_ip = %target.mgmt_ip, reason, "VDU failed.");
                // The report first: a VNF's messages are stored one after the other, and the
                // conductors wait for the report, nobody for the state change.
                let failure = Failure {
                    failure_id: failure_id(),
                    monitor: monitor.clone(),
                    target: reference.clone(),
                    action: target.policy.failure_action,
                    attempts,
                    reason: reason.clone(),
                    detected_at: since,
                };
                verdict.messages.push(Outgoing {
                    subject: names::failure_subject(&target.vnf_id),
                    message_id: Some(failure.failure_id.clone()),
                    event: MonitorEvent::Failure(failure),
                });
                verdict.messages.push(Outgoing {
                    subject: state_subject,
                    event: MonitorEvent::VduDown {
                        monitor: monitor.clone(),
                        target: reference,
                        reason,
                        since,
                    },
                    message_id: None,
                });
            }
            Transition::Recovered => {
                tracing::info!(vnf_id = %target.vnf_id, instance_id = %target.instance_id, "VDU answers again.");
                verdict.messages.push(Outgoing {
                    subject: state_subject,
                    event: MonitorEvent::VduUp {
                        monitor: monitor.clone(),
                        target: reference,
                        since,
                    },
                    message_id: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
