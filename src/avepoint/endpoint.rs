//! The AvePoint endpoints the exporter calls, as data: each one's label,
//! method, path template, permission and description ([`ApiEndpoint`]), and the typed
//! handles ([`Paged`], [`Get`]) that tie an endpoint to the wire type it
//! answers with, so that one paged call and one get call of the client
//! ([`ApiClient::page`](super::ApiClient::page),
//! [`ApiClient::get`](super::ApiClient::get)) serve them all. A new
//! endpoint is a variant, its five facts and a handle: no new client
//! method.
//!
//! Also keeps the report URLs built (`ReportUrls`). Imports only the
//! wire types, `transport`'s `Destination`, `sync` and, from `config`,
//! the report path choice and the permission names.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::marker::PhantomData;
use std::sync::Mutex;

use url::Url;

use super::backup::{BackupJob, CoverageItem};
use super::details::ScanProfileDetails;
use super::model::{Customer, ScanProfileSummary};
use super::subscriptions::{CustomerServices, TenantUser};
use super::transport::Destination;
use crate::config::{
    BACKUP_COVERAGE_SCOPE, BACKUP_JOBS_SCOPE, CUSTOMERS_SCOPE, LICENSE_SCOPE, ProfileEndpoint,
    SCAN_PROFILES_SCOPE,
};
use crate::sync::lock;

/// Which AvePoint endpoint a request went to (the `api_endpoint` label; not
/// `endpoint`, which prometheus-operator sets on every ServiceMonitor target
/// and which would rename ours to `exported_endpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiEndpoint {
    /// The OAuth2 token endpoint.
    Token,
    /// A profile's daily report (either path).
    ScanProfile,
    /// Customer discovery.
    CustomersBatch,
    /// Profile discovery.
    ScanProfilesBatch,
    /// A profile's settings (`.../scan-profiles/{id}`).
    ProfileDetails,
    /// A page of a customer's backup jobs.
    BackupJobsBatch,
    /// A page of a customer's protection coverage.
    BackupCoverage,
    /// A page of every customer's service subscriptions.
    ServicesBatch,
    /// A page of a tenant's users and their protection.
    TenantUsersBatch,
}

impl ApiEndpoint {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ApiEndpoint::Token => "token",
            ApiEndpoint::ScanProfile => "scan_profile",
            ApiEndpoint::CustomersBatch => "customers_batch",
            ApiEndpoint::ScanProfilesBatch => "scan_profiles_batch",
            ApiEndpoint::ProfileDetails => "profile_details",
            ApiEndpoint::BackupJobsBatch => "backup_jobs_batch",
            ApiEndpoint::BackupCoverage => "backup_coverage",
            ApiEndpoint::ServicesBatch => "services_batch",
            ApiEndpoint::TenantUsersBatch => "tenant_users_batch",
        }
    }
    /// How the endpoint is asked.
    pub fn method(self) -> Method {
        match self {
            ApiEndpoint::Token
            | ApiEndpoint::CustomersBatch
            | ApiEndpoint::ScanProfilesBatch
            | ApiEndpoint::BackupJobsBatch
            | ApiEndpoint::ServicesBatch
            | ApiEndpoint::TenantUsersBatch => Method::Post,
            ApiEndpoint::ScanProfile
            | ApiEndpoint::ProfileDetails
            | ApiEndpoint::BackupCoverage => Method::Get,
        }
    }

    /// The path below the API base URL, every `{...}` an id filled in
    /// order ([`Paged`] and [`Get`] say how many). `None` for the token
    /// endpoint, whose URL is `avepoint.token_url` whole. A report has two
    /// paths: [`report_path`] chooses.
    pub fn path_template(self) -> Option<&'static str> {
        Some(match self {
            ApiEndpoint::Token => return None,
            ApiEndpoint::ScanProfile => REPORT_V2,
            ApiEndpoint::CustomersBatch => "/partner/external/v3/general/customers/batch",
            ApiEndpoint::ScanProfilesBatch => {
                "/partner/external/v3/general/customers/{customer}/scan-profiles/batch"
            }
            ApiEndpoint::ProfileDetails => {
                "/partner/external/v3/general/customers/{customer}/scan-profiles/{profile}"
            }
            ApiEndpoint::BackupJobsBatch => {
                "/partner/external/v3/general/customers/{customer}/avpt-products/jobs/batch"
            }
            ApiEndpoint::BackupCoverage => {
                "/partner/external/v3/general/customers/{customer}/cloud-backup-m365/overview"
            }
            ApiEndpoint::ServicesBatch => "/partner/external/v3/general/customers/services/batch",
            ApiEndpoint::TenantUsersBatch => {
                "/partner/external/v3/general/customers/{customer}/tenants/{tenant}/cloud-backup-m365/users/batch"
            }
        })
    }

    /// The permission the endpoint needs; `None` for the token endpoint.
    pub fn permission(self) -> Option<&'static str> {
        Some(match self {
            ApiEndpoint::Token => return None,
            ApiEndpoint::CustomersBatch => CUSTOMERS_SCOPE,
            ApiEndpoint::BackupJobsBatch => BACKUP_JOBS_SCOPE,
            ApiEndpoint::BackupCoverage | ApiEndpoint::TenantUsersBatch => BACKUP_COVERAGE_SCOPE,
            ApiEndpoint::ServicesBatch => LICENSE_SCOPE,
            ApiEndpoint::ScanProfile
            | ApiEndpoint::ScanProfilesBatch
            | ApiEndpoint::ProfileDetails => SCAN_PROFILES_SCOPE,
        })
    }

    /// What one answer is, for messages (`not a page of customers: ...`).
    pub fn description(self) -> &'static str {
        match self {
            ApiEndpoint::Token => "a token response",
            ApiEndpoint::ScanProfile => "a scan profile report",
            ApiEndpoint::CustomersBatch => "a page of customers",
            ApiEndpoint::ScanProfilesBatch => "a page of scan profiles",
            ApiEndpoint::ProfileDetails => "scan profile details",
            ApiEndpoint::BackupJobsBatch => "a page of backup jobs",
            ApiEndpoint::BackupCoverage => "a page of protection coverage",
            ApiEndpoint::ServicesBatch => "a page of service subscriptions",
            ApiEndpoint::TenantUsersBatch => "a page of a tenant's users",
        }
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
const REPORT_V2: &str =
    "/partner/external/v3/general/customers/{customer}/scan-profiles-v2/{profile}";
