//! `gridsync groups lag`: how far each consumer group of the catalog is behind, per group and
//! partition (committed offset, end of the partition, lag), with the group's state and live
//! members: what to look at first when a flow seems slow or stuck. With `--serve`, the same
//! figures as Prometheus metrics, read from the broker every few seconds: lag that exists for a
//! group whose consumers are all down, and for partitions nothing was ever committed on, which
//! the consumers' own `gridsync_consumer_lag` cannot show.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Subcommand;
use gridsync_core::{
    config::{KafkaArgs, TelemetryArgs},
    telemetry::{self, Health, Metrics},
};
use gridsync_schemas::catalog::catalog;
use prometheus::{opts, IntCounter, IntGaugeVec};

use gridsync_core::kafka::groups::GroupClient;

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Lag per consumer group and partition (every group of the catalog, or the one named).
    Lag {
        /// A consumer's name (notifications, billing, ...) or a group id.
        consumer: Option<String>,
        /// Serve the lag as Prometheus metrics (`gridsync_group_lag` and the offsets it comes
        /// from) on `--metrics-addr` (default 127.0.0.1:9477), read again every `--interval-secs`,
        /// until SIGTERM.
        #[arg(long)]
        serve: bool,
        #[arg(long, env = "GRIDSYNC_LAG_INTERVAL_SECS", default_value_t = 15)]
        interval_secs: u64,
        #[command(flatten)]
        telemetry: TelemetryArgs,
    },
}

/// The lag exporter's port when `--metrics-addr` does not say (beside the consumers' 9471–9476).
pub const LAG_EXPORTER_PORT: u16 = 9477;

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
    let GroupsCommand::Lag { consumer, serve, interval_secs, telemetry } = command;
    let groups = groups_of(kafka, consumer)?;
    if serve {
        return export(groups, kafka, &telemetry, Duration::from_secs(interval_secs.max(1))).await;
    }
    let kafka = kafka.clone();
    // librdkafka's admin calls block: keep them off the async workers.
    tokio::task::spawn_blocking(move || -> anyhow::Result<ExitCode> {
        let mut out = String::new();
        for (group, topics) in &groups {
            out.push_str(&describe_group(&kafka, group, topics)?.to_string());
        }
        print!("{out}");
        Ok(ExitCode::SUCCESS)
    })
    .await?
}

/// The catalog's groups (or the one named) with their topics.
fn groups_of(kafka: &KafkaArgs, consumer: Option<String>) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let catalog = catalog()?.with_prefix(&kafka.topic_prefix);
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for spec in &catalog.consumers {
        if consumer.as_deref().is_none_or(|c| c == spec.name || c == spec.group_id) {
            groups.push((spec.group_id.clone(), spec.topics.clone()));
        }
    }
    anyhow::ensure!(!groups.is_empty(), "no consumer or group {:?} in the catalog", consumer.unwrap_or_default());
    Ok(groups)
}

/// One group as the broker has it.
struct GroupLag {
    group: String,
    state: String,
    members: usize,
    /// Each partition with the start of what it holds (where a group without offsets begins).
    partitions: Vec<(PartitionLag, i64)>,
}

impl std::fmt::Display for GroupLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: i64 = self.partitions.iter().map(|(row, start)| row.lag(*start)).sum();
        writeln!(f, "{}  ({}, {} live member(s)): lag {total}", self.group, self.state, self.members)?;
        for (row, start) in &self.partitions {
            let committed = row.committed.map_or_else(|| "none".to_owned(), |n| n.to_string());
            writeln!(
                f,
                "  {:<40} {:>3}  committed {:>9}  end {:>9}  lag {:>7}",
                row.topic,
                row.partition,
                committed,
                row.end,
                row.lag(*start)
            )?;
        }
        Ok(())
    }
}

