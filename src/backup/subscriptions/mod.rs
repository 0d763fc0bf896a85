//! The `subscriptions` collector: every customer's service subscriptions
//! (expiry, seats, capacity), from one paged list for all customers
//! (`POST .../customers/services/batch`), read in the background by the
//! [`crate::refresher`] every `refresh_interval` and served from memory.
//!
//! One list for every customer, so one `up`: when a read fails, the
//! collector is down and its series are absent until a read works (as a
//! backup collector's customer is), rather than the last values going on
//! looking current.
//!
//! Beside the backup collectors, whose rules it shares: read in the
//! background, served from memory, down means absent.

mod reduce;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, BoxStream, StreamExt};

use super::collector::{
    CheckTargets, FirstPage, PageCount, PerCustomerCollector, RunningCollector, Start,
};
use super::reader::CollectorTask;
use super::snapshot::CollectedState;
use crate::avepoint::model::Page;
use crate::avepoint::subscriptions::CustomerServices;
use crate::avepoint::subscriptions::SERVICES;
use crate::avepoint::{ApiClient, ApiError};
use crate::discovery::{LimitCounter, LimitHits, ListBounds, list_all};
use crate::refresher::{BackgroundReader, Cause, Permits, Refresher, Schedule};

pub use reduce::{
    CAPACITY_KINDS, MAX_SERVICES_PER_CUSTOMER, SEAT_KINDS, Subscription, by_customer,
};

/// Items per page (AvePoint allows at most 100).
const PAGE_SIZE: u32 = 100;

/// What the collector knows right now; replaced whole after every read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionsState {
    /// Whether the last read worked; `None` before the first one ended.
    pub up: Option<bool>,
    /// Each customer's services (empty while down).
    pub customers: Arc<BTreeMap<String, Vec<Subscription>>>,
    /// End of the last read that worked.
    pub last_success: Option<SystemTime>,
    /// How often the bounds on what AvePoint lists were hit, since start.
    pub limit_hits: LimitHits,
}

/// The `subscriptions` collector.
pub(super) const COLLECTOR: PerCustomerCollector = PerCustomerCollector {
    endpoint: SERVICES.endpoint,
    start,
    first_pages,
};

/// Start it: one list of every customer's services.
fn start(start: &Start<'_>) -> Option<Arc<dyn RunningCollector>> {
    let client = Arc::clone(start.client);
    let fetch = move |page, size| {
        let client = Arc::clone(&client);
        async move { client.page(SERVICES, [], page, size).await }
    };
    let settings = start.settings;
    let (interval, max_items) = (settings.refresh_interval, settings.max_items_per_list);
    Some(Arc::new(spawn(start.refresher, fetch, interval, max_items)))
}

/// The first page of the services list, for `check`.
fn first_pages<'a>(client: &'a ApiClient, _: &'a CheckTargets) -> BoxStream<'a, FirstPage> {
    stream::once(async move {
        let page = client.page(SERVICES, [], 1, 100).await;
        FirstPage {
            whose: "every customer".to_owned(),
            read: page.map(|page| PageCount::of(&page)),
        }
    })
    .boxed()
}

impl CollectedState for SubscriptionsState {
    fn customers(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.customers.keys().map(String::as_str))
    }

    fn knows(&self, customer_id: &str) -> bool {
        self.customers.contains_key(customer_id)
    }

    /// None: one list for every customer, so one up
    /// (`avepoint_subscriptions_up`, with the collectors' health).
    fn customers_up(&self) -> Box<dyn Iterator<Item = (&str, bool)> + '_> {
        Box::new(std::iter::empty())
    }

    fn last_success(&self) -> Option<SystemTime> {
        self.last_success
    }

    fn limit_hits(&self) -> LimitHits {
        self.limit_hits
    }
}

/// One page of the services list: `(page_index, page_size)` to the page.
pub trait FetchServices: Fn(u32, u32) -> Self::Page + Send + Sync + 'static {
    /// The page's future.
    type Page: Future<Output = Result<Page<CustomerServices>, ApiError>> + Send;
}

