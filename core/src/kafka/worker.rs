//! The partition workers: each handles one partition's records in order (or its keys at once),
//! stores offsets after the work, retries what may succeed later and dead-letters what will not.

use std::{future::Future, sync::Arc, time::Instant};

use futures::StreamExt;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
    message::{Message, OwnedMessage},
    types::RDKafkaErrorCode,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    context::{Assignments, GridsyncConsumerContext},
    dead_letter::{self, Failure, Stage},
    headers, Backoff, ConsumerSettings, EventProducer, Handler, HandlerError, Input,
};
use crate::{
    registry::EventDecoder,
    telemetry::{ConsumerStatus, Metrics, TopicSeries},
};
use gridsync_retry::{retry_until, Verdict};

/// What a worker needs, shared by all of them.
pub(crate) struct Shared<H> {
    pub(crate) consumer: Arc<StreamConsumer<GridsyncConsumerContext>>,
    pub(crate) assignments: Assignments,
    pub(crate) handler: H,
    pub(crate) decoder: EventDecoder,
    pub(crate) producer: EventProducer,
    pub(crate) metrics: Metrics,
    pub(crate) settings: ConsumerSettings,
    /// What `/status` shows of this consumer.
    pub(crate) status: ConsumerStatus,
    /// Signalled by a worker each time it takes a record: room in its buffer for the
    /// records waiting in the dispatcher's overflow queues.
    pub(crate) room: tokio::sync::Notify,
    /// The instance's budget of records in hand (`max_in_flight`), if bounded.
    pub(crate) in_flight: Option<tokio::sync::Semaphore>,
}

/// The semaphore bounding records in hand to `max_in_flight` (0: none).
pub(crate) fn in_flight_budget(max_in_flight: usize) -> Option<tokio::sync::Semaphore> {
    (max_in_flight > 0).then(|| tokio::sync::Semaphore::new(max_in_flight))
}

/// Processes one partition's records in order until revoked or shut down.
pub(crate) async fn partition_worker<H: Handler>(
    shared: Arc<Shared<H>>,
    series: TopicSeries,
    worker_id: u64,
    mut inbox: mpsc::Receiver<OwnedMessage>,
    cancel: CancellationToken,
    busy: Arc<std::sync::atomic::AtomicBool>,
    taken: Arc<std::sync::atomic::AtomicU64>,
) {
    // Offsets below this were processed by this worker already: a redelivery
    // after a rebalance is skipped, and the stored offset never goes backwards.
    let mut next_offset: Option<i64> = None;
    let batch_size = shared.handler.batch_size().max(1);
    let key_concurrency = shared.settings.key_concurrency.max(1);
    // A batching handler takes its batch; otherwise, with keys handled at once, enough waiting
    // records for each of them to find a few keys.
    let take = match (batch_size, key_concurrency) {
        (1, 1) => 1,
        (1, keys) => keys * KEYED_TAKE_PER_KEY,
        (batch, _) => batch,
    };
    loop {
        let message = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            message = inbox.recv() => match message { Some(m) => m, None => return },
        };
        // The records already waiting go with it, as many as it takes at once.
        let mut batch = vec![message];
        while batch.len() < take {
            match inbox.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        taken.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Release);
        // Room for the records waiting in the dispatcher, once there is room for many: a wake-up
        // of the loop for every record taken would hand them over one by one.
        if inbox.len() <= shared.settings.partition_buffer / 2 {
            shared.room.notify_one();
        }
        batch.retain(|m| next_offset.is_none_or(|next| m.offset() >= next));
        let Some(last) = batch.last() else { continue };
        let last_offset = last.offset();
        let worker = Worker { shared: &shared, series: &series, id: worker_id, cancel: &cancel, busy: &busy };
        let done = match batch.len() {
            1 => worker.process_one(&batch[0]).await,
            _ if batch_size > 1 => worker.process_batch(&batch).await,
            _ => worker.process_keyed(&batch).await,
        };
        if !done {
            return;
        }
        next_offset = Some(last_offset + 1);
    }
}

/// Waiting records a worker takes at once per key it may handle at once (`key_concurrency`).
const KEYED_TAKE_PER_KEY: usize = 4;

/// A partition's worker, as its records' processing sees it.
struct Worker<'a, H> {
    shared: &'a Shared<H>,
    series: &'a TopicSeries,
    id: u64,
    cancel: &'a CancellationToken,
    busy: &'a std::sync::atomic::AtomicBool,
}

