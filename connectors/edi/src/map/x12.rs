//! X12 850, 855, 856 and 810.

use gridsync_schemas::{
    events::{
        AckStatus, DeliveryConfirmed, FunctionalAckReceived, InvoiceReceived, OrderLine, OrderResponseReceived,
        OrderResponseStatus, Party, ProductId, PurchaseOrderReceived, RemittanceAdviceReceived, RemittedInvoice,
        ShipNoticeReceived,
    },
    Date, Event, EventType,
};

use super::{
    chosen_ids, line_amount, total,
    values::{coded, date, decimal, optional_decimal, party, timestamp},
    IdKinds, Source,
};
use crate::{EdiError, Segment};

pub(crate) fn map(source: &Source<'_>) -> Result<Event, EdiError> {
    match source.tx.document_type.as_str() {
        "850" => purchase_order(source),
        "855" => order_response(source),
        "856" => ship_notice(source),
        "810" => invoice(source),
        "820" => remittance_advice(source),
        "214" => delivery_status(source),
        // A 999 (005010 implementation acknowledgement) says the same with IK3/IK4/IK5.
        "997" | "999" => functional_ack(source),
        _ => Err(source.unsupported()),
    }
}

/// The first N1 party whose N101 is one of `codes`: name N102, qualifier N103, id N104 (empty
/// when the party is named without one). `None` for an N1 with neither id nor name.
fn n1_party(source: &Source<'_>, codes: &[&str]) -> Option<Party> {
    let n1 = source.find("N1", codes)?;
    let name = n1.element(2).map(|v| v.trim().to_owned());
    let id = n1.element(4).map(|v| v.trim().to_owned());
    if id.is_none() && name.is_none() {
        return None;
    }
    Some(party(id.unwrap_or_default(), n1.element(3).map(|v| v.trim().to_owned()), name))
}

/// A date in element `n` of the first DTM whose DTM01 is one of `qualifiers`.
fn dtm(source: &Source<'_>, qualifiers: &[&str]) -> Result<Option<Date>, EdiError> {
    source.find("DTM", qualifiers).and_then(|s| s.element(2).map(|d| date(s, 2, &d))).transpose()
}

/// X12 product/service id qualifiers (235): the seller's and standard ones (vendor part, style
/// and catalog numbers, manufacturer's part, GTIN, EAN, UPC consumer and case codes, SKU), and the
/// buyer's (part, item and catalog numbers).
const X12_ID_KINDS: IdKinds = IdKinds {
    seller_or_standard: &["VP", "VN", "VA", "VC", "MG", "MF", "UK", "EN", "EO", "UP", "UA", "UI", "UD", "SK"],
    buyer: &["BP", "IN", "CB"],
};

/// Every qualifier/id pair from element `first` on, as sent (a pair without an id is skipped).
fn product_ids(segment: &Segment<'_>, first: usize) -> Vec<ProductId> {
    let mut ids = Vec::new();
    let mut n = first;
    while n <= segment.len() {
        if let Some(id) = segment.element(n + 1).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            ids.push(ProductId { qualifier: segment.element(n).map(|q| q.trim().to_owned()).unwrap_or_default(), id });
        }
        n += 2;
    }
    ids
}

/// A line from a segment shaped like PO1, IT1 and SN1: line number (element 1,
/// else `fallback_number`), quantity (2), unit (3); ids and price found by the caller.
fn x12_line(
    segment: &Segment<'_>,
    product_ids: Vec<ProductId>,
    fallback_number: usize,
    unit_price: Option<gridsync_schemas::Decimal>,
) -> Result<OrderLine, EdiError> {
    let quantity = decimal(segment, 2, &segment.required(2, "quantity")?, b'.', 0)?;
    let line_number = segment.element(1).map(|v| v.trim().to_owned()).unwrap_or_else(|| fallback_number.to_string());
    let (product_id, buyer_product_id) = chosen_ids(&product_ids, &X12_ID_KINDS);
    Ok(OrderLine {
        product_id,
        line_number,
        buyer_product_id,
        description: None,
        quantity,
        unit_of_measure: segment.required(3, "unit of measure")?.into_owned(),
        unit_price,
        line_amount: line_amount(quantity, unit_price),
        product_ids,
    })
}