impl<F, Fut> FetchServices for F
where
    F: Fn(u32, u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Page<CustomerServices>, ApiError>> + Send,
{
    type Page = Fut;
}

struct Reader<F> {
    fetch: F,
    interval: Duration,
    max_items: usize,
}

impl<F: FetchServices> BackgroundReader for Reader<F> {
    type State = SubscriptionsState;

    fn name(&self) -> &'static str {
        "subscriptions"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(self.interval)
    }

    async fn run(
        &mut self,
        _: Cause,
        previous: Arc<SubscriptionsState>,
        permits: Permits,
    ) -> Option<SubscriptionsState> {
        let counter = LimitCounter::default();
        let bounds = ListBounds {
            page_size: PAGE_SIZE,
            max_items: self.max_items,
            counter: &counter,
        };
        let fetch = &self.fetch;
        let listed = list_all(
            "service subscriptions",
            bounds,
            |page, size| permits.hold(fetch(page, size)),
            |item: &CustomerServices| format!("{:?}", item.customer_id),
        )
        .await;
        let mut state = match listed {
            Ok(items) => {
                let (customers, capped) = by_customer(&items);
                if capped {
                    counter.rows_folded();
                }
                SubscriptionsState {
                    up: Some(true),
                    customers: Arc::new(customers),
                    last_success: Some(SystemTime::now()),
                    limit_hits: LimitHits::default(),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reading the service subscriptions failed");
                SubscriptionsState {
                    up: Some(false),
                    last_success: previous.last_success,
                    ..SubscriptionsState::default()
                }
            }
        };
        let hits = counter.hits();
        hits.warn_if_any("subscriptions");
        state.limit_hits = previous.limit_hits.plus(hits);
        Some(state)
    }
}

/// Start the collector: a read at once, then every `interval`; each page
/// asked for with `fetch`, within the refresher's permit share, and at
/// most `max_items` customers kept (`discovery.max_items_per_list`).
pub fn spawn<F: FetchServices>(
    refresher: &Refresher,
    fetch: F,
    interval: Duration,
    max_items: usize,
) -> CollectorTask<SubscriptionsState> {
    let reader = Reader {
        fetch,
        interval,
        max_items,
    };
    CollectorTask::spawn(refresher, reader, SubscriptionsState::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    const SAMPLE: &str =
        include_str!("../../../tests/testdata/avepoint-docs/customer-services.json");

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_downs_the_collector_and_a_later_one_brings_it_back() {
        let failing = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let fetch = {
            let (failing, asked) = (Arc::clone(&failing), Arc::clone(&asked));
            move |page: u32, size: u32| {
                asked.lock().unwrap().push((page, size));
                let fail = failing.load(Ordering::SeqCst);
                async move {
                    if fail {
                        return Err(ApiError::Transport {
                            message: "connection refused".into(),
                            timeout: false,
                        });
                    }
                    Ok(serde_json::from_str::<Page<CustomerServices>>(SAMPLE).unwrap())
                }
            }
        };
        let refresher = Refresher::new(Permits::share_of(8), Default::default());
        let reader = spawn(&refresher, fetch, Duration::from_secs(3600), 10_000);
        let mut state = reader.state.clone();
        state.changed().await.unwrap();
        let first = state.borrow().clone();
        assert_eq!(first.up, Some(true));
        assert_eq!(first.customers.len(), 1, "the all-N/A customer has no row");
        assert!(first.last_success.is_some());
        assert_eq!(asked.lock().unwrap().as_slice(), &[(1, PAGE_SIZE)]);

        failing.store(true, Ordering::SeqCst);
        state.changed().await.unwrap();
        let down = state.borrow().clone();
        assert_eq!(down.up, Some(false));
        assert!(down.customers.is_empty(), "no stale values while down");
        assert_eq!(down.last_success, first.last_success);

        failing.store(false, Ordering::SeqCst);
        state.changed().await.unwrap();
        assert_eq!(state.borrow().up, Some(true));
        assert_eq!(asked.lock().unwrap().len(), 3);
    }
}
