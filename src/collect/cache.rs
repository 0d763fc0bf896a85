//! The report cache of `avepoint.cache_ttl`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ProfileResult;
use crate::avepoint::ScanProfileReport;
use crate::config::ProfileTarget;
use crate::sync::lock;

/// Reports fetched within `ttl`, served again instead of calling AvePoint
/// (`avepoint.cache_ttl`). Only successful fetches are kept: a failing
/// profile is asked again on the next scrape.
pub(super) struct ReportCache {
    ttl: Duration,
    entries: Mutex<HashMap<ProfileTarget, CachedReport>>,
}

struct CachedReport {
    report: ScanProfileReport,
    fetched_at: Instant,
    fetch_duration: Duration,
}

impl ReportCache {
    /// An empty cache serving reports younger than `ttl`.
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    pub(super) fn get(&self, target: &ProfileTarget) -> Option<ProfileResult> {
        let entries = lock(&self.entries);
        let entry = entries.get(target)?;
        let age = entry.fetched_at.elapsed();
        (age < self.ttl).then(|| ProfileResult {
            target: target.clone(),
            fetch_duration: entry.fetch_duration,
            outcome: Ok(entry.report.clone()),
            cache_age: Some(age),
            read: None,
        })
    }

    pub(super) fn put(&self, result: &ProfileResult) {
        if let Ok(report) = &result.outcome {
            let mut entries = lock(&self.entries);
            entries.insert(
                result.target.clone(),
                CachedReport {
                    report: report.clone(),
                    fetched_at: Instant::now(),
                    fetch_duration: result.fetch_duration,
                },
            );
        }
    }

    /// Drop what can no longer be served (also forgets removed targets).
    pub(super) fn prune(&self) {
        let mut entries = lock(&self.entries);
        entries.retain(|_, entry| entry.fetched_at.elapsed() < self.ttl);
    }
}
