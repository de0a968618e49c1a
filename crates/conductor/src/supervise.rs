//! When a failed conductor consumer is opened again, and when the conductor gives up on it: a
//! pure policy over the times at which the consumer failed.
//!
//! It never sleeps, never reads the clock and never touches NATS: the caller passes the time of
//! each failure in and carries out the verdict.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Pause before the first re-open; it doubles with each failure in the window (so the longest
/// is 16 s): a consumer fails when NATS or its stream is briefly away (a restart, a leader
/// election), which lasts seconds.
pub const RESTART_DELAY_FIRST_MS: u64 = 1_000;
/// Failures within [`FAILURE_WINDOW_S`] after which the conductor stops: with the doubling
/// pauses, six failures in a row take half a minute of trying, beyond a restart or an election,
/// so what is left is a fault a person must see (a missing stream, a revoked permission).
pub const FAILURES_PER_WINDOW_MAX: usize = 6;
/// The window over which failures count: ten minutes, so that a consumer that fails once an
/// hour is re-opened for ever but one that cannot stay open is not.
pub const FAILURE_WINDOW_S: u64 = 600;

/// What to do about a consumer that just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Open it again after this pause.
    RetryAfter(Duration),
    /// Stop the conductor: this many failures within the window.
    GiveUp { failures: usize },
}

/// The recent failures of one consumer.
#[derive(Debug, Default)]
pub struct Restarts {
    /// When the consumer failed within the window, oldest first.
    failures: VecDeque<Instant>,
}

impl Restarts {
    /// Records a failure at `now` and answers what to do.
    pub fn on_failure(&mut self, now: Instant) -> Verdict {
        let window = Duration::from_secs(FAILURE_WINDOW_S);
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|first| now.duration_since(*first) >= window)
        {
            self.failures.pop_front();
        }
        let failures = self.failures.len();
        if failures >= FAILURES_PER_WINDOW_MAX {
            return Verdict::GiveUp { failures };
        }
        // At most FAILURES_PER_WINDOW_MAX - 2 doublings: the shift cannot overflow.
        let doublings = u32::try_from(failures - 1).unwrap_or(u32::MAX);
        Verdict::RetryAfter(Duration::from_millis(
            RESTART_DELAY_FIRST_MS.saturating_mul(1 << doublings),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn failures_in_a_row_back_off_doubling_then_give_up() {
        // Given a consumer that fails again as soon as it is re-opened,
        let mut restarts = Restarts::default();
        let mut now = Instant::now();
        let mut delays = Vec::new();
        loop {
            // when each failure is reported after the pause the previous verdict asked for,
            match restarts.on_failure(now) {
                Verdict::RetryAfter(delay) => {
                    delays.push(delay.as_secs());
                    now += delay;
                }
                // then it is re-opened with doubling pauses, and given up at the limit.
                Verdict::GiveUp { failures } => {
                    assert_eq!(failures, FAILURES_PER_WINDOW_MAX);
                    break;
                }
            }
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16]);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let mut restarts = Restarts::default();
        let start = Instant::now();
        for n in 0..FAILURES_PER_WINDOW_MAX - 1 {
            let at = start + secs(n as u64);
            assert!(matches!(restarts.on_failure(at), Verdict::RetryAfter(_)));
        }
        // One more failure, after the first ones left the window: still re-opened, with the
        // pause of the failures still in it.
        let later = start + secs(FAILURE_WINDOW_S + 2);
        assert_eq!(restarts.on_failure(later), Verdict::RetryAfter(secs(4)));
    }
}
