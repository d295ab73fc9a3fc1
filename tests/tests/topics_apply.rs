//! `topics apply` is idempotent and reconciles drift, on a real broker.

use gridsync_core::kafka::admin::{apply_topics, TopicChange};
use gridsync_schemas::catalog::catalog;
use gridsync_tests::{unique_prefix, Broker};

#[tokio::test(flavor = "multi_thread")]
async fn applying_the_catalog_twice_changes_nothing_the_second_time() {
    let broker = Broker::shared().unwrap();
    let prefix = unique_prefix("apply");
    let kafka = broker.kafka_args(&prefix);
    let topics = catalog().unwrap().with_prefix(&prefix).topics;

    let dry = apply_topics(&kafka, &topics, true).await.unwrap();
    assert_eq!(dry.len(), topics.len(), "a dry run reports every creation");
    let first = apply_topics(&kafka, &topics, false).await.unwrap();
    assert_eq!(first, dry, "and then does exactly that");
    assert!(
        first.iter().all(|c| matches!(c, TopicChange::Created { replication: 1, .. })),
        "replication capped at one broker"
    );
    let second = apply_topics(&kafka, &topics, false).await.unwrap();
    assert!(second.is_empty(), "second run changed {second:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_reported_exactly_then_reconciled() {
    let broker = Broker::shared().unwrap();
    let prefix = unique_prefix("drift");
    let kafka = broker.kafka_args(&prefix);
    let mut topics = catalog().unwrap().with_prefix(&prefix).topics;
    topics.truncate(2);
    apply_topics(&kafka, &topics, false).await.unwrap();

    // The catalog now wants more partitions on one topic and another retention on the other.
    topics[0].partitions += 2;
    topics[1].config.insert("retention.ms".into(), "86400000".into());
    let partitions = TopicChange::PartitionsAdded {
        topic: topics[0].name.clone(),
        from: topics[0].partitions - 2,
        to: topics[0].partitions,
    };
    let retention = TopicChange::ConfigSet {
        topic: topics[1].name.clone(),
        key: "retention.ms".into(),
        from: Some("1209600000".into()),
        to: "86400000".into(),
    };
    assert_eq!(apply_topics(&kafka, &topics, true).await.unwrap(), vec![partitions.clone(), retention.clone()]);

    // Kafka applies both (CreatePartitions, IncrementalAlterConfigs), and then the
    // catalog and the broker agree.
    assert_eq!(apply_topics(&kafka, &topics, false).await.unwrap(), vec![partitions, retention]);
    assert!(apply_topics(&kafka, &topics, false).await.unwrap().is_empty(), "no drift left");
}
