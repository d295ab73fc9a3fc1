//! The event contract: every type round-trips, framing is the Avro spec's,
//! and old and new schema versions read each other's records.

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use apache_avro::{headers::HeaderBuilder, types::Value};
use gridsync_schemas::{
    codec, compat,
    events::{Event, OrderLine, PurchaseOrderReceived},
    samples::sample,
    CodecError, EventType, Framing,
};

#[test]
fn every_event_type_round_trips_through_single_object_encoding() {
    let codec = codec().unwrap();
    for event_type in EventType::ALL {
        let event = sample(event_type, "ACME", 7);
        let bytes = codec.encode(&event);
        let decoded = codec.decode(&bytes).unwrap();
        assert_eq!(decoded.event, event, "{}", event_type.name());
        assert_eq!(decoded.writer_version, codec.current(event_type).version);
        assert_eq!(decoded.event.envelope().event_type, event_type.name());
    }
}

/// The generated encoder (what every producer writes with) and apache-avro's writer give the
/// same bytes: for every event type's sample, and for the same events with every optional
/// field null and every array and map empty. But for the order of a map's entries: apache-avro
/// writes a map from a HashMap, in an order that changes from run to run, so where the bytes
/// differ they must be as long and read back (by apache-avro) as the same value.
#[test]
fn the_generated_encoder_writes_what_apache_avro_writes() {
    let codec = codec().unwrap();
    for event_type in EventType::ALL {
        let current = codec.current(event_type);
        let event = sample(event_type, "ACME", 11);
        let (ours, theirs) = (codec.encode(&event), codec.encode_as(&event, current).unwrap());
        if ours != theirs {
            assert_eq!(ours.len(), theirs.len(), "{}", event_type.name());
            let read = |bytes: &[u8]| codec.decode_as(bytes, &current.schema).unwrap();
            assert_eq!(read(&ours), read(&theirs), "{}", event_type.name());
        }

        let full = apache_avro::to_value(&event).unwrap().resolve(&current.schema).unwrap();
        let sparse = emptied(full.clone());
        assert_ne!(sparse, full, "{} has nothing optional", event_type.name());
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&current.schema).build().unwrap();
        let mut by_apache_avro = codec::SINGLE_OBJECT_MAGIC.to_vec();
        by_apache_avro.extend_from_slice(&current.fingerprint.0);
        by_apache_avro.extend(writer.write_value_to_vec(sparse).unwrap());
        let sparse_event = codec.decode(&by_apache_avro).unwrap().event;
        assert_eq!(codec.encode(&sparse_event), by_apache_avro, "{} emptied", event_type.name());
    }
}

/// The generated reader (what every consumer reads the current version with) reads what
/// apache-avro reads: the same value from apache-avro's bytes, full and with every optional
/// field null and every collection empty; and every datum cut short is an error, never a panic
/// or a value.
#[test]
fn the_generated_reader_reads_what_apache_avro_reads() {
    let codec = codec().unwrap();
    for event_type in EventType::ALL {
        let current = codec.current(event_type);
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&current.schema).build().unwrap();
        let full = apache_avro::to_value(sample(event_type, "ACME", 13)).unwrap().resolve(&current.schema).unwrap();
        for value in [full.clone(), emptied(full)] {
            let mut bytes = codec::SINGLE_OBJECT_MAGIC.to_vec();
            bytes.extend_from_slice(&current.fingerprint.0);
            let header = bytes.len();
            bytes.extend(writer.write_value_to_vec(value.clone()).unwrap());
            let ours = codec.decode(&bytes).unwrap().event;
            let ours_as_value = apache_avro::to_value(&ours).unwrap().resolve(&current.schema).unwrap();
            assert_eq!(ours_as_value, codec.decode_as(&bytes, &current.schema).unwrap(), "{}", event_type.name());
            assert_eq!(ours_as_value, value, "{}", event_type.name());
            for end in header..bytes.len() {
                assert!(
                    matches!(codec.decode(&bytes[..end]), Err(CodecError::Decode { .. })),
                    "{} cut at {end} of {}",
                    event_type.name(),
                    bytes.len()
                );
            }
        }
    }
}

/// `value` with every union null and every array and map empty.
fn emptied(value: Value) -> Value {
    match value {
        Value::Union(_, _) => Value::Union(0, Box::new(Value::Null)),
        Value::Array(_) => Value::Array(vec![]),
        Value::Map(_) => Value::Map(Default::default()),
        Value::Record(fields) => Value::Record(fields.into_iter().map(|(name, v)| (name, emptied(v))).collect()),
        other => other,
    }
}

