//! What a consumer is doing now, as `/status` shows it (like Kafka Connect's connector status):
//! its group, the partitions assigned and paused, the record each retrying partition is held on
//! with the error that holds it, the last error, the records being handled.
//!
//! The consumer loop writes it as things happen; reading it is a copy under a short lock.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use serde::Serialize;

/// Shared between the consumer loop (which writes) and the HTTP server (which reads).
#[derive(Clone, Default)]
pub struct ConsumerStatus {
    state: Arc<Mutex<Option<State>>>,
    /// Counted apart from the state: every record changes it, and a lock per record was a
    /// measurable part of the loop's time with every partition's worker taking it.
    in_flight: Arc<AtomicUsize>,
}

/// A record a partition is held on: retried until it succeeds.
#[derive(Clone, Debug, Serialize)]
pub struct Held {
    pub offset: i64,
    /// `DECODE` or `PROCESS`.
    pub stage: &'static str,
    pub error: String,
    pub attempts: u32,
    /// When it first failed (RFC 3339).
    pub since: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LastError {
    pub at: String,
    pub partition: String,
    pub offset: i64,
    pub error: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Partition {
    pub paused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_on: Option<Held>,
}

/// The consumer's part of `/status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct State {
    pub consumer: String,
    pub group: String,
    pub topics: Vec<String>,
    /// `topic[partition]` → what holds it, if anything.
    pub assigned: BTreeMap<String, Partition>,
    pub in_flight: usize,
    pub last_error: Option<LastError>,
}

fn partition_name(topic: &str, partition: i32) -> String {
    format!("{topic}[{partition}]")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl ConsumerStatus {
    fn lock(&self) -> MutexGuard<'_, Option<State>> {
        // A poisoned lock only means a panic elsewhere; the status itself stays readable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// With `f` on the state, if this process runs a consumer.
    fn update(&self, f: impl FnOnce(&mut State)) {
        if let Some(state) = self.lock().as_mut() {
            f(state);
        }
    }

    /// The consumer started: its name, group and topics.
    pub fn started(&self, consumer: &str, group: &str, topics: &[String]) {
        *self.lock() = Some(State {
            consumer: consumer.to_owned(),
            group: group.to_owned(),
            topics: topics.to_vec(),
            ..State::default()
        });
    }

    pub fn assigned(&self, partitions: impl IntoIterator<Item = (String, i32)>) {
        self.update(|s| {
            for (topic, partition) in partitions {
                s.assigned.entry(partition_name(&topic, partition)).or_default();
            }
        });
    }

    pub fn revoked(&self, partitions: impl IntoIterator<Item = (String, i32)>) {
        self.update(|s| {
            for (topic, partition) in partitions {
                s.assigned.remove(&partition_name(&topic, partition));
            }
        });
    }

    pub fn paused(&self, topic: &str, partition: i32, paused: bool) {
        self.update(|s| {
            if let Some(p) = s.assigned.get_mut(&partition_name(topic, partition)) {
                p.paused = paused;
            }
        });
    }

    /// A record failed and is retried (`attempts` so far).
    pub fn retrying(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        stage: &'static str,
        error: String,
        attempts: u32,
    ) {
        self.update(|s| {
            let name = partition_name(topic, partition);
            s.last_error = Some(LastError { at: now(), partition: name.clone(), offset, error: error.clone() });
            if let Some(p) = s.assigned.get_mut(&name) {
                let since = p.held_on.as_ref().filter(|h| h.offset == offset).map_or_else(now, |h| h.since.clone());
                p.held_on = Some(Held { offset, stage, error, attempts, since });
            }
        });
    }

    /// A record failed for good (dead-lettered): the last error, holding nothing.
    pub fn failed(&self, topic: &str, partition: i32, offset: i64, error: String) {
        self.update(|s| {
            s.last_error = Some(LastError { at: now(), partition: partition_name(topic, partition), offset, error });
        });
    }

    /// The partition's record is done, however: nothing holds it.
    pub fn released(&self, topic: &str, partition: i32) {
        self.update(|s| {
            if let Some(p) = s.assigned.get_mut(&partition_name(topic, partition)) {
                p.held_on = None;
            }
        });
    }

    pub fn handling(&self, started: bool) {
        if started {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        } else {
            // Never below zero: a `false` without its `true` changes nothing.
            let _ = self.in_flight.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// A copy of the state (`None`: this process runs no consumer).
    pub fn snapshot(&self) -> Option<State> {
        let mut state = self.lock().clone();
        if let Some(state) = state.as_mut() {
            state.in_flight = self.in_flight.load(Ordering::Relaxed);
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_record_holds_its_partition_until_released_and_keeps_its_first_failure_time() {
        let status = ConsumerStatus::default();
        status.assigned([("t".to_owned(), 0)]);
        assert!(status.snapshot().is_none(), "no consumer, no state");
        status.started("billing", "gridsync.billing", &["t".to_owned()]);
        status.assigned([("t".to_owned(), 0), ("t".to_owned(), 1)]);
        status.retrying("t", 0, 41, "PROCESS", "503 from Amplience".into(), 1);
        let first = status.snapshot().unwrap().assigned["t[0]"].held_on.clone().unwrap();
        status.retrying("t", 0, 41, "PROCESS", "timeout".into(), 2);
        let state = status.snapshot().unwrap();
        let held = state.assigned["t[0]"].held_on.clone().unwrap();
        assert_eq!((held.offset, held.attempts, held.error.as_str()), (41, 2, "timeout"));
        assert_eq!(held.since, first.since);
        assert_eq!(state.last_error.unwrap().partition, "t[0]");
        assert!(state.assigned["t[1]"].held_on.is_none());
        status.released("t", 0);
        status.revoked([("t".to_owned(), 1)]);
        let state = status.snapshot().unwrap();
        assert!(state.assigned["t[0]"].held_on.is_none());
        assert_eq!(state.assigned.keys().collect::<Vec<_>>(), ["t[0]"]);
    }
}
