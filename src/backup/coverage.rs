//! The `backup_coverage` collector: each customer's protection coverage
//! overview, the rows of one module summed.

use std::sync::Arc;

use super::customers::CustomerSource;
use super::reader::{CollectorState, CollectorTask, Refresh, list_bounds, read_customers, spawn};
use super::reduce::{Coverage, coverage_key, coverage_rows, fold_coverage};
use crate::avepoint::{ApiClient, endpoint};
use crate::config::BackupCollectorSettings;
use crate::discovery::{LimitCounter, list_all};
use crate::refresher::{Permits, Refresher};

/// Start the protection coverage collector.
pub fn spawn_coverage(
    refresher: &Refresher,
    client: Arc<ApiClient>,
    customers: CustomerSource,
    settings: &BackupCollectorSettings,
) -> CollectorTask<Coverage> {
    let reader = CoverageReader {
        client,
        max_items: settings.max_items_per_list,
    };
    let interval = settings.refresh_interval;
    spawn(refresher, "backup_coverage", interval, customers, reader)
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
                    permits.hold(client.page(endpoint::BACKUP_COVERAGE, [&customer], page, size))
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
