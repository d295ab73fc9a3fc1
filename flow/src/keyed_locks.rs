//! One handler at a time per key, within a consumer instance.
//!
//! A partition's records are handled in order, but records of one business exchange can sit on
//! several partitions (a failure and the success that clears it travel on different topics, and
//! under other record keys): their handlers would read and write the same flow records at once,
//! and each could miss what the other wrote. Holding the exchange's lock makes their
//! read-modify-write whole.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A lock per key, made when first asked for and dropped once nobody holds or awaits it.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl KeyedLocks {
    /// Waits until nobody else holds `key`'s lock; it is held until the guard drops.
    pub async fn lock(&self, key: &str) -> KeyedGuard<'_> {
        // The clone is taken under the map's lock: a lock in the map with only the map's
        // reference is one nobody holds or awaits.
        let lock = Arc::clone(self.map().entry(key.to_owned()).or_default());
        KeyedGuard { locks: self, key: key.to_owned(), held: Some(lock.lock_owned().await) }
    }

    /// Keys with a lock at the moment (held or awaited).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<AsyncMutex<()>>>> {
        // The map is whole whatever panicked while it was locked: nothing is left half done.
        self.locks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Holds a key's lock; dropping it lets the next waiter in, or forgets the key.
#[derive(Debug)]
pub struct KeyedGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    held: Option<OwnedMutexGuard<()>>,
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.map();
        self.held.take();
        if map.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_holder_per_key_and_no_lock_left_behind() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("ACME/in/77").await;
        let other_key = tokio::time::timeout(Duration::from_secs(5), locks.lock("ACME/in/78")).await;
        assert!(other_key.is_ok(), "another key is not held up");
        drop(other_key);

        let waiting = tokio::spawn({
            let locks = Arc::clone(&locks);
            async move {
                let _second = locks.lock("ACME/in/77").await;
            }
        });
        // The second holder waits for the first: it cannot finish while the first holds.
        tokio::task::yield_now().await;
        let held_up = tokio::time::timeout(Duration::from_millis(200), async {
            while !waiting.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(held_up.is_err(), "the same key is held up while held");
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert!(locks.is_empty(), "every lock is dropped once released");
    }
}
