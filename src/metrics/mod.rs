//! Encoding: every metric family the exporter exposes, and the scrape and
//! probe expositions built from them.
//!
//! Plain data in, text out: the per-profile gauges come from a
//! [`crate::collect::Snapshot`], discovery's from a
//! [`crate::discovery::DiscoveryState`], profile details from a
//! [`crate::profile_details::ProfileDetailsState`], and the process-long counters
//! ([`crate::avepoint::ApiMetrics`], [`ReloadMetrics`]) are registered into a
//! fresh registry per scrape. Must not import `web`, `serve` or `state`.

mod backup;
mod collector_health;
mod coverage;
mod customers;
mod details;
mod exporter;
mod exposition;
mod format;
mod gauges;
mod jobs;
mod lines;
mod process;
pub mod profiles;
mod schedule;
mod shared;
mod streamed;
mod subscriptions;
mod users;

pub use exporter::{BuildInfo, ReloadMetrics};
pub use exposition::{
    BodyKey, Exposition, ExpositionBody, ProbeSources, ScrapeSources, encode_probe, encode_scrape,
};
pub use format::Format;
pub use shared::{BodyChunk, BodyReader, Encoding, SharedBodies, SharedBody};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::ScanStatus;

    #[test]
    fn background_panics_are_a_counter_per_reader() {
        let sources = ScrapeSources {
            background_panics: vec![("backup_jobs", 1), ("discovery", 0)],
            ..ScrapeSources::default()
        };
        for format in [Format::OpenMetrics, Format::PrometheusText] {
            let text: String = encode_scrape(
                Default::default(),
                sources.clone(),
                &Default::default(),
                &ReloadMetrics::started(),
                &BuildInfo::default(),
                format,
            )
            .unwrap()
            .collect();
            assert!(text.contains("# TYPE avepoint_background_panics"), "{text}");
            assert!(text.contains("avepoint_background_panics_total{reader=\"backup_jobs\"} 1\n"));
            assert!(text.contains("avepoint_background_panics_total{reader=\"discovery\"} 0\n"));
        }
    }

    #[test]
    fn last_status_help_lists_every_code() {
        for status in ScanStatus::ALL {
            let entry = format!("{}={}", status.code(), status.description());
            assert!(profiles::LAST_STATUS_HELP.contains(&entry), "{entry}");
        }
    }
}
