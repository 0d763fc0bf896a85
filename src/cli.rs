//! Command-line definitions, following the Prometheus exporters' flag names.
//!
//! Plain clap types; imports only `version` from the crate.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Prometheus exporter for AvePoint Elements scan profiles.
#[derive(Debug, Parser)]
#[command(name = "avepoint-exporter", version, long_version = crate::version::LONG_VERSION, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
    /// Runtime flags.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl Cli {
    /// Parse the process's arguments, exiting with clap's message on error.
    pub fn parse_args() -> Self {
        Self::try_parse_args_from(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// Like `try_parse_from`, but `serve`'s flags given before a subcommand
    /// are an error instead of being silently ignored. (clap's
    /// `args_conflicts_with_subcommands` does this too, but also rejects the
    /// global `--log.*` flags before a subcommand.)
    pub fn try_parse_args_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches, error::ErrorKind, parser::ValueSource};
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        if let Some((name, _)) = matches.subcommand() {
            // `serve`'s flags, read from their clap definitions (in
            // declaration order, so the first one given is named).
            let serve = ServeArgs::augment_args(clap::Command::new("serve"));
            for arg in serve.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
                    return Err(command.error(
                        ErrorKind::ArgumentConflict,
                        format!("--{long} must come after the subcommand: avepoint-exporter {name} --{long} ..."),
                    ));
                }
            }
        }
        Self::from_arg_matches(&matches).map_err(|error| error.format(&mut command))
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exporter (the default).
    Serve(ServeArgs),
    /// Validate the config, fetch every target once and print a table; exit 1 if anything failed.
    Check(ConfigFileArgs),
    /// Run the exporter against the embedded simulator: live-looking data, no AvePoint account.
    Demo(DemoArgs),
    /// Run only the simulated AvePoint API (for other tools, benchmarks, a demo stack).
    Simulate(SimulateArgs),
}

/// Logging.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only log messages with the given severity or above (error, warn, info, debug, trace).
    #[arg(
        long = "log.level",
        global = true,
        default_value = "info",
        env = "AVEPOINT_LOG_LEVEL",
        value_parser = log_level
    )]
    pub level: String,
    /// Output format of log messages.
    #[arg(long = "log.format", global = true, value_enum, default_value_t = LogFormat::Logfmt)]
    pub format: LogFormat,
}

/// `--runtime.worker-threads`'s default (`RuntimeArgs` says why).
pub const DEFAULT_WORKER_THREADS: usize = 1;

/// The async runtime.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Threads that run the exporter's async work (0: one per CPU core).
    /// One, as node_exporter's --runtime.gomaxprocs: a scrape is many small
    /// steps, and handing them between threads cost more CPU than a second
    /// thread saved. Large report bodies are decoded on threads of their own.
    #[arg(
        long = "runtime.worker-threads",
        global = true,
        default_value_t = DEFAULT_WORKER_THREADS,
        env = "AVEPOINT_RUNTIME_WORKER_THREADS"
    )]
    pub worker_threads: usize,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// key=value pairs, one event per line.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The config file.
    #[command(flatten)]
    pub config: ConfigFileArgs,
    /// Address to listen on for web interface and telemetry (`:port` = every interface, IPv4 and IPv6). Repeat the flag to listen on several.
    #[arg(
        long = "web.listen-address",
        default_value = ":10290",
        action = ArgAction::Append
    )]
    pub listen_addresses: Vec<String>,
    /// Use the sockets systemd passes (socket activation) instead of binding; not with --web.listen-address.
    #[arg(long = "web.systemd-socket", conflicts_with = "listen_addresses")]
    pub systemd_socket: bool,
    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics", value_parser = telemetry_path)]
    pub telemetry_path: String,
    /// TLS, authentication and the connection cap.
    #[command(flatten)]
    pub web: WebServerArgs,
    /// Enable `POST /-/reload` (as in Prometheus). SIGHUP reloads either way.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,
}

/// The web server's flags, shared by `serve` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct WebServerArgs {
    /// Path to a web config file (exporter-toolkit format) that enables TLS and/or basic authentication.
    #[arg(long = "web.config.file")]
    pub web_config_file: Option<PathBuf>,
    /// The most connections kept open at once; at the limit the one waiting longest for a request is closed. 0: derived from the open-files limit (docs/web-config.md).
    #[arg(long = "web.max-connections", default_value_t = 0)]
    pub max_connections: usize,
}

