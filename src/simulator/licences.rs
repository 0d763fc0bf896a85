//! The simulated licence-side endpoints: every customer's service
//! subscriptions (`POST .../customers/services/batch`) and each tenant's
//! users with whether their mailbox and OneDrive are protected
//! (`POST .../customers/{c}/tenants/{t}/cloud-backup-m365/users/batch`).
//!
//! Written from AvePoint's field lists (`fixtures/services_page.json`,
//! `fixtures/tenant_users_page.json`), every value a string as documented.
//! The world is set so `demo` shows what the collectors are for: customer 0
//! expires in [`EXPIRING_IN_DAYS`] days and has used 95 % of its capacity,
//! customer [`NOT_APPLICABLE_CUSTOMER`] sends `"N/A"` for everything, and
//! the tenant of customer [`UNPROTECTED_CUSTOMER`] has users whose mailbox
//! or OneDrive is not protected.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::api::{Answer, PageQuery, admit, api_error, background_delay, page};
use super::data::SimCustomer;
use super::state::SimState;
use crate::avepoint::model::api_time;

/// Permission of the services list.
pub const LICENSE_READ: &str = "elements.license.read.all";
/// Permission of the tenant users list (the one coverage uses too).
pub const USERS_READ: &str = "elements.cbprotected.read.all";

/// Days until customer 0's backup subscription expires.
pub const EXPIRING_IN_DAYS: u64 = 5;
/// The customer whose every subscription value is `"N/A"`.
pub const NOT_APPLICABLE_CUSTOMER: usize = 2;
/// The customer whose tenant has unprotected users.
pub const UNPROTECTED_CUSTOMER: usize = 1;
/// The service every simulated customer subscribes to.
pub const BACKUP_SERVICE: &str = "Cloud Backup for Microsoft 365";
/// The second service, seats only (as AvePoint's sample shows Fly).
pub const MIGRATION_SERVICE: &str = "Fly Migration to Google";

fn first_item(fixture: &'static str) -> Value {
    let page: Value = serde_json::from_str(fixture)
        .unwrap_or_else(|error| panic!("a licence fixture is not JSON: {error}"));
    page["data"][0].clone()
}

static CUSTOMER: LazyLock<Value> =
    LazyLock::new(|| first_item(include_str!("fixtures/services_page.json")));
static USER: LazyLock<Value> =
    LazyLock::new(|| first_item(include_str!("fixtures/tenant_users_page.json")));

/// Seats of customer `index`'s backup subscription: purchased, assigned,
/// available.
pub fn seats(index: usize) -> (u64, u64, u64) {
    let purchased = 50 + 10 * index as u64;
    let assigned = purchased - 5 - index as u64 % 5;
    (purchased, assigned, purchased - assigned)
}

/// Capacity of customer `index` in GB: purchased, used of it, protected,
/// consumed. Customer 0 has used 95 %.
pub fn capacity_gb(index: usize) -> (u64, u64, u64, u64) {
    let purchased = 1000 + 100 * index as u64;
    let used = if index == 0 {
        950
    } else {
        300 + 10 * index as u64
    };
    (purchased, used, used - 50, used)
}

/// When customer `index`'s backup subscription expires: midnight UTC of
/// today plus [`EXPIRING_IN_DAYS`] for customer 0, a year and `index`
/// days for the others (midnight, so the value is steady for a day).
pub fn expiry(index: usize, now: OffsetDateTime) -> OffsetDateTime {
    let midnight = now.replace_time(time::Time::MIDNIGHT);
    let days = if index == 0 {
        EXPIRING_IN_DAYS
    } else {
        365 + index as u64
    };
    midnight + Duration::from_secs(86_400 * days)
}

/// The services item of customer `customer` (its index `index`).
pub fn services(customer: &SimCustomer, index: usize, now: OffsetDateTime) -> Value {
    let mut item = CUSTOMER.clone();
    item["customerId"] = json!(customer.id);
    item["organization"] = json!(customer.organization);
    item["customer"] = json!(format!("admin@{}.example", customer.tenant_domain));
    let template = item["products"][0].clone();
    let (purchased, assigned, available) = seats(index);
    let (bought, used, protected, consumed) = capacity_gb(index);
    let expires = api_time::format(expiry(index, now));
    let mut backup = template.clone();
    for (field, value) in [
        ("service", BACKUP_SERVICE.to_owned()),
        ("purchasedUserSeats", purchased.to_string()),
        ("microsoftLicenseAssigned", assigned.to_string()),
        ("microsoftLicenseAvailable", available.to_string()),
        ("purchasedCapacity", format!("{used}/{bought} GB")),
        ("protectedCapacity", format!("{protected} GB")),
        ("consumedStorage", format!("{consumed} GB")),
        ("expirationDate", expires.clone()),
        ("contractEndDate", expires),
    ] {
        set(&mut backup, field, json!(value));
    }
    let mut migration = not_applicable(&template);
    set(&mut migration, "service", json!(MIGRATION_SERVICE));
    set(&mut migration, "purchasedUserSeats", json!("25"));
    item["products"] = json!([backup, migration]);
    if index == NOT_APPLICABLE_CUSTOMER {
        let products: Vec<Value> = [BACKUP_SERVICE, MIGRATION_SERVICE]
            .into_iter()
            .map(|service| {
                let mut product = not_applicable(&template);
                set(&mut product, "service", json!(service));
                product
            })
            .collect();
        item["products"] = json!(products);
    }
    item
}

