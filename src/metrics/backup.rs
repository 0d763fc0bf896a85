//! The backup collectors' families, per customer (on `/metrics`, or the
//! customer's `/probe`); their own health is `collector_health.rs`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::gauges::encode_gauges;
use crate::avepoint::ScanStatus;
use crate::backup::{
    BackupSnapshot, CollectorState, Coverage, CustomerData, LatestJob, OBJECT_RESULTS,
};
use crate::config::LastStatusState;

/// One value of a job, when it has one.
type JobValue = fn(&LatestJob) -> Option<f64>;

/// Per-customer backup series, for every customer or only one.
#[derive(Debug)]
pub(super) struct BackupCollector {
    pub(super) snapshot: BackupSnapshot,
    /// Which series of the job status state set to write
    /// (`metrics.last_status_state`, as for the scan status).
    pub(super) states: LastStatusState,
    /// `Some`: only this customer (a probe).
    pub(super) customer: Option<String>,
}

impl BackupCollector {
    fn wanted<'a, T>(
        &'a self,
        state: &'a CollectorState<T>,
    ) -> impl Iterator<Item = (&'a String, &'a CustomerData<T>)> + 'a {
        state
            .customers
            .iter()
            .filter(|(id, _)| self.customer.as_ref().is_none_or(|only| only == *id))
    }
}

/// Help text of `avepoint_backup_job_status`: the documented codes.
const JOB_STATUS_HELP: &str = "Raw status code of the latest backup job of this type and module: the lastScanStatus codes (0=None, 1=Running, 2=Finished, 3=Failed, 4=Finished with exception, 5=Skipped, 6=Pending, 7=Failed to start, 8=Canceled, 9=Rejected, 10=Stopped, 11=Not scanned, 12=Disabled, 13=Not started, 14=Wait for configuration).";

impl Collector for BackupCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut up = Vec::new();
        if let Some(jobs) = &self.snapshot.jobs {
            up.extend(self.wanted(jobs).map(|(c, d)| ("backup_jobs", c, d.up)));
        }
        if let Some(coverage) = &self.snapshot.coverage {
            up.extend(
                self.wanted(coverage)
                    .map(|(c, d)| ("backup_coverage", c, d.up)),
            );
        }
        if let Some(users) = &self.snapshot.users {
            up.extend(
                self.wanted(users)
                    .map(|(c, d)| ("protected_users", c, d.up)),
            );
        }
        encode_gauges(
            &mut encoder,
            "avepoint_backup_collector_up",
            "1 when the collector's last read of this customer worked, 0 when it failed (the customer's other series from that collector are then absent).",
            None,
            up.into_iter().map(|(collector, customer, up)| {
                (
                    [("collector", collector), ("customer_id", customer.as_str())],
                    i64::from(up),
                )
            }),
        )?;
        if let Some(jobs) = &self.snapshot.jobs {
            self.encode_jobs(&mut encoder, jobs)?;
        }
        if let Some(coverage) = &self.snapshot.coverage {
            self.encode_coverage(&mut encoder, coverage)?;
        }
        Ok(())
    }
}

