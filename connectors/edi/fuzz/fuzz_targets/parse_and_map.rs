//! Any bytes: parsing and mapping must return (Ok or a precise error), never
//! panic or hang; and every acknowledgement gridsync writes for what parsed
//! (or for an envelope that did not) must itself parse.
#![no_main]

use gridsync_edi::{
    map_interchange, parse,
    write::{envelope_rejection, functional_ack, AckVerdict},
    MapContext,
};
use gridsync_schemas::Timestamp;
use libfuzzer_sys::fuzz_target;

fn must_parse(written: Option<Result<Vec<u8>, gridsync_edi::write::WriteError>>) {
    if let Some(Ok(bytes)) = written {
        if let Err(e) = parse(&bytes) {
            panic!("gridsync wrote an interchange it cannot read: {e}\n{}", String::from_utf8_lossy(&bytes));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let prepared = chrono::NaiveDateTime::default();
    match parse(data) {
        Ok(interchanges) => {
            let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
            for interchange in &interchanges {
                let verdict = map_interchange(interchange, &ctx).err();
                must_parse(Some(functional_ack(interchange, AckVerdict::Accepted, 1, prepared)));
                if let Some(error) = &verdict {
                    must_parse(Some(functional_ack(interchange, AckVerdict::Rejected(error), 2, prepared)));
                }
            }
        }
        Err(error) => must_parse(envelope_rejection(data, &error, 3, prepared)),
    }
});
