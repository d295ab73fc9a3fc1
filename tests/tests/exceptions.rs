//! The exceptions flow (flow 8) end to end through the real binaries: a file
//! that cannot be read (twice), an advance ship notice whose delivery failed
//! and an 820 its partner's acknowledgement rejected, all reported by
//! tg-producer from the mailbox and from tg-sim's Lens, become one task each
//! in amp-sim (the repeat counted on its task), plus a customer notice for the
//! failed ship notice. When each exchange succeeds later (the file resent and
//! read, the delivery retried, the acknowledgement accepting) its task is
//! resolved with what resolved it. The consumer is SIGKILLed on the way: still
//! one task per failure. Needs `cargo test --workspace` (binaries).

mod common;

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use common::{fixture, kill, stop, text, World};
use gridsync_schemas::{
    events::{ExceptionKind, Severity},
    samples::sample,
    Event, EventType,
};
use gridsync_trading_grid::lens::LensTransaction;
use serde_json::{json, Value};

fn lens(id: &str, editype: &str, from: &str, to: &str, reference: &str, status: &str, fa: &str) -> LensTransaction {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    serde_json::from_value(json!({
        "transactionid": id, "editype": editype, "envelopetype": "ISA", "senderaddress": from,
        "receiveraddress": to, "senderreference": reference, "status": status, "statusdate": now,
        "fastatus": fa, "fastatusdate": now, "arrivaltime": now,
        "errorcode": if status == "F" { Some("E42") } else { None },
        "externalerrormessage": if status == "F" { Some("partner mailbox unreachable") } else { None },
        "contentkeys": [],
    }))
    .unwrap()
}

