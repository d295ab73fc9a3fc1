//! The distribution consumer: Partner content distributed through Trading Grid, receipts tracked (flows 4, 5).
//!
//! Its own binary and consumer group (`gridsync.distribution`), reading the topics the
//! catalog lists for it, dead letters to `gridsync.distribution.dlq`. The flow logic
//! lands with its own issue; until then it observes and counts every event.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("distribution", 9474, gridsync_core::app::ObservingHandler::setup)
}
