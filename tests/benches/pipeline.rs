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
//! Then the scale-out: with amp-sim answering every call 50 ms late, a backlog of orders (from
//! many buyers) through one notifications-consumer, then through two sharing a PostgreSQL store,
//! and the ratio of their rates.
//!
//! `deploy/bench-pipeline.sh` (builds the release binaries first, then
//! `cargo bench -p gridsync-tests --bench pipeline`). `GRIDSYNC_BENCH_ORDERS` (default 3,000)
//! sets the backlog, `GRIDSYNC_BENCH_RATE` (200) and `GRIDSYNC_BENCH_STEADY_SECS` (10) the
//! steady phase, `GRIDSYNC_BENCH_SCALE_ORDERS` (1,000) the scale-out's backlog
//! (`GRIDSYNC_BENCH_SCALE_ONLY=1`: the scale-out alone).
//!
//! Then the audit store from a backlog: `GRIDSYNC_BENCH_AUDIT_BACKLOG` (100,000) events of every
//! type published to Kafka first, then recorded by an audit-consumer into SQLite, and again into
//! PostgreSQL, each timed from its first recorded event to the last (`GRIDSYNC_BENCH_AUDIT_ONLY=1`:
//! this phase alone).
//!
//! `deploy/bench-pipeline.sh soak` (`GRIDSYNC_BENCH_SOAK=1`) instead runs
//! `GRIDSYNC_BENCH_SOAK_ORDERS` (1,000,000) orders through the stack in files, kept at most
//! 20,000 orders ahead of the notifications flow, and samples each binary's resident memory every
//! 5 s: memory must stay flat, the last sample within a fifth of the one after the first tenth
//! (100,000 of a million).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use gridsync_amp_sim::{SimConfig, Simulator};
use gridsync_core::{
    config::KafkaArgs,
    kafka::{admin::apply_topics, EventProducer},
};
use gridsync_schemas::{catalog::catalog, codec, samples::sample, Event, EventType};
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
        self.status_mib("VmHWM:")
    }

    /// Resident memory now, in MiB.
    fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    /// A `kB` line of `/proc/<pid>/status`, in MiB.
    fn status_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
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

