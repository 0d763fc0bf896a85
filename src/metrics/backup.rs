//! The per-customer collectors' families, whichever collectors run, per
//! customer (on `/metrics`, or the customer's `/probe`): each collector's
//! own (`jobs.rs`, `coverage.rs`, `users.rs`, `subscriptions.rs`, each
//! registered through its state's
//! [`Families`](crate::backup::Families)) around the
//! `avepoint_backup_collector_up` they share. Their own health is
//! `collector_health.rs`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::gauges::encode_gauges;
use crate::backup::{BackupSnapshot, CollectedState, CollectorState, CustomerData};
use crate::config::LastStatusState;

/// Register the families of every collector of `snapshot`, for every
/// customer or only `customer` (a probe).
pub(super) fn register(
    registry: &mut Registry,
    snapshot: BackupSnapshot,
    states: LastStatusState,
    customer: Option<String>,
) {
    let placed = |before_up: bool| -> Vec<Arc<dyn CollectedState>> {
        snapshot
            .collectors
            .iter()
            .filter(|(_, state)| state.families_before_up() == before_up)
            .map(|(_, state)| Arc::clone(state))
            .collect()
    };
    let (first, then) = (placed(true), placed(false));
    for state in first {
        state.register(registry, customer.as_deref(), states);
    }
    let up = CustomersUp {
        snapshot,
        customer: customer.clone(),
    };
    registry.register_collector(Box::new(up));
    for state in then {
        state.register(registry, customer.as_deref(), states);
    }
}

/// One collector state's families for every customer (`/metrics`) or only
/// the probed one: each per-customer collector's encoder is an `impl
/// Collector for Scoped<ItsState>`, so registering one is one line.
#[derive(Debug)]
pub(super) struct Scoped<S> {
    pub(super) state: Arc<S>,
    /// `Some`: only this customer (a probe).
    pub(super) customer: Option<String>,
    /// `metrics.last_status_state`, for a family with a state set.
    pub(super) states: LastStatusState,
}

impl<S> Scoped<S>
where
    Scoped<S>: Collector,
{
    /// Register `state`'s families, for every customer or only `customer`.
    pub(super) fn register(
        state: Arc<S>,
        registry: &mut Registry,
        customer: Option<&str>,
        states: LastStatusState,
    ) {
        registry.register_collector(Box::new(Scoped {
            state,
            customer: customer.map(str::to_owned),
            states,
        }));
    }
}

/// The customers of a collector's state, all or only `customer`.
pub(super) fn wanted<'a, T>(
    state: &'a CollectorState<T>,
    customer: Option<&'a str>,
) -> impl Iterator<Item = (&'a String, &'a CustomerData<T>)> + 'a {
    state
        .customers
        .iter()
        .filter(move |(id, _)| customer.is_none_or(|only| only == id.as_str()))
}

/// `avepoint_backup_collector_up`: whether each collector's last read of
/// each customer worked, for every customer or only one.
#[derive(Debug)]
struct CustomersUp {
    snapshot: BackupSnapshot,
    /// `Some`: only this customer (a probe).
    customer: Option<String>,
}

impl Collector for CustomersUp {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let only = self.customer.as_deref();
        let rows = self.snapshot.collectors.iter().flat_map(|(kind, state)| {
            state
                .customers_up()
                .filter(move |(customer, _)| only.is_none_or(|only| only == *customer))
                .map(move |(customer, up)| {
                    let labels = [("collector", kind.name()), ("customer_id", customer)];
                    (labels, i64::from(up))
                })
        });
        encode_gauges(
            &mut encoder,
            "avepoint_backup_collector_up",
            "1 when the collector's last read of this customer worked, 0 when it failed (the customer's other series from that collector are then absent).",
            None,
            rows,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{CollectorState, Coverage, LatestJob};
    use crate::config::CollectorKind;
    use crate::metrics::collector_health::CollectorHealth;
    use std::collections::BTreeMap;

    fn snapshot() -> BackupSnapshot {
        let job = LatestJob {
            job_type: "microsoft_365".into(),
            job_module: "exchange_online".into(),
            status: Some(3),
            job_kind: "backup",
            start: Some(100.0),
            end: Some(160.5),
            duration: Some(60.5),
            objects: [10, 1, 8, 1, 0].map(Some),
            size_bytes: Some(2048.0),
            last_success: Some(50.0),
        };
        let mut jobs = BTreeMap::new();
        jobs.insert(
            "a".to_owned(),
            CustomerData {
                up: true,
                items: vec![job].into(),
            },
        );
        jobs.insert(
            "b".to_owned(),
            CustomerData {
                up: false,
                items: Arc::new([]),
            },
        );
        let mut coverage = BTreeMap::new();
        coverage.insert(
            "a".to_owned(),
            CustomerData {
                up: true,
                items: vec![Coverage {
                    service_type: "microsoft_365".into(),
                    service_module: "onedrive".into(),
                    scanned_objects: Some(7),
                    protected_objects: Some(6),
                    stored_avepoint: Some(1024.0),
                    stored_byos: None,
                }]
                .into(),
            },
        );
        let jobs = CollectorState {
            customers: jobs,
            last_success: None,
            limit_hits: crate::discovery::LimitHits {
                max_rows_per_customer: 2,
                page_size: 1,
                ..Default::default()
            },
        };
        let coverage = CollectorState {
            customers: coverage,
            last_success: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(42)),
            limit_hits: Default::default(),
        };
        BackupSnapshot {
            collectors: vec![
                (CollectorKind::BackupJobs, Arc::new(jobs)),
                (CollectorKind::BackupCoverage, Arc::new(coverage)),
            ],
        }
    }

