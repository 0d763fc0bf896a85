//! The exporter's own gauges: build info, the round that produced a
//! scrape, config reloads, and `/probe`'s success and duration.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::gauges::{NO_LABELS, encode_gauges};
use crate::version;

/// Outcome of config reloads, as Prometheus and blackbox_exporter report it.
#[derive(Debug, Clone, Default)]
pub struct ReloadMetrics {
    successful: Gauge,
    last_success: Gauge<f64, AtomicU64>,
}

impl ReloadMetrics {
    /// The state at start: the config loaded, now.
    pub fn started() -> Self {
        let metrics = Self::default();
        metrics.record(true);
        metrics
    }

    /// Record a reload attempt.
    pub fn record(&self, success: bool) {
        self.successful.set(i64::from(success));
        if success {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// Whether the last reload worked.
    pub fn last_successful(&self) -> bool {
        self.successful.get() == 1
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "avepoint_exporter_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            self.successful.clone(),
        );
        registry.register_with_unit(
            "avepoint_exporter_config_last_reload_success_timestamp",
            "Timestamp of the last successful configuration load or reload",
            Unit::Seconds,
            self.last_success.clone(),
        );
    }
}

/// What `avepoint_exporter_build_info` says about the binary: the same as
/// `--version` (see [`crate::version`]).
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Git revision the binary was built from, or `unknown`.
    pub revision: &'static str,
    /// Git branch, `HEAD` for a tag build, or `unknown`.
    pub branch: &'static str,
    /// Commit date (UTC), or `unknown`.
    pub build_date: &'static str,
    /// `rustc --version` of the compiler.
    pub rustc_version: &'static str,
}

impl Default for BuildInfo {
    fn default() -> Self {
        Self {
            version: version::VERSION,
            revision: version::REVISION,
            branch: version::BRANCH,
            build_date: version::BUILD_DATE,
            rustc_version: version::RUSTC_VERSION,
        }
    }
}

/// `avepoint_probe_*`: did the probe fetch every profile, and how long it took.
#[derive(Debug)]
pub(super) struct ProbeCollector {
    pub(super) success: bool,
    pub(super) duration: Duration,
}

impl Collector for ProbeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            &mut encoder,
            "avepoint_probe_success",
            "1 when every scan profile of the probed customer was fetched, else 0.",
            None,
            [(NO_LABELS, i64::from(self.success))],
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_probe_duration",
            "How long the probe took.",
            Some(&Unit::Seconds),
            [(NO_LABELS, self.duration.as_secs_f64())],
        )
    }
}

/// Exporter-level gauges that describe the round itself.
#[derive(Debug)]
pub(super) struct ExporterCollector {
    pub(super) collect_duration: Duration,
    pub(super) targets: usize,
    pub(super) build: BuildInfo,
}

impl Collector for ExporterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            &mut encoder,
            "avepoint_exporter_build_info",
            "A metric with a constant '1' value labeled by version, revision, branch, build date and rustc version from which avepoint-exporter was built.",
            None,
            [(
                [
                    ("version", self.build.version),
                    ("revision", self.build.revision),
                    ("branch", self.build.branch),
                    ("build_date", self.build.build_date),
                    ("rustc_version", self.build.rustc_version),
                ],
                1_i64,
            )],
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_exporter_collect_duration",
            "Wall time of the collection round that produced this scrape.",
            Some(&Unit::Seconds),
            [(NO_LABELS, self.collect_duration.as_secs_f64())],
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_exporter_targets",
            "Scan profiles the exporter knows (configured and discovered).",
            None,
            [(NO_LABELS, self.targets as i64)],
        )?;
        Ok(())
    }
}

/// `avepoint_background_panics_total{reader}`: runs of each background
/// reader that panicked (every reader started so far, zero included).
#[derive(Debug)]
pub(super) struct BackgroundPanics(pub(super) Vec<(&'static str, u64)>);

impl Collector for BackgroundPanics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        if self.0.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "avepoint_background_panics",
            "Runs of a background reader (discovery, profile details, a backup collector) that panicked; the reader kept its last data and ran again on its next schedule.",
            None,
            MetricType::Counter,
        )?;
        for (reader, panics) in &self.0 {
            let labels = [("reader", *reader)];
            ConstCounter::new(*panics).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
