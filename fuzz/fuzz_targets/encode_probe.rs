//! /probe encoding: a snapshot of profiles with arbitrary ids, names,
//! counts, timestamps and errors, plus an arbitrary customer, encoded in
//! both formats.
//!
//! Properties, besides "never panics": every line of the exposition is a
//! comment or a well-formed sample (metric name, labels with properly
//! escaped values, a number), OpenMetrics output ends with `# EOF`, and
//! chunking loses nothing (the chunks add up to `into_string`).
#![no_main]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use avepoint_exporter::avepoint::model::{Customer, Tenant};
use avepoint_exporter::avepoint::{FailureKind, ScanProfileReport};
use avepoint_exporter::backup::BackupSnapshot;
use avepoint_exporter::collect::{FetchError, ProfileResult, ReadTimes, Snapshot};
use avepoint_exporter::config::{LastStatusState, ProfileTarget};
use avepoint_exporter::metrics::{Format, ProbeSources, encode_probe};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

const FAILURE_KINDS: [FailureKind; 7] = [
    FailureKind::Timeout,
    FailureKind::Transport,
    FailureKind::Auth,
    FailureKind::Backoff,
    FailureKind::InvalidBody,
    FailureKind::DecodeQueue,
    FailureKind::Deadline,
];

/// The last-status-state settings, picked by the input.
const STATES: [LastStatusState; 3] = [
    LastStatusState::All,
    LastStatusState::Current,
    LastStatusState::None,
];

#[derive(Debug, Arbitrary)]
struct Input {
    open_metrics: bool,
    states: u8,
    collect_nanos: u64,
    profiles: Vec<ProfileIn>,
    customer: Option<CustomerIn>,
}

#[derive(Debug, Arbitrary)]
struct ProfileIn {
    customer_id: String,
    profile_id: String,
    fetch_nanos: u64,
    cache_age_nanos: Option<u64>,
    read_nanos: Option<(Option<u64>, u64)>,
    outcome: Result<ReportIn, (u8, Option<String>, String)>,
}

#[derive(Debug, Arbitrary)]
struct ReportIn {
    profile_name: String,
    profile_id: String,
    tenant_domain: String,
    tenant_id: String,
    scan_mode: Option<i64>,
    modified_nanos: Option<i128>,
    last_update_nanos: Option<i128>,
    last_scan_status: i64,
    new_registered: i64,
    moved: i64,
    removed: i64,
}

#[derive(Debug, Arbitrary)]
struct CustomerIn {
    id: String,
    organization: String,
    job_status: Option<i64>,
    country_or_region: Option<String>,
    management_mode: Option<i64>,
    tenants: Vec<(String, String)>,
}

/// Any timestamp the `time` crate can hold (the decoder's range).
fn timestamp(nanos: Option<i128>) -> Option<OffsetDateTime> {
    nanos.and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
}

fn snapshot(input: Input) -> (Snapshot, Option<Customer>) {
    let profiles = input
        .profiles
        .into_iter()
        .map(|p| ProfileResult {
            target: ProfileTarget {
                customer_id: p.customer_id,
                profile_id: p.profile_id,
            },
            fetch_duration: Duration::from_nanos(p.fetch_nanos),
            cache_age: p.cache_age_nanos.map(Duration::from_nanos),
            // When it was read and will be: with report_schedule.
            read: p.read_nanos.map(|(last, next)| ReadTimes {
                last_success: last.map(|nanos| UNIX_EPOCH + Duration::from_nanos(nanos)),
                next_read: UNIX_EPOCH + Duration::from_nanos(next),
            }),
            outcome: match p.outcome {
                Ok(r) => Ok(ScanProfileReport {
                    profile_name: r.profile_name,
                    profile_id: r.profile_id,
                    tenant_domain: r.tenant_domain,
                    tenant_id: r.tenant_id,
                    scan_mode: r.scan_mode,
                    modified_time: timestamp(r.modified_nanos),
                    last_update_time: timestamp(r.last_update_nanos),
                    last_scan_status: r.last_scan_status,
                    new_registered_content_count: r.new_registered,
                    moved_to_another_container: r.moved,
                    removed_from_m365_or_out_of_policy: r.removed,
                    new_registered_content_listed: None,
                    moved_to_another_container_listed: None,
                    removed_from_m365_or_out_of_policy_listed: None,
                }),
                Err((kind, request_id, message)) => Err(FetchError {
                    // The kind never reaches the exposition; any will do.
                    kind: FAILURE_KINDS[usize::from(kind) % FAILURE_KINDS.len()],
                    request_id,
                    message,
                }),
            },
        })
        .map(Arc::new)
        .collect();
    let customer = input.customer.map(|c| Customer {
        id: c.id,
        organization: c.organization,
        job_status: c.job_status,
        country_or_region: c.country_or_region,
        management_mode: c.management_mode,
        tenants: c
            .tenants
            .into_iter()
            .map(|(id, name)| Tenant { id, name })
            .collect(),
    });
    (
        Snapshot {
            profiles,
            collect_duration: Duration::from_nanos(input.collect_nanos),
            schedule: None,
        },
        customer,
    )
}

