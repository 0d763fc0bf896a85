//! Thin entry point: parse the command line, set up logging, run a subcommand.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use avepoint_exporter::app;
use avepoint_exporter::cli::{Cli, Command, LogArgs, LogFormat};

/// mimalloc, not glibc's malloc: a scrape makes a few dozen short-lived
/// allocations per AvePoint request, across threads, and
/// glibc's per-thread arenas made that about 12 % of the exporter's CPU
/// (BENCHMARKS.md, "CPU per profile, measured from outside"). Built
/// without transparent huge pages (`no_thp`), its peak RSS is no higher
/// than glibc's; with them it was 9 MiB higher.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(log: &LogArgs) -> Result<(), String> {
    let filter = EnvFilter::try_new(&log.level)
        .map_err(|error| format!("invalid --log.level {:?}: {error}", log.level))?;
    let registry = tracing_subscriber::registry().with(filter);
    match log.format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    if let Err(message) = init_logging(&cli.log) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let runtime = match app::runtime(cli.runtime.worker_threads) {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None => app::serve(cli.serve).await.map(|()| true),
            Some(Command::Serve(args)) => app::serve(args).await.map(|()| true),
            Some(Command::Check(args)) => app::check(args).await,
            Some(Command::Demo(args)) => app::demo(args).await.map(|()| true),
            Some(Command::Simulate(args)) => app::simulate(args).await.map(|()| true),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            tracing::error!(error = %error, "exiting");
            ExitCode::FAILURE
        }
    }
}
