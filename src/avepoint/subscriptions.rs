//! Wire types of the two licence-side endpoints: each customer's service
//! subscriptions (`POST .../customers/services/batch`,
//! `elements.license.read.all`) and each tenant's users with whether their
//! mailbox and OneDrive are protected
//! (`POST .../customers/{c}/tenants/{t}/cloud-backup-m365/users/batch`,
//! `elements.cbprotected.read.all`).
//!
//! Every value of a subscription is a string, most often `"N/A"`: each is
//! read on its own ([`Field`]), so a customer whose data is all `"N/A"`
//! decodes to nothing to export, not to an error. Personal data is never
//! decoded: neither the customer's e-mail address (`customer`) nor a
//! user's `id`, `email` or `displayName`; a user is only the flags of its
//! modules, so no address can reach a label, a log line or `Debug` output.

use serde::Deserialize;
use time::OffsetDateTime;

use super::backup::MAX_NAME_LABEL;
use super::endpoint::{EndpointFacts, Method, Paged, paged};
use super::job_codes::snake_case;
use super::lenient::{Bytes, Field, Number, UnreadableFields, WireValue, parse_size, unreadable};
use crate::config::{BACKUP_COVERAGE_SCOPE, LICENSE_SCOPE};

/// One customer of the services list, with its subscriptions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerServices {
    /// The customer id (masked in AvePoint's sample, as ids may be).
    #[serde(default)]
    pub customer_id: Field<String>,
    /// One entry per service the customer subscribes to; `null` is none.
    #[serde(default, deserialize_with = "super::lenient::list")]
    pub products: Vec<ServiceSubscription>,
}

/// One service subscription of a customer. The fields the exporter has no
/// series for (`change`, `source`, `paymentType`, `package`, ...) are not
/// decoded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSubscription {
    /// The service's name, such as `Cloud Backup for Microsoft 365`.
    #[serde(default)]
    pub service: Field<String>,
    /// `purchasedUserSeats`.
    #[serde(default)]
    pub purchased_user_seats: Field<u64>,
    /// `microsoftLicenseAssigned`: seats in use.
    #[serde(default)]
    pub microsoft_license_assigned: Field<u64>,
    /// `microsoftLicenseAvailable`: seats left.
    #[serde(default)]
    pub microsoft_license_available: Field<u64>,
    /// `purchasedCapacity`, sent as `"0/1 GB"` (used of purchased) or `"1 GB"`.
    #[serde(default)]
    pub purchased_capacity: Field<Capacity>,
    /// `protectedCapacity`, such as `"0 GB"`.
    #[serde(default)]
    pub protected_capacity: Field<Bytes>,
    /// `consumedStorage`.
    #[serde(default)]
    pub consumed_storage: Field<Bytes>,
    /// When the subscription expires.
    #[serde(default)]
    pub expiration_date: Field<OffsetDateTime>,
    /// When the contract behind it ends.
    #[serde(default)]
    pub contract_end_date: Field<OffsetDateTime>,
}

impl ServiceSubscription {
    /// The `service_name` label: the service's name in snake case
    /// (`Cloud Backup for Microsoft 365` is `cloud_backup_for_microsoft_365`),
    /// at most [`MAX_NAME_LABEL`] characters; `None` without a name.
    pub fn service_label(&self) -> Option<String> {
        let name = self.service.as_ref().value()?;
        let mut label = snake_case(name);
        label.truncate(MAX_NAME_LABEL);
        (!label.is_empty()).then_some(label)
    }
}

impl UnreadableFields for ServiceSubscription {
    fn unreadable_fields(&self) -> Vec<&'static str> {
        unreadable([
            ("service", self.service.is_unreadable()),
            (
                "purchasedUserSeats",
                self.purchased_user_seats.is_unreadable(),
            ),
            (
                "microsoftLicenseAssigned",
                self.microsoft_license_assigned.is_unreadable(),
            ),
            (
                "microsoftLicenseAvailable",
                self.microsoft_license_available.is_unreadable(),
            ),
            ("purchasedCapacity", self.purchased_capacity.is_unreadable()),
            ("protectedCapacity", self.protected_capacity.is_unreadable()),
            ("consumedStorage", self.consumed_storage.is_unreadable()),
            ("expirationDate", self.expiration_date.is_unreadable()),
            ("contractEndDate", self.contract_end_date.is_unreadable()),
        ])
    }
}

