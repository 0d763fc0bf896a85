//! AvePoint's Graph API: everything that talks to it, and nothing else.
//!
//! Inside, from the bottom up: [`http`] (bounded and streamed body reads,
//! text safe to log), `scrub` (our credentials in every wire form, and
//! JSON decode errors without the values), [`instrumentation`] (`avepoint_api_*` counters),
//! [`lenient`] (fields read one by one: `"N/A"`, `null` and odd values are
//! unknown, never a failed page), `job_codes` (documented job types and
//! modules and their labels), [`model`], [`details`] and [`backup`] (the
//! wire types), [`certificate`] (the
//! certificate credential and its JWT), [`auth`] (the OAuth2 token source), [`permissions`] (which permission each call needs, and which the app holds), [`pacing`] (rate limit, Retry-After,
//! jitter), [`error`] (why a call failed), `response` (the error an answer
//! means), `profile_path` (which path a report comes from), [`client`] (one typed call per
//! endpoint, retries, back-off, rate limit, the concurrency bound).
//!
//! Imports only `config` (settings, targets) and `sync` from the crate;
//! never `discovery`, `collect`, `metrics` or anything above.

pub mod auth;
pub mod backup;
pub mod certificate;
pub mod client;
pub mod details;
pub mod error;
pub mod http;
pub mod instrumentation;
mod job_codes;
pub mod lenient;
pub mod model;
pub mod pacing;
pub mod permissions;
mod profile_path;
mod response;
mod scrub;

pub use auth::{AccessToken, AuthError, TokenSource};
pub use client::ApiClient;
pub use details::{ProfileContainer, ScanProfileDetails};
pub use error::{ApiError, FailureKind};
pub use instrumentation::{ApiEndpoint, ApiMetrics};
pub use model::{ScanProfileReport, ScanStatus};
