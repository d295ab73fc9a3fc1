//! The audit flow (flow 7) as a library: what it records of each event, the
//! dead-letter reader, the queries' HTTP API and page, and its set-up.

pub mod access;
pub mod dead_letters;
pub mod entry;
pub mod flows;
pub mod http;
pub mod oidc;
pub mod order;
pub mod page;

use std::{net::SocketAddr, sync::Arc};

use gridsync_core::{
    app::{AppError, ConsumerDeps, DEFAULT_PARTITION_BUFFER},
    kafka::{run_consumer, Backoff, ConsumerServices, ConsumerSettings, Handler, HandlerError, Record},
    registry::EventDecoder,
    telemetry::Health,
};
use gridsync_schemas::catalog;
use gridsync_store::{audit::AuditLog, Store};
use prometheus::{opts, IntCounterVec};

/// Where the audit view is served by default (the metrics are on 9475).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9476";

/// The consumer's flags beside the runtime's.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The audit store: `sqlite://path` (one file, the default) or `postgres://...` (for scale).
    #[arg(long = "audit-store-url", env = "GRIDSYNC_AUDIT_STORE_URL", default_value = "sqlite://gridsync-audit.db")]
    pub store_url: String,
    /// Where the audit page and its JSON API listen. An address other than loopback needs
    /// `--tokens-file` and `--allowed-hosts`: gridsync refuses to start without them.
    #[arg(long = "listen", env = "GRIDSYNC_AUDIT_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The API tokens that may read the view (TOML, `[[token]]` with `name`, `sha256`, optional
    /// `partners` and `revoked`; `gridsync audit token` makes one). Without it the view is open,
    /// which a loopback address alone allows.
    #[arg(long = "tokens-file", env = "GRIDSYNC_AUDIT_TOKENS_FILE")]
    pub tokens_file: Option<std::path::PathBuf>,
    /// The host names people and programs reach the view by (comma-separated); a request naming
    /// another is refused (DNS rebinding). Default on loopback: localhost, 127.0.0.1, [::1].
    #[arg(long = "allowed-hosts", env = "GRIDSYNC_AUDIT_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// How long the audit store keeps events and dead letters, in days, by when gridsync learned
    /// of them: the personal data they carry (contact e-mails, names) goes with them, pruned
    /// hourly. 0 keeps everything.
    #[arg(long = "retention-days", env = "GRIDSYNC_AUDIT_RETENTION_DAYS", default_value_t = DEFAULT_RETENTION_DAYS)]
    pub retention_days: u32,
    /// People sign in through this OpenID Connect provider (its issuer URL), and its JWTs are
    /// taken as bearer tokens; with `--oidc-client-id`, `--oidc-client-secret-file` and
    /// `--oidc-redirect-url`.
    #[arg(long = "oidc-issuer", env = "GRIDSYNC_AUDIT_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// gridsync's client id at the provider (the tokens' audience).
    #[arg(long = "oidc-client-id", env = "GRIDSYNC_AUDIT_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// The file holding gridsync's client secret at the provider.
    #[arg(long = "oidc-client-secret-file", env = "GRIDSYNC_AUDIT_OIDC_CLIENT_SECRET_FILE", requires = "oidc_issuer")]
    pub oidc_client_secret_file: Option<std::path::PathBuf>,
    /// Where the provider sends people back: this view's `/oidc/callback` as people reach it
    /// (`https://audit.example.com/oidc/callback`).
    #[arg(long = "oidc-redirect-url", env = "GRIDSYNC_AUDIT_OIDC_REDIRECT_URL", requires = "oidc_issuer")]
    pub oidc_redirect_url: Option<String>,
    /// The claim listing the partners someone may see (`["ACME"]`, or `"*"` for every one).
    #[arg(
        long = "oidc-partners-claim",
        env = "GRIDSYNC_AUDIT_OIDC_PARTNERS_CLAIM",
        default_value = "gridsync_partners"
    )]
    pub oidc_partners_claim: String,
    /// The trading partner profiles (the consumers' file): partners are shown by name.
    #[arg(long = "partners", env = "GRIDSYNC_PARTNERS_FILE")]
    pub partners: Option<std::path::PathBuf>,
}

/// Two years.
pub const DEFAULT_RETENTION_DAYS: u32 = 730;

