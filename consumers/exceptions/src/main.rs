//! The exceptions consumer: Tasks, customer communications and revised packages for failed exchanges (flow 8).
//!
//! Its own binary and consumer group (`gridsync.exceptions`), reading the topics the
//! catalog lists for it, dead letters to `gridsync.exceptions.dlq`. The flow logic
//! lands with its own issue; until then it observes and counts every event.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("exceptions", 9473, gridsync_core::app::ObservingHandler::setup)
}
