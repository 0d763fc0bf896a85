//! What the per-customer collectors know right now, as one plain value for
//! the encoders and the probe's customer check.

use std::sync::Arc;

use super::reader::CollectorState;
use super::reduce::{Coverage, LatestJob};
use super::subscriptions::SubscriptionsState;
use super::users::TenantUsers;

/// The per-customer collectors' latest states, as plain data for the
/// encoders.
#[derive(Debug, Clone, Default)]
pub struct BackupSnapshot {
    /// Backup jobs, when that collector runs.
    pub jobs: Option<Arc<CollectorState<LatestJob>>>,
    /// Protection coverage, when that collector runs.
    pub coverage: Option<Arc<CollectorState<Coverage>>>,
    /// Users per tenant by protection, when `protected_users` runs.
    pub users: Option<Arc<CollectorState<TenantUsers>>>,
    /// Every customer's subscriptions, when `subscriptions` runs.
    pub subscriptions: Option<Arc<SubscriptionsState>>,
}

impl BackupSnapshot {
    /// Every customer any of the collectors read, sorted, no duplicates.
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
            .chain(self.users.iter().flat_map(|s| s.customers.keys().cloned()))
            .chain(
                self.subscriptions
                    .iter()
                    .flat_map(|s| s.customers.keys().cloned()),
            )
            .collect();
        customers.sort();
        customers.dedup();
        customers
    }

    /// Whether any of the collectors knows `customer_id`.
    pub fn knows(&self, customer_id: &str) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|s| s.customers.contains_key(customer_id))
            || self
                .coverage
                .as_ref()
                .is_some_and(|s| s.customers.contains_key(customer_id))
            || self
                .users
                .as_ref()
                .is_some_and(|s| s.customers.contains_key(customer_id))
            || self
                .subscriptions
                .as_ref()
                .is_some_and(|s| s.customers.contains_key(customer_id))
    }
}