/// The running stack: the broker, amp-sim set up as a hub, the binaries' state folder.
struct Stack {
    broker: Broker,
    prefix: String,
    sim: Simulator,
    sim_config: SimConfig,
    stop: CancellationToken,
    dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> anyhow::Result<Self> {
        let broker = Broker::start()?;
        let prefix = unique_prefix("bench-pipeline");
        apply_catalog(&broker, &prefix).await?;
        let sim_config = SimConfig::default();
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sim = Simulator::start(sim_config.clone(), listener, stop.clone()).await?;
        gridsync_tests::set_up_hub(&sim.url(), &sim_config.hub_id, &sim_config.repositories, None).await?;
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("mailbox").join("inbound"))?;
        Ok(Stack { broker, prefix, sim, sim_config, stop, dir })
    }

    /// Starts `name` on `prefix`'s topics, with `env` over the pipeline's environment.
    fn spawn(&self, name: &'static str, prefix: &str, env: &[(&str, String)]) -> anyhow::Result<Binary> {
        let port = free_port();
        let log = self.dir.path().join(format!("{name}-{port}.log"));
        let child = Command::new(workspace_binary(name))
            .args(["--brokers", &self.broker.brokers(), "--topic-prefix", prefix])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .envs(pipeline_env(self.dir.path(), name, &self.sim.url(), &self.sim_config.hub_id))
            // gridsync's own speed: a real hub's budget (20 requests/s by default) would bound it.
            .env("GRIDSYNC_AMPLIENCE_REQUESTS_PER_SECOND", "0")
            // Quiet unless asked (`GRIDSYNC_BENCH_LOG=info`): logging every record costs CPU.
            .env("GRIDSYNC_LOG", std::env::var("GRIDSYNC_BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        Ok(Binary { name, child, metrics: format!("http://127.0.0.1:{port}/metrics") })
    }

    fn inbound(&self) -> PathBuf {
        self.dir.path().join("mailbox").join("inbound")
    }
}

async fn apply_catalog(broker: &Broker, prefix: &str) -> anyhow::Result<()> {
    let kafka = KafkaArgs { topic_prefix: prefix.to_owned(), ..KafkaArgs::for_brokers(broker.brokers()) };
    apply_topics(&kafka, &catalog()?.with_prefix(prefix).topics, false).await?;
    Ok(())
}

/// Writes a partner's file of `numbers` into `staging`, then renames it into `inbound`.
fn land_file(
    staging: &std::path::Path,
    inbound: &std::path::Path,
    name: &str,
    interchange: usize,
    numbers: &[String],
) -> anyhow::Result<()> {
    std::fs::write(staging.join(name), x12_purchase_orders("ACME", interchange, numbers, 1))?;
    std::fs::rename(staging.join(name), inbound.join(name))?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var("GRIDSYNC_BENCH_SOAK").is_ok_and(|v| v == "1") {
        return soak(env_or("GRIDSYNC_BENCH_SOAK_ORDERS", 1_000_000)).await;
    }
    if std::env::var("GRIDSYNC_BENCH_SCALE_ONLY").is_ok_and(|v| v == "1") {
        let (stack, orders) = (Stack::start().await?, env_or("GRIDSYNC_BENCH_SCALE_ORDERS", 1_000));
        let (one, two) = scale_out(&stack, orders).await?;
        print_scale_out(orders, one, two);
        stack.stop.cancel();
        return Ok(());
    }
    let audit_events = env_or("GRIDSYNC_BENCH_AUDIT_BACKLOG", 100_000);
    if std::env::var("GRIDSYNC_BENCH_AUDIT_ONLY").is_ok_and(|v| v == "1") {
        let stack = Stack::start().await?;
        let rates = audit_backlog(&stack, audit_events).await?;
        print_audit_backlog(audit_events, &rates);
        stack.stop.cancel();
        return Ok(());
    }
    let orders: usize = env_or("GRIDSYNC_BENCH_ORDERS", 3_000);
    let rate: usize = env_or("GRIDSYNC_BENCH_RATE", 200);
    let steady_secs: u64 = env_or("GRIDSYNC_BENCH_STEADY_SECS", 10);
    let stack = Stack::start().await?;
    let (broker, prefix) = (&stack.broker, &stack.prefix);

    // The raw client first, on a topic of its own, records the size of an order's event.
    let size = codec()?.encode(&sample(EventType::PurchaseOrderReceived, "ACME", 1)).len();
    let raw_topic = format!("{prefix}raw");
    let admin = KafkaArgs::for_brokers(broker.brokers());
    let mut raw_spec = catalog()?.topic_for(EventType::PurchaseOrderReceived).clone();
    raw_spec.name = raw_topic.clone();
    apply_topics(&admin, &[raw_spec], false).await?;
    let (raw_produce, raw_consume) = raw_rates(&broker.brokers(), &raw_topic, orders, size).await?;

    let binaries = [
        stack.spawn("tg-producer", prefix, &[])?,
        stack.spawn("notifications-consumer", prefix, &[])?,
        stack.spawn("audit-consumer", prefix, &[])?,
    ];
    for binary in &binaries {
        wait_ready(binary).await?;
    }
    let [tg, notifications, audit] = &binaries;

    // The backlog: every file lands at once (renamed in from a folder beside the mailbox).
    let staging = stack.dir.path().join("staging");
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
            std::fs::rename(file, stack.inbound().join(name))?;
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
        land_file(&staging, &stack.inbound(), &format!("steady-{tick:05}.edi"), 100_000 + tick as usize, &numbers)?;
        sent += per_file;
    }
    let steady_start = Instant::now();
    reached(&notifications.metrics, "gridsync_flow_side_effects_total", "", 3.0 * (n + sent as f64), steady_start)
        .await?;
    let after = buckets(&notifications.metrics, histogram).await;
    let (p50, p99) = (quantile(0.5, &before, &after), quantile(0.99, &before, &after));

    let cpu_peak: Vec<(f64, f64)> = binaries.iter().zip(cpu).map(|(b, cpu)| (cpu, b.peak_mib())).collect();
    drop(binaries);
    let scale_orders = env_or("GRIDSYNC_BENCH_SCALE_ORDERS", 1_000);
    let (one, two) = scale_out(&stack, scale_orders).await?;
    let audit_rates = audit_backlog(&stack, audit_events).await?;
    stack.stop.cancel();
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
    for (name, (cpu, peak)) in ["tg-producer", "notifications-consumer", "audit-consumer"].iter().zip(cpu_peak) {
        println!(
            "  {name:<24} {:>6.2} CPU-s per 1,000 orders in the backlog, peak RSS {peak:>6.1} MiB",
            cpu * 1000.0 / n
        );
    }
    print_scale_out(scale_orders, one, two);
    print_audit_backlog(audit_events, &audit_rates);
    Ok(())
}

