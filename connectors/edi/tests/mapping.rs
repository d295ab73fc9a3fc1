//! Files in, events out: what each document maps to, exactly.

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gridsync_edi::{map_interchange, parse, ErrorKind, MapContext};
use gridsync_schemas::{
    events::{EdiStandard, Event, ExceptionKind, OrderResponseStatus},
    Timestamp,
};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

const CTX: MapContext<'static> =
    MapContext { file_name: Some("inbound/file.edi"), ingested_at: Timestamp::from_millis(1_795_000_000_000) };

fn events(bytes: &[u8]) -> Vec<Event> {
    parse(bytes).unwrap().iter().flat_map(|ix| map_interchange(ix, &CTX).unwrap().events).collect()
}

fn json(event: &Event) -> serde_json::Value {
    event.to_json().unwrap()
}

#[test]
fn x12_850_maps_to_a_purchase_order_with_exact_amounts() {
    let all = events(&fixture("x12_multi_interchange_crlf.edi"));
    assert_eq!(all.len(), 3, "two 850s and an 810");
    let Event::PurchaseOrderReceived(po) = &all[0] else { panic!("{:?}", all[0].event_type()) };
    assert_eq!(po.po_number, "4500012345");
    assert_eq!(po.po_date.map(|d| d.to_string()).as_deref(), Some("2026-11-25"));
    assert_eq!(po.requested_delivery_date.map(|d| d.to_string()).as_deref(), Some("2026-12-02"));
    assert_eq!(po.currency.as_deref(), Some("USD"));
    assert_eq!((po.buyer.id.as_str(), po.buyer.name.as_deref()), ("ACME-BUYER", Some("Acme Retail Inc")));
    assert_eq!(po.ship_to.as_ref().map(|p| p.id.as_str()), Some("DC-CHI"));
    assert_eq!(po.seller.id, "GRIDSYNC");
    let v = json(&all[0]);
    assert_eq!(v["lines"][0]["product_id"], "SKU-1001");
    assert_eq!(v["lines"][0]["buyer_product_id"], "ACM-1");
    assert_eq!(v["lines"][0]["description"], "Blue widget, large");
    assert_eq!(v["lines"][0]["quantity"], "120");
    assert_eq!(v["lines"][0]["unit_price"], "9.95");
    assert_eq!(v["lines"][0]["line_amount"], "1194", "exact, shown normalised");
    assert_eq!(v["lines"][1]["unit_of_measure"], "CA");
    assert_eq!(v["total_amount"], "2370", "120 × 9.95 + 48 × 24.5");

    let envelope = &po.envelope;
    assert_eq!(envelope.trading_partner_id, "ACME");
    assert_eq!(envelope.business_key, "4500012345");
    assert_eq!(envelope.correlation_id, "ACME/PO/4500012345");
    assert_eq!(envelope.ingested_at, CTX.ingested_at);
    let doc = envelope.trading_grid_document.as_ref().unwrap();
    assert_eq!((doc.standard, doc.document_type.as_str()), (EdiStandard::X12, "850"));
    assert_eq!(
        (doc.interchange_control_number.as_str(), doc.group_control_number.as_deref()),
        ("000000905", Some("905"))
    );
    assert_eq!((doc.transaction_control_number.as_str(), doc.file_name.as_deref()), ("0001", Some("inbound/file.edi")));
    // Re-reading the same file yields the same ids; the second PO has its own.
    assert_eq!(events(&fixture("x12_multi_interchange_crlf.edi"))[0].envelope().event_id, envelope.event_id);
    assert_ne!(all[2].envelope().event_id, envelope.event_id);
}

#[test]
fn x12_810_maps_to_an_invoice_with_implied_decimals_and_terms() {
    let all = events(&fixture("x12_multi_interchange_crlf.edi"));
    let Event::InvoiceReceived(inv) = &all[1] else { panic!("{:?}", all[1].event_type()) };
    assert_eq!(inv.invoice_number, "INV-88001");
    assert_eq!(inv.invoice_date.to_string(), "2026-11-26");
    assert_eq!(inv.po_number.as_deref(), Some("4500012345"));
    assert_eq!(inv.total_amount.to_string(), "2370", "TDS*237000 has two implied decimals");
    assert_eq!(inv.due_date.map(|d| d.to_string()).as_deref(), Some("2026-12-26"), "ITD07: net 30 days");
    assert_eq!(inv.payment_terms.as_deref(), Some("NET30"));
    assert_eq!((inv.buyer.id.as_str(), inv.seller.id.as_str()), ("ACME-BUYER", "GRIDSYNC"));
    assert_eq!(inv.lines.len(), 2);
    assert_eq!(inv.envelope.correlation_id, "ACME/PO/4500012345", "the invoice joins its PO's transaction");
}

