//! Segments as gridsync writes them, and the escaping each standard needs.

use super::WriteError;
use crate::Standard;

/// Stands for the component separator inside an element value, until the
/// writer knows the standard (X12 `:`, EDIFACT `:` — escaped where literal).
pub(crate) const COMPONENT: &str = "\u{1f}";

/// Joins components into one composite element.
pub(crate) fn composite<S: AsRef<str>>(parts: impl IntoIterator<Item = S>) -> String {
    parts.into_iter().map(|p| p.as_ref().to_owned()).collect::<Vec<_>>().join(COMPONENT)
}

/// One segment: tag and element values (trailing empty elements are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSegment {
    pub tag: &'static str,
    pub elements: Vec<String>,
}

impl OutSegment {
    pub fn new<S: Into<String>>(tag: &'static str, elements: impl IntoIterator<Item = S>) -> Self {
        OutSegment { tag, elements: elements.into_iter().map(Into::into).collect() }
    }
}

pub(crate) struct SegmentWriter {
    standard: Standard,
    out: Vec<u8>,
}

const X12_ELEMENT: u8 = b'*';
const X12_COMPONENT: u8 = b':';
const X12_SEGMENT: u8 = b'~';
const X12_REPETITION: u8 = b'^';
const EDIFACT_SPECIALS: [char; 4] = ['+', ':', '\'', '?'];

impl SegmentWriter {
    pub fn new(standard: Standard) -> Self {
        let mut out = Vec::with_capacity(1024);
        if standard == Standard::Edifact {
            // Always declared, so the partner never has to assume the defaults.
            out.extend_from_slice(b"UNA:+.? '\n");
        }
        SegmentWriter { standard, out }
    }

    /// The ISA header, already padded to its fixed widths (its values hold no separators).
    pub fn raw_isa(&mut self, elements: &[&str; 16]) {
        self.out.extend_from_slice(b"ISA");
        for e in elements {
            self.out.push(X12_ELEMENT);
            self.out.extend_from_slice(e.as_bytes());
        }
        self.out.extend_from_slice(&[X12_SEGMENT, b'\n']);
    }

    pub fn segment(&mut self, segment: &OutSegment) -> Result<(), WriteError> {
        let (element_sep, terminator) = match self.standard {
            Standard::X12 => (X12_ELEMENT, X12_SEGMENT),
            Standard::Edifact => (b'+', b'\''),
        };
        let used = segment.elements.iter().rposition(|e| !e.is_empty()).map_or(0, |i| i + 1);
        self.out.extend_from_slice(segment.tag.as_bytes());
        for (n, value) in segment.elements[..used].iter().enumerate() {
            self.out.push(element_sep);
            for (c, component) in value.split(COMPONENT).enumerate() {
                if c > 0 {
                    self.out.push(match self.standard {
                        Standard::X12 => X12_COMPONENT,
                        Standard::Edifact => b':',
                    });
                }
                self.value(segment.tag, n + 1, component)?;
            }
        }
        self.out.extend_from_slice(&[terminator, b'\n']);
        Ok(())
    }

    fn value(&mut self, tag: &str, element: usize, value: &str) -> Result<(), WriteError> {
        match self.standard {
            Standard::X12 => {
                let separators = [X12_ELEMENT, X12_COMPONENT, X12_SEGMENT, X12_REPETITION].map(char::from);
                if let Some(separator) = value.chars().find(|c| separators.contains(c)) {
                    return Err(WriteError::Unrepresentable {
                        tag: tag.to_owned(),
                        element,
                        value: value.to_owned(),
                        separator,
                    });
                }
                self.out.extend_from_slice(value.as_bytes());
            }
            Standard::Edifact => {
                for c in value.chars() {
                    if EDIFACT_SPECIALS.contains(&c) {
                        self.out.push(b'?');
                    }
                    let mut buf = [0; 4];
                    self.out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// A copy of a partner's value that gridsync can write back (X12 AK404):
/// separators and control characters become spaces, at most 99 characters.
pub(crate) fn printable_copy(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() || "*:~^".contains(c) { ' ' } else { c })
        .take(99)
        .collect::<String>()
        .trim()
        .to_owned()
}
