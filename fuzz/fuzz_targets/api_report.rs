//! The API response decoder: arbitrary bytes as a scan profile report (the
//! body of both profile endpoints), and as an API timestamp.
//!
//! Properties, besides "never panics":
//! - a report decodes the same from a slice and from a reader (the
//!   exporter decodes report bodies as they stream in, counting the
//!   `changes` lists without keeping them);
//! - a timestamp that parses, formatted again, parses to the same instant.
#![no_main]

use avepoint_exporter::avepoint::ScanProfileReport;
use avepoint_exporter::avepoint::model::api_time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let from_slice = serde_json::from_slice::<ScanProfileReport>(data);
    let from_reader = serde_json::from_reader::<_, ScanProfileReport>(data);
    match (from_slice, from_reader) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "slice and reader decode differently"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("slice {:?} but reader {:?}", a.is_ok(), b.is_ok()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(at) = api_time::parse(text) {
            let formatted = api_time::format(at);
            let again = api_time::parse(&formatted).unwrap_or_else(|error| {
                panic!("{formatted:?} (from {text:?}) does not parse: {error}")
            });
            assert_eq!(at, again, "timestamp {text:?} changed in a round trip");
        }
    }
});
