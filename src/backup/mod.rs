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
//! What they share is in `reader` (reading customer by customer),
//! `customers` and `reduce`, so no collector imports this file. Imports
//! `config`, `avepoint`, `discovery` and `refresher`; never `collect`,
//! `metrics` or above.

mod coverage;
mod customers;
mod jobs;
mod reader;
mod reduce;
mod snapshot;
pub mod subscriptions;
mod users;

pub use coverage::spawn_coverage;
pub use customers::CustomerSource;
pub use jobs::{JobsQuery, read_customer_jobs, spawn_jobs};
pub use reader::{CollectorState, CollectorTask, CustomerData};
pub use snapshot::BackupSnapshot;
pub use users::{TenantUsers, UserCount, count_users, spawn_users};

pub use reduce::{
    Coverage, LatestJob, MAX_ROWS_PER_CUSTOMER, OBJECT_RESULTS, Successes, coverage_rows,
    fold_coverage, fold_jobs, latest_jobs,
};
