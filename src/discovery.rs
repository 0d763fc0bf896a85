//! Finding customers and their scan profiles through the API, in the
//! background and never on the scrape path.
//!
//! Each refresh pages through the customer list and every wanted customer's
//! profile list, applies the include/exclude rules and publishes the result
//! as plain data on a `watch` channel. A failed refresh keeps the last known
//! set (per customer, where only that customer's listing failed) and says so
//! in the discovery metrics.
//!
//! Driven by the [`crate::refresher`] (schedule, panic isolation, its
//! share of the client's concurrency). Imports `avepoint`, `config` and
//! `refresher`; never `collect`, `metrics` or above.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use crate::avepoint::http::sanitize_public;
use crate::avepoint::model::{self, Customer, ScanProfileSummary};
use crate::avepoint::{ApiClient, ApiError};
use crate::config::{DiscoverySettings, ProfileTarget, canonical_uuid};
use crate::refresher::{BackgroundReader, Cause, Permits, Refresher, Schedule, Task};

mod paging;

pub use paging::{LimitCounter, LimitHits, ListBounds, list_all};

/// Customers whose profiles are listed at the same time.
const LIST_CONCURRENCY: usize = 4;
/// Failed profile listings logged one by one per refresh; the rest are
/// summed up in one line. A customer list of fresh ids that AvePoint then
/// does not know logged one line per customer: 10,000 a refresh.
const FAILURES_LOGGED: usize = 5;

/// What discovery knows right now; replaced whole on every refresh.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryState {
    /// Every target to collect: the static ones first, then discovered ones
    /// not listed statically.
    pub targets: Arc<[ProfileTarget]>,
    /// The profiles discovery found (after the rules), without the static ones.
    pub discovered: Arc<[ProfileTarget]>,
    /// Customers kept by the rules, sorted by id.
    pub customers: Arc<[Customer]>,
    /// End of the last refresh without any error.
    pub last_success: Option<SystemTime>,
    /// Refreshes that failed, in whole or in part.
    pub errors_total: u64,
    /// Whether a refresh has finished at least once (for readiness).
    pub attempted: bool,
    /// How often the bounds on what AvePoint lists were hit, since start.
    pub limit_hits: LimitHits,
}

/// Where the list of targets comes from.
#[derive(Debug, Clone)]
pub enum TargetSource {
    /// The config file's list, fixed.
    Static(Arc<[ProfileTarget]>),
    /// The config file's list merged with discovery's latest result.
    Discovered(watch::Receiver<Arc<DiscoveryState>>),
}

impl TargetSource {
    /// The targets right now (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<[ProfileTarget]> {
        match self {
            TargetSource::Static(targets) => Arc::clone(targets),
            TargetSource::Discovered(state) => Arc::clone(&state.borrow().targets),
        }
    }

    /// Wait until the targets may have changed. `false` when they never
    /// will again (the discovery task is gone); a static list never returns.
    pub async fn changed(&mut self) -> bool {
        match self {
            TargetSource::Static(_) => std::future::pending().await,
            TargetSource::Discovered(state) => state.changed().await.is_ok(),
        }
    }
}

/// Why a list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A page request failed.
    #[error("{list}: {source}")]
    Api {
        /// Which list.
        list: String,
        /// The API error.
        source: ApiError,
    },
}

/// A running discovery: its latest state, and the task, which stops when
/// the handle is dropped (a config reload replaces it).
#[derive(Debug)]
pub struct Discovery {
    /// Always the latest state (static targets only until the first refresh ends).
    pub state: watch::Receiver<Arc<DiscoveryState>>,
    _task: Task,
}

/// Discovery as the refresher's reader.
struct Reader {
    client: Arc<ApiClient>,
    settings: DiscoverySettings,
    static_targets: Vec<ProfileTarget>,
}

impl BackgroundReader for Reader {
    type State = DiscoveryState;

    fn name(&self) -> &'static str {
        "discovery"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(self.settings.refresh_interval)
    }

    async fn run(
        &mut self,
        _: Cause,
        previous: Arc<DiscoveryState>,
        permits: Permits,
    ) -> Option<DiscoveryState> {
        let (client, settings) = (&self.client, &self.settings);
        Some(refresh(client, settings, &self.static_targets, &previous, &permits).await)
    }

    /// A refresh that panicked is a failed refresh: the last known targets stay.
    fn after_panic(&self, previous: &DiscoveryState) -> Option<DiscoveryState> {
        Some(DiscoveryState {
            errors_total: previous.errors_total.saturating_add(1),
            attempted: true,
            ..previous.clone()
        })
    }
}

