//! Small HTTP helpers shared by the token source and the API client:
//! bounded body reads and upstream text made safe to log.
//!
//! Imports nothing of the crate: everything in `avepoint/` builds on it.

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
