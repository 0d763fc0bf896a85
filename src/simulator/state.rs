//! What a running simulator remembers between requests: the generated
//! world, issued tokens, used assertion ids, injected faults and switches,
//! the request counters, and the simulated clock and coin every handler
//! shares.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::data::{self, SimCustomer, mix};
use super::{Fault, SimulatorConfig};
use crate::avepoint::certificate::sha1_thumbprint;
use crate::avepoint::model::{ScanProfileReport, ScanStatus};
use crate::sync::lock;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Request counters, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Token requests (all outcomes).
    pub token_requests: AtomicU64,
    /// Token requests whose client assertion was accepted.
    pub client_assertions: AtomicU64,
    /// Token requests refused `invalid_scope`: a scope the app lacks.
    pub invalid_scopes: AtomicU64,
    /// API requests without `Content-Type: application/json`, which
    /// AvePoint's docs ask for on every request (GET included).
    pub requests_without_json_content_type: AtomicU64,
    /// Profile requests (all outcomes, both paths).
    pub profile_requests: AtomicU64,
    /// Of those, requests on the `scan-profiles-v2` path.
    pub v2_profile_requests: AtomicU64,
    /// Discovery requests (both endpoints).
    pub discovery_requests: AtomicU64,
    /// Profile details requests (all outcomes).
    pub details_requests: AtomicU64,
    /// API (not token) requests being handled right now: what AvePoint
    /// would see in flight from the exporter.
    pub api_in_flight: AtomicU64,
    /// The most API requests ever handled at once (the high-water mark of
    /// `api_in_flight`), to check `avepoint.concurrency` from outside.
    pub max_api_in_flight: AtomicU64,
}

/// One API request in flight, counted in [`SimStats::api_in_flight`] until
/// dropped. A guard rather than a decrement at the end of the handler:
/// hyper drops a handler's future when its client goes away (a closed
/// HTTP/1 connection, a reset HTTP/2 stream), and the request must stop
/// counting then too, or the gauge would report requests nobody serves.
pub(super) struct InFlight(Arc<SimState>);

