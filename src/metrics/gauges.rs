//! Writing a gauge family from rows of plain data: the helper every
//! hand-encoded collector of `metrics/` shares.

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// The label set of a family without labels.
pub(super) const NO_LABELS: [(&str, &str); 0] = [];

/// Encode one gauge family from rows of (labels, value); families without
/// rows are left out.
pub(super) fn encode_gauges<L, V, I>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: I,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
    V: prometheus_client::encoding::EncodeGaugeValue,
    I: IntoIterator<Item = (L, V)>,
{
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in rows {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// A count as a gauge value: past `i64::MAX` it stays there, never wraps.
pub(super) fn saturating(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A background task's "last complete refresh" gauge (`<name>_seconds`, a
/// Unix timestamp), left out until there was one.
pub(super) fn encode_last_success(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    at: Option<std::time::SystemTime>,
) -> Result<(), std::fmt::Error> {
    let seconds = at.map(|at| {
        at.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    });
    encode_gauges(
        encoder,
        name,
        help,
        Some(&Unit::Seconds),
        seconds.map(|seconds| (NO_LABELS, seconds)),
    )
}

/// A counter without labels from a plain number (`<name>_total`).
pub(super) fn encode_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    use prometheus_client::encoding::EncodeMetric;
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    prometheus_client::metrics::counter::ConstCounter::new(value).encode(metric)
}
