//! The middleware in front of every route: basic authentication against
//! `basic_auth_users` and the configured response headers, both from the
//! config in force for each request.
//!
//! A check costs one bcrypt verification (tens of milliseconds to a second of
//! CPU, by the hash's cost), so:
//!
//! - successes are remembered (a scraper pays bcrypt once, not per scrape);
//!   failures are not, so that only someone who knows a password can put
//!   anything in the cache or push anything out of it;
//! - every refusal takes the same time, that of a check at the cost of the
//!   user with the highest cost (the stand-in), so that the response time
//!   tells neither whether the user exists nor what its cost is: an unknown
//!   user is refused after waiting that long, without a check (no CPU, no
//!   place in the queues, so made-up names cannot crowd out real logins);
//!   a wrong password of a cheaper user waits out the difference. The time
//!   is measured on the checks made (the first refusal of an unknown user,
//!   before any measurement, makes one against the stand-in's hash);
//! - bcrypt runs on blocking threads, a bounded number at once, with turns
//!   between client addresses and user names and bounded waiting for each
//!   ([`BcryptPool`]), so that a flood of wrong passwords can neither stall
//!   the async runtime nor push a valid first login behind the whole flood.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::pool::{BcryptPool, Limits};
use super::{UserHash, WebConfig, WebConfigHandle};
use crate::sync::lock;

/// The realm announced in `WWW-Authenticate`.
pub const REALM: &str = "avepoint-exporter";

/// Paths that stay open when `basic_auth_users` is set.
pub const UNAUTHENTICATED_PATHS: &[&str] = &["/-/healthy"];

/// Most successful (user, password) checks remembered. Only successes are
/// stored, so this is about the users times the scrapers' passwords, a
/// handful; the bound is against a user who sends endless variants of a
/// password that all match (bcrypt reads only the first 72 bytes).
const AUTH_CACHE_CAPACITY: usize = 1024;

/// Checks that may wait for one client address under one user name. A
/// Prometheus pair and a retry or two; more is a flood, refused at once
/// with a 429.
const WAITING_PER_USER: usize = 4;

/// Checks that may wait for one client address under all names: two users
/// (say, Prometheus and a person) logging in at once, with a retry each.
const WAITING_PER_ADDRESS: usize = 8;

/// Checks that may wait in all. Each waits for the ones ahead of it, so a
/// longer queue only answers later than a scrape timeout.
const WAITING_TOTAL: usize = 32;

/// Check times kept per cost, for the median refusals are padded to.
const CHECK_TIMES_KEPT: usize = 15;

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The user and password match.
    Allowed,
    /// No credentials, an unknown user or a wrong password: a 401.
    Refused,
    /// Too many checks waiting, the password was not checked: a 429.
    Busy,
}

/// Basic authentication checks: bcrypt on a bounded pool, a cache of
/// successes, and how long a check takes at each cost.
pub(super) struct Authenticator {
    cache: Mutex<SuccessCache>,
    pool: BcryptPool,
    /// How long a check at each bcrypt cost took lately, on its blocking
    /// thread: the time every refusal is padded to.
    check_times: Mutex<HashMap<u32, VecDeque<Duration>>>,
    /// How many checks went to bcrypt (not answered from the cache).
    #[cfg(test)]
    bcrypt_checks: std::sync::atomic::AtomicUsize,
}

