//! Functional acknowledgements of what partners send: a 997 (X12) or CONTRL
//! (EDIFACT) for every inbound interchange, accepting it or rejecting it with
//! the precise reason (segment position, element, error code); and, when not
//! even the envelope can be read, a TA1 (X12) or an interchange-level CONTRL
//! rejection.

use chrono::NaiveDateTime;

use super::{
    segments::{composite, printable_copy, Element, OutSegment},
    write_interchange, Body, OutTransaction, OutboundHeader, PartyId, WriteError,
};
use crate::{EdiError, ErrorKind, Interchange, Standard, Transaction};

/// What gridsync did with an inbound interchange.
#[derive(Debug, Clone, Copy)]
pub enum AckVerdict<'e> {
    /// Every transaction was read and its events are durable.
    Accepted,
    /// As `Accepted`, but a transaction of a type gridsync does not map is rejected as not
    /// supported (997 `AK5*R*1`, CONTRL `UCM` action 4): what gridsync answers its partners.
    /// (`Accepted` is what a partner that takes every document answers.)
    AcceptedIfMapped,
    /// Nothing of the interchange is processed (the file is quarantined as a
    /// unit): every transaction is rejected, and the one `error` lies in is
    /// reported precisely.
    Rejected(&'e EdiError),
}

impl AckVerdict<'_> {
    /// `accepted` or `rejected`, for file names, metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            AckVerdict::Accepted | AckVerdict::AcceptedIfMapped => "accepted",
            AckVerdict::Rejected(_) => "rejected",
        }
    }
}

/// The inbound interchange's sender and receiver.
fn parties(inbound: &Interchange<'_>) -> (PartyId, PartyId) {
    (
        PartyId { qualifier: inbound.sender_qualifier.clone(), id: inbound.sender_id.trim().to_owned() },
        PartyId { qualifier: inbound.receiver_qualifier.clone(), id: inbound.receiver_id.trim().to_owned() },
    )
}

/// The reply's envelope: the inbound receiver answers the inbound sender.
fn reply_header(
    standard: Standard,
    inbound_sender: PartyId,
    inbound_receiver: PartyId,
    test: bool,
    control_number: u32,
    prepared_at: NaiveDateTime,
) -> OutboundHeader {
    OutboundHeader { standard, sender: inbound_receiver, receiver: inbound_sender, control_number, prepared_at, test }
}

/// The 997 or CONTRL for `inbound`, numbered `control_number`.
pub fn functional_ack(
    inbound: &Interchange<'_>,
    verdict: AckVerdict<'_>,
    control_number: u32,
    prepared_at: NaiveDateTime,
) -> Result<Vec<u8>, WriteError> {
    let (sender, receiver) = parties(inbound);
    let header = reply_header(inbound.standard, sender, receiver, inbound.test, control_number, prepared_at);
    let body = match inbound.standard {
        Standard::X12 => Body::Transactions {
            functional_id: "FA",
            version: "004010",
            transactions: inbound.groups.iter().map(|g| x12_997(inbound, g, verdict)).collect(),
        },
        Standard::Edifact => {
            Body::Transactions { functional_id: "", version: "", transactions: vec![contrl(inbound, verdict)] }
        }
    };
    write_interchange(&header, &body)
}

/// The TA1 accepting `inbound`'s envelope (TA104 `A`, note `000`), for an X12 interchange that
/// asks for one (ISA14 = 1): sent whatever the 997 says of the groups inside. `None` for EDIFACT,
/// whose CONTRL answers the interchange itself.
pub fn interchange_acceptance(
    inbound: &Interchange<'_>,
    control_number: u32,
    prepared_at: NaiveDateTime,
) -> Option<Result<Vec<u8>, WriteError>> {
    if inbound.standard != Standard::X12 {
        return None;
    }
    let (sender, receiver) = parties(inbound);
    let header = reply_header(inbound.standard, sender, receiver, inbound.test, control_number, prepared_at);
    let ta1 = OutSegment::new(
        "TA1",
        [
            printable_copy(inbound.control_number.trim()),
            printable_copy(&inbound.date),
            printable_copy(&inbound.time),
            "A".into(),
            "000".into(),
        ],
    );
    Some(write_interchange(&header, &Body::Segments(vec![ta1])))
}

