//! The consumer's librdkafka context: lag metrics from statistics, and
//! rebalance handling that stops the workers of revoked partitions.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, ConsumerContext, Rebalance},
    error::KafkaResult,
    message::OwnedMessage,
    statistics::Statistics,
    ClientContext, TopicPartitionList,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{ConsumerStatus, Metrics};

/// The worker that owns one assigned partition.
pub struct WorkerSlot {
    /// Distinguishes a new worker for a re-assigned partition from the old one.
    pub id: u64,
    pub records: mpsc::Sender<OwnedMessage>,
    /// Cancelled when the partition is revoked, or on shutdown.
    pub cancel: CancellationToken,
    /// Set while the worker handles a record: a revoke waits for it to clear.
    pub busy: Arc<AtomicBool>,
    /// Set while its record failed and is being retried: the dispatcher pauses such a
    /// partition when its records pile up, rather than stop reading for every partition.
    pub retrying: Arc<AtomicBool>,
    /// Records the worker has taken from its buffer: whether a worker that is behind moves.
    pub taken: Arc<std::sync::atomic::AtomicU64>,
}

/// How long a revoke waits for the handlers of its partitions to finish the
/// record in hand, so that the next owner does not run the same record at the
/// same time. Past it the partition is handed on anyway (the side-effect ledger
/// still keeps the two apart).
pub const REVOKE_GRACE: Duration = Duration::from_secs(15);

/// Partition → its current worker. Shared by the dispatcher, the workers (who
/// may only store an offset while they are still the current worker) and the
/// rebalance callback (which removes revoked partitions).
#[derive(Clone, Default)]
pub struct Assignments(Arc<Mutex<HashMap<(String, i32), WorkerSlot>>>);

impl Assignments {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<(String, i32), WorkerSlot>> {
        // A poisoned lock only means a panic elsewhere; the map itself stays consistent.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops and forgets the workers of `partitions`, then waits (at most
    /// `REVOKE_GRACE`) for those handling a record to finish it: until then the
    /// partitions are not handed on.
    fn revoke(&self, partitions: &TopicPartitionList) {
        let mut busy = Vec::new();
        {
            let mut map = self.lock();
            for elem in partitions.elements() {
                if let Some(slot) = map.remove(&(elem.topic().to_owned(), elem.partition())) {
                    slot.cancel.cancel();
                    busy.push(slot.busy);
                }
            }
        }
        // librdkafka calls this on the polling thread and hands the partitions on when it
        // returns: a short blocking wait is what holds them back.
        let started = Instant::now();
        while busy.iter().any(|b| b.load(Ordering::Acquire)) {
            if started.elapsed() > REVOKE_GRACE {
                tracing::warn!("revoked partitions still busy after {REVOKE_GRACE:?}; handing them on");
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

pub struct GridsyncConsumerContext {
    metrics: Metrics,
    assignments: Assignments,
    status: ConsumerStatus,
}

impl GridsyncConsumerContext {
    pub fn new(metrics: Metrics, assignments: Assignments, status: ConsumerStatus) -> Self {
        GridsyncConsumerContext { metrics, assignments, status }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect()
}

impl ClientContext for GridsyncConsumerContext {
    fn stats(&self, statistics: Statistics) {
        self.metrics.kafka_statistics("consumer", &statistics);
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka reports the internal UA partition as -1 and -1 lag when unknown.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.set_consumer_lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for GridsyncConsumerContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Counted as it begins: a revoke may wait for running handlers.
            self.metrics.rebalance("revoke");
            // Work in flight for these partitions may finish, but its offset is
            // not stored: the new owner gets the record again (at-least-once).
            self.assignments.revoke(partitions);
            self.status.revoked(self::partitions(partitions));
            for elem in partitions.elements() {
                self.metrics.clear_consumer_lag(elem.topic(), elem.partition());
            }
            tracing::info!(partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                self.metrics.rebalance("assign");
                self.status.assigned(self::partitions(partitions));
                let list: Vec<String> =
                    partitions.elements().iter().map(|e| format!("{}[{}]", e.topic(), e.partition())).collect();
                tracing::info!(partitions = %list.join(","), "partitions assigned");
            }
            Rebalance::Error(e) => {
                self.metrics.rebalance("error");
                tracing::warn!(error = %e, "rebalance error");
            }
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(partitions = offsets.count(), "offsets committed"),
            // Nothing stored since the last commit: not an error.
            Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics.failure("commit", "kafka");
                tracing::warn!(error = %e, "offset commit failed; it is retried with the next commit");
            }
        }
    }
}
