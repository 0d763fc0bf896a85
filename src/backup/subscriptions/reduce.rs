//! From the services list to what the exporter keeps: per customer, one
//! row per service, each value present only when AvePoint sent one that
//! could be read.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::avepoint::subscriptions::{CustomerServices, ServiceSubscription};

/// Services kept per customer; past it the rest are dropped (and counted),
/// so a runaway list cannot add series without bound.
pub const MAX_SERVICES_PER_CUSTOMER: usize = 64;

/// One service of one customer, ready to encode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscription {
    /// The `service_name` label.
    pub service: String,
    /// When it expires (Unix seconds).
    pub expiry: Option<f64>,
    /// When its contract ends (Unix seconds).
    pub contract_end: Option<f64>,
    /// Seats purchased, assigned and available.
    pub seats: [Option<u64>; 3],
    /// Capacity purchased, used (of purchased), protected and consumed, in
    /// bytes.
    pub capacity: [Option<f64>; 4],
}

/// The `kind` label of each of [`Subscription::seats`].
pub const SEAT_KINDS: [&str; 3] = ["purchased", "assigned", "available"];
/// The `kind` label of each of [`Subscription::capacity`].
pub const CAPACITY_KINDS: [&str; 4] = ["purchased", "used", "protected", "consumed"];

impl Subscription {
    /// Whether there is anything to export.
    fn says_something(&self) -> bool {
        self.expiry.is_some()
            || self.contract_end.is_some()
            || self.seats.iter().any(Option::is_some)
            || self.capacity.iter().any(Option::is_some)
    }

    /// Two subscriptions of one service (a pooled one and the customer's
    /// own, say): one row, so no two series share their labels. The earlier
    /// expiry is the one that needs attention; seats and capacity add up.
    fn merge(&mut self, other: Subscription) {
        self.expiry = earliest(self.expiry, other.expiry);
        self.contract_end = earliest(self.contract_end, other.contract_end);
        for (mine, theirs) in self.seats.iter_mut().zip(other.seats) {
            *mine = add(*mine, theirs, u64::saturating_add);
        }
        for (mine, theirs) in self.capacity.iter_mut().zip(other.capacity) {
            *mine = add(*mine, theirs, |a, b| a + b);
        }
    }
}

fn earliest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    add(a, b, f64::min)
}

fn add<T>(a: Option<T>, b: Option<T>, both: impl Fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(both(a, b)),
        (a, b) => a.or(b),
    }
}

fn unix(at: OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

fn subscription(product: &ServiceSubscription) -> Option<Subscription> {
    let service = product.service_label()?;
    let capacity = product.purchased_capacity.value();
    let row = Subscription {
        service,
        expiry: product.expiration_date.value().map(unix),
        contract_end: product.contract_end_date.value().map(unix),
        seats: [
            product.purchased_user_seats.value(),
            product.microsoft_license_assigned.value(),
            product.microsoft_license_available.value(),
        ],
        capacity: [
            capacity.map(|c| c.purchased),
            capacity.and_then(|c| c.used),
            product.protected_capacity.value().map(|b| b.0),
            product.consumed_storage.value().map(|b| b.0),
        ],
    };
    row.says_something().then_some(row)
}

/// Per customer id, its services sorted by label; customers without an id
/// or without a single readable value are left out. The flag says whether
/// a customer had more than [`MAX_SERVICES_PER_CUSTOMER`] services.
pub fn by_customer(items: &[CustomerServices]) -> (BTreeMap<String, Vec<Subscription>>, bool) {
    let mut customers: BTreeMap<String, BTreeMap<String, Subscription>> = BTreeMap::new();
    let mut capped = false;
    for item in items {
        let Some(customer) = item.customer_id.as_ref().value() else {
            continue;
        };
        let services = customers.entry(customer.clone()).or_default();
        for row in item.products.iter().filter_map(subscription) {
            if let Some(existing) = services.get_mut(&row.service) {
                existing.merge(row);
            } else if services.len() < MAX_SERVICES_PER_CUSTOMER {
                services.insert(row.service.clone(), row);
            } else {
                capped = true;
            }
        }
    }
    let customers = customers
        .into_iter()
        .filter(|(_, services)| !services.is_empty())
        .map(|(customer, services)| (customer, services.into_values().collect()))
        .collect();
    (customers, capped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::model::Page;

    const GB: f64 = 1024.0 * 1024.0 * 1024.0;

    fn decode(json: &str) -> Vec<CustomerServices> {
        serde_json::from_str::<Page<CustomerServices>>(json)
            .unwrap()
            .data
    }

    fn documented() -> Vec<CustomerServices> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/testdata/avepoint-docs/customer-services.json"
        );
        decode(&std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn the_documented_sample_gives_exact_rows_and_nothing_for_all_na() {
        let (customers, capped) = by_customer(&documented());
        assert!(!capped);
        // The all-"N/A" customer exports nothing at all.
        assert_eq!(customers.len(), 1, "{customers:?}");
        let rows = &customers["4d2e****-90ab-****-b7c1-6a0f****e512"];
        assert_eq!(
            rows,
            &vec![
                Subscription {
                    service: "cloud_backup_for_iaas_paas_unit".into(),
                    expiry: Some(1_798_675_200.0),
                    contract_end: None,
                    seats: [None, Some(0), Some(0)],
                    capacity: [Some(2.0 * GB), Some(0.0), Some(0.0), None],
                },
                Subscription {
                    service: "fly_migration_to_google".into(),
                    expiry: Some(1_798_675_200.0),
                    contract_end: None,
                    seats: [Some(5), Some(0), Some(0)],
                    capacity: [None; 4],
                },
            ]
        );
    }

    #[test]
    fn one_service_twice_is_one_row_with_the_earlier_expiry() {
        let items = decode(
            r#"{"data": [{"customerId": "c1", "products": [
                {"service": "Cloud Backup for Microsoft 365", "purchasedUserSeats": "10",
                 "expirationDate": "2027-03-01T00:00:00Z", "consumedStorage": "1 GB"},
                {"service": "cloud backup for microsoft 365", "purchasedUserSeats": "5",
                 "expirationDate": "2027-01-01T00:00:00Z", "consumedStorage": "N/A"},
                {"service": "N/A", "purchasedUserSeats": "7"}
            ]}, {"customerId": null, "products": [{"service": "X", "purchasedUserSeats": "1"}]}]}"#,
        );
        let (customers, _) = by_customer(&items);
        assert_eq!(customers.len(), 1);
        let [row] = &customers["c1"][..] else {
            panic!("{customers:?}")
        };
        assert_eq!(row.service, "cloud_backup_for_microsoft_365");
        assert_eq!(row.seats[0], Some(15));
        assert_eq!(row.expiry, Some(1_798_761_600.0)); // 2027-01-01
        assert_eq!(row.capacity[3], Some(GB));
    }

    #[test]
    fn services_past_the_bound_are_dropped_and_said() {
        let products: Vec<String> = (0..MAX_SERVICES_PER_CUSTOMER + 3)
            .map(|n| format!(r#"{{"service": "Service {n}", "purchasedUserSeats": "1"}}"#))
            .collect();
        let json = format!(
            r#"{{"data": [{{"customerId": "c1", "products": [{}]}}]}}"#,
            products.join(",")
        );
        let (customers, capped) = by_customer(&decode(&json));
        assert!(capped);
        assert_eq!(customers["c1"].len(), MAX_SERVICES_PER_CUSTOMER);
    }
}
