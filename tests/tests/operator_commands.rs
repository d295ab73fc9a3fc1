//! `gridsync topics describe` and `gridsync groups lag`, run as the binary an operator runs,
//! against what a real broker holds.

use std::{process::Command, time::Duration};

use gridsync_core::{
    kafka::{admin::apply_topics, EventProducer},
    telemetry::Metrics,
};
use gridsync_schemas::{catalog::catalog, samples::sample, EventType};
use gridsync_tests::{unique_prefix, workspace_binary, Broker};
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    ClientConfig, Offset, TopicPartitionList,
};

/// `gridsync <args> --brokers .. --topic-prefix ..`: exit success, stdout, stderr.
fn gridsync(broker: &Broker, prefix: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(workspace_binary("gridsync"))
        .args(args)
        .args(["--brokers", &broker.brokers(), "--topic-prefix", prefix])
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_describe_tells_missing_topics_then_what_each_holds() {
    let broker = Broker::shared().unwrap();
    let prefix = unique_prefix("describe");
    let topics = catalog().unwrap().with_prefix(&prefix).topics;

    let (ok, stdout, stderr) = gridsync(&broker, &prefix, &["topics", "describe"]);
    assert!(!ok, "missing topics fail the command");
    assert_eq!(stdout.matches("not on the cluster").count(), topics.len(), "{stdout}");
    assert!(stderr.contains(&format!("{} topic(s) missing", topics.len())), "{stderr}");

    apply_topics(&broker.kafka_args(&prefix), &topics, false).await.unwrap();
    let producer = EventProducer::new(&broker.kafka_args(&prefix), Metrics::new("describe").unwrap()).unwrap();
    for seq in 1..=3 {
        producer.publish(&sample(EventType::PurchaseOrderReceived, "ACME", seq), None).await.unwrap();
    }
    let (ok, stdout, stderr) = gridsync(&broker, &prefix, &["topics", "describe"]);
    assert!(ok, "{stderr}");
    for topic in &topics {
        let held = if topic.events.contains(&EventType::PurchaseOrderReceived) { 3 } else { 0 };
        let line = format!("{}: {} partitions, {held} records held\n", topic.name, topic.partitions);
        assert!(stdout.contains(&line), "no {line:?} in\n{stdout}");
    }
    // One partition line per partition, with its leader and in-sync replicas.
    let orders = &topics.iter().find(|t| t.events.contains(&EventType::PurchaseOrderReceived)).unwrap().name;
    let (_, one, _) = gridsync(&broker, &prefix, &["topics", "describe", orders]);
    assert_eq!(one.lines().filter(|l| l.contains("leader 1") && l.contains("in sync [1]")).count(), 6, "{one}");
}

/// Twenty orders on the orders topic (six partitions) of a catalog of topics of its own, and a
/// client in the notifications consumer's group that commits offsets without joining.
struct OrdersAndGroup {
    broker: std::sync::Arc<Broker>,
    prefix: String,
    catalog: gridsync_schemas::catalog::TopicCatalog,
    orders: String,
    group: String,
    consumer: BaseConsumer,
    /// Each partition's end offset.
    ends: Vec<i64>,
}

async fn twenty_orders(name: &str) -> OrdersAndGroup {
    let broker = Broker::shared().unwrap();
    let prefix = unique_prefix(name);
    let kafka = broker.kafka_args(&prefix);
    let catalog = catalog().unwrap().with_prefix(&prefix);
    apply_topics(&kafka, &catalog.topics, false).await.unwrap();
    let producer = EventProducer::new(&kafka, Metrics::new(name).unwrap()).unwrap();
    for seq in 1..=20 {
        producer.publish(&sample(EventType::PurchaseOrderReceived, &format!("P{seq}"), seq), None).await.unwrap();
    }
    let orders = catalog.topic_for(EventType::PurchaseOrderReceived).name.clone();
    let group = catalog.consumer("notifications").unwrap().group_id.clone();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let ends = (0..6)
        .map(|partition| consumer.fetch_watermarks(&orders, partition, Duration::from_secs(10)).unwrap().1)
        .collect();
    OrdersAndGroup { broker, prefix, catalog, orders, group, consumer, ends }
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_lag_counts_what_each_partition_has_not_committed() {
    let OrdersAndGroup { broker, prefix, catalog, orders, group, consumer, ends } = twenty_orders("lag").await;

    // The group has read every partition of the orders topic to its end but one, where it is
    // two records short; the partitions it never committed count whole.
    let mut commit = TopicPartitionList::new();
    let mut short = None;
    for (partition, &end) in (0..).zip(&ends) {
        let at = if end >= 2 && short.is_none() {
            short = Some(partition);
            end - 2
        } else {
            end
        };
        commit.add_partition_offset(&orders, partition, Offset::Offset(at)).unwrap();
    }
    let short = short.expect("a partition of 20 orders holds two");
    consumer.commit(&commit, CommitMode::Sync).unwrap();

    let (ok, stdout, stderr) = gridsync(&broker, &prefix, &["groups", "lag", "notifications"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with(&format!("{group}  (")), "{stdout}");
    assert!(stdout.lines().next().unwrap().ends_with(": lag 2"), "{stdout}");
    let lagging: Vec<&str> = stdout.lines().filter(|l| !l.ends_with("lag       0")).skip(1).collect();
    assert_eq!(lagging.len(), 1, "{stdout}");
    assert!(lagging[0].contains(&format!("{orders} ")) && lagging[0].contains(&format!(" {short}  ")), "{stdout}");
    assert!(lagging[0].ends_with("lag       2"), "{stdout}");

    // Every group of the catalog, when none is named; an unknown one is refused.
    let (ok, all, _) = gridsync(&broker, &prefix, &["groups", "lag"]);
    assert!(ok);
    for consumer in &catalog.consumers {
        assert!(all.contains(&format!("{}  (", consumer.group_id)), "{all}");
    }
    let (ok, _, stderr) = gridsync(&broker, &prefix, &["groups", "lag", "nobody"]);
    assert!(!ok && stderr.contains("no consumer or group \"nobody\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_to_an_offset_moves_only_the_partitions_it_names_and_to_a_time_the_first_record_after_it() {
    let OrdersAndGroup { broker, prefix, catalog, orders, group, consumer, ends } =
        twenty_orders("replay-offset").await;

    // The group has read every partition of the orders topic to its end.
    let mut at_end = TopicPartitionList::new();
    for (partition, &end) in (0..).zip(&ends) {
        at_end.add_partition_offset(&orders, partition, Offset::Offset(end)).unwrap();
    }
    consumer.commit(&at_end, CommitMode::Sync).unwrap();
    let committed = || -> Vec<i64> {
        let asked = consumer.committed_offsets(at_end.clone(), Duration::from_secs(10)).unwrap();
        (0..6)
            .map(|p| match asked.find_partition(&orders, p).unwrap().offset() {
                Offset::Offset(o) => o,
                other => panic!("{other:?}"),
            })
            .collect()
    };

    // Three records back on one partition (by its short name, without the prefix), none elsewhere.
    let short = ends.iter().position(|end| *end >= 3).expect("a partition of 20 orders holds three");
    let end = ends[short];
    let unprefixed = orders.strip_prefix(&prefix).unwrap();
    let spec = format!("{unprefixed}:{short}:{}", end - 3);
    let (ok, plan, stderr) =
        gridsync(&broker, &prefix, &["replay", "notifications", "--to-offset", &spec, "--dry-run"]);
    assert!(ok, "{stderr}");
    assert_eq!(plan.lines().filter(|l| l.contains("committed")).count(), 1, "only the partition named: {plan}");
    let line = format!("{orders}[{short}]: committed {end} -> {} (3 records to process, end {end})", end - 3);
    assert!(plan.contains(&line), "no {line:?} in\n{plan}");
    assert!(plan.contains("would reset 1 partitions; 3 records would be processed again"), "{plan}");
    assert_eq!(committed(), ends, "a dry run changes nothing");

    let (ok, done, stderr) = gridsync(&broker, &prefix, &["replay", "notifications", "--to-offset", &spec]);
    assert!(ok, "{stderr}");
    assert!(done.contains("reset 1 partitions; 3 records will be processed again"), "{done}");
    let mut expected = ends.clone();
    expected[short] = end - 3;
    assert_eq!(committed(), expected);

    // A partition the group does not read is refused by name, and nothing moves.
    let invoices = catalog.topic_for(EventType::InvoiceReceived).name.clone();
    let (ok, _, stderr) =
        gridsync(&broker, &prefix, &["replay", "notifications", "--to-offset", &format!("{invoices}:0:0")]);
    assert!(!ok && stderr.contains(&format!("{invoices}:0 is not a partition {group} reads")), "{stderr}");
    assert_eq!(committed(), expected);

    // By time: from before every record, each partition from its start; from after them all, at
    // its end.
    let by_time = |at: &str| gridsync(&broker, &prefix, &["replay", "notifications", "--to-time", at]);
    let (ok, _, stderr) = by_time("2000-01-01T00:00:00Z");
    assert!(ok, "{stderr}");
    assert_eq!(committed(), vec![0; 6]);
    let (ok, _, stderr) = by_time("2099-01-01T00:00:00Z");
    assert!(ok, "{stderr}");
    assert_eq!(committed(), ends);
}
