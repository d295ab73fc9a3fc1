//! The Amplience producer: turns signed Amplience webhooks (workflow changes,
//! publishes, payments, disputes) into Avro events.
//!
//! The webhook receiver lands with its own issue; until then the binary
//! connects, reports ready and waits.

fn main() -> std::process::ExitCode {
    gridsync_core::app::producer_main("amp-producer", 9465, gridsync_core::app::await_connector)
}