/// Where in `tx` the error lies: (position in the transaction, 1-based; the segment's tag).
fn located<'t>(tx: &'t Transaction<'_>, error: &EdiError) -> Option<(usize, &'t crate::Segment<'t>)> {
    let first = tx.segments.first()?.index;
    let position = error.segment.checked_sub(first)? + 1;
    tx.segments.get(position - 1).map(|s| (position, s))
}

/// One 997 transaction set for one inbound group.
fn x12_997(inbound: &Interchange<'_>, group: &crate::Group<'_>, verdict: AckVerdict<'_>) -> OutTransaction {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut body = vec![OutSegment::new("AK1", [text(&group.functional_id), text(&group.control_number)])];
    let (mut accepted, mut noted) = (0, false);
    for tx in &group.transactions {
        body.push(OutSegment::new("AK2", [tx.document_type.clone(), tx.control_number.clone()]));
        match verdict {
            // AK502 1: transaction set not supported (nothing of it is read; an exception says so).
            AckVerdict::AcceptedIfMapped if !crate::map::is_mapped(Standard::X12, &tx.document_type) => {
                body.push(OutSegment::new("AK5", ["R", "1"]));
            }
            AckVerdict::Accepted | AckVerdict::AcceptedIfMapped => {
                accepted += 1;
                match inbound.tolerated_in(tx) {
                    // AK501 E: accepted, errors noted; AK502 4: the segment count does not match.
                    Some(_) => {
                        noted = true;
                        body.push(OutSegment::new("AK5", ["E", "4"]));
                    }
                    None => body.push(OutSegment::new("AK5", ["A"])),
                }
            }
            AckVerdict::Rejected(error) => match located(tx, error) {
                Some((position, segment)) => {
                    if let Some(element) = error.element {
                        // AK304 8: segment has data element errors; AK403 1: mandatory element missing, 7: invalid value.
                        body.push(OutSegment::new(
                            "AK3",
                            [segment.tag.to_owned(), position.to_string(), "".into(), "8".into()],
                        ));
                        let (code, copy) = match error.kind {
                            ErrorKind::MissingElement => ("1", String::new()),
                            _ => ("7", segment.element(element).map(|v| printable_copy(&v)).unwrap_or_default()),
                        };
                        body.push(OutSegment::new("AK4", [element.to_string(), String::new(), code.into(), copy]));
                    }
                    // AK502 5: one or more segments in error.
                    body.push(OutSegment::new("AK5", ["R", "5"]));
                }
                // Not in error itself, but not processed either: its interchange is quarantined.
                None => body.push(OutSegment::new("AK5", ["R"])),
            },
        }
    }
    // AK901: every set accepted (A, or E with errors noted), some (P: partially), none (R).
    let status = match (accepted, noted) {
        (n, false) if n == group.transactions.len() => "A",
        (n, true) if n == group.transactions.len() => "E",
        (0, _) => "R",
        _ => "P",
    };
    let count = group.transactions.len().to_string();
    body.push(OutSegment::new("AK9", [status.to_owned(), count.clone(), count, accepted.to_string()]));
    OutTransaction { document_type: "997", version: "", body }
}

/// The EDIFACT syntax error code (0085) for an error.
fn edifact_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::MissingElement => "13",
        ErrorKind::InvalidValue | ErrorKind::BadHeader | ErrorKind::BadControlNumber => "12",
        ErrorKind::NotANumber => "37",
        ErrorKind::UnexpectedSegment => "15",
        ErrorKind::ControlNumberMismatch => "28",
        ErrorKind::CountMismatch => "29",
        ErrorKind::BadSeparators => "20",
        ErrorKind::UnknownSender => "23",
        ErrorKind::Truncated | ErrorKind::UnknownStart | ErrorKind::Unsupported => "18",
    }
}

