//! Flows 1, 3 and 6: what each event becomes in Amplience.
//!
//! - PurchaseOrderReceived → an order confirmation, a customer notification,
//!   and the ordering customer on the campaign-suppression list (with an expiry).
//! - ShipNoticeReceived → the shipment released, for the account team (a
//!   workflow item), then delivery content and a shipment notification.
//! - DeliveryConfirmed → a delivery notification and a post-purchase message,
//!   due `post_purchase_delay_hours` after delivery (`sendAt` on the item, so
//!   the schedule is durable where the messaging platform reads it).
//! - OrderResponseReceived, and a document that failed (delivery failed,
//!   validation error, on hold, FA rejected or overdue) → a notification for the
//!   account team, as a workflow item in the configured state.
//!
//! Each side effect depends only on its own event, so events of one order
//! arriving in any order (a ship notice before its purchase order) lose or
//! garble nothing; the correlation id links them in the audit view.

use gridsync_amplience::{DeliveryKey, NewContentItem};
use gridsync_core::kafka::{Handler, HandlerError, Record};
use gridsync_flow::{
    keyed_items::update_keyed, messages, partners::PartnerProfile, Audience, FlowContext, FlowError, Messages, Send,
    SideEffect,
};
use gridsync_schemas::{
    events::{DocumentStatus, PurchaseOrderReceived},
    Event,
};
use serde_json::{json, Map, Value};

use crate::config::NotificationsConfig;

/// The event types this flow handles; the rest of its topics' records are skipped unread.
const HANDLED: &[&str] = &[
    "PurchaseOrderReceived",
    "ShipNoticeReceived",
    "DeliveryConfirmed",
    "OrderResponseReceived",
    "DocumentStatusChanged",
];

/// Whether this flow handles events of `event_type`; the others on its topics are skipped unread.
pub fn accepts(event_type: &str) -> bool {
    HANDLED.contains(&event_type)
}

/// The content type of the campaign-suppression list.
pub const SUPPRESSION_LIST_SCHEMA: &str = "https://schemas.gridsync.dev/suppression-list.json";

pub struct Notifications {
    pub ctx: FlowContext,
    pub messages: Messages,
    pub config: NotificationsConfig,
}

impl Handler for Notifications {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.handle_event(record).await.map_err(HandlerError::from)
    }

    fn accepts(&self, event_type: &str) -> bool {
        accepts(event_type)
    }
}

