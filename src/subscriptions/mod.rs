//! The `subscriptions` collector: every customer's service subscriptions
//! (expiry, seats, capacity), from one paged list for all customers
//! (`POST .../customers/services/batch`).
//!
//! Imports `avepoint` (the wire types); the reader that runs it in the
//! background comes with its wiring (issue #23).

mod reduce;

pub use reduce::{
    CAPACITY_KINDS, MAX_SERVICES_PER_CUSTOMER, SEAT_KINDS, Subscription, by_customer,
};
