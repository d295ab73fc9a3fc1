//! What billing sends to partners through Trading Grid, and what comes back:
//! an 820/REMADV per confirmed payment, an 812 or CREADV/DEBADV per adjusting
//! dispute resolution (only the documents the partner's profile asks for),
//! each numbered by the store and written once; then the partner's 997/CONTRL
//! and Lens's status of it, matched back by partner and control number.
//!
//! The document is recorded, and its acknowledgement timer set, before the
//! file exists, so an answer that comes back at once always finds it. No
//! acknowledgement within the partner's window → an exception (flow 8).

use gridsync_core::kafka::Record;
use gridsync_edi::{
    write::{adjustment_advice, remittance_advice, Adjustment, AdjustmentDirection, PartyId, Remittance, WriteError},
    Standard,
};
use gridsync_flow::{effects::Outcome, partners, partners::PartnerProfile, scheduler, FlowError, SideEffect};
use gridsync_outbound::{DocumentError, Numbered};
use gridsync_schemas::events::{
    AckStatus, DeliveryOutcome, Direction, DisputeResolved, DocumentStatus, DocumentStatusChanged, EdiStandard,
    ExceptionKind, FunctionalAckReceived, PaymentConfirmed, TradingGridDocumentRef,
};
use gridsync_store::Timer;
use gridsync_trading_grid::mailbox::OutboundMailbox;
use serde::{Deserialize, Serialize};

use crate::{
    account::{Change, Entry},
    flow::{key, Billing},
};

pub(crate) const SENT: &str = "sent";
pub(crate) const ACK_OVERDUE: &str = "ack-overdue";

/// A document sent to a partner, as remembered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SentDocument {
    pub document_type: String,
    pub standard: String,
    pub file: String,
    pub control_number: u32,
    /// `payment` or `adjustment`.
    pub kind: String,
    /// The payment reference or dispute id.
    pub reference: String,
    pub invoice_number: String,
    pub sent_at: String,
    pub acknowledgement: Option<String>,
    #[serde(default)]
    pub errors: Vec<String>,
    pub delivery: Option<String>,
    #[serde(default)]
    pub overdue: bool,
}

/// The timer payload of an acknowledgement window.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AckTimer {
    pub source: String,
    pub partner: String,
    pub control_number: u32,
}

/// Writes a document: the standard, gridsync's own party, the partner, and its envelope's number.
type Build<'a> = Box<dyn FnOnce(Standard, PartyId, PartyId, Numbered) -> Result<Vec<u8>, WriteError> + Send + 'a>;

/// One document to send.
struct Outgoing<'a> {
    action: &'a str,
    kind: &'a str,
    reference: &'a str,
    invoice: &'a str,
    document_type: &'static str,
    build: Build<'a>,
}

fn outbound(e: DocumentError) -> FlowError {
    FlowError::Outbound { transient: e.is_transient(), message: e.to_string() }
}

fn written(e: WriteError) -> FlowError {
    FlowError::Invalid(format!("the document cannot be written: {e}"))
}

/// A control number as partners and Lens write it (`000000042`, `42`).
fn control_number(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

fn sent_subject(partner: &str, control: u32) -> String {
    format!("sent/{partner}/{control}")
}

fn standard(partner: &PartnerProfile) -> Standard {
    match partner.standard {
        partners::Standard::X12 => Standard::X12,
        partners::Standard::Edifact => Standard::Edifact,
    }
}

impl SentDocument {
    /// How the document is named in events about it.
    fn reference(&self, own_party: &PartyId, partner: &PartnerProfile) -> TradingGridDocumentRef {
        TradingGridDocumentRef {
            standard: if self.standard == "EDIFACT" { EdiStandard::Edifact } else { EdiStandard::X12 },
            document_type: self.document_type.clone(),
            sender_id: own_party.id.clone(),
            receiver_id: partner.interchange_id.clone(),
            interchange_control_number: self.control_number.to_string(),
            group_control_number: Some(self.control_number.to_string()),
            transaction_control_number: "0001".into(),
            file_name: Some(self.file.clone()),
            lens_transaction_id: None,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} #{} ({} {}, invoice {})",
            self.document_type, self.control_number, self.kind, self.reference, self.invoice_number
        )
    }
}

