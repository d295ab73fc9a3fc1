//! Remittance advice for payments recorded in Amplience: X12 820 or EDIFACT
//! REMADV, one invoice line per remitted invoice.

use chrono::{NaiveDate, NaiveDateTime};
use gridsync_schemas::{events::PaymentConfirmed, Decimal};

use super::{
    segments::{composite, printable_copy, Element, OutSegment},
    write_interchange, Body, OutTransaction, OutboundHeader, PartyId, WriteError,
};
use crate::Standard;

/// A payment to advise a partner of.
#[derive(Debug, Clone, PartialEq)]
pub struct Remittance {
    pub payment_reference: String,
    pub paid_on: NaiveDate,
    pub currency: String,
    /// `(invoice number, amount paid)`.
    pub invoices: Vec<(String, Decimal)>,
    /// Free text for the partner, if any.
    pub note: Option<String>,
}

impl Remittance {
    /// The remittance for one confirmed payment of one invoice.
    pub fn from_payment(payment: &PaymentConfirmed) -> Self {
        let paid_on = payment.paid_at.to_datetime().map(|t| t.date_naive()).unwrap_or_default();
        Remittance {
            payment_reference: payment.payment_reference.clone(),
            paid_on,
            currency: payment.currency.clone(),
            invoices: vec![(payment.invoice_number.clone(), payment.amount)],
            note: payment.note.clone(),
        }
    }

    fn total(&self) -> rust_decimal::Decimal {
        self.invoices.iter().map(|(_, amount)| amount.value()).sum()
    }
}

/// Money as partners expect it: at least two decimal places, never rounded.
pub(crate) fn money(value: rust_decimal::Decimal) -> String {
    if value.scale() <= 2 {
        format!("{value:.2}")
    } else {
        value.normalize().to_string()
    }
}

/// The 820 or REMADV from `from` (us, the payer) to `to` (the partner, the payee).
pub fn remittance_advice(
    standard: Standard,
    from: PartyId,
    to: PartyId,
    remittance: &Remittance,
    control_number: u32,
    prepared_at: NaiveDateTime,
) -> Result<Vec<u8>, WriteError> {
    let header = OutboundHeader { standard, sender: from, receiver: to, control_number, prepared_at, test: false };
    let paid_on = remittance.paid_on.format("%Y%m%d").to_string();
    let total = money(remittance.total());
    let (payer, payee) = (&header.sender.id, &header.receiver.id);
    let body = match standard {
        Standard::X12 => {
            // BPR01 I: remittance information only; BPR16: the payment date.
            let mut bpr = vec!["I".to_owned(), total, "C".into(), "NON".into()];
            bpr.extend(std::iter::repeat_n(String::new(), 11));
            bpr.push(paid_on);
            let mut body = vec![
                OutSegment::new("BPR", bpr),
                OutSegment::new("TRN", ["1", remittance.payment_reference.as_str()]),
                OutSegment::new("CUR", ["PR", remittance.currency.as_str()]),
            ];
            body.extend(
                remittance.note.as_deref().map(|n| OutSegment::new("NTE", ["PMT".to_owned(), printable_copy(n)])),
            );
            body.extend([
                OutSegment::new("N1", ["PR", payer, "ZZ", payer]),
                OutSegment::new("N1", ["PE", payee, "ZZ", payee]),
                OutSegment::new("ENT", ["1"]),
            ]);
            for (invoice, amount) in &remittance.invoices {
                body.push(OutSegment::new(
                    "RMR",
                    ["IV".to_owned(), invoice.clone(), String::new(), money(amount.value())],
                ));
            }
            Body::Transactions {
                functional_id: "RA",
                version: "004010",
                transactions: vec![OutTransaction { document_type: "820", version: "", body }],
            }
        }
        Standard::Edifact => {
            let mut body = vec![
                OutSegment::new("BGM", ["481", remittance.payment_reference.as_str(), "9"]),
                OutSegment::new("DTM", [composite(["137", paid_on.as_str(), "102"])]),
                OutSegment::new("CUX", [composite(["2", remittance.currency.as_str(), "11"])]),
                OutSegment::new("MOA", [composite(["9", total.as_str()])]),
                OutSegment::new("NAD", [Element::from("PR"), composite([payer.as_str(), "", "ZZZ"])]),
                OutSegment::new("NAD", [Element::from("PE"), composite([payee.as_str(), "", "ZZZ"])]),
            ];
            body.extend(remittance.note.as_deref().map(|n| OutSegment::new("FTX", ["AAI", "", "", n])));
            for (invoice, amount) in &remittance.invoices {
                body.push(OutSegment::new("DOC", ["380", invoice.as_str()]));
                body.push(OutSegment::new("MOA", [composite(["12".to_owned(), money(amount.value())])]));
            }
            Body::Transactions {
                functional_id: "",
                version: "",
                transactions: vec![OutTransaction { document_type: "REMADV", version: "D:96A:UN", body }],
            }
        }
    };
    write_interchange(&header, &body)
}
