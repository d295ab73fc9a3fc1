//! Acting for a consumer group without joining it, and the partitions of topics: what operators'
//! commands (`groups lag`, `replay`, `topics`) ask of the cluster. Every call blocks: run them off
//! the async workers.

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::KafkaError,
    Offset, TopicPartitionList,
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
    #[error("{doing} group {group}: {source}")]
    Group {
        group: String,
        doing: &'static str,
        #[source]
        source: KafkaError,
    },
}

impl ClusterError {
    pub(crate) fn metadata(topic: &str, source: KafkaError) -> Self {
        ClusterError::Metadata { topic: topic.to_owned(), source }
    }
}

/// The offset `list` holds for `topic`'s `partition`, if it is one (not "none committed", "end").
fn offset_in(list: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    match list.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(n)) => Some(n),
        _ => None,
    }
}

/// A client acting for consumer group `group` without joining it: it reads (and may commit) the
/// group's offsets.
fn group_client(kafka: &KafkaArgs, group: &str) -> Result<BaseConsumer, ClusterError> {
    kafka
        .client_config(&[], &[("group.id", group), ("enable.auto.commit", "false")])?
        .create()
        .map_err(ClusterError::Create)
}

/// Every partition of `topics`, as the cluster has them.
fn partitions_of(client: &BaseConsumer, topics: &[String]) -> Result<TopicPartitionList, ClusterError> {
    let mut partitions = TopicPartitionList::new();
    for topic in topics {
        let metadata = client
            .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
            .map_err(|source| ClusterError::metadata(topic, source))?;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions.add_partition(topic, p.id());
        }
    }
    Ok(partitions)
}

/// A consumer group as the broker has it.
#[derive(Debug, Clone)]
pub struct GroupState {
    /// Stable, Empty, PreparingRebalance, Dead, ... ("unknown" when the broker does not list it).
    pub state: String,
    /// Each live member as `client-id on host`.
    pub members: Vec<String>,
}

/// One partition a group reads: what it committed, and what the partition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset (none committed yet: `None`).
    pub committed: Option<i64>,
    /// The first offset the partition still holds.
    pub low: i64,
    /// The end of the partition (its high watermark).
    pub high: i64,
}

/// Acting for consumer group `group` without joining it: its state, its offsets, and committing
/// new ones (which the broker takes only from a group without live members). Every call blocks.
pub struct GroupClient {
    group: String,
    client: BaseConsumer,
}

impl GroupClient {
    pub fn new(kafka: &KafkaArgs, group: &str) -> Result<Self, ClusterError> {
        Ok(GroupClient { group: group.to_owned(), client: group_client(kafka, group)? })
    }

    /// The group's state and live members; `None` (or state `Dead`) when the broker does not know
    /// it (no members, no committed offsets).
    pub fn state(&self) -> Result<Option<GroupState>, ClusterError> {
        let list = self
            .client
            .fetch_group_list(Some(&self.group), ADMIN_TIMEOUT)
            .map_err(|source| ClusterError::Group { group: self.group.clone(), doing: "describing", source })?;
        Ok(list.groups().iter().find(|g| g.name() == self.group).map(|g| GroupState {
            state: g.state().to_owned(),
            members: g.members().iter().map(|m| format!("{} on {}", m.client_id(), m.client_host())).collect(),
        }))
    }

    /// Every partition of `topics`, with the group's committed offset and the partition's bounds.
    pub fn partitions(&self, topics: &[String]) -> Result<Vec<PartitionOffsets>, ClusterError> {
        let wanted = partitions_of(&self.client, topics)?;
        let committed = self.client.committed_offsets(wanted.clone(), ADMIN_TIMEOUT).map_err(|source| {
            ClusterError::Group { group: self.group.clone(), doing: "reading the offsets of", source }
        })?;
        let mut partitions = Vec::new();
        for element in wanted.elements() {
            let (topic, partition) = (element.topic().to_owned(), element.partition());
            let (low, high) = self
                .client
                .fetch_watermarks(&topic, partition, ADMIN_TIMEOUT)
                .map_err(|source| ClusterError::metadata(&topic, source))?;
            let committed = offset_in(&committed, &topic, partition);
            partitions.push(PartitionOffsets { topic, partition, committed, low, high });
        }
        Ok(partitions)
    }

    /// The first offset at or after `at_ms` in each of `partitions` (`None`: no record that late).
    pub fn offsets_at(
        &self,
        partitions: &[(String, i32)],
        at_ms: i64,
    ) -> Result<BTreeMap<(String, i32), Option<i64>>, ClusterError> {
        let mut asked = TopicPartitionList::new();
        for (topic, partition) in partitions {
            asked
                .add_partition_offset(topic, *partition, Offset::Offset(at_ms))
                .map_err(|source| ClusterError::metadata(topic, source))?;
        }
        let found = self.client.offsets_for_times(asked, ADMIN_TIMEOUT).map_err(|source| ClusterError::Group {
            group: self.group.clone(),
            doing: "finding times for",
            source,
        })?;
        Ok(partitions
            .iter()
            .map(|(topic, partition)| ((topic.clone(), *partition), offset_in(&found, topic, *partition)))
            .collect())
    }

    /// Commits `offsets` (topic, partition, next offset to read) for the group.
    pub fn commit(&self, offsets: &[(String, i32, i64)]) -> Result<(), ClusterError> {
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|source| ClusterError::metadata(topic, source))?;
        }
        self.client.commit(&list, CommitMode::Sync).map_err(|source| ClusterError::Group {
            group: self.group.clone(),
            doing: "committing the offsets of",
            source,
        })
    }
}

/// One partition of a topic as the cluster has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub in_sync: Vec<i32>,
    /// The first offset it still holds, and its end.
    pub low: i64,
    pub high: i64,
}

/// A topic's name and its partitions, `None` when the cluster does not have it.
pub type TopicLayout = (String, Option<Vec<PartitionLayout>>);

/// Each of `topics` as the cluster has it.
pub fn describe_topics(kafka: &KafkaArgs, topics: &[String]) -> Result<Vec<TopicLayout>, ClusterError> {
    let client: BaseConsumer = kafka.client_config(&[], &[])?.create().map_err(ClusterError::Create)?;
    let mut described = Vec::new();
    for name in topics {
        let metadata =
            client.fetch_metadata(Some(name), ADMIN_TIMEOUT).map_err(|source| ClusterError::metadata(name, source))?;
        let found = metadata.topics().iter().find(|t| t.name() == name);
        let Some(topic) = found.filter(|t| t.error().is_none() && !t.partitions().is_empty()) else {
            described.push((name.clone(), None));
            continue;
        };
        let mut partitions = Vec::new();
        for p in topic.partitions() {
            let (low, high) = client
                .fetch_watermarks(name, p.id(), ADMIN_TIMEOUT)
                .map_err(|source| ClusterError::metadata(name, source))?;
            partitions.push(PartitionLayout {
                id: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                in_sync: p.isr().to_vec(),
                low,
                high,
            });
        }
        described.push((name.clone(), Some(partitions)));
    }
    Ok(described)
}
