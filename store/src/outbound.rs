//! Outbound interchanges by what they answer or carry (e.g. the 997 for a
//! partner's interchange 905, the 820 for payment PAY-42): the control number
//! and preparation time are reserved once, so that writing the document again
//! after a crash or a replay yields the same bytes under the same name.

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

/// The envelope values of one outbound interchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub control_number: i64,
    /// Milliseconds since the epoch: the envelope's date and time.
    pub prepared_at: i64,
}

#[derive(Debug, Clone)]
pub struct OutboundInterchanges {
    pool: AnyPool,
    control_numbers: crate::ControlNumbers,
}

impl OutboundInterchanges {
    pub(crate) fn new(pool: AnyPool) -> Self {
        OutboundInterchanges { control_numbers: crate::ControlNumbers::new(pool.clone()), pool }
    }

    async fn get(&self, key: &str) -> Result<Option<Reservation>, StoreError> {
        let row = sqlx::query("SELECT control_number, prepared_at FROM outbound_interchanges WHERE document_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading an outbound interchange"))?;
        row.map(|r| Ok(Reservation { control_number: r.try_get(0)?, prepared_at: r.try_get(1)? }))
            .transpose()
            .map_err(StoreError::query("reading an outbound interchange"))
    }

    /// The reservation for `key`: the earlier one if there is one, else a new
    /// control number for `partner` in `standard`, prepared now. When two
    /// processes race, the first insert wins and both return it (the loser's
    /// number is skipped, never reused).
    pub async fn reserve(&self, key: &str, partner: &str, standard: &str) -> Result<Reservation, StoreError> {
        if let Some(existing) = self.get(key).await? {
            return Ok(existing);
        }
        let control_number = self.control_numbers.next(partner, standard).await?;
        sqlx::query(
            "INSERT INTO outbound_interchanges (document_key, partner, standard, control_number, prepared_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (document_key) DO NOTHING",
        )
        .bind(key)
        .bind(partner)
        .bind(standard)
        .bind(control_number)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("reserving an outbound interchange"))?;
        self.get(key).await?.ok_or(StoreError::Vanished { what: "outbound interchange", key: key.to_owned() })
    }
}
