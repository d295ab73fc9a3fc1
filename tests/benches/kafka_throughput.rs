//! Throughput on a local Apache Kafka broker, in one run: raw rdkafka beside
//! gridsync's own path, on the same records, so the difference is gridsync's.
//!
//! `cargo bench -p gridsync-tests --bench kafka_throughput`
//! (`GRIDSYNC_BENCH_EVENTS` sets the count, default 20000; `GRIDSYNC_BENCH_BROKERS`
//! measures an existing cluster instead of starting a local broker;
//! `GRIDSYNC_BENCH_BUFFER` the consumer's records buffered per partition;
//! `GRIDSYNC_BENCH_FILES=0` leaves out tg-producer's files, for profiling the rest).
//!
//! - produce: raw `FutureProducer` sends of pre-encoded payloads, against
//!   `EventProducer::publish` (Avro encoding, headers, trace context); both
//!   idempotent with `acks=all`, every record awaited.
//! - consume: a raw `StreamConsumer` reading the records, against gridsync's
//!   consumer loop (`run_consumer`: per-partition workers, decoding, offsets
//!   stored after the work) with a handler that only counts.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};
use gridsync_core::{
    config::KafkaArgs,
    kafka::{
        admin::apply_topics, run_consumer, Backoff, ConsumerServices, ConsumerSettings, EventProducer, Handler,
        HandlerError, Record,
    },
    registry::EventDecoder,
    telemetry::{Health, Metrics},
};
use gridsync_schemas::{
    catalog::{RecordKey, TopicSpec},
    codec,
    samples::sample,
    EventType,
};
use gridsync_tests::{unique_prefix, Broker};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 6;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: u64 = std::env::var("GRIDSYNC_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let local = match std::env::var("GRIDSYNC_BENCH_BROKERS") {
        Ok(_) => None,
        Err(_) => Some(Broker::start()?),
    };
    let brokers = match &local {
        Some(broker) => broker.brokers(),
        None => std::env::var("GRIDSYNC_BENCH_BROKERS")?,
    };
    let prefix = unique_prefix("bench");
    let kafka = KafkaArgs { topic_prefix: prefix.clone(), ..KafkaArgs::for_brokers(&brokers) };
    let (raw_topic, gridsync_topic) = (format!("{prefix}raw"), format!("{prefix}gridsync"));
    let spec = |name: &str| TopicSpec {
        name: name.to_owned(),
        description: String::new(),
        events: vec![],
        key: RecordKey::default(),
        partitions: PARTITIONS,
        replication_factor: 1,
        config: BTreeMap::new(),
        dead_letter_of: None,
    };
    let (dead_letters, warm_up) = (format!("{prefix}bench.dlq"), format!("{prefix}warm-up"));
    let topics = [spec(&raw_topic), spec(&gridsync_topic), spec(&dead_letters), spec(&warm_up)];
    apply_topics(&kafka, &topics, false).await?;

    let samples: Vec<_> =
        (0..events).map(|i| sample(EventType::PurchaseOrderReceived, &format!("P{}", i % 50), i)).collect();
    let codec = codec()?;
    let encoded: Vec<(String, Vec<u8>)> =
        samples.iter().map(|e| (e.envelope().record_key(), codec.encode(e))).collect();

    // Produce: raw, then gridsync's publisher, each warmed up first (connections, producer ids).
    let raw_producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    let producer = EventProducer::new(&kafka, Metrics::new("bench")?)?;
    raw_producer
        .send(FutureRecord::to(&warm_up).key("k").payload(&encoded[0].1), Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)?;
    producer.publish_to(&warm_up, &samples[0], None).await?;
    // Each produce figure is the median of PRODUCE_ROUNDS runs: one run's rate varies by half
    // on a 2-core machine where the broker shares the cores.
    let mut raw_rounds = Vec::new();
    let mut gridsync_rounds = Vec::new();
    for _ in 0..PRODUCE_ROUNDS {
        raw_rounds.push(
            timed(|| async {
                let sends = stream::iter(&encoded)
                    .map(|(key, payload)| {
                        raw_producer
                            .send(FutureRecord::to(&raw_topic).key(key).payload(payload), Duration::from_secs(30))
                    })
                    .buffer_unordered(1024)
                    .collect::<Vec<_>>()
                    .await;
                anyhow::ensure!(sends.iter().all(Result::is_ok), "raw: some records were not acknowledged");
                Ok(())
            })
            .await?,
        );
        gridsync_rounds.push(
            timed(|| async {
                let sends = stream::iter(&samples)
                    .map(|event| producer.publish_to(&gridsync_topic, event, None))
                    .buffer_unordered(1024)
                    .collect::<Vec<_>>()
                    .await;
                anyhow::ensure!(sends.iter().all(Result::is_ok), "gridsync: some records were not acknowledged");
                Ok(())
            })
            .await?,
        );
    }
    let (raw_produce, gridsync_produce) = (median(raw_rounds), median(gridsync_rounds));

    // Consume: raw, then gridsync's consumer loop, each as a new group from the start.
    let raw_consume = {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("{prefix}raw"))
            .set("auto.offset.reset", "earliest")
            .create()?;
        consumer.subscribe(&[&raw_topic])?;
        // The clock starts at the first record: group join is not throughput.
        tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
        let started = Instant::now();
        for _ in 1..events {
            tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
        }
        started.elapsed()
    };
    let gridsync_consume = consume_with_runtime(&kafka, &gridsync_topic, &dead_letters, events).await?;

    let on = match &local {
        Some(_) => format!("a local Apache Kafka ({})", brokers),
        None => brokers.clone(),
    };
    println!("kafka_throughput: {events} PurchaseOrderReceived events (5 lines each, {PARTITIONS} partitions) on {on}");
    println!("  {:<58} {:>12} {:>12}", "", "raw rdkafka", "gridsync");
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    println!(
        "  {:<58} {:>10.0}/s {:>10.0}/s",
        "produce (idempotent, acks=all, all acked; median of 5 runs)",
        rate(raw_produce),
        rate(gridsync_produce)
    );
    println!(
        "  {:<58} {:>10.0}/s {:>10.0}/s",
        "consume (gridsync: decode, per-partition workers, offsets)",
        rate(raw_consume),
        rate(gridsync_consume)
    );
    if std::env::var("GRIDSYNC_BENCH_FILES").is_ok_and(|v| v == "0") {
        return Ok(());
    }
    let tg = tg_producer_files(&brokers, 5_000).await?;
    let single = median(tg.singles.clone());
    let rates: Vec<String> = tg.singles.iter().map(|t| format!("{:.0}", tg.orders as f64 / t.as_secs_f64())).collect();
    let backlog_orders = tg.orders * BACKLOG_FILES;
    println!(
        "  tg-producer: X12 files of {} 850s ({} KB) renamed into the mailbox -> events acknowledged, recorded, 997 written, file processed",
        tg.orders,
        tg.bytes / 1024
    );
    println!(
        "  {:<58} {:>10.0}/s {:>9.1} MB/s   ({} ms a file; files: {}/s)",
        format!("one file at a time (median of {SINGLE_FILES})"),
        tg.orders as f64 / single.as_secs_f64(),
        tg.bytes as f64 / 1_048_576.0 / single.as_secs_f64(),
        single.as_millis(),
        rates.join(", ")
    );
    println!(
        "  {:<58} {:>10.0}/s {:>9.1} MB/s   ({:.0} % of raw produce above, {:.0}/s)",
        format!("a backlog: {BACKLOG_FILES} files landing at once"),
        backlog_orders as f64 / tg.backlog.as_secs_f64(),
        (tg.bytes * BACKLOG_FILES) as f64 / 1_048_576.0 / tg.backlog.as_secs_f64(),
        100.0 * backlog_orders as f64 / tg.backlog.as_secs_f64() / rate(raw_produce),
        rate(raw_produce)
    );
    Ok(())
}

