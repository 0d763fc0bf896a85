//! What this binary is: version, source revision and build, as `--version`
//! prints it and `avepoint_exporter_build_info` exports it. Filled in by
//! `build.rs` (from git, or the build environment, or `unknown`).
//!
//! At the bottom of the module graph; imports nothing of the crate.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from, or `unknown`.
pub const REVISION: &str = env!("AVEPOINT_EXPORTER_REVISION");
/// The git branch (or `HEAD` for a detached checkout, as a tag build is).
pub const BRANCH: &str = env!("AVEPOINT_EXPORTER_BRANCH");
/// When the commit was made (UTC, `20060102-15:04:05`), or `unknown`.
pub const BUILD_DATE: &str = env!("AVEPOINT_EXPORTER_BUILD_DATE");
/// `rustc --version` of the compiler that built it.
pub const RUSTC_VERSION: &str = env!("AVEPOINT_EXPORTER_RUSTC_VERSION");

/// `--version`'s text after the program name, laid out as Prometheus does;
/// the only user of the target platform (`linux/x86_64`), so it has no
/// const of its own (`concat!` takes literals, not consts).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (branch: ",
    env!("AVEPOINT_EXPORTER_BRANCH"),
    ", revision: ",
    env!("AVEPOINT_EXPORTER_REVISION"),
    ")\n  build date:       ",
    env!("AVEPOINT_EXPORTER_BUILD_DATE"),
    "\n  rustc version:    ",
    env!("AVEPOINT_EXPORTER_RUSTC_VERSION"),
    "\n  platform:         ",
    env!("AVEPOINT_EXPORTER_PLATFORM"),
);
