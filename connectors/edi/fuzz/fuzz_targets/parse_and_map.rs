//! Any bytes: parsing and mapping must return (Ok or a precise error), never
//! panic or hang.
#![no_main]

use gridsync_edi::{map_interchange, parse, MapContext};
use gridsync_schemas::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(interchanges) = parse(data) {
        let ctx = MapContext { file_name: None, ingested_at: Timestamp::from_millis(0) };
        for interchange in &interchanges {
            let _ = map_interchange(interchange, &ctx);
        }
    }
});
