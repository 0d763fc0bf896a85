//! The `backup_coverage` collector's families: per customer and service
//! module, the objects found and protected and the data stored (on
//! `/metrics`, or the customer's `/probe`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::{Registry, Unit};

use super::backup::{Scoped, wanted};
use super::gauges::{encode_gauges, saturating};
use crate::backup::{CollectorState, Coverage, Families};
use crate::config::LastStatusState;

impl Families for CollectorState<Coverage> {
    fn register(
        self: Arc<Self>,
        registry: &mut Registry,
        customer: Option<&str>,
        states: LastStatusState,
    ) {
        CoverageCollector::register(self, registry, customer, states);
    }
}

/// The coverage series, for every customer or only one.
type CoverageCollector = Scoped<CollectorState<Coverage>>;

impl Collector for CoverageCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let encoder = &mut encoder;
        let rows: Vec<_> = wanted(&self.state, self.customer.as_deref())
            .flat_map(|(customer, data)| data.items.iter().map(move |row| (customer, row)))
            .collect();
        let labels = |customer: &str, row: &Coverage| {
            [
                ("customer_id", customer.to_owned()),
                ("service_type", row.service_type.clone()),
                ("service_module", row.service_module.clone()),
            ]
        };
        encode_gauges(
            encoder,
            "avepoint_backup_scanned_objects",
            "Objects found in the tenant for this service module (totalScannedObjects).",
            None,
            rows.iter()
                .filter_map(|(c, row)| Some((labels(c, row), saturating(row.scanned_objects?)))),
        )?;
        encode_gauges(
            encoder,
            "avepoint_backup_protected_objects",
            "Objects under backup protection for this service module (totalProtectedObjects).",
            None,
            rows.iter()
                .filter_map(|(c, row)| Some((labels(c, row), saturating(row.protected_objects?)))),
        )?;
        encode_gauges(
            encoder,
            "avepoint_backup_stored",
            "Backup data stored for this service module, by storage: avepoint (dataSizeStoredInAvePoint) or byos (dataSizeStoredInBYOS, the customer's own storage); units as powers of 1024.",
            Some(&Unit::Bytes),
            rows.iter().flat_map(|(c, row)| {
                [("avepoint", row.stored_avepoint), ("byos", row.stored_byos)]
                    .into_iter()
                    .filter_map(move |(storage, bytes)| {
                        let [customer, service_type, service_module] = labels(c, row);
                        Some((
                            [
                                customer,
                                service_type,
                                service_module,
                                ("storage", storage.to_owned()),
                            ],
                            bytes?,
                        ))
                    })
            }),
        )
    }
}
