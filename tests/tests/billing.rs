//! The billing flow (flow 2) end to end, both ways, through the real
//! binaries: invoices dropped into the Trading Grid mailbox become billing
//! communications and account status in amp-sim, and payment reminders that
//! fire when the flows' clock reaches them; a payment and a dispute recorded
//! in amp-sim become an 820 and a CREADV in the outbound mailbox, which
//! tg-sim's partner picks up and acknowledges, and the acknowledgement is
//! recorded on the account. An invoice that does not add up is held and
//! becomes an exception. The consumer is SIGKILLed twice on the way: still one
//! document per payment, one reminder per due date, one item per side effect.
//! Needs `cargo test --workspace` (binaries).

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{fixture, kill, metric, stop, text, World};
use gridsync_schemas::{
    events::{DocumentExchangeException, ExceptionKind, TargetSystem},
    Event, EventType,
};
use gridsync_tests::{wait_for, wait_until};
use serde_json::{json, Value};

/// An ACME invoice for order 4500012345 whose lines (1,194.00) and tax (50.00)
/// do not make its stated total (2,500.00).
const BAD_INVOICE: &str =
    "ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261201*0900*U*00401*000000977*0*P*>~
GS*IN*ACME*GRIDSYNC*20261201*0900*977*X*004010~
ST*810*0001~
BIG*20261201*INV-88002*20261125*4500012345~
CUR*SE*USD~
ITD*01*3*2**30**30~
IT1*1*120*EA*9.95**VP*SKU-1001~
TXI*ST*50~
TDS*250000~
CTT*1~
SE*9*0001~
GE*1*977~
IEA*1*000000977~
";

fn count_by_key(items: &[Value]) -> BTreeMap<String, usize> {
    items.iter().fold(BTreeMap::new(), |mut m, i| {
        *m.entry(text(i, "/item/body/_meta/deliveryKey")).or_default() += 1;
        m
    })
}

/// The exceptions of `kind` on their topic (at least one).
fn exceptions_of(w: &World, kind: ExceptionKind) -> Vec<DocumentExchangeException> {
    let of_kind = |events: &[Event]| -> Vec<DocumentExchangeException> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::DocumentExchangeException(x) if x.kind == kind => Some(x.clone()),
                _ => None,
            })
            .collect()
    };
    of_kind(&w.events_until(EventType::DocumentExchangeException, |events| !of_kind(events).is_empty()))
}

/// Finance settles Nordwaren's dispute D-31 over INV-DE-5001 with a credit of `amount` EUR.
async fn resolve_dispute(w: &World, amount: &str, resolved_at: &str, summary: &str) {
    w.record_in_amplience(
        "Dispute D-31",
        "https://gridsync.example/schemas/dispute-resolution.json",
        json!({ "partnerId": "4012345500004", "invoiceNumber": "INV-DE-5001", "disputeId": "D-31",
                "resolution": "credit-issued", "adjustedAmount": amount, "currency": "EUR",
                "resolvedAt": resolved_at, "summary": summary }),
        "Dispute resolved",
    )
    .await;
}

fn status_of<'a>(accounts: &'a [Value], partner: &str) -> Option<&'a Value> {
    accounts.iter().find(|a| a["item"]["body"]["tradingPartnerId"] == partner).map(|a| &a["item"]["body"])
}

/// Starts billing consumer `name`, writing its documents where the world's partner picks them
/// up, numbered in tg-producer's store (as deployed).
fn billing(w: &World, name: &str) -> (std::process::Child, String) {
    let outbound = w.billing_outbound();
    w.consumer("billing-consumer", name, &outbound.each_ref().map(String::as_str))
}

/// A world on 2026-12-20 whose first billing consumer has two invoices coming: ACME's
/// INV-88001 (2,370.00 USD with its two orders, due 2026-12-26) and Nordwaren's INVOIC
/// INV-DE-5001 (714.00 EUR with 114.00 of tax).
fn with_two_invoices(w: &World) -> std::process::Child {
    w.set_clock("2026-12-20T08:00:00Z");
    let (first, _) = billing(w, "first");
    w.drop_inbound("acme.edi", &std::fs::read(fixture("x12_multi_interchange_crlf.edi")).unwrap());
    w.drop_inbound("nordwaren.edi", &std::fs::read(fixture("edifact_default_separators_one_line.edi")).unwrap());
    first
}

