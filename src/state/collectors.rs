//! The per-customer collectors a pipeline runs (backup jobs, coverage,
//! protected users, subscriptions): started from the settings, and their
//! latest states taken together as one plain [`BackupSnapshot`].

use std::sync::Arc;

use crate::avepoint::{ApiClient, endpoint};
use crate::backup::subscriptions::{self, SubscriptionsReader};
use crate::backup::{
    BackupSnapshot, CollectorTask, Coverage, CustomerSource, LatestJob, TenantUsers,
};
use crate::config::Settings;
use crate::discovery::Discovery;
use crate::refresher::Refresher;

/// The running per-customer collectors of a pipeline.
#[derive(Debug, Clone, Default)]
pub struct CollectorTasks {
    /// `collectors.backup_jobs`, when enabled.
    pub jobs: Option<Arc<CollectorTask<LatestJob>>>,
    /// `collectors.backup_coverage`, when enabled.
    pub coverage: Option<Arc<CollectorTask<Coverage>>>,
    /// `collectors.protected_users`, when enabled (it needs discovery).
    pub users: Option<Arc<CollectorTask<TenantUsers>>>,
    /// `collectors.subscriptions`, when enabled.
    pub subscriptions: Option<Arc<SubscriptionsReader>>,
}

impl CollectorTasks {
    /// Their latest states, as plain data.
    pub fn snapshot(&self) -> BackupSnapshot {
        BackupSnapshot {
            jobs: self.jobs.as_ref().map(|c| Arc::clone(&c.state.borrow())),
            coverage: self
                .coverage
                .as_ref()
                .map(|c| Arc::clone(&c.state.borrow())),
            users: self.users.as_ref().map(|c| Arc::clone(&c.state.borrow())),
            subscriptions: self
                .subscriptions
                .as_ref()
                .map(|c| Arc::clone(&c.state.borrow())),
        }
    }
}

/// The enabled per-customer collectors of `settings`, reading the config's
/// customers and the ones `discovery` finds.
pub(super) fn spawn_backup(
    settings: &Settings,
    refresher: &Refresher,
    client: &Arc<ApiClient>,
    discovery: &Option<Arc<Discovery>>,
) -> CollectorTasks {
    let customers = CustomerSource {
        configured: settings.customers.clone(),
        discovered: discovery.as_ref().map(|d| d.state.clone()),
    };
    let collectors = &settings.collectors;
    let client_of = || Arc::clone(client);
    CollectorTasks {
        jobs: collectors.backup_jobs.as_ref().map(|jobs| {
            let jobs = crate::backup::spawn_jobs(refresher, client_of(), customers.clone(), jobs);
            Arc::new(jobs)
        }),
        coverage: collectors.backup_coverage.as_ref().map(|coverage| {
            let coverage =
                crate::backup::spawn_coverage(refresher, client_of(), customers.clone(), coverage);
            Arc::new(coverage)
        }),
        // Config refuses protected_users without discovery: the tenants
        // come from its customer list.
        users: collectors
            .protected_users
            .as_ref()
            .zip(discovery.as_ref())
            .map(|(users, discovery)| {
                let state = discovery.state.clone();
                let users = crate::backup::spawn_users(
                    refresher,
                    client_of(),
                    customers.clone(),
                    state,
                    users,
                );
                Arc::new(users)
            }),
        subscriptions: collectors.subscriptions.as_ref().map(|settings| {
            let client = client_of();
            let fetch = move |page, size| {
                let client = Arc::clone(&client);
                async move { client.page(endpoint::SERVICES, [], page, size).await }
            };
            let interval = settings.refresh_interval;
            let max_items = settings.max_items_per_list;
            Arc::new(subscriptions::spawn(refresher, fetch, interval, max_items))
        }),
    }
}