impl Authenticator {
    /// bcrypt may use half the CPUs (at least one), so that a burst of
    /// logins leaves the other half to scrapes, health checks and TLS
    /// handshakes.
    pub(super) fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Authenticator {
            cache: Mutex::new(SuccessCache::default()),
            pool: BcryptPool::new(Limits {
                permits: (cpus / 2).max(1),
                per_user: WAITING_PER_USER,
                per_address: WAITING_PER_ADDRESS,
                total: WAITING_TOTAL,
            }),
            check_times: Mutex::new(HashMap::new()),
            #[cfg(test)]
            bcrypt_checks: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Whether `user` and `password`, sent from `client`, match `config`.
    pub(super) async fn check(
        &self,
        config: &Arc<WebConfig>,
        client: IpAddr,
        user: &str,
        password: &str,
    ) -> Verdict {
        let Some(stand_in) = config.stand_in.as_ref().and_then(|u| config.users.get(u)) else {
            return Verdict::Refused;
        };
        let stand_in_cost = stand_in.cost;
        let Some(known) = config.users.get(user) else {
            // Unknown: the stand-in's time, without a check once it is known.
            if let Some(time) = self.check_time(stand_in_cost) {
                tokio::time::sleep(time).await;
                return Verdict::Refused;
            }
            let name = config.stand_in.clone().unwrap_or_default();
            return match self.bcrypt(config, client, &name, password).await {
                Some(_) => Verdict::Refused,
                None => Verdict::Busy,
            };
        };
        let key = cache_key(user, known.hash.expose_secret(), password);
        if lock(&self.cache).contains(&key) {
            return Verdict::Allowed;
        }
        let Some((ok, took)) = self.bcrypt(config, client, user, password).await else {
            return Verdict::Busy;
        };
        if ok {
            lock(&self.cache).insert(key);
            return Verdict::Allowed;
        }
        // A cheaper user's refusal: wait out the difference to the stand-in.
        if known.cost < stand_in_cost {
            let time = match self.check_time(stand_in_cost) {
                Some(time) => time,
                None => self
                    .bcrypt(
                        config,
                        client,
                        config.stand_in.as_deref().unwrap_or(user),
                        "",
                    )
                    .await
                    .map_or(Duration::ZERO, |(_, time)| time),
            };
            tokio::time::sleep(time.saturating_sub(took)).await;
        }
        Verdict::Refused
    }

    /// One bcrypt check of `password` against `user`'s hash, in its turn on
    /// a blocking thread; whether it matched and how long the check took,
    /// `None` when the queues are full.
    async fn bcrypt(
        &self,
        config: &Arc<WebConfig>,
        client: IpAddr,
        user: &str,
        password: &str,
    ) -> Option<(bool, Duration)> {
        let permit = self.pool.acquire(client, user).await.ok()?;
        #[cfg(test)]
        self.bcrypt_checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (config, user) = (Arc::clone(config), user.to_owned());
        let password = SecretString::from(password);
        let (ok, cost, took) = tokio::task::spawn_blocking(move || {
            // Held until bcrypt is done, even if the request is cancelled.
            let _permit = permit;
            let hash: Option<&UserHash> = config.users.get(&user);
            let started = Instant::now();
            let ok = hash.is_some_and(|hash| {
                bcrypt::verify(password.expose_secret(), hash.hash.expose_secret()).unwrap_or(false)
            });
            (ok, hash.map(|hash| hash.cost), started.elapsed())
        })
        .await
        .unwrap_or((false, None, Duration::ZERO));
        if let Some(cost) = cost {
            self.record(cost, took);
        }
        Some((ok, took))
    }

    /// How long a check at `cost` takes: the median of the last few, if one
    /// was made. The median, not the mean: a check slowed by a busy moment
    /// would make every padded refusal slower than a typical real one.
    fn check_time(&self, cost: u32) -> Option<Duration> {
        let times = lock(&self.check_times);
        let recent = times.get(&cost)?;
        let mut sorted: Vec<Duration> = recent.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied()
    }

    /// A check at `cost` took `took`.
    fn record(&self, cost: u32, took: Duration) {
        let mut times = lock(&self.check_times);
        let recent = times.entry(cost).or_default();
        if recent.len() >= CHECK_TIMES_KEPT {
            recent.pop_front();
        }
        recent.push_back(took);
    }
}

/// SHA-256 keys of recent successful checks, oldest first out.
#[derive(Default)]
struct SuccessCache {
    keys: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl SuccessCache {
    fn contains(&self, key: &[u8; 32]) -> bool {
        self.keys.contains(key)
    }

    /// Remember `key`, forgetting the oldest entry when full (not all of
    /// them: one more success must not send every scraper back to bcrypt).
    fn insert(&mut self, key: [u8; 32]) {
        if !self.keys.insert(key) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > AUTH_CACHE_CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.keys.remove(&oldest);
        }
    }
}

/// Each part is prefixed by its length, so that moving characters from one
/// part to the next gives another key.
fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [user, hash, password] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

/// User and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Wrap `router` with basic authentication (when users are configured) and
/// the configured response headers, both from the config in force.
pub fn protect(router: Router, handle: Arc<WebConfigHandle>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(handle, guard))
}

async fn guard(
    State(handle): State<Arc<WebConfigHandle>>,
    request: Request,
    next: Next,
) -> Response {
    let config = handle.current();
    let open = !config.auth_enabled() || UNAUTHENTICATED_PATHS.contains(&request.uri().path());
    // The serving layer tells the client's address; a router driven
    // without it counts as one client.
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    let verdict = if open {
        Verdict::Allowed
    } else {
        match basic_credentials(request.headers()) {
            Some((user, password)) => handle.auth.check(&config, client, &user, &password).await,
            None => Verdict::Refused,
        }
    };
    let mut response = match verdict {
        Verdict::Allowed => next.run(request).await,
        Verdict::Refused => unauthorized(),
        Verdict::Busy => too_many_logins(),
    };
    // On refusals too: `X-Frame-Options` and the like protect any page.
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// The answer when too many checks wait: 429 (as exporter-toolkit's
/// `rate_limit` answers), with a hint to come back, and no 401, since the
/// password was not checked.
fn too_many_logins() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::RETRY_AFTER, HeaderValue::from_static("1")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        "Too many logins waiting for a password check; retry later\n",
    )
        .into_response()
}

