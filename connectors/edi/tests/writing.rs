//! What gridsync writes back: acknowledgements and remittance advice, each
//! read back through gridsync's own parser and mapper (which also parses
//! partners' files), and checked segment by segment where partners look.

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{NaiveDate, NaiveDateTime};
use gridsync_edi::{
    map_interchange, parse, parse_with,
    write::{
        envelope_rejection, functional_ack, interchange_acceptance, remittance_advice, AckVerdict, Remittance, X12Ack,
    },
    ErrorKind, Leniency, MapContext, PartyId, Standard,
};
use gridsync_schemas::{
    events::{AckStatus, Event},
    Timestamp,
};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn prepared() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap().and_hms_opt(15, 5, 0).unwrap()
}

/// Parses and maps what gridsync wrote, as a partner's system would read it.
fn read_back(bytes: &[u8]) -> Vec<Event> {
    let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
    parse(bytes).unwrap().iter().flat_map(|ix| map_interchange(ix, &ctx).unwrap().events).collect()
}

/// gridsync's own answer to a file that mapped without an error.
const PROCESSED: AckVerdict<'static> = AckVerdict::Processed { found: &[], ignored: &[] };

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec()).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn x12_997_accepts_every_group_of_an_interchange() {
    let file = fixture("x12_multi_interchange_crlf.edi");
    let inbound = parse(&file).unwrap();
    let ack = functional_ack(&inbound[0], AckVerdict::Accepted, X12Ack::default(), 17, prepared()).unwrap();
    let text = lines(&ack);
    assert!(text[0].contains("*ZZ*GRIDSYNC       *ZZ*ACME           *261125*1505*U*00401*000000017*"), "{text:?}");
    // One 997 per inbound group (PO 905 and IN 906).
    let expected = ["AK1*PO*905", "AK2*850*0001", "AK5*A", "AK9*A*1*1*1", "AK1*IN*906", "AK2*810*0007"];
    for line in expected {
        assert!(text.iter().any(|l| l == &format!("{line}~")), "{line} missing from {text:?}");
    }
    let events = read_back(&ack);
    assert_eq!(events.len(), 2);
    let Event::FunctionalAckReceived(fa) = &events[0] else { panic!("{events:?}") };
    assert_eq!(fa.status, AckStatus::Accepted);
    assert_eq!(fa.acknowledged_group_control_number.as_deref(), Some("905"));
    assert_eq!(fa.envelope.trading_partner_id, "GRIDSYNC", "we are the sender of the 997");
    assert!(fa.errors.is_empty());
}

/// A set gridsync does not map is rejected as not supported while the others of its group are
/// accepted: `AK9*P` with the counts, never a silent `AK5*A`.
#[test]
fn x12_997_rejects_a_set_gridsync_does_not_map_and_accepts_the_rest() {
    let file = String::from_utf8(fixture("x12_multi_interchange_crlf.edi")).unwrap();
    // The first group (PO 905) gets a 940 beside its 850.
    let with_940 = file.replacen("GE*1*905~", "ST*940*0002~W05*N*ORDER-9~SE*3*0002~GE*2*905~", 1);
    let inbound = parse(with_940.as_bytes()).unwrap();
    let ack = functional_ack(&inbound[0], PROCESSED, X12Ack::default(), 19, prepared()).unwrap();
    let text = lines(&ack);
    let po_group: Vec<&str> = text.iter().map(String::as_str).skip_while(|l| *l != "AK1*PO*905~").take(6).collect();
    assert_eq!(po_group, ["AK1*PO*905~", "AK2*850*0001~", "AK5*A~", "AK2*940*0002~", "AK5*R*1~", "AK9*P*2*2*1~"]);
    let Event::FunctionalAckReceived(fa) = &read_back(&ack)[0] else { panic!() };
    assert_eq!(fa.status, AckStatus::PartiallyAccepted, "{fa:?}");
    // A partner that takes every document (as the simulated one does) accepts the 940 too.
    let partner = lines(&functional_ack(&inbound[0], AckVerdict::Accepted, X12Ack::default(), 21, prepared()).unwrap());
    assert!(partner.iter().any(|l| l == "AK9*A*2*2*2~"), "{partner:?}");
    // Every set of a group unmapped: the group is rejected.
    let only_940 = file.replacen("ST*850*0001~", "ST*940*0001~", 1);
    let inbound = parse(only_940.as_bytes()).unwrap();
    let ack = lines(&functional_ack(&inbound[0], PROCESSED, X12Ack::default(), 20, prepared()).unwrap());
    assert!(ack.iter().any(|l| l == "AK9*R*1*1*0~"), "{ack:?}");
}

