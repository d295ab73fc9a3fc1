//! A client-side rate limiter: requests are spaced so that no more than
//! `per_second` leave on average, with a small burst allowed. Staying under
//! an API's limits is cheaper than riding out its 429s.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    interval: Duration,
    burst: Duration,
    next: Instant,
}

fn spacing(per_second: f64, burst: u32) -> (Duration, Duration) {
    let interval = if per_second > 0.0 { Duration::from_secs_f64(1.0 / per_second) } else { Duration::ZERO };
    (interval, interval * burst.max(1))
}

impl RateLimiter {
    /// `per_second` requests per second on average (0 means unlimited);
    /// up to `burst` may go at once after a quiet spell.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let (interval, burst) = spacing(per_second, burst);
        let now = Instant::now();
        RateLimiter { state: Mutex::new(State { interval, burst, next: now.checked_sub(burst).unwrap_or(now) }) }
    }

    /// `per_minute` requests per minute (e.g. Amplience's publish limit of 100).
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::new(f64::from(per_minute) / 60.0, burst)
    }

    /// From now on, `per_second` on average (a share of a budget that changed).
    pub async fn set_per_second(&self, per_second: f64, burst: u32) {
        let mut state = self.state.lock().await;
        (state.interval, state.burst) = spacing(per_second, burst);
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut state = self.state.lock().await;
            if state.interval.is_zero() {
                return;
            }
            let now = Instant::now();
            // Unused capacity accumulates up to the burst, no further.
            let earliest = now.checked_sub(state.burst).unwrap_or(now);
            let slot = state.next.max(earliest);
            state.next = slot + state.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_after_the_burst() {
        let limiter = RateLimiter::new(10.0, 2);
        let started = Instant::now();
        for _ in 0..7 {
            limiter.acquire().await;
        }
        // Two go at once, then one every 100 ms.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(600), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_spaces_the_requests_after_it() {
        let limiter = RateLimiter::new(10.0, 1);
        limiter.set_per_second(2.0, 1).await;
        let started = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // One at once, then one every 500 ms.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_millis(2200), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0.0, 1);
        let started = Instant::now();
        for _ in 0..100 {
            limiter.acquire().await;
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
