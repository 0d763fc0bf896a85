//! The subcommands, wired from the pieces: what `main` runs.
//!
//! The top of the module graph: it may import anything; nothing imports it.
//! `check` is in `check.rs`, the error every subcommand returns in
//! `error.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod check;
mod error;

use crate::cli::{DemoArgs, ServeArgs, SimulateArgs};
use crate::config::{CLIENT_SECRET_ENV, Settings, process_env};
use crate::serve;
use crate::simulator::{RunningSimulator, SimulatorConfig};
use crate::state::{AppState, StateOptions};
use crate::web;
use crate::web_config::WebConfigHandle;

pub use check::{check, check_table};
pub use error::AppError;

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

/// The async runtime every command runs on, with `worker_threads`
/// threads (`--runtime.worker-threads`; 0: one per CPU core).
pub fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if worker_threads > 0 {
        runtime.worker_threads(worker_threads);
    }
    runtime.build()
}

/// `serve`: run the exporter until SIGINT/SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), AppError> {
    // First of all: taking systemd's sockets clears LISTEN_FDS/LISTEN_PID
    // from the environment, which must not race other threads reading it.
    let systemd = args
        .systemd_socket
        .then(serve::systemd_listeners)
        .transpose()?;
    let settings = Settings::load(&args.config.config_file, process_env)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %settings.source.display(),
        environment = ?settings.avepoint.environment,
        endpoint = settings.avepoint.endpoint.name(),
        "starting avepoint-exporter"
    );
    let web_config = load_web_config(args.web.web_config_file.as_deref())?;
    let state = AppState::build(
        &settings,
        StateOptions {
            telemetry_path: args.telemetry_path.clone(),
            config_file: Some(args.config.config_file.clone()),
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
    serve_until_shutdown(listeners, state, web_config, args.web.max_connections).await
}

/// `demo`: the simulator on a free loopback port and the exporter against it.
pub async fn demo(args: DemoArgs) -> Result<(), AppError> {
    let simulator_config = SimulatorConfig {
        customers: args.world.customers,
        profiles_per_customer: args.world.profiles_per_customer,
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
        + "  protected_users:\n    enabled: true\n    refresh_interval: 1m\n  subscriptions:\n    enabled: true\n    refresh_interval: 1m\n"
        + &demo_schedule(&args.refresh, args.day_length);
    let settings = Settings::from_yaml(&config_text, Path::new("<demo>"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| secret.clone())
    })?;
    let web_config = load_web_config(args.web.web_config_file.as_deref())?;
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
        args.world.customers,
        args.world.profiles_per_customer,
        humantime::format_duration(args.day_length),
        simulator.base_url(),
    );
    tracing::info!(address = %local, simulator = %simulator.base_url(), "demo listening");
    let result =
        serve_until_shutdown(vec![listener], state, web_config, args.web.max_connections).await;
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
        customers: args.world.customers,
        profiles_per_customer: args.world.profiles_per_customer,
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
