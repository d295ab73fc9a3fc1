//! Record header names, and reading them back.

use rdkafka::message::{Headers, OwnedHeaders};

/// The event type (Avro record name).
pub const EVENT_TYPE: &str = "gridsync.event_type";
/// The event id from the envelope.
pub const EVENT_ID: &str = "gridsync.event_id";
/// Correlation id of the business transaction.
pub const CORRELATION_ID: &str = "gridsync.correlation_id";
/// Hex CRC-64-AVRO fingerprint of the writer schema (single-object framing).
pub const SCHEMA_FINGERPRINT: &str = "gridsync.schema_fingerprint";
/// Schema registry id of the writer schema (Confluent framing).
pub const SCHEMA_ID: &str = "gridsync.schema_id";
pub use crate::telemetry::trace_context::TRACEPARENT;

/// The first header named `name`, as UTF-8.
pub fn get<'a, H: Headers>(headers: Option<&'a H>, name: &str) -> Option<&'a str> {
    headers?.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
}

/// Copies every header (for dead letters, which keep the original ones).
pub fn copy<H: Headers>(headers: Option<&H>) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    if let Some(headers) = headers {
        for h in headers.iter() {
            out = out.insert(rdkafka::message::Header { key: h.key, value: h.value });
        }
    }
    out
}
