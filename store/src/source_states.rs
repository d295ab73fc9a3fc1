//! The last state gridsync saw of each item of a polled source (e.g. each
//! Lens transaction's status, FA status and receipt), so that a poll that
//! re-reads an overlapping window publishes only what changed.

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

#[derive(Debug, Clone)]
pub struct SourceStates {
    pool: AnyPool,
    source: String,
}

impl SourceStates {
    pub(crate) fn new(pool: AnyPool, source: &str) -> Self {
        SourceStates { pool, source: source.to_owned() }
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT state FROM source_states WHERE source = $1 AND item = $2")
            .bind(&self.source)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a source state"))?;
        row.map(|r| r.try_get(0)).transpose().map_err(StoreError::query("reading a source state"))
    }

    /// Records `state` for `key` (after its events are durable).
    pub async fn set(&self, key: &str, state: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO source_states (source, item, state, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (source, item) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(&self.source)
        .bind(key)
        .bind(state)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("writing a source state"))?;
        Ok(())
    }
}
