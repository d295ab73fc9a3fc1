//! `gridsync dlq ...`: inspect and re-drive a consumer's dead letters.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use gridsync_core::{
    config::KafkaArgs,
    kafka::{
        dead_letter,
        reader::{ReadFrom, TopicReader},
        EventProducer,
    },
    telemetry::Metrics,
};
use gridsync_schemas::{catalog::catalog, codec};

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

pub async fn run(command: DlqCommand, kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let catalog = catalog()?.with_prefix(&kafka.topic_prefix);
    let (consumer, limit, redrive) = match &command {
        DlqCommand::Show { consumer, limit } => (consumer, *limit, false),
        DlqCommand::Redrive { consumer, limit } => (consumer, *limit, true),
    };
    let topic = catalog.dead_letter_topic(consumer)?.to_owned();
    if !redrive {
        let reader = TopicReader::open(kafka, "gridsync-dlq-reader", &topic, ReadFrom::Beginning).await?;
        // librdkafka's polling blocks: keep it off the async workers.
        return tokio::task::spawn_blocking(move || show(&reader, &topic, limit)).await?;
    }
    let group = format!("{}gridsync.dlq-redrive.{consumer}", kafka.topic_prefix);
    let producer = EventProducer::new(kafka, Metrics::new("gridsync-dlq")?)?;
    let reader = TopicReader::open(kafka, &group, &topic, ReadFrom::Committed).await?;
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        let mut skipped = 0;
        // On a terminal, a count as it goes (a re-drive of many letters takes a while).
        let progress = indicatif::ProgressBar::new_spinner().with_message(format!("re-driving {topic}"));
        progress.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} letters ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let read_count = reader.read(limit, |letter| -> anyhow::Result<()> {
            let from = letter.place();
            // Each letter's progress is committed once it is done with, so a run that fails part-way
            // (a Kafka error, a topic gone) re-drives nothing twice when run again.
            let Some(original) = letter.header(dead_letter::ORIGINAL_TOPIC) else {
                eprintln!("{from}: no {} header, not a gridsync dead letter; skipped", dead_letter::ORIGINAL_TOPIC);
                skipped += 1;
                return reader.done(letter).context("committing re-drive progress");
            };
            let headers = dead_letter::redrive_headers(letter);
            let sent = runtime
                .block_on(producer.send(&original, letter.key.as_deref(), Some(&letter.payload), headers))
                .with_context(|| format!("re-driving {from} to {original}"))?;
            progress.suspend(|| -> anyhow::Result<()> {
                outln!("{from} -> {}/{}@{}", sent.topic, sent.partition, sent.offset);
                Ok(())
            })?;
            progress.inc(1);
            reader.done(letter).context("committing re-drive progress")
        })?;
        progress.finish_and_clear();
        outln!("re-drove {} dead letters from {topic} ({skipped} skipped)", read_count - skipped);
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

/// Prints up to `limit` dead letters of `topic`, one JSON object a line.
fn show(reader: &TopicReader, topic: &str, limit: usize) -> anyhow::Result<ExitCode> {
    let codec = codec()?;
    let shown = reader.read(limit, |letter| -> anyhow::Result<()> {
        let headers: serde_json::Map<String, serde_json::Value> = letter
            .headers
            .iter()
            .map(|(key, value)| (key.clone(), String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into()))
            .collect();
        let event = codec.decode(&letter.payload).ok().and_then(|d| d.event.to_json().ok());
        let line = serde_json::json!({
            "dlq_partition": letter.partition,
            "dlq_offset": letter.offset,
            "key": letter.key_text(),
            "headers": headers,
            "payload_bytes": letter.payload.len(),
            "event": event,
        });
        outln!("{line}");
        Ok(())
    })?;
    eprintln!("{shown} dead letters in {topic}");
    Ok(ExitCode::SUCCESS)
}
