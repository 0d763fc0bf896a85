//! The API response decoder: arbitrary bytes as a scan profile report (the
//! body of both profile endpoints), and as an API timestamp.
//!
//! Properties, besides "never panics":
//! - a report that decodes, encoded again (as the simulator does), decodes
//!   to the same report;
//! - a timestamp that parses, formatted again, parses to the same instant.
#![no_main]

use avepoint_exporter::avepoint::ScanProfileReport;
use avepoint_exporter::avepoint::model::api_time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = serde_json::from_slice::<ScanProfileReport>(data) {
        let encoded = serde_json::to_vec(&report).expect("a decoded report encodes");
        let again: ScanProfileReport =
            serde_json::from_slice(&encoded).expect("an encoded report decodes");
        assert_eq!(report, again, "report changed in a round trip");
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
