//! The billing consumer: billing communications, payment reminders and account
//! status into Amplience; payments and disputes back to Trading Grid as
//! 820/REMADV and 812/CREADV (flow 2). Its own binary and consumer group
//! (`gridsync.billing`), reading the topics the catalog lists for it, dead
//! letters to `gridsync.billing.dlq`.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("billing", gridsync_billing::setup)
}
