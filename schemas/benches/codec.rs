//! Avro encode and decode per event type (single-object encoding), ns/event; and the largest
//! event types' datums read by serde_avro_fast (a fast serde Avro reader) beside gridsync's.
//!
//! `cargo bench -p gridsync-schemas --bench codec`

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gridsync_schemas::{
    codec,
    events::{Event, InvoiceReceived, PurchaseOrderReceived, ShipNoticeReceived},
    samples::sample,
    EventType,
};

fn codec_per_event_type(c: &mut Criterion) {
    let codec = match codec() {
        Ok(codec) => codec,
        Err(e) => panic!("schema set: {e}"),
    };
    let mut encode = c.benchmark_group("encode");
    encode.throughput(Throughput::Elements(1));
    for event_type in EventType::ALL {
        let event = sample(event_type, "ACME", 42);
        encode.bench_with_input(BenchmarkId::from_parameter(event_type.name()), &event, |b, e| {
            b.iter(|| codec.encode(e))
        });
    }
    encode.finish();

    let mut decode = c.benchmark_group("decode");
    decode.throughput(Throughput::Elements(1));
    for event_type in EventType::ALL {
        let bytes = codec.encode(&sample(event_type, "ACME", 42));
        decode.bench_with_input(BenchmarkId::from_parameter(event_type.name()), &bytes, |b, bytes| {
            b.iter(|| codec.decode(bytes))
        });
    }
    decode.finish();

    // The same datums (no framing) by both readers, into the same generated types.
    let mut datum = c.benchmark_group("decode_datum");
    datum.throughput(Throughput::Elements(1));
    let types = [EventType::PurchaseOrderReceived, EventType::InvoiceReceived, EventType::ShipNoticeReceived];
    for event_type in types {
        let event = sample(event_type, "ACME", 42);
        let bytes = codec.encode_datum(&event);
        let schema: serde_avro_fast::Schema = event_type.current_schema_json().parse().unwrap();
        let name = event_type.name();
        datum.bench_with_input(BenchmarkId::new("gridsync", name), &bytes, |b, bytes| {
            b.iter(|| codec.decode_datum(event_type, bytes).unwrap())
        });
        datum.bench_with_input(BenchmarkId::new("serde_avro_fast", name), &bytes, |b, bytes| {
            b.iter(|| {
                let decoded: Event = match event_type {
                    EventType::PurchaseOrderReceived => {
                        serde_avro_fast::from_datum_slice::<PurchaseOrderReceived>(bytes, &schema).unwrap().into()
                    }
                    EventType::InvoiceReceived => {
                        serde_avro_fast::from_datum_slice::<InvoiceReceived>(bytes, &schema).unwrap().into()
                    }
                    _ => serde_avro_fast::from_datum_slice::<ShipNoticeReceived>(bytes, &schema).unwrap().into(),
                };
                decoded
            })
        });
        // Both read the record back as it was written.
        let ours = codec.decode_datum(event_type, &bytes).unwrap();
        assert_eq!(ours, event, "{name}");
    }
    datum.finish();
}

criterion_group!(benches, codec_per_event_type);
criterion_main!(benches);
