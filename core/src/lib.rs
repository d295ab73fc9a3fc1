//! gridsync's shared runtime: everything a producer or consumer binary needs
//! besides its own flow logic.
//!
//! - [`config`]: Kafka and telemetry settings from flags and the environment.
//! - [`kafka`]: the idempotent event producer, the at-least-once consumer loop
//!   with retries and dead letters, and `topics apply`.
//! - [`registry`]: the Confluent Schema Registry client and the decoder that
//!   reads either framing.
//! - [`telemetry`]: Prometheus metrics, `/metrics` `/healthz` `/readyz`,
//!   tracing (text or JSON) and W3C trace context.
//! - [`serve`]: every HTTP listener, with timeouts, a connection cap and a body limit.
//! - [`shutdown`]: SIGTERM/SIGINT as a cancellation signal.
//! - [`app`]: the common `main` of a consumer binary.

pub mod app;
pub mod config;
pub mod kafka;
pub use gridsync_retry as retry;
pub mod registry;
pub mod serve;
pub mod shutdown;
pub mod telemetry;

/// Every binary linking the runtime allocates with mimalloc: a record's work is many small
/// allocations (a decoded event's strings, a message's copy), and glibc's malloc and free were
/// about a fifth of the profile, of tg-producer's files and of the consumer loop alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
