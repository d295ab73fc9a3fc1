//! What gridsync's simulators share: injectable faults (`POST /__sim/faults`),
//! the bearer tokens their token endpoints issue (with
//! `POST /__sim/expire-tokens`), and serving as a process.

pub mod faults;
pub mod server;
pub mod tokens;
