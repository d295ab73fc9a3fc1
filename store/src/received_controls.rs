//! The document last received under each set of control numbers (sender,
//! receiver, interchange, group, transaction, event type), by its event id. A
//! resend has the same id; another document under reused numbers has another,
//! which is how tg-producer tells the two apart.

use std::collections::{BTreeMap, HashMap};

use sqlx::{AnyPool, Row};

use crate::{now_millis, Backend, StoreError};

#[derive(Debug, Clone)]
pub struct ReceivedControls {
    pool: AnyPool,
    backend: Backend,
}

impl ReceivedControls {
    pub(crate) fn new(pool: AnyPool, backend: Backend) -> Self {
        ReceivedControls { pool, backend }
    }

    /// The event id last received under each of `control_keys` that has one.
    pub async fn last_all(&self, control_keys: &[String]) -> Result<HashMap<String, String>, StoreError> {
        let what = "reading received control numbers";
        let select = "SELECT control_key, event_id FROM received_controls WHERE control_key";
        let rows = crate::select_in((&self.pool, self.backend), what, select, control_keys).await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query(what))
    }

    /// Records events Kafka acknowledged, `(event id, control key)`, in one transaction. From
    /// then on an event's control numbers say it was published; the published events (from
    /// `source`) take only what they cannot say: an event without control numbers, and any
    /// event its numbers named before (earlier in `acknowledged`, or in an earlier record: a
    /// partner that reused the numbers) before they name another one.
    ///
    /// So a fresh file's events go to this table alone: its keys (one interchange's numbers
    /// side by side) fill a few pages per batch, where the published events, keyed by ids
    /// spread at random, take a page write per event, more as the table grows.
    pub async fn record_acknowledged(
        &self,
        acknowledged: &[(String, Option<String>)],
        source: &str,
    ) -> Result<(), StoreError> {
        let what = "recording acknowledged events";
        // In key order: one interchange's keys sit side by side in the index, and written in
        // order they fill a few pages in turn instead of visiting them again and again.
        let mut last: BTreeMap<&str, &str> = BTreeMap::new();
        let mut unnamed: Vec<(&str, &str)> = Vec::new();
        for (id, key) in acknowledged {
            match key {
                None => unnamed.push((id, source)),
                Some(key) => {
                    if let Some(earlier) = last.insert(key, id).filter(|earlier| earlier != id) {
                        unnamed.push((earlier, source));
                    }
                }
            }
        }
        let keys: Vec<&str> = last.keys().copied().collect();
        let now = now_millis();
        let mut tx = self.pool.begin().await.map_err(StoreError::query(what))?;
        if self.backend == Backend::Postgres {
            // Replicas record in turn: two recording one key at once would each move what it
            // read before the other's write, and one of the documents it named would be lost.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(RECORDING_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(what))?;
        }
        for chunk in keys.chunks(crate::KEYS_PER_LOOKUP) {
            let sql = format!(
                "INSERT INTO published_events (event_id, source, published_at) \
                 SELECT event_id, {} FROM received_controls WHERE control_key IN ({}) \
                 ON CONFLICT (event_id) DO NOTHING",
                self.backend.parameters(1, 2),
                self.backend.parameters(3, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(source).bind(now);
            for key in chunk {
                query = query.bind(*key);
            }
            query.execute(&mut *tx).await.map_err(StoreError::query(what))?;
        }
        crate::insert_text_pairs_in(&mut tx, self.backend, what, crate::published::INSERT_PUBLISHED, &unnamed, now)
            .await?;
        let rows: Vec<(&str, &str)> = last.into_iter().collect();
        let received = (
            "INSERT INTO received_controls (control_key, event_id, seen_at)",
            "ON CONFLICT (control_key) DO UPDATE SET event_id = excluded.event_id, seen_at = excluded.seen_at",
        );
        crate::insert_text_pairs_in(&mut tx, self.backend, what, received, &rows, now).await?;
        tx.commit().await.map_err(StoreError::query(what))
    }
}

/// The PostgreSQL advisory lock [`ReceivedControls::record_acknowledged`] holds while it records.
const RECORDING_LOCK: i64 = 0x6772_6964_7263_7476; // "gridrctv"
