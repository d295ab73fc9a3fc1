//! Writing interchanges: the envelope (ISA/GS/ST or UNA/UNB/UNH with their
//! trailers, counts and control numbers), functional acknowledgements for
//! what came in, and remittance advice for payments.
//!
//! gridsync writes with fixed separators (X12 `*` `:` `~`, EDIFACT the UNA
//! defaults) and one segment per line; what partners send may use any.

mod ack;
mod adjustment;
mod remittance;
mod segments;

pub use ack::{envelope_rejection, functional_ack, interchange_acceptance, AckVerdict, X12Ack};
pub use adjustment::{adjustment_advice, Adjustment, Direction as AdjustmentDirection};
pub use remittance::{remittance_advice, Remittance};
pub use segments::{Element, OutSegment};

use chrono::NaiveDateTime;

use crate::Standard;
use segments::{composite, SegmentWriter};

/// The largest control number an envelope holds (ISA13 has nine digits).
pub const MAX_CONTROL_NUMBER: u32 = 999_999_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// X12 has no escape character: a value holding a separator cannot be sent.
    #[error("{tag}{element:02}: {value:?} contains a separator ({separator:?}) and X12 cannot escape it")]
    Unrepresentable { tag: String, element: usize, value: String, separator: char },
    #[error("{what} {value:?} is longer than the {max} characters its envelope field holds")]
    TooLong { what: &'static str, value: String, max: usize },
    #[error("control number {0} is outside 1..={MAX_CONTROL_NUMBER}")]
    ControlNumber(u32),
    /// ISA is fixed width in bytes: its values must be ASCII.
    #[error("{what} {value:?} is not ASCII, which the fixed-width ISA needs")]
    NotAscii { what: &'static str, value: String },
    #[error("the interchange {0} id is empty")]
    MissingParty(&'static str),
}

/// An interchange party: its id and, optionally, the id's qualifier (ISA05/07, UNB02-2/03-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyId {
    pub qualifier: Option<String>,
    pub id: String,
}

impl PartyId {
    /// As an EDIFACT composite (`id:qualifier`).
    pub(crate) fn composite(&self) -> Element {
        match &self.qualifier {
            Some(q) => composite([self.id.as_str(), q.as_str()]),
            None => Element::from(&self.id),
        }
    }
}

/// The envelope of an outbound interchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundHeader {
    pub standard: Standard,
    pub sender: PartyId,
    pub receiver: PartyId,
    /// ISA13 / UNB05, also used as GS06: unique per partner (the store allocates it).
    pub control_number: u32,
    /// ISA09/10, GS04/05, UNB04: fixed by the caller so that rewriting the
    /// same interchange yields the same bytes.
    pub prepared_at: NaiveDateTime,
    /// ISA15 `T` / UNB11 `1`.
    pub test: bool,
}

/// One transaction set (X12) or message (EDIFACT): its type, version and body
/// (the segments between header and trailer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutTransaction {
    /// `997`, `820` / `CONTRL`, `REMADV`.
    pub document_type: &'static str,
    /// X12: not written on ST (GS08 carries it). EDIFACT: UNH02 after the type, e.g. `D:96A:UN`.
    pub version: &'static str,
    pub body: Vec<OutSegment>,
}

/// What goes inside the interchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// X12: one functional group (GS01 = `functional_id`, GS08 = `version`);
    /// EDIFACT: the messages directly under UNB.
    Transactions { functional_id: &'static str, version: &'static str, transactions: Vec<OutTransaction> },
    /// Segments directly inside the interchange, with no group: X12's TA1.
    Segments(Vec<OutSegment>),
}

/// Writes one interchange.
pub fn write_interchange(header: &OutboundHeader, body: &Body) -> Result<Vec<u8>, WriteError> {
    if header.control_number == 0 || header.control_number > MAX_CONTROL_NUMBER {
        return Err(WriteError::ControlNumber(header.control_number));
    }
    for (what, party) in [("sender", &header.sender), ("receiver", &header.receiver)] {
        if party.id.trim().is_empty() {
            return Err(WriteError::MissingParty(what));
        }
    }
    match header.standard {
        Standard::X12 => x12(header, body),
        Standard::Edifact => edifact(header, body),
    }
}

