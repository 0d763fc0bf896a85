//! The discovery decoders: arbitrary bytes as a page of customers and as a
//! page of scan profile summaries, and as a profile's details. Never
//! panics; what decodes from a slice decodes the same from a reader.
#![no_main]

use avepoint_exporter::avepoint::ScanProfileDetails;
use avepoint_exporter::avepoint::model::{Customer, Page, ScanProfileSummary};
use libfuzzer_sys::fuzz_target;

/// Both decodes of `$data` as `$type`, compared by their `Debug` text (the
/// types have no `PartialEq`). A macro: the bound would need `serde`.
macro_rules! same_both_ways {
    ($type:ty, $data:expr) => {{
        let from_slice = serde_json::from_slice::<$type>($data).map(|v| format!("{v:?}"));
        let from_reader = serde_json::from_reader::<_, $type>($data).map(|v| format!("{v:?}"));
        match (from_slice, from_reader) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "slice and reader decode differently"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("slice {:?} but reader {:?}", a.is_ok(), b.is_ok()),
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    same_both_ways!(Page<Customer>, data);
    same_both_ways!(Page<ScanProfileSummary>, data);
    same_both_ways!(ScanProfileDetails, data);
});