/// Deletes what is past `days` now and every hour until `shutdown`, counting it.
async fn prune_hourly(log: AuditLog, days: u32, pruned: IntCounterVec, shutdown: tokio_util::sync::CancellationToken) {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    loop {
        let before = chrono::Utc::now().timestamp_millis() - i64::from(days) * DAY_MS;
        match log.prune(before).await {
            Ok((events, letters)) => {
                pruned.with_label_values(&["events"]).inc_by(events);
                pruned.with_label_values(&["dead_letters"]).inc_by(letters);
                if events + letters > 0 {
                    tracing::info!(events, dead_letters = letters, days, "audit store pruned past its retention");
                }
            }
            // The next hour tries again; nothing is lost by waiting.
            Err(e) => tracing::warn!(error = %e, "pruning the audit store failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
        }
    }
}

impl Args {
    /// Who may read the view, or why it must not be served as configured.
    pub fn access(&self) -> Result<access::Access, AppError> {
        let reachable = !self.listen.ip().is_loopback();
        if reachable && self.tokens_file.is_none() && self.oidc_issuer.is_none() {
            return Err(AppError::other(std::io::Error::other(format!(
                "the audit view on {} is reachable from the network and would be open to anyone: give it API tokens \
                 (--tokens-file, GRIDSYNC_AUDIT_TOKENS_FILE; `gridsync audit token` makes one) or an OpenID Connect \
                 provider (--oidc-issuer, GRIDSYNC_AUDIT_OIDC_ISSUER), or listen on a loopback address (--listen, \
                 GRIDSYNC_AUDIT_LISTEN)",
                self.listen
            ))));
        }
        let mut hosts: Vec<String> = self.allowed_hosts.iter().filter(|h| !h.trim().is_empty()).cloned().collect();
        if hosts.is_empty() {
            if reachable {
                return Err(AppError::other(std::io::Error::other(format!(
                    "the audit view on {} is reachable from the network: name the hosts it is reached by \
                     (--allowed-hosts, GRIDSYNC_AUDIT_ALLOWED_HOSTS, e.g. audit.example.com)",
                    self.listen
                ))));
            }
            hosts = access::LOOPBACK_HOSTS.map(str::to_owned).to_vec();
        }
        access::Access::new(self.tokens_file.as_deref(), hosts).map_err(AppError::other)
    }

    /// The OpenID Connect provider, discovered, when one is configured.
    pub async fn oidc(&self) -> Result<Option<oidc::Oidc>, AppError> {
        let Some(issuer) = &self.oidc_issuer else { return Ok(None) };
        let missing = |what: &str| AppError::other(std::io::Error::other(format!("--oidc-issuer needs {what}")));
        let client_id = self.oidc_client_id.clone().ok_or_else(|| missing("--oidc-client-id"))?;
        let secret_file = self.oidc_client_secret_file.as_ref().ok_or_else(|| missing("--oidc-client-secret-file"))?;
        let redirect_url = self.oidc_redirect_url.clone().ok_or_else(|| missing("--oidc-redirect-url"))?;
        let client_secret = std::fs::read_to_string(secret_file)
            .map_err(|source| AppError::Io { what: "reading the OpenID Connect client secret", source })?
            .trim()
            .to_owned();
        let config = oidc::OidcConfig {
            issuer: issuer.clone(),
            client_id,
            client_secret,
            redirect_url,
            partners_claim: self.oidc_partners_claim.clone(),
        };
        oidc::Oidc::discover(config).await.map(Some).map_err(AppError::other)
    }
}

/// Records every event it is handed, once.
pub struct Audit {
    log: AuditLog,
    recorded: IntCounterVec,
}

/// Events recorded in one store transaction when a backlog waits: one transaction costs about
/// what one event costs, so a replay or a burst is recorded many at a time.
pub const BATCH: usize = 500;

impl Audit {
    fn recorded(&self, entry: &gridsync_store::audit::AuditEntry, new: bool) {
        let outcome = if new { "new" } else { "already-recorded" };
        tracing::debug!(event_type = entry.event_type, outcome, "event recorded");
        self.recorded.with_label_values(&[entry.event_type.as_str(), outcome]).inc();
    }
}

impl Handler for Audit {
    type Input = Record;

    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(record)).await
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    async fn handle_batch(&self, records: &[Record]) -> Result<(), HandlerError> {
        let entries = records
            .iter()
            .map(entry::of_record)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HandlerError::permanent("audit.json", e))?;
        let new =
            self.log.record_each(&entries).await.map_err(|e| HandlerError::from_source("audit.store", true, e))?;
        for ((record, entry), new) in records.iter().zip(&entries).zip(new) {
            // Each record's line in its own span: its trace, as when records come one at a time.
            record.span("audit").in_scope(|| self.recorded(entry, new));
        }
        Ok(())
    }
}

