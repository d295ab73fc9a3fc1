//! What gridsync's simulators share: injectable faults (`POST /__sim/faults`)
//! and the bearer tokens their token endpoints issue (with
//! `POST /__sim/expire-tokens`).

pub mod faults;
pub mod tokens;
