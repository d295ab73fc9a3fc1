//! `gridsync topics ...`

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use gridsync_core::{config::KafkaArgs, kafka::admin::apply_topics};
use gridsync_schemas::catalog::catalog;

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create or update every topic of the catalog; a second run changes nothing.
    Apply {
        /// Print what would change without changing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the catalog: topics, their event types and settings, and the consumers.
    List,
}

pub async fn run(command: TopicsCommand, kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let catalog = catalog()?.with_prefix(&kafka.topic_prefix);
    match command {
        TopicsCommand::Apply { dry_run } => {
            let changes = apply_topics(kafka, &catalog.topics, dry_run)
                .await
                .with_context(|| format!("applying topics on {}", kafka.brokers))?;
            let verb = if dry_run { "would change" } else { "changed" };
            for change in &changes {
                outln!("{change}");
            }
            outln!("{} topics in the catalog; {} {verb}", catalog.topics.len(), changes.len());
        }
        TopicsCommand::List => {
            for t in &catalog.topics {
                let events: Vec<&str> = t.events.iter().map(|e| e.name()).collect();
                let what = match &t.dead_letter_of {
                    Some(consumer) => format!("dead letters of {consumer}"),
                    None => events.join(", "),
                };
                let config: Vec<String> = t.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
                outln!("{}  partitions={} key={} {}  [{what}]", t.name, t.partitions, t.key.as_str(), config.join(" "));
            }
            for c in &catalog.consumers {
                outln!(
                    "consumer {} group={} reads {} -> {}",
                    c.name,
                    c.group_id,
                    c.topics.join(","),
                    c.dead_letter_topic
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