/// A count as a gauge value: past `i64::MAX` it stays there, never wraps.
fn saturating(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// The labels of one job's series.
fn job_labels(customer: &str, job: &LatestJob) -> [(&'static str, String); 4] {
    [
        ("customer_id", customer.to_owned()),
        ("job_type", job.job_type.clone()),
        ("job_module", job.job_module.clone()),
        ("job_kind", job.job_kind.to_owned()),
    ]
}

/// The job families in seconds: name, help, value.
const JOB_SECONDS: [(&str, &str, JobValue); 4] = [
    (
        "avepoint_backup_job_start_timestamp",
        "When the latest backup job of this type and module started (startTime), as a Unix timestamp.",
        |job| job.start,
    ),
    (
        "avepoint_backup_job_end_timestamp",
        "When the latest backup job of this type and module ended (endTime), as a Unix timestamp; absent while it runs.",
        |job| job.end,
    ),
    (
        "avepoint_backup_job_duration",
        "Duration of the latest backup job of this type and module (jobDuration).",
        |job| job.duration,
    ),
    (
        "avepoint_backup_last_success_timestamp",
        "End of the latest backup job of this type and module that finished (with or without exception) the exporter has seen, as a Unix timestamp.",
        |job| job.last_success,
    ),
];

impl BackupCollector {
    fn encode_jobs(
        &self,
        encoder: &mut DescriptorEncoder,
        state: &CollectorState<LatestJob>,
    ) -> Result<(), std::fmt::Error> {
        let rows: Vec<_> = self
            .wanted(state)
            .flat_map(|(customer, data)| data.items.iter().map(move |job| (customer, job)))
            .collect();
        let labels = job_labels;
        let gauge = |value: JobValue| {
            rows.iter()
                .filter_map(|(customer, job)| Some((labels(customer, job), value(job)?)))
                .collect::<Vec<_>>()
        };
        encode_gauges(
            encoder,
            "avepoint_backup_job_status",
            JOB_STATUS_HELP,
            None,
            rows.iter()
                .filter_map(|(customer, job)| Some((labels(customer, job), job.status?))),
        )?;
        self.encode_job_states(encoder, &rows)?;
        for (name, help, value) in JOB_SECONDS {
            encode_gauges(encoder, name, help, Some(&Unit::Seconds), gauge(value))?;
        }
        encode_gauges(
            encoder,
            "avepoint_backup_job_objects",
            "Objects of the latest backup job of this type and module, by result (totalCount, failedCount, successfulCount, skippedCount, warningCount).",
            None,
            rows.iter().flat_map(|(customer, job)| {
                OBJECT_RESULTS
                    .iter()
                    .zip(job.objects)
                    .filter_map(move |(result, count)| {
                        let [customer, job_type, job_module, job_kind] = labels(customer, job);
                        Some((
                            [
                                customer,
                                job_type,
                                job_module,
                                job_kind,
                                ("result", (*result).to_owned()),
                            ],
                            saturating(count?),
                        ))
                    })
            }),
        )?;
        encode_gauges(
            encoder,
            "avepoint_backup_job_size",
            "Size of the latest backup job of this type and module (backupSize; KB, MB, GB and TB counted as powers of 1024).",
            Some(&Unit::Bytes),
            gauge(|job| job.size_bytes),
        )
    }

    /// `avepoint_backup_job_status_state`, as `metrics.last_status_state` says.
    fn encode_job_states(
        &self,
        encoder: &mut DescriptorEncoder,
        rows: &[(&String, &LatestJob)],
    ) -> Result<(), std::fmt::Error> {
        encode_gauges(
            encoder,
            "avepoint_backup_job_status_state",
            "1 for the documented state of the latest backup job of this type and module, 0 for the others (metrics.last_status_state: all), or only the 1 (current); all 0 or absent for an undocumented code.",
            None,
            rows.iter().flat_map(|(customer, job)| {
                let current = job.status.and_then(ScanStatus::from_code);
                ScanStatus::ALL
                    .into_iter()
                    .filter(move |status| match self.states {
                        LastStatusState::All => true,
                        LastStatusState::Current => current == Some(*status),
                        LastStatusState::None => false,
                    })
                    .map(move |status| {
                        let [customer, job_type, job_module, job_kind] = job_labels(customer, job);
                        (
                            [
                                customer,
                                job_type,
                                job_module,
                                job_kind,
                                ("state", status.label().to_owned()),
                            ],
                            i64::from(current == Some(status)),
                        )
                    })
            }),
        )
    }

    fn encode_coverage(
        &self,
        encoder: &mut DescriptorEncoder,
        state: &CollectorState<Coverage>,
    ) -> Result<(), std::fmt::Error> {
        let rows: Vec<_> = self
            .wanted(state)
            .flat_map(|(customer, data)| data.items.iter().map(move |row| (customer, row)))
            .collect();
        let labels = |customer: &str, row: &Coverage| {
            [
                ("customer_id", customer.to_owned()),
                ("service_type", row.service_type.clone()),
                ("service_module", row.service_module.clone()),
            ]
        };
        encode_gauges(
            encoder,
            "avepoint_backup_scanned_objects",
            "Objects found in the tenant for this service module (totalScannedObjects).",
            None,
            rows.iter()
                .filter_map(|(c, row)| Some((labels(c, row), saturating(row.scanned_objects?)))),
        )?;
        encode_gauges(
            encoder,
            "avepoint_backup_protected_objects",
            "Objects under backup protection for this service module (totalProtectedObjects).",
            None,
            rows.iter()
                .filter_map(|(c, row)| Some((labels(c, row), saturating(row.protected_objects?)))),
        )?;
        encode_gauges(
            encoder,
            "avepoint_backup_stored",
            "Backup data stored for this service module, by storage: avepoint (dataSizeStoredInAvePoint) or byos (dataSizeStoredInBYOS, the customer's own storage); units as powers of 1024.",
            Some(&Unit::Bytes),
            rows.iter().flat_map(|(c, row)| {
                [("avepoint", row.stored_avepoint), ("byos", row.stored_byos)]
                    .into_iter()
                    .filter_map(move |(storage, bytes)| {
                        let [customer, service_type, service_module] = labels(c, row);
                        Some((
                            [
                                customer,
                                service_type,
                                service_module,
                                ("storage", storage.to_owned()),
                            ],
                            bytes?,
                        ))
                    })
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::BackupSnapshot;
    use crate::metrics::collector_health::CollectorHealth;
    use prometheus_client::registry::Registry;
    use std::collections::BTreeMap;
    use std::sync::Arc;

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
        BackupSnapshot {
            users: None,
            subscriptions: None,
            jobs: Some(Arc::new(CollectorState {
                customers: jobs,
                last_success: None,
                limit_hits: crate::discovery::LimitHits {
                    max_rows_per_customer: 2,
                    page_size: 1,
                    ..Default::default()
                },
            })),
            coverage: Some(Arc::new(CollectorState {
                customers: coverage,
                last_success: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(42)),
                limit_hits: Default::default(),
            })),
        }
    }

    fn series(collector: impl Collector + 'static) -> Vec<String> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_family_with_exact_values_for_one_customer() {
        let lines = series(BackupCollector {
            snapshot: snapshot(),
            states: LastStatusState::Current,
            customer: Some("a".into()),
        });
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
        let lines = series(BackupCollector {
            snapshot: snapshot(),
            states: LastStatusState::All,
            customer: Some("b".into()),
        });
        assert_eq!(
            lines,
            [r#"avepoint_backup_collector_up{collector="backup_jobs",customer_id="b"} 0"#]
        );
    }

    #[test]
    fn the_job_state_set_follows_the_series_budget() {
        let state_lines = |states| {
            series(BackupCollector {
                snapshot: snapshot(),
                states,
                customer: None,
            })
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
