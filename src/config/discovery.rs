//! The `discovery:` section: [`DiscoverySettings`], its include/exclude
//! [`DiscoveryRule`]s, and the checks that turn the raw section into them.

use std::time::Duration;

use regex::Regex;

use super::file::{ConfigError, ConfigFile};
use super::raw::{RawDiscovery, RawRule};

/// How customers and profiles are discovered.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// How often the lists are fetched again.
    pub refresh_interval: Duration,
    /// Items per page (AvePoint allows at most 100).
    pub page_size: u32,
    /// A customer/profile is kept if any of these match (or if there are none).
    pub include: Vec<DiscoveryRule>,
    /// ... and none of these match.
    pub exclude: Vec<DiscoveryRule>,
    /// Whether each customer's scan profiles are listed too (not when
    /// the scan profile collector is off: the backup collectors need only
    /// the customers).
    pub list_profiles: bool,
    /// What one refresh keeps at most of what AvePoint lists.
    pub limits: ListLimits,
}

/// Bounds on what a paged list of AvePoint may make the exporter keep:
/// every item of a list is held in memory until the list is read, and
/// every customer costs requests and series. Without them a server that
/// answers 15,000 fresh items per page grows the process by gigabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// Customers kept per discovery refresh (`discovery.max_customers`):
    /// the first ones by id, after the rules.
    pub max_customers: usize,
    /// Items read of any one paged list (`discovery.max_items_per_list`):
    /// the customers, one customer's profiles, backup jobs or coverage rows.
    pub max_items_per_list: usize,
}

/// Default of `discovery.max_customers`.
pub(super) const DEFAULT_MAX_CUSTOMERS: usize = 10_000;
/// Default of `discovery.max_items_per_list`.
pub(super) const DEFAULT_MAX_ITEMS_PER_LIST: usize = 10_000;
/// The most either bound may be set to.
const MAX_LIMIT: usize = 1_000_000;

impl Default for ListLimits {
    fn default() -> Self {
        Self {
            max_customers: DEFAULT_MAX_CUSTOMERS,
            max_items_per_list: DEFAULT_MAX_ITEMS_PER_LIST,
        }
    }
}

/// `discovery.max_customers` and `discovery.max_items_per_list`: checked
/// whenever they are given, discovery enabled or not, since the second one
/// bounds the backup collectors' lists too.
pub(super) fn list_limits(
    file: &ConfigFile<'_>,
    raw: Option<&RawDiscovery>,
) -> Result<ListLimits, ConfigError> {
    let defaults = ListLimits::default();
    let check = |key: &str, value: Option<usize>, default: usize| match value {
        None => Ok(default),
        Some(value) if (1..=MAX_LIMIT).contains(&value) => Ok(value),
        Some(value) => Err(file.invalid(
            key,
            format!("must be between 1 and {MAX_LIMIT}, got {value}"),
        )),
    };
    Ok(ListLimits {
        max_customers: check(
            "discovery.max_customers",
            raw.and_then(|raw| raw.max_customers),
            defaults.max_customers,
        )?,
        max_items_per_list: check(
            "discovery.max_items_per_list",
            raw.and_then(|raw| raw.max_items_per_list),
            defaults.max_items_per_list,
        )?,
    })
}

/// One include or exclude rule: every field given must match (anchored regex).
#[derive(Debug, Clone, Default)]
pub struct DiscoveryRule {
    /// Matches the customer id.
    pub customer_id: Option<Regex>,
    /// Matches the organization name.
    pub organization: Option<Regex>,
    /// Matches the profile name.
    pub profile_name: Option<Regex>,
}

impl DiscoveryRule {
    /// Whether the customer-level fields match (profile name not considered).
    pub fn matches_customer(&self, customer_id: &str, organization: &str) -> bool {
        self.customer_id
            .as_ref()
            .is_none_or(|re| re.is_match(customer_id))
            && self
                .organization
                .as_ref()
                .is_none_or(|re| re.is_match(organization))
    }

    /// Whether every field matches this profile of this customer.
    pub fn matches(&self, customer_id: &str, organization: &str, profile_name: &str) -> bool {
        self.matches_customer(customer_id, organization)
            && self
                .profile_name
                .as_ref()
                .is_none_or(|re| re.is_match(profile_name))
    }
}

impl DiscoverySettings {
    /// Whether `other` discovers the same way: interval, page size, rules.
    pub fn same_as(&self, other: &DiscoverySettings) -> bool {
        fn same_rules(a: &[DiscoveryRule], b: &[DiscoveryRule]) -> bool {
            let pattern = |re: &Option<Regex>| re.as_ref().map(|re| re.as_str().to_owned());
            a.len() == b.len()
                && a.iter().zip(b).all(|(a, b)| {
                    pattern(&a.customer_id) == pattern(&b.customer_id)
                        && pattern(&a.organization) == pattern(&b.organization)
                        && pattern(&a.profile_name) == pattern(&b.profile_name)
                })
        }
        self.refresh_interval == other.refresh_interval
            && self.page_size == other.page_size
            && self.list_profiles == other.list_profiles
            && self.limits == other.limits
            && same_rules(&self.include, &other.include)
            && same_rules(&self.exclude, &other.exclude)
    }

    /// Whether some profile of this customer can still be kept (so its
    /// profiles are worth listing).
    pub fn wants_customer(&self, customer_id: &str, organization: &str) -> bool {
        let included = self.include.is_empty()
            || self
                .include
                .iter()
                .any(|rule| rule.matches_customer(customer_id, organization));
        let excluded = self.exclude.iter().any(|rule| {
            rule.profile_name.is_none() && rule.matches_customer(customer_id, organization)
        });
        included && !excluded
    }

    /// Whether this profile is kept.
    pub fn wants_profile(&self, customer_id: &str, organization: &str, profile_name: &str) -> bool {
        let included = self.include.is_empty()
            || self
                .include
                .iter()
                .any(|rule| rule.matches(customer_id, organization, profile_name));
        included
            && !self
                .exclude
                .iter()
                .any(|rule| rule.matches(customer_id, organization, profile_name))
    }
}

/// The `discovery:` section: `None` unless it is there with `enabled: true`,
/// in which case its other keys are checked (a disabled section is not, so
/// it can be switched off without cleaning it up).
pub(super) fn validate(
    file: &ConfigFile<'_>,
    raw: Option<RawDiscovery>,
) -> Result<Option<DiscoverySettings>, ConfigError> {
    let discovery = match raw {
        Some(discovery) if discovery.enabled => discovery,
        _ => return Ok(None),
    };
    let refresh_interval = discovery
        .refresh_interval
        .unwrap_or(Duration::from_secs(3600));
    if refresh_interval < Duration::from_secs(1) {
        return Err(file.invalid("discovery.refresh_interval", "must be at least 1s".into()));
    }
    let page_size = discovery.page_size.unwrap_or(100);
    if !(1..=100).contains(&page_size) {
        return Err(file.invalid(
            "discovery.page_size",
            format!("must be between 1 and 100, got {page_size}"),
        ));
    }
    Ok(Some(DiscoverySettings {
        refresh_interval,
        page_size,
        include: discovery.include.into_iter().map(rule).collect(),
        exclude: discovery.exclude.into_iter().map(rule).collect(),
        list_profiles: true,
        limits: ListLimits::default(),
    }))
}

/// The regexes were compiled (and anchored) while decoding; nothing is left to check.
fn rule(raw: RawRule) -> DiscoveryRule {
    DiscoveryRule {
        customer_id: raw.customer_id,
        organization: raw.organization,
        profile_name: raw.profile_name,
    }
}
