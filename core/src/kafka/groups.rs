//! Acting for a consumer group without joining it, and the partitions of topics: what operators'
//! commands (`groups lag`, `replay`, `topics`) ask of the cluster. Every call blocks: run them off
//! the async workers.

use std::time::Duration;

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    TopicPartitionList,
};

use crate::config::{ConfigError, KafkaArgs};

/// How long one call to the cluster (metadata, offsets, groups) waits for its answer.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("creating a Kafka client: {0}")]
    Create(#[source] KafkaError),
    #[error("metadata of {topic}: {source}")]
    Metadata {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// A client acting for consumer group `group` without joining it: it reads (and may commit) the
/// group's offsets.
pub fn group_client(kafka: &KafkaArgs, group: &str) -> Result<BaseConsumer, ClusterError> {
    kafka
        .client_config(&[], &[("group.id", group), ("enable.auto.commit", "false")])?
        .create()
        .map_err(ClusterError::Create)
}

/// Every partition of `topics`, as the cluster has them.
pub fn partitions_of(client: &BaseConsumer, topics: &[String]) -> Result<TopicPartitionList, ClusterError> {
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = client
            .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
            .map_err(|source| ClusterError::Metadata { topic: topic.clone(), source })?;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions.add_partition(topic, p.id());
        }
    }
    Ok(partitions)
}
