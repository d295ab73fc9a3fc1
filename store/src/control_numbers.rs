//! Interchange control numbers for outbound EDI, per partner and standard:
//! allocated atomically in the database, so that they never repeat, across
//! restarts and across processes sharing the store.

use sqlx::{AnyPool, Row};

use crate::StoreError;

/// The largest control number an envelope holds (ISA13 is nine digits); the
/// sequence wraps to 1 after it, as trading partners expect.
pub const MAX_CONTROL_NUMBER: i64 = 999_999_999;

#[derive(Debug, Clone)]
pub struct ControlNumbers {
    pool: AnyPool,
}

impl ControlNumbers {
    pub(crate) fn new(pool: AnyPool) -> Self {
        ControlNumbers { pool }
    }

    /// The next control number for `partner` in `standard` (`X12`, `EDIFACT`).
    pub async fn next(&self, partner: &str, standard: &str) -> Result<i64, StoreError> {
        // One statement: the row is created or incremented and read back
        // atomically on both SQLite and PostgreSQL.
        let row = sqlx::query(
            "INSERT INTO control_numbers (partner, standard, last_used) VALUES ($1, $2, 1)
             ON CONFLICT (partner, standard) DO UPDATE SET last_used =
                 CASE WHEN control_numbers.last_used >= $3 THEN 1 ELSE control_numbers.last_used + 1 END
             RETURNING last_used",
        )
        .bind(partner)
        .bind(standard)
        .bind(MAX_CONTROL_NUMBER)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("allocating a control number"))?;
        row.try_get(0).map_err(StoreError::query("allocating a control number"))
    }

    /// The control number last used for `partner` in `standard`, if any.
    pub async fn last(&self, partner: &str, standard: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT last_used FROM control_numbers WHERE partner = $1 AND standard = $2")
            .bind(partner)
            .bind(standard)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a control number"))?;
        row.map(|r| r.try_get(0)).transpose().map_err(StoreError::query("reading a control number"))
    }
}
