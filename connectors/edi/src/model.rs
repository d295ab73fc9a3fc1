//! What a parsed interchange looks like: slices of the input, read on demand.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::error::{EdiError, ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standard {
    X12,
    Edifact,
}

/// The separators an interchange declares (ISA, UNA) or defaults to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub element: u8,
    pub component: u8,
    pub segment: u8,
    /// X12 from 00402 (ISA11); EDIFACT syntax 4 (UNA5 when not a space).
    pub repetition: Option<u8>,
    /// EDIFACT only: the next byte is literal.
    pub release: Option<u8>,
    /// EDIFACT only (UNA3); X12 always uses `.`.
    pub decimal: u8,
}

impl Delimiters {
    /// Position of the first `separator` in `bytes` that is not released
    /// (escaped by the release character).
    pub(crate) fn find(&self, bytes: &[u8], separator: u8) -> Option<usize> {
        let Some(release) = self.release else { return memchr::memchr(separator, bytes) };
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == release {
                i += 2;
            } else if bytes[i] == separator {
                return Some(i);
            } else {
                i += 1;
            }
        }
        None
    }

    /// Splits `bytes` at `separator`, honouring the release character.
    pub(crate) fn split<'a>(&self, mut bytes: &'a [u8], separator: u8) -> Vec<&'a [u8]> {
        let mut parts = Vec::new();
        while let Some(at) = self.find(bytes, separator) {
            parts.push(&bytes[..at]);
            bytes = &bytes[at + 1..];
        }
        parts.push(bytes);
        parts
    }

    /// The text of a value: release characters removed, invalid UTF-8 replaced.
    pub(crate) fn text<'a>(&self, bytes: &'a [u8]) -> Cow<'a, str> {
        match self.release {
            Some(release) if bytes.contains(&release) => {
                let mut out = Vec::with_capacity(bytes.len());
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == release && i + 1 < bytes.len() {
                        i += 1;
                    }
                    out.push(bytes[i]);
                    i += 1;
                }
                Cow::Owned(String::from_utf8_lossy(&out).into_owned())
            }
            _ => String::from_utf8_lossy(bytes),
        }
    }
}

/// One segment: its tag and raw elements, sliced from the input.
///
/// The elements are not split up front: a segment is a few slices (48 bytes), whatever it
/// holds, so a file's parse tree stays a small multiple of the file (a vector of element
/// slices per segment made it eight times the file). An element is found by splitting when
/// asked for; segments are short, and each element is read once or twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Position in the file, 1-based, counted over every interchange.
    pub index: usize,
    pub tag: &'a str,
    /// What follows the tag's element separator; `None` when the tag stands alone.
    elements: Option<&'a [u8]>,
    delimiters: Delimiters,
}

impl<'a> Segment<'a> {
    pub(crate) fn new(index: usize, raw: &'a [u8], delimiters: Delimiters) -> Result<Self, EdiError> {
        let (tag_bytes, elements) = match delimiters.find(raw, delimiters.element) {
            Some(at) => (&raw[..at], Some(&raw[at + 1..])),
            None => (raw, None),
        };
        let tag = std::str::from_utf8(tag_bytes)
            .ok()
            .filter(|t| !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| {
                EdiError::new(
                    ErrorKind::UnexpectedSegment,
                    index,
                    None,
                    format!("not a segment tag: {:?}", String::from_utf8_lossy(&tag_bytes[..tag_bytes.len().min(16)])),
                )
            })?;
        Ok(Segment { index, tag, elements, delimiters })
    }

    /// The elements after the tag, as sent.
    fn elements(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let mut rest = self.elements;
        std::iter::from_fn(move || {
            let bytes = rest?;
            match self.delimiters.find(bytes, self.delimiters.element) {
                Some(at) => {
                    rest = Some(&bytes[at + 1..]);
                    Some(&bytes[..at])
                }
                None => {
                    rest = None;
                    Some(bytes)
                }
            }
        })
    }

