//! Side effects performed once, and reported.
//!
//! Every side effect has a deterministic key, `<source event id>/<action>/<target>`.
//! Before it is performed it is claimed in the store's ledger (an atomic unique
//! insert: two owners of a partition during a rebalance never both perform it);
//! after, it is marked done with its outcome, then reported as a
//! `DeliveryPerformed` event on `gridsync.deliveries` (id derived from the key,
//! so a repeat is recognisable) before the record's offset is stored. A replay
//! finds it done and performs nothing. A crash between performing and marking
//! is caught on the target, where the key derives the Amplience delivery key
//! or the outbound file name: the work closure is given the key for that.

use std::{future::Future, time::Duration};

use gridsync_core::{
    kafka::{EventProducer, Record},
    telemetry::Metrics,
};
use gridsync_schemas::{
    events::{AmplienceContentRef, DeliveryOutcome, DeliveryPerformed, Envelope, SourceSystem, TargetSystem},
    Event, EventType, Timestamp,
};
use gridsync_store::{Claim, Performed, SideEffects};
use prometheus::{histogram_opts, opts, HistogramVec, IntCounterVec};
use serde::{Deserialize, Serialize};

use crate::FlowError;

/// One side effect a record causes.
#[derive(Debug, Clone)]
pub struct SideEffect {
    /// What it is, e.g. `order-confirmation` (a label in metrics and the audit view).
    pub action: String,
    pub target: TargetSystem,
    /// Who it is for (a customer, an account team, a partner), if anyone.
    pub recipient: Option<String>,
    /// What makes it unique: the source event (by default), or a subject of the
    /// flow's own (a task, a payment) when many events must cause it only once.
    pub once_per: Option<String>,
}

impl SideEffect {
    pub fn amplience(action: &str, recipient: Option<String>) -> Self {
        SideEffect { action: action.to_owned(), target: TargetSystem::Amplience, recipient, once_per: None }
    }

    pub fn trading_grid(action: &str, recipient: Option<String>) -> Self {
        SideEffect { action: action.to_owned(), target: TargetSystem::TradingGrid, recipient, once_per: None }
    }

    /// The same side effect, performed once per `subject` whichever event causes it.
    pub fn once_per(mut self, subject: impl Into<String>) -> Self {
        self.once_per = Some(subject.into());
        self
    }

    /// The ledger key of this side effect of `source`.
    pub fn key(&self, source: &Envelope) -> String {
        let scope = self.once_per.as_deref().unwrap_or(&source.event_id);
        format!("{scope}/{}/{}", self.action, self.target.as_str().to_ascii_lowercase())
    }
}

/// What performing a side effect did on its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The id on the target: a content item id, a file name.
    pub external_id: String,
    /// Created now, or found already there (a crash after the effect, before the ledger).
    pub outcome: DeliveryOutcome,
    /// The approved content (template) used, if any.
    pub content_item_id: Option<String>,
    pub content_version: Option<i64>,
    /// The Amplience item created or updated, for the event's envelope.
    pub amplience_item: Option<AmplienceContentRef>,
}

/// What a report names besides the target id, kept in the ledger for a late report.
#[derive(Debug, Serialize, Deserialize)]
struct Details {
    content_item_id: Option<String>,
    content_version: Option<i64>,
    amplience_item: Option<AmplienceContentRef>,
}

impl Details {
    fn of(outcome: &Outcome) -> Self {
        Details {
            content_item_id: outcome.content_item_id.clone(),
            content_version: outcome.content_version,
            amplience_item: outcome.amplience_item.clone(),
        }
    }
}

impl Outcome {
    /// The outcome as the ledger recorded it (`None` when it kept no details: an older ledger).
    fn recorded(performed: &Performed) -> Option<Self> {
        let details: Details = serde_json::from_str(performed.details.as_deref()?).ok()?;
        Some(Outcome {
            external_id: performed.external_id.clone(),
            outcome: recorded_outcome(performed),
            content_item_id: details.content_item_id,
            content_version: details.content_version,
            amplience_item: details.amplience_item,
        })
    }
}

