//! The audit consumer: one audit view across both systems (flow 7).
//!
//! Its own binary and consumer group (`gridsync.audit`): every event of the
//! topics the catalog lists for it, and every dead letter, into the audit store
//! (SQLite by default, PostgreSQL for scale), queried through its HTTP API and
//! page (`--listen`, default 127.0.0.1:9476) and `gridsync audit`.

fn main() -> std::process::ExitCode {
    gridsync_core::app::consumer_main("audit", gridsync_audit::setup)
}
