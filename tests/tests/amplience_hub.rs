//! A hub as a new user meets it: amp-sim starts empty and refuses what a real
//! hub refuses (items of unregistered or unassigned content types, bodies their
//! schema rejects, unknown request fields, taken delivery keys, stale versions,
//! requests past its rate); `gridsync amplience setup` prepares it once
//! (`--dry-run` changes nothing, a second run finds nothing to do);
//! `gridsync amplience check` fails naming what is missing until then, and a
//! consumer stays unready, saying why, until the hub has what its flow needs.
//! Needs `cargo test --workspace` (binaries).

mod common;

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use gridsync_amp_sim::{SimConfig, Simulator};
use gridsync_amplience::{DeliveryKey, ManagementArgs, ManagementClient, NewContentItem};
use gridsync_tests::{free_port, wait_for, workspace_binary, Pipeline};
use serde_json::{json, Value};

const NOTIFICATION: &str = "https://schemas.gridsync.dev/notification.json";

struct Hub {
    sim: Simulator,
    config: SimConfig,
    partners: std::path::PathBuf,
    _stop: tokio_util::sync::DropGuard,
}

impl Hub {
    async fn start(config: SimConfig) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = Simulator::start(config.clone(), listener, stop.clone()).await.unwrap();
        let partners = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/partners.toml");
        Hub { sim, config, partners, _stop: stop.drop_guard() }
    }

    fn args(&self) -> ManagementArgs {
        ManagementArgs {
            publishes_per_minute: 90,
            max_attempts: 8,
            max_backoff_ms: 2_000,
            ..gridsync_tests::amp_sim_args(&self.sim.url(), &self.config.hub_id, ("gridsync", "gridsync-secret"))
        }
    }

    fn client(&self) -> ManagementClient {
        ManagementClient::new(&self.args()).unwrap()
    }

    fn repo(&self) -> &str {
        &self.config.repositories[0]
    }

    /// The environment a binary reaches this hub with.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GRIDSYNC_AMPLIENCE_API_URL", format!("{}/v2/content", self.sim.url())),
            ("GRIDSYNC_AMPLIENCE_TOKEN_URL", format!("{}/oauth/token", self.sim.url())),
            ("GRIDSYNC_AMPLIENCE_HUB_ID", self.config.hub_id.clone()),
            ("GRIDSYNC_AMPLIENCE_CLIENT_ID", "gridsync".into()),
            ("GRIDSYNC_AMPLIENCE_CLIENT_SECRET", "gridsync-secret".into()),
            ("GRIDSYNC_PARTNERS_FILE", self.partners.display().to_string()),
        ]
    }

    /// `gridsync amplience <args>` against this hub.
    fn gridsync(&self, args: &[&str]) -> Output {
        Command::new(workspace_binary("gridsync"))
            .arg("amplience")
            .args(args)
            .envs(self.env())
            .env("GRIDSYNC_AMP_WEBHOOK_SECRET", "hook-secret")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A raw Management API request, as the hub answers it: status and body.
    async fn raw(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let http = reqwest::Client::new();
        let token: Value = http
            .post(format!("{}/oauth/token", self.sim.url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "gridsync"),
                ("client_secret", "gridsync-secret"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = http
            .request(method, format!("{}/v2/content{path}", self.sim.url()))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A message as the notifications flow writes it.
fn message(key: &str) -> NewContentItem {
    let fields = json!({
        "subject": "Order 1 confirmed", "body": "Thank you", "channel": "email",
        "action": "order-confirmation", "recipient": "orders@acme.example", "locale": "en-US",
        "gridsync": {
            "sourceEventId": "e1", "sourceEventType": "PurchaseOrderReceived", "correlationId": "ACME/1",
            "tradingPartnerId": "ACME", "businessKey": "1", "idempotencyKey": "e1/order-confirmation",
            "template": { "key": "templates/order-confirmation/en-US", "id": "t1", "version": 2 },
        },
    });
    NewContentItem {
        label: "order-confirmation ACME 1".into(),
        schema: NOTIFICATION.into(),
        delivery_key: Some(DeliveryKey::parse(key).unwrap()),
        folder_id: None,
        locale: Some("en-US".into()),
        fields: fields.as_object().cloned().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_prepares_an_empty_hub_once_and_check_passes_only_then() {
    let hub = Hub::start(SimConfig::default()).await;

    // An empty hub: every flow's content types, templates and the webhook are missing.
    let check = hub.gridsync(&["check", "--webhook-url", "http://127.0.0.1:9/webhooks/amplience"]);
    let out = text(&check);
    assert_eq!(check.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("MISSING  content type {NOTIFICATION}: not registered")), "{out}");
    assert!(out.contains("fix: run `gridsync amplience setup`"), "{out}");
    assert!(out.contains("MISSING  template templates/order-confirmation/en-US"), "{out}");
    assert!(out.contains("MISSING  webhook to http://127.0.0.1:9/webhooks/amplience: none active"), "{out}");

    // The plan, and nothing changed by it.
    let dry = hub.gridsync(&["setup", "--dry-run", "--with-example-templates"]);
    let out = text(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(out.contains(&format!("would: create content-type schema {NOTIFICATION}")), "{out}");
    assert!(out.contains("would: create example template templates/order-confirmation/de-DE"), "{out}");
    assert!(hub.client().content_type_schemas().await.unwrap().is_empty(), "--dry-run created schemas");

    let webhook = ["--webhook-url", "http://127.0.0.1:9/webhooks/amplience"];
    let setup = hub.gridsync(&[&["setup", "--with-example-templates"], &webhook[..]].concat());
    let out = text(&setup);
    assert!(setup.status.success(), "{out}");
    assert!(out.contains(&format!("did: assign content type {NOTIFICATION} to repository {}", hub.repo())), "{out}");
    assert!(out.contains("did: create the webhook to http://127.0.0.1:9/webhooks/amplience"), "{out}");
    let again = hub.gridsync(&[&["setup", "--with-example-templates"], &webhook[..]].concat());
    assert!(text(&again).contains("nothing to change"), "a second run changed things:\n{}", text(&again));

    let check = hub.gridsync(&["check", "--webhook-url", "http://127.0.0.1:9/webhooks/amplience"]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));

    // Someone changes gridsync's schema in the hub (a new version there, not yet used by the type):
    // the check names it; setup brings gridsync's version back and makes the type use it.
    let client = hub.client();
    let schemas = client.content_type_schemas().await.unwrap();
    let schema = schemas.iter().find(|s| s.schema_id == NOTIFICATION).unwrap();
    let mut edited: Value = serde_json::from_str(&schema.body).unwrap();
    edited["required"] = json!(["action"]);
    client.update_content_type_schema(&schema.id, &edited.to_string(), schema.version).await.unwrap();
    let out = text(&hub.gridsync(&["check"]));
    assert!(
        out.contains(&format!("MISSING  content type {NOTIFICATION}: its schema (hub version 2) is not gridsync's v1")),
        "{out}"
    );
    let setup = hub.gridsync(&["setup"]);
    let out = text(&setup);
    assert!(out.contains(&format!("did: update content-type schema {NOTIFICATION} (hub version 2")), "{out}");
    assert!(out.contains(&format!("did: make content type {NOTIFICATION} use its schema's current version")), "{out}");
    let versions = client.content_type_schemas().await.unwrap();
    assert_eq!(
        versions.iter().find(|s| s.schema_id == NOTIFICATION).unwrap().version,
        3,
        "a new version, not a rewrite"
    );
    assert_eq!(hub.gridsync(&["check"]).status.code(), Some(0));

    // A hub missing one content type (unassigned by hand) fails the check, naming it.
    let notification = hub.client().content_types().await.unwrap();
    let notification = notification.iter().find(|t| t.content_type_uri == NOTIFICATION).unwrap();
    let path = format!("/content-repositories/{}/content-types/{}", hub.repo(), notification.id);
    assert_eq!(hub.raw(reqwest::Method::DELETE, &path, "").await.0, 204);
    let check = hub.gridsync(&["check"]);
    let out = text(&check);
    assert_eq!(check.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("MISSING  content type {NOTIFICATION}: not assigned to repository {}", hub.repo())),
        "{out}"
    );
    assert!(out.contains("1 of "), "only the one: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_refuses_what_amplience_refuses() {
    let hub = Hub::start(SimConfig::default()).await;
    let client = hub.client();
    let refused = client.create_item(hub.repo(), &message("gridsync/test/1")).await.unwrap_err();
    assert_eq!((refused.status(), refused.codes()), (Some(400), vec!["CONTENT_TYPE_NOT_FOUND"]), "{refused}");

    gridsync_tests::set_up_hub(&hub.sim.url(), &hub.config.hub_id, &hub.config.repositories, None).await.unwrap();
    let created = client.create_item(hub.repo(), &message("gridsync/test/1")).await.unwrap();

    // Not in the templates' repository: the type is not assigned there.
    let elsewhere = client.create_item(&hub.config.repositories[1], &message("gridsync/test/2")).await.unwrap_err();
    assert!(elsewhere.to_string().contains("is not assigned to repository"), "{elsewhere}");
    // A body the schema refuses: each violation named with its property.
    let mut broken = message("gridsync/test/3");
    broken.fields.remove("gridsync");
    broken.fields.insert("locale".into(), json!(42));
    let (status, body) = hub
        .raw(
            reqwest::Method::POST,
            &format!("/content-repositories/{}/content-items", hub.repo()),
            &broken.to_request().to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["code"] == "CONTENT_ITEM_SCHEMA_VALIDATION_FAILED"), "{body}");
    assert!(errors.iter().any(|e| e["property"] == "/locale"), "{body}");
    assert!(errors.iter().any(|e| e["message"].as_str().unwrap().contains("gridsync")), "{body}");
    // A field the API does not take.
    let mut request = message("gridsync/test/4").to_request();
    request["colour"] = json!("blue");
    let path = format!("/content-repositories/{}/content-items", hub.repo());
    let (status, body) = hub.raw(reqwest::Method::POST, &path, &request.to_string()).await;
    assert_eq!((status, body["errors"][0]["code"].as_str()), (400, Some("REQUEST_INVALID")), "{body}");
    // A delivery key in use, a stale version, an unknown workflow state.
    let taken = client.create_item(hub.repo(), &message("gridsync/test/1")).await.unwrap_err();
    assert_eq!(taken.status(), Some(409), "{taken}");
    let stale = json!({ "version": created.version + 5, "label": "x" }).to_string();
    let (status, _) = hub.raw(reqwest::Method::PATCH, &format!("/content-items/{}", created.id), &stale).await;
    assert_eq!(status, 409);
    let state = json!({ "version": created.version, "state": "000000000000000000000bad" }).to_string();
    let (status, body) =
        hub.raw(reqwest::Method::PATCH, &format!("/content-items/{}/workflow", created.id), &state).await;
    assert_eq!((status, body["errors"][0]["code"].as_str()), (400, Some("WORKFLOW_STATE_NOT_FOUND")));
    // An update is validated too.
    let invalid = client.update_item(&created.id, |item| item.body["recipient"] = json!(7)).await.unwrap_err();
    assert_eq!(invalid.status(), Some(400), "{invalid}");
    // Lists sort by the dates the hub keeps, newest first when asked; not by any field.
    client.create_item(hub.repo(), &message("gridsync/test/5")).await.unwrap();
    let (status, newest) = hub.raw(reqwest::Method::GET, &format!("{path}?sort=createdDate,desc&size=1"), "").await;
    let first = &newest["_embedded"]["content-items"][0];
    assert_eq!((status, first["body"]["_meta"]["deliveryKey"].as_str()), (200, Some("gridsync/test/5")), "{newest}");
    let (status, body) = hub.raw(reqwest::Method::GET, &format!("{path}?sort=colour,desc"), "").await;
    assert_eq!((status, body["errors"][0]["code"].as_str()), (400, Some("INVALID_SORT")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn past_its_request_rate_the_hub_answers_429_and_the_client_waits() {
    let hub = Hub::start(SimConfig { requests_per_second: 10.0, ..SimConfig::default() }).await;
    gridsync_tests::set_up_hub(&hub.sim.url(), &hub.config.hub_id, &hub.config.repositories, None).await.unwrap();
    let client = hub.client();
    for n in 0..30 {
        client.ensure_item(hub.repo(), &message(&format!("gridsync/rate/{n}"))).await.unwrap();
    }
    let stats: Value = reqwest::get(format!("{}/__sim/stats", hub.sim.url())).await.unwrap().json().await.unwrap();
    assert!(stats["answered"]["429"].as_u64().unwrap_or(0) > 0, "the rate was never reached: {stats}");
    assert_eq!(client.all_items(hub.repo()).await.unwrap().len(), 30, "every item made once, after waiting");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_stays_unready_saying_why_until_the_hub_is_set_up() {
    let pipeline = Pipeline::start("hub-ready", None).await.unwrap();
    let hub = Hub::start(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_port();
    let consumer = Command::new(workspace_binary("notifications-consumer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}"), "--hub-check-retry-ms", "200"])
        .arg(format!("--store-url=sqlite://{}", dir.path().join("n.db").display()))
        .envs(hub.env())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("consumer.log")).unwrap())
        .spawn()
        .unwrap();
    let readyz = format!("http://127.0.0.1:{metrics}/readyz");
    let answer = || async {
        match reqwest::get(&readyz).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    };
    let log = || std::fs::read_to_string(dir.path().join("consumer.log")).unwrap_or_default();
    let waiting = wait_for(Duration::from_secs(30), || async { answer().await.1.contains("not registered") }).await;
    assert!(waiting, "{:?}\n{}", answer().await, log());
    let (status, why) = answer().await;
    assert_eq!(status, 503);
    assert!(why.contains(&format!("content type {NOTIFICATION}: not registered")), "{why}");
    assert!(why.contains("gridsync amplience check"), "{why}");

    gridsync_tests::set_up_hub(&hub.sim.url(), &hub.config.hub_id, &hub.config.repositories, None).await.unwrap();
    let ready = wait_for(Duration::from_secs(30), || async { answer().await.0 == 200 }).await;
    assert!(ready, "{:?}\n{}", answer().await, log());
    common::stop(consumer).await;
}

/// A notifications consumer of `pipeline` reaching `hub`, sharing a hub budget of `budget` requests
/// a second through the store `budget_store`; its metrics on `metrics`.
fn sharing_consumer(
    pipeline: &Pipeline,
    hub: &Hub,
    dir: &std::path::Path,
    name: &str,
    (budget, budget_store): (f64, &str),
    metrics: u16,
) -> std::process::Child {
    Command::new(workspace_binary("notifications-consumer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .arg(format!("--store-url=sqlite://{}", dir.join("ledger.db").display()))
        .args([
            "--amplience-hub-requests-per-second",
            &budget.to_string(),
            "--amplience-budget-store-url",
            budget_store,
        ])
        .envs(hub.env())
        .env("GRIDSYNC_KAFKA_SESSION_TIMEOUT_MS", "6000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_hubs_request_budget_instead_of_multiplying_it() {
    use gridsync_schemas::{samples::sample, EventType};
    const SHARE: &str = "gridsync_amplience_budget_share_requests_per_second";
    let pipeline = Pipeline::start("hub-budget", None).await.unwrap();
    // A hub that answers 429 past 12 requests a second; gridsync's budget for it is 10.
    let hub = Hub::start(SimConfig { requests_per_second: 12.0, ..SimConfig::default() }).await;
    gridsync_tests::set_up_hub(&hub.sim.url(), &hub.config.hub_id, &hub.config.repositories, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let budget_store = format!("sqlite://{}", dir.path().join("budget.db").display());
    let (first_port, second_port) = (free_port(), free_port());
    let metrics = |port: u16| format!("http://127.0.0.1:{port}/metrics");
    let share = |port: u16| async move { gridsync_tests::metric_value(&metrics(port), SHARE, "").await };

    let first = sharing_consumer(&pipeline, &hub, dir.path(), "first", (10.0, &budget_store), first_port);
    assert!(wait_for(Duration::from_secs(60), || async { share(first_port).await == 10.0 }).await, "alone: all of it");
    let second = sharing_consumer(&pipeline, &hub, dir.path(), "second", (10.0, &budget_store), second_port);
    let halves = || async { share(first_port).await == 5.0 && share(second_port).await == 5.0 };
    assert!(
        wait_for(Duration::from_secs(60), halves).await,
        "two replicas: half each, not 10 each ({} and {})",
        share(first_port).await,
        share(second_port).await
    );

    // A burst of orders through both: the hub's rate is never passed.
    let before: Value = reqwest::get(format!("{}/__sim/stats", hub.sim.url())).await.unwrap().json().await.unwrap();
    for seq in 0..20 {
        let mut event = sample(EventType::PurchaseOrderReceived, "ACME", 500 + seq);
        event.envelope_mut().occurred_at = gridsync_schemas::Timestamp::now();
        pipeline.producer.publish(&event, None).await.unwrap();
    }
    let made = || async { common::sim_items(&hub.sim.url(), "gridsync/order-confirmation/").await.len() == 20 };
    assert!(wait_for(Duration::from_secs(120), made).await, "the orders' confirmations were not all made");
    let after: Value = reqwest::get(format!("{}/__sim/stats", hub.sim.url())).await.unwrap().json().await.unwrap();
    assert_eq!(after["answered"]["429"], before["answered"]["429"], "the hub was asked past its rate: {after}");

    // One replica stops: the other takes the whole budget again.
    common::stop(second).await;
    assert!(wait_for(Duration::from_secs(30), || async { share(first_port).await == 10.0 }).await);
    common::stop(first).await;
}
