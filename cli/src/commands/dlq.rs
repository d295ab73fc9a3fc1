//! `gridsync dlq ...`: inspect and re-drive a consumer's dead letters.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Subcommand;
use gridsync_core::{
    config::KafkaArgs,
    kafka::{dead_letter, EventProducer},
    telemetry::Metrics,
};
use gridsync_schemas::{catalog::catalog, codec};
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders},
    Offset, TopicPartitionList,
};

/// Header a re-driven record carries: `<dead-letter topic>/<partition>@<offset>`.
pub const REDRIVEN_FROM: &str = "gridsync.redriven_from";

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print a consumer's dead letters, one JSON object per line: where each
    /// record came from, why it failed, and the record itself when it decodes.
    Show {
        /// The consumer (or producer) whose dead letters to show.
        #[arg(value_parser = super::dead_letter_owner())]
        consumer: String,
        /// Stop after this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// After a fix: publish each dead letter not re-driven yet back to its
    /// original topic (original key, value and headers), so it is processed
    /// again. Progress is committed: a second run re-drives only newer ones; a
    /// run stopped by a Kafka error resumes from its last commit.
    Redrive {
        /// The consumer (or producer) whose dead letters to re-drive.
        #[arg(value_parser = super::dead_letter_owner())]
        consumer: String,
        /// Stop after this many records.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
}

/// Where reading a dead-letter topic starts.
enum From {
    Beginning,
    /// After what this group committed.
    Committed,
}

/// Reads `topic` up to its end (or `limit` records), calling `visit` on each.
/// Returns how many were visited and the offsets after them.
fn read(
    reader: &BaseConsumer,
    topic: &str,
    from: From,
    limit: usize,
    mut visit: impl FnMut(&BorrowedMessage<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<(usize, TopicPartitionList)> {
    let metadata = reader
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading metadata of {topic}"))?;
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
    }
    if let From::Committed = from {
        let committed = committed_offsets(reader, &assignment)?;
        for elem in committed.elements() {
            if let Offset::Offset(o) = elem.offset() {
                assignment.set_partition_offset(topic, elem.partition(), Offset::Offset(o))?;
            }
        }
    }
    let mut next = assignment.clone();
    let mut open = assignment.count();
    reader.assign(&assignment)?;
    let mut seen = 0;
    while open > 0 && seen < limit {
        match reader.poll(Duration::from_secs(10)) {
            None => break,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => return Err(e).context(format!("reading {topic}")),
            Some(Ok(m)) => {
                visit(&m)?;
                next.set_partition_offset(topic, m.partition(), Offset::Offset(m.offset() + 1))?;
                seen += 1;
            }
        }
    }
    Ok((seen, next))
}

/// The group's committed offsets. A group's coordinator may still be loading (a new group, a
/// broker just started): asked again for up to half a minute before giving up.
fn committed_offsets(reader: &BaseConsumer, assignment: &TopicPartitionList) -> anyhow::Result<TopicPartitionList> {
    let started = std::time::Instant::now();
    loop {
        match reader.committed_offsets(assignment.clone(), Duration::from_secs(10)) {
            Ok(committed) => return Ok(committed),
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("reading the committed offsets: {e}; asking again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e).context("reading the committed offsets"),
        }
    }
}

fn reader(kafka: &KafkaArgs, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(kafka
        .client_config(&[], &[("group.id", group), ("enable.auto.commit", "false"), ("enable.partition.eof", "true")])?
        .create()?)
}

pub async fn run(command: DlqCommand, kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let catalog = catalog()?.with_prefix(&kafka.topic_prefix);
    let (consumer, limit, redrive) = match &command {
        DlqCommand::Show { consumer, limit } => (consumer, *limit, false),
        DlqCommand::Redrive { consumer, limit } => (consumer, *limit, true),
    };
    let topic = catalog.dead_letter_topic(consumer)?.to_owned();
    let kafka = kafka.clone();
    let group = format!("{}gridsync.dlq-redrive.{consumer}", kafka.topic_prefix);
    let producer = if redrive { Some(EventProducer::new(&kafka, Metrics::new("gridsync-dlq")?)?) } else { None };
    let runtime = tokio::runtime::Handle::current();
    // librdkafka's polling blocks: keep it off the async workers.
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        let codec = codec()?;
        let Some(producer) = producer else {
            let reader = reader(&kafka, "gridsync-dlq-reader")?;
            let (shown, _) = read(&reader, &topic, From::Beginning, limit, |m| {
                let headers: serde_json::Map<String, serde_json::Value> = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into()))
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
                Ok(())
            })?;
            eprintln!("{shown} dead letters in {topic}");
            return Ok(ExitCode::SUCCESS);
        };
        let reader = reader(&kafka, &group)?;
        let mut skipped = 0;
        // On a terminal, a count as it goes (a re-drive of many letters takes a while).
        let progress = indicatif::ProgressBar::new_spinner().with_message(format!("re-driving {topic}"));
        progress.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} letters ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let (read_count, next) = read(&reader, &topic, From::Committed, limit, |m| {
            let from = format!("{topic}/{}@{}", m.partition(), m.offset());
            let original = m
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == dead_letter::ORIGINAL_TOPIC))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            // Each letter's progress is committed once it is done with, so a run that fails part-way
            // (a Kafka error, a topic gone) re-drives nothing twice when run again.
            let done = |m: &BorrowedMessage<'_>| {
                reader.commit_message(m, CommitMode::Sync).context("committing re-drive progress")
            };
            let Some(original) = original else {
                eprintln!("{from}: no {} header, not a gridsync dead letter; skipped", dead_letter::ORIGINAL_TOPIC);
                skipped += 1;
                return done(m);
            };
            // The original headers, without the failure's context, and where it came from.
            let mut headers = OwnedHeaders::new();
            for h in m.headers().iter().flat_map(|h| h.iter()) {
                if !h.key.starts_with("__connect.errors.") && h.key != dead_letter::FAILED_AT && h.key != REDRIVEN_FROM
                {
                    headers = headers.insert(h);
                }
            }
            headers = headers.insert(Header { key: REDRIVEN_FROM, value: Some(&from) });
            let sent = runtime
                .block_on(producer.send(&original, m.key(), m.payload(), headers))
                .with_context(|| format!("re-driving {from} to {original}"))?;
            progress.suspend(|| -> anyhow::Result<()> {
                outln!("{from} -> {}/{}@{}", sent.topic, sent.partition, sent.offset);
                Ok(())
            })?;
            progress.inc(1);
            done(m)
        })?;
        progress.finish_and_clear();
        if read_count > 0 {
            reader.commit(&next, CommitMode::Sync).context("committing re-drive progress")?;
        }
        outln!("re-drove {} dead letters from {topic} ({skipped} skipped)", read_count - skipped);
        Ok(ExitCode::SUCCESS)
    })
    .await?
}
