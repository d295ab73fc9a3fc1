//! The flags every flow consumer takes, beside the consumer runtime's own.

use std::path::PathBuf;

use gridsync_amplience::ManagementArgs;

/// How long a side-effect claim is held before another owner may take it over:
/// longer than any one attempt (the handler timeout), so a live owner keeps it.
pub const DEFAULT_CLAIM_LEASE_MS: u64 = 120_000;
/// How long a template read from Amplience is used before it is checked again.
pub const DEFAULT_TEMPLATE_TTL_MS: u64 = 30_000;

/// How often a consumer checks the Amplience hub again while it lacks what the flow needs.
pub const DEFAULT_HUB_CHECK_RETRY_MS: u64 = 5_000;

/// How often due timers are looked for.
pub const DEFAULT_TIMER_TICK_MS: u64 = 1_000;

#[derive(Debug, Clone, clap::Args)]
pub struct FlowArgs {
    /// The flow's store (side-effect ledger, approved templates): `sqlite://path` (default: a file
    /// `<name>-consumer.db` in the working folder) or `postgres://...` shared by replicas.
    #[arg(long, env = "GRIDSYNC_FLOW_STORE_URL")]
    pub store_url: Option<String>,
    /// The trading partner profiles (TOML; `deploy/partners.toml` is the example).
    #[arg(long, env = "GRIDSYNC_PARTNERS_FILE")]
    pub partners: Option<PathBuf>,
    /// How long a side-effect claim lasts before another owner may take it over, in ms.
    #[arg(long, env = "GRIDSYNC_CLAIM_LEASE_MS", default_value_t = DEFAULT_CLAIM_LEASE_MS)]
    pub claim_lease_ms: u64,
    /// How long a template read from Amplience is used before its version is checked again, in ms.
    #[arg(long, env = "GRIDSYNC_TEMPLATE_TTL_MS", default_value_t = DEFAULT_TEMPLATE_TTL_MS)]
    pub template_ttl_ms: u64,
    /// How often the flow looks for due timers (reminders, overdue acknowledgements), in ms.
    #[arg(long, env = "GRIDSYNC_TIMER_TICK_MS", default_value_t = DEFAULT_TIMER_TICK_MS)]
    pub timer_tick_ms: u64,
    /// Read the time from this file (RFC 3339) instead of the system clock: for tests and demos
    /// that move time on to see reminders fire. Re-read at every look; absent means now.
    #[arg(long, env = "GRIDSYNC_CLOCK_FILE")]
    pub clock_file: Option<PathBuf>,
    /// While the Amplience hub lacks what the flow needs (checked at start), check again this
    /// often, in ms; the consumer is unready meanwhile.
    #[arg(long, env = "GRIDSYNC_HUB_CHECK_RETRY_MS", default_value_t = DEFAULT_HUB_CHECK_RETRY_MS)]
    pub hub_check_retry_ms: u64,
    /// The Amplience hub's whole request budget, shared by every flow consumer and replica that
    /// uses the hub (0: not shared; each process keeps to --amplience-requests-per-second).
    /// Needs --amplience-budget-store-url: each process takes an equal share of it.
    #[arg(
        long = "amplience-hub-requests-per-second",
        env = "GRIDSYNC_AMPLIENCE_HUB_REQUESTS_PER_SECOND",
        default_value_t = 0.0
    )]
    pub hub_requests_per_second: f64,
    /// A store every flow consumer using the hub shares (`postgres://...`, or one SQLite file on
    /// one machine), where they count each other to split the hub's budget.
    #[arg(long = "amplience-budget-store-url", env = "GRIDSYNC_AMPLIENCE_BUDGET_STORE_URL")]
    pub budget_store_url: Option<String>,
    #[command(flatten)]
    pub amplience: ManagementArgs,
}

impl FlowArgs {
    pub fn clock(&self) -> crate::clock::Clock {
        self.clock_file.clone().map_or(crate::clock::Clock::System, crate::clock::Clock::File)
    }
}
