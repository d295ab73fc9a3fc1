//! Produce → consume throughput on a local Tansu broker, events/s.
//!
//! `cargo bench -p gridsync-tests --bench kafka_throughput`
//! (`GRIDSYNC_BENCH_EVENTS` sets the count, default 5000; `GRIDSYNC_BENCH_BROKERS`
//! measures an existing cluster instead of starting a local broker).

use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use gridsync_core::{
    kafka::{admin::apply_topics, EventProducer},
    telemetry::Metrics,
};
use gridsync_schemas::{catalog::catalog, codec, samples::sample, EventType};
use gridsync_tests::{unique_prefix, Broker};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    ClientConfig, Message,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: u64 = std::env::var("GRIDSYNC_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    // An external broker (`GRIDSYNC_BENCH_BROKERS`) or a fresh local one.
    let local = match std::env::var("GRIDSYNC_BENCH_BROKERS") {
        Ok(_) => None,
        Err(_) => Some(Broker::start()?),
    };
    let brokers = match &local {
        Some(broker) => broker.brokers(),
        None => std::env::var("GRIDSYNC_BENCH_BROKERS")?,
    };
    let prefix = unique_prefix("bench");
    let kafka = gridsync_core::config::KafkaArgs {
        topic_prefix: prefix.clone(),
        ..gridsync_core::config::KafkaArgs::for_brokers(&brokers)
    };
    let catalog = catalog()?.with_prefix(&prefix);
    apply_topics(&kafka, &catalog.topics, false).await?;
    let topic = catalog.topic_for(EventType::PurchaseOrderReceived).name.clone();
    let producer = EventProducer::new(&kafka, Metrics::new("bench")?)?;
    let samples: Vec<_> =
        (0..events).map(|i| sample(EventType::PurchaseOrderReceived, &format!("P{}", i % 50), i)).collect();

    let started = Instant::now();
    let results: Vec<_> =
        stream::iter(&samples).map(|event| producer.publish(event, None)).buffer_unordered(1024).collect().await;
    let produce_secs = started.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} records were not acknowledged");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{prefix}bench"))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let codec = codec()?;
    let consume_started = Instant::now();
    let mut first_at = None;
    let mut received = 0u64;
    while received < events {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
        first_at.get_or_insert_with(Instant::now);
        codec.decode(message.payload().unwrap_or_default())?;
        received += 1;
    }
    let group_join = first_at.map_or(0.0, |t| (t - consume_started).as_secs_f64());
    let consume_secs = consume_started.elapsed().as_secs_f64() - group_join;

    let on = match &local {
        Some(_) => "a local Tansu 0.6.0 with SQLite storage".to_owned(),
        None => brokers.clone(),
    };
    println!("kafka_throughput: {events} PurchaseOrderReceived events (5 lines each) on {on}");
    println!(
        "  produce (idempotent, acks=all, acknowledged): {:>10.0} events/s  ({produce_secs:.2} s)",
        events as f64 / produce_secs
    );
    println!("  consume + decode:                            {:>10.0} events/s  ({consume_secs:.2} s, after {group_join:.2} s group join)", events as f64 / consume_secs);
    Ok(())
}
