//! The Amplience producer end to end: the simulator's signed webhooks reach
//! the `amp-producer` binary over HTTP and become events on a real broker.
//! Needs `cargo test --workspace` (binaries).

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use gridsync_amp_sim::{Client, SimConfig, Simulator};
use gridsync_amplience::{
    management::ManagementArgs,
    webhook::{sign, SIGNATURE_HEADER},
    DeliveryKey, ManagementClient, NewContentItem, Secret,
};
use gridsync_schemas::{codec, events::Event, EventType};
use gridsync_tests::{
    free_port, is_ready, metric_value, payload, read_topic, wait_for, wait_for_some, workspace_binary, Broker, Pipeline,
};

mod common;
use common::postgres_schema_url;
use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};

const SECRET: &str = "whsec-test";
const PAYMENT: &str = "https://gridsync.example/schemas/payment-confirmation.json";
const CONTRACT: &str = "https://gridsync.example/schemas/contract.json";

struct Harness {
    pipeline: Pipeline,
    sim: Simulator,
    config: SimConfig,
    producer: Child,
    /// Where the producer listens and serves metrics, and its store: to start it again.
    ports: (u16, u16),
    store_url: String,
    webhook_url: String,
    metrics_url: String,
    dir: tempfile::TempDir,
    _stop_sim: tokio_util::sync::DropGuard,
}

impl Harness {
    async fn start(name: &str) -> Self {
        Self::start_with(Pipeline::start(name, None).await.unwrap()).await
    }

    /// On a broker of the test's own, which it may stop.
    async fn start_on_own_broker(name: &str) -> Self {
        let broker = std::sync::Arc::new(Broker::start().unwrap());
        Self::start_with(Pipeline::start_on(broker, name, None).await.unwrap()).await
    }

    async fn start_with(pipeline: Pipeline) -> Self {
        Self::start_with_store(pipeline, None).await
    }