impl Billing {
    pub(crate) async fn send_remittance(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        payment: &PaymentConfirmed,
    ) -> Result<Option<String>, FlowError> {
        let remittance = Remittance::from_payment(payment);
        let document_type = if standard(partner) == Standard::X12 { "820" } else { "REMADV" };
        let out = Outgoing {
            action: "remittance-advice",
            kind: "payment",
            reference: &payment.payment_reference,
            invoice: &payment.invoice_number,
            document_type,
            build: Box::new(move |standard, own_party, them, numbered| {
                remittance_advice(standard, own_party, them, &remittance, numbered.control_number, numbered.prepared_at)
            }),
        };
        self.send(record, partner, out).await
    }

    /// The adjustment document of a resolution (`signed`: negative is a credit); none when nothing changes.
    pub(crate) async fn send_adjustment(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        dispute: &DisputeResolved,
        signed: rust_decimal::Decimal,
    ) -> Result<Option<String>, FlowError> {
        if signed.is_zero() {
            return Ok(None);
        }
        let amount = gridsync_schemas::Decimal::new(signed.abs()).map_err(|e| FlowError::Invalid(e.to_string()))?;
        let adjustment = Adjustment {
            reference: dispute.dispute_id.clone(),
            issued_on: dispute.resolved_at.to_datetime().map(|t| t.date_naive()).unwrap_or_default(),
            invoice_number: dispute.invoice_number.clone(),
            currency: dispute.currency.clone().unwrap_or_else(|| "USD".into()),
            amount,
            direction: if signed < rust_decimal::Decimal::ZERO {
                AdjustmentDirection::Credit
            } else {
                AdjustmentDirection::Debit
            },
            reason: dispute.summary.clone().or_else(|| Some(dispute.resolution.as_str().to_owned())),
        };
        let out = Outgoing {
            action: "adjustment-advice",
            kind: "adjustment",
            reference: &dispute.dispute_id,
            invoice: &dispute.invoice_number,
            document_type: adjustment.document_type(standard(partner)),
            build: Box::new(move |standard, own_party, them, numbered| {
                adjustment_advice(standard, own_party, them, &adjustment, numbered.control_number, numbered.prepared_at)
            }),
        };
        self.send(record, partner, out).await
    }

    /// Writes `out` to the outbound mailbox once (if the partner takes it);
    /// returns how the account status names it.
    async fn send(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        out: Outgoing<'_>,
    ) -> Result<Option<String>, FlowError> {
        if !partner.documents.iter().any(|d| d == out.document_type) {
            tracing::info!(
                partner = partner.id,
                document = out.document_type,
                "the partner's profile does not take this document; not sent"
            );
            return Ok(None);
        }
        let standard = standard(partner);
        let document_key = format!("{}/{}/{}", out.kind, partner.id, out.reference);
        let effect = SideEffect::trading_grid(out.action, Some(partner.id.clone())).once_per(document_key.clone());
        let (kind, reference, invoice, document_type) = (out.kind, out.reference, out.invoice, out.document_type);
        let build = out.build;
        let them = PartyId { qualifier: partner.interchange_qualifier.clone(), id: partner.interchange_id.clone() };
        let reserved_as = &document_key;
        self.ctx
            .effects
            .perform(record, &effect, |_| async move {
                let numbered = self.documents.reserve(reserved_as, &partner.id, standard).await.map_err(outbound)?;
                let control = numbered.control_number;
                let file =
                    OutboundMailbox::file_name(&partner.id, document_type, &format!("{reference}-{control:09}"), "edi");
                let sent = SentDocument {
                    document_type: document_type.to_owned(),
                    standard: gridsync_outbound::standard_name(standard).to_owned(),
                    file: file.clone(),
                    control_number: control,
                    kind: kind.to_owned(),
                    reference: reference.to_owned(),
                    invoice_number: invoice.to_owned(),
                    sent_at: self.today().1,
                    acknowledgement: None,
                    errors: Vec::new(),
                    delivery: None,
                    overdue: false,
                };
                let text = serde_json::to_string(&sent).map_err(FlowError::own_record)?;
                self.records.put_new(SENT, &key(&partner.id, &control.to_string()), &partner.id, &text).await?;
                let window = i64::from(partner.ack_window_hours) * 3_600_000;
                let payload = AckTimer {
                    source: scheduler::encode_source(&record.event)?,
                    partner: partner.id.clone(),
                    control_number: control,
                };
                self.timers
                    .schedule(&Timer {
                        key: format!("ack/{}/{control}", partner.id),
                        kind: ACK_OVERDUE.into(),
                        subject: sent_subject(&partner.id, control),
                        due_at_ms: self.clock.now_ms().saturating_add(window),
                        payload: serde_json::to_string(&payload).map_err(FlowError::own_record)?,
                    })
                    .await?;
                let bytes = build(standard, self.own_party.clone(), them, numbered).map_err(written)?;
                let written = self.documents.write_numbered(&file, &bytes).await.map_err(outbound)?;
                Ok(Outcome {
                    external_id: file,
                    outcome: if written.created { DeliveryOutcome::Created } else { DeliveryOutcome::AlreadyDone },
                    content_item_id: None,
                    content_version: None,
                    amplience_item: None,
                })
            })
            .await?;
        // Performed now or before: the number it was sent under, as reserved.
        let numbered = self.documents.reserve(&document_key, &partner.id, standard).await.map_err(outbound)?;
        Ok(Some(format!("{document_type} #{}", numbered.control_number)))
    }

