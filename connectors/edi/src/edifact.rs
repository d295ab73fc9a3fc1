//! EDIFACT: an optional UNA service string declares the separators (defaults
//! `:+.? '`); UNB..UNZ holds messages UNH..UNT, optionally grouped in UNG..UNE.

use crate::{
    envelope::{self, Grammar, RawGroup, RawTransaction},
    error::{EdiError, ErrorKind},
    model::{Delimiters, Group, Interchange, Segment, Standard, Transaction, EDIFACT_REFERENCE},
    Leniency,
};

const GRAMMAR: Grammar = Grammar {
    interchange_trailer: "UNZ",
    group: ("UNG", "UNE"),
    group_control: 5,
    transaction: ("UNH", "UNT"),
    transaction_control: 1,
    interchange_level: &[],
    groups_optional: true,
};

/// The separators when there is no UNA.
const DEFAULT: Delimiters =
    Delimiters { element: b'+', component: b':', segment: b'\'', repetition: None, release: Some(b'?'), decimal: b'.' };

/// Reads UNA if present; returns the separators, the offset after UNA, and
/// how many segments UNA counts for (it is numbered like a segment).
fn service_string(input: &[u8], start: usize, index: usize) -> Result<(Delimiters, usize, usize), EdiError> {
    let rest = &input[start..];
    if !rest.starts_with(b"UNA") {
        return Ok((DEFAULT, start, 0));
    }
    let Some(una) = rest.get(3..9) else {
        return Err(EdiError::new(ErrorKind::Truncated, index, None, "UNA needs 6 characters after the tag".into()));
    };
    let delimiters = Delimiters {
        component: una[0],
        element: una[1],
        decimal: una[2],
        release: (una[3] != b' ').then_some(una[3]),
        repetition: (una[4] != b' ').then_some(una[4]),
        segment: una[5],
    };
    let mut used = vec![delimiters.component, delimiters.element, delimiters.segment];
    used.extend(delimiters.release);
    used.extend(delimiters.repetition);
    for (i, &c) in used.iter().enumerate() {
        if c.is_ascii_alphanumeric() || used[..i].contains(&c) {
            return Err(EdiError::new(
                ErrorKind::BadSeparators,
                index,
                None,
                format!("unusable separators in UNA: {:?}", String::from_utf8_lossy(una)),
            ));
        }
    }
    if !matches!(delimiters.decimal, b'.' | b',') {
        return Err(EdiError::new(
            ErrorKind::BadSeparators,
            index,
            None,
            format!("UNA3 decimal mark must be . or , not {:?}", delimiters.decimal as char),
        ));
    }
    Ok((delimiters, start + 9, 1))
}

/// Parses the EDIFACT interchange that starts at `start`; `base` is the number
/// of segments before it in the file. Returns it and the bytes it spans.
pub(crate) fn parse_interchange<'a>(
    input: &'a [u8],
    start: usize,
    base: usize,
    leniency: &dyn Fn(&str) -> Leniency,
) -> Result<(Interchange<'a>, usize), EdiError> {
    let (delimiters, pos, una) = service_string(input, start, base + 1)?;
    let index = base + una + 1;
    let Some((raw, after_unb)) = envelope::next_segment(input, pos, &delimiters, index)? else {
        return Err(EdiError::new(ErrorKind::Truncated, index, None, "UNA is not followed by UNB".into()));
    };
    let unb = Segment::new(index, raw, delimiters)?;
    if unb.tag != "UNB" {
        return Err(EdiError::new(
            ErrorKind::UnexpectedSegment,
            index,
            None,
            format!("expected UNB, found {}", unb.tag),
        ));
    }
    let sender = unb.required_component(2, 1, "interchange sender")?;
    let walked = envelope::walk(input, after_unb, &unb, 5, &delimiters, &GRAMMAR, leniency(sender.trim()))?;

    let mut groups = Vec::with_capacity(walked.groups.len());
    for RawGroup { header, transactions: raw_transactions, error } in walked.groups {
        let ung = header.as_ref();
        let mut transactions = Vec::with_capacity(raw_transactions.len());
        for RawTransaction { segments, raw, error } in raw_transactions {
            let unh = &segments[0];
            let version = [2, 3, 4].iter().filter_map(|&c| unh.component(2, c)).collect::<Vec<_>>().join(":");
            transactions.push(Transaction {
                document_type: unh.required_component(2, 1, "message type")?,
                control_number: unh.control_number(1, "message reference number", EDIFACT_REFERENCE)?.into_owned(),
                version: (!version.is_empty()).then_some(version),
                segments,
                raw,
                error,
            });
        }
        groups.push(Group {
            functional_id: ung
                .map(|g| g.required(1, "message group identification"))
                .transpose()?
                .map(|v| v.into_owned()),
            sender_id: ung.and_then(|g| g.component(2, 1)).map(|v| v.trim().to_owned()),
            receiver_id: ung.and_then(|g| g.component(3, 1)).map(|v| v.trim().to_owned()),
            control_number: ung
                .map(|g| g.control_number(5, "group reference number", EDIFACT_REFERENCE))
                .transpose()?
                .map(|v| v.into_owned()),
            version: ung.and_then(|g| g.element(7)).map(|v| v.trim().to_owned()),
            transactions,
            error,
        });
    }
    let interchange = Interchange {
        standard: Standard::Edifact,
        delimiters,
        sender_qualifier: unb.component(2, 2).map(|v| v.trim().to_owned()),
        sender_id: unb.required_component(2, 1, "interchange sender id")?,
        receiver_qualifier: unb.component(3, 2).map(|v| v.trim().to_owned()),
        receiver_id: unb.required_component(3, 1, "interchange recipient id")?,
        control_number: unb.control_number(5, "interchange control reference", EDIFACT_REFERENCE)?.into_owned(),
        date: unb.component(4, 1).map(|v| v.into_owned()).unwrap_or_default(),
        time: unb.component(4, 2).map(|v| v.into_owned()).unwrap_or_default(),
        version: unb.element(1).map(|v| v.into_owned()).unwrap_or_default(),
        test: unb.element(11).is_some_and(|v| v.trim() == "1"),
        acknowledgment_requested: unb.element(9).is_some_and(|v| v.trim() == "1"),
        groups,
        interchange_acks: walked.interchange_level,
        last_segment_index: walked.trailer.index,
        tolerated: walked.tolerated,
    };
    Ok((interchange, walked.end - start))
}
