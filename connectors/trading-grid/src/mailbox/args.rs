//! Where the Trading Grid mailbox is, as flags every binary that reads or
//! writes it shares (tg-producer reads inbound and writes acknowledgements;
//! the flow consumers write documents): a local folder, or an SFTP server.

use std::{path::PathBuf, sync::Arc, time::Duration};

use gridsync_http::Secret;
use gridsync_retry::{retry_until, Backoff, Verdict};
use tokio_util::sync::CancellationToken;

use super::{
    ClaimOwner, InboundMailbox, LocalMailbox, MailboxError, OutboundMailbox, OutboundTarget, SftpAuth, SftpConfig,
    SftpMailbox,
};

/// The mailbox: local (`--mailbox-dir`), or on an SFTP server (`--sftp-host`).
#[derive(Debug, Clone, clap::Args)]
pub struct MailboxArgs {
    /// Root of the local mailbox (when no `--sftp-host` is given): files
    /// arrive in `inbound/`, and move to `processed/` or `quarantine/` below it.
    #[arg(long, env = "GRIDSYNC_TG_MAILBOX_DIR", default_value = "tg-mailbox")]
    pub mailbox_dir: PathBuf,
    /// Largest file accepted, in bytes; larger ones are quarantined. tg-producer holds a file
    /// in at most 16 times its size (beside its base of 128 MiB): give it the memory for this.
    #[arg(long, env = "GRIDSYNC_TG_MAX_FILE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// A file in `inbound/` is claimed only once its size and modification time have not
    /// changed for this long, in milliseconds: a gateway writing in place is not read mid-write.
    #[arg(long, env = "GRIDSYNC_TG_SETTLE_MS", default_value_t = 1_000)]
    pub settle_ms: u64,
    /// The local outbound mailbox, where documents are written for Trading
    /// Grid to deliver (default: `outbound/` under the mailbox root; with
    /// SFTP, always `outbound/` under the SFTP root).
    #[arg(long, env = "GRIDSYNC_TG_OUTBOUND_DIR")]
    pub outbound_dir: Option<PathBuf>,
    #[command(flatten)]
    pub sftp: SftpArgs,
}

/// The mailbox on an SFTP server (Trading Grid's, or a gateway's): used when
/// `--sftp-host` is set, instead of the local `--mailbox-dir`.
#[derive(Debug, Clone, clap::Args)]
pub struct SftpArgs {
    /// The SFTP server.
    #[arg(long, env = "GRIDSYNC_TG_SFTP_HOST")]
    pub sftp_host: Option<String>,
    #[arg(long, env = "GRIDSYNC_TG_SFTP_PORT", default_value_t = 22)]
    pub sftp_port: u16,
    #[arg(long, env = "GRIDSYNC_TG_SFTP_USER", default_value = "gridsync")]
    pub sftp_user: String,
    /// A file holding the password (password login); its content never appears in logs.
    #[arg(long, env = "GRIDSYNC_TG_SFTP_PASSWORD_FILE", conflicts_with = "sftp_key_file")]
    pub sftp_password_file: Option<PathBuf>,
    /// An OpenSSH private key file (key login).
    #[arg(long, env = "GRIDSYNC_TG_SFTP_KEY_FILE")]
    pub sftp_key_file: Option<PathBuf>,
    /// A file holding the private key's passphrase, if it has one.
    #[arg(long, env = "GRIDSYNC_TG_SFTP_KEY_PASSPHRASE_FILE")]
    pub sftp_key_passphrase_file: Option<PathBuf>,
    /// OpenSSH `known_hosts` file with the server's host key: an unknown or
    /// changed key refuses the connection.
    #[arg(long, env = "GRIDSYNC_TG_SFTP_KNOWN_HOSTS", default_value = "~/.ssh/known_hosts")]
    pub sftp_known_hosts: String,
    /// The mailbox root on the server (`inbound/`, `processed/`, `quarantine/`, `outbound/` below it).
    #[arg(long, env = "GRIDSYNC_TG_SFTP_ROOT", default_value = ".")]
    pub sftp_root: String,
    /// Connection and request timeout, in milliseconds.
    #[arg(long, env = "GRIDSYNC_TG_SFTP_TIMEOUT_MS", default_value_t = 30_000)]
    pub sftp_timeout_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MailboxSetupError {
    #[error("reading {path}: {source}")]
    Secret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SFTP needs --sftp-password-file or --sftp-key-file (GRIDSYNC_TG_SFTP_*)")]
    NoCredentials,
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error("shut down while waiting for the SFTP mailbox")]
    ShutDown,
}

