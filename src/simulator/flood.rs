//! Runaway upstream answers for the hostile-upstream tests and the soak:
//! a customer list that answers thousands of fresh customers per page,
//! a job list whose every job has a module never seen before. Each page
//! promises more to come (`totalCount` far beyond what was sent).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::state::SimState;
use super::wire;

/// What every flood page claims is left to read.
const ENDLESS: u64 = u64::MAX / 2;

/// [`super::RunningSimulator::set_customer_flood`]: `count` customers never
/// sent before (from `template`), whatever page size was asked.
pub(super) fn fresh_customers(
    state: &SimState,
    count: u64,
    template: Value,
    at: (u32, u32),
) -> Value {
    let first = state.fresh_customers.fetch_add(count, Ordering::Relaxed);
    let items: Vec<Value> = (first..first.saturating_add(count))
        .map(|n| {
            let mut item = template.clone();
            item["id"] = json!(format!("f1000000-0000-4000-8000-{:012x}", n % (1 << 48)));
            item["organization"] = json!(format!("Flood {n}"));
            item
        })
        .collect();
    wire::page_body(items, at.0, at.1, ENDLESS)
}

/// [`super::Fault::FreshModules`]: a full page (as many jobs as asked
/// for, from `template`) of modules never sent before.
pub(super) fn fresh_modules(state: &SimState, template: Value, at: (u32, u32)) -> Value {
    let size = u64::from(at.1);
    let first = state.fresh_modules.fetch_add(size, Ordering::Relaxed);
    let items: Vec<Value> = (first..first + size)
        .map(|n| {
            let mut item = template.clone();
            item["jobId"] = json!(format!("sim-fresh-{n}"));
            item["jobModule"] = json!(1_000_000 + n);
            item
        })
        .collect();
    wire::page_body(items, at.0, at.1, ENDLESS)
}
