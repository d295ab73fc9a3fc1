//! An event as the audit store records it: one line for people, and the
//! business references that link it to the rest of its transaction.

use gridsync_core::kafka::Record;
use gridsync_schemas::{
    events::{Direction, TargetSystem},
    Date, Event,
};
use gridsync_store::audit::{AuditEntry, AuditRef, READ_CONFIRMATION_REQUIRED};

/// The audit entry of `record`, or why its event cannot be written as JSON.
pub fn of_record(record: &Record) -> Result<AuditEntry, serde_json::Error> {
    let event = &record.event;
    let envelope = event.envelope();
    let body = serde_json::to_string(&event.to_json()?)?;
    let mut refs = vec![
        AuditRef::new("event", envelope.event_id.clone()),
        AuditRef::new("correlation", envelope.correlation_id.clone()),
        AuditRef::new("business", envelope.business_key.clone()),
    ];
    // An inbound file holds many documents of many transactions: searchable, never followed.
    if let Some(file) = envelope.trading_grid_document.as_ref().and_then(|d| d.file_name.clone()) {
        refs.push(AuditRef::new("inbound-file", file));
    }
    let mut content = envelope.amplience_content.as_ref().map(|c| (c.content_item_id.clone(), c.version));
    if let Some((id, _)) = &content {
        refs.push(AuditRef::new("content", id.clone()));
    }
    let (mut action, mut status, mut due_at) = (None, None, None);
    let summary = match event {
        Event::PurchaseOrderReceived(po) => {
            refs.push(AuditRef::new("po", po.po_number.clone()));
            format!(
                "purchase order {} received from {} ({} lines)",
                po.po_number,
                po.buyer.name.as_deref().unwrap_or(&po.buyer.id),
                po.lines.len()
            )
        }
        Event::OrderResponseReceived(r) => {
            refs.push(AuditRef::new("po", r.po_number.clone()));
            status = Some(format!("{:?}", r.status).to_ascii_uppercase());
            format!("order response for {}: {:?}", r.po_number, r.status)
        }
        Event::ShipNoticeReceived(asn) => {
            refs.push(AuditRef::new("shipment", asn.shipment_id.clone()));
            refs.extend(asn.po_numbers.iter().map(|po| AuditRef::new("po", po.clone())));
            format!("ship notice {} for {}", asn.shipment_id, asn.po_numbers.join(", "))
        }
        Event::DeliveryConfirmed(d) => {
            refs.push(AuditRef::new("shipment", d.shipment_id.clone()));
            refs.extend(d.po_number.iter().map(|po| AuditRef::new("po", po.clone())));
            format!("shipment {} delivered ({})", d.shipment_id, d.status_code)
        }
        Event::InvoiceReceived(inv) => {
            refs.push(AuditRef::new("invoice", inv.invoice_number.clone()));
            refs.extend(inv.po_number.iter().map(|po| AuditRef::new("po", po.clone())));
            due_at = inv.due_date.as_ref().map(date_millis);
            format!("invoice {} for {} {}", inv.invoice_number, inv.total_amount, inv.currency)
        }
        Event::PaymentConfirmed(p) => {
            refs.push(AuditRef::new("invoice", p.invoice_number.clone()));
            refs.push(AuditRef::new("payment", p.payment_reference.clone()));
            format!("payment {} of {} {} for invoice {}", p.payment_reference, p.amount, p.currency, p.invoice_number)
        }
        Event::RemittanceAdviceReceived(r) => {
            refs.push(AuditRef::new("payment", r.payment_reference.clone()));
            refs.extend(r.remittances.iter().map(|i| AuditRef::new("invoice", i.invoice_number.clone())));
            format!("remittance advice {} of {} {}", r.payment_reference, r.total_amount, r.currency)
        }
        Event::DisputeResolved(d) => {
            refs.push(AuditRef::new("invoice", d.invoice_number.clone()));
            refs.push(AuditRef::new("dispute", d.dispute_id.clone()));
            status = Some(d.resolution.as_str().to_owned());
            format!("dispute {} on invoice {} resolved: {}", d.dispute_id, d.invoice_number, d.resolution.as_str())
        }
        Event::FunctionalAckReceived(ack) => {
            refs.push(AuditRef::new("control", control_number(&ack.acknowledged_interchange_control_number)));
            status = Some(ack.status.as_str().to_owned());
            format!(
                "acknowledgement {} of interchange {}",
                ack.status.as_str(),
                ack.acknowledged_interchange_control_number
            )
        }
        Event::DocumentStatusChanged(s) => {
            refs.push(AuditRef::new("lens", s.lens_transaction_id.clone()));
            if s.direction == Direction::Outbound {
                // Lens names an outbound interchange by its control number, a package by its file name.
                let key = &envelope.business_key;
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
                    refs.push(AuditRef::new("control", control_number(key)));
                } else {
                    refs.push(AuditRef::new("file", key.clone()));
                }
            }
            status = Some(s.status.as_str().to_owned());
            format!("{} {} {}: {}", direction(s.direction), s.document_type, envelope.business_key, s.status.as_str())
        }
        Event::DocumentExchangeException(x) => {
            for key in ["po_number", "invoice_number", "shipment_id", "file", "content_item_id"] {
                if let Some(value) = x.details.get(key) {
                    refs.push(AuditRef::new(reference_kind(key), value.clone()));
                }
            }
            if let Some(path) = &x.quarantine_path {
                let name = path.rsplit('/').next().unwrap_or(path);
                refs.push(AuditRef::new("inbound-file", name.to_owned()));
            }
            status = Some(x.kind.as_str().to_owned());
            format!("exception {} ({}): {}", x.kind.as_str(), x.severity.as_str(), x.reason)
        }
        Event::PartnerContentApproved(c) => {
            content = Some((c.content.content_item_id.clone(), c.content.version));
            refs.push(AuditRef::new("content", c.content.content_item_id.clone()));
            status = read_confirmation(c.content.requires_read_confirmation);
            format!("content {:?} v{} approved", c.content.title, c.content.version)
        }
        Event::PartnerContentPublished(c) => {
            content = Some((c.content.content_item_id.clone(), c.content.version));
            refs.push(AuditRef::new("content", c.content.content_item_id.clone()));
            status = read_confirmation(c.content.requires_read_confirmation);
            format!("content {:?} v{} published", c.content.title, c.content.version)
        }
        Event::DeliveryPerformed(d) => {
            // The event that caused it shares its `event` reference: a lineage reaches both.
            refs.push(AuditRef::new("event", d.source_event_id.clone()));
            refs.push(AuditRef::new("external", d.external_id.clone()));
            if d.target_system == TargetSystem::TradingGrid {
                refs.push(AuditRef::new("file", d.external_id.clone()));
                if let Some(control) = file_control_number(&d.external_id) {
                    refs.push(AuditRef::new("control", control));
                }
            }
            content = d.content_item_id.clone().map(|id| (id, d.content_version.unwrap_or_default()));
            if let Some((id, _)) = &content {
                refs.push(AuditRef::new("content", id.clone()));
            }
            action = Some(d.action.clone());
            status = Some(d.outcome.as_str().to_owned());
            let used = match (&d.content_item_id, d.content_version) {
                (Some(id), Some(v)) => format!(" from content {id} v{v}"),
                _ => String::new(),
            };
            // A side effect without a recipient (a status item) names none, rather than "-".
            let recipient = d.recipient.as_deref().map(|r| format!(" {r}")).unwrap_or_default();
            format!(
                "{} sent {} to {}{recipient}{used}: {}",
                d.consumer,
                d.action,
                d.target_system.as_str(),
                d.external_id
            )
        }
    };
    refs.sort();
    refs.dedup();
    // A document gridsync sent to a partner is that partner's, whatever its cause was about (a
    // package of content for several partners has the partner `ALL`).
    let partner = match event {
        Event::DeliveryPerformed(d) if d.target_system == TargetSystem::TradingGrid => {
            d.recipient.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| envelope.trading_partner_id.clone())
        }
        _ => envelope.trading_partner_id.clone(),
    };
    Ok(AuditEntry {
        event_id: envelope.event_id.clone(),
        event_type: envelope.event_type.clone(),
        source_system: envelope.source_system.as_str().to_owned(),
        partner,
        business_key: envelope.business_key.clone(),
        correlation_id: envelope.correlation_id.clone(),
        occurred_at: envelope.occurred_at.millis(),
        seen_at: envelope.ingested_at.millis(),
        summary,
        action,
        status,
        due_at,
        content_item_id: content.as_ref().map(|(id, _)| id.clone()),
        content_version: content.map(|(_, v)| v),
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        body,
        refs,
    })
}