#[test]
fn x12_856_maps_to_a_ship_notice() {
    let all = events(&fixture("x12_pipes_00501_no_newlines.edi"));
    let Event::ShipNoticeReceived(asn) = &all[0] else { panic!() };
    assert_eq!(asn.shipment_id, "SHIP-3321");
    assert_eq!(asn.po_numbers, ["4500012345"]);
    assert_eq!(asn.shipped_at.map(|t| t.to_string()).as_deref(), Some("2026-11-27T09:00:00.000Z"));
    assert_eq!(asn.carrier.as_deref(), Some("DHLX"));
    assert_eq!(asn.tracking_number.as_deref(), Some("BOL-99812"));
    assert_eq!((asn.lines[0].product_id.as_str(), asn.lines[0].quantity.to_string()), ("SKU-1001", "120".to_owned()));
    assert_eq!(asn.envelope.correlation_id, "GLOBEX/PO/4500012345");
}

#[test]
fn edifact_orders_map_with_the_una_decimal_comma() {
    let all = events(&fixture("edifact_una_group_release.edi"));
    assert_eq!(all.len(), 2);
    let Event::PurchaseOrderReceived(po) = &all[0] else { panic!() };
    assert_eq!(po.po_number, "PO-DE-7781");
    assert_eq!(po.purpose.as_deref(), Some("9"));
    assert_eq!(po.currency.as_deref(), Some("EUR"));
    assert_eq!(po.requested_delivery_date.map(|d| d.to_string()).as_deref(), Some("2026-12-03"));
    assert_eq!(
        (po.buyer.id.as_str(), po.buyer.id_qualifier.as_deref(), po.buyer.name.as_deref()),
        ("5412345000013", Some("9"), Some("Acme Retail GmbH"))
    );
    let v = json(&all[0]);
    assert_eq!(v["lines"][0]["product_id"], "4000862141404");
    assert_eq!(v["lines"][0]["unit_price"], "12.5");
    assert_eq!(v["lines"][1]["quantity"], "6.5");
    assert_eq!(v["total_amount"], "620.8", "48 × 12,50 + 6,5 × 3,2");
    let doc = po.envelope.trading_grid_document.as_ref().unwrap();
    assert_eq!(
        (doc.standard, doc.group_control_number.as_deref(), doc.transaction_control_number.as_str()),
        (EdiStandard::Edifact, Some("GRP7"), "M0001")
    );
    assert_eq!(all[1].envelope().business_key, "PO-DE-7782");
}

#[test]
fn edifact_invoic_and_desadv_map() {
    let all = events(&fixture("edifact_default_separators_one_line.edi"));
    let Event::InvoiceReceived(inv) = &all[0] else { panic!() };
    assert_eq!((inv.invoice_number.as_str(), inv.currency.as_str()), ("INV-DE-5001", "EUR"));
    assert_eq!(inv.total_amount.to_string(), "714");
    assert_eq!(inv.lines[0].line_amount.map(|a| a.to_string()).as_deref(), Some("600"));
    assert_eq!(inv.envelope.correlation_id, "4012345500004/PO/PO-DE-7781");
    let Event::ShipNoticeReceived(asn) = &all[1] else { panic!() };
    assert_eq!(
        (asn.shipment_id.as_str(), asn.po_numbers.as_slice()),
        ("DN-5550", ["PO-DE-7781".to_owned()].as_slice())
    );
    assert_eq!(asn.lines[0].quantity.to_string(), "48");
}

#[test]
fn order_responses_in_both_standards() {
    let x12 = b"ISA*00*          *00*          *ZZ*SUPPLIER       *ZZ*GRIDSYNC       *261125*1432*U*00401*000000077*0*P*>~GS*PR*SUPPLIER*GRIDSYNC*20261125*1432*77*X*004010~ST*855*0001~BAK*00*AC*4500012345*20261125*****20261126~PO1*1*100*EA*9.95**VP*SKU-1001~ACK*IB*20*EA~SE*5*0001~GE*1*77~IEA*1*000000077~";
    let x = events(x12);
    let [Event::OrderResponseReceived(x)] = x.as_slice() else { panic!("{x:?}") };
    assert_eq!((x.po_number.as_str(), x.status), ("4500012345", OrderResponseStatus::AcceptedWithChanges));
    assert_eq!(x.response_date.map(|d| d.to_string()).as_deref(), Some("2026-11-26"));
    let edifact = b"UNB+UNOA:2+SUP:14+GS:14+261125:1432+9'UNH+1+ORDRSP:D:96A:UN'BGM+231+RSP-1+27'DTM+137:20261125:102'RFF+ON:PO-DE-7781'UNT+5+1'UNZ+1+9'";
    let e = events(edifact);
    let [Event::OrderResponseReceived(e)] = e.as_slice() else { panic!("{e:?}") };
    assert_eq!((e.po_number.as_str(), e.status), ("PO-DE-7781", OrderResponseStatus::Rejected));
}