impl UnreadableFields for CustomerServices {
    fn unreadable_fields(&self) -> Vec<&'static str> {
        let mut fields = unreadable([("customerId", self.customer_id.is_unreadable())]);
        for product in &self.products {
            fields.extend(product.unreadable_fields());
        }
        fields
    }
}

/// A purchased capacity: `"0/1 GB"` says 0 of 1 GB is used, `"1 GB"` only
/// what was bought. The unit follows the last number and applies to both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// What was bought, in bytes.
    pub purchased: f64,
    /// What is used of it, in bytes, when the value says.
    pub used: Option<f64>,
}

impl WireValue for Capacity {
    fn from_text(text: &str) -> Field<Self> {
        let Some((used, purchased)) = text.split_once('/') else {
            return match parse_size(text) {
                Some(purchased) => Field::Value(Capacity {
                    purchased,
                    used: None,
                }),
                None => Field::Unreadable,
            };
        };
        let purchased = purchased.trim();
        let unit_at = purchased
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(purchased.len());
        let unit = &purchased[unit_at..];
        match (
            parse_size(&format!("{}{unit}", used.trim())),
            parse_size(purchased),
        ) {
            (Some(used), Some(purchased)) => Field::Value(Capacity {
                purchased,
                used: Some(used),
            }),
            _ => Field::Unreadable,
        }
    }
    fn from_number(number: Number) -> Field<Self> {
        Bytes::from_number(number)
            .value()
            .map_or(Field::Unreadable, |Bytes(purchased)| {
                Field::Value(Capacity {
                    purchased,
                    used: None,
                })
            })
    }
}

/// One user of a tenant: only whether each of its modules is protected.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantUser {
    /// A fingerprint of the user's `id`, so a user repeated by a page that
    /// lies about paging is counted once; the id itself is not kept.
    #[serde(
        default,
        rename = "id",
        deserialize_with = "super::backup::fingerprint"
    )]
    pub id_fingerprint: u64,
    /// One entry per module; `null` is none.
    #[serde(default, deserialize_with = "super::lenient::list")]
    pub module_status: Vec<ModuleProtection>,
}

/// Whether one module of a user is protected. AvePoint's field table
/// spells the fields `Module` and `IsProtected`, its sample `module` and
/// `isProtected`: both are read.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ModuleProtection {
    /// `0` mailbox, `2` OneDrive; see [`user_module_label`].
    #[serde(default, rename = "module", alias = "Module")]
    pub module: Field<i64>,
    /// `true` when Cloud Backup for Microsoft 365 protects it.
    #[serde(default, rename = "isProtected", alias = "IsProtected")]
    pub is_protected: Field<bool>,
}

impl UnreadableFields for TenantUser {
    fn unreadable_fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        for status in &self.module_status {
            fields.extend(unreadable([
                ("moduleStatus.module", status.module.is_unreadable()),
                (
                    "moduleStatus.isProtected",
                    status.is_protected.is_unreadable(),
                ),
            ]));
        }
        fields
    }
}

/// The `module` label of a documented user module code; `None` for any
/// other code (counted under `other` by the reader, never a label of its
/// own, so an odd code cannot add series).
pub fn user_module_label(code: i64) -> Option<&'static str> {
    match code {
        0 => Some("mailbox"),
        2 => Some("onedrive"),
        _ => None,
    }
}

/// `POST .../customers/services/batch`: every customer's subscriptions.
pub const SERVICES: Paged<CustomerServices, 0> = paged(&EndpointFacts {
    label: "services_batch",
    method: Method::Post,
    path_template: Some("/partner/external/v3/general/customers/services/batch"),
    permission: Some(LICENSE_SCOPE),
    description: "a page of service subscriptions",
});

