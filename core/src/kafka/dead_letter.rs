//! Dead-letter records: the original key, value and headers, plus Kafka
//! Connect-style error headers that say where the record came from and why it
//! failed, so `gridsync dlq` (or any Connect tooling) can inspect and re-drive it.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};

pub const ORIGINAL_TOPIC: &str = "__connect.errors.topic";
pub const ORIGINAL_PARTITION: &str = "__connect.errors.partition";
pub const ORIGINAL_OFFSET: &str = "__connect.errors.offset";
pub const CONSUMER: &str = "__connect.errors.connector.name";
pub const STAGE: &str = "__connect.errors.stage";
pub const ERROR_CLASS: &str = "__connect.errors.exception.class.name";
pub const ERROR_MESSAGE: &str = "__connect.errors.exception.message";
pub const FAILED_AT: &str = "gridsync.dlq.failed_at";
/// Set on a re-driven record: `<dead-letter topic>/<partition>@<offset>`.
pub const REDRIVEN_FROM: &str = "gridsync.redriven_from";
/// Set when Kafka refused the whole record as too large: the payload's original size in
/// bytes; the dead letter then carries only the first `TRUNCATED_PAYLOAD_BYTES` of it.
pub const TRUNCATED_FROM: &str = "gridsync.dlq.truncated_from_bytes";
/// How much of a too-large payload a dead letter keeps.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 4 * 1024;

/// Where in the consumer a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A producer refused its input before it became an event (a forged or malformed webhook).
    Receive,
    /// The bytes are not a record this build can decode.
    Decode,
    /// The consumer's work refused the record.
    Process,
}

impl Stage {
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Receive => "RECEIVE",
            Stage::Decode => "DECODE",
            Stage::Process => "PROCESS",
        }
    }
}

/// Why a record was dead-lettered.
#[derive(Debug, Clone)]
pub struct Failure {
    pub stage: Stage,
    /// Short machine-readable class, e.g. `codec.unknown_fingerprint`.
    pub class: String,
    pub message: String,
}

/// Headers of a producer's dead letter (its input never was a record): who
/// refused it, why, and the `context` the input came with.
pub fn producer_headers(producer: &str, failure: &Failure, context: &[(&str, &str)]) -> OwnedHeaders {
    let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut out = OwnedHeaders::new_with_capacity(5 + context.len());
    for (key, value) in [
        (CONSUMER, producer),
        (STAGE, failure.stage.as_str()),
        (ERROR_CLASS, failure.class.as_str()),
        (ERROR_MESSAGE, failure.message.as_str()),
        (FAILED_AT, failed_at.as_str()),
    ]
    .into_iter()
    .chain(context.iter().copied())
    {
        out = out.insert(Header { key, value: Some(value) });
    }
    out
}

/// Headers of the dead-letter record: the original ones, then the error context
/// (the original headers come first so ours win for a reader taking the last value).
pub fn headers(original: &OwnedMessage, consumer: &str, failure: &Failure) -> OwnedHeaders {
    let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut out = OwnedHeaders::new_with_capacity(original.headers().map_or(0, |h| h.count()) + 8);
    if let Some(h) = original.headers() {
        for header in h.iter().filter(|h| !h.key.starts_with("__connect.errors.")) {
            out = out.insert(header);
        }
    }
    let partition = original.partition().to_string();
    let offset = original.offset().to_string();
    for (key, value) in [
        (ORIGINAL_TOPIC, original.topic()),
        (ORIGINAL_PARTITION, partition.as_str()),
        (ORIGINAL_OFFSET, offset.as_str()),
        (CONSUMER, consumer),
        (STAGE, failure.stage.as_str()),
        (ERROR_CLASS, failure.class.as_str()),
        (ERROR_MESSAGE, failure.message.as_str()),
        (FAILED_AT, failed_at.as_str()),
    ] {
        out = out.insert(Header { key, value: Some(value) });
    }
    out
}

/// The headers a dead letter goes back to its original topic with: the original ones, without the
/// failure's context (or an earlier re-drive's mark), and [`REDRIVEN_FROM`] naming the letter.
pub fn redrive_headers(letter: &super::RawRecord) -> OwnedHeaders {
    let from = letter.place();
    let mut headers = OwnedHeaders::new();
    for (key, value) in &letter.headers {
        if !key.starts_with("__connect.errors.") && key != FAILED_AT && key != REDRIVEN_FROM {
            headers = headers.insert(Header { key, value: value.as_deref() });
        }
    }
    headers.insert(Header { key: REDRIVEN_FROM, value: Some(&from) })
}
