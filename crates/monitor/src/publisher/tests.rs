//! The publisher against a scripted sink on tokio's paused clock: what is retried, what is
//! given up, and what a stop leaves undelivered.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use events::envelope::{Actor, ActorKind};
use events::monitor::{Failure, TargetRef};
use events::nats_error::NatsError;
use events::spec::PolicyAction;

use super::*;
use crate::testing::{BOOTED_AT, ip};

/// A sink that refuses the first attempts to store some things, then stores; each attempt
/// takes `delay`.
#[derive(Debug, Default)]
struct ScriptedSink {
    /// Attempts refused before one is stored, by what is stored: the subject, or
    /// `state:<vnf_id>`. What is not listed is stored at once.
    refusals: HashMap<String, usize>,
    delay: Duration,
    /// Every attempt: subject (or `state:<vnf_id>`), whether it was stored, and when it ended.
    attempts: Mutex<Vec<(String, bool, Instant)>>,
    /// The attempts under way; the most there were at once.
    under_way: Mutex<(HashSet<String>, usize)>,
}

impl ScriptedSink {
    fn refusing(refusals: &[(&str, usize)]) -> Self {
        ScriptedSink {
            refusals: refusals
                .iter()
                .map(|(w, n)| ((*w).to_owned(), *n))
                .collect(),
            ..Default::default()
        }
    }

    async fn attempt(&self, what: String) -> Result<(), MonitorError> {
        {
            let mut under_way = self.under_way.lock().unwrap();
            assert!(under_way.0.insert(what.clone()), "{what} twice at once");
            under_way.1 = under_way.1.max(under_way.0.len());
        }
        tokio::time::sleep(self.delay).await;
        self.under_way.lock().unwrap().0.remove(&what);
        let mut attempts = self.attempts.lock().unwrap();
        let before = attempts.iter().filter(|(w, _, _)| *w == what).count();
        let stored = before >= self.refusals.get(&what).copied().unwrap_or(0);
        attempts.push((what, stored, Instant::now()));
        if stored {
            Ok(())
        } else {
            Err(NatsError::other("publishing", "no responders").into())
        }
    }

    fn stored(&self) -> Vec<String> {
        let attempts = self.attempts.lock().unwrap();
        attempts
            .iter()
            .filter(|(_, stored, _)| *stored)
            .map(|(what, _, _)| what.clone())
            .collect()
    }

    /// When the last attempt of `what` ended, if one did.
    fn ended(&self, what: &str) -> Option<Instant> {
        let attempts = self.attempts.lock().unwrap();
        attempts
            .iter()
            .rev()
            .find(|(w, _, _)| w == what)
            .map(|(_, _, at)| *at)
    }

    fn attempts(&self) -> usize {
        self.attempts.lock().unwrap().len()
    }
}

impl Sink for Arc<ScriptedSink> {
    async fn publish(
        &self,
        subject: &str,
        _payload: Bytes,
        _message_id: Option<&str>,
    ) -> Result<(), MonitorError> {
        self.attempt(subject.to_owned()).await
    }

    async fn put_state(&self, vnf_id: &str, _value: Bytes) -> Result<(), MonitorError> {
        self.attempt(format!("state:{vnf_id}")).await
    }

    async fn delete_state(&self, vnf_id: &str) -> Result<(), MonitorError> {
        self.attempt(format!("state:{vnf_id}")).await
    }
}

fn failure_report() -> Publish {
    let failure = Failure {
        failure_id: "failure-1".into(),
        monitor: Actor::new(ActorKind::Monitor, "m1"),
        target: TargetRef {
            vnf_id: "vnf-1".into(),
            vdu: "VDU1".into(),
            instance_id: "i".into(),
            mgmt_ip: ip(1, 0),
            action_id: "a1".into(),
        },
        action: PolicyAction::Respawn,
        attempts: 2,
        reason: "no reply".into(),
        detected_at: BOOTED_AT,
    };
    Publish::Message {
        subject: "failure".into(),
        message: Box::new(MonitorMessage::new(MonitorEvent::Failure(failure))),
        message_id: Some("failure-1".into()),
    }
}

fn round_results() -> Publish {
    let round = MonitorEvent::Round {
        monitor: Actor::new(ActorKind::Monitor, "m1"),
        at: BOOTED_AT,
        targets: 0,
        packed: events::monitor::rounds::PackedRound {
            roster: events::monitor::rounds::digest::<TargetRef>(&[]),
            count: 0,
            reasons: Vec::new(),
            outcomes: String::new(),
        },
    };
    Publish::Message {
        subject: "round".into(),
        message: Box::new(MonitorMessage::new(round)),
        message_id: None,
    }
}

