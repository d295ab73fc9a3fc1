//! Throughput on a local Apache Kafka broker, in one run: raw rdkafka beside
//! gridsync's own path, on the same records, so the difference is gridsync's.
//!
//! `cargo bench -p gridsync-tests --bench kafka_throughput`
//! (`GRIDSYNC_BENCH_EVENTS` sets the count, default 20000; `GRIDSYNC_BENCH_BROKERS`
//! measures an existing cluster instead of starting a local broker;
//! `GRIDSYNC_BENCH_BUFFER` the consumer's records buffered per partition).
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
        admin::apply_topics, run_consumer, ConsumerServices, ConsumerSettings, EventProducer, Handler, HandlerError,
        Record, RetryPolicy,
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
    let encoded: Vec<(String, Vec<u8>)> = samples
        .iter()
        .map(|e| Ok((e.envelope().record_key(), codec.encode(e)?)))
        .collect::<Result<_, gridsync_schemas::CodecError>>()?;

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
    let (orders, bytes, took) = tg_producer_files(&brokers, 5_000, TG_ROUNDS).await?;
    let rates: Vec<String> = took.iter().map(|t| format!("{:.0}", orders as f64 / t.as_secs_f64())).collect();
    println!(
        "  tg-producer: X12 files of {orders} 850s ({} KB) in the mailbox -> events acknowledged, file processed\n  (median of {TG_ROUNDS} files: {}/s):\n  {:<58} {:>10.0}/s {:>9.1} MB/s   (raw produce above: {:.0}/s; half: {:.0}/s)",
        bytes / 1024,
        rates.join(", "),
        "",
        orders as f64 / median(took.clone()).as_secs_f64(),
        bytes as f64 / 1_048_576.0 / median(took).as_secs_f64(),
        rate(raw_produce),
        rate(raw_produce) / 2.0
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

/// Files tg-producer is timed on (the median is reported: one file's time varies a lot).
const TG_ROUNDS: usize = 5;

/// An X12 file of `orders` 850s of five lines each, in one interchange numbered `interchange`
/// (each file its own documents, none skipped as already published).
fn x12_orders(orders: usize, interchange: usize) -> String {
    let mut edi = format!(
        "ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*{interchange:09}*0*P*>~\n\
         GS*PO*ACME*GRIDSYNC*20261125*1432*{interchange}*X*004010~\n",
    );
    for n in 1..=orders {
        edi.push_str(&format!("ST*850*{n:04}~\nBEG*00*SA*PO{n:07}**20261125~\nN1*BY*Acme Retail*92*ACME-BUYER~\n"));
        for line in 1..=5 {
            edi.push_str(&format!("PO1*{line}*{}*EA*9.95**VP*SKU-{line}00{n}~\n", 10 * line));
        }
        edi.push_str(&format!("CTT*5~\nSE*{}*{n:04}~\n", 5 + 5));
    }
    edi.push_str(&format!("GE*{orders}*{interchange}~\nIEA*1*{interchange:09}~\n"));
    edi
}

/// tg-producer (built here in this profile) on a mailbox of its own: from an X12 file of
/// `orders` orders landing in `inbound/` to the file in `processed/`, its events acknowledged
/// and its 997 written, `rounds` files one after the other. Returns the orders, a file's bytes
/// and the time each file took.
async fn tg_producer_files(
    brokers: &str,
    orders: usize,
    rounds: usize,
) -> anyhow::Result<(usize, usize, Vec<Duration>)> {
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
    let mut took = Vec::new();
    let mut bytes = 0;
    for round in 1..=rounds {
        let (name, file) = (format!("orders-{round}.edi"), x12_orders(orders, 905 + round));
        bytes = file.len();
        // Written aside, then renamed in: the file appears whole, as a gateway's rename makes it.
        std::fs::write(mailbox.path().join(&name), &file)?;
        let landed = Instant::now();
        std::fs::rename(mailbox.path().join(&name), inbound.join(&name))?;
        while !processed.join(&name).exists() {
            anyhow::ensure!(landed.elapsed() < Duration::from_secs(600), "{name} was never processed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        took.push(landed.elapsed());
    }
    let _ = producer.kill();
    let _ = producer.wait();
    Ok((orders, bytes, took))
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
        dead_letter_topic: dead_letters.to_owned(),
        retry: RetryPolicy::default(),
        partition_buffer: std::env::var("GRIDSYNC_BENCH_BUFFER")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(gridsync_core::app::DEFAULT_PARTITION_BUFFER),
        handler_timeout: gridsync_core::kafka::consumer::DEFAULT_HANDLER_TIMEOUT,
    };
    let metrics = Metrics::new("bench-consumer")?;
    let services = ConsumerServices {
        decoder: EventDecoder::new(None)?,
        producer: EventProducer::new(kafka, metrics.clone())?,
        metrics,
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
    Ok(finished - first)
}
