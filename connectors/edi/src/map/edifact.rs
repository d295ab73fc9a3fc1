//! EDIFACT ORDERS, ORDRSP, DESADV and INVOIC (D.96A and later directories).

use gridsync_schemas::{
    events::{
        AckStatus, DeliveryConfirmed, FunctionalAckReceived, InvoiceReceived, OrderLine, OrderResponseReceived,
        OrderResponseStatus, Party, ProductId, PurchaseOrderReceived, RemittanceAdviceReceived, RemittedInvoice,
        ShipNoticeReceived,
    },
    Date, Decimal, Event, EventType,
};

use super::{
    chosen_ids, line_amount, total,
    values::{coded, date, decimal, party, timestamp},
    IdKinds, Source,
};
use crate::{EdiError, Segment};

pub(crate) fn map(source: &Source<'_>) -> Result<Event, EdiError> {
    match source.tx.document_type.as_str() {
        "ORDERS" => purchase_order(source),
        "ORDRSP" => order_response(source),
        "DESADV" => ship_notice(source),
        "INVOIC" => invoice(source),
        "REMADV" => remittance_advice(source),
        "IFTSTA" => delivery_status(source),
        "CONTRL" => functional_ack(source),
        _ => Err(source.unsupported()),
    }
}

/// BGM document number (C106 or the simple 1004 of older directories) and message function.
fn document_number(source: &Source<'_>) -> Result<(String, Option<String>), EdiError> {
    let bgm = source.require("BGM", &[])?;
    Ok((bgm.required_component(2, 1, "document number")?, bgm.element(3).map(|v| v.trim().to_owned())))
}

/// The date of the first DTM whose qualifier (DTM01-1) is one of `qualifiers`
/// (formats 102 CCYYMMDD and 203 CCYYMMDDHHMM).
fn dtm(source: &Source<'_>, qualifiers: &[&str]) -> Result<Option<Date>, EdiError> {
    let found = source
        .body()
        .iter()
        .find(|s| s.tag == "DTM" && s.component(1, 1).is_some_and(|q| qualifiers.contains(&q.trim())));
    found.and_then(|s| s.component(1, 2).map(|d| date(s, 1, d.get(..8).unwrap_or(&d)))).transpose()
}

/// The first NAD party with one of the qualifiers: id NAD02-1 (empty when the party is named
/// without one; agency NAD02-3), name NAD04-1 or NAD03-1. `None` for a NAD with neither.
fn nad_party(source: &Source<'_>, qualifiers: &[&str]) -> Option<Party> {
    let nad = source.find("NAD", qualifiers)?;
    let name = nad.component(4, 1).or_else(|| nad.component(3, 1)).map(|v| v.trim().to_owned());
    let id = nad.component(2, 1).map(|v| v.trim().to_owned());
    if id.is_none() && name.is_none() {
        return None;
    }
    Some(party(id.unwrap_or_default(), nad.component(2, 3).map(|v| v.trim().to_owned()), name))
}

/// EDIFACT item type codes (7143): the seller's and standard ones (supplier's article number,
/// manufacturer's, EAN, UPC, GTIN), and the buyer's (item and part numbers).
const EDIFACT_ID_KINDS: IdKinds =
    IdKinds { seller_or_standard: &["SA", "MF", "EN", "UP", "SRV", "SRS"], buyer: &["IN", "BP"] };

/// The item id in C212 at element `n` (id, then its type code), if it has one.
fn item_id(segment: &Segment<'_>, n: usize) -> Option<ProductId> {
    let id = segment.component(n, 1).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())?;
    Some(ProductId { qualifier: segment.component(n, 2).map(|q| q.trim().to_owned()).unwrap_or_default(), id })
}

/// First RFF reference with qualifier `qualifier` (RFF01-1), e.g. `ON` for the order number.
fn reference(source: &Source<'_>, qualifier: &str) -> Option<String> {
    let rff =
        source.body().iter().find(|s| s.tag == "RFF" && s.component(1, 1).is_some_and(|q| q.trim() == qualifier))?;
    rff.component(1, 2).map(|v| v.trim().to_owned())
}

/// The amount of the first MOA in the message whose qualifier is one of `qualifiers`.
fn amount(source: &Source<'_>, qualifiers: &[&str]) -> Result<Option<Decimal>, EdiError> {
    let moa = source
        .body()
        .iter()
        .find(|s| s.tag == "MOA" && s.component(1, 1).is_some_and(|q| qualifiers.contains(&q.trim())));
    moa.and_then(|s| s.component(1, 2).map(|v| decimal(s, 1, &v, source.mark(), 0))).transpose()
}

