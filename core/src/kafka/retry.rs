//! Exponential backoff with jitter for transient failures.

use std::time::Duration;

use rand::Rng;

/// How a consumer retries a record whose work failed transiently.
///
/// The first `attempts_before_pause` retries back off exponentially from
/// `initial` to `max`; after that the partition is in effect paused: the same
/// record is retried every `max` until it succeeds or the process stops. A
/// record is never skipped because a dependency is down.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct RetryPolicy {
    /// First backoff after a transient failure.
    #[arg(long = "retry-initial", env = "GRIDSYNC_RETRY_INITIAL_MS", value_parser = parse_millis, default_value = "100")]
    pub initial: Duration,
    /// Longest backoff; also the interval while the partition is paused.
    #[arg(long = "retry-max", env = "GRIDSYNC_RETRY_MAX_MS", value_parser = parse_millis, default_value = "30000")]
    pub max: Duration,
    /// Retries before the partition counts as paused (logged as such).
    #[arg(long = "retry-attempts-before-pause", env = "GRIDSYNC_RETRY_ATTEMPTS_BEFORE_PAUSE", default_value_t = 8)]
    pub attempts_before_pause: u32,
}

fn parse_millis(s: &str) -> Result<Duration, std::num::ParseIntError> {
    s.parse().map(Duration::from_millis)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { initial: Duration::from_millis(100), max: Duration::from_secs(30), attempts_before_pause: 8 }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `attempt` (1-based): "equal jitter", half
    /// fixed and half random, so retries of many records spread out but never
    /// collapse to zero.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.initial.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
        let base = exp.min(self.max);
        let half = base / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    /// Whether retries have gone on long enough to call the partition paused.
    pub fn is_paused(&self, attempt: u32) -> bool {
        attempt > self.attempts_before_pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_cap_at_max() {
        let p =
            RetryPolicy { initial: Duration::from_millis(100), max: Duration::from_secs(2), attempts_before_pause: 3 };
        for _ in 0..200 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
            let d40 = p.delay(40);
            assert!(d40 >= Duration::from_secs(1) && d40 <= Duration::from_secs(2), "{d40:?}");
        }
        assert!(!p.is_paused(3));
        assert!(p.is_paused(4));
    }
}
