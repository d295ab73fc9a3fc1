//! Routes fetched records to their partition's worker.
//!
//! The dispatcher never waits on a worker. When a worker's buffer is full, the
//! partition's further records queue, in order, in an overflow queue that
//! drains into the worker as it makes room: a burst is absorbed there. When the
//! queue grows past a limit, what happens depends on why:
//! - the worker is retrying a record, or has taken none for [`STALLED_AFTER`]
//!   (stuck): the partition is paused in librdkafka, so it stops fetching for it
//!   while the other partitions go on; it resumes once the queue is empty;
//! - the worker is only behind (a backlog, every record succeeding): the
//!   consumer loop stops reading until the queue is back under the limit
//!   ([`Dispatcher::is_behind`]), and librdkafka stops fetching once its own
//!   queue is full. Pausing here would cost a refetch every time: librdkafka
//!   discards what it prefetched for a paused partition (measured: 13 pauses
//!   over a 200,000-record backlog, and a third of the loop's rate).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use rdkafka::{
    consumer::Consumer,
    message::{Message, OwnedMessage},
    TopicPartitionList,
};
use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{
    context::WorkerSlot,
    worker::{partition_worker, Shared},
    Handler,
};

type PartitionKey = (String, i32);

/// How long a worker with too many records waiting may take none before its partition is
/// paused as stuck (a handler hanging until its timeout), so the others are read again.
pub(crate) const STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Records fetched for a partition whose worker is full, waiting for room.
struct Overflow {
    /// The worker they are for; if the partition changed hands meanwhile, they are dropped.
    worker_id: u64,
    records: VecDeque<OwnedMessage>,
    paused: bool,
    /// Since when, and at which count of records its worker had taken, it has been over the limit.
    over_since: Option<(std::time::Instant, u64)>,
    /// Over the limit, and not yet back to half of it: reading waits for this partition.
    behind: bool,
}

/// What became of an overflow queue after offering it to its worker.
enum Drained {
    /// All records are with the worker: the queue can go.
    Empty,
    /// Records still wait for room.
    Waiting,
    /// The partition changed hands: the records are dropped (the owner fetches them again).
    Revoked,
}

pub(crate) struct Dispatcher<H> {
    shared: Arc<Shared<H>>,
    workers: JoinSet<()>,
    next_worker_id: u64,
    overflow: HashMap<PartitionKey, Overflow>,
    shutdown: CancellationToken,
}

impl<H: Handler> Dispatcher<H> {
    pub fn new(shared: Arc<Shared<H>>, shutdown: CancellationToken) -> Self {
        Dispatcher { shared, workers: JoinSet::new(), next_worker_id: 1, overflow: HashMap::new(), shutdown }
    }

    /// The current worker of a partition, started if there is none.
    fn worker_for(&mut self, key: &PartitionKey) -> (u64, mpsc::Sender<OwnedMessage>) {
        let mut map = self.shared.assignments.lock();
        if let Some(slot) = map.get(key).filter(|slot| !slot.records.is_closed()) {
            return (slot.id, slot.records.clone());
        }
        let (records, inbox) = mpsc::channel(self.shared.settings.partition_buffer);
        let slot = WorkerSlot {
            id: self.next_worker_id,
            records,
            cancel: self.shutdown.child_token(),
            busy: Arc::default(),
            retrying: Arc::default(),
            taken: Arc::default(),
        };
        self.next_worker_id += 1;
        self.workers.spawn(partition_worker(
            self.shared.clone(),
            self.shared.metrics.topic_series(&key.0),
            slot.id,
            inbox,
            slot.cancel.clone(),
            slot.busy.clone(),
            slot.taken.clone(),
        ));
        let handle = (slot.id, slot.records.clone());
        map.insert(key.clone(), slot);
        handle
    }

