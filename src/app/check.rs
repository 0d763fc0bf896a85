//! `check`: validate the config, fetch every target once, print a table,
//! then check every collector read in the background; `Ok(false)` (exit 1)
//! when anything failed.

use std::time::Duration;

use futures_util::StreamExt;

use super::error::AppError;
use crate::avepoint::ApiClient;
use crate::backup::{CheckTargets, CustomerSource, FirstPage, PageCount};
use crate::cli::ConfigFileArgs;
use crate::collect::Snapshot;
use crate::config::{CollectorKind, ProfileEndpoint, Settings, process_env};
use crate::state::{AppState, Pipeline, StateOptions};

/// How long `check` waits for the first discovery.
const CHECK_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(300);

/// `check`: fetch every target once, print a table; `Ok(false)` when any failed.
pub async fn check(args: ConfigFileArgs) -> Result<bool, AppError> {
    let settings = Settings::load(&args.config_file, process_env)?;
    let state = AppState::build(&settings, StateOptions::default())?;
    let pipeline = state.pipeline();
    let mut discovery_failed = false;
    if let Some(discovery) = &pipeline.discovery {
        // Check what discovery finds, not just the static targets.
        let mut updates = discovery.state.clone();
        let waited = tokio::time::timeout(
            CHECK_DISCOVERY_TIMEOUT,
            updates.wait_for(|state| state.attempted),
        )
        .await;
        match waited.ok().and_then(Result::ok) {
            Some(state) if state.errors_total == 0 => println!(
                "discovery: {} customers, {} scan profiles\n",
                state.customers.len(),
                state.discovered.len()
            ),
            Some(_) => {
                discovery_failed = true;
                println!("discovery: FAILED (see the log); checking the static targets only\n");
            }
            None => {
                discovery_failed = true;
                println!(
                    "discovery: no result within {}s; checking the static targets only\n",
                    CHECK_DISCOVERY_TIMEOUT.as_secs()
                );
            }
        }
    }
    // No Prometheus deadline here: give every request its full timeout and one retry.
    let budget = settings.avepoint.limits.request_timeout.saturating_mul(3);
    let snapshot = pipeline.rounds.collect_once(budget).await;
    let path = profile_path_line(&settings, &pipeline.client);
    if settings.collectors.scan_profiles {
        print!("{}", check_table(&snapshot, &path));
    }
    let backup_ok = check_background_collectors(&settings, &pipeline).await;
    Ok(snapshot.failures() == 0 && !discovery_failed && backup_ok)
}

/// `check` for the collectors read in the background: each one's
/// permission, then the first page of every customer's list (or why it
/// failed).
async fn check_background_collectors(settings: &Settings, pipeline: &Pipeline) -> bool {
    let targets = CheckTargets::of(&CustomerSource {
        configured: settings.customers.clone(),
        discovered: pipeline.discovery.as_ref().map(|d| d.state.clone()),
    });
    let mut all_ok = true;
    for kind in CollectorKind::ALL {
        if settings.collectors.enabled(kind) {
            all_ok &= check_collector(kind, &pipeline.client, &targets).await;
        }
    }
    all_ok
}

/// One collector of `check_background_collectors`.
async fn check_collector(kind: CollectorKind, client: &ApiClient, targets: &CheckTargets) -> bool {
    // Scan profiles are read on every scrape: the table of `check` is their check.
    let Some(collector) = crate::backup::per_customer(kind) else {
        return true;
    };
    println!("\ncollector {} (permission {}):", kind.name(), kind.scope());
    // A permission the token endpoint refused fails every customer
    // alike: said once, not once per customer.
    if let Err(error) = client.authorize(collector.endpoint).await {
        println!("  FAILED: {error}");
        return false;
    }
    let mut all_ok = true;
    let mut pages = collector.first_pages(client, targets);
    while let Some(page) = pages.next().await {
        all_ok &= report_first_page(&page);
    }
    all_ok
}

/// One line of `check` for the first page of one list; whether it worked.
fn report_first_page(page: &FirstPage) -> bool {
    let whose = &page.whose;
    match &page.read {
        Ok(PageCount { items, total, how }) => {
            println!("  {whose}: first page {items} items of {total}{how}");
            true
        }
        Err(error) => {
            println!("  {whose}: FAILED: {error}");
            false
        }
    }
}

/// Which path answered for the scan profiles, as `check` reports it.
fn profile_path_line(settings: &Settings, client: &ApiClient) -> String {
    let path = client.profile_path();
    match settings.avepoint.endpoint {
        ProfileEndpoint::Auto if path == ProfileEndpoint::Changes => {
            "profile path: changes (avepoint.endpoint: auto; scan-profiles-v2 answered 404 or 405)"
                .to_owned()
        }
        ProfileEndpoint::Auto => {
            format!("profile path: {} (avepoint.endpoint: auto)", path.name())
        }
        _ => format!("profile path: {}", path.name()),
    }
}

/// The `check` report: one row per target, then `footer` (which path
/// answered) and a summary line.
pub fn check_table(snapshot: &Snapshot, footer: &str) -> String {
    let mut rows = vec![[
        "CUSTOMER".to_owned(),
        "PROFILE".to_owned(),
        "NAME".to_owned(),
        "LAST SCAN".to_owned(),
        "NEW".to_owned(),
        "MOVED".to_owned(),
        "REMOVED".to_owned(),
        "REPORT TIME".to_owned(),
        "RESULT".to_owned(),
    ]];
    for result in &snapshot.profiles {
        let target = &result.target;
        rows.push(match &result.outcome {
            Ok(report) => [
                target.customer_id.clone(),
                target.profile_id.clone(),
                printable(&report.profile_name),
                crate::avepoint::ScanStatus::from_code(report.last_scan_status).map_or_else(
                    || format!("unknown ({})", report.last_scan_status),
                    |s| s.description().to_owned(),
                ),
                report.new_registered_content_count.to_string(),
                report.moved_to_another_container.to_string(),
                report.removed_from_m365_or_out_of_policy.to_string(),
                report
                    .last_update_time
                    .map_or_else(|| "-".to_owned(), crate::avepoint::model::api_time::format),
                "ok".to_owned(),
            ],
            Err(error) => [
                target.customer_id.clone(),
                target.profile_id.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("FAILED: {}", error.message),
            ],
        });
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    for row in &rows {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index == row.len() - 1 {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        table.push_str(line.trim_end());
        table.push('\n');
    }
    let failed = snapshot.failures();
    table.push_str(&format!(
        "\n{footer}\n{} profiles: {} ok, {} failed\n",
        snapshot.profiles.len(),
        snapshot.profiles.len() - failed,
        failed
    ));
    table
}

/// Names can hold newlines and other control characters; keep the table intact.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(char::escape_default)
        .collect::<String>()
}
