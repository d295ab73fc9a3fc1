//! A partner's account status, as one content item in Amplience: each invoice
//! with its payments and adjustments, and what is open, due and overdue.
//!
//! Every change is keyed (an invoice by its number, a payment by its
//! reference, an adjustment by its dispute id) and sets rather than adds, so
//! applying one twice changes nothing; the totals are recomputed from the
//! entries each time. The item is updated with its version (re-read and
//! re-applied on a conflict), so concurrent invoices and payments on other
//! partitions never lose an update.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::check::money;

/// What a note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Payment,
    Adjustment,
}

impl Entry {
    /// The invoice's map it lives in.
    fn map(self) -> &'static str {
        match self {
            Entry::Payment => "payments",
            Entry::Adjustment => "adjustments",
        }
    }

    /// As the flow's records name it.
    pub fn of_kind(kind: &str) -> Self {
        if kind == "adjustment" {
            Entry::Adjustment
        } else {
            Entry::Payment
        }
    }
}

/// One change to an account.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Invoice {
        number: String,
        amount: Decimal,
        currency: String,
        issued: String,
        due_date: String,
        po: Option<String>,
    },
    Payment {
        invoice: String,
        reference: String,
        amount: Decimal,
        currency: String,
        at: String,
        source: String,
    },
    /// `amount` is signed: a credit lowers what is open, a debit raises it.
    Adjustment {
        invoice: String,
        reference: String,
        amount: Decimal,
        resolution: String,
        at: String,
    },
    /// A fact about the document sent for a payment or an adjustment (`document`,
    /// `delivery`, `acknowledgement`). It may arrive before the payment or
    /// adjustment itself (another partition): it waits in the entry it names.
    Note {
        invoice: String,
        on: Entry,
        reference: String,
        field: String,
        value: String,
    },
    /// Nothing new: the totals again (what is overdue changes with the date).
    Refresh,
}

/// Applies `change` to the item body `fields` and recomputes its summary as of `today` (`YYYY-MM-DD`).
pub fn apply(fields: &mut Map<String, Value>, change: &Change, today: &str, now: &str) {
    let invoices = object(fields, "invoices");
    match change {
        Change::Invoice { number, amount, currency, issued, due_date, po } => {
            let entry = object(invoices, number);
            entry.insert("amount".into(), json!(money(*amount)));
            entry.insert("currency".into(), json!(currency));
            entry.insert("issued".into(), json!(issued));
            entry.insert("dueDate".into(), json!(due_date));
            entry.insert("po".into(), json!(po));
        }
        Change::Payment { invoice, reference, amount, currency, at, source } => {
            let entry = object(invoices, invoice);
            entry.entry("currency").or_insert_with(|| json!(currency));
            let payment = object(object(entry, "payments"), reference);
            payment.insert("amount".into(), json!(money(*amount)));
            payment.insert("at".into(), json!(at));
            payment.insert("source".into(), json!(source));
        }
        Change::Adjustment { invoice, reference, amount, resolution, at } => {
            let adjustment = object(object(object(invoices, invoice), "adjustments"), reference);
            adjustment.insert("amount".into(), json!(money(*amount)));
            adjustment.insert("resolution".into(), json!(resolution));
            adjustment.insert("at".into(), json!(at));
        }
        Change::Note { invoice, on, reference, field, value } => {
            let entry = object(invoices, invoice);
            object(object(entry, on.map()), reference).insert(field.clone(), json!(value));
        }
        Change::Refresh => {}
    }
    summarise(fields, today, now);
}

/// The object under `key`, made one if it is missing or not an object.
fn object<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(inner) => inner,
        _ => unreachable!("made an object above"),
    }
}