fn x12(header: &OutboundHeader, body: &Body) -> Result<Vec<u8>, WriteError> {
    let mut w = SegmentWriter::new(Standard::X12);
    let control = format!("{:09}", header.control_number);
    let date = header.prepared_at.format("%y%m%d").to_string();
    let time = header.prepared_at.format("%H%M").to_string();
    let padded = |what: &'static str, value: &str, width: usize| {
        if !value.is_ascii() {
            return Err(WriteError::NotAscii { what, value: value.to_owned() });
        }
        if value.len() > width {
            return Err(WriteError::TooLong { what, value: value.to_owned(), max: width });
        }
        Ok(format!("{value:width$}"))
    };
    let qualifier = |p: &PartyId| p.qualifier.clone().unwrap_or_else(|| "ZZ".to_owned());
    let (isa11, isa12) = match body {
        Body::Transactions { version, .. } if version.starts_with("00501") => ("^", "00501"),
        _ => ("U", "00401"),
    };
    // ISA is fixed width: every element padded to its size (ISA11 `U`: version 00401).
    w.raw_isa(&[
        "00",
        &" ".repeat(10),
        "00",
        &" ".repeat(10),
        &padded("ISA05", &qualifier(&header.sender), 2)?,
        &padded("ISA06", &header.sender.id, 15)?,
        &padded("ISA07", &qualifier(&header.receiver), 2)?,
        &padded("ISA08", &header.receiver.id, 15)?,
        &date,
        &time,
        // 005010 groups (a 999) need an 00501 envelope, whose ISA11 is the repetition separator.
        isa11,
        isa12,
        &control,
        "0",
        if header.test { "T" } else { "P" },
        ":",
    ])?;
    let groups = match body {
        Body::Segments(segments) => {
            w.segments(segments)?;
            0
        }
        Body::Transactions { functional_id, version, transactions } => {
            let gs_control = header.control_number.to_string();
            let gs_date = header.prepared_at.format("%Y%m%d").to_string();
            w.segment(&OutSegment::new(
                "GS",
                [*functional_id, &header.sender.id, &header.receiver.id, &gs_date, &time, &gs_control, "X", version],
            ))?;
            for (n, tx) in transactions.iter().enumerate() {
                let st_control = format!("{:04}", n + 1);
                // ST03, the implementation convention, when the transaction names one (a 999's).
                let st = OutSegment::new("ST", [tx.document_type, &st_control, tx.version]);
                w.transaction(&st, &tx.body, "SE", &st_control)?;
            }
            w.segment(&OutSegment::new("GE", [transactions.len().to_string(), gs_control]))?;
            1
        }
    };
    w.segment(&OutSegment::new("IEA", [groups.to_string(), control]))?;
    Ok(w.finish())
}

