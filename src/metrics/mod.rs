//! Encoding: every metric family the exporter exposes, and the scrape and
//! probe expositions built from them.
//!
//! Plain data in, text out: the per-profile gauges come from a
//! [`crate::collect::Snapshot`], discovery's from a
//! [`crate::discovery::DiscoveryState`], profile details from a
//! [`crate::profile_details::ProfileDetailsState`], and the process-long counters
//! ([`crate::avepoint::ApiMetrics`], [`ReloadMetrics`]) are registered into a
//! fresh registry per scrape. Must not import `web`, `serve` or `state`.

mod customers;
mod details;
mod exporter;
mod exposition;
mod format;
mod gauges;
mod process;
pub mod profiles;

pub use exporter::{BuildInfo, ReloadMetrics};
pub use exposition::{Exposition, encode_probe, encode_scrape};
pub use format::Format;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::ScanStatus;

    #[test]
    fn last_status_help_lists_every_code() {
        for status in ScanStatus::ALL {
            let entry = format!("{}={}", status.code(), status.description());
            assert!(profiles::LAST_STATUS_HELP.contains(&entry), "{entry}");
        }
    }
}
