//! The inbound mailbox source: claim a file, parse and map it, publish its
//! events, and only once Kafka acknowledged them move the file to
//! `processed/`. A malformed file goes to `quarantine/` with its precise
//! reason and a DocumentExchangeException event; it never blocks the next file.
//!
//! A crash leaves the file claimed; the next start processes it again and
//! publishes the same events with the same (deterministic) event ids, which
//! downstream deduplication recognises.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use gridsync_core::{
    app::{wait_for_brokers, AppError, ProducerDeps},
    kafka::{EventProducer, RetryPolicy},
};
use gridsync_edi::{map_interchange, parse, sniff_sender, EdiError, MapContext};
use gridsync_schemas::{
    events::{DocumentExchangeException, Envelope, ExceptionKind, Severity, SourceSystem},
    Event, EventType, Timestamp,
};
use gridsync_trading_grid::mailbox::{Claimed, LocalMailbox, Outcome};
use tokio_util::sync::CancellationToken;

use crate::telemetry::InboundMetrics;

/// The Trading Grid producer's own flags.
#[derive(Debug, clap::Args)]
pub struct InboundArgs {
    /// Root of the inbound mailbox: files arrive in `inbound/`, and move to
    /// `processed/` or `quarantine/` below it.
    #[arg(long, env = "GRIDSYNC_TG_MAILBOX_DIR", default_value = "tg-mailbox")]
    mailbox_dir: PathBuf,
    /// How often to look for new files, in milliseconds.
    #[arg(long, env = "GRIDSYNC_TG_POLL_MS", default_value_t = 1000)]
    poll_ms: u64,
    /// Largest file accepted, in bytes; larger ones are quarantined.
    #[arg(long, env = "GRIDSYNC_TG_MAX_FILE_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_file_bytes: u64,
}

struct Inbound {
    mailbox: LocalMailbox,
    producer: EventProducer,
    metrics: InboundMetrics,
    shutdown: CancellationToken,
}

/// Watches the mailbox until shutdown.
pub async fn run(deps: ProducerDeps, args: InboundArgs) -> Result<(), AppError> {
    let mailbox =
        LocalMailbox::open(&args.mailbox_dir, args.max_file_bytes).await.map_err(|e| AppError::Source(e.into()))?;
    let metrics = InboundMetrics::register(&deps.metrics)?;
    if !wait_for_brokers(&deps).await {
        return Ok(());
    }
    tracing::info!(mailbox = %args.mailbox_dir.display(), "watching the inbound mailbox");
    let inbound = Inbound { mailbox, producer: deps.producer.clone(), metrics, shutdown: deps.shutdown.clone() };
    // Files claimed before a crash first, then arrivals, oldest first.
    let mut names = inbound.mailbox.unfinished().await.map_err(|e| AppError::Source(e.into()))?;
    loop {
        names.extend(inbound.mailbox.waiting().await.map_err(|e| AppError::Source(e.into()))?);
        for name in names.drain(..) {
            if inbound.shutdown.is_cancelled() {
                break;
            }
            inbound.process(&name).await.map_err(|e| AppError::Source(e.into()))?;
        }
        tokio::select! {
            _ = inbound.shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(args.poll_ms)) => {}
        }
    }
    deps.health.set_ready(false);
    Ok(())
}

