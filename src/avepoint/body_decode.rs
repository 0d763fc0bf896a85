//! A report's body, read and decoded within its budget: at most
//! `max_response_bytes`, before its deadline, above a minimum rate, and
//! (when it is large) on one of a few blocking threads, so that the
//! scrape path never holds a permit while it waits for one. Small bodies,
//! the everyday case, are read whole and decoded in place.
//!
//! Imports only `http` (`BodyError`) from the crate.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::Response;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::http::{BodyError, MIN_BODY_BYTES_PER_SECOND, error_chain};

/// What a streamed decode holds of the body at a time, besides the one
/// network chunk being read and the decoder's scratch for one string.
const STREAM_BUFFER_BYTES: usize = 16 * 1024;

/// A body at most this long (announced so, or found so when it ends before
/// this many bytes) is read whole and decoded inline, skipping the queue:
/// an everyday report (a few KiB) never waits behind someone's 50 MB one,
/// costs no blocking thread, and cannot grow hyper's buffer past its own
/// size.
const SMALL_BODY_BYTES: u64 = 64 * 1024;

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
    /// The decode slots ([`DECODE_SLOTS`](super::http::DECODE_SLOTS)).
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
            return Ok(decode_whole(&head));
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

/// Decode a body read whole. Checked as UTF-8 in one pass first: from a
/// `str`, serde_json takes each string without checking it again, which
/// was 3 % of a scrape's instructions (about 18 keys and values a report).
/// A body that is not UTF-8 is decoded from its bytes, so it fails with
/// the error it always did.
fn decode_whole<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
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

    /// Decoding from text is only faster: the same value, and for a body
    /// that is not UTF-8 the same error as decoding its bytes.
    #[test]
    fn a_whole_body_decodes_as_from_its_bytes() {
        let body = "{\"name\":\"Été \\u00e9\",\"n\":[1,2.5,null]}".as_bytes();
        let value: serde_json::Value = decode_whole(body).unwrap();
        assert_eq!(
            value,
            serde_json::from_slice::<serde_json::Value>(body).unwrap()
        );
        assert_eq!(value["name"], "Été é");
        let not_utf8 = b"{\"name\":\"\xff\"}";
        assert_eq!(
            decode_whole::<serde_json::Value>(not_utf8)
                .unwrap_err()
                .to_string(),
            serde_json::from_slice::<serde_json::Value>(not_utf8)
                .unwrap_err()
                .to_string()
        );
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