#[test]
fn x12_997_rejects_with_the_segment_and_element_in_error() {
    let file = fixture("x12_multi_interchange_crlf.edi");
    // The second interchange's 850 without its PO number (BEG03).
    let broken = String::from_utf8(file).unwrap().replace("BEG*00*SA*4500022345**", "BEG*00*SA***");
    let inbound = parse(broken.as_bytes()).unwrap();
    let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
    let mapped = map_interchange(&inbound[1], &ctx).unwrap();
    let [error] = &mapped.rejected[..] else { panic!("{:?}", mapped.rejected) };
    assert_eq!((error.kind, error.element), (ErrorKind::MissingElement, Some(3)));
    let found = std::slice::from_ref(error);

    let verdict = AckVerdict::Processed { found, ignored: &[] };
    let ack = functional_ack(&inbound[1], verdict, X12Ack::default(), 18, prepared()).unwrap();
    let text = lines(&ack);
    let body: Vec<&str> = text.iter().skip(3).take(6).map(String::as_str).collect();
    assert_eq!(body, ["AK1*PO*907~", "AK2*850*0002~", "AK3*BEG*2**8~", "AK4*3**1~", "AK5*R*5~", "AK9*R*1*1*0~"]);
    let Event::FunctionalAckReceived(fa) = &read_back(&ack)[0] else { panic!() };
    assert_eq!(fa.status, AckStatus::Rejected);
    assert_eq!(fa.errors[0], "850 0002: segment BEG at position 2: error 8");

    // The file's other interchange is accepted: the error is not in it.
    let sibling = functional_ack(&inbound[0], verdict, X12Ack::default(), 19, prepared()).unwrap();
    let text = lines(&sibling);
    assert!(text.contains(&"AK5*A~".to_owned()) && text.contains(&"AK9*A*1*1*1~".to_owned()), "{text:?}");
    // Were the whole file rejected (a verdict kept for a broken TA1 inside it), the sibling's sets
    // would be rejected with it, without detail.
    let rejected = functional_ack(&inbound[0], AckVerdict::Rejected(error), X12Ack::default(), 20, prepared()).unwrap();
    let text = lines(&rejected);
    assert!(text.contains(&"AK5*R~".to_owned()) && text.contains(&"AK9*R*1*1*0~".to_owned()), "{text:?}");
    assert!(!text.iter().any(|l| l.starts_with("AK3")), "{text:?}");
}

