//! One target's probing state, without I/O: when its next attempt is due, and what an
//! attempt's outcome means (a VDU going down after `retry` failures, coming back up).
//!
//! Attempts (but the first, see [`FIRST_ATTEMPT_GRID`]) are scheduled on boundaries of the
//! policy's interval counted from the Unix epoch, each shifted by the [`Phase`] the monitor
//! gives the target's partition, so every target with the same interval and phase is probed
//! in the same round: a round in which most targets fail at once is visible as such (see
//! [`round_is_suspect`]).

use std::sync::Arc;

use events::monitor::{ProbeOutcome, Target};
use time::{Duration, OffsetDateTime};

/// What an attempt's outcome changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `retry` attempts in a row failed: the VDU is down, and its policy action is due.
    Failed { attempts: u32, reason: String },
    /// The VDU answers again after being down.
    Recovered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Within the monitoring delay, or no attempt finished yet.
    Pending,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Pending => "pending",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// Where a target's attempts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// None started yet. The first is due on [`FIRST_ATTEMPT_GRID`] whatever the phase: at
    /// once when that is past, as it is for every target a restarted monitor or one taking
    /// over a partition holds, which it probes without waiting for their phases.
    NoneYet,
    /// One is running; no other starts until it ends.
    Running,
    Ended,
}

#[derive(Debug, Clone)]
pub struct Tracker {
    /// Shared with the attempts started on it: a start copies a pointer, not four ids.
    pub target: Arc<Target>,
    pub health: Health,
    /// When `health` last changed.
    pub since: Option<OffsetDateTime>,
    pub last_outcome: Option<ProbeOutcome>,
    pub last_probed_at: Option<OffsetDateTime>,
    /// The interval boundary of the next attempt, which starts at the boundary shifted by the
    /// target's phase ([`Tracker::due_at`]).
    pub next_due: OffsetDateTime,
    /// Whether an attempt started, and whether it is still running.
    attempt: Attempt,
    failures_in_row: u32,
    /// The failure of the current down episode was reported; reported once per episode.
    reported: bool,
    /// A conductor called this target's job stale (`bad_action`): not probed until the log
    /// gives the instance a new action id.
    pub dropped: bool,
}

/// The grid a target's first attempt is aligned to, when its interval is longer: the first
/// whole second after its monitoring delay, not the interval's next boundary. So a VDU just
/// booted is probed within a second of its delay (as Tacker's monitor starts right after
/// it), the first attempts of the VDUs booted within one second share a round, and a monitor
/// that restarts, or takes a partition over, probes at once every target it holds: their
/// first attempts are past. On the interval's boundary instead (30 s in `ops/bench-fleet`),
/// a restarted monitor's targets booted since the last boundary waited up to an interval.
const FIRST_ATTEMPT_GRID: Duration = Duration::SECOND;

fn interval(target: &Target) -> Duration {
    milliseconds(target.policy.interval_ms.max(1))
}

/// A VNFD's milliseconds as a duration (the parser bounds them far below `i64::MAX`).
fn milliseconds(ms: u64) -> Duration {
    Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Where in its interval a target's attempts start: `slot` of `slots` equal parts after the
/// interval's boundary. The monitor gives each partition it holds a phase, so that it does
/// not start all its targets on one instant (see `targets::phases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    pub slot: u32,
    pub slots: u32,
}

impl Phase {
    /// On the boundary itself.
    pub const ON_BOUNDARY: Phase = Phase { slot: 0, slots: 1 };

    /// How long after the boundary of `interval` the phase begins.
    fn offset(self, interval: Duration) -> Duration {
        interval * self.slot / self.slots.max(1)
    }
}

/// The first interval boundary at or after `at`.
fn align_up(at: OffsetDateTime, step: Duration) -> OffsetDateTime {
    let step_ns = step.whole_nanoseconds().max(1);
    let at_ns = at.unix_timestamp_nanos();
    let aligned = at_ns.div_euclid(step_ns) * step_ns;
    let aligned = if aligned < at_ns {
        aligned + step_ns
    } else {
        aligned
    };
    OffsetDateTime::from_unix_timestamp_nanos(aligned).unwrap_or(at)
}

