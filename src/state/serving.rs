//! What a scrape and a probe read from a pipeline, gathered here so that
//! the web handlers only negotiate, wait for their round and encode: the
//! latest plain data of each background stage, the sources of a
//! `/metrics` scrape, and the inputs of a `/probe` (or why it is a caller
//! mistake).

use std::sync::Arc;

use super::Pipeline;
use crate::backup::BackupSnapshot;
use crate::config::ProfileTarget;
use crate::discovery::DiscoveryState;
use crate::metrics::{ProbeSources, ScrapeSources};
use crate::profile_details::ProfileDetailsState;
use crate::refresher::PanicCounts;

/// What one `/probe` collects and encodes.
#[derive(Debug)]
pub struct ProbeInputs {
    /// The customer's profiles to collect (all, or the one asked for);
    /// empty when the customer has only backup data.
    pub targets: Arc<[ProfileTarget]>,
    /// What is encoded besides the round's snapshot.
    pub sources: ProbeSources,
}

/// A `/probe` the caller got wrong: answered 400 with this text.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No `customer_id` parameter.
    #[error("customer_id parameter is missing")]
    MissingCustomer,
    /// A parameter that is not a UUID.
    #[error("{name} {value:?} is not a UUID")]
    NotUuid {
        /// The parameter.
        name: &'static str,
        /// What was sent.
        value: String,
    },
    /// A profile no config or discovery names for the customer.
    #[error(
        "profile {profile_id} of customer {customer_id} is not a configured or discovered target"
    )]
    UnknownProfile {
        /// The customer asked for.
        customer_id: String,
        /// The profile asked for.
        profile_id: String,
    },
    /// A customer with neither scan profiles nor backup data.
    #[error("customer {customer_id} has no configured or discovered scan profiles")]
    UnknownCustomer {
        /// The customer asked for.
        customer_id: String,
    },
}

impl Pipeline {
    /// The per-customer collectors' latest states, as plain data.
    pub fn backup_snapshot(&self) -> BackupSnapshot {
        self.backup.snapshot()
    }

    /// The latest profile details, unless their refresher is disabled.
    pub fn profile_details_state(&self) -> Option<Arc<ProfileDetailsState>> {
        self.profile_details
            .as_ref()
            .map(|d| Arc::clone(&d.state.borrow()))
    }

    /// Discovery's latest state, when discovery is enabled.
    pub fn discovery_state(&self) -> Option<Arc<DiscoveryState>> {
        self.discovery
            .as_ref()
            .map(|d| Arc::clone(&d.state.borrow()))
    }

    /// Everything a `/metrics` scrape encodes besides its round's snapshot.
    pub fn scrape_sources(&self, background_panics: &PanicCounts) -> ScrapeSources {
        ScrapeSources {
            targets: self.rounds.targets().len(),
            discovery: self.discovery_state(),
            details: self.profile_details_state(),
            backup: self.backup_snapshot(),
            backup_per_customer: self.settings.metrics_include_profiles,
            last_status_state: self.settings.metrics_last_status_state,
            background_panics: background_panics.snapshot(),
        }
    }

    /// What a `/probe` of `customer_id` (and only `profile_id`, if given;
    /// both canonical) encodes besides its round's snapshot, or why there
    /// is nothing to probe.
    pub fn probe_inputs(
        &self,
        customer_id: String,
        profile_id: Option<String>,
    ) -> Result<ProbeInputs, ProbeError> {
        let targets: Arc<[ProfileTarget]> = self
            .rounds
            .targets()
            .iter()
            .filter(|t| t.customer_id == customer_id)
            .filter(|t| profile_id.as_ref().is_none_or(|p| t.profile_id == *p))
            .cloned()
            .collect();
        let backup = self.backup_snapshot();
        // A customer without scan profiles still has its backup data.
        let backup_only = profile_id.is_none() && backup.knows(&customer_id);
        if targets.is_empty() && !backup_only {
            return Err(match profile_id {
                Some(profile_id) => ProbeError::UnknownProfile {
                    customer_id,
                    profile_id,
                },
                None => ProbeError::UnknownCustomer { customer_id },
            });
        }
        let customer = self.discovery_state().and_then(|discovery| {
            discovery
                .customers
                .iter()
                .find(|c| c.id.eq_ignore_ascii_case(&customer_id))
                .cloned()
        });
        let sources = ProbeSources {
            customer_id,
            customer,
            details: self.profile_details_state(),
            backup,
            last_status_state: self.settings.metrics_last_status_state,
        };
        Ok(ProbeInputs { targets, sources })
    }
}
