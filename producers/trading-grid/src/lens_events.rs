//! Lens transactions → events. A transaction is remembered by its state
//! (status letter, functional-ack letter, receipt); each part that changed
//! since the last poll becomes a DocumentStatusChanged event, and failures
//! (delivery failed, validation error, on hold, FA rejected or timed out,
//! duplicate) also a DocumentExchangeException for flow 8.
//!
//! Still-moving statuses (batched, processing, delivery in progress, ready
//! for pickup) are remembered but not published: they say nothing new.

use std::collections::BTreeMap;

use gridsync_schemas::{
    events::{
        Direction, DocumentExchangeException, DocumentStatus, DocumentStatusChanged, EdiStandard, Envelope,
        ExceptionKind, Severity, SourceSystem, TradingGridDocumentRef,
    },
    Event, EventType, Timestamp,
};
use gridsync_trading_grid::lens::{parse_lens_time, LensTransaction};

/// The content keys asked of Lens, for business keys and correlation.
pub const CONTENT_KEYS: [&str; 3] = ["purchase order number", "invoice number", "shipment number"];

/// What mapping needs besides the transaction.
pub struct LensContext<'a> {
    /// gridsync's own EDI addresses: a transaction sent from one is outbound.
    pub own_addresses: &'a [String],
    pub ingested_at: Timestamp,
}

/// The remembered state of a transaction.
pub fn fingerprint(tx: &LensTransaction) -> String {
    let part = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    format!("{}|{}|{}", tx.status.trim(), part(&tx.fastatus), part(&tx.deliveryreceipt))
}

/// A failure worth an exception event: its kind, severity and what to call it.
type Failure = (ExceptionKind, Severity, &'static str);

/// The event status of a Lens status letter, and the failure it is, if one.
fn status(letter: &str) -> Option<(DocumentStatus, Option<Failure>)> {
    Some(match letter {
        "S" | "C" => (DocumentStatus::Delivered, None),
        "F" => {
            (DocumentStatus::DeliveryFailed, Some((ExceptionKind::DeliveryFailed, Severity::Error, "delivery failed")))
        }
        "V" => (
            DocumentStatus::ValidationError,
            Some((ExceptionKind::ValidationError, Severity::Error, "failed validation")),
        ),
        "H" => (
            DocumentStatus::OnHold,
            Some((ExceptionKind::OnHold, Severity::Critical, "is on hold after failed deliveries")),
        ),
        "N" => (DocumentStatus::OnHold, Some((ExceptionKind::OnHold, Severity::Warning, "has delivery disabled"))),
        "U" => (DocumentStatus::ValidationError, Some((ExceptionKind::Duplicate, Severity::Warning, "is a duplicate"))),
        _ => return None,
    })
}

/// The event status of a functional-ack letter, and the failure it is, if one.
fn fa_status(letter: &str) -> Option<(DocumentStatus, Option<Failure>)> {
    Some(match letter {
        "A" | "E" | "M" => (DocumentStatus::FaAccepted, None),
        "R" | "P" => (
            DocumentStatus::FaRejected,
            Some((ExceptionKind::FaRejected, Severity::Error, "was rejected by the partner's functional ack")),
        ),
        "T" => (
            DocumentStatus::FaTimedOut,
            Some((ExceptionKind::FaLate, Severity::Warning, "got no functional ack in time")),
        ),
        _ => return None,
    })
}

/// Every event the transaction's changes since `previous` (a fingerprint) map to.
pub fn changes(tx: &LensTransaction, previous: Option<&str>, ctx: &LensContext<'_>) -> Vec<Event> {
    let mut before = previous.unwrap_or("").split('|');
    let (old_status, old_fa, old_receipt) =
        (before.next().unwrap_or(""), before.next().unwrap_or(""), before.next().unwrap_or(""));
    let text = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    let (fa, receipt) = (text(&tx.fastatus), text(&tx.deliveryreceipt));
    let mapper = Mapper::new(tx, ctx);
    let mut events = Vec::new();
    if tx.status.trim() != old_status {
        if let Some((status, failure)) = status(tx.status.trim()) {
            events.extend(mapper.events("status", tx.status.trim(), status, &tx.statusdate, failure));
        }
    }
    if fa != old_fa {
        if let Some((status, failure)) = fa_status(&fa) {
            events.extend(mapper.events("fa", &fa, status, &tx.fastatusdate, failure));
        }
    }
    if receipt != old_receipt && !receipt.is_empty() {
        // Lens reports the receipt as text; a read confirmation says so.
        let status = if receipt.to_ascii_lowercase().contains("read") {
            DocumentStatus::ReadConfirmed
        } else {
            DocumentStatus::DeliveryReceipt
        };
        events.extend(mapper.events("receipt", &receipt, status, &tx.statusdate, None));
    }
    events
}

/// Builds the events of one transaction.
struct Mapper<'a> {
    tx: &'a LensTransaction,
    ctx: &'a LensContext<'a>,
    direction: Direction,
    partner: String,
    document_type: String,
    business_key: String,
    correlation_id: String,
}

