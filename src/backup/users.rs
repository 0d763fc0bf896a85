//! The `protected_users` collector: each tenant's users (tenants from
//! discovery's customer list), counted per module and protection, never
//! kept one by one (addresses and names are personal data, and the wire
//! type does not even decode them).

use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::watch;

use super::collector::{
    CheckTargets, FirstPage, PageCount, PerCustomerCollector, RunningCollector, Start,
};
use super::reader::{CollectorState, Refresh, list_bounds, read_customers};
use super::reduce::MAX_ROWS_PER_CUSTOMER;
use crate::avepoint::subscriptions::{TenantUser, user_module_label};
use crate::avepoint::{ApiClient, subscriptions};
use crate::discovery::{DiscoveryError, DiscoveryState, LimitCounter, list_all};
use crate::refresher::Permits;

/// The `protected_users` collector.
pub(super) const COLLECTOR: PerCustomerCollector = PerCustomerCollector {
    endpoint: subscriptions::TENANT_USERS.endpoint,
    start,
    first_pages,
};

/// Tenants read per customer: four rows each, so a customer stays within
/// [`MAX_ROWS_PER_CUSTOMER`] rows however many tenants AvePoint lists.
pub(super) const MAX_TENANTS_PER_CUSTOMER: usize = MAX_ROWS_PER_CUSTOMER / 4;

/// One tenant's users by module and protection.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantUsers {
    /// The tenant id, as discovery listed it.
    pub tenant_id: String,
    /// The counts, see [`count_users`].
    pub counts: Vec<UserCount>,
}

/// Start it: every customer's tenants' users. Discovery lists the
/// tenants: without it (which config refuses) the collector does not run.
fn start(start: &Start<'_>) -> Option<Arc<dyn RunningCollector>> {
    Some(start.spawn(UsersReader {
        client: Arc::clone(start.client),
        discovery: start.customers.discovered.clone()?,
        max_items: start.settings.max_items_per_list,
    }))
}

/// Each tenant's first page of users, for `check`.
fn first_pages<'a>(client: &'a ApiClient, targets: &'a CheckTargets) -> BoxStream<'a, FirstPage> {
    stream::iter(&targets.tenants)
        .then(move |(customer, tenant)| async move {
            let page = client
                .page(subscriptions::TENANT_USERS, [customer, tenant], 1, 100)
                .await;
            FirstPage {
                whose: format!("customer {customer} tenant {tenant}"),
                read: page.map(|page| PageCount::of(&page)),
            }
        })
        .boxed()
}

struct UsersReader {
    client: Arc<ApiClient>,
    discovery: watch::Receiver<Arc<DiscoveryState>>,
    /// `discovery.max_items_per_list`.
    max_items: usize,
}

impl UsersReader {
    /// The tenant ids of `customer`, at most [`MAX_TENANTS_PER_CUSTOMER`].
    fn tenants(&self, customer: &str, counter: &LimitCounter) -> Vec<String> {
        let state = Arc::clone(&self.discovery.borrow());
        let mut tenants: Vec<String> = state
            .customers
            .iter()
            .filter(|c| c.id == customer)
            .flat_map(|c| c.tenants.iter().map(|t| t.id.clone()))
            .filter(|id| !id.is_empty())
            .collect();
        tenants.sort();
        tenants.dedup();
        if tenants.len() > MAX_TENANTS_PER_CUSTOMER {
            tenants.truncate(MAX_TENANTS_PER_CUSTOMER);
            counter.rows_folded();
        }
        tenants
    }
}

impl Refresh for UsersReader {
    type Item = TenantUsers;

