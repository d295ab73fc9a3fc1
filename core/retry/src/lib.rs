//! The one way gridsync retries what failed for a while: a [`Backoff`] (exponential, jittered,
//! capped, honouring a server's `Retry-After`, optionally bounded) and [`retry_until`], which runs
//! an operation until it succeeds, its failure is permanent, its attempts run out, or the process
//! shuts down.
//!
//! Whatever may come back (Kafka, a store, an API, an SFTP server, a media host) is waited for
//! through here, so "how long, how often, when to give up" is decided in one place and set by the
//! same flags everywhere.

use std::{convert::Infallible, fmt::Display, future::Future, time::Duration};

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// First wait by default.
pub const DEFAULT_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait by default.
pub const DEFAULT_MAX: Duration = Duration::from_secs(30);

/// How random each wait is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Half the step fixed, half random: many records retrying at once spread out, and no wait
    /// collapses to nothing.
    #[default]
    Equal,
    /// Anywhere from nothing to the step: contenders for one thing (an API's rate limit, one
    /// content item's version) spread furthest.
    Full,
}

/// Exponential backoff: `initial` before the second attempt, doubling up to `max`, jittered; a
/// server's `Retry-After` replaces the step (still capped by `max`). Taken as flags by every
/// binary that retries (`--retry-initial`, `--retry-max`, in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct Backoff {
    /// First backoff after a transient failure, in milliseconds.
    #[arg(long = "retry-initial", env = "GRIDSYNC_RETRY_INITIAL_MS", value_parser = parse_millis, default_value = "100")]
    pub initial: Duration,
    /// Longest backoff, in milliseconds; a server's Retry-After is capped by it too.
    #[arg(long = "retry-max", env = "GRIDSYNC_RETRY_MAX_MS", value_parser = parse_millis, default_value = "30000")]
    pub max: Duration,
    #[arg(skip)]
    pub jitter: Jitter,
    /// Attempts in all, the first included; `None`: until success or shutdown.
    #[arg(skip)]
    pub attempts: Option<u32>,
}

fn parse_millis(s: &str) -> Result<Duration, std::num::ParseIntError> {
    s.parse().map(Duration::from_millis)
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(DEFAULT_INITIAL, DEFAULT_MAX)
    }
}

impl Backoff {
    /// Equal jitter, no bound on attempts.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, jitter: Jitter::Equal, attempts: None }
    }

    pub const fn with_jitter(self, jitter: Jitter) -> Self {
        Backoff { jitter, ..self }
    }

    /// Gives up after `attempts` in all (at least one is always made).
    pub const fn giving_up_after(self, attempts: u32) -> Self {
        Backoff { attempts: Some(attempts), ..self }
    }

    /// The wait after failed attempt number `attempt` (1-based): the server's `retry_after` when
    /// it gave one, else the jittered exponential step; never more than `max`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let wait = retry_after.unwrap_or_else(|| {
            let doubling = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
            let step = self.initial.saturating_mul(doubling).min(self.max);
            let share = rand::rng().random::<f64>();
            match self.jitter {
                Jitter::Equal => step / 2 + (step / 2).mul_f64(share),
                Jitter::Full => step.mul_f64(share),
            }
        });
        wait.min(self.max)
    }

    /// Whether attempt number `attempt` was the last one allowed.
    pub fn exhausted(&self, attempt: u32) -> bool {
        self.attempts.is_some_and(|attempts| attempt >= attempts)
    }
}

/// What a failed attempt means, as the caller's `classify` judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It may pass: try again after the backoff, or after the server's `Retry-After`.
    Retry { after: Option<Duration> },
    /// It will fail the same way every time: returned at once, holding nothing up.
    GiveUp,
}

impl Verdict {
    pub const RETRY: Verdict = Verdict::Retry { after: None };
}

/// Runs `op` until it succeeds (`Some(Ok)`), fails in a way `classify` calls permanent or
/// `backoff` runs out of attempts (`Some(Err)` with that failure), or `shutdown` is cancelled
/// while it waits (`None`). `classify` sees each failure and its attempt number (1-based) only
/// when another attempt may follow, so it may log or count "retrying" truthfully.
pub async fn retry_until<T, E, Fut>(
    shutdown: &CancellationToken,
    backoff: &Backoff,
    op: impl FnMut() -> Fut,
    classify: impl FnMut(&E, u32) -> Verdict,
) -> Option<Result<T, E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    let wait = |delay| async move {
        tokio::select! {
            _ = shutdown.cancelled() => Err(()),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    };
    attempts(backoff, op, classify, wait).await.ok()
}

