//! Realistic sample events of every type: for round-trip tests, benchmarks and
//! `gridsync demo`. Deterministic: the same (type, partner, sequence) gives the
//! same event, event id included.

use std::collections::BTreeMap;

use crate::{
    events::*,
    values::{Date, Decimal, Timestamp},
};

/// An exact decimal `mantissa × 10^-scale`; scale must be at most 6.
fn dec(mantissa: i64, scale: u32) -> Decimal {
    Decimal::new(rust_decimal::Decimal::new(mantissa, scale.min(Decimal::SCALE))).unwrap_or_default()
}

fn date(days_after_2026_11_01: i64) -> Option<Date> {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)?;
    base.checked_add_signed(chrono::Duration::try_days(days_after_2026_11_01)?).map(Date::new)
}

fn party(id: &str, name: &str) -> Party {
    Party { id: id.into(), id_qualifier: Some("ZZ".into()), name: Some(name.into()), email: None }
}

fn lines(count: u64) -> Vec<OrderLine> {
    (1..=count)
        .map(|i| OrderLine {
            line_number: i.to_string(),
            product_id: format!("0001234500{i:03}"),
            buyer_product_id: Some(format!("SKU-{i:04}")),
            description: Some(format!("Widget, size {i}")),
            quantity: dec(i as i64 * 12, 0),
            unit_of_measure: "EA".into(),
            unit_price: Some(dec(1999 + i as i64, 2)),
            line_amount: Some(dec((1999 + i as i64) * i as i64 * 12, 2)),
            product_ids: vec![
                ProductId { qualifier: "EN".into(), id: format!("0001234500{i:03}") },
                ProductId { qualifier: "IN".into(), id: format!("SKU-{i:04}") },
            ],
        })
        .collect()
}

