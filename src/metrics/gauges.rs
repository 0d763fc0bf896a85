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
