//! A simulated AvePoint Elements (Graph) API on loopback, for the `demo` and
//! `simulate` commands, the integration tests and the benchmarks: the token
//! endpoint, both profile report endpoints, the profile details endpoint
//! and both discovery endpoints, answering AvePoint's documented example
//! JSON (`fixtures/`) with simulated values, with
//! deterministic data, latency, random errors and throttling, and
//! per-profile faults for tests. Nothing here reaches beyond the address it
//! is bound to.
//!
//! It speaks the wire model only: it may import `crate::avepoint::model`,
//! `crate::avepoint::certificate` (the assertion type and thumbprint),
//! `crate::sync`, `crate::web_config` and `crate::serve`; never the
//! exporter's routes, state, collection or metrics (`crate::web`,
//! `crate::state`, `crate::app`, `crate::collect`, `crate::metrics`), so a
//! bug there cannot hide itself by changing what the tests are served.
//!
//! [`data`] builds the world, `state` holds what requests change, `token`
//! is the token endpoint, `api` the API routes and [`wire`] their JSON;
//! `knobs` injects faults into a running simulator.

mod api;
pub mod backup;
pub mod data;
mod discovery;
mod flood;
mod knobs;
pub mod licences;
mod state;
mod token;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::avepoint::model::ScanProfileReport;
use crate::sync::lock;
use data::SimCustomer;
pub use knobs::{FaultAt, Knob};
use state::TrustedCertificate;
use state::{InFlight, SimState};
pub use state::{ProtocolStats, SimStats};

/// Client id the simulator accepts unless told otherwise.
pub const DEMO_CLIENT_ID: &str = "5e1fc11e-0000-4000-8000-00000000de30";
/// Client secret the simulator accepts unless told otherwise.
pub const DEMO_CLIENT_SECRET: &str = "demo-secret-not-for-production";
/// Every permission the simulated app registration holds by default.
pub const ALL_PERMISSIONS: &str = "elements.scanprofiles.read.all elements.customers.read.all elements.jobs.read.all elements.cbprotected.read.all elements.license.read.all";

/// Knobs of a simulated AvePoint.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Number of customers.
    pub customers: usize,
    /// Scan profiles per customer.
    pub profiles_per_customer: usize,
    /// Added to every API (not token) response.
    pub latency: Duration,
    /// Added, on top of `latency`, to every endpoint the exporter reads in
    /// the background: the customers and profiles batches, profile
    /// details, backup jobs and coverage. The scan reports (the scrape
    /// path) are not slowed.
    pub background_latency: Duration,
    /// Share of API requests answered 500.
    pub error_rate: f64,
    /// Share of API requests answered 429 (with `Retry-After: 1`).
    pub throttle_rate: f64,
    /// Length of a simulated day: reports roll over this often.
    pub day_length: Duration,
    /// Seed of all generated data and of the random faults.
    pub seed: u64,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// Added to every token response.
    pub token_latency: Duration,
    /// Accepted client id.
    pub client_id: String,
    /// Accepted client secret.
    pub client_secret: String,
    /// Permissions the app registration holds (space separated). A token
    /// request for any other scope is refused `400 invalid_scope` as a
    /// whole, as IdentityServer refuses it; see
    /// `set(Knob::Permissions(..))` to change them later.
    pub permissions: String,
    /// A certificate uploaded to the app registration (PEM or DER): the
    /// token endpoint then also accepts `client_assertion` JWTs signed RS256
    /// with its private key. `None`: client secret only.
    pub trusted_certificate: Option<Vec<u8>>,
    /// Start with [`RunningSimulator::set_respelled_ids`] on.
    pub respelled_ids: bool,
    /// Finish an API request whose client went away instead of dropping
    /// it, as a real server does: AvePoint does not stop working on a
    /// request because the connection closed or the stream was reset. The
    /// request stays in [`SimStats::api_in_flight`] until its answer would
    /// have been sent, so the counters show the load an abandoned request
    /// still puts on the API. Off: the request ends with its connection.
    pub finish_abandoned_requests: bool,
    /// Each profile scans once a simulated day at a time of its own and its
    /// report appears when the scan ends (Running before that), as
    /// AvePoint's do; off: every report rolls over at the start of a day.
    pub daily_schedule: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            customers: 3,
            profiles_per_customer: 3,
            latency: Duration::ZERO,
            background_latency: Duration::ZERO,
            error_rate: 0.0,
            throttle_rate: 0.0,
            day_length: Duration::from_secs(86_400),
            seed: 1,
            token_lifetime: Duration::from_secs(3600),
            token_latency: Duration::ZERO,
            client_id: DEMO_CLIENT_ID.to_owned(),
            client_secret: DEMO_CLIENT_SECRET.to_owned(),
            permissions: ALL_PERMISSIONS.to_owned(),
            trusted_certificate: None,
            respelled_ids: false,
            daily_schedule: false,
            finish_abandoned_requests: false,
        }
    }
}