impl Notifications {
    async fn handle_event(&self, record: &Record) -> Result<(), FlowError> {
        let envelope = record.event.envelope();
        let partner = self.ctx.partners.get(&envelope.trading_partner_id)?;
        let mut context = messages::context(record, partner)?;
        match &record.event {
            Event::PurchaseOrderReceived(po) => {
                context["customer"] = json!(customer_name(partner, &po.buyer.id, po.buyer.name.as_deref()));
                self.message(record, partner, "order-confirmation", Audience::Customer, &context, Map::new()).await?;
                self.message(record, partner, "customer-notification", Audience::Customer, &context, Map::new())
                    .await?;
                self.suppress(record, partner, po).await?;
            }
            Event::ShipNoticeReceived(_) => {
                // The shipment is released: the account team hears first (flow 6), then the customer.
                self.message(record, partner, "shipment-released", self.account_team(), &context, Map::new()).await?;
                self.message(record, partner, "delivery-content", Audience::Customer, &context, Map::new()).await?;
                self.message(record, partner, "shipment-notification", Audience::Customer, &context, Map::new())
                    .await?;
            }
            Event::DeliveryConfirmed(delivery) => {
                self.message(record, partner, "delivery-notification", Audience::Customer, &context, Map::new())
                    .await?;
                let delivered = delivery.delivered_at.to_datetime().unwrap_or_else(chrono::Utc::now);
                let send_at = delivered + chrono::Duration::hours(self.config.post_purchase_delay_hours);
                let extra = fields([("sendAt", json!(rfc3339(send_at)))]);
                self.message(record, partner, "post-purchase-message", Audience::Customer, &context, extra).await?;
            }
            Event::OrderResponseReceived(_) => {
                self.message(record, partner, "order-response-notification", self.account_team(), &context, Map::new())
                    .await?;
            }
            Event::DocumentStatusChanged(status) if is_failure(status.status) => {
                self.message(
                    record,
                    partner,
                    "document-exception-notification",
                    self.account_team(),
                    &context,
                    Map::new(),
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The account team, whose items are created in the configured workflow state.
    fn account_team(&self) -> Audience<'_> {
        Audience::AccountTeam(&self.config.account_team_workflow_state)
    }

    /// Creates the message `action` of `record` once, from its approved template.
    async fn message(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        action: &str,
        audience: Audience<'_>,
        context: &Value,
        extra: Map<String, Value>,
    ) -> Result<(), FlowError> {
        let template_key = self
            .config
            .template_key(action, &partner.id, &partner.locale)
            .ok_or_else(|| FlowError::Invalid(format!("no template configured for {action:?}")))?;
        let send = Send { action, template_key: &template_key, audience, context, extra, once_per: None };
        self.messages.send(&self.ctx.effects, record, partner, send).await?;
        Ok(())
    }

    /// Puts the ordering customer on the campaign-suppression list until
    /// `suppression_days` after the order; entries past their expiry are dropped
    /// on the way. The list is one item, updated with its version: a concurrent
    /// change makes the update re-read and re-apply, so no entry is lost.
    async fn suppress(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        po: &PurchaseOrderReceived,
    ) -> Result<(), FlowError> {
        let effect = SideEffect::amplience("campaign-suppression", Some(po.buyer.id.clone()));
        let client = &self.messages.client;
        self.ctx
            .effects
            .perform(record, &effect, |_| async move {
                let key = DeliveryKey::parse(&self.config.suppression_list_key)
                    .map_err(|e| FlowError::Invalid(e.to_string()))?;
                let list = NewContentItem {
                    label: "Campaign suppression list".into(),
                    schema: SUPPRESSION_LIST_SCHEMA.into(),
                    delivery_key: Some(key),
                    folder_id: None,
                    locale: None,
                    fields: fields([("entries", json!([]))]),
                };
                let now = chrono::Utc::now();
                let ordered = po.envelope.occurred_at.to_datetime().unwrap_or(now);
                let entry = json!({
                    "customerId": po.buyer.id,
                    "customerName": customer_name(partner, &po.buyer.id, po.buyer.name.as_deref()),
                    "tradingPartnerId": partner.id,
                    "poNumber": po.po_number,
                    "suppressedUntil": rfc3339(ordered + chrono::Duration::days(self.config.suppression_days)),
                    "sourceEventId": po.envelope.event_id,
                });
                let hub_id = self.messages.hub_id.clone();
                update_keyed(client, &self.messages.repository_id, &list, hub_id, |body| {
                    !add_entry(body, &entry, &rfc3339(now))
                })
                .await
            })
            .await?;
        Ok(())
    }
}

/// Adds `entry` to the list's `entries` unless an entry of its source event is
/// there (returns true then), dropping entries that expired before `now`.
fn add_entry(body: &mut Value, entry: &Value, now: &str) -> bool {
    let Some(object) = body.as_object_mut() else { return false };
    let entries = object.entry("entries").or_insert_with(|| json!([]));
    if !entries.is_array() {
        *entries = json!([]);
    }
    let Some(list) = entries.as_array_mut() else { return false };
    // RFC 3339 in UTC with a fixed format compares as text.
    list.retain(|e| e["suppressedUntil"].as_str().is_none_or(|until| until >= now));
    if list.iter().any(|e| e["sourceEventId"] == entry["sourceEventId"]) {
        return true;
    }
    list.push(entry.clone());
    false
}

fn customer_name(partner: &PartnerProfile, buyer_id: &str, buyer_name: Option<&str>) -> String {
    buyer_name
        .map(str::to_owned)
        .or_else(|| partner.customers.get(buyer_id).cloned())
        .unwrap_or_else(|| buyer_id.to_owned())
}

fn is_failure(status: DocumentStatus) -> bool {
    matches!(
        status,
        DocumentStatus::DeliveryFailed
            | DocumentStatus::ValidationError
            | DocumentStatus::OnHold
            | DocumentStatus::FaRejected
            | DocumentStatus::FaTimedOut
    )
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_entries_are_added_once_and_expire() {
        let mut body = json!({ "entries": [
            { "sourceEventId": "old", "suppressedUntil": "2026-01-01T00:00:00.000Z" },
            { "sourceEventId": "live", "suppressedUntil": "2027-01-01T00:00:00.000Z" },
        ]});
        let entry = json!({ "sourceEventId": "new", "suppressedUntil": "2027-02-01T00:00:00.000Z" });
        assert!(!add_entry(&mut body, &entry, "2026-12-02T00:00:00.000Z"));
        assert!(add_entry(&mut body, &entry, "2026-12-02T00:00:00.000Z"), "the same event again");
        let ids: Vec<&str> =
            body["entries"].as_array().unwrap().iter().filter_map(|e| e["sourceEventId"].as_str()).collect();
        assert_eq!(ids, ["live", "new"]);
    }
}
