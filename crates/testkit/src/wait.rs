//! Waiting in tests for something another task or process does: one polling loop ([`poll`])
//! for every test in the workspace, so that each wait has a deadline and a failure that says
//! what never happened and what was seen last. It never acts on what it waits for: a probe
//! only looks.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Pause between two polls: short next to what tests wait for (a projector row, a probe
/// round, a process exit), long enough not to load a 2-core machine that runs the roles too.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `probe` every [`POLL_INTERVAL`] until it answers `Ok`, and returns that value.
///
/// `probe` answers `Err(last)` while the awaited state has not come, `last` describing what it
/// saw instead.
///
/// # Panics
///
/// After `patience` without an `Ok`, naming `what` and the last `Err`.
pub async fn eventually<T, E, F, Fut>(what: impl Display, patience: Duration, probe: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    eventually_every(what, patience, POLL_INTERVAL, probe).await
}

/// [`eventually`] with a pause of `interval` between two polls, for a probe too costly to
/// run every [`POLL_INTERVAL`] (one that reads a whole stream, say).
///
/// # Panics
///
/// After `patience` without an `Ok`, naming `what` and the last `Err`.
pub async fn eventually_every<T, E, F, Fut>(
    what: impl Display,
    patience: Duration,
    interval: Duration,
    probe: F,
) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match poll(patience, interval, probe).await {
        Ok(value) => value,
        Err(last) => {
            panic!("timed out after {patience:?} waiting until {what}; last seen: {last}")
        }
    }
}

/// Polls `probe` every `interval` until it answers `Ok`; after `patience` without one,
/// answers its last `Err` instead. For a wait whose timeout is a finding to report (the
/// fault tests' checker) rather than a failed test.
pub async fn poll<T, E, F, Fut>(
    patience: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Runs the future `make` gives to its end on a thread and runtime of its own, and waits for
/// it: for a `Drop` guard's cleanup, which cannot wait on the test's runtime (the test may be
/// unwinding inside it). A panic in the cleanup is printed, not raised.
pub fn block_on_own_thread<F, Fut>(make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let done = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the cleanup")
            .block_on(make());
    });
    if done.join().is_err() {
        eprintln!("a cleanup panicked");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_first_ok_value() {
        let polls = AtomicU32::new(0);
        let value = eventually("the third poll", Duration::from_secs(1), || async {
            let n = polls.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 3 {
                Ok(n)
            } else {
                Err(format!("poll {n}"))
            }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn polls_at_the_interval_it_is_given() {
        let polls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let interval = Duration::from_millis(300);
        eventually_every(
            "the fourth poll",
            Duration::from_secs(5),
            interval,
            || async {
                match polls.fetch_add(1, Ordering::SeqCst) {
                    3 => Ok(()),
                    n => Err(n),
                }
            },
        )
        .await;
        assert_eq!(started.elapsed(), interval * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn poll_answers_the_last_err_once_its_patience_is_spent() {
        let polls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let interval = Duration::from_millis(400);
        let answer: Result<(), u32> = poll(Duration::from_secs(1), interval, || async {
            Err(polls.fetch_add(1, Ordering::SeqCst))
        })
        .await;
        // Polls at 0, 0.4, 0.8 and 1.2 s: the last one, past the patience, is answered.
        assert_eq!(answer, Err(3));
        assert_eq!(started.elapsed(), interval * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn names_what_never_came_and_the_last_answer() {
        let waited = tokio::spawn(eventually("never", Duration::from_secs(1), || async {
            Err::<(), _>("still no")
        }));
        let panic = waited.await.expect_err("it gives up").into_panic();
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(
            message.contains("waiting until never; last seen: still no"),
            "{message}"
        );
    }
}
