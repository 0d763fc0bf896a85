//! The `backup_jobs` collector: each customer's job list, reduced to the
//! latest job per (type, module), asked for all job types at once or, once
//! AvePoint refuses that with a `400`, per job type.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;

use super::collector::{
    CheckTargets, FirstPage, PageCount, PerCustomerCollector, RunningCollector, Start,
};
use super::reader::{CollectorState, Refresh, list_bounds, read_customers};
use super::reduce::{LatestJob, Successes, fold_jobs, job_key, latest_jobs};
use crate::avepoint::backup::{BACKUP_JOB_TYPES, BACKUP_JOBS, BackupJob, job_type_filter};
use crate::avepoint::{ApiClient, ApiError};
use crate::discovery::{DiscoveryError, LimitCounter, ListBounds, list_all};
use crate::refresher::Permits;

/// The `backup_jobs` collector.
pub(super) const COLLECTOR: PerCustomerCollector = PerCustomerCollector {
    endpoint: BACKUP_JOBS.endpoint,
    start,
    first_pages,
};

/// Start it: every customer's job list, reduced to the latest job per
/// (type, module).
fn start(start: &Start<'_>) -> Option<Arc<dyn RunningCollector>> {
    Some(start.spawn(Jobs {
        client: Arc::clone(start.client),
        successes: Successes::new(),
        query: JobsQuery::AllTypes,
        max_items: start.settings.max_items_per_list,
    }))
}

struct Jobs {
    client: Arc<ApiClient>,
    successes: Successes,
    /// How the list is asked for: learned from the first `400` to `{}`.
    query: JobsQuery,
    /// `discovery.max_items_per_list`.
    max_items: usize,
}

/// How a customer's job list is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobsQuery {
    /// One list with body `{}`: every job type and module.
    AllTypes,
    /// One list per documented backup job type (`{"jobType": 7}`, ...),
    /// when AvePoint answers `400` to `{}`: the endpoint is documented as
    /// returning jobs "for a specific job type and module".
    PerJobType,
}

impl JobsQuery {
    /// How `check` describes it.
    fn describe(self) -> &'static str {
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
async fn read_customer_jobs(
    client: &ApiClient,
    customer: &str,
    query: JobsQuery,
    permits: &Permits,
    bounds: ListBounds<'_>,
) -> Result<(Vec<BackupJob>, JobsQuery), DiscoveryError> {
    // One list: every job type (`None`, body `{}`) or one.
    let list_jobs = |job_type: Option<i64>| {
        let list = match job_type {
            None => format!("backup jobs of customer {customer}"),
            Some(job_type) => format!("backup jobs of type {job_type} of customer {customer}"),
        };
        let filter = job_type_filter(job_type);
        async move {
            list_all(
                &list,
                bounds,
                |page, size| {
                    let jobs = client.filtered_page(BACKUP_JOBS, [customer], &filter, page, size);
                    permits.hold(jobs)
                },
                job_key,
            )
            .await
        }
    };
    if query == JobsQuery::AllTypes {
        match list_jobs(None).await {
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
        jobs.extend(list_jobs(Some(job_type)).await?);
    }
    Ok((jobs, JobsQuery::PerJobType))
}

impl Refresh for Jobs {
    type Item = LatestJob;

    async fn refresh(
        &mut self,
        customers: Vec<String>,
        permits: Permits,
    ) -> CollectorState<LatestJob> {
        let (client, permits) = (&self.client, &permits);
        let query = self.query;
        let counter = LimitCounter::default();
        let bounds = list_bounds(self.max_items, &counter);
        let results = read_customers(customers, |customer| async move {
            read_customer_jobs(client, &customer, query, permits, bounds).await
        })
        .await;
        if results
            .iter()
            .any(|(_, result)| matches!(result, Ok((_, JobsQuery::PerJobType))))
        {
            self.query = JobsQuery::PerJobType;
        }
        let read: HashSet<&str> = results.iter().map(|(c, _)| c.as_str()).collect();
        self.successes.retain_customers(&read);
        let successes = &mut self.successes;
        let mut state = CollectorState::from_results(results, |customer, (jobs, _)| {
            let (rows, folded) = fold_jobs(latest_jobs(customer, &jobs, successes));
            if folded {
                counter.rows_folded();
            }
            rows
        });
        state.limit_hits = counter.hits();
        state
    }
}

/// Each customer's first page of jobs, for `check`.
fn first_pages<'a>(client: &'a ApiClient, targets: &'a CheckTargets) -> BoxStream<'a, FirstPage> {
    stream::iter(&targets.customers)
        .then(move |customer| async move {
            FirstPage {
                whose: format!("customer {customer}"),
                read: first_page(client, customer).await,
            }
        })
        .boxed()
}

/// The first page of a customer's backup jobs for `check`: asked for all
/// job types at once, or per job type when AvePoint refuses that with a
/// `400` (as the collector does); says which form worked.
async fn first_page(client: &ApiClient, customer: &str) -> Result<PageCount, ApiError> {
    let mut query = JobsQuery::AllTypes;
    let every_type = job_type_filter(None);
    let mut page = client
        .filtered_page(BACKUP_JOBS, [customer], &every_type, 1, 100)
        .await;
    if let Err(ApiError::Status { status, .. }) = &page
        && *status == StatusCode::BAD_REQUEST
    {
        query = JobsQuery::PerJobType;
        let one_type = job_type_filter(Some(BACKUP_JOB_TYPES[0]));
        page = client
            .filtered_page(BACKUP_JOBS, [customer], &one_type, 1, 100)
            .await;
    }
    Ok(PageCount {
        how: format!(", asked for as {}", query.describe()),
        ..PageCount::of(&page?)
    })
}