/// A transaction set whose SE01 miscounts is rejected on its own (`AK5*R*4`), one whose SE02
/// differs from its ST02 too (`AK5*R*3`), while the good sets of its group are accepted and map
/// (`AK9*P` with the counts); a 999 says the same with IK5, and names the implementation guide.
#[test]
fn a_bad_transaction_set_is_rejected_alone_and_the_good_ones_of_its_group_flow() {
    let file = String::from_utf8(fixture("x12_multi_interchange_crlf.edi")).unwrap();
    let start = file.find("ST*850*0001~").unwrap();
    let end = file.find("SE*14*0001~").unwrap() + "SE*14*0001~".len();
    let order = &file[start..end];
    let (second, third) = (
        order.replace("*0001~", "*0002~").replacen("SE*14*0002~", "SE*12*0002~", 1),
        order.replace("*0001~", "*0003~").replacen("SE*14*0003~", "SE*14*0009~", 1),
    );
    let three = file.replacen("GE*1*905~", &format!("{second}\r\n{third}\r\nGE*3*905~"), 1);
    let inbound = parse(three.as_bytes()).unwrap();
    let txs: Vec<_> = inbound[0].groups[0].transactions.iter().map(|tx| tx.error.as_ref().map(|e| e.kind)).collect();
    assert_eq!(txs, [None, Some(ErrorKind::CountMismatch), Some(ErrorKind::ControlNumberMismatch)]);
    assert!(inbound[0].groups[0].transactions[1].raw.starts_with(b"ST*850*0002~"));
    assert!(inbound[0].groups[0].transactions[1].raw.ends_with(b"SE*12*0002~"));

    let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
    let mapped = map_interchange(&inbound[0], &ctx).unwrap();
    let mapped_orders: Vec<_> = mapped.events.iter().map(|e| e.envelope().event_type.clone()).collect();
    assert_eq!(mapped_orders, ["PurchaseOrderReceived", "InvoiceReceived"], "the good 850 and the other group's 810");
    let rejected: Vec<_> =
        inbound[0].rejections(&mapped.rejected).map(|(_, tx, e)| (&tx.control_number, e.kind)).collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");

    let text = lines(&functional_ack(&inbound[0], PROCESSED, X12Ack::default(), 23, prepared()).unwrap());
    let po: Vec<&str> = text.iter().map(String::as_str).skip_while(|l| *l != "AK1*PO*905~").take(8).collect();
    assert_eq!(
        po,
        [
            "AK1*PO*905~",
            "AK2*850*0001~",
            "AK5*A~",
            "AK2*850*0002~",
            "AK5*R*4~",
            "AK2*850*0003~",
            "AK5*R*3~",
            "AK9*P*3*3*1~"
        ]
    );
    let Event::FunctionalAckReceived(fa) =
        &read_back(&functional_ack(&inbound[0], PROCESSED, X12Ack::default(), 24, prepared()).unwrap())[0]
    else {
        panic!()
    };
    assert_eq!(fa.status, AckStatus::PartiallyAccepted);

    let ack999 = functional_ack(&inbound[0], PROCESSED, X12Ack::Implementation999, 25, prepared()).unwrap();
    let text = lines(&ack999);
    assert!(text[0].contains("*^*00501*000000025*"), "an 005010 envelope: {}", text[0]);
    assert_eq!(text[1], "GS*FA*GRIDSYNC*ACME*20261125*1505*25*X*005010X231A1~");
    assert_eq!(text[2], "ST*999*0001*005010X231A1~");
    let po: Vec<&str> = text.iter().map(String::as_str).skip_while(|l| !l.starts_with("AK1*PO*905")).take(8).collect();
    assert_eq!(
        po,
        [
            "AK1*PO*905*004010~",
            "AK2*850*0001~",
            "IK5*A~",
            "AK2*850*0002~",
            "IK5*R*4~",
            "AK2*850*0003~",
            "IK5*R*3~",
            "AK9*P*3*3*1~"
        ]
    );
    let Event::FunctionalAckReceived(fa) = &read_back(&ack999)[0] else { panic!() };
    assert_eq!(fa.status, AckStatus::PartiallyAccepted, "a 999 reads back as the 997 would");
    assert_eq!(fa.errors, ["850 0002: transaction set R: 4", "850 0003: transaction set R: 3"]);

    // A group whose GE miscounts is rejected as a group (AK9 code 5), the other group accepted.
    let miscounted = file.replacen("GE*1*905~", "GE*2*905~", 1);
    let inbound = parse(miscounted.as_bytes()).unwrap();
    assert_eq!(inbound[0].groups[0].error.as_ref().map(|e| e.kind), Some(ErrorKind::CountMismatch));
    assert_eq!(map_interchange(&inbound[0], &ctx).unwrap().events.len(), 1, "only the other group's 810");
    let text = lines(&functional_ack(&inbound[0], PROCESSED, X12Ack::default(), 26, prepared()).unwrap());
    let po: Vec<&str> = text.iter().map(String::as_str).skip_while(|l| *l != "AK1*PO*905~").take(2).collect();
    assert_eq!(po, ["AK1*PO*905~", "AK9*R*1*1*0*5~"]);
    assert!(text.contains(&"AK9*A*1*1*1~".to_owned()), "{text:?}");
}

