//! What the per-customer collectors know right now, as one plain value for
//! the encoders and the probe's customer check: each running collector's
//! latest state, whatever its type, behind [`CollectedState`].

use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::registry::Registry;

use crate::config::{CollectorKind, LastStatusState};
use crate::discovery::LimitHits;

/// One collector's latest state as the rest of the exporter asks it:
/// which customers it read, whether each read worked, its health, and
/// (through [`Families`]) what the exposition writes of it.
pub trait CollectedState: Families + std::fmt::Debug + Send + Sync {
    /// Every customer it has data of, in order.
    fn customers(&self) -> Box<dyn Iterator<Item = &str> + '_>;

    /// Whether it has data of `customer_id`.
    fn knows(&self, customer_id: &str) -> bool;

    /// Whether the last read of each customer worked
    /// (`avepoint_backup_collector_up`); none for a collector that reads
    /// every customer in one list, whose up is its own health family.
    fn customers_up(&self) -> Box<dyn Iterator<Item = (&str, bool)> + '_>;

    /// End of its last refresh that read every customer.
    fn last_success(&self) -> Option<SystemTime>;

    /// How often the bounds on what AvePoint lists were hit, since start.
    fn limit_hits(&self) -> LimitHits;
}

/// What the exposition writes of a collector's state: `metrics/`
/// implements it for each state type, beside the families it registers
/// (the one place where this module names the encoders' registry; the
/// encoding stays in `metrics/`).
pub trait Families {
    /// Whether its families come before `avepoint_backup_collector_up` (the
    /// licence-side collectors' do, as they did before the collectors had
    /// one shape: the exposition keeps its order byte for byte).
    fn families_before_up(&self) -> bool {
        false
    }

    /// Its own health families on `/metrics`, beside every collector's
    /// last success and bound hits (e.g. `avepoint_subscriptions_up`).
    fn register_health(self: Arc<Self>, _registry: &mut Registry) {}

    /// Its families, for every customer or only `customer` (a probe);
    /// `states` is `metrics.last_status_state`.
    fn register(
        self: Arc<Self>,
        registry: &mut Registry,
        customer: Option<&str>,
        states: LastStatusState,
    );
}

/// The per-customer collectors' latest states, as plain data for the
/// encoders.
#[derive(Debug, Clone, Default)]
pub struct BackupSnapshot {
    /// The running collectors, in the order of [`CollectorKind::ALL`].
    pub collectors: Vec<(CollectorKind, Arc<dyn CollectedState>)>,
}

impl BackupSnapshot {
    /// Every customer any of the collectors read, sorted, no duplicates.
    pub fn customers(&self) -> Vec<String> {
        let mut customers: Vec<String> = self
            .collectors
            .iter()
            .flat_map(|(_, state)| state.customers().map(str::to_owned))
            .collect();
        customers.sort();
        customers.dedup();
        customers
    }

    /// Whether any of the collectors knows `customer_id`.
    pub fn knows(&self, customer_id: &str) -> bool {
        self.collectors
            .iter()
            .any(|(_, state)| state.knows(customer_id))
    }
}