/// A fault injected for one scan profile (tests pick one instead of
/// hand-building responses).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status with a JSON `message` body.
    Status(u16),
    /// Answer 400 in the documented error envelope, `message` "Bad
    /// Request" and this JSON as its `errors` (the causes: a list of
    /// `{code, field, message}`).
    BadRequest(serde_json::Value),
    /// Answer 429 with this `Retry-After` value.
    Throttle(Option<String>),
    /// Never answer (until the client gives up).
    Hang,
    /// Valid JSON cut in the middle.
    Truncated,
    /// An HTML error page with status 200.
    NotJson,
    /// A required field missing (`lastScanStatus`).
    MissingField,
    /// A count sent as a string.
    WrongTypes,
    /// Answer with this exact report (e.g. unknown enum codes, odd names).
    Report(ScanProfileReport),
    /// A valid report padded to this many bytes (a description field).
    Huge(usize),
    /// Break the connection instead of answering (hyper aborts it when the
    /// body stream fails), as a reset.
    Reset,
    /// Answer 302 with this `Location`, as a misconfigured proxy might.
    Redirect(String),
    /// A report padded to this many bytes, sent in 1 KiB chunks at this
    /// many bytes per second, without `Content-Length` (chunked), as a
    /// slow link or a struggling upstream would.
    Trickle {
        /// Body size.
        bytes: usize,
        /// Bytes per second.
        per_second: usize,
    },
    /// Backup endpoints: the first item's string fields `"N/A"`, and its
    /// `customer`, `name` or `serviceModule` `null`, as AvePoint's
    /// documented samples and its older jobs API send them.
    NotApplicable,
    /// Coverage: a bare list without paging, as the overview answered
    /// before December 2025 (and lagging deployments may still).
    BareList,
    /// Backup endpoints: answer 200 with exactly this body (a documented
    /// sample, say).
    Body(String),
    /// Backup jobs: `400` to a request without `jobType` (body `{}`);
    /// a request for one job type is answered with that type's jobs.
    OneJobTypeOnly,
    /// Reports and details: the body with this one field (by its wire
    /// name) set to this JSON value: out-of-range counts, a wrong-typed
    /// field holding an e-mail address, a 20 MB name.
    Field(String, serde_json::Value),
    /// Backup jobs: every page full of jobs of modules never seen before
    /// (a fresh `jobModule` code per job, across requests too), with a
    /// `totalCount` that always promises more, as a runaway upstream might.
    FreshModules,
}

/// A simulator serving on a loopback port; stops when dropped.
pub struct RunningSimulator {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl RunningSimulator {
    /// Bind `addr` (use port 0 for a free port) and serve in the background.
    pub async fn start(config: SimulatorConfig, addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_with_web_config(config, addr, None).await
    }