fn task_of<'a>(tasks: &'a [Value], kind: &str) -> &'a Value {
    tasks
        .iter()
        .find(|t| t["item"]["body"]["task"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} task: {tasks:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_exchanges_become_one_task_each_resolved_when_they_succeed() {
    let w = World::start("exceptions").await;
    let (first, _) = w.consumer("exceptions-consumer", "first", &[]);

    // Three failures: a file that is not EDI; GLOBEX's ship notice 311 that Trading Grid
    // could not deliver; gridsync's 820 #512 that ACME's acknowledgement rejected.
    w.drop_inbound("orders-7.edi", b"THIS IS NOT AN EDI FILE\n");
    w.tg.ledger.upsert(lens("TX-ASN-311", "856", "GLOBEX", "GRIDSYNC", "000000311", "F", "N"));
    w.tg.ledger.upsert(lens("TX-820-512", "820", "GRIDSYNC", "ACME", "000000512", "S", "R"));
    // And a record for the audit view only (an 846 a partner's profile accepts and ignores):
    // informational, nobody's task; the counts of tasks below would show one.
    let mut ignored = sample(EventType::DocumentExchangeException, "GLOBEX", 91);
    if let Event::DocumentExchangeException(x) = &mut ignored {
        (x.kind, x.severity) = (ExceptionKind::Other, Severity::Info);
        x.reason = "transaction set 846 0004 of interchange 000000091 is accepted and ignored".into();
    }
    w.pipeline.producer.publish(&ignored, None).await.unwrap();

    w.items_until("gridsync/exception-task", "a first task", |tasks| !tasks.is_empty()).await;
    kill(first);
    let (second, _) = w.consumer("exceptions-consumer", "second", &[]);
    // A task is whole once it is in its workflow state (it is created, then moved there).
    let tasks = w
        .items_until("gridsync/exception-task", "three open tasks", |tasks| {
            tasks.len() == 3 && tasks.iter().all(|t| t["workflowState"] == "Open")
        })
        .await;
    let unreadable = task_of(&tasks, "MALFORMED_DOCUMENT");
    assert_eq!(text(unreadable, "/item/body/task/exchange"), "file/orders-7.edi");
    assert!(text(unreadable, "/item/body/task/guidance").starts_with("Ask the partner to correct the file"));
    let asn = task_of(&tasks, "DELIVERY_FAILED");
    assert_eq!(text(asn, "/item/body/recipient"), "globex-team@example.com");
    assert!(text(asn, "/item/body/body").contains("partner mailbox unreachable"), "{asn:#}");
    let rejected = task_of(&tasks, "FA_REJECTED");
    assert_eq!(text(rejected, "/item/body/task/exchange"), "ACME/out/512");

    // The ship notice's customer hears about it; nobody else's customer does.
    let notices =
        w.items_until("gridsync/exception-customer-notice", "the customer notice", |items| items.len() == 1).await;
    assert_eq!(text(&notices[0], "/item/body/recipient"), "purchasing@globex.example");

    // The same file, unreadable again: counted on its task, not a new one.
    w.drop_inbound("orders-7.edi", b"STILL NOT EDI, SENT AGAIN\n");
    w.items_until("gridsync/exception-task", "the repeat counted", |tasks| {
        tasks.iter().any(|t| t["item"]["body"]["task"]["occurrences"] == 2)
    })
    .await;

    // Each exchange succeeds: the file resent readable, the delivery retried, the 820 accepted.
    w.drop_inbound("orders-7.edi", &std::fs::read(fixture("x12_855_order_response.edi")).unwrap());
    w.tg.ledger.upsert(lens("TX-ASN-311", "856", "GLOBEX", "GRIDSYNC", "000000311", "S", "N"));
    w.tg.ledger.upsert(lens("TX-820-512", "820", "GRIDSYNC", "ACME", "000000512", "S", "A"));
    let tasks = w
        .items_until("gridsync/exception-task", "every task resolved", |tasks| {
            tasks.len() == 3 && tasks.iter().all(|t| t["workflowState"] == "Resolved")
        })
        .await;
    let resolution = |kind: &str| text(task_of(&tasks, kind), "/item/body/resolution/what");
    assert!(resolution("MALFORMED_DOCUMENT").contains("OrderResponseReceived"), "{tasks:#?}");
    assert_eq!(resolution("DELIVERY_FAILED"), "Trading Grid reports the 856 DELIVERED");
    assert_eq!(resolution("FA_REJECTED"), "Trading Grid reports the 820 FA_ACCEPTED");
    assert_eq!(task_of(&tasks, "MALFORMED_DOCUMENT")["item"]["body"]["task"]["occurrences"], 2);

    // amp-sim's own records: one item per task and notice, whatever was redone.
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for item in w.items("gridsync/exception").await {
        *per_key.entry(text(&item, "/item/body/_meta/deliveryKey")).or_default() += 1;
    }
    assert_eq!(per_key.len(), 4, "three tasks and one notice: {per_key:#?}");
    assert!(per_key.values().all(|n| *n == 1), "{per_key:#?}");

    // A package of partner content the partner rejected: the content goes back for re-approval,
    // linked from its task.
    let terms = w
        .finance()
        .create_item(
            &gridsync_amp_sim::SimConfig::default().repositories[0],
            &gridsync_amplience::NewContentItem {
                label: "Trading terms 2027".into(),
                schema: "https://gridsync.example/schemas/trading-terms.json".into(),
                delivery_key: Some(gridsync_amplience::DeliveryKey::parse("terms/2027/acme").unwrap()),
                folder_id: None,
                locale: None,
                fields: json!({ "title": "Trading terms 2027" }).as_object().cloned().unwrap(),
            },
        )
        .await
        .unwrap();
    w.finance().assign_workflow_state(&terms.id, "Approved").await.unwrap();
    let mut rejected_package = sample(EventType::DocumentExchangeException, "ACME", 90);
    if let Event::DocumentExchangeException(x) = &mut rejected_package {
        x.kind = ExceptionKind::ValidationError;
        x.envelope.trading_grid_document = None;
        x.envelope.business_key = "terms-2027-v1".into();
        x.reason = "the partner rejected package terms-2027-v1: unsigned PDF".into();
        x.details = [("content_item_id".to_owned(), terms.id.clone())].into();
    }
    w.pipeline.producer.publish(&rejected_package, None).await.unwrap();
    let tasks = w
        .items_until("gridsync/exception-task", "the package's task with its revision", |tasks| {
            tasks.iter().any(|t| t["item"]["body"]["revision"]["contentItemId"] == terms.id.as_str())
        })
        .await;
    let task = tasks.iter().find(|t| t["item"]["body"]["revision"]["contentItemId"] == terms.id.as_str()).unwrap();
    assert_eq!(text(task, "/item/body/revision/state"), "In review");
    let content = w.items("terms/").await;
    let reopened = content.iter().find(|i| i["item"]["id"] == terms.id.as_str()).unwrap();
    assert_eq!(reopened["workflowState"], "In review", "the content is back for re-approval");
    stop(second).await;
}

/// A success can be handled before the failure it clears: they travel on different topics, and
/// a failure may wait for a crashed instance's claim to expire. The failure's task then opens and
/// resolves at once, with what resolved it; a failure learned of after the success stays open.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_handled_after_the_success_that_clears_it_resolves_its_task_at_once() {
    let w = World::start("exceptions-late").await;
    let (consumer, metrics) = w.consumer("exceptions-consumer", "late", &[]);
    let success = sample(EventType::PurchaseOrderReceived, "ACME", 77);
    let failure = |seq: u64, learned_before_success_ms: i64| {
        let mut failure = sample(EventType::DocumentExchangeException, "ACME", seq);
        let envelope = failure.envelope_mut();
        envelope.trading_grid_document = success.envelope().trading_grid_document.clone();
        envelope.ingested_at = gridsync_schemas::Timestamp::from_millis(
            success.envelope().ingested_at.millis() - learned_before_success_ms,
        );
        failure
    };
    w.pipeline.producer.publish(&success, None).await.unwrap();
    let orders = w.pipeline.topic(EventType::PurchaseOrderReceived).to_owned();
    let handled = gridsync_tests::wait_for(std::time::Duration::from_secs(60), || async {
        gridsync_tests::metric_value(&metrics, "gridsync_records_processed_total", &orders).await >= 1.0
    });
    assert!(handled.await, "the success was never handled");

    // Learned of a minute before the success: opened and resolved.
    w.pipeline.producer.publish(&failure(77, 60_000), None).await.unwrap();
    let tasks = w
        .items_until("gridsync/exception-task", "the task resolved", |tasks| {
            tasks.len() == 1 && tasks[0]["workflowState"] == "Resolved"
        })
        .await;
    let resolution = text(&tasks[0], "/item/body/resolution/eventId");
    assert_eq!(resolution, success.envelope().event_id);

    // The same failure again, learned of a minute after the success: the task reopens and stays.
    w.pipeline.producer.publish(&failure(78, -60_000), None).await.unwrap();
    let tasks = w
        .items_until("gridsync/exception-task", "the task reopened", |tasks| {
            tasks.len() == 1
                && tasks[0]["workflowState"] == "Open"
                && tasks[0]["item"]["body"]["task"]["occurrences"] == 2
        })
        .await;
    assert_eq!(tasks.len(), 1);
    stop(consumer).await;
}
