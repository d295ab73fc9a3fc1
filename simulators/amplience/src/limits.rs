//! The Management API's limits: a request rate (configurable: a hub answers
//! 429 past its rate, with `Retry-After`) and Amplience's publish limit
//! (100 publishes and unpublishes a minute).

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Amplience's documented publish limit, per minute.
pub const PUBLISHES_PER_MINUTE: usize = 100;

pub struct Limits {
    /// Requests a second (0: no limit) and the bucket of them left.
    per_second: f64,
    bucket: Mutex<(f64, Instant)>,
    publishes_per_minute: usize,
    publishes: Mutex<VecDeque<Instant>>,
}

impl Limits {
    pub fn new(per_second: f64, publishes_per_minute: usize) -> Self {
        Limits {
            per_second,
            bucket: Mutex::new((per_second.max(1.0), Instant::now())),
            publishes_per_minute,
            publishes: Mutex::new(VecDeque::new()),
        }
    }

    /// Admits a request (a publish if `publish`), or says in how many seconds to try again.
    pub fn admit(&self, publish: bool) -> Result<(), u64> {
        if self.per_second > 0.0 {
            let mut bucket = self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let capacity = self.per_second.max(1.0);
            let (tokens, last) = *bucket;
            let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(capacity);
            if tokens < 1.0 {
                *bucket = (tokens, now);
                return Err(((1.0 - tokens) / self.per_second).ceil().max(1.0) as u64);
            }
            *bucket = (tokens - 1.0, now);
        }
        if publish {
            let mut publishes = self.publishes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            while publishes.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
                publishes.pop_front();
            }
            if publishes.len() >= self.publishes_per_minute {
                let oldest = publishes.front().copied().unwrap_or(now);
                let wait = Duration::from_secs(60).saturating_sub(now.duration_since(oldest));
                return Err(wait.as_secs().max(1));
            }
            publishes.push_back(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_rate_requests_are_told_when_to_come_back() {
        let limits = Limits::new(5.0, PUBLISHES_PER_MINUTE);
        let admitted = (0..20).filter(|_| limits.admit(false).is_ok()).count();
        assert!((5..=6).contains(&admitted), "{admitted} admitted at once");
        assert_eq!(limits.admit(false), Err(1));
        assert!(Limits::new(0.0, PUBLISHES_PER_MINUTE).admit(false).is_ok(), "0: no limit");
    }

    #[test]
    fn the_publish_limit_counts_a_minute() {
        let limits = Limits::new(0.0, 3);
        assert!((0..3).all(|_| limits.admit(true).is_ok()));
        let wait = limits.admit(true).unwrap_err();
        assert!((59..=60).contains(&wait), "{wait}");
        assert!(limits.admit(false).is_ok(), "other requests still pass");
    }
}
