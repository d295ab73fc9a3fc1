//! Events already acknowledged by Kafka, by event id: a producer that
//! processes a source again (a file left claimed by a crash, a partner's
//! resend) skips what it published before instead of publishing it twice.

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

#[derive(Debug, Clone)]
pub struct PublishedEvents {
    pool: AnyPool,
}

impl PublishedEvents {
    pub(crate) fn new(pool: AnyPool) -> Self {
        PublishedEvents { pool }
    }

    pub async fn contains(&self, event_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM published_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("reading the published events"))?;
        let count: i64 = row.try_get(0).map_err(StoreError::query("reading the published events"))?;
        Ok(count > 0)
    }

    /// Records that Kafka acknowledged `event_id` (from `source`); the first record wins.
    pub async fn record(&self, event_id: &str, source: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO published_events (event_id, source, published_at) VALUES ($1, $2, $3)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(source)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording a published event"))?;
        Ok(())
    }
}