fn edifact(header: &OutboundHeader, body: &Body) -> Result<Vec<u8>, WriteError> {
    let mut w = SegmentWriter::new(Standard::Edifact);
    let control = header.control_number.to_string();
    let prepared =
        composite([header.prepared_at.format("%y%m%d").to_string(), header.prepared_at.format("%H%M").to_string()]);
    let mut unb = vec![composite(["UNOC", "3"]), header.sender.composite(), header.receiver.composite()];
    unb.extend([prepared, Element::from(&control)]);
    if header.test {
        unb.extend(["", "", "", "", "", "1"].map(Element::from));
    }
    w.segment(&OutSegment::new("UNB", unb))?;
    let messages = match body {
        Body::Segments(segments) => {
            w.segments(segments)?;
            0
        }
        Body::Transactions { transactions, .. } => {
            for (n, tx) in transactions.iter().enumerate() {
                let reference = (n + 1).to_string();
                let kind = composite(std::iter::once(tx.document_type).chain(tx.version.split(':')));
                w.transaction(&OutSegment::new("UNH", [Element::from(&reference), kind]), &tx.body, "UNT", &reference)?;
            }
            transactions.len()
        }
    };
    w.segment(&OutSegment::new("UNZ", [messages.to_string(), control]))?;
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn header(standard: Standard) -> OutboundHeader {
        OutboundHeader {
            standard,
            sender: PartyId { qualifier: Some("ZZ".into()), id: "GRIDSYNC".into() },
            receiver: PartyId { qualifier: Some("ZZ".into()), id: "ACME".into() },
            control_number: 42,
            prepared_at: chrono::NaiveDate::from_ymd_opt(2026, 11, 25).and_then(|d| d.and_hms_opt(9, 30, 0)).unwrap(),
            test: false,
        }
    }

    #[test]
    fn x12_envelope_is_fixed_width_and_parses_back() {
        let body = Body::Transactions {
            functional_id: "FA",
            version: "004010",
            transactions: vec![OutTransaction {
                document_type: "997",
                version: "",
                body: vec![OutSegment::new("AK1", ["PO", "7"]), OutSegment::new("AK9", ["A", "1", "1", "1"])],
            }],
        };
        let bytes = write_interchange(&header(Standard::X12), &body).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let isa = text.lines().next().unwrap();
        assert_eq!(isa.len(), 106, "{isa}");
        assert_eq!(
            isa,
            "ISA*00*          *00*          *ZZ*GRIDSYNC       *ZZ*ACME           *261125*0930*U*00401*000000042*0*P*:~"
        );
        assert!(text.contains("GS*FA*GRIDSYNC*ACME*20261125*0930*42*X*004010~\nST*997*0001~"), "{text}");
        assert!(text.ends_with("SE*4*0001~\nGE*1*42~\nIEA*1*000000042~\n"), "{text}");
        let parsed = crate::parse(&bytes).unwrap();
        assert_eq!(parsed[0].control_number, "000000042");
        assert_eq!(parsed[0].groups[0].transactions[0].document_type, "997");
    }

    #[test]
    fn edifact_envelope_escapes_and_parses_back() {
        let body = Body::Transactions {
            functional_id: "",
            version: "",
            transactions: vec![OutTransaction {
                document_type: "REMADV",
                version: "D:96A:UN",
                body: vec![OutSegment::new("FTX", ["AAI", "", "", "Net 30: 2% off? Call O'Brien+Co"])],
            }],
        };
        let bytes = write_interchange(&header(Standard::Edifact), &body).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("UNA:+.? '\nUNB+UNOC:3+GRIDSYNC:ZZ+ACME:ZZ+261125:0930+42'\n"), "{text}");
        assert!(text.contains("FTX+AAI+++Net 30?: 2% off?? Call O?'Brien?+Co'"), "{text}");
        let parsed = crate::parse(&bytes).unwrap();
        let ftx = &parsed[0].groups[0].transactions[0].segments[1];
        assert_eq!(ftx.element(4).as_deref(), Some("Net 30: 2% off? Call O'Brien+Co"));
    }

    #[test]
    fn x12_refuses_values_it_cannot_escape() {
        let body = Body::Segments(vec![OutSegment::new("TA1", ["12*3"])]);
        let err = write_interchange(&header(Standard::X12), &body).unwrap_err();
        assert_eq!(err.to_string(), "TA101: \"12*3\" contains a separator ('*') and X12 cannot escape it");
        let mut starred = header(Standard::X12);
        starred.sender.id = "GLO*BEX".into();
        let err = write_interchange(&starred, &body).unwrap_err();
        assert_eq!(err.to_string(), "ISA06: \"GLO*BEX        \" contains a separator ('*') and X12 cannot escape it");
        let mut long = header(Standard::X12);
        long.receiver.id = "A-PARTNER-ID-LONGER-THAN-15".into();
        assert!(matches!(write_interchange(&long, &body), Err(WriteError::TooLong { what: "ISA08", .. })));
        long.control_number = 0;
        assert_eq!(write_interchange(&long, &body), Err(WriteError::ControlNumber(0)));
    }

    #[test]
    fn partner_values_cannot_break_the_envelope() {
        let body = Body::Segments(vec![OutSegment::new("TA1", ["1"])]);
        let mut accented = header(Standard::X12);
        accented.receiver.id = "GLÖBEX".into();
        assert!(matches!(write_interchange(&accented, &body), Err(WriteError::NotAscii { what: "ISA08", .. })));

        // A control character in a partner's id is a value, not a component separator.
        let mut odd = header(Standard::Edifact);
        odd.receiver = PartyId { qualifier: Some("14".into()), id: "ACME\u{1f}X:Y".into() };
        let bytes = write_interchange(&odd, &Body::Segments(Vec::new())).unwrap();
        let parsed = crate::parse(&bytes).unwrap();
        assert_eq!(
            (parsed[0].receiver_id.as_str(), parsed[0].receiver_qualifier.as_deref()),
            ("ACME\u{1f}X:Y", Some("14"))
        );
    }
}
