//! `gridsync replay <consumer> --to-earliest | --to-time <RFC 3339> | --to-offset <topic:partition:offset>`:
//! moves a consumer group's committed offsets back (or forward), so the
//! consumer processes those records again when it next starts. Its side
//! effects are idempotent, so a replay creates nothing twice.
//!
//! Refused while the group has live members: a running consumer would commit
//! its own positions over the new ones. `--dry-run` shows the plan only.

use std::{collections::BTreeMap, process::ExitCode};

use anyhow::{bail, Context};
use clap::Args;
use gridsync_core::config::KafkaArgs;
use gridsync_schemas::catalog::catalog;

use gridsync_core::kafka::groups::{group_client, partitions_of, ADMIN_TIMEOUT};
use rdkafka::{
    consumer::{CommitMode, Consumer},
    Offset, TopicPartitionList,
};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_time", "to_offset"])))]
pub struct ReplayArgs {
    /// The consumer whose group to move.
    #[arg(value_parser = super::consumer_name())]
    consumer: String,
    /// From the first record each partition still holds.
    #[arg(long)]
    to_earliest: bool,
    /// From the first record at or after this time (RFC 3339); a partition with none after it
    /// is moved to its end.
    #[arg(long)]
    to_time: Option<String>,
    /// `topic:partition:offset`, repeatable; partitions not named keep their offsets.
    #[arg(long)]
    to_offset: Vec<String>,
    /// Print the plan, change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Where one group's reading starts again.
enum Target {
    Earliest,
    Time(i64),
    Offsets(BTreeMap<(String, i32), i64>),
}

fn target(args: &ReplayArgs, prefix: &str) -> anyhow::Result<Target> {
    if args.to_earliest {
        return Ok(Target::Earliest);
    }
    if let Some(time) = &args.to_time {
        let at = chrono::DateTime::parse_from_rfc3339(time)
            .with_context(|| format!("--to-time {time:?} is not an RFC 3339 time"))?;
        return Ok(Target::Time(at.timestamp_millis()));
    }
    let mut offsets = BTreeMap::new();
    for spec in &args.to_offset {
        let mut parts = spec.rsplitn(3, ':');
        let (Some(offset), Some(partition), Some(topic)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("--to-offset {spec:?} is not topic:partition:offset");
        };
        let partition: i32 = partition.parse().with_context(|| format!("partition in {spec:?}"))?;
        let offset: i64 = offset.parse().with_context(|| format!("offset in {spec:?}"))?;
        offsets.insert((super::prefixed(prefix, topic), partition), offset);
    }
    Ok(Target::Offsets(offsets))
}

pub async fn run(args: ReplayArgs, kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let catalog = catalog()?.with_prefix(&kafka.topic_prefix);
    let spec = catalog.consumer(&args.consumer)?.clone();
    let target = target(&args, &kafka.topic_prefix)?;
    let kafka = kafka.clone();
    // librdkafka's admin calls block: keep them off the async workers.
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        let mut groups = vec![(spec.group_id.clone(), spec.topics.clone())];
        // The audit consumer's dead-letter reader replays with it, over every dead-letter topic.
        let reader_group = spec.dead_letter_reader_group();
        if group_exists(&kafka, &reader_group)? {
            groups.push((reader_group, catalog.dead_letter_topics()));
        }
        for (group, topics) in &groups {
            replay_group(&kafka, group, topics, &target, args.dry_run)?;
        }
        if args.dry_run {
            eprintln!("dry run: nothing changed");
        } else {
            eprintln!("done: start {} again to process from there", args.consumer);
        }
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

/// Whether the broker knows `group` (it has members or committed offsets).
fn group_exists(kafka: &KafkaArgs, group: &str) -> anyhow::Result<bool> {
    let list = group_client(kafka, group)?.fetch_group_list(Some(group), ADMIN_TIMEOUT)?;
    Ok(list.groups().iter().any(|g| g.name() == group && g.state() != "Dead"))
}

fn replay_group(
    kafka: &KafkaArgs,
    group: &str,
    topics: &[String],
    target: &Target,
    dry_run: bool,
) -> anyhow::Result<()> {
    let consumer = group_client(kafka, group)?;
    let list = consumer.fetch_group_list(Some(group), ADMIN_TIMEOUT).with_context(|| format!("describing {group}"))?;
    if let Some(live) = list.groups().iter().find(|g| g.name() == group && !g.members().is_empty()) {
        let members: Vec<String> =
            live.members().iter().map(|m| format!("{} on {}", m.client_id(), m.client_host())).collect();
        bail!(
            "group {group} has {} live member(s) ({}): stop the consumer first, then replay",
            members.len(),
            members.join(", ")
        );
    }
    // Every partition of the group's topics, or the ones --to-offset names.
    let mut partitions = partitions_of(&consumer, topics)?;
    if let Target::Offsets(named) = target {
        let mut wanted = TopicPartitionList::new();
        for e in partitions.elements() {
            if named.contains_key(&(e.topic().to_owned(), e.partition())) {
                wanted.add_partition(e.topic(), e.partition());
            }
        }
        partitions = wanted;
    }
    if let Target::Offsets(named) = target {
        for (topic, partition) in named.keys() {
            if partitions.find_partition(topic, *partition).is_none() {
                bail!("{topic}:{partition} is not a partition {group} reads");
            }
        }
    }
    let committed = consumer.committed_offsets(partitions.clone(), ADMIN_TIMEOUT)?;
    let by_time = match target {
        Target::Time(at) => {
            let mut asked = TopicPartitionList::new();
            for e in partitions.elements() {
                asked.add_partition_offset(e.topic(), e.partition(), Offset::Offset(*at))?;
            }
            Some(consumer.offsets_for_times(asked, ADMIN_TIMEOUT)?)
        }
        _ => None,
    };
    let mut plan = TopicPartitionList::new();
    let mut records = 0;
    println!("{group}:");
    for e in partitions.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        let (low, high) = consumer.fetch_watermarks(topic, partition, ADMIN_TIMEOUT)?;
        let to = match target {
            Target::Earliest => low,
            Target::Offsets(named) => {
                named.get(&(topic.to_owned(), partition)).copied().unwrap_or(low).clamp(low, high)
            }
            Target::Time(_) => {
                match by_time.as_ref().and_then(|t| t.find_partition(topic, partition)).map(|p| p.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => high,
                }
            }
        };
        let now = match committed.find_partition(topic, partition).map(|p| p.offset()) {
            Some(Offset::Offset(o)) => o.to_string(),
            _ => "none".to_owned(),
        };
        records += (high - to).max(0);
        println!("  {topic}[{partition}]: committed {now} -> {to} ({} records to process, end {high})", high - to);
        plan.add_partition_offset(topic, partition, Offset::Offset(to))?;
    }
    if dry_run {
        println!("  would reset {} partitions; {records} records would be processed again", plan.count());
        return Ok(());
    }
    // Committing without joining: the broker takes it from an empty group.
    consumer.commit(&plan, CommitMode::Sync).with_context(|| format!("committing the new offsets of {group}"))?;
    println!("  reset {} partitions; {records} records will be processed again", plan.count());
    Ok(())
}