impl<'a> Mapper<'a> {
    fn new(tx: &'a LensTransaction, ctx: &'a LensContext<'a>) -> Self {
        let sender = tx.senderaddress.clone().unwrap_or_default();
        let receiver = tx.receiveraddress.clone().unwrap_or_default();
        let outbound = ctx.own_addresses.iter().any(|own| own.eq_ignore_ascii_case(sender.trim()));
        let (direction, partner) =
            if outbound { (Direction::Outbound, receiver) } else { (Direction::Inbound, sender) };
        let partner = Some(partner.trim().to_owned()).filter(|p| !p.is_empty()).unwrap_or_else(|| "unknown".into());
        let document_type = tx.editype.clone().unwrap_or_else(|| "BIN".into());
        let po = tx.content_key("purchase order number");
        let business_key = CONTENT_KEYS
            .iter()
            .find_map(|k| tx.content_key(k))
            .or(tx.senderreference.as_deref())
            .unwrap_or(&tx.transactionid)
            .to_owned();
        let correlation_id = match po {
            Some(po) => Envelope::correlation_id_for(&partner, po),
            None => format!("{partner}/{document_type}/{business_key}"),
        };
        Mapper { tx, ctx, direction, partner, document_type, business_key, correlation_id }
    }

    fn envelope(&self, event_type: EventType, id_parts: &[&str], occurred: Timestamp) -> Envelope {
        let tx = self.tx;
        let standard = match tx.envelopetype.as_deref() {
            Some("ISA") => Some(EdiStandard::X12),
            Some("UNA" | "UNB") => Some(EdiStandard::Edifact),
            _ => None,
        };
        Envelope {
            event_id: Envelope::deterministic_event_id(SourceSystem::TradingGrid, id_parts),
            event_type: event_type.name().to_owned(),
            occurred_at: occurred,
            ingested_at: self.ctx.ingested_at,
            source_system: SourceSystem::TradingGrid,
            trading_partner_id: self.partner.clone(),
            business_key: self.business_key.clone(),
            correlation_id: self.correlation_id.clone(),
            trading_grid_document: standard.map(|standard| TradingGridDocumentRef {
                standard,
                document_type: self.document_type.clone(),
                sender_id: tx.senderaddress.clone().unwrap_or_default(),
                receiver_id: tx.receiveraddress.clone().unwrap_or_default(),
                interchange_control_number: tx.senderreference.clone().unwrap_or_default(),
                group_control_number: None,
                transaction_control_number: tx.senderreference.clone().unwrap_or_default(),
                file_name: None,
                lens_transaction_id: Some(tx.transactionid.clone()),
            }),
            amplience_content: None,
        }
    }

