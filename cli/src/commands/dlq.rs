//! `gridsync dlq ...`: inspect a consumer's dead letters.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Subcommand;
use gridsync_core::config::KafkaArgs;
use gridsync_schemas::{catalog::catalog, codec};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message},
    Offset, TopicPartitionList,
};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print a consumer's dead letters, one JSON object per line: where each
    /// record came from, why it failed, and the record itself when it decodes.
    Show {
        /// Consumer name (notifications, billing, exceptions, distribution, audit).
        consumer: String,
        /// Stop after this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub async fn run(command: DlqCommand, kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let DlqCommand::Show { consumer, limit } = command;
    let catalog = catalog()?.with_prefix(&kafka.topic_prefix);
    let topic = catalog.consumer(&consumer)?.dead_letter_topic.clone();
    let kafka = kafka.clone();
    // A plain assigned reader: no group, no commits, the DLQ is only read.
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        let reader: BaseConsumer = kafka
            .client_config(
                &[],
                &[
                    ("group.id", "gridsync-dlq-reader"),
                    ("enable.auto.commit", "false"),
                    ("enable.partition.eof", "true"),
                ],
            )?
            .create()?;
        let metadata = reader
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .with_context(|| format!("reading metadata of {topic}"))?;
        let mut assignment = TopicPartitionList::new();
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            assignment.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
        }
        let mut open = assignment.count();
        reader.assign(&assignment)?;
        let codec = codec()?;
        let mut shown = 0;
        while open > 0 && shown < limit {
            match reader.poll(Duration::from_secs(10)) {
                None => break,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
                Some(Err(e)) => return Err(e).context("reading the dead-letter topic"),
                Some(Ok(m)) => {
                    let headers: serde_json::Map<String, serde_json::Value> = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let payload = m.payload().unwrap_or_default();
                    let event = codec.decode(payload).ok().and_then(|d| d.event.to_json().ok());
                    let line = serde_json::json!({
                        "dlq_partition": m.partition(),
                        "dlq_offset": m.offset(),
                        "key": m.key().map(String::from_utf8_lossy),
                        "headers": headers,
                        "payload_bytes": payload.len(),
                        "event": event,
                    });
                    outln!("{line}");
                    shown += 1;
                }
            }
        }
        eprintln!("{shown} dead letters in {topic}");
        Ok(ExitCode::SUCCESS)
    })
    .await?
}