impl InFlight {
    /// Count one more API request in flight, and the high-water mark.
    pub(super) fn enter(state: &Arc<SimState>) -> Self {
        let stats = &state.stats;
        let now = stats.api_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_api_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.api_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// HTTP version counters, to show what clients negotiated (TLS + ALPN).
#[derive(Debug, Default)]
pub struct ProtocolStats {
    /// Requests over HTTP/2.
    pub http2_requests: AtomicU64,
    /// Requests over HTTP/1.x.
    pub http1_requests: AtomicU64,
}

pub(super) struct IssuedToken {
    pub(super) expires_at: Instant,
    pub(super) scopes: Vec<String>,
}

pub(super) struct SimState {
    pub(super) config: SimulatorConfig,
    /// Permissions the app registration holds now (space separated):
    /// [`SimulatorConfig::permissions`] until a test grants or withdraws one.
    pub(super) permissions: Mutex<String>,
    /// The bound address: a client assertion's `aud` must be this token URL.
    pub(super) addr: SocketAddr,
    pub(super) trusted_certificate: Option<TrustedCertificate>,
    /// `jti` of every accepted client assertion, with its `exp`, until then.
    pub(super) used_jtis: Mutex<HashMap<String, f64>>,
    pub(super) customers: Vec<SimCustomer>,
    started_wall: OffsetDateTime,
    started: Instant,
    pub(super) tokens: Mutex<HashMap<String, IssuedToken>>,
    /// The fault table: profile id to the fault its requests get.
    pub(super) faults: Mutex<HashMap<String, Fault>>,
    /// The same for the profile details endpoint.
    pub(super) details_faults: Mutex<HashMap<String, Fault>>,
    /// Customer id to the fault its backup jobs answer with.
    pub(super) backup_faults: Mutex<HashMap<String, Fault>>,
    /// Customer id to the fault its protection coverage answers with.
    pub(super) coverage_faults: Mutex<HashMap<String, Fault>>,
    /// Profile id to the length of each list in its `changes` body, for
    /// profiles whose lists are not sized by their counts.
    pub(super) change_list_sizes: Mutex<HashMap<String, usize>>,
    /// The lists part of a `changes` body, per list length, built once and
    /// shared by every answer that has lists that long.
    lists_tails: Mutex<HashMap<usize, axum::body::Bytes>>,
    /// Leave the `request-id` header out of every API answer.
    pub(super) omit_request_id_header: AtomicBool,
    pub(super) hidden_customers: Mutex<HashSet<String>>,
    pub(super) discovery_failing: AtomicBool,
    pub(super) paging_lies: AtomicBool,
    /// Whether the token endpoint refuses every request quoting it.
    pub(super) token_echo: AtomicBool,
    /// The next fresh `jobModule` code of [`super::Fault::FreshModules`].
    pub(super) fresh_modules: AtomicU64,
    /// Customers per page of the customer flood (0: off).
    pub(super) customer_flood: AtomicU64,
    /// The next fresh customer of the flood.
    pub(super) fresh_customers: AtomicU64,
    pub(super) bogus_customer: AtomicBool,
    /// Repeat ids in other spellings in the discovery lists.
    pub(super) respelled_ids: AtomicBool,
    /// Where the token endpoint redirects to, when set.
    pub(super) token_redirect: Mutex<Option<String>>,
    /// Answer 401 to every API request.
    pub(super) reject_all_tokens: AtomicBool,
    /// The status the scan-profiles-v2 path answers, as if AvePoint did
    /// not serve it (404, or 405 from a gateway); 0 serves it.
    pub(super) v2_path_status: AtomicU16,
    /// Status the `changes` path answers instead of serving (0: serve).
    pub(super) changes_path_status: AtomicU16,
    request_counter: AtomicU64,
    /// Report requests per profile id (both paths, all outcomes).
    pub(super) requests_per_profile: Mutex<HashMap<String, u64>>,
    pub(super) stats: SimStats,
    /// `http` or `https`: the scheme clients use (token URL checks).
    pub(super) scheme: &'static str,
    pub(super) protocols: ProtocolStats,
}

impl SimState {
    /// A fresh world for `config`, serving on `addr` over `scheme`.
    pub(super) fn new(
        config: SimulatorConfig,
        addr: SocketAddr,
        scheme: &'static str,
        trusted_certificate: Option<TrustedCertificate>,
    ) -> Self {
        let started_wall = OffsetDateTime::now_utc() - config.day_length;
        let customers = data::generate(
            config.seed,
            config.customers,
            config.profiles_per_customer,
            started_wall,
        );
        let respelled_ids = AtomicBool::new(config.respelled_ids);
        Self {
            permissions: Mutex::new(config.permissions.clone()),
            config,
            addr,
            scheme,
            protocols: ProtocolStats::default(),
            trusted_certificate,
            used_jtis: Mutex::default(),
            customers,
            started_wall,
            started: Instant::now(),
            tokens: Mutex::default(),
            faults: Mutex::default(),
            details_faults: Mutex::default(),
            backup_faults: Mutex::default(),
            coverage_faults: Mutex::default(),
            change_list_sizes: Mutex::default(),
            lists_tails: Mutex::default(),
            omit_request_id_header: AtomicBool::default(),
            hidden_customers: Mutex::default(),
            discovery_failing: AtomicBool::default(),
            paging_lies: AtomicBool::default(),
            token_echo: AtomicBool::default(),
            fresh_modules: AtomicU64::default(),
            customer_flood: AtomicU64::default(),
            fresh_customers: AtomicU64::default(),
            bogus_customer: AtomicBool::default(),
            respelled_ids,
            token_redirect: Mutex::default(),
            reject_all_tokens: AtomicBool::default(),
            v2_path_status: AtomicU16::default(),
            changes_path_status: AtomicU16::default(),
            request_counter: AtomicU64::new(1),
            requests_per_profile: Mutex::default(),
            stats: SimStats::default(),
        }
    }

    pub(super) fn next_request_id(&self) -> u64 {
        self.request_counter.fetch_add(1, Ordering::Relaxed)
    }

    /// A deterministic coin with probability `rate` for request `id`.
    pub(super) fn coin(&self, id: u64, salt: u64, rate: f64) -> bool {
        rate > 0.0 && (mix(self.config.seed ^ mix(id ^ salt)) as f64 / u64::MAX as f64) < rate
    }

    /// The current simulated day and when it started.
    pub(super) fn day(&self) -> (u64, OffsetDateTime) {
        let day_length = self.config.day_length.max(Duration::from_millis(1));
        let elapsed = self.started.elapsed();
        let day = (elapsed.as_nanos() / day_length.as_nanos()) as u64;
        // Day 0 started one day length before the simulator, so the first
        // report already exists when a scrape comes.
        let started = self.started_wall + day_length * day as u32;
        (day + 1, started)
    }

    /// The lists part of a `changes` body with `length` items per list
    /// (cheap to clone: shared bytes).
    pub(super) fn lists_tail(&self, length: usize) -> axum::body::Bytes {
        if let Some(tail) = lock(&self.lists_tails).get(&length) {
            return tail.clone();
        }
        // Built outside the lock: tens of megabytes take a moment, and two
        // first requests building it both is harmless.
        let tail = super::wire::changes_lists_tail(length);
        lock(&self.lists_tails).insert(length, tail.clone());
        tail
    }

    /// The fault injected for a profile, if any.
    pub(super) fn fault(&self, profile_id: &str) -> Option<Fault> {
        lock(&self.faults).get(profile_id).cloned()
    }

    /// The report a profile shows today, before any fault; `None` for an
    /// unknown customer or profile.
    pub(super) fn report(&self, customer_id: &str, profile_id: &str) -> Option<ScanProfileReport> {
        let customer = self.customers.iter().find(|c| c.id == customer_id)?;
        let (index, profile) = customer
            .profiles
            .iter()
            .enumerate()
            .find(|(_, p)| p.id == profile_id)?;
        let stale_since = self.started_wall - Duration::from_secs(50 * 3600);
        if self.config.daily_schedule {
            return Some(self.scheduled_report(customer, profile, index as u64, stale_since));
        }
        let (day, day_started) = self.day();
        Some(data::report(
            self.config.seed,
            customer,
            profile,
            index as u64,
            day,
            day_started,
            stale_since,
        ))
    }

    /// With [`super::SimulatorConfig::daily_schedule`]: the profile's scan
    /// starts at its own time of the simulated day and runs for 2 to 4 %
    /// of it; until it ends the profile shows `Running` with the previous
    /// report, then the new report with `lastUpdateTime` at the end.
    fn scheduled_report(
        &self,
        customer: &data::SimCustomer,
        profile: &data::SimProfile,
        index: u64,
        stale_since: OffsetDateTime,
    ) -> ScanProfileReport {
        let day_length = self.config.day_length.max(Duration::from_millis(1));
        let (start, run) = data::scan_window(self.config.seed, profile, day_length);
        // Days count from two before the simulator started (started_wall is
        // one before), so even the first scan has a report before it.
        let since = self.started.elapsed() + day_length * 2;
        let day = (since.saturating_sub(start).as_nanos() / day_length.as_nanos()) as u32;
        let finished = |day: u32| self.started_wall - day_length + day_length * day + start + run;
        let running = since < day_length * day + start + run;
        let shown = if running { day.saturating_sub(1) } else { day };
        let mut report = data::report(
            self.config.seed,
            customer,
            profile,
            index,
            u64::from(shown) + 1,
            finished(shown),
            stale_since,
        );
        if running && !profile.stale {
            report.last_scan_status = ScanStatus::Running as i64;
        } else if matches!(report.last_scan_status, 0 | 1 | 6 | 13) {
            // The scan is over once its report is there: the day's
            // in-progress states are the Running phase above, not a
            // report that claims to be running all day.
            report.last_scan_status = ScanStatus::Finished as i64;
        }
        report
    }
}

/// The certificate of [`super::SimulatorConfig::trusted_certificate`], parsed.
pub(super) struct TrustedCertificate {
    pub(super) der: CertificateDer<'static>,
    /// Upper-case hex SHA-1 of the DER (compared case-insensitively).
    pub(super) kid: String,
    /// base64url SHA-1 of the DER.
    pub(super) x5t: String,
}

impl TrustedCertificate {
    /// Accept PEM or DER, and refuse at start what could never verify a
    /// signature rather than answering every assertion 401.
    pub(super) fn parse(bytes: &[u8]) -> std::io::Result<Self> {
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
        let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            CertificateDer::from_pem_slice(bytes)
                .map_err(|error| invalid(format!("trusted certificate: {error}")))?
        } else {
            CertificateDer::from(bytes.to_vec())
        };
        webpki::EndEntityCert::try_from(&der)
            .map_err(|error| invalid(format!("trusted certificate: {error}")))?;
        let sha1 = sha1_thumbprint(&der);
        Ok(Self {
            kid: sha1.iter().map(|b| format!("{b:02X}")).collect(),
            x5t: URL_SAFE_NO_PAD.encode(sha1),
            der,
        })
    }
}