    /// Number of elements after the tag.
    pub fn len(&self) -> usize {
        self.elements().count()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_none()
    }

    /// Element `n` (1-based) as sent, escapes included.
    pub fn raw(&self, n: usize) -> Option<&'a [u8]> {
        self.elements().nth(n.checked_sub(1)?)
    }

    /// Element `n` (1-based) as text; `None` when absent or empty.
    pub fn element(&self, n: usize) -> Option<Cow<'a, str>> {
        self.raw(n).filter(|e| !e.is_empty()).map(|e| self.delimiters.text(e))
    }

    /// Component `c` of element `n` (both 1-based); `None` when absent or empty.
    pub fn component(&self, n: usize, c: usize) -> Option<Cow<'a, str>> {
        let element = self.raw(n)?;
        let parts = self.delimiters.split(element, self.delimiters.component);
        c.checked_sub(1).and_then(|i| parts.get(i)).filter(|p| !p.is_empty()).map(|p| self.delimiters.text(p))
    }

    /// Element `n`, trimmed, or an error naming it.
    pub fn required(&self, n: usize, what: &str) -> Result<Cow<'a, str>, EdiError> {
        match self.element(n) {
            Some(v) if !v.trim().is_empty() => Ok(match v {
                Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
            }),
            _ => Err(EdiError::new(
                ErrorKind::MissingElement,
                self.index,
                Some(n),
                format!("{}{n:02} ({what}) is missing", self.tag),
            )),
        }
    }

    /// Element `n`, a control number as `rule` says the standard defines it; anything else is an
    /// envelope error, never a value echoed back into an acknowledgement.
    pub(crate) fn control_number(&self, n: usize, what: &str, rule: ControlNumber) -> Result<Cow<'a, str>, EdiError> {
        let value = self.required(n, what)?;
        if rule.admits(&value) {
            return Ok(value);
        }
        let shape = if rule.digits { "digits" } else { "characters (no spaces)" };
        let length = if rule.min == rule.max { rule.min.to_string() } else { format!("{} to {}", rule.min, rule.max) };
        Err(EdiError::new(
            ErrorKind::BadControlNumber,
            self.index,
            Some(n),
            format!("{}{n:02} ({what}) must be {length} {shape}, not {value:?}", self.tag),
        ))
    }

    /// Component `c` of element `n`, trimmed, or an error naming it.
    pub fn required_component(&self, n: usize, c: usize, what: &str) -> Result<String, EdiError> {
        self.component(n, c).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| {
            EdiError::new(
                ErrorKind::MissingElement,
                self.index,
                Some(n),
                format!("{}{n:02}-{c} ({what}) is missing", self.tag),
            )
        })
    }

    /// Element `n` as a count, or an error naming it.
    pub(crate) fn count(&self, n: usize, what: &str) -> Result<usize, EdiError> {
        let value = self.required(n, what)?;
        value.parse().map_err(|_| {
            EdiError::new(
                ErrorKind::NotANumber,
                self.index,
                Some(n),
                format!("{}{n:02} ({what}) is not a number: {value:?}", self.tag),
            )
        })
    }
}

/// One transaction set (X12 ST..SE) or message (EDIFACT UNH..UNT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction<'a> {
    /// `850`, `810`, ... or `ORDERS`, `INVOIC`, ...
    pub document_type: String,
    /// ST02 / UNH01.
    pub control_number: String,
    /// EDIFACT: the message version, e.g. `D:96A:UN`.
    pub version: Option<String>,
    /// Every segment from the header to the trailer, both included.
    pub segments: Vec<Segment<'a>>,
    /// The bytes from the header to the trailer's terminator, as sent: what is kept of a
    /// rejected transaction.
    pub raw: &'a [u8],
    /// Why the transaction is rejected on its own (its trailer's count or control number is
    /// wrong), while the rest of its interchange is processed; `None` when it is sound.
    pub error: Option<EdiError>,
}