impl Tracker {
    pub fn new(target: Target) -> Self {
        let delay = milliseconds(target.policy.monitoring_delay_ms);
        let grid = interval(&target).min(FIRST_ATTEMPT_GRID);
        let next_due = align_up(target.booted_at + delay, grid);
        Tracker {
            target: Arc::new(target),
            health: Health::Pending,
            since: None,
            last_outcome: None,
            last_probed_at: None,
            next_due,
            attempt: Attempt::NoneYet,
            failures_in_row: 0,
            reported: false,
            dropped: false,
        }
    }

    /// Takes a newer derivation of the same instance (its policy or action id may change).
    pub fn update(&mut self, target: Target) {
        if target.action_id != self.target.action_id {
            self.dropped = false;
        }
        self.target = Arc::new(target);
    }

    /// Down, with the failure of this episode reported (by this monitor, or by the one whose
    /// episode it continues).
    pub fn failure_reported(&self) -> bool {
        self.reported && self.health == Health::Down
    }

    /// When the next attempt is due in `phase`: the round it belongs to.
    pub fn due_at(&self, phase: Phase) -> OffsetDateTime {
        if self.attempt == Attempt::NoneYet {
            self.next_due
        } else {
            self.next_due + phase.offset(interval(&self.target))
        }
    }

    pub fn is_due(&self, now: OffsetDateTime, phase: Phase) -> bool {
        self.attempt != Attempt::Running && !self.dropped && now >= self.due_at(phase)
    }

    /// An attempt starts now in `phase`; the next is due in the same phase of the following
    /// interval (a phase that changed between the two moves the next attempt by less than
    /// an interval).
    pub fn start(&mut self, now: OffsetDateTime, phase: Phase) {
        let interval = interval(&self.target);
        // The first attempt was on its boundary: the next is a whole interval and the phase on.
        let offset = if self.attempt == Attempt::NoneYet {
            Duration::ZERO
        } else {
            phase.offset(interval)
        };
        self.attempt = Attempt::Running;
        self.next_due = align_up(now - offset + interval / 2, interval);
    }

    /// Records an attempt's outcome.
    pub fn record(&mut self, outcome: ProbeOutcome, now: OffsetDateTime) -> Option<Transition> {
        self.attempt = Attempt::Ended;
        self.last_probed_at = Some(now);
        let transition = match &outcome {
            ProbeOutcome::Up { .. } => {
                self.failures_in_row = 0;
                let was_down = self.health == Health::Down;
                self.reported = false;
                self.set_health(Health::Up, now);
                was_down.then_some(Transition::Recovered)
            }
            ProbeOutcome::Down { reason } => {
                self.failures_in_row += 1;
                if self.failures_in_row >= self.target.policy.retry.max(1) && !self.reported {
                    self.reported = true;
                    self.set_health(Health::Down, now);
                    Some(Transition::Failed {
                        attempts: self.failures_in_row,
                        reason: reason.clone(),
                    })
                } else {
                    None
                }
            }
        };
        self.last_outcome = Some(outcome);
        transition
    }

    /// Continues a down episode another monitor (or this one before a restart) reported, as
    /// the state bucket recorded it: the failure is not reported again while the instance
    /// stays down, and its recovery is.
    pub fn resume_down(&mut self, since: OffsetDateTime) {
        if self.health == Health::Down {
            return;
        }
        self.health = Health::Down;
        self.since = Some(since);
        self.failures_in_row = self.target.policy.retry.max(1);
        self.reported = true;
    }

    /// Forgets a failure that was not reported (its round was suspect), so that it is reported
    /// if the failure is still there once the monitor is trusted again.
    pub fn unreport(&mut self) {
        self.reported = false;
        self.failures_in_row = 0;
    }

