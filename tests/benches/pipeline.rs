//! The whole pipeline in one run, on a broker of its own: partners' orders in files →
//! tg-producer → events on Kafka → notifications-consumer → side effects in amp-sim (set up as a
//! hub, strict, answering at once, gridsync's request budget off) → every event and report in the
//! audit store; and beside it a
//! raw librdkafka produce and consume of the same count and size on the same broker.
//!
//! It prints each stage's rate from a backlog (all files landing at once), the latency from
//! receipt to side effect at a fixed offered load (Prometheus's way, from the flow's histogram),
//! CPU-seconds per 1,000 orders and peak memory per binary, and the ratios to the raw client.
//!
//! `deploy/bench-pipeline.sh` (builds the release binaries first, then
//! `cargo bench -p gridsync-tests --bench pipeline`). `GRIDSYNC_BENCH_ORDERS` (default 3,000)
//! sets the backlog, `GRIDSYNC_BENCH_RATE` (200) and `GRIDSYNC_BENCH_STEADY_SECS` (10) the
//! steady phase.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use gridsync_amp_sim::{SimConfig, Simulator};
use gridsync_core::{config::KafkaArgs, kafka::admin::apply_topics};
use gridsync_schemas::{catalog::catalog, codec, samples::sample, EventType};
use gridsync_tests::{
    free_port, metric_sum, pipeline_env, unique_prefix, workspace_binary, x12_purchase_orders, Broker,
};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use tokio_util::sync::CancellationToken;

/// Orders per file, as a partner's batch.
const ORDERS_PER_FILE: usize = 100;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A running binary with its metrics address.
struct Binary {
    name: &'static str,
    child: Child,
    metrics: String,
}

