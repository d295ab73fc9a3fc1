//! The notifications flow (flows 1, 3, 6) end to end: EDI files dropped into
//! the Trading Grid mailbox go through `tg-producer`, the broker and
//! `notifications-consumer` into content items in the Amplience simulator,
//! rendered from the approved templates, each reported once as
//! DeliveryPerformed. A broken or unapproved template dead-letters its record
//! with the reason while the records after it flow; a consumer killed
//! mid-stream, a second instance in the group and Amplience answering 429, 503
//! and slowly change nothing in what is created: one item per side effect.
//! Needs `cargo test --workspace` (binaries).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{stop, World};
use futures::{stream, StreamExt};
use gridsync_amp_sim::SimConfig;
use gridsync_amplience::NewContentItem;
use gridsync_core::kafka::{dead_letter, headers};
use gridsync_schemas::{events::DocumentStatus, samples::sample, Event, EventType};
use gridsync_tests::{free_port, poll_until, read_topic, wait_for, workspace_binary};
use rdkafka::Message;
use serde_json::{json, Value};

/// A notifications consumer of `h`, logging to `<name>.log`.
fn notifications(h: &World, name: &str, extra: &[&str]) -> Child {
    h.consumer("notifications-consumer", name, extra).0
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/edi/tests/fixtures").join(name)
}

fn action_of(item: &Value) -> String {
    item["item"]["body"]["action"].as_str().unwrap_or_default().to_owned()
}