impl<H: Handler> Worker<'_, H> {
    /// Processes one record and stores its offset. False when the worker must stop: abandoned on
    /// shutdown or revoke (not stored, so redelivered), or no longer the partition's worker.
    async fn process_one(&self, message: &OwnedMessage) -> bool {
        let Worker { shared, id: worker_id, cancel, busy, .. } = *self;
        let started = Instant::now();
        self.series.record_received();
        let _busy = Busy::set(busy, &shared.status);
        let Some(_permit) = in_flight_permit(shared).await else { return false };
        let Some(outcome) = process(shared, message, cancel).await else {
            return false;
        };
        if !store_offset(shared, worker_id, message) {
            return false;
        }
        self.series.record_processed(outcome, started.elapsed());
        true
    }

    /// Processes consecutive records of a partition with one [`Handler::handle_batch`], then stores
    /// the last one's offset. Anything a batch cannot settle (a record that does not decode, a
    /// permanent failure) sends its records through [`Worker::process_one`], one by one, in order.
    async fn process_batch(&self, batch: &[OwnedMessage]) -> bool {
        let Worker { shared, id: worker_id, cancel, busy, .. } = *self;
        let started = Instant::now();
        let mut records = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        for message in batch {
            if headers::get(message.headers(), headers::EVENT_TYPE).is_some_and(|t| !shared.settings.accepts(t)) {
                outcomes.push("skipped");
                continue;
            }
            let Ok(record) = H::Input::read(&shared.decoder, message).await else {
                return self.one_by_one(batch).await;
            };
            records.push(record);
            outcomes.push("ok");
        }
        let Some(first) = batch.first() else { return true };
        let _busy = Busy::set(busy, &shared.status);
        let span = tracing::info_span!(
            "records",
            consumer = %shared.settings.name,
            topic = first.topic(),
            partition = first.partition(),
            offsets = %format!("{}..={}", first.offset(), batch.last().map_or(0, |m| m.offset())),
        );
        let (handler, records, timeout) = (&shared.handler, &records, shared.settings.handler_timeout);
        let handled = retry(shared, cancel, first, Stage::Process, move || async move {
            if records.is_empty() {
                return Ok(());
            }
            within(timeout, handler.handle_batch(records)).await
        })
        .instrument(span)
        .await;
        match handled {
            // Abandoned on shutdown or revoke: not stored, so redelivered.
            None => false,
            Some(Err(failure)) => {
                tracing::warn!(class = %failure.class, error = %failure.message, records = batch.len(), "a batch failed; handling its records one by one");
                drop(_busy);
                self.one_by_one(batch).await
            }
            Some(Ok(())) => {
                let Some(last) = batch.last() else { return true };
                if !store_offset(shared, worker_id, last) {
                    return false;
                }
                let took = started.elapsed();
                for outcome in outcomes {
                    self.series.record_received();
                    self.series.record_processed(outcome, took);
                }
                true
            }
        }
    }

    /// Processes consecutive records of a partition, those of different keys at once (up to
    /// `key_concurrency`), each key's in order, then stores the last one's offset. On shutdown or
    /// revoke every key finishes the record in hand and stops; the offset stored is the one after
    /// the records done without a gap, and the rest come again (what of them was done is found
    /// in the side-effect ledger).
    async fn process_keyed(&self, batch: &[OwnedMessage]) -> bool {
        let Worker { shared, id: worker_id, cancel, busy, series } = *self;
        let mut chains: Vec<Vec<(usize, &OwnedMessage)>> = Vec::new();
        let mut by_key: std::collections::HashMap<Option<&[u8]>, usize> = std::collections::HashMap::new();
        for (index, message) in batch.iter().enumerate() {
            let chain = *by_key.entry(message.key()).or_insert_with(|| {
                chains.push(Vec::new());
                chains.len() - 1
            });
            chains[chain].push((index, message));
        }
        let _busy = Busy::set(busy, &shared.status);
        let chains: Vec<_> = chains.into_iter().map(|chain| run_chain(shared, series, cancel, chain)).collect();
        let finished: Vec<Vec<usize>> =
            futures::stream::iter(chains).buffer_unordered(shared.settings.key_concurrency.max(1)).collect().await;
        let mut done = vec![false; batch.len()];
        finished.into_iter().flatten().for_each(|index| done[index] = true);
        let without_gap = done.iter().take_while(|done| **done).count();
        match without_gap.checked_sub(1).map(|last| &batch[last]) {
            Some(last) => store_offset(shared, worker_id, last) && without_gap == batch.len(),
            None => false,
        }
    }

    /// Each of `batch` through [`Worker::process_one`], in order.
    async fn one_by_one(&self, batch: &[OwnedMessage]) -> bool {
        for message in batch {
            if !self.process_one(message).await {
                return false;
            }
        }
        true
    }
}

