//! Envelopes of real-world-shaped files, and precise errors for broken ones.

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gridsync_edi::{parse, sniff_sender, EdiError, ErrorKind, Standard};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn error(input: &str) -> EdiError {
    parse(input.as_bytes()).expect_err("must be refused")
}

/// The error that rejects a transaction or group of `input` on its own: the envelope around it
/// parses, and the rest of the interchange is processed.
fn found(input: &str) -> EdiError {
    let interchanges = parse(input.as_bytes()).expect("the interchange's envelope is sound");
    let group = &interchanges[0].groups[0];
    group.transactions.iter().find_map(|tx| tx.error.clone()).or(group.error.clone()).expect("rejected on its own")
}

#[test]
fn x12_file_with_two_interchanges_groups_and_crlf() {
    let bytes = fixture("x12_multi_interchange_crlf.edi");
    let interchanges = parse(&bytes).unwrap();
    assert_eq!(interchanges.len(), 2);
    let first = &interchanges[0];
    assert_eq!(first.standard, Standard::X12);
    assert_eq!((first.sender_id.as_str(), first.receiver_id.as_str()), ("ACME", "GRIDSYNC"));
    assert_eq!(first.control_number, "000000905");
    assert_eq!((first.delimiters.element, first.delimiters.component, first.delimiters.segment), (b'*', b'>', b'~'));
    assert_eq!(first.delimiters.repetition, None, "00401 has no repetition separator");
    assert_eq!(first.groups.len(), 2);
    assert_eq!(first.groups[0].functional_id.as_deref(), Some("PO"));
    assert_eq!(first.groups[1].functional_id.as_deref(), Some("IN"));
    let po = &first.groups[0].transactions[0];
    assert_eq!((po.document_type.as_str(), po.control_number.as_str()), ("850", "0001"));
    assert_eq!(po.segments.first().map(|s| s.tag), Some("ST"));
    assert_eq!(po.segments.last().map(|s| s.tag), Some("SE"));
    let beg = &po.body()[0];
    assert_eq!(beg.tag, "BEG");
    assert_eq!(beg.element(3).as_deref(), Some("4500012345"));
    assert_eq!(beg.element(4), None, "empty element");
    assert_eq!(beg.index, 4, "ISA, GS, ST, then BEG");
    assert_eq!(first.groups[1].transactions[0].document_type, "810");
    // Segment numbers run on across interchanges.
    let second = &interchanges[1];
    assert_eq!(second.control_number, "000000906");
    assert_eq!(second.groups[0].transactions[0].segments[0].index, first.last_segment_index + 3);
}

#[test]
fn x12_with_other_separators_00501_and_no_line_breaks() {
    let bytes = fixture("x12_pipes_00501_no_newlines.edi");
    let [interchange] = parse(&bytes).unwrap().try_into().unwrap();
    assert_eq!((interchange.delimiters.element, interchange.delimiters.component), (b'|', b'^'));
    assert_eq!(interchange.delimiters.repetition, Some(b'{'));
    assert!(interchange.test);
    assert_eq!(interchange.version, "00501");
    let asn = interchange.transactions().next().unwrap();
    assert_eq!(asn.document_type, "856");
    assert_eq!(asn.version.as_deref(), Some("005010"));
    assert_eq!(asn.body()[0].element(2).as_deref(), Some("SHIP-3321"));
}

