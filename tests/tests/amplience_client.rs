//! The Management and Delivery API clients against the Amplience simulator
//! over real HTTP: idempotent creates, optimistic concurrency, workflow by
//! label, publish, HAL paging, token expiry, and 429/5xx/slow storms.

use std::{sync::Arc, time::Duration};

use gridsync_amp_sim::{SimConfig, Simulator};
use gridsync_amplience::{
    management::ManagementArgs, AmplienceError, DeliveryClient, DeliveryKey, Ensured, ManagementClient, NewContentItem,
    DEFAULT_BACKOFF,
};
use serde_json::{json, Value};

const SCHEMA: &str = "https://gridsync.example/schemas/order-confirmation.json";

struct Sim {
    sim: Simulator,
    config: SimConfig,
    _stop: tokio_util::sync::DropGuard,
}

impl Sim {
    async fn start() -> Self {
        let config = SimConfig::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let sim = Simulator::start(config.clone(), listener, stop.clone()).await.unwrap();
        let sim = Sim { sim, config, _stop: stop.drop_guard() };
        // The content type these tests write, registered and assigned as a hub needs it.
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#", "$id": SCHEMA, "title": "Order confirmation",
            "allOf": [{ "$ref": "http://bigcontent.io/cms/schema/v1/core#/definitions/content" }],
            "type": "object",
            "properties": { "poNumber": { "type": "string" }, "partner": { "type": "string" } },
            "required": ["poNumber", "partner"],
        });
        let admin = sim.client();
        admin.create_content_type_schema(SCHEMA, &schema.to_string()).await.unwrap();
        let registered = admin.register_content_type(SCHEMA, &json!({ "label": "Order confirmation" })).await.unwrap();
        admin.assign_content_type(sim.repo(), &registered.id).await.unwrap();
        sim
    }

    fn repo(&self) -> &str {
        &self.config.repositories[0]
    }

    fn args(&self) -> ManagementArgs {
        ManagementArgs {
            publishes_per_minute: 6000,
            timeout_ms: 2_000,
            max_attempts: 8,
            max_backoff_ms: 2_000,
            ..gridsync_tests::amp_sim_args(&self.sim.url(), &self.config.hub_id, ("gridsync", "gridsync-secret"))
        }
    }

    fn client(&self) -> ManagementClient {
        ManagementClient::new(&self.args()).unwrap()
    }

    /// Queues a fault (`FaultSpec` as JSON) for the next requests.
    async fn fault(&self, spec: Value) {
        let response =
            reqwest::Client::new().post(format!("{}/__sim/faults", self.sim.url())).json(&spec).send().await.unwrap();
        assert!(response.status().is_success(), "{spec}");
    }

    async fn clear_faults(&self) {
        reqwest::Client::new().delete(format!("{}/__sim/faults", self.sim.url())).send().await.unwrap();
    }

    async fn stats(&self) -> Value {
        reqwest::get(format!("{}/__sim/stats", self.sim.url())).await.unwrap().json().await.unwrap()
    }
}

fn confirmation(partner: &str, po: &str) -> NewContentItem {
    let mut fields = serde_json::Map::new();
    fields.insert("poNumber".into(), json!(po));
    fields.insert("partner".into(), json!(partner));
    NewContentItem {
        label: format!("Order confirmation {po}"),
        schema: SCHEMA.into(),
        delivery_key: Some(DeliveryKey::derive("gridsync/po-confirmation", [partner, po]).unwrap()),
        folder_id: None,
        locale: Some("en-GB".into()),
        fields,
    }
}

#[tokio::test]
async fn creating_the_same_item_twice_yields_one_item_even_from_a_fresh_client() {
    let sim = Sim::start().await;
    let item = confirmation("ACME", "PO1001");
    let first = sim.client().ensure_item(sim.repo(), &item).await.unwrap();
    assert!(matches!(first, Ensured::Created(_)));
    // A retry in the same process, and a replay after a restart (no cache).
    let again = sim.client();
    let second = again.ensure_item(sim.repo(), &item).await.unwrap();
    let third = again.ensure_item(sim.repo(), &item).await.unwrap();
    assert!(matches!(second, Ensured::Existing(_)), "{second:?}");
    assert_eq!(second.item().id, first.item().id);
    assert_eq!(third.item().id, first.item().id);
    assert_eq!(sim.stats().await["creates"], 1);
    assert_eq!(first.item().delivery_key(), Some("gridsync/po-confirmation/ACME/PO1001"));
}

