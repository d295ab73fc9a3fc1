//! Mailboxes. Inbound: files arrive, are claimed atomically, processed, and
//! moved on only once their work is durable. Outbound: files for partners,
//! written atomically with a checksum.

pub mod args;
mod claims;
mod content;
mod local;
mod outbound;
mod settle;
mod sftp;

use std::{path::PathBuf, sync::Arc};

pub use args::{MailboxArgs, MailboxSetupError, SftpArgs};
pub use claims::ClaimOwner;
pub use content::Content;
pub use local::LocalMailbox;
pub use outbound::{OutboundMailbox, Written};
pub use sftp::{SftpAuth, SftpConfig, SftpMailbox};

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SFTP {operation} {path}: {source}")]
    Sftp {
        operation: &'static str,
        path: String,
        #[source]
        source: russh_sftp::client::error::Error,
    },
    #[error("SSH to {host}: {message}")]
    Ssh { host: String, message: String },
    /// The server is not who it should be: never connect to it.
    #[error("refusing {host}: {reason}")]
    HostKey { host: String, reason: String },
    #[error("{host} refused the credentials of {user:?}")]
    Auth { user: String, host: String },
    #[error("{path}: a different document already has this name (sha256 {existing_sha256})")]
    Conflict { path: PathBuf, existing_sha256: String },
    #[error("another instance claims files as {owner:?} in this mailbox: give each instance its own --instance-id")]
    OwnerInUse { owner: String },
    #[error("{0:?} is not a safe file name")]
    UnsafeName(String),
}

/// The names a settled file may take in `processed/` or `quarantine/`, in order: its own, then
/// `<name>.1`, `<name>.2`, ... One is free when nothing has that name and, in quarantine (where a
/// `<file>.reason` goes beside the file), nothing has its `.reason` name either: whatever a
/// partner calls its files (`x.edi.reason` before `x.edi`), nothing already there is replaced.
pub(crate) fn settled_names(name: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(name.to_owned()).chain((1u64..).map(move |n| format!("{name}.{n}")))
}

/// The name a part of the file `name` (a transaction rejected on its own) is kept under in
/// quarantine: `<name>.<part>`, every character of `part` but letters, digits, `-` and `.` made
/// `_` (control numbers may hold `/`).
pub(crate) fn part_name(name: &str, part: &str) -> String {
    let part: String =
        part.chars().map(|c| if c.is_ascii_alphanumeric() || "-.".contains(c) { c } else { '_' }).collect();
    format!("{name}.{}", part.trim_start_matches('.'))
}

/// The file beside a quarantined `file` that says why.
pub(crate) fn reason_name(file: &str) -> String {
    format!("{file}.reason")
}

/// Files still being written by the gateway: skipped until renamed.
const IN_PROGRESS_SUFFIXES: [&str; 3] = [".tmp", ".part", ".filepart"];

/// A name that cannot leave its directory and is not hidden or half-written.
pub(crate) fn acceptable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name != ".."
        && !IN_PROGRESS_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// An inbound mailbox, local or on an SFTP server: the same operations and guarantees.
pub enum InboundMailbox {
    Local(Box<LocalMailbox>),
    Sftp(Arc<SftpMailbox>),
}

/// An outbound mailbox, local or on an SFTP server (the same connection as inbound).
pub enum OutboundTarget {
    Local(OutboundMailbox),
    Sftp(Arc<SftpMailbox>),
}

impl OutboundTarget {
    /// Writes `content` under `name` atomically with its checksum; the same
    /// content again is a no-op, different content under the name is refused.
    pub async fn write(&self, name: &str, content: &[u8]) -> Result<Written, MailboxError> {
        self.write_content(name, Content::Bytes(content)).await
    }

    /// [`Self::write`] of bytes or of a local file streamed in chunks (memory bounded).
    pub async fn write_content(&self, name: &str, content: Content<'_>) -> Result<Written, MailboxError> {
        match self {
            OutboundTarget::Local(m) => m.write_content(name, content).await,
            OutboundTarget::Sftp(m) => m.write_outbound(name, content).await,
        }
    }
}

impl InboundMailbox {
    /// Files claimed before a crash: to be processed again first.
    pub async fn unfinished(&self) -> Result<Vec<String>, MailboxError> {
        match self {
            InboundMailbox::Local(m) => m.unfinished().await,
            InboundMailbox::Sftp(m) => m.unfinished().await,
        }
    }

    /// Keeps this instance's lease on its claims until `done`, then gives it up, so other
    /// instances take over at once what is still claimed.
    pub async fn keep_claims(&self, done: &tokio_util::sync::CancellationToken) {
        match self {
            InboundMailbox::Local(m) => m.claims.keep(m.as_ref(), done).await,
            InboundMailbox::Sftp(m) => m.claims.keep(m.as_ref(), done).await,
        }
    }

    /// Files waiting, oldest first.
    pub async fn waiting(&self) -> Result<Vec<String>, MailboxError> {
        match self {
            InboundMailbox::Local(m) => m.waiting().await,
            InboundMailbox::Sftp(m) => m.waiting().await,
        }
    }

    /// Claims a file: `None` when it is gone or another process has it; the
    /// inner `Err` says a file is too large (claimed without its bytes).
    pub async fn claim(&self, name: &str) -> Result<Option<Result<Claimed, Refused>>, MailboxError> {
        match self {
            InboundMailbox::Local(m) => m.claim(name).await,
            InboundMailbox::Sftp(m) => m.claim(name).await,
        }
    }

    /// Where `finish` will put a file, relative to the mailbox root.
    pub async fn destination(&self, name: &str, outcome: &Outcome) -> Result<PathBuf, MailboxError> {
        match self {
            InboundMailbox::Local(m) => Ok(m.destination(name, outcome).await),
            InboundMailbox::Sftp(m) => m.destination(name, outcome).await,
        }
    }

    /// Keeps a part of a claimed file, rejected on its own, in `quarantine/` with its reason
    /// (the rest of the file is processed); returns where, relative to the mailbox root. Kept
    /// once however often the file is processed, and never over anything already there.
    pub async fn quarantine_part(
        &self,
        name: &str,
        part: &str,
        bytes: &[u8],
        reason: &str,
    ) -> Result<PathBuf, MailboxError> {
        match self {
            InboundMailbox::Local(m) => m.quarantine_part(name, part, bytes, reason).await,
            InboundMailbox::Sftp(m) => m.quarantine_part(name, part, bytes, reason).await,
        }
    }

    /// Moves a claimed file to `processed/` or `quarantine/`.
    pub async fn finish(&self, name: &str, outcome: &Outcome) -> Result<PathBuf, MailboxError> {
        match self {
            InboundMailbox::Local(m) => m.finish(name, outcome).await,
            InboundMailbox::Sftp(m) => m.finish(name, outcome).await,
        }
    }
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

/// A claimed file that is not read: too large, a link, not a regular file. Quarantined as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub name: String,
    /// Why, precisely.
    pub reason: String,
    /// What tells this file from another of the same name (its size and modification time),
    /// since its content is not read.
    pub identity: String,
    pub arrived: std::time::SystemTime,
}

impl Refused {
    fn new(name: &str, reason: String, bytes: u64, arrived: std::time::SystemTime) -> Self {
        let modified = arrived.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        Refused { name: name.to_owned(), reason, identity: format!("{bytes} bytes, modified {modified}"), arrived }
    }
}

/// How processing a claimed file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its events are acknowledged by Kafka.
    Processed,
    /// It cannot be processed as it is; `reason` says why, precisely.
    Quarantined { reason: String },
}
