//! What a flow remembers between events, by kind and key: the purchase orders
//! it has seen (to check invoices against), the documents it sent (to match
//! acknowledgements to), the tasks it opened (to resolve them). Each flow
//! encodes its own records (JSON); a `subject` groups records that one later
//! event looks up together (e.g. every open task of one document).

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

/// The records of one flow.
#[derive(Debug, Clone)]
pub struct FlowRecords {
    pool: AnyPool,
    flow: String,
}

impl FlowRecords {
    pub(crate) fn new(pool: AnyPool, flow: &str) -> Self {
        FlowRecords { pool, flow: flow.to_owned() }
    }

    /// Writes the record `kind`/`key`, replacing what was there.
    pub async fn put(&self, kind: &str, key: &str, subject: &str, body: &str) -> Result<(), StoreError> {
        let replace =
            "DO UPDATE SET subject = excluded.subject, body = excluded.body, updated_at = excluded.updated_at";
        self.insert(kind, key, subject, body, replace).await?;
        Ok(())
    }

    /// Writes the record unless it exists; returns whether it was written.
    pub async fn put_new(&self, kind: &str, key: &str, subject: &str, body: &str) -> Result<bool, StoreError> {
        self.insert(kind, key, subject, body, "DO NOTHING").await
    }

    /// Inserts the record, `on_conflict` (a fixed SQL fragment) deciding what an existing one
    /// becomes; returns whether a row was written.
    async fn insert(
        &self,
        kind: &str,
        key: &str,
        subject: &str,
        body: &str,
        on_conflict: &str,
    ) -> Result<bool, StoreError> {
        let statement = format!(
            "INSERT INTO flow_records (flow, kind, record_key, subject, body, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (flow, kind, record_key) {on_conflict}"
        );
        let done = sqlx::query(&statement)
            .bind(&self.flow)
            .bind(kind)
            .bind(key)
            .bind(subject)
            .bind(body)
            .bind(now_millis())
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("writing a flow record"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The record `kind`/`key`, if any.
    pub async fn get(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT body FROM flow_records WHERE flow = $1 AND kind = $2 AND record_key = $3")
            .bind(&self.flow)
            .bind(kind)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a flow record"))?;
        row.map(|r| r.try_get(0)).transpose().map_err(StoreError::query("reading a flow record"))
    }

    /// Every record of `kind` under `subject`, `(key, body)` by key.
    pub async fn of_subject(&self, kind: &str, subject: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT record_key, body FROM flow_records WHERE flow = $1 AND kind = $2 AND subject = $3
             ORDER BY record_key",
        )
        .bind(&self.flow)
        .bind(kind)
        .bind(subject)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("reading flow records"))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query("reading flow records"))
    }
}
