//! The backup collectors: each customer's backup jobs and protection
//! coverage, read in the background on their own cadence (backups run a
//! few times a day, not per scrape) and served from memory, so a scrape
//! never waits for them.
//!
//! Each collector is a task that, every `refresh_interval`, pages through
//! its endpoint for every customer (static `targets` customers and the ones
//! discovery found), a few customers at a time, under the client's
//! concurrency bound, rate limit, back-off and token. A customer whose read
//! fails is `up 0` for that collector and has no other series from it
//! until a read works again; the other customers are not disturbed.
//!
//! Imports `config`, `avepoint` and `discovery`; never `collect`, `metrics`
//! or above.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use reqwest::StatusCode;

use crate::avepoint::backup::{BACKUP_JOB_TYPES, BackupJob, CoverageItem};
use crate::avepoint::{ApiClient, ApiError};
use crate::config::BackupCollectorSettings;
use crate::discovery::{DiscoveryError, DiscoveryState, list_all};

/// Customers read at the same time by one collector.
const CUSTOMER_CONCURRENCY: usize = 2;
/// Items per page (AvePoint allows at most 100).
const PAGE_SIZE: u32 = 100;

mod reduce;

use reduce::Successes;
pub use reduce::{Coverage, LatestJob, OBJECT_RESULTS, coverage_rows, latest_jobs};

/// One customer's result in one collector.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerData<T> {
    /// Whether the last read of this customer worked.
    pub up: bool,
    /// What it read (empty when `up` is false).
    pub items: Arc<[T]>,
}

/// What a collector knows right now; replaced whole after every refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorState<T> {
    /// By customer id.
    pub customers: BTreeMap<String, CustomerData<T>>,
    /// End of the last refresh in which every customer was read.
    pub last_success: Option<SystemTime>,
}

impl<T> Default for CollectorState<T> {
    fn default() -> Self {
        Self {
            customers: BTreeMap::new(),
            last_success: None,
        }
    }
}

/// Where the customers come from: the config's, and discovery's.
#[derive(Debug, Clone)]
pub struct CustomerSource {
    /// The customers `targets` names.
    pub configured: Vec<String>,
    /// Discovery's state, when discovery runs.
    pub discovered: Option<watch::Receiver<Arc<DiscoveryState>>>,
}

impl CustomerSource {
    /// Wait until discovery publishes; `false` once it never will (no
    /// discovery, or it stopped). Without discovery it never returns.
    async fn changed(&mut self) -> bool {
        match &mut self.discovered {
            Some(discovery) => discovery.changed().await.is_ok(),
            None => std::future::pending().await,
        }
    }

    /// Every customer right now: the configured ones first, no duplicates.
    pub fn current(&self) -> Vec<String> {
        let mut customers = self.configured.clone();
        if let Some(discovery) = &self.discovered {
            for customer in discovery.borrow().customers.iter() {
                if !customers.contains(&customer.id) {
                    customers.push(customer.id.clone());
                }
            }
        }
        customers
    }
}

/// A running collector; its task stops when the handle is dropped.
#[derive(Debug)]
pub struct BackgroundCollector<T> {
    /// Always the latest state.
    pub state: watch::Receiver<Arc<CollectorState<T>>>,
    task: tokio::task::AbortHandle,
}

impl<T> Drop for BackgroundCollector<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one collector does on each refresh.
trait Refresh: Send + 'static {
    /// What it keeps per customer.
    type Item: Send + Sync + 'static;
    /// Read every one of `customers`.
    fn refresh(
        &mut self,
        customers: Vec<String>,
    ) -> impl Future<Output = CollectorState<Self::Item>> + Send + '_;
}

/// Start the backup jobs collector: every customer's job list, reduced to
/// the latest job per (type, module).
pub fn spawn_jobs(
    client: Arc<ApiClient>,
    customers: CustomerSource,
    settings: &BackupCollectorSettings,
) -> BackgroundCollector<LatestJob> {
    let jobs = Jobs {
        client,
        successes: Successes::new(),
        query: JobsQuery::AllTypes,
    };
    spawn(settings.refresh_interval, customers, jobs)
}