/// Times each produce figure is measured (the median is reported).
const PRODUCE_ROUNDS: usize = 5;

/// The middle one of `durations`.
fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

/// Files tg-producer is timed on one at a time (the median is reported: one file's time
/// varies a lot); the time from landing to processed includes the mailbox's polling.
const SINGLE_FILES: usize = 5;

/// Files landing together for the throughput figure: tg-producer maps the next file while one
/// publishes, as it does with a partner's batch or a backlog after an outage. Their orders,
/// 25,000, are about the raw figure's 20,000 records.
const BACKLOG_FILES: usize = 5;

/// What tg-producer took for files of `orders` orders of `bytes` each.
struct TgProducerFiles {
    orders: usize,
    bytes: usize,
    /// Each of [`SINGLE_FILES`] files, landing after the one before was processed.
    singles: Vec<Duration>,
    /// From [`BACKLOG_FILES`] files landing at once to the last one processed.
    backlog: Duration,
}

/// tg-producer (built here in this profile) on a mailbox of its own: from X12 files of
/// `orders` orders landing in `inbound/` to each file in `processed/`, its events acknowledged
/// and recorded and its 997 written; first one file at a time, then a backlog.
async fn tg_producer_files(brokers: &str, orders: usize) -> anyhow::Result<TgProducerFiles> {
    let built = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "-p", "gridsync-tg-producer"])
        .status()?;
    anyhow::ensure!(built.success(), "building tg-producer failed");
    let prefix = unique_prefix("bench-tg");
    let kafka = KafkaArgs { topic_prefix: prefix.clone(), ..KafkaArgs::for_brokers(brokers) };
    apply_topics(&kafka, &gridsync_schemas::catalog::catalog()?.with_prefix(&prefix).topics, false).await?;
    let mailbox = tempfile::tempdir()?;
    let (inbound, processed) = (mailbox.path().join("inbound"), mailbox.path().join("processed"));
    std::fs::create_dir_all(&inbound)?;
    let metrics = gridsync_tests::free_port();
    let mut producer = std::process::Command::new(gridsync_tests::workspace_binary("tg-producer"))
        .args(["--brokers", brokers, "--topic-prefix", &prefix, "--poll-ms", "20", "--settle-ms", "0"])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .arg("--mailbox-dir")
        .arg(mailbox.path())
        .arg(format!("--store-url=sqlite://{}", mailbox.path().join("tg.db").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let ready = format!("http://127.0.0.1:{metrics}/readyz");
    let started = Instant::now();
    while !reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "tg-producer never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Written aside, then renamed in: a file appears whole, as a gateway's rename makes it.
    let mut bytes = 0;
    let mut files = (1..).map(|n| {
        let po_numbers: Vec<String> = (1..=orders).map(|o| format!("PO{o:07}")).collect();
        let (name, file) =
            (format!("orders-{n}.edi"), gridsync_tests::x12_purchase_orders("ACME", 905 + n, &po_numbers, 5));
        bytes = file.len();
        std::fs::write(mailbox.path().join(&name), &file).map(|()| name)
    });
    let all_processed = |names: &[String], landed: Instant| {
        let waiting: Vec<_> = names.iter().filter(|name| !processed.join(name).exists()).collect();
        anyhow::ensure!(landed.elapsed() < Duration::from_secs(600), "{waiting:?} were never processed");
        Ok(waiting.is_empty())
    };
    let mut singles = Vec::new();
    for _ in 0..SINGLE_FILES {
        let name = files.next().transpose()?.unwrap_or_default();
        let landed = Instant::now();
        std::fs::rename(mailbox.path().join(&name), inbound.join(&name))?;
        while !all_processed(std::slice::from_ref(&name), landed)? {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        singles.push(landed.elapsed());
    }
    let backlog: Vec<String> = files.by_ref().take(BACKLOG_FILES).collect::<Result<_, _>>()?;
    let landed = Instant::now();
    for name in &backlog {
        std::fs::rename(mailbox.path().join(name), inbound.join(name))?;
    }
    while !all_processed(&backlog, landed)? {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let backlog = landed.elapsed();
    let _ = producer.kill();
    let _ = producer.wait();
    Ok(TgProducerFiles { orders, bytes, singles, backlog })
}

async fn timed<F, Fut>(work: F) -> anyhow::Result<Duration>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    work().await?;
    Ok(started.elapsed())
}

/// Counts records and stops the consumer once all have arrived.
struct Counting {
    seen: AtomicU64,
    first_at: std::sync::OnceLock<Instant>,
    want: u64,
    done: CancellationToken,
}

impl Handler for Counting {
    type Input = Record;

    async fn handle(&self, _record: &Record) -> Result<(), HandlerError> {
        self.first_at.get_or_init(Instant::now);
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.want {
            self.done.cancel();
        }
        Ok(())
    }
}

/// Runs gridsync's consumer loop over `topic` until every record was handled;
/// the time from the first record handled to the last.
async fn consume_with_runtime(
    kafka: &KafkaArgs,
    topic: &str,
    dead_letters: &str,
    events: u64,
) -> anyhow::Result<Duration> {
    let done = CancellationToken::new();
    let handler =
        Arc::new(Counting { seen: AtomicU64::new(0), first_at: Default::default(), want: events, done: done.clone() });
    let settings = ConsumerSettings {
        name: "bench".into(),
        group_id: format!("{}runtime", kafka.topic_prefix),
        topics: vec![topic.to_owned()],
        handles: None,
        dead_letter_topic: dead_letters.to_owned(),
        retry: Backoff::default(),
        attempts_before_pause: gridsync_core::kafka::settings::DEFAULT_ATTEMPTS_BEFORE_PAUSE,
        partition_buffer: std::env::var("GRIDSYNC_BENCH_BUFFER")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(gridsync_core::app::DEFAULT_PARTITION_BUFFER),
        handler_timeout: gridsync_core::kafka::DEFAULT_HANDLER_TIMEOUT,
        key_concurrency: gridsync_core::app::DEFAULT_KEY_CONCURRENCY,
        max_in_flight: gridsync_core::app::DEFAULT_MAX_IN_FLIGHT,
    };
    let metrics = Metrics::new("bench-consumer")?;
    let services = ConsumerServices {
        decoder: EventDecoder::new(None)?,
        producer: EventProducer::new(kafka, metrics.clone())?,
        metrics: metrics.clone(),
        health: Health::default(),
    };
    let run = tokio::spawn({
        let (kafka, handler, done) = (kafka.clone(), handler.clone(), done.clone());
        async move { run_consumer(&kafka, settings, handler, services, done).await }
    });
    tokio::time::timeout(Duration::from_secs(300), done.cancelled()).await?;
    let finished = Instant::now();
    run.await??;
    let first = handler.first_at.get().copied().unwrap_or(finished);
    // Pauses mean refetching: librdkafka drops what it prefetched for a paused partition.
    let pauses: f64 = metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("gridsync_partition_pauses_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    eprintln!("  (the consumer loop paused its partitions {pauses} times)");
    Ok(finished - first)
}
