//! TEMPORARY stand-in for the details model and call (branch `wire`
//! brings the real ones); dropped at merge.
use time::OffsetDateTime;

use super::{ApiClient, ApiError};
use crate::config::ProfileTarget;

/// Stub.
#[derive(Debug, Clone)]
pub struct ScanProfileDetails {
    /// Stub.
    pub daily_scan_time: Option<u32>,
    /// Stub.
    pub created_time: Option<OffsetDateTime>,
    /// Stub.
    pub send_out_of_policy_notification: bool,
    /// Stub.
    pub scan_inplace_archived_mailboxes: bool,
    /// Stub.
    pub ignore_locked_sites: bool,
    /// Stub.
    pub containers: Vec<(String, i64)>,
}

impl ApiClient {
    /// Stub.
    pub async fn fetch_profile_details(
        &self,
        _target: &ProfileTarget,
    ) -> Result<ScanProfileDetails, ApiError> {
        Err(ApiError::Transport {
            message: "stub".into(),
            timeout: false,
        })
    }
}
