//! Parse and validation errors that say exactly where and what.

use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No interchange header where one must start.
    UnknownStart,
    /// The ISA header is not 106 bytes of fixed-width elements, or the UNA string is short.
    BadHeader,
    /// A separator is unusable (alphanumeric, or the same as another).
    BadSeparators,
    /// The file ends inside an interchange.
    Truncated,
    /// A segment appears where the envelope does not allow it.
    UnexpectedSegment,
    /// A required element is missing or empty.
    MissingElement,
    /// A trailer's control number differs from its header's.
    ControlNumberMismatch,
    /// A trailer's count differs from what it counts.
    CountMismatch,
    /// A count is not a number.
    NotANumber,
    /// A control number is not what the standard defines (ISA13 nine digits, GS06 up to nine
    /// digits, ST02 four to nine characters; EDIFACT references up to fourteen).
    BadControlNumber,
    /// A value cannot be read as what it must be (decimal, date).
    InvalidValue,
    /// The document type is not one gridsync maps.
    Unsupported,
    /// The interchange's sender is not a partner gridsync knows (its partner profiles).
    UnknownSender,
}

/// An EDI error at a segment (1-based, over the whole file) and element (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdiError {
    pub kind: ErrorKind,
    pub segment: usize,
    pub element: Option<usize>,
    pub message: String,
}

impl EdiError {
    pub(crate) fn new(kind: ErrorKind, segment: usize, element: Option<usize>, message: String) -> Self {
        EdiError { kind, segment, element, message }
    }

    /// `interchange` comes from a sender gridsync does not know: refused at the envelope
    /// (TA1 note 006, CONTRL UCI code 23), naming the sender.
    pub fn unknown_sender(interchange: &crate::Interchange<'_>, header_segment: usize) -> Self {
        let (field, element) = match interchange.standard {
            crate::Standard::X12 => ("ISA06", 6),
            crate::Standard::Edifact => ("UNB02", 2),
        };
        EdiError::new(
            ErrorKind::UnknownSender,
            header_segment,
            Some(element),
            format!(
                "{field} (interchange sender) {:?} is not a trading partner gridsync knows: add it to the partner profiles",
                interchange.sender_id.trim()
            ),
        )
    }
}

impl fmt::Display for EdiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.element {
            Some(e) => write!(f, "segment {}, element {e}: {}", self.segment, self.message),
            None => write!(f, "segment {}: {}", self.segment, self.message),
        }
    }
}

impl std::error::Error for EdiError {}
