//! The whole pipeline for a flow's end-to-end test: a broker, both simulators
//! (amp-sim with its approved templates, sending signed webhooks; tg-sim with
//! Lens and the partner that picks up outbound files and answers them), both
//! producers as real processes, and flow consumers started on demand. Time is
//! a file the consumers read (`--clock-file`), so a test moves it on.

#![allow(dead_code)] // each test file uses its own part of it

pub mod browser;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use gridsync_amp_sim::{Client, SimConfig};
use gridsync_amplience::{ManagementClient, NewContentItem};
use gridsync_schemas::{codec, events::DeliveryPerformed, Event, EventType};
use gridsync_tests::{free_port, metric_value, payload, poll_until_blocking, read_all, workspace_binary, Pipeline};
use gridsync_tg_sim::partner::{self, PartnerConfig};
use nix::{sys::signal, unistd::Pid};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

const WEBHOOK_SECRET: &str = "flow-test-webhook-secret";
pub const FINANCE: (&str, &str) = ("finance.user", "finance-secret");

pub struct World {
    pub pipeline: Pipeline,
    pub amp: gridsync_amp_sim::Simulator,
    pub hub_id: String,
    pub tg: gridsync_tg_sim::Simulator,
    pub dir: tempfile::TempDir,
    pub mailbox: PathBuf,
    pub clock: PathBuf,
    producers: Vec<Child>,
    /// The consumers started on demand (their `Child` is the test's): killed with the world if
    /// a failed test left them running.
    consumers: std::sync::Mutex<Vec<(u32, PathBuf)>>,
    partner: CancellationToken,
    _stop: DropGuard,
}

