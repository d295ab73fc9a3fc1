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
mod x12;

pub use error::{EdiError, ErrorKind};
pub use map::{map_interchange, MapContext, Mapped};
pub use model::{Delimiters, Group, Interchange, Segment, Standard, Transaction};

/// Parses every interchange in `input`, X12 or EDIFACT (detected from the
/// first non-blank bytes: `ISA` or `UNA`/`UNB`). Several interchanges may
/// follow each other, of either standard.
pub fn parse(input: &[u8]) -> Result<Vec<Interchange<'_>>, EdiError> {
    let mut interchanges = Vec::new();
    let mut offset = skip_blank(input, 0);
    let mut segment_base = 0;
    while offset < input.len() {
        let rest = &input[offset..];
        let (interchange, consumed) = if rest.starts_with(b"ISA") {
            x12::parse_interchange(input, offset, segment_base)?
        } else if rest.starts_with(b"UNA") || rest.starts_with(b"UNB") {
            edifact::parse_interchange(input, offset, segment_base)?
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
    let start = skip_blank(input, 0);
    let rest = input.get(start..)?;
    let text = |b: &[u8]| Some(String::from_utf8_lossy(b).trim().to_owned()).filter(|s| !s.is_empty());
    if rest.starts_with(b"ISA") {
        let separator = *rest.get(3)?;
        return rest.split(|&b| b == separator).nth(6).and_then(text);
    }
    let (element, component, terminator) = match rest.get(..9) {
        Some(una) if una.starts_with(b"UNA") => (una[4], una[3], una[8]),
        _ => (b'+', b':', b'\''),
    };
    let unb = rest.windows(3).position(|w| w == b"UNB")?;
    let segment = rest[unb..].split(|&b| b == terminator).next()?;
    segment.split(|&b| b == element).nth(2)?.split(|&b| b == component).next().and_then(text)
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