    async fn refresh(
        &mut self,
        customers: Vec<String>,
        permits: Permits,
    ) -> CollectorState<TenantUsers> {
        let counter = LimitCounter::default();
        let bounds = list_bounds(self.max_items, &counter);
        let work: Vec<(String, Vec<String>)> = customers
            .into_iter()
            .map(|customer| {
                let tenants = self.tenants(&customer, &counter);
                (customer, tenants)
            })
            .collect();
        let (client, permits, work) = (&self.client, &permits, &work);
        let names = work.iter().map(|(customer, _)| customer.clone()).collect();
        let results = read_customers(names, |customer| async move {
            let tenants = work
                .iter()
                .find(|(c, _)| *c == customer)
                .map(|(_, tenants)| tenants.as_slice())
                .unwrap_or_default();
            let mut read = Vec::with_capacity(tenants.len());
            for tenant in tenants {
                let list = format!("users of tenant {tenant} of customer {customer}");
                let fetch = |page, size| {
                    permits.hold(client.page(
                        subscriptions::TENANT_USERS,
                        [&customer, tenant],
                        page,
                        size,
                    ))
                };
                let key =
                    |user: &TenantUser| format!("{}/{:?}", user.id_fingerprint, user.module_status);
                let users = list_all(&list, bounds, fetch, key).await?;
                read.push(TenantUsers {
                    tenant_id: tenant.clone(),
                    counts: count_users(&users),
                });
            }
            Ok::<_, DiscoveryError>(read)
        })
        .await;
        let mut state = CollectorState::from_results(results, |_, tenants| tenants);
        state.limit_hits = counter.hits();
        state
    }
}

/// Users of one tenant with one module protected or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCount {
    /// `mailbox`, `onedrive`, or `other` for a module code not documented.
    pub module: &'static str,
    /// Whether the module is protected.
    pub protected: bool,
    /// How many users.
    pub users: u64,
}

/// Count `users` per module and protection, sorted by module then
/// protection. A module entry without a readable code or flag is not
/// counted (it is unknown, not unprotected); mailbox and OneDrive always
/// have both rows, so "none unprotected" is a 0, not an absent series.
pub fn count_users(users: &[TenantUser]) -> Vec<UserCount> {
    let mut counts: Vec<UserCount> = ["mailbox", "onedrive"]
        .into_iter()
        .flat_map(|module| {
            [false, true].map(|protected| UserCount {
                module,
                protected,
                users: 0,
            })
        })
        .collect();
    for status in users.iter().flat_map(|user| &user.module_status) {
        let (Some(code), Some(protected)) = (status.module.value(), status.is_protected.value())
        else {
            continue;
        };
        let module = user_module_label(code).unwrap_or("other");
        match counts
            .iter_mut()
            .find(|c| c.module == module && c.protected == protected)
        {
            Some(count) => count.users = count.users.saturating_add(1),
            None => counts.push(UserCount {
                module,
                protected,
                users: 1,
            }),
        }
    }
    counts.sort_by_key(|c| (c.module, c.protected));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::model::Page;

    fn users(json: &str) -> Vec<TenantUser> {
        serde_json::from_str::<Page<TenantUser>>(json).unwrap().data
    }

    fn count(counts: &[UserCount], module: &str, protected: bool) -> Option<u64> {
        counts
            .iter()
            .find(|c| c.module == module && c.protected == protected)
            .map(|c| c.users)
    }

    #[test]
    fn the_documented_sample_counts_one_mailbox_unprotected() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/testdata/avepoint-docs/tenant-users.json"
        );
        let counts = count_users(&users(&std::fs::read_to_string(path).unwrap()));
        assert_eq!(count(&counts, "mailbox", false), Some(1));
        assert_eq!(count(&counts, "mailbox", true), Some(1));
        assert_eq!(count(&counts, "onedrive", false), Some(0));
        assert_eq!(count(&counts, "onedrive", true), Some(2));
        assert_eq!(counts.len(), 4);
    }

    #[test]
    fn odd_modules_are_other_and_unreadable_entries_are_not_counted() {
        let counts = count_users(&users(
            r#"[{"moduleStatus": [{"module": 7, "isProtected": false},
                                  {"module": 0, "isProtected": "maybe"},
                                  {"module": "x", "isProtected": true},
                                  {"isProtected": false}]},
                {"moduleStatus": null}, {"email": "a@b.example"}]"#,
        ));
        assert_eq!(count(&counts, "other", false), Some(1));
        assert_eq!(count(&counts, "mailbox", false), Some(0));
        assert_eq!(counts.iter().map(|c| c.users).sum::<u64>(), 1);
    }
}
