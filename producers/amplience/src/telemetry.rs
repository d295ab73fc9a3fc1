//! The Amplience producer's own metrics, beside the runtime's.

use std::time::Instant;

use gridsync_core::{app::AppError, telemetry::Metrics};
use prometheus::{exponential_buckets, histogram_opts, opts, HistogramVec, IntCounterVec};

/// What became of a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Turned into an event that Kafka acknowledged.
    Published,
    /// A delivery id handled before: acknowledged, nothing published.
    Duplicate,
    /// Nothing for gridsync to do (another state, another type, our own change).
    Ignored,
    /// Genuine but unusable: kept in the dead-letter topic, acknowledged.
    Quarantined,
    /// Refused: forged, unsigned, malformed or too large.
    Rejected,
    /// Kafka or Amplience unavailable: 503, Amplience sends it again.
    Unavailable,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Quarantined => "quarantined",
            Outcome::Rejected => "rejected",
            Outcome::Unavailable => "unavailable",
        }
    }
}

#[derive(Clone)]
pub struct WebhookMetrics {
    requests: IntCounterVec,
    rejected: IntCounterVec,
    ignored: IntCounterVec,
    published: IntCounterVec,
    latency: HistogramVec,
}

impl WebhookMetrics {
    pub fn register(metrics: &Metrics) -> Result<Self, AppError> {
        let requests = IntCounterVec::new(opts!("amp_webhooks_total", "Webhook requests by outcome."), &["outcome"])?;
        let rejected = IntCounterVec::new(
            opts!("amp_webhooks_rejected_total", "Refused webhook requests (forged, unsigned, malformed, too large)."),
            &["reason"],
        )?;
        let ignored = IntCounterVec::new(
            opts!("amp_webhooks_ignored_total", "Webhooks with nothing to do, by reason."),
            &["reason"],
        )?;
        let published = IntCounterVec::new(
            opts!("amp_events_published_total", "Events published from webhooks."),
            &["event_type"],
        )?;
        let latency = HistogramVec::new(
            histogram_opts!(
                "amp_webhook_seconds",
                "From a webhook's arrival to its answer (Kafka's ack included).",
                exponential_buckets(0.001, 2.0, 16)?
            ),
            &["outcome"],
        )?;
        for c in [&requests, &rejected, &ignored, &published] {
            metrics.register(Box::new(c.clone()))?;
        }
        metrics.register(Box::new(latency.clone()))?;
        Ok(WebhookMetrics { requests, rejected, ignored, published, latency })
    }

    pub fn answered(&self, outcome: Outcome, started: Instant) {
        self.requests.with_label_values(&[outcome.as_str()]).inc();
        self.latency.with_label_values(&[outcome.as_str()]).observe(started.elapsed().as_secs_f64());
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    pub fn ignored(&self, reason: &str) {
        self.ignored.with_label_values(&[reason]).inc();
    }

    pub fn published(&self, event_type: &str) {
        self.published.with_label_values(&[event_type]).inc();
    }
}