/// The README's sample of a partner's file with one bad order among good ones and a set gridsync
/// does not map: what the 997 says of each.
#[test]
fn the_readmes_partner_file_is_answered_set_by_set() {
    let file = fixture("partners/acme_850s_one_miscounted.edi");
    let inbound = parse(&file).unwrap();
    let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
    let mapped = map_interchange(&inbound[0], &ctx).unwrap();
    let kinds: Vec<String> = mapped.events.iter().map(|e| e.envelope().event_type.clone()).collect();
    assert_eq!(kinds, ["PurchaseOrderReceived", "PurchaseOrderReceived", "DocumentExchangeException"]);
    let rejected: Vec<&str> =
        inbound[0].rejections(&mapped.rejected).map(|(_, tx, _)| tx.control_number.as_str()).collect();
    assert_eq!(rejected, ["0002"]);
    let text = lines(&functional_ack(&inbound[0], PROCESSED, X12Ack::default(), 9, prepared()).unwrap());
    let answered: Vec<&str> = text.iter().map(String::as_str).skip(3).take(10).collect();
    assert_eq!(
        answered,
        [
            "AK1*PO*951~",
            "AK2*850*0001~",
            "AK5*A~",
            "AK2*850*0002~",
            "AK5*R*4~",
            "AK2*850*0003~",
            "AK5*A~",
            "AK2*846*0004~",
            "AK5*R*1~",
            "AK9*P*4*4*2~"
        ]
    );
}

/// The 999 names, for an error inside a transaction set, its segment and element (IK3/IK4) and
/// the document they are in by its business unit identifier (CTX).
#[test]
fn x12_999_names_the_segment_element_and_document_in_error() {
    let file = fixture("x12_multi_interchange_crlf.edi");
    let broken = String::from_utf8(file).unwrap().replace("PO1*1*120*EA*9.95", "PO1*1*12:0*EA*9.95");
    let inbound = parse(broken.as_bytes()).unwrap();
    let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
    let mapped = map_interchange(&inbound[0], &ctx).unwrap();
    let verdict = AckVerdict::Processed { found: &mapped.rejected, ignored: &[] };
    let text = lines(&functional_ack(&inbound[0], verdict, X12Ack::Implementation999, 27, prepared()).unwrap());
    let po: Vec<&str> = text.iter().map(String::as_str).skip_while(|l| !l.starts_with("AK1*PO*905")).take(7).collect();
    assert_eq!(
        po,
        [
            "AK1*PO*905*004010~",
            "AK2*850*0001~",
            "IK3*PO1*9**8~",
            "CTX*BEG03:4500012345~",
            "IK4*2**7*12 0~",
            "IK5*R*5~",
            "AK9*R*1*1*0~"
        ]
    );
}

#[test]
fn x12_997_copies_a_bad_value_back_without_our_separators() {
    let file = fixture("x12_multi_interchange_crlf.edi");
    let broken = String::from_utf8(file).unwrap().replace("PO1*1*120*EA*9.95", "PO1*1*12:0*EA*9.95");
    let inbound = parse(broken.as_bytes()).unwrap();
    let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
    let mapped = map_interchange(&inbound[0], &ctx).unwrap();
    let error = &mapped.rejected[0];
    assert_eq!((error.kind, error.segment, error.element), (ErrorKind::InvalidValue, 11, Some(2)));
    let verdict = AckVerdict::Processed { found: &mapped.rejected, ignored: &[] };
    let ack = lines(&functional_ack(&inbound[0], verdict, X12Ack::default(), 20, prepared()).unwrap());
    assert!(ack.contains(&"AK3*PO1*9**8~".to_owned()), "{ack:?}");
    assert!(ack.contains(&"AK4*2**7*12 0~".to_owned()), "{ack:?}");
}

