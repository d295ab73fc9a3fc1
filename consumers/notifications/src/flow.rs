//! Flows 1, 3 and 6: what each event becomes in Amplience.
//!
//! - PurchaseOrderReceived → an order confirmation, a customer notification,
//!   and the ordering customer kept out of campaigns (an item per customer, with an expiry).
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
use gridsync_core::kafka::Record;
use gridsync_flow::{
    messages, partners::PartnerProfile, Audience, FlowContext, FlowError, FlowHandler, Messages, Send, SideEffect,
};
use gridsync_schemas::{
    events::{DocumentStatus, PurchaseOrderReceived},
    Event,
};
use serde_json::{json, Map, Value};

use crate::config::NotificationsConfig;

/// The content type of a customer's campaign suppression.
pub const SUPPRESSION_SCHEMA: &str = "https://schemas.gridsync.dev/campaign-suppression.json";

pub struct Notifications {
    pub ctx: FlowContext,
    pub messages: Messages,
    pub config: NotificationsConfig,
}

impl FlowHandler for Notifications {
    async fn handle(&self, record: &Record) -> Result<(), FlowError> {
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
}

impl Notifications {
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
        let template_key = self.config.messages.template(action, partner)?;
        let send = Send { action, template_key: &template_key, audience, context, extra, once_per: None };
        self.messages.send(&self.ctx.effects, record, partner, send).await?;
        Ok(())
    }

    /// Keeps the ordering customer out of marketing campaigns until `suppression_days` after
    /// the order: one item per partner and customer (found or created by its delivery key),
    /// holding the orders that suppress them, expired ones dropped on the way. Orders of one
    /// customer arriving together are saved together ([`gridsync_flow::keyed_items`]).
    async fn suppress(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        po: &PurchaseOrderReceived,
    ) -> Result<(), FlowError> {
        let effect = SideEffect::amplience("campaign-suppression", Some(po.buyer.id.clone()));
        self.ctx
            .effects
            .perform(record, &effect, |_| async move {
                let key = DeliveryKey::derive(
                    &self.config.suppression_key_prefix,
                    [partner.id.as_str(), po.buyer.id.as_str()],
                )
                .map_err(|e| FlowError::Invalid(e.to_string()))?;
                let customer = customer_name(partner, &po.buyer.id, po.buyer.name.as_deref());
                let item = NewContentItem {
                    label: format!("Campaign suppression {} ({})", customer, partner.id),
                    schema: SUPPRESSION_SCHEMA.into(),
                    delivery_key: Some(key),
                    folder_id: None,
                    locale: None,
                    fields: fields([
                        ("customerId", json!(po.buyer.id)),
                        ("customerName", json!(customer)),
                        ("tradingPartnerId", json!(partner.id)),
                        ("suppressedUntil", Value::Null),
                        ("orders", json!([])),
                    ]),
                };
                let now = chrono::Utc::now();
                let ordered = po.envelope.occurred_at.to_datetime().unwrap_or(now);
                let order = json!({
                    "poNumber": po.po_number,
                    "sourceEventId": po.envelope.event_id,
                    "orderedAt": rfc3339(ordered),
                    "suppressedUntil": rfc3339(ordered + chrono::Duration::days(self.config.suppression_days)),
                });
                let now = rfc3339(now);
                let change = Box::new(move |body: &mut Value| !add_order(body, &order, &now));
                self.ctx.keyed_items.update(&self.messages.repository_id, &item, change).await
            })
            .await?;
        Ok(())
    }
}

/// Orders kept on a customer's suppression item: the newest, as many as its schema allows.
const SUPPRESSING_ORDERS: usize = 100;

/// Adds `order` to the item's `orders` unless it is there (returns true then), dropping orders
/// that expired before `now` and the oldest past [`SUPPRESSING_ORDERS`]; `suppressedUntil` is
/// the latest of what remains.
fn add_order(body: &mut Value, order: &Value, now: &str) -> bool {
    let Some(object) = body.as_object_mut() else { return false };
    let orders = object.entry("orders").or_insert_with(|| json!([]));
    if !orders.is_array() {
        *orders = json!([]);
    }
    let Some(list) = orders.as_array_mut() else { return false };
    // RFC 3339 in UTC with a fixed format compares as text.
    list.retain(|o| o["suppressedUntil"].as_str().is_none_or(|until| until >= now));
    let present = list.iter().any(|o| o["sourceEventId"] == order["sourceEventId"]);
    if !present {
        list.push(order.clone());
        list.sort_by(|a, b| a["suppressedUntil"].as_str().cmp(&b["suppressedUntil"].as_str()));
        let excess = list.len().saturating_sub(SUPPRESSING_ORDERS);
        list.drain(..excess);
    }
    let until = list.iter().filter_map(|o| o["suppressedUntil"].as_str()).max().map(str::to_owned);
    object.insert("suppressedUntil".into(), json!(until));
    present
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
    fn suppressing_orders_are_added_once_expire_and_stay_bounded() {
        let order = |id: &str, until: &str| json!({ "sourceEventId": id, "suppressedUntil": until });
        let mut body = json!({ "orders": [
            order("old", "2026-01-01T00:00:00.000Z"),
            order("live", "2027-01-01T00:00:00.000Z"),
        ]});
        let now = "2026-12-02T00:00:00.000Z";
        assert!(!add_order(&mut body, &order("new", "2027-02-01T00:00:00.000Z"), now));
        assert!(add_order(&mut body, &order("new", "2027-02-01T00:00:00.000Z"), now), "the same event again");
        let ids: Vec<&str> =
            body["orders"].as_array().unwrap().iter().filter_map(|e| e["sourceEventId"].as_str()).collect();
        assert_eq!(ids, ["live", "new"]);
        assert_eq!(body["suppressedUntil"], "2027-02-01T00:00:00.000Z");
        for n in 0..150 {
            add_order(&mut body, &order(&format!("o{n:03}"), &format!("2027-03-01T00:00:{:02}.{n:03}Z", n % 60)), now);
        }
        assert_eq!(body["orders"].as_array().unwrap().len(), SUPPRESSING_ORDERS, "the newest only");
        assert!(
            body["orders"].as_array().unwrap().iter().all(|o| o["sourceEventId"] != "live"),
            "the oldest went first"
        );
    }
}