/// `POST .../customers/{c}/tenants/{t}/cloud-backup-m365/users/batch`: a
/// tenant's users and whether each is protected.
pub const TENANT_USERS: Paged<TenantUser, 2> = paged(&EndpointFacts {
    label: "tenant_users_batch",
    method: Method::Post,
    path_template: Some(
        "/partner/external/v3/general/customers/{customer}/tenants/{tenant}/cloud-backup-m365/users/batch",
    ),
    permission: Some(BACKUP_COVERAGE_SCOPE),
    description: "a page of a tenant's users",
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::model::Page;

    const GB: f64 = 1024.0 * 1024.0 * 1024.0;

    fn sample(name: &str) -> String {
        let path = format!(
            "{}/tests/testdata/avepoint-docs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    #[test]
    fn the_documented_services_sample_decodes_with_its_na_values_unknown() {
        let page: Page<CustomerServices> =
            serde_json::from_str(&sample("customer-services.json")).unwrap();
        assert_eq!(page.data.len(), 2);
        let customer = &page.data[0];
        assert_eq!(
            customer.customer_id,
            Field::Value("4d2e****-90ab-****-b7c1-6a0f****e512".to_owned())
        );
        let [unit, migration] = &customer.products[..] else {
            panic!("{:?}", customer.products);
        };
        assert_eq!(
            unit.service,
            Field::Value("Cloud Backup for IaaS + PaaS - Unit".to_owned())
        );
        assert_eq!(unit.purchased_user_seats, Field::Missing);
        assert_eq!(unit.microsoft_license_assigned, Field::Value(0));
        assert_eq!(
            unit.purchased_capacity,
            Field::Value(Capacity {
                purchased: 2.0 * GB,
                used: Some(0.0)
            })
        );
        assert_eq!(unit.protected_capacity, Field::Value(Bytes(0.0)));
        assert_eq!(unit.consumed_storage, Field::Missing);
        assert_eq!(
            unit.expiration_date
                .value()
                .map(OffsetDateTime::unix_timestamp),
            Some(1_798_675_200) // 2026-12-31T00:00:00Z
        );
        assert_eq!(unit.contract_end_date, Field::Missing);
        assert_eq!(migration.purchased_user_seats, Field::Value(5));
        assert_eq!(migration.purchased_capacity, Field::Missing);
        assert!(customer.unreadable_fields().is_empty());
        // The second customer sends "N/A" for everything but its id.
        let all_na = &page.data[1];
        assert!(all_na.products.iter().all(|p| *p
            == ServiceSubscription {
                service: p.service.clone(),
                ..all_missing()
            }));
    }

    fn all_missing() -> ServiceSubscription {
        ServiceSubscription {
            service: Field::Missing,
            purchased_user_seats: Field::Missing,
            microsoft_license_assigned: Field::Missing,
            microsoft_license_available: Field::Missing,
            purchased_capacity: Field::Missing,
            protected_capacity: Field::Missing,
            consumed_storage: Field::Missing,
            expiration_date: Field::Missing,
            contract_end_date: Field::Missing,
        }
    }

    #[test]
    fn the_documented_users_sample_decodes_both_spellings_and_keeps_no_address() {
        let text = sample("tenant-users.json");
        let page: Page<TenantUser> = serde_json::from_str(&text).unwrap();
        let flags: Vec<Vec<(Option<i64>, Option<bool>)>> = page
            .data
            .iter()
            .map(|user| {
                user.module_status
                    .iter()
                    .map(|m| (m.module.value(), m.is_protected.value()))
                    .collect()
            })
            .collect();
        assert_eq!(
            flags,
            vec![
                vec![(Some(0), Some(false)), (Some(2), Some(true))],
                vec![(Some(0), Some(true)), (Some(2), Some(true))],
            ]
        );
        let debug = format!("{page:?}");
        for personal in ["@", "Avery", "Quinn", "5e0c"] {
            assert!(text.contains(personal), "{personal}");
            assert!(!debug.contains(personal), "{personal} in {debug}");
        }
    }

    #[test]
    fn capacities_read_used_of_purchased_and_refuse_odd_forms() {
        let read = |text: &str| Capacity::from_text(text);
        assert_eq!(
            read("512/1024 MB"),
            Field::Value(Capacity {
                purchased: GB,
                used: Some(GB / 2.0)
            })
        );
        assert_eq!(
            read("3 TB"),
            Field::Value(Capacity {
                purchased: 3.0 * 1024.0 * GB,
                used: None
            })
        );
        for odd in ["1/", "/1 GB", "a/b", "1/2/3 GB", "-1/2 GB"] {
            assert_eq!(read(odd), Field::Unreadable, "{odd}");
        }
        let flag = |json: &str| serde_json::from_str::<Field<bool>>(json).unwrap();
        assert_eq!(flag("true"), Field::Value(true));
        assert_eq!(flag("\"False\""), Field::Value(false));
        assert_eq!(flag("1"), Field::Unreadable);
        assert_eq!(flag("null"), Field::Missing);
    }
}
