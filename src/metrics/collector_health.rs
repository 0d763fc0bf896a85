//! The per-customer collectors' own health, on `/metrics` only: each
//! collector's own families (the subscriptions read's `up`), when each
//! collector last read every customer, and how often a refresh found more
//! than it keeps.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::{Registry, Unit};

use super::customers::encode_limit_hits;
use super::gauges::encode_gauges;
use crate::backup::BackupSnapshot;

/// Register the health of every collector of `snapshot`: each one's own
/// families, then the ones they share.
pub(super) fn register(registry: &mut Registry, snapshot: &BackupSnapshot) {
    for (_, state) in &snapshot.collectors {
        Arc::clone(state).register_health(registry);
    }
    registry.register_collector(Box::new(CollectorHealth(snapshot.clone())));
}

/// When each collector last read every customer, and its bound hits
/// (`/metrics` only).
#[derive(Debug)]
pub(super) struct CollectorHealth(pub(super) BackupSnapshot);

impl Collector for CollectorHealth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let seconds = |at: Option<std::time::SystemTime>| {
            at.and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64())
        };
        // Each running collector's last complete read and bound hits.
        let collectors = &self.0.collectors;
        encode_gauges(
            &mut encoder,
            "avepoint_collector_last_success_timestamp",
            "End of the collector's last refresh that read every customer, as a Unix timestamp.",
            Some(&Unit::Seconds),
            collectors.iter().filter_map(|(kind, state)| {
                Some(([("collector", kind.name())], seconds(state.last_success())?))
            }),
        )?;
        let labels: Vec<[(&str, &str); 1]> = collectors
            .iter()
            .map(|(kind, _)| [("collector", kind.name())])
            .collect();
        let groups: Vec<(&[(&str, &str)], _)> = labels
            .iter()
            .zip(collectors)
            .map(|(labels, (_, state))| (&labels[..], state.limit_hits()))
            .collect();
        encode_limit_hits(
            &mut encoder,
            "avepoint_backup_limit_hits",
            "How often a backup collector's refresh found more than it keeps, by bound: page_size (a page held more items than asked for; the rest was ignored), max_items_per_list (a customer's list was cut at discovery.max_items_per_list), max_rows_per_customer (a customer's rows past 64 were folded into one row labelled other).",
            &groups,
            &["page_size", "max_items_per_list", "max_rows_per_customer"],
        )
    }
}