/// Start the protection coverage collector.
pub fn spawn_coverage(
    client: Arc<ApiClient>,
    customers: CustomerSource,
    settings: &BackupCollectorSettings,
) -> BackgroundCollector<Coverage> {
    spawn(
        settings.refresh_interval,
        customers,
        CoverageReader { client },
    )
}

/// The collector task: a refresh at once, then every `interval`, and as
/// soon as discovery's customer list changes (at start it is empty until
/// discovery's first refresh ends; waiting an interval would leave the
/// new customers without data that long).
fn spawn<R: Refresh>(
    interval: Duration,
    mut customers: CustomerSource,
    mut reader: R,
) -> BackgroundCollector<R::Item> {
    let (sender, receiver) = watch::channel(Arc::new(CollectorState::default()));
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_read: Option<Vec<String>> = None;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                changed = customers.changed() => {
                    if !changed {
                        customers.discovered = None;
                    }
                    if last_read.as_ref() == Some(&customers.current()) {
                        continue;
                    }
                }
            }
            let current = customers.current();
            let state = reader.refresh(current.clone()).await;
            last_read = Some(current);
            if sender.send(Arc::new(state)).is_err() {
                return;
            }
        }
    });
    BackgroundCollector {
        state: receiver,
        task: task.abort_handle(),
    }
}

struct Jobs {
    client: Arc<ApiClient>,
    successes: Successes,
    /// How the list is asked for: learned from the first `400` to `{}`.
    query: JobsQuery,
}

/// How a customer's job list is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobsQuery {
    /// One list with body `{}`: every job type and module.
    AllTypes,
    /// One list per documented backup job type (`{"jobType": 7}`, ...),
    /// when AvePoint answers `400` to `{}`: the endpoint is documented as
    /// returning jobs "for a specific job type and module".
    PerJobType,
}

impl JobsQuery {
    /// How `check` describes it.
    pub fn describe(self) -> &'static str {
        match self {
            JobsQuery::AllTypes => "one request for all job types (body {})",
            JobsQuery::PerJobType => {
                "one request per backup job type (body {\"jobType\": N}; {} was refused)"
            }
        }
    }
}

/// Every job of one customer, asked for as `query` says; when `{}` is
/// refused with a `400`, asked again per job type. Returns the jobs and
/// the query that worked.
pub async fn read_customer_jobs(
    client: &ApiClient,
    customer: &str,
    query: JobsQuery,
) -> Result<(Vec<BackupJob>, JobsQuery), DiscoveryError> {
    let list = format!("backup jobs of customer {customer}");
    if query == JobsQuery::AllTypes {
        let all = list_all(
            &list,
            PAGE_SIZE,
            |page, size| client.backup_jobs_page(customer, None, page, size),
            job_key,
        )
        .await;
        match all {
            Err(DiscoveryError::Api {
                source: ApiError::Status { status, .. },
                ..
            }) if status == StatusCode::BAD_REQUEST => {
                tracing::info!(
                    customer_id = %customer,
                    "the backup jobs endpoint refused a request for all job types (400); asking per job type from now on"
                );
            }
            other => return other.map(|jobs| (jobs, JobsQuery::AllTypes)),
        }
    }
    let mut jobs = Vec::new();
    for job_type in BACKUP_JOB_TYPES {
        let list = format!("backup jobs of type {job_type} of customer {customer}");
        jobs.extend(
            list_all(
                &list,
                PAGE_SIZE,
                |page, size| client.backup_jobs_page(customer, Some(job_type), page, size),
                job_key,
            )
            .await?,
        );
    }
    Ok((jobs, JobsQuery::PerJobType))
}

impl Refresh for Jobs {
    type Item = LatestJob;

    async fn refresh(&mut self, customers: Vec<String>) -> CollectorState<LatestJob> {
        let client = &self.client;
        let query = self.query;
        let results = read_customers(customers, |customer| async move {
            read_customer_jobs(client, &customer, query).await
        })
        .await;
        if results
            .iter()
            .any(|(_, result)| matches!(result, Ok((_, JobsQuery::PerJobType))))
        {
            self.query = JobsQuery::PerJobType;
        }
        let successes = &mut self.successes;
        CollectorState::from_results(results, |customer, (jobs, _)| {
            latest_jobs(customer, &jobs, successes)
        })
    }
}

