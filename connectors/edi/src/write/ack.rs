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
use crate::{EdiError, ErrorKind, Group, Interchange, Standard, Transaction};

/// What gridsync did with an inbound interchange.
#[derive(Debug, Clone, Copy)]
pub enum AckVerdict<'e> {
    /// Every transaction accepted but those rejected on their own (a trailer that does not match
    /// its transaction or group): what a partner that takes every document answers.
    Accepted,
    /// What gridsync answers its partners: the interchange was processed. Rejected on its own,
    /// while the others are accepted: a transaction whose trailer (or group's) is wrong, one in
    /// which an error of `found` lies (mapping found it), and one of a type gridsync does not
    /// map (`AK5*R*1`, CONTRL `UCM` action 4) unless `ignored` (the partner's profile) lists it.
    Processed { found: &'e [EdiError], ignored: &'e [String] },
    /// Nothing of the interchange is processed (the file is quarantined as a
    /// unit): every transaction is rejected, and the one `error` lies in is
    /// reported precisely.
    Rejected(&'e EdiError),
}

impl AckVerdict<'_> {
    /// `accepted` or `rejected`, for file names, metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            AckVerdict::Accepted | AckVerdict::Processed { .. } => "accepted",
            AckVerdict::Rejected(_) => "rejected",
        }
    }

    /// What becomes of `tx`, one of `group`'s transactions.
    fn judge<'e>(&self, standard: Standard, group: &'e Group<'_>, tx: &'e Transaction<'_>) -> Judged<'e>
    where
        Self: 'e,
    {
        match *self {
            AckVerdict::Rejected(error) => {
                Judged::Rejected(group.rejection(tx, &[]).or_else(|| tx.holds(error).then_some(error)))
            }
            AckVerdict::Accepted => match group.rejection(tx, &[]) {
                Some(error) => Judged::Rejected(Some(error)),
                None => Judged::Accepted,
            },
            AckVerdict::Processed { found, ignored } => match group.rejection(tx, found) {
                Some(error) => Judged::Rejected(Some(error)),
                None if !crate::map::is_mapped(standard, &tx.document_type) && !ignored.contains(&tx.document_type) => {
                    Judged::Unsupported
                }
                None => Judged::Accepted,
            },
        }
    }
}

/// What becomes of one transaction.
enum Judged<'e> {
    Accepted,
    /// Of a type gridsync does not map: rejected, nothing of it read.
    Unsupported,
    /// Rejected for the error that lies in it (or its group), or, with none, because its
    /// whole interchange is.
    Rejected(Option<&'e EdiError>),
}

/// Which X12 acknowledgement a partner wants of its interchanges: the 997 functional
/// acknowledgement, or the 999 implementation acknowledgement (005010; many retailers ask for it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum X12Ack {
    #[default]
    Functional997,
    Implementation999,
}

