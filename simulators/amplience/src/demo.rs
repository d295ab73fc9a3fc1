//! The demo scenario behind `POST /__sim/demo`.

use serde_json::json;

use crate::{api::SimState, hub::HubError};

const ACTOR: &str = "demo.user";

/// Creates the demo items, moves them through the workflow and publishes the
/// contract; returns the item ids.
pub fn play(state: &SimState) -> Result<Vec<String>, HubError> {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    {
        let mut hub = state.hub.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let repository = hub.repositories.first().cloned().unwrap_or_default();
        let state_id = |hub: &crate::hub::Hub, label: &str| {
            hub.states.iter().find(|s| s.label == label).map(|s| s.id.clone()).unwrap_or_default()
        };
        let items = [
            (
                "Payment confirmed",
                false,
                // ACME's invoice INV-88001 of the sample EDI files (order 4500012345), paid in full.
                json!({"label": "Payment INV-88001", "body": {
                    "_meta": {"schema": "https://gridsync.example/schemas/payment-confirmation.json", "name": "payment"},
                    "partnerId": "ACME", "invoiceNumber": "INV-88001",
                    "paymentReference": format!("PAY-{stamp}"), "amount": "2370.00", "currency": "USD"}}),
            ),
            (
                "Dispute resolved",
                false,
                json!({"label": format!("Dispute D-{stamp}"), "body": {
                    "_meta": {"schema": "https://gridsync.example/schemas/dispute-resolution.json", "name": "dispute"},
                    "partnerId": "GLOBEX", "invoiceNumber": format!("INV-DISP-{stamp}"), "disputeId": format!("D-{stamp}"),
                    "resolution": "credit-issued", "adjustedAmount": "120.00", "currency": "USD",
                    "summary": "Short shipment credited"}}),
            ),
            (
                "Approved",
                true,
                json!({"label": "Trading terms 2027", "locale": "en-GB", "body": {
                    "_meta": {"schema": "https://gridsync.example/schemas/trading-terms.json", "name": "terms",
                              "deliveryKey": format!("terms/2027/{stamp}")},
                    "title": "Trading terms 2027", "targetPartnerIds": ["ACME", "GLOBEX"],
                    "sections": ["Payment within 30 days", "Incoterms DAP"]}}),
            ),
        ];
        for (label, publish, request) in items {
            let item = hub.create(&repository, &request, ACTOR)?;
            let assign = json!({"version": item.version, "state": state_id(&hub, label)});
            let (_, change) = hub.assign_workflow(&item.id, &assign, ACTOR)?;
            changes.push(change);
            if publish {
                changes.push(hub.publish(&item.id, ACTOR)?);
            }
            ids.push(item.id);
        }
    }
    for change in &changes {
        state.webhooks.send(change);
    }
    Ok(ids)
}
