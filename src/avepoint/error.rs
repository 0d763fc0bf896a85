//! Why a call to AvePoint failed ([`ApiError`]), and the short stable word
//! for each kind of failure ([`FailureKind`]) that logs, the `check` table,
//! the retry metric and the collection rounds use.
//!
//! Imports only `avepoint::auth` (for [`AuthError`]).

use std::time::Duration;

use reqwest::StatusCode;

use super::token_response::AuthError;

/// Why a call to the API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token could be had.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API answered with a non-success status.
    #[error("HTTP {status}: {hint}{}{}", detail(.message), ids_note(.request_id, .trace_id))]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// What the status means for this exporter and what to do.
        hint: String,
        /// The body's `message`, when there is one.
        message: Option<String>,
        /// AvePoint's `request-id` header, for support tickets; without
        /// the header, the error body's `requestId`.
        request_id: Option<String>,
        /// The error body's `traceId`, when it has one.
        trace_id: Option<String>,
        /// `Retry-After` of a 429 or 503, when sent.
        retry_after: Option<Duration>,
    },
    /// No HTTP answer: connection refused or reset, TLS, or the request timeout.
    #[error("request failed: {message}")]
    Transport {
        /// The error chain.
        message: String,
        /// Whether the request timed out.
        timeout: bool,
    },
    /// Not sent: AvePoint asked us to back off (429/503 `Retry-After`) and
    /// that time has not passed yet.
    #[error("not sent: backing off for another {}s after AvePoint answered {status}", remaining.as_secs_f64().ceil())]
    BackingOff {
        /// The status that started the back-off.
        status: StatusCode,
        /// How long the back-off still lasts.
        remaining: Duration,
    },
    /// A large body waited for one of the decode slots longer than
    /// `request_timeout`: our own queue, not AvePoint being slow.
    #[error(
        "not read: no decode slot came free within {}s; {slots} other large report bodies were being read (the request gave its concurrency permit back while it waited)",
        waited.as_secs_f64()
    )]
    DecodeQueue {
        /// How long it waited.
        waited: Duration,
        /// How many bodies are read at once.
        slots: usize,
    },
    /// A 200 whose body is not the expected JSON.
    #[error("invalid response body: {message}{}", request_id_note(.request_id))]
    Decode {
        /// What is wrong with it.
        message: String,
        /// AvePoint's `request-id` header.
        request_id: Option<String>,
    },
}

fn detail(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|message| format!(" (AvePoint says: {message})"))
        .unwrap_or_default()
}

fn request_id_note(request_id: &Option<String>) -> String {
    ids_note(request_id, &None)
}

fn ids_note(request_id: &Option<String>, trace_id: &Option<String>) -> String {
    match (request_id, trace_id) {
        (Some(request), Some(trace)) => format!(" [request-id {request}, trace-id {trace}]"),
        (Some(request), None) => format!(" [request-id {request}]"),
        (None, Some(trace)) => format!(" [trace-id {trace}]"),
        (None, None) => String::new(),
    }
}

impl ApiError {
    /// AvePoint's `request-id` of the failed response, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Status { request_id, .. } | ApiError::Decode { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }

    /// The error body's `traceId` of the failed response, if any.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            ApiError::Status { trace_id, .. } => trace_id.as_deref(),
            _ => None,
        }
    }

    /// What kind of failure this is, for logs, metrics and the `check` table.
    pub fn kind(&self) -> FailureKind {
        match self {
            ApiError::Auth(_) => FailureKind::Auth,
            ApiError::Status { status, .. } => FailureKind::Http(*status),
            ApiError::Transport { timeout: true, .. } => FailureKind::Timeout,
            ApiError::Transport { .. } => FailureKind::Transport,
            ApiError::BackingOff { .. } => FailureKind::Backoff,
            ApiError::Decode { .. } => FailureKind::InvalidBody,
            ApiError::DecodeQueue { .. } => FailureKind::DecodeQueue,
        }
    }
}

/// Why a profile has no report, as a short stable word ([`FailureKind::label`])
/// in logs, the `check` table and the retry metric's `code` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// An HTTP answer with a non-success status: the label is the code.
    Http(StatusCode),
    /// The request timed out (`timeout`).
    Timeout,
    /// No HTTP answer: connection refused, reset, TLS (`error`).
    Transport,
    /// No token could be had (`auth`).
    Auth,
    /// Not sent because AvePoint asked for a pause (`backoff`).
    Backoff,
    /// A 200 whose body is not the expected JSON (`invalid_body`).
    InvalidBody,
    /// A large body found no decode slot in time (`decode_queue`).
    DecodeQueue,
    /// The scrape's deadline passed first (`deadline`); set by the collector,
    /// never by the client.
    Deadline,
}

impl FailureKind {
    /// The stable word: the HTTP status code, or what happened instead.
    pub fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            FailureKind::Http(status) => status.as_u16().to_string().into(),
            FailureKind::Timeout => "timeout".into(),
            FailureKind::Transport => "error".into(),
            FailureKind::Auth => "auth".into(),
            FailureKind::Backoff => "backoff".into(),
            FailureKind::InvalidBody => "invalid_body".into(),
            FailureKind::DecodeQueue => "decode_queue".into(),
            FailureKind::Deadline => "deadline".into(),
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// Tests and tools compare with the label they see in logs: `kind == "auth"`.
impl PartialEq<&str> for FailureKind {
    fn eq(&self, label: &&str) -> bool {
        self.label() == *label
    }
}
