//! What an AvePoint endpoint is, as data: its label, method, path
//! template, permission and description ([`EndpointFacts`]), and the
//! typed handles ([`Paged`], [`Get`]) that tie an endpoint to the wire type
//! it answers with, so that one paged call and one get call of the client
//! ([`ApiClient::page`](super::ApiClient::page),
//! [`ApiClient::get`](super::ApiClient::get)) serve them all. A new
//! endpoint is one constant beside its wire types (`model.rs`,
//! `details.rs`, `backup.rs`, `subscriptions.rs`): its facts in a handle,
//! checked when the crate compiles. No new client method, and nothing
//! here changes.
//!
//! Also builds a report's path (`report_path`). Imports only, from
//! `config`, the report path choice and the scan profiles' permission
//! name.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use crate::config::{ProfileEndpoint, SCAN_PROFILES_SCOPE};

/// Which AvePoint endpoint a request went to: a handle on its
/// [`EndpointFacts`], compared and hashed by its label (the `api_endpoint`
/// label; not `endpoint`, which prometheus-operator sets on every
/// ServiceMonitor target and which would rename ours to
/// `exported_endpoint`). Labels are unique: each names one endpoint.
#[derive(Clone, Copy)]
pub struct ApiEndpoint(&'static EndpointFacts);

/// The facts of one endpoint, written once where its wire types are.
#[derive(Debug)]
pub struct EndpointFacts {
    /// The `api_endpoint` label value.
    pub label: &'static str,
    /// How the endpoint is asked.
    pub method: Method,
    /// The path below the API base URL, every `{...}` an id filled in
    /// order ([`Paged`] and [`Get`] say how many). `None` for the token
    /// endpoint, whose URL is `avepoint.token_url` whole. A report has two
    /// paths: `report_path` chooses.
    pub path_template: Option<&'static str>,
    /// The permission the endpoint needs; `None` for the token endpoint.
    pub permission: Option<&'static str>,
    /// What one answer is, for messages (`not a page of customers: ...`).
    pub description: &'static str,
}

impl ApiEndpoint {
    /// The OAuth2 token endpoint.
    pub const TOKEN: ApiEndpoint = ApiEndpoint(&EndpointFacts {
        label: "token",
        method: Method::Post,
        path_template: None,
        permission: None,
        description: "a token response",
    });

    /// A profile's daily report (either path; `report_path` builds it).
    pub const SCAN_PROFILE: ApiEndpoint = ApiEndpoint(&EndpointFacts {
        label: "scan_profile",
        method: Method::Get,
        path_template: Some(REPORT_V2),
        permission: Some(SCAN_PROFILES_SCOPE),
        description: "a scan profile report",
    });

    /// The label value.
    pub fn label(self) -> &'static str {
        self.0.label
    }

    /// How the endpoint is asked.
    pub fn method(self) -> Method {
        self.0.method
    }

    /// The path below the API base URL ([`EndpointFacts::path_template`]).
    pub fn path_template(self) -> Option<&'static str> {
        self.0.path_template
    }

    /// The permission the endpoint needs; `None` for the token endpoint.
    pub fn permission(self) -> Option<&'static str> {
        self.0.permission
    }

    /// What one answer is, for messages.
    pub fn description(self) -> &'static str {
        self.0.description
    }
}

impl PartialEq for ApiEndpoint {
    fn eq(&self, other: &Self) -> bool {
        self.0.label == other.0.label
    }
}

impl Eq for ApiEndpoint {}

impl Hash for ApiEndpoint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.label.hash(state);
    }
}

impl fmt::Debug for ApiEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.label)
    }
}

/// How an endpoint is asked: GET, or POST with a JSON body (`{}` unless
/// the call filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`, with no body.
    Get,
    /// `POST` with a JSON body.
    Post,
}

/// A report on the path AvePoint documented first.
pub(super) const REPORT_V2: &str =
    "/partner/external/v3/general/customers/{customer}/scan-profiles-v2/{profile}";
