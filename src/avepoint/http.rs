//! Small HTTP helpers shared by the token source and the API client:
//! bounded body reads, bodies decoded as they stream in, and upstream text
//! made safe to log.
//!
//! Imports nothing of the crate: everything in `avepoint/` builds on it.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::Response;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
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

/// What a streamed decode holds of the body at a time, besides the one
/// network chunk being read and the decoder's scratch for one string.
const STREAM_BUFFER_BYTES: usize = 16 * 1024;

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

/// A body at most this long (announced so, or found so when it ends before
/// this many bytes) is read whole and decoded inline, skipping the queue:
/// an everyday report (a few KiB) never waits behind someone's 50 MB one,
/// costs no blocking thread, and cannot grow hyper's buffer past its own
/// size.
const SMALL_BODY_BYTES: u64 = 64 * 1024;

/// The slowest a body may arrive, averaged over the time since its
/// headers, once [`RATE_GRACE`] has passed. AvePoint sends a report in
/// one go; far below this is a stalled or hostile upstream, and waiting
/// for it to the end of `request_timeout` would keep a permit (and, for a
/// large body, one of the [`DECODE_SLOTS`]) from the reports behind it.
pub(crate) const MIN_BODY_BYTES_PER_SECOND: u64 = 8 * 1024;

/// How long a body may take before [`MIN_BODY_BYTES_PER_SECOND`] applies:
/// room for a slow first packet of any everyday report.
const RATE_GRACE: Duration = Duration::from_secs(2);

/// The rate floor of one body: by when its next bytes must have come.
struct RateFloor {
    started: Instant,
    bytes: u64,
}

impl RateFloor {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// When the body falls below the floor unless more comes first.
    fn next_due(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.bytes as f64 / MIN_BODY_BYTES_PER_SECOND as f64);
        self.started + RATE_GRACE.max(earned)
    }

    fn read(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }

    fn too_slow(&self) -> BodyError {
        BodyError::TooSlow {
            bytes: self.bytes,
            elapsed: self.started.elapsed(),
        }
    }

    /// The next chunk of `chunks`, or why none came in time: the
    /// request's `deadline` first, else the floor.
    async fn next<S: futures_util::Stream + Unpin>(
        &mut self,
        deadline: Instant,
        chunks: &mut S,
    ) -> Result<Option<S::Item>, BodyError> {
        let due = self.next_due();
        match tokio::time::timeout_at(deadline.min(due), chunks.next()).await {
            Ok(next) => Ok(next),
            Err(_) if due < deadline => Err(self.too_slow()),
            Err(_) => Err(BodyError::TimedOut),
        }
    }
}

/// The time a streamed decode may take, and the queue it waits in.
pub(crate) struct StreamBudget<'a> {
    /// The decode slots ([`DECODE_SLOTS`]).
    pub slots: &'a Arc<Semaphore>,
    /// The request's concurrency permit and the semaphore it came from:
    /// given back while the body waits for a decode slot (so a queue of
    /// large bodies never holds the permits scrapes need), taken again
    /// before the body is read on.
    pub permit: Option<(OwnedSemaphorePermit, Arc<Semaphore>)>,
    /// `request_timeout`: the request's own time (to the headers, then
    /// reading the body), and apart from that the most it waits for a slot.
    pub timeout: Duration,
    /// When the request was sent.
    pub sent: Instant,
}

