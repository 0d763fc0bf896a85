//! The subcommands, wired from the pieces: what `main` runs.
//!
//! The top of the module graph: it may import anything; nothing imports it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{CheckArgs, DemoArgs, ServeArgs, SimulateArgs};
use crate::collect::Snapshot;
use crate::config::{CLIENT_SECRET_ENV, ConfigError, Settings, process_env};
use crate::serve;
use crate::simulator::{RunningSimulator, SimulatorConfig};
use crate::state::{AppState, BuildError, StateOptions};
use crate::web;
use crate::web_config::{WebConfigError, WebConfigHandle};

/// Why a subcommand could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config could not be built into a running pipeline.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The listen address is unusable.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// `--web.listen-address` or `--web.systemd-socket` cannot be used.
    #[error(transparent)]
    Listeners(#[from] serve::ListenError),
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The `--web.config.file` is invalid.
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
}

async fn bind(address: &str) -> Result<tokio::net::TcpListener, AppError> {
    serve::bind(address)
        .await
        .map_err(|source| AppError::Listen {
            address: address.to_owned(),
            source,
        })
}

/// Load `--web.config.file`, if given; an invalid file stops the start.
fn load_web_config(path: Option<&Path>) -> Result<Option<Arc<WebConfigHandle>>, AppError> {
    Ok(path.map(WebConfigHandle::load).transpose()?)
}

/// Serve the exporter's routes for `state` on `listeners` until SIGINT/SIGTERM,
/// at most `max_connections` at once (0: derived from the open-files limit).
async fn serve_until_shutdown(
    listeners: Vec<tokio::net::TcpListener>,
    state: Arc<AppState>,
    web_config: Option<Arc<WebConfigHandle>>,
    max_connections: usize,
) -> Result<(), AppError> {
    let options = serve::ServeOptions {
        max_connections,
        ..serve::ServeOptions::default()
    };
    serve::serve_listeners(
        listeners,
        web::router(state),
        serve::shutdown_signal(),
        web_config,
        options,
    )
    .await
    .map_err(AppError::Serve)
}

/// `serve`: run the exporter until SIGINT/SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), AppError> {
    // First of all: taking systemd's sockets clears LISTEN_FDS/LISTEN_PID
    // from the environment, which must not race other threads reading it.
    let systemd = args
        .systemd_socket
        .then(serve::systemd_listeners)
        .transpose()?;
    let settings = Settings::load(&args.config_file, process_env)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %settings.source.display(),
        environment = ?settings.avepoint.environment,
        endpoint = settings.avepoint.endpoint.name(),
        "starting avepoint-exporter"
    );
    let web_config = load_web_config(args.web_config_file.as_deref())?;
    let state = AppState::build(
        &settings,
        StateOptions {
            telemetry_path: args.telemetry_path.clone(),
            config_file: Some(args.config_file.clone()),
            enable_lifecycle: args.enable_lifecycle,
        },
    )?;
    state.reload_on_sighup();
    let listeners = match systemd {
        Some(listeners) => listeners,
        None => serve::bind_all(&args.listen_addresses).await?,
    };
    for listener in &listeners {
        let local = listener.local_addr().map_err(AppError::Serve)?;
        tracing::info!(
            address = %local,
            systemd_socket = args.systemd_socket,
            telemetry_path = %state.telemetry_path(),
            targets = state.rounds().targets().len(),
            tls = web_config.as_ref().is_some_and(|w| w.tls_enabled()),
            "listening"
        );
    }
    serve_until_shutdown(listeners, state, web_config, args.max_connections).await
}

/// How long `check` waits for the first discovery.
const CHECK_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(300);

/// `check`: fetch every target once, print a table; `Ok(false)` when any failed.
pub async fn check(args: CheckArgs) -> Result<bool, AppError> {
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
    let backup_ok = check_backup_collectors(&settings, &pipeline).await;
    Ok(snapshot.failures() == 0 && !discovery_failed && backup_ok)
}

