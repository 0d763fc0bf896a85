//! One encoding per round: every caller of a round gets the same bytes of
//! its [`ExpositionBody`], plain or gzipped, and only the small head of
//! each response is encoded (and compressed) per request.
//!
//! Why: 1,000 clients with valid credentials that send `GET /metrics` and
//! never read cost the encoding and the gzip of a whole exposition each
//! (about 20 ms and 36 ms of CPU at 2,000 profiles), since loopback socket
//! buffers take most of a response nobody reads and its place comes back;
//! on two cores that made a legitimate scrape miss its deadline
//! (BENCHMARKS.md, "Hostile clients"). Now N callers of one round cost one
//! encoding.
//!
//! How, with memory in mind (a 10,000-profile body is ~55 MB plain,
//! ~4.3 MB gzipped): nothing is encoded ahead of the readers. The first
//! reader to need a chunk encodes it into the shared list as it streams;
//! later readers of the same round reuse the chunks already there and
//! encode the ones not yet there. The cache keeps a body until the next
//! round's replaces it, so callers who come one after the other share it
//! too, but only while it is at most [`KEEP_BYTES`]: a larger one (a big
//! plain body; gzip, what Prometheus asks for, is a sixth of the size) is
//! let go as it grows past that, and then lives only while one of its
//! responses streams. At most one body per format and encoding is cached.
//!
//! The price: while a body is at most [`KEEP_BYTES`] (a plain body of up
//! to ~3,000 profiles, a gzipped one of ~40,000), every chunk encoded so far
//! stays while any of its responses streams, so a late caller of the round
//! can still start it: a response may hold up to its whole body (about
//! 5 MB plain at 1,000 profiles; measured from outside, one plain-text
//! scraper, peak RSS 17 MiB with one chunk per response, 21-26 MiB with
//! this). Past [`KEEP_BYTES`], the chunks every current reader has passed
//! are let go and the body takes no new reader (a later caller starts a new
//! encoding): one scraper of a 55 MB body holds about one chunk, not all of
//! it, and readers that stall keep only what lies between the slowest and
//! the fastest of them.
//!
//! gzip as one stream (a single gzip member, which every decoder reads): a
//! gzip header, the head deflated and sync-flushed, the shared body
//! deflated by its own compressor and sync-flushed chunk by chunk (so it
//! never refers back into a head), a final empty block, and the trailer,
//! whose CRC is the head's combined with the body's.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use flate2::{Compress, Compression, Crc, FlushCompress};

use super::exposition::{BodyKey, ExpositionBody};
use crate::sync::lock;

/// How a response body is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Identity,
    /// gzip, at the fastest level (BENCHMARKS.md, "Compression").
    Gzip,
}

