pub mod acls;
pub mod amplience;
pub mod audit;
pub mod demo;
pub mod dlq;
pub mod edi;
pub mod groups;
pub mod replay;
pub mod report;
pub mod schemas;
pub mod status;
pub mod strimzi;
pub mod topics;

use std::time::Duration;

use anyhow::Context;
use gridsync_core::config::KafkaArgs;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    TopicPartitionList,
};

/// A consumer's name, one of the catalog's (listed in `--help`, checked when parsed).
pub fn consumer_name() -> clap::builder::PossibleValuesParser {
    let catalog = gridsync_schemas::catalog::catalog();
    clap::builder::PossibleValuesParser::new(catalog.iter().flat_map(|c| c.consumers.iter().map(|c| c.name.as_str())))
}

/// A consumer's or producer's name, one of the catalog's with a dead-letter topic.
pub fn dead_letter_owner() -> clap::builder::PossibleValuesParser {
    let catalog = gridsync_schemas::catalog::catalog();
    let producers = catalog.iter().flat_map(|c| c.producers.iter().filter(|p| p.dead_letter_topic.is_some()));
    let consumers = catalog.iter().flat_map(|c| c.consumers.iter().map(|c| c.name.as_str()));
    clap::builder::PossibleValuesParser::new(consumers.chain(producers.map(|p| p.name.as_str())))
}

/// How long one call to the cluster (metadata, offsets, groups) waits for its answer.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A client acting for consumer group `group` without joining it: it reads (and may commit) the
/// group's offsets. Its calls block: run them off the async workers.
pub fn group_client(kafka: &KafkaArgs, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(kafka.client_config(&[], &[("group.id", group), ("enable.auto.commit", "false")])?.create()?)
}

/// Every partition of `topics`, as the cluster has them.
pub fn partitions_of(client: &BaseConsumer, topics: &[String]) -> anyhow::Result<TopicPartitionList> {
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata =
            client.fetch_metadata(Some(topic), ADMIN_TIMEOUT).with_context(|| format!("metadata of {topic}"))?;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions.add_partition(topic, p.id());
        }
    }
    Ok(partitions)
}

/// A topic name as given on the command line, with the topic prefix unless it has it already.
pub fn prefixed(prefix: &str, topic: &str) -> String {
    if topic.starts_with(prefix) {
        topic.to_owned()
    } else {
        format!("{prefix}{topic}")
    }
}
