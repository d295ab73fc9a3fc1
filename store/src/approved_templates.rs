//! The latest approved version of each message template gridsync has seen.
//! Amplience's Management API answers with an item's current version, which
//! may be a draft edited after approval; the consumers render from the last
//! version they saw approved, kept here across restarts.

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedTemplate {
    pub version: i64,
    /// The item's body as JSON.
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct ApprovedTemplates {
    pool: AnyPool,
}

impl ApprovedTemplates {
    pub(crate) fn new(pool: AnyPool) -> Self {
        ApprovedTemplates { pool }
    }

    /// Records `version` of `template_id` as approved, unless a newer one is recorded.
    pub async fn record(&self, template_id: &str, approved: &ApprovedTemplate) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO approved_templates (template_id, version, body, seen_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (template_id) DO UPDATE SET version = excluded.version, body = excluded.body,
             seen_at = excluded.seen_at WHERE approved_templates.version < excluded.version",
        )
        .bind(template_id)
        .bind(approved.version)
        .bind(&approved.body)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording an approved template"))?;
        Ok(())
    }

    /// The latest approved version of `template_id` recorded, if any.
    pub async fn latest(&self, template_id: &str) -> Result<Option<ApprovedTemplate>, StoreError> {
        let row = sqlx::query("SELECT version, body FROM approved_templates WHERE template_id = $1")
            .bind(template_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading an approved template"))?;
        row.map(|r| Ok(ApprovedTemplate { version: r.try_get(0)?, body: r.try_get(1)? }))
            .transpose()
            .map_err(StoreError::query("reading an approved template"))
    }
}