/// The config file flag: all `check` takes, and the first of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ConfigFileArgs {
    /// Path to the YAML config file.
    #[arg(
        long = "config.file",
        default_value = "avepoint.yml",
        env = "AVEPOINT_CONFIG_FILE"
    )]
    pub config_file: PathBuf,
}

/// Flags of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address the exporter listens on (the simulator takes a free loopback port).
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:10290")]
    pub listen_address: String,
    /// TLS, authentication and the connection cap.
    #[command(flatten)]
    pub web: WebServerArgs,
    /// The simulated customers and profiles.
    #[command(flatten)]
    pub world: WorldArgs,
    /// Length of a simulated day: daily reports roll over this often.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub day_length: Duration,
    /// Seed of the simulated data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How the exporter refreshes the scan reports: every_scrape, or
    /// report_schedule (each profile read when its next report is due, its
    /// durations scaled to the simulated day; the simulator then runs each
    /// profile's scan at its own time of the day).
    #[arg(long, default_value = "every_scrape", value_parser = ["every_scrape", "report_schedule"])]
    pub refresh: String,
}

/// The size of the simulated world, shared by `demo` and `simulate`.
#[derive(Debug, Clone, Args)]
pub struct WorldArgs {
    /// Simulated customers.
    #[arg(long, default_value_t = 3)]
    pub customers: usize,
    /// Scan profiles per simulated customer.
    #[arg(long, default_value_t = 3)]
    pub profiles_per_customer: usize,
}

/// Flags of `simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Address to listen on (`--listen` is the old, hidden spelling).
    #[arg(
        long = "web.listen-address",
        alias = "listen",
        default_value = "127.0.0.1:10291"
    )]
    pub listen_address: String,
    /// The simulated customers and profiles.
    #[command(flatten)]
    pub world: WorldArgs,
    /// Latency added to every API response.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// Share of API requests answered with HTTP 500 (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    pub error_rate: f64,
    /// Share of API requests answered with HTTP 429 (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    pub throttle_rate: f64,
    /// Length of a simulated day.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub day_length: Duration,
    /// Lifetime of issued access tokens.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_lifetime: Duration,
    /// Seed of the simulated data and of the random faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Each profile scans at its own time of the simulated day, shows
    /// Running until it ends, and its report appears then (as AvePoint's
    /// do); without it every report rolls over at the start of a day.
    #[arg(long)]
    pub daily_schedule: bool,
}

/// A level name, or tracing directives such as `info,avepoint_exporter=debug`.
/// Checked here because tracing would read a typo as a target name and
/// silently log nothing.
fn log_level(text: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let valid = !text.trim().is_empty()
        && text.split(',').all(|directive| {
            let level = directive
                .rsplit_once('=')
                .map_or(directive, |(_, level)| level);
            LEVELS.contains(&level.trim().to_ascii_lowercase().as_str())
        });
    if valid {
        Ok(text.to_owned())
    } else {
        Err("expected error, warn, info, debug or trace, or directives such as info,avepoint_exporter=debug".into())
    }
}

fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a rate between 0 and 1")),
    }
}

/// Paths the exporter serves itself; the telemetry path must not shadow
/// them (axum would panic at start on the overlapping route).
const RESERVED_PATHS: [&str; 3] = ["/", "/probe", "/sd"];

