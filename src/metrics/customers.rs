//! Discovery's health and the customer-level metrics from discovery data.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::gauges::{NO_LABELS, encode_counter, encode_gauges, encode_last_success};
use crate::avepoint::model::Customer;
use crate::discovery::{DiscoveryState, LimitHits};

/// Discovery's health and the customers it found.
#[derive(Debug)]
pub(super) struct DiscoveryCollector(pub(super) Arc<DiscoveryState>);

impl Collector for DiscoveryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        encode_last_success(
            &mut encoder,
            "avepoint_discovery_last_success_timestamp",
            "End of the last discovery refresh that read every list without error, as a Unix timestamp.",
            state.last_success,
        )?;
        encode_counter(
            &mut encoder,
            "avepoint_discovery_errors",
            "Discovery refreshes that failed in whole or in part (the last known targets were kept).",
            state.errors_total,
        )?;
        encode_limit_hits(
            &mut encoder,
            "avepoint_discovery_limit_hits",
            "How often a discovery refresh found more than it keeps, by bound: page_size (a page held more items than asked for; the rest was ignored), max_items_per_list (a list was cut at discovery.max_items_per_list), max_customers (the customers were cut at discovery.max_customers).",
            &[(&[], state.limit_hits)],
            &["page_size", "max_items_per_list", "max_customers"],
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_discovery_targets",
            "Scan profiles found by discovery after the include/exclude rules.",
            None,
            [(NO_LABELS, state.discovered.len() as i64)],
        )?;
        CustomerCollector(Arc::clone(&state.customers)).encode(encoder)
    }
}

/// A counter family of [`LimitHits`]: for each group, one series per
/// bound in `limits` (its `limit` label), after the group's own labels.
pub(super) fn encode_limit_hits(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    groups: &[(&[(&str, &str)], LimitHits)],
    limits: &[&str],
) -> Result<(), std::fmt::Error> {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::ConstCounter;
    if groups.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, hits) in groups {
        for (limit, count) in hits.by_limit() {
            if limits.contains(&limit) {
                let mut set: Vec<(&str, &str)> = labels.to_vec();
                set.push(("limit", limit));
                ConstCounter::new(count).encode(family.encode_family(&set)?)?;
            }
        }
    }
    Ok(())
}

/// Customer-level metrics from discovery data. `ownerEmail` is personal
/// data and is never decoded, let alone exported.
#[derive(Debug)]
pub(super) struct CustomerCollector(pub(super) Arc<[Customer]>);

/// Help text of `avepoint_customer_job_status`: the documented codes.
const JOB_STATUS_HELP: &str = "Raw jobStatus code of the customer: 0=N/A, 1=Working, 2=Failed, 3=Waiting for configuration, 4=Multiple issues found, 5=Finished with exception, 6=No backup updates.";

fn management_mode_label(code: Option<i64>) -> &'static str {
    match code {
        Some(0) => "customer_managed",
        Some(1) => "partner_managed",
        Some(2) => "to_be_configured",
        _ => "unknown",
    }
}

impl Collector for CustomerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            &mut encoder,
            "avepoint_customer_info",
            "Customer metadata from discovery; constant 1. management_mode is customer_managed, partner_managed, to_be_configured or unknown.",
            None,
            self.0.iter().map(|customer| {
                (
                    [
                        ("customer_id", customer.id.as_str()),
                        ("organization", customer.organization.as_str()),
                        (
                            "management_mode",
                            management_mode_label(customer.management_mode),
                        ),
                        (
                            "country_or_region",
                            customer.country_or_region.as_deref().unwrap_or(""),
                        ),
                    ],
                    1_i64,
                )
            }),
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_customer_job_status",
            JOB_STATUS_HELP,
            None,
            self.0.iter().filter_map(|customer| {
                customer
                    .job_status
                    .map(|code| ([("customer_id", customer.id.as_str())], code))
            }),
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_customer_tenants",
            "Microsoft 365 tenants of the customer.",
            None,
            self.0.iter().map(|customer| {
                (
                    [("customer_id", customer.id.as_str())],
                    customer.tenants.len() as i64,
                )
            }),
        )
    }
}
