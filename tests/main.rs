//! The integration tests: one test crate, a module per subject, so that
//! `tests/common` (the simulator-and-exporter harness) is compiled and
//! linked once, not once per file. Each module's own doc comment says what
//! it covers; `cargo test --locked` runs them all, `cargo test --test
//! integration exporter::` one module.

mod common;

mod api_fixtures;
mod architecture;
mod backup;
mod bulkheads;
mod cli;
mod client_assertion;
mod config;
mod discovery;
mod documented_samples;
mod endpoint;
mod exporter;
mod formats;
mod hostile_connections;
mod hostile_responses;
mod hostile_upstream;
mod labels;
mod listen;
mod permissions;
mod process;
mod profile_details;
mod reload;
mod report_schedule;
mod resilience;
mod rounds;
mod status_state;
mod streaming;
mod tls_upstream;
mod upstream_bounds;
mod web_config;
mod web_config_bcrypt;

/// With `autotests = false` (Cargo.toml), a file of `tests/` without its
/// `mod` line above is never compiled, so its tests never run: none may be
/// left out.
#[test]
fn every_file_of_tests_is_a_module_of_this_crate() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(tests.join("main.rs")).unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|ext| ext == "rs") && stem != "main" {
            files += 1;
            assert!(
                main.lines().any(|line| line == format!("mod {stem};")),
                "tests/{stem}.rs has no `mod {stem};` in tests/main.rs"
            );
        }
    }
    assert!(files >= 30, "{files} files");
}