/// The 401 that makes clients ask for (or send) credentials.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&format!("Basic realm=\"{REALM}\""))
                    .expect("the realm is a valid header value"),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        "Unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6b3BlbjpzZXNhbWU="),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".into(), "open:sesame".into()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn cache_keys_separate_fields() {
        assert_ne!(cache_key("ab", "h", "c"), cache_key("a", "h", "bc"));
    }

    fn config(users: &[(&str, &str)]) -> Arc<WebConfig> {
        let mut yaml = String::from("basic_auth_users:\n");
        for (user, password) in users {
            let hash = bcrypt::hash(password, 4).unwrap();
            yaml.push_str(&format!("  {user}: '{hash}'\n"));
        }
        Arc::new(WebConfig::from_yaml(&yaml, std::path::Path::new("w.yml")).unwrap())
    }

    const HERE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn bcrypt_checks(auth: &Authenticator) -> usize {
        auth.bcrypt_checks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A scraper pays bcrypt once; a wrong password every time (nothing of
    /// theirs is stored); an unknown user never; a new hash is checked anew.
    #[tokio::test]
    async fn only_successes_are_cached() {
        let auth = Authenticator::new();
        let first = config(&[("alice", "right"), ("bob", "other")]);
        for expected_checks in [1, 1, 1] {
            assert_eq!(
                auth.check(&first, HERE, "alice", "right").await,
                Verdict::Allowed
            );
            assert_eq!(bcrypt_checks(&auth), expected_checks);
        }
        for expected_checks in [2, 3] {
            assert_eq!(
                auth.check(&first, HERE, "alice", "wrong").await,
                Verdict::Refused
            );
            assert_eq!(bcrypt_checks(&auth), expected_checks);
        }
        // An unknown user costs no check once a check's time is known.
        for expected_checks in [3, 3] {
            assert_eq!(
                auth.check(&first, HERE, "carol", "right").await,
                Verdict::Refused
            );
            assert_eq!(bcrypt_checks(&auth), expected_checks);
        }
        // Another user with alice's password is not alice.
        assert_eq!(
            auth.check(&first, HERE, "bob", "right").await,
            Verdict::Refused
        );
        assert_eq!(bcrypt_checks(&auth), 4);
        // The same password under a new hash (a reload): checked again.
        let second = config(&[("alice", "right")]);
        assert_eq!(
            auth.check(&second, HERE, "alice", "right").await,
            Verdict::Allowed
        );
        assert_eq!(bcrypt_checks(&auth), 5);
    }

    /// Issue #20: a cheaper user's wrong password cost a check at its own
    /// cost and then one at the stand-in's, so it took longer than the
    /// stand-in's refusal (268 ms against 210 ms at costs 10 and 12). Now one
    /// check, then the rest of the stand-in's time waited out; an unknown
    /// user waits that time without a check.
    #[tokio::test]
    async fn refusals_are_padded_to_the_stand_ins_time_with_one_check_at_most() {
        let auth = Authenticator::new();
        let mut yaml = String::from("basic_auth_users:\n");
        for (user, cost) in [("cheap", 4), ("dear", 6)] {
            let hash = bcrypt::hash("right", cost).unwrap();
            yaml.push_str(&format!("  {user}: '{hash}'\n"));
        }
        let config = Arc::new(WebConfig::from_yaml(&yaml, std::path::Path::new("w.yml")).unwrap());
        // The stand-in's time is measured on its own refusals.
        assert_eq!(
            auth.check(&config, HERE, "dear", "wrong").await,
            Verdict::Refused
        );
        assert_eq!(bcrypt_checks(&auth), 1);
        let stand_in = auth.check_time(6).expect("measured");
        let started = std::time::Instant::now();
        assert_eq!(
            auth.check(&config, HERE, "cheap", "wrong").await,
            Verdict::Refused
        );
        assert_eq!(bcrypt_checks(&auth), 2, "one check, not two");
        assert!(
            started.elapsed() >= stand_in,
            "{:?} < {stand_in:?}",
            started.elapsed()
        );
        let started = std::time::Instant::now();
        assert_eq!(
            auth.check(&config, HERE, "nobody", "right").await,
            Verdict::Refused
        );
        assert_eq!(bcrypt_checks(&auth), 2, "no check for an unknown user");
        assert!(
            started.elapsed() >= stand_in,
            "{:?} < {stand_in:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_full_cache_forgets_only_the_oldest() {
        let mut cache = SuccessCache::default();
        let key = |i: usize| cache_key("user", "hash", &i.to_string());
        for i in 0..=AUTH_CACHE_CAPACITY {
            cache.insert(key(i));
        }
        assert!(!cache.contains(&key(0)));
        assert!((1..=AUTH_CACHE_CAPACITY).all(|i| cache.contains(&key(i))));
        assert_eq!(cache.keys.len(), AUTH_CACHE_CAPACITY);
        // Inserting a known key again changes nothing.
        cache.insert(key(1));
        assert_eq!(cache.order.len(), AUTH_CACHE_CAPACITY);
    }
}