impl World {
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, true).await
    }

    /// The world without its producers (and without the hub's webhook to amp-producer): for a
    /// test that publishes its events itself, or runs a producer of its own.
    pub async fn without_producers(name: &str) -> Self {
        Self::start_with(name, false).await
    }

    async fn start_with(name: &str, producers: bool) -> Self {
        let pipeline = Pipeline::start(name, None).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mailbox = dir.path().join("mailbox");
        for sub in ["inbound", "outbound"] {
            std::fs::create_dir_all(mailbox.join(sub)).unwrap();
        }
        let stop = CancellationToken::new();
        let listen = free_port();
        let amp_config = SimConfig {
            clients: vec![
                Client { id: "gridsync".into(), secret: "gridsync-secret".into() },
                Client { id: FINANCE.0.into(), secret: FINANCE.1.into() },
            ],
            ..SimConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let amp = gridsync_amp_sim::Simulator::start(amp_config.clone(), listener, stop.clone()).await.unwrap();
        // An empty hub, set up as a user sets theirs up: content types, templates, the webhook.
        let webhook_url = format!("http://127.0.0.1:{listen}/webhooks/amplience");
        let hub = (&amp.url(), &amp_config.hub_id, &amp_config.repositories);
        let webhook = producers.then_some((webhook_url.as_str(), WEBHOOK_SECRET));
        gridsync_tests::set_up_hub(hub.0, hub.1, hub.2, webhook).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tg = gridsync_tg_sim::Simulator::start(gridsync_tg_sim::SimConfig::default(), listener, stop.clone())
            .await
            .unwrap();
        let partner = PartnerConfig {
            outbound: mailbox.join("outbound"),
            inbound: mailbox.join("inbound"),
            poll: Duration::from_millis(100),
        };
        let partner_stop = stop.child_token();
        tokio::spawn(partner::run(partner, tg.ledger.clone(), partner_stop.clone()));
        let clock = dir.path().join("clock");
        let mut world = World {
            pipeline,
            amp,
            hub_id: amp_config.hub_id.clone(),
            tg,
            dir,
            mailbox,
            clock,
            producers: Vec::new(),
            consumers: std::sync::Mutex::default(),
            partner: partner_stop,
            _stop: stop.drop_guard(),
        };
        if !producers {
            return world;
        }
        let (pipeline, amp, tg, dir, mailbox) = (&world.pipeline, &world.amp, &world.tg, &world.dir, &world.mailbox);
        let log = |name: &str| std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        let kafka = [
            "--brokers".to_owned(),
            pipeline.broker.brokers(),
            "--topic-prefix".into(),
            pipeline.kafka.topic_prefix.clone(),
        ];
        let amp_producer = Command::new(workspace_binary("amp-producer"))
            .args(&kafka)
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--listen", &format!("127.0.0.1:{listen}")])
            .args(["--amplience-delivery-url", &amp.url()])
            .args(["--amplience-api-url", &format!("{}/v2/content", amp.url())])
            .args(["--amplience-token-url", &format!("{}/oauth/token", amp.url())])
            .args(["--amplience-hub-id", &world.hub_id, "--amplience-client-id", "gridsync"])
            .arg(format!("--store-url=sqlite://{}", dir.path().join("amp-producer.db").display()))
            .env("GRIDSYNC_AMP_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("GRIDSYNC_AMPLIENCE_CLIENT_SECRET", "gridsync-secret")
            .stdout(Stdio::null())
            .stderr(log("amp-producer"))
            .spawn()
            .unwrap();
        let tg_producer = Command::new(workspace_binary("tg-producer"))
            .args(&kafka)
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--poll-ms", "100"])
            .args(["--lens-url", &tg.url(), "--lens-client-id", "gridsync", "--lens-poll-ms", "200"])
            .env("GRIDSYNC_LENS_CLIENT_SECRET", "gridsync-secret")
            .arg("--mailbox-dir")
            .arg(mailbox)
            .arg(format!("--store-url=sqlite://{}", dir.path().join("tg-producer.db").display()))
            .stdout(Stdio::null())
            .stderr(log("tg-producer"))
            .spawn()
            .unwrap();
        world.producers = vec![amp_producer, tg_producer];
        world
    }

    /// The trading partner stops picking up and answering what gridsync sends.
    pub fn partner_goes_silent(&self) {
        self.partner.cancel();
    }

    /// Files waiting in the outbound mailbox whose names start with `prefix`.
    pub fn waiting_outbound(&self, prefix: &str) -> Vec<PathBuf> {
        files_in(&self.mailbox.join("outbound"), prefix)
    }

    /// Sets the flows' clock (RFC 3339).
    pub fn set_clock(&self, at: &str) {
        let temp = self.clock.with_extension("part");
        std::fs::write(&temp, at).unwrap();
        std::fs::rename(&temp, &self.clock).unwrap();
    }

    /// The SQLite store every instance of the flow consumer `binary` shares.
    pub fn store_file(&self, binary: &str) -> PathBuf {
        self.dir.path().join(format!("{binary}.db"))
    }

    /// Starts the flow consumer `binary`, logging to `<name>.log`; returns it with its metrics URL.
    pub fn consumer(&self, binary: &str, name: &str, extra: &[&str]) -> (Child, String) {
        let partners = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/partners.toml");
        let mut flow = vec![
            format!("--store-url=sqlite://{}", self.store_file(binary).display()),
            format!("--partners={}", partners.display()),
            format!("--clock-file={}", self.clock.display()),
            format!("--amplience-api-url={}/v2/content", self.amp.url()),
            format!("--amplience-token-url={}/oauth/token", self.amp.url()),
            format!("--amplience-hub-id={}", self.hub_id),
        ];
        flow.extend(
            ["--timer-tick-ms=200", "--claim-lease-ms=8000", "--retry-max=1000", "--amplience-client-id=gridsync"]
                .map(String::from),
        );
        flow.push("--amplience-max-backoff-ms=500".into());
        flow.extend(extra.iter().map(|e| (*e).to_owned()));
        self.spawn(binary, name, &flow)
    }

    /// Starts an audit consumer recording into `store_url`, its view on `listen`; returns it
    /// with its metrics URL.
    pub fn audit(&self, name: &str, store_url: &str, listen: u16) -> (Child, String) {
        self.audit_with(name, store_url, listen, &[])
    }

    /// [`Self::audit`] with more flags (tokens, allowed hosts).
    pub fn audit_with(&self, name: &str, store_url: &str, listen: u16, extra: &[String]) -> (Child, String) {
        let mut args = vec![format!("--audit-store-url={store_url}"), format!("--listen=127.0.0.1:{listen}")];
        args.extend_from_slice(extra);
        self.spawn("audit-consumer", name, &args)
    }

    /// Starts the consumer `binary` with `args` on the test's broker, logging to `<name>.log`.
    fn spawn(&self, binary: &str, name: &str, args: &[String]) -> (Child, String) {
        let metrics = free_port();
        let child = Command::new(workspace_binary(binary))
            .args(["--brokers", &self.pipeline.broker.brokers(), "--topic-prefix", &self.pipeline.kafka.topic_prefix])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(args)
            .env("GRIDSYNC_AMPLIENCE_CLIENT_SECRET", "gridsync-secret")
            // A killed member leaves the group after 6 s instead of 45.
            .env("GRIDSYNC_KAFKA_SESSION_TIMEOUT_MS", "6000")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap();
        self.consumers.lock().unwrap().push((child.id(), workspace_binary(binary)));
        (child, format!("http://127.0.0.1:{metrics}/metrics"))
    }

    /// `gridsync <args>` against the test's broker and topics.
    pub fn gridsync(&self, args: &[&str]) -> std::process::Output {
        Command::new(workspace_binary("gridsync"))
            .args(args)
            .args(["--brokers", &self.pipeline.broker.brokers(), "--topic-prefix", &self.pipeline.kafka.topic_prefix])
            .output()
            .unwrap()
    }

    /// How many records the topics of the consumer `name` hold.
    pub fn records_on_topics(&self, name: &str) -> usize {
        let catalog = gridsync_schemas::catalog::catalog().unwrap().with_prefix(&self.pipeline.kafka.topic_prefix);
        let topics = &catalog.consumer(name).unwrap().topics;
        topics
            .iter()
            .map(|t| read_all(&self.pipeline.broker.brokers(), t, Duration::from_secs(30)).unwrap().len())
            .sum()
    }

    /// Every item gridsync made in amp-sim, whole, by id.
    pub async fn all_items(&self) -> Vec<Value> {
        let mut items = self.items("gridsync/").await;
        items.sort_by_key(|i| i["item"]["id"].as_str().unwrap_or_default().to_owned());
        items
    }

    /// `gridsync replay <name> --to-earliest` on the stopped consumer, then the consumer
    /// started again and waited for until it has processed every record of its topics again.
    pub async fn replayed(&self, binary: &str, name: &str, extra: &[&str]) -> Child {
        let out = self.gridsync(&["replay", name, "--to-earliest"]);
        assert!(out.status.success(), "replay {name}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("records will be processed again"), "{out:?}");
        let records = self.records_on_topics(name);
        let (child, metrics) = self.consumer(binary, &format!("{name}-replayed"), extra);
        let processed = || gridsync_tests::metric_sum(&metrics, "gridsync_records_processed_total", "");
        let processed = gridsync_tests::poll_until(Duration::from_secs(120), processed, |n| *n >= records as f64).await;
        if processed >= records as f64 {
            return child;
        }
        panic!("{name} processed {processed} of {records} records again\n{}", self.logs());
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Drops a file into the inbound mailbox, whole (written aside, then renamed).
    pub fn drop_inbound(&self, name: &str, content: &[u8]) {
        let temp = self.mailbox.join(format!("inbound/{name}.part"));
        std::fs::write(&temp, content).unwrap();
        std::fs::rename(&temp, self.mailbox.join("inbound").join(name)).unwrap();
    }

    /// Files the partner picked up from the outbound mailbox whose names start with `prefix`.
    pub fn picked_up(&self, prefix: &str) -> Vec<PathBuf> {
        files_in(&self.mailbox.join("outbound/.picked-up"), prefix)
    }

    /// Items whose delivery key starts with `prefix`, as amp-sim holds them.
    pub async fn items(&self, prefix: &str) -> Vec<Value> {
        sim_items(&self.amp.url(), prefix).await
    }

    /// Waits (up to a minute) until the items under `prefix` satisfy `done`; returns them.
    pub async fn items_until(&self, prefix: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let items =
            gridsync_tests::poll_until(Duration::from_secs(60), || self.items(prefix), |items| done(items)).await;
        if done(&items) {
            return items;
        }
        panic!("{what}: never came; items under {prefix}: {items:#?}\n{}", self.logs());
    }

    /// The end of every process's log, for a failure's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.sort();
        for path in names.iter().filter(|p| p.extension().is_some_and(|e| e == "log")) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} (last 30 lines)\n", path.display()));
            out.push_str(&lines[lines.len().saturating_sub(30)..].join("\n"));
            out.push('\n');
        }
        out
    }

    /// A Management API client acting as the finance user.
    pub fn finance(&self) -> ManagementClient {
        client_as(&self.amp.url(), &self.hub_id, FINANCE)
    }

    /// Records `fields` as a content item of `schema` and moves it to `state`, as a person would.
    pub async fn record_in_amplience(&self, label: &str, schema: &str, fields: Value, state: &str) {
        let finance = self.finance();
        let item = NewContentItem {
            label: label.into(),
            schema: schema.into(),
            delivery_key: None,
            folder_id: None,
            locale: None,
            fields: fields.as_object().cloned().unwrap(),
        };
        let created = finance.create_item(&SimConfig::default().repositories[0], &item).await.unwrap();
        finance.assign_workflow_state(&created.id, state).await.unwrap();
    }

    /// Finance records a payment of `amount` USD in amp-sim: the billing flow's 820.
    pub async fn record_payment(&self, partner: &str, invoice: &str, reference: &str, amount: &str, paid_at: &str) {
        self.record_in_amplience(
            &format!("Payment {invoice}"),
            "https://gridsync.example/schemas/payment-confirmation.json",
            serde_json::json!({ "partnerId": partner, "invoiceNumber": invoice, "paymentReference": reference,
                                "amount": amount, "currency": "USD", "paidAt": paid_at }),
            "Payment confirmed",
        )
        .await;
    }

    /// The billing consumer's arguments for its documents: written into this world's outbound
    /// mailbox, numbered in tg-producer's store (as deployed).
    pub fn billing_outbound(&self) -> [String; 2] {
        [
            format!("--mailbox-dir={}", self.mailbox.display()),
            format!("--outbound-store-url=sqlite://{}", self.dir.path().join("tg-producer.db").display()),
        ]
    }

    /// The DeliveryPerformed events on the deliveries topic, read until `done` holds for them.
    pub fn deliveries_until(&self, done: impl Fn(&[DeliveryPerformed]) -> bool) -> Vec<DeliveryPerformed> {
        let only = |events: &[Event]| -> Vec<DeliveryPerformed> {
            events
                .iter()
                .filter_map(|e| match e {
                    Event::DeliveryPerformed(d) => Some(d.clone()),
                    _ => None,
                })
                .collect()
        };
        only(&self.events_until(EventType::DeliveryPerformed, |events| done(&only(events))))
    }

    /// The events of `event_type` on its topic, read until `done` holds for them.
    pub fn events_until(&self, event_type: EventType, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let codec = codec().unwrap();
        let topic = self.pipeline.topic(event_type);
        // Every record the topic holds at each look (its watermarks say how many), until `done`
        // or a minute has passed: a busy machine slows the pipeline, never the count read.
        let read = || -> Vec<Event> {
            read_all(&self.pipeline.broker.brokers(), topic, Duration::from_secs(30))
                .unwrap()
                .iter()
                .map(|m| codec.decode(payload(m)).unwrap().event)
                .filter(|e| e.event_type() == event_type)
                .collect()
        };
        let events = poll_until_blocking(Duration::from_secs(60), read, |events| done(events));
        if done(&events) {
            return events;
        }
        // One line per event (the whole events would hide the logs that say why).
        let seen: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::DeliveryPerformed(d) => {
                    format!("{} by {}: {} ({:?})", d.action, d.consumer, d.idempotency_key, d.outcome)
                }
                other => format!("{} {}", other.event_type().name(), other.envelope().business_key),
            })
            .collect();
        panic!("the {} events never got there: {seen:#?}\n{}", event_type.name(), self.logs());
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for child in &mut self.producers {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Only a process that is still one of ours: a stopped consumer's id may be reused.
        for (pid, binary) in self.consumers.lock().map(|pids| pids.clone()).unwrap_or_default() {
            let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if command.starts_with(binary.as_os_str().as_encoded_bytes()) {
                let _ = signal::kill(Pid::from_raw(pid as i32), signal::Signal::SIGKILL);
            }
        }
    }
}

