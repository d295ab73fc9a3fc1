//! The shared consumer loop's guarantees, checked on a real broker with the
//! probe consumer as a separate process: at-least-once across SIGKILL, clean
//! SIGTERM, dead letters with context, retries of transient failures.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use futures::{stream, StreamExt};
use gridsync_core::{
    kafka::{admin::apply_topics, dead_letter, headers, EventProducer},
    telemetry::Metrics,
};
use gridsync_schemas::{
    catalog::{RecordKey, TopicSpec},
    codec,
    samples::sample,
    Event, EventType,
};
use gridsync_tests::{
    free_port, metric_value, payload, poll_until, processed_lines, read_topic, unique_prefix, wait_for, wait_until,
    Broker,
};
use nix::{sys::signal, unistd::Pid};
use rdkafka::{message::OwnedHeaders, Message};

const PARTITIONS: i32 = 6;
const DLQ_MAX_BYTES: usize = 100_000;

struct Setup {
    broker: std::sync::Arc<Broker>,
    topic: String,
    dlq: String,
    group: String,
    producer: EventProducer,
    dir: tempfile::TempDir,
}

async fn setup(name: &str) -> Setup {
    let broker = Broker::shared().unwrap();
    let prefix = unique_prefix(name);
    let kafka = broker.kafka_args(&prefix);
    let spec = |name: String, partitions| TopicSpec {
        name,
        description: String::new(),
        events: vec![],
        key: RecordKey::default(),
        partitions,
        replication_factor: 1,
        config: BTreeMap::new(),
        dead_letter_of: None,
    };
    let (topic, dlq) = (format!("{prefix}probe"), format!("{prefix}probe.dlq"));
    // Dead letters bigger than this are refused by the broker (see the too-large test).
    let mut dlq_spec = spec(dlq.clone(), 1);
    dlq_spec.config.insert("max.message.bytes".into(), DLQ_MAX_BYTES.to_string());
    apply_topics(&kafka, &[spec(topic.clone(), PARTITIONS), dlq_spec], false).await.unwrap();
    let producer = EventProducer::new(&kafka, Metrics::new("test").unwrap()).unwrap();
    Setup { broker, topic, dlq, group: format!("{prefix}probe-group"), producer, dir: tempfile::tempdir().unwrap() }
}

impl Setup {
    fn out(&self) -> std::path::PathBuf {
        self.dir.path().join("processed.tsv")
    }

    fn spawn_probe(&self, delay_ms: u64, metrics_port: Option<u16>) -> Child {
        self.spawn_probe_writing(&self.out(), delay_ms, metrics_port)
    }

    fn spawn_probe_writing(&self, out: &Path, delay_ms: u64, metrics_port: Option<u16>) -> Child {
        self.spawn_probe_with(out, delay_ms, metrics_port, &[])
    }

    fn spawn_probe_with(&self, out: &Path, delay_ms: u64, metrics_port: Option<u16>, extra: &[&str]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_probe-consumer"));
        cmd.args(extra);
        cmd.args(["--brokers", &self.broker.brokers(), "--topic", &self.topic, "--group", &self.group])
            .args(["--dead-letter-topic", &self.dlq, "--delay-ms", &delay_ms.to_string()])
            .arg("--out")
            .arg(out)
            .env("GRIDSYNC_LOG", "info")
            // librdkafka statistics (consumer lag) every 500 ms, through the environment pass-through.
            .env("GRIDSYNC_KAFKA_STATISTICS_INTERVAL_MS", "500")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(format!("probe-{}.log", rand_suffix()))).unwrap());
        if let Some(port) = metrics_port {
            cmd.args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
        }
        cmd.spawn().unwrap()
    }

    /// Publishes `count` events with distinct keys over all partitions; returns their ids.
    async fn publish_many(&self, count: u64) -> BTreeSet<String> {
        self.publish_many_from(0, count).await
    }

    /// Publishes events number `first..first + count` (distinct ids and keys per number).
    async fn publish_many_from(&self, first: u64, count: u64) -> BTreeSet<String> {
        let events: Vec<_> = (first..first + count)
            .map(|i| sample(EventType::PurchaseOrderReceived, &format!("P{}", i % 37), i))
            .collect();
        let results: Vec<_> = stream::iter(&events)
            .map(|e| self.producer.publish_to(&self.topic, e, None))
            .buffer_unordered(256)
            .collect()
            .await;
        assert!(results.iter().all(Result::is_ok));
        events.iter().map(|e| e.envelope().event_id.clone()).collect()
    }
}

