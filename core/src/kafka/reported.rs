//! Whether a DeliveryPerformed already reached Kafka.
//!
//! The ledger notes a report only after Kafka acknowledged it, so a process
//! killed between the two leaves a side effect "done, not reported" although
//! its event is on `gridsync.deliveries`. Before reporting such an effect again
//! (a rare path: only after a crash), its deterministic event id is looked for
//! on the topic, from shortly before the effect was performed: found, it is
//! only noted; not found, it is published. So every side effect is reported
//! exactly once.

use std::{collections::HashMap, time::Duration};

use super::headers;
use crate::config::KafkaArgs;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    Message, Offset, TopicPartitionList,
};

/// Records produced this long before the effect's own time are not read
/// (a producer's clock and the ledger's may differ a little).
const CLOCK_MARGIN_MS: i64 = 60_000;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("reading {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("the look-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Whether `topic` holds a record whose event id is `event_id`, written at or
/// after `since_ms` (less the clock margin).
pub async fn is_on_topic(kafka: &KafkaArgs, topic: &str, event_id: &str, since_ms: i64) -> Result<bool, LookupError> {
    let config = kafka.client_config(
        &[],
        &[
            ("group.id", gridsync_schemas::access::REPORT_LOOKUP_GROUP),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ],
    )?;
    let (topic, event_id) = (topic.to_owned(), event_id.to_owned());
    // librdkafka's look-ups block: off the async workers.
    tokio::task::spawn_blocking(move || {
        let failed = |source| LookupError::Kafka { topic: topic.clone(), source };
        let consumer: BaseConsumer = config.create().map_err(failed)?;
        let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT).map_err(failed)?;
        let mut times = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            times
                .add_partition_offset(&topic, partition.id(), Offset::Offset(since_ms - CLOCK_MARGIN_MS))
                .map_err(failed)?;
        }
        let starts = consumer.offsets_for_times(times, TIMEOUT).map_err(failed)?;
        // Read each partition from its start up to its end as of now.
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for element in starts.elements() {
            let Offset::Offset(start) = element.offset() else { continue };
            let (_, high) = consumer.fetch_watermarks(&topic, element.partition(), TIMEOUT).map_err(failed)?;
            if start < high {
                ends.insert(element.partition(), high);
                assignment.add_partition_offset(&topic, element.partition(), Offset::Offset(start)).map_err(failed)?;
            }
        }
        if ends.is_empty() {
            return Ok(false);
        }
        consumer.assign(&assignment).map_err(failed)?;
        let started = std::time::Instant::now();
        while !ends.is_empty() && started.elapsed() < 3 * TIMEOUT {
            let Some(polled) = consumer.poll(Duration::from_millis(200)) else { continue };
            let message = polled.map_err(failed)?;
            if headers::get(message.headers(), headers::EVENT_ID) == Some(event_id.as_str()) {
                return Ok(true);
            }
            if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
                ends.remove(&message.partition());
            }
        }
        if ends.is_empty() {
            Ok(false)
        } else {
            Err(failed(KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::OperationTimedOut)))
        }
    })
    .await?
}