#[tokio::test(flavor = "multi_thread")]
async fn invoices_payments_and_disputes_flow_both_ways_once_through_killed_consumers() {
    let w = World::start("billing").await;
    let first = with_two_invoices(&w);
    // And ACME's INV-88002, which does not add up.
    w.drop_inbound("acme-bad.edi", BAD_INVOICE.as_bytes());

    let sent =
        w.items_until("gridsync/billing-communication", "two billing communications", |items| items.len() == 2).await;
    let acme = sent.iter().find(|i| i["item"]["body"]["gridsync"]["businessKey"] == "INV-88001").unwrap();
    let body = text(acme, "/item/body/body");
    assert!(body.contains("1: 120 EA SKU-1001 at 9.95 = 1194"), "{body}");
    assert!(body.contains("total 2370.00 USD") && body.contains("Due 2026-12-26 (NET30)"), "{body}");
    assert_eq!(text(acme, "/item/body/recipient"), "orders@acme.example");
    // Whole once in the account team's workflow state (it is created, then moved there).
    let held = w
        .items_until("gridsync/invoice-rejected", "the held invoice", |items| {
            items.len() == 1 && items[0]["workflowState"] == "In review"
        })
        .await;
    let held_body = text(&held[0], "/item/body/body");
    assert!(
        held_body.contains("lines plus tax against the stated total: stated 2500.00, expected 1244.00"),
        "{held_body}"
    );
    // The held invoice item is made after its exception is published.
    let rejected = exceptions_of(&w, ExceptionKind::InvoiceRejected);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].details.get("invoice_number").map(String::as_str), Some("INV-88002"));

    let accounts = w
        .items_until("gridsync/account-status", "both partners' account status", |items| {
            items.len() == 2 && items.iter().all(|i| i["item"]["body"]["openInvoices"] == 1)
        })
        .await;
    let acme_account = status_of(&accounts, "ACME").unwrap();
    assert_eq!(acme_account["amountDue"]["USD"], "2370.00");
    assert!(acme_account["invoices"].get("INV-88002").is_none(), "a held invoice is not on the account");
    assert_eq!(status_of(&accounts, "4012345500004").unwrap()["amountDue"]["EUR"], "714.00");

    // Three days before the due date: one reminder per invoice. The consumer dies once the
    // first exists; its successor sends the other, and neither twice.
    w.set_clock("2026-12-23T10:00:00Z");
    w.items_until("gridsync/payment-reminder", "a first reminder", |items| !items.is_empty()).await;
    kill(first);
    let (second, _) = billing(&w, "second");
    let reminders = w.items_until("gridsync/payment-reminder", "both reminders", |items| items.len() == 2).await;
    let acme_reminder = reminders.iter().find(|i| i["item"]["body"]["gridsync"]["businessKey"] == "INV-88001").unwrap();
    assert_eq!(text(acme_reminder, "/item/body/subject"), "Invoice INV-88001: payment due in 3 days");
    assert_eq!(acme_reminder["item"]["body"]["reminder"]["offsetDays"], -3);

    // Finance records ACME's payment and settles Nordwaren's dispute with a credit.
    w.record_payment("ACME", "INV-88001", "PAY-7001", "2370.00", "2026-12-23T11:00:00Z").await;
    resolve_dispute(&w, "114.00", "2026-12-23T12:00:00Z", "Tax charged twice").await;
    // Killed as soon as the 820 has gone out: the restart must not send it again.
    assert!(
        wait_until(Duration::from_secs(60), || !w.picked_up("ACME_820_PAY-7001").is_empty()).await,
        "the 820 was never picked up\n{}",
        w.log("second")
    );
    kill(second);
    let (third, metrics) = billing(&w, "third");

    let accounts = w
        .items_until("gridsync/account-status", "payment and credit acknowledged on the accounts", |items| {
            let acked = |partner: &str, invoice: &str, kind: &str, reference: &str| {
                status_of(items, partner)
                    .is_some_and(|a| a["invoices"][invoice][kind][reference]["acknowledgement"] == "ACCEPTED")
            };
            let settled = |partner: &str, invoice: &str, status: &str| {
                status_of(items, partner).is_some_and(|a| a["invoices"][invoice]["status"] == status)
            };
            // Each on its own partition: the acknowledgement may be recorded before what it acknowledges.
            acked("ACME", "INV-88001", "payments", "PAY-7001")
                && acked("4012345500004", "INV-DE-5001", "adjustments", "D-31")
                && settled("ACME", "INV-88001", "paid")
                && settled("4012345500004", "INV-DE-5001", "adjusted")
        })
        .await;
    let acme_account = status_of(&accounts, "ACME").unwrap();
    assert_eq!(acme_account["invoices"]["INV-88001"]["status"], "paid");
    assert_eq!(acme_account["openInvoices"], 0);
    assert_eq!(acme_account["lastPayment"]["reference"], "PAY-7001");
    assert!(text(acme_account, "/invoices/INV-88001/payments/PAY-7001/document").starts_with("820 #"));
    let nordwaren = &status_of(&accounts, "4012345500004").unwrap()["invoices"]["INV-DE-5001"];
    assert_eq!((nordwaren["status"].as_str(), nordwaren["open"].as_str()), (Some("adjusted"), Some("600.00")));

    // Exactly one document each, read back by gridsync's own parser with exact amounts.
    let remittances = w.picked_up("ACME_820_PAY-7001");
    assert_eq!(remittances.len(), 1, "{remittances:?}");
    let bytes = std::fs::read(&remittances[0]).unwrap();
    let parsed = gridsync_edi::parse(&bytes).unwrap();
    let ctx = gridsync_edi::MapContext { file_name: None, ingested_at: gridsync_schemas::Timestamp::now() };
    let mapped = gridsync_edi::map_interchange(&parsed[0], &ctx).unwrap();
    match &mapped.events[0] {
        Event::RemittanceAdviceReceived(advice) => {
            assert_eq!(advice.payment_reference, "PAY-7001");
            assert_eq!(advice.total_amount.to_string(), "2370");
            assert_eq!(advice.remittances[0].invoice_number, "INV-88001");
        }
        other => panic!("not a remittance advice: {other:?}"),
    }
    let credits = w.picked_up("4012345500004_CREADV_D-31");
    assert_eq!(credits.len(), 1, "{credits:?}");
    let bytes = std::fs::read(&credits[0]).unwrap();
    let parsed = gridsync_edi::parse(&bytes).unwrap();
    let message = &parsed[0].groups[0].transactions[0];
    assert_eq!(message.document_type, "CREADV");
    let moa = message.segments.iter().find(|s| s.tag == "MOA").unwrap();
    assert_eq!(moa.component(1, 2).as_deref(), Some("114.00"));
    let rff = message.segments.iter().find(|s| s.tag == "RFF").unwrap();
    assert_eq!(rff.component(1, 2).as_deref(), Some("INV-DE-5001"));

    // Paid and credited: no reminder is left to fire, however far the clock goes (the timers
    // are looked at twice more after the clock moved past every reminder day).
    // (A reminder a killed consumer was firing is not cancelled: it fires once its claim runs out.)
    let pending = || metric(&metrics, "gridsync_flow_timers_pending", r#"kind="payment-reminder""#);
    let none_pending = wait_for(Duration::from_secs(30), || async { pending().await == 0.0 }).await;
    assert!(none_pending, "reminders still pending: {}", pending().await);
    let looks = metric(&metrics, "gridsync_flow_timer_looks_total", "").await;
    w.set_clock("2027-01-20T10:00:00Z");
    let looked = wait_for(Duration::from_secs(30), || async {
        metric(&metrics, "gridsync_flow_timer_looks_total", "").await >= looks + 2.0
    })
    .await;
    assert!(looked, "the timers were not looked at again");
    let reminders = w.items("gridsync/payment-reminder").await;
    assert_eq!(reminders.len(), 2, "one reminder per invoice and due date");

    // amp-sim's own records: one item per side effect; and each reported once.
    for prefix in ["gridsync/billing-communication", "gridsync/payment-reminder", "gridsync/invoice-rejected"] {
        assert!(count_by_key(&w.items(prefix).await).values().all(|n| *n == 1), "{prefix}");
    }
    let deliveries = w.deliveries_until(|ds| {
        ds.iter().filter(|d| d.target_system == TargetSystem::TradingGrid).count() >= 2
            && ds.iter().filter(|d| d.action == "payment-reminder").count() >= 2
    });
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &deliveries {
        *per_key.entry(d.idempotency_key.as_str()).or_default() += 1;
    }
    assert!(per_key.values().all(|n| *n == 1), "a side effect reported twice: {per_key:#?}");
    let documents: Vec<_> = deliveries.iter().filter(|d| d.target_system == TargetSystem::TradingGrid).collect();
    assert_eq!(documents.len(), 2, "the 820 and the CREADV: {documents:#?}");

    // GLOBEX goes silent: its 820 is never acknowledged, and a day later that is an exception.
    w.partner_goes_silent();
    w.record_payment("GLOBEX", "INV-G-1", "PAY-G-1", "100.00", "2027-01-20T10:00:00Z").await;
    assert!(
        wait_until(Duration::from_secs(60), || !w.waiting_outbound("GLOBEX_820_PAY-G-1").is_empty()).await,
        "the 820 to GLOBEX was never written\n{}",
        w.logs()
    );
    w.set_clock("2027-01-21T11:00:00Z");
    w.items_until("gridsync/account-status/GLOBEX", "the overdue acknowledgement on the account", |items| {
        items
            .iter()
            .any(|a| a["item"]["body"]["invoices"]["INV-G-1"]["payments"]["PAY-G-1"]["acknowledgement"] == "OVERDUE")
    })
    .await;
    // Noted on the account after the exception was published.
    let late: Vec<String> = exceptions_of(&w, ExceptionKind::FaLate).into_iter().map(|x| x.reason).collect();
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(late[0].contains("820 #") && late[0].contains("PAY-G-1") && late[0].contains("after 24 hours"), "{late:?}");
    stop(third).await;
}