/// Lines from PO1/IT1-shaped segments (line, quantity, unit, price, ids from
/// element 6), each with the PID*F description that follows it.
fn item_lines(source: &Source<'_>, tag: &str) -> Result<Vec<OrderLine>, EdiError> {
    let mut lines: Vec<OrderLine> = Vec::new();
    for segment in source.body() {
        if segment.tag == tag {
            let price = optional_decimal(segment, 4, b'.')?;
            lines.push(x12_line(segment, product_ids(segment, 6), lines.len() + 1, price)?);
        } else if segment.tag == "PID" && segment.element(1).is_some_and(|t| t.trim() == "F") {
            if let Some(line) = lines.last_mut() {
                line.description = segment.element(5).map(|v| v.trim().to_owned());
            }
        }
    }
    Ok(lines)
}

fn purchase_order(source: &Source<'_>) -> Result<Event, EdiError> {
    let beg = source.require("BEG", &[])?;
    let po_number = beg.required(3, "purchase order number")?.into_owned();
    let po_date = beg.element(5).map(|d| date(beg, 5, &d)).transpose()?;
    let lines = item_lines(source, "PO1")?;
    let stated_total =
        source.find("AMT", &["TT"]).map(|a| decimal(a, 2, &a.required(2, "amount")?, b'.', 0)).transpose()?;
    let envelope = source.envelope(
        EventType::PurchaseOrderReceived,
        &po_number,
        Some(&po_number),
        po_date.map(|d| timestamp(d, None)),
    );
    Ok(PurchaseOrderReceived {
        envelope,
        purpose: beg.element(1).map(|v| v.trim().to_owned()),
        po_date,
        buyer: n1_party(source, &["BY"]).unwrap_or_else(|| source.sender_party()),
        seller: n1_party(source, &["SE", "SU", "VN"]).unwrap_or_else(|| source.receiver_party()),
        ship_to: n1_party(source, &["ST"]),
        bill_to: n1_party(source, &["BT"]),
        currency: source.find("CUR", &["BY", "SE"]).and_then(|c| c.element(2)).map(|v| v.trim().to_owned()),
        total_amount: stated_total.or_else(|| total(&lines)),
        requested_delivery_date: dtm(source, &["002", "010"])?,
        lines,
        po_number,
    }
    .into())
}

fn order_response(source: &Source<'_>) -> Result<Event, EdiError> {
    let bak = source.require("BAK", &[])?;
    let po_number = bak.required(3, "purchase order number")?.into_owned();
    let status = match bak.required(2, "acknowledgment type")?.as_ref() {
        "AT" | "AK" => OrderResponseStatus::Accepted,
        "AC" | "AE" => OrderResponseStatus::AcceptedWithChanges,
        "RD" | "RF" | "RJ" => OrderResponseStatus::Rejected,
        _ => OrderResponseStatus::Pending,
    };
    let response_date = bak.element(9).map(|d| date(bak, 9, &d)).transpose()?;
    let envelope = source.envelope(
        EventType::OrderResponseReceived,
        &po_number,
        Some(&po_number),
        response_date.map(|d| timestamp(d, None)),
    );
    let note = source.find("MSG", &[]).and_then(|m| m.element(1)).map(|v| v.trim().to_owned());
    Ok(OrderResponseReceived {
        envelope,
        response_date,
        status,
        buyer: n1_party(source, &["BY"]).unwrap_or_else(|| source.receiver_party()),
        seller: n1_party(source, &["SE", "SU", "VN"]).unwrap_or_else(|| source.sender_party()),
        lines: item_lines(source, "PO1")?,
        note,
        po_number,
    }
    .into())
}