impl Encoding {
    /// gzip when an `Accept-Encoding` header accepts it (`gzip` or
    /// `x-gzip` with a quality above 0), else identity.
    pub fn negotiate(accept_encoding: Option<&str>) -> Self {
        let accepts = accept_encoding.is_some_and(|header| {
            header.split(',').any(|coding| {
                let mut parts = coding.split(';').map(str::trim);
                let name = parts.next().unwrap_or_default();
                let quality = parts
                    .filter_map(|p| p.split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
                    .map_or(1.0, |(_, q)| q.trim().parse::<f32>().unwrap_or(0.0));
                (name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip"))
                    && quality > 0.0
            })
        });
        if accepts {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

/// The cache of shared bodies: at most one per format and encoding.
#[derive(Debug, Default)]
pub struct SharedBodies {
    slots: Mutex<Vec<Slot>>,
    encodings: AtomicU64,
}

#[derive(Debug)]
struct Slot {
    key: BodyKey,
    encoding: Encoding,
    body: Weak<SharedBody>,
    /// The body, kept until the next round's replaces it or it grows past
    /// [`KEEP_BYTES`] (then its producer empties this).
    kept: Keeper,
}

/// Holds a cached body alive; emptied to let it go.
type Keeper = Arc<Mutex<Option<Arc<SharedBody>>>>;

/// The largest body the cache keeps with no response streaming it: the
/// gzipped body of 10,000 profiles (~4.3 MB) and the plain one of 2,000
/// (~11 MB) fit.
pub(super) const KEEP_BYTES: usize = 16 << 20;

impl SharedBodies {
    /// A response streaming `head` (this request's own), then `body` in
    /// `encoding`: the encoding already cached for the same round when it
    /// can still be read from its start, or a new one (which then replaces
    /// the cached body of that format and encoding).
    pub fn reader(&self, body: ExpositionBody, encoding: Encoding, head: String) -> BodyReader {
        let mut slots = lock(&self.slots);
        let cached = slots
            .iter()
            .filter(|slot| slot.encoding == encoding && slot.key == *body.key())
            .find_map(|slot| lock(&slot.kept).clone().or_else(|| slot.body.upgrade()))
            .filter(|shared| shared.join());
        if let Some(shared) = cached {
            return shared.reader(head);
        }
        let key = body.key().clone();
        let shared = Arc::new(SharedBody::new(body, encoding));
        let kept: Keeper = Arc::new(Mutex::new(Some(Arc::clone(&shared))));
        let _ = shared.keeper.set(Arc::downgrade(&kept));
        self.encodings.fetch_add(1, Ordering::Relaxed);
        slots.retain(|slot| slot.encoding != encoding || slot.key.format() != key.format());
        slots.push(Slot {
            key,
            encoding,
            body: Arc::downgrade(&shared),
            kept,
        });
        drop(slots);
        // Nobody else has it yet, so it can be joined from its start.
        let _ = shared.join();
        shared.reader(head)
    }

    /// How many bodies were encoded so far (each one once, however many
    /// callers read it).
    pub fn encodings(&self) -> u64 {
        self.encodings.load(Ordering::Relaxed)
    }
}

/// One round's body, encoded chunk by chunk as its readers need it.
#[derive(Debug)]
pub struct SharedBody {
    encoding: Encoding,
    progress: Mutex<Progress>,
    /// What keeps this body in the cache, to let it go when it grows big.
    keeper: OnceLock<Weak<Mutex<Option<Arc<SharedBody>>>>>,
}

#[derive(Debug)]
struct Progress {
    /// The chunks encoded and not let go, from chunk `first` on.
    chunks: VecDeque<Arc<Vec<u8>>>,
    /// The index of `chunks[0]`: above 0 once a body past [`KEEP_BYTES`]
    /// let its passed chunks go, and then no new reader may start it.
    first: usize,
    /// Bytes encoded so far, let go or not.
    bytes: usize,
    /// How many of the body's readers will ask next for each chunk index.
    readers: BTreeMap<usize, usize>,
    /// What is left to encode; `None` once all of it is in `chunks`.
    source: Option<ExpositionBody>,
    /// gzip only: the body's compressor, dropped once the body is whole.
    deflate: Option<Box<Compress>>,
    /// gzip only: the CRC and length of the plain body.
    crc: Crc,
}

impl Progress {
    /// One reader moves from chunk `from` to `to` (`None`: it left).
    fn move_reader(&mut self, from: usize, to: Option<usize>) {
        if let Some(count) = self.readers.get_mut(&from) {
            *count -= 1;
            if *count == 0 {
                self.readers.remove(&from);
            }
        }
        if let Some(to) = to {
            *self.readers.entry(to).or_default() += 1;
        }
        self.let_go_passed();
    }

    /// A body too big to keep lets go of the chunks every reader passed.
    fn let_go_passed(&mut self) {
        if self.bytes <= KEEP_BYTES {
            return;
        }
        let slowest = self.readers.keys().next().copied().unwrap_or(usize::MAX);
        while self.first < slowest && self.chunks.pop_front().is_some() {
            self.first += 1;
        }
    }
}

impl SharedBody {
    fn new(source: ExpositionBody, encoding: Encoding) -> Self {
        let deflate = (encoding == Encoding::Gzip)
            .then(|| Box::new(Compress::new(Compression::fast(), false)));
        Self {
            encoding,
            progress: Mutex::new(Progress {
                chunks: VecDeque::new(),
                first: 0,
                bytes: 0,
                readers: BTreeMap::new(),
                source: Some(source),
                deflate,
                crc: Crc::new(),
            }),
            keeper: OnceLock::new(),
        }
    }

    /// A new reader at the body's start, unless its first chunks are gone.
    fn join(&self) -> bool {
        let mut progress = lock(&self.progress);
        if progress.first > 0 {
            return false;
        }
        *progress.readers.entry(0).or_default() += 1;
        true
    }

    /// Chunk `index` of the body for the reader standing there, encoding
    /// it if no reader has yet; the reader then stands at the next one.
    fn chunk(&self, index: usize) -> Option<Arc<Vec<u8>>> {
        let mut guard = lock(&self.progress);
        let progress = &mut *guard;
        // A reader's chunk is never let go before it passed it.
        let kept = index
            .checked_sub(progress.first)
            .and_then(|at| progress.chunks.get(at));
        if let Some(chunk) = kept.map(Arc::clone) {
            progress.move_reader(index, Some(index + 1));
            return Some(chunk);
        }
        let Some(text) = progress.source.as_mut()?.next() else {
            progress.source = None;
            progress.deflate = None;
            return None;
        };
        let chunk = Arc::new(match progress.deflate.as_mut() {
            Some(compress) => {
                progress.crc.update(text.as_bytes());
                deflate(compress, text.as_bytes())
            }
            None => text.into_bytes(),
        });
        progress.chunks.push_back(Arc::clone(&chunk));
        let was_kept = progress.bytes <= KEEP_BYTES;
        progress.bytes += chunk.len();
        progress.move_reader(index, Some(index + 1));
        if was_kept && progress.bytes > KEEP_BYTES {
            // Too big to keep idle: let the cache's reference go (outside
            // this lock, as that may drop the body).
            drop(guard);
            let keeper = self.keeper.get().and_then(Weak::upgrade);
            let released = keeper.and_then(|keeper| lock(&keeper).take());
            drop(released);
        }
        Some(chunk)
    }

    /// A response of a reader that joined: `head` (this request's own),
    /// then the shared body.
    fn reader(self: Arc<Self>, head: String) -> BodyReader {
        let (first, head_crc) = match self.encoding {
            Encoding::Identity => (head.into_bytes(), None),
            Encoding::Gzip => {
                let mut crc = Crc::new();
                crc.update(head.as_bytes());
                let mut first = GZIP_HEADER.to_vec();
                let mut compress = Compress::new(Compression::fast(), false);
                first.extend(deflate(&mut compress, head.as_bytes()));
                (first, Some(crc))
            }
        };
        BodyReader {
            shared: self,
            first: Some(first),
            next: 0,
            head_crc,
        }
    }

    /// The end of a gzip stream: a final empty block, then the CRC and
    /// the length of head and body.
    fn gzip_trailer(&self, mut head_crc: Crc) -> Vec<u8> {
        head_crc.combine(&lock(&self.progress).crc);
        let mut trailer = vec![0x03, 0x00];
        trailer.extend(head_crc.sum().to_le_bytes());
        trailer.extend(head_crc.amount().to_le_bytes());
        trailer
    }
}

/// A gzip member header: deflate, no name, no time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Deflate `input` and sync-flush: the output ends on a byte boundary with
/// no final block, so more deflate data may follow it.
fn deflate(compress: &mut Compress, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 3 + 64);
    let mut consumed = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        let before = compress.total_in();
        compress
            .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflate into a buffer with room cannot fail");
        consumed += usize::try_from(compress.total_in() - before).unwrap_or(usize::MAX);
        // Flushed when all input is in and the output did not fill up.
        if consumed >= input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// A piece of a response body: the request's own bytes, or a shared chunk.
#[derive(Debug)]
pub enum BodyChunk {
    /// Bytes of this response only.
    Own(Vec<u8>),
    /// A chunk every caller of the round gets.
    Shared(Arc<Vec<u8>>),
}

impl AsRef<[u8]> for BodyChunk {
    fn as_ref(&self) -> &[u8] {
        match self {
            BodyChunk::Own(bytes) => bytes,
            BodyChunk::Shared(bytes) => bytes,
        }
    }
}

/// One response's chunks, in order.
#[derive(Debug)]
pub struct BodyReader {
    shared: Arc<SharedBody>,
    first: Option<Vec<u8>>,
    next: usize,
    head_crc: Option<Crc>,
}

impl Iterator for BodyReader {
    type Item = BodyChunk;

    fn next(&mut self) -> Option<BodyChunk> {
        if let Some(first) = self.first.take() {
            return Some(BodyChunk::Own(first));
        }
        if let Some(chunk) = self.shared.chunk(self.next) {
            self.next += 1;
            return Some(BodyChunk::Shared(chunk));
        }
        let head_crc = self.head_crc.take()?;
        Some(BodyChunk::Own(self.shared.gzip_trailer(head_crc)))
    }
}

impl Drop for BodyReader {
    /// A response that ended or was dropped no longer holds chunks.
    fn drop(&mut self) {
        lock(&self.shared.progress).move_reader(self.next, None);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::avepoint::ApiMetrics;
    use crate::collect::Snapshot;
    use crate::metrics::profiles::tests::{report, result};
    use crate::metrics::{BuildInfo, Format, ReloadMetrics, ScrapeSources, encode_scrape};

    fn snapshot(profiles: usize) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            profiles: (0..profiles)
                .map(|i| Arc::new(result(&format!("p{i}"), Ok(report()))))
                .collect(),
            collect_duration: Duration::ZERO,
            schedule: None,
        })
    }

    fn reader(bodies: &SharedBodies, snapshot: &Arc<Snapshot>) -> BodyReader {
        let exposition = encode_scrape(
            Arc::clone(snapshot),
            ScrapeSources::default(),
            &ApiMetrics::default(),
            &ReloadMetrics::started(),
            &BuildInfo::default(),
            Format::PrometheusText,
        )
        .expect("encodes");
        let (_head, body) = exposition.into_parts();
        bodies.reader(body, Encoding::Identity, String::new())
    }

    /// How many chunks its body still holds that `reader` has passed.
    fn behind(reader: &BodyReader) -> usize {
        reader.next - lock(&reader.shared.progress).first
    }

    /// Reads a response to its end: its bytes, and the most chunks it had
    /// passed that its body still held, once past [`KEEP_BYTES`].
    fn read(mut reader: BodyReader) -> (Vec<u8>, usize) {
        let (mut bytes, mut most) = (Vec::new(), 0);
        while let Some(chunk) = reader.next() {
            bytes.extend_from_slice(chunk.as_ref());
            if bytes.len() > KEEP_BYTES {
                most = most.max(behind(&reader));
            }
        }
        (bytes, most)
    }

    #[test]
    fn a_small_body_is_kept_for_the_next_caller_of_its_round() {
        let snapshot = snapshot(100);
        let bodies = SharedBodies::default();
        let (first, _) = read(reader(&bodies, &snapshot));
        let (second, _) = read(reader(&bodies, &snapshot));
        assert_eq!(bodies.encodings(), 1);
        assert!(first == second);
    }

    #[test]
    fn a_body_past_keep_bytes_lets_go_of_what_every_reader_passed() {
        // 10,000 profiles (no details) encode to ~20 MB, past KEEP_BYTES.
        let snapshot = snapshot(10_000);
        let bodies = SharedBodies::default();
        let (alone, most) = read(reader(&bodies, &snapshot));
        assert!(
            alone.len() > KEEP_BYTES + (1 << 20),
            "{} bytes",
            alone.len()
        );
        assert_eq!(most, 0, "a lone reader holds nothing it passed");

        // A reader that has not read yet keeps every chunk for the others.
        let stalled = reader(&bodies, &snapshot);
        let (fast, _) = read(reader(&bodies, &snapshot));
        assert_eq!(bodies.encodings(), 2, "the second caller joined the first");
        let pinned: usize = lock(&stalled.shared.progress)
            .chunks
            .iter()
            .map(|chunk| chunk.len())
            .sum();
        assert_eq!(
            pinned,
            alone.len(),
            "the stalled reader pins the whole body"
        );
        let (slow, most) = read(stalled);
        assert_eq!(most, 0, "the last reader lets go as it reads");

        // Once its first chunks are gone the body takes no new reader: a
        // later caller of the round starts its own encoding.
        let mut ahead = reader(&bodies, &snapshot);
        let mut read_ahead = 0;
        while read_ahead <= KEEP_BYTES {
            read_ahead += ahead.next().expect("more chunks").as_ref().len();
        }
        assert!(lock(&ahead.shared.progress).first > 0);
        let (late, _) = read(reader(&bodies, &snapshot));
        assert_eq!(bodies.encodings(), 4);
        for bytes in [fast, slow, late] {
            assert!(bytes == alone, "same bytes for every caller");
        }
        drop(ahead);
    }
}
