//! The `protected_users` collector's family: per customer, tenant and
//! module, how many users are protected and how many are not (on
//! `/metrics`, or the customer's `/probe`). Counts only: no user is ever a
//! label.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::backup::Scoped;
use super::gauges::encode_gauges;
use crate::backup::{CollectorState, Families, TenantUsers};
use crate::config::LastStatusState;

impl Families for CollectorState<TenantUsers> {
    fn families_before_up(&self) -> bool {
        true
    }

    fn register(
        self: Arc<Self>,
        registry: &mut Registry,
        customer: Option<&str>,
        states: LastStatusState,
    ) {
        UsersCollector::register(self, registry, customer, states);
    }
}

/// The users series, for every customer or only one.
type UsersCollector = Scoped<CollectorState<TenantUsers>>;

impl Collector for UsersCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = self
            .state
            .customers
            .iter()
            .filter(|(id, _)| self.customer.as_ref().is_none_or(|only| only == *id))
            .flat_map(|(customer, data)| {
                data.items.iter().flat_map(move |tenant| {
                    tenant.counts.iter().map(move |count| {
                        let protected = if count.protected { "true" } else { "false" };
                        let labels = [
                            ("customer_id", customer.as_str()),
                            ("tenant_id", tenant.tenant_id.as_str()),
                            ("module", count.module),
                            ("protected", protected),
                        ];
                        (labels, i64::try_from(count.users).unwrap_or(i64::MAX))
                    })
                })
            });
        encode_gauges(
            &mut encoder,
            "avepoint_backup_users",
            "Users of the tenant whose module (mailbox or onedrive; other for an undocumented module code) Cloud Backup for Microsoft 365 protects (protected=\"true\") or not (\"false\"), from the tenant's users list.",
            None,
            rows,
        )
    }
}
