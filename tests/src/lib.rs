//! Test harness: a real Apache Kafka broker per test binary, and helpers to
//! produce and read records through rdkafka; a real OpenSSH server for the
//! SFTP mailbox.

pub mod ssh;

use std::{
    collections::BTreeSet,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex, OnceLock,
    },
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

/// Management API settings for the amp-sim at `url`, acting as `(client id, secret)`: no rate
/// limit, short timeouts and backoff; a test sets what it exercises (`..amp_sim_args(..)`).
pub fn amp_sim_args(url: &str, hub_id: &str, (id, secret): (&str, &str)) -> gridsync_amplience::ManagementArgs {
    gridsync_amplience::ManagementArgs {
        api_url: format!("{url}/v2/content"),
        token_url: format!("{url}/oauth/token"),
        hub_id: Some(hub_id.to_owned()),
        client_id: Some(id.into()),
        client_secret: Some(gridsync_amplience::Secret::new(secret)),
        client_secret_file: None,
        requests_per_second: 0.0,
        publishes_per_minute: 600,
        timeout_ms: 5_000,
        max_attempts: 3,
        max_backoff_ms: 200,
    }
}

/// A Management API client of the amp-sim at `url`, acting as `(client id, secret)`.
pub fn amp_sim_client(
    url: &str,
    hub_id: &str,
    credentials: (&str, &str),
) -> anyhow::Result<gridsync_amplience::ManagementClient> {
    Ok(gridsync_amplience::ManagementClient::new(&amp_sim_args(url, hub_id, credentials))?)
}

/// Sets the hub of the amp-sim at `url` up as `gridsync amplience setup --with-example-templates`
/// does with the flows' default configuration (content in the first repository, templates in the
/// second), and the webhook to `webhook` (URL, secret) if given; acts as client `gridsync`.
pub async fn set_up_hub(
    url: &str,
    hub_id: &str,
    repositories: &[String],
    webhook: Option<(&str, &str)>,
) -> anyhow::Result<Vec<gridsync_amplience::setup::Step>> {
    use gridsync_amplience::{setup, Secret};
    let client = amp_sim_client(url, hub_id, ("gridsync", "gridsync-secret"))?;
    let [content, templates, ..] = repositories else { bail!("amp-sim needs two repositories") };
    let target = setup::Target {
        assign: Default::default(),
        content_repository: content.clone(),
        template_repository: templates.clone(),
        webhook: webhook.map(|(url, secret)| (url.to_owned(), Secret::new(secret))),
        read_types: true,
        example_templates: true,
        approved_state: "Approved".into(),
    };
    Ok(setup::setup(&client, &setup::HubSpec::shipped()?, &target, false).await?)
}

/// The workspace's root folder (where `deploy/` is).
/// The pipeline's long-running binaries, from the catalog: its producers and a
/// `<name>-consumer` per consumer (each a Deployment on Kubernetes, a compose service, a
/// Prometheus target).
pub fn pipeline_binaries() -> Vec<String> {
    let Ok(catalog) = gridsync_schemas::catalog::catalog() else { return Vec::new() };
    catalog.binaries().into_iter().map(|(binary, ..)| binary).collect()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A free TCP port on 127.0.0.1, never one this process was given before: a port handed to a
/// child is bound only once the child starts, and the kernel may offer it again meanwhile (a
/// consumer once lost its metrics port to the audit view picked right after it).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if given.insert(port) {
            return port;
        }
    }
}

/// An Apache Kafka broker (KRaft, one node) on free loopback ports, run by
/// `deploy/local-broker.sh serve` with its data in a folder of its own.
///
/// Most tests share one per test binary ([`Broker::shared`]) and keep apart by
/// topic and group prefixes ([`unique_prefix`]): a JVM broker takes seconds to
/// start. A test that stops or restarts its broker starts its own
/// ([`Broker::start`]), which is killed and removed on drop.
pub struct Broker {
    child: Mutex<Option<Child>>,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    /// Dedicated brokers own a temporary folder, removed on drop.
    _owned_dir: Option<tempfile::TempDir>,
    shared: bool,
}

