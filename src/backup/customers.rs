//! Which customers the backup collectors read: the config's and
//! discovery's, merged off the async workers.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::watch;

use crate::discovery::DiscoveryState;

/// Where the customers come from: the config's, and discovery's.
#[derive(Debug, Clone)]
pub struct CustomerSource {
    /// The customers `targets` names.
    pub configured: Vec<String>,
    /// Discovery's state, when discovery runs.
    pub discovered: Option<watch::Receiver<Arc<DiscoveryState>>>,
}

impl CustomerSource {
    /// Wait until discovery publishes; `false` once it never will (no
    /// discovery, or it stopped). Without discovery it never returns.
    pub(super) async fn changed(&mut self) -> bool {
        match &mut self.discovered {
            Some(discovery) => discovery.changed().await.is_ok(),
            None => std::future::pending().await,
        }
    }

    /// Every customer right now: the configured ones first, no duplicates.
    /// A hash set, not `Vec::contains`: with 100,000 customers the
    /// quadratic merge held a runtime worker for 20 s (and `/-/healthy`
    /// with it); the collectors call it off the workers
    /// ([`CustomerSource::current_blocking`]).
    pub fn current(&self) -> Vec<String> {
        let mut customers = self.configured.clone();
        if let Some(discovery) = &self.discovered {
            // Only the `Arc` under the lock: discovery's publisher waits for it.
            let discovered = Arc::clone(&discovery.borrow().customers);
            let mut seen: HashSet<&str> = self.configured.iter().map(String::as_str).collect();
            for customer in discovered.iter() {
                if seen.insert(customer.id.as_str()) {
                    customers.push(customer.id.clone());
                }
            }
        }
        customers
    }

    /// [`CustomerSource::current`] on a blocking thread, so a long list
    /// never holds an async worker.
    pub(super) async fn current_blocking(&self) -> Vec<String> {
        let source = self.clone();
        match tokio::task::spawn_blocking(move || source.current()).await {
            Ok(customers) => customers,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down: nothing to read for.
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::model::Customer;

    fn customer(id: &str) -> Customer {
        serde_json::from_value(serde_json::json!({ "id": id })).expect("a customer")
    }

    #[tokio::test]
    async fn configured_customers_come_first_and_none_twice() {
        let state = DiscoveryState {
            customers: vec![customer("a"), customer("c"), customer("b")].into(),
            ..DiscoveryState::default()
        };
        let (_publisher, discovered) = watch::channel(Arc::new(state));
        let source = CustomerSource {
            configured: vec!["b".into(), "d".into()],
            discovered: Some(discovered),
        };
        assert_eq!(source.current(), ["b", "d", "a", "c"]);
        assert_eq!(source.current_blocking().await, ["b", "d", "a", "c"]);
    }
}
