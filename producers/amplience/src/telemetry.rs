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
    pub const ALL: [Outcome; 6] = [
        Outcome::Published,
        Outcome::Duplicate,
        Outcome::Ignored,
        Outcome::Quarantined,
        Outcome::Rejected,
        Outcome::Unavailable,
    ];

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
    rejected_samples: IntCounterVec,
    credentials_ok: prometheus::IntGauge,
}

impl WebhookMetrics {
    pub fn register(metrics: &Metrics) -> Result<Self, AppError> {
        let requests = IntCounterVec::new(opts!("amp_webhooks_total", "Webhook requests by outcome."), &["outcome"])?;
        let rejected = IntCounterVec::new(
            opts!("amp_webhooks_rejected_total", "Refused webhook requests (forged, unsigned, malformed, too large)."),
            &["reason"],
        )?;
        // At zero from the start: an alert on the first forged request sees it.
        for outcome in Outcome::ALL {
            requests.with_label_values(&[outcome.as_str()]);
        }
        for reason in ["signature_missing", "signature_not_base64", "signature_mismatch", "malformed", "too_large"] {
            rejected.with_label_values(&[reason]);
        }
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
        for outcome in Outcome::ALL {
            latency.with_label_values(&[outcome.as_str()]);
        }
        for c in [&requests, &rejected, &ignored, &published] {
            metrics.register(Box::new(c.clone()))?;
        }
        let rejected_samples = IntCounterVec::new(
            opts!(
                "amp_rejected_samples_total",
                "Refused requests kept in the dead-letter topic (kept) or only counted (dropped: rate limited)."
            ),
            &["outcome"],
        )?;
        let credentials_ok = prometheus::IntGauge::with_opts(opts!(
            "amp_amplience_credentials_ok",
            "1 while Amplience accepts gridsync's credentials, 0 once it refused them (webhooks are answered 503)."
        ))?;
        credentials_ok.set(1);
        metrics.register(Box::new(rejected_samples.clone()))?;
        metrics.register(Box::new(credentials_ok.clone()))?;
        metrics.register(Box::new(latency.clone()))?;
        Ok(WebhookMetrics { requests, rejected, ignored, published, latency, rejected_samples, credentials_ok })
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

    pub fn rejected_sample(&self, outcome: &str) {
        self.rejected_samples.with_label_values(&[outcome]).inc();
    }

    pub fn credentials(&self, ok: bool) {
        self.credentials_ok.set(i64::from(ok));
    }
}
