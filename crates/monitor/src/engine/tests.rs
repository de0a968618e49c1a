//! The engine on tokio's paused clock with a scripted probe and no NATS: each test runs
//! minutes of monitoring in milliseconds.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use events::monitor::{Failure, MonitorEvent, TargetRef};
use events::vnf::{RespawnLimit, Vnf, VnfCommand, VnfEvent};

use super::*;
use crate::publisher::Publish;
use crate::share::PARTITIONS;
use crate::snapshot::{Fold, Schedule, WRITER_PARTITION};
use crate::targets::Seed;
use crate::testing::{
    BOOTED_AT, INTERVAL_MS, OUTSIDE, RETRY, Script, ScriptedProbe, TokioClock, created, created_at,
    instance_id, ip, probe_cidrs,
};

/// Seeds from a map: the state bucket as a test sets it up.
#[derive(Debug, Default)]
struct MapSeeds(HashMap<String, Seed>);

impl Seeds for MapSeeds {
    async fn read(&self, vnf_ids: Vec<String>) -> Vec<Seed> {
        vnf_ids
            .into_iter()
            .map(|vnf_id| {
                self.0.get(&vnf_id).cloned().unwrap_or(Seed {
                    vnf_id,
                    down: Vec::new(),
                })
            })
            .collect()
    }
}

/// A running engine that holds every partition.
struct Running {
    inputs: mpsc::Sender<Input>,
    jobs: mpsc::Receiver<Publish>,
    probe: Arc<ScriptedProbe>,
    owned: watch::Sender<Arc<BTreeSet<u32>>>,
}

const INTERVAL: Duration = Duration::from_millis(INTERVAL_MS);

fn start(seeds: MapSeeds, suspect_failures_min: usize) -> Running {
    // No snapshot is due within these tests' minutes: the default interval is longer.
    let (running, _) = start_with(
        seeds,
        suspect_failures_min,
        Schedule::default(),
        Fold::default(),
    );
    running
}

/// A running engine that snapshots on `schedule`, started from `fold`; answers it and the
/// receiver of the folds it hands over.
fn start_with(
    seeds: MapSeeds,
    suspect_failures_min: usize,
    schedule: Schedule,
    fold: Fold,
) -> (Running, mpsc::Receiver<Fold>) {
    let probe = Arc::new(ScriptedProbe::default());
    let (inputs, engine_inputs) = mpsc::channel(64);
    let (outbox, jobs) = mpsc::channel(4_096);
    let (owned_sender, owned) = watch::channel(Arc::new((0..PARTITIONS).collect()));
    let engine = Engine::new(
        probe.clone(),
        Arc::new(TokioClock::new()),
        Arc::new(seeds),
        EngineConfig {
            instance: "m1".into(),
            suspect_failures_min,
            probe_cidrs: probe_cidrs(),
            snapshots: schedule,
        },
    )
    .restoring(fold);
    let (snapshots, folds) = mpsc::channel(1);
    tokio::spawn(engine.run(Wiring {
        inputs: engine_inputs,
        owned,
        outbox,
        snapshots,
    }));
    let running = Running {
        inputs,
        jobs,
        probe,
        owned: owned_sender,
    };
    (running, folds)
}

impl Running {
    async fn feed(&self, vnf_id: &str, events: Vec<VnfEvent>) {
        self.feed_at(1, vnf_id, events).await;
    }

    async fn feed_at(&self, sequence: u64, vnf_id: &str, events: Vec<VnfEvent>) {
        let input = Input::Lifecycle {
            sequence,
            vnf_id: vnf_id.into(),
            events,
        };
        self.inputs.send(input).await.unwrap();
    }

    /// Asserts that over the next rounds `stopped` gets no attempt while `going_on` gets one
    /// each round; answers `stopped`'s attempts.
    async fn assert_stopped_while_on(&self, stopped: Ipv4Addr, going_on: Ipv4Addr) -> usize {
        let rounds = 4;
        let (before, other) = (self.probe.count(stopped), self.probe.count(going_on));
        tokio::time::sleep(INTERVAL * rounds).await;
        assert_eq!(
            self.probe.count(stopped),
            before,
            "{stopped} no longer probed"
        );
        assert!(
            self.probe.count(going_on) >= other + rounds as usize - 1,
            "{going_on} still probed"
        );
        before
    }

