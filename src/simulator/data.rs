//! Deterministic fake tenants: customers, their scan profiles (with their
//! settings) and the daily reports, all derived from a seed so every run
//! (and every test) sees the same world, while reports still change as
//! simulated days roll over. Values only: `wire.rs` writes them into
//! AvePoint's documented JSON.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::avepoint::model::ScanProfileReport;

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
    /// When the profile was created (its details' `createdTime`).
    pub created_time: OffsetDateTime,
    /// The daily scan's `(hour, minute)`, `None` when daily scan is off
    /// (`enableDailyScan` `"No"`).
    pub daily_scan: Option<(u32, u32)>,
    /// The containers the profile scans: `(containersName, objectType)`.
    pub containers: Vec<(String, i64)>,
}

/// Containers a simulated profile may scan, with their `objectType`; 42 is
/// no documented type, so the exporter meets an unknown one.
const CONTAINERS: [(&str, i64); 7] = [
    ("Default Site Collection Group", 0),
    ("Default Mailbox Group", 1),
    ("Default OneDrive for Business Group", 2),
    ("Default Microsoft 365 Group", 5),
    ("Default_ProjectOnline_Sites_Group", 6),
    ("Default Teams Channel Group", 9),
    ("Legacy archive", 42),
];

/// The daily scan of the profile with world-wide index `index` (customer
/// by customer, in order): every third one, from the second, is off; the
/// others run at `(2 + 7 * index) % 24` hours, `(19 + 13 * index) % 60`
/// minutes.
pub fn daily_scan(index: u64) -> Option<(u32, u32)> {
    (index % 3 != 1).then(|| {
        (
            ((2 + 7 * index) % 24) as u32,
            ((19 + 13 * index) % 60) as u32,
        )
    })
}

/// The containers of the profile with world-wide index `index`:
/// `1 + index % 3` of them, `CONTAINERS[(index + 3 * k) % 7]` for the k-th;
/// the seventh profile (index 6) is the first with the unknown type 42.
pub fn containers(index: u64) -> Vec<(String, i64)> {
    (0..1 + index % 3)
        .map(|k| {
            let (name, object_type) = CONTAINERS[((index + 3 * k) % 7) as usize];
            (name.to_owned(), object_type)
        })
        .collect()
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
                    .map(|p| {
                        let index = c * profiles_per_customer as u64 + p;
                        let modified_time = created
                            - Duration::from_secs(86_400 * (1 + pick(seed, &[8, c, p], 90)));
                        SimProfile {
                            id: uuid(seed, &[6, c, p]).to_string(),
                            name: PROFILE_NAMES[((c + p) % PROFILE_NAMES.len() as u64) as usize]
                                .to_owned(),
                            scan_mode: pick(seed, &[7, c, p], 2) as i64,
                            modified_time,
                            // One profile in eleven stopped producing reports.
                            stale: (c * 7 + p) % 11 == 10,
                            created_time: modified_time
                                - Duration::from_secs(86_400 * (30 + index % 60)),
                            daily_scan: daily_scan(index),
                            containers: containers(index),
                        }
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

/// When a profile's daily scan starts (its own time of the day) and how
/// long it runs (2 to 4 % of a day: 30 to 60 minutes of a real one).
pub fn scan_window(seed: u64, profile: &SimProfile, day_length: Duration) -> (Duration, Duration) {
    let key = mix(profile
        .id
        .bytes()
        .fold(0u64, |acc, b| acc.rotate_left(5) ^ u64::from(b)));
    let start = day_length.mul_f64(pick(seed, &[key, 7], 1000) as f64 / 1000.0);
    let run = day_length.mul_f64(0.02 + pick(seed, &[key, 8], 1000) as f64 / 50_000.0);
    (start, run)
}

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
        new_registered_content_listed: None,
        moved_to_another_container_listed: None,
        removed_from_m365_or_out_of_policy_listed: None,
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

    #[test]
    fn settings_mix_daily_scans_and_container_types() {
        assert_eq!(daily_scan(0), Some((2, 19)));
        assert_eq!(daily_scan(1), None);
        assert_eq!(daily_scan(2), Some((16, 45)));
        assert_eq!(
            containers(0),
            vec![("Default Site Collection Group".into(), 0)]
        );
        assert_eq!(
            containers(6),
            vec![("Legacy archive".into(), 42)],
            "the default 3 x 3 world has an unknown objectType"
        );
        assert_eq!(containers(2).len(), 3);
    }
}
