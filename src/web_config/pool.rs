//! [`BcryptPool`]: turns for bcrypt checks, a bounded number at once, taken
//! in rotation between the (client address, user name) pairs that wait,
//! with bounded queues.
//!
//! A plain FIFO semaphore lets a burst of wrong passwords push a valid first
//! login to the back of the line: 60 queued cost-12 checks are 16 s on one
//! core, longer than any scrape timeout. Here each client address and user
//! name has its own queue and they take turns, so a flood (a brute force, a
//! scraper with an old password) delays another pair by about one check
//! per pair waiting, not by the whole flood. The queues are bounded per
//! pair, per client address and in all: a request that finds its place
//! taken is refused at once instead of waiting for minutes, and a flood
//! from one address, even under the real user's name, leaves the places of
//! every other address free.
//!
//! Only users that exist queue here (unknown names are refused at a fixed
//! cost without a check; see `auth`), so that many made-up names cannot
//! take the places either.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::sync::lock;

/// How many checks run at once and how many may wait.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Checks at once: each takes a blocking thread and a core.
    pub(super) permits: usize,
    /// Checks waiting for one client address and user name.
    pub(super) per_user: usize,
    /// Checks waiting for one client address, under all names.
    pub(super) per_address: usize,
    /// Checks waiting in all.
    pub(super) total: usize,
}

/// Who waits: the client's address and the user name it sent.
type Key = (IpAddr, String);

/// The queue for this address and name, for this address, or all queues,
/// are full: try again later.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Busy;

/// Turns for bcrypt checks; see the module documentation.
pub(super) struct BcryptPool {
    shared: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    state: Mutex<State>,
}

struct State {
    /// Permits not in use. Above zero only while nobody waits: a released
    /// permit goes to the next waiter first.
    free: usize,
    /// The waiters of each key that has any, oldest first.
    queues: HashMap<Key, VecDeque<oneshot::Sender<Permit>>>,
    /// The keys in `queues`, in the order of their next turn.
    turns: VecDeque<Key>,
    /// All waiters, including those that gave up and are not yet removed.
    waiting: usize,
}

/// The right to run one check; the next waiter's turn when dropped. Move it
/// into the blocking task, so that a request that is cancelled while bcrypt
/// runs keeps the permit until bcrypt is done and the bound holds.
pub(super) struct Permit {
    /// `None` once the permit went back to the pool (see `Shared::release`).
    shared: Option<Arc<Shared>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            Shared::release(shared);
        }
    }
}

impl BcryptPool {
    /// A pool with `limits` (`permits` at least one).
    pub(super) fn new(limits: Limits) -> Self {
        BcryptPool {
            shared: Arc::new(Shared {
                limits,
                state: Mutex::new(State {
                    free: limits.permits.max(1),
                    queues: HashMap::new(),
                    turns: VecDeque::new(),
                    waiting: 0,
                }),
            }),
        }
    }

    /// Wait for a turn for a check of `user` from `client`, or [`Busy`] at
    /// once when its queues are full.
    pub(super) async fn acquire(&self, client: IpAddr, user: &str) -> Result<Permit, Busy> {
        let waiter = {
            let mut state = lock(&self.shared.state);
            if state.free > 0 {
                state.free -= 1;
                return Ok(Permit {
                    shared: Some(Arc::clone(&self.shared)),
                });
            }
            state.enqueue((client.to_canonical(), user.to_owned()), self.shared.limits)?
        };
        // The sender is dropped without a permit only if the pool is.
        waiter.await.map_err(|_| Busy)
    }
}

impl State {
    /// A place in `key`'s queue, unless it, its address's or all queues are
    /// full.
    fn enqueue(&mut self, key: Key, limits: Limits) -> Result<oneshot::Receiver<Permit>, Busy> {
        let full = |state: &State| {
            let address: usize = state
                .queues
                .iter()
                .filter(|((client, _), _)| *client == key.0)
                .map(|(_, queue)| queue.len())
                .sum();
            state.waiting >= limits.total
                || address >= limits.per_address
                || state
                    .queues
                    .get(&key)
                    .is_some_and(|queue| queue.len() >= limits.per_user)
        };
        if full(self) {
            // Requests that gave up (the client went away) still hold places;
            // free them before refusing anyone.
            self.remove_abandoned();
            if full(self) {
                return Err(Busy);
            }
        }
        let (sender, receiver) = oneshot::channel();
        let queue = self.queues.entry(key.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(key);
        }
        queue.push_back(sender);
        self.waiting += 1;
        Ok(receiver)
    }

    /// The oldest waiter of the key whose turn it is; that key goes to the
    /// back of the rotation if it has more.
    fn next_waiter(&mut self) -> Option<oneshot::Sender<Permit>> {
        let key = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&key)?;
        let waiter = queue.pop_front();
        self.waiting -= usize::from(waiter.is_some());
        if queue.is_empty() {
            self.queues.remove(&key);
        } else {
            self.turns.push_back(key);
        }
        waiter
    }

    fn remove_abandoned(&mut self) {
        for queue in self.queues.values_mut() {
            queue.retain(|waiter| !waiter.is_closed());
        }
        self.queues.retain(|_, queue| !queue.is_empty());
        let queues = &self.queues;
        self.turns.retain(|key| queues.contains_key(key));
        self.waiting = self.queues.values().map(VecDeque::len).sum();
    }
}