fn count_by_action(items: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(action_of(item)).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn edi_documents_become_notifications_from_approved_templates() {
    let h = World::without_producers("notify").await;
    // Two partner templates that cannot be used: one names a field no event has, one is not approved.
    let editor = h.finance();
    let repo = &SimConfig::default().repositories[1];
    let template = |key: &str, body: &str| NewContentItem {
        label: key.into(),
        schema: "https://schemas.gridsync.dev/message-template.json".into(),
        delivery_key: Some(gridsync_amplience::DeliveryKey::parse(key).unwrap()),
        folder_id: None,
        locale: None,
        fields: json!({ "subject": "Shipped", "body": body }).as_object().cloned().unwrap(),
    };
    let broken =
        editor.ensure_item(repo, &template("templates/broken/en-US", "{{ event.no_such_field }}")).await.unwrap();
    editor.assign_workflow_state(&broken.item().id, "Approved").await.unwrap();
    let draft = editor.ensure_item(repo, &template("templates/draft/de-DE", "{{ event.shipment_id }}")).await.unwrap();
    editor.assign_workflow_state(&draft.item().id, "Draft").await.unwrap();
    let config = h.dir.path().join("notifications.toml");
    let default = include_str!("../../consumers/notifications/default-notifications.toml");
    std::fs::write(
        &config,
        default.replace(
            "[partner_templates]",
            "[partner_templates]\nGLOBEX = { shipment-notification = \"templates/broken/en-US\" }\n\
             \"4012345500004\" = { delivery-content = \"templates/draft/de-DE\" }",
        ),
    )
    .unwrap();

    // A failed delivery that Lens reported, straight onto the topic.
    let mut failed = sample(EventType::DocumentStatusChanged, "ACME", 7);
    if let Event::DocumentStatusChanged(status) = &mut failed {
        status.status = DocumentStatus::DeliveryFailed;
        status.error_message = Some("partner mailbox full".into());
    }
    h.pipeline.producer.publish(&failed, None).await.unwrap();

    // A mailbox of the test's own, which no partner answers: tg-producer runs without
    // acknowledgements.
    let mailbox = h.dir.path().join("own-mailbox");
    let inbound = mailbox.join("inbound");
    std::fs::create_dir_all(&inbound).unwrap();
    for name in [
        "x12_multi_interchange_crlf.edi",          // ACME: two 850s and an 810
        "edifact_una_group_release.edi",           // 5412345000013: two ORDERS
        "x12_pipes_00501_no_newlines.edi",         // GLOBEX: an 856 (its shipment template is broken)
        "edifact_default_separators_one_line.edi", // 4012345500004: INVOIC and DESADV (its template unapproved)
        "x12_855_order_response.edi",              // ACME: an 855 accepting 4500012345
        "x12_214_delivered.edi",                   // GLOBEX: a 214, delivered
    ] {
        std::fs::copy(fixture(name), inbound.join(name)).unwrap();
    }
    let tg = Command::new(workspace_binary("tg-producer"))
        .args(["--brokers", &h.pipeline.broker.brokers(), "--topic-prefix", &h.pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--poll-ms", "100", "--no-acks"])
        .arg("--mailbox-dir")
        .arg(&mailbox)
        .arg(format!("--store-url=sqlite://{}", h.dir.path().join("tg.db").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.dir.path().join("tg.log")).unwrap())
        .spawn()
        .unwrap();
    let consumer = notifications(&h, "consumer", &["--config", &config.to_string_lossy()]);

    let expected: BTreeMap<String, usize> = [
        ("order-confirmation", 4),
        ("customer-notification", 4),
        ("delivery-content", 1),
        ("delivery-notification", 1),
        ("post-purchase-message", 1),
        ("order-response-notification", 1),
        ("shipment-released", 2),
        ("document-exception-notification", 1),
    ]
    .into_iter()
    .map(|(a, n)| (a.to_owned(), n))
    .collect();
    let all_made = |items: &Vec<Value>| {
        let suppressing: usize =
            items.iter().filter_map(|i| i["item"]["body"]["orders"].as_array().map(Vec::len)).sum();
        let messages: Vec<Value> = items.iter().filter(|i| !action_of(i).is_empty()).cloned().collect();
        suppressing == 4 && count_by_action(&messages) == expected
    };
    let items = poll_until(Duration::from_secs(60), || h.items("gridsync/"), all_made).await;
    let messages: Vec<Value> = items.iter().filter(|i| !action_of(i).is_empty()).cloned().collect();
    assert_eq!(count_by_action(&messages), expected, "{}", h.log("consumer"));
    // An item is reported once it is whole (created, and in its workflow state): read them again
    // once every side effect is reported.
    let deliveries = h.deliveries_until(|d| d.len() >= 19);
    let items = h.items("gridsync/").await;
    let messages: Vec<Value> = items.iter().filter(|i| !action_of(i).is_empty()).cloned().collect();

    // Rendered from the approved template version, with the template recorded in the item.
    let seeded = h.items("templates/").await;
    let template_version = |key: &str| {
        seeded.iter().find(|t| t["item"]["body"]["_meta"]["deliveryKey"] == key).map(|t| t["item"]["version"].clone())
    };
    let confirmation = |po: &str| {
        messages
            .iter()
            .find(|i| action_of(i) == "order-confirmation" && i["item"]["body"]["gridsync"]["businessKey"] == po)
            .map(|i| i["item"]["body"].clone())
            .unwrap_or_default()
    };
    let acme = confirmation("4500012345");
    assert_eq!(acme["subject"], "Order 4500012345 confirmed");
    assert!(acme["body"].as_str().unwrap().contains("Acme Retail Inc"), "{acme}");
    assert_eq!(acme["gridsync"]["template"]["key"], "templates/order-confirmation/en-US");
    assert_eq!(
        Some(acme["gridsync"]["template"]["version"].clone()),
        template_version("templates/order-confirmation/en-US")
    );
    assert_eq!(acme["gridsync"]["correlationId"], "ACME/PO/4500012345");
    assert_eq!(confirmation("PO-DE-7781")["subject"], "Auftrag PO-DE-7781 bestätigt", "the partner's locale");
    let post = messages.iter().find(|i| action_of(i) == "post-purchase-message").unwrap();
    assert_eq!(post["item"]["body"]["sendAt"], "2026-12-01T15:30:00.000Z", "72 h after the 214's delivery");
    for action in ["order-response-notification", "document-exception-notification", "shipment-released"] {
        for task in messages.iter().filter(|i| action_of(i) == action) {
            assert_eq!(task["workflowState"], "In review", "{action} is a workflow item for the account team");
            let partner = task["item"]["body"]["gridsync"]["tradingPartnerId"].as_str().unwrap();
            let team = match partner {
                "ACME" => "acme-team@example.com",
                "GLOBEX" => "globex-team@example.com",
                _ => "nordwaren-team@example.com",
            };
            assert_eq!(task["item"]["body"]["recipient"], team);
        }
    }
    // Each ordering customer kept out of campaigns: an item per partner and customer, with its orders.
    let suppressed = |i: &&Value| {
        i["item"]["body"]["_meta"]["deliveryKey"]
            .as_str()
            .is_some_and(|k| k.starts_with("gridsync/campaign-suppression/"))
    };
    let orders: BTreeSet<(&str, &str)> = items
        .iter()
        .filter(suppressed)
        .flat_map(|i| {
            let customer = i["item"]["body"]["customerId"].as_str().unwrap();
            let orders = i["item"]["body"]["orders"].as_array().unwrap();
            orders.iter().map(move |o| (customer, o["poNumber"].as_str().unwrap()))
        })
        .collect();
    assert_eq!(orders.len(), 4, "{orders:?}");
    assert_eq!(
        orders.iter().map(|(_, po)| *po).collect::<BTreeSet<_>>(),
        BTreeSet::from(["4500012345", "4500022345", "PO-DE-7781", "PO-DE-7782"])
    );
    assert!(items.iter().filter(suppressed).all(|i| i["item"]["body"]["suppressedUntil"].is_string()));

    // The two records whose templates could not be used, dead-lettered with the reason.
    let dlq = format!("{}gridsync.notifications.dlq", h.pipeline.kafka.topic_prefix);
    let dead = read_topic(&h.pipeline.broker.brokers(), &dlq, 2, Duration::from_secs(30)).unwrap();
    let mut reasons: Vec<(String, String)> = dead
        .iter()
        .map(|m| {
            let class = headers::get(m.headers(), dead_letter::ERROR_CLASS).unwrap_or_default().to_owned();
            let message = headers::get(m.headers(), dead_letter::ERROR_MESSAGE).unwrap_or_default().to_owned();
            (class, message)
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "template.not_approved");
    assert!(reasons[0].1.contains("templates/draft/de-DE"), "{}", reasons[0].1);
    assert_eq!(reasons[1].0, "template.render");
    assert!(reasons[1].1.contains("templates/broken/en-US") && reasons[1].1.contains("undefined"), "{}", reasons[1].1);

    // One DeliveryPerformed per side effect: every message, and four suppression entries.
    let keys: BTreeSet<&str> = deliveries.iter().map(|d| d.idempotency_key.as_str()).collect();
    assert_eq!((deliveries.len(), keys.len()), (19, 19));
    let confirmation_delivery = deliveries
        .iter()
        .find(|d| d.action == "order-confirmation" && d.envelope.business_key == "4500012345")
        .unwrap();
    assert_eq!(confirmation_delivery.content_item_id.as_deref(), acme["gridsync"]["template"]["id"].as_str());
    assert_eq!(confirmation_delivery.recipient.as_deref(), Some("orders@acme.example"));
    assert_eq!(confirmation_delivery.envelope.correlation_id, "ACME/PO/4500012345");

    stop(consumer).await;
    stop(tg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_and_parallel_consumers_create_every_item_exactly_once_through_amplience_faults() {
    let h = World::without_producers("notify-crash").await;
    const ORDERS: u64 = 40;
    // Ordered now: the customers stay suppressed for 30 days (an order older than that would not be).
    let events: Vec<Event> = (0..ORDERS)
        .map(|i| {
            let mut event = sample(EventType::PurchaseOrderReceived, "ACME", 100 + i);
            event.envelope_mut().occurred_at = gridsync_schemas::Timestamp::now();
            event
        })
        .collect();
    let published: Vec<_> =
        stream::iter(&events).map(|e| h.pipeline.producer.publish(e, None)).buffer_unordered(64).collect().await;
    assert!(published.iter().all(Result::is_ok));
    // Amplience is slow, then rate-limits, then fails for a while.
    let faults = format!("{}/__sim/faults", h.amp.url());
    for spec in [
        json!({ "delay_ms": 150, "count": 40 }),
        json!({ "status": 429, "retry_after": 1, "count": 6 }),
        json!({ "status": 503, "count": 4 }),
    ] {
        reqwest::Client::new().post(&faults).json(&spec).send().await.unwrap();
    }

    let mut first = notifications(&h, "first", &[]);
    let second = notifications(&h, "second", &[]);
    // Mid-stream: some items exist, most do not yet.
    let started =
        wait_for(Duration::from_secs(120), || async { h.items("gridsync/order-confirmation").await.len() >= 5 }).await;
    assert!(started, "{}", h.log("first"));
    first.kill().unwrap();
    first.wait().unwrap();
    let restarted = notifications(&h, "restarted", &[]);

    let done = wait_for(Duration::from_secs(120), || async {
        let items = h.items("gridsync/").await;
        let counts = count_by_action(&items);
        let entries: usize = items.iter().filter_map(|i| i["item"]["body"]["orders"].as_array().map(Vec::len)).sum();
        counts.get("order-confirmation") == Some(&(ORDERS as usize))
            && counts.get("customer-notification") == Some(&(ORDERS as usize))
            && entries == ORDERS as usize
    })
    .await;
    assert!(done, "{:?}\n{}", count_by_action(&h.items("gridsync/").await), h.log("restarted"));
    stop(second).await;
    stop(restarted).await;

    // amp-sim's own records: one item per side effect, whatever was retried or redone.
    let items = h.items("gridsync/").await;
    let per_key: BTreeMap<String, usize> = items.iter().fold(BTreeMap::new(), |mut m, i| {
        *m.entry(i["item"]["body"]["_meta"]["deliveryKey"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        m
    });
    assert!(per_key.values().all(|n| *n == 1), "a delivery key twice: {per_key:?}");
    assert_eq!(items.len(), 2 * ORDERS as usize + 1, "two messages per order and the customer's suppression");
    // And exactly one DeliveryPerformed per side effect.
    let deliveries = h.deliveries_until(|d| {
        d.iter().map(|d| d.idempotency_key.as_str()).collect::<BTreeSet<_>>().len() >= 3 * ORDERS as usize
    });
    let keys: BTreeSet<&str> = deliveries.iter().map(|d| d.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 3 * ORDERS as usize);
    let mut repeated: BTreeMap<&str, Vec<(&str, i64, &str)>> = BTreeMap::new();
    for d in &deliveries {
        repeated.entry(d.idempotency_key.as_str()).or_default().push((
            d.outcome.as_str(),
            d.performed_at.millis(),
            d.envelope.event_id.as_str(),
        ));
    }
    repeated.retain(|_, v| v.len() > 1);
    assert_eq!(deliveries.len(), 3 * ORDERS as usize, "no side effect reported twice: {repeated:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_reached_kafka_before_a_crash_is_not_sent_again() {
    use gridsync_core::{kafka::Record, telemetry::TraceContext};
    use gridsync_flow::effects::{delivery_performed, SideEffect};
    use gridsync_store::{Performed, Store};

    let h = World::without_producers("notify-reported").await;
    let order = sample(EventType::PurchaseOrderReceived, "ACME", 900);
    // What a consumer killed between Kafka's acknowledgement of its report and the ledger's note
    // of it leaves behind: the effect done and unreported in the ledger, its report on the topic.
    let store =
        Store::connect(&format!("sqlite://{}", h.store_file("notifications-consumer").display())).await.unwrap();
    let effect = SideEffect::amplience("order-confirmation", Some("orders@acme.example".into()));
    let key = effect.key(order.envelope());
    let ledger = store.side_effects();
    ledger.claim(&key, "killed", Duration::ZERO).await.unwrap();
    let performed = Performed {
        external_id: "item-made-before-the-crash".into(),
        outcome: "created".into(),
        performed_at_ms: chrono::Utc::now().timestamp_millis(),
        reported: false,
        details: None,
    };
    assert!(ledger.complete(&key, "killed", &performed, Duration::ZERO).await.unwrap());
    let record = Record {
        event: order.clone(),
        writer_version: 1,
        topic: String::new(),
        partition: 0,
        offset: 0,
        key: None,
        trace: TraceContext::new_root(),
    };
    let report = delivery_performed("notifications", &record, &effect, &key, &performed, None);
    h.pipeline.producer.publish(&report, None).await.unwrap();
    h.pipeline.producer.publish(&order, None).await.unwrap();

    let consumer = notifications(&h, "consumer", &[]);
    // Its other two side effects are performed and reported; this one is only noted.
    let reported = || async { ledger.get(&key).await.unwrap().is_none_or(|p| p.reported) };
    wait_for(Duration::from_secs(60), reported).await;
    assert!(ledger.get(&key).await.unwrap().unwrap().reported, "{}", h.log("consumer"));
    assert_eq!(h.deliveries_until(|d| d.len() >= 3).len(), 3, "the other two side effects reported");
    stop(consumer).await;
    // Stopped, it reports nothing more: every report on the topic now.
    let all = h.deliveries_until(|_| true);
    assert_eq!(all.iter().filter(|d| d.idempotency_key == key).count(), 1, "found on the topic, not sent again");
    assert_eq!(all.len(), 3, "one report per side effect: {:?}", all.iter().map(|d| &d.action).collect::<Vec<_>>());
    assert!(h.items("gridsync/order-confirmation").await.is_empty(), "the ledger said done: nothing created again");
}
