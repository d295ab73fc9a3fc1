//! EDI parse throughput, MB/s, on a large multi-interchange X12 file and an
//! EDIFACT file with release characters; and parse + map to events.
//!
//! `cargo bench -p gridsync-edi --bench parse`

// Tests and benchmarks state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gridsync_edi::{map_interchange, parse, MapContext};
use gridsync_schemas::Timestamp;

/// `interchanges` X12 interchanges of one 850 with `lines` PO1 lines each.
fn x12_file(interchanges: usize, lines: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..interchanges {
        let icn = format!("{:09}", i + 1);
        out.push_str(&format!(
            "ISA*00*          *00*          *ZZ*ACME           *ZZ*GRIDSYNC       *261125*1432*U*00401*{icn}*0*P*>~\n"
        ));
        out.push_str(&format!("GS*PO*ACME*GRIDSYNC*20261125*1432*{}*X*004010~\n", i + 1));
        let mut segments = vec![
            "ST*850*0001".to_owned(),
            format!("BEG*00*SA*PO{i:08}**20261125"),
            "CUR*BY*USD".to_owned(),
            "N1*BY*Acme Retail Inc*92*ACME-BUYER".to_owned(),
            "N1*ST*Acme DC Chicago*92*DC-CHI".to_owned(),
        ];
        for l in 0..lines {
            segments.push(format!("PO1*{}*{}*EA*{}.95**VP*SKU-{l:05}*IN*ACM-{l}", l + 1, l + 10, l % 90 + 1));
            segments.push(format!("PID*F****Widget number {l}, blue"));
        }
        segments.push(format!("CTT*{lines}"));
        segments.push(format!("SE*{}*0001", segments.len() + 1));
        for s in segments {
            out.push_str(&s);
            out.push_str("~\n");
        }
        out.push_str(&format!("GE*1*{}~\nIEA*1*{icn}~\n", i + 1));
    }
    out.into_bytes()
}

fn edifact_file(messages: usize, lines: usize) -> Vec<u8> {
    let mut out = String::from("UNA:+.? 'UNB+UNOC:3+5412345000013:14+4012345500004:14+261125:1432+ICR1'");
    for m in 0..messages {
        let mut segments =
            vec![format!("UNH+M{m}+ORDERS:D:96A:UN"), format!("BGM+220+PO-{m}+9"), "DTM+137:20261125:102".to_owned()];
        segments.push("FTX+AAI+++Deliver to dock 3?: rear entrance ?+ call ahead".to_owned());
        segments.push("NAD+BY+5412345000013::9++Acme Retail GmbH".to_owned());
        for l in 0..lines {
            segments.push(format!("LIN+{}++40008621{l:05}:SRS", l + 1));
            segments.push(format!("QTY+21:{}", l + 1));
            segments.push(format!("PRI+AAA:{}.5", l % 50 + 1));
        }
        segments.push(format!("UNT+{}+M{m}", segments.len() + 1));
        for s in segments {
            out.push_str(&s);
            out.push('\'');
        }
    }
    out.push_str(&format!("UNZ+{messages}+ICR1'"));
    out.into_bytes()
}

fn throughput(c: &mut Criterion) {
    let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
    for (name, file) in
        [("x12_2000_interchanges", x12_file(2000, 20)), ("edifact_2000_messages", edifact_file(2000, 20))]
    {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(file.len() as u64));
        group.bench_function("parse", |b| b.iter(|| parse(&file).map(|i| i.len())));
        group.bench_function("parse_and_map", |b| {
            b.iter(|| {
                parse(&file).map(|ixs| {
                    ixs.iter().map(|ix| map_interchange(ix, &ctx).map(|m| m.events.len()).unwrap_or(0)).sum::<usize>()
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
