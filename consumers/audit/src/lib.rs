//! The audit flow (flow 7) as a library: what it records of each event, the
//! dead-letter reader, the queries' HTTP API and page, and its set-up.

pub mod dead_letters;
pub mod entry;
pub mod http;
pub mod page;

use std::{net::SocketAddr, sync::Arc};

use gridsync_core::{
    app::{AppError, ConsumerDeps},
    kafka::{Handler, HandlerError, Record},
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
    /// Where the audit page and its JSON API listen.
    #[arg(long = "listen", env = "GRIDSYNC_AUDIT_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
}

/// Records every event it is handed, once.
pub struct Audit {
    log: AuditLog,
    recorded: IntCounterVec,
}

impl Handler for Audit {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let entry = entry::of_record(record).map_err(|e| HandlerError::permanent("audit.json", e))?;
        let new = self.log.record(&entry).await.map_err(|e| HandlerError::from_source("audit.store", true, e))?;
        let outcome = if new { "new" } else { "already-recorded" };
        tracing::debug!(event_type = entry.event_type, outcome, "event recorded");
        self.recorded.with_label_values(&[entry.event_type.as_str(), outcome]).inc();
        Ok(())
    }
}

/// Opens the audit store, starts the dead-letter reader and the audit view.
pub async fn setup(deps: ConsumerDeps, args: Args) -> Result<Arc<Audit>, AppError> {
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

    let catalog = catalog::catalog()?.with_prefix(&deps.kafka.topic_prefix);
    let reader = dead_letters::DeadLetterReader {
        kafka: deps.kafka.clone(),
        group: catalog.consumer(&deps.name)?.dead_letter_reader_group(),
        topics: catalog.dead_letter_topics(),
        names: dead_letters::names_by_group(&catalog),
        log: log.clone(),
        metrics: deps.metrics.clone(),
    };
    let shutdown = deps.shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = reader.run(shutdown).await {
            tracing::error!(error = %e, "the dead-letter reader stopped");
        }
    });
    let (bound, _server) = http::serve(args.listen, log.clone(), deps.shutdown.clone())
        .await
        .map_err(|source| AppError::Io { what: "binding the audit view's address", source })?;
    tracing::info!(page = %format!("http://{bound}/"), backend = %store.backend(), "audit view serving");
    Ok(Arc::new(Audit { log, recorded }))
}
