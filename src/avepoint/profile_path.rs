//! Which path a profile's report is fetched from: `avepoint.endpoint`,
//! and with `auto` the switch from the seed path `scan-profiles-v2` to the
//! published `.../scan-profiles/{id}/changes` when the seed path is not
//! served.
//!
//! Imports `avepoint::{client, endpoint, error, model}` and `config`.

use std::sync::atomic::Ordering;

use reqwest::StatusCode;
use tokio::time::Instant;

use super::client::ApiClient;
use super::endpoint::ApiEndpoint;
use super::error::ApiError;
use super::model::ScanProfileReport;
use crate::config::{ProfileEndpoint, ProfileTarget};

/// Profiles in a row that must answer only on the other path before
/// `auto` makes it the default: one profile's 404 says little (it may be
/// gone), several say the path moved.
const PATH_SWITCH_VOTES: u32 = 3;

/// Whether an answer says the path is not served: 404, or 405 (a gateway
/// may answer an unknown route so).
fn path_missing<T>(result: &Result<T, ApiError>) -> bool {
    matches!(result, Err(ApiError::Status { status, .. })
        if *status == StatusCode::NOT_FOUND || *status == StatusCode::METHOD_NOT_ALLOWED)
}

impl ApiClient {
    /// A profile's report from the current path; with `auto`, from the
    /// other path when the current one answers 404 or 405. The default
    /// moves to the other path (either way) once [`PATH_SWITCH_VOTES`]
    /// profiles in a row answered only there.
    pub(super) async fn scan_profile_report(
        &self,
        target: &ProfileTarget,
        deadline: Instant,
    ) -> Result<ScanProfileReport, ApiError> {
        let path = self.profile_path();
        let result = self.fetch_profile(path, target, deadline).await;
        if self.endpoint != ProfileEndpoint::Auto {
            return result;
        }
        if !path_missing(&result) {
            if result.is_ok() {
                self.path_votes.store(0, Ordering::Relaxed);
            }
            return result;
        }
        let other = match path {
            ProfileEndpoint::Changes => ProfileEndpoint::ScanProfilesV2,
            _ => ProfileEndpoint::Changes,
        };
        match self.fetch_profile(other, target, deadline).await {
            Ok(report) => {
                self.vote_for(other);
                Ok(report)
            }
            Err(ApiError::Status {
                status,
                message,
                request_id,
                trace_id,
                retry_after,
                ..
            }) if status == StatusCode::NOT_FOUND => Err(ApiError::Status {
                status,
                hint: "customer or scan profile not found: neither the scan-profiles-v2 nor the changes path knows it; check the ids".to_owned(),
                message,
                request_id,
                trace_id,
                retry_after,
            }),
            Err(error) => Err(error),
        }
    }

    /// The path profiles are fetched from first now: `scan-profiles-v2` or
    /// `changes` (never `auto`).
    pub fn profile_path(&self) -> ProfileEndpoint {
        match self.endpoint {
            ProfileEndpoint::Auto if self.use_changes.load(Ordering::Relaxed) => {
                ProfileEndpoint::Changes
            }
            ProfileEndpoint::Auto => ProfileEndpoint::ScanProfilesV2,
            explicit => explicit,
        }
    }

    /// One more profile answered only on `other`; the default moves there
    /// once enough did in a row (logged once per move).
    fn vote_for(&self, other: ProfileEndpoint) {
        if self.path_votes.fetch_add(1, Ordering::Relaxed) + 1 < PATH_SWITCH_VOTES {
            return;
        }
        self.path_votes.store(0, Ordering::Relaxed);
        let to_changes = other == ProfileEndpoint::Changes;
        if self.use_changes.swap(to_changes, Ordering::Relaxed) != to_changes {
            self.metrics.set_profile_path(other.name());
            tracing::info!(
                path = other.name(),
                "scan profiles answered 404 or 405 on the other path where this one answered: fetching from it first (avepoint.endpoint: auto)"
            );
        }
    }

    async fn fetch_profile(
        &self,
        path: ProfileEndpoint,
        target: &ProfileTarget,
        deadline: Instant,
    ) -> Result<ScanProfileReport, ApiError> {
        let url =
            self.report_urls
                .get_or_build(path, &target.customer_id, &target.profile_id, |path| {
                    self.url(path)
                });
        self.call_with_retry(ApiEndpoint::SCAN_PROFILE, &url, None, deadline)
            .await
    }
}
