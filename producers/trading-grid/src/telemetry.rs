//! The producer's own metrics, beside the runtime's.

use gridsync_core::{app::AppError, telemetry::Metrics};
use prometheus::{exponential_buckets, histogram_opts, opts, HistogramVec, IntCounterVec};

#[derive(Clone)]
pub struct InboundMetrics {
    documents: IntCounterVec,
    files: IntCounterVec,
    parse_failures: IntCounterVec,
    bytes: IntCounterVec,
    lag: HistogramVec,
    acks: IntCounterVec,
    mailbox_errors: prometheus::IntCounter,
    already_published: prometheus::IntCounter,
    controls_reused: IntCounterVec,
    tolerated: IntCounterVec,
    unsupported: IntCounterVec,
    rejected_transactions: IntCounterVec,
    acks_received: IntCounterVec,
    partners: PartnerLabels,
}

/// The `partner` label's values, capped: the first [`MAX_PARTNER_LABELS`] partners seen get
/// their own series, any more share `other`, so a flood of sender ids cannot blow up the
/// metrics (the logs name every partner).
#[derive(Clone, Default)]
struct PartnerLabels {
    seen: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// Partners with series of their own.
pub const MAX_PARTNER_LABELS: usize = 200;

impl PartnerLabels {
    fn label<'a>(&self, partner: &'a str) -> &'a str {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(partner) {
            return partner;
        }
        if seen.len() < MAX_PARTNER_LABELS {
            seen.insert(partner.to_owned());
            return partner;
        }
        "other"
    }
}

impl InboundMetrics {
    pub fn register(metrics: &Metrics) -> Result<Self, AppError> {
        let documents = IntCounterVec::new(
            opts!("tg_documents_total", "Documents published, by type and partner."),
            &["document_type", "partner"],
        )?;
        let files = IntCounterVec::new(opts!("tg_files_total", "Inbound files by outcome."), &["outcome"])?;
        let parse_failures =
            IntCounterVec::new(opts!("tg_parse_failures_total", "Quarantined files by reason."), &["reason"])?;
        let bytes = IntCounterVec::new(opts!("tg_bytes_total", "Bytes of inbound files processed."), &["outcome"])?;
        let lag = HistogramVec::new(
            histogram_opts!(
                "tg_file_to_ack_seconds",
                "From a file's arrival to Kafka's acknowledgement of its last event.",
                exponential_buckets(0.005, 2.0, 16)?
            ),
            &["outcome"],
        )?;
        let acks = IntCounterVec::new(
            opts!("tg_acks_written_total", "Acknowledgements written to the outbound mailbox."),
            &["outcome", "document_type"],
        )?;
        let mailbox_errors = prometheus::IntCounter::with_opts(opts!(
            "tg_mailbox_errors_total",
            "Rounds of the inbound mailbox that failed (connection, permissions, disk); retried."
        ))?;
        metrics.register(Box::new(mailbox_errors.clone()))?;
        let already_published = prometheus::IntCounter::with_opts(opts!(
            "tg_events_already_published_total",
            "Events of files processed again (after a crash, or resent) that Kafka already had: not published again."
        ))?;
        metrics.register(Box::new(already_published.clone()))?;
        for c in [&documents, &files, &parse_failures, &bytes, &acks] {
            metrics.register(Box::new(c.clone()))?;
        }
        let controls_reused = IntCounterVec::new(
            opts!(
                "tg_control_numbers_reused_total",
                "Documents received under control numbers a different document had (published, and reported)."
            ),
            &["partner"],
        )?;
        metrics.register(Box::new(controls_reused.clone()))?;
        let tolerated = IntCounterVec::new(
            opts!(
                "tg_tolerated_total",
                "Departures from the standard accepted because the partner's profile tolerates them (noted in the acknowledgement)."
            ),
            &["partner", "habit"],
        )?;
        metrics.register(Box::new(tolerated.clone()))?;
        let unsupported = IntCounterVec::new(
            opts!(
                "tg_unsupported_total",
                "Transactions of a type gridsync does not map: rejected in the acknowledgement, each an exception \
                 (answer rejected), or accepted and ignored as the partner's profile asks (answer ignored)."
            ),
            &["partner", "document_type", "answer"],
        )?;
        metrics.register(Box::new(unsupported.clone()))?;
        let rejected_transactions = IntCounterVec::new(
            opts!(
                "tg_rejected_transactions_total",
                "Transactions rejected on their own (a wrong trailer, an error inside) while the rest of their file \
                 was processed: each kept in quarantine, an exception."
            ),
            &["partner", "document_type", "error"],
        )?;
        metrics.register(Box::new(rejected_transactions.clone()))?;
        let acks_received = IntCounterVec::new(
            opts!(
                "tg_acks_received_total",
                "Functional acknowledgements partners sent (997, 999, CONTRL) by status: REJECTED and \
                 PARTIALLY_ACCEPTED refuse some of what gridsync sent them."
            ),
            &["partner", "status"],
        )?;
        metrics.register(Box::new(acks_received.clone()))?;
        metrics.register(Box::new(lag.clone()))?;
        // At zero from the start, so the first quarantined file shows as an increase.
        for outcome in ["processed", "quarantined"] {
            files.with_label_values(&[outcome]);
            lag.with_label_values(&[outcome]);
        }
        // And the first acknowledgement that cannot be written (an alert watches it).
        acks.with_label_values(&["unwritable", "none"]);
        Ok(InboundMetrics {
            documents,
            files,
            parse_failures,
            bytes,
            lag,
            acks,
            mailbox_errors,
            already_published,
            controls_reused,
            tolerated,
            unsupported,
            rejected_transactions,
            acks_received,
            partners: PartnerLabels::default(),
        })
    }

