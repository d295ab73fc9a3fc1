//! The store against real databases: a SQLite file, and the PostgreSQL server
//! on 127.0.0.1:5432 (`GRIDSYNC_TEST_POSTGRES_URL` overrides), each test in a
//! schema of its own.

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gridsync_store::{
    audit::{AuditEntry, AuditRef, DeadLetterEntry, PageRequest, READ_CONFIRMATION_REQUIRED},
    Backend, HandledDelivery, Store,
};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store in a fresh PostgreSQL schema.
async fn postgres_store() -> Store {
    Store::connect(&postgres_schema_url().await).await.unwrap()
}

/// The URL of a fresh PostgreSQL schema.
async fn postgres_schema_url() -> String {
    let base = std::env::var("GRIDSYNC_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = Store::connect(&base).await.expect("PostgreSQL on 127.0.0.1:5432 (deploy/test.sh checks it)");
    admin.execute_unchecked(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    format!("{base}?options=-c%20search_path%3D{schema}")
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    Store::connect(&format!("sqlite://{}", dir.path().join("gridsync.db").display())).await.unwrap()
}

async fn deliveries_are_recorded_once(store: Store) {
    let deliveries = store.webhook_deliveries();
    assert_eq!(deliveries.get("d-1").await.unwrap(), None);
    let first = HandledDelivery { event_id: "e-1".into(), outcome: "published".into() };
    deliveries.record("d-1", &first).await.unwrap();
    let second = HandledDelivery { event_id: "e-2".into(), outcome: "published".into() };
    deliveries.record("d-1", &second).await.unwrap();
    assert_eq!(deliveries.get("d-1").await.unwrap(), Some(first), "the first outcome wins");
    assert_eq!(deliveries.get("d-2").await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_records_webhook_deliveries_once_and_survives_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    assert_eq!(store.backend(), Backend::Sqlite);
    deliveries_are_recorded_once(store).await;
    let reopened = sqlite_store(&dir).await;
    assert!(reopened.webhook_deliveries().get("d-1").await.unwrap().is_some(), "kept on disk");
}

#[tokio::test]
async fn postgres_records_webhook_deliveries_once() {
    let store = postgres_store().await;
    assert_eq!(store.backend(), Backend::Postgres);
    deliveries_are_recorded_once(store).await;
}

#[tokio::test]
async fn an_unknown_url_is_a_clear_error() {
    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert_eq!(err.to_string(), "store URL \"mysql://localhost/x\" is neither sqlite:// nor postgres://");
}

/// Several stores (as several processes would) allocating at once never get the same number.
async fn control_numbers_never_repeat(stores: Vec<Store>) {
    let tasks: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            tokio::spawn(async move {
                let numbers = store.control_numbers();
                let mut got = Vec::new();
                for _ in 0..25 {
                    got.push(numbers.next("ACME", "X12").await.unwrap());
                }
                // Another partner and standard keep their own sequences.
                assert_eq!(numbers.next(&format!("OTHER{i}"), "EDIFACT").await.unwrap(), 1);
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=100).collect::<Vec<i64>>(), "every number once, none skipped");
}

#[tokio::test]
async fn sqlite_control_numbers_never_repeat_across_connections_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(sqlite_store(&dir).await);
    }
    control_numbers_never_repeat(stores).await;
    let reopened = sqlite_store(&dir).await;
    assert_eq!(reopened.control_numbers().last("ACME", "X12").await.unwrap(), Some(100));
    assert_eq!(reopened.control_numbers().next("ACME", "X12").await.unwrap(), 101);
}

#[tokio::test]
async fn postgres_control_numbers_never_repeat_across_connections() {
    let url = postgres_schema_url().await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Store::connect(&url).await.unwrap());
    }
    control_numbers_never_repeat(stores).await;
}

#[tokio::test]
async fn control_numbers_wrap_after_nine_digits() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    store.control_numbers().next("ACME", "X12").await.unwrap();
    store
        .execute_unchecked(&format!(
            "UPDATE control_numbers SET last_used = {} WHERE partner = 'ACME'",
            gridsync_store::MAX_CONTROL_NUMBER
        ))
        .await
        .unwrap();
    assert_eq!(store.control_numbers().next("ACME", "X12").await.unwrap(), 1);
}

