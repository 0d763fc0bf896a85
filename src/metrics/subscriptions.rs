//! The `subscriptions` collector's families: per customer and service, the
//! expiry, seats and capacity (on `/metrics`, or the customer's `/probe`),
//! and the collector's own `up`, written with the other collectors'
//! health (`/metrics` only).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::{Registry, Unit};

use super::backup::Scoped;
use super::gauges::{NO_LABELS, encode_gauges};
use crate::backup::Families;
use crate::backup::subscriptions::{CAPACITY_KINDS, SEAT_KINDS, Subscription, SubscriptionsState};
use crate::config::LastStatusState;

impl Families for SubscriptionsState {
    fn families_before_up(&self) -> bool {
        true
    }

    fn register_health(self: Arc<Self>, registry: &mut Registry) {
        registry.register_collector(Box::new(SubscriptionsUp(self)));
    }

    fn register(
        self: Arc<Self>,
        registry: &mut Registry,
        customer: Option<&str>,
        states: LastStatusState,
    ) {
        SubscriptionsCollector::register(self, registry, customer, states);
    }
}

/// `avepoint_subscriptions_up` (`/metrics` only, with the collectors'
/// health): one list for every customer, so one up.
#[derive(Debug)]
struct SubscriptionsUp(Arc<SubscriptionsState>);

impl Collector for SubscriptionsUp {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            &mut encoder,
            "avepoint_subscriptions_up",
            "1 when the subscriptions collector's last read of the service subscriptions worked, 0 when it failed (every avepoint_subscription_* series is then absent).",
            None,
            self.0.up.map(|up| (NO_LABELS, i64::from(up))),
        )
    }
}

/// The subscription series, for every customer or only one.
type SubscriptionsCollector = Scoped<SubscriptionsState>;

/// A timestamp family of a subscription: name, help, value.
type Timestamp = (&'static str, &'static str, fn(&Subscription) -> Option<f64>);

const TIMESTAMPS: [Timestamp; 2] = [
    (
        "avepoint_subscription_expiry_timestamp",
        "When the customer's subscription of this service expires (expirationDate), as a Unix timestamp; the earliest when a service is listed twice.",
        |s| s.expiry,
    ),
    (
        "avepoint_subscription_contract_end_timestamp",
        "When the contract of the customer's subscription of this service ends (contractEndDate), as a Unix timestamp.",
        |s| s.contract_end,
    ),
];

impl SubscriptionsCollector {
    fn rows(&self) -> impl Iterator<Item = (&str, &Subscription)> + '_ {
        self.state
            .customers
            .iter()
            .filter(|(id, _)| self.customer.as_ref().is_none_or(|only| only == *id))
            .flat_map(|(id, services)| services.iter().map(move |s| (id.as_str(), s)))
    }
}

impl Collector for SubscriptionsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in TIMESTAMPS {
            encode_gauges(
                &mut encoder,
                name,
                help,
                Some(&Unit::Seconds),
                self.rows().filter_map(|(customer, s)| {
                    Some((
                        [("customer_id", customer), ("service_name", &s.service)],
                        value(s)?,
                    ))
                }),
            )?;
        }
        encode_gauges(
            &mut encoder,
            "avepoint_subscription_seats",
            "User seats of the customer's subscription of this service: kind purchased (purchasedUserSeats), assigned (microsoftLicenseAssigned), available (microsoftLicenseAvailable).",
            None,
            self.rows().flat_map(|(customer, s)| {
                SEAT_KINDS
                    .iter()
                    .zip(s.seats)
                    .filter_map(move |(kind, seats)| {
                        let seats = i64::try_from(seats?).unwrap_or(i64::MAX);
                        Some((labels(customer, s, kind), seats))
                    })
            }),
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_subscription_capacity",
            "Capacity of the customer's subscription of this service: kind purchased and used (purchasedCapacity, \"used/purchased\"), protected (protectedCapacity), consumed (consumedStorage).",
            Some(&Unit::Bytes),
            self.rows().flat_map(|(customer, s)| {
                CAPACITY_KINDS
                    .iter()
                    .zip(s.capacity)
                    .filter_map(move |(kind, bytes)| Some((labels(customer, s, kind), bytes?)))
            }),
        )
    }
}

fn labels<'a>(
    customer: &'a str,
    s: &'a Subscription,
    kind: &'a str,
) -> [(&'static str, &'a str); 3] {
    [
        ("customer_id", customer),
        ("service_name", &s.service),
        ("kind", kind),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn encode(collector: SubscriptionsCollector) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(collector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    fn state() -> Arc<SubscriptionsState> {
        let row = Subscription {
            service: "cloud_backup_for_microsoft_365".into(),
            expiry: Some(1_798_675_200.0),
            contract_end: None,
            seats: [Some(50), Some(45), None],
            capacity: [Some(1024.0), Some(512.0), None, None],
        };
        let mut customers = BTreeMap::new();
        customers.insert("c1".to_owned(), vec![row.clone()]);
        customers.insert("c2".to_owned(), vec![row]);
        Arc::new(SubscriptionsState {
            up: Some(true),
            customers: Arc::new(customers),
            ..SubscriptionsState::default()
        })
    }

    #[test]
    fn every_value_read_is_a_series_and_nothing_else() {
        let text = encode(SubscriptionsCollector {
            state: state(),
            customer: Some("c1".into()),
            states: LastStatusState::default(),
        });
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                r#"avepoint_subscription_expiry_timestamp_seconds{customer_id="c1",service_name="cloud_backup_for_microsoft_365"} 1798675200.0"#,
                r#"avepoint_subscription_seats{customer_id="c1",service_name="cloud_backup_for_microsoft_365",kind="purchased"} 50"#,
                r#"avepoint_subscription_seats{customer_id="c1",service_name="cloud_backup_for_microsoft_365",kind="assigned"} 45"#,
                r#"avepoint_subscription_capacity_bytes{customer_id="c1",service_name="cloud_backup_for_microsoft_365",kind="purchased"} 1024.0"#,
                r#"avepoint_subscription_capacity_bytes{customer_id="c1",service_name="cloud_backup_for_microsoft_365",kind="used"} 512.0"#,
            ],
            "{text}"
        );
        let all = encode(SubscriptionsCollector {
            state: state(),
            customer: None,
            states: LastStatusState::default(),
        });
        assert_eq!(all.matches("avepoint_subscription_seats{").count(), 4);
        let down = encode(SubscriptionsCollector {
            state: Arc::new(SubscriptionsState {
                up: Some(false),
                ..SubscriptionsState::default()
            }),
            customer: None,
            states: LastStatusState::default(),
        });
        assert!(down.lines().all(|l| l.starts_with('#')), "{down}");
    }
}