    async fn read_sent(&self, partner: &str, control: u32) -> Result<Option<SentDocument>, FlowError> {
        self.records
            .get(SENT, &key(partner, &control.to_string()))
            .await?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(FlowError::own_record)
    }

    async fn write_sent(&self, partner: &str, sent: &SentDocument) -> Result<(), FlowError> {
        let text = serde_json::to_string(sent).map_err(FlowError::own_record)?;
        self.records.put(SENT, &key(partner, &sent.control_number.to_string()), partner, &text).await?;
        Ok(())
    }

    /// A 997/CONTRL from a partner: if it answers a document billing sent, recorded against it.
    pub(crate) async fn acknowledgement(&self, record: &Record, ack: &FunctionalAckReceived) -> Result<(), FlowError> {
        let partner_id = &ack.envelope.trading_partner_id;
        let Some(control) = control_number(&ack.acknowledged_interchange_control_number) else { return Ok(()) };
        let Some(sent) = self.read_sent(partner_id, control).await? else { return Ok(()) };
        let rejected = matches!(ack.status, AckStatus::Rejected | AckStatus::PartiallyAccepted);
        self.acknowledged(record, partner_id, sent, ack.status.as_str(), &ack.errors, rejected).await
    }

    async fn acknowledged(
        &self,
        record: &Record,
        partner_id: &str,
        mut sent: SentDocument,
        status: &str,
        errors: &[String],
        report_rejection: bool,
    ) -> Result<(), FlowError> {
        let partner = self.ctx.partners.get(partner_id)?;
        let control = sent.control_number;
        self.timers
            .cancel(&sent_subject(partner_id, control), Some(ACK_OVERDUE), &format!("acknowledged: {status}"))
            .await?;
        sent.acknowledgement = Some(status.to_owned());
        if !errors.is_empty() {
            sent.errors = errors.to_vec();
        }
        self.write_sent(partner_id, &sent).await?;
        if report_rejection {
            let reason = format!(
                "{} was rejected by {}'s functional acknowledgement: {}",
                sent.describe(),
                partner.name,
                if errors.is_empty() { "no reason given".to_owned() } else { errors.join("; ") }
            );
            let details = [
                ("invoice_number".to_owned(), sent.invoice_number.clone()),
                ("reference".to_owned(), sent.reference.clone()),
                ("file".to_owned(), sent.file.clone()),
                ("direction".to_owned(), "OUTBOUND".to_owned()),
            ]
            .into();
            self.publish_exception(
                record,
                ExceptionKind::FaRejected,
                &reason,
                details,
                Some(sent.reference(&self.own_party, partner)),
            )
            .await?;
        }
        let note = Change::Note {
            invoice: sent.invoice_number.clone(),
            on: Entry::of_kind(&sent.kind),
            reference: sent.reference.clone(),
            field: "acknowledgement".into(),
            value: status.to_owned(),
        };
        self.account(record, partner, vec![note], None).await
    }

