//! The distribution consumer: approved onboarding content and published
//! contracts, policies and terms go to each target partner as a package
//! through the Trading Grid outbound mailbox, and their receipts come back
//! (flows 4, 5). Its own binary and consumer group (`gridsync.distribution`),
//! reading the topics the catalog lists for it, dead letters to
//! `gridsync.distribution.dlq`.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("distribution", gridsync_distribution::setup)
}
