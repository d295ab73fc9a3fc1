//! The Trading Grid producer's own flags (besides Kafka and telemetry).

use gridsync_trading_grid::mailbox::{ClaimOwner, MailboxError};

#[derive(Debug, clap::Args)]
pub struct TgArgs {
    #[command(flatten)]
    pub inbound: InboundArgs,
    #[command(flatten)]
    pub lens: gridsync_trading_grid::lens::LensArgs,
    #[command(flatten)]
    pub lens_poll: LensPollArgs,
    /// How a broker, store or mailbox away for a while is waited for.
    #[command(flatten)]
    pub retry: gridsync_core::retry::Backoff,
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
    #[command(flatten)]
    pub mailbox: gridsync_trading_grid::mailbox::MailboxArgs,
    /// This instance's name among those reading one inbound mailbox (letters, digits, `-`,
    /// `_`, `.`); default: the host name. Its claims are its own; a second instance under
    /// the same name is refused at start.
    #[arg(long, env = "GRIDSYNC_TG_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// How long an instance's claims outlive its last renewal of their lease, in
    /// milliseconds: after that, another instance takes over the files it had claimed.
    #[arg(long, env = "GRIDSYNC_TG_CLAIM_LEASE_MS", default_value_t = 30_000)]
    pub claim_lease_ms: u64,
    /// How often to look for new files, in milliseconds.
    #[arg(long, env = "GRIDSYNC_TG_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Do not write functional acknowledgements (997/CONTRL/TA1), for
    /// partners whose acknowledgements Trading Grid generates itself.
    #[arg(long, env = "GRIDSYNC_TG_NO_ACKS")]
    pub no_acks: bool,
    /// The trading partner profiles (the consumers' file, `deploy/partners.toml`): a partner
    /// listed with `tolerate = ["wrong-segment-counts"]` has that habit accepted with a
    /// warning and noted in its acknowledgement; every other sender is held to the standard.
    #[arg(long, env = "GRIDSYNC_PARTNERS_FILE")]
    pub partners: Option<std::path::PathBuf>,
    /// An interchange from a sender the partner profiles do not list: `reject` it (a TA1 or
    /// CONTRL refusing the sender, the file quarantined, an exception naming the sender) or only
    /// `quarantine` it (no answer to the unknown sender). Onboarding a partner is adding it to
    /// the profiles. Without --partners every sender is admitted.
    #[arg(long, env = "GRIDSYNC_TG_UNKNOWN_SENDERS", value_enum, default_value_t = UnknownSenders::Reject)]
    pub unknown_senders: UnknownSenders,
}

/// What becomes of an interchange from a sender the partner profiles do not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnknownSenders {
    /// Answered with a rejection (TA1 note 006, CONTRL UCI code 23), and quarantined.
    Reject,
    /// Quarantined without an answer.
    Quarantine,
}

impl InboundArgs {
    /// Whose claims this instance's are.
    pub fn claim_owner(&self) -> Result<ClaimOwner, MailboxError> {
        let id = self.instance_id.clone().unwrap_or_else(ClaimOwner::host_name);
        ClaimOwner::new(&id, std::time::Duration::from_millis(self.claim_lease_ms))
    }
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
