//! The Trading Grid producer's own flags (besides Kafka and telemetry).

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TgArgs {
    #[command(flatten)]
    pub inbound: InboundArgs,
    /// Where the producer keeps what must survive a restart: the control
    /// numbers of its acknowledgements (and, with Lens, its watermark).
    /// `sqlite://file.db` (created if missing) or `postgres://user@host/db`.
    #[arg(long, env = "GRIDSYNC_TG_STORE_URL", default_value = "sqlite://tg-producer.db")]
    pub store_url: String,
}

#[derive(Debug, clap::Args)]
pub struct InboundArgs {
    /// Root of the inbound mailbox: files arrive in `inbound/`, and move to
    /// `processed/` or `quarantine/` below it.
    #[arg(long, env = "GRIDSYNC_TG_MAILBOX_DIR", default_value = "tg-mailbox")]
    pub mailbox_dir: PathBuf,
    /// How often to look for new files, in milliseconds.
    #[arg(long, env = "GRIDSYNC_TG_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Largest file accepted, in bytes; larger ones are quarantined.
    #[arg(long, env = "GRIDSYNC_TG_MAX_FILE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// The outbound mailbox, where acknowledgements are written for Trading
    /// Grid to deliver (default: `outbound/` under the mailbox root).
    #[arg(long, env = "GRIDSYNC_TG_OUTBOUND_DIR")]
    pub outbound_dir: Option<PathBuf>,
    /// Do not write functional acknowledgements (997/CONTRL/TA1), for
    /// partners whose acknowledgements Trading Grid generates itself.
    #[arg(long, env = "GRIDSYNC_TG_NO_ACKS")]
    pub no_acks: bool,
}