    /// The per-customer families of `snapshot`, as `/metrics` (`customer`
    /// `None`) or a probe writes them.
    fn families(
        snapshot: BackupSnapshot,
        states: LastStatusState,
        customer: Option<&str>,
    ) -> Vec<String> {
        let mut registry = Registry::default();
        register(&mut registry, snapshot, states, customer.map(str::to_owned));
        lines(&registry)
    }

    fn series(collector: impl Collector + 'static) -> Vec<String> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        lines(&registry)
    }

    fn lines(registry: &Registry) -> Vec<String> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_family_with_exact_values_for_one_customer() {
        let lines = families(snapshot(), LastStatusState::Current, Some("a"));
        let job = r#"customer_id="a",job_type="microsoft_365",job_module="exchange_online",job_kind="backup""#;
        let module = r#"customer_id="a",service_type="microsoft_365",service_module="onedrive""#;
        assert_eq!(
            lines,
            [
                r#"avepoint_backup_collector_up{collector="backup_jobs",customer_id="a"} 1"#
                    .to_owned(),
                r#"avepoint_backup_collector_up{collector="backup_coverage",customer_id="a"} 1"#
                    .to_owned(),
                format!("avepoint_backup_job_status{{{job}}} 3"),
                format!("avepoint_backup_job_status_state{{{job},state=\"failed\"}} 1"),
                format!("avepoint_backup_job_start_timestamp_seconds{{{job}}} 100.0"),
                format!("avepoint_backup_job_end_timestamp_seconds{{{job}}} 160.5"),
                format!("avepoint_backup_job_duration_seconds{{{job}}} 60.5"),
                format!("avepoint_backup_last_success_timestamp_seconds{{{job}}} 50.0"),
                format!("avepoint_backup_job_objects{{{job},result=\"total\"}} 10"),
                format!("avepoint_backup_job_objects{{{job},result=\"failed\"}} 1"),
                format!("avepoint_backup_job_objects{{{job},result=\"successful\"}} 8"),
                format!("avepoint_backup_job_objects{{{job},result=\"skipped\"}} 1"),
                format!("avepoint_backup_job_objects{{{job},result=\"warning\"}} 0"),
                format!("avepoint_backup_job_size_bytes{{{job}}} 2048.0"),
                format!("avepoint_backup_scanned_objects{{{module}}} 7"),
                format!("avepoint_backup_protected_objects{{{module}}} 6"),
                format!("avepoint_backup_stored_bytes{{{module},storage=\"avepoint\"}} 1024.0"),
            ]
        );
    }

    #[test]
    fn a_failing_customer_has_only_its_up_series() {
        let lines = families(snapshot(), LastStatusState::All, Some("b"));
        assert_eq!(
            lines,
            [r#"avepoint_backup_collector_up{collector="backup_jobs",customer_id="b"} 0"#]
        );
    }

    #[test]
    fn the_job_state_set_follows_the_series_budget() {
        let state_lines = |states| {
            families(snapshot(), states, None)
                .into_iter()
                .filter(|line| line.starts_with("avepoint_backup_job_status_state{"))
                .collect::<Vec<_>>()
        };
        let all = state_lines(LastStatusState::All);
        assert_eq!(all.len(), 15);
        assert_eq!(all.iter().filter(|line| line.ends_with(" 1")).count(), 1);
        assert!(all.iter().any(|line| line.contains(r#"state="failed"} 1"#)));
        assert_eq!(state_lines(LastStatusState::None), Vec::<String>::new());
    }

    #[test]
    fn collector_health_says_when_each_collector_last_read_everyone() {
        let lines = series(CollectorHealth(snapshot()));
        assert_eq!(
            lines,
            [
                r#"avepoint_collector_last_success_timestamp_seconds{collector="backup_coverage"} 42.0"#,
                r#"avepoint_backup_limit_hits_total{collector="backup_jobs",limit="page_size"} 1"#,
                r#"avepoint_backup_limit_hits_total{collector="backup_jobs",limit="max_items_per_list"} 0"#,
                r#"avepoint_backup_limit_hits_total{collector="backup_jobs",limit="max_rows_per_customer"} 2"#,
                r#"avepoint_backup_limit_hits_total{collector="backup_coverage",limit="page_size"} 0"#,
                r#"avepoint_backup_limit_hits_total{collector="backup_coverage",limit="max_items_per_list"} 0"#,
                r#"avepoint_backup_limit_hits_total{collector="backup_coverage",limit="max_rows_per_customer"} 0"#,
            ]
        );
    }
}
