//! Reading a paged list whole, within bounds: the page size asked for,
//! the most items kept, the most pages read, and the count of every bound
//! hit. Discovery's lists and every collector's go through [`list_all`], so
//! a server that lies about its totals or sends fresh items forever is
//! bounded the same way everywhere.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use super::DiscoveryError;
use crate::avepoint::ApiError;
use crate::avepoint::model::Page;

/// Upper bound of pages read from one list, whatever the server claims.
const MAX_PAGES: u32 = 1000;
/// How often a bound on what AvePoint sends was hit: plain data, added up
/// over the refreshes (`avepoint_discovery_limit_hits_total`,
/// `avepoint_backup_limit_hits_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitHits {
    /// Pages that held more items than asked for (the rest was ignored).
    pub page_size: u64,
    /// Lists cut at `discovery.max_items_per_list`.
    pub max_items_per_list: u64,
    /// Refreshes whose customers were cut at `discovery.max_customers`.
    pub max_customers: u64,
    /// Customers whose backup rows were folded into `other`
    /// (`backup::MAX_ROWS_PER_CUSTOMER`).
    pub max_rows_per_customer: u64,
}

impl LimitHits {
    /// Both added up (saturating).
    pub fn plus(self, other: LimitHits) -> LimitHits {
        LimitHits {
            page_size: self.page_size.saturating_add(other.page_size),
            max_items_per_list: self
                .max_items_per_list
                .saturating_add(other.max_items_per_list),
            max_customers: self.max_customers.saturating_add(other.max_customers),
            max_rows_per_customer: self
                .max_rows_per_customer
                .saturating_add(other.max_rows_per_customer),
        }
    }

    /// Each bound by its `limit` label value, with its count.
    pub fn by_limit(&self) -> [(&'static str, u64); 4] {
        [
            ("page_size", self.page_size),
            ("max_items_per_list", self.max_items_per_list),
            ("max_customers", self.max_customers),
            ("max_rows_per_customer", self.max_rows_per_customer),
        ]
    }

    /// Say once (one line per refresh that hit a bound, not one per page
    /// or per list) what was cut, and which key raises the bound.
    pub fn warn_if_any(&self, reader: &str) {
        if *self == LimitHits::default() {
            return;
        }
        tracing::warn!(
            reader,
            oversized_pages = self.page_size,
            lists_cut = self.max_items_per_list,
            customers_cut = self.max_customers > 0,
            customers_folded = self.max_rows_per_customer,
            "AvePoint listed more than the exporter keeps; the rest was ignored (discovery.max_items_per_list, discovery.max_customers; pages hold at most the page size asked for)"
        );
    }
}

/// [`LimitHits`] counted by lists read at the same time.
#[derive(Debug, Default)]
pub struct LimitCounter {
    page_size: AtomicU64,
    max_items_per_list: AtomicU64,
    max_customers: AtomicU64,
    max_rows_per_customer: AtomicU64,
}

impl LimitCounter {
    /// What was counted so far.
    pub fn hits(&self) -> LimitHits {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LimitHits {
            page_size: get(&self.page_size),
            max_items_per_list: get(&self.max_items_per_list),
            max_customers: get(&self.max_customers),
            max_rows_per_customer: get(&self.max_rows_per_customer),
        }
    }

    /// One customer's rows folded into `other`.
    pub fn rows_folded(&self) {
        self.max_rows_per_customer.fetch_add(1, Ordering::Relaxed);
    }

    /// A refresh's customers cut at `discovery.max_customers`.
    pub fn customers_cut(&self) {
        self.max_customers.fetch_add(1, Ordering::Relaxed);
    }
}

/// How one list is read: the page size asked for, the most items kept,
/// and where hitting either is counted.
#[derive(Debug, Clone, Copy)]
pub struct ListBounds<'a> {
    /// Items per page asked for; a page holding more is cut to it.
    pub page_size: u32,
    /// Items kept of the whole list.
    pub max_items: usize,
    /// Where the hits are counted.
    pub counter: &'a LimitCounter,
}

/// Read every page of a list. Stops at `totalCount`, at an empty page, at a
/// page that brings nothing new (a server repeating itself), after
/// [`MAX_PAGES`], or once `bounds.max_items` are kept: a server that lies
/// about its totals cannot keep us paging, nor one that sends fresh items
/// forever make us keep them. A page is read up to the page size asked
/// for, the rest ignored (unless the answer was the whole list, unpaged).
pub async fn list_all<T, F, Fut, K>(
    list: &str,
    bounds: ListBounds<'_>,
    mut fetch: F,
    key: K,
) -> Result<Vec<T>, DiscoveryError>
where
    F: FnMut(u32, u32) -> Fut,
    Fut: Future<Output = Result<Page<T>, ApiError>>,
    K: Fn(&T) -> String,
{
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let counter = bounds.counter;
    for page_index in 1..=MAX_PAGES {
        let mut page = fetch(page_index, bounds.page_size)
            .await
            .map_err(|source| DiscoveryError::Api {
                list: list.to_owned(),
                source,
            })?;
        if !page.whole && page.data.len() > bounds.page_size as usize {
            page.data.truncate(bounds.page_size as usize);
            counter.page_size.fetch_add(1, Ordering::Relaxed);
        }
        let before = items.len();
        for item in page.data {
            if items.len() >= bounds.max_items {
                counter.max_items_per_list.fetch_add(1, Ordering::Relaxed);
                return Ok(items);
            }
            if seen.insert(key(&item)) {
                items.push(item);
            }
        }
        let new_items = items.len() - before;
        if new_items == 0 || items.len() as u64 >= page.metadata.total_count {
            return Ok(items);
        }
    }
    tracing::warn!(
        list,
        pages = MAX_PAGES,
        "stopped paging: the server keeps sending pages"
    );
    Ok(items)
}