/// An invoice from ACME with `business_key` (which steers the probe: POISON, FLAKY, ...).
fn invoice(seq: u64, business_key: &str) -> gridsync_schemas::Event {
    let mut e = sample(EventType::InvoiceReceived, "ACME", seq);
    e.envelope_mut().business_key = business_key.into();
    e
}

/// The value of the sample in Prometheus text `metrics` whose line holds every fragment (in any
/// order: Prometheus orders labels its own way).
fn sample_value(metrics: &str, fragments: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .find(|l| !l.starts_with('#') && fragments.iter().all(|f| l.contains(f)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

fn sigterm(child: &Child) {
    signal::kill(Pid::from_raw(child.id() as i32), signal::Signal::SIGTERM).unwrap();
}

async fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().unwrap();
        status.is_some()
    })
    .await;
    status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("consumer did not exit within {timeout:?}")
    })
}

fn ids(out: &Path) -> Vec<String> {
    processed_lines(out).into_iter().map(|(id, ..)| id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_killed_mid_stream_resumes_and_skips_nothing() {
    let s = setup("sigkill").await;
    let published = s.publish_many(1500).await;

    let mut first = s.spawn_probe(20, None);
    assert!(wait_until(Duration::from_secs(90), || ids(&s.out()).len() >= 300).await, "the probe never got going");
    first.kill().unwrap(); // SIGKILL: no chance to commit
    first.wait().unwrap();
    let before_kill = ids(&s.out()).len();
    assert!(before_kill < 1500, "killed mid-stream, not after the end");

    let mut second = s.spawn_probe(0, None);
    let all_seen =
        wait_until(Duration::from_secs(120), || ids(&s.out()).into_iter().collect::<BTreeSet<_>>().len() == 1500).await;
    sigterm(&second);
    assert!(wait_exit(&mut second, Duration::from_secs(30)).await.success());
    assert!(all_seen, "after the restart every record is processed");

    let lines = processed_lines(&s.out());
    let seen: BTreeSet<String> = lines.iter().map(|(id, ..)| id.clone()).collect();
    assert_eq!(seen, published, "every record at least once");
    // No offset skipped: each partition's processed offsets are exactly 0..n.
    let mut by_partition: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for (_, _, partition, offset) in &lines {
        by_partition.entry(*partition).or_default().insert(*offset);
    }
    let total: usize = by_partition.values().map(BTreeSet::len).sum();
    assert_eq!(total, 1500);
    for (partition, offsets) in by_partition {
        let n = offsets.len() as i64;
        assert_eq!(offsets, (0..n).collect::<BTreeSet<_>>(), "partition {partition} has a gap");
    }
    eprintln!("processed before kill: {before_kill}; redelivered after restart: {}", lines.len() - 1500);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_work_commits_and_exits() {
    let s = setup("sigterm").await;
    let published = s.publish_many(600).await;

    let mut first = s.spawn_probe(20, None);
    assert!(wait_until(Duration::from_secs(90), || ids(&s.out()).len() >= 100).await, "the probe never got going");
    sigterm(&first);
    let status = wait_exit(&mut first, Duration::from_secs(30)).await;
    assert!(status.success(), "clean exit on SIGTERM, got {status}");
    let before = ids(&s.out());
    assert!(before.len() < 600, "stopped mid-stream");

    let mut second = s.spawn_probe(0, None);
    let finished = wait_until(Duration::from_secs(90), || ids(&s.out()).len() >= 600).await;
    let lines = processed_lines(&s.out());
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (_, _, p, o) in &lines {
        by_partition.entry(*p).or_default().push(*o);
    }
    if !finished {
        let kept = s.dir.path().to_owned();
        std::mem::forget(s);
        panic!("{} before SIGTERM, {} in all, logs in {}: {by_partition:?}", before.len(), lines.len(), kept.display());
    }
    sigterm(&second);
    assert!(wait_exit(&mut second, Duration::from_secs(30)).await.success());

    // The offsets of everything finished before SIGTERM were committed: nothing ran twice.
    let all = ids(&s.out());
    assert_eq!(all.len(), 600, "no record processed twice");
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), published);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_records_are_dead_lettered_with_context_and_the_records_after_them_flow() {
    let s = setup("poison").await;
    let key = b"ACME/ONE-PARTITION".as_slice();
    let codec = codec().unwrap();
    // All on one key, so one partition, in this order.
    let mut good_ids = Vec::new();
    let mut sent = Vec::new();
    for seq in 0..5 {
        let e = invoice(seq, "INV-OK");
        good_ids.push(e.envelope().event_id.clone());
        sent.push(codec.encode(&e));
    }
    let undecodable = b"{\"not\": \"avro\"}".to_vec();
    sent.push(undecodable.clone());
    let poison = codec.encode(&invoice(100, "POISON-1"));
    sent.push(poison.clone());
    let flaky = invoice(101, "FLAKY-1");
    good_ids.push(flaky.envelope().event_id.clone());
    sent.push(codec.encode(&flaky));
    for seq in 5..10 {
        let e = invoice(seq, "INV-OK");
        good_ids.push(e.envelope().event_id.clone());
        sent.push(codec.encode(&e));
    }
    let mut offsets = Vec::new();
    for bytes in &sent {
        let d = s.producer.send(&s.topic, Some(key), Some(bytes), OwnedHeaders::new()).await.unwrap();
        offsets.push((d.partition, d.offset));
    }

    let port = free_port();
    let mut probe = s.spawn_probe(0, Some(port));
    assert!(
        wait_until(Duration::from_secs(90), || ids(&s.out()).len() >= 11).await,
        "good records after the bad ones were processed"
    );
    assert_eq!(ids(&s.out()), good_ids, "in order, the flaky one retried in place");

    let dead = read_topic(&s.broker.brokers(), &s.dlq, 2, Duration::from_secs(30)).unwrap();
    assert_eq!(dead.len(), 2);
    let header = |m: &rdkafka::message::OwnedMessage, name| headers::get(m.headers(), name).map(str::to_owned);
    let (undecodable_dl, poison_dl) = (&dead[0], &dead[1]);
    assert_eq!(payload(undecodable_dl), undecodable.as_slice(), "original bytes kept");
    assert_eq!(undecodable_dl.key(), Some(key));
    assert_eq!(header(undecodable_dl, dead_letter::STAGE).as_deref(), Some("DECODE"));
    assert_eq!(header(undecodable_dl, dead_letter::ERROR_CLASS).as_deref(), Some("codec.unknown_framing"));
    assert_eq!(header(undecodable_dl, dead_letter::ORIGINAL_TOPIC), Some(s.topic.clone()));
    assert_eq!(header(undecodable_dl, dead_letter::ORIGINAL_PARTITION), Some(offsets[5].0.to_string()));
    assert_eq!(header(undecodable_dl, dead_letter::ORIGINAL_OFFSET), Some(offsets[5].1.to_string()));
    assert_eq!(header(undecodable_dl, dead_letter::CONSUMER), Some(s.group.clone()));
    assert!(header(undecodable_dl, dead_letter::ERROR_MESSAGE).unwrap().contains("0x7B"));
    assert!(header(undecodable_dl, dead_letter::FAILED_AT).is_some());

    assert_eq!(payload(poison_dl), poison.as_slice());
    assert_eq!(header(poison_dl, dead_letter::STAGE).as_deref(), Some("PROCESS"));
    assert_eq!(header(poison_dl, dead_letter::ERROR_CLASS).as_deref(), Some("probe.poison"));
    assert!(header(poison_dl, dead_letter::ERROR_MESSAGE).unwrap().contains("POISON-1 is poison"));
    assert_eq!(header(poison_dl, dead_letter::ORIGINAL_OFFSET), Some(offsets[6].1.to_string()));

    // Lag comes from librdkafka's statistics: wait for the partition's gauge.
    let lag_line = format!("partition=\"{}\"", offsets[0].0);
    let read =
        || async { reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap() };
    let has_lag =
        |metrics: &String| metrics.lines().any(|l| l.starts_with("gridsync_consumer_lag{") && l.contains(&lag_line));
    let metrics = poll_until(Duration::from_secs(10), read, has_lag).await;
    let value = |fragments: &[&str]| sample_value(&metrics, fragments);
    assert_eq!(value(&["gridsync_dead_letters_total{", "stage=\"DECODE\""]), Some(1.0), "{metrics}");
    assert_eq!(value(&["gridsync_dead_letters_total{", "stage=\"PROCESS\""]), Some(1.0));
    assert_eq!(value(&["gridsync_failures_total{", "reason=\"codec.unknown_framing\""]), Some(1.0));
    assert_eq!(value(&["gridsync_retries_total{"]), Some(2.0), "the flaky record was retried twice");
    assert_eq!(value(&["gridsync_records_processed_total{", "outcome=\"dead_lettered\""]), Some(2.0));
    assert_eq!(value(&["gridsync_records_processed_total{", "outcome=\"ok\""]), Some(11.0));
    let lag = value(&["gridsync_consumer_lag{", &lag_line]).expect("consumer lag of the partition");
    assert!((0.0..=17.0).contains(&lag), "lag {lag} is between 0 and the partition's 17 records");

    sigterm(&probe);
    assert!(wait_exit(&mut probe, Duration::from_secs(30)).await.success());
}

/// A handler that does many records at once (as the audit consumer records them, one store
/// transaction each) keeps every guarantee: a backlog goes in batches, each record exactly
/// once and in order; a batch holding a record that fails for good is redone one record at a
/// time, so only that record is dead-lettered; a transient failure retries the batch.
#[tokio::test(flavor = "multi_thread")]
async fn a_batching_handler_takes_a_backlog_in_batches_and_dead_letters_only_the_bad_record() {
    let s = setup("batches").await;
    let key = b"ACME/ONE-PARTITION".as_slice();
    let codec = codec().unwrap();
    // A backlog on one partition: 300 good records, a poison one, a flaky one, 300 more.
    let mut good_ids = Vec::new();
    let mut sent = Vec::new();
    for seq in 0..300 {
        let e = invoice(seq, "INV-OK");
        good_ids.push(e.envelope().event_id.clone());
        sent.push(codec.encode(&e));
    }
    let poison = codec.encode(&invoice(1000, "POISON-B"));
    sent.push(poison.clone());
    let flaky = invoice(1001, "FLAKY-B");
    good_ids.push(flaky.envelope().event_id.clone());
    sent.push(codec.encode(&flaky));
    for seq in 300..600 {
        let e = invoice(seq, "INV-OK");
        good_ids.push(e.envelope().event_id.clone());
        sent.push(codec.encode(&e));
    }
    for bytes in &sent {
        s.producer.send(&s.topic, Some(key), Some(bytes), OwnedHeaders::new()).await.unwrap();
    }

    let port = free_port();
    let mut probe = s.spawn_probe_with(&s.out(), 0, Some(port), &["--batch", "100"]);
    assert!(
        wait_until(Duration::from_secs(90), || ids(&s.out()).len() >= good_ids.len()).await,
        "the backlog was processed: {} of {}",
        ids(&s.out()).len(),
        good_ids.len()
    );
    assert_eq!(ids(&s.out()), good_ids, "every good record once, in order");
    let dead = read_topic(&s.broker.brokers(), &s.dlq, 1, Duration::from_secs(30)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(payload(&dead[0]), poison.as_slice(), "only the poison record is dead-lettered");
    // Batches were taken (of at most 100), and fewer than one per record.
    let batches: Vec<usize> = std::fs::read_to_string(s.out().with_extension("batches"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(batches.iter().all(|b| (1..=100).contains(b)), "{batches:?}");
    assert!(batches.len() < good_ids.len() / 4 && batches.iter().any(|b| *b > 10), "{batches:?}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    let value = |fragments: &[&str]| sample_value(&metrics, fragments);
    let good = good_ids.len() as f64;
    assert_eq!(value(&["gridsync_records_processed_total{", "outcome=\"ok\""]), Some(good), "{metrics}");
    assert_eq!(value(&["gridsync_records_processed_total{", "outcome=\"dead_lettered\""]), Some(1.0));
    assert_eq!(value(&["gridsync_records_in_total{"]), Some(good + 1.0), "each record counted in once");

    sigterm(&probe);
    assert!(wait_exit(&mut probe, Duration::from_secs(30)).await.success());
}

/// With keys handled at once, a partition's records of different keys overlap while each key's
/// stay in order: every record once, a poison one dead-lettered without holding its key's next
/// records, a flaky one retried in its place.
#[tokio::test(flavor = "multi_thread")]
async fn keys_of_a_partition_are_handled_at_once_each_key_in_order() {
    let s = setup("keys").await;
    let codec = codec().unwrap();
    // 30 keys of 8 records each, interleaved, over the 6 partitions.
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut poison = None;
    for round in 0..8u64 {
        for k in 0..30u64 {
            let business_key = match (k, round) {
                (3, 2) => "POISON-K".to_owned(),
                (5, 1) => "FLAKY-K".to_owned(),
                _ => format!("KEY-{k}"),
            };
            let e = invoice(round * 100 + k, &business_key);
            let bytes = codec.encode(&e);
            let key = format!("ACME/KEY-{k}");
            s.producer.send(&s.topic, Some(key.as_bytes()), Some(&bytes), OwnedHeaders::new()).await.unwrap();
            if business_key == "POISON-K" {
                poison = Some(bytes);
            } else {
                by_key.entry(key).or_default().push(e.envelope().event_id.clone());
            }
        }
    }
    let expected: usize = by_key.values().map(Vec::len).sum();

    let mut probe = s.spawn_probe_with(&s.out(), 30, None, &["--key-concurrency", "8"]);
    assert!(
        wait_until(Duration::from_secs(90), || ids(&s.out()).len() >= expected).await,
        "{} of {expected} processed",
        ids(&s.out()).len()
    );
    let processed = ids(&s.out());
    assert_eq!(processed.len(), expected, "every record once");
    for (key, sent) in &by_key {
        let order: Vec<&String> = processed.iter().filter(|id| sent.contains(id)).collect();
        assert_eq!(order, sent.iter().collect::<Vec<_>>(), "{key}'s records in the order sent");
    }
    let dead = read_topic(&s.broker.brokers(), &s.dlq, 1, Duration::from_secs(30)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(Some(payload(&dead[0])), poison.as_deref(), "only the poison record is dead-lettered");
    let in_hand: usize =
        std::fs::read_to_string(s.out().with_extension("in-hand")).unwrap_or_default().trim().parse().unwrap_or(0);
    assert!(in_hand > PARTITIONS as usize, "more records at once than partitions: {in_hand}");

    sigterm(&probe);
    assert!(wait_exit(&mut probe, Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_joining_and_leaving_the_group_share_the_work_and_lose_nothing() {
    let s = setup("rebalance").await;
    let mut published = s.publish_many(600).await;
    let (out_a, out_b) = (s.dir.path().join("a.tsv"), s.dir.path().join("b.tsv"));
    let all_lines = || [processed_lines(&out_a), processed_lines(&out_b)].concat();

    let mut a = s.spawn_probe_writing(&out_a, 10, None);
    assert!(wait_until(Duration::from_secs(90), || all_lines().len() >= 100).await, "a never got going");
    // b joins: once the group has given it partitions, what is published next is split between a and b.
    let b_metrics = free_port();
    let mut b = s.spawn_probe_writing(&out_b, 10, Some(b_metrics));
    let b_url = format!("http://127.0.0.1:{b_metrics}/metrics");
    let assigned = wait_for(Duration::from_secs(90), || async {
        metric_value(&b_url, "gridsync_rebalances_total", r#"kind="assign""#).await >= 1.0
    })
    .await;
    assert!(assigned, "b was never assigned partitions");
    published.extend(s.publish_many_from(600, 600).await);
    assert!(
        wait_until(Duration::from_secs(90), || !processed_lines(&out_b).is_empty()).await,
        "b never got partitions"
    );
    // a leaves: b takes over everything.
    sigterm(&a);
    assert!(wait_exit(&mut a, Duration::from_secs(30)).await.success());
    let finished = wait_until(Duration::from_secs(120), || {
        all_lines().into_iter().map(|(id, ..)| id).collect::<BTreeSet<_>>().len() == 1200
    })
    .await;
    sigterm(&b);
    assert!(wait_exit(&mut b, Duration::from_secs(30)).await.success());
    assert!(finished, "every record processed after the rebalances");

    let lines = all_lines();
    assert_eq!(lines.iter().map(|(id, ..)| id.clone()).collect::<BTreeSet<_>>(), published);
    let mut by_partition: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for (_, _, partition, offset) in &lines {
        by_partition.entry(*partition).or_default().insert(*offset);
    }
    for (partition, offsets) in &by_partition {
        let n = offsets.len() as i64;
        assert_eq!(*offsets, (0..n).collect::<BTreeSet<_>>(), "partition {partition} has a gap");
    }
    // Redelivery after a revoke is limited to the records in flight and not yet
    // committed; a stored offset going backwards would redo far more.
    let duplicates = lines.len() - 1200;
    assert!(duplicates <= 4 * PARTITIONS as usize, "{duplicates} records processed twice");
    assert!(!processed_lines(&out_a).is_empty() && !processed_lines(&out_b).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_stuck_on_a_record_does_not_hold_up_the_others() {
    let s = setup("stuck").await;
    // One partition: a record that cannot be processed yet, then 100 more behind it
    // (far more than the probe's 16-record buffer).
    let mut stuck_partition = None;
    for i in 0..101u64 {
        let mut event = sample(EventType::PurchaseOrderReceived, "ACME", 10_000 + i);
        event.envelope_mut().business_key = "HELD".into();
        if i == 0 {
            event.envelope_mut().correlation_id = "STUCK".into();
        }
        let delivered = s.producer.publish_to(&s.topic, &event, None).await.unwrap();
        stuck_partition = Some(delivered.partition);
    }
    let stuck_partition = stuck_partition.unwrap();
    // Traffic on every partition.
    let mut others = BTreeSet::new();
    for i in 0..300u64 {
        let event = sample(EventType::PurchaseOrderReceived, &format!("P{}", i % 29), i);
        let delivered = s.producer.publish_to(&s.topic, &event, None).await.unwrap();
        if delivered.partition != stuck_partition {
            others.insert(event.envelope().event_id.clone());
        }
    }
    assert!(others.len() > 150, "traffic lands on the other partitions");

    let port = free_port();
    let mut probe = s.spawn_probe(0, Some(port));
    let seen = || ids(&s.out()).into_iter().collect::<BTreeSet<_>>();
    let flowed = wait_until(Duration::from_secs(90), || others.is_subset(&seen())).await;
    let lines = processed_lines(&s.out());
    assert!(
        flowed,
        "{} of {} other-partition records processed while one partition is stuck",
        others.intersection(&seen()).count(),
        others.len()
    );
    assert!(
        lines.iter().all(|(_, _, partition, _)| *partition != stuck_partition),
        "nothing behind the stuck record ran"
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("gridsync_partition_pauses_total{")),
        "the pause is counted: {metrics}"
    );

    // Released: the stuck partition resumes and catches up, in order, without gaps.
    std::fs::write(s.out().with_extension("release"), "").unwrap();
    assert!(wait_until(Duration::from_secs(90), || seen().len() == 401).await, "{} of 401", seen().len());
    let held: Vec<i64> =
        processed_lines(&s.out()).into_iter().filter(|(_, _, p, _)| *p == stuck_partition).map(|(.., o)| o).collect();
    assert_eq!(
        held,
        (0..held.len() as i64).collect::<Vec<_>>(),
        "the stuck partition ran in order from its first record"
    );
    sigterm(&probe);
    assert!(wait_exit(&mut probe, Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_attempt_times_out_and_is_retried_instead_of_holding_the_partition() {
    let s = setup("hang").await;
    // One business key: one partition, the hung record first.
    let mut hang = sample(EventType::PurchaseOrderReceived, "P1", 1);
    hang.envelope_mut().correlation_id = "HANG".into();
    let mut after = sample(EventType::PurchaseOrderReceived, "P1", 2);
    after.envelope_mut().business_key = hang.envelope().business_key.clone();
    for event in [&hang, &after] {
        s.producer.publish_to(&s.topic, event, None).await.unwrap();
    }
    let port = free_port();
    let mut probe = s.spawn_probe_with(&s.out(), 0, Some(port), &["--handler-timeout-ms", "300"]);
    let both = wait_until(Duration::from_secs(60), || ids(&s.out()).len() == 2).await;
    assert!(both, "the hung record was abandoned, retried and processed, and the next one after it");
    let url = format!("http://127.0.0.1:{port}/metrics");
    assert_eq!(metric_value(&url, "gridsync_failures_total", r#"reason="timeout""#).await, 1.0);
    assert_eq!(ids(&s.out()), [hang.envelope().event_id.clone(), after.envelope().event_id.clone()], "in order");
    sigterm(&probe);
    assert!(wait_exit(&mut probe, Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_too_large_for_kafka_is_truncated_and_says_so() {
    let s = setup("huge").await;
    let mut poison = sample(EventType::PurchaseOrderReceived, "P1", 1);
    poison.envelope_mut().business_key = "POISON-HUGE".into();
    if let Event::PurchaseOrderReceived(po) = &mut poison {
        po.lines[0].description = Some("x".repeat(2 * DLQ_MAX_BYTES));
    }
    let after = sample(EventType::PurchaseOrderReceived, "P1", 2);
    for event in [&poison, &after] {
        s.producer.publish_to(&s.topic, event, None).await.unwrap();
    }
    let mut probe = s.spawn_probe(0, None);
    assert!(wait_until(Duration::from_secs(60), || ids(&s.out()).len() == 1).await, "the record after it flowed");
    let dead = read_topic(&s.broker.brokers(), &s.dlq, 1, Duration::from_secs(30)).unwrap();
    assert_eq!(dead.len(), 1);
    let header = |m: &rdkafka::message::OwnedMessage, name| headers::get(m.headers(), name).map(str::to_owned);
    let original = codec().unwrap().encode(&poison).len();
    assert_eq!(header(&dead[0], dead_letter::TRUNCATED_FROM), Some(original.to_string()));
    assert_eq!(payload(&dead[0]).len(), dead_letter::TRUNCATED_PAYLOAD_BYTES);
    assert_eq!(header(&dead[0], dead_letter::ERROR_CLASS), Some("probe.poison".to_owned()));
    sigterm(&probe);
    assert!(wait_exit(&mut probe, Duration::from_secs(30)).await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_partition_is_not_handed_on_while_its_record_is_in_hand() {
    let s = setup("revoke").await;
    let mut slow = sample(EventType::PurchaseOrderReceived, "P1", 1);
    slow.envelope_mut().correlation_id = "SLOW".into();
    s.producer.publish_to(&s.topic, &slow, None).await.unwrap();
    let spans_file = s.out().with_extension("spans");
    let spans = || -> Vec<(String, u64)> {
        std::fs::read_to_string(&spans_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_owned(), f.nth(1)?.parse().ok()?))
            })
            .collect()
    };
    let a_metrics = free_port();
    let mut a = s.spawn_probe(0, Some(a_metrics));
    assert!(wait_until(Duration::from_secs(60), || !spans().is_empty()).await, "a began the slow record");
    // b joins while a is in the middle of it; once a's revoke has begun, the record may finish.
    // The partition moves (or comes back) only once a is done with it. Both write to the same files.
    let mut b = s.spawn_probe(0, None);
    let a_url = format!("http://127.0.0.1:{a_metrics}/metrics");
    let revoking = wait_for(Duration::from_secs(90), || async {
        metric_value(&a_url, "gridsync_rebalances_total", r#"kind="revoke""#).await >= 1.0
    })
    .await;
    assert!(revoking, "b's joining made a give its partitions up");
    // While a's handler is still in the record, nobody may begin it again (a rebalance
    // completes in well under three seconds when nothing holds it back).
    let begins = || spans().iter().filter(|(w, _)| w == "begin").count();
    let early = wait_until(Duration::from_secs(3), || begins() > 1).await;
    assert!(!early, "the record began again while its first run was in hand: {:?}", spans());
    std::fs::write(s.out().with_extension("release"), "").unwrap();
    let twice = wait_until(Duration::from_secs(90), || spans().iter().filter(|(w, _)| w == "end").count() == 2).await;
    sigterm(&a);
    sigterm(&b);
    assert!(wait_exit(&mut a, Duration::from_secs(30)).await.success());
    assert!(wait_exit(&mut b, Duration::from_secs(30)).await.success());
    assert!(twice, "the revoked owner's offset was not stored, so the next owner ran it again: {:?}", spans());
    let spans = spans();
    let kinds: Vec<&str> = spans.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(kinds, ["begin", "end", "begin", "end"], "never two runs at once: {spans:?}");
    assert!(spans[2].1 >= spans[1].1);
}
