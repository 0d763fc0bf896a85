//! Small HTTP helpers shared by the token source and the API client:
//! bounded body reads, bodies decoded as they stream in, and upstream text
//! made safe to log.
//!
//! Imports nothing of the crate: everything in `avepoint/` builds on it.

use std::io::Read;

use futures_util::TryStreamExt;
use reqwest::Response;
use serde::de::DeserializeOwned;
use tokio_util::io::{StreamReader, SyncIoBridge};

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

/// What a streamed decode holds of the body at a time, besides the one
/// network chunk being read and the decoder's scratch for one string.
const STREAM_BUFFER_BYTES: usize = 16 * 1024;

/// Decode a JSON body as it arrives, in bounded memory whatever its size
/// (what is held is a read buffer and what `T` keeps), reading at most
/// `limit` bytes. The outer error is about the body (too large, broken
/// off), the inner one about its JSON.
///
/// serde_json reads synchronously, so it runs on a blocking thread and
/// pulls the body from the async side through [`SyncIoBridge`].
pub(crate) async fn decode_streamed<T: DeserializeOwned + Send + 'static>(
    response: Response,
    limit: usize,
) -> Result<Result<T, serde_json::Error>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let chunks = Box::pin(
        response
            .bytes_stream()
            .map_err(|error| std::io::Error::other(error_chain(&error))),
    );
    let body = SyncIoBridge::new(StreamReader::new(chunks));
    tokio::task::spawn_blocking(move || {
        let mut capped = CappedReader {
            inner: body,
            limit,
            read: 0,
            failure: None,
        };
        let decoded = serde_json::from_reader(std::io::BufReader::with_capacity(
            STREAM_BUFFER_BYTES,
            &mut capped,
        ));
        // A failed read is the body's fault, whatever serde_json made of it.
        match capped.failure {
            Some(failure) => Err(failure),
            None => Ok(decoded),
        }
    })
    .await
    .map_err(|error| BodyError::Read(format!("the decoding task ended: {error}")))?
}

/// Reads at most `limit` bytes, and remembers why reading stopped early.
struct CappedReader<R> {
    inner: R,
    limit: usize,
    read: usize,
    failure: Option<BodyError>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.failure.is_some() {
            return Err(std::io::Error::other("reading the body stopped"));
        }
        // One byte more than allowed tells a body of exactly `limit` bytes
        // from a longer one.
        let allowed = buffer
            .len()
            .min(self.limit.saturating_sub(self.read).saturating_add(1));
        let count = self
            .inner
            .read(&mut buffer[..allowed])
            .inspect_err(|error| {
                self.failure = Some(BodyError::Read(error.to_string()));
            })?;
        self.read += count;
        if self.read > self.limit {
            self.failure = Some(BodyError::TooLarge { limit: self.limit });
            return Err(std::io::Error::other("response body too large"));
        }
        Ok(count)
    }
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

    #[test]
    fn capped_reader_allows_exactly_the_limit_and_refuses_one_byte_more() {
        let read_all = |body: &[u8], limit: usize| {
            let mut capped = CappedReader {
                inner: body,
                limit,
                read: 0,
                failure: None,
            };
            let mut out = Vec::new();
            let result = capped.read_to_end(&mut out).map(|_| out.len());
            (result.ok(), capped.failure.map(|f| f.to_string()))
        };
        assert_eq!(read_all(&[b'x'; 10], 10), (Some(10), None));
        assert_eq!(read_all(&[], 0), (Some(0), None));
        assert_eq!(
            read_all(&[b'x'; 11], 10),
            (
                None,
                Some("response body larger than 10 bytes, refused".into())
            )
        );
    }
}
