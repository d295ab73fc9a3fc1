//! Everything that talks to Kafka, through rdkafka only.

pub mod access;
pub mod admin;
pub mod consumer;
pub mod context;
pub mod dead_letter;
mod dispatch;
pub mod headers;
pub mod producer;
pub mod retry;

pub use consumer::{run_consumer, ConsumerServices, ConsumerSettings, Handler, HandlerError, Record};
pub use producer::{Delivered, EventProducer, Prepared, PublishError};
pub use retry::RetryPolicy;