/// A sample event of `event_type` for `partner`; `seq` varies keys and ids.
pub fn sample(event_type: EventType, partner: &str, seq: u64) -> Event {
    let po = format!("PO{seq:06}");
    let invoice = format!("INV{seq:06}");
    let (business_key, source_system) = match event_type {
        EventType::InvoiceReceived | EventType::PaymentConfirmed | EventType::DisputeResolved => {
            (invoice.clone(), SourceSystem::TradingGrid)
        }
        EventType::PartnerContentApproved | EventType::PartnerContentPublished => {
            (format!("content-{seq}"), SourceSystem::Amplience)
        }
        _ => (po.clone(), SourceSystem::TradingGrid),
    };
    let source_system = match event_type {
        EventType::PaymentConfirmed | EventType::DisputeResolved => SourceSystem::Amplience,
        EventType::DeliveryPerformed => SourceSystem::Gridsync,
        _ => source_system,
    };
    let occurred = Timestamp::from_millis(1_793_000_000_000 + seq as i64 * 1000);
    let seq_text = seq.to_string();
    let envelope = Envelope {
        event_id: Envelope::deterministic_event_id(source_system, &[partner, event_type.name(), &seq_text]),
        event_type: event_type.name().into(),
        occurred_at: occurred,
        ingested_at: Timestamp::from_millis(occurred.millis() + 250),
        source_system,
        trading_partner_id: partner.into(),
        business_key,
        correlation_id: Envelope::correlation_id_for(partner, &po),
        trading_grid_document: (source_system == SourceSystem::TradingGrid).then(|| TradingGridDocumentRef {
            standard: EdiStandard::X12,
            document_type: "850".into(),
            sender_id: partner.into(),
            receiver_id: "GRIDSYNC".into(),
            interchange_control_number: format!("{seq:09}"),
            group_control_number: Some(seq.to_string()),
            transaction_control_number: format!("{:04}", seq % 10_000),
            file_name: Some(format!("{partner}_{seq}.edi")),
            lens_transaction_id: None,
        }),
        amplience_content: (source_system == SourceSystem::Amplience).then(|| AmplienceContentRef {
            hub_id: Some("5f2a1c3b4d5e6f7a8b9c0d1e".into()),
            content_item_id: format!("6a1d3c2e-0000-4000-8000-{seq:012}"),
            version: 3,
            content_type_uri: "https://schemas.gridsync.example/partner-content.json".into(),
            delivery_key: Some(format!("partner-content/{seq}")),
        }),
    };
    let buyer = party(partner, "Acme Retail Ltd");
    let seller = party("GRIDSYNC", "Gridsync Supplies");
    let content = |kind| PartnerContent {
        kind,
        content_item_id: format!("6a1d3c2e-0000-4000-8000-{seq:012}"),
        version: 3,
        title: "Supplier onboarding pack 2026".into(),
        locale: Some("en-GB".into()),
        target_partner_ids: vec![partner.into()],
        requires_read_confirmation: true,
        body_json: Some(r#"{"sections":["Welcome","EDI setup","Compliance"]}"#.into()),
    };
    match event_type {
        EventType::PurchaseOrderReceived => PurchaseOrderReceived {
            envelope,
            po_number: po,
            po_date: date(0),
            purpose: Some("00".into()),
            buyer,
            seller,
            ship_to: Some(party("DC-01", "Acme DC Leeds")),
            currency: Some("GBP".into()),
            lines: lines(5),
            total_amount: Some(dec(360_540, 2)),
            requested_delivery_date: date(7),
            bill_to: Some(party("AP-01", "Acme Accounts Payable")),
        }
        .into(),
        EventType::OrderResponseReceived => OrderResponseReceived {
            envelope,
            po_number: po,
            response_date: date(1),
            status: OrderResponseStatus::AcceptedWithChanges,
            buyer,
            seller,
            lines: lines(2),
            note: Some("Line 2 back-ordered one week".into()),
        }
        .into(),
        EventType::ShipNoticeReceived => ShipNoticeReceived {
            envelope,
            shipment_id: format!("SH{seq:06}"),
            po_numbers: vec![po],
            shipped_at: Some(occurred),
            estimated_delivery_date: date(3),
            carrier: Some("DHL".into()),
            tracking_number: Some(format!("JD0140{seq:010}")),
            ship_from: Some(seller),
            ship_to: Some(buyer),
            lines: lines(3),
        }
        .into(),
        EventType::DeliveryConfirmed => DeliveryConfirmed {
            envelope,
            shipment_id: format!("SH{seq:06}"),
            po_number: Some(po),
            delivered_at: occurred,
            status_code: "D1".into(),
            received_by: Some("J. Smith".into()),
            location: Some("Leeds".into()),
        }
        .into(),
        EventType::InvoiceReceived => InvoiceReceived {
            envelope,
            invoice_number: invoice,
            invoice_date: date(4).unwrap_or(Date::new(chrono::NaiveDate::default())),
            po_number: Some(po),
            buyer,
            seller,
            currency: "GBP".into(),
            due_date: date(34),
            payment_terms: Some("NET30".into()),
            lines: lines(5),
            tax_amount: Some(dec(72_108, 2)),
            total_amount: dec(432_588, 2),
            bill_to: Some(party("AP-01", "Acme Accounts Payable")),
            remit_to: Some(party("LOCKBOX-7", "Globex Receivables")),
            ship_to: Some(party("DC-01", "Acme DC Leeds")),
        }
        .into(),
        EventType::RemittanceAdviceReceived => RemittanceAdviceReceived {
            envelope,
            payment_reference: format!("PAY{seq:06}"),
            payment_date: date(30),
            payer: buyer,
            payee: seller,
            currency: "GBP".into(),
            total_amount: dec(432_588, 2),
            remittances: vec![RemittedInvoice {
                invoice_number: invoice,
                amount_paid: dec(432_588, 2),
                adjustment_amount: None,
                adjustment_reason: None,
            }],
        }
        .into(),
        EventType::FunctionalAckReceived => FunctionalAckReceived {
            envelope,
            acknowledged_interchange_control_number: format!("{seq:09}"),
            acknowledged_group_control_number: Some(seq.to_string()),
            acknowledged_document_type: Some("810".into()),
            status: AckStatus::Rejected,
            errors: vec!["AK304=8: segment has data element errors (IT1 segment 3)".into()],
        }
        .into(),
        EventType::PaymentConfirmed => PaymentConfirmed {
            envelope,
            invoice_number: invoice,
            payment_reference: format!("PAY{seq:06}"),
            amount: dec(432_588, 2),
            currency: "GBP".into(),
            paid_at: occurred,
            note: None,
        }
        .into(),
        EventType::DisputeResolved => DisputeResolved {
            envelope,
            invoice_number: invoice,
            dispute_id: format!("D{seq}"),
            resolution: DisputeResolution::CreditIssued,
            adjusted_amount: Some(dec(-12_000, 2)),
            currency: Some("GBP".into()),
            resolved_at: occurred,
            summary: Some("Two cartons damaged in transit".into()),
        }
        .into(),
        EventType::PartnerContentApproved => PartnerContentApproved {
            envelope,
            content: content(PartnerContentKind::OnboardingPack),
            workflow_state: "Approved".into(),
        }
        .into(),
        EventType::PartnerContentPublished => PartnerContentPublished {
            envelope,
            content: content(PartnerContentKind::TradingTerms),
            snapshot_id: Some(format!("snap-{seq}")),
        }
        .into(),
        EventType::DocumentStatusChanged => DocumentStatusChanged {
            envelope,
            lens_transaction_id: format!("TX{seq:010}"),
            document_type: "810".into(),
            direction: Direction::Outbound,
            status: DocumentStatus::DeliveryFailed,
            lens_status_code: "F".into(),
            lens_fa_status: Some("W".into()),
            error_code: Some("E1042".into()),
            error_message: Some("Remote mailbox rejected the file".into()),
            status_at: occurred,
        }
        .into(),
        EventType::DocumentExchangeException => DocumentExchangeException {
            envelope,
            kind: ExceptionKind::MalformedDocument,
            severity: Severity::Error,
            reason: "segment 14 (SE): SE02 0002 does not match ST02 0001".into(),
            document_type: Some("850".into()),
            quarantine_path: Some(format!("quarantine/{partner}_{seq}.edi")),
            details: BTreeMap::from([("segment".into(), "14".into()), ("element".into(), "SE02".into())]),
        }
        .into(),
        EventType::DeliveryPerformed => DeliveryPerformed {
            envelope,
            consumer: "notifications".into(),
            target_system: TargetSystem::Amplience,
            action: "create-order-confirmation".into(),
            recipient: Some(partner.into()),
            external_id: format!("6a1d3c2e-0000-4000-9000-{seq:012}"),
            idempotency_key: format!("gridsync/po-confirmation/{partner}/{po}"),
            content_item_id: Some(format!("6a1d3c2e-0000-4000-9000-{seq:012}")),
            content_version: Some(1),
            source_event_id: Envelope::deterministic_event_id(
                SourceSystem::TradingGrid,
                &[partner, "PurchaseOrderReceived", &seq_text],
            ),
            source_event_type: "PurchaseOrderReceived".into(),
            outcome: DeliveryOutcome::Created,
            performed_at: occurred,
        }
        .into(),
    }
}