/// A report on the path AvePoint publishes since October 2025.
const REPORT_CHANGES: &str =
    "/partner/external/v3/general/customers/{customer}/scan-profiles/{profile}/changes";

/// The path of one profile's report on `path` (`auto` starts with
/// `scan-profiles-v2`'s; `profile_path.rs` decides when to switch).
pub(super) fn report_path(path: ProfileEndpoint, customer_id: &str, profile_id: &str) -> String {
    let template = match path {
        ProfileEndpoint::Auto | ProfileEndpoint::ScanProfilesV2 => REPORT_V2,
        ProfileEndpoint::Changes => REPORT_CHANGES,
    };
    fill(template, &[customer_id, profile_id])
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

const fn paged<T, const IDS: usize>(endpoint: ApiEndpoint) -> Paged<T, IDS> {
    Paged {
        endpoint,
        item: PhantomData,
    }
}

const fn get<T, const IDS: usize>(endpoint: ApiEndpoint) -> Get<T, IDS> {
    Get {
        endpoint,
        item: PhantomData,
    }
}

/// `POST .../customers/batch`: every customer.
pub const CUSTOMERS: Paged<Customer, 0> = paged(ApiEndpoint::CustomersBatch);
/// `POST .../customers/{c}/scan-profiles/batch`: a customer's profiles.
pub const SCAN_PROFILES: Paged<ScanProfileSummary, 1> = paged(ApiEndpoint::ScanProfilesBatch);
/// `GET .../customers/{c}/scan-profiles/{p}`: a profile's settings.
pub const PROFILE_DETAILS: Get<ScanProfileDetails, 2> = get(ApiEndpoint::ProfileDetails);
/// `POST .../customers/{c}/avpt-products/jobs/batch`: a customer's backup
/// jobs (body `{}`, or `{"jobType": n}` through
/// [`ApiClient::filtered_page`](super::ApiClient::filtered_page)).
pub const BACKUP_JOBS: Paged<BackupJob, 1> = paged(ApiEndpoint::BackupJobsBatch);
/// `GET .../customers/{c}/cloud-backup-m365/overview`: a customer's
/// protection coverage.
pub const BACKUP_COVERAGE: Paged<CoverageItem, 1> = paged(ApiEndpoint::BackupCoverage);
/// `POST .../customers/services/batch`: every customer's subscriptions.
pub const SERVICES: Paged<CustomerServices, 0> = paged(ApiEndpoint::ServicesBatch);
/// `POST .../customers/{c}/tenants/{t}/cloud-backup-m365/users/batch`: a
/// tenant's users and whether each is protected.
pub const TENANT_USERS: Paged<TenantUser, 2> = paged(ApiEndpoint::TenantUsersBatch);

/// The most report URLs kept built, about 700 bytes each with their
/// parsed `Uri` (2.8 MiB): a profile's is the same on every scrape, but
/// discovery may bring new ids forever, and each MiB counts against the
/// 64 MiB of the Kubernetes example. Beyond this many profiles the cache starts over within every
/// round and saves nothing; it costs a copy per call.
const REPORT_URLS_MAX: usize = 4_096;

/// Report URLs built before. Building one from text (`Url::set_path`,
/// percent-encoding and all) was 6 % of a scrape's instructions and 3 %
/// of its time; a lookup and a copy are not. Keyed by a hash of the path,
/// not the path (a third less memory); a URL
/// found is used only when it ends with the path, so a collision costs a
/// rebuild, never a wrong URL. Full, it starts over.
#[derive(Debug, Default)]
pub(super) struct ReportUrls {
    urls: Mutex<HashMap<u64, Destination>>,
    keys: RandomState,
}

impl ReportUrls {
    pub(super) fn get_or_build(&self, path: &str, build: impl FnOnce() -> Url) -> Destination {
        let key = self.keys.hash_one(path);
        if let Some(url) = lock(&self.urls).get(&key)
            && url.url.path().ends_with(path)
        {
            return url.clone();
        }
        let url = Destination::new(build());
        let mut urls = lock(&self.urls);
        if urls.len() >= REPORT_URLS_MAX {
            urls.clear();
        }
        urls.insert(key, url.clone());
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The common start of every path below the API base URL.
    const V3: &str = "/partner/external/v3/general/";

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
        assert_eq!(placeholders(ApiEndpoint::ScanProfile), 2);
        assert_eq!(REPORT_CHANGES.matches('{').count(), 2);
    }

    #[test]
    fn every_path_starts_below_v3() {
        let templated = [
            ApiEndpoint::ScanProfile,
            ApiEndpoint::CustomersBatch,
            ApiEndpoint::ScanProfilesBatch,
            ApiEndpoint::ProfileDetails,
            ApiEndpoint::BackupJobsBatch,
            ApiEndpoint::BackupCoverage,
            ApiEndpoint::ServicesBatch,
            ApiEndpoint::TenantUsersBatch,
        ];
        for endpoint in templated {
            assert!(
                endpoint.path_template().unwrap().starts_with(V3),
                "{endpoint:?}"
            );
        }
        assert_eq!(ApiEndpoint::Token.path_template(), None);
    }

    #[test]
    fn ids_fill_the_placeholders_in_order() {
        assert_eq!(
            fill(
                ApiEndpoint::ProfileDetails.path_template().unwrap(),
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

    #[test]
    fn a_report_url_is_built_once_and_a_stale_entry_never_answers() {
        let urls = ReportUrls::default();
        let base = Url::parse("https://graph.example/partner").unwrap();
        let build = |path: &str| {
            let mut url = base.clone();
            url.set_path(&format!("/partner{path}"));
            url
        };
        let first = urls.get_or_build("/customers/c/p1", || build("/customers/c/p1"));
        assert_eq!(
            first.url.as_str(),
            "https://graph.example/partner/customers/c/p1"
        );
        let again = urls.get_or_build("/customers/c/p1", || panic!("built twice"));
        assert_eq!(again.url, first.url);

        // An entry whose URL does not end with the path (a hash collision)
        // is rebuilt, not served.
        let key = urls.keys.hash_one("/customers/c/p2");
        lock(&urls.urls).insert(key, first.clone());
        let second = urls.get_or_build("/customers/c/p2", || build("/customers/c/p2"));
        assert_eq!(
            second.url.as_str(),
            "https://graph.example/partner/customers/c/p2"
        );

        // Full, it starts over: never more than REPORT_URLS_MAX entries.
        for n in 0..REPORT_URLS_MAX + 5 {
            let path = format!("/customers/c/{n}");
            urls.get_or_build(&path, || build(&path));
        }
        assert!(lock(&urls.urls).len() <= REPORT_URLS_MAX);
    }
}
