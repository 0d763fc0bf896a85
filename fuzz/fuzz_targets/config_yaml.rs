//! The config parser: arbitrary UTF-8 as a config file. Errors are expected;
//! a panic (or an error whose message cannot be formatted) is a bug.
//!
//! The client secret comes from the environment lookup (the client id does
//! not, so the file's `client_id` is parsed and checked), so the parser never
//! reads a `client_secret_file` from disk here.
#![no_main]

use std::path::Path;

use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::from_yaml(text, Path::new("fuzz.yml"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| "secret".to_owned())
    }) {
        Ok(settings) => {
            assert!(!settings.avepoint.client_id.trim().is_empty());
            assert!(settings.avepoint.limits.concurrency >= 1);
            assert!(!settings.targets.is_empty() || settings.discovery.is_some());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
