//! The `backup_jobs` collector's families: per customer, job type and
//! module, the latest job's status, times, objects and size (on
//! `/metrics`, or the customer's `/probe`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::{Registry, Unit};

use super::backup::{Scoped, wanted};
use super::gauges::{encode_gauges, saturating};
use crate::avepoint::ScanStatus;
use crate::backup::{CollectorState, Families, LatestJob, OBJECT_RESULTS};
use crate::config::LastStatusState;

/// One value of a job, when it has one.
type JobValue = fn(&LatestJob) -> Option<f64>;

impl Families for CollectorState<LatestJob> {
    fn register(
        self: Arc<Self>,
        registry: &mut Registry,
        customer: Option<&str>,
        states: LastStatusState,
    ) {
        JobsCollector::register(self, registry, customer, states);
    }
}

/// The job series, for every customer or only one.
type JobsCollector = Scoped<CollectorState<LatestJob>>;

/// Help text of `avepoint_backup_job_status`: the documented codes.
const JOB_STATUS_HELP: &str = "Raw status code of the latest backup job of this type and module: the lastScanStatus codes (0=None, 1=Running, 2=Finished, 3=Failed, 4=Finished with exception, 5=Skipped, 6=Pending, 7=Failed to start, 8=Canceled, 9=Rejected, 10=Stopped, 11=Not scanned, 12=Disabled, 13=Not started, 14=Wait for configuration).";

impl Collector for JobsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_jobs(&mut encoder)
    }
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

impl JobsCollector {
    fn encode_jobs(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows: Vec<_> = wanted(&self.state, self.customer.as_deref())
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
}
