//! Avro encode and decode per event type (single-object encoding), ns/event.
//!
//! `cargo bench -p gridsync-schemas --bench codec`

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gridsync_schemas::{codec, samples::sample, EventType};

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
}

criterion_group!(benches, codec_per_event_type);
criterion_main!(benches);
