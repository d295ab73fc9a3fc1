//! Webhook deliveries already handled, by delivery id: a sender that retries
//! (or a load balancer that sends a retry to another replica) finds the first
//! outcome and the event is published once.

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

/// What became of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandledDelivery {
    /// The id of the event it was published as (or why it was not).
    pub event_id: String,
    /// `published`, or `ignored:<reason>`.
    pub outcome: String,
}

#[derive(Debug, Clone)]
pub struct WebhookDeliveries {
    pool: AnyPool,
}

impl WebhookDeliveries {
    pub(crate) fn new(pool: AnyPool) -> Self {
        WebhookDeliveries { pool }
    }

    /// The earlier outcome of `delivery_id`, if it was handled before.
    pub async fn get(&self, delivery_id: &str) -> Result<Option<HandledDelivery>, StoreError> {
        let row = sqlx::query("SELECT event_id, outcome FROM webhook_deliveries WHERE delivery_id = $1")
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a webhook delivery"))?;
        row.map(|r| Ok(HandledDelivery { event_id: r.try_get(0)?, outcome: r.try_get(1)? }))
            .transpose()
            .map_err(StoreError::query("reading a webhook delivery"))
    }

    /// Records that `delivery_id` was handled; the first record wins.
    pub async fn record(&self, delivery_id: &str, handled: &HandledDelivery) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, event_id, outcome, recorded_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(&handled.event_id)
        .bind(&handled.outcome)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording a webhook delivery"))?;
        Ok(())
    }
}