/// UCI names the inbound interchange; one UCM per message.
fn contrl(inbound: &Interchange<'_>, verdict: AckVerdict<'_>) -> OutTransaction {
    let (sender, receiver) = parties(inbound);
    // 0083 action: 7 acknowledged, 4 rejected.
    let action = match verdict {
        AckVerdict::Accepted | AckVerdict::AcceptedIfMapped => "7",
        AckVerdict::Rejected(_) => "4",
    };
    let mut body = vec![OutSegment::new(
        "UCI",
        [Element::from(inbound.control_number.trim()), sender.composite(), receiver.composite(), Element::from(action)],
    )];
    for tx in inbound.transactions() {
        let kind =
            composite(std::iter::once(tx.document_type.as_str()).chain(tx.version.as_deref().unwrap_or("").split(':')));
        let reference = Element::from(&tx.control_number);
        match verdict {
            // A message gridsync does not map: rejected (0085 18: unspecified), an exception says so.
            AckVerdict::AcceptedIfMapped if !crate::map::is_mapped(Standard::Edifact, &tx.document_type) => {
                body.push(OutSegment::new("UCM", [reference, kind, Element::from("4"), Element::from("18")]))
            }
            AckVerdict::Accepted | AckVerdict::AcceptedIfMapped => match inbound.tolerated_in(tx) {
                // Accepted, with the tolerated error's code noted (29: the count does not match).
                Some(noted) => body.push(OutSegment::new(
                    "UCM",
                    [reference, kind, Element::from("7"), Element::from(edifact_code(noted.kind))],
                )),
                None => body.push(OutSegment::new("UCM", [reference, kind, Element::from("7")])),
            },
            AckVerdict::Rejected(error) => match located(tx, error) {
                Some((position, _)) => {
                    let code = edifact_code(error.kind);
                    body.push(OutSegment::new("UCM", [reference, kind, Element::from("4"), Element::from(code)]));
                    match error.element {
                        Some(element) => {
                            body.push(OutSegment::new("UCS", [position.to_string()]));
                            body.push(OutSegment::new("UCD", [code.to_owned(), element.to_string()]));
                        }
                        None => body.push(OutSegment::new("UCS", [position.to_string(), code.to_owned()])),
                    }
                }
                None => body.push(OutSegment::new("UCM", [reference, kind, Element::from("4")])),
            },
        }
    }
    OutTransaction { document_type: "CONTRL", version: "D:3:UN", body }
}

/// The X12 TA1 note code (TA105) for an envelope error. Envelope errors name
/// the trailer they found wrong first (`IEA02 is ...`).
fn ta1_code(error: &EdiError) -> &'static str {
    match error.kind {
        ErrorKind::ControlNumberMismatch if error.message.starts_with("IEA") => "001",
        ErrorKind::CountMismatch if error.message.starts_with("IEA") => "021",
        ErrorKind::Truncated => "023",
        // Invalid interchange sender id.
        ErrorKind::UnknownSender => "006",
        ErrorKind::BadSeparators => "026",
        _ => "024",
    }
}

/// A rejection of the first interchange of `input`, whose envelope failed
/// with `error`: TA1 (X12) or CONTRL with UCI action 4 (EDIFACT). `None` when
/// the sender, receiver or control number cannot be read: there is nobody to
/// answer, or nothing to name.
pub fn envelope_rejection(
    input: &[u8],
    error: &EdiError,
    control_number: u32,
    prepared_at: NaiveDateTime,
) -> Option<Result<Vec<u8>, WriteError>> {
    // Nobody to answer, or nothing to name: no rejection can be addressed.
    let sniffed = crate::sniff_header(input).filter(crate::SniffedHeader::is_answerable)?;
    let header =
        reply_header(sniffed.standard, sniffed.sender, sniffed.receiver, sniffed.test, control_number, prepared_at);
    let control = printable_copy(&sniffed.control_number);
    let body = match sniffed.standard {
        Standard::X12 => Body::Segments(vec![OutSegment::new(
            "TA1",
            [control, printable_copy(&sniffed.date), printable_copy(&sniffed.time), "R".into(), ta1_code(error).into()],
        )]),
        Standard::Edifact => {
            let uci = OutSegment::new(
                "UCI",
                [
                    Element::from(&sniffed.control_number),
                    header.receiver.composite(),
                    header.sender.composite(),
                    Element::from("4"),
                    Element::from(edifact_code(error.kind)),
                ],
            );
            Body::Transactions {
                functional_id: "",
                version: "",
                transactions: vec![OutTransaction { document_type: "CONTRL", version: "D:3:UN", body: vec![uci] }],
            }
        }
    };
    Some(write_interchange(&header, &body))
}