/// The status of content whose packages must be confirmed read (what the open-items query asks).
fn read_confirmation(required: bool) -> Option<String> {
    required.then(|| READ_CONFIRMATION_REQUIRED.to_owned())
}

fn direction(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

/// What an exception detail key references.
fn reference_kind(detail: &str) -> &'static str {
    match detail {
        "po_number" => "po",
        "invoice_number" => "invoice",
        "shipment_id" => "shipment",
        "content_item_id" => "content",
        _ => "file",
    }
}

/// A control number as a number (`000000012` and `12` are the same interchange).
fn control_number(text: &str) -> String {
    let trimmed = text.trim().trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }.to_owned()
}

/// The control number gridsync's numbered outbound documents carry at the end of
/// their file name (`..._<reference>-000000012.edi`).
fn file_control_number(file: &str) -> Option<String> {
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let digits = stem.rsplit_once('-')?.1;
    (digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| control_number(digits))
}

/// Midnight UTC of `date`, in milliseconds.
fn date_millis(date: &Date) -> i64 {
    date.value().and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_numbers_compare_as_numbers() {
        assert_eq!(control_number("000000012"), "12");
        assert_eq!(control_number("12"), "12");
        assert_eq!(control_number("000000000"), "0");
    }

    #[test]
    fn numbered_outbound_files_name_their_control_number() {
        assert_eq!(file_control_number("ACME_820_PAY-77-000000012.edi").as_deref(), Some("12"));
        assert_eq!(file_control_number("ACME_PKG_c-1-v3.zip"), None);
        assert_eq!(file_control_number("ACME_820_PAY-12345.edi"), None);
    }
}
