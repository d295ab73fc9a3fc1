//! Refused requests (forged, unsigned) are answered 401 at once, before any
//! Kafka write: an unauthenticated flood must not turn into a flood of
//! writes. A sample of them is kept in the dead-letter topic for the security
//! trail: at most one per remote address per window, a bounded number of
//! addresses remembered, and a bounded number of writes in flight, none of
//! them awaited by the request. Every refusal is counted all the same.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One kept sample per address per this long.
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(10);
/// Addresses remembered at once; beyond, new addresses are not sampled until old ones expire.
pub const MAX_ADDRESSES: usize = 1_024;
/// Samples being written to Kafka at once.
pub const MAX_IN_FLIGHT: usize = 16;

pub struct RejectedSampler {
    last: Mutex<HashMap<IpAddr, Instant>>,
    in_flight: Arc<Semaphore>,
}

impl Default for RejectedSampler {
    fn default() -> Self {
        RejectedSampler { last: Mutex::default(), in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)) }
    }
}

impl RejectedSampler {
    /// A permit to keep a refused request from `remote`, if the sample has room for it.
    pub fn admit(&self, remote: IpAddr, now: Instant) -> Option<OwnedSemaphorePermit> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.get(&remote).is_some_and(|at| now.duration_since(*at) < SAMPLE_WINDOW) {
            return None;
        }
        if !last.contains_key(&remote) && last.len() >= MAX_ADDRESSES {
            last.retain(|_, at| now.duration_since(*at) < SAMPLE_WINDOW);
            if last.len() >= MAX_ADDRESSES {
                return None;
            }
        }
        let permit = Arc::clone(&self.in_flight).try_acquire_owned().ok()?;
        last.insert(remote, now);
        Some(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_address_per_window_and_a_bounded_number_of_addresses() {
        let sampler = RejectedSampler::default();
        let now = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let kept = sampler.admit(a, now);
        assert!(kept.is_some());
        assert!(sampler.admit(a, now + Duration::from_secs(1)).is_none(), "the same address within the window");
        drop(kept);
        assert!(sampler.admit(a, now + SAMPLE_WINDOW).is_some(), "the next window");
        let mut permits = Vec::new();
        for i in 0..(MAX_ADDRESSES as u32) {
            let remote: IpAddr = std::net::Ipv4Addr::from(0x0b00_0000 + i).into();
            if let Some(permit) = sampler.admit(remote, now + SAMPLE_WINDOW) {
                permits.push(permit);
            }
        }
        assert_eq!(permits.len(), MAX_IN_FLIGHT, "no more writes in flight than the bound");
        drop(permits);
        let late: IpAddr = [12, 0, 0, 1].into();
        assert!(sampler.admit(late, now + SAMPLE_WINDOW).is_some(), "addresses that had no room are not remembered");
    }
}
