//! Build metadata for `--version` and `avepoint_exporter_build_info`, the
//! way Prometheus' own binaries carry it: revision, branch, build date and
//! compiler.
//!
//! From a git checkout they come from git (the date is the commit's, so two
//! builds of one commit are alike). Where there is no `.git` (a source
//! tarball, `cargo install`, a container build context without it), the
//! environment may supply them (`AVEPOINT_EXPORTER_REVISION`,
//! `AVEPOINT_EXPORTER_BRANCH`, `AVEPOINT_EXPORTER_BUILD_DATE`, or
//! `SOURCE_DATE_EPOCH` for the date); otherwise they read `unknown`.

use std::process::Command;

const OVERRIDES: [&str; 4] = [
    "AVEPOINT_EXPORTER_REVISION",
    "AVEPOINT_EXPORTER_BRANCH",
    "AVEPOINT_EXPORTER_BUILD_DATE",
    "SOURCE_DATE_EPOCH",
];

/// `git args...` in the package directory, trimmed; `None` on any failure.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .env("TZ", "UTC")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// `SOURCE_DATE_EPOCH` (seconds) as Prometheus' `20060102-15:04:05`, in UTC.
fn epoch_date(seconds: &str) -> Option<String> {
    let seconds: i64 = seconds.trim().parse().ok()?;
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}{month:02}{day:02}-{:02}:{:02}:{:02}",
        time / 3600,
        time % 3600 / 60,
        time % 60
    ))
}

fn main() {
    for name in OVERRIDES {
        println!("cargo:rerun-if-env-changed={name}");
    }
    // A commit or a checkout moves HEAD or the branch it points at.
    for path in ["HEAD", "packed-refs"] {
        if let Some(file) = git(&["rev-parse", "--path-format=absolute", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git(&[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            &reference,
        ])
    {
        println!("cargo:rerun-if-changed={file}");
    }

    let revision = env("AVEPOINT_EXPORTER_REVISION")
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let branch = env("AVEPOINT_EXPORTER_BRANCH")
        .or_else(|| git(&["rev-parse", "--abbrev-ref", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let build_date = env("AVEPOINT_EXPORTER_BUILD_DATE")
        .or_else(|| env("SOURCE_DATE_EPOCH").and_then(|s| epoch_date(&s)))
        .or_else(|| {
            git(&[
                "log",
                "-1",
                "--format=%cd",
                "--date=format-local:%Y%m%d-%H:%M:%S",
            ])
        })
        .unwrap_or_else(|| "unknown".into());
    let rustc = env("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let platform = format!(
        "{}/{}",
        env("CARGO_CFG_TARGET_OS").unwrap_or_default(),
        env("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
    );
    for (name, value) in [
        ("AVEPOINT_EXPORTER_REVISION", revision),
        ("AVEPOINT_EXPORTER_BRANCH", branch),
        ("AVEPOINT_EXPORTER_BUILD_DATE", build_date),
        ("AVEPOINT_EXPORTER_RUSTC_VERSION", rustc_version),
        ("AVEPOINT_EXPORTER_PLATFORM", platform),
    ] {
        // Newlines would end the directive; nothing legitimate has them.
        println!(
            "cargo:rustc-env={name}={}",
            value.replace(['\n', '\r'], " ")
        );
    }
}