/// One key's records of a keyed batch, in order ([`Worker::process_keyed`]): the batch indices
/// of those done (all of them, unless it stopped on shutdown or revoke).
async fn run_chain<H: Handler>(
    shared: &Shared<H>,
    series: &TopicSeries,
    cancel: &CancellationToken,
    chain: Vec<(usize, &OwnedMessage)>,
) -> Vec<usize> {
    let mut done = Vec::with_capacity(chain.len());
    for (index, message) in chain {
        if cancel.is_cancelled() {
            break;
        }
        let started = Instant::now();
        series.record_received();
        let Some(_permit) = in_flight_permit(shared).await else { break };
        let Some(outcome) = process(shared, message, cancel).await else { break };
        series.record_processed(outcome, started.elapsed());
        done.push(index);
    }
    done
}

/// A place in the instance's budget of records in hand: `Some(None)` when unbounded, `None`
/// when the budget is closed (never: it lives as long as the workers).
async fn in_flight_permit<H>(shared: &Shared<H>) -> Option<Option<tokio::sync::SemaphorePermit<'_>>> {
    match &shared.in_flight {
        None => Some(None),
        Some(budget) => budget.acquire().await.ok().map(Some),
    }
}

/// Marks a worker busy with a record until dropped, however the work ends.
struct Busy<'a>(&'a std::sync::atomic::AtomicBool, &'a ConsumerStatus);

impl<'a> Busy<'a> {
    fn set(flag: &'a std::sync::atomic::AtomicBool, status: &'a ConsumerStatus) -> Self {
        flag.store(true, std::sync::atomic::Ordering::Release);
        status.handling(true);
        Busy(flag, status)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
        self.1.handling(false);
    }
}

/// Stores the offset after `message` if this worker still owns its partition.
/// Returns whether it still does: a worker must only stop once its partition
/// was revoked, else the records buffered for it would be lost.
fn store_offset<H>(shared: &Shared<H>, worker_id: u64, message: &OwnedMessage) -> bool {
    let map = shared.assignments.lock();
    let key = (message.topic().to_owned(), message.partition());
    if map.get(&key).map(|slot| slot.id) != Some(worker_id) {
        return false;
    }
    match shared
        .consumer
        // rd_kafka_offset_store commits `offset + 1` itself: pass the record's own offset.
        .store_offset(message.topic(), message.partition(), message.offset())
    {
        Ok(()) => true,
        Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => {
            // Revoked between the check and the store: the new owner redoes it.
            tracing::debug!(
                topic = message.topic(),
                partition = message.partition(),
                "partition revoked; record will be redelivered"
            );
            false
        }
        Err(e) => {
            // The record was processed; the next stored offset supersedes this
            // one, and a crash before it only means a redelivery.
            shared.metrics.failure("store_offset", "kafka");
            tracing::warn!(error = %e, "storing offset failed; carrying on");
            true
        }
    }
}

/// Decodes and handles one record. `None` when abandoned (cancelled while
/// retrying); otherwise the outcome label.
async fn process<H: Handler>(
    shared: &Shared<H>,
    message: &OwnedMessage,
    cancel: &CancellationToken,
) -> Option<&'static str> {
    // Another flow's event type: skipped unread (a record without the header is decoded and handled).
    if headers::get(message.headers(), headers::EVENT_TYPE).is_some_and(|t| !shared.settings.accepts(t)) {
        return Some("skipped");
    }
    let decoder = &shared.decoder;
    let record = match retry(shared, cancel, message, Stage::Decode, move || H::Input::read(decoder, message)).await? {
        Ok(record) => record,
        Err(failure) => return dead_letter(shared, message, failure, cancel).await,
    };
    let span = record.span(&shared.settings.name);
    let (handler, record, timeout) = (&shared.handler, &record, shared.settings.handler_timeout);
    let handled = retry(shared, cancel, message, Stage::Process, move || within(timeout, handler.handle(record)))
        .instrument(span)
        .await?;
    match handled {
        Ok(()) => Some("ok"),
        Err(failure) => dead_letter(shared, message, failure, cancel).await,
    }
}

/// One attempt of a handler's work, bounded by `timeout`: past it, a transient failure (the
/// attempt is abandoned and retried, so a hung call never holds up the partition or shutdown).
async fn within(
    timeout: std::time::Duration,
    work: impl Future<Output = Result<(), HandlerError>>,
) -> Result<(), HandlerError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(HandlerError::transient("timeout", format!("the attempt took longer than {timeout:?}"))),
    }
}

