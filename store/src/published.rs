//! Events already acknowledged by Kafka, by event id: a producer that
//! processes a source again (a file left claimed by a crash, a partner's
//! resend) skips what it published before instead of publishing it twice.
//! tg-producer records here only what a document's control numbers cannot
//! answer for ([`crate::ReceivedControls::record_acknowledged`]).

use sqlx::{AnyPool, Row};

/// `(event id, source, now)` rows into the published events, for [`crate::insert_text_pairs`]:
/// the first record of an id wins.
pub(crate) const INSERT_PUBLISHED: (&str, &str) =
    ("INSERT INTO published_events (event_id, source, published_at)", "ON CONFLICT (event_id) DO NOTHING");

use crate::{now_millis, Backend, StoreError};

#[derive(Debug, Clone)]
pub struct PublishedEvents {
    pool: AnyPool,
    backend: Backend,
}

impl PublishedEvents {
    pub(crate) fn new(pool: AnyPool, backend: Backend) -> Self {
        PublishedEvents { pool, backend }
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
        self.record_all(&[event_id.to_owned()], source).await
    }

    /// Which of `event_ids` Kafka has already (one query per [`crate::KEYS_PER_LOOKUP`] ids).
    pub async fn contained(&self, event_ids: &[String]) -> Result<std::collections::HashSet<String>, StoreError> {
        let what = "reading the published events";
        let select = "SELECT event_id FROM published_events WHERE event_id";
        let rows = crate::select_in((&self.pool, self.backend), what, select, event_ids).await?;
        rows.iter().map(|row| row.try_get(0).map_err(StoreError::query(what))).collect()
    }

    /// [`Self::record`] of many, in one transaction.
    pub async fn record_all(&self, event_ids: &[String], source: &str) -> Result<(), StoreError> {
        let rows: Vec<(&str, &str)> = event_ids.iter().map(|id| (id.as_str(), source)).collect();
        crate::insert_text_pairs(
            (&self.pool, self.backend),
            "recording published events",
            INSERT_PUBLISHED,
            &rows,
            now_millis(),
        )
        .await
    }
}