/// Concurrent reservations of one key (a crash's retry racing a replica) agree
/// on one control number; other keys get their own; watermarks and source states overwrite;
/// published events are recorded once.
async fn outbound_reservations_are_stable(stores: Vec<Store>) {
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| {
            tokio::spawn(async move { store.outbound_interchanges().reserve("997/ACME/905", "ACME", "X12").await })
        })
        .collect();
    let mut reservations = Vec::new();
    for task in tasks {
        reservations.push(task.await.unwrap().unwrap());
    }
    assert!(reservations.windows(2).all(|w| w[0] == w[1]), "{reservations:?}");
    let store = &stores[0];
    let again = store.outbound_interchanges().reserve("997/ACME/905", "ACME", "X12").await.unwrap();
    assert_eq!(again, reservations[0], "a retry gets the same number and time");
    let other = store.outbound_interchanges().reserve("997/ACME/906", "ACME", "X12").await.unwrap();
    assert!(other.control_number > again.control_number);

    let marks = store.watermarks();
    assert_eq!(marks.get("lens").await.unwrap(), None);
    marks.set("lens", "2026-11-25T10:00:00Z").await.unwrap();
    marks.set("lens", "2026-11-25T11:00:00Z").await.unwrap();
    assert_eq!(marks.get("lens").await.unwrap().as_deref(), Some("2026-11-25T11:00:00Z"));

    let (lens, other) = (store.source_states("lens"), store.source_states("other"));
    assert_eq!(lens.get("tx-1").await.unwrap(), None);
    lens.set("tx-1", "S|W|").await.unwrap();
    lens.set("tx-1", "S|A|").await.unwrap();
    other.set("tx-1", "elsewhere").await.unwrap();
    assert_eq!(lens.get("tx-1").await.unwrap().as_deref(), Some("S|A|"), "sources keep their own items");

    let published = store.published_events();
    assert!(!published.contains("e-1").await.unwrap());
    published.record("e-1", "tg-producer").await.unwrap();
    published.record("e-1", "tg-producer").await.unwrap();
    assert!(published.contains("e-1").await.unwrap() && !published.contains("e-2").await.unwrap());

    // Pruning forgets what is older than the retention, and only that (e-2 is 300 ms younger
    // than e-1, the retention half of that, so a slow machine has 150 ms to spare).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    published.record("e-2", "tg-producer").await.unwrap();
    let removed = store.prune(std::time::Duration::from_millis(150)).await.unwrap();
    assert!(removed >= 1, "{removed}");
    assert!(!published.contains("e-1").await.unwrap() && published.contains("e-2").await.unwrap());
    assert_eq!(marks.get("lens").await.unwrap().as_deref(), Some("2026-11-25T11:00:00Z"), "watermarks stay");
    assert_eq!(store.prune(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_outbound_reservations_and_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(sqlite_store(&dir).await);
    }
    outbound_reservations_are_stable(stores).await;
}

#[tokio::test]
async fn postgres_outbound_reservations_and_watermarks() {
    let url = postgres_schema_url().await;
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Store::connect(&url).await.unwrap());
    }
    outbound_reservations_are_stable(stores).await;
}