/// Performs side effects once and reports each.
#[derive(Clone)]
pub struct Effects {
    consumer: String,
    kafka: gridsync_core::config::KafkaArgs,
    owner: String,
    ledger: SideEffects,
    producer: EventProducer,
    lease: Duration,
    performed: IntCounterVec,
    ledger_hits: IntCounterVec,
    latency: HistogramVec,
    business_lag: HistogramVec,
}

impl Effects {
    pub fn new(
        consumer: &str,
        kafka: gridsync_core::config::KafkaArgs,
        ledger: SideEffects,
        producer: EventProducer,
        metrics: &Metrics,
        lease: Duration,
    ) -> Result<Self, prometheus::Error> {
        let performed = IntCounterVec::new(
            opts!("flow_side_effects_total", "Side effects by flow, action and outcome (created, already_done)."),
            &["flow", "action", "outcome"],
        )?;
        let ledger_hits = IntCounterVec::new(
            opts!("flow_ledger_hits_total", "Side effects found done in the ledger (a replay or redelivery)."),
            &["flow", "action"],
        )?;
        let latency = HistogramVec::new(
            histogram_opts!(
                "flow_source_to_effect_seconds",
                "Time from gridsync receiving the source (its envelope's ingested_at: the partner file \
                 claimed, the webhook answered, the Lens event read) to its side effect done.",
                prometheus::exponential_buckets(0.01, 2.0, 20)?
            ),
            &["flow", "action"],
        )?;
        // The document's own date (occurred_at) is a business date, midnight for most EDI: how
        // far behind the business a side effect lands, in minutes to days, not a latency.
        let business_lag = HistogramVec::new(
            histogram_opts!(
                "flow_business_date_to_effect_seconds",
                "Time from the source document's own date (occurred_at) to its side effect.",
                vec![
                    60.0,
                    300.0,
                    900.0,
                    3600.0,
                    4.0 * 3600.0,
                    12.0 * 3600.0,
                    86400.0,
                    3.0 * 86400.0,
                    7.0 * 86400.0,
                    30.0 * 86400.0
                ]
            ),
            &["flow", "action"],
        )?;
        metrics.register(Box::new(performed.clone()))?;
        metrics.register(Box::new(ledger_hits.clone()))?;
        metrics.register(Box::new(latency.clone()))?;
        metrics.register(Box::new(business_lag.clone()))?;
        // Unique per process: a restarted consumer is a new owner, and its predecessor's
        // claims are taken over once their lease runs out.
        let owner = format!("{consumer}/{}/{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Ok(Effects {
            consumer: consumer.to_owned(),
            kafka,
            owner,
            ledger,
            producer,
            lease,
            performed,
            ledger_hits,
            latency,
            business_lag,
        })
    }

    /// This process's name in claims (the ledger's and the timers').
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether `effect` of `record` was begun: performed, being performed, or
    /// claimed by a process that died on it (and may have reached the target).
    pub async fn begun(&self, record: &Record, effect: &SideEffect) -> Result<bool, FlowError> {
        Ok(self.ledger.begun(&effect.key(record.event.envelope())).await?)
    }

    /// Performs `effect` of `record` once: `work` gets the side effect's key
    /// (to derive the target's idempotency key from) and runs only if the
    /// ledger has no record of it. Returns what was done, now or before.
    pub async fn perform<F, Fut>(&self, record: &Record, effect: &SideEffect, work: F) -> Result<Performed, FlowError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Outcome, FlowError>>,
    {
        let source = record.event.envelope();
        let key = effect.key(source);
        match self.ledger.claim(&key, &self.owner, self.lease).await? {
            Claim::Done(performed) => {
                self.ledger_hits.with_label_values(&[&self.consumer, &effect.action]).inc();
                if !performed.reported {
                    // Done, and its performer stopped before noting the report: the report may
                    // be on the topic already (killed between Kafka's ack and the note).
                    let recorded = Outcome::recorded(&performed);
                    let event = delivery_performed(&self.consumer, record, effect, &key, &performed, recorded.as_ref());
                    let topic = &self.producer.catalog().topic_for(event.event_type()).name;
                    let event_id = &event.envelope().event_id;
                    if !gridsync_core::kafka::reported::is_on_topic(
                        &self.kafka,
                        topic,
                        event_id,
                        performed.performed_at_ms,
                    )
                    .await?
                    {
                        self.producer.publish(&event, Some(&record.trace)).await?;
                    }
                    self.ledger.mark_reported(&key).await?;
                }
                return Ok(performed);
            }
            Claim::Busy { owner, expires_in_ms } => {
                return Err(FlowError::ClaimedElsewhere { key, owner, expires_in_ms });
            }
            Claim::Claimed => {}
        }
        let outcome = match work(key.clone()).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // Free at once for the retry (ours or the next owner's).
                if let Err(release) = self.ledger.release(&key, &self.owner).await {
                    tracing::warn!(error = %release, key, "releasing a side-effect claim; it expires by itself");
                }
                return Err(e);
            }
        };
        let performed = Performed {
            external_id: outcome.external_id.clone(),
            outcome: outcome.outcome.as_str().to_ascii_lowercase(),
            performed_at_ms: chrono::Utc::now().timestamp_millis(),
            reported: false,
            details: serde_json::to_string(&Details::of(&outcome)).ok(),
        };
        if !self.ledger.complete(&key, &self.owner, &performed, self.lease).await? {
            // Our claim expired and another owner took it over: the target's key kept the effect
            // single, and reporting it is the new owner's, so that it is reported once.
            tracing::warn!(key, "side-effect claim expired while performing; the target deduplicated it");
            return Ok(performed);
        }
        self.performed.with_label_values(&[&self.consumer, &effect.action, &performed.outcome]).inc();
        let labels = [self.consumer.as_str(), effect.action.as_str()];
        let now = chrono::Utc::now();
        let seconds_since =
            |t: &Timestamp| t.to_datetime().map(|since| (now - since).num_milliseconds().max(0) as f64 / 1000.0);
        if let Some(seconds) = seconds_since(&source.ingested_at) {
            self.latency.with_label_values(&labels).observe(seconds);
        }
        if let Some(seconds) = seconds_since(&source.occurred_at) {
            self.business_lag.with_label_values(&labels).observe(seconds);
        }
        let event = delivery_performed(&self.consumer, record, effect, &key, &performed, Some(&outcome));
        self.producer.publish(&event, Some(&record.trace)).await?;
        self.ledger.mark_reported(&key).await?;
        Ok(performed)
    }
}

