//! The dead letters of every consumer and producer, into the audit store.
//!
//! Dead letters are not events (an undecodable record stays undecodable), so
//! they are read raw, by a consumer group of their own
//! (`gridsync.audit.dead-letters`), beside the audit consumer's event loop.
//! A record dead-lettered again (a replay of its consumer) is the same dead
//! letter: the store keys it by consumer and original place.
//! At least once, like the rest: a record's offset is stored only after it is
//! recorded; recording is idempotent on its place in the dead-letter topic.

use std::{collections::HashMap, time::Duration};

use futures::FutureExt;

use gridsync_core::{
    config::KafkaArgs,
    kafka::dead_letter,
    retry::{retry_logged, Backoff},
    telemetry::Metrics,
};
use gridsync_schemas::catalog::TopicCatalog;
use gridsync_store::audit::{AuditLog, DeadLetterEntry};
use prometheus::{opts, IntCounterVec};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Headers, Message},
};
use tokio_util::sync::CancellationToken;

/// Consumers name themselves in their dead letters by group id (`gridsync.billing`, prefixed);
/// the audit view lists them by consumer name (`billing`), as the catalog and the CLI do.
pub fn names_by_group(catalog: &TopicCatalog) -> HashMap<String, String> {
    catalog.consumers.iter().map(|c| (c.group_id.clone(), c.name.clone())).collect()
}

/// How a store that is away is waited for: up to five seconds between attempts.
const STORE_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// Reads dead letters into `log` until `shutdown`.
pub struct DeadLetterReader {
    pub kafka: KafkaArgs,
    /// See [`gridsync_schemas::catalog::ConsumerSpec::dead_letter_reader_group`].
    pub group: String,
    pub topics: Vec<String>,
    /// See [`names_by_group`].
    pub names: HashMap<String, String>,
    pub log: AuditLog,
    pub metrics: Metrics,
}

impl DeadLetterReader {
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let recorded = IntCounterVec::new(
            opts!("audit_dead_letters_recorded_total", "Dead letters recorded in the audit store, by consumer."),
            &["consumer"],
        )?;
        self.metrics.register(Box::new(recorded.clone()))?;
        // At zero from the start, per consumer: the first dead letter is an increase.
        for name in self.names.values() {
            recorded.with_label_values(&[name]);
        }
        let consumer: StreamConsumer = self
            .kafka
            .client_config(
                &[("auto.offset.reset", "earliest")],
                &[("group.id", &self.group), ("enable.auto.commit", "true"), ("enable.auto.offset.store", "false")],
            )?
            .create()?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        tracing::info!(topics = ?self.topics, "recording dead letters");
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = consumer.recv() => m,
            };
            let first = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "reading dead letters");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // What is already fetched joins it: a backlog (a replay, a storm of refusals) is
            // recorded a transaction at a time, a letter that comes alone at once.
            let mut batch = vec![first];
            while batch.len() < crate::BATCH {
                match consumer.recv().now_or_never() {
                    Some(Ok(m)) => batch.push(m),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "reading dead letters");
                        break;
                    }
                    None => break,
                }
            }
            let letters: Vec<DeadLetterEntry> = batch.iter().map(|m| entry(m, &self.names)).collect();
            // The store may be down for a while: the letters wait, nothing after them is skipped.
            let record = || self.log.record_dead_letters(&letters);
            if retry_logged(&shutdown, &STORE_RETRY, "recording dead letters", record).await.is_none() {
                return Ok(());
            }
            for letter in &letters {
                tracing::info!(
                    consumer = letter.consumer,
                    topic = letter.topic,
                    offset = letter.offset,
                    class = letter.error_class,
                    "dead letter recorded"
                );
                recorded.with_label_values(&[&letter.consumer]).inc();
            }
            for message in &batch {
                consumer.store_offset_from_message(message)?;
            }
        }
        // Offsets stored so far are committed before the process exits.
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "committing dead-letter offsets on exit");
        }
        Ok(())
    }
}

/// The entry of one dead letter, from its error headers.
fn entry(m: &BorrowedMessage<'_>, names: &HashMap<String, String>) -> DeadLetterEntry {
    let header = |name: &str| -> Option<String> {
        m.headers().and_then(|h| {
            h.iter()
                .filter(|h| h.key == name)
                .last()
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        })
    };
    DeadLetterEntry {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        consumer: header(dead_letter::CONSUMER)
            .map(|c| names.get(&c).cloned().unwrap_or(c))
            .unwrap_or_else(|| "unknown".to_owned()),
        stage: header(dead_letter::STAGE).unwrap_or_default(),
        error_class: header(dead_letter::ERROR_CLASS).unwrap_or_default(),
        error_message: header(dead_letter::ERROR_MESSAGE).unwrap_or_default(),
        failed_at: header(dead_letter::FAILED_AT).unwrap_or_default(),
        original_topic: header(dead_letter::ORIGINAL_TOPIC),
        original_partition: header(dead_letter::ORIGINAL_PARTITION).and_then(|p| p.parse().ok()),
        original_offset: header(dead_letter::ORIGINAL_OFFSET).and_then(|o| o.parse().ok()),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        payload_bytes: m.payload().map_or(0, |p| i64::try_from(p.len()).unwrap_or(i64::MAX)),
    }
}