#[test]
fn a_wrong_segment_count_is_rejected_unless_the_senders_profile_tolerates_it_and_then_noted() {
    let file =
        String::from_utf8(fixture("x12_multi_interchange_crlf.edi")).unwrap().replacen("SE*14*0001~", "SE*12*0001~", 1);
    let strict = parse(file.as_bytes()).unwrap();
    let error = strict[0].groups[0].transactions[0].error.as_ref().unwrap();
    assert_eq!((error.kind, error.message.as_str()), (ErrorKind::CountMismatch, "SE01 says 12 segments, found 14"));
    let text = lines(&functional_ack(&strict[0], PROCESSED, X12Ack::default(), 20, prepared()).unwrap());
    for line in ["AK2*850*0001~", "AK5*R*4~", "AK9*R*1*1*0~", "AK2*810*0007~", "AK5*A~", "AK9*A*1*1*1~"] {
        assert!(text.iter().any(|l| l == line), "{line} missing from {text:?}");
    }
    let only_acme = |sender: &str| Leniency { segment_counts: sender == "ACME" };
    let inbound = parse_with(file.as_bytes(), &only_acme).unwrap();
    assert_eq!(
        inbound[0].tolerated.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
        ["SE01 says 12 segments, found 14"]
    );
    let tolerated_in: Vec<bool> = inbound[0].transactions().map(|tx| inbound[0].tolerated_in(tx).is_some()).collect();
    assert_eq!(tolerated_in, [true, false], "the 850 miscounts, the 810 does not");
    let text = lines(&functional_ack(&inbound[0], AckVerdict::Accepted, X12Ack::default(), 21, prepared()).unwrap());
    for line in ["AK2*850*0001~", "AK5*E*4~", "AK9*E*1*1*1~", "AK2*810*0007~", "AK5*A~", "AK9*A*1*1*1~"] {
        assert!(text.iter().any(|l| l == line), "{line} missing from {text:?}");
    }
    let ack = functional_ack(&inbound[0], AckVerdict::Accepted, X12Ack::default(), 22, prepared()).unwrap();
    let Event::FunctionalAckReceived(fa) = &read_back(&ack)[0] else { panic!() };
    assert_eq!(fa.status, AckStatus::AcceptedWithErrors, "the partner reads it as accepted, errors noted");

    let other_sender = |sender: &str| Leniency { segment_counts: sender == "GLOBEX" };
    let strict = parse_with(file.as_bytes(), &other_sender).unwrap();
    assert_eq!(strict[0].groups[0].transactions[0].error.as_ref().map(|e| e.kind), Some(ErrorKind::CountMismatch));

    let edifact = String::from_utf8(fixture("edifact_una_group_release.edi")).unwrap().replacen(
        "UNT+17+M0001'",
        "UNT+16+M0001'",
        1,
    );
    let lenient = parse_with(edifact.as_bytes(), &|_| Leniency { segment_counts: true }).unwrap();
    let text = lines(&functional_ack(&lenient[0], AckVerdict::Accepted, X12Ack::default(), 7, prepared()).unwrap());
    assert!(text.contains(&"UCM+M0001+ORDERS:D:96A:UN+7+29'".to_owned()), "accepted, count error 29 noted: {text:?}");
    assert!(text.contains(&"UCM+M0002+ORDERS:D:96A:UN+7'".to_owned()), "{text:?}");
}

#[test]
fn edifact_contrl_acknowledges_or_rejects_each_message() {
    let file = fixture("edifact_una_group_release.edi");
    let inbound = parse(&file).unwrap();
    let ack = functional_ack(&inbound[0], AckVerdict::Accepted, X12Ack::default(), 5, prepared()).unwrap();
    let text = lines(&ack);
    assert_eq!(text[1], "UNB+UNOC:3+4012345500004:14+5412345000013:14+261125:1505+5'");
    assert_eq!(text[2], "UNH+1+CONTRL:D:3:UN'");
    assert_eq!(text[3], "UCI+ICR0042+5412345000013:14+4012345500004:14+7'");
    assert_eq!(text[4], "UCM+M0001+ORDERS:D:96A:UN+7'");
    let Event::FunctionalAckReceived(fa) = &read_back(&ack)[0] else { panic!() };
    assert_eq!((fa.status, fa.acknowledged_interchange_control_number.as_str()), (AckStatus::Accepted, "ICR0042"));

    let broken = String::from_utf8(file).unwrap().replacen("PRI+AAA:12,50'", "PRI+AAA:twelve'", 1);
    let inbound = parse(broken.as_bytes()).unwrap();
    let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
    let mapped = map_interchange(&inbound[0], &ctx).unwrap();
    assert_eq!(mapped.events.len(), 1, "the other message maps");
    let verdict = AckVerdict::Processed { found: &mapped.rejected, ignored: &[] };
    let ack = functional_ack(&inbound[0], verdict, X12Ack::default(), 6, prepared()).unwrap();
    let text = lines(&ack);
    assert_eq!(text[3], "UCI+ICR0042+5412345000013:14+4012345500004:14+7'");
    assert_eq!(&text[4..7], ["UCM+M0001+ORDERS:D:96A:UN+4+12'", "UCS+11'", "UCD+12+1'"]);
    assert_eq!(text[7], "UCM+M0002+ORDERS:D:96A:UN+7'");
    let Event::FunctionalAckReceived(fa) = &read_back(&ack)[0] else { panic!() };
    assert_eq!(fa.status, AckStatus::PartiallyAccepted);
    assert_eq!(
        fa.errors[..3],
        ["ORDERS M0001: rejected, error 12", "ORDERS M0001: segment 11 in error", "ORDERS M0001: element 1: error 12"]
    );
}

