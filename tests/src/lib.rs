//! Test harness: a real Kafka-compatible broker (Tansu) per test binary, and
//! helpers to produce and read records through rdkafka; a real OpenSSH server
//! for the SFTP mailbox.

pub mod ssh;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use gridsync_core::config::KafkaArgs;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::OwnedMessage,
    producer::{BaseProducer, Producer},
    ClientConfig, Message, Offset, TopicPartitionList,
};

/// The Tansu binary: `$TANSU_BIN`, else `tansu` on PATH, else `~/.cargo/bin/tansu`.
pub fn tansu_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// A Tansu broker on a free loopback port with SQLite storage in a temporary
/// folder, stopped on drop.
///
/// Not `memory://`: Tansu 0.6.0's memory engine answers a fetch that starts in
/// the middle of a record batch with nothing from that batch, so a consumer
/// resuming from a committed offset silently skips records (see
/// `tests/tests/broker.rs`). Its SQLite engine serves such fetches correctly.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut broker = Broker { child: None, port: free_port(), dir };
        broker.spawn()?;
        Ok(broker)
    }

    /// Stops the broker and starts it again on the same port and storage.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        // Relative to the broker's working folder, the temporary one.
        let storage = "sqlite://tansu.db";
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("tansu.log"))?;
        let child = Command::new(tansu_binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", storage])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!("starting {} (deploy/local-broker.sh install installs it)", tansu_binary().display())
            })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    /// Starts a stopped broker again on the same port and storage.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.spawn()
    }

    /// Kills the broker (Kafka "down"); `start_again` brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", self.brokers()).create()?;
        loop {
            if producer.client().fetch_metadata(None, Duration::from_secs(2)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("broker on port {} not ready after {timeout:?}", self.port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kafka settings for this broker, with every topic and group prefixed.
    pub fn kafka_args(&self, prefix: &str) -> KafkaArgs {
        KafkaArgs { topic_prefix: prefix.to_owned(), ..KafkaArgs::for_brokers(self.brokers()) }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A broker with the catalog's topics applied under a unique prefix, and a
/// producer for them: the starting point of most pipeline tests.
pub struct Pipeline {
    pub broker: Broker,
    pub kafka: KafkaArgs,
    pub catalog: gridsync_schemas::catalog::TopicCatalog,
    pub producer: gridsync_core::kafka::EventProducer,
}

impl Pipeline {
    /// `registry_url` makes the producer write the Confluent framing.
    pub async fn start(name: &str, registry_url: Option<&str>) -> anyhow::Result<Self> {
        let broker = Broker::start()?;
        let prefix = unique_prefix(name);
        let kafka = KafkaArgs { schema_registry_url: registry_url.map(str::to_owned), ..broker.kafka_args(&prefix) };
        let catalog = gridsync_schemas::catalog::catalog()?.with_prefix(&prefix);
        gridsync_core::kafka::admin::apply_topics(&kafka, &catalog.topics, false).await?;
        let producer =
            gridsync_core::kafka::EventProducer::new(&kafka, gridsync_core::telemetry::Metrics::new("test")?)?;
        Ok(Pipeline { broker, kafka, catalog, producer })
    }

    /// The topic an event type is published to.
    pub fn topic(&self, event_type: gridsync_schemas::EventType) -> &str {
        &self.catalog.topic_for(event_type).name
    }
}

/// A binary of the workspace, next to the running test's own folder
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`). The workspace's
/// binaries are built by `cargo test --workspace`.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let path = exe.parent().and_then(Path::parent).map(|dir| dir.join(name)).unwrap_or_default();
    assert!(path.is_file(), "{} is not built: run `cargo test --workspace`", path.display());
    path
}

/// A prefix no other test in this process uses: isolates topics and groups.
pub fn unique_prefix(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("t{}-{name}-{}.", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Reads every record of `topic` from the beginning until `count` arrived or `timeout` passed.
pub fn read_topic(brokers: &str, topic: &str, count: usize, timeout: Duration) -> anyhow::Result<Vec<OwnedMessage>> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "gridsync-test-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = reader.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
    }
    reader.assign(&assignment)?;
    let started = Instant::now();
    let mut out = Vec::new();
    while out.len() < count && started.elapsed() < timeout {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            None => {}
        }
    }
    Ok(out)
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// The lines a probe consumer wrote: `event_id topic partition offset`.
pub fn processed_lines(path: &Path) -> Vec<(String, String, i32, i64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            Some((f.next()?.to_owned(), f.next()?.to_owned(), f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// The value of the first sample of `metric` whose labels contain `labels`
/// (e.g. `outcome="published"`) on a Prometheus endpoint; 0 when absent.
pub async fn metric_value(metrics_url: &str, metric: &str, labels: &str) -> f64 {
    let Ok(response) = reqwest::get(metrics_url).await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The message's payload, for assertions.
pub fn payload(m: &OwnedMessage) -> &[u8] {
    m.payload().unwrap_or_default()
}
