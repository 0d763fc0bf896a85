//! What a reload keeps of the pipeline it replaces: discovery, the details
//! refresher, the per-customer collectors and the refresher itself go on
//! running when the new config leaves what they depend on unchanged, so a
//! reload that touches only `metrics:` does not list every customer again.

use std::sync::Arc;

use super::Pipeline;
use crate::avepoint::ApiClient;
use crate::config::Settings;
use crate::discovery::Discovery;
use crate::profile_details::ProfileDetailsTask;
use crate::refresher::{PanicCounts, Permits, Refresher};

impl Pipeline {
    /// Whether a pipeline for `settings` can keep this one's backup
    /// collectors: same client, same customers, same collector settings.
    pub(super) fn can_share_backup(
        &self,
        settings: &Settings,
        client: &Arc<ApiClient>,
        discovery: &Option<Arc<Discovery>>,
    ) -> bool {
        Arc::ptr_eq(&self.client, client)
            && self.same_discovery(discovery)
            && self.settings.customers == settings.customers
            && self.settings.collectors == settings.collectors
    }

    /// This pipeline's details refresher, if the one for `settings` can
    /// share it: same client, same targets (the same discovery, whose
    /// updates it follows, and the same static list) and same interval.
    pub(super) fn reusable_details(
        &self,
        settings: &Settings,
        client: &Arc<ApiClient>,
        discovery: &Option<Arc<Discovery>>,
    ) -> Option<Arc<ProfileDetailsTask>> {
        let running = self.profile_details.as_ref()?;
        (Arc::ptr_eq(&self.client, client)
            && self.same_discovery(discovery)
            && self.settings.targets == settings.targets
            && self.settings.profile_details == settings.profile_details)
            .then(|| Arc::clone(running))
    }

    /// This pipeline's discovery, if a pipeline for `settings` using
    /// `client` can share it: same client, same discovery settings, same
    /// static targets (which it merges in). Restarting it would cost a full
    /// run of listing every customer for nothing.
    pub(super) fn reusable_discovery(
        &self,
        settings: &Settings,
        client: &Arc<ApiClient>,
    ) -> Option<Arc<Discovery>> {
        let running = self.discovery.as_ref()?;
        let (mine, theirs) = (
            self.settings.discovery.as_ref()?,
            settings.discovery.as_ref()?,
        );
        (Arc::ptr_eq(&self.client, client)
            && mine.same_as(theirs)
            && self.settings.targets == settings.targets)
            .then(|| Arc::clone(running))
    }

    /// Whether `discovery` is this pipeline's own (or both have none).
    fn same_discovery(&self, discovery: &Option<Arc<Discovery>>) -> bool {
        match (&self.discovery, discovery) {
            (Some(mine), Some(theirs)) => Arc::ptr_eq(mine, theirs),
            (None, None) => true,
            _ => false,
        }
    }
}

/// The refresher of a pipeline: `previous`'s when it keeps the client (one
/// permit share per client: readers a reload keeps and readers it starts
/// anew share it), else a new one. With `report_schedule` no scrape or
/// probe asks AvePoint, so the background readers get the whole
/// concurrency bound instead of a quarter.
pub(super) fn refresher_for(
    settings: &Settings,
    client: &Arc<ApiClient>,
    panics: &PanicCounts,
    previous: Option<&Pipeline>,
) -> Refresher {
    let scheduled = settings.collectors.report_schedule.is_some();
    match previous {
        Some(previous)
            if Arc::ptr_eq(&previous.client, client)
                && previous.settings.collectors.report_schedule.is_some() == scheduled =>
        {
            previous.refresher.clone()
        }
        _ if scheduled => Refresher::new(Permits::exactly(client.concurrency()), panics.clone()),
        _ => Refresher::new(Permits::share_of(client.concurrency()), panics.clone()),
    }
}