/// Line items: LIN starts one (LIN01 line number, LIN03-1 item id); PIA adds
/// ids, IMD the description, QTY (one of `quantity_qualifiers`) the quantity,
/// PRI the price, MOA+203 the line amount.
fn lines(source: &Source<'_>, quantity_qualifiers: &[&str]) -> Result<Vec<OrderLine>, EdiError> {
    let mark = source.mark();
    let mut lines: Vec<(OrderLine, bool)> = Vec::new();
    for segment in source.body() {
        if segment.tag == "LIN" {
            let line_number =
                segment.element(1).map(|v| v.trim().to_owned()).unwrap_or_else(|| (lines.len() + 1).to_string());
            let line = OrderLine {
                line_number,
                product_id: String::new(),
                product_ids: item_id(segment, 3).into_iter().collect(),
                buyer_product_id: None,
                description: None,
                quantity: Decimal::default(),
                unit_of_measure: "PCE".to_owned(),
                unit_price: None,
                line_amount: None,
            };
            lines.push((line, false));
            continue;
        }
        let Some((line, has_quantity)) = lines.last_mut() else { continue };
        match segment.tag {
            "PIA" => line.product_ids.extend((2..=6).filter_map(|n| item_id(segment, n))),
            "IMD" => {
                line.description =
                    segment.component(3, 4).or_else(|| segment.component(3, 5)).map(|v| v.trim().to_owned())
            }
            "QTY"
                if segment.component(1, 1).is_some_and(|q| quantity_qualifiers.contains(&q.trim()))
                    && !*has_quantity =>
            {
                let text = segment.required_component(1, 2, "quantity")?;
                line.quantity = decimal(segment, 1, &text, mark, 0)?;
                if let Some(unit) = segment.component(1, 3) {
                    line.unit_of_measure = unit.trim().to_owned();
                }
                *has_quantity = true;
            }
            "PRI" if line.unit_price.is_none() => {
                line.unit_price = segment.component(1, 2).map(|p| decimal(segment, 1, &p, mark, 0)).transpose()?;
            }
            "MOA" if segment.component(1, 1).is_some_and(|q| q.trim() == "203") => {
                line.line_amount = segment.component(1, 2).map(|a| decimal(segment, 1, &a, mark, 0)).transpose()?;
            }
            _ => {}
        }
    }
    Ok(lines
        .into_iter()
        .map(|(mut line, _)| {
            (line.product_id, line.buyer_product_id) = chosen_ids(&line.product_ids, &EDIFACT_ID_KINDS);
            line.line_amount = line.line_amount.or_else(|| line_amount(line.quantity, line.unit_price));
            line
        })
        .collect())
}

fn currency(source: &Source<'_>) -> Option<String> {
    let cux = source.find("CUX", &[])?;
    cux.component(1, 2).map(|v| v.trim().to_owned())
}

fn purchase_order(source: &Source<'_>) -> Result<Event, EdiError> {
    let (po_number, function) = document_number(source)?;
    let po_date = dtm(source, &["137", "4"])?;
    let lines = lines(source, &["21"])?;
    let stated_total = amount(source, &["86", "79", "128"])?;
    let envelope = source.envelope(
        EventType::PurchaseOrderReceived,
        &po_number,
        Some(&po_number),
        po_date.map(|d| timestamp(d, None)),
    );
    Ok(PurchaseOrderReceived {
        envelope,
        purpose: function,
        po_date,
        buyer: nad_party(source, &["BY"]).unwrap_or_else(|| source.sender_party()),
        seller: nad_party(source, &["SU", "SE"]).unwrap_or_else(|| source.receiver_party()),
        ship_to: nad_party(source, &["DP", "ST"]),
        bill_to: nad_party(source, &["IV", "BT"]),
        currency: currency(source),
        total_amount: stated_total.or_else(|| total(&lines)),
        requested_delivery_date: dtm(source, &["2", "64"])?,
        lines,
        po_number,
    }
    .into())
}

fn order_response(source: &Source<'_>) -> Result<Event, EdiError> {
    let (response_number, function) = document_number(source)?;
    let po_number = reference(source, "ON").unwrap_or(response_number);
    let bgm_response = source.find("BGM", &[]).and_then(|b| b.element(4)).map(|v| v.trim().to_owned());
    let status = match (function.as_deref(), bgm_response.as_deref()) {
        (_, Some("AP")) | (Some("29"), _) => OrderResponseStatus::Accepted,
        (_, Some("CA")) | (Some("4"), _) => OrderResponseStatus::AcceptedWithChanges,
        (_, Some("RE")) | (Some("27"), _) => OrderResponseStatus::Rejected,
        _ => OrderResponseStatus::Pending,
    };
    let response_date = dtm(source, &["137"])?;
    let envelope = source.envelope(
        EventType::OrderResponseReceived,
        &po_number,
        Some(&po_number),
        response_date.map(|d| timestamp(d, None)),
    );
    Ok(OrderResponseReceived {
        envelope,
        response_date,
        status,
        buyer: nad_party(source, &["BY"]).unwrap_or_else(|| source.receiver_party()),
        seller: nad_party(source, &["SU", "SE"]).unwrap_or_else(|| source.sender_party()),
        lines: lines(source, &["21", "113", "12"])?,
        note: source.find("FTX", &[]).and_then(|f| f.component(4, 1)).map(|v| v.trim().to_owned()),
        po_number,
    }
    .into())
}