impl Inbound {
    async fn process(&self, name: &str) -> Result<(), gridsync_trading_grid::mailbox::MailboxError> {
        let claimed = match self.mailbox.claim(name).await? {
            None => return Ok(()),
            Some(Err(too_large)) => {
                let claimed =
                    Claimed { name: name.to_owned(), bytes: Vec::new(), arrived: std::time::SystemTime::now() };
                return self.quarantine(&claimed, too_large, "too_large", BTreeMap::new()).await;
            }
            Some(Ok(claimed)) => claimed,
        };
        let events = match self.map(&claimed) {
            Ok(events) => events,
            Err(e) => {
                let details = BTreeMap::from([
                    ("segment".to_owned(), e.segment.to_string()),
                    ("element".to_owned(), e.element.map(|n| n.to_string()).unwrap_or_default()),
                    ("error_kind".to_owned(), format!("{:?}", e.kind)),
                ]);
                let reason = format!("{}: {e}", claimed.name);
                return self.quarantine(&claimed, reason, &format!("{:?}", e.kind), details).await;
            }
        };
        for event in &events {
            if !self.publish(event).await {
                // Shutting down: the file stays claimed and is processed again on the next start.
                return Ok(());
            }
            let doc_type = event.envelope().trading_grid_document.as_ref().map_or("", |d| d.document_type.as_str());
            self.metrics.document(doc_type, &event.envelope().trading_partner_id);
        }
        self.mailbox.finish(&claimed.name, &Outcome::Processed).await?;
        self.metrics.file("processed", claimed.bytes.len(), claimed.arrived);
        tracing::info!(file = %claimed.name, events = events.len(), "processed");
        Ok(())
    }

    /// Every event of every interchange in the file, or the first error.
    fn map(&self, claimed: &Claimed) -> Result<Vec<Event>, EdiError> {
        let ctx = MapContext { file_name: Some(&claimed.name), ingested_at: Timestamp::now() };
        let mut events = Vec::new();
        for interchange in parse(&claimed.bytes)? {
            let mapped = map_interchange(&interchange, &ctx)?;
            for (document_type, control) in &mapped.skipped {
                tracing::warn!(file = %claimed.name, document_type, control, "document type not mapped; skipped");
            }
            events.extend(mapped.events);
        }
        Ok(events)
    }

    /// Publishes, retrying transient failures with backoff; false on shutdown.
    async fn publish(&self, event: &Event) -> bool {
        let policy = RetryPolicy::default();
        let mut attempt = 0;
        loop {
            match self.producer.publish(event, None).await {
                Ok(_) => return true,
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "publishing failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(policy.delay(attempt)) => {}
                    }
                }
            }
        }
    }

    /// Publishes the exception, then moves the file to quarantine with its reason.
    async fn quarantine(
        &self,
        claimed: &Claimed,
        reason: String,
        metric_reason: &str,
        mut details: BTreeMap<String, String>,
    ) -> Result<(), gridsync_trading_grid::mailbox::MailboxError> {
        let partner = sniff_sender(&claimed.bytes).unwrap_or_else(|| "unknown".to_owned());
        // The same file content yields the same event id, on every retry.
        let content = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &claimed.bytes).to_string();
        details.insert("file".to_owned(), claimed.name.clone());
        details.insert("bytes".to_owned(), claimed.bytes.len().to_string());
        let now = Timestamp::now();
        let outcome = Outcome::Quarantined { reason: reason.clone() };
        let destination = self.mailbox.destination(&claimed.name, &outcome).await;
        let event: Event = DocumentExchangeException {
            envelope: Envelope {
                event_id: Envelope::deterministic_event_id(
                    SourceSystem::TradingGrid,
                    &["quarantine", &claimed.name, &content],
                ),
                event_type: EventType::DocumentExchangeException.name().to_owned(),
                occurred_at: now,
                ingested_at: now,
                source_system: SourceSystem::TradingGrid,
                trading_partner_id: partner.clone(),
                business_key: claimed.name.clone(),
                correlation_id: format!("{partner}/FILE/{}", claimed.name),
                trading_grid_document: None,
                amplience_content: None,
            },
            kind: ExceptionKind::MalformedDocument,
            severity: Severity::Error,
            reason: reason.clone(),
            document_type: None,
            quarantine_path: Some(destination.display().to_string()),
            details,
        }
        .into();
        if !self.publish(&event).await {
            return Ok(());
        }
        let moved = self.mailbox.finish(&claimed.name, &outcome).await?;
        self.metrics.parse_failure(metric_reason);
        self.metrics.file("quarantined", claimed.bytes.len(), claimed.arrived);
        tracing::warn!(file = %claimed.name, to = %moved.display(), %reason, "quarantined");
        Ok(())
    }
}