/// The files in `dir` whose names start with `prefix` (checksums aside), by name.
fn files_in(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    name.starts_with(prefix) && !name.ends_with(".sha256")
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Items whose delivery key starts with `prefix`, as the amp-sim at `url` holds them.
pub async fn sim_items(url: &str, prefix: &str) -> Vec<Value> {
    let answer: Value = reqwest::get(format!("{url}/__sim/items?prefix={prefix}")).await.unwrap().json().await.unwrap();
    answer["items"].as_array().cloned().unwrap_or_default()
}

/// A Management API client of the amp-sim at `url`, acting as `(client id, secret)`.
pub fn client_as(url: &str, hub_id: &str, who: (&str, &str)) -> ManagementClient {
    gridsync_tests::amp_sim_client(url, hub_id, who).unwrap()
}

/// SIGTERM, then waits (up to 30 s) for a clean exit.
pub async fn stop(mut child: Child) {
    let _ = signal::kill(Pid::from_raw(child.id() as i32), signal::Signal::SIGTERM);
    if !gridsync_tests::wait_until(Duration::from_secs(30), || child.try_wait().unwrap().is_some()).await {
        let _ = child.kill();
    }
}

/// SIGKILL: no goodbye, no offsets committed.
pub fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A gauge or counter of a running binary (0 when absent).
pub async fn metric(url: &str, name: &str, labels: &str) -> f64 {
    metric_value(url, name, labels).await
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/edi/tests/fixtures").join(name)
}

/// An item's field at a JSON pointer, as text.
pub fn text(item: &Value, pointer: &str) -> String {
    item.pointer(pointer).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default()
}

/// The URL of a fresh schema on the test PostgreSQL server (see [`gridsync_tests::postgres_schema`]).
pub async fn postgres_schema_url() -> String {
    gridsync_tests::postgres_schema().await.expect("PostgreSQL on 127.0.0.1:5432 (deploy/test.sh starts it)")
}
