//! Partners' real files are less tidy than our fixtures (see `fixtures/real-world/README.md` for
//! the public samples whose habits these files reproduce): every product id a line carries is
//! kept with its qualifier, none is invented, bill-to/ship-to/remit-to parties are kept, and an
//! id a party is sent without stays absent.

// Tests state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gridsync_edi::{map_interchange, parse, MapContext};
use gridsync_schemas::{
    events::{Event, InvoiceReceived, OrderLine, Party, PurchaseOrderReceived},
    Timestamp,
};

const CTX: MapContext<'static> =
    MapContext { file_name: Some("inbound/file.edi"), ingested_at: Timestamp::from_millis(1_795_000_000_000) };

fn events(name: &str) -> Vec<Event> {
    let bytes = std::fs::read(format!("{}/tests/fixtures/real-world/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    parse(&bytes).unwrap().iter().flat_map(|ix| map_interchange(ix, &CTX).unwrap().events).collect()
}

fn orders(name: &str) -> Vec<PurchaseOrderReceived> {
    events(name)
        .into_iter()
        .map(|e| match e {
            Event::PurchaseOrderReceived(po) => po,
            other => panic!("{:?}", other.event_type()),
        })
        .collect()
}

fn invoice(name: &str) -> InvoiceReceived {
    match events(name).as_slice() {
        [Event::InvoiceReceived(invoice)] => invoice.clone(),
        other => panic!("{other:?}"),
    }
}

/// A line as (line number, product id, buyer's id, every id as `qualifier:id`).
fn ids(line: &OrderLine) -> (&str, &str, Option<&str>, Vec<String>) {
    let all = line.product_ids.iter().map(|p| format!("{}:{}", p.qualifier, p.id)).collect();
    (&line.line_number, &line.product_id, line.buyer_product_id.as_deref(), all)
}

fn party(p: &Party) -> (&str, Option<&str>, Option<&str>) {
    (&p.id, p.id_qualifier.as_deref(), p.name.as_deref())
}

#[test]
fn x12_orders_by_vendor_style_and_upc_shipped_to_a_store_named_only_by_id() {
    let orders = orders("x12_850_ship_to_by_id_upc_and_vendor_style.edi");
    assert_eq!(orders.iter().map(|o| o.po_number.as_str()).collect::<Vec<_>>(), ["7700410021", "7700410022"]);
    let first = &orders[0];
    assert_eq!(
        first.lines.iter().map(ids).collect::<Vec<_>>(),
        [
            ("1", "41822", None, vec!["VA:41822".to_owned(), "UP:00073911418222".to_owned()]),
            ("2", "40977", None, vec!["VA:40977".to_owned(), "UP:00073911409770".to_owned()]),
        ]
    );
    assert_eq!(first.ship_to.as_ref().map(party), Some(("0412", Some("92"), None)), "an id and no name");
    assert_eq!(party(&first.buyer), ("188810045OFD", None, None), "no N1*BY: the interchange sender");
    assert_eq!(first.bill_to, None);
    assert_eq!(first.requested_delivery_date.map(|d| d.to_string()).as_deref(), Some("2026-12-08"));
}

#[test]
fn x12_lines_without_numbers_or_seller_ids_keep_what_they_carry_and_invent_nothing() {
    let [po] = orders("x12_850_no_line_numbers_buyer_catalog_case_code_bill_to.edi").try_into().unwrap();
    assert_eq!(
        po.lines.iter().map(ids).collect::<Vec<_>>(),
        [
            ("1", "CAT-77812", Some("CAT-77812"), vec!["CB:CAT-77812".to_owned()]),
            ("2", "10012345000017", None, vec!["UA:10012345000017".to_owned()]),
            ("3", "4006381333931", None, vec!["EN:4006381333931".to_owned(), "SK:NW-SKU-3391".to_owned()]),
            ("4", "", None, vec![]),
        ],
        "line numbers by position; a line with no id has none, not its line number"
    );
    assert_eq!(po.bill_to.as_ref().map(party), Some(("NW-AP-01", Some("92"), Some("Northwind Accounts Payable"))));
    assert_eq!(po.ship_to.as_ref().map(party), Some(("", None, Some("Northwind Store 12"))), "a name, no id");
    assert_eq!(party(&po.buyer), ("NORTHWIND", None, None));
    assert_eq!(
        po.total_amount.map(|t| t.to_string()).as_deref(),
        Some("544.4"),
        "10 × 18.40 + 4 × 22.00 + 24 × 3.10 + 2 × 99.00"
    );
}

#[test]
fn x12_invoice_names_bill_to_and_remit_to_only() {
    let invoice = invoice("x12_810_bill_to_remit_to_no_buyer_or_seller.edi");
    let bill_to = ("NW-AP-01", Some("92"), Some("Northwind Accounts Payable"));
    assert_eq!(invoice.bill_to.as_ref().map(party), Some(bill_to));
    assert_eq!(party(&invoice.buyer), bill_to, "no buying party: the bill-to party buys");
    let remit_to = ("GLX-LOCKBOX", Some("92"), Some("Globex Receivables"));
    assert_eq!(invoice.remit_to.as_ref().map(party), Some(remit_to));
    assert_eq!(party(&invoice.seller), remit_to, "no selling party: the remit-to party is paid");
    assert_eq!(invoice.ship_to.as_ref().map(party), Some(("", None, Some("Northwind Store 12"))));
    assert_eq!(
        invoice.lines.iter().map(ids).collect::<Vec<_>>(),
        [("1", "CAT-77812", Some("CAT-77812"), vec!["CB:CAT-77812".to_owned()])]
    );
    assert_eq!(invoice.total_amount.to_string(), "184");
}

#[test]
fn edifact_order_keeps_lin_and_pia_ids_with_their_codes_and_the_invoicee() {
    let [po] = orders("edifact_orders_d96a_invoicee_manufacturer_id.edi").try_into().unwrap();
    assert_eq!(po.po_number, "HF-20261201-7");
    assert_eq!(
        po.lines.iter().map(ids).collect::<Vec<_>>(),
        [
            ("1", "88301", Some("HF-1182"), vec!["MF:88301".to_owned(), "BP:HF-1182".to_owned()]),
            ("2", "5412345998811", None, vec!["EN:5412345998811".to_owned(), "SA:A-4471".to_owned()]),
            ("3", "HF-2290", Some("HF-2290"), vec!["IN:HF-2290".to_owned()]),
        ]
    );
    assert_eq!(party(&po.buyer), ("5412345000013", Some("9"), Some("HARBOR FOODS")));
    assert_eq!(po.bill_to.as_ref().map(party), Some(("5412345000020", Some("9"), Some("HARBOR FOODS ACCOUNTS"))));
    assert_eq!(po.ship_to.as_ref().map(party), Some(("5412345000037", Some("9"), Some("HARBOR FOODS DC"))));
}

#[test]
fn edifact_invoice_with_parties_named_without_ids_and_uncoded_item_numbers() {
    let invoice = invoice("edifact_invoic_d93a_parties_named_without_ids.edi");
    assert_eq!(invoice.invoice_number, "2612-0042");
    assert_eq!(party(&invoice.seller), ("", None, Some("Radhaus Keller")), "a name is not an id");
    assert_eq!(party(&invoice.buyer), ("", None, Some("Gridsync Europe GmbH")));
    assert_eq!(
        invoice.lines.iter().map(|l| (ids(l), l.description.as_deref())).collect::<Vec<_>>(),
        [
            (("1", "4711.001", None, vec![":4711.001".to_owned()]), Some("Fahrrad, Damen")),
            (("2", "4711.003", None, vec![":4711.003".to_owned()]), Some("Ersatzventil")),
        ]
    );
    assert_eq!(invoice.total_amount.to_string(), "901.43", "MOA+128");
    assert_eq!(invoice.tax_amount.map(|t| t.to_string()).as_deref(), Some("143.93"));
    assert_eq!(invoice.po_number.as_deref(), Some("RH-PO-0042"));
}
