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
//! The price: while any response streams a body, every chunk encoded so
//! far stays in memory, so a response holds up to its whole body (about
//! 5 MB plain at 1,000 profiles, 55 MB at 10,000; gzip a sixth), where it
//! used to hold one chunk. Measured from outside (`scrape_cpu.py`, one
//! plain-text scraper, 1,000 profiles): peak RSS 17 MiB before, 26 MiB
//! with this (BENCHMARKS.md, "CPU per profile, measured from outside").
//!
//! gzip as one stream (a single gzip member, which every decoder reads): a
//! gzip header, the head deflated and sync-flushed, the shared body
//! deflated by its own compressor and sync-flushed chunk by chunk (so it
//! never refers back into a head), a final empty block, and the trailer,
//! whose CRC is the head's combined with the body's.

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
    /// The shared encoding of `body` in `encoding`: the one already cached
    /// for the same round, or a new one (which then replaces the cached
    /// body of that format and encoding).
    pub fn body(&self, body: ExpositionBody, encoding: Encoding) -> Arc<SharedBody> {
        let mut slots = lock(&self.slots);
        let cached = slots
            .iter()
            .filter(|slot| slot.encoding == encoding && slot.key == *body.key())
            .find_map(|slot| lock(&slot.kept).clone().or_else(|| slot.body.upgrade()));
        if let Some(shared) = cached {
            return shared;
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
        shared
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
    chunks: Vec<Arc<Vec<u8>>>,
    /// The length of `chunks`, in bytes.
    bytes: usize,
    /// What is left to encode; `None` once all of it is in `chunks`.
    source: Option<ExpositionBody>,
    /// gzip only: the body's compressor, dropped once the body is whole.
    deflate: Option<Box<Compress>>,
    /// gzip only: the CRC and length of the plain body.
    crc: Crc,
}

impl SharedBody {
    fn new(source: ExpositionBody, encoding: Encoding) -> Self {
        let deflate = (encoding == Encoding::Gzip)
            .then(|| Box::new(Compress::new(Compression::fast(), false)));
        Self {
            encoding,
            progress: Mutex::new(Progress {
                chunks: Vec::new(),
                bytes: 0,
                source: Some(source),
                deflate,
                crc: Crc::new(),
            }),
            keeper: OnceLock::new(),
        }
    }

    /// Chunk `index` of the body, encoding it if no reader has yet.
    fn chunk(&self, index: usize) -> Option<Arc<Vec<u8>>> {
        let mut guard = lock(&self.progress);
        let progress = &mut *guard;
        if let Some(chunk) = progress.chunks.get(index) {
            return Some(Arc::clone(chunk));
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
        progress.chunks.push(Arc::clone(&chunk));
        let was_kept = progress.bytes <= KEEP_BYTES;
        progress.bytes += chunk.len();
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

    /// A response: `head` (this request's own), then the shared body.
    pub fn reader(self: Arc<Self>, head: String) -> BodyReader {
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
