//! A transaction's events in causal order, the way people read a business transaction: each
//! document after the documents it answers (an order before its invoice, the invoice before the
//! payment that pays it, whatever order gridsync happened to learn of them in), each side effect
//! under the event that caused it, and what a partner or Trading Grid said of a document gridsync
//! sent (its acknowledgement, its delivery status) under that document.

use std::collections::HashMap;

use gridsync_store::audit::AuditEntry;

/// Where a document comes in a business transaction; side effects and follow-ups come under
/// their cause instead.
fn rank(event_type: &str) -> u8 {
    match event_type {
        "PurchaseOrderReceived" => 0,
        "OrderResponseReceived" => 1,
        "ShipNoticeReceived" => 2,
        "DeliveryConfirmed" => 3,
        "InvoiceReceived" => 4,
        "PaymentConfirmed" | "DisputeResolved" => 5,
        "RemittanceAdviceReceived" => 6,
        "PartnerContentApproved" | "PartnerContentPublished" => 7,
        _ => 8,
    }
}

/// What an acknowledgement or status names of a document gridsync sent: its control number or
/// file name.
fn sent_refs(entry: &AuditEntry) -> impl Iterator<Item = (&str, &str)> {
    entry.refs.iter().filter(|r| r.kind == "control" || r.kind == "file").map(|r| (r.kind.as_str(), r.value.as_str()))
}

/// The id of the event that caused `entry`, a side effect (its `event` reference other than its
/// own id); `None` for anything else.
pub fn cause_of(entry: &AuditEntry) -> Option<&str> {
    entry.refs.iter().find(|r| r.kind == "event" && r.value != entry.event_id).map(|r| r.value.as_str())
}

/// One event and how deep it sits: 0 a document, 1 a side effect of one, 2 what was said of
/// that side effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub entry: AuditEntry,
    pub depth: usize,
}

/// `entries` (any order) in causal order, each with its depth.
pub fn causal(mut entries: Vec<AuditEntry>) -> Vec<Placed> {
    entries.sort_by(|a, b| a.seen_at.cmp(&b.seen_at).then_with(|| a.event_id.cmp(&b.event_id)));
    let is_effect = |e: &AuditEntry| e.event_type == "DeliveryPerformed";
    let is_follow_up =
        |e: &AuditEntry| matches!(e.event_type.as_str(), "FunctionalAckReceived" | "DocumentStatusChanged");
    // Side effects by the event that caused them; follow-ups by the document they name.
    let mut effects: HashMap<String, Vec<AuditEntry>> = HashMap::new();
    let mut follow_ups: HashMap<(String, String), Vec<AuditEntry>> = HashMap::new();
    let mut steps = Vec::new();
    let present: std::collections::HashSet<String> = entries.iter().map(|e| e.event_id.clone()).collect();
    for entry in entries {
        if is_effect(&entry) {
            if let Some(cause) = cause_of(&entry).filter(|c| present.contains(*c)).map(str::to_owned) {
                effects.entry(cause).or_default().push(entry);
                continue;
            }
        } else if is_follow_up(&entry) {
            let named = sent_refs(&entry).next().map(|(k, v)| (k.to_owned(), v.to_owned()));
            if let Some(named) = named {
                follow_ups.entry(named).or_default().push(entry);
                continue;
            }
        }
        steps.push(entry);
    }
    // Documents in business order, then as seen (a sort that keeps the seen order within a rank).
    steps.sort_by_key(|e| rank(&e.event_type));
    let mut placed = Vec::new();
    for step in steps {
        let id = step.event_id.clone();
        placed.push(Placed { entry: step, depth: 0 });
        place_effects(&mut placed, &id, 1, &mut effects, &mut follow_ups);
    }
    // What names nothing in this lineage comes last, as seen.
    let mut rest: Vec<AuditEntry> = effects.into_values().flatten().chain(follow_ups.into_values().flatten()).collect();
    rest.sort_by(|a, b| a.seen_at.cmp(&b.seen_at).then_with(|| a.event_id.cmp(&b.event_id)));
    placed.extend(rest.into_iter().map(|entry| Placed { entry, depth: 0 }));
    placed
}

/// The side effects `cause` caused, at `depth`, each followed by what was said of it (an
/// acknowledgement, a status) one deeper, and by what that in turn caused.
fn place_effects(
    placed: &mut Vec<Placed>,
    cause: &str,
    depth: usize,
    effects: &mut HashMap<String, Vec<AuditEntry>>,
    follow_ups: &mut HashMap<(String, String), Vec<AuditEntry>>,
) {
    for effect in effects.remove(cause).unwrap_or_default() {
        let named: Vec<(String, String)> = sent_refs(&effect).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        placed.push(Placed { entry: effect, depth });
        for key in named {
            for said in follow_ups.remove(&key).unwrap_or_default() {
                let id = said.event_id.clone();
                placed.push(Placed { entry: said, depth: depth + 1 });
                place_effects(placed, &id, depth + 2, effects, follow_ups);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use gridsync_store::audit::AuditRef;

    use super::*;

    fn entry(id: &str, event_type: &str, seen_at: i64, refs: &[(&str, &str)]) -> AuditEntry {
        AuditEntry {
            event_id: id.into(),
            event_type: event_type.into(),
            source_system: "TRADING_GRID".into(),
            partner: "ACME".into(),
            business_key: id.into(),
            correlation_id: id.into(),
            occurred_at: seen_at,
            seen_at,
            summary: id.into(),
            action: None,
            status: None,
            due_at: None,
            content_item_id: None,
            content_version: None,
            topic: "t".into(),
            partition: 0,
            offset: seen_at,
            body: "{}".into(),
            refs: refs.iter().map(|(k, v)| AuditRef::new(k, (*v).to_owned())).collect(),
        }
    }

    /// The payment was learned of first (Amplience's webhook beat the partner's file): it still
    /// comes after the invoice it pays, and that after the order; each message under its cause.
    #[test]
    fn documents_in_business_order_each_side_effect_under_its_cause() {
        let entries = vec![
            entry("pay", "PaymentConfirmed", 1, &[("invoice", "I1")]),
            entry("820", "DeliveryPerformed", 2, &[("event", "pay"), ("control", "12")]),
            entry("inv", "InvoiceReceived", 3, &[("po", "P1"), ("invoice", "I1")]),
            entry("po", "PurchaseOrderReceived", 4, &[("po", "P1")]),
            entry("conf", "DeliveryPerformed", 5, &[("event", "po")]),
            entry("fa", "FunctionalAckReceived", 6, &[("control", "12")]),
            entry("lost", "DeliveryPerformed", 7, &[("event", "elsewhere")]),
            entry("status", "DeliveryPerformed", 8, &[("event", "fa")]),
        ];
        let order: Vec<(String, usize)> = causal(entries).into_iter().map(|p| (p.entry.event_id, p.depth)).collect();
        let expected =
            [("po", 0), ("conf", 1), ("inv", 0), ("pay", 0), ("820", 1), ("fa", 2), ("status", 3), ("lost", 0)];
        assert_eq!(order, expected.map(|(id, d)| (id.to_owned(), d)));
    }
}
