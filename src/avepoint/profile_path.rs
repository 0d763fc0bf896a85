//! Which path a profile's report is fetched from: `avepoint.endpoint`,
//! and with `auto` the switch from the seed path `scan-profiles-v2` to the
//! published `.../scan-profiles/{id}/changes` when the seed path is not
//! served.
//!
//! Imports `avepoint::{client, error, instrumentation, model}` and `config`.

use reqwest::StatusCode;
use tokio::time::Instant;

use super::client::ApiClient;
use super::error::ApiError;
use super::instrumentation::ApiEndpoint;
use super::model::ScanProfileReport;
use crate::config::{ProfileEndpoint, ProfileTarget};

impl ApiClient {
    pub(super) async fn scan_profile_report(
        &self,
        target: &ProfileTarget,
        deadline: Instant,
    ) -> Result<ScanProfileReport, ApiError> {
        let path = self.profile_path();
        let result = self.fetch_profile(path, target, deadline).await;
        // 405 too: a gateway may answer an unknown route so.
        let seed_missing = matches!(&result, Err(ApiError::Status { status, .. })
            if *status == StatusCode::NOT_FOUND || *status == StatusCode::METHOD_NOT_ALLOWED);
        if !(seed_missing
            && self.endpoint == ProfileEndpoint::Auto
            && path == ProfileEndpoint::ScanProfilesV2)
        {
            return result;
        }
        match self.fetch_profile(ProfileEndpoint::Changes, target, deadline).await {
            Ok(report) => {
                self.switch_to_changes();
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

    /// The path profiles are fetched from now: `scan-profiles-v2` or
    /// `changes` (never `auto`).
    pub fn profile_path(&self) -> ProfileEndpoint {
        match self.endpoint {
            ProfileEndpoint::Auto
                if self.use_changes.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                ProfileEndpoint::Changes
            }
            ProfileEndpoint::Auto => ProfileEndpoint::ScanProfilesV2,
            explicit => explicit,
        }
    }

    /// Remember that `changes` is the path that answers; logged once.
    fn switch_to_changes(&self) {
        if !self
            .use_changes
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.metrics
                .set_profile_path(ProfileEndpoint::Changes.name());
            tracing::info!(
                "scan-profiles-v2 answered 404 or 405 where changes answered: using the changes path for every profile (avepoint.endpoint: auto)"
            );
        }
    }

    async fn fetch_profile(
        &self,
        path: ProfileEndpoint,
        target: &ProfileTarget,
        deadline: Instant,
    ) -> Result<ScanProfileReport, ApiError> {
        let url = self.url(&path.path(&target.customer_id, &target.profile_id));
        self.call_with_retry(
            ApiEndpoint::ScanProfile,
            &url,
            None,
            "a scan profile report",
            deadline,
        )
        .await
    }
}
