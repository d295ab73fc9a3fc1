//! The dead letters of every consumer and producer, into the audit store.
//!
//! Dead letters are not events (an undecodable record stays undecodable), so
//! they are read raw ([`RawRecord`]), on the same consumer loop as events but by a
//! consumer group of their own (`gridsync.audit.dead-letters`), beside the
//! audit consumer's.
//! A record dead-lettered again (a replay of its consumer) is the same dead
//! letter: the store keys it by consumer and original place.
//! At least once, like the rest (it is the same loop): a record's offset is
//! stored only after it is recorded; recording is idempotent on its place in
//! the dead-letter topic.

use std::collections::HashMap;

use gridsync_core::{
    kafka::{dead_letter, Handler, HandlerError, RawRecord},
    telemetry::Metrics,
};
use gridsync_schemas::catalog::TopicCatalog;
use gridsync_store::audit::{AuditLog, DeadLetterEntry};
use prometheus::{opts, IntCounterVec};

/// Consumers name themselves in their dead letters by group id (`gridsync.billing`, prefixed);
/// the audit view lists them by consumer name (`billing`), as the catalog and the CLI do.
pub fn names_by_group(catalog: &TopicCatalog) -> HashMap<String, String> {
    catalog.consumers.iter().map(|c| (c.group_id.clone(), c.name.clone())).collect()
}

/// Records the dead letters it is handed (raw: headers and place), a batch a transaction.
pub struct DeadLetters {
    /// See [`names_by_group`].
    names: HashMap<String, String>,
    log: AuditLog,
    recorded: IntCounterVec,
}

impl DeadLetters {
    pub fn new(names: HashMap<String, String>, log: AuditLog, metrics: &Metrics) -> Result<Self, prometheus::Error> {
        let recorded = IntCounterVec::new(
            opts!("audit_dead_letters_recorded_total", "Dead letters recorded in the audit store, by consumer."),
            &["consumer"],
        )?;
        metrics.register(Box::new(recorded.clone()))?;
        // At zero from the start, per consumer: the first dead letter is an increase.
        for name in names.values() {
            recorded.with_label_values(&[name]);
        }
        Ok(DeadLetters { names, log, recorded })
    }
}

impl Handler for DeadLetters {
    type Input = RawRecord;

    async fn handle(&self, record: &RawRecord) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(record)).await
    }

    /// A backlog (a replay, a storm of refusals) is recorded a transaction at a time.
    fn batch_size(&self) -> usize {
        crate::BATCH
    }

    /// The store away is transient: the letters wait, nothing after them is skipped.
    async fn handle_batch(&self, records: &[RawRecord]) -> Result<(), HandlerError> {
        let letters: Vec<DeadLetterEntry> = records.iter().map(|r| entry(r, &self.names)).collect();
        self.log.record_dead_letters(&letters).await.map_err(|e| HandlerError::from_source("audit.store", true, e))?;
        for letter in &letters {
            tracing::info!(
                consumer = letter.consumer,
                topic = letter.topic,
                offset = letter.offset,
                class = letter.error_class,
                "dead letter recorded"
            );
            self.recorded.with_label_values(&[&letter.consumer]).inc();
        }
        Ok(())
    }
}

/// The entry of one dead letter, from its error headers.
fn entry(record: &RawRecord, names: &HashMap<String, String>) -> DeadLetterEntry {
    let header = |name: &str| record.header(name);
    DeadLetterEntry {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
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
        key: record.key_text(),
        payload_bytes: i64::try_from(record.payload.len()).unwrap_or(i64::MAX),
    }
}
