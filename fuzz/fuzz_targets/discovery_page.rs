//! The discovery decoders: arbitrary bytes as a page of customers and as a
//! page of scan profile summaries. Never panics; a page that decodes,
//! encoded again, decodes again.
#![no_main]

use avepoint_exporter::avepoint::model::{Customer, Page, ScanProfileSummary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = serde_json::from_slice::<Page<Customer>>(data) {
        let encoded = serde_json::to_vec(&page).expect("a decoded page encodes");
        serde_json::from_slice::<Page<Customer>>(&encoded).expect("an encoded page decodes");
    }
    if let Ok(page) = serde_json::from_slice::<Page<ScanProfileSummary>>(data) {
        let encoded = serde_json::to_vec(&page).expect("a decoded page encodes");
        let again = serde_json::from_slice::<Page<ScanProfileSummary>>(&encoded)
            .expect("an encoded page decodes");
        let times = |page: &Page<ScanProfileSummary>| {
            page.data
                .iter()
                .map(|p| p.modified_time)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            times(&page),
            times(&again),
            "modifiedTime changed in a round trip"
        );
    }
});
