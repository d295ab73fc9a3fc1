//! What a consumer's logic is to the consumer loop: a [`Handler`] of decoded [`Record`]s (or of
//! [`RawRecord`]s, as they are on the topic), and how it says a record failed
//! ([`HandlerError`]: try again, or dead-letter it).

use std::{future::Future, sync::Arc};

use gridsync_schemas::Event;
use rdkafka::message::{Headers, Message, OwnedMessage};

use super::headers;
use crate::{registry::EventDecoder, telemetry::TraceContext};

/// What a handler takes of each record, read from the message by the loop.
pub trait Input: Sized + Send + Sync + 'static {
    /// Reads `message`. A failure is the record's: retried when transient, dead-lettered (as a
    /// `DECODE` failure) when permanent.
    fn read(decoder: &EventDecoder, message: &OwnedMessage) -> impl Future<Output = Result<Self, HandlerError>> + Send;

    /// The span of this record's work for `consumer`, on each of its log lines.
    fn span(&self, consumer: &str) -> tracing::Span;
}

impl Input for Record {
    async fn read(decoder: &EventDecoder, message: &OwnedMessage) -> Result<Self, HandlerError> {
        let decoded = decoder.decode(message.payload().unwrap_or_default()).await?;
        let trace = headers::get(message.headers(), headers::TRACEPARENT)
            .and_then(TraceContext::parse)
            .unwrap_or_else(TraceContext::new_root);
        Ok(Record {
            event: decoded.event,
            writer_version: decoded.writer_version,
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            trace,
        })
    }

    fn span(&self, consumer: &str) -> tracing::Span {
        Record::span(self, consumer)
    }
}

/// A record as it is on the topic, undecoded: for what is not an event (dead letters, which may
/// not decode, keep their context in headers).
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// As written: a dead letter goes back with its key's exact bytes.
    pub key: Option<Vec<u8>>,
    /// In the order the producer wrote them.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub payload: Vec<u8>,
}

impl RawRecord {
    /// The last header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let value = self.headers.iter().rev().find(|(key, _)| key == name)?.1.as_deref()?;
        Some(String::from_utf8_lossy(value).into_owned())
    }
}

impl RawRecord {
    /// A copy of `message` as it is.
    pub(crate) fn of(message: &impl Message) -> Self {
        let headers = message
            .headers()
            .map_or_else(Vec::new, |h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))).collect());
        RawRecord {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            headers,
            payload: message.payload().unwrap_or_default().to_vec(),
        }
    }

    /// Where it is: `<topic>/<partition>@<offset>`.
    pub fn place(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    /// The key as text (lossily, where it is not UTF-8).
    pub fn key_text(&self) -> Option<String> {
        self.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned())
    }
}

impl Input for RawRecord {
    async fn read(_: &EventDecoder, message: &OwnedMessage) -> Result<Self, HandlerError> {
        Ok(RawRecord::of(message))
    }

    fn span(&self, consumer: &str) -> tracing::Span {
        tracing::info_span!("record", consumer, topic = %self.topic, partition = self.partition, offset = self.offset)
    }
}

/// One decoded record handed to a [`Handler`].
#[derive(Debug, Clone)]
pub struct Record {
    pub event: Event,
    /// Schema version the producer wrote (0: an unknown version from a registry).
    pub writer_version: u32,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// From the `traceparent` header, or a new trace when it had none.
    pub trace: TraceContext,
}

impl Record {
    /// The span of this record's work for `consumer`: its place, its event and its trace, on every
    /// log line of it (a batching handler enters it for each record's lines).
    pub fn span(&self, consumer: &str) -> tracing::Span {
        let envelope = self.event.envelope();
        tracing::info_span!(
            "record",
            consumer,
            topic = %self.topic,
            partition = self.partition,
            offset = self.offset,
            event_type = self.event.event_type().name(),
            event_id = %envelope.event_id,
            correlation_id = %envelope.correlation_id,
            trace_id = %self.trace.trace_id_hex(),
            parent_span_id = %self.trace.span_id_hex(),
        )
    }
}

/// The error that caused a [`HandlerError`], kept whole (shared, so the error stays `Clone`).
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a handler could not do its work.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// May succeed later (timeout, 429, 5xx, broker down): retried.
    #[error("{class}: {message}")]
    Transient {
        class: String,
        message: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// Will not succeed as it is (validation, 4xx): dead-lettered.
    #[error("{class}: {message}")]
    Permanent {
        class: String,
        message: String,
        #[source]
        source: Option<ErrorSource>,
    },
}

impl HandlerError {
    pub fn transient(class: impl Into<String>, error: impl std::fmt::Display) -> Self {
        HandlerError::Transient { class: class.into(), message: error.to_string(), source: None }
    }

    pub fn permanent(class: impl Into<String>, error: impl std::fmt::Display) -> Self {
        HandlerError::Permanent { class: class.into(), message: error.to_string(), source: None }
    }

    /// From an error kept as the source (its chain stays inspectable); `transient` says
    /// whether trying again may help.
    pub fn from_source(
        class: impl Into<String>,
        transient: bool,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let (class, message, source) = (class.into(), error.to_string(), Some(Arc::new(error) as ErrorSource));
        if transient {
            HandlerError::Transient { class, message, source }
        } else {
            HandlerError::Permanent { class, message, source }
        }
    }

    pub(crate) fn class(&self) -> &str {
        match self {
            HandlerError::Transient { class, .. } | HandlerError::Permanent { class, .. } => class,
        }
    }
}

/// A consumer's flow logic: the work done for one record. It must be
/// idempotent: after a crash or a rebalance the same record can come again.
pub trait Handler: Send + Sync + 'static {
    /// What it takes of each record: [`Record`] (the event, decoded) or [`RawRecord`].
    type Input: Input;

    fn handle(&self, record: &Self::Input) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// How many waiting records of a partition it takes at once (1: one at a time). A handler
    /// whose work for many records costs about what one costs (one store transaction for all)
    /// says how many, and does them in [`Handler::handle_batch`].
    fn batch_size(&self) -> usize {
        1
    }

    /// The work for `records` (consecutive records of one partition, in order) at once: all done,
    /// or an error. On a permanent error each record is handled again alone, so that only the one
    /// that cannot be handled is dead-lettered; a transient one retries the batch.
    fn handle_batch(&self, records: &[Self::Input]) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for record in records {
                self.handle(record).await?;
            }
            Ok(())
        }
    }
}

/// A handler shared with its owner (tests, benchmarks, a flow that reads its state).
impl<H: Handler> Handler for Arc<H> {
    type Input = H::Input;

    fn handle(&self, record: &Self::Input) -> impl Future<Output = Result<(), HandlerError>> + Send {
        H::handle(self, record)
    }

    fn batch_size(&self) -> usize {
        H::batch_size(self)
    }

    fn handle_batch(&self, records: &[Self::Input]) -> impl Future<Output = Result<(), HandlerError>> + Send {
        H::handle_batch(self, records)
    }
}