#[test]
fn remittance_advices_in_both_standards() {
    let x12 = b"ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*000000078*0*P*>~GS*RA*ACME*GRIDSYNC*20261125*1432*78*X*004010~ST*820*0001~BPR*C*2357.5*C*ACH*CCP*01*011000015*DA*123456*1512345678**01*031000053*DA*987654*20261224~TRN*1*PAY-20261224-01~N1*PR*Acme Retail Inc*92*ACME-BUYER~N1*PE*Gridsync Supplies*92*GRIDSYNC~ENT*1~RMR*IV*INV-88001**2357.5*2370~ADX*-12.5*CS~SE*9*0001~GE*1*78~IEA*1*000000078~";
    let x = events(x12);
    let [Event::RemittanceAdviceReceived(x)] = x.as_slice() else { panic!("{x:?}") };
    assert_eq!((x.payment_reference.as_str(), x.total_amount.to_string()), ("PAY-20261224-01", "2357.5".to_owned()));
    assert_eq!(x.payment_date.map(|d| d.to_string()).as_deref(), Some("2026-12-24"));
    assert_eq!((x.payer.id.as_str(), x.payee.id.as_str(), x.currency.as_str()), ("ACME-BUYER", "GRIDSYNC", "USD"));
    assert_eq!(x.remittances.len(), 1);
    assert_eq!(x.remittances[0].invoice_number, "INV-88001");
    assert_eq!(x.remittances[0].adjustment_amount.map(|a| a.to_string()).as_deref(), Some("-12.5"));
    assert_eq!(x.remittances[0].adjustment_reason.as_deref(), Some("CS"));

    let edifact = b"UNB+UNOA:2+BUYER:14+GS:14+261224:0800+11'UNH+1+REMADV:D:96A:UN'BGM+481+PAY-DE-1+9'DTM+203:20261224:102'MOA+9:714.00'CUX+2:EUR:11'NAD+PR+5412345000013::9'DOC+380+INV-DE-5001'MOA+12:714.00'UNT+9+1'UNZ+1+11'";
    let e = events(edifact);
    let [Event::RemittanceAdviceReceived(e)] = e.as_slice() else { panic!("{e:?}") };
    assert_eq!(
        (e.payment_reference.as_str(), e.currency.as_str(), e.total_amount.to_string()),
        ("PAY-DE-1", "EUR", "714".to_owned())
    );
    assert_eq!(
        (e.remittances[0].invoice_number.as_str(), e.remittances[0].amount_paid.to_string()),
        ("INV-DE-5001", "714".to_owned())
    );
    assert_eq!(e.payer.id, "5412345000013");
}

#[test]
fn delivery_confirmations_in_both_standards() {
    let x12 = b"ISA*00*          *00*          *ZZ*CARRIER        *ZZ*GRIDSYNC       *261128*1600*U*00401*000000079*0*P*>~GS*QM*CARRIER*GRIDSYNC*20261128*1600*79*X*004010~ST*214*0001~B10*PRO-7781*SHIP-3321*DHLX~L11*4500012345*PO~AT7*D1*NS***20261128*1530~MS1*CHICAGO*IL~SE*6*0001~GE*1*79~IEA*1*000000079~";
    let x = events(x12);
    let [Event::DeliveryConfirmed(x)] = x.as_slice() else { panic!("{x:?}") };
    assert_eq!(
        (x.shipment_id.as_str(), x.status_code.as_str(), x.po_number.as_deref()),
        ("SHIP-3321", "D1", Some("4500012345"))
    );
    assert_eq!(x.delivered_at.to_string(), "2026-11-28T15:30:00.000Z");
    assert_eq!(x.location.as_deref(), Some("CHICAGO, IL"));
    assert_eq!(x.envelope.correlation_id, "CARRIER/PO/4500012345");

    let edifact = b"UNB+UNOA:2+CARRIER:14+GS:14+261128:1600+12'UNH+1+IFTSTA:D:96A:UN'BGM+23+ST-1+9'CNI+1+DN-5550'STS+1+21'RFF+ON:PO-DE-7781'DTM+334:20261128:102'LOC+10+:::Berlin'NAD+CN+++J. Schmidt'UNT+9+1'UNZ+1+12'";
    let e = events(edifact);
    let [Event::DeliveryConfirmed(e)] = e.as_slice() else { panic!("{e:?}") };
    assert_eq!((e.shipment_id.as_str(), e.status_code.as_str()), ("DN-5550", "21"));
    assert_eq!(e.delivered_at.to_string(), "2026-11-28T00:00:00.000Z");
    assert_eq!((e.location.as_deref(), e.received_by.as_deref()), (Some("Berlin"), Some("J. Schmidt")));
}