    /// Hands a record to its partition's worker without ever waiting.
    pub fn route(&mut self, message: OwnedMessage) {
        let key = (message.topic().to_owned(), message.partition());
        self.drop_stale_overflow(&key);
        if let Some(overflow) = self.overflow.get_mut(&key) {
            // Behind the records already waiting: order is kept.
            overflow.records.push_back(message);
            self.drain(&key);
            return;
        }
        let (worker_id, sender) = self.worker_for(&key);
        match sender.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(message)) => {
                let records = VecDeque::from([message]);
                let overflow = Overflow { worker_id, records, paused: false, over_since: None, behind: false };
                self.overflow.insert(key, overflow);
            }
            // Revoked meanwhile: the new owner fetches the record again.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Forgets the waiting records of a partition that was revoked (and perhaps
    /// re-assigned to a new worker) since they queued: they belong to the old
    /// worker, and the partition's owner fetches them again. Done before a new
    /// record of the partition is queued, so it is never dropped with them.
    fn drop_stale_overflow(&mut self, key: &PartitionKey) {
        let Some(overflow) = self.overflow.get(key) else { return };
        let current = self.shared.assignments.lock().get(key).map(|slot| slot.id);
        if current != Some(overflow.worker_id) {
            let paused = overflow.paused;
            self.overflow.remove(key);
            if paused {
                self.set_paused(key, false);
            }
        }
    }

    pub fn has_overflow(&self) -> bool {
        !self.overflow.is_empty()
    }

    /// Whether a partition that is not paused had more records waiting than its limit, and has
    /// not worked them down to half of it since. (Reading again at once, one record under the
    /// limit, would hand records over one at a time: a wake-up of the loop for every record.)
    pub fn is_behind(&self) -> bool {
        self.overflow.values().any(|o| o.behind && !o.paused)
    }

    /// Records a partition may have waiting before it is paused or reading stops.
    fn overflow_limit(&self) -> usize {
        self.shared.settings.partition_buffer * 4
    }

    /// Offers every waiting record to its worker (on a timer, so a queue drains
    /// even when no new record arrives for its partition).
    pub fn drain_overflow(&mut self) {
        let keys: Vec<PartitionKey> = self.overflow.keys().cloned().collect();
        for key in keys {
            self.drain(&key);
        }
    }

    /// Moves a partition's waiting records into its worker while it has room;
    /// pauses the partition when too many wait, resumes it when none do.
    fn drain(&mut self, key: &PartitionKey) {
        let limit = self.overflow_limit();
        let Some(overflow) = self.overflow.get_mut(key) else { return };
        let (mut retrying, mut taken) = (false, 0);
        let drained = {
            let map = self.shared.assignments.lock();
            match map.get(key).filter(|slot| slot.id == overflow.worker_id) {
                None => Drained::Revoked,
                Some(slot) => loop {
                    retrying = slot.retrying.load(std::sync::atomic::Ordering::Acquire);
                    taken = slot.taken.load(std::sync::atomic::Ordering::Acquire);
                    let Some(message) = overflow.records.pop_front() else { break Drained::Empty };
                    match slot.records.try_send(message) {
                        Ok(()) => {}
                        Err(TrySendError::Full(message)) => {
                            overflow.records.push_front(message);
                            break Drained::Waiting;
                        }
                        Err(TrySendError::Closed(_)) => break Drained::Revoked,
                    }
                },
            }
        };
        let (paused, waiting) = (overflow.paused, overflow.records.len());
        // Behind from over the limit until back to half of it (see `is_behind`).
        if waiting > limit {
            overflow.behind = true;
        } else if waiting <= limit / 2 {
            overflow.behind = false;
        }
        let stuck = retrying || {
            // Only behind: stuck if its worker has taken nothing for a while.
            let now = std::time::Instant::now();
            match overflow.over_since {
                Some((since, then)) if then == taken => now.duration_since(since) >= STALLED_AFTER,
                _ => {
                    overflow.over_since = Some((now, taken));
                    false
                }
            }
        };
        match drained {
            Drained::Waiting if overflow.behind && !paused && stuck => {
                overflow.paused = true;
                self.set_paused(key, true);
            }
            Drained::Waiting if overflow.behind => {}
            Drained::Waiting => overflow.over_since = None,
            Drained::Empty | Drained::Revoked => {
                self.overflow.remove(key);
                if paused {
                    self.set_paused(key, false);
                }
            }
        }
    }