    pub fn documents(&self, document_type: &str, partner: &str, count: u64) {
        self.documents.with_label_values(&[document_type, self.partners.label(partner)]).inc_by(count);
    }

    /// Each partner's refusals start at zero, so that an alert sees the first one.
    pub fn expect_acks_from<'a>(&self, partners: impl Iterator<Item = &'a str>) {
        for partner in partners {
            for status in ["REJECTED", "PARTIALLY_ACCEPTED"] {
                self.acks_received.with_label_values(&[self.partners.label(partner), status]);
            }
        }
    }

    pub fn acks_received(&self, partner: &str, status: &str, count: u64) {
        self.acks_received.with_label_values(&[self.partners.label(partner), status]).inc_by(count);
    }

    pub fn control_numbers_reused(&self, partner: &str) {
        self.controls_reused.with_label_values(&[self.partners.label(partner)]).inc();
    }

    /// `answer`: `rejected` or `ignored`.
    pub fn unsupported(&self, partner: &str, document_type: &str, answer: &str) {
        let document_type = if document_type.len() <= 8 { document_type } else { "other" };
        self.unsupported.with_label_values(&[self.partners.label(partner.trim()), document_type, answer]).inc();
    }

    /// `error`: the kind of error (`CountMismatch`, `MissingElement`, ...).
    pub fn rejected_transaction(&self, partner: &str, document_type: &str, error: &str) {
        let document_type = if document_type.len() <= 8 { document_type } else { "other" };
        let labels = [self.partners.label(partner.trim()), document_type, error];
        self.rejected_transactions.with_label_values(&labels).inc();
    }

    pub fn tolerated(&self, partner: &str, habit: &str) {
        self.tolerated.with_label_values(&[self.partners.label(partner.trim()), habit]).inc();
    }

    pub fn file(&self, outcome: &str, bytes: usize, arrived: std::time::SystemTime) {
        self.files.with_label_values(&[outcome]).inc();
        self.bytes.with_label_values(&[outcome]).inc_by(bytes as u64);
        if let Ok(lag) = arrived.elapsed() {
            self.lag.with_label_values(&[outcome]).observe(lag.as_secs_f64());
        }
    }

    pub fn ack(&self, outcome: &str, document_type: &str) {
        self.acks.with_label_values(&[outcome, document_type]).inc();
    }

    /// `events` of a file Kafka had already.
    pub fn already_published(&self, events: usize) {
        self.already_published.inc_by(events as u64);
    }

    pub fn mailbox_error(&self) {
        self.mailbox_errors.inc();
    }

    pub fn parse_failure(&self, reason: &str) {
        self.parse_failures.with_label_values(&[reason]).inc();
    }
}

/// The Lens poller's metrics.
#[derive(Clone)]
pub struct LensMetrics {
    polls: IntCounterVec,
    events: IntCounterVec,
}

impl LensMetrics {
    pub fn register(metrics: &Metrics) -> Result<Self, AppError> {
        let polls = IntCounterVec::new(opts!("tg_lens_polls_total", "Lens polls by outcome."), &["outcome"])?;
        let events = IntCounterVec::new(
            opts!("tg_lens_events_total", "Events published from Lens status changes, by type."),
            &["event_type"],
        )?;
        metrics.register(Box::new(polls.clone()))?;
        metrics.register(Box::new(events.clone()))?;
        Ok(LensMetrics { polls, events })
    }

    /// The poll series at zero, once polling starts: an alert sees the first failed poll.
    pub fn polling(&self) {
        for outcome in ["ok", "error"] {
            self.polls.with_label_values(&[outcome]);
        }
    }

    pub fn poll(&self, outcome: &str) {
        self.polls.with_label_values(&[outcome]).inc();
    }

    pub fn event(&self, event_type: &str) {
        self.events.with_label_values(&[event_type]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_labels_are_capped() {
        let labels = PartnerLabels::default();
        for n in 0..MAX_PARTNER_LABELS {
            assert_eq!(labels.label(&format!("P{n}")), format!("P{n}"));
        }
        assert_eq!(labels.label("one-too-many"), "other");
        assert_eq!(labels.label("P0"), "P0", "the partners seen first keep their series");
    }
}