#[test]
fn an_interchange_asking_for_a_ta1_gets_one_accepting_its_envelope() {
    let file = String::from_utf8(fixture("x12_multi_interchange_crlf.edi")).unwrap();
    let interchanges = parse(file.as_bytes()).unwrap();
    assert!(!interchanges[0].acknowledgment_requested, "ISA14 = 0");
    let asking = file.replacen("*000000905*0*P*", "*000000905*1*P*", 1);
    let [first, ..] = &parse(asking.as_bytes()).unwrap()[..] else { panic!() };
    assert!(first.acknowledgment_requested, "ISA14 = 1");
    let ta1 = interchange_acceptance(first, 31, prepared()).unwrap().unwrap();
    let text = lines(&ta1);
    assert_eq!(text[1], "TA1*000000905*261125*1432*A*000~");
    // Read back as the partner reads it: its interchange, accepted.
    let Event::FunctionalAckReceived(fa) = &read_back(&ta1)[0] else { panic!() };
    assert_eq!((fa.acknowledged_interchange_control_number.as_str(), fa.status), ("000000905", AckStatus::Accepted));
    let edifact = String::from_utf8(fixture("edifact_una_group_release.edi")).unwrap();
    assert!(interchange_acceptance(&parse(edifact.as_bytes()).unwrap()[0], 32, prepared()).is_none(), "CONTRL does it");
}

#[test]
fn broken_envelopes_are_answered_at_interchange_level() {
    let file = String::from_utf8(fixture("x12_multi_interchange_crlf.edi")).unwrap();
    let broken = file.replacen("IEA*2*000000905", "IEA*2*000000999", 1);
    let error = parse(broken.as_bytes()).unwrap_err();
    let ta1 = envelope_rejection(broken.as_bytes(), &error, 21, prepared()).unwrap().unwrap();
    let text = lines(&ta1);
    assert_eq!(text[1], "TA1*000000905*261125*1432*R*001~");
    assert_eq!(text[2], "IEA*0*000000021~");
    assert_eq!(parse(&ta1).unwrap()[0].groups.len(), 0, "a TA1 interchange is valid X12");
    // Read back as a partner's TA1 would be: the interchange it names, rejected, with the note.
    let Event::FunctionalAckReceived(fa) = &read_back(&ta1)[0] else { panic!() };
    assert_eq!(fa.acknowledged_interchange_control_number, "000000905");
    assert_eq!(
        (fa.status, fa.errors.as_slice()),
        (AckStatus::Rejected, ["interchange: note 001".to_owned()].as_slice())
    );
    assert_eq!(fa.envelope.trading_grid_document.as_ref().map(|d| d.document_type.as_str()), Some("TA1"));

    let cut = &file.as_bytes()[..400];
    let error = parse(cut).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Truncated);
    let ta1 = lines(&envelope_rejection(cut, &error, 22, prepared()).unwrap().unwrap());
    assert_eq!(ta1[1], "TA1*000000905*261125*1432*R*023~");

    let edifact = String::from_utf8(fixture("edifact_una_group_release.edi")).unwrap();
    let broken = edifact.replace("UNZ+1+ICR0042", "UNZ+1+ICR0043");
    let error = parse(broken.as_bytes()).unwrap_err();
    let contrl = envelope_rejection(broken.as_bytes(), &error, 7, prepared()).unwrap().unwrap();
    assert_eq!(lines(&contrl)[3], "UCI+ICR0042+5412345000013:14+4012345500004:14+4+28'");
    let Event::FunctionalAckReceived(fa) = &read_back(&contrl)[0] else { panic!() };
    assert_eq!((fa.status, fa.errors[0].as_str()), (AckStatus::Rejected, "interchange: error 28"));

    let error = parse(b"hello, not EDI").unwrap_err();
    assert!(envelope_rejection(b"hello, not EDI", &error, 8, prepared()).is_none(), "nobody to answer");
    // A control number the standard does not allow is not echoed back: nothing to name.
    let unnamed = file.replacen("000000905", "../../x1 ", 2);
    let error = parse(unnamed.as_bytes()).unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadControlNumber, "{error}");
    assert!(envelope_rejection(unnamed.as_bytes(), &error, 10, prepared()).is_none(), "{error}");
}

