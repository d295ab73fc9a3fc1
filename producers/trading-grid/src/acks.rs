//! Functional acknowledgements of inbound interchanges, written to the
//! outbound mailbox for Trading Grid to deliver: a 997/CONTRL accepting each
//! interchange once its events are durable, rejecting it (with the segment
//! and element in error) when the file is quarantined, or a TA1/CONTRL
//! rejection when not even the envelope can be read.
//!
//! Idempotent: each acknowledgement's control number and date are reserved in
//! the store under the interchange it answers and its verdict, so processing a
//! file again (after a crash) writes the same bytes under the same name, and
//! the mailbox recognises them.

use chrono::{DateTime, NaiveDateTime};
use gridsync_edi::{
    write::{envelope_rejection, functional_ack, AckVerdict, WriteError},
    EdiError, Interchange, Standard,
};
use gridsync_store::{Reservation, Store, StoreError};
use gridsync_trading_grid::mailbox::{MailboxError, OutboundMailbox, OutboundTarget, Written};

#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("reserving an acknowledgement's control number: {0}")]
    Store(#[from] StoreError),
    #[error("writing an acknowledgement: {0}")]
    Write(#[from] WriteError),
    #[error("writing an acknowledgement to the outbound mailbox: {0}")]
    Mailbox(#[from] MailboxError),
    #[error("the store reserved control number {0}, which no envelope holds")]
    ControlNumber(i64),
}

/// An acknowledgement written to the outbound mailbox.
#[derive(Debug)]
pub struct Ack {
    /// `997`, `TA1` or `CONTRL`.
    pub document_type: &'static str,
    pub written: Written,
}

impl AckError {
    /// The store or the mailbox may answer later; an acknowledgement that
    /// cannot be written (a partner id it cannot hold) never will.
    pub fn is_transient(&self) -> bool {
        matches!(self, AckError::Store(_) | AckError::Mailbox(_))
    }
}

pub struct Acknowledger {
    store: Store,
    outbound: OutboundTarget,
}

fn standard_name(standard: Standard) -> &'static str {
    match standard {
        Standard::X12 => "X12",
        Standard::Edifact => "EDIFACT",
    }
}

impl Acknowledger {
    pub fn new(store: Store, outbound: OutboundTarget) -> Self {
        Acknowledger { store, outbound }
    }

    async fn reserve(&self, key: &str, partner: &str, standard: Standard) -> Result<(u32, NaiveDateTime), AckError> {
        let Reservation { control_number, prepared_at } =
            self.store.outbound_interchanges().reserve(key, partner, standard_name(standard)).await?;
        let number = u32::try_from(control_number).map_err(|_| AckError::ControlNumber(control_number))?;
        let at = DateTime::from_timestamp_millis(prepared_at).unwrap_or_default().naive_utc();
        Ok((number, at))
    }

    /// A 997/CONTRL for each interchange of a file that parsed (acknowledgements excepted).
    pub async fn interchanges(
        &self,
        interchanges: &[Interchange<'_>],
        verdict: AckVerdict<'_>,
    ) -> Result<Vec<Ack>, AckError> {
        let mut written = Vec::new();
        for interchange in interchanges.iter().filter(|ix| ix.expects_acknowledgement()) {
            let partner = interchange.sender_id.trim();
            let inbound = interchange.control_number.trim();
            let outcome = verdict.outcome();
            let standard = standard_name(interchange.standard);
            let key = format!("ack/{standard}/{partner}/{}/{inbound}/{outcome}", interchange.receiver_id.trim());
            let (number, at) = self.reserve(&key, partner, interchange.standard).await?;
            let bytes = functional_ack(interchange, verdict, number, at)?;
            let document_type = if interchange.standard == Standard::X12 { "997" } else { "CONTRL" };
            let name = OutboundMailbox::file_name(partner, document_type, &format!("{inbound}-{number}"), "edi");
            written.push(Ack { document_type, written: self.outbound.write(&name, &bytes).await? });
        }
        Ok(written)
    }

    /// A TA1 or rejecting CONTRL for a file whose envelope failed; `None` when
    /// the file names nobody to answer. `content_id` identifies the file's bytes.
    pub async fn envelope(&self, bytes: &[u8], error: &EdiError, content_id: &str) -> Result<Option<Ack>, AckError> {
        // Nobody to answer: no control number is spent on it.
        let Some(header) = gridsync_edi::sniff_header(bytes).filter(|h| h.is_answerable()) else { return Ok(None) };
        let partner = header.sender.id.clone();
        let key = format!("reject/{}/{partner}/{content_id}", standard_name(header.standard));
        let (number, at) = self.reserve(&key, &partner, header.standard).await?;
        let Some(ack) = envelope_rejection(bytes, error, number, at) else { return Ok(None) };
        let document_type = if header.standard == Standard::X12 { "TA1" } else { "CONTRL" };
        let reference = format!("{}-{number}", header.control_number);
        let name = OutboundMailbox::file_name(&partner, document_type, &reference, "edi");
        Ok(Some(Ack { document_type, written: self.outbound.write(&name, &ack?).await? }))
    }
}
