//! Documents gridsync sends to trading partners (acknowledgements, 820/REMADV,
//! 812/CREADV, partner-content packages), written to the outbound mailbox in
//! envelopes numbered by the store.
//!
//! Idempotent: each document's control number and date are reserved in the
//! store under the document's key (what it answers or pays, and its verdict),
//! so writing it again after a crash or a replay builds the same bytes under
//! the same name, which the mailbox recognises as already written.

use chrono::{DateTime, NaiveDateTime};
use gridsync_edi::{write::WriteError, Standard};
use gridsync_store::{Reservation, Store, StoreError};

use gridsync_trading_grid::mailbox::{MailboxError, OutboundTarget, Written};

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("reserving a control number: {0}")]
    Store(#[from] StoreError),
    #[error("writing the document: {0}")]
    Write(#[from] WriteError),
    #[error("writing to the outbound mailbox: {0}")]
    Mailbox(#[from] MailboxError),
    #[error("the store reserved control number {0}, which no envelope holds")]
    ControlNumber(i64),
}

impl DocumentError {
    /// The store or the mailbox may answer later; a document that cannot be
    /// written (a partner id its envelope cannot hold) never will.
    pub fn is_transient(&self) -> bool {
        matches!(self, DocumentError::Store(_) | DocumentError::Mailbox(_))
    }
}

/// The control number and date reserved for one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    pub control_number: u32,
    pub prepared_at: NaiveDateTime,
}

/// What the store calls a standard.
pub fn standard_name(standard: Standard) -> &'static str {
    match standard {
        Standard::X12 => "X12",
        Standard::Edifact => "EDIFACT",
    }
}

/// Writes numbered documents to the outbound mailbox.
pub struct OutboundDocuments {
    store: Store,
    outbound: OutboundTarget,
}

impl OutboundDocuments {
    pub fn new(store: Store, outbound: OutboundTarget) -> Self {
        OutboundDocuments { store, outbound }
    }

    /// Reserves (or finds) the control number of the document `key` for
    /// `partner`, builds it with `build`, and writes it under the name `name`
    /// gives for that number. `build` may decline (`None`: nothing to send).
    pub async fn write(
        &self,
        key: &str,
        partner: &str,
        standard: Standard,
        build: impl FnOnce(Numbered) -> Option<Result<Vec<u8>, WriteError>>,
        name: impl FnOnce(Numbered) -> String,
    ) -> Result<Option<Written>, DocumentError> {
        let numbered = self.reserve(key, partner, standard).await?;
        let Some(bytes) = build(numbered).transpose()? else { return Ok(None) };
        Ok(Some(self.outbound.write(&name(numbered), &bytes).await?))
    }

    /// Writes a document numbered by [`Self::reserve`]: for a caller that records
    /// the number (to match the partner's acknowledgement) before the file exists.
    pub async fn write_numbered(&self, name: &str, bytes: &[u8]) -> Result<Written, DocumentError> {
        Ok(self.outbound.write(name, bytes).await?)
    }

    /// The control number and date of the document `key` for `partner`: reserved now, or found.
    pub async fn reserve(&self, key: &str, partner: &str, standard: Standard) -> Result<Numbered, DocumentError> {
        let Reservation { control_number, prepared_at } =
            self.store.outbound_interchanges().reserve(key, partner, standard_name(standard)).await?;
        let number = u32::try_from(control_number).map_err(|_| DocumentError::ControlNumber(control_number))?;
        let at = DateTime::from_timestamp_millis(prepared_at).unwrap_or_default().naive_utc();
        Ok(Numbered { control_number: number, prepared_at: at })
    }
}
