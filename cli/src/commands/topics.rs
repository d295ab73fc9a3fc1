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
    /// What the cluster holds of the catalog's topics (or the ones named): partitions with
    /// leader, replicas, in-sync replicas and records held, and whether it matches the catalog.
    Describe {
        /// Topic names (with or without the prefix); every catalog topic when none.
        topics: Vec<String>,
    },
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
        TopicsCommand::Describe { topics } => {
            let names: Vec<String> = if topics.is_empty() {
                catalog.topics.iter().map(|t| t.name.clone()).collect()
            } else {
                topics.iter().map(|t| super::prefixed(&kafka.topic_prefix, t)).collect()
            };
            let expected: std::collections::BTreeMap<String, i32> =
                catalog.topics.iter().map(|t| (t.name.clone(), t.partitions)).collect();
            let kafka = kafka.clone();
            // librdkafka's metadata calls block: keep them off the async workers.
            let described = tokio::task::spawn_blocking(move || describe(&kafka, &names, &expected)).await??;
            outln!("{}", described.text.trim_end());
            if described.problems > 0 {
                eprintln!(
                    "{} topic(s) missing or unlike the catalog: `gridsync topics apply` creates or fixes them",
                    described.problems
                );
                return Ok(ExitCode::FAILURE);
            }
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

/// What `topics describe` found, and how many topics are missing or unlike the catalog.
struct Described {
    text: String,
    problems: usize,
}

fn describe(
    kafka: &KafkaArgs,
    names: &[String],
    expected: &std::collections::BTreeMap<String, i32>,
) -> anyhow::Result<Described> {
    let mut described = Described { text: String::new(), problems: 0 };
    for (name, partitions) in gridsync_core::kafka::groups::describe_topics(kafka, names)? {
        let Some(partitions) = partitions else {
            described.problems += 1;
            described.text.push_str(&format!("{name}: not on the cluster\n"));
            continue;
        };
        let held: i64 = partitions.iter().map(|p| p.high - p.low).sum();
        let lines: String = partitions
            .iter()
            .map(|p| {
                format!(
                    "  {:>3}  leader {}  replicas {:?}  in sync {:?}  offsets {}..{}\n",
                    p.id, p.leader, p.replicas, p.in_sync, p.low, p.high
                )
            })
            .collect();
        let count = partitions.len();
        let unlike = match expected.get(&name) {
            Some(&want) if usize::try_from(want).ok() != Some(count) => {
                described.problems += 1;
                format!("; the catalog says {want} partitions")
            }
            Some(_) => String::new(),
            None => "; not a catalog topic".to_owned(),
        };
        described.text.push_str(&format!("{name}: {count} partitions, {held} records held{unlike}\n{lines}"));
    }
    Ok(described)
}
