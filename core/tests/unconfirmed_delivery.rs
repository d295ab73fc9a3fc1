//! A record Kafka acknowledges without an offset is sent again, not taken as
//! written. librdkafka reports a batch the broker calls a duplicate of an
//! earlier attempt (`DUPLICATE_SEQUENCE_NUMBER`) as delivered with no offset;
//! librdkafka's mock cluster answers so without writing the batch, as a real
//! broker was seen doing in a test that killed amp-producer mid-burst (the
//! event was lost, its webhook already answered). The mock cluster injects the
//! fault here; the pipeline's own tests run on Apache Kafka.

// Tests state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use gridsync_core::{config::KafkaArgs, kafka::EventProducer, telemetry::Metrics};
use gridsync_schemas::{codec, samples::sample, EventType};
use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    mocking::MockCluster,
    types::{RDKafkaApiKey, RDKafkaRespErr},
    Message, Offset, TopicPartitionList,
};

/// The event ids on partition 0 of `topic`, from its start to its end.
fn event_ids_on(cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>, topic: &str) -> Vec<String> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "reader")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    reader.assign(&partitions).unwrap();
    let (_, end) = reader.fetch_watermarks(topic, 0, Duration::from_secs(5)).unwrap();
    let mut ids = Vec::new();
    let started = std::time::Instant::now();
    while (ids.len() as i64) < end && started.elapsed() < Duration::from_secs(10) {
        if let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) {
            ids.push(codec().unwrap().decode(message.payload().unwrap()).unwrap().event.envelope().event_id.clone());
        }
    }
    ids
}

#[tokio::test]
async fn a_record_acknowledged_without_an_offset_is_sent_again() {
    let cluster = MockCluster::new(1).unwrap();
    let producer =
        EventProducer::new(&KafkaArgs::for_brokers(cluster.bootstrap_servers()), Metrics::new("test").unwrap())
            .unwrap();
    let topic = producer.catalog().topic_for(EventType::PaymentConfirmed).name.clone();
    cluster.create_topic(&topic, 1, 1).unwrap();
    let (first, second) =
        (sample(EventType::PaymentConfirmed, "ACME", 1), sample(EventType::PaymentConfirmed, "ACME", 2));
    producer.publish(&first, None).await.unwrap();

    // The broker calls the next produce request a duplicate, and writes nothing.
    cluster.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_DUPLICATE_SEQUENCE_NUMBER]);
    let delivered = producer.publish(&second, None).await.unwrap();
    assert_eq!(delivered.offset, 1, "sent again, and written after the first");
    let ids = event_ids_on(&cluster, &topic);
    assert_eq!(ids, [first.envelope().event_id.clone(), second.envelope().event_id.clone()]);
}

#[tokio::test]
async fn a_record_never_confirmed_fails_for_its_caller_to_retry() {
    let cluster = MockCluster::new(1).unwrap();
    let metrics = Metrics::new("test").unwrap();
    let producer = EventProducer::new(&KafkaArgs::for_brokers(cluster.bootstrap_servers()), metrics.clone()).unwrap();
    let topic = producer.catalog().topic_for(EventType::PaymentConfirmed).name.clone();
    cluster.create_topic(&topic, 1, 1).unwrap();
    producer.publish(&sample(EventType::PaymentConfirmed, "ACME", 1), None).await.unwrap();

    let duplicate = RDKafkaRespErr::RD_KAFKA_RESP_ERR_DUPLICATE_SEQUENCE_NUMBER;
    cluster.request_errors(RDKafkaApiKey::Produce, &[duplicate; 3]);
    let error = producer.publish(&sample(EventType::PaymentConfirmed, "ACME", 2), None).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("3 times without an offset"), "{error}");
    assert!(
        metrics
            .render()
            .contains(r#"gridsync_failures_total{reason="unconfirmed",stage="produce",component="test"} 3"#),
        "{}",
        metrics.render()
    );
    assert_eq!(event_ids_on(&cluster, &topic).len(), 1, "nothing written by the unconfirmed sends");
}