/// The outcome the ledger recorded (`created`, `updated`, `already_done`).
fn recorded_outcome(performed: &Performed) -> DeliveryOutcome {
    match performed.outcome.as_str() {
        "already_done" => DeliveryOutcome::AlreadyDone,
        "updated" => DeliveryOutcome::Updated,
        _ => DeliveryOutcome::Created,
    }
}

/// The DeliveryPerformed event of one side effect, built from its source record.
/// Its id derives from the side effect's key, so a repeat is recognisable.
pub fn delivery_performed(
    consumer: &str,
    record: &Record,
    effect: &SideEffect,
    key: &str,
    performed: &Performed,
    outcome: Option<&Outcome>,
) -> Event {
    let source = record.event.envelope();
    let performed_at = Timestamp::from_millis(performed.performed_at_ms);
    Event::DeliveryPerformed(DeliveryPerformed {
        envelope: Envelope {
            amplience_content: outcome.and_then(|o| o.amplience_item.clone()),
            ..Envelope::derived_from(
                source,
                SourceSystem::Gridsync,
                EventType::DeliveryPerformed,
                &["delivery", key],
                performed_at,
            )
        },
        consumer: consumer.to_owned(),
        target_system: effect.target,
        action: effect.action.clone(),
        recipient: effect.recipient.clone(),
        external_id: performed.external_id.clone(),
        idempotency_key: key.to_owned(),
        content_item_id: outcome.and_then(|o| o.content_item_id.clone()),
        content_version: outcome.and_then(|o| o.content_version),
        source_event_id: source.event_id.clone(),
        source_event_type: source.event_type.clone(),
        outcome: recorded_outcome(performed),
        performed_at,
    })
}