impl<'a> Transaction<'a> {
    /// Whether `error` lies in this transaction (at one of its segments, header and trailer
    /// included).
    pub fn holds(&self, error: &EdiError) -> bool {
        match (self.segments.first(), self.segments.last()) {
            (Some(first), Some(last)) => (first.index..=last.index).contains(&error.segment),
            _ => false,
        }
    }

    /// The segments between header and trailer.
    pub fn body(&self) -> &[Segment<'a>] {
        let end = self.segments.len().saturating_sub(1);
        self.segments.get(1..end).unwrap_or_default()
    }

    /// What the document says, as 32 hex digits: its segments' tags and elements, whatever
    /// the delimiters. The same document sent again has the same digest; a different one
    /// under reused control numbers has another.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for segment in &self.segments {
            hasher.update(segment.tag.as_bytes());
            for element in segment.elements() {
                hasher.update([0x1f]);
                hasher.update(element);
            }
            hasher.update([0x1e]);
        }
        let mut digest = format!("{:x}", hasher.finalize());
        digest.truncate(32);
        digest
    }
}

/// A functional group (X12 GS..GE, EDIFACT UNG..UNE). EDIFACT messages sent
/// without UNG form one implicit group whose fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<'a> {
    /// GS01 (`PO`, `IN`, ...) or UNG01.
    pub functional_id: Option<String>,
    pub sender_id: Option<String>,
    pub receiver_id: Option<String>,
    /// GS06 / UNG05.
    pub control_number: Option<String>,
    /// GS08 / UNG07.
    pub version: Option<String>,
    pub transactions: Vec<Transaction<'a>>,
    /// Why the group is rejected on its own (its trailer's count or control number is wrong):
    /// none of its transactions is processed, the rest of the interchange is.
    pub error: Option<EdiError>,
}

/// One interchange (ISA..IEA, UNB..UNZ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interchange<'a> {
    pub standard: Standard,
    pub delimiters: Delimiters,
    pub sender_qualifier: Option<String>,
    pub sender_id: String,
    pub receiver_qualifier: Option<String>,
    pub receiver_id: String,
    /// ISA13 / UNB05.
    pub control_number: String,
    /// ISA09 (YYMMDD) / UNB04-1 (YYMMDD or CCYYMMDD).
    pub date: String,
    /// ISA10 / UNB04-2 (HHMM).
    pub time: String,
    /// ISA12 (`00401`) / UNB01 (`UNOA:3`).
    pub version: String,
    /// ISA15 = `T` / UNB11 = `1`.
    pub test: bool,
    /// ISA14 = `1` / UNB09 = `1`: the sender asks for an interchange acknowledgement (X12: a TA1,
    /// whatever becomes of the groups inside).
    pub acknowledgment_requested: bool,
    pub groups: Vec<Group<'a>>,
    /// Interchange acknowledgements (X12 TA1) the interchange carries outside any group.
    pub interchange_acks: Vec<Segment<'a>>,
    /// Index of the trailer segment (IEA/UNZ) in the file.
    pub last_segment_index: usize,
    /// Departures from the standard accepted because the sender's profile tolerates them
    /// (see [`crate::Leniency`]), each naming the trailer it was found in: to be noted in the
    /// acknowledgement and logged, never silently.
    pub tolerated: Vec<crate::EdiError>,
}

impl<'a> Group<'a> {
    /// Why `tx`, one of this group's transactions, is rejected on its own, if it is: its own
    /// trailer, its group's, or one of `found` (errors found reading it, such as by mapping)
    /// that lies in it.
    pub fn rejection<'e>(&'e self, tx: &'e Transaction<'_>, found: &'e [EdiError]) -> Option<&'e EdiError> {
        tx.error.as_ref().or(self.error.as_ref()).or_else(|| found.iter().find(|e| tx.holds(e)))
    }
}

