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

use crate::senders::Senders;
use gridsync_edi::{
    write::{envelope_rejection, functional_ack, interchange_acceptance, AckVerdict},
    EdiError, Interchange, Standard,
};
use gridsync_outbound::{standard_name, DocumentError, OutboundDocuments};
use gridsync_trading_grid::mailbox::{OutboundMailbox, Written};

/// Why an acknowledgement could not be written; `is_transient` says whether trying again helps.
pub type AckError = DocumentError;

/// An acknowledgement written to the outbound mailbox.
#[derive(Debug)]
pub struct Ack {
    /// `997`, `999`, `TA1` or `CONTRL`.
    pub document_type: &'static str,
    pub written: Written,
}

pub struct Acknowledger {
    documents: OutboundDocuments,
}

/// What became of a file's interchanges, as their acknowledgements say.
#[derive(Debug, Clone, Copy)]
pub enum FileVerdict<'e> {
    /// Processed: each transaction accepted but those rejected on their own (`found`: the errors
    /// mapping found in them), and the sets gridsync does not map unless the sender's profile
    /// accepts and ignores them.
    Processed { found: &'e [EdiError] },
    /// Not processed: every transaction rejected, the one the error lies in precisely.
    Rejected(&'e EdiError),
}

impl<'e> FileVerdict<'e> {
    /// The acknowledgement's verdict for an interchange of the sender whose profile ignores
    /// `ignored`.
    fn for_sender(self, ignored: &'e [String]) -> AckVerdict<'e> {
        match self {
            FileVerdict::Processed { found } => AckVerdict::Processed { found, ignored },
            FileVerdict::Rejected(error) => AckVerdict::Rejected(error),
        }
    }

    /// `accepted` or `rejected`, for metrics and logs.
    pub fn outcome(self) -> &'static str {
        self.for_sender(&[]).outcome()
    }
}

impl Acknowledger {
    pub fn new(documents: OutboundDocuments) -> Self {
        Acknowledger { documents }
    }

    /// A 997, 999 or CONTRL (as the sender's profile asks; none if it wants none) for each
    /// interchange of a file that parsed (acknowledgements excepted), and a TA1 accepting the
    /// envelope of each X12 interchange that asks for one (ISA14 = 1): its envelope was read,
    /// whatever the 997 says of the groups inside.
    pub async fn interchanges(
        &self,
        interchanges: &[Interchange<'_>],
        verdict: FileVerdict<'_>,
        senders: &Senders,
    ) -> Result<Vec<Ack>, AckError> {
        let mut written = Vec::new();
        for interchange in interchanges.iter().filter(|ix| ix.expects_acknowledgement()) {
            let partner = interchange.sender_id.trim();
            let inbound = interchange.control_number.trim();
            let outcome = verdict.outcome();
            let verdict = verdict.for_sender(senders.ignored(partner));
            let standard = standard_name(interchange.standard);
            if let Some(kind) = senders.acknowledgement(partner) {
                let document_type = match interchange.standard {
                    Standard::X12 => kind.document_type(),
                    Standard::Edifact => "CONTRL",
                };
                // A 997's reservation keeps the key it always had.
                let kind_key = if document_type == "999" { "-999" } else { "" };
                let receiver = interchange.receiver_id.trim();
                let key = format!("ack/{standard}{kind_key}/{partner}/{receiver}/{inbound}/{outcome}");
                let ack = self
                    .documents
                    .write(
                        &key,
                        partner,
                        interchange.standard,
                        |n| Some(functional_ack(interchange, verdict, kind, n.control_number, n.prepared_at)),
                        |n| {
                            let reference = format!("{inbound}-{}", n.control_number);
                            OutboundMailbox::file_name(partner, document_type, &reference, "edi")
                        },
                    )
                    .await?;
                written.extend(ack.map(|written| Ack { document_type, written }));
            }
            if interchange.acknowledgment_requested && interchange.standard == Standard::X12 {
                let key = format!("ta1/{standard}/{partner}/{}/{inbound}", interchange.receiver_id.trim());
                let ta1 = self
                    .documents
                    .write(
                        &key,
                        partner,
                        interchange.standard,
                        |n| interchange_acceptance(interchange, n.control_number, n.prepared_at),
                        |n| {
                            OutboundMailbox::file_name(
                                partner,
                                "TA1",
                                &format!("{inbound}-{}", n.control_number),
                                "edi",
                            )
                        },
                    )
                    .await?;
                written.extend(ta1.map(|written| Ack { document_type: "TA1", written }));
            }
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
        let document_type = if header.standard == Standard::X12 { "TA1" } else { "CONTRL" };
        let written = self
            .documents
            .write(
                &key,
                &partner,
                header.standard,
                |n| envelope_rejection(bytes, error, n.control_number, n.prepared_at),
                |n| {
                    let reference = format!("{}-{}", header.control_number, n.control_number);
                    OutboundMailbox::file_name(&partner, document_type, &reference, "edi")
                },
            )
            .await?;
        Ok(written.map(|written| Ack { document_type, written }))
    }
}
