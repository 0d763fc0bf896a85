//! The `targets:` section: the scan profiles listed in the file, flattened
//! into one [`ProfileTarget`] per profile.

use std::collections::HashSet;
use std::fmt;

use super::collectors::CollectorSettings;
use super::file::{ConfigError, ConfigFile};
use super::raw::RawTarget;

/// The form every id in a [`ProfileTarget`] takes: the lower-case,
/// hyphenated UUID, whatever spelling it came in (case, braces, no hyphens),
/// or `None` when it is not a UUID. Discovery and `/probe` use it, so that
/// one id is one target everywhere.
pub fn canonical_uuid(id: &str) -> Option<String> {
    uuid::Uuid::parse_str(id.trim())
        .ok()
        .map(|id| id.to_string())
}

/// One scan profile to export.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileTarget {
    /// Customer id (lower-case UUID).
    pub customer_id: String,
    /// Scan profile id (lower-case UUID).
    pub profile_id: String,
}

impl ProfileTarget {
    /// The target of `profile_id` of `customer_id`, ids as given.
    pub fn new(customer_id: impl Into<String>, profile_id: impl Into<String>) -> Self {
        Self {
            customer_id: customer_id.into(),
            profile_id: profile_id.into(),
        }
    }
}

impl fmt::Display for ProfileTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "customer {} profile {}",
            self.customer_id, self.profile_id
        )
    }
}

/// What `targets:` lists: the profiles to collect, and every customer
/// named (for the per-customer collectors).
pub(super) struct Targets {
    pub(super) profiles: Vec<ProfileTarget>,
    pub(super) customers: Vec<String>,
}

/// Flatten the listed targets. The list may only be empty when discovery
/// finds the profiles instead; a profile listed twice is reported rather
/// than merged, since it is more likely a slip than intended.
pub(super) fn validate(
    file: &ConfigFile<'_>,
    raw: &[RawTarget],
    discovery_enabled: bool,
    collectors: &CollectorSettings,
) -> Result<Targets, ConfigError> {
    if raw.is_empty() && !discovery_enabled {
        return Err(file.invalid(
            "targets",
            "is empty: list at least one customer_id with its profile_ids, or enable discovery"
                .into(),
        ));
    }
    let mut seen = HashSet::new();
    let mut targets = Vec::new();
    let mut customers: Vec<String> = Vec::new();
    for (index, target) in raw.iter().enumerate() {
        let customer_id = target.customer_id.to_string();
        if !customers.contains(&customer_id) {
            customers.push(customer_id);
        }
        if !collectors.scan_profiles {
            // Only the customer matters to the per-customer collectors.
            continue;
        }
        if target.profile_ids.is_empty() {
            return Err(file.invalid(
                &format!("targets[{index}].profile_ids"),
                "is empty: list at least one scan profile id".into(),
            ));
        }
        for (profile_index, profile_id) in target.profile_ids.iter().enumerate() {
            let target = ProfileTarget {
                customer_id: target.customer_id.to_string(),
                profile_id: profile_id.to_string(),
            };
            if !seen.insert(target.clone()) {
                return Err(file.invalid(
                    &format!("targets[{index}].profile_ids[{profile_index}]"),
                    format!(
                        "profile {} of customer {} is listed twice",
                        target.profile_id, target.customer_id
                    ),
                ));
            }
            targets.push(target);
        }
    }
    Ok(Targets {
        profiles: targets,
        customers,
    })
}
