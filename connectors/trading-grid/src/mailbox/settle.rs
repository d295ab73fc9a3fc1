//! When a file in `inbound/` is ready: a gateway that writes in place (no
//! `.part` name, no rename) leaves a file that grows while it is listed. A
//! file is claimed only once its size and modification time have looked the
//! same for the settle time, measured on this process's clock from when it
//! was first seen so (the server's clock, which may be off, is never compared
//! with ours).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

/// A listed file: name, size, modification time.
pub(crate) type Listed = (String, u64, SystemTime);

#[derive(Debug)]
pub(crate) struct Settle {
    settle: Duration,
    /// Per name: the size and mtime last seen, and since when they have been so.
    seen: Mutex<HashMap<String, (u64, SystemTime, Instant)>>,
}

impl Settle {
    pub(crate) fn new(settle: Duration) -> Self {
        Settle { settle, seen: Mutex::default() }
    }

    /// The names of `listed` (in its order) unchanged for the settle time; names no longer
    /// listed are forgotten.
    pub(crate) fn settled(&self, listed: Vec<Listed>) -> Vec<String> {
        if self.settle.is_zero() {
            return listed.into_iter().map(|(name, ..)| name).collect();
        }
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|name, _| listed.iter().any(|(n, ..)| n == name));
        let mut ready = Vec::new();
        for (name, size, modified) in listed {
            let since = match seen.get(&name) {
                Some(&(s, m, since)) if s == size && m == modified => since,
                _ => {
                    seen.insert(name.clone(), (size, modified, now));
                    now
                }
            };
            if now.duration_since(since) >= self.settle {
                ready.push(name);
            }
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_ready_once_unchanged_for_the_settle_time() {
        let settle = Settle::new(Duration::from_millis(50));
        let t = SystemTime::UNIX_EPOCH;
        assert!(settle.settled(vec![("a".into(), 10, t)]).is_empty(), "just seen");
        std::thread::sleep(Duration::from_millis(60));
        // It grew meanwhile: its clock starts again.
        assert!(settle.settled(vec![("a".into(), 20, t), ("b".into(), 1, t)]).is_empty());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(settle.settled(vec![("a".into(), 20, t), ("b".into(), 1, t)]), ["a", "b"]);
        assert!(Settle::new(Duration::ZERO).settled(vec![("c".into(), 1, t)]) == ["c"], "no settle time");
    }
}
