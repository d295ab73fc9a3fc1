//! `gridsync groups lag`: how far each consumer group of the catalog is behind, per group and
//! partition (committed offset, end of the partition, lag), with the group's state and live
//! members: what to look at first when a flow seems slow or stuck.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use gridsync_core::config::KafkaArgs;
use gridsync_schemas::catalog::catalog;
use rdkafka::{consumer::Consumer, Offset};

use super::{group_client, partitions_of, ADMIN_TIMEOUT};

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Lag per consumer group and partition (every group of the catalog, or the one named).
    Lag {
        /// A consumer's name (notifications, billing, ...) or a group id.
        consumer: Option<String>,
    },
}

/// One group's partition, as `groups lag` reports it.
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    end: i64,
}

impl PartitionLag {
    /// Records not yet processed: all of them when nothing was committed (a new group reads
    /// from the start of what the partition holds).
    fn lag(&self, start: i64) -> i64 {
        (self.end - self.committed.unwrap_or(start)).max(0)
    }
}

pub async fn run(command: GroupsCommand, kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let GroupsCommand::Lag { consumer } = command;
    let catalog = catalog()?.with_prefix(&kafka.topic_prefix);
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for spec in &catalog.consumers {
        if consumer.as_deref().is_none_or(|c| c == spec.name || c == spec.group_id) {
            groups.push((spec.group_id.clone(), spec.topics.clone()));
        }
    }
    anyhow::ensure!(!groups.is_empty(), "no consumer or group {:?} in the catalog", consumer.unwrap_or_default());
    let kafka = kafka.clone();
    // librdkafka's admin calls block: keep them off the async workers.
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        let mut out = String::new();
        for (group, topics) in &groups {
            out.push_str(&describe_group(&kafka, group, topics)?);
        }
        print!("{out}");
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

fn describe_group(kafka: &KafkaArgs, group: &str, topics: &[String]) -> anyhow::Result<String> {
    let consumer = group_client(kafka, group)?;
    let list = consumer.fetch_group_list(Some(group), ADMIN_TIMEOUT).with_context(|| format!("describing {group}"))?;
    let (state, members) = list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .map_or(("unknown".to_owned(), 0), |g| (g.state().to_owned(), g.members().len()));
    let wanted = partitions_of(&consumer, topics)?;
    let committed =
        consumer.committed_offsets(wanted.clone(), ADMIN_TIMEOUT).with_context(|| format!("{group}'s offsets"))?;
    let mut rows = Vec::new();
    let mut total = 0;
    for element in wanted.elements() {
        let (topic, partition) = (element.topic().to_owned(), element.partition());
        let (start, end) = consumer.fetch_watermarks(&topic, partition, ADMIN_TIMEOUT)?;
        let committed = match committed.find_partition(&topic, partition).map(|p| p.offset()) {
            Some(Offset::Offset(n)) => Some(n),
            _ => None,
        };
        let row = PartitionLag { topic, partition, committed, end };
        total += row.lag(start);
        rows.push((row, start));
    }
    let mut out = format!("{group}  ({state}, {members} live member(s)): lag {total}\n");
    for (row, start) in &rows {
        let committed = row.committed.map_or_else(|| "none".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "  {:<40} {:>3}  committed {:>9}  end {:>9}  lag {:>7}\n",
            row.topic,
            row.partition,
            committed,
            row.end,
            row.lag(*start)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::PartitionLag;

    #[test]
    fn lag_counts_from_the_committed_offset_or_from_the_start() {
        let at = |committed| PartitionLag { topic: "t".into(), partition: 0, committed, end: 120 };
        assert_eq!(at(Some(100)).lag(20), 20);
        assert_eq!(at(None).lag(20), 100);
        assert_eq!(at(Some(130)).lag(0), 0);
    }
}