    fn set_paused(&self, (topic, partition): &PartitionKey, paused: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, *partition);
        let result = if paused { self.shared.consumer.pause(&tpl) } else { self.shared.consumer.resume(&tpl) };
        // As the dispatcher sees it (a partition revoked while paused is no longer paused here).
        self.shared.metrics.partition_paused(topic, paused);
        self.shared.status.paused(topic, *partition, paused);
        match result {
            Ok(()) if paused => {
                tracing::warn!(topic = %topic, partition, "partition paused: its worker is behind (a record is being retried)");
            }
            Ok(()) => tracing::info!(topic = %topic, partition, "partition resumed"),
            // Not assigned any more: nothing to pause or resume.
            Err(e) => tracing::debug!(topic = %topic, partition, error = %e, "pause/resume"),
        }
    }

    /// Waits for every worker: idle ones return at once on shutdown, busy ones
    /// after finishing (and storing) the record in hand.
    pub async fn finish(mut self) {
        while let Some(joined) = self.workers.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "partition worker failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, time::Duration};

    use gridsync_schemas::{codec, samples::sample, EventType};
    use rdkafka::{
        consumer::StreamConsumer,
        message::{OwnedHeaders, Timestamp},
        ClientConfig,
    };
    use tokio::sync::Notify;

    use super::*;
    use crate::{
        config::KafkaArgs,
        kafka::{
            context::{Assignments, GridsyncConsumerContext},
            Backoff, ConsumerSettings, EventProducer, HandlerError, Record,
        },
        registry::EventDecoder,
        telemetry::Metrics,
    };

    /// Notes each record's offset, then waits (as a slow call would) until released.
    #[derive(Default)]
    struct Held {
        seen: Mutex<Vec<i64>>,
        release: Notify,
    }

    impl Handler for Held {
        type Input = Record;

        async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
            self.seen.lock().map_err(|e| HandlerError::transient("lock", e))?.push(record.offset);
            self.release.notified().await;
            Ok(())
        }
    }

    fn record(offset: i64) -> OwnedMessage {
        let payload = codec().unwrap().encode(&sample(EventType::PurchaseOrderReceived, "P", offset as u64));
        OwnedMessage::new(
            Some(payload),
            None,
            "t".into(),
            Timestamp::NotAvailable,
            0,
            offset,
            Some(OwnedHeaders::new()),
        )
    }

    /// A dispatcher over `handler` with `partition_buffer`, and its shared state. Nothing here
    /// talks to a broker: the consumer and producer are only created.
    fn dispatcher_for(handler: Arc<Held>, partition_buffer: usize) -> (Dispatcher<Arc<Held>>, Arc<Shared<Arc<Held>>>) {
        let kafka = KafkaArgs::for_brokers("127.0.0.1:1");
        let metrics = Metrics::new("test").unwrap();
        let assignments = Assignments::default();
        let consumer: StreamConsumer<GridsyncConsumerContext> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "test")
            .create_with_context(GridsyncConsumerContext::new(
                metrics.clone(),
                assignments.clone(),
                crate::telemetry::ConsumerStatus::default(),
            ))
            .unwrap();
        let settings = ConsumerSettings {
            name: "test".into(),
            group_id: "test".into(),
            topics: vec!["t".into()],
            handles: None,
            dead_letter_topic: "t.dlq".into(),
            retry: Backoff::default(),
            attempts_before_pause: 8,
            partition_buffer,
            handler_timeout: Duration::from_secs(60),
            key_concurrency: 1,
            max_in_flight: 0,
        };
        let shared = Arc::new(Shared {
            consumer: Arc::new(consumer),
            assignments,
            handler,
            decoder: EventDecoder::new(None).unwrap(),
            producer: EventProducer::new(&kafka, metrics.clone()).unwrap(),
            metrics,
            settings,
            status: crate::telemetry::ConsumerStatus::default(),
            room: Notify::new(),
            in_flight: None,
        });
        (Dispatcher::new(shared.clone(), CancellationToken::new()), shared)
    }

    #[tokio::test]
    async fn a_record_of_a_reassigned_partition_is_not_dropped_with_the_old_workers_overflow() {
        let handler = Arc::new(Held::default());
        let (mut dispatcher, shared) = dispatcher_for(handler.clone(), 1);
        let (assignments, shutdown) = (shared.assignments.clone(), dispatcher.shutdown.clone());

        // The first worker is busy with record 0; record 1 fills its buffer, record 2 waits in overflow.
        for offset in 0..3 {
            dispatcher.route(record(offset));
        }
        seen(&handler, 1).await;
        assert!(dispatcher.has_overflow());

        // The partition is revoked and assigned again; its owner fetches from the committed offset.
        if let Some(slot) = assignments.lock().remove(&("t".to_owned(), 0)) {
            slot.cancel.cancel();
        }
        handler.release.notify_waiters();
        dispatcher.route(record(0));
        seen(&handler, 2).await;
        assert_eq!(*handler.seen.lock().unwrap(), [0, 0], "the old worker's record 0, then the new worker's");
        shutdown.cancel();
        handler.release.notify_waiters();
    }

    /// Waits until `handler` has seen `count` records.
    async fn seen(handler: &Held, count: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while handler.seen.lock().unwrap().len() < count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }

    /// A dispatcher with a buffer of 2 (limit: 8 waiting records, reading again at 4) whose one
    /// partition's worker holds record 0, with 11 more routed: 2 in its buffer, 9 waiting.
    async fn behind() -> (Dispatcher<Arc<Held>>, Arc<Shared<Arc<Held>>>, Arc<Held>) {
        let handler = Arc::new(Held::default());
        let (mut dispatcher, shared) = dispatcher_for(handler.clone(), 2);
        dispatcher.route(record(0));
        seen(&handler, 1).await;
        for offset in 1..=11 {
            dispatcher.route(record(offset));
        }
        (dispatcher, shared, handler)
    }

    #[tokio::test]
    async fn a_partition_only_behind_stops_reading_and_a_stuck_one_is_paused_instead() {
        let (mut dispatcher, shared, handler) = behind().await;
        // 9 waiting: behind, not (yet) stuck.
        assert!(dispatcher.is_behind(), "over the limit: reading stops");
        assert!(!dispatcher.overflow[&("t".to_owned(), 0)].paused);

        // Its worker retries the record in hand: the partition is paused and reading goes on.
        let slot_retrying = shared.assignments.lock()[&("t".to_owned(), 0)].retrying.clone();
        slot_retrying.store(true, std::sync::atomic::Ordering::Release);
        dispatcher.drain_overflow();
        assert!(dispatcher.overflow[&("t".to_owned(), 0)].paused, "a retrying worker's partition is paused");
        assert!(!dispatcher.is_behind(), "a paused partition does not stop the others");
        dispatcher.shutdown.cancel();
        handler.release.notify_waiters();
    }

    #[tokio::test]
    async fn a_worker_that_takes_nothing_for_a_while_is_stuck_too() {
        let (mut dispatcher, _shared, handler) = behind().await;
        assert!(dispatcher.is_behind());
        tokio::time::sleep(STALLED_AFTER + Duration::from_millis(50)).await;
        dispatcher.drain_overflow();
        assert!(dispatcher.overflow[&("t".to_owned(), 0)].paused, "no record taken for {STALLED_AFTER:?}: paused");
        assert!(!dispatcher.is_behind());
        dispatcher.shutdown.cancel();
        handler.release.notify_waiters();
    }

    #[tokio::test]
    async fn reading_starts_again_only_once_half_the_waiting_records_are_taken() {
        let (mut dispatcher, _shared, handler) = behind().await;
        // 9 waiting. One record taken: 8 waiting, at the limit, still behind.
        let key = ("t".to_owned(), 0);
        let waiting = |d: &Dispatcher<Arc<Held>>| d.overflow.get(&key).map_or(0, |o| o.records.len());
        handler.release.notify_one();
        seen(&handler, 2).await;
        dispatcher.drain_overflow();
        assert_eq!(waiting(&dispatcher), 8);
        assert!(dispatcher.is_behind(), "one record under the limit is not enough");
        // Down to 4 waiting: reading again.
        for taken in 3..=6 {
            dispatcher.drain_overflow();
            handler.release.notify_one();
            seen(&handler, taken).await;
        }
        dispatcher.drain_overflow();
        assert_eq!(waiting(&dispatcher), 4);
        assert!(!dispatcher.is_behind(), "half the limit: reading again");
        dispatcher.shutdown.cancel();
        handler.release.notify_waiters();
    }
}