    /// Every monitor event published so far (state writes left out).
    fn events(&mut self) -> Vec<MonitorEvent> {
        let mut events = Vec::new();
        while let Ok(job) = self.jobs.try_recv() {
            if let Publish::Message { message, .. } = job {
                events.push(message.event);
            }
        }
        events
    }
}

fn failures(events: &[MonitorEvent]) -> Vec<Failure> {
    events
        .iter()
        .filter_map(|e| match e {
            MonitorEvent::Failure(failure) => Some(failure.clone()),
            _ => None,
        })
        .collect()
}

fn count(events: &[MonitorEvent], is: impl Fn(&MonitorEvent) -> bool) -> usize {
    events.iter().filter(|e| is(e)).count()
}

#[tokio::test(start_paused = true)]
async fn a_silent_vdu_does_not_slow_the_others_next_probes() {
    let running = start(MapSeeds::default(), 10);
    running.probe.set(ip(1, 0), Script::Silent(INTERVAL * 3));
    running.feed("vnf-1", created("vnf-1", 1, 2, "a1")).await;
    running.feed("vnf-2", created("vnf-2", 2, 1, "a2")).await;
    let began = Instant::now();
    tokio::time::sleep(INTERVAL * 10).await;
    for answering in [ip(1, 1), ip(2, 0)] {
        let starts = running.probe.starts(answering);
        assert!(starts.len() >= 9, "{answering}: {} attempts", starts.len());
        // The first attempt waits a tick for the VNF's recorded states to be read.
        assert!(starts[0] - began <= TICK * 2);
        for pair in starts[1..].windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap.abs_diff(INTERVAL) <= TICK,
                "{answering} waited {gap:?} between attempts"
            );
        }
    }
    let silent = running.probe.starts(ip(1, 0));
    assert!(
        silent.windows(2).all(|p| p[1] - p[0] >= INTERVAL * 3),
        "a silent VDU's attempts never overlap"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_vnf_is_no_longer_probed_and_its_states_are_deleted() {
    let mut running = start(MapSeeds::default(), 10);
    running.feed("vnf-1", created("vnf-1", 1, 1, "a1")).await;
    running.feed("vnf-2", created("vnf-2", 2, 1, "a2")).await;
    tokio::time::sleep(INTERVAL * 3).await;
    assert!(running.probe.count(ip(1, 0)) >= 2);
    running
        .feed(
            "vnf-1",
            vec![VnfEvent::DeleteRequested {
                operation_id: "delete".into(),
            }],
        )
        .await;
    tokio::time::sleep(TICK).await;
    running.assert_stopped_while_on(ip(1, 0), ip(2, 0)).await;
    let mut state_deleted = false;
    while let Ok(job) = running.jobs.try_recv() {
        if let Publish::State { vnf_id, states } = job {
            state_deleted |= vnf_id == "vnf-1" && states.is_none();
        }
    }
    assert!(state_deleted, "the deleted VNF's states are deleted");
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_reported_once_after_retry_attempts() {
    let mut running = start(MapSeeds::default(), 10);
    running.probe.set(ip(1, 0), Script::Silent(INTERVAL / 2));
    running.feed("vnf-1", created("vnf-1", 1, 3, "a1")).await;
    tokio::time::sleep(INTERVAL * (RETRY + 4)).await;
    let events = running.events();
    let reported = failures(&events);
    assert_eq!(reported.len(), 1, "one report per episode: {events:?}");
    assert_eq!(reported[0].target.instance_id, instance_id("vnf-1", 0));
    assert_eq!(reported[0].attempts, RETRY);
    assert_eq!(
        count(&events, |e| matches!(e, MonitorEvent::VduDown { .. })),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_reported_before_its_rounds_slowest_attempt_ends() {
    let mut running = start(MapSeeds::default(), 10);
    let (failing, slow) = (ip(1, 0), ip(1, 1));
    running.probe.set(failing, Script::Silent(INTERVAL / 4));
    running.probe.set(slow, Script::UpAfter(INTERVAL * 3 / 4));
    running.feed("vnf-1", created("vnf-1", 1, 4, "a1")).await;
    let reported_at = loop {
        tokio::time::sleep(TICK / 10).await;
        if !failures(&running.events()).is_empty() {
            break Instant::now();
        }
        assert!(
            running.probe.count(failing) <= RETRY as usize + 1,
            "no failure reported after {} attempts",
            running.probe.count(failing)
        );
    };
    // The round that declared it: the failing VDU's last attempt, and the slow one's of the
    // same instant.
    let declared_in = *running.probe.starts(failing).last().unwrap();
    assert!(running.probe.starts(slow).contains(&declared_in));
    assert!(
        reported_at - declared_in < INTERVAL / 2,
        "reported {:?} after its round began: not before the slow attempt's {:?} were up",
        reported_at - declared_in,
        INTERVAL * 3 / 4
    );
}

#[tokio::test(start_paused = true)]
async fn a_round_where_most_targets_fail_is_suspect_and_reports_nothing() {
    let mut running = start(MapSeeds::default(), 2);
    running.probe.set(ip(1, 0), Script::Silent(INTERVAL / 2));
    running.probe.set(ip(1, 1), Script::Silent(INTERVAL / 2));
    running.feed("vnf-1", created("vnf-1", 1, 3, "a1")).await;
    tokio::time::sleep(INTERVAL * (RETRY + 4)).await;
    let events = running.events();
    assert!(failures(&events).is_empty(), "no action fired: {events:?}");
    assert!(
        count(&events, |e| matches!(
            e,
            MonitorEvent::SuspectedFault {
                failed: 2,
                targets: 3,
                ..
            }
        )) >= 1
    );
    // Once the monitor is trusted again (one of them answers), the other's failure is reported.
    running.probe.set(ip(1, 0), Script::Up);
    tokio::time::sleep(INTERVAL * (RETRY + 2)).await;
    let reported = failures(&running.events());
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].target.instance_id, instance_id("vnf-1", 1));
}

#[tokio::test(start_paused = true)]
async fn a_monitor_taking_over_continues_a_reported_episode() {
    let down_since = BOOTED_AT - time::Duration::minutes(1);
    let seed = Seed {
        vnf_id: "vnf-1".into(),
        down: vec![(instance_id("vnf-1", 0), down_since)],
    };
    let mut running = start(MapSeeds(HashMap::from([("vnf-1".into(), seed)])), 10);
    running.probe.set(ip(1, 0), Script::Silent(INTERVAL / 2));
    running.feed("vnf-1", created("vnf-1", 1, 2, "a1")).await;
    tokio::time::sleep(INTERVAL * (RETRY + 4)).await;
    let events = running.events();
    assert!(running.probe.count(ip(1, 0)) >= RETRY as usize + 2);
    assert!(
        failures(&events).is_empty(),
        "not reported again: {events:?}"
    );
    assert_eq!(
        count(&events, |e| matches!(e, MonitorEvent::VduDown { .. })),
        0
    );
    running.probe.set(ip(1, 0), Script::Up);
    tokio::time::sleep(INTERVAL * 2).await;
    let events = running.events();
    assert_eq!(
        count(
            &events,
            |e| matches!(e, MonitorEvent::VduUp { target, .. } if target.mgmt_ip == ip(1, 0))
        ),
        1,
        "its recovery is reported: {events:?}"
    );
}

/// The conductor's answer to a report, as the VNF aggregate decides it with a limit of no heal.
async fn limit_reached(vnf_events: Vec<VnfEvent>, failure: Failure) -> Vec<VnfEvent> {
    let mut vnf = Vnf::default();
    for event in vnf_events {
        vnf.apply(event);
    }
    let command = VnfCommand::HandleFailure {
        failure: failure.into(),
        operation_id: "heal".into(),
        at: BOOTED_AT,
        limit: RespawnLimit {
            heals_max: 0,
            window: time::Duration::minutes(10),
        },
    };
    let sink = EventSink::default();
    vnf.handle(command, &(), &sink).await.unwrap();
    sink.collect().await
}

#[tokio::test(start_paused = true)]
async fn at_the_heal_limit_the_vnf_is_no_longer_probed_and_the_others_are() {
    let mut running = start(MapSeeds::default(), 10);
    running.probe.set(ip(1, 0), Script::Silent(INTERVAL / 2));
    running.feed("vnf-1", created("vnf-1", 1, 1, "a1")).await;
    running.feed("vnf-2", created("vnf-2", 2, 1, "a2")).await;
    tokio::time::sleep(INTERVAL * (RETRY + 2)).await;
    let failure = failures(&running.events()).pop().expect("a failure report");
    let answer = limit_reached(created("vnf-1", 1, 1, "a1"), failure).await;
    assert!(!answer.is_empty(), "the aggregate recorded the limit");
    running.feed("vnf-1", answer).await;
    tokio::time::sleep(TICK).await;
    running.assert_stopped_while_on(ip(1, 0), ip(2, 0)).await;
    assert!(
        failures(&running.events()).is_empty(),
        "no report after the limit"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_called_stale_is_dropped_until_a_new_action_id() {
    let mut running = start(MapSeeds::default(), 10);
    running.feed("vnf-1", created("vnf-1", 1, 2, "a1")).await;
    tokio::time::sleep(INTERVAL * 2).await;
    // Answering now, so no failure of it was reported: a bad_action about it is forged.
    running
        .inputs
        .send(Input::BadAction {
            target: TargetRef {
                vnf_id: "vnf-1".into(),
                vdu: "VDU1".into(),
                instance_id: instance_id("vnf-1", 0),
                mgmt_ip: ip(1, 0),
                action_id: "a1".into(),
            },
            reason: "forged".into(),
        })
        .await
        .unwrap();
    let before = running.probe.count(ip(1, 0));
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(
        running.probe.count(ip(1, 0)) >= before + 2,
        "a bad_action about a VDU that answers switches nothing off"
    );
    // Down and reported: now a bad_action is an answer to this monitor's report.
    running.probe.set(ip(1, 0), Script::Silent(INTERVAL / 2));
    tokio::time::sleep(INTERVAL * (RETRY + 2)).await;
    assert_eq!(failures(&running.events()).len(), 1, "reported");
    let target = |action_id: &str| TargetRef {
        vnf_id: "vnf-1".into(),
        vdu: "VDU1".into(),
        instance_id: instance_id("vnf-1", 0),
        mgmt_ip: ip(1, 0),
        action_id: action_id.into(),
    };
    let stale = |action_id: &str| Input::BadAction {
        target: target(action_id),
        reason: "stale".into(),
    };
    running.inputs.send(stale("older")).await.unwrap();
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(
        running.probe.count(ip(1, 0)) >= 3,
        "an answer about another action id changes nothing"
    );
    running.inputs.send(stale("a1")).await.unwrap();
    tokio::time::sleep(TICK).await;
    let dropped = running.assert_stopped_while_on(ip(1, 0), ip(1, 1)).await;
    running
        .feed(
            "vnf-1",
            vec![VnfEvent::MonitorAttached {
                action_id: "a2".into(),
            }],
        )
        .await;
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(running.probe.count(ip(1, 0)) > dropped, "resumed");
}

#[tokio::test(start_paused = true)]
async fn a_target_outside_the_probe_ranges_is_reported_once_and_never_probed() {
    let mut running = start(MapSeeds::default(), 10);
    running
        .feed("vnf-1", created_at("vnf-1", &[ip(1, 0), OUTSIDE], "a1"))
        .await;
    tokio::time::sleep(INTERVAL * 5).await;
    assert_eq!(running.probe.count(OUTSIDE), 0, "no probe leaves for it");
    assert!(
        running.probe.count(ip(1, 0)) >= 4,
        "the one inside is probed"
    );
    let mut refusals = Vec::new();
    while let Ok(job) = running.jobs.try_recv() {
        if let Publish::Message {
            subject,
            message,
            message_id,
        } = job
            && let MonitorEvent::TargetRefused {
                target, allowed, ..
            } = message.event
        {
            refusals.push((subject, message_id, target, allowed));
        }
    }
    assert_eq!(refusals.len(), 1, "reported once: {refusals:?}");
    let (subject, message_id, target, allowed) = refusals.remove(0);
    assert_eq!(subject, "vnfm.monitor.refused.vnf-1");
    assert_eq!(target.mgmt_ip, OUTSIDE);
    assert_eq!(target.instance_id, instance_id("vnf-1", 1));
    assert_eq!(
        message_id,
        Some(events::monitor::target_refused_id(&target))
    );
    assert_eq!(allowed, probe_cidrs());
}

#[tokio::test(start_paused = true)]
async fn the_writer_partitions_holder_hands_its_fold_over_after_the_interval_and_enough_messages() {
    let schedule = Schedule {
        interval: Duration::from_secs(60),
        messages_min: 2,
    };
    let (running, mut folds) = start_with(MapSeeds::default(), 10, schedule, Fold::default());
    running
        .feed_at(3, "vnf-1", created("vnf-1", 1, 1, "a1"))
        .await;
    tokio::time::sleep(schedule.interval).await;
    assert!(folds.try_recv().is_err(), "one message is not enough");
    running
        .feed_at(5, "vnf-2", created("vnf-2", 2, 1, "a2"))
        .await;
    tokio::time::sleep(TICK * 2).await;
    let fold = folds.try_recv().expect("a fold handed over");
    assert_eq!(fold.sequence, 5);
    assert_eq!(fold.vnfs.len(), 2);
    running
        .feed_at(6, "vnf-3", created("vnf-3", 3, 1, "a3"))
        .await;
    running
        .feed_at(
            7,
            "vnf-3",
            vec![VnfEvent::MonitorAttached {
                action_id: "a3-new".into(),
            }],
        )
        .await;
    tokio::time::sleep(schedule.interval / 2).await;
    assert!(
        folds.try_recv().is_err(),
        "within the interval of the last one"
    );
    // Without the writer partition, nothing is handed over however long it waits.
    running.owned.send_replace(Arc::new(
        (0..PARTITIONS).filter(|p| *p != WRITER_PARTITION).collect(),
    ));
    tokio::time::sleep(schedule.interval * 3).await;
    assert!(folds.try_recv().is_err(), "not the writer");
    running
        .owned
        .send_replace(Arc::new((0..PARTITIONS).collect()));
    tokio::time::sleep(TICK * 2).await;
    assert_eq!(folds.try_recv().expect("the writer again").sequence, 7);
}

#[tokio::test(start_paused = true)]
async fn an_engine_restored_from_a_fold_probes_its_vnfs_at_once_and_folds_what_follows() {
    let mut fold = Fold::default();
    fold.apply(4, "vnf-1", created("vnf-1", 1, 1, "a1"));
    fold.apply(9, "vnf-2", created("vnf-2", 2, 1, "a2"));
    let (running, _folds) = start_with(MapSeeds::default(), 10, Schedule::default(), fold);
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(running.probe.count(ip(1, 0)) >= 1);
    assert!(running.probe.count(ip(2, 0)) >= 1);
    running
        .feed_at(
            10,
            "vnf-1",
            vec![VnfEvent::DeleteRequested {
                operation_id: "delete".into(),
            }],
        )
        .await;
    tokio::time::sleep(TICK).await;
    running.assert_stopped_while_on(ip(1, 0), ip(2, 0)).await;
}

/// Allocations per attempt at steady state (a fleet's thousand targets up, after the first
/// rounds have read their seeds and published their rosters and states), whatever is freed
/// again: an attempt's due, task, result and share of its round's judging and packing, the
/// scripted probe's bookkeeping included. Counted on the one thread a paused-clock test runs
/// on. The bound keeps the per-attempt path from growing unnoticed; the figure is printed
/// (`cargo test -p monitor --lib an_attempt -- --nocapture`).
#[tokio::test(start_paused = true)]
async fn an_attempt_makes_a_bounded_number_of_allocations() {
    const VNFS: u8 = 200;
    const INSTANCES: u8 = 5;
    const ALLOCATIONS_PER_ATTEMPT_MAX: f64 = 4.0;
    let mut running = start(MapSeeds::default(), 10);
    for vnf in 1..=VNFS {
        let vnf_id = format!("vnf-{vnf}");
        running
            .feed(&vnf_id, created(&vnf_id, vnf, INSTANCES, "a"))
            .await;
    }
    tokio::time::sleep(INTERVAL * 10).await;
    running.events();
    let attempts_before = running.probe.attempts.lock().unwrap().len();
    let allocations_before = testkit::heap::allocations();
    for _ in 0..20 {
        tokio::time::sleep(INTERVAL).await;
        running.events();
    }
    let allocations = testkit::heap::allocations() - allocations_before;
    let attempts = running.probe.attempts.lock().unwrap().len() - attempts_before;
    let targets = usize::from(VNFS) * usize::from(INSTANCES);
    assert!(attempts >= targets * 19, "{attempts} attempts");
    let per_attempt = allocations as f64 / attempts as f64;
    println!("{allocations} allocations in {attempts} attempts: {per_attempt:.1} per attempt");
    assert!(
        per_attempt <= ALLOCATIONS_PER_ATTEMPT_MAX,
        "{per_attempt:.1} allocations per attempt"
    );
}
