//! Metrics, health endpoints, logs and trace context.

pub mod http;
pub mod logging;
pub mod metrics;
pub mod status;
pub mod trace_context;

pub use http::{serve, Health};
pub use metrics::{Metrics, TopicSeries};
pub use status::ConsumerStatus;
pub use trace_context::TraceContext;