async fn side_effects_are_claimed_once(store: Store) {
    use gridsync_store::{Claim, Performed};
    use std::time::Duration;
    let ledger = store.side_effects();
    let lease = Duration::from_secs(60);
    assert_eq!(ledger.claim("e1/confirm/amp", "worker-a", lease).await.unwrap(), Claim::Claimed);
    // A second owner (a rebalance in progress) finds it busy, not free.
    assert!(matches!(
        ledger.claim("e1/confirm/amp", "worker-b", lease).await.unwrap(),
        Claim::Busy { owner, .. } if owner == "worker-a"
    ));
    let performed = Performed {
        external_id: "item-1".into(),
        outcome: "created".into(),
        performed_at_ms: 42,
        reported: false,
        details: Some(r#"{"content_version":3}"#.into()),
    };
    assert!(ledger.complete("e1/confirm/amp", "worker-a", &performed, lease).await.unwrap());
    // Performed, not yet reported: the performer reports it, not a second owner.
    assert!(matches!(ledger.claim("e1/confirm/amp", "worker-b", lease).await.unwrap(), Claim::Busy { .. }));
    assert_eq!(ledger.claim("e1/confirm/amp", "worker-a", lease).await.unwrap(), Claim::Done(performed.clone()));
    ledger.mark_reported("e1/confirm/amp").await.unwrap();
    assert_eq!(
        ledger.claim("e1/confirm/amp", "worker-b", lease).await.unwrap(),
        Claim::Done(Performed { reported: true, ..performed.clone() })
    );
    assert_eq!(ledger.get("e1/confirm/amp").await.unwrap(), Some(Performed { reported: true, ..performed }));

    // An owner that died: its claim expires and is taken over; the late owner can no longer complete.
    assert_eq!(ledger.claim("e2/confirm/amp", "dead", Duration::ZERO).await.unwrap(), Claim::Claimed);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(ledger.claim("e2/confirm/amp", "worker-b", lease).await.unwrap(), Claim::Claimed);
    let late = Performed {
        external_id: "x".into(),
        outcome: "created".into(),
        performed_at_ms: 1,
        reported: false,
        details: None,
    };
    assert!(!ledger.complete("e2/confirm/amp", "dead", &late, lease).await.unwrap());
    // A performer that died before reporting: once its lease is over, the report is another's.
    assert_eq!(ledger.claim("e3/confirm/amp", "dies", Duration::ZERO).await.unwrap(), Claim::Claimed);
    assert!(ledger.complete("e3/confirm/amp", "dies", &late, Duration::ZERO).await.unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(ledger.claim("e3/confirm/amp", "worker-b", lease).await.unwrap(), Claim::Done(late.clone()));
    // A released claim is free at once, and leaves nothing begun.
    ledger.release("e2/confirm/amp", "worker-b").await.unwrap();
    assert!(!ledger.begun("e2/confirm/amp").await.unwrap());
    assert_eq!(ledger.claim("e2/confirm/amp", "worker-c", lease).await.unwrap(), Claim::Claimed);
    // Begun: claimed (by anyone, live or dead) or performed; never claimed is not.
    assert!(ledger.begun("e2/confirm/amp").await.unwrap() && ledger.begun("e3/confirm/amp").await.unwrap());
    assert!(!ledger.begun("e9/confirm/amp").await.unwrap());

    // Approved templates: the newest recorded version wins.
    use gridsync_store::ApprovedTemplate;
    let templates = store.approved_templates();
    assert_eq!(templates.latest("t1").await.unwrap(), None);
    templates.record("t1", &ApprovedTemplate { version: 3, body: "{\"v\":3}".into() }).await.unwrap();
    templates.record("t1", &ApprovedTemplate { version: 2, body: "{\"v\":2}".into() }).await.unwrap();
    assert_eq!(templates.latest("t1").await.unwrap().map(|t| t.version), Some(3));
    templates.record("t1", &ApprovedTemplate { version: 5, body: "{\"v\":5}".into() }).await.unwrap();
    assert_eq!(templates.latest("t1").await.unwrap(), Some(ApprovedTemplate { version: 5, body: "{\"v\":5}".into() }));
}

#[tokio::test]
async fn sqlite_side_effects_are_claimed_once() {
    let dir = tempfile::tempdir().unwrap();
    side_effects_are_claimed_once(sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn postgres_side_effects_are_claimed_once() {
    side_effects_are_claimed_once(postgres_store().await).await;
}

async fn timers_fire_once_and_cancel(store: Store) {
    use gridsync_store::{Timer, TimerState};
    use std::time::Duration;
    let timers = store.timers("billing");
    let timer = |key: &str, due: i64| Timer {
        key: key.into(),
        kind: "payment-reminder".into(),
        subject: "invoice/ACME/INV-1".into(),
        due_at_ms: due,
        payload: "{}".into(),
    };
    assert!(timers.schedule(&timer("r-3", 1_000)).await.unwrap());
    assert!(!timers.schedule(&timer("r-3", 9_999)).await.unwrap(), "scheduling again is a no-op");
    assert!(timers.schedule(&timer("r0", 2_000)).await.unwrap());
    assert!(timers.schedule(&timer("r7", 3_000)).await.unwrap());
    // Another flow's timers are its own.
    assert!(store.timers("exceptions").claim_due(5_000, "x", Duration::from_secs(60), 10).await.unwrap().is_empty());

    let lease = Duration::from_secs(60);
    assert!(timers.claim_due(999, "a", lease, 10).await.unwrap().is_empty(), "nothing due yet");
    let due = timers.claim_due(2_500, "a", lease, 10).await.unwrap();
    assert_eq!(due.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["r-3", "r0"]);
    assert!(timers.claim_due(2_500, "b", lease, 10).await.unwrap().is_empty(), "a live claim is held");
    assert!(timers.fired("r-3", "a").await.unwrap());
    assert!(!timers.fired("r-3", "a").await.unwrap(), "fired once");
    // A failed firing gives the timer back: another owner takes it.
    timers.release("r0", "a", Duration::ZERO).await.unwrap();
    assert_eq!(timers.claim_due(2_500, "b", lease, 10).await.unwrap().len(), 1);
    assert!(!timers.fired("r0", "a").await.unwrap(), "a's claim was given up");
    assert!(timers.fired("r0", "b").await.unwrap());
    // c is firing r14 when the invoice is paid; r7, which c gave back untouched, is not.
    assert!(timers.schedule(&timer("r14", 4_000)).await.unwrap());
    assert_eq!(timers.claim_due(4_000, "c", lease, 10).await.unwrap().len(), 2);
    timers.release("r7", "c", Duration::ZERO).await.unwrap();
    // Paid: the rest is cancelled and never comes due, but for the timer being fired, whose
    // firer may have begun its work: it fires to the end.
    assert_eq!(timers.cancel("invoice/ACME/INV-1", None, "paid").await.unwrap(), 1);
    assert!(timers.claim_due(i64::MAX, "a", lease, 10).await.unwrap().is_empty());
    assert!(timers.fired("r14", "c").await.unwrap());
    let states: Vec<(String, TimerState)> =
        timers.of_subject("invoice/ACME/INV-1").await.unwrap().into_iter().map(|(t, s)| (t.key, s)).collect();
    assert_eq!(
        states,
        [
            ("r-3".into(), TimerState::Fired),
            ("r0".into(), TimerState::Fired),
            ("r7".into(), TimerState::Cancelled),
            ("r14".into(), TimerState::Fired)
        ]
    );

    let records = store.flow_records("billing");
    assert!(records.put_new("invoice", "ACME/INV-1", "ACME", "{\"a\":1}").await.unwrap());
    assert!(!records.put_new("invoice", "ACME/INV-1", "ACME", "{\"a\":2}").await.unwrap());
    records.put("invoice", "ACME/INV-2", "ACME", "{\"b\":1}").await.unwrap();
    assert_eq!(records.get("invoice", "ACME/INV-1").await.unwrap().as_deref(), Some("{\"a\":1}"));
    assert_eq!(records.of_subject("invoice", "ACME").await.unwrap().len(), 2);
    assert_eq!(store.flow_records("exceptions").get("invoice", "ACME/INV-1").await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_timers_fire_once_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    timers_fire_once_and_cancel(sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn postgres_timers_fire_once_and_cancel() {
    timers_fire_once_and_cancel(postgres_store().await).await;
}

/// An audit entry of `event_type` for `partner`, seen at `seen_at`, with `refs` (plus its own id).
fn audit_entry(id: &str, event_type: &str, partner: &str, seen_at: i64, refs: &[(&str, &str)]) -> AuditEntry {
    let mut all: Vec<AuditRef> = refs.iter().map(|(k, v)| AuditRef::new(k, *v)).collect();
    all.push(AuditRef::new("event", id));
    AuditEntry {
        event_id: id.into(),
        event_type: event_type.into(),
        source_system: "TRADING_GRID".into(),
        partner: partner.into(),
        business_key: id.into(),
        correlation_id: format!("{partner}/{id}"),
        occurred_at: seen_at,
        seen_at,
        summary: format!("{event_type} {id}"),
        action: None,
        status: None,
        due_at: None,
        content_item_id: None,
        content_version: None,
        topic: "t".into(),
        partition: 0,
        offset: seen_at,
        body: "{}".into(),
        refs: all,
    }
}

fn delivery(id: &str, partner: &str, seen_at: i64, action: &str, cause: &str, refs: &[(&str, &str)]) -> AuditEntry {
    let mut refs = refs.to_vec();
    refs.push(("event", cause));
    AuditEntry { action: Some(action.into()), ..audit_entry(id, "DeliveryPerformed", partner, seen_at, &refs) }
}

/// `e` about version 1 of the content item `id`.
fn content(e: AuditEntry, id: &str) -> AuditEntry {
    AuditEntry { content_item_id: Some(id.into()), content_version: Some(1), ..e }
}

fn ids(entries: &[AuditEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.event_id.as_str()).collect()
}

async fn audit_answers(store: Store) {
    let log = store.audit();
    let template =
        |e: AuditEntry, v| AuditEntry { content_item_id: Some("tpl-1".into()), content_version: Some(v), ..e };
    let entries = vec![
        audit_entry("po", "PurchaseOrderReceived", "ACME", 1, &[("po", "P1"), ("inbound-file", "acme.edi")]),
        audit_entry("po2", "PurchaseOrderReceived", "ACME", 2, &[("po", "P2"), ("inbound-file", "acme.edi")]),
        template(delivery("conf", "ACME", 3, "order-confirmation", "po", &[("content", "tpl-1")]), 3),
        template(delivery("conf2", "ACME", 4, "order-confirmation", "po2", &[("content", "tpl-1")]), 4),
        AuditEntry {
            due_at: Some(50),
            ..audit_entry("inv", "InvoiceReceived", "ACME", 5, &[("po", "P1"), ("invoice", "I1")])
        },
        AuditEntry {
            due_at: Some(50),
            ..audit_entry("inv2", "InvoiceReceived", "ACME", 6, &[("po", "P2"), ("invoice", "I2")])
        },
        audit_entry("pay", "PaymentConfirmed", "ACME", 7, &[("invoice", "I1"), ("payment", "PAY1")]),
        delivery(
            "820",
            "ACME",
            8,
            "remittance-advice",
            "pay",
            &[("file", "ACME_820_PAY1-000000012.edi"), ("control", "12")],
        ),
        audit_entry("fa", "FunctionalAckReceived", "ACME", 9, &[("control", "12")]),
        delivery(
            "812",
            "ACME",
            10,
            "adjustment-advice",
            "inv2",
            &[("file", "ACME_812_I2-000000013.edi"), ("control", "13")],
        ),
        audit_entry("globex-po", "PurchaseOrderReceived", "GLOBEX", 11, &[("po", "P1")]),
        // Terms that must be confirmed read, sent to ACME (read) and GLOBEX (not); a guide that need not be.
        AuditEntry {
            status: Some(READ_CONFIRMATION_REQUIRED.into()),
            ..content(audit_entry("terms", "PartnerContentPublished", "ACME", 12, &[]), "terms-1")
        },
        content(
            delivery("pkg-acme", "ACME", 13, "partner-package", "terms", &[("file", "ACME_PKG_terms-1-v1.zip")]),
            "terms-1",
        ),
        content(
            delivery("pkg-globex", "GLOBEX", 14, "partner-package", "terms", &[("file", "GLOBEX_PKG_terms-1-v1.zip")]),
            "terms-1",
        ),
        AuditEntry {
            status: Some("READ_CONFIRMED".into()),
            ..audit_entry("read", "DocumentStatusChanged", "ACME", 15, &[("file", "ACME_PKG_terms-1-v1.zip")])
        },
        content(audit_entry("guide", "PartnerContentApproved", "ACME", 16, &[]), "guide-1"),
        content(
            delivery("pkg-guide", "ACME", 17, "partner-package", "guide", &[("file", "ACME_PKG_guide-1-v1.zip")]),
            "guide-1",
        ),
        // Two exception tasks (Amplience items), one opened twice; the first resolved.
        delivery("task-a", "ACME", 18, "exception-occurrence", "x1", &[("external", "item-a")]),
        delivery("task-b", "ACME", 19, "exception-occurrence", "x2", &[("external", "item-b")]),
        delivery("task-b-again", "ACME", 20, "exception-occurrence", "x3", &[("external", "item-b")]),
        delivery("resolved-a", "ACME", 21, "task-resolved", "ok1", &[("external", "item-a")]),
    ];
    // The first two alone, then the whole list in one batch (as the audit consumer records a
    // backlog) with an event twice in it: each recorded once, its references with it.
    for e in &entries[..2] {
        assert!(log.record(e).await.unwrap(), "{} is new", e.event_id);
    }
    let mut batch = entries.clone();
    batch.push(entries[5].clone());
    let new = log.record_each(&batch).await.unwrap();
    let expected: Vec<bool> = (0..batch.len()).map(|i| (2..entries.len()).contains(&i)).collect();
    assert_eq!(new, expected, "new: all but the two recorded before and the repeat");
    for e in &entries {
        assert!(!log.record(e).await.unwrap(), "{} again changes nothing", e.event_id);
    }
    assert_eq!(log.counts().await.unwrap(), (21, 0));

    // ACME's order P1 from its 850 to the acknowledgement of the 820, in the order seen: not the
    // other order of the same file, nor the one sharing its template, nor GLOBEX's P1.
    let all = PageRequest::first(500);
    let lineage = log.lineage("P1", Some("ACME"), &all).await.unwrap();
    assert_eq!(ids(&lineage.events.items), ["po", "conf", "inv", "pay", "820", "fa"]);
    assert_eq!((lineage.total, lineage.truncated), (6, false));
    let any_partner = log.lineage("P1", None, &all).await.unwrap();
    assert!(ids(&any_partner.events.items).contains(&"globex-po"));
    assert_eq!(ids(&log.lineage("ACME_820_PAY1-000000012.edi", None, &all).await.unwrap().events.items).len(), 6);
    assert_eq!(log.lineage("nothing", None, &all).await.unwrap().total, 0);
    // Paged: two at a time, the pages adding up to the whole.
    let mut paged = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let answer = log.lineage("P1", Some("ACME"), &page).await.unwrap();
        assert!(answer.events.items.len() <= 2);
        paged.extend(answer.events.items);
        match answer.events.next {
            Some(next) => page = PageRequest { cursor: Some(next), limit: Some(2) },
            None => break,
        }
    }
    assert_eq!(ids(&paged), ids(&lineage.events.items));

    // Where the template went, by version and partner.
    let uses = log.content_uses("tpl-1", &all).await.unwrap().items;
    assert_eq!(
        uses.iter().map(|u| (u.content_version, u.deliveries)).collect::<Vec<_>>(),
        [(Some(3), 1), (Some(4), 1)]
    );
    // A partner's exchanges in a time range.
    assert_eq!(ids(&log.partner_activity("ACME", 3, 6, &all).await.unwrap().items), ["conf", "conf2", "inv"]);

    // Open at 100: the 812 is unacknowledged; invoice I2 is overdue and unpaid, I1 is paid;
    // GLOBEX has not confirmed reading the terms (ACME has; the guide asks no confirmation).
    let open = log.open_items(100, 0, 100).await.unwrap();
    let subjects = |items: &[gridsync_store::audit::OpenItem]| -> Vec<String> {
        items.iter().map(|i| i.subject.clone()).collect()
    };
    assert_eq!(subjects(&open.unacknowledged_documents), ["ACME_812_I2-000000013.edi"]);
    assert_eq!(subjects(&open.overdue_invoices), ["inv2"]);
    assert_eq!(subjects(&open.unread_packages), ["GLOBEX_PKG_terms-1-v1.zip"]);
    assert_eq!(subjects(&open.unresolved_tasks), ["item-b"]);
    // Only what happened in the window is looked at.
    let recent = log.open_items(100, 19, 100).await.unwrap();
    assert!(recent.unacknowledged_documents.is_empty() && recent.overdue_invoices.is_empty());
    assert_eq!(subjects(&recent.unresolved_tasks), ["item-b"], "its second occurrence is in the window");

    // A dead letter, and the same record dead-lettered again by a replay: one.
    let letter = DeadLetterEntry {
        topic: "gridsync.billing.dlq".into(),
        partition: 0,
        offset: 0,
        consumer: "billing".into(),
        stage: "DECODE".into(),
        error_class: "codec.unknown_framing".into(),
        error_message: "unknown framing".into(),
        failed_at: "2026-12-02T10:00:00.000Z".into(),
        original_topic: Some("gridsync.tg.orders".into()),
        original_partition: Some(3),
        original_offset: Some(7),
        key: Some("ACME/x".into()),
        payload_bytes: 8,
    };
    assert!(log.record_dead_letter(&letter).await.unwrap());
    assert!(!log.record_dead_letter(&DeadLetterEntry { offset: 1, ..letter.clone() }).await.unwrap());
    let letters = log.dead_letters(Some("billing"), &all).await.unwrap();
    assert_eq!(letters.items, std::slice::from_ref(&letter));
    // A backlog in one transaction, more rows than one statement holds: the replayed letter and
    // a repeat within the batch are one each; letters without an original place key by their own.
    let batch: Vec<DeadLetterEntry> = (0..260)
        .map(|n| DeadLetterEntry {
            consumer: "exceptions".into(),
            offset: n,
            original_offset: (n % 2 == 0).then_some(n),
            ..letter.clone()
        })
        .chain([DeadLetterEntry { offset: 9, ..letter.clone() }, DeadLetterEntry { offset: 4, ..letter.clone() }])
        .collect();
    assert_eq!(log.record_dead_letters(&batch).await.unwrap(), 260, "every exceptions letter once, no billing one");
    assert_eq!(log.dead_letters(Some("exceptions"), &all).await.unwrap().items.len(), 260);
    assert_eq!(log.record_dead_letters(&batch).await.unwrap(), 0, "all recorded already");
    assert!(log.dead_letters(Some("audit"), &all).await.unwrap().items.is_empty());

    // How long ACME took to acknowledge what gridsync sent it: the 820 (seen at 8), its 997 (9).
    assert_eq!(log.acknowledgement_latencies("ACME", 0, 100).await.unwrap(), [1]);
    assert!(log.acknowledgement_latencies("GLOBEX", 0, 100).await.unwrap().is_empty());

    // Retention: what gridsync learned of before the cut-off goes, references and all; the rest
    // stays and still answers.
    let ids = |lineage: gridsync_store::audit::Lineage| -> Vec<String> {
        lineage.events.items.into_iter().map(|e| e.event_id).collect()
    };
    let (events_before, _) = log.counts().await.unwrap();
    let before = ids(log.lineage("P1", None, &all).await.unwrap());
    assert!(before.contains(&"po".to_owned()) && before.contains(&"pay".to_owned()), "{before:?}");
    let (pruned, letters_pruned) = log.prune(5).await.unwrap();
    assert_eq!((pruned, letters_pruned), (4, 0), "po, po2, conf, conf2 (seen 1-4); the letter was recorded now");
    assert_eq!(log.counts().await.unwrap().0, events_before - 4);
    let after = ids(log.lineage("P1", None, &all).await.unwrap());
    assert!(!after.iter().any(|id| ["po", "conf"].contains(&id.as_str())), "{after:?}");
    assert!(after.contains(&"inv".to_owned()) && after.contains(&"pay".to_owned()), "{after:?}");
    assert!(log.event("po").await.unwrap().is_none());
    assert!(log.lineage("acme.edi", None, &all).await.unwrap().events.items.is_empty(), "no reference left behind");
    assert_eq!(log.prune(5).await.unwrap(), (0, 0), "pruning again removes nothing");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let later = i64::try_from(now.as_millis()).unwrap() + 1;
    assert_eq!(log.prune(later).await.unwrap().1, 261, "the dead letters, past their retention");
}

#[tokio::test]
async fn sqlite_audit_store_answers() {
    let dir = tempfile::tempdir().unwrap();
    audit_answers(sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn postgres_audit_store_answers() {
    audit_answers(postgres_store().await).await;
}

/// Many rows in multi-row statements: every one recorded, a key given twice ends as its last.
async fn batched_records_keep_every_row_and_the_last_of_a_repeated_key(store: Store) {
    let ids: Vec<String> = (0..1_000).map(|n| format!("evt-{n}")).collect();
    let published = store.published_events();
    published.record_all(&ids, "test").await.unwrap();
    published.record_all(&ids[..10], "test").await.unwrap(); // again: no conflict error
    assert_eq!(published.contained(&ids).await.unwrap().len(), 1_000);
    let received = store.received_controls();
    let mut rows: Vec<(String, Option<String>)> =
        (0..700).map(|n| (format!("doc-{n}"), Some(format!("key-{n}")))).collect();
    rows.push(("doc-later".into(), Some("key-3".into())));
    received.record_acknowledged(&rows, "test").await.unwrap();
    let keys: Vec<String> = (0..700).map(|n| format!("key-{n}")).collect();
    let last = received.last_all(&keys).await.unwrap();
    assert_eq!(last.len(), 700);
    assert_eq!(last["key-3"], "doc-later");
    assert_eq!(last["key-699"], "doc-699");
}

/// What the control numbers say is not written again among the published events; what they
/// cannot say (no numbers, or numbers that name another document now) is.
async fn acknowledged_events_are_answered_for_by_their_numbers_or_the_published_events(store: Store) {
    let (received, published) = (store.received_controls(), store.published_events());
    let ids = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let keyed = |id: &str, key: &str| (id.to_owned(), Some(key.to_owned()));
    // A fresh batch: two documents, one event without numbers, and a key given twice in it.
    let batch = [keyed("a", "k1"), keyed("b", "k2"), ("n".to_owned(), None), keyed("c", "k3"), keyed("d", "k3")];
    received.record_acknowledged(&batch, "tg").await.unwrap();
    let all = ids(&["a", "b", "c", "d", "n", "e", "f"]);
    let mut listed: Vec<String> = published.contained(&all).await.unwrap().into_iter().collect();
    listed.sort();
    assert_eq!(listed, ids(&["c", "n"]), "only what the numbers do not name");
    let keys = ids(&["k1", "k2", "k3"]);
    let last = received.last_all(&keys).await.unwrap();
    assert_eq!((last["k1"].as_str(), last["k2"].as_str(), last["k3"].as_str()), ("a", "b", "d"));
    // Later: k1 reused for another document.
    received.record_acknowledged(&[keyed("e", "k1")], "tg").await.unwrap();
    let mut listed: Vec<String> = published.contained(&all).await.unwrap().into_iter().collect();
    listed.sort();
    assert_eq!(listed, ids(&["a", "c", "n"]), "the document k1 named before is kept");
    assert_eq!(received.last_all(&keys).await.unwrap()["k1"], "e");
}

#[tokio::test]
async fn sqlite_acknowledged_events() {
    let dir = tempfile::tempdir().unwrap();
    acknowledged_events_are_answered_for_by_their_numbers_or_the_published_events(sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn postgres_acknowledged_events() {
    acknowledged_events_are_answered_for_by_their_numbers_or_the_published_events(postgres_store().await).await;
}

#[tokio::test]
async fn sqlite_batched_records() {
    let dir = tempfile::tempdir().unwrap();
    batched_records_keep_every_row_and_the_last_of_a_repeated_key(sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn postgres_batched_records() {
    batched_records_keep_every_row_and_the_last_of_a_repeated_key(postgres_store().await).await;
}
