//! The notifications consumer: order, shipment and B2B-event notifications into
//! Amplience (flows 1, 3, 6). Its own binary and consumer group
//! (`gridsync.notifications`), reading the topics the catalog lists for it,
//! dead letters to `gridsync.notifications.dlq`.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("notifications", gridsync_notifications::setup)
}