/// How a store that is away is waited for by the dead-letter reader: up to five seconds between
/// attempts (it holds up nothing but dead letters).
const DEAD_LETTER_RETRY: Backoff =
    Backoff::new(std::time::Duration::from_millis(200), std::time::Duration::from_secs(5));

/// Records every dead-letter topic's letters on the consumer loop, as a second consumer of this
/// process: a group of its own, every dead-letter topic of the catalog, records read raw.
fn start_dead_letter_reader(deps: &ConsumerDeps, log: AuditLog) -> Result<(), AppError> {
    let catalog = catalog::catalog()?.with_prefix(&deps.kafka.topic_prefix);
    let spec = catalog.consumer(&deps.name)?;
    let mut settings = ConsumerSettings::from_catalog(spec, DEAD_LETTER_RETRY, DEFAULT_PARTITION_BUFFER);
    settings.name = format!("{}-dead-letters", deps.name);
    settings.group_id = spec.dead_letter_reader_group();
    settings.topics = catalog.dead_letter_topics();
    settings.handles = None;
    let handler = dead_letters::DeadLetters::new(dead_letters::names_by_group(&catalog), log, &deps.metrics)?;
    let services = ConsumerServices {
        decoder: EventDecoder::new(None)?,
        producer: deps.producer.clone(),
        metrics: deps.metrics.clone(),
        // Its own: the process's readiness and `/status` are the audit consumer's.
        health: Health::default(),
    };
    let (kafka, shutdown) = (deps.kafka.clone(), deps.shutdown.clone());
    tokio::spawn(async move {
        tracing::info!(topics = ?settings.topics, "recording dead letters");
        if let Err(e) = run_consumer(&kafka, settings, handler, services, shutdown).await {
            tracing::error!(error = %e, "the dead-letter reader stopped");
        }
    });
    Ok(())
}

/// Opens the audit store, starts the dead-letter reader and the audit view.
pub async fn setup(deps: ConsumerDeps, args: Args) -> Result<Arc<Audit>, AppError> {
    let mut access = args.access()?;
    if let Some(oidc) = args.oidc().await? {
        access = access.with_oidc(oidc);
    }
    let access = Arc::new(access);
    let store = Store::connect(&args.store_url).await.map_err(AppError::other)?;
    let log = store.audit();
    let recorded = IntCounterVec::new(
        opts!(
            "audit_events_recorded_total",
            "Events recorded in the audit store, by type; a replay's repeats are already-recorded."
        ),
        &["event_type", "outcome"],
    )?;
    deps.metrics.register(Box::new(recorded.clone()))?;
    let pruned = IntCounterVec::new(
        opts!("audit_pruned_total", "Audit records deleted past the retention (--retention-days), by what."),
        &["what"],
    )?;
    deps.metrics.register(Box::new(pruned.clone()))?;
    if args.retention_days > 0 {
        tokio::spawn(prune_hourly(log.clone(), args.retention_days, pruned, deps.shutdown.clone()));
    }

    start_dead_letter_reader(&deps, log.clone())?;
    let names = match &args.partners {
        Some(path) => {
            let profiles = gridsync_trading_grid::partners::PartnerProfiles::load(path).map_err(AppError::other)?;
            page::Names(profiles.all().map(|p| (p.id.clone(), p.name.clone())).collect())
        }
        None => page::Names::default(),
    };
    let (bound, _server) = http::serve(args.listen, log.clone(), access, names, deps.shutdown.clone())
        .await
        .map_err(|source| AppError::Io { what: "binding the audit view's address", source })?;
    tracing::info!(page = %format!("http://{bound}/"), backend = %store.backend(), "audit view serving");
    Ok(Arc::new(Audit { log, recorded }))
}
