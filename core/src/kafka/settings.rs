//! What one consumer is (from the catalog) and how its loop runs.

use gridsync_schemas::catalog::ConsumerSpec;

use super::Backoff;

/// Transient failures of one record retried before its partition counts as paused, by default.
pub const DEFAULT_ATTEMPTS_BEFORE_PAUSE: u32 = 8;
/// How long one attempt of a handler may take unless configured.
pub const DEFAULT_HANDLER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Settings of one consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Consumer name (logs, metrics, dead-letter headers).
    pub name: String,
    pub group_id: String,
    pub topics: Vec<String>,
    /// The event types it acts on (`None`: all): records of the others (by their
    /// `gridsync.event_type` header) are skipped unread, their offsets stored. From the catalog.
    pub handles: Option<Vec<String>>,
    pub dead_letter_topic: String,
    /// How a record whose work failed transiently is retried: backing off up to the longest
    /// wait, then every longest wait until it succeeds or the process stops. A record is never
    /// skipped because a dependency is down.
    pub retry: Backoff,
    /// Retries of one record after which its partition counts as paused (logged as such).
    pub attempts_before_pause: u32,
    /// Records buffered per partition worker; see `dispatch` for what happens when it is full.
    pub partition_buffer: usize,
    /// Longest one attempt of the handler may take before it counts as a transient failure.
    pub handler_timeout: std::time::Duration,
    /// Records of different keys of one partition handled at once (1: strictly in partition
    /// order). A key's records are always handled one after another, in order.
    pub key_concurrency: usize,
    /// Records this instance handles at once, over all its partitions (0: no bound). A second
    /// instance of the consumer brings a budget of its own.
    pub max_in_flight: usize,
}

impl ConsumerSettings {
    /// Whether records of `event_type` are handled (see [`ConsumerSettings::handles`]).
    pub fn accepts(&self, event_type: &str) -> bool {
        self.handles.as_ref().is_none_or(|handles| handles.iter().any(|h| h == event_type))
    }

    pub fn from_catalog(spec: &ConsumerSpec, retry: Backoff, partition_buffer: usize) -> Self {
        ConsumerSettings {
            name: spec.name.clone(),
            group_id: spec.group_id.clone(),
            topics: spec.topics.clone(),
            handles: spec.handles.clone(),
            dead_letter_topic: spec.dead_letter_topic.clone(),
            retry,
            attempts_before_pause: DEFAULT_ATTEMPTS_BEFORE_PAUSE,
            partition_buffer: partition_buffer.max(1),
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            key_concurrency: 1,
            max_in_flight: 0,
        }
    }
}
