//! The `backup_coverage` collector: each customer's protection coverage
//! overview, the rows of one module summed.

use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};

use super::collector::{
    CheckTargets, FirstPage, PageCount, PerCustomerCollector, RunningCollector, Start,
};
use super::reader::{CollectorState, Refresh, list_bounds, read_customers};
use super::reduce::{Coverage, coverage_key, coverage_rows, fold_coverage};
use crate::avepoint::{ApiClient, backup};
use crate::discovery::{LimitCounter, list_all};
use crate::refresher::Permits;

/// The `backup_coverage` collector.
pub(super) const COLLECTOR: PerCustomerCollector = PerCustomerCollector {
    endpoint: backup::BACKUP_COVERAGE.endpoint,
    start,
    first_pages,
};

/// Start it: every customer's coverage overview.
fn start(start: &Start<'_>) -> Option<Arc<dyn RunningCollector>> {
    Some(start.spawn(CoverageReader {
        client: Arc::clone(start.client),
        max_items: start.settings.max_items_per_list,
    }))
}

/// Each customer's first page of coverage, for `check`.
fn first_pages<'a>(client: &'a ApiClient, targets: &'a CheckTargets) -> BoxStream<'a, FirstPage> {
    stream::iter(&targets.customers)
        .then(move |customer| async move {
            let page = client
                .page(backup::BACKUP_COVERAGE, [customer], 1, 100)
                .await;
            FirstPage {
                whose: format!("customer {customer}"),
                read: page.map(|page| PageCount::of(&page)),
            }
        })
        .boxed()
}

struct CoverageReader {
    client: Arc<ApiClient>,
    /// `discovery.max_items_per_list`.
    max_items: usize,
}

impl Refresh for CoverageReader {
    type Item = Coverage;

    async fn refresh(
        &mut self,
        customers: Vec<String>,
        permits: Permits,
    ) -> CollectorState<Coverage> {
        let (client, permits) = (&self.client, &permits);
        let counter = LimitCounter::default();
        let bounds = list_bounds(self.max_items, &counter);
        let results = read_customers(customers, |customer| async move {
            let list = format!("protection coverage of customer {customer}");
            list_all(
                &list,
                bounds,
                |page, size| {
                    permits.hold(client.page(backup::BACKUP_COVERAGE, [&customer], page, size))
                },
                coverage_key,
            )
            .await
        })
        .await;
        let mut state = CollectorState::from_results(results, |_, items| {
            let (rows, folded) = fold_coverage(coverage_rows(&items));
            if folded {
                counter.rows_folded();
            }
            rows
        });
        state.limit_hits = counter.hits();
        state
    }
}
