//! Named watermarks: how far a poller has read a source (e.g. Lens status
//! dates), so that a restart resumes where the last run's work became durable.

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

#[derive(Debug, Clone)]
pub struct Watermarks {
    pool: AnyPool,
}

impl Watermarks {
    pub(crate) fn new(pool: AnyPool) -> Self {
        Watermarks { pool }
    }

    pub async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM watermarks WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a watermark"))?;
        row.map(|r| r.try_get(0)).transpose().map_err(StoreError::query("reading a watermark"))
    }

    pub async fn set(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO watermarks (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("writing a watermark"))?;
        Ok(())
    }
}