/// Start discovery on `refresher`; the first refresh starts at once.
///
/// `previous` is the state of the discovery this one replaces (a config
/// reload): it is served, merged with the new static targets, until the
/// first refresh ends, and it is the "last known set" should that refresh
/// fail. Without it, a reload would empty the target list for a moment, or
/// for a whole refresh interval if the first refresh failed.
pub fn spawn(
    refresher: &Refresher,
    client: Arc<ApiClient>,
    settings: DiscoverySettings,
    static_targets: Vec<ProfileTarget>,
    previous: Option<&DiscoveryState>,
) -> Discovery {
    let initial = match previous {
        // Only what the old discovery found: static targets the new config
        // dropped must go at once.
        Some(previous) => DiscoveryState {
            targets: merge_targets(&static_targets, &previous.discovered).into(),
            ..previous.clone()
        },
        None => DiscoveryState {
            targets: static_targets.clone().into(),
            ..DiscoveryState::default()
        },
    };
    let reader = Reader {
        client,
        settings,
        static_targets,
    };
    let (state, task) = refresher.spawn(reader, initial);
    Discovery { state, _task: task }
}

/// One refresh: a new state built from the API, falling back to `previous`
/// for whatever could not be read. Every request holds one of `permits`.
pub async fn refresh(
    client: &ApiClient,
    settings: &DiscoverySettings,
    static_targets: &[ProfileTarget],
    previous: &DiscoveryState,
    permits: &Permits,
) -> DiscoveryState {
    let started = std::time::Instant::now();
    let counter = LimitCounter::default();
    let customers = match list_customers(client, settings, permits, &counter).await {
        Ok(customers) => customers,
        Err(error) => {
            tracing::warn!(%error, "discovery failed; keeping the last known targets");
            counter.hits().warn_if_any("discovery");
            return DiscoveryState {
                errors_total: previous.errors_total.saturating_add(1),
                attempted: true,
                limit_hits: previous.limit_hits.plus(counter.hits()),
                ..previous.clone()
            };
        }
    };
    let (discovered, failed) = if settings.list_profiles {
        list_wanted_profiles(client, settings, &customers, previous, permits, &counter).await
    } else {
        (Vec::new(), false)
    };
    let targets = merge_targets(static_targets, &discovered);
    let hits = counter.hits();
    hits.warn_if_any("discovery");
    tracing::info!(
        customers = customers.len(),
        profiles = discovered.len(),
        targets = targets.len(),
        duration = ?started.elapsed(),
        complete = !failed,
        "discovery refreshed"
    );
    DiscoveryState {
        targets: targets.into(),
        discovered: discovered.into(),
        customers: customers.into(),
        last_success: if failed {
            previous.last_success
        } else {
            Some(SystemTime::now())
        },
        errors_total: previous.errors_total.saturating_add(u64::from(failed)),
        attempted: true,
        limit_hits: previous.limit_hits.plus(hits),
    }
}

/// The static targets first, then the discovered ones not listed statically.
fn merge_targets(
    static_targets: &[ProfileTarget],
    discovered: &[ProfileTarget],
) -> Vec<ProfileTarget> {
    let mut seen: HashSet<&ProfileTarget> = static_targets.iter().collect();
    let mut targets = static_targets.to_vec();
    targets.extend(
        discovered
            .iter()
            .filter(|target| seen.insert(target))
            .cloned(),
    );
    targets
}

/// Every customer the rules want, with canonical ids, sorted by id: at
/// most `max_customers` of them (the first by id). Ids end up in URL paths
/// and in /probe: anything but a UUID is refused.
async fn list_customers(
    client: &ApiClient,
    settings: &DiscoverySettings,
    permits: &Permits,
    counter: &LimitCounter,
) -> Result<Vec<Customer>, DiscoveryError> {
    let bounds = ListBounds {
        page_size: settings.page_size,
        max_items: settings.limits.max_items_per_list,
        counter,
    };
    let customers = list_all(
        "customers",
        bounds,
        |page, size| permits.hold(client.page(model::CUSTOMERS, [], page, size)),
        |customer: &Customer| canonical_key(&customer.id),
    )
    .await?;
    let mut customers = wanted_customers(settings, customers);
    customers.sort_by(|a, b| a.id.cmp(&b.id));
    if customers.len() > settings.limits.max_customers {
        customers.truncate(settings.limits.max_customers);
        counter.customers_cut();
    }
    Ok(customers)
}