/// A report on the path AvePoint publishes since October 2025.
pub(super) const REPORT_CHANGES: &str =
    "/partner/external/v3/general/customers/{customer}/scan-profiles/{profile}/changes";

/// The path of one profile's report on `path` (`auto` starts with
/// `scan-profiles-v2`'s; `profile_path.rs` decides when to switch).
pub(super) fn report_path(path: ProfileEndpoint, customer_id: &str, profile_id: &str) -> String {
    fill(report_template(path), &[customer_id, profile_id])
}

pub(super) fn report_template(path: ProfileEndpoint) -> &'static str {
    match path {
        ProfileEndpoint::Auto | ProfileEndpoint::ScanProfilesV2 => REPORT_V2,
        ProfileEndpoint::Changes => REPORT_CHANGES,
    }
}

/// `template` with its `{...}` placeholders replaced by `ids`, in order,
/// in one allocation.
pub(super) fn fill(template: &str, ids: &[&str]) -> String {
    let extra: usize = ids.iter().map(|id| id.len()).sum();
    let mut path = String::with_capacity(template.len() + extra);
    let mut rest = template;
    let mut ids = ids.iter();
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map_or(rest.len(), |end| open + end + 1);
        path.push_str(ids.next().copied().unwrap_or_default());
        rest = &rest[close..];
    }
    path.push_str(rest);
    path
}

/// A paged list endpoint whose path names `IDS` ids, answering pages of
/// `T`: what [`ApiClient::page`](super::ApiClient::page) is called with.
#[derive(Debug)]
pub struct Paged<T, const IDS: usize> {
    /// The endpoint.
    pub endpoint: ApiEndpoint,
    item: PhantomData<fn() -> T>,
}

/// A single-object endpoint whose path names `IDS` ids, answering a `T`:
/// what [`ApiClient::get`](super::ApiClient::get) is called with.
#[derive(Debug)]
pub struct Get<T, const IDS: usize> {
    /// The endpoint.
    pub endpoint: ApiEndpoint,
    item: PhantomData<fn() -> T>,
}

// Copy by hand: a derive would ask `T: Copy`.
impl<T, const IDS: usize> Clone for Paged<T, IDS> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, const IDS: usize> Copy for Paged<T, IDS> {}
impl<T, const IDS: usize> Clone for Get<T, IDS> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, const IDS: usize> Copy for Get<T, IDS> {}

/// The handle of a paged list endpoint answering pages of `T`. Checked
/// when the crate compiles: its path starts below `/v3/general/` and
/// names `IDS` ids.
pub const fn paged<T, const IDS: usize>(facts: &'static EndpointFacts) -> Paged<T, IDS> {
    check_path(facts, IDS);
    Paged {
        endpoint: ApiEndpoint(facts),
        item: PhantomData,
    }
}

/// The handle of a single-object endpoint answering a `T`, checked as
/// [`paged`]'s.
pub const fn get<T, const IDS: usize>(facts: &'static EndpointFacts) -> Get<T, IDS> {
    check_path(facts, IDS);
    Get {
        endpoint: ApiEndpoint(facts),
        item: PhantomData,
    }
}

/// The common start of every path below the API base URL.
const V3: &str = "/partner/external/v3/general/";

/// Fails the build (in a constant) when `facts` has no path, a path not
/// below [`V3`], or a number of `{...}` placeholders other than `ids`.
const fn check_path(facts: &EndpointFacts, ids: usize) {
    let Some(template) = facts.path_template else {
        panic!("an endpoint with a handle has a path template");
    };
    assert!(
        starts_with(template.as_bytes(), V3.as_bytes()),
        "an endpoint's path starts with /partner/external/v3/general/"
    );
    assert!(
        placeholders(template) == ids,
        "a handle names as many ids as its path has placeholders"
    );
}

const fn starts_with(text: &[u8], prefix: &[u8]) -> bool {
    if text.len() < prefix.len() {
        return false;
    }
    let mut index = 0;
    while index < prefix.len() {
        if text[index] != prefix[index] {
            return false;
        }
        index += 1;
    }
    true
}

