//! Flow 7 end to end: one order's lineage, from the 850 dropped in the mailbox to the 820
//! gridsync sent back and its acknowledgement, recorded by the real audit consumer (killed
//! mid-way) and read back through the CLI, the HTTP API and the page in a real browser; a
//! record nobody can decode, in the dead letters; and the audit consumer replayed from the
//! earliest offsets into an empty PostgreSQL store, answering the same.

mod common;

use std::{collections::HashSet, process::Command, time::Duration};

use common::{browser::Browser, fixture, kill, stop, World};
use gridsync_schemas::{catalog, codec};
use gridsync_tests::{free_port, payload, read_all, wait_for_some, wait_until, workspace_binary};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

const PO: &str = "4500012345";

async fn get(url: &str) -> Value {
    let response = reqwest::get(url).await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

/// The lineage of the order through the HTTP API, every event on one page.
async fn lineage(view: &str) -> Value {
    get(&format!("{view}/api/lineage?ref={PO}&limit=500")).await
}

/// `(event type, action)` of each event of a lineage answer, in its order.
fn steps(lineage: &Value) -> Vec<(String, String)> {
    lineage["events"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event_type"].as_str().unwrap().to_owned(), e["action"].as_str().unwrap_or("").to_owned()))
        .collect()
}

fn position(steps: &[(String, String)], event_type: &str, action: &str) -> usize {
    steps
        .iter()
        .position(|(t, a)| t == event_type && a == action)
        .unwrap_or_else(|| panic!("{event_type} {action} is not in the lineage: {steps:#?}"))
}

/// Waits (up to two minutes) until the order's lineage holds `done`; returns it.
async fn lineage_until(w: &World, view: &str, what: &str, done: impl Fn(&[(String, String)]) -> bool) -> Value {
    let lineage = || async {
        let answer: Value =
            reqwest::get(format!("{view}/api/lineage?ref={PO}&limit=500")).await.ok()?.json().await.ok()?;
        Some(answer)
    };
    let complete = wait_for_some(Duration::from_secs(120), || async {
        lineage().await.filter(|answer| answer.get("events").is_some() && done(&steps(answer)))
    });
    if let Some(answer) = complete.await {
        return answer;
    }
    let last = lineage().await.unwrap_or_default();
    let last = if last.get("events").is_some() { format!("{:#?}", steps(&last)) } else { last.to_string() };
    panic!("{what}: never in the lineage: {last}\n{}", w.logs());
}

/// Every distinct event id on the topics the audit consumer reads.
fn event_ids_on_topics(w: &World) -> HashSet<String> {
    let catalog = catalog::catalog().unwrap().with_prefix(&w.pipeline.kafka.topic_prefix);
    let codec = codec().unwrap();
    let mut ids = HashSet::new();
    for topic in &catalog.consumer("audit").unwrap().topics {
        for m in read_all(&w.pipeline.broker.brokers(), topic, Duration::from_secs(30)).unwrap() {
            if let Ok(decoded) = codec.decode(payload(&m)) {
                ids.insert(decoded.event.envelope().event_id.clone());
            }
        }
    }
    ids
}

/// `gridsync audit ...` against `store_url`: its JSON answer.
fn cli(store_url: &str, args: &[&str]) -> Value {
    let out = Command::new(workspace_binary("gridsync"))
        .args(["audit", "--audit-store-url", store_url])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "gridsync audit {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until the audit store holds exactly the events on the topics: none lost, none twice.
async fn recorded_everything(w: &World, store_url: &str) -> HashSet<String> {
    let recorded = wait_for_some(Duration::from_secs(30), || async {
        let on_topics = event_ids_on_topics(w);
        let counts = cli(store_url, &["counts"]);
        (counts["events"].as_u64() == Some(on_topics.len() as u64)).then_some(on_topics)
    });
    recorded.await.unwrap_or_else(|| {
        let on_topics = event_ids_on_topics(w).len();
        panic!("the audit store never held the {on_topics} events on the topics\n{}", w.logs())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_orders_lineage_from_the_850_to_the_820_through_the_cli_the_api_and_a_browser() {
    let w = World::start("audit").await;
    w.set_clock("2026-12-20T08:00:00Z");
    let outbound = w.billing_outbound();
    let outbound = outbound.each_ref().map(String::as_str);
    let (notifications, _) = w.consumer("notifications-consumer", "notifications", &[]);
    let (billing, _) = w.consumer("billing-consumer", "billing", &outbound);
    let store_url = format!("sqlite://{}", w.dir.path().join("audit.db").display());
    let port = free_port();
    let view = format!("http://127.0.0.1:{port}");
    let (first, _) = w.audit("audit-first", &store_url, port);

    // ACME's orders 4500012345 and 4500012346 and invoice INV-88001 for the first.
    w.drop_inbound("acme.edi", &std::fs::read(fixture("x12_multi_interchange_crlf.edi")).unwrap());
    lineage_until(&w, &view, "the order, its confirmation and the invoice", |s| {
        s.iter().any(|(t, a)| t == "DeliveryPerformed" && a == "order-confirmation")
            && s.iter().any(|(t, _)| t == "InvoiceReceived")
    })
    .await;
    // Killed mid-way: what it had not committed comes again to its successor.
    kill(first);
    let (second, audit_metrics) = w.audit("audit-second", &store_url, port);

    // Finance records the payment: billing sends the 820, the partner acknowledges it.
    w.record_payment("ACME", "INV-88001", "PAY-7001", "2370.00", "2026-11-30T11:00:00Z").await;
    let answer = lineage_until(&w, &view, "the 820 and its acknowledgement", |s| {
        s.iter().any(|(t, a)| t == "DeliveryPerformed" && a == "remittance-advice")
            && s.iter().any(|(t, _)| t == "FunctionalAckReceived")
            && s.iter().any(|(t, _)| t == "DocumentStatusChanged")
    })
    .await;

    // In the order it happened: each side effect after what caused it.
    let s = steps(&answer);
    assert_eq!(s[0], ("PurchaseOrderReceived".to_owned(), String::new()), "{s:#?}");
    assert!(position(&s, "PurchaseOrderReceived", "") < position(&s, "DeliveryPerformed", "order-confirmation"));
    assert!(position(&s, "InvoiceReceived", "") < position(&s, "DeliveryPerformed", "billing-communication"));
    assert!(position(&s, "InvoiceReceived", "") < position(&s, "PaymentConfirmed", ""));
    assert!(position(&s, "PaymentConfirmed", "") < position(&s, "DeliveryPerformed", "remittance-advice"));
    assert!(position(&s, "DeliveryPerformed", "remittance-advice") < position(&s, "FunctionalAckReceived", ""));
    let events = answer["events"]["items"].as_array().unwrap();
    // Each event once; nothing of the other order.
    let ids: HashSet<&str> = events.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());
    assert_eq!(answer["total"].as_u64(), Some(events.len() as u64));
    assert!(events.iter().all(|e| !e["summary"].as_str().unwrap().contains("4500012346")), "{answer:#}");
    // Every message made in Amplience names the approved content version it was made from.
    for action in ["order-confirmation", "billing-communication"] {
        let sent = events.iter().find(|e| e["action"] == action).unwrap();
        assert!(sent["content_item_id"].as_str().is_some_and(|id| !id.is_empty()), "{sent:#}");
        assert!(sent["content_version"].as_i64().is_some_and(|v| v >= 1), "{sent:#}");
    }
    // The 820 as the partner got it, its acknowledgement and its Lens status.
    let remittance = events.iter().find(|e| e["action"] == "remittance-advice").unwrap();
    let file = remittance["summary"].as_str().unwrap().rsplit(": ").next().unwrap().to_owned();
    assert!(file.starts_with("ACME_820_PAY-7001-"), "{remittance:#}");
    assert_eq!(w.picked_up("ACME_820_PAY-7001").len(), 1);
    // Lens names the interchange by its control number, the one the file name ends with.
    let control = file.trim_end_matches(".edi").rsplit('-').next().unwrap().to_owned();
    assert!(
        events.iter().any(|e| e["event_type"] == "DocumentStatusChanged" && e["business_key"] == control.as_str()),
        "no Lens status of {file}: {s:#?}"
    );

    // A record nobody can decode: each consumer reading the topic dead-letters it, and the
    // audit view lists those dead letters with why.
    let garbage: BaseProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", w.pipeline.broker.brokers()).create().unwrap();
    let orders = w.pipeline.topic(gridsync_schemas::EventType::PurchaseOrderReceived).to_owned();
    garbage.send(BaseRecord::to(&orders).key("ACME/garbage").payload("not avro")).unwrap();
    garbage.flush(Duration::from_secs(10)).unwrap();
    let mut letters = Value::Null;
    let listed = wait_until(Duration::from_secs(60), || {
        letters = cli(&store_url, &["dead-letters", "--consumer", "audit"]);
        letters["items"].as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    assert!(listed, "the audit consumer's dead letter never got into the view: {letters}\n{}", w.logs());
    let letter = &letters["items"][0];
    assert_eq!((letter["stage"].as_str(), letter["original_topic"].as_str()), (Some("DECODE"), Some(orders.as_str())));
    let over_http = get(&format!("{view}/api/dead-letters?consumer=audit")).await;
    assert_eq!(over_http, letters);

    // Nothing lost, nothing twice, through the SIGKILL.
    let on_topics = recorded_everything(&w, &store_url).await;
    assert!(
        gridsync_tests::metric_sum(&audit_metrics, "gridsync_audit_events_recorded_total", "").await >= 1.0,
        "the second audit consumer recorded nothing itself"
    );

    // The CLI answers what the API answers.
    let over_api = lineage(&view).await;
    assert_eq!(cli(&store_url, &["lineage", PO, "--limit", "500"]), over_api);
    let partner = cli(&store_url, &["partner", "ACME", "--from", "2026-01-01T00:00:00Z", "--limit", "500"]);
    assert!(partner["events"]["items"].as_array().unwrap().iter().any(|e| e["event_type"] == "PurchaseOrderReceived"));
    let template = events.iter().find(|e| e["action"] == "billing-communication").unwrap()["content_item_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let content = cli(&store_url, &["content", &template]);
    assert_eq!(content["uses"]["items"][0]["partner"], "ACME", "{content:#}");
    assert_eq!(get(&format!("{view}/api/content/{template}")).await, content);

    // The page, in a real browser: search for the order, read the timeline.
    let browser = Browser::start().await;
    browser.open(&format!("{view}/")).await;
    let q = browser.find("#q").await;
    browser.type_into(&q, PO).await;
    let go = browser.find("#go").await;
    browser.click(&go).await;
    let url = browser.url_until(|url| url.contains(&format!("q={PO}"))).await;
    assert!(url.contains(&format!("q={PO}")), "{url}");
    let shown = browser
        .run("return Array.from(document.querySelectorAll('#timeline li.step')).map(li => li.id.slice(2))")
        .await;
    // (What the API answered once everything on the topics was recorded.)
    let api_order: Vec<&str> =
        over_api["events"]["items"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    let page_order: Vec<&str> = shown.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(page_order, api_order, "the page shows the lineage's steps in its order");
    // Each side effect sits under the event that caused it: the confirmation right under the order.
    let nested = browser
        .run(
            "const li = document.querySelector('#timeline li.step[data-type=\"PurchaseOrderReceived\"]');
              return [li.className, li.nextElementSibling.className, li.nextElementSibling.dataset.type]",
        )
        .await;
    assert_eq!(nested, serde_json::json!(["step depth-0", "step depth-1", "DeliveryPerformed"]), "{nested}");
    // Every side effect links to the step that caused it, on the same timeline.
    let causes = browser
        .run("return Array.from(document.querySelectorAll('#timeline a.cause')).map(a => a.getAttribute('href'))")
        .await;
    let causes: Vec<String> = causes.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert!(causes.len() >= 3, "{causes:?}");
    for cause in &causes {
        let found =
            browser.run(&format!("return document.querySelector('{}') !== null", cause.replace('\'', ""))).await;
        assert_eq!(found, Value::Bool(true), "{cause} is not on the timeline");
    }
    // Following a step's details shows the event whole.
    let details = browser.find("#timeline li.step a[href^='/events/']").await;
    browser.click(&details).await;
    browser.url_until(|url| url.contains("/events/")).await;
    let body = browser.run("return document.getElementById('body').textContent").await;
    assert!(body.as_str().unwrap().contains(PO), "{body}");
    browser.close().await;

    // Notifications and billing replayed from the earliest offsets: nothing made twice. A replay
    // is refused while the consumer runs, and a dry run changes nothing.
    let refused = w.gridsync(&["replay", "billing", "--to-earliest"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("live member"), "{refused:?}");
    let made_before = w.all_items().await;
    let files_before = (w.picked_up(""), w.waiting_outbound(""));
    stop(billing).await;
    stop(notifications).await;
    let dry = w.gridsync(&["replay", "billing", "--to-earliest", "--dry-run"]);
    let plan = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(dry.status.success() && plan.contains("would reset"), "{dry:?}");
    assert_eq!(String::from_utf8_lossy(&w.gridsync(&["replay", "billing", "--to-earliest", "--dry-run"]).stdout), plan);
    let replayed = [
        w.replayed("billing-consumer", "billing", &outbound).await,
        w.replayed("notifications-consumer", "notifications", &[]).await,
    ];
    assert_eq!(w.all_items().await, made_before, "a replay changed or made Amplience items");
    assert_eq!((w.picked_up(""), w.waiting_outbound("")), files_before, "a replay sent a document again");
    for child in replayed {
        stop(child).await;
    }

    // Replayed from the earliest offsets into an empty PostgreSQL store: the same answers.
    stop(second).await;
    let replay = w.gridsync(&["replay", "audit", "--to-earliest"]);
    assert!(replay.status.success(), "replay: {}", String::from_utf8_lossy(&replay.stderr));
    let postgres = common::postgres_schema_url().await;
    let (rebuilt, _) = w.audit("audit-rebuilt", &postgres, port);
    let again = recorded_everything(&w, &postgres).await;
    assert_eq!(again, on_topics);
    assert_eq!(cli(&postgres, &["lineage", PO, "--limit", "500"]), over_api);
    assert_eq!(cli(&postgres, &["content", &template]), content);
    assert_eq!(cli(&postgres, &["dead-letters", "--consumer", "audit"]), letters);

    stop(rebuilt).await;
}