struct CoverageReader {
    client: Arc<ApiClient>,
}

impl Refresh for CoverageReader {
    type Item = Coverage;

    async fn refresh(&mut self, customers: Vec<String>) -> CollectorState<Coverage> {
        let client = &self.client;
        let results = read_customers(customers, |customer| async move {
            let list = format!("protection coverage of customer {customer}");
            list_all(
                &list,
                PAGE_SIZE,
                |page, size| client.coverage_page(&customer, page, size),
                coverage_key,
            )
            .await
        })
        .await;
        CollectorState::from_results(results, |_, items| coverage_rows(&items))
    }
}

/// What makes two coverage rows the same row (for paging): every field,
/// so that two rows of one module (the documented sample has two rows for
/// one customer) are both kept and summed, while a page sent twice is not.
fn coverage_key(item: &CoverageItem) -> String {
    format!("{item:?}")
}

/// Read every customer with `read`, [`CUSTOMER_CONCURRENCY`] at a time.
async fn read_customers<T, F, Fut, E>(
    customers: Vec<String>,
    read: F,
) -> Vec<(String, Result<T, E>)>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    stream::iter(customers)
        .map(|customer| {
            let read = read(customer.clone());
            async move { (customer, read.await) }
        })
        .buffered(CUSTOMER_CONCURRENCY)
        .collect()
        .await
}

impl<T> CollectorState<T> {
    /// The state after reading every customer: each read reduced by
    /// `reduce`; a failed one `up 0` and logged.
    fn from_results<R, E: std::fmt::Display>(
        results: Vec<(String, Result<R, E>)>,
        mut reduce: impl FnMut(&str, R) -> Vec<T>,
    ) -> Self {
        let mut complete = true;
        let customers = results
            .into_iter()
            .map(|(customer, result)| {
                let data = match result {
                    Ok(items) => CustomerData {
                        up: true,
                        items: reduce(&customer, items).into(),
                    },
                    Err(error) => {
                        complete = false;
                        tracing::warn!(customer_id = %customer, %error, "reading a customer's backup data failed");
                        CustomerData {
                            up: false,
                            items: Arc::new([]),
                        }
                    }
                };
                (customer, data)
            })
            .collect();
        CollectorState {
            customers,
            last_success: complete.then(SystemTime::now),
        }
    }
}

/// What makes two job list items the same item (for paging).
fn job_key(job: &BackupJob) -> String {
    format!(
        "{:?}/{:?}/{:?}/{:?}",
        job.job_id, job.job_type, job.job_module, job.last_modify_time
    )
}

/// Both collectors' latest states, as plain data for the encoders.
#[derive(Debug, Clone, Default)]
pub struct BackupSnapshot {
    /// Backup jobs, when that collector runs.
    pub jobs: Option<Arc<CollectorState<LatestJob>>>,
    /// Protection coverage, when that collector runs.
    pub coverage: Option<Arc<CollectorState<Coverage>>>,
}

impl BackupSnapshot {
    /// Every customer either collector read, sorted, no duplicates.
    pub fn customers(&self) -> Vec<String> {
        let mut customers: Vec<String> = self
            .jobs
            .iter()
            .flat_map(|s| s.customers.keys().cloned())
            .chain(
                self.coverage
                    .iter()
                    .flat_map(|s| s.customers.keys().cloned()),
            )
            .collect();
        customers.sort();
        customers.dedup();
        customers
    }

    /// Whether either collector knows `customer_id`.
    pub fn knows(&self, customer_id: &str) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|s| s.customers.contains_key(customer_id))
            || self
                .coverage
                .as_ref()
                .is_some_and(|s| s.customers.contains_key(customer_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_customer_is_down_without_disturbing_the_others() {
        let results: Vec<(String, Result<Vec<u32>, String>)> = vec![
            ("a".into(), Ok(vec![1, 2])),
            ("b".into(), Err("HTTP 403".into())),
        ];
        let state = CollectorState::from_results(results, |_, items| items);
        assert!(state.customers["a"].up);
        assert_eq!(&*state.customers["a"].items, [1, 2]);
        assert!(!state.customers["b"].up);
        assert!(state.customers["b"].items.is_empty());
        assert_eq!(state.last_success, None);
    }
}