/// Runs `attempt` until it succeeds or fails permanently, backing off between transient
/// failures, saying meanwhile what holds the partition. `None` if cancelled meanwhile.
async fn retry<H, T, F, Fut>(
    shared: &Shared<H>,
    cancel: &CancellationToken,
    record: &OwnedMessage,
    stage: Stage,
    attempt: F,
) -> Option<Result<T, Failure>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    let settings = &shared.settings;
    let (topic, partition) = (record.topic(), record.partition());
    let mut failures = 0u32;
    let classify = |error: &HandlerError, attempt: u32| {
        if matches!(error, HandlerError::Permanent { .. }) {
            return Verdict::GiveUp;
        }
        failures = attempt;
        if attempt == 1 {
            shared.metrics.retrying_since(topic, partition, Some(std::time::SystemTime::now()));
            set_retrying(shared, record, true);
        }
        shared.status.retrying(topic, partition, record.offset(), stage.as_str(), error.to_string(), attempt);
        shared.metrics.retried(topic);
        shared.metrics.failure(&stage.as_str().to_ascii_lowercase(), error.class());
        if attempt > settings.attempts_before_pause {
            tracing::error!(%error, attempt, "partition paused: retrying the same record until it succeeds");
        } else {
            tracing::warn!(%error, attempt, "transient failure; retrying");
        }
        Verdict::RETRY
    };
    // Never bounded: a record is retried until it succeeds, fails for good, or the process stops.
    let backoff = Backoff { attempts: None, ..settings.retry };
    let result = retry_until(cancel, &backoff, attempt, classify).await;
    // Done, failed for good or abandoned after a transient failure: nothing holds the partition
    // any more. (Only then: on every record's path, clearing what was never set cost two locks.)
    if failures > 0 {
        shared.metrics.retrying_since(topic, partition, None);
        shared.status.released(topic, partition);
        set_retrying(shared, record, false);
    }
    Some(result?.map_err(|error| match error {
        HandlerError::Permanent { class, message, .. } | HandlerError::Transient { class, message, .. } => {
            Failure { stage, class, message }
        }
    }))
}

/// Marks `record`'s partition (its current worker) as retrying a record, or not.
fn set_retrying<H>(shared: &Shared<H>, record: &OwnedMessage, retrying: bool) {
    let map = shared.assignments.lock();
    if let Some(slot) = map.get(&(record.topic().to_owned(), record.partition())) {
        slot.retrying.store(retrying, std::sync::atomic::Ordering::Release);
    }
}

/// Sends the original record with its error context to the dead-letter topic,
/// retrying until Kafka acknowledges it: a dead letter is never dropped.
async fn dead_letter<H>(
    shared: &Shared<H>,
    message: &OwnedMessage,
    failure: Failure,
    cancel: &CancellationToken,
) -> Option<&'static str> {
    let dlq = &shared.settings.dead_letter_topic;
    tracing::warn!(
        topic = message.topic(), partition = message.partition(), offset = message.offset(),
        stage = failure.stage.as_str(), class = %failure.class, error = %failure.message,
        dead_letter_topic = %dlq, "dead-lettering record"
    );
    let (producer, group, failure_ref) = (&shared.producer, &shared.settings.group_id, &failure);
    let sent = retry(shared, cancel, message, failure.stage, move || async move {
        let headers = dead_letter::headers(message, group, failure_ref);
        match producer.send(dlq, message.key(), message.payload(), headers.clone()).await {
            // Too large for Kafka as it is: keep its start, and say so, rather than retry for ever.
            Err(e) if e.is_too_large() => {
                let payload = message.payload().unwrap_or_default();
                let size = payload.len().to_string();
                let headers = headers
                    .insert(rdkafka::message::Header { key: dead_letter::TRUNCATED_FROM, value: Some(size.as_str()) });
                let start = &payload[..payload.len().min(dead_letter::TRUNCATED_PAYLOAD_BYTES)];
                tracing::warn!(bytes = payload.len(), "dead letter too large for Kafka; sending it truncated");
                producer.send(dlq, message.key(), Some(start), headers).await
            }
            other => other,
        }
        .map_err(|e| HandlerError::transient("kafka.dead_letter", e))
    })
    .await?;
    match sent {
        Ok(_) => {
            let error = format!("dead-lettered ({}, {}): {}", failure.stage.as_str(), failure.class, failure.message);
            shared.status.failed(message.topic(), message.partition(), message.offset(), error);
            shared.metrics.dead_lettered(message.topic(), failure.stage.as_str());
            shared.metrics.failure(&failure.stage.as_str().to_ascii_lowercase(), &failure.class);
            Some("dead_lettered")
        }
        // Sending is only ever retried, never refused; kept for exhaustiveness.
        Err(_) => None,
    }
}
