//! What a per-customer collector is to the rest of the exporter, whatever
//! it reads: how it starts ([`Start`]), how `check` tries it
//! ([`CheckTargets`], [`FirstPage`]), and the running ones together
//! ([`CollectorTasks`]), whose latest states make a [`BackupSnapshot`].
//! Each collector's module describes itself in one
//! [`PerCustomerCollector`]; `mod.rs` lists them by kind.

use std::sync::Arc;

use futures_util::stream::BoxStream;

use super::customers::CustomerSource;
use super::reader::{CollectorState, CollectorTask, Refresh, spawn};
use super::snapshot::{BackupSnapshot, CollectedState};
use crate::avepoint::model::Page;
use crate::avepoint::{ApiClient, ApiEndpoint, ApiError};
use crate::config::{BackupCollectorSettings, CollectorKind};
use crate::refresher::Refresher;

/// One per-customer collector: how it starts and how `check` tries it.
#[derive(Clone, Copy)]
pub struct PerCustomerCollector {
    /// The endpoint it reads: `check` asks for its permission first.
    pub endpoint: ApiEndpoint,
    /// Start it reading; `None` when it cannot run (`protected_users`
    /// without discovery, which lists the tenants).
    pub(super) start: fn(&Start<'_>) -> Option<Arc<dyn RunningCollector>>,
    /// The first page of every list it reads, for `check`.
    pub(super) first_pages: for<'a> fn(&'a ApiClient, &'a CheckTargets) -> BoxStream<'a, FirstPage>,
}

impl PerCustomerCollector {
    /// The first page of every list the collector reads, in order, each
    /// as soon as it is read (`check` prints it then).
    pub fn first_pages<'a>(
        &self,
        client: &'a ApiClient,
        targets: &'a CheckTargets,
    ) -> BoxStream<'a, FirstPage> {
        (self.first_pages)(client, targets)
    }
}

/// What a collector starts with: the pipeline's refresher and client, the
/// customers to read, and its settings.
pub(super) struct Start<'a> {
    /// Which collector: its reader's name in logs and panic counts.
    pub(super) kind: CollectorKind,
    pub(super) refresher: &'a Refresher,
    pub(super) client: &'a Arc<ApiClient>,
    pub(super) customers: &'a CustomerSource,
    /// `collectors.<kind>`.
    pub(super) settings: &'a BackupCollectorSettings,
}

impl Start<'_> {
    /// Start `reader` as this collector: every customer, every
    /// `refresh_interval`.
    pub(super) fn spawn<R: Refresh>(&self, reader: R) -> Arc<dyn RunningCollector>
    where
        CollectorState<R::Item>: CollectedState,
    {
        let interval = self.settings.refresh_interval;
        let customers = self.customers.clone();
        let refresher = self.refresher;
        Arc::new(spawn(
            refresher,
            self.kind.name(),
            interval,
            customers,
            reader,
        ))
    }
}

/// A running collector, whatever its state's type.
pub(crate) trait RunningCollector: std::fmt::Debug + Send + Sync {
    /// Its latest state.
    fn latest(&self) -> Arc<dyn CollectedState>;
}

impl<S: CollectedState + 'static> RunningCollector for CollectorTask<S> {
    fn latest(&self) -> Arc<dyn CollectedState> {
        Arc::clone(&self.state.borrow()) as Arc<dyn CollectedState>
    }
}

/// The running per-customer collectors of a pipeline, in the order of
/// [`CollectorKind::ALL`]; each one's task stops when the last pipeline
/// sharing it drops.
#[derive(Debug, Clone, Default)]
pub struct CollectorTasks(pub(super) Vec<(CollectorKind, Arc<dyn RunningCollector>)>);

impl CollectorTasks {
    /// Their latest states, as plain data.
    pub fn snapshot(&self) -> BackupSnapshot {
        let collectors = self
            .0
            .iter()
            .map(|(kind, running)| (*kind, running.latest()))
            .collect();
        BackupSnapshot { collectors }
    }
}

/// What `check` reads the first pages of: every customer, and every
/// tenant discovery lists.
#[derive(Debug, Clone, Default)]
pub struct CheckTargets {
    /// The configured customers and the discovered ones.
    pub customers: Vec<String>,
    /// (customer, tenant) of every tenant discovery lists.
    pub tenants: Vec<(String, String)>,
}

impl CheckTargets {
    /// The customers and tenants of `source` right now.
    pub fn of(source: &CustomerSource) -> Self {
        let customers = source.current();
        let tenants = source
            .discovered
            .as_ref()
            .map(|state| {
                let state = state.borrow();
                state
                    .customers
                    .iter()
                    .flat_map(|c| c.tenants.iter().map(|t| (c.id.clone(), t.id.clone())))
                    .filter(|(_, tenant)| !tenant.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Self { customers, tenants }
    }
}

/// The first page of one list a collector reads, as `check` reports it.
#[derive(Debug)]
pub struct FirstPage {
    /// Whose list (`customer ...`, `customer ... tenant ...`, `every
    /// customer`).
    pub whose: String,
    /// What it held, or why it could not be read.
    pub read: Result<PageCount, ApiError>,
}

/// How many items a first page held.
#[derive(Debug)]
pub struct PageCount {
    /// Items on the page.
    pub items: usize,
    /// Items in the whole list, as AvePoint counts them.
    pub total: u64,
    /// How the list was asked for, when that varies (`, asked for as ...`).
    pub how: String,
}

impl PageCount {
    /// The count of `page`.
    pub(super) fn of<T>(page: &Page<T>) -> Self {
        Self {
            items: page.data.len(),
            total: page.metadata.total_count,
            how: String::new(),
        }
    }
}
