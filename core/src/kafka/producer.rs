//! The event producer: idempotent, every record keyed and self-describing.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use gridsync_schemas::{catalog::TopicCatalog, codec, Codec, CodecError, Event, EventType};
use rdkafka::{
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};

use super::headers;

use crate::{
    config::{ConfigError, KafkaArgs},
    registry::{RegistryError, SchemaRegistry},
    telemetry::{Metrics, TraceContext},
};

/// The longest a record waits for room in the producer's local queue before the send fails
/// (`gridsync_failures_total{stage="produce",reason="queue_full"}`) and its caller retries.
pub const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a record is sent while Kafka acknowledges it without an offset (see
/// [`EventProducer::send`]) before the send fails for its caller to retry.
const UNCONFIRMED_SENDS: usize = 3;

/// An event encoded for its topic, with what its record's key and headers need
/// ([`EventProducer::prepare`]).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub event_type: EventType,
    pub event_id: String,
    correlation_id: String,
    key: String,
    payload: Box<[u8]>,
    /// Where the bare Avro datum starts in `payload` (after its framing).
    datum_at: usize,
    schema_header: &'static str,
    schema_value: String,
}

impl Prepared {
    /// The event again, decoded from what was prepared (for the rare use that needs all of it).
    pub fn event(&self) -> Result<Event, CodecError> {
        let codec = codec()?;
        let writer = &codec.current(self.event_type).schema;
        Ok(codec.decode_datum_with_writer(writer, &self.payload[self.datum_at..])?.event)
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("topic catalog: {0}")]
    Catalog(#[from] gridsync_schemas::catalog::CatalogError),
    #[error(transparent)]
    Encode(#[from] CodecError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("creating the Kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("topic {0} has no event key strategy")]
    Unkeyed(String),
    #[error("Kafka did not acknowledge the record for {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("Kafka acknowledged the record for {topic} {sends} times without an offset: not known to be written")]
    Unconfirmed { topic: String, sends: usize },
}

impl PublishError {
    /// Kafka refused the record itself as too large: sending it again cannot succeed.
    pub fn is_too_large(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode::{InvalidMessageSize, MessageSizeTooLarge};
        matches!(
            self,
            PublishError::Kafka { source: KafkaError::MessageProduction(MessageSizeTooLarge | InvalidMessageSize), .. }
        )
    }

    /// Worth retrying: the broker or registry may come back; bad data will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            PublishError::Kafka { .. } => !self.is_too_large(),
            PublishError::Unconfirmed { .. } => true,
            PublishError::Registry(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Librdkafka settings the producer's guarantees depend on; they override user options.
const PRODUCER_OVERRIDES: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

/// Librdkafka settings the producer starts from; users may override them.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[("statistics.interval.ms", "5000")];

/// The producer's librdkafka context: its statistics as metrics.
pub struct ProducerContext(Metrics);

impl rdkafka::ClientContext for ProducerContext {
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        self.0.kafka_statistics("producer", &statistics);
    }
}

/// Publishes events to the topics of the catalog.
#[derive(Clone)]
pub struct EventProducer {
    producer: FutureProducer<ProducerContext>,
    catalog: Arc<TopicCatalog>,
    codec: &'static Codec,
    registry: Option<Arc<SchemaRegistry>>,
    metrics: Metrics,
}

impl EventProducer {
    pub fn new(kafka: &KafkaArgs, metrics: Metrics) -> Result<Self, PublishError> {
        let producer = kafka
            .client_config(PRODUCER_DEFAULTS, PRODUCER_OVERRIDES)?
            .create_with_context(ProducerContext(metrics.clone()))
            .map_err(PublishError::Create)?;
        let catalog = gridsync_schemas::catalog::catalog()?.with_prefix(&kafka.topic_prefix);
        let registry = kafka.schema_registry_url.as_deref().map(|url| Arc::new(SchemaRegistry::new(url)));
        Ok(EventProducer { producer, catalog: Arc::new(catalog), codec: codec()?, registry, metrics })
    }

    /// The catalog in use (with the topic prefix applied).
    pub fn catalog(&self) -> &TopicCatalog {
        &self.catalog
    }

    /// Publishes to the event type's topic and waits for Kafka's acknowledgement.
    /// `parent` is the trace of the record being handled, if any.
    pub async fn publish(&self, event: &Event, parent: Option<&TraceContext>) -> Result<Delivered, PublishError> {
        let topic = &self.catalog.topic_for(event.event_type()).name;
        self.publish_to(topic, event, parent).await
    }

    /// Publishes to an explicit topic.
    pub async fn publish_to(
        &self,
        topic: &str,
        event: &Event,
        parent: Option<&TraceContext>,
    ) -> Result<Delivered, PublishError> {
        let prepared = self.prepare(event).await?;
        self.send_prepared(topic, &prepared, parent).await
    }

    /// `event` encoded for its topic (its schema registered first, with a registry), ready to
    /// send with [`Self::publish_prepared`]: what a producer holding many events at once keeps
    /// of each (a fraction of the event's own size).
    pub async fn prepare(&self, event: &Event) -> Result<Prepared, PublishError> {
        let event_type = event.event_type();
        let (payload, datum_at, schema_header, schema_value) = match &self.registry {
            Some(registry) => {
                let id = registry.register(event_type).await.inspect_err(|e| {
                    self.metrics.failure("registry", e.reason());
                })?;
                let mut payload = Vec::with_capacity(1_024);
                payload.push(gridsync_schemas::codec::CONFLUENT_MAGIC);
                payload.extend_from_slice(&id.to_be_bytes());
                let datum_at = payload.len();
                self.codec.encode_datum_into(event, &mut payload);
                (payload, datum_at, headers::SCHEMA_ID, id.to_string())
            }
            None => {
                // Single-object encoding: the magic, the schema's fingerprint, the datum.
                let fingerprint = self.codec.current(event_type).fingerprint;
                let mut payload = Vec::with_capacity(1_024);
                payload.extend_from_slice(&gridsync_schemas::codec::SINGLE_OBJECT_MAGIC);
                payload.extend_from_slice(&fingerprint.0);
                let datum_at = payload.len();
                self.codec.encode_datum_into(event, &mut payload);
                (payload, datum_at, headers::SCHEMA_FINGERPRINT, fingerprint.to_string())
            }
        };
        let envelope = event.envelope();
        Ok(Prepared {
            event_type,
            event_id: envelope.event_id.clone(),
            correlation_id: envelope.correlation_id.clone(),
            key: envelope.record_key(),
            payload: payload.into_boxed_slice(),
            datum_at,
            schema_header,
            schema_value,
        })
    }

    /// Publishes a prepared event to its event type's topic and waits for Kafka's acknowledgement.
    pub async fn publish_prepared(
        &self,
        prepared: &Prepared,
        parent: Option<&TraceContext>,
    ) -> Result<Delivered, PublishError> {
        let topic = &self.catalog.topic_for(prepared.event_type).name;
        self.send_prepared(topic, prepared, parent).await
    }

    async fn send_prepared(
        &self,
        topic: &str,
        prepared: &Prepared,
        parent: Option<&TraceContext>,
    ) -> Result<Delivered, PublishError> {
        let trace = parent.map_or_else(TraceContext::new_root, TraceContext::child).to_string();
        // Built for each send rather than built once and copied: librdkafka allocates every
        // header of a copy again, and an event is nearly always sent once.
        let record_headers = || {
            OwnedHeaders::new_with_capacity(5)
                .insert(Header { key: headers::EVENT_TYPE, value: Some(prepared.event_type.name()) })
                .insert(Header { key: headers::EVENT_ID, value: Some(prepared.event_id.as_str()) })
                .insert(Header { key: headers::CORRELATION_ID, value: Some(prepared.correlation_id.as_str()) })
                .insert(Header { key: prepared.schema_header, value: Some(prepared.schema_value.as_str()) })
                .insert(Header { key: headers::TRACEPARENT, value: Some(trace.as_str()) })
        };
        let (key, payload) = (prepared.key.as_bytes(), &prepared.payload[..]);
        self.send_each_time(topic, Some(key), Some(payload), record_headers).await
    }

    /// Sends raw bytes (dead letters, re-drives) and waits for the acknowledgement.
    ///
    /// An acknowledgement without an offset is not trusted: librdkafka reports a batch the
    /// broker calls a duplicate of an earlier attempt (`DUPLICATE_SEQUENCE_NUMBER`, after a
    /// retry) as delivered, offset unknown, and records acknowledged so have been seen missing
    /// from the log. Such a record is sent again (a copy under the same event id at worst,
    /// which consumers drop); after [`UNCONFIRMED_SENDS`] the caller retries.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<Delivered, PublishError> {
        self.send_each_time(topic, key, payload, || headers.clone()).await
    }

    /// [`Self::send`] with the record's headers made by `headers` for each send.
    async fn send_each_time(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: impl Fn() -> OwnedHeaders,
    ) -> Result<Delivered, PublishError> {
        for _ in 0..UNCONFIRMED_SENDS {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers());
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(payload) = payload {
                record = record.payload(payload);
            }
            let started = Instant::now();
            // A full local queue is waited on for at most ENQUEUE_TIMEOUT (then an error, counted,
            // that the caller retries); the delivery itself is bounded by librdkafka's own timeout.
            match self.producer.send(record, Timeout::After(ENQUEUE_TIMEOUT)).await {
                Ok(delivery) if delivery.offset >= 0 => {
                    self.metrics.record_produced(topic, started.elapsed());
                    return Ok(Delivered {
                        topic: topic.to_owned(),
                        partition: delivery.partition,
                        offset: delivery.offset,
                    });
                }
                Ok(delivery) => {
                    self.metrics.failure("produce", "unconfirmed");
                    tracing::warn!(
                        topic,
                        partition = delivery.partition,
                        "acknowledged without an offset; sending again"
                    );
                }
                Err((source, _)) => {
                    let queue_full =
                        matches!(source, KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull));
                    self.metrics.failure("produce", if queue_full { "queue_full" } else { "kafka" });
                    return Err(PublishError::Kafka { topic: topic.to_owned(), source });
                }
            }
        }
        Err(PublishError::Unconfirmed { topic: topic.to_owned(), sends: UNCONFIRMED_SENDS })
    }

    /// Asks the cluster for its metadata; returns how many brokers answered.
    pub async fn check_brokers(&self, timeout: Duration) -> Result<usize, KafkaError> {
        let producer = self.producer.clone();
        // fetch_metadata blocks; a panicked lookup counts as a failed one.
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|m| m.brokers().len()))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }

    /// Waits for every queued record to be acknowledged (on shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