fn roster() -> Publish {
    let roster = MonitorEvent::Roster {
        monitor: Actor::new(ActorKind::Monitor, "m1"),
        roster: events::monitor::rounds::Roster::new(Vec::new()),
    };
    Publish::Message {
        subject: "roster".into(),
        message: Box::new(MonitorMessage::new(roster)),
        message_id: None,
    }
}

fn state_write() -> Publish {
    Publish::State {
        vnf_id: "vnf-1".into(),
        states: Some(BTreeMap::new()),
    }
}

/// Runs a publisher over `jobs`, stopping it after `stop_after` with `drain`.
async fn publish(
    sink: &Arc<ScriptedSink>,
    jobs: Vec<Publish>,
    stop_after: Duration,
    drain: Duration,
) -> Undelivered {
    let (outbox, inbox) = mpsc::channel(jobs.len().max(1));
    for job in jobs {
        outbox.send(job).await.unwrap();
    }
    let (stop, stopped) = watch::channel(false);
    let publisher = tokio::spawn(run(sink.clone(), inbox, stopped, drain));
    tokio::time::sleep(stop_after).await;
    stop.send_replace(true);
    drop(outbox);
    publisher.await.unwrap()
}

#[test]
fn failure_reports_are_never_given_up_and_telemetry_is() {
    for attempt in 1..100 {
        assert!(retry_delay(Kind::FailureReport, attempt).is_some());
        assert!(retry_delay(Kind::StateChange, attempt).is_some());
        assert!(retry_delay(Kind::Roster, attempt).is_some());
    }
    assert_eq!(retry_delay(Kind::RoundResults, ATTEMPTS_MAX), None);
    assert_eq!(retry_delay(Kind::StateWrite, ATTEMPTS_MAX), None);
    assert_eq!(retry_delay(Kind::RoundResults, 1), Some(RETRY_DELAY_FIRST));
    assert_eq!(
        retry_delay(Kind::FailureReport, 3),
        Some(RETRY_DELAY_FIRST * 4)
    );
    assert_eq!(retry_delay(Kind::FailureReport, 50), Some(RETRY_DELAY_MAX));
}

