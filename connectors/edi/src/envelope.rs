//! The envelope structure both standards share: interchange → (group) →
//! transaction, every trailer carrying a count (element 1) and its header's
//! control number (element 2). One walker checks both standards' nesting,
//! counts and control numbers.

use crate::{
    error::{EdiError, ErrorKind},
    model::{same_control_number, Delimiters, Segment},
    Leniency,
};

/// The tags of one standard's envelope.
pub(crate) struct Grammar {
    /// IEA / UNZ.
    pub interchange_trailer: &'static str,
    /// GS, GE / UNG, UNE.
    pub group: (&'static str, &'static str),
    /// Element of the group header holding its control number: GS06, UNG05.
    pub group_control: usize,
    /// ST, SE / UNH, UNT.
    pub transaction: (&'static str, &'static str),
    /// Element of the transaction header holding its control number: ST02, UNH01.
    pub transaction_control: usize,
    /// EDIFACT messages may come without UNG; X12 transaction sets always in GS.
    pub groups_optional: bool,
    /// Segments allowed directly in the interchange, outside any group: X12's
    /// TA1 (interchange acknowledgement).
    pub interchange_level: &'static [&'static str],
}

/// A group as found: its header (absent for bare EDIFACT messages) and its
/// transactions, each a run of segments from header to trailer.
pub(crate) struct RawGroup<'a> {
    pub header: Option<Segment<'a>>,
    pub transactions: Vec<RawTransaction<'a>>,
    /// What is wrong with its trailer (GE/UNE count or control number): the group is rejected
    /// in its acknowledgement, the rest of the interchange processed.
    pub error: Option<EdiError>,
}

/// A transaction as found: its segments, the bytes they span, and what is wrong with its
/// trailer (SE/UNT count or control number), which rejects it alone.
pub(crate) struct RawTransaction<'a> {
    pub segments: Vec<Segment<'a>>,
    pub raw: &'a [u8],
    pub error: Option<EdiError>,
}

pub(crate) struct Walked<'a> {
    pub groups: Vec<RawGroup<'a>>,
    /// Segments of `Grammar::interchange_level` (X12 TA1), in order.
    pub interchange_level: Vec<Segment<'a>>,
    pub trailer: Segment<'a>,
    /// Byte offset just past the trailer.
    pub end: usize,
    /// Departures the sender's leniency accepted, each naming its trailer segment.
    pub tolerated: Vec<EdiError>,
}

/// The next segment from `pos`: leading blanks skipped, the terminator found
/// honouring the release character. `None` at the end of the input.
pub(crate) fn next_segment<'a>(
    input: &'a [u8],
    mut pos: usize,
    delimiters: &Delimiters,
    index: usize,
) -> Result<Option<(&'a [u8], usize)>, EdiError> {
    loop {
        // Line breaks and blanks between segments are formatting, unless one is the terminator.
        while pos < input.len() && input[pos].is_ascii_whitespace() && input[pos] != delimiters.segment {
            pos += 1;
        }
        if pos >= input.len() {
            return Ok(None);
        }
        let rest = &input[pos..];
        let end = delimiters.find(rest, delimiters.segment);
        let Some(end) = end else {
            return Err(EdiError::new(
                ErrorKind::Truncated,
                index,
                None,
                format!(
                    "the file ends inside a segment (no terminator {:?}): {:?}",
                    delimiters.segment as char,
                    String::from_utf8_lossy(&rest[..rest.len().min(24)])
                ),
            ));
        };
        // A newline terminator after CR leaves the CR on the segment.
        let raw = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        pos += end + 1;
        if !raw.is_empty() {
            return Ok(Some((raw, pos)));
        }
    }
}

fn unexpected(segment: &Segment<'_>, why: &str) -> EdiError {
    EdiError::new(ErrorKind::UnexpectedSegment, segment.index, None, format!("unexpected {}: {why}", segment.tag))
}

/// Checks a trailer: element 1 counts `actual` (what), element 2 repeats `control`.
fn check_trailer(
    trailer: &Segment<'_>,
    actual: usize,
    what: &str,
    header: &Segment<'_>,
    control_element: usize,
) -> Result<(), EdiError> {
    let declared = trailer.count(1, what)?;
    if declared != actual {
        return Err(EdiError::new(
            ErrorKind::CountMismatch,
            trailer.index,
            Some(1),
            format!("{}01 says {declared} {what}, found {actual}", trailer.tag),
        ));
    }
    let expected = header.required(control_element, "control number")?;
    let got = trailer.required(2, "control number")?;
    if !same_control_number(&expected, &got) {
        return Err(EdiError::new(
            ErrorKind::ControlNumberMismatch,
            trailer.index,
            Some(2),
            format!(
                "{}02 is {got}, expected {expected} from {}{control_element:02} (segment {})",
                trailer.tag, header.tag, header.index
            ),
        ));
    }
    Ok(())
}