fn ship_notice(source: &Source<'_>) -> Result<Event, EdiError> {
    let (shipment_id, _) = document_number(source)?;
    let shipped = dtm(source, &["11", "137"])?;
    let mut po_numbers = Vec::new();
    for rff in source.body().iter().filter(|s| s.tag == "RFF" && s.component(1, 1).is_some_and(|q| q.trim() == "ON")) {
        if let Some(po) = rff.component(1, 2).map(|v| v.trim().to_owned()) {
            if !po_numbers.contains(&po) {
                po_numbers.push(po);
            }
        }
    }
    let shipped_at = shipped.map(|d| timestamp(d, None));
    let envelope = source.envelope(
        EventType::ShipNoticeReceived,
        &shipment_id,
        po_numbers.first().map(String::as_str),
        shipped_at,
    );
    let carrier = source
        .find("TDT", &[])
        .and_then(|t: &Segment<'_>| t.component(5, 4).or_else(|| t.component(5, 1)))
        .map(|v| v.trim().to_owned());
    Ok(ShipNoticeReceived {
        envelope,
        shipment_id,
        po_numbers,
        shipped_at,
        estimated_delivery_date: dtm(source, &["17", "2", "132"])?,
        carrier,
        tracking_number: reference(source, "CN")
            .or_else(|| reference(source, "BM"))
            .or_else(|| reference(source, "AAS")),
        ship_from: nad_party(source, &["SF", "SU"]),
        ship_to: nad_party(source, &["ST", "DP"]),
        lines: lines(source, &["12"])?,
    }
    .into())
}

fn invoice(source: &Source<'_>) -> Result<Event, EdiError> {
    let (invoice_number, _) = document_number(source)?;
    let missing = |what: &str| source.missing(&invoice_number, what);
    let invoice_date = dtm(source, &["137", "3"])?.ok_or_else(|| missing("invoice date (DTM+137)"))?;
    let po_number = reference(source, "ON");
    let currency = currency(source).ok_or_else(|| missing("currency (CUX)"))?;
    let total_amount =
        amount(source, &["77", "86", "39", "9", "128"])?.ok_or_else(|| missing("invoice total (MOA+77/86/39/128)"))?;
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
        // The invoicee is the buyer, the payee the seller, when the invoice names no buying or
        // selling party.
        buyer: nad_party(source, &["BY"])
            .or_else(|| nad_party(source, &["IV"]))
            .unwrap_or_else(|| source.receiver_party()),
        seller: nad_party(source, &["SU", "SE", "II"])
            .or_else(|| nad_party(source, &["PE"]))
            .unwrap_or_else(|| source.sender_party()),
        bill_to: nad_party(source, &["IV", "BT"]),
        remit_to: nad_party(source, &["PE", "RE"]),
        ship_to: nad_party(source, &["DP", "ST"]),
        currency,
        due_date: dtm(source, &["13"])?,
        payment_terms: source
            .find("PAT", &[])
            .and_then(|p| p.component(3, 4).map(|days| format!("NET{}", days.trim()))),
        lines: lines(source, &["47", "46"])?,
        tax_amount: amount(source, &["124", "176", "150"])?,
        total_amount,
        invoice_number,
    }
    .into())
}

