//! X12: the fixed-width ISA header declares the separators; GS..GE groups
//! hold ST..SE transaction sets; IEA closes the interchange.

use crate::{
    envelope::{self, Grammar, RawGroup, RawTransaction},
    error::{EdiError, ErrorKind},
    model::{Delimiters, Group, Interchange, Segment, Standard, Transaction, GS06, ISA13, ST02},
    Leniency,
};

const GRAMMAR: Grammar = Grammar {
    interchange_trailer: "IEA",
    group: ("GS", "GE"),
    group_control: 6,
    transaction: ("ST", "SE"),
    transaction_control: 2,
    interchange_level: &["TA1"],
    groups_optional: false,
};

/// ISA is 106 bytes: the tag, 16 fixed-width elements, the terminator.
const ISA_LENGTH: usize = 106;
/// Byte positions of the element separator in ISA (widths 2,10,2,10,2,15,2,15,6,4,1,5,9,1,1,1).
const ISA_SEPARATORS: [usize; 16] = [3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103];

fn header_error(segment: usize, message: String) -> EdiError {
    EdiError::new(ErrorKind::BadHeader, segment, None, message)
}

/// Reads the separators from the ISA header at `start`.
fn delimiters(isa: &[u8], index: usize) -> Result<Delimiters, EdiError> {
    if isa.len() < ISA_LENGTH {
        return Err(EdiError::new(
            ErrorKind::Truncated,
            index,
            None,
            format!("ISA is {ISA_LENGTH} bytes long; the file has only {} from here", isa.len()),
        ));
    }
    let element = isa[3];
    if let Some(&at) = ISA_SEPARATORS.iter().find(|&&at| isa[at] != element) {
        let n = ISA_SEPARATORS.iter().position(|&p| p == at).unwrap_or(0);
        return Err(header_error(
            index,
            format!(
                "ISA is fixed-width: expected the element separator {:?} at byte {at} (after ISA{n:02}), found {:?}",
                element as char, isa[at] as char
            ),
        ));
    }
    let component = isa[104];
    let segment = isa[105];
    let version = &isa[84..89];
    // ISA11 is the repetition separator from 00402; before that, a standards id (`U`).
    let repetition = (version >= b"00402".as_slice() && !isa[82].is_ascii_alphanumeric()).then_some(isa[82]);
    let mut used = vec![element, component, segment];
    used.extend(repetition);
    for (i, &c) in used.iter().enumerate() {
        if c.is_ascii_alphanumeric() || used[..i].contains(&c) {
            return Err(EdiError::new(
                ErrorKind::BadSeparators,
                index,
                None,
                format!(
                    "unusable separators in ISA: element {:?}, component {:?}, segment {:?}",
                    element as char, component as char, segment as char
                ),
            ));
        }
    }
    Ok(Delimiters { element, component, segment, repetition, release: None, decimal: b'.' })
}

/// Parses the X12 interchange that starts at `start`; `base` is the number of
/// segments before it in the file. Returns it and the bytes it spans.
pub(crate) fn parse_interchange<'a>(
    input: &'a [u8],
    start: usize,
    base: usize,
    leniency: &dyn Fn(&str) -> Leniency,
) -> Result<(Interchange<'a>, usize), EdiError> {
    let index = base + 1;
    let delimiters = delimiters(&input[start..], index)?;
    let isa = Segment::new(index, &input[start..start + ISA_LENGTH - 1], delimiters)?;
    let sender = isa.required(6, "interchange sender id")?;
    let walked = envelope::walk(input, start + ISA_LENGTH, &isa, 13, &delimiters, &GRAMMAR, leniency(sender.trim()))?;

    let mut groups = Vec::with_capacity(walked.groups.len());
    for RawGroup { header, transactions: raw_transactions, error } in walked.groups {
        let gs = header.as_ref();
        let mut transactions = Vec::with_capacity(raw_transactions.len());
        for RawTransaction { segments, raw, error } in raw_transactions {
            let st = &segments[0];
            transactions.push(Transaction {
                document_type: st.required(1, "transaction set identifier")?.into_owned(),
                control_number: st.control_number(2, "transaction set control number", ST02)?.into_owned(),
                version: st.element(3).map(|v| v.trim().to_owned()),
                segments,
                raw,
                error,
            });
        }
        groups.push(Group {
            functional_id: gs.map(|g| g.required(1, "functional identifier code")).transpose()?.map(|v| v.into_owned()),
            sender_id: gs.and_then(|g| g.element(2)).map(|v| v.trim().to_owned()),
            receiver_id: gs.and_then(|g| g.element(3)).map(|v| v.trim().to_owned()),
            control_number: gs
                .map(|g| g.control_number(6, "group control number", GS06))
                .transpose()?
                .map(|v| v.into_owned()),
            version: gs.and_then(|g| g.element(8)).map(|v| v.trim().to_owned()),
            transactions,
            error,
        });
    }
    let text = |n: usize| isa.element(n).map(|v| v.trim().to_owned()).unwrap_or_default();
    let interchange = Interchange {
        standard: Standard::X12,
        delimiters,
        sender_qualifier: Some(text(5)),
        sender_id: isa.required(6, "interchange sender id")?.into_owned(),
        receiver_qualifier: Some(text(7)),
        receiver_id: isa.required(8, "interchange receiver id")?.into_owned(),
        control_number: isa.control_number(13, "interchange control number", ISA13)?.into_owned(),
        date: text(9),
        time: text(10),
        version: text(12),
        test: text(15) == "T",
        acknowledgment_requested: text(14) == "1",
        groups,
        interchange_acks: walked.interchange_level,
        last_segment_index: walked.trailer.index,
        tolerated: walked.tolerated,
    };
    Ok((interchange, walked.end - start))
}