fn print_audit_backlog(events: usize, rates: &[(&str, f64)]) {
    println!("  audit store from a backlog of {events} events of every type on Kafka (audit-consumer):");
    for (store, rate) in rates {
        println!("    into {store:<12}  {rate:>8.0} events/s");
    }
}

/// Events/s the audit consumer records from a backlog of `events` events already on Kafka (every
/// event type in turn), into SQLite and then into PostgreSQL, each from its first recorded event
/// to the last.
async fn audit_backlog(stack: &Stack, events: usize) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let stores = [
        ("SQLite", format!("sqlite://{}", stack.dir.path().join("audit-backlog.db").display())),
        ("PostgreSQL", gridsync_tests::postgres_schema().await?),
    ];
    let metric = "gridsync_audit_events_recorded_total";
    let mut rates = Vec::new();
    for (store, url) in stores {
        let prefix = unique_prefix("bench-audit");
        apply_catalog(&stack.broker, &prefix).await?;
        let kafka = KafkaArgs { topic_prefix: prefix.clone(), ..KafkaArgs::for_brokers(stack.broker.brokers()) };
        let producer = EventProducer::new(&kafka, gridsync_core::telemetry::Metrics::new("bench")?)?;
        let types = EventType::ALL;
        for chunk in (0..events).collect::<Vec<_>>().chunks(10_000) {
            let batch: Vec<Event> = chunk.iter().map(|&i| sample(types[i % types.len()], "ACME", i as u64)).collect();
            for result in futures::future::join_all(batch.iter().map(|e| producer.publish(e, None))).await {
                result?;
            }
        }
        let audit = stack.spawn("audit-consumer", &prefix, &[("GRIDSYNC_AUDIT_STORE_URL", url)])?;
        reached(&audit.metrics, metric, "", 1.0, Instant::now()).await?;
        let (first, since) = (metric_sum(&audit.metrics, metric, "").await, Instant::now());
        let took = reached(&audit.metrics, metric, "", events as f64, since).await?;
        rates.push((store, (events as f64 - first) / took.as_secs_f64()));
    }
    Ok(rates)
}

fn print_scale_out(orders: usize, one: f64, two: f64) {
    let buyers: usize = env_or("GRIDSYNC_BENCH_SCALE_BUYERS", 1_000);
    println!("  scale-out, amp-sim answering 50 ms late, {orders} orders from {buyers} buyers, PostgreSQL store:");
    println!("    one notifications-consumer:  {one:>8.1} orders/s");
    println!("    two, sharing the store:      {two:>8.1} orders/s  ({:.2}× one)", two / one);
}

