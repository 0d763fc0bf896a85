//! The plan of `collectors.scan_profiles.refresh: report_schedule` as a
//! whole: how fresh the reports are when read, and the `max_age` the
//! stale-read alert compares with. (The per-profile read times are
//! families of `profiles.rs`.)

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::gauges::encode_gauges;
use crate::collect::ScheduleFigures;
use crate::report_schedule::READ_DELAY_BUCKETS;

/// Encodes a snapshot's [`ScheduleFigures`].
#[derive(Debug)]
pub(super) struct ScheduleCollector(pub(super) ScheduleFigures);

impl Collector for ScheduleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let delays = &self.0.read_delays;
        let buckets: Vec<(f64, u64)> = READ_DELAY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(delays.buckets)
            .collect();
        encoder
            .encode_descriptor(
                "avepoint_scan_report_read_delay",
                "Delay from a new report's lastUpdateTime to the scheduled read that first got it (refresh: report_schedule); a scrape serves it from then on.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(delays.sum, delays.count(), &buckets, None)?;
        encode_gauges(
            &mut encoder,
            "avepoint_scan_reports_max_age",
            "collectors.scan_profiles.max_age: every profile is read at least this often (refresh: report_schedule).",
            Some(&Unit::Seconds),
            [([("", ""); 0], self.0.max_age.as_secs_f64())],
        )
    }
}
