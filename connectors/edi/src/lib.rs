//! EDI interchanges, X12 and EDIFACT, from the envelope down.
//!
//! Parsing is zero-copy: segments and elements are slices of the input; only
//! EDIFACT values that contain release characters are unescaped into owned
//! strings. Every structural rule of the envelopes is checked (control numbers,
//! counts, nesting), and a failure names the segment (1-based, counted over the
//! whole file), the element and what was expected.

mod edifact;
mod envelope;
mod error;
pub mod map;
mod model;
pub mod write;
mod x12;

pub use error::{EdiError, ErrorKind};
pub use map::{
    map_in_chunks, map_interchange, map_interchange_with, rejection_exception, MapChunks, MapContext, Mapped,
};
pub use model::{Delimiters, Group, Interchange, Segment, Standard, Transaction};
pub use write::{OutboundHeader, PartyId};

/// Departures from the standard a sender is known for, accepted from it (and noted in its
/// acknowledgement) rather than rejected. Strict by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leniency {
    /// A transaction trailer (SE01 / UNT01) that miscounts the segments.
    pub segment_counts: bool,
}

/// Parses every interchange in `input`, X12 or EDIFACT (detected from the
/// first non-blank bytes: `ISA` or `UNA`/`UNB`). Several interchanges may
/// follow each other, of either standard. Strict: see [`parse_with`].
pub fn parse(input: &[u8]) -> Result<Vec<Interchange<'_>>, EdiError> {
    parse_with(input, &|_| Leniency::default())
}

/// [`parse`], with the leniency `leniency` gives each interchange's sender (by its id).
pub fn parse_with<'a>(input: &'a [u8], leniency: &dyn Fn(&str) -> Leniency) -> Result<Vec<Interchange<'a>>, EdiError> {
    let mut interchanges = Vec::new();
    let mut offset = skip_blank(input, 0);
    let mut segment_base = 0;
    while offset < input.len() {
        let rest = &input[offset..];
        let (interchange, consumed) = if rest.starts_with(b"ISA") {
            x12::parse_interchange(input, offset, segment_base, leniency)?
        } else if rest.starts_with(b"UNA") || rest.starts_with(b"UNB") {
            edifact::parse_interchange(input, offset, segment_base, leniency)?
        } else {
            return Err(EdiError::new(
                ErrorKind::UnknownStart,
                segment_base + 1,
                None,
                format!(
                    "expected an interchange header (ISA, UNA or UNB) at byte {offset}, found {:?}",
                    String::from_utf8_lossy(&rest[..rest.len().min(12)])
                ),
            ));
        };
        segment_base = interchange.last_segment_index;
        interchanges.push(interchange);
        offset = skip_blank(input, offset + consumed);
    }
    if interchanges.is_empty() {
        return Err(EdiError::new(ErrorKind::UnknownStart, 1, None, "the file holds no interchange".into()));
    }
    Ok(interchanges)
}

/// The interchange sender of a file, read as leniently as possible (for a file
/// that does not parse): ISA06, or UNB02-1 with the default or UNA separators.
pub fn sniff_sender(input: &[u8]) -> Option<String> {
    sniff_header(input).map(|h| h.sender.id)
}

/// The first interchange header of a file, read leniently: enough to answer a
/// file whose envelope does not parse (a TA1 or a rejecting CONTRL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniffedHeader {
    pub standard: Standard,
    pub sender: PartyId,
    pub receiver: PartyId,
    /// ISA13 / UNB05; empty when the header is cut short before it.
    pub control_number: String,
    pub date: String,
    pub time: String,
    pub test: bool,
}

impl SniffedHeader {
    /// Whether a rejection can be addressed: a sender to answer, a receiver to
    /// answer as, and a control number to name, one the standard allows (a value that is not
    /// is never echoed back into an acknowledgement).
    pub fn is_answerable(&self) -> bool {
        let control = match self.standard {
            Standard::X12 => model::ISA13,
            Standard::Edifact => model::EDIFACT_REFERENCE,
        };
        !self.sender.id.is_empty() && !self.receiver.id.is_empty() && control.admits(&self.control_number)
    }
}

/// Reads the first ISA or UNB of `input` without validating anything else.
/// `None` when there is no sender to name.
pub fn sniff_header(input: &[u8]) -> Option<SniffedHeader> {
    let start = skip_blank(input, 0);
    let rest = input.get(start..)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
    let party = |id: String, qualifier: Option<String>| PartyId { id, qualifier: qualifier.filter(|q| !q.is_empty()) };
    if rest.starts_with(b"ISA") {
        let separator = *rest.get(3)?;
        let isa = &rest[..rest.len().min(106)];
        let fields: Vec<String> = isa.split(|&b| b == separator).map(text).collect();
        let field = |n: usize| fields.get(n).cloned().unwrap_or_default();
        let sender = Some(field(6)).filter(|s| !s.is_empty())?;
        return Some(SniffedHeader {
            standard: Standard::X12,
            sender: party(sender, Some(field(5))),
            receiver: party(field(8), Some(field(7))),
            control_number: field(13),
            date: field(9),
            time: field(10),
            test: field(15) == "T",
        });
    }
    let (element, component, terminator) = match rest.get(..9) {
        Some(una) if una.starts_with(b"UNA") => (una[4], una[3], una[8]),
        _ => (b'+', b':', b'\''),
    };
    let unb = rest.windows(3).position(|w| w == b"UNB")?;
    let segment = rest[unb..].split(|&b| b == terminator).next()?;
    let elements: Vec<&[u8]> = segment.split(|&b| b == element).collect();
    let component_of = |n: usize, c: usize| {
        elements.get(n).and_then(|e| e.split(|&b| b == component).nth(c)).map(text).unwrap_or_default()
    };
    let sender = Some(component_of(2, 0)).filter(|s| !s.is_empty())?;
    Some(SniffedHeader {
        standard: Standard::Edifact,
        sender: party(sender, Some(component_of(2, 1))),
        receiver: party(component_of(3, 0), Some(component_of(3, 1))),
        control_number: component_of(5, 0),
        date: component_of(4, 0),
        time: component_of(4, 1),
        test: component_of(11, 0) == "1",
    })
}

/// Skips whitespace (and a UTF-8 byte order mark) between interchanges.
fn skip_blank(input: &[u8], mut offset: usize) -> usize {
    if input[offset..].starts_with(&[0xEF, 0xBB, 0xBF]) {
        offset += 3;
    }
    while offset < input.len() && input[offset].is_ascii_whitespace() {
        offset += 1;
    }
    offset
}
