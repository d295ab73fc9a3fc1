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

use gridsync_core::kafka::groups::GroupClient;

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
    Ok(GroupClient::new(kafka, group)?.state()?.is_some_and(|g| g.state != "Dead"))
}

fn replay_group(
    kafka: &KafkaArgs,
    group: &str,
    topics: &[String],
    target: &Target,
    dry_run: bool,
) -> anyhow::Result<()> {
    let client = GroupClient::new(kafka, group)?;
    if let Some(live) = client.state()?.filter(|g| !g.members.is_empty()) {
        bail!(
            "group {group} has {} live member(s) ({}): stop the consumer first, then replay",
            live.members.len(),
            live.members.join(", ")
        );
    }
    // Every partition of the group's topics, or the ones --to-offset names.
    let mut partitions = client.partitions(topics)?;
    if let Target::Offsets(named) = target {
        partitions.retain(|p| named.contains_key(&(p.topic.clone(), p.partition)));
        for (topic, partition) in named.keys() {
            if !partitions.iter().any(|p| (&p.topic, p.partition) == (topic, *partition)) {
                bail!("{topic}:{partition} is not a partition {group} reads");
            }
        }
    }
    let by_time = match target {
        Target::Time(at) => {
            let asked: Vec<(String, i32)> = partitions.iter().map(|p| (p.topic.clone(), p.partition)).collect();
            client.offsets_at(&asked, *at)?
        }
        _ => BTreeMap::new(),
    };
    let mut plan = Vec::new();
    let mut records = 0;
    println!("{group}:");
    for p in &partitions {
        let (topic, partition, low, high) = (&p.topic, p.partition, p.low, p.high);
        let to = match target {
            Target::Earliest => low,
            Target::Offsets(named) => named.get(&(topic.clone(), partition)).copied().unwrap_or(low).clamp(low, high),
            Target::Time(_) => by_time.get(&(topic.clone(), partition)).copied().flatten().unwrap_or(high),
        };
        let now = p.committed.map_or_else(|| "none".to_owned(), |o| o.to_string());
        records += (high - to).max(0);
        println!("  {topic}[{partition}]: committed {now} -> {to} ({} records to process, end {high})", high - to);
        plan.push((topic.clone(), partition, to));
    }
    if dry_run {
        println!("  would reset {} partitions; {records} records would be processed again", plan.len());
        return Ok(());
    }
    // Committing without joining: the broker takes it from an empty group.
    client.commit(&plan).with_context(|| format!("committing the new offsets of {group}"))?;
    println!("  reset {} partitions; {records} records will be processed again", plan.len());
    Ok(())
}