/// `check` for the backup collectors: each one's permission, then the
/// first page of every customer's list (or why it failed).
async fn check_backup_collectors(settings: &Settings, pipeline: &crate::state::Pipeline) -> bool {
    use crate::avepoint::ApiEndpoint;
    use crate::config::{BACKUP_COVERAGE_SCOPE, BACKUP_JOBS_SCOPE};
    let customers = crate::backup::CustomerSource {
        configured: settings.customers.clone(),
        discovered: pipeline.discovery.as_ref().map(|d| d.state.clone()),
    }
    .current();
    let client = &pipeline.client;
    let mut all_ok = true;
    let collectors = &settings.collectors;
    for (enabled, name, permission, endpoint) in [
        (
            collectors.backup_jobs.is_some(),
            "backup_jobs",
            BACKUP_JOBS_SCOPE,
            ApiEndpoint::BackupJobsBatch,
        ),
        (
            collectors.backup_coverage.is_some(),
            "backup_coverage",
            BACKUP_COVERAGE_SCOPE,
            ApiEndpoint::BackupCoverage,
        ),
    ] {
        if !enabled {
            continue;
        }
        println!("\ncollector {name} (permission {permission}):");
        // A permission the token endpoint refused fails every customer
        // alike: said once, not once per customer.
        if let Err(error) = client.authorize(endpoint).await {
            all_ok = false;
            println!("  FAILED: {error}");
            continue;
        }
        for customer in &customers {
            let first_page = match name {
                "backup_jobs" => backup_jobs_first_page(client, customer).await,
                _ => client
                    .coverage_page(customer, 1, 100)
                    .await
                    .map(|page| (page.data.len(), page.metadata.total_count, String::new())),
            };
            match first_page {
                Ok((items, total, how)) => {
                    println!("  customer {customer}: first page {items} items of {total}{how}")
                }
                Err(error) => {
                    all_ok = false;
                    println!("  customer {customer}: FAILED: {error}");
                }
            }
        }
    }
    all_ok
}

/// The first page of a customer's backup jobs for `check`: asked for all
/// job types at once, or per job type when AvePoint refuses that with a
/// `400` (as the collector does); says which form worked.
async fn backup_jobs_first_page(
    client: &crate::avepoint::ApiClient,
    customer: &str,
) -> Result<(usize, u64, String), crate::avepoint::ApiError> {
    use crate::backup::JobsQuery;
    let mut query = JobsQuery::AllTypes;
    let mut page = client.backup_jobs_page(customer, None, 1, 100).await;
    if let Err(crate::avepoint::ApiError::Status { status, .. }) = &page
        && *status == reqwest::StatusCode::BAD_REQUEST
    {
        query = JobsQuery::PerJobType;
        let first_type = crate::avepoint::backup::BACKUP_JOB_TYPES[0];
        page = client
            .backup_jobs_page(customer, Some(first_type), 1, 100)
            .await;
    }
    let page = page?;
    let how = format!(", asked for as {}", query.describe());
    Ok((page.data.len(), page.metadata.total_count, how))
}

