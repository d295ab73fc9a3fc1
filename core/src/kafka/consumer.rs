//! The consumer loop every consumer binary runs.
//!
//! At-least-once, after rust-rdkafka's `at_least_once.rs`: auto-commit is on
//! but offsets are stored by hand, only after a record's work succeeded (or it
//! went to the dead-letter topic). One worker task per assigned partition keeps
//! each partition in order while partitions run concurrently.
//!
//! Failures: transient ones are retried with backoff, indefinitely, so a
//! record is never skipped because a dependency is down; permanent ones (an
//! undecodable record, a refused request) go to the consumer's dead-letter
//! topic with their context, and the records after them carry on.
//!
//! This module is the loop (subscribe, read, hand over, shut down); `dispatch` hands each
//! partition's records to its worker, `worker` does the work, `handler` and `settings` are what
//! a consumer brings to it. None of those reaches back here.

use std::sync::Arc;

use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::KafkaError,
    types::RDKafkaErrorCode,
};
use tokio_util::sync::CancellationToken;

use super::{
    context::{Assignments, GridsyncConsumerContext},
    dispatch::Dispatcher,
    worker::{in_flight_budget, Shared},
    ConsumerSettings, EventProducer, Handler,
};
use crate::{
    config::{ConfigError, KafkaArgs},
    registry::EventDecoder,
    telemetry::{Health, Metrics},
};

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("creating the Kafka consumer: {0}")]
    Create(#[source] KafkaError),
    #[error("subscribing to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        #[source]
        source: KafkaError,
    },
    /// The broker refused the consumer its group or topics: who, what, and what to do.
    #[error("{0}")]
    NotAuthorized(String),
}

/// Defaults a deployment may change through `--kafka-option`.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("statistics.interval.ms", "5000"),
    // Bound librdkafka's prefetch: processing is slower than fetching.
    ("queued.max.messages.kbytes", "16384"),
    // Once that bound is reached, librdkafka waits this long before fetching again (1 s by
    // default): a consumer working through a backlog faster than that sat idle most of the time
    // (measured: 35,000 records/s with the default, 150,000 with this, on the same broker).
    ("fetch.queue.backoff.ms", "10"),
];

/// What at-least-once depends on; not overridable.
const CONSUMER_OVERRIDES: &[(&str, &str)] = &[("enable.auto.commit", "true"), ("enable.auto.offset.store", "false")];

/// The services the consumer loop uses besides its handler.
pub struct ConsumerServices {
    /// Reads either framing.
    pub decoder: EventDecoder,
    /// Sends dead letters.
    pub producer: EventProducer,
    pub metrics: Metrics,
    /// Set ready once subscribed, unready on shutdown.
    pub health: Health,
}

/// Runs until `shutdown`, then finishes the records in hand, commits the
/// stored offsets and leaves the group.
pub async fn run_consumer<H: Handler>(
    kafka: &KafkaArgs,
    settings: ConsumerSettings,
    handler: H,
    services: ConsumerServices,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    let ConsumerServices { decoder, producer, metrics, health } = services;
    let max_in_flight = settings.max_in_flight;
    metrics.start_consuming(&settings.topics);
    let status = health.consumer().clone();
    status.started(&settings.name, &settings.group_id, &settings.topics);
    let assignments = Assignments::default();
    let context = GridsyncConsumerContext::new(metrics.clone(), assignments.clone(), status.clone());
    let consumer: StreamConsumer<GridsyncConsumerContext> = kafka
        .client_config(CONSUMER_DEFAULTS, CONSUMER_OVERRIDES)?
        .set("group.id", &settings.group_id)
        .create_with_context(context)
        .map_err(ConsumerError::Create)?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| ConsumerError::Subscribe { topics: settings.topics.clone(), source })?;
    tracing::info!(consumer = %settings.name, group = %settings.group_id, topics = ?settings.topics, "consuming");
    health.set_ready(true);

    let shared = Arc::new(Shared {
        consumer: Arc::new(consumer),
        assignments,
        handler,
        decoder,
        producer,
        metrics,
        settings,
        status,
        room: tokio::sync::Notify::new(),
        in_flight: in_flight_budget(max_in_flight),
    });
    let mut dispatcher = Dispatcher::new(shared.clone(), shutdown.clone());
    // While a partition is paused, its waiting records are offered to its worker this often.
    let mut drain = tokio::time::interval(std::time::Duration::from_millis(20));
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // An authorization the broker refuses does not come back by retrying: the loop stops on it.
    let mut refused = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            // A worker made room: move waiting records in now, not on the next tick.
            _ = shared.room.notified(), if dispatcher.has_overflow() => dispatcher.drain_overflow(),
            _ = drain.tick(), if dispatcher.has_overflow() => dispatcher.drain_overflow(),
            // While a partition that is only behind has too many records waiting, nothing more is
            // read: librdkafka keeps what it prefetched and stops fetching once its queue is full.
            message = shared.consumer.recv(), if !dispatcher.is_behind() => match message {
                Ok(m) => dispatcher.route(m.detach()),
                Err(e) => {
                    shared.metrics.failure("consume", "kafka");
                    if let Some(what) = not_authorized(&e, &shared.settings) {
                        tracing::error!(error = %e, "{what}: not authorized");
                        refused = Some(ConsumerError::NotAuthorized(format!(
                            "Kafka does not allow {} to {what}: {e}. `gridsync acls` lists what {} needs; have it \
                             granted (`gridsync acls --apply` as a Kafka administrator)",
                            super::access::principal(kafka),
                            shared.settings.name
                        )));
                        break;
                    }
                    // librdkafka reconnects by itself; these are informational.
                    tracing::warn!(error = %e, "consumer error");
                }
            },
        }
    }

    health.set_ready(false);
    // Every worker's token is a child of `shutdown`: idle ones return now, busy
    // ones finish the record in hand and store its offset first.
    dispatcher.finish().await;
    match shared.consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(error = %e, "final offset commit failed; uncommitted records will be redelivered")
        }
    }
    tracing::info!(consumer = %shared.settings.name, "stopped; offsets committed");
    // Dropping the last handle closes the consumer, which leaves the group.
    refused.map_or(Ok(()), Err)
}

/// What the broker refused, when `error` is an authorization failure.
fn not_authorized(error: &KafkaError, settings: &ConsumerSettings) -> Option<String> {
    match error.rdkafka_error_code()? {
        RDKafkaErrorCode::GroupAuthorizationFailed => Some(format!("READ group {}", settings.group_id)),
        RDKafkaErrorCode::TopicAuthorizationFailed => {
            Some(format!("READ (or DESCRIBE) its topics {}", settings.topics.join(", ")))
        }
        _ => None,
    }
}