fn remittance_advice(source: &Source<'_>) -> Result<Event, EdiError> {
    let (payment_reference, _) = document_number(source)?;
    let missing = |what: &str| source.missing(&payment_reference, what);
    let mark = source.mark();
    // Each DOC is one invoice; the MOA+12 after it is the amount paid.
    let mut remittances: Vec<RemittedInvoice> = Vec::new();
    let mut header_total = None;
    for segment in source.body() {
        match (segment.tag, segment.component(1, 1).as_deref().map(str::trim)) {
            ("DOC", _) => remittances.push(RemittedInvoice {
                invoice_number: segment.required_component(2, 1, "document number")?,
                amount_paid: Decimal::default(),
                adjustment_amount: None,
                adjustment_reason: None,
            }),
            ("MOA", Some(qualifier)) => {
                let value = segment.component(1, 2).map(|v| decimal(segment, 1, &v, mark, 0)).transpose()?;
                match (remittances.last_mut(), qualifier) {
                    (Some(invoice), "12") => invoice.amount_paid = value.unwrap_or_default(),
                    (Some(invoice), "52") => invoice.adjustment_amount = value,
                    (None, "9" | "12") => header_total = header_total.or(value),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let total_amount = header_total.ok_or_else(|| missing("total (MOA+9 before the first DOC)"))?;
    let payment_date = dtm(source, &["203", "137"])?;
    let envelope = source.envelope(
        EventType::RemittanceAdviceReceived,
        &payment_reference,
        None,
        payment_date.map(|d| timestamp(d, None)),
    );
    Ok(RemittanceAdviceReceived {
        envelope,
        payment_date,
        payer: nad_party(source, &["PR"]).unwrap_or_else(|| source.sender_party()),
        payee: nad_party(source, &["PE"]).unwrap_or_else(|| source.receiver_party()),
        currency: currency(source).ok_or_else(|| missing("currency (CUX)"))?,
        total_amount,
        remittances,
        payment_reference,
    }
    .into())
}

fn delivery_status(source: &Source<'_>) -> Result<Event, EdiError> {
    let cni = source.require("CNI", &[])?;
    let shipment_id = cni.required_component(2, 1, "consignment reference")?;
    let sts = source.require("STS", &[])?;
    let status_code = sts.required_component(2, 1, "status event")?;
    let missing = || {
        EdiError::new(
            crate::ErrorKind::MissingElement,
            sts.index,
            None,
            format!("IFTSTA {shipment_id} has no status date (DTM+334/8/11)"),
        )
    };
    let delivered = dtm(source, &["334", "8", "11"])?.ok_or_else(missing)?;
    let delivered_at = timestamp(delivered, None);
    let po_number = reference(source, "ON");
    let envelope =
        source.envelope(EventType::DeliveryConfirmed, &shipment_id, po_number.as_deref(), Some(delivered_at));
    Ok(DeliveryConfirmed {
        envelope,
        shipment_id,
        po_number,
        delivered_at,
        status_code,
        received_by: source.find("NAD", &["CN", "DP"]).and_then(|n| n.component(4, 1)).map(|v| v.trim().to_owned()),
        location: source
            .find("LOC", &[])
            .and_then(|l| l.component(2, 4).or_else(|| l.component(2, 1)))
            .map(|v| v.trim().to_owned()),
    }
    .into())
}

/// A partner's CONTRL for one of our interchanges: UCI names it (UCI01) and
/// says what became of it (UCI04: 4 rejected, 7 acknowledged, 8 received).
fn functional_ack(source: &Source<'_>) -> Result<Event, EdiError> {
    let uci = source.require("UCI", &[])?;
    let interchange = uci.required(1, "interchange control reference")?.into_owned();
    let status =
        coded(uci, 4, "action", &[("7", AckStatus::Accepted), ("8", AckStatus::Received), ("4", AckStatus::Rejected)])?;
    let mut errors = Vec::new();
    if let Some(code) = uci.element(5) {
        errors.push(format!("interchange: error {}", code.trim()));
    }
    let mut message = String::new();
    let (mut messages, mut rejected) = (0, 0);
    for segment in source.body() {
        let c = |n: usize, k: usize| segment.component(n, k).map(|v| v.trim().to_owned()).unwrap_or_default();
        match segment.tag {
            "UCM" => {
                message = format!("{} {}", c(2, 1), c(1, 1));
                messages += 1;
                if c(3, 1) == "4" {
                    rejected += 1;
                    errors.push(format!("{message}: rejected, error {}", c(4, 1)));
                }
            }
            "UCS" => errors.push(match c(2, 1) {
                code if code.is_empty() => format!("{message}: segment {} in error", c(1, 1)),
                code => format!("{message}: segment {}: error {code}", c(1, 1)),
            }),
            "UCD" => errors.push(format!("{message}: element {}: error {}", c(2, 1), c(1, 1))),
            _ => {}
        }
    }
    // An interchange acknowledged with some of its messages rejected is partly accepted; with
    // all of them, rejected.
    let status = match status {
        AckStatus::Accepted if rejected > 0 && rejected == messages => AckStatus::Rejected,
        AckStatus::Accepted if rejected > 0 => AckStatus::PartiallyAccepted,
        status => status,
    };
    let document_type = source.find("UCM", &[]).and_then(|u| u.component(2, 1)).map(|v| v.trim().to_owned());
    let envelope = source.envelope(EventType::FunctionalAckReceived, &interchange, None, source.interchange_time());
    Ok(FunctionalAckReceived {
        envelope,
        acknowledged_interchange_control_number: interchange,
        acknowledged_group_control_number: None,
        acknowledged_document_type: document_type,
        status,
        errors,
    }
    .into())
}