    /// With the store at `store_url` (a file of its own when `None`).
    async fn start_with_store(pipeline: Pipeline, store_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store_url = store_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("amp.db").display()));
        let (listen, metrics) = (free_port(), free_port());
        let webhook_url = format!("http://127.0.0.1:{listen}/webhooks/amplience");
        let config = SimConfig {
            clients: vec![
                Client { id: "gridsync".into(), secret: "gridsync-secret".into() },
                Client { id: "finance.user".into(), secret: "finance-secret".into() },
            ],
            ..SimConfig::default()
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = Simulator::start(config.clone(), listener, stop.clone()).await.unwrap();
        let webhook = Some((webhook_url.as_str(), SECRET));
        gridsync_tests::set_up_hub(&sim.url(), &config.hub_id, &config.repositories, webhook).await.unwrap();
        let log = dir.path().join("producer.log");
        let producer = spawn_producer(&pipeline, &sim.url(), &config.hub_id, (listen, metrics), &store_url, &log);
        let harness = Harness {
            pipeline,
            sim,
            config,
            producer,
            ports: (listen, metrics),
            store_url,
            webhook_url,
            metrics_url: format!("http://127.0.0.1:{metrics}/metrics"),
            dir,
            _stop_sim: stop.drop_guard(),
        };
        let ready = wait_for(Duration::from_secs(30), || is_ready(&harness.metrics_url)).await;
        assert!(ready, "amp-producer not ready:\n{}", harness.log());
        harness
    }

    /// SIGKILLs the producer and starts it again on the same ports and store.
    fn kill_and_restart(&mut self) {
        self.producer.kill().unwrap();
        self.producer.wait().unwrap();
        let log = self.dir.path().join("producer.log");
        let (pipeline, sim_url, hub) = (&self.pipeline, self.sim.url(), &self.config.hub_id);
        self.producer = spawn_producer(pipeline, &sim_url, hub, self.ports, &self.store_url, &log);
    }

    /// Another replica on the same broker, simulator and `store_url`: its webhook URL.
    async fn replica(&self, store_url: &str) -> (Child, String) {
        let (listen, metrics) = (free_port(), free_port());
        let log = self.dir.path().join("replica.log");
        let mut child =
            spawn_producer(&self.pipeline, &self.sim.url(), &self.config.hub_id, (listen, metrics), store_url, &log);
        let metrics_url = format!("http://127.0.0.1:{metrics}/metrics");
        if wait_for(Duration::from_secs(30), || is_ready(&metrics_url)).await {
            return (child, format!("http://127.0.0.1:{listen}/webhooks/amplience"));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the replica is not ready:\n{}", std::fs::read_to_string(log).unwrap_or_default());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("producer.log")).unwrap_or_default()
    }

    /// A Management API client acting as `client_id`.
    fn client(&self, client_id: &str, secret: &str) -> ManagementClient {
        ManagementClient::new(&ManagementArgs {
            api_url: format!("{}/v2/content", self.sim.url()),
            token_url: format!("{}/oauth/token", self.sim.url()),
            hub_id: Some(self.config.hub_id.clone()),
            client_id: Some(client_id.into()),
            client_secret: Some(secret.into()),
            client_secret_file: None,
            requests_per_second: 0.0,
            publishes_per_minute: 600,
            timeout_ms: 5_000,
            max_attempts: 3,
            max_backoff_ms: 1_000,
        })
        .unwrap()
    }

    fn finance(&self) -> ManagementClient {
        self.client("finance.user", "finance-secret")
    }

    async fn webhook_log(&self) -> Vec<Value> {
        let log: Value =
            reqwest::get(format!("{}/__sim/webhooks", self.sim.url())).await.unwrap().json().await.unwrap();
        log.as_array().cloned().unwrap_or_default()
    }

    /// Waits until the simulator has finished `count` deliveries.
    async fn deliveries(&self, count: usize) -> Vec<Value> {
        let finished = wait_for_some(Duration::from_secs(30), || async {
            let log = self.webhook_log().await;
            (log.len() >= count).then_some(log)
        })
        .await;
        if let Some(log) = finished {
            return log;
        }
        panic!("{count} webhook deliveries did not finish: {:?}\n{}", self.webhook_log().await, self.log());
    }

    async fn redeliver(&self, id: &str) {
        let url = format!("{}/__sim/webhooks/{id}/redeliver", self.sim.url());
        assert_eq!(reqwest::Client::new().post(url).send().await.unwrap().status(), 202);
    }

    fn events(&self, event_type: EventType, at_least: usize, timeout: Duration) -> Vec<Event> {
        let topic = self.pipeline.topic(event_type);
        read_topic(&self.pipeline.broker.brokers(), topic, at_least, timeout)
            .unwrap()
            .iter()
            .map(|m| codec().unwrap().decode(payload(m)).unwrap().event)
            .collect()
    }

    async fn metric(&self, metric: &str, labels: &str) -> f64 {
        metric_value(&self.metrics_url, metric, labels).await
    }

    async fn post(&self, body: &[u8], signature: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new().post(&self.webhook_url).body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        request.send().await.unwrap()
    }
}

/// An amp-producer listening on `listen`, its metrics on `metrics`, its store at `store_url`.
fn spawn_producer(
    pipeline: &Pipeline,
    sim_url: &str,
    hub_id: &str,
    (listen, metrics): (u16, u16),
    store_url: &str,
    log: &std::path::Path,
) -> Child {
    Command::new(workspace_binary("amp-producer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}"), "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--publish-timeout-ms", "3000", "--amplience-delivery-url", sim_url])
        .args(["--amplience-api-url", &format!("{sim_url}/v2/content")])
        .args(["--amplience-token-url", &format!("{sim_url}/oauth/token")])
        .args(["--amplience-hub-id", hub_id, "--amplience-client-id", "gridsync"])
        .arg(format!("--store-url={store_url}"))
        .env("GRIDSYNC_AMP_WEBHOOK_SECRET", SECRET)
        .env("GRIDSYNC_AMPLIENCE_CLIENT_SECRET", "gridsync-secret")
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
        .spawn()
        .unwrap()
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.producer.kill();
        let _ = self.producer.wait();
    }
}

