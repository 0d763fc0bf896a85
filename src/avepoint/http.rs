//! Small HTTP helpers shared by the token source and the API client:
//! bounded body reads, why a body could not be read (`BodyError`, with
//! the limits its messages name), and upstream text made safe to log. A
//! report's body decoded as it streams in is `body_decode.rs`.
//!
//! Imports nothing of the crate: everything in `avepoint/` builds on it.

use std::time::Duration;

use reqwest::Response;

/// Upstream error text is cut to this many characters in errors and logs.
pub(crate) const MAX_ERROR_TEXT: usize = 200;

/// An error with all its sources, so "error sending request" says why.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// [`sanitize`] for text that holds no secret of ours (ids, names).
pub fn sanitize_public(text: &str) -> String {
    sanitize(text, "")
}

/// Make upstream text safe to log: no control characters, bounded length,
/// and never the given secret.
pub(crate) fn sanitize(text: &str, secret: &str) -> String {
    // Every report's `request-id` passes here: printable ASCII within
    // the bound, as an id is, is kept as it came, without a walk over
    // its characters.
    if text.len() <= MAX_ERROR_TEXT
        && text.bytes().all(|byte| (b' '..=b'~').contains(&byte))
        && (secret.is_empty() || !text.contains(secret))
    {
        return text.to_owned();
    }
    let text = if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "<secret>")
    };
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_TEXT)
        .collect();
    if text.chars().count() > MAX_ERROR_TEXT {
        clean.push('…');
    }
    clean
}

/// Where a redirect points, for an error message: the host and port of its
/// `Location` (resolved against the request URL), or `no Location`. Never
/// the path or query, which may carry anything.
pub(crate) fn redirect_target(response: &Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|location| response.url().join(location).ok())
        .and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(match url.port_or_known_default() {
                Some(port) => format!("{}://{host}:{port}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            })
        })
        .map_or_else(
            || "no Location".to_owned(),
            |target| sanitize_public(&target),
        )
}

/// How many bodies one client reads and decodes at once; the others wait
/// for a slot with their bodies unread.
///
/// Why a bound, and why here: what a huge body in flight costs is not its
/// decoder but hyper's HTTP/1 read buffer, which grows towards 400 KiB on
/// a fast stream while the chunk being decoded pins the previous one:
/// about 0.65 MiB per body, +44 MiB with 64 in flight (heaptrack,
/// BENCHMARKS.md "changes_memory"). A body left unread costs hyper's first
/// read and the kernel's socket buffer; TCP back-pressure keeps the rest on
/// AvePoint's side. Decoding is CPU-bound, so four slots still keep a few
/// cores busy. The price: huge bodies are also *transferred* four at a
/// time, so a round of many huge bodies over a slow link takes longer.
pub(crate) const DECODE_SLOTS: usize = 4;

/// The slowest a body may arrive, averaged over the time since its
/// headers, once `body_decode::RATE_GRACE` has passed. AvePoint sends a report in
/// one go; far below this is a stalled or hostile upstream, and waiting
/// for it to the end of `request_timeout` would keep a permit (and, for a
/// large body, one of the [`DECODE_SLOTS`]) from the reports behind it.
pub(crate) const MIN_BODY_BYTES_PER_SECOND: u64 = 8 * 1024;

/// The body was larger than allowed, or broke off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit; reading stopped there.
    #[error("response body larger than {limit} bytes, refused")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The connection broke while reading.
    #[error("reading the response body failed: {0}")]
    Read(String),
    /// The body did not arrive within the request's time.
    #[error("reading the response body timed out")]
    TimedOut,
    /// The body came slower than [`MIN_BODY_BYTES_PER_SECOND`]; given up
    /// before `request_timeout`, so a trickle does not hold a permit and a
    /// decode slot all that time.
    #[error(
        "response body too slow: {bytes} bytes in {:.1}s, below the minimum of {} KiB/s; given up",
        elapsed.as_secs_f64(),
        MIN_BODY_BYTES_PER_SECOND / 1024
    )]
    TooSlow {
        /// Bytes read when it was given up.
        bytes: u64,
        /// Time since the body's headers.
        elapsed: Duration,
    },
    /// No decode slot came free in time; the body was not read.
    #[error(
        "no decode slot within {}s (avepoint.request_timeout): {DECODE_SLOTS} other large bodies were being read; this one was not",
        waited.as_secs_f64()
    )]
    NoSlot {
        /// How long it waited.
        waited: Duration,
    },
}

/// Read a body, but never buffer more than `limit` bytes.
pub(crate) async fn read_body_limited(
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| BodyError::Read(error_chain(&error)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_the_secret_control_characters_and_length() {
        assert_eq!(sanitize("bad s3cr3t here", "s3cr3t"), "bad <secret> here");
        assert_eq!(sanitize("two\nlines\u{7}", ""), "two lines ");
        let long = "x".repeat(500);
        let clean = sanitize(&long, "");
        assert_eq!(clean.chars().count(), MAX_ERROR_TEXT + 1);
        assert!(clean.ends_with('…'));
    }
}
