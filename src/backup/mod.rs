//! The per-customer collectors (backup jobs in `jobs`, protection coverage
//! in `coverage`, protected users in `users`, subscriptions in
//! `subscriptions`), read in the background on their own cadence (backups
//! run a few times a day, not per scrape) and served from memory, so a
//! scrape never waits for them.
//!
//! Each collector is a reader the [`crate::refresher`] drives (schedule,
//! panic isolation, permit share): every `refresh_interval` it pages
//! through its endpoint for every customer (static `targets` customers and
//! the ones discovery found), a few customers at a time, within the
//! refresher's share of the client's concurrency bound, under its rate
//! limit, back-off and token. A customer whose read
//! fails is `up 0` for that collector and has no other series from it
//! until a read works again; the other customers are not disturbed.
//!
//! This file lists the collectors by kind ([`per_customer`]); what they
//! share is in `reader` (reading customer by customer), `collector` (how
//! one starts and is checked), `snapshot` (their states as plain data),
//! `customers` and `reduce`, so no collector imports this file. Imports
//! `config`, `avepoint`, `discovery` and `refresher`; never `collect`,
//! `metrics` or above.

use std::sync::Arc;

use crate::avepoint::ApiClient;
use crate::config::{CollectorKind, CollectorSettings};
use crate::refresher::Refresher;

mod collector;
mod coverage;
mod customers;
mod jobs;
mod reader;
mod reduce;
mod snapshot;
pub mod subscriptions;
mod users;

pub use collector::{CheckTargets, CollectorTasks, FirstPage, PageCount, PerCustomerCollector};
pub use customers::CustomerSource;
pub use reader::{CollectorState, CollectorTask, CustomerData};
pub use snapshot::{BackupSnapshot, CollectedState, Families};
pub use users::{TenantUsers, UserCount, count_users};

pub use reduce::{
    Coverage, LatestJob, MAX_ROWS_PER_CUSTOMER, OBJECT_RESULTS, Successes, coverage_rows,
    fold_coverage, fold_jobs, latest_jobs,
};

/// The per-customer collector of each kind: a new collector is its module
/// above and one line here. `None` for scan profiles, which are read on
/// every scrape (or on their own plan), never customer by customer.
pub fn per_customer(kind: CollectorKind) -> Option<PerCustomerCollector> {
    match kind {
        CollectorKind::ScanProfiles => None,
        CollectorKind::BackupJobs => Some(jobs::COLLECTOR),
        CollectorKind::BackupCoverage => Some(coverage::COLLECTOR),
        CollectorKind::ProtectedUsers => Some(users::COLLECTOR),
        CollectorKind::Subscriptions => Some(subscriptions::COLLECTOR),
    }
}

/// Start the per-customer collectors `settings` enables, on `refresher`,
/// reading the customers of `customers`.
pub fn spawn(
    refresher: &Refresher,
    client: &Arc<ApiClient>,
    customers: &CustomerSource,
    settings: &CollectorSettings,
) -> CollectorTasks {
    let running = CollectorKind::ALL.into_iter().filter_map(|kind| {
        let start = collector::Start {
            kind,
            refresher,
            client,
            customers,
            settings: settings.background(kind)?,
        };
        Some((kind, (per_customer(kind)?.start)(&start)?))
    });
    CollectorTasks(running.collect())
}