#[tokio::test]
async fn remembered_keys_are_bounded_and_a_forgotten_key_still_yields_its_one_item() {
    let sim = Sim::start().await;
    let client = sim.client().remembering_keys(2);
    let mut ids = Vec::new();
    for po in ["PO7001", "PO7002", "PO7003"] {
        ids.push(client.ensure_item(sim.repo(), &confirmation("ACME", po)).await.unwrap().item().id.clone());
    }
    assert_eq!(client.remembered_keys().await, 2, "the oldest key is forgotten");
    // The forgotten key: the hub refuses the duplicate and the scan finds the first item.
    let again = client.ensure_item(sim.repo(), &confirmation("ACME", "PO7001")).await.unwrap();
    assert!(matches!(again, Ensured::Existing(_)), "{again:?}");
    assert_eq!(again.item().id, ids[0]);
    let last = client.ensure_item(sim.repo(), &confirmation("ACME", "PO7003")).await.unwrap();
    assert_eq!(last.item().id, ids[2]);
    assert_eq!(sim.stats().await["creates"], 3, "one item per key");
    assert_eq!(client.remembered_keys().await, 2);
}

#[tokio::test]
async fn a_key_a_replica_made_a_moment_ago_is_found_on_the_first_page() {
    let sim = Sim::start().await;
    let (first, replica) = (sim.client(), sim.client());
    // Three pages of older items, then the one both replicas make at once.
    for i in 0..250 {
        first.ensure_item(sim.repo(), &confirmation("ACME", &format!("PO8{i:03}"))).await.unwrap();
    }
    let made = first.ensure_item(sim.repo(), &confirmation("ACME", "PO8999")).await.unwrap();
    // The replica holds its token already (a read), so what follows counts only the lookup.
    replica.get_item(&made.item().id).await.unwrap();
    let read_before = sim.stats().await["answered"]["200"].as_u64().unwrap_or(0);
    let found = replica.ensure_item(sim.repo(), &confirmation("ACME", "PO8999")).await.unwrap();
    assert!(matches!(found, Ensured::Existing(_)) && found.item().id == made.item().id, "{found:?}");
    let stats = sim.stats().await;
    assert_eq!(stats["answered"]["200"].as_u64().unwrap_or(0) - read_before, 1, "one page read, the newest: {stats}");
    assert_eq!(stats["creates"], 251, "one item per key");
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_without_losing_work() {
    let sim = Sim::start().await;
    let client = Arc::new(sim.client());
    sim.fault(json!({"status": 429, "retry_after": 1, "count": 6})).await;
    sim.fault(json!({"status": 503, "count": 3})).await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (client, repo) = (client.clone(), sim.repo().to_owned());
            tokio::spawn(async move { client.ensure_item(&repo, &confirmation("ACME", &format!("PO2{i:03}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = sim.stats().await;
    assert_eq!(stats["creates"], 12, "every item created, once: {stats}");
    assert_eq!(stats["answered"]["429"], 6, "{stats}");
    assert_eq!(stats["answered"]["503"], 3, "{stats}");
    assert!(client.stats().retries.load(std::sync::atomic::Ordering::Relaxed) >= 9);
    assert_eq!(client.all_items(sim.repo()).await.unwrap().len(), 12);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let sim = Sim::start().await;
    let client = sim.client();
    let created = client.ensure_item(sim.repo(), &confirmation("ACME", "PO3001")).await.unwrap();
    sim.fault(json!({"delay_ms": 3000, "count": 1})).await;
    let read = client.get_item(&created.item().id).await.unwrap();
    assert_eq!(read.id, created.item().id);
    assert_eq!(client.stats().retries.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn retries_are_bounded_and_client_errors_are_not_retried() {
    let sim = Sim::start().await;
    let client = ManagementClient::new(&ManagementArgs { max_attempts: 3, ..sim.args() }).unwrap();
    sim.fault(json!({"status": 500, "count": 5})).await;
    let err = client.get_item("whatever").await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(err.is_retryable());
    assert_eq!(client.stats().retries.load(std::sync::atomic::Ordering::Relaxed), 2, "three attempts in all");

    sim.clear_faults().await;
    let invalid = NewContentItem { schema: String::new(), ..confirmation("ACME", "PO3002") };
    let err = sim.client().create_item(sim.repo(), &invalid).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.codes(), ["CONTENT_ITEM_INVALID"]);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_bad_credentials_are_clear() {
    let sim = Sim::start().await;
    let client = sim.client();
    let created = client.ensure_item(sim.repo(), &confirmation("ACME", "PO4001")).await.unwrap();
    reqwest::Client::new().post(format!("{}/__sim/expire-tokens", sim.sim.url())).send().await.unwrap();
    client.get_item(&created.item().id).await.unwrap();
    assert_eq!(client.stats().token_refreshes.load(std::sync::atomic::Ordering::Relaxed), 1);

    let wrong = ManagementClient::new(&ManagementArgs { client_secret: Some("wrong".into()), ..sim.args() }).unwrap();
    let err = wrong.get_item(&created.item().id).await.unwrap_err();
    assert!(matches!(err, AmplienceError::Credentials { status: 400, .. }), "{err}");
    assert!(!err.to_string().contains("wrong"), "the secret is never in an error: {err}");
}

#[tokio::test]
async fn concurrent_updates_reread_and_reapply_on_version_conflicts() {
    let sim = Sim::start().await;
    // Rate limited so that every task reads before any writes: real 409s.
    let client = Arc::new(ManagementClient::new(&ManagementArgs { requests_per_second: 50.0, ..sim.args() }).unwrap());
    let id = client.ensure_item(sim.repo(), &confirmation("ACME", "PO5001")).await.unwrap().item().id.clone();
    let tasks: Vec<_> = (0..4)
        .map(|n| {
            let (client, id) = (client.clone(), id.clone());
            tokio::spawn(async move {
                client
                    .update_item(&id, |item| {
                        let notes = item.body.as_object_mut().unwrap().entry("notes").or_insert(json!([]));
                        notes.as_array_mut().unwrap().push(json!(n));
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let item = client.get_item(&id).await.unwrap();
    let mut notes: Vec<i64> = item.body["notes"].as_array().unwrap().iter().map(|n| n.as_i64().unwrap()).collect();
    notes.sort();
    assert_eq!(notes, [0, 1, 2, 3], "no update lost");
    assert_eq!(item.version, 5);
    assert!(sim.stats().await["answered"]["409"].as_u64().unwrap_or(0) >= 1, "conflicts happened and were handled");
}

/// A change already there (a replay, a status seen twice) saves nothing: the version stays.
#[tokio::test]
async fn an_update_that_changes_nothing_is_not_saved() {
    let sim = Sim::start().await;
    let client = ManagementClient::new(&sim.args()).unwrap();
    let id = client.ensure_item(sim.repo(), &confirmation("ACME", "PO5002")).await.unwrap().item().id.clone();
    let set = |item: &mut gridsync_amplience::model::ContentItem| item.body["state"] = json!("sent");
    let saved = client.update_item(&id, set).await.unwrap();
    let (again, saved_again) = client.update_item_saved(&id, set).await.unwrap();
    assert_eq!(again.version, saved.version, "the same change again is not saved");
    assert!(!saved_again, "and says so");
    assert_eq!(client.get_item(&id).await.unwrap().version, saved.version);
    let moved = client.update_item(&id, |item| item.body["state"] = json!("read")).await.unwrap();
    assert_eq!(moved.version, saved.version + 1);
}

#[tokio::test]
async fn workflow_states_by_label_publish_and_delivery_by_id_and_key() {
    let sim = Sim::start().await;
    let client = sim.client();
    let id = client.ensure_item(sim.repo(), &confirmation("ACME", "PO6001")).await.unwrap().item().id.clone();
    let approved = client.assign_workflow_state(&id, "approved").await.unwrap();
    assert_eq!(approved.workflow_state(), Some(client.workflow_state_id("Approved").await.unwrap().as_str()));
    assert!(matches!(
        client.assign_workflow_state(&id, "No such state").await,
        Err(AmplienceError::UnknownWorkflowState(_))
    ));

    let delivery = DeliveryClient::new(&sim.sim.url(), Duration::from_secs(2), DEFAULT_BACKOFF).unwrap();
    assert!(delivery.by_id(&id).await.unwrap_err().is_not_found(), "not published yet");
    let job = client.publish(&id).await.unwrap();
    assert!(job.is_some_and(|j| j.contains("/publishing-jobs/")));
    let by_id = delivery.by_id(&id).await.unwrap();
    assert_eq!(by_id["poNumber"], "PO6001");
    assert_eq!(by_id["_meta"]["deliveryId"], id);
    let by_key = delivery.by_key("gridsync/po-confirmation/ACME/PO6001").await.unwrap();
    assert_eq!(by_key, by_id);
}

#[tokio::test]
async fn listing_follows_hal_pages() {
    let sim = Sim::start().await;
    let client = sim.client();
    for i in 0..230 {
        client.create_item(sim.repo(), &confirmation("ACME", &format!("PO7{i:03}"))).await.unwrap();
    }
    let first = client.list_items(sim.repo(), 0, 100).await.unwrap();
    assert_eq!(first.items.len(), 100);
    assert_eq!(first.page.map(|p| (p.total_elements, p.total_pages)), Some((230, 3)));
    assert!(first.has_next());
    let last = client.list_items(sim.repo(), 2, 100).await.unwrap();
    assert_eq!(last.items.len(), 30);
    assert!(!last.has_next());
    assert_eq!(client.all_items(sim.repo()).await.unwrap().len(), 230);
    let found = client.find_by_delivery_key(sim.repo(), "gridsync/po-confirmation/ACME/PO7229").await.unwrap();
    assert_eq!(found.map(|i| i.body["poNumber"].clone()), Some(json!("PO7229")));
}