#[tokio::test(start_paused = true)]
async fn a_failure_report_is_retried_until_stored() {
    let refusals = ATTEMPTS_MAX as usize * 3;
    let sink = Arc::new(ScriptedSink::refusing(&[("failure", refusals)]));
    let undelivered = publish(
        &sink,
        vec![failure_report(), round_results()],
        Duration::from_secs(600),
        Duration::from_secs(1),
    )
    .await;
    // The round, of another sequence, does not wait for the failure.
    assert_eq!(sink.stored(), ["round", "failure"]);
    assert_eq!(sink.attempts(), refusals + 2);
    assert!(undelivered.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_roster_is_retried_until_stored_and_its_round_follows() {
    let refusals = ATTEMPTS_MAX as usize * 3;
    let sink = Arc::new(ScriptedSink::refusing(&[("roster", refusals)]));
    let undelivered = publish(
        &sink,
        vec![roster(), round_results()],
        Duration::from_secs(600),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(sink.stored(), ["roster", "round"]);
    assert!(undelivered.is_empty());
}

#[tokio::test(start_paused = true)]
async fn round_results_are_given_up_after_their_attempts() {
    let sink = Arc::new(ScriptedSink::refusing(&[("round", ATTEMPTS_MAX as usize)]));
    let undelivered = publish(
        &sink,
        vec![round_results(), state_write()],
        Duration::from_secs(600),
        Duration::from_secs(1),
    )
    .await;
    // Given up, the round holds up nothing queued behind it.
    assert_eq!(sink.stored(), ["state:vnf-1"]);
    assert_eq!(
        undelivered,
        Undelivered {
            round_results: 1,
            ..Undelivered::default()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopped_publisher_gives_up_at_its_drain_deadline_and_counts_what_is_left() {
    let never = usize::MAX;
    let refusals = [("failure", never), ("round", never), ("state:vnf-1", never)];
    let sink = Arc::new(ScriptedSink::refusing(&refusals));
    let drain = Duration::from_secs(2);
    let began = Instant::now();
    let undelivered = publish(
        &sink,
        vec![failure_report(), round_results(), state_write()],
        Duration::from_secs(30),
        drain,
    )
    .await;
    let took = began.elapsed();
    assert!(took <= Duration::from_secs(30) + drain, "took {took:?}");
    assert_eq!(
        undelivered,
        Undelivered {
            round_results: 1,
            state_writes: 1,
            failure_reports: 1,
            state_changes: 0,
            rosters: 0,
        }
    );
}

/// A value whose encoding fails.
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refused"))
    }
}

#[tokio::test]
async fn states_that_do_not_encode_are_an_error_and_nothing_is_written() {
    let sink = Arc::new(ScriptedSink::default());
    let written = put_state(&sink, "vnf-1", &Unencodable).await;
    assert!(
        matches!(written, Err(MonitorError::Encode(_))),
        "{written:?}"
    );
    assert_eq!(sink.attempts(), 0, "no empty state written");
}

#[test]
fn only_a_job_that_can_never_be_stored_is_given_up_at_once() {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};
    let failed = |kind| MonitorError::from(NatsError::new("publishing", PublishError::new(kind)));
    assert!(is_permanent(&failed(PublishErrorKind::MaxPayloadExceeded)));
    assert!(is_permanent(&MonitorError::Encode(
        serde_json::to_vec(&Unencodable).unwrap_err()
    )));
    assert!(!is_permanent(&failed(PublishErrorKind::TimedOut)));
    assert!(!is_permanent(&failed(PublishErrorKind::StreamNotFound)));
    assert!(!is_permanent(
        &NatsError::other("publishing", "no responders").into()
    ));
}

#[tokio::test(start_paused = true)]
async fn a_failure_report_goes_before_the_telemetry_and_state_writes_queued_ahead_of_it() {
    let sink = Arc::new(ScriptedSink::default());
    let write = |vnf: &str| Publish::State {
        vnf_id: vnf.into(),
        states: Some(BTreeMap::new()),
    };
    let undelivered = publish(
        &sink,
        vec![
            write("a"),
            roster(),
            round_results(),
            write("b"),
            failure_report(),
            write("c"),
        ],
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await;
    // The report first; the rest in the order queued, but for the round, which waits for
    // its roster in the monitor's own sequence.
    assert_eq!(
        sink.stored(),
        [
            "failure", "state:a", "roster", "state:b", "state:c", "round"
        ]
    );
    assert!(undelivered.is_empty());
}

/// The report that VNF `vnf`'s VDU went down (`what` `down`) or its failure (`failure`),
/// stored under the subject `<what>:<vnf>`.
fn report(what: &str, vnf: usize) -> Publish {
    let Publish::Message { mut message, .. } = failure_report() else {
        unreachable!()
    };
    let MonitorEvent::Failure(failure) = &mut message.event else {
        unreachable!()
    };
    failure.target.vnf_id = format!("vnf-{vnf}");
    if what == "down" {
        message.event = MonitorEvent::VduDown {
            monitor: failure.monitor.clone(),
            target: failure.target.clone(),
            reason: failure.reason.clone(),
            since: failure.detected_at,
        };
    }
    Publish::Message {
        subject: format!("{what}:vnf-{vnf}"),
        message,
        message_id: None,
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_of_different_vnfs_are_stored_at_once_and_each_vnfs_in_order() {
    const VNFS: usize = 200;
    let sink = Arc::new(ScriptedSink {
        delay: Duration::from_millis(10),
        ..ScriptedSink::default()
    });
    // Each VNF's VDU goes down, its failure is reported, and its states are written; with
    // the monitor's round and its roster among them.
    let mut jobs = vec![roster(), round_results()];
    for vnf in 0..VNFS {
        jobs.push(report("down", vnf));
        jobs.push(report("failure", vnf));
        jobs.push(Publish::State {
            vnf_id: format!("vnf-{vnf}"),
            states: Some(BTreeMap::new()),
        });
    }
    let began = Instant::now();
    let undelivered = publish(
        &sink,
        jobs,
        Duration::from_secs(600),
        Duration::from_secs(1),
    )
    .await;
    assert!(undelivered.is_empty());
    let stored = sink.stored();
    assert_eq!(stored.len(), 2 + 3 * VNFS);
    let at = |what: &str| stored.iter().position(|s| s == what).unwrap();
    for vnf in 0..VNFS {
        assert!(at(&format!("down:vnf-{vnf}")) < at(&format!("failure:vnf-{vnf}")));
    }
    assert!(at("roster") < at("round"));
    let most = sink.under_way.lock().unwrap().1;
    assert_eq!(most, REPORTS_IN_FLIGHT_MAX + BULK_IN_FLIGHT_MAX);
    // 400 reports, 64 at a time: about 7 delays, where one at a time took 400.
    let last = (0..VNFS)
        .filter_map(|vnf| sink.ended(&format!("failure:vnf-{vnf}")))
        .max()
        .unwrap();
    let reported = last - began;
    assert!(reported <= Duration::from_millis(80), "{reported:?}");
    // The 202 other jobs, 4 at a time.
    let done = sink.ended("round").unwrap().max(last) - began;
    assert!(done <= Duration::from_millis(520), "{done:?}");
}