    fn set_health(&mut self, health: Health, now: OffsetDateTime) {
        if self.health != health {
            self.health = health;
            self.since = Some(now);
        }
    }
}

/// Beyond Tacker: a round in which more than half of a monitor's targets, and at least
/// `failures_min` of them, are failing is blamed on the monitor itself (its host lost the network),
/// and fires no actions: one broken monitor host must not respawn the fleet.
pub fn round_is_suspect(failures: usize, targets: usize, failures_min: usize) -> bool {
    failures >= failures_min && failures * 2 > targets
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use events::fixtures;
    use events::spec::{MonitoringPolicy, PolicyAction};
    use time::macros::datetime;

    use super::*;

    fn target(retry: u32, delay_ms: u64) -> Target {
        Target {
            vnf_id: "v".into(),
            vdu: "VDU1".into(),
            instance_id: "i".into(),
            mgmt_ip: Ipv4Addr::new(198, 18, 0, 1),
            action_id: "a".into(),
            policy: MonitoringPolicy {
                monitoring_delay_ms: delay_ms,
                timeout_ms: 500,
                retry,
                ..fixtures::ping(PolicyAction::Respawn)
            },
            booted_at: datetime!(2026-11-25 10:00:00.300 UTC),
        }
    }

    fn down() -> ProbeOutcome {
        ProbeOutcome::Down {
            reason: "no reply".into(),
        }
    }

    const UP: ProbeOutcome = ProbeOutcome::Up { rtt_us: 80 };

    #[test]
    fn the_first_attempt_waits_for_the_monitoring_delay_then_the_boundary() {
        let tracker = Tracker::new(target(1, 45_000));
        assert_eq!(tracker.next_due, datetime!(2026-11-25 10:00:46 UTC));
        let on_boundary = Phase::ON_BOUNDARY;
        assert!(!tracker.is_due(datetime!(2026-11-25 10:00:45.300 UTC), on_boundary));
        assert!(tracker.is_due(datetime!(2026-11-25 10:00:46 UTC), on_boundary));
    }

    #[test]
    fn the_first_attempt_of_a_long_interval_is_on_the_next_whole_second() {
        let mut long = target(1, 2_000);
        long.policy.interval_ms = 30_000;
        let mut tracker = Tracker::new(long);
        assert_eq!(tracker.next_due, datetime!(2026-11-25 10:00:03 UTC));
        let quarter = Phase { slot: 1, slots: 4 };
        assert_eq!(tracker.due_at(quarter), tracker.next_due, "not phased");
        tracker.start(datetime!(2026-11-25 10:00:03 UTC), quarter);
        tracker.record(UP, datetime!(2026-11-25 10:00:03.001 UTC));
        assert_eq!(
            tracker.due_at(quarter),
            datetime!(2026-11-25 10:00:37.500 UTC),
            "then on the interval's boundaries, in the phase"
        );
    }

    #[test]
    fn attempts_follow_interval_boundaries_and_never_overlap() {
        let mut tracker = Tracker::new(target(1, 0));
        let t0 = tracker.next_due;
        tracker.start(t0, Phase::ON_BOUNDARY);
        assert!(
            !tracker.is_due(t0 + Duration::seconds(5), Phase::ON_BOUNDARY),
            "in flight"
        );
        tracker.record(UP, t0 + Duration::milliseconds(2));
        assert_eq!(tracker.next_due, t0 + Duration::seconds(1));
    }

    #[test]
    fn a_phase_shifts_every_attempt_by_its_share_of_the_interval() {
        let mut tracker = Tracker::new(target(1, 0));
        let first = tracker.next_due;
        let quarter = Phase { slot: 1, slots: 4 };
        assert!(tracker.is_due(first, quarter), "the first on its boundary");
        tracker.start(first, quarter);
        tracker.record(UP, first + Duration::milliseconds(1));
        let boundary = first + Duration::seconds(1);
        assert_eq!(
            tracker.due_at(quarter),
            boundary + Duration::milliseconds(250)
        );
        assert!(!tracker.is_due(boundary + Duration::milliseconds(249), quarter));
        let started = boundary + Duration::milliseconds(260);
        tracker.start(started, quarter);
        tracker.record(UP, started + Duration::milliseconds(1));
        assert_eq!(
            tracker.due_at(quarter),
            boundary + Duration::milliseconds(1_250)
        );
        // The phase changes: the next attempt moves by less than an interval.
        let last = Phase { slot: 3, slots: 4 };
        assert_eq!(
            tracker.due_at(last),
            boundary + Duration::milliseconds(1_750)
        );
        tracker.start(tracker.due_at(last), last);
        tracker.record(UP, boundary + Duration::milliseconds(1_751));
        assert_eq!(
            tracker.due_at(Phase::ON_BOUNDARY),
            boundary + Duration::seconds(2)
        );
    }

    #[test]
    fn a_failure_is_reported_after_retry_attempts_once_per_episode() {
        let mut tracker = Tracker::new(target(3, 0));
        let now = datetime!(2026-11-25 11:00 UTC);
        assert_eq!(tracker.record(down(), now), None);
        assert_eq!(tracker.record(down(), now), None);
        assert_eq!(
            tracker.record(down(), now),
            Some(Transition::Failed {
                attempts: 3,
                reason: "no reply".into()
            })
        );
        assert_eq!(tracker.health, Health::Down);
        assert_eq!(
            tracker.record(down(), now),
            None,
            "reported once per episode"
        );
        assert_eq!(tracker.record(UP, now), Some(Transition::Recovered));
        assert_eq!(tracker.health, Health::Up);
    }

    #[test]
    fn a_resumed_down_episode_is_not_reported_again_but_its_recovery_is() {
        let mut tracker = Tracker::new(target(2, 0));
        let reported_at = datetime!(2026-11-25 10:59 UTC);
        let now = datetime!(2026-11-25 11:00 UTC);
        tracker.resume_down(reported_at);
        assert_eq!(tracker.health, Health::Down);
        assert_eq!(tracker.since, Some(reported_at));
        for _ in 0..5 {
            assert_eq!(tracker.record(down(), now), None, "already reported");
        }
        assert_eq!(tracker.record(UP, now), Some(Transition::Recovered));
        tracker.record(down(), now);
        assert!(
            matches!(tracker.record(down(), now), Some(Transition::Failed { .. })),
            "a new episode is reported"
        );
    }

    #[test]
    fn a_success_resets_the_count_of_failures() {
        let mut tracker = Tracker::new(target(2, 0));
        let now = datetime!(2026-11-25 11:00 UTC);
        assert_eq!(tracker.record(down(), now), None);
        assert_eq!(tracker.record(UP, now), None);
        assert_eq!(tracker.record(down(), now), None);
    }

    #[test]
    fn an_unreported_failure_is_reported_again_later() {
        let mut tracker = Tracker::new(target(1, 0));
        let now = datetime!(2026-11-25 11:00 UTC);
        assert!(tracker.record(down(), now).is_some());
        tracker.unreport();
        assert!(tracker.record(down(), now).is_some());
    }

    #[test]
    fn a_dropped_job_resumes_under_a_new_action_id() {
        let mut tracker = Tracker::new(target(1, 0));
        tracker.dropped = true;
        let due = tracker.next_due;
        assert!(!tracker.is_due(due, Phase::ON_BOUNDARY));
        let mut renewed = target(1, 0);
        renewed.action_id = "b".into();
        tracker.update(renewed);
        assert!(tracker.is_due(due, Phase::ON_BOUNDARY));
    }

    #[test]
    fn suspicion_needs_a_majority_and_a_minimum() {
        assert!(round_is_suspect(600, 1_000, 10));
        assert!(
            !round_is_suspect(500, 1_000, 10),
            "half is not more than half"
        );
        assert!(
            !round_is_suspect(3, 4, 10),
            "a small deployment still heals"
        );
        assert!(round_is_suspect(10, 12, 10));
    }
}
