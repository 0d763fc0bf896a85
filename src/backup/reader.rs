//! The reader every collector that reads customer by customer runs on
//! (backup jobs, coverage, protected users), and the per-customer state it
//! publishes: on its cadence (backups run a few times a day, not per
//! scrape) it reads every customer, a few at a time, and a customer whose
//! read fails is `up 0` until a read works again, without disturbing the
//! others. Also the handle of any running collector ([`CollectorTask`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use super::customers::CustomerSource;
use super::snapshot::{CollectedState, Families};
use crate::discovery::{LimitCounter, LimitHits, ListBounds};
use crate::refresher::{BackgroundReader, Cause, Permits, Refresher, Schedule, Task};

/// Customers read at the same time by one collector.
const CUSTOMER_CONCURRENCY: usize = 2;
/// Items per page (AvePoint allows at most 100).
const PAGE_SIZE: u32 = 100;
/// Failed customers logged one by one per refresh, the rest in one line:
/// thousands of customers the API does not know must not mean thousands
/// of lines a refresh.
const FAILURES_LOGGED: usize = 5;
/// The target of this file's log lines: the folder's, as before the
/// reader had a file of its own, so the lines read as they did.
const LOG_TARGET: &str = "avepoint_exporter::backup";

/// One customer's result in one collector.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerData<T> {
    /// Whether the last read of this customer worked.
    pub up: bool,
    /// What it read (empty when `up` is false).
    pub items: Arc<[T]>,
}

/// What a collector knows right now; replaced whole after every refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorState<T> {
    /// By customer id.
    pub customers: BTreeMap<String, CustomerData<T>>,
    /// End of the last refresh in which every customer was read.
    pub last_success: Option<SystemTime>,
    /// How often the bounds on what AvePoint lists were hit, since start.
    pub limit_hits: LimitHits,
}

impl<T> Default for CollectorState<T> {
    fn default() -> Self {
        Self {
            customers: BTreeMap::new(),
            last_success: None,
            limit_hits: LimitHits::default(),
        }
    }
}

/// A running collector; its task stops when the handle is dropped.
#[derive(Debug)]
pub struct CollectorTask<S> {
    /// Always the latest state.
    pub state: watch::Receiver<Arc<S>>,
    _task: Task,
}

impl<S: Send + Sync + 'static> CollectorTask<S> {
    /// Start `reader` on `refresher`, publishing `initial` until its first
    /// run ends.
    pub(super) fn spawn<B>(refresher: &Refresher, reader: B, initial: S) -> Self
    where
        B: BackgroundReader<State = S>,
    {
        let (state, task) = refresher.spawn(reader, initial);
        Self { state, _task: task }
    }
}

/// What one collector does on each refresh.
pub(super) trait Refresh: Send + 'static {
    /// What it keeps per customer.
    type Item: Send + Sync + 'static;
    /// Read every one of `customers`, each request holding one of `permits`.
    fn refresh(
        &mut self,
        customers: Vec<String>,
        permits: Permits,
    ) -> impl Future<Output = CollectorState<Self::Item>> + Send + '_;
}

/// A collector as the refresher's reader: a refresh at once, then every
/// `interval`, and as soon as discovery's customer list changes (at start
/// it is empty until discovery's first refresh ends; waiting an interval
/// would leave the new customers without data that long).
struct Reader<R> {
    name: &'static str,
    interval: Duration,
    customers: CustomerSource,
    /// The customers of the last refresh that ended.
    last_read: Option<Vec<String>>,
    reader: R,
}

impl<R: Refresh> BackgroundReader for Reader<R> {
    type State = CollectorState<R::Item>;

    fn name(&self) -> &'static str {
        self.name
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(self.interval)
    }

    async fn input_changed(&mut self) {
        if !self.customers.changed().await {
            self.customers.discovered = None;
        }
    }

    async fn run(
        &mut self,
        cause: Cause,
        previous: Arc<Self::State>,
        permits: Permits,
    ) -> Option<Self::State> {
        let current = self.customers.current_blocking().await;
        if cause == Cause::InputChanged && self.last_read.as_ref() == Some(&current) {
            return None;
        }
        let mut state = self.reader.refresh(current.clone(), permits).await;
        state.limit_hits.warn_if_any(self.name);
        state.limit_hits = previous.limit_hits.plus(state.limit_hits);
        self.last_read = Some(current);
        Some(state)
    }
}

/// Start `reader` on `refresher` as the collector `name`, reading the
/// customers of `customers` every `interval`.
pub(super) fn spawn<R: Refresh>(
    refresher: &Refresher,
    name: &'static str,
    interval: Duration,
    customers: CustomerSource,
    reader: R,
) -> CollectorTask<CollectorState<R::Item>> {
    let reader = Reader {
        name,
        interval,
        customers,
        last_read: None,
        reader,
    };
    CollectorTask::spawn(refresher, reader, CollectorState::default())
}

/// How a collector reads one list: pages of [`PAGE_SIZE`], at most
/// `max_items` (`discovery.max_items_per_list`), hits counted in `counter`.
pub(super) fn list_bounds(max_items: usize, counter: &LimitCounter) -> ListBounds<'_> {
    ListBounds {
        page_size: PAGE_SIZE,
        max_items,
        counter,
    }
}

/// Read every customer with `read`, [`CUSTOMER_CONCURRENCY`] at a time.
pub(super) async fn read_customers<T, F, Fut, E>(
    customers: Vec<String>,
    read: F,
) -> Vec<(String, Result<T, E>)>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    stream::iter(customers)
        .map(|customer| {
            let read = read(customer.clone());
            async move { (customer, read.await) }
        })
        .buffered(CUSTOMER_CONCURRENCY)
        .collect()
        .await
}

