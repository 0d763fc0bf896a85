//! The report URLs built before (`ReportUrls`): a profile's is the same
//! on every scrape, and building one is dear.
//!
//! Imports `avepoint::{destination, endpoint}`, `sync` and, from `config`,
//! the report path choice.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use url::Url;

use super::destination::Destination;
use super::endpoint::{report_path, report_template};
use crate::config::ProfileEndpoint;
use crate::sync::lock;

/// The most report URLs kept built, about 700 bytes each with their
/// parsed `Uri` (2.8 MiB): a profile's is the same on every scrape, but
/// discovery may bring new ids forever, and each MiB counts against the
/// 64 MiB of the Kubernetes example. Beyond this many profiles the cache
/// starts over within every round and saves nothing: every call builds
/// its URL, as without it.
const REPORT_URLS_MAX: usize = 4_096;

/// Report URLs built before. Building one from text (`Url::set_path`,
/// percent-encoding and all) was 6 % of a scrape's instructions and 3 %
/// of its time; a lookup is not, and what it finds is shared (`Arc`), not
/// copied: a call hands its destination on to the task that may outlive
/// its caller. Keyed by a hash of the path's parts (which path, customer,
/// profile; the path itself is not built to look it up), not the path
/// (a third less memory); a URL found is used only when it ends with the
/// path those parts fill in, so a collision costs a rebuild, never a
/// wrong URL (an id the URL had to percent-encode is rebuilt every time,
/// as correct and as dear as before). Full, it starts over.
#[derive(Debug, Default)]
pub(super) struct ReportUrls {
    urls: Mutex<HashMap<u64, Arc<Destination>>>,
    keys: RandomState,
}

impl ReportUrls {
    /// The destination of `profile_id`'s report on `path`; `build` makes
    /// the URL from the report's path when none is kept.
    pub(super) fn get_or_build(
        &self,
        path: ProfileEndpoint,
        customer_id: &str,
        profile_id: &str,
        build: impl FnOnce(&str) -> Url,
    ) -> Arc<Destination> {
        let template = report_template(path);
        let key = self.keys.hash_one((template, customer_id, profile_id));
        if let Some(url) = lock(&self.urls).get(&key)
            && ends_with_filled(url.url.path(), template, &[customer_id, profile_id])
        {
            return Arc::clone(url);
        }
        let url = Arc::new(Destination::new(build(&report_path(
            path,
            customer_id,
            profile_id,
        ))));
        let mut urls = lock(&self.urls);
        if urls.len() >= REPORT_URLS_MAX {
            urls.clear();
        }
        urls.insert(key, Arc::clone(&url));
        url
    }
}

/// Whether `built` (a URL's path) ends with `template` filled with `ids`,
/// checked piece by piece from the end, without building the path.
fn ends_with_filled(built: &str, template: &str, ids: &[&str]) -> bool {
    let mut rest = built;
    let mut template = template;
    let mut ids = ids.iter().rev();
    loop {
        let (literal, before) = match template.rfind('}') {
            Some(close) => (&template[close + 1..], Some(close)),
            None => (template, None),
        };
        let Some(stripped) = rest.strip_suffix(literal) else {
            return false;
        };
        rest = stripped;
        let Some(close) = before else {
            return true;
        };
        let open = template[..close].rfind('{').unwrap_or(0);
        template = &template[..open];
        let Some(stripped) = ids.next().and_then(|id| rest.strip_suffix(id)) else {
            return false;
        };
        rest = stripped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::avepoint::endpoint::{REPORT_CHANGES, REPORT_V2};

    #[test]
    fn a_report_url_is_built_once_and_a_stale_entry_never_answers() {
        let urls = ReportUrls::default();
        let base = Url::parse("https://graph.example/base").unwrap();
        let build = |path: &str| {
            let mut url = base.clone();
            url.set_path(&format!("/base{path}"));
            url
        };
        let v2 = ProfileEndpoint::ScanProfilesV2;
        let first = urls.get_or_build(v2, "c", "p1", build);
        assert_eq!(
            first.url.as_str(),
            "https://graph.example/base/partner/external/v3/general/customers/c/scan-profiles-v2/p1"
        );
        let again = urls.get_or_build(v2, "c", "p1", |_| panic!("built twice"));
        assert!(Arc::ptr_eq(&again, &first), "shared, not copied");
        // The other path is another URL.
        let changes = urls.get_or_build(ProfileEndpoint::Changes, "c", "p1", build);
        assert!(changes.url.path().ends_with("/scan-profiles/p1/changes"));

        // An entry whose URL does not end with the path (a hash collision)
        // is rebuilt, not served.
        let key = urls.keys.hash_one((REPORT_V2, "c", "p2"));
        lock(&urls.urls).insert(key, Arc::clone(&first));
        let second = urls.get_or_build(v2, "c", "p2", build);
        assert_eq!(
            second.url.as_str(),
            "https://graph.example/base/partner/external/v3/general/customers/c/scan-profiles-v2/p2"
        );

        // An id the URL has to percent-encode never matches its entry: it
        // is built on every call, and built right.
        let mut builds = 0;
        for _ in 0..2 {
            let odd = urls.get_or_build(v2, "c", "p 3", |path| {
                builds += 1;
                build(path)
            });
            assert!(
                odd.url.as_str().ends_with("/scan-profiles-v2/p%203"),
                "{}",
                odd.url
            );
        }
        assert_eq!(builds, 2);

        // Full, it starts over: never more than REPORT_URLS_MAX entries.
        for n in 0..REPORT_URLS_MAX + 5 {
            urls.get_or_build(v2, "c", &n.to_string(), build);
        }
        assert!(lock(&urls.urls).len() <= REPORT_URLS_MAX);
    }

    #[test]
    fn a_built_path_is_matched_piece_by_piece() {
        let ids = ["c1", "p2"];
        let built = format!("/base{}", report_path(ProfileEndpoint::Changes, "c1", "p2"));
        assert!(ends_with_filled(&built, REPORT_CHANGES, &ids));
        assert!(!ends_with_filled(&built, REPORT_V2, &ids));
        assert!(!ends_with_filled(&built, REPORT_CHANGES, &["c1", "p3"]));
        assert!(!ends_with_filled(&built, REPORT_CHANGES, &["c", "p2"]));
        // The ids' boundaries count: "c1/x" + "p2" is not "c1" + "x/p2".
        let shifted = report_path(ProfileEndpoint::ScanProfilesV2, "c1", "p2");
        assert!(!ends_with_filled(
            &shifted,
            REPORT_V2,
            &["c", "1/scan-profiles-v2/p2"]
        ));
        assert!(ends_with_filled("/a/x", "/a/{id}", &["x"]));
        assert!(!ends_with_filled("/a/x", "/b/{id}", &["x"]));
        assert!(!ends_with_filled("x", "/a/{id}", &["x"]));
    }
}