fn amount(value: Option<&Value>) -> Option<Decimal> {
    value.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

fn sum(entries: Option<&Value>) -> Decimal {
    entries
        .and_then(Value::as_object)
        .map(|m| m.values().filter_map(|e| amount(e.get("amount"))).sum())
        .unwrap_or_default()
}

/// Recomputes each invoice's open amount and status, and the account's totals.
fn summarise(fields: &mut Map<String, Value>, today: &str, now: &str) {
    let mut due: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut overdue: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut open_invoices = 0;
    let mut last_payment: Option<Value> = None;
    let invoices = object(fields, "invoices");
    for (number, entry) in invoices.iter_mut() {
        let Some(entry) = entry.as_object_mut() else { continue };
        let paid = sum(entry.get("payments"));
        let adjusted = sum(entry.get("adjustments"));
        let resolutions: Vec<&str> = entry
            .get("adjustments")
            .and_then(Value::as_object)
            .map(|m| m.values().filter_map(|a| a["resolution"].as_str()).collect())
            .unwrap_or_default();
        let cancelled = resolutions.contains(&"INVOICE_CANCELLED");
        let upheld = resolutions.contains(&"INVOICE_UPHELD");
        let open = match amount(entry.get("amount")) {
            Some(_) if cancelled => Decimal::ZERO,
            Some(total) => (total + adjusted - paid).max(Decimal::ZERO),
            None => Decimal::ZERO,
        };
        let status = if cancelled {
            "cancelled"
        } else if open.is_zero() && paid > Decimal::ZERO {
            "paid"
        } else if paid > Decimal::ZERO {
            "partially-paid"
        } else if !adjusted.is_zero() {
            "adjusted"
        } else if upheld {
            "disputed"
        } else {
            "open"
        };
        entry.insert("paid".into(), json!(money(paid)));
        entry.insert("adjusted".into(), json!(money(adjusted)));
        entry.insert("open".into(), json!(money(open)));
        entry.insert("status".into(), json!(status));
        let currency = entry.get("currency").and_then(Value::as_str).unwrap_or("").to_owned();
        if open > Decimal::ZERO {
            open_invoices += 1;
            *due.entry(currency.clone()).or_default() += open;
            if entry.get("dueDate").and_then(Value::as_str).is_some_and(|d| d < today) {
                *overdue.entry(currency.clone()).or_default() += open;
            }
        }
        for (reference, payment) in entry.get("payments").and_then(Value::as_object).into_iter().flatten() {
            // A note (its document's acknowledgement, say) can arrive before the
            // payment it is about: until the payment itself has, it is no payment.
            let Some(at) = payment.get("at").and_then(Value::as_str) else { continue };
            if amount(payment.get("amount")).is_none() {
                continue;
            }
            if last_payment.as_ref().is_none_or(|p| p["at"].as_str().unwrap_or("") < at) {
                last_payment = Some(json!({
                    "reference": reference, "invoice": number, "amount": payment["amount"],
                    "currency": currency, "at": at,
                }));
            }
        }
    }
    let totals = |m: BTreeMap<String, Decimal>| m.into_iter().map(|(c, a)| (c, json!(money(a)))).collect::<Map<_, _>>();
    fields.insert("openInvoices".into(), json!(open_invoices));
    fields.insert("amountDue".into(), Value::Object(totals(due)));
    fields.insert("overdueAmount".into(), Value::Object(totals(overdue)));
    fields.insert("lastPayment".into(), last_payment.unwrap_or(Value::Null));
    fields.insert("asOf".into(), json!(today));
    fields.insert("updatedAt".into(), json!(now));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn invoice(number: &str, amount: &str, due: &str) -> Change {
        Change::Invoice {
            number: number.into(),
            amount: dec(amount),
            currency: "USD".into(),
            issued: "2026-11-26".into(),
            due_date: due.into(),
            po: None,
        }
    }

    fn payment(invoice: &str, reference: &str, amount: &str, at: &str) -> Change {
        Change::Payment {
            invoice: invoice.into(),
            reference: reference.into(),
            amount: dec(amount),
            currency: "USD".into(),
            at: at.into(),
            source: "amplience".into(),
        }
    }

    #[test]
    fn payments_and_adjustments_set_the_status_and_totals_once_however_often_applied() {
        let mut fields = Map::new();
        let today = "2026-12-30";
        for change in [
            invoice("INV-1", "2370.00", "2026-12-26"),
            invoice("INV-2", "500", "2027-01-10"),
            invoice("INV-3", "80", "2027-01-10"),
            invoice("INV-4", "99.5", "2027-01-10"),
            payment("INV-1", "PAY-1", "1000", "2026-12-28T10:00:00Z"),
            payment("INV-2", "PAY-2", "500", "2026-12-29T10:00:00Z"),
            Change::Adjustment {
                invoice: "INV-3".into(),
                reference: "D-1".into(),
                amount: dec("-30"),
                resolution: "CREDIT_ISSUED".into(),
                at: "x".into(),
            },
            Change::Adjustment {
                invoice: "INV-4".into(),
                reference: "D-2".into(),
                amount: dec("0"),
                resolution: "INVOICE_UPHELD".into(),
                at: "x".into(),
            },
        ] {
            apply(&mut fields, &change, today, "now");
            apply(&mut fields, &change, today, "now");
        }
        let status = |n: &str| fields["invoices"][n]["status"].as_str().unwrap().to_owned();
        assert_eq!(
            [status("INV-1"), status("INV-2"), status("INV-3"), status("INV-4")],
            ["partially-paid", "paid", "adjusted", "disputed"]
        );
        assert_eq!(fields["invoices"]["INV-1"]["open"], "1370.00");
        assert_eq!(fields["openInvoices"], 3);
        assert_eq!(fields["amountDue"]["USD"], "1519.50");
        assert_eq!(fields["overdueAmount"]["USD"], "1370.00", "only INV-1 is past its due date");
        assert_eq!(fields["lastPayment"]["reference"], "PAY-2");
        apply(
            &mut fields,
            &Change::Note {
                invoice: "INV-3".into(),
                on: Entry::Adjustment,
                reference: "D-1".into(),
                field: "acknowledgement".into(),
                value: "ACCEPTED".into(),
            },
            today,
            "now",
        );
        assert_eq!(fields["invoices"]["INV-3"]["adjustments"]["D-1"]["acknowledgement"], "ACCEPTED");
    }

    #[test]
    fn a_note_before_its_payment_is_no_payment_until_the_payment_arrives() {
        let mut fields = Map::new();
        let today = "2026-12-30";
        let note = Change::Note {
            invoice: "INV-1".into(),
            on: Entry::Payment,
            reference: "PAY-1".into(),
            field: "acknowledgement".into(),
            value: "ACCEPTED".into(),
        };
        apply(&mut fields, &invoice("INV-1", "100", "2027-01-10"), today, "now");
        apply(&mut fields, &note, today, "now");
        assert_eq!(fields["lastPayment"], Value::Null, "an acknowledgement alone is no payment: {fields:?}");
        assert_eq!(fields["invoices"]["INV-1"]["status"], "open");
        apply(&mut fields, &payment("INV-1", "PAY-1", "100", "2026-12-29T10:00:00Z"), today, "now");
        assert_eq!(fields["lastPayment"]["amount"], "100.00");
        assert_eq!(fields["lastPayment"]["at"], "2026-12-29T10:00:00Z");
        assert_eq!(fields["invoices"]["INV-1"]["payments"]["PAY-1"]["acknowledgement"], "ACCEPTED");
        assert_eq!(fields["invoices"]["INV-1"]["status"], "paid");
    }
}
