//! The real binary: flags, exit codes and the messages a user sees.
//!
//! Nothing here may leave a server running: every run that could serve
//! listens on `127.0.0.1:0`, is expected to exit by itself, and is killed
//! (and the test failed) if it has not exited within [`DEADLINE`].

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_avepoint-exporter");
const DEADLINE: Duration = Duration::from_secs(30);

/// Run the binary from the crate root with no `AVEPOINT_*` variables.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AVEPOINT_CLIENT_ID")
        .env_remove("AVEPOINT_CLIENT_SECRET")
        .env_remove("AVEPOINT_CONFIG_FILE")
        .env_remove("AVEPOINT_LOG_LEVEL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the binary") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            child.kill().expect("killing the binary");
            let _ = child.wait();
            panic!(
                "`avepoint-exporter {}` was still running after {DEADLINE:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_prints_the_crate_version() {
    let output = run(&["-V"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("avepoint-exporter {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// `git` in the crate directory, if this is a checkout with git at hand.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TZ", "UTC")
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn long_version_names_revision_branch_build_date_and_compiler_like_prometheus() {
    let output = run(&["--version"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        lines[0].starts_with(&format!("avepoint-exporter {version} (branch: ")),
        "{text}"
    );
    assert!(lines[1].starts_with("  build date:       "), "{text}");
    assert!(lines[2].starts_with("  rustc version:    rustc "), "{text}");
    assert!(lines[3].starts_with("  platform:         linux/"), "{text}");
    // Built from this checkout: the revision is the commit the binary was
    // built at (HEAD, unless a commit came after the build), the date the
    // commit's.
    if let Some(head) = git(&["rev-parse", "HEAD"]) {
        assert!(
            lines[0].ends_with(&format!(", revision: {head})")),
            "{text}"
        );
        let date = git(&[
            "log",
            "-1",
            "--format=%cd",
            "--date=format-local:%Y%m%d-%H:%M:%S",
        ])
        .unwrap();
        assert_eq!(lines[1], format!("  build date:       {date}"));
    }
}

#[test]
fn help_lists_the_subcommands_and_prometheus_style_flags() {
    let output = run(&["--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let help = stdout(&output);
    for word in [
        "serve",
        "check",
        "demo",
        "simulate",
        "--config.file",
        "--web.listen-address",
        "--web.telemetry-path",
        "--log.level",
        "--log.format",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

/// `check` on the config `file`: it must fail (exit 1) with an error that
/// names the file. Returns the output and its stderr.
fn check_fails(file: &str) -> (Output, String) {
    let output = run(&["check", "--config.file", file]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = stderr(&output);
    assert!(stderr.contains(file), "{stderr}");
    (output, stderr)
}

#[test]
fn check_with_an_invalid_config_names_the_file_and_the_key() {
    let file = "tests/testdata/config/invalid-unknown-avepoint-key.yml";
    let (output, stderr) = check_fails(file);
    assert!(stderr.contains("avepoint.client_idd"), "{stderr}");
    assert!(stderr.contains("unknown field `client_idd`"), "{stderr}");
    assert_eq!(
        stdout(&output),
        "",
        "no table for a config that does not load"
    );
}

#[test]
fn check_does_not_see_the_callers_credentials() {
    // The secret is missing from the file, and the child has no AVEPOINT_* variables.
    let file = "tests/testdata/config/invalid-missing-secret.yml";
    let (_, stderr) = check_fails(file);
    assert!(stderr.contains("avepoint.client_secret_file"), "{stderr}");
    assert!(stderr.contains("AVEPOINT_CLIENT_SECRET"), "{stderr}");
}

#[test]
fn json_logs_carry_the_config_error_as_a_field() {
    let file = "tests/testdata/config/invalid-concurrency-too-high.yml";
    let output = run(&["check", "--config.file", file, "--log.format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = stderr(&output);
    let line = stderr.lines().last().expect("a log line");
    let event: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(event["level"], "ERROR", "{line}");
    assert_eq!(
        event["error"],
        format!("config file {file}: avepoint.concurrency: must be between 1 and 1024, got 5000"),
        "{line}"
    );
}

/// Serving with `args` on 127.0.0.1:0 fails (exit 1) before listening; returns its stderr.
fn serve_fails(args: &[&str]) -> String {
    let output = run(&[args, &["--web.listen-address", "127.0.0.1:0"]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = stderr(&output);
    assert!(!stderr.contains("listening"), "{stderr}");
    stderr
}

#[test]
fn serve_with_a_missing_config_exits_at_once_naming_the_file() {
    let stderr = serve_fails(&["--config.file", "missing.yml"]);
    assert!(
        stderr.contains("config file missing.yml: cannot read it"),
        "{stderr}"
    );
}

#[test]
fn serve_subcommand_with_an_invalid_config_exits_at_once() {
    let file = "tests/testdata/config/invalid-empty-profile-ids.yml";
    let stderr = serve_fails(&["serve", "--config.file", file]);
    assert!(stderr.contains(file), "{stderr}");
    assert!(stderr.contains("targets[1].profile_ids"), "{stderr}");
}

#[test]
fn an_invalid_log_level_is_an_error() {
    // The config is missing too, so a binary that accepts the level still
    // exits, but with the config error instead of naming --log.level.
    for level in ["nonsense", "warn,["] {
        let output = run(&[
            "--log.level",
            level,
            "--config.file",
            "tests/testdata/config/does-not-exist.yml",
            "--web.listen-address",
            "127.0.0.1:0",
        ]);
        let stderr = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(2),
            "--log.level {level}: {stderr}"
        );
        assert!(
            stderr.contains("--log.level"),
            "--log.level {level}: {stderr}"
        );
        assert!(stderr.contains(level), "--log.level {level}: {stderr}");
    }
}

#[test]
fn global_flags_work_before_the_subcommand() {
    let file = "tests/testdata/config/invalid-unknown-key.yml";
    for args in [
        ["--log.level", "debug", "check", "--config.file", file],
        ["--log.format", "json", "check", "--config.file", file],
        ["check", "--log.level", "debug", "--config.file", file],
    ] {
        let output = run(&args);
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("scrape_interval"), "{args:?}: {stderr}");
    }
}

#[test]
fn simulate_rejects_an_error_rate_above_one() {
    let output = run(&["simulate", "--listen", "127.0.0.1:0", "--error-rate", "2"]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--error-rate"), "{stderr}");
    assert!(
        stderr.contains("\"2\" is not a rate between 0 and 1"),
        "{stderr}"
    );
}

/// `--web.telemetry-path path` on a valid config is refused (exit 2), not a panic; returns stderr.
fn telemetry_path_refused(path: &str) -> String {
    let output = run(&[
        "--config.file",
        "tests/testdata/config/valid-minimal.yml",
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.telemetry-path",
        path,
    ]);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{path}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_telemetry_path_that_shadows_a_page_is_refused_naming_the_flag() {
    for path in ["/probe", "/sd", "/", "/-/healthy"] {
        let stderr = telemetry_path_refused(path);
        assert!(
            stderr.contains(&format!(
                "invalid value '{path}' for '--web.telemetry-path <TELEMETRY_PATH>'"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains("is taken by the exporter's own pages"),
            "{stderr}"
        );
    }
}

/// axum 0.7's parameter syntax panicked at start under axum 0.8 (issue #20):
/// now clap refuses it, naming the flag and the segment, exit code 2.
#[test]
fn a_telemetry_path_in_route_syntax_is_refused_not_a_panic() {
    for (path, segment) in [("/:metrics", ":metrics"), ("/a/:b/metrics", ":b")] {
        let stderr = telemetry_path_refused(path);
        assert!(
            stderr.contains(&format!(
                "invalid value '{path}' for '--web.telemetry-path <TELEMETRY_PATH>': \
                 {path:?} has a segment {segment:?} starting with ':'"
            )),
            "{stderr}"
        );
    }
}

/// The runtime's worker threads of a running `simulate`, counted from
/// outside by their names (Tokio's `tokio-rt-worker`), once the count has
/// held for 300 ms (the runtime starts them all at once).
fn worker_threads(extra: &[&str]) -> usize {
    let mut args = vec!["simulate", "--web.listen-address", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = Command::new(BIN)
        .args(&args)
        .env_remove("AVEPOINT_RUNTIME_WORKER_THREADS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let count = || {
        std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .map(|tasks| {
                tasks
                    .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                    .filter(|name| name.trim() == "tokio-rt-worker")
                    .count()
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    let (mut workers, mut since) = (0, Instant::now());
    while started.elapsed() < DEADLINE {
        let now = count();
        if now != workers {
            (workers, since) = (now, Instant::now());
        } else if workers > 0 && since.elapsed() > Duration::from_millis(300) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("killing the binary");
    let _ = child.wait();
    workers
}

/// One worker thread by default, as node_exporter's GOMAXPROCS=1; the flag
/// sets another count; a count that is no number is refused naming it.
#[test]
#[cfg(target_os = "linux")]
fn the_runtime_has_one_worker_thread_unless_told_otherwise() {
    assert_eq!(worker_threads(&[]), 1);
    assert_eq!(worker_threads(&["--runtime.worker-threads", "3"]), 3);
    let output = run(&["--runtime.worker-threads", "many", "--version"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--runtime.worker-threads"),
        "{}",
        stderr(&output)
    );
}