/// Orders/s through one notifications-consumer, then through two sharing a PostgreSQL store,
/// with amp-sim answering every call 50 ms late: each a backlog of `orders` orders from
/// `GRIDSYNC_BENCH_SCALE_BUYERS` (1,000) buyers published at once, timed to the last of their
/// side effects.
async fn scale_out(stack: &Stack, orders: usize) -> anyhow::Result<(f64, f64)> {
    let buyers: usize = env_or("GRIDSYNC_BENCH_SCALE_BUYERS", 1_000).max(1);
    let delay = serde_json::json!({ "delay_ms": 50, "count": u32::MAX });
    reqwest::Client::new()
        .post(format!("{}/__sim/faults", stack.sim.url()))
        .json(&delay)
        .send()
        .await?
        .error_for_status()?;
    let mut rates = Vec::new();
    for instances in [1, 2] {
        let prefix = unique_prefix(&format!("bench-scale{instances}"));
        apply_catalog(&stack.broker, &prefix).await?;
        let env = [("GRIDSYNC_FLOW_STORE_URL", gridsync_tests::postgres_schema().await?)];
        let binaries: Vec<Binary> =
            (0..instances).map(|_| stack.spawn("notifications-consumer", &prefix, &env)).collect::<Result<_, _>>()?;
        for binary in &binaries {
            wait_ready(binary).await?;
            wait_assigned(binary).await?;
        }
        let kafka = KafkaArgs { topic_prefix: prefix.clone(), ..KafkaArgs::for_brokers(stack.broker.brokers()) };
        let producer = EventProducer::new(&kafka, gridsync_core::telemetry::Metrics::new("bench")?)?;
        // New orders and buyers each time: the same orders again would find their items made.
        let events: Vec<_> = (0..orders)
            .map(|i| {
                let mut event = sample(EventType::PurchaseOrderReceived, "ACME", (instances * 1_000_000 + i) as u64);
                if let Event::PurchaseOrderReceived(po) = &mut event {
                    po.buyer.id = format!("BUYER-{instances}-{}", i % buyers);
                }
                event
            })
            .collect();
        let start = Instant::now();
        for result in futures::future::join_all(events.iter().map(|e| producer.publish(e, None))).await {
            result?;
        }
        let want = 3.0 * orders as f64;
        let deadline = start + Duration::from_secs(1800);
        loop {
            let mut done = 0.0;
            for binary in &binaries {
                done += metric_sum(&binary.metrics, "gridsync_flow_side_effects_total", "").await;
            }
            if done >= want {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{instances} instance(s): {done} of {want} side effects");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rates.push(orders as f64 / start.elapsed().as_secs_f64());
    }
    Ok((rates[0], rates[1]))
}

/// Waits until `binary`'s `/status` shows partitions assigned to it.
async fn wait_assigned(binary: &Binary) -> anyhow::Result<()> {
    let status = binary.metrics.replace("/metrics", "/status");
    for _ in 0..600 {
        let body: serde_json::Value = match reqwest::get(&status).await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if body.pointer("/consumer/assigned").and_then(serde_json::Value::as_object).is_some_and(|a| !a.is_empty()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{} was never assigned partitions", binary.name)
}

/// The soak: `orders` orders through tg-producer, notifications and audit in files of 100, the
/// inbound backlog kept at most 20,000 orders ahead of the notifications flow, each binary's
/// resident memory sampled every 5 s.
async fn soak(orders: usize) -> anyhow::Result<()> {
    const AHEAD: usize = 20_000;
    let stack = Stack::start().await?;
    let names = ["tg-producer", "notifications-consumer", "audit-consumer"];
    let binaries: Vec<Binary> =
        names.iter().map(|name| stack.spawn(name, &stack.prefix, &[])).collect::<Result<_, _>>()?;
    for binary in &binaries {
        wait_ready(binary).await?;
    }
    let staging = stack.dir.path().join("staging");
    std::fs::create_dir_all(&staging)?;
    println!(
        "soak: {orders} orders from ACME in files of {ORDERS_PER_FILE}, on Apache Kafka at {}",
        stack.broker.brokers()
    );
    let (start, mut written, mut interchange) = (Instant::now(), 0, 1);
    let mut samples: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut next_sample = Instant::now();
    loop {
        let effected = (metric_sum(&binaries[1].metrics, "gridsync_flow_side_effects_total", "").await / 3.0) as usize;
        while written < orders && written < effected + AHEAD {
            let count = ORDERS_PER_FILE.min(orders - written);
            let numbers: Vec<String> = (written..written + count).map(|n| format!("PO-K{n:08}")).collect();
            land_file(&staging, &stack.inbound(), &format!("soak-{interchange:07}.edi"), interchange, &numbers)?;
            written += count;
            interchange += 1;
        }
        if Instant::now() >= next_sample {
            let rss: Vec<f64> = binaries.iter().map(Binary::rss_mib).collect();
            println!(
                "  {:>6.0} s  {effected:>8} orders effected  RSS MiB: {}",
                start.elapsed().as_secs_f64(),
                names.iter().zip(&rss).map(|(n, r)| format!("{n} {r:.1}")).collect::<Vec<_>>().join(", ")
            );
            samples.push((effected, rss));
            next_sample += Duration::from_secs(5);
        }
        if effected >= orders {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let tenth = (orders / 10).max(1);
    let after_first = samples.iter().find(|(effected, _)| *effected >= tenth).map(|(_, rss)| rss.clone());
    let last = samples.last().map(|(_, rss)| rss.clone()).unwrap_or_default();
    println!(
        "soak: {orders} orders in {:.0} s ({:.0} orders/s)",
        start.elapsed().as_secs_f64(),
        orders as f64 / start.elapsed().as_secs_f64()
    );
    for (i, name) in names.iter().enumerate() {
        let first = after_first.as_ref().and_then(|r| r.get(i)).copied().unwrap_or(f64::NAN);
        let end = last.get(i).copied().unwrap_or(f64::NAN);
        println!(
            "  {name:<24} RSS after the first {tenth}: {first:>7.1} MiB, at the end: {end:>7.1} MiB ({:+.0} %)",
            100.0 * (end - first) / first
        );
    }
    stack.stop.cancel();
    Ok(())
}