/// Decode a JSON body, in bounded memory whatever its size (what is held
/// is a read buffer and what `T` keeps), reading at most `limit` bytes. The
/// outer error is about the body (too large, broken off, too slow), the
/// inner one about its JSON.
///
/// A body of at most [`SMALL_BODY_BYTES`] (an everyday report), announced
/// or not, is read whole and decoded right here: handing a few KiB to a
/// blocking thread cost more CPU than decoding them (twice the CPU per
/// scrape, BENCHMARKS.md). Only a larger body waits for a decode slot and
/// is decoded as it arrives, on a blocking thread that pulls it from the
/// async side through [`SyncIoBridge`] (serde_json reads synchronously).
pub(crate) async fn decode_streamed<T: DeserializeOwned + Send + 'static>(
    response: Response,
    limit: usize,
    budget: StreamBudget<'_>,
) -> Result<Result<T, serde_json::Error>, BodyError> {
    let length = response.content_length();
    if length.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    // The time to the headers counts against request_timeout; the wait for
    // a slot does not: it is our queue, not AvePoint being slow, and a
    // request behind three huge bodies must not time out (or be labelled
    // a timeout) for it. The wait has a bound of its own, one more
    // request_timeout, so a request ends within twice request_timeout.
    let spent = budget.sent.elapsed();
    let mut chunks = Box::pin(response.bytes_stream());
    let mut head = Vec::new();
    let mut floor = RateFloor::new();
    if length.is_none_or(|length| length <= SMALL_BODY_BYTES) {
        // Read up to the small-body size; a body that ends there is decoded
        // now, one that goes on keeps what was read as its head.
        let deadline = Instant::now() + budget.timeout.saturating_sub(spent);
        if read_head(&mut chunks, &mut head, &mut floor, deadline).await? {
            if head.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            return Ok(serde_json::from_slice(&head));
        }
    }
    // Slot, then permit, never the other way round: a request that holds a
    // permit never waits for a slot, so the two queues cannot lock up.
    let permit = budget
        .permit
        .as_ref()
        .map(|(_, permits)| Arc::clone(permits));
    let mut budget = budget;
    drop(budget.permit.take());
    let queued = Instant::now();
    let slot = wait_for_slot(&budget).await?;
    let _permit = match permit {
        Some(permits) => Some(
            permits
                .acquire_owned()
                .await
                .map_err(|_| BodyError::Read("the request permits are closed".into()))?,
        ),
        None => None,
    };
    let deadline = Instant::now() + budget.timeout.saturating_sub(spent);
    // The floor counts from the headers, but not the wait for a slot and
    // a permit: that is our queue, not AvePoint's pace.
    floor.started += queued.elapsed();
    let rest = SyncIoBridge::new(StreamReader::new(Box::pin(until(deadline, floor, chunks))));
    let body = std::io::Read::chain(std::io::Cursor::new(head), rest);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
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

/// Read `chunks` into `head` up to [`SMALL_BODY_BYTES`]: `true` when the
/// body ended there (all of it is in `head`).
async fn read_head<S, B>(
    chunks: &mut S,
    head: &mut Vec<u8>,
    floor: &mut RateFloor,
    deadline: Instant,
) -> Result<bool, BodyError>
where
    S: futures_util::Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    while (head.len() as u64) <= SMALL_BODY_BYTES {
        match floor.next(deadline, chunks).await? {
            Some(Err(error)) if error.is_timeout() => return Err(BodyError::TimedOut),
            Some(Err(error)) => return Err(BodyError::Read(error_chain(&error))),
            Some(Ok(chunk)) => {
                floor.read(chunk.as_ref().len());
                head.extend_from_slice(chunk.as_ref());
            }
            None => return Ok(true),
        }
    }
    Ok(false)
}

async fn wait_for_slot(budget: &StreamBudget<'_>) -> Result<OwnedSemaphorePermit, BodyError> {
    let waiting = Arc::clone(budget.slots).acquire_owned();
    match tokio::time::timeout(budget.timeout, waiting).await {
        Ok(Ok(slot)) => Ok(slot),
        Ok(Err(_closed)) => Err(BodyError::Read("the decode slots are closed".into())),
        Err(_) => Err(BodyError::NoSlot {
            waited: budget.timeout,
        }),
    }
}

/// The body's chunks as I/O results, ending in a `TimedOut` error at
/// `deadline` (and for reqwest's own timeout, the backstop).
fn until<S, B>(
    deadline: Instant,
    floor: RateFloor,
    chunks: S,
) -> impl futures_util::Stream<Item = std::io::Result<B>> + Send
where
    S: futures_util::Stream<Item = reqwest::Result<B>> + Send + 'static,
    B: AsRef<[u8]> + Send,
{
    let chunks = Box::pin(chunks.map_err(|error| {
        let kind = if error.is_timeout() {
            std::io::ErrorKind::TimedOut
        } else {
            std::io::ErrorKind::Other
        };
        std::io::Error::new(kind, error_chain(&error))
    }));
    futures_util::stream::unfold((chunks, floor), move |(mut chunks, mut floor)| async move {
        match floor.next(deadline, &mut chunks).await {
            Ok(Some(Ok(chunk))) => {
                floor.read(chunk.as_ref().len());
                Some((Ok(chunk), (chunks, floor)))
            }
            Ok(next) => next.map(|item| (item, (chunks, floor))),
            Err(BodyError::TimedOut) => {
                Some((Err(std::io::ErrorKind::TimedOut.into()), (chunks, floor)))
            }
            // Carried through the reader as its source, for `CappedReader`.
            Err(slow) => Some((Err(std::io::Error::other(slow)), (chunks, floor))),
        }
    })
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
                let slow = error
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<BodyError>());
                self.failure = Some(match (error.kind(), slow) {
                    (std::io::ErrorKind::TimedOut, _) => BodyError::TimedOut,
                    (_, Some(&BodyError::TooSlow { bytes, elapsed })) => {
                        BodyError::TooSlow { bytes, elapsed }
                    }
                    _ => BodyError::Read(error.to_string()),
                });
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
