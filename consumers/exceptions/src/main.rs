//! The exceptions consumer: tasks, customer communications and revised content
//! for failed, rejected or correction-needed exchanges, resolved when the
//! exchange succeeds later (flow 8). Its own binary and consumer group
//! (`gridsync.exceptions`), reading the topics the catalog lists for it, dead
//! letters to `gridsync.exceptions.dlq`.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("exceptions", gridsync_exceptions::setup)
}
