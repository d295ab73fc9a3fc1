//! The Trading Grid producer's own flags (besides Kafka and telemetry).

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TgArgs {
    #[command(flatten)]
    pub inbound: InboundArgs,
    #[command(flatten)]
    pub lens: gridsync_trading_grid::lens::LensArgs,
    #[command(flatten)]
    pub lens_poll: LensPollArgs,
    /// Where the producer keeps what must survive a restart: the control
    /// numbers of its acknowledgements (and, with Lens, its watermark).
    /// `sqlite://file.db` (created if missing) or `postgres://user@host/db`.
    #[arg(long, env = "GRIDSYNC_TG_STORE_URL", default_value = "sqlite://tg-producer.db")]
    pub store_url: String,
    /// How long the store remembers published events and Lens states, in
    /// days: a file resent after longer is published again (same event ids).
    #[arg(long, env = "GRIDSYNC_TG_STORE_RETENTION_DAYS", default_value_t = 30)]
    pub store_retention_days: u32,
}

#[derive(Debug, clap::Args)]
pub struct InboundArgs {
    /// Root of the local mailbox (when no `--sftp-host` is given): files
    /// arrive in `inbound/`, and move to `processed/` or `quarantine/` below it.
    #[arg(long, env = "GRIDSYNC_TG_MAILBOX_DIR", default_value = "tg-mailbox")]
    pub mailbox_dir: PathBuf,
    /// How often to look for new files, in milliseconds.
    #[arg(long, env = "GRIDSYNC_TG_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Largest file accepted, in bytes; larger ones are quarantined.
    #[arg(long, env = "GRIDSYNC_TG_MAX_FILE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// The local outbound mailbox, where acknowledgements are written for
    /// Trading Grid to deliver (default: `outbound/` under the mailbox root;
    /// with SFTP, always `outbound/` under the SFTP root).
    #[arg(long, env = "GRIDSYNC_TG_OUTBOUND_DIR")]
    pub outbound_dir: Option<PathBuf>,
    /// Do not write functional acknowledgements (997/CONTRL/TA1), for
    /// partners whose acknowledgements Trading Grid generates itself.
    #[arg(long, env = "GRIDSYNC_TG_NO_ACKS")]
    pub no_acks: bool,
    #[command(flatten)]
    pub sftp: SftpArgs,
}

/// The mailbox on an SFTP server (Trading Grid's, or a gateway's): used when
/// `--sftp-host` is set, instead of the local `--mailbox-dir`.
#[derive(Debug, clap::Args)]
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

/// How the Lens poller runs (when `--lens-url` and `--lens-client-id` are set).
#[derive(Debug, Clone, clap::Args)]
pub struct LensPollArgs {
    /// How often to ask Lens for status changes, in milliseconds.
    #[arg(long, env = "GRIDSYNC_LENS_POLL_MS", default_value_t = 60_000)]
    pub lens_poll_ms: u64,
    /// Transactions per page.
    #[arg(long, env = "GRIDSYNC_LENS_PAGE_SIZE", default_value_t = 100)]
    pub lens_page_size: u32,
    /// Each poll re-reads this far behind the watermark, for updates Lens
    /// records late; what did not change is not published again.
    #[arg(long, env = "GRIDSYNC_LENS_LOOKBACK_MINUTES", default_value_t = 60)]
    pub lens_lookback_minutes: u32,
    /// gridsync's own EDI addresses (comma-separated): a transaction sent from
    /// one of them is outbound, and its partner is the receiver.
    #[arg(long = "own-address", env = "GRIDSYNC_TG_OWN_ADDRESSES", value_delimiter = ',', default_value = "GRIDSYNC")]
    pub own_addresses: Vec<String>,
}
