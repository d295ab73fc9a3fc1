//! The document last received under each set of control numbers (sender,
//! receiver, interchange, group, transaction, event type), by its event id. A
//! resend has the same id; another document under reused numbers has another,
//! which is how tg-producer tells the two apart.

use std::collections::HashMap;

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

    /// Records `event_id` as the document last received under `control_key`.
    pub async fn record(&self, control_key: &str, event_id: &str) -> Result<(), StoreError> {
        self.record_all(&[(control_key.to_owned(), event_id.to_owned())]).await
    }

    /// [`Self::record`] of many `(control key, event id)`, in one transaction; of a key given
    /// twice, the last.
    pub async fn record_all(&self, received: &[(String, String)]) -> Result<(), StoreError> {
        let last: HashMap<&str, &str> = received.iter().map(|(key, id)| (key.as_str(), id.as_str())).collect();
        let rows: Vec<(&str, &str)> = last.into_iter().collect();
        let statement = (
            "INSERT INTO received_controls (control_key, event_id, seen_at)",
            "ON CONFLICT (control_key) DO UPDATE SET event_id = excluded.event_id, seen_at = excluded.seen_at",
        );
        crate::insert_text_pairs(
            (&self.pool, self.backend),
            "recording received control numbers",
            statement,
            &rows,
            now_millis(),
        )
        .await
    }
}