/// Longest wait between attempts to reach an SFTP server that is down.
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(30);

impl MailboxArgs {
    /// The SFTP server's settings, if the mailbox is on one.
    /// `owner` claims inbound files (see [`InboundMailbox::unfinished`]); a binary that only
    /// writes `outbound/` never claims, whatever it passes.
    pub fn sftp_config(&self, owner: ClaimOwner) -> Result<Option<SftpConfig>, MailboxSetupError> {
        let Some(host) = &self.sftp.sftp_host else { return Ok(None) };
        let sftp = &self.sftp;
        let secret = |path: &PathBuf| {
            Secret::read_file(path).map_err(|source| MailboxSetupError::Secret { path: path.clone(), source })
        };
        let auth = match (&sftp.sftp_password_file, &sftp.sftp_key_file) {
            (Some(password), None) => SftpAuth::Password(secret(password)?),
            (None, Some(key)) => SftpAuth::Key {
                path: key.clone(),
                passphrase: sftp.sftp_key_passphrase_file.as_ref().map(secret).transpose()?,
            },
            _ => return Err(MailboxSetupError::NoCredentials),
        };
        Ok(Some(SftpConfig {
            host: host.clone(),
            port: sftp.sftp_port,
            user: sftp.sftp_user.clone(),
            auth,
            known_hosts: expand_home(&sftp.sftp_known_hosts),
            root: sftp.sftp_root.clone(),
            max_bytes: self.max_file_bytes,
            settle: Duration::from_millis(self.settle_ms),
            timeout: Duration::from_millis(sftp.sftp_timeout_ms),
            owner,
        }))
    }

    /// The inbound mailbox, whose files `owner` claims, and the outbound one: both local, or
    /// both on the SFTP server.
    pub async fn open(
        &self,
        shutdown: &CancellationToken,
        owner: ClaimOwner,
    ) -> Result<(InboundMailbox, OutboundTarget), MailboxSetupError> {
        if let Some(config) = self.sftp_config(owner.clone())? {
            let sftp = Arc::new(open_sftp(config, shutdown).await?);
            sftp.start_claims().await?;
            tracing::info!(host = ?self.sftp.sftp_host, root = %self.sftp.sftp_root, "using the SFTP mailbox");
            return Ok((InboundMailbox::Sftp(sftp.clone()), OutboundTarget::Sftp(sftp)));
        }
        let settle = Duration::from_millis(self.settle_ms);
        let inbound = LocalMailbox::open(&self.mailbox_dir, self.max_file_bytes, settle, owner).await?;
        tracing::info!(mailbox = %self.mailbox_dir.display(), "using the local mailbox");
        Ok((InboundMailbox::Local(Box::new(inbound)), self.open_local_outbound().await?))
    }

    /// Only the outbound mailbox, for a binary that writes documents and reads none.
    pub async fn open_outbound(&self, shutdown: &CancellationToken) -> Result<OutboundTarget, MailboxSetupError> {
        match self.sftp_config(ClaimOwner::writing_only())? {
            Some(config) => Ok(OutboundTarget::Sftp(Arc::new(open_sftp(config, shutdown).await?))),
            None => self.open_local_outbound().await,
        }
    }

    async fn open_local_outbound(&self) -> Result<OutboundTarget, MailboxSetupError> {
        let dir = self.outbound_dir.clone().unwrap_or_else(|| self.mailbox_dir.join("outbound"));
        Ok(OutboundTarget::Local(OutboundMailbox::open(&dir).await?))
    }
}

/// Connects to the SFTP mailbox, waiting (with backoff) for a server that is
/// down or unreachable; a refused host key or login is a configuration error
/// and ends it at once.
async fn open_sftp(config: SftpConfig, shutdown: &CancellationToken) -> Result<SftpMailbox, MailboxSetupError> {
    let open = || SftpMailbox::open(config.clone());
    let classify = |e: &MailboxError, attempt| match e {
        MailboxError::HostKey { .. } | MailboxError::Auth { .. } | MailboxError::UnsafeName(_) => Verdict::GiveUp,
        _ => {
            tracing::warn!(error = %e, attempt, "SFTP mailbox not reachable yet");
            Verdict::RETRY
        }
    };
    let backoff = Backoff::new(Duration::from_millis(100), MAX_CONNECT_BACKOFF);
    match retry_until(shutdown, &backoff, open, classify).await {
        Some(opened) => Ok(opened?),
        None => Err(MailboxSetupError::ShutDown),
    }
}

/// `~/` at the start of a path is the home folder.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