impl Interchange<'_> {
    /// Every transaction rejected on its own (see [`Group::rejection`]), with its group and why.
    pub fn rejections<'e>(
        &'e self,
        found: &'e [EdiError],
    ) -> impl Iterator<Item = (&'e Group<'e>, &'e Transaction<'e>, &'e EdiError)> + 'e {
        self.groups.iter().flat_map(move |group| {
            group.transactions.iter().filter_map(move |tx| group.rejection(tx, found).map(|e| (group, tx, e)))
        })
    }

    /// What was tolerated in `tx`, if anything.
    pub fn tolerated_in(&self, tx: &Transaction<'_>) -> Option<&crate::EdiError> {
        let trailer = tx.segments.last()?.index;
        self.tolerated.iter().find(|e| e.segment == trailer)
    }

    /// Every transaction of every group, in order.
    pub fn transactions(&self) -> impl Iterator<Item = &Transaction<'_>> {
        self.groups.iter().flat_map(|g| g.transactions.iter())
    }

    /// Whether the receiver owes a functional acknowledgement: it holds a
    /// document other than an acknowledgement (acknowledgements are never
    /// acknowledged, in X12 or EDIFACT).
    pub fn expects_acknowledgement(&self) -> bool {
        self.transactions().any(|tx| !matches!(tx.document_type.as_str(), "997" | "999" | "CONTRL"))
    }
}

/// What a standard allows in a control number: its length, and whether only digits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ControlNumber {
    pub min: usize,
    pub max: usize,
    pub digits: bool,
}

impl ControlNumber {
    /// Whether `value` is a control number of this kind.
    pub(crate) fn admits(&self, value: &str) -> bool {
        (self.min..=self.max).contains(&value.chars().count())
            && value.chars().all(|c| if self.digits { c.is_ascii_digit() } else { c.is_ascii_graphic() })
    }
}

/// ISA13: nine digits, fixed.
pub(crate) const ISA13: ControlNumber = ControlNumber { min: 9, max: 9, digits: true };
/// GS06: one to nine digits.
pub(crate) const GS06: ControlNumber = ControlNumber { min: 1, max: 9, digits: true };
/// ST02: four to nine characters.
pub(crate) const ST02: ControlNumber = ControlNumber { min: 4, max: 9, digits: false };
/// UNB05, UNG05, UNH01: up to fourteen characters.
pub(crate) const EDIFACT_REFERENCE: ControlNumber = ControlNumber { min: 1, max: 14, digits: false };

/// Compares control numbers as numbers when both are, else as text
/// (`000000001` and `1` are the same control number).
pub(crate) fn same_control_number(a: &str, b: &str) -> bool {
    match (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim() == b.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDIFACT: Delimiters = Delimiters {
        element: b'+',
        component: b':',
        segment: b'\'',
        repetition: None,
        release: Some(b'?'),
        decimal: b'.',
    };

    #[test]
    fn release_character_protects_separators_and_itself() {
        let s = Segment::new(4, b"FTX+AAI+++Price ?+ VAT?: 20?? off:second", EDIFACT).unwrap();
        assert_eq!(s.tag, "FTX");
        assert_eq!(s.len(), 4);
        assert_eq!(s.element(2), None);
        assert_eq!(s.component(4, 1).as_deref(), Some("Price + VAT: 20? off"));
        assert_eq!(s.component(4, 2).as_deref(), Some("second"));
        assert!(matches!(s.element(1), Some(Cow::Borrowed("AAI"))), "no copy without escapes");
    }

    #[test]
    fn missing_elements_are_named() {
        let s = Segment::new(9, b"BEG+00++", EDIFACT).unwrap();
        let err = s.required(3, "purchase order number").unwrap_err();
        assert_eq!((err.kind, err.segment, err.element), (ErrorKind::MissingElement, 9, Some(3)));
        assert_eq!(err.to_string(), "segment 9, element 3: BEG03 (purchase order number) is missing");
    }

    #[test]
    fn control_numbers_compare_numerically() {
        assert!(same_control_number("000000905", "905"));
        assert!(!same_control_number("905", "906"));
        assert!(same_control_number("ABC1", " ABC1"));
    }
}