impl<T> CollectorState<T> {
    /// The state after reading every customer: each read reduced by
    /// `reduce`; a failed one `up 0` and logged.
    pub(super) fn from_results<R, E: std::fmt::Display>(
        results: Vec<(String, Result<R, E>)>,
        mut reduce: impl FnMut(&str, R) -> Vec<T>,
    ) -> Self {
        let mut failures = 0usize;
        let customers = results
            .into_iter()
            .map(|(customer, result)| {
                let data = match result {
                    Ok(items) => CustomerData {
                        up: true,
                        items: reduce(&customer, items).into(),
                    },
                    Err(error) => {
                        failures += 1;
                        if failures <= FAILURES_LOGGED {
                            tracing::warn!(target: LOG_TARGET, customer_id = %customer, %error, "reading a customer's backup data failed");
                        }
                        CustomerData {
                            up: false,
                            items: Arc::new([]),
                        }
                    }
                };
                (customer, data)
            })
            .collect();
        if failures > FAILURES_LOGGED {
            tracing::warn!(
                target: LOG_TARGET,
                more = failures - FAILURES_LOGGED,
                "reading more customers' backup data failed (not logged one by one; avepoint_backup_collector_up says which)"
            );
        }
        let complete = failures == 0;
        CollectorState {
            customers,
            last_success: complete.then(SystemTime::now),
            limit_hits: LimitHits::default(),
        }
    }
}

impl<T: std::fmt::Debug + Send + Sync> CollectedState for CollectorState<T>
where
    Self: Families,
{
    fn customers(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.customers.keys().map(String::as_str))
    }

    fn knows(&self, customer_id: &str) -> bool {
        self.customers.contains_key(customer_id)
    }

    fn customers_up(&self) -> Box<dyn Iterator<Item = (&str, bool)> + '_> {
        Box::new(
            self.customers
                .iter()
                .map(|(id, data)| (id.as_str(), data.up)),
        )
    }

    fn last_success(&self) -> Option<SystemTime> {
        self.last_success
    }

    fn limit_hits(&self) -> LimitHits {
        self.limit_hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresher::PanicCounts;
    use crate::test_log::CapturedLog;

    /// Reads every customer as one item; panics on its first refresh.
    struct PanicsOnce {
        refreshes: usize,
    }

    impl Refresh for PanicsOnce {
        type Item = u32;
        async fn refresh(&mut self, customers: Vec<String>, _: Permits) -> CollectorState<u32> {
            self.refreshes += 1;
            assert!(self.refreshes > 1, "injected panic in a backup refresh");
            let results = customers.into_iter().map(|c| (c, Ok::<_, String>(vec![7])));
            CollectorState::from_results(results.collect(), |_, items| items)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_refresh_is_logged_counted_and_runs_again_on_schedule() {
        let (captured, _log) = CapturedLog::install();
        let panics = PanicCounts::default();
        let refresher = Refresher::new(Permits::share_of(8), panics.clone());
        let customers = CustomerSource {
            configured: vec!["a".into()],
            discovered: None,
        };
        let interval = Duration::from_secs(600);
        let reader = PanicsOnce { refreshes: 0 };
        let collector = spawn(&refresher, "backup_jobs", interval, customers, reader);
        let mut state = collector.state.clone();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(panics.get("backup_jobs"), 1);
        assert!(state.borrow().customers.is_empty());
        let log = captured.text();
        assert!(log.contains("ERROR"), "{log}");
        assert!(log.contains("background reader panicked"), "{log}");
        assert!(log.contains("backup_jobs"), "{log}");
        // The next tick: the collector is alive and its series come back.
        state.changed().await.unwrap();
        let after = state.borrow_and_update().clone();
        assert!(after.customers["a"].up);
        assert_eq!(&*after.customers["a"].items, [7]);
        assert_eq!(panics.get("backup_jobs"), 1);
    }

    #[test]
    fn failed_customers_are_logged_five_by_name_and_the_rest_in_one_line() {
        let (captured, _log) = CapturedLog::install();
        let results: Vec<(String, Result<Vec<u32>, String>)> = (0..8)
            .map(|n| (format!("c{n}"), Err("HTTP 404".into())))
            .collect();
        let state = CollectorState::from_results(results, |_, items| items);
        assert_eq!(state.customers.len(), 8);
        let log = captured.text();
        assert_eq!(
            log.matches("reading a customer's backup data failed")
                .count(),
            5
        );
        assert!(log.contains("customer_id=c4"), "{log}");
        assert!(!log.contains("customer_id=c5"), "{log}");
        assert_eq!(
            log.matches("reading more customers' backup data failed")
                .count(),
            1
        );
        assert!(log.contains("more=3"), "{log}");
    }

    #[test]
    fn a_failed_customer_is_down_without_disturbing_the_others() {
        let results: Vec<(String, Result<Vec<u32>, String>)> = vec![
            ("a".into(), Ok(vec![1, 2])),
            ("b".into(), Err("HTTP 403".into())),
        ];
        let state = CollectorState::from_results(results, |_, items| items);
        assert!(state.customers["a"].up);
        assert_eq!(&*state.customers["a"].items, [1, 2]);
        assert!(!state.customers["b"].up);
        assert!(state.customers["b"].items.is_empty());
        assert_eq!(state.last_success, None);
    }
}