fn remittance() -> Remittance {
    Remittance {
        payment_reference: "PAY-2026-0042".into(),
        paid_on: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        currency: "EUR".into(),
        invoices: vec![
            ("INV-88001".into(), "1500.5".parse().unwrap()),
            ("INV-88002".into(), "99.125".parse().unwrap()),
        ],
        note: Some("Paid in full: thanks + see you".into()),
    }
}

#[test]
fn remittance_advice_reads_back_as_the_same_payment_in_both_standards() {
    let us = PartyId { qualifier: Some("ZZ".into()), id: "GRIDSYNC".into() };
    let partner = PartyId { qualifier: Some("ZZ".into()), id: "ACME".into() };
    for standard in [Standard::X12, Standard::Edifact] {
        let bytes = remittance_advice(standard, us.clone(), partner.clone(), &remittance(), 30, prepared()).unwrap();
        let events = read_back(&bytes);
        let Event::RemittanceAdviceReceived(advice) = &events[0] else { panic!("{events:?}") };
        assert_eq!(advice.payment_reference, "PAY-2026-0042", "{standard:?}");
        assert_eq!(advice.total_amount.to_string(), "1599.625", "{standard:?}");
        assert_eq!(advice.currency, "EUR");
        assert_eq!(advice.payment_date.map(|d| d.to_string()).as_deref(), Some("2026-11-24"));
        assert_eq!((advice.payer.id.as_str(), advice.payee.id.as_str()), ("GRIDSYNC", "ACME"));
        let paid: Vec<(String, String)> =
            advice.remittances.iter().map(|r| (r.invoice_number.clone(), r.amount_paid.to_string())).collect();
        assert_eq!(
            paid,
            [("INV-88001".to_owned(), "1500.5".to_owned()), ("INV-88002".to_owned(), "99.125".to_owned())]
        );
    }
    let x12 =
        lines(&remittance_advice(Standard::X12, us.clone(), partner.clone(), &remittance(), 30, prepared()).unwrap());
    assert!(x12.contains(&"BPR*I*1599.625*C*NON************20261124~".to_owned()), "{x12:?}");
    assert!(x12.contains(&"RMR*IV*INV-88001**1500.50~".to_owned()), "{x12:?}");
    assert!(x12.contains(&"NTE*PMT*Paid in full  thanks + see you~".to_owned()), "{x12:?}");
    let edifact = lines(&remittance_advice(Standard::Edifact, us, partner, &remittance(), 31, prepared()).unwrap());
    assert!(edifact.contains(&"FTX+AAI+++Paid in full?: thanks ?+ see you'".to_owned()), "{edifact:?}");
}

#[test]
fn what_cannot_be_written_is_an_error_not_a_broken_file() {
    // A partner using `|` may have a `*` in its id: X12 with gridsync's `*` cannot carry it.
    let file = String::from_utf8(fixture("x12_pipes_00501_no_newlines.edi")).unwrap();
    let odd = file.replace("|ZZ|GLOBEX         |", "|ZZ|GLO*BEX        |").replace("SH|GLOBEX|", "SH|GLO*BEX|");
    let inbound = parse(odd.as_bytes()).unwrap();
    let err = functional_ack(&inbound[0], AckVerdict::Accepted, X12Ack::default(), 1, prepared()).unwrap_err();
    assert!(err.to_string().contains("contains a separator ('*')"), "{err}");

    // A header naming no receiver (or no control number) cannot be answered at all.
    let nameless = "ISA*00*          *00*          *ZZ*ACME           *ZZ*               *261125*1432*U*00401*000000001*0*P*>~GS*PO";
    let error = parse(nameless.as_bytes()).unwrap_err();
    assert!(envelope_rejection(nameless.as_bytes(), &error, 9, prepared()).is_none());
}
