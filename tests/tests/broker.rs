//! The broker the tests and the local run use (Apache Kafka, started by
//! `deploy/local-broker.sh`) keeps what our guarantees depend on.

use std::time::Duration;

use futures::future::join_all;
use gridsync_tests::{unique_prefix, Broker};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message, Offset, TopicPartitionList,
};

async fn produce_one_batch(brokers: &str, topic: &str, count: usize) -> Vec<i64> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    admin.create_topics(&[NewTopic::new(topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    // Sent together with a linger: librdkafka puts them in one record batch.
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "100").create().unwrap();
    let sends = (0..count).map(|i| {
        let producer = producer.clone();
        async move {
            let payload = format!("record {i}");
            producer
                .send(FutureRecord::to(topic).key("k").payload(&payload), Duration::from_secs(10))
                .await
                .map(|d| d.offset)
        }
    });
    join_all(sends).await.into_iter().map(Result::unwrap).collect()
}

fn read_from(brokers: &str, topic: &str, start: i64, want: usize) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "broker-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Offset(start)).unwrap();
    consumer.assign(&assignment).unwrap();
    let started = std::time::Instant::now();
    let mut offsets = Vec::new();
    while offsets.len() < want && started.elapsed() < Duration::from_secs(20) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            offsets.push(m.offset());
        }
    }
    offsets
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_from_the_middle_of_a_batch_returns_the_rest_of_it() {
    let broker = Broker::shared().unwrap();
    let topic = format!("{}mid-batch", unique_prefix("broker"));
    let offsets = produce_one_batch(&broker.brokers(), &topic, 25).await;
    assert_eq!(offsets, (0..25).collect::<Vec<_>>());
    // What a consumer resuming from a committed offset does.
    assert_eq!(read_from(&broker.brokers(), &topic, 10, 15), (10..25).collect::<Vec<_>>());
    assert_eq!(read_from(&broker.brokers(), &topic, 24, 1), vec![24]);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_survive_a_broker_restart() {
    let broker = Broker::start().unwrap();
    produce_one_batch(&broker.brokers(), "durable", 5).await;
    broker.restart().unwrap();
    assert_eq!(read_from(&broker.brokers(), "durable", 0, 5), (0..5).collect::<Vec<_>>());
}