impl Broker {
    /// A broker of this test's own, for tests that stop or restart it.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("gridsync-kafka-").tempdir()?;
        let broker = Broker {
            child: Mutex::new(None),
            port: free_port(),
            controller_port: free_port(),
            dir: dir.path().to_path_buf(),
            _owned_dir: Some(dir),
            shared: false,
        };
        broker.spawn(false)?;
        Ok(broker)
    }

    /// The broker every test of this binary shares, started on first use and
    /// killed when the test process exits.
    pub fn shared() -> anyhow::Result<Arc<Broker>> {
        static SHARED: OnceLock<Result<Arc<Broker>, String>> = OnceLock::new();
        SHARED.get_or_init(|| Broker::launch_shared().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
    }

    /// Spawns the shared broker from a thread that lives as long as the process:
    /// the broker gets SIGKILL when that thread ends (PR_SET_PDEATHSIG), so no
    /// test process leaves a JVM behind, however it ends.
    fn launch_shared() -> anyhow::Result<Arc<Broker>> {
        remove_stale_shared_dirs();
        let dir = std::env::temp_dir().join(format!("gridsync-kafka-shared-{}", std::process::id()));
        let broker = Arc::new(Broker {
            child: Mutex::new(None),
            port: free_port(),
            controller_port: free_port(),
            dir,
            _owned_dir: None,
            shared: true,
        });
        let (started, result) = std::sync::mpsc::channel();
        let spawned = Arc::clone(&broker);
        std::thread::Builder::new().name("shared-kafka".into()).spawn(move || {
            let _ = started.send(spawned.spawn(true));
            loop {
                std::thread::park();
            }
        })?;
        result.recv().context("the thread starting Kafka ended")??;
        Ok(broker)
    }

    fn spawn(&self, die_with_parent_thread: bool) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("kafka.log"))?;
        let script = workspace_root().join("deploy/local-broker.sh");
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .args(["serve", &self.dir.to_string_lossy(), &self.port.to_string(), &self.controller_port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if die_with_parent_thread {
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting Kafka with {} (needs Java 17+ and Maven)", script.display()))?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        self.wait_ready(Duration::from_secs(120))
    }

    /// Stops the broker and starts it again on the same ports and log folder.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop();
        self.start_again()
    }

    /// Starts a stopped broker again on the same ports and log folder.
    pub fn start_again(&self) -> anyhow::Result<()> {
        self.spawn(false)
    }

    /// Kills the broker (Kafka "down"); `start_again` brings it back. Only a
    /// test's own broker: the shared one serves the other tests.
    pub fn stop(&self) {
        assert!(!self.shared, "the shared broker serves every test of this binary: stop a Broker::start() one");
        self.kill();
    }

    fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", self.brokers()).create()?;
        loop {
            let exited = match self.child.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                Some(child) => child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                bail!("Kafka exited ({status}) while starting; its log: {}", self.dir.join("kafka.log").display());
            }
            if producer.client().fetch_metadata(None, Duration::from_secs(2)).is_ok_and(|m| !m.brokers().is_empty()) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("Kafka on port {} not ready after {timeout:?}; log in {}", self.port, self.dir.display());
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
        self.kill();
    }
}

/// Removes the folders of shared brokers whose test process has ended.
fn remove_stale_shared_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("gridsync-kafka-shared-")) else { continue };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A broker with the catalog's topics applied under a unique prefix, and a
/// producer for them: the starting point of most pipeline tests.
pub struct Pipeline {
    pub broker: Arc<Broker>,
    pub kafka: KafkaArgs,
    pub catalog: gridsync_schemas::catalog::TopicCatalog,
    pub producer: gridsync_core::kafka::EventProducer,
}

impl Pipeline {
    /// On the shared broker. `registry_url` makes the producer write the Confluent framing.
    pub async fn start(name: &str, registry_url: Option<&str>) -> anyhow::Result<Self> {
        Self::start_on(Broker::shared()?, name, registry_url).await
    }