/// A consumer dies while firing ACME's reminder (its timer and its side effect claimed, the
/// rest unknown), and the invoice is paid before anyone fires it again: the reminder is still
/// finished, once, and reported, since it may have reached Amplience before the crash. Nordwaren's
/// reminder, which its firer gave back untouched, is cancelled by the settled dispute, never sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_reminder_begun_by_a_consumer_that_died_is_finished_though_the_invoice_was_paid() {
    let w = World::start("billing-begun").await;
    let first = with_two_invoices(&w);
    w.items_until("gridsync/account-status", "both partners' open invoices", |items| {
        items.len() == 2 && items.iter().all(|i| i["item"]["body"]["openInvoices"] == 1)
    })
    .await;
    stop(first).await;

    // What the dead firer left in the consumer's store: both reminders claimed, Nordwaren's
    // given back, ACME's side effect claimed (it died before the ledger heard more).
    let store_url = format!("sqlite://{}", w.dir.path().join("billing-consumer.db").display());
    let store = gridsync_store::Store::connect(&store_url).await.unwrap();
    let timers = store.timers("billing");
    let reminder_day = chrono::DateTime::parse_from_rfc3339("2026-12-23T10:00:00Z").unwrap().timestamp_millis();
    let dead = "billing-consumer/dead";
    let lease = Duration::from_secs(2);
    let claimed: std::collections::BTreeSet<String> =
        timers.claim_due(reminder_day, dead, lease, 64).await.unwrap().into_iter().map(|t| t.key).collect();
    let (acme, nordwaren) = ("reminder/ACME/INV-88001/-3", "reminder/4012345500004/INV-DE-5001/-3");
    assert_eq!(claimed, [acme, nordwaren].map(String::from).into(), "the reminders due three days before");
    timers.release(nordwaren, dead, Duration::ZERO).await.unwrap();
    let effect_key = format!("{acme}/payment-reminder/amplience");
    assert_eq!(store.side_effects().claim(&effect_key, dead, lease).await.unwrap(), gridsync_store::Claim::Claimed);

    // Its successor hears of the payment and of the settled dispute before the reminder day.
    let (second, _) = billing(&w, "second");
    w.record_payment("ACME", "INV-88001", "PAY-7001", "2370.00", "2026-12-21T11:00:00Z").await;
    resolve_dispute(&w, "714.00", "2026-12-21T12:00:00Z", "Goods returned").await;
    w.items_until("gridsync/account-status", "the payment and the credit on the accounts", |items| {
        status_of(items, "ACME").is_some_and(|a| a["invoices"]["INV-88001"]["status"] == "paid")
            && status_of(items, "4012345500004").is_some_and(|a| a["invoices"]["INV-DE-5001"]["status"] == "adjusted")
    })
    .await;

    w.set_clock("2026-12-23T10:00:00Z");
    let states = |subject: &'static str| {
        let timers = timers.clone();
        async move {
            timers.of_subject(subject).await.unwrap().into_iter().map(|(t, s)| (t.key, s)).collect::<BTreeMap<_, _>>()
        }
    };
    let fired = wait_for(Duration::from_secs(30), || async {
        states("invoice/ACME/INV-88001").await.get(acme) == Some(&gridsync_store::TimerState::Fired)
    })
    .await;
    assert!(fired, "ACME's begun reminder never fired again\n{}", w.logs());
    let deliveries = w.deliveries_until(|ds| ds.iter().any(|d| d.action == "payment-reminder"));
    let reminders: Vec<_> = deliveries.iter().filter(|d| d.action == "payment-reminder").collect();
    assert_eq!(reminders.len(), 1, "{reminders:#?}");
    assert_eq!(reminders[0].idempotency_key, effect_key);
    let items = w.items("gridsync/payment-reminder").await;
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["item"]["id"], reminders[0].external_id.as_str());
    assert_eq!(items[0]["item"]["body"]["gridsync"]["businessKey"], "INV-88001");
    // Nobody had begun Nordwaren's: the settled dispute cancelled it. And the rest of ACME's.
    let nordwaren_states = states("invoice/4012345500004/INV-DE-5001").await;
    assert_eq!(nordwaren_states.get(nordwaren), Some(&gridsync_store::TimerState::Cancelled));
    let acme_states = states("invoice/ACME/INV-88001").await;
    assert!(
        acme_states.iter().all(|(key, state)| key == acme || *state == gridsync_store::TimerState::Cancelled),
        "{acme_states:?}"
    );
    stop(second).await;
}
