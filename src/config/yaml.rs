//! Strict YAML decoding: [`parse_yaml`], which turns a serde error into the
//! offending key and a message, and the field helpers the `Raw*` structs
//! decode with, so a bad value is reported as the value, with its own line.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use std::time::Duration;
use uuid::Uuid;

/// Strict YAML decoding shared by the config files: on error, the dotted
/// path of the offending key (`(top level)` for the document itself) and
/// the message.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(|error| {
        let key = error.path().to_string();
        let message = error.into_inner().to_string();
        let message = without_yaml_path(&key, &message).to_owned();
        let key = if key == "." {
            "(top level)".to_owned()
        } else {
            key
        };
        (key, message)
    })
}

/// serde_yaml_ng starts its messages with its own, coarser path (`avepoint: `
/// for an error in `avepoint.client_idd`); the key already says where, so drop
/// that prefix when it names `key` or one of its parents.
fn without_yaml_path<'a>(key: &str, message: &'a str) -> &'a str {
    match message.split_once(": ") {
        Some((prefix, rest))
            if key == prefix
                || key
                    .strip_prefix(prefix)
                    .is_some_and(|tail| tail.starts_with(['.', '['])) =>
        {
            rest
        }
        _ => message,
    }
}

/// A regular expression, anchored at both ends as in Prometheus relabelling.
pub(super) fn regex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Regex>, D::Error> {
    parse_str(deserializer, "a regular expression", |text| {
        Regex::new(&format!("^(?:{text})$"))
            .map(Some)
            .map_err(|error| format!("invalid regular expression {text:?}: {error}"))
    })
}

/// A UUID, with the offending text quoted when it is not one.
pub(super) fn uuid<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
    parse_str(
        deserializer,
        "a UUID such as caf90000-2cc6-4000-b04b-794c00005ea3",
        |text| Uuid::parse_str(text).map_err(|error| format!("{text:?} is not a UUID: {error}")),
    )
}

/// A list of UUIDs, each checked by [`uuid()`].
pub(super) fn uuids<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Uuid>, D::Error> {
    #[derive(Deserialize)]
    struct Item(#[serde(deserialize_with = "uuid")] Uuid);
    Ok(Vec::<Item>::deserialize(deserializer)?
        .into_iter()
        .map(|Item(id)| id)
        .collect())
}

/// Durations as Prometheus users write them: `10s`, `1m30s`, `500ms`.
pub(super) fn duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    parse_str(
        deserializer,
        "a duration such as 10s, 1m30s or 500ms",
        |text| {
            humantime::parse_duration(text)
                .map(Some)
                .map_err(|error| format!("invalid duration {text:?}: {error}"))
        },
    )
}

/// Decode a string value with `parse`, which says what is wrong with it.
///
/// Parsed inside a visitor so the YAML deserializer attaches the value's own
/// line and column to the error, not those of the enclosing mapping.
fn parse_str<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    struct StrVisitor<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }
    impl<T> serde::de::Visitor<'_> for StrVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            (self.parse)(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(StrVisitor { expecting, parse })
}