#[test]
fn functional_acknowledgements_in_both_standards() {
    let x12 = b"ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1500*U*00401*000000080*0*P*>~GS*FA*ACME*GRIDSYNC*20261125*1500*80*X*004010~ST*997*0001~AK1*IN*1205~AK2*810*0001~AK3*IT1*12**8~AK4*3*212*4*9,95~AK5*R*5~AK9*R*1*1*0~SE*8*0001~GE*1*80~IEA*1*000000080~";
    let x = events(x12);
    let [Event::FunctionalAckReceived(x)] = x.as_slice() else { panic!("{x:?}") };
    assert_eq!(
        (x.acknowledged_interchange_control_number.as_str(), x.status),
        ("1205", gridsync_schemas::events::AckStatus::Rejected)
    );
    assert_eq!(x.acknowledged_document_type.as_deref(), Some("810"));
    assert_eq!(
        x.errors,
        [
            "810 0001: segment IT1 at position 12: error 8",
            "810 0001: element 3 : error 4 (data \"9,95\")",
            "810 0001: transaction set R: 5",
        ]
    );

    let edifact = b"UNB+UNOA:2+ACME:14+GS:14+261125:1500+81'UNH+1+CONTRL:D:3:UN'UCI+ICR0042+GS:14+ACME:14+7'UCM+M0002+INVOIC:D:96A:UN+4+13'UCS+5+12'UNT+5+1'UNZ+1+81'";
    let e = events(edifact);
    let [Event::FunctionalAckReceived(e)] = e.as_slice() else { panic!("{e:?}") };
    // The interchange acknowledged (UCI 7), its one message rejected (UCM 4): rejected.
    assert_eq!(
        (e.acknowledged_interchange_control_number.as_str(), e.status),
        ("ICR0042", gridsync_schemas::events::AckStatus::Rejected)
    );
    assert_eq!(e.errors, ["INVOIC M0002: rejected, error 13", "INVOIC M0002: segment 5: error 12"]);
    assert_eq!(e.envelope.business_key, "ICR0042");

    let unknown =
        b"UNB+UNOA:2+ACME:14+GS:14+261125:1500+82'UNH+1+CONTRL:D:3:UN'UCI+ICR0042+GS:14+ACME:14+9'UNT+3+1'UNZ+1+82'";
    let err = map_interchange(&parse(unknown).unwrap()[0], &CTX).unwrap().rejected.remove(0);
    assert_eq!((err.kind, err.segment, err.element), (ErrorKind::InvalidValue, 3, Some(4)));
    assert_eq!(err.message, "UCI04 (action): \"9\" is not one of 7, 8, 4");
}

