//! The per-customer collectors' own health, on `/metrics` only: whether
//! the subscriptions read worked, when each collector last read every
//! customer, and how often a refresh found more than it keeps.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::customers::encode_limit_hits;
use super::gauges::{NO_LABELS, encode_gauges};
use crate::backup::BackupSnapshot;

/// When each collector last read every customer (`/metrics` only).
#[derive(Debug)]
pub(super) struct CollectorHealth(pub(super) BackupSnapshot);

impl Collector for CollectorHealth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let seconds = |at: Option<std::time::SystemTime>| {
            at.and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64())
        };
        let snapshot = &self.0;
        encode_gauges(
            &mut encoder,
            "avepoint_subscriptions_up",
            "1 when the subscriptions collector's last read of the service subscriptions worked, 0 when it failed (every avepoint_subscription_* series is then absent).",
            None,
            snapshot
                .subscriptions
                .as_ref()
                .and_then(|s| s.up)
                .map(|up| (NO_LABELS, i64::from(up))),
        )?;
        // Each enabled collector's last complete read and bound hits.
        let collectors = [
            (
                "backup_jobs",
                snapshot
                    .jobs
                    .as_ref()
                    .map(|s| (s.last_success, s.limit_hits)),
            ),
            (
                "backup_coverage",
                snapshot
                    .coverage
                    .as_ref()
                    .map(|s| (s.last_success, s.limit_hits)),
            ),
            (
                "protected_users",
                snapshot
                    .users
                    .as_ref()
                    .map(|s| (s.last_success, s.limit_hits)),
            ),
            (
                "subscriptions",
                snapshot
                    .subscriptions
                    .as_ref()
                    .map(|s| (s.last_success, s.limit_hits)),
            ),
        ];
        let rows =
            collectors.map(|(collector, state)| (collector, seconds(state.and_then(|(at, _)| at))));
        encode_gauges(
            &mut encoder,
            "avepoint_collector_last_success_timestamp",
            "End of the collector's last refresh that read every customer, as a Unix timestamp.",
            Some(&Unit::Seconds),
            rows.into_iter()
                .filter_map(|(collector, at)| Some(([("collector", collector)], at?))),
        )?;
        let hits = collectors.map(|(collector, state)| (collector, state.map(|(_, hits)| hits)));
        let labels = hits.map(|(collector, _)| [("collector", collector)]);
        let groups: Vec<(&[(&str, &str)], _)> = labels
            .iter()
            .zip(hits)
            .filter_map(|(labels, (_, hits))| Some((&labels[..], hits?)))
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
