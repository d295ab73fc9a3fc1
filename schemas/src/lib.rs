//! gridsync's event contract.
//!
//! - `schemas/avro/**.avsc` are the single source of truth; the Rust types in
//!   [`events`] are generated from them at build time (see `build.rs`).
//! - [`codec`] writes Avro single-object encoding (`C3 01` + CRC-64-AVRO
//!   fingerprint) and reads any schema version it knows, resolving the writer's
//!   schema to the current reader schema.
//! - [`catalog`] is the declarative topic catalog (`schemas/topics.toml`).
//! - [`compat`] checks every current schema against every kept earlier version.

pub mod access;
pub mod catalog;
pub mod codec;
pub mod compat;
pub mod datum;
mod helpers;
pub mod samples;
mod values;

/// The generated event types: one struct per record, one enum per Avro enum.
#[allow(clippy::all, missing_docs)]
pub mod events {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

pub use codec::{codec, Codec, CodecError, DecodeError, Decoded, Fingerprint, Framing};
pub use events::{Envelope, Event, EventType};
pub use values::{Date, Decimal, Timestamp, ValueError};
