//! Segments as gridsync writes them, and the escaping each standard needs.

use super::WriteError;
use crate::Standard;

/// One element: its components (one for a simple element). Components stay
/// apart until written, so no value can smuggle in a separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(Vec<String>);

impl Element {
    fn is_empty(&self) -> bool {
        self.0.iter().all(String::is_empty)
    }
}

impl From<String> for Element {
    fn from(value: String) -> Self {
        Element(vec![value])
    }
}

impl From<&String> for Element {
    fn from(value: &String) -> Self {
        Element(vec![value.clone()])
    }
}

impl From<&str> for Element {
    fn from(value: &str) -> Self {
        Element(vec![value.to_owned()])
    }
}

/// A composite element of `parts`.
pub(crate) fn composite<S: AsRef<str>>(parts: impl IntoIterator<Item = S>) -> Element {
    Element(parts.into_iter().map(|p| p.as_ref().to_owned()).collect())
}

/// One segment: tag and elements (trailing empty elements are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutSegment {
    pub tag: &'static str,
    pub elements: Vec<Element>,
}

impl OutSegment {
    pub fn new<E: Into<Element>>(tag: &'static str, elements: impl IntoIterator<Item = E>) -> Self {
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

    /// The ISA header, its values already padded to their fixed widths; ISA16
    /// is the component separator itself, the others are checked like any value.
    pub fn raw_isa(&mut self, elements: &[&str; 16]) -> Result<(), WriteError> {
        self.out.extend_from_slice(b"ISA");
        for (n, e) in elements.iter().enumerate() {
            self.out.push(X12_ELEMENT);
            // ISA11 (from 00501) and ISA16 are separators themselves.
            if n == 15 || (n == 10 && *e == "^") {
                self.out.extend_from_slice(e.as_bytes());
            } else {
                self.value("ISA", n + 1, e)?;
            }
        }
        self.out.extend_from_slice(&[X12_SEGMENT, b'\n']);
        Ok(())
    }

    pub fn segment(&mut self, segment: &OutSegment) -> Result<(), WriteError> {
        let (element_sep, terminator) = match self.standard {
            Standard::X12 => (X12_ELEMENT, X12_SEGMENT),
            Standard::Edifact => (b'+', b'\''),
        };
        let used = segment.elements.iter().rposition(|e| !e.is_empty()).map_or(0, |i| i + 1);
        self.out.extend_from_slice(segment.tag.as_bytes());
        for (n, element) in segment.elements[..used].iter().enumerate() {
            self.out.push(element_sep);
            for (c, component) in element.0.iter().enumerate() {
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

    pub fn segments(&mut self, segments: &[OutSegment]) -> Result<(), WriteError> {
        segments.iter().try_for_each(|s| self.segment(s))
    }

    /// One transaction set or message: `header`, `body`, and the trailer
    /// (SE, UNT) holding the count of all three and the header's `reference`.
    pub fn transaction(
        &mut self,
        header: &OutSegment,
        body: &[OutSegment],
        trailer: &'static str,
        reference: &str,
    ) -> Result<(), WriteError> {
        self.segment(header)?;
        self.segments(body)?;
        self.segment(&OutSegment::new(trailer, [(body.len() + 2).to_string().as_str(), reference]))
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