fn describe_group(kafka: &KafkaArgs, group: &str, topics: &[String]) -> anyhow::Result<GroupLag> {
    let client = GroupClient::new(kafka, group)?;
    let (state, members) = client.state()?.map_or(("unknown".to_owned(), 0), |g| (g.state, g.members.len()));
    let partitions = client
        .partitions(topics)?
        .into_iter()
        .map(|p| (PartitionLag { topic: p.topic, partition: p.partition, committed: p.committed, end: p.high }, p.low))
        .collect();
    Ok(GroupLag { group: group.to_owned(), state, members, partitions })
}

/// The exporter's metrics, per group and partition.
struct LagMetrics {
    lag: IntGaugeVec,
    committed: IntGaugeVec,
    end: IntGaugeVec,
    members: IntGaugeVec,
    errors: IntCounter,
}

impl LagMetrics {
    fn new(metrics: &Metrics) -> anyhow::Result<Self> {
        let partition = ["group", "topic", "partition"];
        let gauge = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntGaugeVec> {
            let gauge = IntGaugeVec::new(opts!(name, help), labels)?;
            metrics.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let errors = IntCounter::new("group_lag_read_errors_total", "Reads of the groups' offsets that failed.")?;
        metrics.register(Box::new(errors.clone()))?;
        Ok(LagMetrics {
            lag: gauge(
                "group_lag",
                "Records a consumer group has not processed, per partition, from the broker's committed offsets \
                 (a partition without one counts from the start of what it holds).",
                &partition,
            )?,
            committed: gauge(
                "group_committed_offset",
                "The group's committed offset per partition (the start of the partition while none is): \
                 unchanged while records wait means nothing is processed.",
                &partition,
            )?,
            end: gauge("group_end_offset", "The end of each partition (its high watermark).", &partition)?,
            members: gauge("group_members", "Live members of each consumer group.", &["group"])?,
            errors,
        })
    }

    fn set(&self, group: &GroupLag) {
        self.members.with_label_values(&[&group.group]).set(i64::try_from(group.members).unwrap_or(i64::MAX));
        for (row, start) in &group.partitions {
            let labels = [group.group.as_str(), row.topic.as_str(), &row.partition.to_string()];
            self.lag.with_label_values(&labels).set(row.lag(*start));
            self.committed.with_label_values(&labels).set(row.committed.unwrap_or(*start));
            self.end.with_label_values(&labels).set(row.end);
        }
    }
}

/// Serves the groups' lag until SIGTERM, read from the broker every `interval`; ready once a
/// read succeeded, unready (saying why) while reads fail.
async fn export(
    groups: Vec<(String, Vec<String>)>,
    kafka: &KafkaArgs,
    telemetry_args: &TelemetryArgs,
    interval: Duration,
) -> anyhow::Result<ExitCode> {
    telemetry::logging::init(telemetry_args);
    let shutdown = gridsync_core::shutdown::on_signals().context("installing signal handlers")?;
    let metrics = Metrics::new("lag-exporter")?;
    let lag = LagMetrics::new(&metrics)?;
    let health = Health::default();
    let addr =
        telemetry_args.metrics_addr.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], LAG_EXPORTER_PORT)));
    let (bound, server) = telemetry::serve(addr, metrics.clone(), health.clone(), shutdown.clone())
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(metrics = %format!("http://{bound}/metrics"), groups = groups.len(), "exporting consumer-group lag");
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let (kafka, groups) = (kafka.clone(), groups.clone());
        let read = tokio::task::spawn_blocking(move || {
            groups
                .iter()
                .map(|(group, topics)| describe_group(&kafka, group, topics))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await?;
        match read {
            Ok(read) => {
                read.iter().for_each(|group| lag.set(group));
                health.waiting_for(None);
                health.set_ready(true);
            }
            Err(e) => {
                lag.errors.inc();
                tracing::warn!(error = format!("{e:#}"), "reading the groups' offsets");
                health.set_ready(false);
                health.waiting_for(Some(format!("the broker's offsets: {e:#}")));
            }
        }
    }
    health.set_ready(false);
    server.await?;
    Ok(ExitCode::SUCCESS)
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
