//! Deterministic fake tenants: customers, their scan profiles and the daily
//! reports, all derived from a seed so every run (and every test) sees the
//! same world, while reports still change as simulated days roll over.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::avepoint::model::{Customer, ScanProfileReport, ScanProfileSummary, Tenant};

/// SplitMix64: a tiny, well-known mixer; plenty for fake data, and it keeps
/// the simulator free of a random-number crate.
pub fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

/// A deterministic value in `0..bound` from a seed and a few discriminators.
fn pick(seed: u64, parts: &[u64], bound: u64) -> u64 {
    let hash = parts.iter().fold(mix(seed), |acc, part| mix(acc ^ part));
    hash % bound.max(1)
}

fn uuid(seed: u64, parts: &[u64]) -> Uuid {
    let high = parts
        .iter()
        .fold(mix(seed ^ 0xA5A5), |acc, part| mix(acc ^ part));
    let low = mix(high ^ 0x5A5A);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

const ORGANIZATIONS: [&str; 10] = [
    "Contoso Ltd",
    "Fabrikam, Inc.",
    "Northwind Traders",
    "Tailspin Toys",
    "Wide World Importers",
    "Adventure Works",
    "Woodgrove Bank",
    "Alpine Ski House",
    "Litware",
    "Proseware",
];

/// Profile names include what real names hold and naive exposition code
/// gets wrong: quotes, ampersands and non-ASCII text. (Backslashes and
/// newlines are covered by the tests' pinned reports instead: in the demo
/// they would only break Grafana's template variables, as they would for
/// any exporter.)
const PROFILE_NAMES: [&str; 6] = [
    "Default Microsoft 365 Scan Profile",
    "Exchange \"VIP\" mailboxes",
    "SharePoint & Teams sites",
    "OneDrive – Ünïcødé 档案 🚀",
    "Finance (EU) archive",
    "Advanced compliance scan",
];

/// One simulated scan profile (its static part).
#[derive(Debug, Clone)]
pub struct SimProfile {
    /// Profile id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Raw scan mode.
    pub scan_mode: i64,
    /// Last modification time.
    pub modified_time: OffsetDateTime,
    /// The daily report stopped arriving (for "stale report" demos and alerts).
    pub stale: bool,
}

/// One simulated customer.
#[derive(Debug, Clone)]
pub struct SimCustomer {
    /// Customer id.
    pub id: String,
    /// Organization name.
    pub organization: String,
    /// Short tenant name.
    pub tenant_domain: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Country or region.
    pub country: &'static str,
    /// Raw management mode.
    pub management_mode: i64,
    /// Raw job status.
    pub job_status: i64,
    /// The customer's scan profiles.
    pub profiles: Vec<SimProfile>,
}

impl SimCustomer {
    /// The discovery view of this customer.
    pub fn to_api(&self) -> Customer {
        Customer {
            id: self.id.clone(),
            organization: self.organization.clone(),
            job_status: Some(self.job_status),
            country_or_region: Some(self.country.to_owned()),
            management_mode: Some(self.management_mode),
            tenants: vec![Tenant {
                id: self.tenant_id.clone(),
                name: format!("{}.onmicrosoft.com", self.tenant_domain),
            }],
        }
    }
}

impl SimProfile {
    /// The discovery view of this profile.
    pub fn to_summary(&self) -> ScanProfileSummary {
        ScanProfileSummary {
            profile_name: self.name.clone(),
            profile_id: self.id.clone(),
            scan_mode: Some(self.scan_mode),
            modified_time: Some(self.modified_time),
        }
    }
}

/// Build the world for a seed.
pub fn generate(
    seed: u64,
    customers: usize,
    profiles_per_customer: usize,
    created: OffsetDateTime,
) -> Vec<SimCustomer> {
    (0..customers as u64)
        .map(|c| {
            let base = ORGANIZATIONS[(pick(seed, &[c], ORGANIZATIONS.len() as u64)) as usize];
            let organization = if c < ORGANIZATIONS.len() as u64 {
                ORGANIZATIONS[c as usize].to_owned()
            } else {
                format!("{base} {}", c + 1)
            };
            let tenant_domain: String = organization
                .chars()
                .filter(|ch| ch.is_ascii_alphanumeric())
                .collect::<String>()
                .to_lowercase();
            SimCustomer {
                id: uuid(seed, &[1, c]).to_string(),
                organization,
                tenant_domain,
                tenant_id: uuid(seed, &[2, c]).to_string(),
                country: ["US", "DE", "JP", "AU", "GB"][pick(seed, &[3, c], 5) as usize],
                management_mode: pick(seed, &[4, c], 3) as i64,
                job_status: [1, 1, 1, 2, 5, 6][pick(seed, &[5, c], 6) as usize],
                profiles: (0..profiles_per_customer as u64)
                    .map(|p| SimProfile {
                        id: uuid(seed, &[6, c, p]).to_string(),
                        name: PROFILE_NAMES[((c + p) % PROFILE_NAMES.len() as u64) as usize]
                            .to_owned(),
                        scan_mode: pick(seed, &[7, c, p], 2) as i64,
                        modified_time: created
                            - Duration::from_secs(86_400 * (1 + pick(seed, &[8, c, p], 90))),
                        // One profile in eleven stopped producing reports.
                        stale: (c * 7 + p) % 11 == 10,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Weighted statuses of a simulated day: mostly finished, sometimes not.
const STATUS_WEIGHTS: [(i64, u64); 8] = [
    (2, 70),
    (4, 10),
    (3, 5),
    (1, 5),
    (7, 3),
    (6, 3),
    (5, 2),
    (11, 2),
];

/// The report a profile shows on simulated day `day` (generated at `day_started`).
pub fn report(
    seed: u64,
    customer: &SimCustomer,
    profile: &SimProfile,
    profile_index: u64,
    day: u64,
    day_started: OffsetDateTime,
    stale_since: OffsetDateTime,
) -> ScanProfileReport {
    let key = mix(profile
        .id
        .bytes()
        .fold(0u64, |acc, b| acc.rotate_left(5) ^ u64::from(b)));
    let day = if profile.stale { 0 } else { day };
    let total: u64 = STATUS_WEIGHTS.iter().map(|(_, weight)| weight).sum();
    let mut roll = pick(seed, &[key, day, 1], total);
    let mut status = 2;
    for (code, weight) in STATUS_WEIGHTS {
        if roll < weight {
            status = code;
            break;
        }
        roll -= weight;
    }
    let removed = if pick(seed, &[key, day, 4], 4) == 0 {
        pick(seed, &[key, day, 5], 6) as i64
    } else {
        0
    };
    ScanProfileReport {
        profile_name: profile.name.clone(),
        profile_id: profile.id.clone(),
        tenant_domain: customer.tenant_domain.clone(),
        tenant_id: customer.tenant_id.clone(),
        scan_mode: Some(profile.scan_mode),
        modified_time: Some(profile.modified_time),
        last_update_time: Some(if profile.stale {
            stale_since
        } else {
            day_started
        }),
        last_scan_status: status,
        new_registered_content_count: pick(seed, &[key, day, 2], 40 + profile_index * 10) as i64,
        moved_to_another_container: pick(seed, &[key, day, 3], 12) as i64,
        removed_from_m365_or_out_of_policy: removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world_other_seed_other_world() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let a = generate(7, 3, 2, at);
        let b = generate(7, 3, 2, at);
        let c = generate(8, 3, 2, at);
        assert_eq!(a[2].profiles[1].id, b[2].profiles[1].id);
        assert_ne!(a[2].profiles[1].id, c[2].profiles[1].id);
        assert!(Uuid::parse_str(&a[0].id).is_ok());
    }

    #[test]
    fn reports_change_across_days() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let world = generate(1, 4, 4, at);
        let customer = &world[0];
        let profile = &customer.profiles[0];
        let days: Vec<_> = (0..20)
            .map(|day| report(1, customer, profile, 0, day, at, at))
            .map(|r| (r.last_scan_status, r.new_registered_content_count))
            .collect();
        let distinct: std::collections::HashSet<_> = days.iter().collect();
        assert!(distinct.len() > 5, "reports barely move: {days:?}");
    }
}
