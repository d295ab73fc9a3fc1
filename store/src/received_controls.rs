//! The document last received under each set of control numbers (sender,
//! receiver, interchange, group, transaction, event type), by its event id. A
//! resend has the same id; another document under reused numbers has another,
//! which is how tg-producer tells the two apart.

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

#[derive(Debug, Clone)]
pub struct ReceivedControls {
    pool: AnyPool,
}

impl ReceivedControls {
    pub(crate) fn new(pool: AnyPool) -> Self {
        ReceivedControls { pool }
    }

    /// The event id last received under `control_key`.
    pub async fn last(&self, control_key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT event_id FROM received_controls WHERE control_key = $1")
            .bind(control_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading received control numbers"))?;
        row.map(|r| r.try_get(0)).transpose().map_err(StoreError::query("reading received control numbers"))
    }

    /// Records `event_id` as the document last received under `control_key`.
    pub async fn record(&self, control_key: &str, event_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO received_controls (control_key, event_id, seen_at) VALUES ($1, $2, $3)
             ON CONFLICT (control_key) DO UPDATE SET event_id = excluded.event_id, seen_at = excluded.seen_at",
        )
        .bind(control_key)
        .bind(event_id)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording received control numbers"))?;
        Ok(())
    }
}