#[test]
fn unmapped_documents_become_exceptions_and_bad_values_are_precise() {
    let inventory = b"ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*000000001*0*P*>~GS*IB*ACME*GRIDSYNC*20261125*1432*1*X*004010~ST*846*0001~BIA*00*SI*INV1*20261125~SE*3*0001~GE*1*1~IEA*1*000000001~";
    let ix = parse(inventory).unwrap();
    let mapped = map_interchange(&ix[0], &CTX).unwrap();
    assert_eq!(mapped.skipped, [("846".to_owned(), "0001".to_owned())]);
    // Nothing vanishes: the set is rejected in the 997, and an exception says so.
    let [Event::DocumentExchangeException(exception)] = &mapped.events[..] else { panic!("{:?}", mapped.events) };
    assert_eq!((exception.kind, exception.document_type.as_deref()), (ExceptionKind::Other, Some("846")));
    assert!(exception.reason.starts_with("transaction set 846 0001 of interchange 000000001 is not one gridsync maps"));
    assert!(exception.reason.contains("AK5*R*1"), "{}", exception.reason);
    assert_eq!(exception.details.get("transaction").map(String::as_str), Some("0001"));
    let document = exception.envelope.trading_grid_document.as_ref().unwrap();
    assert_eq!((document.document_type.as_str(), document.transaction_control_number.as_str()), ("846", "0001"));
    assert_eq!(
        map_interchange(&ix[0], &CTX).unwrap().events[0].envelope().event_id,
        exception.envelope.event_id,
        "the same file again: the same exception, recognised downstream"
    );

    let bad_quantity = b"ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*000000001*0*P*>~GS*PO*ACME*GRIDSYNC*20261125*1432*1*X*004010~ST*850*0001~BEG*00*SA*PO1**20261125~PO1*1*twelve*EA*9.95~SE*4*0001~GE*1*1~IEA*1*000000001~";
    let ix = parse(bad_quantity).unwrap();
    let mapped = map_interchange(&ix[0], &CTX).unwrap();
    assert!(mapped.events.is_empty(), "the order is rejected on its own: {:?}", mapped.events);
    let err = &mapped.rejected[0];
    assert_eq!((err.kind, err.segment, err.element), (ErrorKind::InvalidValue, 5, Some(2)));
    assert_eq!(err.to_string(), "segment 5, element 2: PO102: \"twelve\" is not a decimal");

    let no_beg = b"ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*000000001*0*P*>~GS*PO*ACME*GRIDSYNC*20261125*1432*1*X*004010~ST*850*0001~SE*2*0001~GE*1*1~IEA*1*000000001~";
    let err = map_interchange(&parse(no_beg).unwrap()[0], &CTX).unwrap().rejected.remove(0);
    assert_eq!((err.kind, err.segment), (ErrorKind::MissingElement, 3));
    assert!(err.message.contains("850 0001 has no BEG segment"));
}

#[test]
fn the_same_document_keeps_its_ids_and_another_under_reused_control_numbers_gets_new_ones() {
    let original = fixture("x12_multi_interchange_crlf.edi");
    let ids = |bytes: &[u8]| events(bytes).iter().map(|e| e.envelope().event_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&original), ids(&original.clone()), "a resend is recognised");
    // The partner reuses every control number for an order with another quantity.
    let text = String::from_utf8(original.clone()).unwrap();
    let changed = text.replacen("PO1*1*120*", "PO1*1*121*", 1);
    assert_ne!(changed, text, "the fixture has the line the test changes");
    let (before, after) = (ids(&original), ids(changed.as_bytes()));
    assert_ne!(before[0], after[0], "the changed order is a new document");
    assert_eq!(before[1..], after[1..], "the documents left as they were keep their ids");
}

/// An X12 interchange of `orders` 850s; the orders `broken` have a quantity that is no number.
fn many_orders(orders: usize, broken: &[usize]) -> String {
    let mut edi = String::from(
        "ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*000000905*0*P*>~\n\
         GS*PO*ACME*GRIDSYNC*20261125*1432*905*X*004010~\n",
    );
    for n in 1..=orders {
        let quantity = if broken.contains(&n) { "many" } else { "3" };
        edi.push_str(&format!(
            "ST*850*{n:04}~\nBEG*00*SA*PO{n:05}**20261125~\nPO1*1*{quantity}*EA*9.95**VP*SKU-{n}~\nCTT*1~\nSE*5*{n:04}~\n"
        ));
    }
    edi.push_str(&format!("GE*{orders}*905~\nIEA*1*000000905~\n"));
    edi
}

/// Large enough to be mapped on every core (two halves on two): the same results, in order.
#[test]
fn a_large_interchange_maps_in_document_order_and_rejects_its_bad_documents_alone() {
    let edi = many_orders(1_000, &[]);
    let numbers: Vec<String> = events(edi.as_bytes())
        .into_iter()
        .map(|e| match e {
            Event::PurchaseOrderReceived(po) => po.po_number,
            other => panic!("{:?}", other.event_type()),
        })
        .collect();
    let expected: Vec<String> = (1..=1_000).map(|n| format!("PO{n:05}")).collect();
    assert_eq!(numbers, expected, "every order, in the file's order");

    // Bad orders in both halves: each rejected on its own, in the file's order; the rest map.
    let broken = many_orders(1_000, &[900, 300]);
    let interchanges = parse(broken.as_bytes()).unwrap();
    let mapped = map_interchange(&interchanges[0], &CTX).unwrap();
    let at: Vec<(ErrorKind, usize)> = mapped.rejected.iter().map(|e| (e.kind, e.segment)).collect();
    let po1 = |order: usize| 2 + (order - 1) * 5 + 3;
    assert_eq!(
        at,
        [(ErrorKind::InvalidValue, po1(300)), (ErrorKind::InvalidValue, po1(900))],
        "the PO1s of orders 300, 900"
    );
    assert_eq!(mapped.events.len(), 998);
}
