//! How the audit store answers with a million events in it (SQLite, the default):
//! a transaction's lineage, a page of a partner's exchanges, what is open.
//!
//! `cargo bench -p gridsync-store --bench audit_lineage`. The store is filled once
//! (100,000 transactions of 10 events: PO, confirmation, invoice, billing message,
//! account status, reminder, payment, 820, its acknowledgement and Lens status) into
//! `target/audit-bench-<events>.db` and reused; `GRIDSYNC_BENCH_AUDIT_EVENTS` sets another size.
//! `GRIDSYNC_BENCH_AUDIT_POSTGRES=postgres://postgres@127.0.0.1:5432/test` fills and asks a
//! PostgreSQL store instead (schema `audit_bench_<events>`, reused the same way; drop it to fill again).
//! The fill records 500 events a transaction, as the audit consumer does from a backlog, and
//! prints its rate.

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, time::Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gridsync_store::{
    audit::{AuditEntry, AuditLog, AuditRef, PageRequest},
    Store,
};

const EVENTS_PER_TRANSACTION: usize = 10;
const PARTNERS: usize = 50;

/// Event ids as gridsync makes them, spread like UUIDs (the store's indexes see them in no order).
fn event_id(t: usize, n: usize) -> String {
    let mix = |mut x: u64| {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    let seed = (t * EVENTS_PER_TRANSACTION + n) as u64;
    format!("{:016x}-{:016x}", mix(seed), mix(!seed))
}

fn entry(t: usize, n: usize, event_type: &str, action: Option<&str>, refs: Vec<AuditRef>) -> AuditEntry {
    let id = event_id(t, n);
    let seen_at = 1_790_000_000_000 + i64::try_from(t * EVENTS_PER_TRANSACTION + n).unwrap_or(0) * 1000;
    let mut refs = refs;
    refs.push(AuditRef::new("event", id.clone()));
    refs.push(AuditRef::new("correlation", format!("P{}/PO/PO-{t}", t % PARTNERS)));
    AuditEntry {
        event_id: id.clone(),
        event_type: event_type.into(),
        source_system: "TRADING_GRID".into(),
        partner: format!("P{}", t % PARTNERS),
        business_key: format!("PO-{t}"),
        correlation_id: format!("P{}/PO/PO-{t}", t % PARTNERS),
        occurred_at: seen_at,
        seen_at,
        summary: format!("{event_type} of transaction {t}"),
        action: action.map(str::to_owned),
        status: None,
        due_at: None,
        content_item_id: action.map(|_| format!("template-{}", t % 20)),
        content_version: action.map(|_| 1),
        topic: "gridsync.bench".into(),
        partition: 0,
        offset: i64::try_from(t * EVENTS_PER_TRANSACTION + n).unwrap_or(0),
        body: format!("{{\"transaction\":{t}}}"),
        refs,
    }
}

/// The ten events of transaction `t`, each side effect caused by the event before it.
fn transaction(t: usize) -> Vec<AuditEntry> {
    let r = AuditRef::new;
    let cause = |n: usize| r("event", event_id(t, n));
    let control = format!("{t}");
    vec![
        entry(t, 0, "PurchaseOrderReceived", None, vec![r("po", format!("PO-{t}"))]),
        entry(t, 1, "DeliveryPerformed", Some("order-confirmation"), vec![cause(0)]),
        entry(t, 2, "InvoiceReceived", None, vec![r("po", format!("PO-{t}")), r("invoice", format!("INV-{t}"))]),
        entry(t, 3, "DeliveryPerformed", Some("billing-communication"), vec![cause(2)]),
        entry(t, 4, "DeliveryPerformed", Some("account-status"), vec![cause(2)]),
        entry(t, 5, "DeliveryPerformed", Some("payment-reminder"), vec![cause(2)]),
        entry(t, 6, "PaymentConfirmed", None, vec![r("invoice", format!("INV-{t}")), r("payment", format!("PAY-{t}"))]),
        entry(t, 7, "DeliveryPerformed", Some("remittance-advice"), vec![cause(6), r("control", control.clone())]),
        entry(t, 8, "FunctionalAckReceived", None, vec![r("control", control.clone())]),
        entry(t, 9, "DocumentStatusChanged", None, vec![r("control", control)]),
    ]
}

/// Events the fill records a transaction: the audit consumer's batch from a backlog.
const EVENTS_PER_COMMIT: usize = 500;

/// The store to fill: a file under `target/`, or a schema of the PostgreSQL server named.
async fn store_url(events: usize) -> String {
    if let Ok(base) = std::env::var("GRIDSYNC_BENCH_AUDIT_POSTGRES") {
        let schema = format!("audit_bench_{events}");
        let admin = Store::connect(&base).await.unwrap_or_else(|e| panic!("{e}"));
        admin
            .execute_unchecked(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        return format!("{base}?options=-c%20search_path%3D{schema}");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    std::fs::create_dir_all(&target).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
    format!("sqlite://{}", target.join(format!("audit-bench-{events}.db")).display())
}

async fn filled(events: usize) -> AuditLog {
    let url = store_url(events).await;
    let store = Store::connect(&url).await.unwrap_or_else(|e| panic!("{e}"));
    let log = store.audit();
    let (have, _) = log.counts().await.unwrap_or_else(|e| panic!("{e}"));
    let transactions = events / EVENTS_PER_TRANSACTION;
    if usize::try_from(have).unwrap_or(0) < transactions * EVENTS_PER_TRANSACTION {
        let started = Instant::now();
        for chunk in (0..transactions).collect::<Vec<_>>().chunks(EVENTS_PER_COMMIT / EVENTS_PER_TRANSACTION) {
            let entries: Vec<AuditEntry> = chunk.iter().flat_map(|t| transaction(*t)).collect();
            log.record_all(&entries).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let took = started.elapsed();
        println!(
            "filled {} ({}) with {events} events, {EVENTS_PER_COMMIT} a transaction, in {:.1} s ({:.0} events/s)",
            url.split('?').next().unwrap_or_default(),
            store.backend(),
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
    }
    log
}

fn audit_queries(c: &mut Criterion) {
    let events: usize =
        std::env::var("GRIDSYNC_BENCH_AUDIT_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let log = runtime.block_on(filled(events));
    let middle = events / EVENTS_PER_TRANSACTION / 2;
    let reference = format!("PO-{middle}");
    let found =
        runtime.block_on(log.lineage(&reference, None, &PageRequest::first(100))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.total, EVENTS_PER_TRANSACTION, "the whole lineage of {reference}");

    let mut group = c.benchmark_group(format!("audit store, {events} events"));
    group.bench_function("lineage of one order (10 events, 4 hops)", |b| {
        b.iter(|| runtime.block_on(log.lineage(&reference, None, &PageRequest::first(100))))
    });
    group.bench_function("a partner's exchanges, one page of 100", |b| {
        b.iter(|| runtime.block_on(log.partner_activity("P7", 1_790_000_000_000, i64::MAX, &PageRequest::first(100))))
    });
    // The bench's events are a second apart: a day is 86,400 of them.
    let last = 1_790_000_000_000 + i64::try_from(events).unwrap_or(0) * 1000;
    group.bench_function("open items of the last day, 100 of each", |b| {
        b.iter(|| runtime.block_on(log.open_items(i64::MAX, last - 86_400_000, 100)))
    });
    group.bench_function("open items of all time, 100 of each", |b| {
        b.iter(|| runtime.block_on(log.open_items(i64::MAX, 0, 100)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = audit_queries
}
criterion_main!(benches);
