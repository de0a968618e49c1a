//! The monitor's clock: where the engine reads the time of day, so that tests can drive it from
//! tokio's paused clock. It never sleeps, schedules or waits.

use time::OffsetDateTime;

/// The time of day as the monitor's engine sees it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock: UTC wall time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
