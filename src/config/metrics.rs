//! The `metrics:` section: which series are exported.

use serde::Deserialize;

/// Which series of the status state set `avepoint_scan_last_status_state`
/// each profile gets (`metrics.last_status_state`). The raw code gauge
/// `avepoint_scan_last_status` is exported in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastStatusState {
    /// One series per documented state, 1 for the current one and 0 for
    /// the others (the default: 15 series per profile).
    #[default]
    All,
    /// Only the current state's series, with value 1 (none for an
    /// undocumented status code).
    Current,
    /// No state set at all; the raw code gauge remains.
    None,
}

impl LastStatusState {
    /// The config spelling, for messages and docs.
    pub fn name(self) -> &'static str {
        match self {
            LastStatusState::All => "all",
            LastStatusState::Current => "current",
            LastStatusState::None => "none",
        }
    }
}

/// The `metrics:` section as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) include_profiles: Option<bool>,
    #[serde(default)]
    pub(super) last_status_state: LastStatusState,
}
