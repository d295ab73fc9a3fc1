//! Which flow a side effect belongs to (by the consumer that performed it and what caused it),
//! and which flows a source event feeds. `gridsync report` counts by it; the audit view filters
//! by it. The flows themselves, numbered and named, are the catalog's (`schemas/topics.toml`).

use gridsync_schemas::catalog::{catalog, FlowSpec};
use gridsync_store::audit::AuditEntry;
use serde_json::Value;

/// The flows as the catalog lists them, numbered from 1 (none when the compiled-in catalog is
/// invalid, which no binary starts with).
pub fn flows() -> &'static [FlowSpec] {
    catalog().map(|c| c.flows.as_slice()).unwrap_or_default()
}

/// The flow numbered `number`, if there is one.
pub fn flow(number: u8) -> Option<&'static FlowSpec> {
    catalog().ok()?.flow(number)
}

/// Flow 7 is the audit store itself: it reports once events are recorded.
pub const AUDIT_FLOW: u8 = 7;

/// Onboarding content kinds (flow 4); the other partner content is flow 5's.
pub const ONBOARDING_KINDS: [&str; 3] = ["ONBOARDING_PACK", "COMPLIANCE_INSTRUCTIONS", "PROCESS_GUIDE"];

/// Notifications of the key B2B events (order acceptance, shipment release, invoice rejection,
/// document exceptions): flow 6, whichever consumer sends them.
pub const FLOW_6_ACTIONS: [&str; 4] =
    ["order-response-notification", "shipment-released", "invoice-rejected", "document-exception-notification"];

/// Which flow a side effect belongs to: by the consumer that performed it and what caused it.
pub fn flow_of(effect: &Value, cause: Option<&Value>) -> u8 {
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let consumer = text(effect, "consumer").unwrap_or_default();
    let action = text(effect, "action").unwrap_or_default();
    let source = text(effect, "source_event_type").unwrap_or_default();
    if FLOW_6_ACTIONS.contains(&action.as_str()) {
        return 6;
    }
    match consumer.as_str() {
        "exceptions" => 8,
        "distribution" => {
            let kind = cause.and_then(|c| c.get("content")).and_then(|c| text(c, "kind"));
            if kind.is_some_and(|k| ONBOARDING_KINDS.contains(&k.as_str())) {
                4
            } else {
                5
            }
        }
        "billing" => 2,
        _ => match source.as_str() {
            "PurchaseOrderReceived" => 1,
            "ShipNoticeReceived" | "DeliveryConfirmed" => 3,
            _ => 6,
        },
    }
}

/// The flows `entry` belongs to: a side effect's one (given the event that caused it, when
/// recorded), or the flows a source event feeds. Every event is flow 7's (the audit view).
pub fn flows_of(entry: &AuditEntry, cause: Option<&AuditEntry>) -> Vec<u8> {
    let body = |e: &AuditEntry| serde_json::from_str::<Value>(&e.body).unwrap_or(Value::Null);
    let mut flows = match entry.event_type.as_str() {
        "DeliveryPerformed" => vec![flow_of(&body(entry), cause.map(body).as_ref())],
        "PurchaseOrderReceived" => vec![1],
        "OrderResponseReceived" => vec![6],
        "ShipNoticeReceived" | "DeliveryConfirmed" => vec![3, 6],
        "InvoiceReceived" | "PaymentConfirmed" | "DisputeResolved" | "RemittanceAdviceReceived" => vec![2],
        "PartnerContentApproved" => {
            let kind = body(entry).pointer("/content/kind").and_then(Value::as_str).map(str::to_owned);
            if kind.is_some_and(|k| ONBOARDING_KINDS.contains(&k.as_str())) {
                vec![4]
            } else {
                vec![5]
            }
        }
        "PartnerContentPublished" => vec![5],
        // What partners and Trading Grid say of what gridsync sent: billing's documents,
        // packages, and the failures flows 6 and 8 act on.
        "FunctionalAckReceived" | "DocumentStatusChanged" => vec![2, 5, 6, 8],
        "DocumentExchangeException" => vec![6, 8],
        _ => Vec::new(),
    };
    flows.push(AUDIT_FLOW);
    flows
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn side_effects_belong_to_the_flow_of_their_consumer_and_cause() {
        let effect = |consumer: &str, action: &str, source: &str| json!({"consumer": consumer, "action": action, "source_event_type": source});
        let content = |kind: &str| json!({"content": {"kind": kind}});
        let notification = effect("notifications", "order-confirmation", "PurchaseOrderReceived");
        assert_eq!(flow_of(&notification, None), 1);
        assert_eq!(flow_of(&effect("notifications", "delivery-content", "ShipNoticeReceived"), None), 3);
        assert_eq!(flow_of(&effect("notifications", "order-response-notification", "OrderResponseReceived"), None), 6);
        assert_eq!(flow_of(&effect("notifications", "shipment-released", "ShipNoticeReceived"), None), 6);
        assert_eq!(flow_of(&effect("billing", "payment-reminder", "InvoiceReceived"), None), 2);
        assert_eq!(flow_of(&effect("billing", "remittance-advice", "PaymentConfirmed"), None), 2);
        assert_eq!(flow_of(&effect("billing", "invoice-rejected", "FunctionalAckReceived"), None), 6);
        let package = effect("distribution", "partner-package", "PartnerContentPublished");
        assert_eq!(flow_of(&package, Some(&content("ONBOARDING_PACK"))), 4);
        assert_eq!(flow_of(&package, Some(&content("TRADING_TERMS"))), 5);
        assert_eq!(flow_of(&effect("exceptions", "exception-task", "DocumentExchangeException"), None), 8);
    }
}
