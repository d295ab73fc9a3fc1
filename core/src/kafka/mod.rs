//! Everything that talks to Kafka, through rdkafka only.

pub mod access;
pub mod admin;
pub mod consumer;
pub mod context;
pub mod dead_letter;
mod dispatch;
pub mod groups;
pub mod handler;
pub mod headers;
pub mod producer;
pub mod reader;
pub mod reported;
pub mod settings;
mod worker;

pub use consumer::{run_consumer, ConsumerServices};
pub use gridsync_retry::Backoff;
pub use handler::{Handler, HandlerError, Input, RawRecord, Record};
pub use producer::{Delivered, EventProducer, Prepared, PublishError};
pub use settings::{ConsumerSettings, DEFAULT_HANDLER_TIMEOUT};