impl Binary {
    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the command name's closing parenthesis: fields 14 and 15 (utime, stime) in ticks.
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
        ticks / 100.0
    }

    /// Peak resident memory in MiB.
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok());
        kib.unwrap_or(0.0) / 1024.0
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(binary: &Binary) -> anyhow::Result<()> {
    let ready = binary.metrics.replace("/metrics", "/readyz");
    for _ in 0..600 {
        if reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{} never became ready", binary.name)
}

/// Waits until `metric` (with `labels`) sums to `want` at `url`; the time it took from `since`.
async fn reached(url: &str, metric: &str, labels: &str, want: f64, since: Instant) -> anyhow::Result<Duration> {
    let deadline = since + Duration::from_secs(1800);
    loop {
        if metric_sum(url, metric, labels).await >= want {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(Instant::now() < deadline, "{metric} never reached {want} at {url}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A histogram's buckets (upper bound → cumulative count) at `url`, summed over its series.
async fn buckets(url: &str, metric: &str) -> BTreeMap<String, f64> {
    let text = reqwest::get(url).await.map(|r| r.text()).ok();
    let text = match text {
        Some(t) => t.await.unwrap_or_default(),
        None => String::new(),
    };
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(&format!("{metric}_bucket{{"))) {
        let le = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned();
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(le).or_insert(0.0) += value;
    }
    out
}

/// Prometheus's histogram_quantile over the increase between two readings.
fn quantile(q: f64, before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> f64 {
    let mut bounds: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, count)| {
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            (bound, count - before.get(le).copied().unwrap_or(0.0))
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = bounds.last().map_or(0.0, |b| b.1);
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for (bound, count) in bounds {
        if count >= rank {
            if bound.is_infinite() {
                return previous.0;
            }
            return previous.0
                + (bound - previous.0) * (rank - previous.1) / (count - previous.1).max(f64::MIN_POSITIVE);
        }
        previous = (bound, count);
    }
    f64::NAN
}

/// Raw librdkafka on the same broker: `count` records of `size` bytes produced (idempotent,
/// acks=all, every one acknowledged) and consumed; events/s of each.
async fn raw_rates(brokers: &str, topic: &str, count: usize, size: usize) -> anyhow::Result<(f64, f64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    let payload = vec![7u8; size];
    // Connected and warmed up first, as gridsync's binaries are by the time the files land.
    producer
        .send(FutureRecord::to(topic).key("warm-up").payload(&payload), Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)?;
    let started = Instant::now();
    let sends = (0..count).map(|i| {
        let key = format!("k{}", i % 64);
        let producer = producer.clone();
        let payload = payload.clone();
        async move {
            producer
                .send(FutureRecord::to(topic).key(&key).payload(&payload), Duration::from_secs(30))
                .await
                .map(|_| ())
        }
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(e, _)| e)?;
    }
    let produced = count as f64 / started.elapsed().as_secs_f64();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-raw-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    // Timed from the first record: joining the group is not reading.
    consumer.recv().await?;
    let started = Instant::now();
    let mut read = 1;
    while read <= count {
        consumer.recv().await?;
        read += 1;
    }
    Ok((produced, count as f64 / started.elapsed().as_secs_f64()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let orders: usize = env_or("GRIDSYNC_BENCH_ORDERS", 3_000);
    let rate: usize = env_or("GRIDSYNC_BENCH_RATE", 200);
    let steady_secs: u64 = env_or("GRIDSYNC_BENCH_STEADY_SECS", 10);
    let broker = Broker::start()?;
    let prefix = unique_prefix("bench-pipeline");
    let kafka = KafkaArgs { topic_prefix: prefix.clone(), ..KafkaArgs::for_brokers(broker.brokers()) };
    let catalog = catalog()?.with_prefix(&prefix);
    apply_topics(&kafka, &catalog.topics, false).await?;

    // The raw client first, on a topic of its own, records the size of an order's event.
    let size = codec()?.encode(&sample(EventType::PurchaseOrderReceived, "ACME", 1)).len();
    let raw_topic = format!("{prefix}raw");
    let admin = KafkaArgs::for_brokers(broker.brokers());
    let mut raw_spec = catalog.topic_for(EventType::PurchaseOrderReceived).clone();
    raw_spec.name = raw_topic.clone();
    apply_topics(&admin, &[raw_spec], false).await?;
    let (raw_produce, raw_consume) = raw_rates(&broker.brokers(), &raw_topic, orders, size).await?;

    let sim_config = SimConfig::default();
    let stop = CancellationToken::new();
    let sim =
        Simulator::start(sim_config.clone(), tokio::net::TcpListener::bind("127.0.0.1:0").await?, stop.clone()).await?;
    gridsync_tests::set_up_hub(&sim.url(), &sim_config.hub_id, &sim_config.repositories, None).await?;
    let dir = tempfile::tempdir()?;
    let mailbox = dir.path().join("mailbox");
    std::fs::create_dir_all(mailbox.join("inbound"))?;
    let spawn = |name: &'static str| -> anyhow::Result<Binary> {
        let port = free_port();
        let child = Command::new(workspace_binary(name))
            .args([
                "--brokers",
                &broker.brokers(),
                "--topic-prefix",
                &prefix,
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .envs(pipeline_env(dir.path(), name, &sim.url(), &sim_config.hub_id))
            // gridsync's own speed: a real hub's budget (20 requests/s by default) would bound it.
            .env("GRIDSYNC_AMPLIENCE_REQUESTS_PER_SECOND", "0")
            .env("GRIDSYNC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.log")))?)
            .spawn()?;
        Ok(Binary { name, child, metrics: format!("http://127.0.0.1:{port}/metrics") })
    };
    let binaries = [spawn("tg-producer")?, spawn("notifications-consumer")?, spawn("audit-consumer")?];
    for binary in &binaries {
        wait_ready(binary).await?;
    }
    let [tg, notifications, audit] = &binaries;

    // The backlog: every file lands at once (renamed in from a folder beside the mailbox).
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging)?;
    let mut written = 0;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut interchange = 1;
    while written < orders {
        let count = ORDERS_PER_FILE.min(orders - written);
        let numbers: Vec<String> = (written..written + count).map(|n| format!("PO-B{n:07}")).collect();
        let path = staging.join(format!("acme-{interchange:05}.edi"));
        std::fs::write(&path, x12_purchase_orders("ACME", interchange, &numbers, 1))?;
        files.push(path);
        written += count;
        interchange += 1;
    }
    let cpu_before: Vec<f64> = binaries.iter().map(Binary::cpu_seconds).collect();
    let start = Instant::now();
    for file in &files {
        if let Some(name) = file.file_name() {
            std::fs::rename(file, mailbox.join("inbound").join(name))?;
        }
    }
    let n = orders as f64;
    let published = reached(&tg.metrics, "gridsync_tg_documents_total", "partner=\"ACME\"", n, start).await?;
    let effected = reached(&notifications.metrics, "gridsync_flow_side_effects_total", "", 3.0 * n, start).await?;
    let recorded = reached(&audit.metrics, "gridsync_audit_events_recorded_total", "", 4.0 * n, start).await?;
    let cpu: Vec<f64> = binaries.iter().zip(&cpu_before).map(|(b, before)| b.cpu_seconds() - before).collect();

    // The steady phase: `rate` orders a second, a file every 100 ms, and the latency from receipt
    // to side effect as Prometheus computes it from the flow's histogram.
    let histogram = "gridsync_flow_source_to_effect_seconds";
    let before = buckets(&notifications.metrics, histogram).await;
    let per_file = (rate / 10).max(1);
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut sent = 0;
    for tick in 0..steady_secs * 10 {
        ticker.tick().await;
        let numbers: Vec<String> = (0..per_file).map(|i| format!("PO-S{tick:05}{i:03}")).collect();
        let name = format!("steady-{tick:05}.edi");
        std::fs::write(staging.join(&name), x12_purchase_orders("ACME", 100_000 + tick as usize, &numbers, 1))?;
        std::fs::rename(staging.join(&name), mailbox.join("inbound").join(&name))?;
        sent += per_file;
    }
    let steady_start = Instant::now();
    reached(&notifications.metrics, "gridsync_flow_side_effects_total", "", 3.0 * (n + sent as f64), steady_start)
        .await?;
    let after = buckets(&notifications.metrics, histogram).await;
    let (p50, p99) = (quantile(0.5, &before, &after), quantile(0.99, &before, &after));

    stop.cancel();
    let secs = |d: Duration| d.as_secs_f64();
    println!("pipeline: {orders} orders from ACME in {} files, on Apache Kafka at {}", files.len(), broker.brokers());
    println!(
        "  raw librdkafka, {orders} records of {size} bytes: produce {raw_produce:.0}/s, consume {raw_consume:.0}/s"
    );
    println!(
        "  files → events on Kafka (tg-producer):      {:>8.0} orders/s  ({:.2} of raw produce)",
        n / secs(published),
        n / secs(published) / raw_produce
    );
    println!(
        "  → side effects in Amplience (notifications): {:>8.0} orders/s  ({:.0} side effects/s; {:.3} of raw consume)",
        n / secs(effected),
        3.0 * n / secs(effected),
        n / secs(effected) / raw_consume
    );
    println!(
        "  → audit store (audit, {} events):         {:>8.0} events/s  ({:.2} of raw consume)",
        4 * orders,
        4.0 * n / secs(recorded),
        4.0 * n / secs(recorded) / raw_consume
    );
    println!(
        "  at {rate} orders/s for {steady_secs} s: receipt → side effect p50 {:.3} s, p99 {:.3} s (histogram buckets)",
        p50, p99
    );
    for (binary, cpu) in binaries.iter().zip(cpu) {
        println!(
            "  {:<24} {:>6.2} CPU-s per 1,000 orders in the backlog, peak RSS {:>6.1} MiB",
            binary.name,
            cpu * 1000.0 / n,
            binary.peak_mib()
        );
    }
    Ok(())
}