fn telemetry_path(text: &str) -> Result<String, String> {
    if RESERVED_PATHS.contains(&text) || text.starts_with("/-/") {
        return Err(format!(
            "{text:?} is taken by the exporter's own pages ({}, /-/...); choose another, e.g. /metrics",
            RESERVED_PATHS.join(", ")
        ));
    }
    if !text.starts_with('/') {
        return Err(format!(
            "{text:?} must start with / and name a path, e.g. /metrics"
        ));
    }
    // Braces and `*` are route parameters to axum; `?`, `#` and whitespace
    // can never match a request path.
    if let Some(bad) = text
        .chars()
        .find(|c| matches!(c, '{' | '}' | '*' | '?' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{text:?} contains {bad:?}, which cannot be part of the path"
        ));
    }
    // A segment that starts with `:` is axum 0.7's parameter syntax, which
    // axum 0.8 refuses with a panic at start rather than match it literally.
    if let Some(segment) = text.split('/').find(|segment| segment.starts_with(':')) {
        return Err(format!(
            "{text:?} has a segment {segment:?} starting with ':', which the router takes for a \
             parameter; choose a path without it, e.g. /metrics"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default() {
        let cli = Cli::try_parse_from(["avepoint-exporter", "--config.file", "x.yml"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.config.config_file, PathBuf::from("x.yml"));
        assert_eq!(cli.serve.listen_addresses, [":10290"]);
        assert!(!cli.serve.systemd_socket);
    }

    #[test]
    fn listen_addresses_repeat_and_replace_the_default() {
        let cli = Cli::try_parse_from([
            "x",
            "--web.listen-address",
            "127.0.0.1:1",
            "--web.listen-address=[::1]:2",
        ])
        .unwrap();
        assert_eq!(cli.serve.listen_addresses, ["127.0.0.1:1", "[::1]:2"]);
    }

    #[test]
    fn the_systemd_socket_excludes_an_explicit_listen_address() {
        // The default address does not count: the flag alone is fine.
        let cli = Cli::try_parse_from(["x", "serve", "--web.systemd-socket"]).unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not the serve command");
        };
        assert!(args.systemd_socket);
        let error =
            Cli::try_parse_from(["x", "--web.systemd-socket", "--web.listen-address", ":1"])
                .unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
        let message = error.to_string();
        assert!(
            message.contains("--web.systemd-socket") && message.contains("--web.listen-address"),
            "{message}"
        );
        // Before a subcommand it is refused like serve's other flags.
        let error = Cli::try_parse_args_from(["x", "--web.systemd-socket", "check"]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("--web.systemd-socket must come after the subcommand"),
            "{error}"
        );
    }

    #[test]
    fn every_serve_flag_before_a_subcommand_is_refused() {
        let serve = ServeArgs::augment_args(clap::Command::new("serve"));
        let longs: Vec<&str> = serve.get_arguments().filter_map(|a| a.get_long()).collect();
        assert_eq!(longs.len(), 7, "{longs:?}");
        for arg in serve.get_arguments() {
            let long = arg.get_long().unwrap();
            let mut args = vec!["x".to_owned(), format!("--{long}")];
            if arg.get_action().takes_values() {
                args.push(match long {
                    "web.telemetry-path" => "/m".into(),
                    "web.max-connections" => "1".into(),
                    _ => "x".into(),
                });
            }
            args.push("check".into());
            let error = Cli::try_parse_args_from(args).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains(&format!("--{long} must come after the subcommand")),
                "{error}"
            );
        }
    }

    #[test]
    fn simulate_listens_where_every_command_does_and_keeps_the_old_flag() {
        for flag in ["--web.listen-address", "--listen"] {
            let cli = Cli::try_parse_from(["x", "simulate", flag, "127.0.0.1:1"]).unwrap();
            let Some(Command::Simulate(args)) = cli.command else {
                panic!("{flag}: not the simulate command");
            };
            assert_eq!(args.listen_address, "127.0.0.1:1", "{flag}");
        }
        let help = Cli::command()
            .find_subcommand_mut("simulate")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--web.listen-address"), "{help}");
        assert!(
            !help.contains("--listen "),
            "the old spelling stays hidden: {help}"
        );
    }

    #[test]
    fn the_telemetry_path_cannot_take_the_exporters_own_pages() {
        for taken in ["/", "/probe", "/sd", "/-/healthy", "/-/reload"] {
            let error = telemetry_path(taken).unwrap_err();
            assert_eq!(
                error,
                format!(
                    "{taken:?} is taken by the exporter's own pages (/, /probe, /sd, /-/...); choose another, e.g. /metrics"
                )
            );
        }
        assert_eq!(
            telemetry_path("/{id}").unwrap_err(),
            "\"/{id}\" contains '{', which cannot be part of the path"
        );
        assert_eq!(
            telemetry_path("metrics").unwrap_err(),
            "\"metrics\" must start with / and name a path, e.g. /metrics"
        );
        for route_syntax in ["/:metrics", "/avepoint/:x/metrics"] {
            let segment = route_syntax
                .rsplit('/')
                .find(|s| s.starts_with(':'))
                .unwrap();
            assert_eq!(
                telemetry_path(route_syntax).unwrap_err(),
                format!(
                    "{route_syntax:?} has a segment {segment:?} starting with ':', which the router \
                     takes for a parameter; choose a path without it, e.g. /metrics"
                )
            );
        }
        for fine in [
            "/metrics",
            "/probe/metrics",
            "/sdk",
            "/avepoint/metrics",
            "/a:b",
        ] {
            assert_eq!(telemetry_path(fine).unwrap(), fine);
        }
    }

    #[test]
    fn rejects_bad_rates_and_paths() {
        assert!(Cli::try_parse_from(["x", "simulate", "--error-rate", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["x", "--web.telemetry-path", "metrics"]).is_err());
    }
}
