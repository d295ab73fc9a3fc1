//! Mailboxes. Inbound: files arrive, are claimed atomically, processed, and
//! moved on only once their work is durable. Outbound: files for partners,
//! written atomically with a checksum.

mod local;
mod outbound;

pub use local::LocalMailbox;
pub use outbound::{OutboundMailbox, Written};

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Maps an I/O error on `path` to a [`MailboxError`] saying what was being done.
fn io(operation: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> MailboxError {
    let path = path.to_owned();
    move |source| MailboxError::Io { operation, path, source }
}

/// A file this process has claimed: nobody else will process it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The file's name as it arrived (no directories).
    pub name: String,
    pub bytes: Vec<u8>,
    /// When it arrived (its modification time), for end-to-end lag.
    pub arrived: std::time::SystemTime,
}

/// How processing a claimed file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its events are acknowledged by Kafka.
    Processed,
    /// It cannot be processed as it is; `reason` says why, precisely.
    Quarantined { reason: String },
}