/// `name{label="value",...} number` with a valid name, label names and
/// escapes; the number is an integer, a float, `NaN` or `±Inf`.
fn check_sample(line: &str) -> Result<(), &'static str> {
    let is_name_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut chars = line.char_indices().peekable();
    match chars.next() {
        Some((_, c)) if is_name_start(c) => {}
        _ => return Err("metric name"),
    }
    while chars.next_if(|&(_, c)| is_name(c)).is_some() {}
    if chars.next_if(|&(_, c)| c == '{').is_some() {
        loop {
            match chars.next() {
                Some((_, '}')) => break,
                Some((_, c)) if is_name_start(c) && c != ':' => {}
                _ => return Err("label name"),
            }
            while chars.next_if(|&(_, c)| is_name(c) && c != ':').is_some() {}
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err("label =\"");
            }
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\' | '"' | 'n')) => {}
                        _ => return Err("escape"),
                    },
                    Some((_, '\n')) => return Err("raw newline in a label value"),
                    Some(_) => {}
                    None => return Err("unterminated label value"),
                }
            }
            match chars.next() {
                Some((_, ',')) => {}
                Some((_, '}')) => break,
                _ => return Err("label separator"),
            }
        }
    }
    let Some((at, ' ')) = chars.next() else {
        return Err("space before value");
    };
    let value = &line[at + 1..];
    let value = value
        .split_once(' ')
        .map_or(value, |(value, _timestamp)| value);
    match value {
        "NaN" | "+Inf" | "-Inf" => Ok(()),
        _ if value.parse::<f64>().is_ok() => Ok(()),
        _ => Err("value"),
    }
}

fn check(text: &str, format: Format) {
    assert!(text.is_empty() || text.ends_with('\n'), "no final newline");
    let body = match format {
        Format::OpenMetrics => text
            .strip_suffix("# EOF\n")
            .unwrap_or_else(|| panic!("OpenMetrics output without # EOF")),
        Format::PrometheusText => text,
    };
    for line in body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.starts_with("# UNIT ")
        {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        if let Err(what) = check_sample(line) {
            panic!("malformed sample ({what}): {line:?}\nwhole exposition:\n{text}");
        }
    }
}

fuzz_target!(|input: Input| {
    let format = if input.open_metrics {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    };
    let states = STATES[usize::from(input.states) % STATES.len()];
    let (snapshot, customer) = snapshot(input);
    let snapshot = Arc::new(snapshot);
    // The probed customer: the one described, or the first profile's.
    let customer_id = customer
        .as_ref()
        .map(|c| c.id.clone())
        .or_else(|| {
            snapshot
                .profiles
                .first()
                .map(|p| p.target.customer_id.clone())
        })
        .unwrap_or_default();
    let encode = |snapshot: Arc<Snapshot>, customer: Option<Customer>| {
        let sources = ProbeSources {
            customer_id: customer_id.clone(),
            customer,
            details: None,
            backup: BackupSnapshot::default(),
            last_status_state: states,
        };
        encode_probe(snapshot, sources, format).expect("encoding into a String does not fail")
    };
    let chunked: String = encode(Arc::clone(&snapshot), customer.clone()).collect();
    check(&chunked, format);
    let whole = encode(snapshot, customer).into_string();
    assert_eq!(chunked, whole, "chunked and whole expositions differ");
});