#[test]
fn edifact_with_una_groups_and_release_characters() {
    let bytes = fixture("edifact_una_group_release.edi");
    let [interchange] = parse(&bytes).unwrap().try_into().unwrap();
    assert_eq!(interchange.standard, Standard::Edifact);
    assert_eq!(interchange.delimiters.decimal, b',');
    assert_eq!(
        (interchange.sender_id.as_str(), interchange.sender_qualifier.as_deref()),
        ("5412345000013", Some("14"))
    );
    assert_eq!(interchange.control_number, "ICR0042");
    assert_eq!((interchange.date.as_str(), interchange.time.as_str()), ("261125", "1432"));
    assert_eq!(interchange.groups.len(), 1);
    let group = &interchange.groups[0];
    assert_eq!((group.functional_id.as_deref(), group.control_number.as_deref()), (Some("ORDERS"), Some("GRP7")));
    assert_eq!(group.transactions.len(), 2);
    let orders = &group.transactions[0];
    assert_eq!((orders.document_type.as_str(), orders.control_number.as_str()), ("ORDERS", "M0001"));
    assert_eq!(orders.version.as_deref(), Some("D:96A:UN"));
    let ftx = orders.body().iter().find(|s| s.tag == "FTX").unwrap();
    assert_eq!(ftx.component(4, 1).as_deref(), Some("Deliver to dock 3: rear entrance + call ahead"));
    let pri = orders.body().iter().find(|s| s.tag == "PRI").unwrap();
    assert_eq!(pri.component(1, 2).as_deref(), Some("12,50"));
}

#[test]
fn edifact_with_default_separators_ungrouped_messages_on_one_line() {
    let bytes = fixture("edifact_default_separators_one_line.edi");
    let [interchange] = parse(&bytes).unwrap().try_into().unwrap();
    assert_eq!(interchange.delimiters.element, b'+');
    assert_eq!(interchange.version, "UNOA:2");
    assert_eq!(interchange.groups.len(), 1, "one implicit group");
    assert_eq!(interchange.groups[0].functional_id, None);
    let types: Vec<&str> = interchange.transactions().map(|t| t.document_type.as_str()).collect();
    assert_eq!(types, ["INVOIC", "DESADV"]);
}

#[test]
fn several_standards_in_one_file() {
    let mut bytes = fixture("edifact_default_separators_one_line.edi");
    bytes.extend_from_slice(b"\n");
    bytes.extend(fixture("x12_pipes_00501_no_newlines.edi"));
    let interchanges = parse(&bytes).unwrap();
    assert_eq!(interchanges.iter().map(|i| i.standard).collect::<Vec<_>>(), [Standard::Edifact, Standard::X12]);
}

const ISA: &str =
    "ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*000000905*0*P*>~";

fn x12(body: &str) -> String {
    format!("{ISA}\n{body}")
}

