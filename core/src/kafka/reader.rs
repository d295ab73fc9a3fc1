//! Reading one topic to its end outside the consumer loop, for an operator's command (`dlq show`,
//! `dlq redrive`): every partition from its start or from where a group left off, one record at a
//! time, the group's progress committed as each record is done with. The reading blocks: run it
//! off the async workers.

use std::time::Duration;

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::KafkaError,
    Offset, TopicPartitionList,
};

use super::{
    groups::{ClusterError, ADMIN_TIMEOUT},
    Backoff, RawRecord,
};
use crate::config::KafkaArgs;

/// How long a group's committed offsets are asked for while its coordinator is still loading (a
/// new group, a broker just started).
const COMMITTED_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_millis(500)).giving_up_after(60);
/// How long one poll waits for a record before the topic counts as read.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The first record each partition holds.
    Beginning,
    /// After what the reader's group committed (from the beginning where it committed nothing).
    Committed,
}

#[derive(Debug, thiserror::Error)]
#[error("reading {topic}: {source}")]
pub struct ReadError {
    topic: String,
    #[source]
    source: KafkaError,
}

/// A reader of one topic for group `group` (which only commits, never joins).
pub struct TopicReader {
    client: BaseConsumer,
    topic: String,
}

impl TopicReader {
    /// Assigns every partition of `topic`, positioned at `from`.
    pub async fn open(kafka: &KafkaArgs, group: &str, topic: &str, from: ReadFrom) -> Result<Self, ClusterError> {
        let client: BaseConsumer = kafka
            .client_config(
                &[],
                &[("group.id", group), ("enable.auto.commit", "false"), ("enable.partition.eof", "true")],
            )?
            .create()
            .map_err(ClusterError::Create)?;
        let metadata = client
            .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
            .map_err(|source| ClusterError::metadata(topic, source))?;
        let mut assignment = TopicPartitionList::new();
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .map_err(|source| ClusterError::metadata(topic, source))?;
        }
        if from == ReadFrom::Committed {
            let asked = || async {
                client.committed_offsets(assignment.clone(), ADMIN_TIMEOUT).map_err(|source| ClusterError::Group {
                    group: group.to_owned(),
                    doing: "reading the offsets of",
                    source,
                })
            };
            let committed = gridsync_retry::retry_bounded(&COMMITTED_BACKOFF, asked, |e: &ClusterError, _| {
                tracing::warn!(error = %e, "the group's coordinator may still be loading; asking again");
                gridsync_retry::Verdict::RETRY
            })
            .await?;
            for element in committed.elements() {
                if let Offset::Offset(o) = element.offset() {
                    assignment
                        .set_partition_offset(topic, element.partition(), Offset::Offset(o))
                        .map_err(|source| ClusterError::metadata(topic, source))?;
                }
            }
        }
        client.assign(&assignment).map_err(|source| ClusterError::metadata(topic, source))?;
        Ok(TopicReader { client, topic: topic.to_owned() })
    }

    /// Reads up to `limit` records, to the end of every partition, handing each to `visit` (an
    /// error of which stops the reading and is returned); returns how many it read. Blocks.
    pub fn read<E: From<ReadError>>(
        &self,
        limit: usize,
        mut visit: impl FnMut(&RawRecord) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut open = self.client.assignment().map(|a| a.count()).unwrap_or_default();
        let mut seen = 0;
        while open > 0 && seen < limit {
            match self.client.poll(POLL_TIMEOUT) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
                Some(Err(source)) => return Err(ReadError { topic: self.topic.clone(), source }.into()),
                Some(Ok(message)) => {
                    visit(&RawRecord::of(&message))?;
                    seen += 1;
                }
            }
        }
        Ok(seen)
    }

    /// Commits the group's progress past `record`, so a later read from [`ReadFrom::Committed`]
    /// starts after it. Blocks.
    pub fn done(&self, record: &RawRecord) -> Result<(), ClusterError> {
        let mut next = TopicPartitionList::new();
        next.add_partition_offset(&record.topic, record.partition, Offset::Offset(record.offset + 1))
            .map_err(|source| ClusterError::metadata(&record.topic, source))?;
        self.client.commit(&next, CommitMode::Sync).map_err(|source| ClusterError::metadata(&record.topic, source))
    }
}
