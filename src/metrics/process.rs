//! Standard `process_*` metrics, read from /proc on Linux.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::gauges::{NO_LABELS, encode_gauges};

/// Standard `process_*` metrics of this process, read from /proc on Linux.
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    #[cfg(target_os = "linux")]
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        // /proc can be unreadable (hardened containers); then these are
        // simply absent rather than failing the scrape.
        let Ok(process) = procfs::process::Process::myself() else {
            return Ok(());
        };
        if let Ok(stat) = process.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
            let metric = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            cpu.encode(metric)?;
            let page_size = procfs::page_size();
            encode_gauges(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(&Unit::Bytes),
                [(NO_LABELS, stat.rss.saturating_mul(page_size) as f64)],
            )?;
            encode_gauges(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(&Unit::Bytes),
                [(NO_LABELS, stat.vsize as f64)],
            )?;
            if let Ok(boot) = procfs::boot_time_secs() {
                encode_gauges(
                    &mut encoder,
                    "process_start_time",
                    "Start time of the process since unix epoch in seconds.",
                    Some(&Unit::Seconds),
                    [(NO_LABELS, boot as f64 + stat.starttime as f64 / ticks)],
                )?;
            }
        }
        if let Ok(open) = process.fd_count() {
            encode_gauges(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                [(NO_LABELS, open as i64)],
            )?;
        }
        if let Ok(limits) = process.limits()
            && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
        {
            encode_gauges(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                [(NO_LABELS, max as f64)],
            )?;
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn encode(&self, _encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}