fn ship_notice(source: &Source<'_>) -> Result<Event, EdiError> {
    let bsn = source.require("BSN", &[])?;
    let shipment_id = bsn.required(2, "shipment identification")?.into_owned();
    let shipped_date = bsn.element(3).map(|d| date(bsn, 3, &d)).transpose()?;
    let shipped_at = shipped_date.map(|d| timestamp(d, bsn.element(4).as_deref()));
    let mut po_numbers: Vec<String> = Vec::new();
    for prf in source.body().iter().filter(|s| s.tag == "PRF") {
        let po = prf.required(1, "purchase order number")?.into_owned();
        if !po_numbers.contains(&po) {
            po_numbers.push(po);
        }
    }
    // Item level: LIN carries the product, the SN1 after it the quantity shipped.
    let mut lines: Vec<OrderLine> = Vec::new();
    let mut product: Option<Vec<ProductId>> = None;
    for segment in source.body() {
        match segment.tag {
            "LIN" => product = Some(product_ids(segment, 2)),
            "SN1" => {
                let ids = product.take().unwrap_or_default();
                lines.push(x12_line(segment, ids, lines.len() + 1, None)?);
            }
            _ => {}
        }
    }
    let first_po = po_numbers.first().cloned();
    let envelope = source.envelope(EventType::ShipNoticeReceived, &shipment_id, first_po.as_deref(), shipped_at);
    let reference = |q: &[&str]| source.find("REF", q).and_then(|r| r.element(2)).map(|v| v.trim().to_owned());
    Ok(ShipNoticeReceived {
        envelope,
        shipment_id,
        po_numbers,
        shipped_at,
        estimated_delivery_date: dtm(source, &["017", "067"])?,
        carrier: source
            .find("TD5", &[])
            .and_then(|t| t.element(3).or_else(|| t.element(5)))
            .map(|v| v.trim().to_owned()),
        tracking_number: reference(&["CN", "2I"]).or_else(|| reference(&["BM"])),
        ship_from: n1_party(source, &["SF"]),
        ship_to: n1_party(source, &["ST"]),
        lines,
    }
    .into())
}

fn invoice(source: &Source<'_>) -> Result<Event, EdiError> {
    let big = source.require("BIG", &[])?;
    let invoice_date = date(big, 1, &big.required(1, "invoice date")?)?;
    let invoice_number = big.required(2, "invoice number")?.into_owned();
    let po_number = big.element(4).map(|v| v.trim().to_owned());
    let tds = source.require("TDS", &[])?;
    // TDS01 is N2: two implied decimal places.
    let total_amount = decimal(tds, 1, &tds.required(1, "total invoice amount")?, b'.', 2)?;
    let mut tax: Option<rust_decimal::Decimal> = None;
    for txi in source.body().iter().filter(|s| s.tag == "TXI") {
        if let Some(amount) = optional_decimal(txi, 2, b'.')? {
            tax = Some(tax.unwrap_or_default() + amount.value());
        }
    }
    let itd = source.find("ITD", &[]);
    let due_date = match itd {
        Some(itd) if itd.element(6).is_some() => itd.element(6).map(|d| date(itd, 6, &d)).transpose()?,
        Some(itd) => itd
            .element(7)
            .and_then(|days| days.trim().parse::<i64>().ok())
            .and_then(|days| invoice_date.value().checked_add_signed(chrono::Duration::days(days)))
            .map(Date::new),
        None => None,
    };
    let payment_terms = itd.and_then(|itd| {
        itd.element(12).map(|v| v.trim().to_owned()).or_else(|| itd.element(7).map(|d| format!("NET{}", d.trim())))
    });
    let envelope = source.envelope(
        EventType::InvoiceReceived,
        &invoice_number,
        po_number.as_deref(),
        Some(timestamp(invoice_date, None)),
    );
    Ok(InvoiceReceived {
        envelope,
        invoice_date,
        po_number,
        // The bill-to party is the buyer, the remit-to party the seller, when the invoice names
        // no buying or selling party.
        buyer: n1_party(source, &["BY"])
            .or_else(|| n1_party(source, &["BT"]))
            .unwrap_or_else(|| source.receiver_party()),
        seller: n1_party(source, &["SE", "SU"])
            .or_else(|| n1_party(source, &["RE", "RI"]))
            .unwrap_or_else(|| source.sender_party()),
        bill_to: n1_party(source, &["BT"]),
        remit_to: n1_party(source, &["RE", "RI"]),
        ship_to: n1_party(source, &["ST"]),
        // X12 is a US standard: no CUR segment means US dollars.
        currency: source
            .find("CUR", &["SE", "BY"])
            .and_then(|c| c.element(2))
            .map_or_else(|| "USD".to_owned(), |v| v.trim().to_owned()),
        due_date,
        payment_terms,
        lines: item_lines(source, "IT1")?,
        tax_amount: tax.and_then(|t| gridsync_schemas::Decimal::new(t).ok()),
        total_amount,
        invoice_number,
    }
    .into())
}

