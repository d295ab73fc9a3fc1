//! Credit and debit adjustments for resolved disputes: X12 812 (Credit/Debit
//! Adjustment) or EDIFACT CREADV/DEBADV, naming the invoice, the adjusted
//! amount and the reason.

use chrono::{NaiveDate, NaiveDateTime};
use gridsync_schemas::Decimal;

use super::{
    remittance::money,
    segments::{composite, printable_copy, Element, OutSegment},
    write_interchange, Body, OutTransaction, OutboundHeader, PartyId, WriteError,
};
use crate::Standard;

/// Which way the adjustment goes for the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Credit,
    Debit,
}

/// One adjustment to an invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct Adjustment {
    /// The dispute's id: the adjustment's number.
    pub reference: String,
    pub issued_on: NaiveDate,
    pub invoice_number: String,
    pub currency: String,
    /// The amount adjusted, never negative: `direction` says which way.
    pub amount: Decimal,
    pub direction: Direction,
    /// Why, in words (the resolution's summary).
    pub reason: Option<String>,
}

impl Adjustment {
    /// The document type it is sent as in `standard`.
    pub fn document_type(&self, standard: Standard) -> &'static str {
        match (standard, self.direction) {
            (Standard::X12, _) => "812",
            (Standard::Edifact, Direction::Credit) => "CREADV",
            (Standard::Edifact, Direction::Debit) => "DEBADV",
        }
    }
}

/// The 812 or CREADV/DEBADV from `from` (us) to `to` (the partner).
pub fn adjustment_advice(
    standard: Standard,
    from: PartyId,
    to: PartyId,
    adjustment: &Adjustment,
    control_number: u32,
    prepared_at: NaiveDateTime,
) -> Result<Vec<u8>, WriteError> {
    let header = OutboundHeader { standard, sender: from, receiver: to, control_number, prepared_at, test: false };
    let issued = adjustment.issued_on.format("%Y%m%d").to_string();
    let amount = money(adjustment.amount.value());
    let (us, partner) = (&header.sender.id, &header.receiver.id);
    let document_type = adjustment.document_type(standard);
    let body = match standard {
        Standard::X12 => {
            let flag = if adjustment.direction == Direction::Credit { "C" } else { "D" };
            // BCD: date, adjustment number, handling code (I: information), amount, credit/debit,
            // invoice date (not sent), invoice number.
            let mut body = vec![
                OutSegment::new(
                    "BCD",
                    [
                        issued.as_str(),
                        adjustment.reference.as_str(),
                        "I",
                        amount.as_str(),
                        flag,
                        "",
                        adjustment.invoice_number.as_str(),
                    ],
                ),
                OutSegment::new("CUR", ["BY", adjustment.currency.as_str()]),
            ];
            body.extend(
                adjustment.reason.as_deref().map(|r| OutSegment::new("NTE", ["ADD".to_owned(), printable_copy(r)])),
            );
            body.extend([
                OutSegment::new("N1", ["PR", us, "ZZ", us]),
                OutSegment::new("N1", ["PE", partner, "ZZ", partner]),
                // CDD: reason ZZ (mutually defined, the note says it), credit/debit, amount.
                OutSegment::new("CDD", ["ZZ", flag, "", amount.as_str()]),
            ]);
            Body::Transactions {
                functional_id: "CD",
                version: "004010",
                transactions: vec![OutTransaction { document_type, version: "", body }],
            }
        }
        Standard::Edifact => {
            let name = if adjustment.direction == Direction::Credit { "381" } else { "383" };
            let mut body = vec![
                OutSegment::new("BGM", [name, adjustment.reference.as_str(), "9"]),
                OutSegment::new("DTM", [composite(["137", issued.as_str(), "102"])]),
                OutSegment::new("RFF", [composite(["IV", adjustment.invoice_number.as_str()])]),
                OutSegment::new("CUX", [composite(["2", adjustment.currency.as_str(), "11"])]),
                OutSegment::new("MOA", [composite(["9", amount.as_str()])]),
                OutSegment::new("NAD", [Element::from("PR"), composite([us.as_str(), "", "ZZZ"])]),
                OutSegment::new("NAD", [Element::from("PE"), composite([partner.as_str(), "", "ZZZ"])]),
            ];
            body.extend(adjustment.reason.as_deref().map(|r| OutSegment::new("FTX", ["AAI", "", "", r])));
            Body::Transactions {
                functional_id: "",
                version: "",
                transactions: vec![OutTransaction { document_type, version: "D:96A:UN", body }],
            }
        }
    };
    write_interchange(&header, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adjustment(direction: Direction) -> Adjustment {
        Adjustment {
            reference: "D-7".into(),
            issued_on: NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
            invoice_number: "INV-9".into(),
            currency: "USD".into(),
            amount: "120.5".parse().unwrap(),
            direction,
            reason: Some("Short shipment: 2 cases".into()),
        }
    }

    fn party(id: &str) -> PartyId {
        PartyId { qualifier: Some("ZZ".into()), id: id.into() }
    }

    #[test]
    fn an_812_reads_back_with_its_exact_amount() {
        let at = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap().and_hms_opt(8, 0, 0).unwrap();
        let bytes =
            adjustment_advice(Standard::X12, party("GRIDSYNC"), party("ACME"), &adjustment(Direction::Credit), 7, at)
                .unwrap();
        let parsed = crate::parse(&bytes).unwrap();
        let tx = &parsed[0].groups[0].transactions[0];
        assert_eq!(tx.document_type, "812");
        let bcd = tx.segments.iter().find(|s| s.tag == "BCD").unwrap();
        assert_eq!(bcd.element(2).as_deref(), Some("D-7"));
        assert_eq!(bcd.element(4).as_deref(), Some("120.50"));
        assert_eq!(bcd.element(5).as_deref(), Some("C"));
        assert_eq!(bcd.element(7).as_deref(), Some("INV-9"));
        assert_eq!(parsed[0].groups[0].functional_id.as_deref(), Some("CD"));
    }

    #[test]
    fn edifact_sends_a_creadv_or_a_debadv() {
        let at = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap().and_hms_opt(8, 0, 0).unwrap();
        for (direction, kind, code) in [(Direction::Credit, "CREADV", "381"), (Direction::Debit, "DEBADV", "383")] {
            let bytes = adjustment_advice(
                Standard::Edifact,
                party("GRIDSYNC"),
                party("5412345000013"),
                &adjustment(direction),
                8,
                at,
            )
            .unwrap();
            let parsed = crate::parse(&bytes).unwrap();
            let tx = &parsed[0].groups[0].transactions[0];
            assert_eq!(tx.document_type, kind);
            let bgm = tx.segments.iter().find(|s| s.tag == "BGM").unwrap();
            assert_eq!(bgm.element(1).as_deref(), Some(code));
            let moa = tx.segments.iter().find(|s| s.tag == "MOA").unwrap();
            assert_eq!(moa.component(1, 2).as_deref(), Some("120.50"));
        }
    }
}