    /// Like [`RunningSimulator::start`], served over HTTPS (HTTP/2 offered
    /// through ALPN, as AvePoint's hosts do) when `web_config` has a
    /// `tls_server_config`; the exporter's own TLS serving code does it.
    pub async fn start_with_web_config(
        config: SimulatorConfig,
        addr: SocketAddr,
        web_config: Option<Arc<crate::web_config::WebConfigHandle>>,
    ) -> std::io::Result<Self> {
        let trusted_certificate = config
            .trusted_certificate
            .as_deref()
            .map(TrustedCertificate::parse)
            .transpose()?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let scheme = if web_config.as_ref().is_some_and(|w| w.tls_enabled()) {
            "https"
        } else {
            "http"
        };
        let state = Arc::new(SimState::new(config, addr, scheme, trusted_certificate));
        let shutdown = serve(listener, router(Arc::clone(&state)), web_config);
        Ok(Self {
            addr,
            state,
            shutdown: Some(shutdown),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// API base URL, for `avepoint.base_url`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.state.scheme, self.addr)
    }

    /// Token URL, for `avepoint.token_url`.
    pub fn token_url(&self) -> String {
        format!("{}://{}/connect/token", self.state.scheme, self.addr)
    }

    /// Requests by HTTP version.
    pub fn protocols(&self) -> &ProtocolStats {
        &self.state.protocols
    }

    /// Every (customer id, profile id) the simulator knows, in order.
    pub fn profile_ids(&self) -> Vec<(String, String)> {
        self.state
            .customers
            .iter()
            .flat_map(|c| c.profiles.iter().map(move |p| (c.id.clone(), p.id.clone())))
            .collect()
    }

    /// The simulated customers.
    pub fn customers(&self) -> &[SimCustomer] {
        &self.state.customers
    }

    /// The report the simulator would serve now for a profile (no faults).
    pub fn current_report(&self, customer_id: &str, profile_id: &str) -> Option<ScanProfileReport> {
        self.state.report(customer_id, profile_id)
    }

    /// Report requests per profile id so far (both paths, all outcomes).
    pub fn requests_per_profile(&self) -> std::collections::HashMap<String, u64> {
        lock(&self.state.requests_per_profile).clone()
    }

    /// Request counters.
    pub fn stats(&self) -> &SimStats {
        &self.state.stats
    }

    /// A YAML config for the exporter pointing at this simulator with the
    /// given targets (all profiles when `targets` is `None`). The secret is
    /// not in it: pass it via `AVEPOINT_CLIENT_SECRET`.
    pub fn exporter_config(&self, targets: Option<&[(String, String)]>) -> String {
        let all = self.profile_ids();
        let targets = targets.unwrap_or(&all);
        let mut by_customer: Vec<(String, Vec<String>)> = Vec::new();
        for (customer, profile) in targets {
            match by_customer.iter_mut().find(|(c, _)| c == customer) {
                Some((_, profiles)) => profiles.push(profile.clone()),
                None => by_customer.push((customer.clone(), vec![profile.clone()])),
            }
        }
        let mut yaml = format!(
            "avepoint:\n  base_url: {}\n  token_url: {}\n  client_id: {}\n  # client secret: from AVEPOINT_CLIENT_SECRET\ntargets:{}\n",
            self.base_url(),
            self.token_url(),
            self.state.config.client_id,
            if by_customer.is_empty() { " []" } else { "" }
        );
        for (customer, profiles) in by_customer {
            yaml.push_str(&format!("  - customer_id: {customer}\n    profile_ids:\n"));
            for profile in profiles {
                yaml.push_str(&format!("      - {profile}\n"));
            }
        }
        yaml
    }

    /// Stop serving.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Every route the simulator answers, counting the HTTP version of each
/// request and the API requests in flight.
fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route(
            "/partner/external/v3/general/customers/{customer_id}/scan-profiles-v2/{profile_id}",
            get(api::profile::<false>),
        )
        .route(
            "/partner/external/v3/general/customers/{customer_id}/scan-profiles/{profile_id}/changes",
            get(api::profile::<true>),
        )
        .route(
            "/partner/external/v3/general/customers/{customer_id}/scan-profiles/{profile_id}",
            get(api::profile_details),
        )
        .route("/partner/external/v3/general/customers/batch", post(discovery::customers_batch))
        .route(
            "/partner/external/v3/general/customers/{customer_id}/avpt-products/jobs/batch",
            post(backup::jobs_batch),
        )
        .route(
            "/partner/external/v3/general/customers/{customer_id}/cloud-backup-m365/overview",
            get(backup::coverage_overview),
        )
        .route(
            "/partner/external/v3/general/customers/{customer_id}/scan-profiles/batch",
            post(discovery::profiles_batch),
        )
        .merge(licences::routes())
        // Only the routes above: the token endpoint is not what
        // `avepoint.concurrency` bounds.
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            count_in_flight,
        ))
        .route("/connect/token", post(token::token))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            count_http_version,
        ))
        .with_state(state)
}

/// Counts what clients negotiated, so TLS tests can tell HTTP/2 was used.
async fn count_http_version(
    State(state): State<Arc<SimState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let counter = if request.version() == axum::http::Version::HTTP_2 {
        &state.protocols.http2_requests
    } else {
        &state.protocols.http1_requests
    };
    counter.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

/// Counts the API request in [`SimStats::api_in_flight`] while its handler
/// runs: until it answers or hyper drops it, or, with
/// [`SimulatorConfig::finish_abandoned_requests`], until it would have
/// answered even if its client left.
async fn count_in_flight(
    State(state): State<Arc<SimState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let in_flight = InFlight::enter(&state);
    if !state.config.finish_abandoned_requests {
        let response = next.run(request).await;
        drop(in_flight);
        return response;
    }
    // A task of its own is not dropped with the connection.
    let handler = tokio::spawn(async move {
        let response = next.run(request).await;
        drop(in_flight);
        response
    });
    handler.await.unwrap_or_else(|error| {
        tracing::error!(%error, "simulator handler failed");
        axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
    })
}

/// Serve `app` on `listener` in the background until the returned sender
/// fires or is dropped.
fn serve(
    listener: TcpListener,
    app: Router,
    web_config: Option<Arc<crate::web_config::WebConfigHandle>>,
) -> oneshot::Sender<()> {
    let (shutdown, shutdown_rx) = oneshot::channel();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = shutdown_rx.await;
        };
        if let Err(error) =
            crate::serve::serve_with_web_config(listener, app, shutdown, web_config).await
        {
            tracing::error!(%error, "simulator stopped");
        }
    });
    shutdown
}
