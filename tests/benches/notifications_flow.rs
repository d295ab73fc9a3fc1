//! The notifications flow's speed, in one run on a local Apache Kafka with
//! amp-sim (set up as a hub, strict) answering at once: orders/s through the
//! whole flow from a backlog (three side effects per order: an order
//! confirmation, a customer notification, a suppression-list entry), for a
//! backlog from one buyer and one from a thousand buyers, with the Management
//! API requests each side effect cost; and the latency from a source event's
//! `ingested_at` (when it was received) to each of its side effects, p50/p99, at a steady rate.
//!
//! `cargo bench -p gridsync-tests --bench notifications_flow`
//! (`GRIDSYNC_BENCH_ORDERS` sets each backlog, default 300).

use std::{collections::HashMap, path::Path, time::Duration};

use futures::StreamExt;

use gridsync_amp_sim::{SimConfig, Simulator};
use gridsync_amplience::ManagementArgs;
use gridsync_core::{
    app::ConsumerDeps,
    config::KafkaArgs,
    kafka::{admin::apply_topics, run_consumer, Backoff, ConsumerServices, ConsumerSettings, EventProducer},
    registry::EventDecoder,
    telemetry::{Health, Metrics},
};
use gridsync_flow::FlowArgs;
use gridsync_schemas::{
    catalog::catalog, codec, events::DeliveryPerformed, samples::sample, Event, EventType, Timestamp,
};
use gridsync_tests::{unique_prefix, Broker};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    ClientConfig, Message,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let orders: u64 = std::env::var("GRIDSYNC_BENCH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let broker = Broker::start()?;
    let prefix = unique_prefix("bench-notify");
    let kafka = KafkaArgs { topic_prefix: prefix.clone(), ..KafkaArgs::for_brokers(broker.brokers()) };
    let catalog = catalog()?.with_prefix(&prefix);
    apply_topics(&kafka, &catalog.topics, false).await?;

    let sim_config = SimConfig::default();
    let stop = CancellationToken::new();
    let sim =
        Simulator::start(sim_config.clone(), tokio::net::TcpListener::bind("127.0.0.1:0").await?, stop.clone()).await?;
    gridsync_tests::set_up_hub(&sim.url(), &sim_config.hub_id, &sim_config.repositories, None).await?;
    let dir = tempfile::tempdir()?;
    let args = gridsync_notifications::Args {
        flow: FlowArgs {
            store_url: Some(format!("sqlite://{}", dir.path().join("notifications.db").display())),
            partners: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/partners.toml")),
            claim_lease_ms: gridsync_flow::args::DEFAULT_CLAIM_LEASE_MS,
            template_ttl_ms: gridsync_flow::args::DEFAULT_TEMPLATE_TTL_MS,
            timer_tick_ms: gridsync_flow::args::DEFAULT_TIMER_TICK_MS,
            clock_file: None,
            hub_check_retry_ms: gridsync_flow::args::DEFAULT_HUB_CHECK_RETRY_MS,
            hub_requests_per_second: 0.0,
            budget_store_url: None,
            amplience: ManagementArgs {
                api_url: format!("{}/v2/content", sim.url()),
                token_url: format!("{}/oauth/token", sim.url()),
                hub_id: Some(sim_config.hub_id.clone()),
                client_id: Some("gridsync".into()),
                client_secret: Some("gridsync-secret".into()),
                client_secret_file: None,
                requests_per_second: 0.0,
                publishes_per_minute: 90,
                timeout_ms: 30_000,
                max_attempts: 8,
                max_backoff_ms: 1_000,
            },
        },
        config: None,
    };
    let metrics = Metrics::new("bench-notifications")?;
    let producer = EventProducer::new(&kafka, metrics.clone())?;
    let shutdown = CancellationToken::new();
    let deps = ConsumerDeps {
        name: "notifications".into(),
        producer: producer.clone(),
        metrics: metrics.clone(),
        kafka: kafka.clone(),
        health: Health::default(),
        shutdown: shutdown.clone(),
    };
    let handler = gridsync_notifications::setup(deps, args).await?;
    let settings = ConsumerSettings::from_catalog(
        catalog.consumer("notifications")?,
        Backoff::default(),
        gridsync_core::app::DEFAULT_PARTITION_BUFFER,
    );
    let services = ConsumerServices {
        decoder: EventDecoder::new(None)?,
        producer: producer.clone(),
        metrics,
        health: Health::default(),
    };
    let consumer = tokio::spawn({
        let (kafka, shutdown) = (kafka.clone(), shutdown.clone());
        async move { run_consumer(&kafka, settings, handler, services, shutdown).await }
    });
    let mut deliveries = watch_deliveries(&broker.brokers(), &catalog.topic_for(EventType::DeliveryPerformed).name)?;

    // Warm-up: the group joined, templates read, the first suppression item created.
    let order = |seq: u64| {
        let mut event = sample(EventType::PurchaseOrderReceived, "ACME", seq);
        let now = Timestamp::now();
        event.envelope_mut().occurred_at = now;
        event.envelope_mut().ingested_at = now;
        event
    };
    producer.publish(&order(0), None).await?;
    collect(&mut deliveries, 3).await?;

    // Throughput: a backlog of orders, from the first side effect to the last; the requests amp-sim
    // answered meanwhile. Once with every order from one buyer, once from a thousand buyers.
    let requests = || async {
        let stats: serde_json::Value = reqwest::get(format!("{}/__sim/stats", sim.url())).await?.json().await?;
        let answered = stats["answered"].as_object().map(|a| a.values().filter_map(|n| n.as_u64()).sum::<u64>());
        anyhow::Ok(answered.unwrap_or(0))
    };
    let mut backlogs = Vec::new();
    for (name, buyers, first) in [("one buyer", 1, 1), ("1,000 buyers", 1_000, 100_000_000)] {
        let backlog: Vec<Event> = (first..first + orders)
            .map(|seq| {
                let mut event = order(seq);
                if let Event::PurchaseOrderReceived(po) = &mut event {
                    po.buyer.id = format!("BUYER-{:04}", seq % buyers);
                }
                event
            })
            .collect();
        let before = requests().await?;
        // Published all at once, and timed from the first publish: the flow starts on the first.
        let started = std::time::Instant::now();
        let published: Vec<_> =
            futures::stream::iter(&backlog).map(|e| producer.publish(e, None)).buffer_unordered(512).collect().await;
        published.into_iter().collect::<Result<Vec<_>, _>>()?;
        collect(&mut deliveries, 3 * orders as usize).await?;
        let throughput = orders as f64 / started.elapsed().as_secs_f64();
        let calls = (requests().await? - before) as f64 / (3 * orders) as f64;
        backlogs.push((name, throughput, calls));
    }

    // Latency: orders at a steady 20 a second, source event to side effect.
    let steady = 200u64;
    let mut received = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    for seq in 0..steady {
        ticker.tick().await;
        let event = order(1_000_000 + seq);
        received.insert(event.envelope().event_id.clone(), event.envelope().ingested_at.millis());
        producer.publish(&event, None).await?;
    }
    let performed = collect(&mut deliveries, 3 * steady as usize).await?;
    let mut latencies: Vec<i64> = performed
        .iter()
        .filter_map(|d| received.get(&d.source_event_id).map(|at| d.performed_at.millis() - at))
        .collect();
    latencies.sort_unstable();
    let percentile =
        |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);

    shutdown.cancel();
    consumer.await??;
    stop.cancel();
    println!("notifications_flow: on a local Apache Kafka ({}) and amp-sim answering at once", broker.brokers());
    for (name, throughput, calls) in &backlogs {
        println!(
            "  backlog of {orders} orders from {name}, 3 side effects each: {throughput:>8.1} orders/s \
             ({:.1} side effects/s), {calls:.2} Management API requests per side effect",
            3.0 * throughput
        );
    }
    println!("  one buyer / 1,000 buyers: {:.2} of the orders/s", backlogs[0].1 / backlogs[1].1.max(f64::MIN_POSITIVE));
    println!(
        "  {steady} orders at 20/s: source event → side effect p50 {} ms, p99 {} ms ({} side effects)",
        percentile(0.50),
        percentile(0.99),
        latencies.len()
    );
    Ok(())
}

/// Every DeliveryPerformed on `topic` from the start, as it arrives.
fn watch_deliveries(brokers: &str, topic: &str) -> anyhow::Result<mpsc::UnboundedReceiver<DeliveryPerformed>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-watch-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let codec = codec().expect("the schemas load");
        while let Ok(message) = consumer.recv().await {
            if let Ok(decoded) = codec.decode(message.payload().unwrap_or_default()) {
                if let Event::DeliveryPerformed(d) = decoded.event {
                    if tx.send(d).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// The next `count` deliveries (two minutes at most).
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<DeliveryPerformed>,
    count: usize,
) -> anyhow::Result<Vec<DeliveryPerformed>> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some(d)) => out.push(d),
            _ => anyhow::bail!("only {} of {count} side effects reported", out.len()),
        }
    }
    Ok(out)
}