fn payment_item(invoice: &str) -> NewContentItem {
    let fields = json!({
        "partnerId": "ACME", "invoiceNumber": invoice, "paymentReference": format!("PAY-{invoice}"),
        "amount": "1250.50", "currency": "EUR", "paidAt": "2026-11-24T09:30:00Z", "note": "paid in full",
    });
    NewContentItem {
        label: format!("Payment {invoice}"),
        schema: PAYMENT.into(),
        delivery_key: None,
        folder_id: None,
        locale: None,
        fields: fields.as_object().unwrap().clone(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_webhook_delivered_three_times_becomes_exactly_one_event() {
    let h = Harness::start("amp-dedupe").await;
    let finance = h.finance();
    let repo = &h.config.repositories[0];
    let item = finance.create_item(repo, &payment_item("INV9001")).await.unwrap();
    finance.assign_workflow_state(&item.id, "Payment confirmed").await.unwrap();

    let first = h.deliveries(1).await;
    let id = first[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(first[0]["last_status"], 200, "{first:?}\n{}", h.log());
    h.redeliver(&id).await;
    h.redeliver(&id).await;
    let all = h.deliveries(3).await;
    assert!(all.iter().all(|d| d["id"] == id.as_str() && d["last_status"] == 200), "{all:?}");

    let events = h.events(EventType::PaymentConfirmed, 2, Duration::from_secs(5));
    assert_eq!(events.len(), 1, "one event for three deliveries");
    let Event::PaymentConfirmed(payment) = &events[0] else { panic!("{events:?}") };
    assert_eq!(
        (payment.invoice_number.as_str(), payment.payment_reference.as_str(), payment.amount.to_string().as_str()),
        ("INV9001", "PAY-INV9001", "1250.5")
    );
    let content = payment.envelope.amplience_content.as_ref().unwrap();
    assert_eq!((content.content_item_id.as_str(), content.version), (item.id.as_str(), 2));
    assert_eq!(h.metric("gridsync_amp_webhooks_total", r#"outcome="published""#).await, 1.0);
    assert_eq!(h.metric("gridsync_amp_webhooks_total", r#"outcome="duplicate""#).await, 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_unsigned_and_oversized_webhooks_are_refused_at_once_counted_and_sampled() {
    let h = Harness::start("amp-forged").await;
    let body =
        json!({"id": "forged-1", "name": "dynamic-content.content-item.workflow.updated", "payload": {}}).to_string();
    let forged = sign(body.as_bytes(), &Secret::new("guessed"));
    assert_eq!(h.post(body.as_bytes(), Some(&forged)).await.status(), 401);
    assert_eq!(h.post(body.as_bytes(), None).await.status(), 401);
    let huge = vec![b' '; 300 * 1024];
    assert_eq!(h.post(&huge, Some(&sign(&huge, &Secret::new(SECRET)))).await.status(), 413);
    let signed_garbage = b"{not json";
    assert_eq!(h.post(signed_garbage, Some(&sign(signed_garbage, &Secret::new(SECRET)))).await.status(), 400);

    // A flood of forged requests: each refused at once and counted; none written to Kafka, as
    // the one sample per address per window was kept already.
    let h = &h;
    let flood = (0..200).map(|i| {
        let body = json!({"id": format!("flood-{i}"), "name": "x", "payload": {}}).to_string();
        let forged = sign(body.as_bytes(), &Secret::new("guessed"));
        async move { h.post(body.as_bytes(), Some(&forged)).await.status() }
    });
    let statuses = futures::future::join_all(flood).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");

    assert_eq!(h.metric("gridsync_amp_webhooks_rejected_total", r#"reason="signature_mismatch""#).await, 201.0);
    assert_eq!(h.metric("gridsync_amp_webhooks_rejected_total", r#"reason="signature_missing""#).await, 1.0);
    assert_eq!(h.metric("gridsync_amp_webhooks_rejected_total", r#"reason="too_large""#).await, 1.0);
    assert_eq!(h.metric("gridsync_amp_webhooks_rejected_total", r#"reason="malformed""#).await, 1.0);
    assert_eq!(h.metric("gridsync_amp_rejected_samples_total", r#"outcome="kept""#).await, 1.0);
    assert_eq!(h.metric("gridsync_amp_rejected_samples_total", r#"outcome="dropped""#).await, 201.0);

    let dlq = h.pipeline.catalog.dead_letter_topic("amp-producer").unwrap().to_owned();
    let dead = read_topic(&h.pipeline.broker.brokers(), &dlq, 3, Duration::from_secs(5)).unwrap();
    assert_eq!(dead.len(), 2, "one refused sample from the address, and the malformed body, with their reasons");
    let header = |m: &rdkafka::message::OwnedMessage, key: &str| {
        m.headers()
            .and_then(|h| h.iter().find(|x| x.key == key)?.value.map(|v| String::from_utf8_lossy(v).into_owned()))
    };
    let class = |m| header(m, "__connect.errors.exception.class.name").unwrap_or_default();
    let mut classes: Vec<String> = dead.iter().map(class).collect();
    classes.sort();
    assert_eq!(classes, ["webhook.malformed", "webhook.signature_mismatch"]);
    let forged_record = dead.iter().find(|m| class(m) == "webhook.signature_mismatch").unwrap();
    assert_eq!(payload(forged_record), body.as_bytes());
    assert!(header(forged_record, "gridsync.webhook.remote").is_some_and(|r| r.starts_with("127.0.0.1:")));
    assert!(h.events(EventType::PaymentConfirmed, 1, Duration::from_secs(1)).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_amplience_refuses_make_webhooks_wait_with_503_not_quarantined() {
    let h = Harness::start("amp-credentials").await;
    let finance = h.finance();
    let item = finance.create_item(&h.config.repositories[0], &payment_item("INV9003")).await.unwrap();
    let changed = finance.get_item(&item.id).await.unwrap();
    let mut payload = serde_json::to_value(&changed).unwrap();
    payload["workflow"] = json!({ "state": finance.workflow_state_id("Payment confirmed").await.unwrap() });
    payload["lastModifiedBy"] = json!("finance.user");
    let body = json!({ "id": "delivery-credentials", "name": "dynamic-content.content-item.workflow.updated",
        "payload": payload })
    .to_string();
    let signature = sign(body.as_bytes(), &Secret::new(SECRET));

    // gridsync's client secret is revoked: the token endpoint refuses it (400), and the
    // producer's cached token has expired.
    let sim = reqwest::Client::new();
    let fault = json!({ "scope": "token", "status": 400, "count": 1000 });
    sim.post(format!("{}/__sim/faults", h.sim.url())).json(&fault).send().await.unwrap();
    sim.post(format!("{}/__sim/expire-tokens", h.sim.url())).send().await.unwrap();
    let refused = h.post(body.as_bytes(), Some(&signature)).await;
    assert_eq!(refused.status(), 503, "Amplience keeps it and sends it again\n{}", h.log());
    let answer: Value = refused.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("refused gridsync's credentials"), "{answer}");
    assert_eq!(h.metric("gridsync_amp_amplience_credentials_ok", "").await, 0.0);
    let ready = h.metrics_url.replace("/metrics", "/readyz");
    assert_eq!(reqwest::get(&ready).await.unwrap().status(), 503, "unready while refused");
    let dlq = h.pipeline.catalog.dead_letter_topic("amp-producer").unwrap().to_owned();
    assert!(read_topic(&h.pipeline.broker.brokers(), &dlq, 1, Duration::from_secs(2)).unwrap().is_empty());

    // Fixed: the same webhook, sent again, becomes its event, and the producer is ready again.
    sim.delete(format!("{}/__sim/faults", h.sim.url())).send().await.unwrap();
    let accepted = h.post(body.as_bytes(), Some(&signature)).await;
    assert_eq!(accepted.status(), 200, "{}", h.log());
    assert_eq!(accepted.json::<Value>().await.unwrap()["status"], "published");
    assert_eq!(h.metric("gridsync_amp_amplience_credentials_ok", "").await, 1.0);
    assert!(reqwest::get(&ready).await.unwrap().status().is_success());
    assert_eq!(h.events(EventType::PaymentConfirmed, 1, Duration::from_secs(10)).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_sharing_postgresql_publish_each_delivery_once_however_it_is_redelivered() {
    let store = postgres_schema_url().await;
    let h = Harness::start_with_store(Pipeline::start("amp-replicas", None).await.unwrap(), Some(store.clone())).await;
    let (mut replica, replica_url) = h.replica(&store).await;
    let finance = h.finance();
    let state = finance.workflow_state_id("Payment confirmed").await.unwrap();
    let mut deliveries = Vec::new();
    for n in 0..10 {
        let item =
            finance.create_item(&h.config.repositories[0], &payment_item(&format!("INV95{n:02}"))).await.unwrap();
        let mut payload = serde_json::to_value(finance.get_item(&item.id).await.unwrap()).unwrap();
        payload["workflow"] = json!({ "state": state });
        payload["lastModifiedBy"] = json!("finance.user");
        let body = json!({ "id": format!("replicated-{n}"), "name": "dynamic-content.content-item.workflow.updated",
            "payload": payload })
        .to_string();
        deliveries.push(body);
    }
    // Each delivery sent to both replicas at once, three times over (a load balancer's retries),
    // until both have answered 200.
    let client = reqwest::Client::new();
    let send = |url: String, body: String| {
        let client = client.clone();
        async move {
            let signature = sign(body.as_bytes(), &Secret::new(SECRET));
            let accepted = wait_for_some(Duration::from_secs(10), || async {
                let answer =
                    client.post(&url).header(SIGNATURE_HEADER, &signature).body(body.clone()).send().await.unwrap();
                if answer.status() == 200 {
                    return Some(
                        answer.json::<Value>().await.unwrap()["eventId"].as_str().unwrap_or_default().to_owned(),
                    );
                }
                assert_eq!(answer.status(), 503, "busy elsewhere is 503");
                None
            });
            accepted.await.expect("never accepted")
        }
    };
    let attempts = deliveries.iter().flat_map(|body| {
        (0..3).flat_map(|_| [send(h.webhook_url.clone(), body.clone()), send(replica_url.clone(), body.clone())])
    });
    let answered = futures::future::join_all(attempts).await;
    assert!(answered.iter().all(|id| !id.is_empty()), "{answered:?}");

    let events = h.events(EventType::PaymentConfirmed, 20, Duration::from_secs(10));
    let mut invoices: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::PaymentConfirmed(p) => p.invoice_number.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    invoices.sort();
    let expected: Vec<String> = (0..10).map(|n| format!("INV95{n:02}")).collect();
    assert_eq!(invoices, expected, "each delivery published once, by one replica");
    let _ = replica.kill();
    let _ = replica.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_while_kafka_is_down_gets_503_and_succeeds_on_redelivery() {
    let h = Harness::start_on_own_broker("amp-kafka-down").await;
    let finance = h.finance();
    let repo = h.config.repositories[0].clone();
    let item = finance.create_item(&repo, &payment_item("INV9002")).await.unwrap();

    h.pipeline.broker.stop();
    // Built as the simulator would send it, so the same bytes can be sent twice.
    let changed = finance.get_item(&item.id).await.unwrap();
    let mut payload = serde_json::to_value(&changed).unwrap();
    payload["workflow"] = json!({ "state": finance.workflow_state_id("Payment confirmed").await.unwrap() });
    payload["lastModifiedBy"] = json!("finance.user");
    let body = json!({ "id": "delivery-kafka-down", "name": "dynamic-content.content-item.workflow.updated",
        "payload": payload })
    .to_string();
    let signature = sign(body.as_bytes(), &Secret::new(SECRET));
    let refused = h.post(body.as_bytes(), Some(&signature)).await;
    assert_eq!(refused.status(), 503, "{}", h.log());
    assert_eq!(h.metric("gridsync_amp_webhooks_total", r#"outcome="unavailable""#).await, 1.0);

    h.pipeline.broker.start_again().unwrap();
    // Amplience sends it again until it is accepted. The refused attempt's
    // record may reach Kafka first: the redelivery then finds it and does not
    // publish a second one.
    let accepted = wait_for_some(Duration::from_secs(30), || async {
        let answer = h.post(body.as_bytes(), Some(&signature)).await;
        (answer.status() != 503).then_some(answer)
    });
    let accepted = accepted.await.unwrap_or_else(|| panic!("refused with 503 for 30 s:\n{}", h.log()));
    assert_eq!(accepted.status(), 200, "{}", h.log());
    let answer: Value = accepted.json().await.unwrap();
    assert!(answer["status"] == "published" || answer["status"] == "duplicate", "{answer}");
    let again = h.post(body.as_bytes(), Some(&signature)).await;
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");

    let events = h.events(EventType::PaymentConfirmed, 2, Duration::from_secs(8));
    assert_eq!(events.len(), 1, "one event however many attempts");
    assert_eq!(events[0].envelope().event_id, answer["eventId"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_content_approved_and_published_by_people_flows_and_gridsyncs_own_changes_do_not_loop() {
    let h = Harness::start("amp-content").await;
    let repo = h.config.repositories[0].clone();
    let contract = |key: &str| NewContentItem {
        label: "Master agreement 2027".into(),
        schema: CONTRACT.into(),
        delivery_key: Some(DeliveryKey::parse(key).unwrap()),
        folder_id: None,
        locale: Some("en-GB".into()),
        fields: json!({"title": "Master agreement 2027", "targetPartnerIds": ["ACME"], "clauses": ["1", "2"]})
            .as_object()
            .unwrap()
            .clone(),
    };
    // gridsync's own write: approved and published by the gridsync client.
    let own = h.client("gridsync", "gridsync-secret");
    let own_item = own.create_item(&repo, &contract("gridsync/revised/ACME/1")).await.unwrap();
    own.assign_workflow_state(&own_item.id, "Approved").await.unwrap();
    own.publish(&own_item.id).await.unwrap();
    // A person's: legal approves, then publishes.
    let legal = h.finance();
    let item = legal.create_item(&repo, &contract("contracts/acme/2027")).await.unwrap();
    legal.assign_workflow_state(&item.id, "Approved").await.unwrap();
    legal.publish(&item.id).await.unwrap();

    let log = h.deliveries(4).await;
    assert!(log.iter().all(|d| d["last_status"] == 200), "{log:?}\n{}", h.log());
    assert_eq!(h.metric("gridsync_amp_webhooks_ignored_total", r#"reason="own_change""#).await, 2.0);

    let events = h.events(EventType::PartnerContentApproved, 3, Duration::from_secs(8));
    assert_eq!(events.len(), 2, "approved and published, people's changes only: {events:?}");
    let Event::PartnerContentApproved(approved) = &events[0] else { panic!("{events:?}") };
    assert_eq!((approved.content.content_item_id.as_str(), approved.content.version), (item.id.as_str(), 2));
    assert_eq!(approved.workflow_state, "Approved");
    let Event::PartnerContentPublished(published) = &events[1] else { panic!("{events:?}") };
    assert_eq!(published.content.title, "Master agreement 2027");
    assert!(published.content.requires_read_confirmation);
    let body: Value = serde_json::from_str(published.content.body_json.as_deref().unwrap()).unwrap();
    assert_eq!(body["_meta"]["deliveryId"], item.id.as_str(), "the body as the Delivery API serves it");
    assert_eq!(
        published.envelope.amplience_content.as_ref().unwrap().delivery_key.as_deref(),
        Some("contracts/acme/2027")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_read_while_the_item_is_saved_and_published_again_keeps_its_version_and_body_together() {
    let h = Harness::start("amp-publish-race").await;
    let repo = h.config.repositories[0].clone();
    let legal = h.finance();
    let contract = NewContentItem {
        label: "Terms 2027".into(),
        schema: CONTRACT.into(),
        delivery_key: None,
        folder_id: None,
        locale: None,
        fields: json!({"title": "Terms 2027", "targetPartnerIds": ["ACME"], "clauses": ["30 days"]})
            .as_object()
            .unwrap()
            .clone(),
    };
    let item = legal.create_item(&repo, &contract).await.unwrap();
    // The producer's read of the published body is held up 2 s, and meanwhile legal saves and
    // publishes again: the body it then reads is the next version's.
    let faults = format!("{}/__sim/faults", h.sim.url());
    let http = reqwest::Client::new();
    let slow = json!({ "scope": "delivery", "delay_ms": 2000, "count": 1 });
    assert!(http.post(&faults).json(&slow).send().await.unwrap().status().is_success());
    legal.publish(&item.id).await.unwrap();
    let taken = wait_for(Duration::from_secs(30), || async {
        let queued: Vec<Value> = http.get(&faults).send().await.unwrap().json().await.unwrap();
        queued.is_empty()
    })
    .await;
    assert!(taken, "the producer never read the published body\n{}", h.log());
    let saved = legal.update_item(&item.id, |item| item.body["clauses"] = json!(["60 days"])).await.unwrap();
    legal.publish(&item.id).await.unwrap();

    // Each publish is one event, and each carries a version with that version's body: the
    // first, read across the second save, is read again whole.
    let events = h.events(EventType::PartnerContentPublished, 2, Duration::from_secs(30));
    let pairs: Vec<(i64, Value)> = events
        .iter()
        .map(|e| {
            let Event::PartnerContentPublished(p) = e else { panic!("{e:?}") };
            let body: Value = serde_json::from_str(p.content.body_json.as_deref().unwrap()).unwrap();
            (p.content.version, body["clauses"].clone())
        })
        .collect();
    assert_eq!(pairs, vec![(saved.version, json!(["60 days"])); 2], "{}", h.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edition_publishes_each_of_its_partner_content_items_once() {
    let h = Harness::start("amp-edition").await;
    let repo = h.config.repositories[0].clone();
    let legal = h.finance();
    let item = |label: &str, schema: &str, fields: Value| NewContentItem {
        label: label.into(),
        schema: schema.into(),
        delivery_key: None,
        folder_id: None,
        locale: None,
        fields: fields.as_object().unwrap().clone(),
    };
    let terms = "https://gridsync.example/schemas/trading-terms.json";
    let policy = "https://gridsync.example/schemas/policy-notice.json";
    let banner = "https://gridsync.example/schemas/homepage-banner.json";
    // Marketing's own content type, which gridsync does not map: registered in the hub as theirs.
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#", "$id": banner, "title": "Homepage banner",
        "allOf": [{ "$ref": "http://bigcontent.io/cms/schema/v1/core#/definitions/content" }],
        "type": "object", "properties": { "title": { "type": "string" } },
    });
    legal.create_content_type_schema(banner, &schema.to_string()).await.unwrap();
    let registered = legal.register_content_type(banner, &json!({ "label": "Homepage banner" })).await.unwrap();
    legal.assign_content_type(&repo, &registered.id).await.unwrap();
    let mut ids = Vec::new();
    for (label, schema) in [("Trading terms 2027", terms), ("Returns policy", policy), ("Winter banner", banner)] {
        let fields = json!({"title": label, "targetPartnerIds": ["ACME", "GLOBEX"]});
        ids.push(legal.create_item(&repo, &item(label, schema, fields)).await.unwrap().id);
    }
    let edition = json!({"name": "January 2027 release", "items": ids, "by": "legal.user"});
    let response = reqwest::Client::new().post(format!("{}/__sim/editions", h.sim.url())).json(&edition).send();
    assert_eq!(response.await.unwrap().status(), 201);

    let log = h.deliveries(1).await;
    assert_eq!(
        (log[0]["name"].as_str(), log[0]["last_status"].as_u64()),
        (Some("dynamic-content.edition.published"), Some(200)),
        "{log:?}\n{}",
        h.log()
    );
    let events = h.events(EventType::PartnerContentPublished, 3, Duration::from_secs(8));
    // Each item is keyed by its own business key, so the two may sit in different partitions.
    let mut published: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::PartnerContentPublished(p) => Some((p.content.content_item_id.clone(), p.content.title.clone())),
            _ => None,
        })
        .collect();
    published.sort();
    let mut expected =
        vec![(ids[0].clone(), "Trading terms 2027".to_owned()), (ids[1].clone(), "Returns policy".to_owned())];
    expected.sort();
    assert_eq!(published, expected, "the banner is not partner content");
    let edition_id = |e: &Event| match e {
        Event::PartnerContentPublished(p) => p.snapshot_id.clone(),
        _ => None,
    };
    assert!(edition_id(&events[0]).is_some(), "the edition is recorded as the snapshot");
    assert_eq!(edition_id(&events[0]), edition_id(&events[1]));

    // Sent again, the edition publishes nothing more.
    let id = log[0]["id"].as_str().unwrap().to_owned();
    h.redeliver(&id).await;
    let log = h.deliveries(2).await;
    assert_eq!(log.len(), 2);
    assert_eq!(h.metric("gridsync_amp_webhooks_total", r#"outcome="duplicate""#).await, 1.0);
    assert_eq!(h.events(EventType::PartnerContentPublished, 3, Duration::from_secs(3)).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn amp_producer_sigkilled_again_and_again_mid_burst_publishes_every_webhook_once_by_id() {
    let mut h = Harness::start("amp-kill-loop").await;
    let finance = h.finance();
    let state = finance.workflow_state_id("Payment confirmed").await.unwrap();
    const WEBHOOKS: usize = 60;
    let mut bodies = Vec::new();
    for n in 0..WEBHOOKS {
        let item =
            finance.create_item(&h.config.repositories[0], &payment_item(&format!("INV77{n:03}"))).await.unwrap();
        let mut payload = serde_json::to_value(finance.get_item(&item.id).await.unwrap()).unwrap();
        payload["workflow"] = json!({ "state": state });
        payload["lastModifiedBy"] = json!("finance.user");
        let body = json!({ "id": format!("burst-{n}"), "name": "dynamic-content.content-item.workflow.updated",
            "payload": payload })
        .to_string();
        bodies.push(body);
    }
    // As Amplience does: each delivery sent until it is answered 200, whatever happens between
    // (a refused connection, a reset, a 503 while the producer restarts).
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let url = h.webhook_url.clone();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (client, url, answered) = (client.clone(), url.clone(), answered.clone());
            tokio::spawn(async move {
                let signature = sign(body.as_bytes(), &Secret::new(SECRET));
                let accepted = wait_for(Duration::from_secs(300), || async {
                    let sent = client.post(&url).header(SIGNATURE_HEADER, &signature).body(body.clone()).send().await;
                    sent.is_ok_and(|answer| answer.status() == 200)
                });
                if accepted.await {
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Killed whenever some more of the burst has been answered, three times.
    for round in 1..=3 {
        let target = round * WEBHOOKS / 5;
        let reached = gridsync_tests::wait_until(Duration::from_secs(60), || {
            answered.load(std::sync::atomic::Ordering::Relaxed) >= target
        })
        .await;
        assert!(
            reached,
            "round {round}: {} answered\n{}",
            answered.load(std::sync::atomic::Ordering::Relaxed),
            h.log()
        );
        h.kill_and_restart();
    }
    for sender in senders {
        let done = tokio::time::timeout(Duration::from_secs(120), sender).await;
        let count = answered.load(std::sync::atomic::Ordering::Relaxed);
        assert!(done.is_ok(), "{count} of {WEBHOOKS} answered 200\n{}", h.log());
    }

    // Every webhook's event, each under one id; a repeat only under the same id.
    let topic = h.pipeline.topic(EventType::PaymentConfirmed);
    let records = gridsync_tests::read_all(&h.pipeline.broker.brokers(), topic, Duration::from_secs(30)).unwrap();
    let mut ids_by_invoice: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for record in &records {
        let Event::PaymentConfirmed(payment) = codec().unwrap().decode(payload(record)).unwrap().event else {
            panic!()
        };
        ids_by_invoice.entry(payment.invoice_number).or_default().insert(payment.envelope.event_id);
    }
    let expected: Vec<String> = (0..WEBHOOKS).map(|n| format!("INV77{n:03}")).collect();
    assert_eq!(
        ids_by_invoice.keys().cloned().collect::<Vec<_>>(),
        expected,
        "every webhook, nothing else\n{}",
        h.log()
    );
    assert!(ids_by_invoice.values().all(|ids| ids.len() == 1), "one event id per webhook: {ids_by_invoice:?}");
    eprintln!("{} records for {WEBHOOKS} webhooks over 3 kills", records.len());
}
