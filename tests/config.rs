//! The config loader against `tests/testdata/config/`: one `invalid-*.yml`
//! per rule, each asserting the exact message (file, key, what is wrong),
//! and the valid files asserting every value and default.
//!
//! Environment variables come from a closure, never from the process
//! environment, so these tests neither see nor change the caller's
//! `AVEPOINT_*` variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use avepoint_exporter::config::{
    ConfigError, Environment, LastStatusState, ProfileEndpoint, Settings,
};
use secrecy::ExposeSecret;

const DIR: &str = "tests/testdata/config";
const CUSTOMER: &str = "caf90000-2cc6-4000-b04b-794c00005ea3";
const CUSTOMER_2: &str = "0d6f3a1e-77b2-4c85-9e10-3a4b5c6d7e8f";
const PROFILE: &str = "47dba9a1-1004-4c2d-b2ce-8f5e66f5842d";
const PROFILE_2: &str = "5b1c7e52-9a0f-4d7e-8a13-2f6c1d9e0b44";
/// The content of `client-secret.txt`, without its trailing newline.
const FILE_SECRET: &str = "v3ry-s3cret-value";
const ENV_SECRET: &str = "s3cret-from-the-environment";

fn file(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// An environment holding exactly `vars`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    move |name| {
        vars.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(name: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(&file(name), env(vars))
}

/// A config with only `avepoint_lines` under `avepoint:` and one target.
fn yaml(avepoint_lines: &str) -> String {
    format!(
        "avepoint:\n  client_id: the-client\n{avepoint_lines}targets:\n  - customer_id: {CUSTOMER}\n    profile_ids: [{PROFILE}]\n"
    )
}

fn from_yaml(text: &str) -> Result<Settings, ConfigError> {
    Settings::from_yaml(
        text,
        &file("inline.yml"),
        env(&[("AVEPOINT_CLIENT_SECRET", ENV_SECRET)]),
    )
}

/// Environment variables a case is loaded with: (name, value).
type Vars = &'static [(&'static str, &'static str)];

/// Every `invalid-*.yml`, the environment it is loaded with, and the exact message.
const INVALID: &[(&str, Vars, &str)] = &[
    (
        "invalid-unknown-key.yml",
        &[],
        "config file tests/testdata/config/invalid-unknown-key.yml: scrape_interval: \
         unknown field `scrape_interval`, expected one of `avepoint`, `targets`, `discovery`, `profile_details`, `collectors`, `metrics` at line 7 column 1",
    ),
    (
        "invalid-unknown-avepoint-key.yml",
        &[],
        "config file tests/testdata/config/invalid-unknown-avepoint-key.yml: avepoint.client_idd: \
         unknown field `client_idd`, expected one of `environment`, `base_url`, `token_url`, \
         `client_id`, `client_secret_file`, `client_certificate_file`, `client_private_key_file`, \
         `ca_file`, \
         `scope`, `endpoint`, `request_timeout`, `round_timeout`, `concurrency`, \
         `cache_ttl`, `max_requests_per_second`, `max_response_bytes` \
         at line 2 column 3",
    ),
    (
        "invalid-unknown-target-key.yml",
        &[],
        "config file tests/testdata/config/invalid-unknown-target-key.yml: targets[0].profile_id: \
         unknown field `profile_id`, expected `customer_id` or `profile_ids` at line 6 column 5",
    ),
    (
        "invalid-missing-avepoint.yml",
        &[],
        "config file tests/testdata/config/invalid-missing-avepoint.yml: avepoint: \
         missing: add an avepoint: section with at least client_id",
    ),
    (
        "invalid-missing-client-id.yml",
        &[],
        "config file tests/testdata/config/invalid-missing-client-id.yml: avepoint.client_id: \
         missing: set it in the file or in AVEPOINT_CLIENT_ID",
    ),
    (
        // A blank variable is no client id either.
        "invalid-missing-client-id.yml",
        &[("AVEPOINT_CLIENT_ID", "  ")],
        "config file tests/testdata/config/invalid-missing-client-id.yml: avepoint.client_id: \
         missing: set it in the file or in AVEPOINT_CLIENT_ID",
    ),
    (
        "invalid-missing-secret.yml",
        &[],
        "config file tests/testdata/config/invalid-missing-secret.yml: avepoint.client_secret_file: \
         no client credential: set avepoint.client_secret_file or AVEPOINT_CLIENT_SECRET, \
         or avepoint.client_certificate_file and avepoint.client_private_key_file",
    ),
    (
        // A blank variable is no secret either.
        "invalid-missing-secret.yml",
        &[("AVEPOINT_CLIENT_SECRET", " \n")],
        "config file tests/testdata/config/invalid-missing-secret.yml: avepoint.client_secret_file: \
         no client credential: set avepoint.client_secret_file or AVEPOINT_CLIENT_SECRET, \
         or avepoint.client_certificate_file and avepoint.client_private_key_file",
    ),
    (
        // Resolved next to the config file, and the message shows where it looked.
        "invalid-unreadable-secret-file.yml",
        &[],
        "config file tests/testdata/config/invalid-unreadable-secret-file.yml: \
         avepoint.client_secret_file: cannot read tests/testdata/config/does-not-exist.txt: \
         No such file or directory (os error 2)",
    ),
    (
        "invalid-empty-secret-file.yml",
        &[],
        "config file tests/testdata/config/invalid-empty-secret-file.yml: \
         avepoint.client_secret_file: tests/testdata/config/client-secret-empty.txt is empty",
    ),
    (
        "invalid-empty-targets.yml",
        &[],
        "config file tests/testdata/config/invalid-empty-targets.yml: targets: \
         is empty: list at least one customer_id with its profile_ids, or enable discovery",
    ),
    (
        "invalid-empty-profile-ids.yml",
        &[],
        "config file tests/testdata/config/invalid-empty-profile-ids.yml: targets[1].profile_ids: \
         is empty: list at least one scan profile id",
    ),
    (
        "invalid-customer-uuid.yml",
        &[],
        "config file tests/testdata/config/invalid-customer-uuid.yml: targets[0].customer_id: \
         \"acme-corp\" is not a UUID: invalid character: found `m` at 2 at line 5 column 18",
    ),
    (
        "invalid-profile-uuid.yml",
        &[],
        "config file tests/testdata/config/invalid-profile-uuid.yml: targets[0].profile_ids[1]: \
         \"47dba9a1-1004-4c2d-b2ce-8f5e66f5842\" is not a UUID: invalid group length in group 4: expected 12, found 11 \
         at line 8 column 9",
    ),
    (
        // The duplicate is written in upper case: ids are compared normalised.
        "invalid-duplicate-profile.yml",
        &[],
        "config file tests/testdata/config/invalid-duplicate-profile.yml: targets[2].profile_ids[0]: \
         profile 5b1c7e52-9a0f-4d7e-8a13-2f6c1d9e0b44 of customer \
         caf90000-2cc6-4000-b04b-794c00005ea3 is listed twice",
    ),
    (
        "invalid-bad-duration.yml",
        &[],
        "config file tests/testdata/config/invalid-bad-duration.yml: avepoint.request_timeout: \
         invalid duration \"10 seconds please\": expected number at 11 at line 4 column 20",
    ),
    (
        "invalid-zero-timeout.yml",
        &[],
        "config file tests/testdata/config/invalid-zero-timeout.yml: avepoint.request_timeout: \
         must be greater than 0",
    ),
    (
        "invalid-collectors-all-disabled.yml",
        &[],
        "config file tests/testdata/config/invalid-collectors-all-disabled.yml: collectors: \
         every collector is disabled: enable at least one",
    ),
    (
        "invalid-backup-scope-missing.yml",
        &[],
        "config file tests/testdata/config/invalid-backup-scope-missing.yml: avepoint.scope: \
         collectors.backup_jobs needs the permission elements.jobs.read.all; add it to the scope",
    ),
    (
        "invalid-backup-interval.yml",
        &[],
        "config file tests/testdata/config/invalid-backup-interval.yml: \
         collectors.backup_coverage.refresh_interval: must be at least 1m: every refresh asks \
         AvePoint for every customer's pages",
    ),
    (
        "invalid-protected-users-without-discovery.yml",
        &[],
        "config file tests/testdata/config/invalid-protected-users-without-discovery.yml: \
         collectors.protected_users: needs discovery: the tenants whose users it counts come \
         from discovery's customer list; enable discovery",
    ),
    (
        "invalid-profile-details-interval.yml",
        &[],
        "config file tests/testdata/config/invalid-profile-details-interval.yml: \
         profile_details.refresh_interval: must be at least 1m: every refresh asks AvePoint once per profile",
    ),
    (
        "invalid-round-timeout-zero.yml",
        &[],
        "config file tests/testdata/config/invalid-round-timeout-zero.yml: avepoint.round_timeout: \
         must be greater than 0",
    ),
    (
        "invalid-round-timeout-too-long.yml",
        &[],
        "config file tests/testdata/config/invalid-round-timeout-too-long.yml: avepoint.round_timeout: \
         must be at most 1h, got 2h 30m",
    ),
    (
        "invalid-concurrency-zero.yml",
        &[],
        "config file tests/testdata/config/invalid-concurrency-zero.yml: avepoint.concurrency: \
         must be between 1 and 1024, got 0",
    ),
    (
        "invalid-concurrency-too-high.yml",
        &[],
        "config file tests/testdata/config/invalid-concurrency-too-high.yml: avepoint.concurrency: \
         must be between 1 and 1024, got 5000",
    ),
    (
        "invalid-unknown-environment.yml",
        &[],
        "config file tests/testdata/config/invalid-unknown-environment.yml: avepoint.environment: \
         unknown variant `azure`, expected one of `commercial`, `gov`, `aos2`, `fedramp` \
         at line 2 column 16",
    ),
    (
        "invalid-last-status-state.yml",
        &[],
        "config file tests/testdata/config/invalid-last-status-state.yml: metrics.last_status_state: \
         unknown variant `some`, expected one of `all`, `current`, `none` \
         at line 8 column 22",
    ),
    (
        "invalid-unknown-endpoint.yml",
        &[],
        "config file tests/testdata/config/invalid-unknown-endpoint.yml: avepoint.endpoint: \
         unknown variant `scan-profiles-v3`, expected one of `auto`, `scan-profiles-v2`, `changes` \
         at line 4 column 13",
    ),
    (
        "invalid-http-base-url.yml",
        &[],
        "config file tests/testdata/config/invalid-http-base-url.yml: avepoint.base_url: \
         \"http://graph.avepointonlineservices.com\" uses plain http, which is only allowed \
         for loopback hosts; use https",
    ),
    (
        "invalid-ftp-token-url.yml",
        &[],
        "config file tests/testdata/config/invalid-ftp-token-url.yml: avepoint.token_url: \
         \"ftp://identity.avepointonlineservices.com/connect/token\" has scheme \"ftp\"; use https",
    ),
    (
        "invalid-base-url-not-a-url.yml",
        &[],
        "config file tests/testdata/config/invalid-base-url-not-a-url.yml: avepoint.base_url: \
         invalid URL \"graph.avepointonlineservices.com\": relative URL without a base",
    ),
    (
        "invalid-yaml-syntax.yml",
        &[],
        "config file tests/testdata/config/invalid-yaml-syntax.yml: targets[0].profile_ids: \
         did not find expected ',' or ']' at line 8 column 1, \
         while parsing a flow sequence at line 6 column 18",
    ),
];

#[test]
fn every_invalid_file_fails_with_its_exact_message() {
    let mut mismatches = Vec::new();
    for (name, vars, expected) in INVALID {
        match load(name, vars) {
            Ok(settings) => mismatches.push(format!("{name}: loaded: {settings:?}")),
            Err(error) => {
                let message = error.to_string();
                if message != *expected {
                    mismatches.push(format!(
                        "{name}:\n  expected: {expected}\n  actual:   {message}"
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "\n{}\n", mismatches.join("\n"));
}

#[test]
fn every_invalid_file_has_a_case() {
    let mut files: Vec<String> = std::fs::read_dir(DIR)
        .expect("the testdata directory")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("invalid-"))
        .collect();
    files.sort();
    let untested: Vec<&String> = files
        .iter()
        .filter(|name| !INVALID.iter().any(|(case, _, _)| case == name))
        .collect();
    assert!(untested.is_empty(), "no case for {untested:?}");
    assert!(files.len() >= 23, "only {} invalid files", files.len());
}

#[test]
fn invalid_files_are_invalid_only_for_their_rule() {
    // Each invalid file is rejected with its own rule even when the
    // environment supplies both credentials (except the client-id and
    // secret cases, which the environment would fix).
    let both = [
        ("AVEPOINT_CLIENT_ID", "the-client"),
        ("AVEPOINT_CLIENT_SECRET", ENV_SECRET),
    ];
    for (name, _, expected) in INVALID {
        let error = load(name, &both);
        let fixed_by_env = [
            "invalid-missing-client-id.yml",
            "invalid-missing-secret.yml",
            "invalid-unreadable-secret-file.yml",
            "invalid-empty-secret-file.yml",
        ];
        if fixed_by_env.contains(name) {
            assert!(error.is_ok(), "{name}: {error:?}");
        } else {
            assert_eq!(error.unwrap_err().to_string(), *expected, "{name}");
        }
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let error = Settings::load(&file("does-not-exist.yml"), no_env).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "config file tests/testdata/config/does-not-exist.yml: cannot read it: \
         No such file or directory (os error 2)"
    );
}

#[test]
fn valid_minimal_gets_the_defaults() {
    let settings = load(
        "valid-minimal.yml",
        &[("AVEPOINT_CLIENT_SECRET", ENV_SECRET)],
    )
    .unwrap();
    assert_eq!(settings.source, file("valid-minimal.yml"));
    let avepoint = &settings.avepoint;
    assert_eq!(avepoint.environment, Environment::Commercial);
    assert_eq!(
        avepoint.base_url.as_str(),
        "https://graph.avepointonlineservices.com/"
    );
    assert_eq!(
        avepoint.token_url.as_str(),
        "https://identity.avepointonlineservices.com/connect/token"
    );
    assert_eq!(avepoint.client_id, "11111111-2222-3333-4444-555555555555");
    assert_eq!(
        avepoint.credential.secret().unwrap().expose_secret(),
        ENV_SECRET
    );
    assert_eq!(avepoint.scope, "elements.scanprofiles.read.all");
    assert_eq!(avepoint.endpoint, ProfileEndpoint::Auto);
    assert_eq!(avepoint.endpoint.name(), "auto");
    assert_eq!(avepoint.limits.request_timeout, Duration::from_secs(10));
    assert_eq!(avepoint.limits.round_timeout, Duration::from_millis(9500));
    assert_eq!(avepoint.limits.concurrency, 8);
    let targets: Vec<(&str, &str)> = settings
        .targets
        .iter()
        .map(|target| (target.customer_id.as_str(), target.profile_id.as_str()))
        .collect();
    assert_eq!(targets, [(CUSTOMER, PROFILE)]);
}

#[test]
fn profile_details_follow_discovery_unless_set_or_disabled() {
    let interval = |text: &str| {
        from_yaml(text)
            .unwrap()
            .profile_details
            .map(|details| details.refresh_interval)
    };
    let base = yaml("");
    // On by default: hourly without discovery, on discovery's cadence with it.
    assert_eq!(interval(&base), Some(Duration::from_secs(3600)));
    assert_eq!(
        interval(&format!(
            "{base}discovery:\n  enabled: true\n  refresh_interval: 20m\n"
        )),
        Some(Duration::from_secs(1200))
    );
    assert_eq!(
        interval(&format!(
            "{base}discovery:\n  enabled: true\n  refresh_interval: 20m\nprofile_details:\n  refresh_interval: 6h\n"
        )),
        Some(Duration::from_secs(6 * 3600))
    );
    assert_eq!(
        interval(&format!(
            "{base}profile_details:\n  enabled: false\n  refresh_interval: 1s\n"
        )),
        None
    );
}

#[test]
fn each_collector_adds_only_its_own_permission() {
    let base = yaml("");
    let scope = |text: String| from_yaml(&text).unwrap().avepoint.scope;
    assert_eq!(scope(base.clone()), "elements.scanprofiles.read.all");
    assert_eq!(
        scope(format!(
            "{base}collectors:\n  backup_jobs:\n    enabled: true\n  backup_coverage:\n    enabled: true\n"
        )),
        "elements.scanprofiles.read.all elements.jobs.read.all elements.cbprotected.read.all"
    );
    let backup_only = format!(
        "avepoint:\n  client_id: c\ntargets:\n  - customer_id: {CUSTOMER}\n  - customer_id: {CUSTOMER_2}\n    profile_ids: [{PROFILE}]\ncollectors:\n  scan_profiles:\n    enabled: false\n  backup_coverage:\n    enabled: true\ndiscovery:\n  enabled: true\n"
    );
    let settings = from_yaml(&backup_only).unwrap();
    assert_eq!(
        settings.avepoint.scope,
        "elements.cbprotected.read.all elements.customers.read.all"
    );
    // Without the scan profile collector only the customers count: no
    // profile targets, no details, and discovery lists customers only.
    assert!(settings.targets.is_empty());
    assert_eq!(settings.customers, [CUSTOMER, CUSTOMER_2]);
    assert!(settings.profile_details.is_none());
    assert!(!settings.discovery.unwrap().list_profiles);
    let coverage = settings.collectors.backup_coverage.unwrap();
    assert_eq!(coverage.refresh_interval, Duration::from_secs(3600));
    // protected_users shares coverage's permission: asked for once.
    let licences = format!(
        "{base}discovery:\n  enabled: true\ncollectors:\n  backup_coverage:\n    enabled: true\n  protected_users:\n    enabled: true\n  subscriptions:\n    enabled: true\n"
    );
    let settings = from_yaml(&licences).unwrap();
    assert_eq!(
        settings.avepoint.scope,
        "elements.scanprofiles.read.all elements.cbprotected.read.all elements.license.read.all elements.customers.read.all"
    );
    let users = settings.collectors.protected_users.unwrap();
    assert_eq!(users.refresh_interval, Duration::from_secs(6 * 3600));
    let subscriptions = settings.collectors.subscriptions.unwrap();
    assert_eq!(subscriptions.refresh_interval, Duration::from_secs(3600));
}

#[test]
fn valid_full_has_every_value_as_written() {
    let settings = load("valid-full.yml", &[]).unwrap();
    let avepoint = &settings.avepoint;
    assert_eq!(avepoint.environment, Environment::Gov);
    assert_eq!(
        avepoint.base_url.as_str(),
        "https://graph-us.avepointonlineservices.com/"
    );
    assert_eq!(
        avepoint.token_url.as_str(),
        "https://identity-gov.avepointonlineservices.com/connect/token"
    );
    assert_eq!(avepoint.client_id, "11111111-2222-3333-4444-555555555555");
    // Read from client-secret.txt next to the config, trailing newline trimmed.
    assert_eq!(
        avepoint.credential.secret().unwrap().expose_secret(),
        FILE_SECRET
    );
    assert_eq!(
        avepoint.scope,
        "elements.scanprofiles.read.all elements.customers.read.all"
    );
    assert_eq!(avepoint.endpoint, ProfileEndpoint::Changes);
    assert_eq!(avepoint.limits.request_timeout, Duration::from_secs(90));
    assert_eq!(
        avepoint.limits.round_timeout,
        Duration::from_secs(29) + Duration::from_millis(500)
    );
    assert_eq!(avepoint.limits.concurrency, 16);
    let targets: Vec<(&str, &str)> = settings
        .targets
        .iter()
        .map(|target| (target.customer_id.as_str(), target.profile_id.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            (CUSTOMER, PROFILE),
            (CUSTOMER, PROFILE_2),
            (CUSTOMER_2, PROFILE),
        ]
    );
}

#[test]
fn the_secret_file_really_ends_with_a_newline() {
    // Guards valid_full_has_every_value_as_written against an editor
    // stripping the newline it proves is trimmed.
    let raw = std::fs::read_to_string(file("client-secret.txt")).unwrap();
    assert_eq!(raw, format!("{FILE_SECRET}\n"));
}

#[test]
fn every_environment_preset_has_the_documented_urls() {
    // The table in avepoint-api.md: environment, token URL, API base URL.
    let presets = [
        (
            "commercial",
            Environment::Commercial,
            "https://identity.avepointonlineservices.com/connect/token",
            "https://graph.avepointonlineservices.com/",
        ),
        (
            "gov",
            Environment::Gov,
            "https://identity-gov.avepointonlineservices.com/connect/token",
            "https://graph-gov.avepointonlineservices.com/",
        ),
        (
            "aos2",
            Environment::Aos2,
            "https://identity-aos2.avepointonlineservices.com/connect/token",
            "https://graph-aos2.avepointonlineservices.com/",
        ),
        (
            "fedramp",
            Environment::Fedramp,
            "https://identity.online15.net/connect/token",
            "https://graphusgovapi.online15.net/",
        ),
    ];
    for (name, environment, token_url, base_url) in presets {
        let settings = from_yaml(&yaml(&format!("  environment: {name}\n"))).unwrap();
        assert_eq!(settings.avepoint.environment, environment, "{name}");
        assert_eq!(settings.avepoint.token_url.as_str(), token_url, "{name}");
        assert_eq!(settings.avepoint.base_url.as_str(), base_url, "{name}");
        assert_eq!(environment.token_url(), token_url, "{name}");
        assert_eq!(
            format!("{}/", environment.base_url().trim_end_matches('/')),
            base_url,
            "{name}"
        );
    }
}

#[test]
fn url_overrides_win_over_the_environment() {
    let settings = from_yaml(&yaml(
        "  environment: fedramp\n  base_url: https://graph-de.avepointonlineservices.com\n",
    ))
    .unwrap();
    assert_eq!(
        settings.avepoint.base_url.as_str(),
        "https://graph-de.avepointonlineservices.com/"
    );
    // Only the overridden URL changes.
    assert_eq!(
        settings.avepoint.token_url.as_str(),
        "https://identity.online15.net/connect/token"
    );
}

#[test]
fn the_environment_overrides_the_file() {
    let settings = load(
        "valid-full.yml",
        &[
            ("AVEPOINT_CLIENT_ID", "client-from-env"),
            ("AVEPOINT_CLIENT_SECRET", ENV_SECRET),
        ],
    )
    .unwrap();
    assert_eq!(settings.avepoint.client_id, "client-from-env");
    assert_eq!(secret_of(&settings), ENV_SECRET);
}

#[test]
fn each_variable_overrides_only_its_own_value() {
    let settings = load(
        "valid-full.yml",
        &[("AVEPOINT_CLIENT_ID", "client-from-env")],
    )
    .unwrap();
    assert_eq!(settings.avepoint.client_id, "client-from-env");
    assert_eq!(secret_of(&settings), FILE_SECRET);

    let settings = load("valid-full.yml", &[("AVEPOINT_CLIENT_SECRET", ENV_SECRET)]).unwrap();
    assert_eq!(
        settings.avepoint.client_id,
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(secret_of(&settings), ENV_SECRET);
}

#[test]
fn environment_values_are_trimmed_and_blank_ones_ignored() {
    let settings = load(
        "valid-full.yml",
        &[
            ("AVEPOINT_CLIENT_ID", " client-from-env\n"),
            ("AVEPOINT_CLIENT_SECRET", " padded-secret \n"),
        ],
    )
    .unwrap();
    assert_eq!(settings.avepoint.client_id, "client-from-env");
    assert_eq!(secret_of(&settings), "padded-secret");

    // A blank variable (e.g. an empty Kubernetes env entry) falls back to the file.
    let settings = load(
        "valid-full.yml",
        &[("AVEPOINT_CLIENT_ID", ""), ("AVEPOINT_CLIENT_SECRET", "")],
    )
    .unwrap();
    assert_eq!(
        settings.avepoint.client_id,
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(secret_of(&settings), FILE_SECRET);
}

#[test]
fn client_id_can_come_from_the_environment_alone() {
    let settings = load(
        "invalid-missing-client-id.yml",
        &[("AVEPOINT_CLIENT_ID", "client-from-env")],
    )
    .unwrap();
    assert_eq!(settings.avepoint.client_id, "client-from-env");
}

#[test]
fn plain_http_is_accepted_for_loopback_hosts() {
    for url in [
        "http://127.0.0.1:10291",
        "http://127.0.0.1:10291/",
        "http://localhost",
        "http://localhost:8080/api/",
        "http://[::1]",
        "http://[::1]:10291",
    ] {
        let settings =
            from_yaml(&yaml(&format!("  base_url: {url}\n  token_url: {url}\n"))).unwrap();
        let parsed = url::Url::parse(url).unwrap();
        assert_eq!(settings.avepoint.base_url, parsed, "{url}");
        assert_eq!(settings.avepoint.token_url, parsed, "{url}");
    }
}

#[test]
fn plain_http_is_rejected_for_names_that_only_look_local() {
    for url in [
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://10.0.0.1",
    ] {
        let error = from_yaml(&yaml(&format!("  token_url: {url}\n"))).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "config file tests/testdata/config/inline.yml: avepoint.token_url: \
                 \"{url}\" uses plain http, which is only allowed for loopback hosts; use https"
            )
        );
    }
}

#[test]
fn durations_are_written_like_prometheus_ones() {
    for (text, expected) in [
        ("500ms", Duration::from_millis(500)),
        ("10s", Duration::from_secs(10)),
        ("1m30s", Duration::from_secs(90)),
        ("2m", Duration::from_secs(120)),
    ] {
        let settings = from_yaml(&yaml(&format!("  request_timeout: {text}\n"))).unwrap();
        assert_eq!(settings.avepoint.limits.request_timeout, expected, "{text}");
    }
}

#[test]
fn round_timeout_bounds_are_inclusive() {
    for (text, expected) in [
        ("1ms", Duration::from_millis(1)),
        ("1h", Duration::from_secs(3600)),
    ] {
        let settings = from_yaml(&yaml(&format!("  round_timeout: {text}\n"))).unwrap();
        assert_eq!(settings.avepoint.limits.round_timeout, expected, "{text}");
    }
}

#[test]
fn concurrency_bounds_are_inclusive() {
    for concurrency in [1, 1024] {
        let settings = from_yaml(&yaml(&format!("  concurrency: {concurrency}\n"))).unwrap();
        assert_eq!(settings.avepoint.limits.concurrency, concurrency);
    }
}

#[test]
fn debug_output_does_not_show_the_secret() {
    for settings in [
        load("valid-full.yml", &[]).unwrap(),
        load(
            "valid-minimal.yml",
            &[("AVEPOINT_CLIENT_SECRET", ENV_SECRET)],
        )
        .unwrap(),
    ] {
        let secret = secret_of(&settings).to_owned();
        for debug in [format!("{settings:?}"), format!("{settings:#?}")] {
            assert!(!debug.contains(&secret), "secret in {debug}");
            assert!(debug.contains("REDACTED"), "{debug}");
        }
        let debug = format!("{:?}", settings.avepoint);
        assert!(!debug.contains(&secret), "secret in {debug}");
    }
}

/// The configs shipped under deploy/ load as they are (secret from the env).
#[test]
fn shipped_example_configs_are_valid() {
    let settings = Settings::load(Path::new("deploy/kubernetes/avepoint.yml"), |name| {
        (name == "AVEPOINT_CLIENT_SECRET").then(|| "from-the-secret".to_owned())
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(settings.discovery.is_some());
    assert!(!settings.metrics_include_profiles);
    assert_eq!(
        settings.avepoint.scope,
        "elements.scanprofiles.read.all elements.customers.read.all"
    );
}

#[test]
fn last_status_state_defaults_to_all_and_takes_each_mode() {
    let settings = from_yaml(&yaml("")).unwrap();
    assert_eq!(settings.metrics_last_status_state, LastStatusState::All);
    assert!(settings.metrics_include_profiles);
    for (text, mode) in [
        ("all", LastStatusState::All),
        ("current", LastStatusState::Current),
        ("none", LastStatusState::None),
    ] {
        let settings = from_yaml(&format!(
            "{}metrics:\n  last_status_state: {text}\n",
            yaml("")
        ))
        .unwrap();
        assert_eq!(settings.metrics_last_status_state, mode, "{text}");
        assert_eq!(mode.name(), text);
        // The other metrics key keeps its default.
        assert!(settings.metrics_include_profiles);
    }
}

/// The client secret of `settings`, which must have one.
fn secret_of(settings: &Settings) -> &str {
    settings
        .avepoint
        .credential
        .secret()
        .unwrap()
        .expose_secret()
}