/// Walks from just after the interchange header (segment `header.index`) to
/// its trailer, checking nesting, counts and control numbers.
pub(crate) fn walk<'a>(
    input: &'a [u8],
    mut pos: usize,
    header: &Segment<'a>,
    interchange_control: usize,
    delimiters: &Delimiters,
    grammar: &Grammar,
    leniency: Leniency,
) -> Result<Walked<'a>, EdiError> {
    let mut tolerated = Vec::new();
    let mut index = header.index;
    let mut groups: Vec<RawGroup<'a>> = Vec::new();
    let mut interchange_level = Vec::new();
    let mut group_open = false;
    let mut transaction: Option<Vec<Segment<'a>>> = None;
    // Where the open transaction starts in `input`.
    let mut transaction_start = 0;
    loop {
        let Some((raw, next)) = next_segment(input, pos, delimiters, index + 1)? else {
            let inside = match (&transaction, group_open) {
                (Some(t), _) => format!("transaction {} (segment {})", t[0].tag, t[0].index),
                (None, true) => grammar.group.0.to_owned(),
                (None, false) => "the interchange".to_owned(),
            };
            return Err(EdiError::new(
                ErrorKind::Truncated,
                index + 1,
                None,
                format!("the file ends inside {inside}: no {} trailer", grammar.interchange_trailer),
            ));
        };
        index += 1;
        pos = next;
        let at = raw.as_ptr() as usize - input.as_ptr() as usize;
        let segment = Segment::new(index, raw, *delimiters)?;
        let tag = segment.tag;

        if let Some(segments) = transaction.as_mut() {
            if tag == grammar.transaction.1 {
                segments.push(segment);
                let (head, trailer) = (&segments[0], &segments[segments.len() - 1]);
                // A trailer that does not match its transaction rejects that transaction alone
                // (997 AK5, CONTRL UCM): the envelope around it is sound.
                let error = match check_trailer(trailer, segments.len(), "segments", head, grammar.transaction_control)
                {
                    // A sender whose profile tolerates wrong segment counts: accepted, and noted.
                    Err(e) if e.kind == ErrorKind::CountMismatch && leniency.segment_counts => {
                        tolerated.push(e);
                        None
                    }
                    checked => checked.err(),
                };
                let segments = transaction.take().unwrap_or_default();
                if let Some(group) = groups.last_mut() {
                    let raw = &input[transaction_start..pos];
                    group.transactions.push(RawTransaction { segments, raw, error });
                }
            } else if [grammar.transaction.0, grammar.group.0, grammar.group.1, grammar.interchange_trailer]
                .contains(&tag)
            {
                return Err(unexpected(
                    &segment,
                    &format!(
                        "transaction {} (segment {}) has no {}",
                        segments[0].tag, segments[0].index, grammar.transaction.1
                    ),
                ));
            } else {
                segments.push(segment);
            }
            continue;
        }

        if tag == grammar.transaction.0 {
            if !group_open {
                if !grammar.groups_optional {
                    return Err(unexpected(&segment, &format!("a transaction outside a {} group", grammar.group.0)));
                }
                match groups.last() {
                    Some(g) if g.header.is_some() => {
                        return Err(unexpected(
                            &segment,
                            &format!("messages outside {} after grouped ones", grammar.group.0),
                        ))
                    }
                    Some(_) => {}
                    None => groups.push(RawGroup { header: None, transactions: Vec::new(), error: None }),
                }
            }
            transaction = Some(vec![segment]);
            transaction_start = at;
        } else if tag == grammar.group.0 {
            if group_open {
                return Err(unexpected(&segment, &format!("the previous group has no {}", grammar.group.1)));
            }
            if groups.last().is_some_and(|g| g.header.is_none()) {
                return Err(unexpected(&segment, "a group after ungrouped messages"));
            }
            groups.push(RawGroup { header: Some(segment), transactions: Vec::new(), error: None });
            group_open = true;
        } else if tag == grammar.group.1 {
            let group =
                groups.last_mut().filter(|_| group_open).ok_or_else(|| unexpected(&segment, "no group is open"))?;
            if let Some(head) = &group.header {
                // A trailer that does not match its group rejects that group alone (997 AK9).
                group.error =
                    check_trailer(&segment, group.transactions.len(), "transactions", head, grammar.group_control)
                        .err();
            }
            group_open = false;
        } else if tag == grammar.interchange_trailer {
            if group_open {
                return Err(unexpected(&segment, &format!("the last group has no {}", grammar.group.1)));
            }
            // IEA01 and UNZ01 count groups; UNZ01 counts messages when there are none.
            let grouped = groups.iter().any(|g| g.header.is_some());
            let (actual, what) = if grouped || !grammar.groups_optional {
                (groups.len(), "groups")
            } else {
                (groups.iter().map(|g| g.transactions.len()).sum(), "messages")
            };
            check_trailer(&segment, actual, what, header, interchange_control)?;
            return Ok(Walked { groups, interchange_level, trailer: segment, end: pos, tolerated });
        } else if !group_open && grammar.interchange_level.contains(&tag) {
            interchange_level.push(segment);
        } else {
            return Err(unexpected(&segment, "outside any transaction"));
        }
    }
}