    /// The status event, and the exception when the status is a failure.
    fn events(
        &self,
        what: &str,
        code: &str,
        status: DocumentStatus,
        at: &Option<String>,
        failure: Option<Failure>,
    ) -> Vec<Event> {
        let tx = self.tx;
        let at_text = at.as_deref().unwrap_or("");
        let occurred = at
            .as_deref()
            .and_then(parse_lens_time)
            .map_or(self.ctx.ingested_at, |t| Timestamp::from_millis(t.timestamp_millis()));
        let parts = ["lens", tx.transactionid.as_str(), what, code, at_text];
        let mut events: Vec<Event> = vec![DocumentStatusChanged {
            envelope: self.envelope(EventType::DocumentStatusChanged, &parts, occurred),
            lens_transaction_id: tx.transactionid.clone(),
            document_type: self.document_type.clone(),
            direction: self.direction,
            status,
            lens_status_code: tx.status.trim().to_owned(),
            lens_fa_status: tx.fastatus.clone(),
            error_code: tx.errorcode.clone(),
            error_message: tx.externalerrormessage.clone(),
            status_at: occurred,
        }
        .into()];
        if let Some((kind, severity, described)) = failure {
            let reference = tx.senderreference.as_deref().unwrap_or(&tx.transactionid);
            let mut reason = format!("{} {} to/from {} {described}", self.document_type, reference, self.partner);
            if let Some(message) = tx.externalerrormessage.as_deref().filter(|m| !m.trim().is_empty()) {
                reason.push_str(&format!(": {}", message.trim()));
            }
            let mut details = BTreeMap::from([
                ("lens_transaction_id".to_owned(), tx.transactionid.clone()),
                ("lens_status".to_owned(), tx.status.trim().to_owned()),
                ("direction".to_owned(), self.direction.as_str().to_owned()),
            ]);
            for (key, value) in [("lens_fa_status", &tx.fastatus), ("error_code", &tx.errorcode)] {
                if let Some(value) = value {
                    details.insert(key.to_owned(), value.clone());
                }
            }
            let exception_parts = ["lens-exception", tx.transactionid.as_str(), what, code, at_text];
            events.push(
                DocumentExchangeException {
                    envelope: self.envelope(EventType::DocumentExchangeException, &exception_parts, occurred),
                    kind,
                    severity,
                    reason,
                    document_type: Some(self.document_type.clone()),
                    quarantine_path: None,
                    details,
                }
                .into(),
            );
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use gridsync_trading_grid::lens::ContentKey;

    use super::*;

    fn transaction(status: &str, fa: Option<&str>) -> LensTransaction {
        LensTransaction {
            transactionid: "T-1".into(),
            correlationid: None,
            editype: Some("810".into()),
            envelopetype: Some("ISA".into()),
            senderaddress: Some("GRIDSYNC".into()),
            receiveraddress: Some("ACME".into()),
            senderreference: Some("000000042".into()),
            status: status.into(),
            statusdate: Some("2026-11-25T10:00:00Z".into()),
            deliverystatus: None,
            deliveryreceipt: None,
            fastatus: fa.map(str::to_owned),
            fastatusdate: Some("2026-11-25T10:05:00Z".into()),
            errorcode: None,
            externalerrormessage: None,
            arrivaltime: None,
            contentkeys: vec![
                ContentKey { name: "Purchase Order Number".into(), value: Some("4500012345".into()) },
                ContentKey { name: "invoice number".into(), value: Some("INV-88001".into()) },
            ],
        }
    }

    fn ctx(own: &[String]) -> LensContext<'_> {
        LensContext { own_addresses: own, ingested_at: Timestamp::from_millis(0) }
    }

    #[test]
    fn only_what_changed_is_published_and_failures_raise_exceptions() {
        let own = vec!["GRIDSYNC".to_owned()];
        let delivered = transaction("S", Some("W"));
        let first = changes(&delivered, None, &ctx(&own));
        assert_eq!(first.len(), 1, "delivered; waiting for the FA says nothing yet");
        let Event::DocumentStatusChanged(e) = &first[0] else { panic!() };
        assert_eq!((e.status, e.direction), (DocumentStatus::Delivered, Direction::Outbound));
        assert_eq!(e.envelope.trading_partner_id, "ACME");
        assert_eq!(e.envelope.correlation_id, "ACME/PO/4500012345");
        assert_eq!(e.envelope.business_key, "4500012345");
        assert!(changes(&delivered, Some(&fingerprint(&delivered)), &ctx(&own)).is_empty(), "nothing new");

        let rejected = transaction("S", Some("R"));
        let next = changes(&rejected, Some(&fingerprint(&delivered)), &ctx(&own));
        assert_eq!(next.len(), 2);
        let Event::DocumentStatusChanged(fa) = &next[0] else { panic!() };
        assert_eq!((fa.status, fa.lens_fa_status.as_deref()), (DocumentStatus::FaRejected, Some("R")));
        let Event::DocumentExchangeException(x) = &next[1] else { panic!() };
        assert_eq!((x.kind, x.severity), (ExceptionKind::FaRejected, Severity::Error));
        assert_eq!(x.reason, "810 000000042 to/from ACME was rejected by the partner's functional ack");
        assert_ne!(fa.envelope.event_id, e.envelope.event_id);
        let again = changes(&rejected, Some(&fingerprint(&delivered)), &ctx(&own));
        assert_eq!(again[0].envelope().event_id, fa.envelope.event_id, "deterministic ids");
    }

    #[test]
    fn inbound_failures_name_the_sender_and_the_message() {
        let mut failed = transaction("V", None);
        failed.senderaddress = Some("ACME".into());
        failed.receiveraddress = Some("GRIDSYNC".into());
        failed.externalerrormessage = Some("Invalid segment N1".into());
        failed.errorcode = Some("E123".into());
        let events = changes(&failed, Some("P||"), &ctx(&["GRIDSYNC".to_owned()]));
        let Event::DocumentExchangeException(x) = &events[1] else { panic!("{events:?}") };
        assert_eq!(x.kind, ExceptionKind::ValidationError);
        assert_eq!(x.reason, "810 000000042 to/from ACME failed validation: Invalid segment N1");
        assert_eq!(x.details["error_code"], "E123");
        assert_eq!(x.details["direction"], "INBOUND");
        assert!(changes(&transaction("P", None), None, &ctx(&[])).is_empty(), "in progress is not news");
    }
}
