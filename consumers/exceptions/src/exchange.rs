//! Which exchange an event is about, so that a failure and a later success of
//! the same exchange meet: `<partner>/<in|out>/<control number>` for an
//! interchange (however the control number is padded), `file/<name>` for a
//! file that could not be read, else `doc/<partner>/<business key>`.

use gridsync_schemas::{
    events::{AckStatus, Direction, DocumentExchangeException, DocumentStatus, Envelope, ExceptionKind, SourceSystem},
    Event,
};

/// Failures a delivery clears (the document reached its partner).
const DELIVERY: &[ExceptionKind] =
    &[ExceptionKind::DeliveryFailed, ExceptionKind::OnHold, ExceptionKind::ValidationError];
/// Failures an accepting acknowledgement clears (it was delivered, too).
const ACKNOWLEDGED: &[ExceptionKind] = &[
    ExceptionKind::FaRejected,
    ExceptionKind::FaLate,
    ExceptionKind::DeliveryFailed,
    ExceptionKind::OnHold,
    ExceptionKind::ValidationError,
];
/// Failures a document read and processed clears.
const PROCESSED: &[ExceptionKind] = &[
    ExceptionKind::MalformedDocument,
    ExceptionKind::Unpublishable,
    ExceptionKind::DeliveryFailed,
    ExceptionKind::OnHold,
    ExceptionKind::ValidationError,
];

fn interchange(envelope: &Envelope, outbound: bool) -> Option<String> {
    let document = envelope.trading_grid_document.as_ref()?;
    let control: u64 = document.interchange_control_number.trim().parse().ok()?;
    let direction = if outbound { "out" } else { "in" };
    Some(format!("{}/{direction}/{control}", envelope.trading_partner_id))
}

/// The exchange a failure is about.
pub fn of_failure(exception: &DocumentExchangeException) -> String {
    let envelope = &exception.envelope;
    let outbound = exception.details.get("direction").is_some_and(|d| d.eq_ignore_ascii_case("OUTBOUND"));
    if let Some(file) = exception.details.get("file").filter(|_| envelope.trading_grid_document.is_none()) {
        return format!("file/{file}");
    }
    interchange(envelope, outbound)
        .unwrap_or_else(|| format!("doc/{}/{}", envelope.trading_partner_id, envelope.business_key))
}

/// The exchanges an event shows succeeded (a document delivered or
/// acknowledged, or a file read and processed), with the kinds of failure
/// that success clears: a delivery does not answer a rejecting acknowledgement.
pub fn of_success(event: &Event) -> Vec<(String, &'static [ExceptionKind])> {
    let envelope = event.envelope();
    match event {
        Event::DocumentStatusChanged(status) => {
            let clears = match status.status {
                DocumentStatus::Delivered | DocumentStatus::DeliveryReceipt | DocumentStatus::ReadConfirmed => DELIVERY,
                DocumentStatus::FaAccepted => ACKNOWLEDGED,
                _ => return Vec::new(),
            };
            let outbound = status.direction == Direction::Outbound;
            interchange(envelope, outbound).map(|id| (id, clears)).into_iter().collect()
        }
        Event::FunctionalAckReceived(ack) => {
            let accepted = matches!(ack.status, AckStatus::Accepted | AckStatus::AcceptedWithErrors);
            let control: Option<u64> = ack.acknowledged_interchange_control_number.trim().parse().ok();
            match (accepted, control) {
                (true, Some(control)) => vec![(format!("{}/out/{control}", envelope.trading_partner_id), ACKNOWLEDGED)],
                _ => Vec::new(),
            }
        }
        Event::DocumentExchangeException(_) | Event::DeliveryPerformed(_) => Vec::new(),
        // A document read from Trading Grid: its interchange, and its file, went through.
        _ if envelope.source_system == SourceSystem::TradingGrid => {
            let mut ids: Vec<(String, &'static [ExceptionKind])> =
                interchange(envelope, false).map(|id| (id, PROCESSED)).into_iter().collect();
            if let Some(file) = envelope.trading_grid_document.as_ref().and_then(|d| d.file_name.as_ref()) {
                ids.push((format!("file/{file}"), PROCESSED));
            }
            ids
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_schemas::{samples::sample, EventType};

    #[test]
    fn a_failure_and_the_later_success_of_one_exchange_meet() {
        let mut failed = match sample(EventType::DocumentExchangeException, "ACME", 1) {
            Event::DocumentExchangeException(e) => e,
            _ => unreachable!(),
        };
        failed.details.insert("direction".into(), "OUTBOUND".into());
        if let Some(doc) = failed.envelope.trading_grid_document.as_mut() {
            doc.interchange_control_number = "000000042".into();
        }
        assert_eq!(of_failure(&failed), "ACME/out/42");

        let mut ack = sample(EventType::FunctionalAckReceived, "ACME", 2);
        if let Event::FunctionalAckReceived(a) = &mut ack {
            a.acknowledged_interchange_control_number = "42".into();
            a.status = AckStatus::Accepted;
        }
        assert_eq!(of_success(&ack), [("ACME/out/42".to_owned(), ACKNOWLEDGED)]);

        let mut unreadable = failed.clone();
        unreadable.envelope.trading_grid_document = None;
        unreadable.details.insert("file".into(), "po-7.edi".into());
        assert_eq!(of_failure(&unreadable), "file/po-7.edi");
        let mut order = sample(EventType::PurchaseOrderReceived, "ACME", 3);
        if let Some(doc) = order.envelope_mut().trading_grid_document.as_mut() {
            doc.file_name = Some("po-7.edi".into());
        }
        assert!(of_success(&order)
            .iter()
            .any(|(id, clears)| id == "file/po-7.edi" && clears.contains(&ExceptionKind::MalformedDocument)));
        let mut delivered = sample(EventType::DocumentStatusChanged, "ACME", 4);
        if let Event::DocumentStatusChanged(s) = &mut delivered {
            s.status = DocumentStatus::Delivered;
        }
        assert!(
            of_success(&delivered).iter().all(|(_, clears)| !clears.contains(&ExceptionKind::FaRejected)),
            "a delivery does not clear a rejection"
        );
    }
}