    /// On the given broker (a test's own, to stop and start).
    pub async fn start_on(broker: Arc<Broker>, name: &str, registry_url: Option<&str>) -> anyhow::Result<Self> {
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

/// Every record on `topic` now (its partitions' watermarks say how many): for asserting that
/// nothing is there twice.
pub fn read_all(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<Vec<OwnedMessage>> {
    let reader: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let metadata = reader.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut total = 0;
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = reader.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        total += usize::try_from(high - low)?;
    }
    let records = read_topic(brokers, topic, total, timeout)?;
    anyhow::ensure!(records.len() == total, "{topic}: read {} of its {total} records", records.len());
    Ok(records)
}

/// An X12 file from `sender`: one interchange (and group) numbered `interchange`, one 850 per
/// PO number, each ordering `lines` lines. What the tests and the benchmark drop in mailboxes.
pub fn x12_purchase_orders(sender: &str, interchange: usize, po_numbers: &[String], lines: usize) -> String {
    let mut edi = format!(
        "ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*GRIDSYNC       *261125*1432*U*00401*{interchange:09}*0*P*>~\n\
         GS*PO*{sender}*GRIDSYNC*20261125*1432*{interchange}*X*004010~\n",
    );
    for (n, po_number) in po_numbers.iter().enumerate().map(|(i, po)| (i + 1, po)) {
        edi.push_str(&format!(
            "ST*850*{n:04}~\nBEG*00*SA*{po_number}**20261125~\nN1*BY*{sender} Buyer*92*{sender}-BUYER~\n"
        ));
        for line in 1..=lines {
            edi.push_str(&format!("PO1*{line}*{}*EA*9.95**VP*SKU-{line}00{n}~\n", 10 * line));
        }
        edi.push_str(&format!("CTT*{lines}~\nSE*{}*{n:04}~\n", lines + 5));
    }
    edi.push_str(&format!("GE*{}*{interchange}~\nIEA*1*{interchange:09}~\n", po_numbers.len()));
    edi
}

/// tg-producer's memory budget for a file, as the README states it and the manifests follow: its
/// resident memory stays under `TG_PRODUCER_BASE_BYTES + TG_PRODUCER_BYTES_PER_FILE_BYTE ×
/// --max-file-bytes` (the file, its parse tree, its events encoded, their control numbers,
/// and its acknowledgement, all held until the file is done).
pub const TG_PRODUCER_BASE_BYTES: u64 = 128 << 20;
pub const TG_PRODUCER_BYTES_PER_FILE_BYTE: u64 = 16;

/// How often the `wait_*` helpers ask again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns true or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || std::future::ready(check())).await
}

/// [`wait_until`] for a check that awaits (a metric, the store).
pub async fn wait_for<F: std::future::Future<Output = bool>>(timeout: Duration, check: impl FnMut() -> F) -> bool {
    poll_until(timeout, check, |done| *done).await
}

/// Asks `check` until it answers `Some` (what the wait is for: a log that grew long enough, an
/// answer that is not 503), `None` once `timeout` passed without one.
pub async fn wait_for_some<T, F: std::future::Future<Output = Option<T>>>(
    timeout: Duration,
    check: impl FnMut() -> F,
) -> Option<T> {
    poll_until(timeout, check, Option::is_some).await
}

/// [`poll_until`] for a synchronous test or helper (a blocking read, no runtime): every half
/// second, as such reads are slower.
pub fn poll_until_blocking<T>(timeout: Duration, mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let started = Instant::now();
    loop {
        let value = read();
        if done(&value) || started.elapsed() >= timeout {
            return value;
        }
        std::thread::sleep(BLOCKING_POLL);
    }
}

/// How often [`poll_until_blocking`] reads again.
const BLOCKING_POLL: Duration = Duration::from_millis(500);

/// Reads `read` until what it reads is `done`, or `timeout` passes: the last value read either
/// way, for the assertion after it to show what was seen.
pub async fn poll_until<T, F: std::future::Future<Output = T>>(
    timeout: Duration,
    mut read: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let started = Instant::now();
    loop {
        let value = read().await;
        if done(&value) || started.elapsed() >= timeout {
            return value;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether the binary answering at `url` (its `/readyz`, or its `/metrics` beside it) says it is ready.
pub async fn is_ready(url: &str) -> bool {
    let readyz = url.replace("/metrics", "/readyz");
    reqwest::get(&readyz).await.is_ok_and(|r| r.status().is_success())
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

/// The sum of every sample of `metric` whose labels contain `labels` (all
/// topics, all partitions, ...); 0 when there is none.
pub async fn metric_sum(metrics_url: &str, metric: &str, labels: &str) -> f64 {
    let Ok(response) = reqwest::get(metrics_url).await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The message's payload, for assertions.
pub fn payload(m: &OwnedMessage) -> &[u8] {
    m.payload().unwrap_or_default()
}

/// A broker as a production cluster is (`deploy/local-broker.sh serve-secure`): a SASL_SSL
/// listener (SCRAM-SHA-512) and an mTLS listener with certificates made for the run, ACLs
/// enforced, only `User:admin` (and the broker itself) a super user.
pub struct SecuredBroker {
    child: Mutex<Option<Child>>,
    dir: tempfile::TempDir,
    sasl_port: u16,
    tls_port: u16,
    oauth_port: u16,
    passwords: std::collections::BTreeMap<String, String>,
}

impl SecuredBroker {
    /// With SCRAM users `users` (and `admin`), and client certificates for `tls_clients`.
    pub fn start(users: &[&str], tls_clients: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(users, tls_clients, None)
    }

    /// The same, and with `oauth_jwks` (a JWKS URL) an OAUTHBEARER listener validating JWTs
    /// against those keys, audience `kafka`.
    pub fn start_with(users: &[&str], tls_clients: &[&str], oauth_jwks: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("gridsync-kafka-secure-").tempdir()?;
        let passwords: std::collections::BTreeMap<String, String> = std::iter::once("admin")
            .chain(users.iter().copied())
            .map(|u| {
                use std::hash::{BuildHasher, Hasher};
                let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
                (u.to_owned(), format!("{u}-{random:016x}"))
            })
            .collect();
        let scram: Vec<String> = passwords.iter().map(|(u, p)| format!("{u}={p}")).collect();
        let (sasl_port, tls_port, controller_port, oauth_port) = (free_port(), free_port(), free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("kafka.log"))?;
        let mut command = Command::new("bash");
        if let Some(jwks) = oauth_jwks {
            command.env("GRIDSYNC_OAUTH_JWKS_URL", jwks).env("GRIDSYNC_OAUTH_PORT", oauth_port.to_string());
        }
        let child = command
            .arg(workspace_root().join("deploy/local-broker.sh"))
            .arg("serve-secure")
            .arg(dir.path().join("broker"))
            .args([sasl_port, tls_port, controller_port].map(|p| p.to_string()))
            .env("GRIDSYNC_SCRAM_USERS", scram.join(" "))
            .env("GRIDSYNC_TLS_CLIENTS", tls_clients.join(" "))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the secured Kafka (deploy/local-broker.sh serve-secure)")?;
        let broker = SecuredBroker { child: Mutex::new(Some(child)), dir, sasl_port, tls_port, oauth_port, passwords };
        broker.wait_ready(Duration::from_secs(120))?;
        Ok(broker)
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut config = ClientConfig::new();
        for (key, value) in self.sasl("admin") {
            config.set(key, value);
        }
        // The script makes the certificates first: a client needs the CA's.
        let mut producer: Option<BaseProducer> = None;
        loop {
            if producer.is_none() && Path::new(&self.tls_file("ca.pem")).is_file() {
                producer = Some(config.create()?);
            }
            if let Some(status) =
                self.child.lock().unwrap_or_else(|e| e.into_inner()).as_mut().and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("the secured Kafka exited ({status}); its log: {}", self.dir.path().join("kafka.log").display());
            }
            let metadata = producer.as_ref().map(|p| p.client().fetch_metadata(None, Duration::from_secs(2)));
            if metadata.is_some_and(|m| m.is_ok_and(|m| !m.brokers().is_empty())) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("the secured Kafka is not ready after {timeout:?}; log in {}", self.dir.path().display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn tls_file(&self, name: &str) -> String {
        self.dir.path().join("broker/tls").join(name).display().to_string()
    }

    /// librdkafka settings for SCRAM user `user` on the SASL_SSL listener.
    pub fn sasl(&self, user: &str) -> Vec<(String, String)> {
        let password = self.passwords.get(user).cloned().unwrap_or_default();
        [
            ("bootstrap.servers", format!("127.0.0.1:{}", self.sasl_port)),
            ("security.protocol", "SASL_SSL".to_owned()),
            ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
            ("sasl.username", user.to_owned()),
            ("sasl.password", password),
            ("ssl.ca.location", self.tls_file("ca.pem")),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into()
    }

    /// librdkafka settings for the client certificate of `client` on the mTLS listener.
    pub fn tls(&self, client: &str) -> Vec<(String, String)> {
        [
            ("bootstrap.servers", format!("127.0.0.1:{}", self.tls_port)),
            ("security.protocol", "SSL".to_owned()),
            ("ssl.ca.location", self.tls_file("ca.pem")),
            ("ssl.certificate.location", self.tls_file(&format!("{client}.crt"))),
            ("ssl.key.location", self.tls_file(&format!("{client}.key"))),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into()
    }

    /// librdkafka settings for OAUTHBEARER (OIDC client credentials at `token_url`) on the
    /// OAUTHBEARER listener.
    pub fn oauth(&self, client_id: &str, secret: &str, token_url: &str) -> Vec<(String, String)> {
        [
            ("bootstrap.servers", format!("127.0.0.1:{}", self.oauth_port)),
            ("security.protocol", "SASL_SSL".to_owned()),
            ("sasl.mechanism", "OAUTHBEARER".to_owned()),
            ("sasl.oauthbearer.method", "oidc".to_owned()),
            ("sasl.oauthbearer.client.id", client_id.to_owned()),
            ("sasl.oauthbearer.client.secret", secret.to_owned()),
            ("sasl.oauthbearer.token.endpoint.url", token_url.to_owned()),
            ("ssl.ca.location", self.tls_file("ca.pem")),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into()
    }

    /// `settings` as a gridsync binary's command line: `--brokers` and `--kafka-option`s.
    pub fn args(settings: &[(String, String)]) -> Vec<String> {
        settings
            .iter()
            .flat_map(|(key, value)| match key.as_str() {
                "bootstrap.servers" => ["--brokers".to_owned(), value.clone()],
                _ => ["--kafka-option".to_owned(), format!("{key}={value}")],
            })
            .collect()
    }
}

impl Drop for SecuredBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An Ed25519 signing key of the test's own and its public half as a JWK (`kid`), for the local
/// token issuers the tests start (OpenID Connect for the audit view, OAUTHBEARER for Kafka).
pub fn ed25519_key(kid: &str) -> anyhow::Result<(jsonwebtoken::EncodingKey, serde_json::Value)> {
    use base64::Engine;
    use ring::signature::KeyPair;
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("generating an Ed25519 key"))?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("reading the Ed25519 key"))?;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
    Ok((jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()), jwk))
}

/// The environment the pipeline's binaries run with in a test: the mailbox and stores in `state`,
/// the partners of `deploy/partners.toml`, and the Amplience hub of the amp-sim at `amp_sim`
/// (hub `hub_id`, client `gridsync`). `binary` names its own flow store.
pub fn pipeline_env(state: &Path, binary: &str, amp_sim: &str, hub_id: &str) -> Vec<(&'static str, String)> {
    let sqlite = |file: &str| format!("sqlite://{}", state.join(file).display());
    vec![
        ("GRIDSYNC_TG_MAILBOX_DIR", state.join("mailbox").display().to_string()),
        ("GRIDSYNC_TG_STORE_URL", sqlite("tg.db")),
        ("GRIDSYNC_FLOW_STORE_URL", sqlite(&format!("{binary}.db"))),
        ("GRIDSYNC_AUDIT_STORE_URL", sqlite("audit.db")),
        ("GRIDSYNC_AUDIT_LISTEN", format!("127.0.0.1:{}", free_port())),
        ("GRIDSYNC_PARTNERS_FILE", workspace_root().join("deploy/partners.toml").display().to_string()),
        ("GRIDSYNC_AMPLIENCE_API_URL", format!("{amp_sim}/v2/content")),
        ("GRIDSYNC_AMPLIENCE_TOKEN_URL", format!("{amp_sim}/oauth/token")),
        ("GRIDSYNC_AMPLIENCE_HUB_ID", hub_id.to_owned()),
        ("GRIDSYNC_AMPLIENCE_CLIENT_ID", "gridsync".to_owned()),
        ("GRIDSYNC_AMPLIENCE_CLIENT_SECRET", "gridsync-secret".to_owned()),
    ]
}

/// The URL of a fresh schema on the test PostgreSQL server (127.0.0.1:5432, started by
/// deploy/test.sh; `GRIDSYNC_TEST_POSTGRES_URL` overrides).
pub async fn postgres_schema() -> anyhow::Result<String> {
    let base = std::env::var("GRIDSYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let schema = format!("t_{}_{nanos}", std::process::id());
    let admin = gridsync_store::Store::connect(&base).await?;
    admin.execute_unchecked(&format!("CREATE SCHEMA {schema}")).await?;
    Ok(format!("{base}?options=-c%20search_path%3D{schema}"))
}