/// Set a documented field (a typo is caught in debug builds, as a field
/// AvePoint does not send would not be read).
fn set(item: &mut Value, field: &str, value: Value) {
    debug_assert!(
        item.get(field).is_some(),
        "`{field}` is no documented field"
    );
    item[field] = value;
}

/// A product with every value `"N/A"`.
fn not_applicable(template: &Value) -> Value {
    let mut product = template.clone();
    if let Some(fields) = product.as_object_mut() {
        for value in fields.values_mut() {
            *value = json!("N/A");
        }
    }
    product
}

/// Users of customer `index`'s tenant, and how many of them have the
/// mailbox and the OneDrive unprotected: only [`UNPROTECTED_CUSTOMER`]'s
/// has any (2 mailboxes, 1 OneDrive).
pub fn user_counts(index: usize) -> (u64, u64, u64) {
    let users = 6 + index as u64 % 4;
    if index == UNPROTECTED_CUSTOMER {
        (users, 2, 1)
    } else {
        (users, 0, 0)
    }
}

/// The users of customer `customer`'s tenant: user `n` has its mailbox
/// unprotected when `n` is below the unprotected mailbox count, its
/// OneDrive when `n` is below the OneDrive count.
pub fn users(customer: &SimCustomer, index: usize) -> Vec<Value> {
    let (users, mailboxes, onedrives) = user_counts(index);
    (0..users)
        .map(|n| {
            let mut user = USER.clone();
            set(&mut user, "id", json!(format!("sim-user-{index}-{n}")));
            let email = format!("user{n}@{}.example", customer.tenant_domain);
            set(&mut user, "email", json!(email));
            set(&mut user, "displayName", json!(format!("User {n}")));
            set(
                &mut user,
                "moduleStatus",
                json!([
                    {"module": 0, "isProtected": n >= mailboxes},
                    {"module": 2, "isProtected": n >= onedrives},
                ]),
            );
            user
        })
        .collect()
}

/// Both routes, merged into the simulator's router before its in-flight
/// count, like every API route.
pub(super) fn routes() -> axum::Router<Arc<SimState>> {
    axum::Router::new()
        .route(
            "/partner/external/v3/general/customers/services/batch",
            axum::routing::post(services_batch),
        )
        .route(
            "/partner/external/v3/general/customers/{customer_id}/tenants/{tenant_id}/cloud-backup-m365/users/batch",
            axum::routing::post(tenant_users_batch),
        )
}

/// `POST .../customers/services/batch`: every customer, or those of the
/// body's `customerIds`, paged.
async fn services_batch(
    State(state): State<Arc<SimState>>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Answer {
    background_delay(&state).await;
    let request_id = admit(&state, &headers, LICENSE_READ).await?;
    let wanted: Option<Vec<String>> = body.and_then(|Json(body)| {
        body.get("customerIds")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
    });
    let now = OffsetDateTime::now_utc();
    let items = state
        .customers
        .iter()
        .enumerate()
        .filter(|(_, customer)| wanted.as_ref().is_none_or(|ids| ids.contains(&customer.id)))
        .map(|(index, customer)| services(customer, index, now))
        .collect();
    Ok(page(&state, items, &query, request_id))
}

/// `POST .../customers/{c}/tenants/{t}/cloud-backup-m365/users/batch`.
async fn tenant_users_batch(
    State(state): State<Arc<SimState>>,
    Path((customer_id, tenant_id)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Answer {
    background_delay(&state).await;
    let request_id = admit(&state, &headers, USERS_READ).await?;
    let found = state
        .customers
        .iter()
        .enumerate()
        .find(|(_, c)| c.id == customer_id && c.tenant_id == tenant_id);
    let Some((index, customer)) = found else {
        return Err(api_error(
            &state,
            StatusCode::NOT_FOUND,
            request_id,
            "tenant not found",
        ));
    };
    Ok(page(&state, users(customer, index), &query, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> SimCustomer {
        super::super::data::generate(7, 3, 1, OffsetDateTime::UNIX_EPOCH)
            .into_iter()
            .next()
            .unwrap()
    }

    #[test]
    fn customer_zero_expires_soon_and_customer_two_says_nothing() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(10 * 86_400 + 3_600);
        let item = services(&customer(), 0, now);
        let backup = &item["products"][0];
        assert_eq!(backup["service"], json!(BACKUP_SERVICE));
        assert_eq!(backup["expirationDate"], json!("1970-01-16T00:00:00Z"));
        assert_eq!(backup["purchasedCapacity"], json!("950/1000 GB"));
        assert_eq!(backup["purchasedUserSeats"], json!("50"));
        assert_eq!(item["products"][1]["purchasedCapacity"], json!("N/A"));
        let silent = services(&customer(), NOT_APPLICABLE_CUSTOMER, now);
        for product in silent["products"].as_array().unwrap() {
            let values = product.as_object().unwrap();
            assert!(
                values
                    .iter()
                    .all(|(k, v)| k == "service" || *v == json!("N/A"))
            );
        }
    }

    #[test]
    fn one_tenant_has_unprotected_users() {
        let listed = users(&customer(), UNPROTECTED_CUSTOMER);
        assert_eq!(listed.len(), 7);
        let unprotected = |module: usize| {
            listed
                .iter()
                .filter(|u| u["moduleStatus"][module]["isProtected"] == json!(false))
                .count()
        };
        assert_eq!((unprotected(0), unprotected(1)), (2, 1));
        assert_eq!(user_counts(0), (6, 0, 0));
    }
}