impl X12Ack {
    /// `997` or `999`.
    pub fn document_type(self) -> &'static str {
        match self {
            X12Ack::Functional997 => "997",
            X12Ack::Implementation999 => "999",
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

/// The 997, 999 (X12, as `x12` says) or CONTRL for `inbound`, numbered `control_number`.
pub fn functional_ack(
    inbound: &Interchange<'_>,
    verdict: AckVerdict<'_>,
    x12: X12Ack,
    control_number: u32,
    prepared_at: NaiveDateTime,
) -> Result<Vec<u8>, WriteError> {
    let (sender, receiver) = parties(inbound);
    let header = reply_header(inbound.standard, sender, receiver, inbound.test, control_number, prepared_at);
    let body = match inbound.standard {
        Standard::X12 => Body::Transactions {
            functional_id: "FA",
            version: match x12 {
                X12Ack::Functional997 => "004010",
                X12Ack::Implementation999 => IMPLEMENTATION_999,
            },
            transactions: inbound.groups.iter().map(|g| x12_ack(inbound, g, verdict, x12)).collect(),
        },
        Standard::Edifact => {
            Body::Transactions { functional_id: "", version: "", transactions: vec![contrl(inbound, verdict)] }
        }
    };
    write_interchange(&header, &body)
}

/// The 999's implementation guide (GS08, ST03).
const IMPLEMENTATION_999: &str = "005010X231A1";

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

/// The AK5/IK5 code naming what is wrong with a rejected transaction set: 3, its trailer's
/// control number differs from its header's; 4, its segment count is wrong; 5, a segment in it
/// is in error (named by AK3/IK3 when the error has an element). `None` when it is rejected
/// only with its group or interchange.
fn transaction_code(tx: &Transaction<'_>, error: Option<&EdiError>) -> Option<&'static str> {
    let error = error.filter(|e| tx.holds(e))?;
    let at_trailer = tx.segments.last().is_some_and(|t| t.index == error.segment);
    Some(match error.kind {
        ErrorKind::ControlNumberMismatch if at_trailer => "3",
        ErrorKind::CountMismatch if at_trailer => "4",
        _ => "5",
    })
}

/// The AK905 code naming what is wrong with a rejected group's trailer: 4, its control number
/// differs from GS06; 5, its transaction count is wrong.
fn group_code(error: &EdiError) -> Option<&'static str> {
    match error.kind {
        ErrorKind::ControlNumberMismatch => Some("4"),
        ErrorKind::CountMismatch => Some("5"),
        _ => None,
    }
}

/// Where a 999 names the transaction its errors are in (CTX, "business unit identifier"): the
/// element holding the document's own number, by document type.
const BUSINESS_UNIT: &[(&str, &str, usize)] =
    &[("850", "BEG", 3), ("855", "BAK", 3), ("856", "BSN", 2), ("810", "BIG", 2), ("820", "TRN", 2), ("214", "B10", 1)];

/// The 999's CTX naming `tx` by its business unit identifier (`CTX*BEG03:PO-1001`), when it has one.
fn business_unit(tx: &Transaction<'_>) -> Option<OutSegment> {
    let &(_, tag, element) = BUSINESS_UNIT.iter().find(|(kind, ..)| *kind == tx.document_type)?;
    let value = tx.body().iter().find(|s| s.tag == tag)?.element(element).map(|v| printable_copy(&v))?;
    (!value.is_empty()).then(|| OutSegment::new("CTX", [composite([format!("{tag}{element:02}"), value])]))
}

/// One 997 or 999 transaction set for one inbound group: AK2/IK5 per transaction set as
/// `verdict` judges it, AK3/AK4 (IK3/IK4 and CTX in a 999) where an error names its place.
fn x12_ack(inbound: &Interchange<'_>, group: &Group<'_>, verdict: AckVerdict<'_>, kind: X12Ack) -> OutTransaction {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let is_999 = kind == X12Ack::Implementation999;
    let (segment_tag, element_tag, set_tag) = if is_999 { ("IK3", "IK4", "IK5") } else { ("AK3", "AK4", "AK5") };
    let mut ak1 = vec![text(&group.functional_id), text(&group.control_number)];
    if is_999 {
        ak1.push(text(&group.version));
    }
    let mut body = vec![OutSegment::new("AK1", ak1)];
    let (mut accepted, mut noted) = (0, false);
    let group_rejected = matches!(verdict, AckVerdict::Accepted | AckVerdict::Processed { .. })
        .then_some(group.error.as_ref())
        .flatten();
    // A group rejected for its trailer is answered by its AK9 alone, no AK2 per transaction set.
    for tx in group.transactions.iter().filter(|_| group_rejected.is_none()) {
        let mut ak2 = vec![tx.document_type.clone(), tx.control_number.clone()];
        if is_999 {
            ak2.extend(tx.segments.first().and_then(|st| st.element(3)).map(|v| printable_copy(&v)));
        }
        body.push(OutSegment::new("AK2", ak2));
        match verdict.judge(Standard::X12, group, tx) {
            // Transaction set not supported: nothing of it is read; an exception says so.
            Judged::Unsupported => body.push(OutSegment::new(set_tag, ["R", "1"])),
            Judged::Accepted => {
                accepted += 1;
                match inbound.tolerated_in(tx) {
                    // E: accepted, errors noted; 4: the segment count does not match.
                    Some(_) => {
                        noted = true;
                        body.push(OutSegment::new(set_tag, ["E", "4"]));
                    }
                    None => body.push(OutSegment::new(set_tag, ["A"])),
                }
            }
            Judged::Rejected(error) => {
                let code = transaction_code(tx, error);
                if let (Some("5"), Some(error)) = (code, error) {
                    if let (Some((position, segment)), Some(element)) = (located(tx, error), error.element) {
                        // AK304 8: segment has data element errors; AK403 1: mandatory element missing, 7: invalid value.
                        body.push(OutSegment::new(
                            segment_tag,
                            [segment.tag.to_owned(), position.to_string(), "".into(), "8".into()],
                        ));
                        if is_999 {
                            body.extend(business_unit(tx));
                        }
                        let (code, copy) = match error.kind {
                            ErrorKind::MissingElement => ("1", String::new()),
                            _ => ("7", segment.element(element).map(|v| printable_copy(&v)).unwrap_or_default()),
                        };
                        body.push(OutSegment::new(
                            element_tag,
                            [element.to_string(), String::new(), code.into(), copy],
                        ));
                    }
                }
                body.push(OutSegment::new(set_tag, ["R"].into_iter().chain(code)));
            }
        }
    }
    // AK901: every set accepted (A, or E with errors noted), some (P: partially), none (R).
    let status = match (accepted, noted) {
        (n, false) if n == group.transactions.len() && group_rejected.is_none() => "A",
        (n, true) if n == group.transactions.len() => "E",
        (0, _) => "R",
        _ => "P",
    };
    let count = group.transactions.len().to_string();
    let mut ak9 = vec![status.to_owned(), count.clone(), count, accepted.to_string()];
    ak9.extend(group_rejected.and_then(group_code).map(str::to_owned));
    body.push(OutSegment::new("AK9", ak9));
    let version = if is_999 { IMPLEMENTATION_999 } else { "" };
    OutTransaction { document_type: kind.document_type(), version, body }
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

/// UCI names the inbound interchange; one UCM per message, as `verdict` judges it.
fn contrl(inbound: &Interchange<'_>, verdict: AckVerdict<'_>) -> OutTransaction {
    let (sender, receiver) = parties(inbound);
    // 0083 action: 7 acknowledged, 4 rejected.
    let action = match verdict {
        AckVerdict::Accepted | AckVerdict::Processed { .. } => "7",
        AckVerdict::Rejected(_) => "4",
    };
    let mut body = vec![OutSegment::new(
        "UCI",
        [Element::from(inbound.control_number.trim()), sender.composite(), receiver.composite(), Element::from(action)],
    )];
    for group in &inbound.groups {
        for tx in &group.transactions {
            let kind = composite(
                std::iter::once(tx.document_type.as_str()).chain(tx.version.as_deref().unwrap_or("").split(':')),
            );
            let reference = Element::from(&tx.control_number);
            match verdict.judge(Standard::Edifact, group, tx) {
                // A message gridsync does not map: rejected (0085 18: unspecified), an exception says so.
                Judged::Unsupported => {
                    body.push(OutSegment::new("UCM", [reference, kind, Element::from("4"), Element::from("18")]))
                }
                Judged::Accepted => match inbound.tolerated_in(tx) {
                    // Accepted, with the tolerated error's code noted (29: the count does not match).
                    Some(noted) => body.push(OutSegment::new(
                        "UCM",
                        [reference, kind, Element::from("7"), Element::from(edifact_code(noted.kind))],
                    )),
                    None => body.push(OutSegment::new("UCM", [reference, kind, Element::from("7")])),
                },
                Judged::Rejected(Some(error)) => {
                    let code = edifact_code(error.kind);
                    body.push(OutSegment::new("UCM", [reference, kind, Element::from("4"), Element::from(code)]));
                    // The segment in error, when it is one of this message's (not its group's trailer).
                    match (located(tx, error), error.element) {
                        (Some((position, _)), Some(element)) => {
                            body.push(OutSegment::new("UCS", [position.to_string()]));
                            body.push(OutSegment::new("UCD", [code.to_owned(), element.to_string()]));
                        }
                        (Some((position, _)), None) => {
                            body.push(OutSegment::new("UCS", [position.to_string(), code.to_owned()]))
                        }
                        (None, _) => {}
                    }
                }
                Judged::Rejected(None) => body.push(OutSegment::new("UCM", [reference, kind, Element::from("4")])),
            }
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
