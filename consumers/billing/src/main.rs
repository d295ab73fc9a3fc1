//! The billing consumer: Billing communications into Amplience; payments and disputes back to Trading Grid (flow 2).
//!
//! Its own binary and consumer group (`gridsync.billing`), reading the topics the
//! catalog lists for it, dead letters to `gridsync.billing.dlq`. The flow logic
//! lands with its own issue; until then it observes and counts every event.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("billing", 9472, gridsync_core::app::ObservingHandler::setup)
}