fn remittance_advice(source: &Source<'_>) -> Result<Event, EdiError> {
    let bpr = source.require("BPR", &[])?;
    let total_amount = decimal(bpr, 2, &bpr.required(2, "total payment amount")?, b'.', 0)?;
    let payment_date = bpr.element(16).map(|d| date(bpr, 16, &d)).transpose()?;
    let trn = source.require("TRN", &[])?;
    let payment_reference = trn.required(2, "payment reference")?.into_owned();
    // Each RMR*IV is one invoice; an ADX after it adjusts that invoice.
    let mut remittances: Vec<RemittedInvoice> = Vec::new();
    for segment in source.body() {
        match segment.tag {
            "RMR" if segment.element(1).is_some_and(|q| q.trim() == "IV") => remittances.push(RemittedInvoice {
                invoice_number: segment.required(2, "invoice number")?.into_owned(),
                amount_paid: decimal(segment, 4, &segment.required(4, "amount paid")?, b'.', 0)?,
                adjustment_amount: None,
                adjustment_reason: None,
            }),
            "ADX" => {
                if let Some(last) = remittances.last_mut() {
                    last.adjustment_amount = optional_decimal(segment, 1, b'.')?;
                    last.adjustment_reason = segment.element(2).map(|v| v.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    let envelope = source.envelope(
        EventType::RemittanceAdviceReceived,
        &payment_reference,
        None,
        payment_date.map(|d| timestamp(d, None)),
    );
    Ok(RemittanceAdviceReceived {
        envelope,
        payment_reference,
        payment_date,
        payer: n1_party(source, &["PR"]).unwrap_or_else(|| source.sender_party()),
        payee: n1_party(source, &["PE"]).unwrap_or_else(|| source.receiver_party()),
        currency: source
            .find("CUR", &["PR", "PE"])
            .and_then(|c| c.element(2))
            .map_or_else(|| "USD".to_owned(), |v| v.trim().to_owned()),
        total_amount,
        remittances,
    }
    .into())
}

fn delivery_status(source: &Source<'_>) -> Result<Event, EdiError> {
    let b10 = source.require("B10", &[])?;
    let shipment_id = b10.required(2, "shipment identification number")?.into_owned();
    let at7 = source.require("AT7", &[])?;
    let status_code = at7.required(1, "shipment status code")?.into_owned();
    let delivered_date = date(at7, 5, &at7.required(5, "status date")?)?;
    let delivered_at = timestamp(delivered_date, at7.element(6).as_deref());
    let po_number = source
        .body()
        .iter()
        .find(|s| s.tag == "L11" && s.element(2).is_some_and(|q| q.trim() == "PO"))
        .and_then(|s| s.element(1))
        .map(|v| v.trim().to_owned());
    let location = source.find("MS1", &[]).map(|m| {
        [m.element(1), m.element(2)].into_iter().flatten().map(|v| v.trim().to_owned()).collect::<Vec<_>>().join(", ")
    });
    let envelope =
        source.envelope(EventType::DeliveryConfirmed, &shipment_id, po_number.as_deref(), Some(delivered_at));
    Ok(DeliveryConfirmed { envelope, shipment_id, po_number, delivered_at, status_code, received_by: None, location }
        .into())
}

/// A partner's 997 for one of our groups. gridsync numbers its outbound groups
/// with their interchange control number (GS06 = ISA13), so AK102 names both.
fn functional_ack(source: &Source<'_>) -> Result<Event, EdiError> {
    let ak1 = source.require("AK1", &[])?;
    let group_control = ak1.required(2, "group control number")?.into_owned();
    let ak9 = source.require("AK9", &[])?;
    let status = coded(
        ak9,
        1,
        "functional group acknowledge code",
        &[
            ("A", AckStatus::Accepted),
            ("E", AckStatus::AcceptedWithErrors),
            ("P", AckStatus::PartiallyAccepted),
            ("R", AckStatus::Rejected),
        ],
    )?;
    // Every error the partner reported: rejected sets, bad segments, bad elements.
    let mut errors = Vec::new();
    let mut set = String::new();
    for segment in source.body() {
        let e = |n: usize| segment.element(n).map(|v| v.trim().to_owned()).unwrap_or_default();
        match segment.tag {
            "AK2" => set = format!("{} {}", e(1), e(2)),
            "AK3" | "IK3" => errors.push(format!("{set}: segment {} at position {}: error {}", e(1), e(2), e(4))),
            "AK4" | "IK4" => errors.push(format!("{set}: element {} : error {} (data {:?})", e(1), e(3), e(4))),
            "AK5" | "IK5" if e(1) != "A" => errors.push(format!("{set}: transaction set {}: {}", e(1), e(2))),
            _ => {}
        }
    }
    let document_type = source.find("AK2", &[]).and_then(|a| a.element(1)).map(|v| v.trim().to_owned());
    let envelope = source.envelope(EventType::FunctionalAckReceived, &group_control, None, source.interchange_time());
    Ok(FunctionalAckReceived {
        envelope,
        acknowledged_interchange_control_number: group_control.clone(),
        acknowledged_group_control_number: Some(group_control),
        acknowledged_document_type: document_type,
        status,
        errors,
    }
    .into())
}

/// A partner's TA1 for one of our interchanges: TA101 names it, TA104 says
/// what became of it (A accepted, E accepted with errors, R rejected), TA105
/// is the note code.
pub(crate) fn interchange_ack(
    interchange: &crate::Interchange<'_>,
    ta1: &Segment<'_>,
    ctx: &super::MapContext<'_>,
) -> Result<Event, EdiError> {
    let control = ta1.required(1, "interchange control number")?.into_owned();
    let status = coded(
        ta1,
        4,
        "interchange acknowledgment code",
        &[("A", AckStatus::Accepted), ("E", AckStatus::AcceptedWithErrors), ("R", AckStatus::Rejected)],
    )?;
    let errors = match ta1.element(5).map(|n| n.trim().to_owned()) {
        Some(note) if note != "000" => vec![format!("interchange: note {note}")],
        _ => Vec::new(),
    };
    let occurred = ta1.element(2).and_then(|d| date(ta1, 2, &d).ok()).map(|d| timestamp(d, ta1.element(3).as_deref()));
    let document =
        super::Document { group_control: None, document_type: "TA1", control_number: &control, digest: String::new() };
    let envelope =
        super::envelope_of(interchange, ctx, &document, EventType::FunctionalAckReceived, &control, None, occurred);
    Ok(FunctionalAckReceived {
        envelope,
        acknowledged_interchange_control_number: control,
        acknowledged_group_control_number: None,
        acknowledged_document_type: None,
        status,
        errors,
    }
    .into())
}
