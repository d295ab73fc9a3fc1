//! The demo scenario behind `POST /__sim/demo`.

use serde_json::json;

use crate::{api::SimState, hub::HubError};

const ACTOR: &str = "demo.user";
const MEDIA_ENDPOINT: &str = "gridsync";
const DIAGRAM: &str = "payment-schedule-2027";
const WELCOME: &str = "supplier-welcome-2027";
/// The onboarding pack's attachment: a one-page process guide.
const WELCOME_GUIDE: &[u8] =
    br##"<svg xmlns="http://www.w3.org/2000/svg" width="420" height="90" font-family="sans-serif">
<text x="10" y="30">Welcome to the supplier network</text>
<text x="10" y="60">1. Send 850s to GRIDSYNC  2. Expect a 997 within 24 h  3. Invoice with 810s</text>
</svg>
"##;
const PAYMENT_SCHEDULE: &[u8] =
    br##"<svg xmlns="http://www.w3.org/2000/svg" width="360" height="90" font-family="sans-serif">
<rect x="5" y="30" width="100" height="30" fill="#cde"/><text x="12" y="50">Invoice</text>
<rect x="130" y="30" width="100" height="30" fill="#cde"/><text x="137" y="50">+30 days</text>
<rect x="255" y="30" width="100" height="30" fill="#cec"/><text x="262" y="50">Paid</text>
</svg>
"##;

/// Creates the demo items, moves them through the workflow and publishes the
/// terms (which link an image, served by the media CDN); the onboarding pack
/// (with its guide, an image too) is approved, which is what sends it (flow 4).
/// Returns the item ids. The hub must have the content types (`gridsync
/// amplience setup`): the items are validated as any other.
pub fn play(state: &SimState) -> Result<Vec<String>, HubError> {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    // The image the terms link to, as the media CDN serves it.
    state.media.put_stored(MEDIA_ENDPOINT, DIAGRAM, "image/svg+xml", axum::body::Bytes::from_static(PAYMENT_SCHEDULE));
    state.media.put_stored(MEDIA_ENDPOINT, WELCOME, "image/svg+xml", axum::body::Bytes::from_static(WELCOME_GUIDE));
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
                    "sections": ["Payment within 30 days", "Incoterms DAP"],
                    "paymentSchedule": {
                        "_meta": {"schema": "http://bigcontent.io/cms/schema/v1/core#/definitions/image-link"},
                        "id": "7c3f0000-0000-4000-8000-000000000001", "name": DIAGRAM,
                        "endpoint": MEDIA_ENDPOINT, "defaultHost": "cdn.media.amplience.net"}}}),
            ),
            (
                "Approved",
                false,
                json!({"label": "Supplier welcome pack 2027", "locale": "en-GB", "body": {
                    "_meta": {"schema": "https://gridsync.example/schemas/onboarding-pack.json", "name": "welcome",
                              "deliveryKey": format!("onboarding/welcome/{stamp}")},
                    "title": "Welcome to the supplier network", "targetPartnerIds": ["ACME", "GLOBEX"],
                    "steps": ["Send purchase orders as 850", "Acknowledge with a 997 within 24 hours"],
                    "guide": {
                        "_meta": {"schema": "http://bigcontent.io/cms/schema/v1/core#/definitions/image-link"},
                        "id": "7c3f0000-0000-4000-8000-000000000002", "name": WELCOME,
                        "endpoint": MEDIA_ENDPOINT, "defaultHost": "cdn.media.amplience.net"}}}),
            ),
        ];
        for (label, publish, request) in items {
            let item = hub.create(&repository, request, ACTOR)?;
            let assign = json!({"version": item.version, "state": state_id(&hub, label)});
            let (_, change) = hub.assign_workflow(&item.id, assign, ACTOR)?;
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