    /// Lens's status of an outbound document: delivery, or the acknowledgement as Lens saw it.
    pub(crate) async fn lens_status(&self, record: &Record, status: &DocumentStatusChanged) -> Result<(), FlowError> {
        // A partner's own documents have control numbers of the partner's: not ours to match.
        if status.direction != Direction::Outbound {
            return Ok(());
        }
        let envelope = &status.envelope;
        let Some(document) = &envelope.trading_grid_document else { return Ok(()) };
        let Some(control) = control_number(&document.interchange_control_number) else { return Ok(()) };
        let partner_id = &envelope.trading_partner_id;
        let Some(mut sent) = self.read_sent(partner_id, control).await? else { return Ok(()) };
        match status.status {
            DocumentStatus::FaAccepted | DocumentStatus::FaRejected if sent.acknowledgement.is_none() => {
                let answer = if status.status == DocumentStatus::FaAccepted { "ACCEPTED" } else { "REJECTED" };
                // Lens reported the rejection as an exception itself.
                self.acknowledged(record, partner_id, sent, answer, &[], false).await
            }
            DocumentStatus::FaAccepted | DocumentStatus::FaRejected => Ok(()),
            other => {
                let partner = self.ctx.partners.get(partner_id)?;
                sent.delivery = Some(other.as_str().to_owned());
                self.write_sent(partner_id, &sent).await?;
                let note = Change::Note {
                    invoice: sent.invoice_number.clone(),
                    on: Entry::of_kind(&sent.kind),
                    reference: sent.reference.clone(),
                    field: "delivery".into(),
                    value: other.as_str().to_owned(),
                };
                self.account(record, partner, vec![note], None).await
            }
        }
    }

    /// A document's acknowledgement window ran out: an exception unless it came meanwhile.
    pub(crate) async fn ack_overdue(&self, record: &Record, timer: &Timer) -> Result<(), FlowError> {
        let payload: AckTimer = serde_json::from_str(&timer.payload).map_err(FlowError::own_record)?;
        let Some(mut sent) = self.read_sent(&payload.partner, payload.control_number).await? else { return Ok(()) };
        if sent.acknowledgement.is_some() {
            return Ok(());
        }
        let partner = self.ctx.partners.get(&payload.partner)?;
        let reason = format!(
            "{} sent to {} at {} has no functional acknowledgement after {} hours",
            sent.describe(),
            partner.name,
            sent.sent_at,
            partner.ack_window_hours
        );
        let details = [
            ("invoice_number".to_owned(), sent.invoice_number.clone()),
            ("reference".to_owned(), sent.reference.clone()),
            ("file".to_owned(), sent.file.clone()),
            ("sent_at".to_owned(), sent.sent_at.clone()),
            ("direction".to_owned(), "OUTBOUND".to_owned()),
        ]
        .into();
        self.publish_exception(
            record,
            ExceptionKind::FaLate,
            &reason,
            details,
            Some(sent.reference(&self.own_party, partner)),
        )
        .await?;
        sent.overdue = true;
        self.write_sent(&payload.partner, &sent).await?;
        let note = Change::Note {
            invoice: sent.invoice_number.clone(),
            on: Entry::of_kind(&sent.kind),
            reference: sent.reference.clone(),
            field: "acknowledgement".into(),
            value: "OVERDUE".into(),
        };
        self.account(record, partner, vec![note], Some(timer.key.clone())).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_numbers_match_however_partners_pad_them() {
        assert_eq!(super::control_number("000000042"), Some(42));
        assert_eq!(super::control_number(" 42 "), Some(42));
        assert_eq!(super::control_number("X42"), None);
    }
}