#[test]
fn x12_control_number_and_count_mismatches_are_precise() {
    let wrong_se_count = found(&x12(
        "GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~BEG*00*SA*1**20261125~SE*4*0001~GE*1*905~IEA*1*000000905~",
    ));
    assert_eq!(
        (wrong_se_count.kind, wrong_se_count.segment, wrong_se_count.element),
        (ErrorKind::CountMismatch, 5, Some(1))
    );
    assert_eq!(wrong_se_count.to_string(), "segment 5, element 1: SE01 says 4 segments, found 3");

    let wrong_se02 =
        found(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~SE*2*0002~GE*1*905~IEA*1*000000905~"));
    assert_eq!(
        (wrong_se02.kind, wrong_se02.segment, wrong_se02.element),
        (ErrorKind::ControlNumberMismatch, 4, Some(2))
    );
    assert!(wrong_se02.message.contains("SE02 is 0002, expected 0001 from ST02 (segment 3)"), "{wrong_se02}");

    let wrong_ge02 =
        found(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~SE*2*0001~GE*1*906~IEA*1*000000905~"));
    assert_eq!((wrong_ge02.kind, wrong_ge02.segment), (ErrorKind::ControlNumberMismatch, 5));
    assert!(wrong_ge02.message.contains("GE02 is 906, expected 905 from GS06"));

    let wrong_ge01 =
        found(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~SE*2*0001~GE*2*905~IEA*1*000000905~"));
    assert_eq!((wrong_ge01.kind, wrong_ge01.element), (ErrorKind::CountMismatch, Some(1)));

    let wrong_iea02 =
        error(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~SE*2*0001~GE*1*905~IEA*1*000000906~"));
    assert_eq!((wrong_iea02.kind, wrong_iea02.segment), (ErrorKind::ControlNumberMismatch, 6));
    assert!(wrong_iea02.message.contains("from ISA13 (segment 1)"));

    let wrong_iea01 =
        error(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~SE*2*0001~GE*1*905~IEA*2*000000905~"));
    assert_eq!(wrong_iea01.to_string(), "segment 6, element 1: IEA01 says 2 groups, found 1");

    let not_a_number =
        found(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~SE*two*0001~GE*1*905~IEA*1*000000905~"));
    assert_eq!((not_a_number.kind, not_a_number.segment), (ErrorKind::NotANumber, 4));
}

/// Control numbers are what the standards define, or an envelope error: never a value echoed
/// back into an acknowledgement.
#[test]
fn control_numbers_the_standards_do_not_allow_are_envelope_errors() {
    let isa = |control: &str| ISA.replace("000000905", control);
    let body = |gs06: &str, st02: &str, control: &str| {
        format!("GS*PO*A*B*20261125*1432*{gs06}*X*004010~ST*850*{st02}~SE*2*{st02}~GE*1*{gs06}~IEA*1*{control}~")
    };
    for (control, gs06, st02, element, what) in [
        ("../../x12", "905", "0001", 13, "ISA13 (interchange control number) must be 9 digits, not \"../../x12\""),
        ("00000090A", "905", "0001", 13, "ISA13"),
        ("000000905", "9O5", "0001", 6, "GS06 (group control number) must be 1 to 9 digits, not \"9O5\""),
        ("000000905", "1234567890", "0001", 6, "GS06"),
        ("000000905", "905", "1", 2, "ST02 (transaction set control number) must be 4 to 9 characters (no spaces)"),
    ] {
        let wrong = error(&format!("{}\n{}", isa(control), body(gs06, st02, control)));
        assert_eq!((wrong.kind, wrong.element), (ErrorKind::BadControlNumber, Some(element)), "{wrong}");
        assert!(wrong.message.starts_with(what), "{wrong}");
    }
    assert!(parse(format!("{ISA}\n{}", body("1", "ABC-12345", "000000905")).as_bytes()).is_ok(), "AN 4/9, N0 1/9");

    let unb = |reference: &str| {
        format!("UNB+UNOA:2+S:14+R:14+261125:1432+{reference}'UNH+M1+ORDERS:D:96A:UN'UNT+2+M1'UNZ+1+{reference}'")
    };
    let long = error(&unb("123456789012345"));
    assert_eq!((long.kind, long.element), (ErrorKind::BadControlNumber, Some(5)), "{long}");
    assert!(parse(unb("ICR0042").as_bytes()).is_ok());
    let message = error(&unb("7").replace("M1", "MESSAGE-REF-TOO-LONG"));
    assert_eq!((message.kind, message.element), (ErrorKind::BadControlNumber, Some(1)), "{message}");
}

#[test]
fn x12_structure_errors_are_precise() {
    let truncated = error(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~BEG*00*SA*1~"));
    assert_eq!((truncated.kind, truncated.segment), (ErrorKind::Truncated, 5));
    assert!(truncated.message.contains("inside transaction ST (segment 3): no IEA"), "{truncated}");

    let unterminated = error(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~BEG*00*SA"));
    assert_eq!((unterminated.kind, unterminated.segment), (ErrorKind::Truncated, 4));

    let missing_se = error(&x12("GS*PO*A*B*20261125*1432*905*X*004010~ST*850*0001~BEG*00~GE*1*905~IEA*1*000000905~"));
    assert_eq!((missing_se.kind, missing_se.segment), (ErrorKind::UnexpectedSegment, 5));
    assert!(missing_se.message.contains("transaction ST (segment 3) has no SE"));

    let outside_group = error(&x12("ST*850*0001~SE*2*0001~IEA*0*000000905~"));
    assert_eq!((outside_group.kind, outside_group.segment), (ErrorKind::UnexpectedSegment, 2));

    // ISA02 one space short: every later element shifts.
    let misaligned = error("ISA*00*         *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*000000905*0*P*>~\nGS*PO~");
    assert_eq!(misaligned.kind, ErrorKind::BadHeader);
    assert!(misaligned.message.contains("at byte 17 (after ISA02)"), "{misaligned}");

    let short = error("ISA*00*          *00*");
    assert_eq!(short.kind, ErrorKind::Truncated);

    let garbage = error("hello, world");
    assert_eq!((garbage.kind, garbage.segment), (ErrorKind::UnknownStart, 1));
    assert_eq!(error("   \n").kind, ErrorKind::UnknownStart);
}

#[test]
fn edifact_envelope_errors_are_precise() {
    let wrong_unt02 = found("UNB+UNOA:2+S:14+R:14+261125:1432+7'UNH+1+ORDERS:D:96A:UN'BGM+220+PO1+9'UNT+3+2'UNZ+1+7'");
    assert_eq!(
        (wrong_unt02.kind, wrong_unt02.segment, wrong_unt02.element),
        (ErrorKind::ControlNumberMismatch, 4, Some(2))
    );
    assert!(wrong_unt02.message.contains("UNT02 is 2, expected 1 from UNH01"));

    let wrong_unt01 = found("UNB+UNOA:2+S:14+R:14+261125:1432+7'UNH+1+ORDERS:D:96A:UN'BGM+220+PO1+9'UNT+4+1'UNZ+1+7'");
    assert_eq!(wrong_unt01.to_string(), "segment 4, element 1: UNT01 says 4 segments, found 3");

    let wrong_unz = error("UNB+UNOA:2+S:14+R:14+261125:1432+7'UNH+1+ORDERS:D:96A:UN'UNT+2+1'UNZ+1+8'");
    assert_eq!((wrong_unz.kind, wrong_unz.segment), (ErrorKind::ControlNumberMismatch, 4));

    let wrong_une = found("UNB+UNOA:2+S:14+R:14+261125:1432+7'UNG+ORDERS+S+R+261125:1432+G1+UN+D:96A'UNH+1+ORDERS:D:96A:UN'UNT+2+1'UNE+2+G1'UNZ+1+7'");
    assert_eq!(wrong_une.to_string(), "segment 5, element 1: UNE01 says 2 transactions, found 1");

    // A released terminator is data, not the end of the segment.
    let released =
        parse(b"UNB+UNOA:2+S:14+R:14+261125:1432+7'UNH+1+ORDERS:D:96A:UN'FTX+AAI+++it?'s here'UNT+3+1'UNZ+1+7'")
            .unwrap();
    let ftx = &released[0].groups[0].transactions[0].segments[1];
    assert_eq!(ftx.component(4, 1).as_deref(), Some("it's here"));

    let bad_una = error("UNA:+.? +UNB+UNOA:2+S+R+261125:1432+7+UNZ+0+7+");
    assert_eq!(bad_una.kind, ErrorKind::BadSeparators);
}

#[test]
fn the_sender_of_a_broken_file_is_still_found() {
    assert_eq!(sniff_sender(format!("{ISA}\nGS*PO~ST*850").as_bytes()).as_deref(), Some("ACME"));
    assert_eq!(sniff_sender(b"UNB+UNOA:2+SENDER:14+R:14+261125:1432+7'UNH+1").as_deref(), Some("SENDER"));
    assert_eq!(sniff_sender(b"UNA|*.? !UNB*UNOA|2*OTHER|14*R*261125|1432*7!").as_deref(), Some("OTHER"));
    assert_eq!(sniff_sender(b"garbage"), None);
}