#[test]
fn framing_is_the_avro_single_object_encoding() {
    let codec = codec().unwrap();
    for event_type in EventType::ALL {
        let bytes = codec.encode(&sample(event_type, "ACME", 1));
        let current = codec.current(event_type);
        // apache-avro's own header builder computes the same 10 bytes.
        let expected = apache_avro::headers::RabinFingerprintHeader::from_schema(&current.schema).build_header();
        assert_eq!(&bytes[..10], expected.as_slice(), "{}", event_type.name());
        assert_eq!(Framing::sniff(&bytes).unwrap().0, Framing::SingleObject(current.fingerprint));
    }
}

#[test]
fn bad_framing_gives_precise_errors() {
    let codec = codec().unwrap();
    let good = codec.encode(&sample(EventType::InvoiceReceived, "ACME", 1));
    assert!(matches!(codec.decode(&[]), Err(CodecError::Empty)));
    assert!(matches!(codec.decode(b"{\"json\":1}"), Err(CodecError::UnknownFraming(b'{'))));
    assert!(matches!(codec.decode(&good[..6]), Err(CodecError::Truncated("fingerprint"))));
    assert!(matches!(codec.decode(&[0, 0, 0]), Err(CodecError::Truncated("schema id"))));
    assert!(matches!(codec.decode(&[0, 0, 0, 0, 7, 2]), Err(CodecError::RegistryRequired(7))));
    let mut unknown = good.clone();
    unknown[2] ^= 0xFF;
    assert!(matches!(codec.decode(&unknown), Err(CodecError::UnknownFingerprint(_))));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(codec.decode(&trailing), Err(CodecError::TrailingBytes(1))));
    assert!(matches!(codec.decode(&good[..good.len() - 3]), Err(CodecError::Decode { .. })));
}

#[test]
fn a_record_written_with_v1_is_read_by_the_current_reader() {
    let codec = codec().unwrap();
    let v1 = codec.version(EventType::PurchaseOrderReceived, 1).unwrap();
    assert!(!v1.current);
    let Event::PurchaseOrderReceived(po) = sample(EventType::PurchaseOrderReceived, "ACME", 3) else { unreachable!() };
    assert!(po.requested_delivery_date.is_some());
    let bytes = codec.encode_as(&po.clone().into(), v1).unwrap();
    assert_eq!(&bytes[2..10], &v1.fingerprint.0);

    let decoded = codec.decode(&bytes).unwrap();
    assert_eq!(decoded.writer_version, 1);
    // The fields v1 does not have take the reader's defaults; everything else survives.
    let lines = po.lines.iter().cloned().map(|line| OrderLine { product_ids: Vec::new(), ..line }).collect();
    let expected = PurchaseOrderReceived { requested_delivery_date: None, bill_to: None, lines, ..po };
    assert_eq!(decoded.event, Event::PurchaseOrderReceived(expected));
}

#[test]
fn a_record_written_with_the_current_schema_is_read_by_a_v1_reader() {
    let codec = codec().unwrap();
    let v1 = codec.version(EventType::PurchaseOrderReceived, 1).unwrap();
    let event = sample(EventType::PurchaseOrderReceived, "ACME", 4);
    let bytes = codec.encode(&event);
    let Value::Record(fields) = codec.decode_as(&bytes, &v1.schema).unwrap() else { panic!("not a record") };
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"requested_delivery_date"));
    assert!(fields.iter().any(|(n, v)| n == "po_number" && *v == Value::String("PO000004".into())));
    assert_eq!(fields.len(), 10);
}

#[test]
fn the_kept_schemas_are_compatible_and_frozen() {
    let report = compat::check(codec().unwrap());
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    // Earlier versions kept: PurchaseOrderReceived v1 and v2 (v3 current); InvoiceReceived,
    // OrderResponseReceived and ShipNoticeReceived v1 (v2 current, with the lines' product ids);
    // DocumentExchangeException v1 (v2 current, whose ExceptionKind gained UNPUBLISHABLE and a
    // default: consumers are upgraded first, as the one note says).
    assert_eq!(report.pairs_checked, 6);
    assert_eq!(report.upgrade_notes.len(), 1, "{:?}", report.upgrade_notes);
    assert!(report.upgrade_notes[0].contains("ExceptionKind.UNPUBLISHABLE"), "{:?}", report.upgrade_notes);
}

#[test]
fn events_print_as_json_with_exact_decimals_and_dates() {
    let json = sample(EventType::InvoiceReceived, "ACME", 5).to_json().unwrap();
    assert_eq!(json["total_amount"], "4325.88");
    assert_eq!(json["invoice_date"], "2026-11-05");
    assert_eq!(json["envelope"]["source_system"], "TRADING_GRID");
    assert_eq!(json["lines"][0]["unit_price"], "20");
}
