//! The bound on responses in progress: how many requests may hold a
//! response (a scrape's round, its encoder, its gzip state and what hyper
//! buffers of it) at once, in all and per client address.
//!
//! The connection cap counts connections, and a connection costs a few KiB;
//! a response in progress costs more (a gzip encoder, the encoder's chunk,
//! what hyper buffers), and a client that asks and never reads holds it.
//! So the responses that cost something take a place here when they are
//! handed over (after basic auth and the round) and give it back only when
//! the body has been written (or the connection is gone); a response that
//! finds no place is replaced by a 503.
//! The places per address keep one client (a flood of unread scrapes from
//! one host) from taking them all from the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// How many responses may be in progress, and which requests take a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Responses in progress at once, for every client together.
    pub total: usize,
    /// Responses in progress at once for one client address.
    pub per_address: usize,
}

/// Default [`ResponseLimits::total`]: measured at 2,000 profiles, a gzipped
/// `/metrics` nobody reads holds some 50 KiB besides its connection, a full
/// bound a few MiB (BENCHMARKS.md, "Client-side memory soak").
pub const MAX_RESPONSES: usize = 64;

/// Default [`ResponseLimits::per_address`]: a Prometheus pair scraping
/// `/metrics` and a few hundred customers' `/probe` runs a handful at once.
pub const MAX_RESPONSES_PER_ADDRESS: usize = 16;

impl Default for ResponseLimits {
    fn default() -> Self {
        Self {
            total: MAX_RESPONSES,
            per_address: MAX_RESPONSES_PER_ADDRESS,
        }
    }
}

/// Whether a request to `path` takes a place: everything but the small
/// fixed pages under `/-/` (health, readiness, reload), which must answer
/// while the bound is full.
pub(super) fn bounded(path: &str) -> bool {
    !path.starts_with("/-/")
}

/// The places, shared by every listener (they share the memory).
pub(super) struct ResponseBound {
    limits: ResponseLimits,
    state: Mutex<Places>,
}

#[derive(Default)]
struct Places {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// No place for this client now (the bound in all, or its address's, is full).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Full {
    /// Whether the client's own share was full (not everyone's).
    pub own_share: bool,
}

/// A response's place; given back when dropped.
pub(super) struct ResponsePermit {
    bound: Arc<ResponseBound>,
    address: IpAddr,
}

impl ResponseBound {
    /// Places under `limits` (each at least 1).
    pub(super) fn new(limits: ResponseLimits) -> Arc<Self> {
        Arc::new(Self {
            limits: ResponseLimits {
                total: limits.total.max(1),
                per_address: limits.per_address.max(1),
            },
            state: Mutex::new(Places::default()),
        })
    }

    /// A place for a response to `address`, or [`Full`] at once.
    pub(super) fn try_acquire(self: &Arc<Self>, address: IpAddr) -> Result<ResponsePermit, Full> {
        let address = address.to_canonical();
        let mut places = lock(&self.state);
        let own = places.per_address.get(&address).copied().unwrap_or(0);
        if own >= self.limits.per_address {
            return Err(Full { own_share: true });
        }
        if places.total >= self.limits.total {
            return Err(Full { own_share: false });
        }
        places.total += 1;
        *places.per_address.entry(address).or_default() += 1;
        Ok(ResponsePermit {
            bound: Arc::clone(self),
            address,
        })
    }

    /// Whether `address` holds its whole share now: its next response
    /// would be refused, so its request need not be answered first.
    pub(super) fn own_share_full(&self, address: IpAddr) -> bool {
        let places = lock(&self.state);
        places
            .per_address
            .get(&address.to_canonical())
            .is_some_and(|own| *own >= self.limits.per_address)
    }

    /// Responses in progress now.
    #[cfg(test)]
    pub(super) fn in_progress(&self) -> usize {
        lock(&self.state).total
    }
}

impl Drop for ResponsePermit {
    fn drop(&mut self) {
        let mut places = lock(&self.bound.state);
        places.total = places.total.saturating_sub(1);
        if let Some(count) = places.per_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                places.per_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn places_are_bounded_in_all_and_per_address_and_come_back() {
        let bound = ResponseBound::new(ResponseLimits {
            total: 3,
            per_address: 2,
        });
        let a1 = bound.try_acquire(ip("10.0.0.1")).unwrap();
        let _a2 = bound.try_acquire(ip("10.0.0.1")).unwrap();
        // The same address, spelled as IPv4-mapped IPv6, is the same client.
        assert_eq!(
            bound.try_acquire(ip("::ffff:10.0.0.1")).err(),
            Some(Full { own_share: true })
        );
        let _b = bound.try_acquire(ip("10.0.0.2")).unwrap();
        assert_eq!(
            bound.try_acquire(ip("10.0.0.3")).err(),
            Some(Full { own_share: false })
        );
        assert_eq!(bound.in_progress(), 3);
        assert!(bound.own_share_full(ip("10.0.0.1")));
        assert!(!bound.own_share_full(ip("10.0.0.2")));
        drop(a1);
        assert!(!bound.own_share_full(ip("10.0.0.1")));
        assert_eq!(bound.in_progress(), 2);
        assert!(bound.try_acquire(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn only_the_small_fixed_pages_go_without_a_place() {
        assert!(!bounded("/-/healthy"));
        assert!(!bounded("/-/ready"));
        assert!(bounded("/metrics"));
        assert!(bounded("/probe"));
        assert!(bounded("/sd"));
        assert!(bounded("/"));
    }
}