/// Which path answered for the scan profiles, as `check` reports it.
fn profile_path_line(settings: &Settings, client: &crate::avepoint::ApiClient) -> String {
    let path = client.profile_path();
    match settings.avepoint.endpoint {
        crate::config::ProfileEndpoint::Auto if path == crate::config::ProfileEndpoint::Changes => {
            "profile path: changes (avepoint.endpoint: auto; scan-profiles-v2 answered 404 or 405)"
                .to_owned()
        }
        crate::config::ProfileEndpoint::Auto => {
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

/// `demo`: the simulator on a free loopback port and the exporter against it.
pub async fn demo(args: DemoArgs) -> Result<(), AppError> {
    let simulator_config = SimulatorConfig {
        customers: args.customers,
        profiles_per_customer: args.profiles_per_customer,
        latency: Duration::from_millis(20),
        // A little weather, so the dashboard's error and 429 panels have
        // something to show; the exporter's one retry hides it from the data.
        error_rate: 0.02,
        throttle_rate: 0.02,
        day_length: args.day_length,
        seed: args.seed,
        daily_schedule: args.refresh == "report_schedule",
        ..SimulatorConfig::default()
    };
    let secret = simulator_config.client_secret.clone();
    let simulator = RunningSimulator::start(simulator_config, ([127, 0, 0, 1], 0).into())
        .await
        .map_err(|source| AppError::Listen {
            address: "127.0.0.1:0".into(),
            source,
        })?;
    // Discovery finds the simulated customers, as it would for an MSP.
    let config_text = simulator.exporter_config(Some(&[]))
        + "discovery:\n  enabled: true\n  refresh_interval: 1m\n"
        // The demo shows every collector; a real config enables the backup
        // ones only with their permissions granted.
        + "collectors:\n  backup_jobs:\n    enabled: true\n    refresh_interval: 1m\n  backup_coverage:\n    enabled: true\n    refresh_interval: 1m\n"
        + &demo_schedule(&args.refresh, args.day_length);
    let settings = Settings::from_yaml(&config_text, Path::new("<demo>"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| secret.clone())
    })?;
    let web_config = load_web_config(args.web_config_file.as_deref())?;
    let state = AppState::build(&settings, StateOptions::default())?;
    let listener = bind(&args.listen_address).await?;
    let local = listener.local_addr().map_err(AppError::Serve)?;
    let local = if web_config.as_ref().is_some_and(|w| w.tls_enabled()) {
        format!("https://{local}")
    } else {
        format!("http://{local}")
    };
    println!(
        "avepoint-exporter demo: {} customers x {} scan profiles, a simulated day every {}\n\
         \n  metrics:    {local}/metrics\n  landing:    {local}/\n  targets:    {local}/sd (Prometheus http_sd) and {local}/probe?customer_id=...\n  simulator:  {}\n\
         \nThe config it runs with (a real one looks the same, with AvePoint's URLs\nleft to `environment` and the secret in AVEPOINT_CLIENT_SECRET or a file):\n\n{config_text}\nPress Ctrl-C to stop.",
        args.customers,
        args.profiles_per_customer,
        humantime::format_duration(args.day_length),
        simulator.base_url(),
    );
    tracing::info!(address = %local, simulator = %simulator.base_url(), "demo listening");
    let result =
        serve_until_shutdown(vec![listener], state, web_config, args.max_connections).await;
    simulator.stop();
    result
}

/// The `collectors.scan_profiles` keys of `demo --refresh report_schedule`:
/// a real day's durations scaled to the simulated one (at least 1s each).
fn demo_schedule(refresh: &str, day: Duration) -> String {
    if refresh != "report_schedule" {
        return String::new();
    }
    let scale = day.as_secs_f64() / 86_400.0;
    let scaled = |real: f64| format!("{}ms", ((real * scale).max(1.0) * 1000.0) as u64);
    format!(
        "  scan_profiles:\n    refresh: report_schedule\n    poll_interval: {}\n    max_age: {}\n    report_interval: {}ms\n    report_grace: {}\n",
        scaled(300.0),
        scaled(6.0 * 3600.0),
        day.as_millis(),
        scaled(2.0 * 3600.0)
    )
}

/// `simulate`: only the simulated AvePoint API, until SIGINT/SIGTERM.
pub async fn simulate(args: SimulateArgs) -> Result<(), AppError> {
    let listen_error = |source| AppError::Listen {
        address: args.listen_address.clone(),
        source,
    };
    let address = serve::resolve_listen_address(&args.listen_address)
        .await
        .map_err(listen_error)?;
    let config = SimulatorConfig {
        customers: args.customers,
        profiles_per_customer: args.profiles_per_customer,
        latency: args.latency,
        error_rate: args.error_rate,
        throttle_rate: args.throttle_rate,
        day_length: args.day_length,
        token_lifetime: args.token_lifetime,
        seed: args.seed,
        daily_schedule: args.daily_schedule,
        ..SimulatorConfig::default()
    };
    let (client_id, client_secret) = (config.client_id.clone(), config.client_secret.clone());
    let simulator = RunningSimulator::start(config, address)
        .await
        .map_err(listen_error)?;
    println!(
        "AvePoint API simulator on {}\n  token URL:     {}\n  client id:     {client_id}\n  client secret: {client_secret}\n\
         \nAn exporter config for it (export AVEPOINT_CLIENT_SECRET={client_secret}):\n\n{}",
        simulator.base_url(),
        simulator.token_url(),
        simulator.exporter_config(None)
    );
    serve::shutdown_signal().await;
    simulator.stop();
    Ok(())
}