impl Shared {
    /// Hand a released permit to the next waiter, or put it back. The lock is
    /// not held while sending: a permit that a waiter drops unused comes back
    /// here, and must not find the lock taken by this very call.
    fn release(shared: Arc<Shared>) {
        let mut permit = Permit {
            shared: Some(Arc::clone(&shared)),
        };
        loop {
            let waiter = {
                let mut state = lock(&shared.state);
                match state.next_waiter() {
                    Some(waiter) => waiter,
                    None => {
                        state.free += 1;
                        break;
                    }
                }
            };
            match waiter.send(permit) {
                Ok(()) => return,
                // That request gave up waiting: the next one.
                Err(unused) => permit = unused,
            }
        }
        // Counted in `free` now; dropping it must not release it again.
        permit.shared = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const ELSEWHERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn pool(permits: usize, per_user: usize, per_address: usize, total: usize) -> BcryptPool {
        BcryptPool::new(Limits {
            permits,
            per_user,
            per_address,
            total,
        })
    }

    /// The output of `f` if it completes within a short time.
    async fn ready<F: std::future::Future>(f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .ok()
    }

    #[tokio::test]
    async fn names_and_addresses_take_turns() {
        let pool = Arc::new(pool(1, 8, 8, 32));
        let running = pool.acquire(HERE, "mallory").await.unwrap();
        let (order, mut done) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        // Three waiting under one name, then one under another, then the
        // first name from elsewhere.
        let waiters = [
            (HERE, "mallory"),
            (HERE, "mallory"),
            (HERE, "mallory"),
            (HERE, "prometheus"),
            (ELSEWHERE, "mallory"),
        ];
        for (client, user) in waiters {
            let (pool, order) = (Arc::clone(&pool), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = pool.acquire(client, user).await.unwrap();
                order.send((client, user)).unwrap();
            }));
            // Let it take its place before the next one.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(running);
        for task in tasks {
            task.await.unwrap();
        }
        let mut seen = Vec::new();
        while let Ok(waiter) = done.try_recv() {
            seen.push(waiter);
        }
        assert_eq!(
            seen,
            [
                (HERE, "mallory"),
                (HERE, "prometheus"),
                (ELSEWHERE, "mallory"),
                (HERE, "mallory"),
                (HERE, "mallory")
            ]
        );
    }

    #[tokio::test]
    async fn full_queues_refuse_at_once() {
        let pool = pool(1, 2, 8, 3);
        let _running = pool.acquire(HERE, "a").await.unwrap();
        // Each waits (is polled once, which takes its place).
        let mut a1 = Box::pin(pool.acquire(HERE, "a"));
        let mut a2 = Box::pin(pool.acquire(HERE, "a"));
        let mut b1 = Box::pin(pool.acquire(HERE, "b"));
        assert!(ready(&mut a1).await.is_none());
        assert!(ready(&mut a2).await.is_none());
        assert_eq!(
            ready(pool.acquire(HERE, "a")).await.unwrap().err(),
            Some(Busy)
        );
        assert!(ready(&mut b1).await.is_none());
        assert_eq!(
            ready(pool.acquire(HERE, "c")).await.unwrap().err(),
            Some(Busy)
        );
        // A waiter that gives up frees its place.
        drop(b1);
        assert!(ready(pool.acquire(HERE, "c")).await.is_none());
        drop((a1, a2));
    }

    /// A flood from one address under the real user's name fills that
    /// address's places, never the real user's from elsewhere.
    #[tokio::test]
    async fn one_address_cannot_take_the_places_of_another() {
        let pool = pool(1, 4, 4, 32);
        let _running = pool.acquire(ELSEWHERE, "prometheus").await.unwrap();
        let mut flood = Vec::new();
        for _ in 0..4 {
            let mut waiter = Box::pin(pool.acquire(ELSEWHERE, "prometheus"));
            assert!(ready(&mut waiter).await.is_none());
            flood.push(waiter);
        }
        for user in ["prometheus", "alice"] {
            assert_eq!(
                ready(pool.acquire(ELSEWHERE, user)).await.unwrap().err(),
                Some(Busy),
                "{user}"
            );
        }
        let mut real = Box::pin(pool.acquire(HERE, "prometheus"));
        assert!(ready(&mut real).await.is_none(), "waits, not refused");
        drop(flood);
    }

    #[tokio::test]
    async fn an_abandoned_turn_passes_on() {
        let pool = pool(1, 4, 4, 4);
        let running = pool.acquire(HERE, "a").await.unwrap();
        let mut gone = Box::pin(pool.acquire(HERE, "b"));
        assert!(ready(&mut gone).await.is_none());
        let mut next = Box::pin(pool.acquire(HERE, "c"));
        assert!(ready(&mut next).await.is_none());
        drop(gone);
        drop(running);
        let permit = ready(&mut next).await.expect("c gets the turn").unwrap();
        drop(permit);
        // Everything released: a permit is free again.
        assert!(ready(pool.acquire(HERE, "d")).await.unwrap().is_ok());
    }
}
