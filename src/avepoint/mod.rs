//! AvePoint's Graph API: everything that talks to it, and nothing else.
//!
//! Inside, from the bottom up: [`http`] (bounded body reads, text safe
//! to log), `body_decode` (a report's body decoded as it streams in), `scrub` (our credentials in every wire form, and
//! JSON decode errors without the values), [`instrumentation`]
//! (`avepoint_api_*` counters), [`lenient`] (fields read one by one:
//! `"N/A"`, `null` and odd values are unknown, never a failed page),
//! `strict` (the counts and codes a report cannot be exported without),
//! `job_codes` (documented job types and modules and their labels), `page`
//! (the page envelope of paged lists), [`model`], [`details`] and
//! [`backup`] and [`subscriptions`] (the wire types), [`certificate`] (the certificate
//! credential and its JWT; `key_usage` reads its Key Usage), [`token_response`] (what a token request ends
//! in), [`token`] (the OAuth2 token source), [`permissions`] (which
//! permission each call needs, and which the app holds), [`pacing`] (rate
//! limit, Retry-After, jitter), [`error`] (why a call failed), `response`
//! (the error an answer means), `profile_path` (which path a report comes
//! from), `transport` (hyper's client directly, or reqwest through a
//! proxy), [`client`] (the one authorized call: retries, back-off, rate
//! limit, the concurrency bound), `calls` (the typed calls every paged
//! list and single object go through), [`endpoint`] (the endpoints as
//! data: label, method, path, description, and their typed handles).
//!
//! Imports only `config` (settings, targets) and `sync` from the crate;
//! never `discovery`, `collect`, `metrics` or anything above.

pub mod backup;
mod body_decode;
mod calls;
pub mod certificate;
pub mod client;
mod deadline_body;
mod destination;
pub mod details;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod instrumentation;
mod job_codes;
mod key_usage;
pub mod lenient;
pub mod model;
pub mod pacing;
mod page;
pub mod permissions;
mod profile_path;
mod report_urls;
mod response;
mod runs_to_end;
mod scrub;
mod strict;
pub mod subscriptions;
pub mod token;
pub mod token_response;
mod transport;

pub use client::ApiClient;
pub use details::{ProfileContainer, ScanProfileDetails};
pub use endpoint::ApiEndpoint;
pub use error::{ApiError, FailureKind};
pub use instrumentation::ApiMetrics;
pub use model::{ScanProfileReport, ScanStatus};
pub use token::{AccessToken, TokenSource};
pub use token_response::AuthError;
pub use transport::ClientError;
