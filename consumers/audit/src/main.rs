//! The audit consumer: One audit view across both systems (flow 7).
//!
//! Its own binary and consumer group (`gridsync.audit`), reading the topics the
//! catalog lists for it, dead letters to `gridsync.audit.dlq`. The flow logic
//! lands with its own issue; until then it observes and counts every event.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("audit", 9475, gridsync_core::app::ObservingHandler::setup)
}