/// As [`retry_until`] for a call bounded by its attempts rather than by shutdown (an API
/// request: whoever sends it decides whether to wait for it when stopping).
pub async fn retry_bounded<T, E, Fut>(
    backoff: &Backoff,
    op: impl FnMut() -> Fut,
    classify: impl FnMut(&E, u32) -> Verdict,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let wait = |delay| async move {
        tokio::time::sleep(delay).await;
        Ok::<(), Infallible>(())
    };
    match attempts(backoff, op, classify, wait).await {
        Ok(result) => result,
        Err(never) => match never {},
    }
}

/// The one retry loop; `wait` sleeps a delay, or ends the retries with `Err` (shutdown).
async fn attempts<T, E, S, Fut, W>(
    backoff: &Backoff,
    mut op: impl FnMut() -> Fut,
    mut classify: impl FnMut(&E, u32) -> Verdict,
    wait: impl Fn(Duration) -> W,
) -> Result<Result<T, E>, S>
where
    Fut: Future<Output = Result<T, E>>,
    W: Future<Output = Result<(), S>>,
{
    let mut attempt = 0u32;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(Ok(value)),
            Err(error) => error,
        };
        attempt = attempt.saturating_add(1);
        if backoff.exhausted(attempt) {
            return Ok(Err(error));
        }
        let after = match classify(&error, attempt) {
            Verdict::GiveUp => return Ok(Err(error)),
            Verdict::Retry { after } => after,
        };
        wait(backoff.delay(attempt, after)).await?;
    }
}

/// A `classify` for failures that all pass in time (a broker, store or disk away for a while):
/// each is logged as `what` failing, and retried.
pub fn logged<E: Display>(what: &str) -> impl FnMut(&E, u32) -> Verdict + '_ {
    move |error, attempt| {
        tracing::warn!(%error, attempt, "{what} failed; retrying");
        Verdict::RETRY
    }
}

/// As [`logged`], except that a failure `permanent` says will never pass is given up at once.
pub fn logged_unless<'a, E: Display>(
    what: &'a str,
    permanent: impl Fn(&E) -> bool + 'a,
) -> impl FnMut(&E, u32) -> Verdict + 'a {
    let mut log = logged(what);
    move |error, attempt| if permanent(error) { Verdict::GiveUp } else { log(error, attempt) }
}

/// [`retry_until`] with [`logged`] failures and no bound: the value, or `None` on shutdown (or
/// when `backoff` has a bound and it ran out: nothing was done either way).
pub async fn retry_logged<T, E: Display, Fut>(
    shutdown: &CancellationToken,
    backoff: &Backoff,
    what: &str,
    op: impl FnMut() -> Fut,
) -> Option<T>
where
    Fut: Future<Output = Result<T, E>>,
{
    retry_until(shutdown, backoff, op, logged(what)).await.and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn delays_grow_exponentially_within_their_jitter_and_cap_at_max() {
        let equal = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let full = equal.with_jitter(Jitter::Full);
        for _ in 0..200 {
            let d1 = equal.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d3 = equal.delay(3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
            let d40 = equal.delay(40, None);
            assert!(d40 >= Duration::from_secs(1) && d40 <= Duration::from_secs(2), "{d40:?}");
            for attempt in 1..10 {
                let bound = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(2));
                assert!(full.delay(attempt, None) <= bound);
            }
        }
        assert_eq!(full.delay(1, Some(Duration::from_secs(1))), Duration::from_secs(1));
        assert_eq!(equal.delay(1, Some(Duration::from_secs(60))), Duration::from_secs(2), "Retry-After capped");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_a_permanent_failure_the_last_attempt_or_shutdown() {
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let shutdown = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let failing_twice = || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err("away"),
                n => Ok(n),
            }
        };
        let mut seen = Vec::new();
        let classify = |e: &&str, attempt| {
            seen.push((e.to_string(), attempt));
            Verdict::RETRY
        };
        assert_eq!(retry_until(&shutdown, &backoff, failing_twice, classify).await, Some(Ok(2)));
        assert_eq!(seen, [("away".to_owned(), 1), ("away".to_owned(), 2)]);

        calls.store(0, Ordering::SeqCst);
        let refused = || async { Err::<(), _>(calls.fetch_add(1, Ordering::SeqCst)) };
        let permanent = retry_until(&shutdown, &backoff, refused, |_, _| Verdict::GiveUp).await;
        assert_eq!((permanent, calls.load(Ordering::SeqCst)), (Some(Err(0)), 1));

        calls.store(0, Ordering::SeqCst);
        let bounded = backoff.giving_up_after(3);
        let mut classified = 0;
        let last = retry_until(&shutdown, &bounded, refused, |_, _| {
            classified += 1;
            Verdict::RETRY
        })
        .await;
        assert_eq!((last, classified), (Some(Err(2)), 2), "the last failure is returned, not classified");

        let stopping = shutdown.clone();
        let stopped = retry_until(&shutdown, &backoff, refused, move |_, attempt| {
            if attempt == 5 {
                stopping.cancel();
            }
            Verdict::RETRY
        })
        .await;
        assert_eq!(stopped, None);
    }
}