const fn placeholders(template: &str) -> usize {
    let bytes = template.as_bytes();
    let (mut index, mut count) = (0, 0);
    while index < bytes.len() {
        if bytes[index] == b'{' {
            count += 1;
        }
        index += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::avepoint::backup::{BACKUP_COVERAGE, BACKUP_JOBS};
    use crate::avepoint::details::PROFILE_DETAILS;
    use crate::avepoint::model::{CUSTOMERS, SCAN_PROFILES};
    use crate::avepoint::subscriptions::{SERVICES, TENANT_USERS};

    fn placeholders(endpoint: ApiEndpoint) -> usize {
        endpoint
            .path_template()
            .unwrap_or_default()
            .matches('{')
            .count()
    }

    #[test]
    fn every_handle_names_as_many_ids_as_its_template() {
        assert_eq!(placeholders(CUSTOMERS.endpoint), 0);
        assert_eq!(placeholders(SCAN_PROFILES.endpoint), 1);
        assert_eq!(placeholders(PROFILE_DETAILS.endpoint), 2);
        assert_eq!(placeholders(BACKUP_JOBS.endpoint), 1);
        assert_eq!(placeholders(BACKUP_COVERAGE.endpoint), 1);
        assert_eq!(placeholders(SERVICES.endpoint), 0);
        assert_eq!(placeholders(TENANT_USERS.endpoint), 2);
        assert_eq!(placeholders(ApiEndpoint::SCAN_PROFILE), 2);
        assert_eq!(REPORT_CHANGES.matches('{').count(), 2);
    }

    /// Every endpoint with a path: all but the token endpoint.
    const TEMPLATED: [ApiEndpoint; 8] = [
        ApiEndpoint::SCAN_PROFILE,
        CUSTOMERS.endpoint,
        SCAN_PROFILES.endpoint,
        PROFILE_DETAILS.endpoint,
        BACKUP_JOBS.endpoint,
        BACKUP_COVERAGE.endpoint,
        SERVICES.endpoint,
        TENANT_USERS.endpoint,
    ];

    #[test]
    fn every_path_starts_below_v3() {
        for endpoint in TEMPLATED {
            assert!(
                endpoint.path_template().unwrap().starts_with(V3),
                "{endpoint:?}"
            );
        }
        assert_eq!(ApiEndpoint::TOKEN.path_template(), None);
    }

    /// What `check_path` fails the build on, counted the way the tests
    /// above count at run time.
    #[test]
    fn the_build_time_checks_count_as_the_run_time_ones() {
        for template in [V3, REPORT_V2, REPORT_CHANGES, "/{a}{b}/{c}", "{"] {
            assert_eq!(super::placeholders(template), template.matches('{').count());
            assert_eq!(
                starts_with(template.as_bytes(), V3.as_bytes()),
                template.starts_with(V3)
            );
        }
        assert!(!starts_with(b"/partner", V3.as_bytes()));
    }

    #[test]
    fn endpoints_are_one_label_each() {
        let labels: Vec<_> = TEMPLATED
            .into_iter()
            .chain([ApiEndpoint::TOKEN])
            .map(ApiEndpoint::label)
            .collect();
        let unique: std::collections::HashSet<_> = labels.iter().collect();
        assert_eq!(unique.len(), 9, "{labels:?}");
        assert_eq!(format!("{:?}", CUSTOMERS.endpoint), "customers_batch");
    }

    #[test]
    fn ids_fill_the_placeholders_in_order() {
        assert_eq!(
            fill(
                PROFILE_DETAILS.endpoint.path_template().unwrap(),
                &["c1", "p2"]
            ),
            "/partner/external/v3/general/customers/c1/scan-profiles/p2"
        );
        assert_eq!(
            report_path(ProfileEndpoint::Changes, "c1", "p2"),
            "/partner/external/v3/general/customers/c1/scan-profiles/p2/changes"
        );
        assert_eq!(
            report_path(ProfileEndpoint::Auto, "c1", "p2"),
            "/partner/external/v3/general/customers/c1/scan-profiles-v2/p2"
        );
        assert_eq!(fill("/a/batch", &[]), "/a/batch");
    }
}