/// The customers the rules keep, their ids canonical; any but a UUID is
/// skipped.
fn wanted_customers(settings: &DiscoverySettings, customers: Vec<Customer>) -> Vec<Customer> {
    customers
        .into_iter()
        .filter_map(|mut customer| match canonical_uuid(&customer.id) {
            Some(id) => {
                customer.id = id;
                Some(customer)
            }
            None => {
                tracing::warn!(id = %sanitize_public(&customer.id), "skipping a customer whose id is not a UUID");
                None
            }
        })
        .filter(|customer| settings.wants_customer(&customer.id, &customer.organization))
        .collect()
}

/// The wanted profiles of `customers`, and whether any listing failed. A
/// customer whose listing fails keeps the profiles `previous` had for it.
async fn list_wanted_profiles(
    client: &ApiClient,
    settings: &DiscoverySettings,
    customers: &[Customer],
    previous: &DiscoveryState,
    permits: &Permits,
    counter: &LimitCounter,
) -> (Vec<ProfileTarget>, bool) {
    let mut known: HashMap<&str, Vec<&ProfileTarget>> = HashMap::new();
    for target in previous.discovered.iter() {
        known
            .entry(target.customer_id.as_str())
            .or_default()
            .push(target);
    }
    let listings: Vec<(Customer, Result<Vec<ScanProfileSummary>, DiscoveryError>)> =
        stream::iter(customers.iter().cloned())
            .map(|customer| {
                let bounds = ListBounds {
                    page_size: settings.page_size,
                    max_items: settings.limits.max_items_per_list,
                    counter,
                };
                list_profiles(client, customer, bounds, permits)
            })
            .buffered(LIST_CONCURRENCY)
            .collect()
            .await;
    let mut failures = 0usize;
    let mut discovered = Vec::new();
    for (customer, result) in &listings {
        match result {
            Ok(profiles) => discovered.extend(wanted_targets(settings, customer, profiles)),
            Err(error) => {
                failures += 1;
                if failures <= FAILURES_LOGGED {
                    tracing::warn!(%error, "listing a customer's profiles failed; keeping its last known profiles");
                }
                if let Some(targets) = known.get(customer.id.as_str()) {
                    discovered.extend(targets.iter().map(|t| (*t).clone()));
                }
            }
        }
    }
    if failures > FAILURES_LOGGED {
        tracing::warn!(
            more = failures - FAILURES_LOGGED,
            "listing more customers' profiles failed (not logged one by one); each keeps its last known profiles"
        );
    }
    (discovered, failures > 0)
}

/// The profiles of one customer that the rules keep, as targets; profiles
/// whose id is not a UUID are skipped.
fn wanted_targets<'a>(
    settings: &'a DiscoverySettings,
    customer: &'a Customer,
    profiles: &'a [ScanProfileSummary],
) -> impl Iterator<Item = ProfileTarget> + 'a {
    profiles
        .iter()
        .filter(|p| settings.wants_profile(&customer.id, &customer.organization, &p.profile_name))
        .filter_map(|p| {
            let profile_id = canonical_uuid(&p.profile_id);
            if profile_id.is_none() {
                tracing::warn!(customer_id = %customer.id, id = %sanitize_public(&p.profile_id), "skipping a scan profile whose id is not a UUID");
            }
            Some(ProfileTarget {
                customer_id: customer.id.clone(),
                profile_id: profile_id?,
            })
        })
}

/// What makes two list items the same: the canonical UUID, so that one id
/// spelled twice (case, braces, hyphens) is one customer or profile.
fn canonical_key(id: &str) -> String {
    canonical_uuid(id).unwrap_or_else(|| id.to_owned())
}

async fn list_profiles(
    client: &ApiClient,
    customer: Customer,
    bounds: ListBounds<'_>,
    permits: &Permits,
) -> (Customer, Result<Vec<ScanProfileSummary>, DiscoveryError>) {
    let list = format!("scan profiles of customer {}", customer.id);
    let result = list_all(
        &list,
        bounds,
        |page, size| permits.hold(client.page(model::SCAN_PROFILES, [&customer.id], page, size)),
        |profile: &ScanProfileSummary| canonical_key(&profile.profile_id),
    )
    .await;
    (customer, result)
}
