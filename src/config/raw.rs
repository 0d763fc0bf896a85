//! The `targets:`, `discovery:` and `profile_details:` sections as
//! written: serde structs that mirror the YAML one to one (the
//! `avepoint:`, `collectors:` and `metrics:` sections are beside their
//! validators, the whole document in `mod.rs`).
//!
//! They only decode (unknown keys are rejected here, as typos); defaults that
//! depend on other keys and range checks live in the section validators, so
//! every rule about a key is in one place and errors can name the file.

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use uuid::Uuid;

use super::yaml::{duration, regex, uuid, uuids};

/// One entry of `targets:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping with the keys customer_id and profile_ids")]
pub(super) struct RawTarget {
    #[serde(deserialize_with = "uuid")]
    pub(super) customer_id: Uuid,
    #[serde(default, deserialize_with = "uuids")]
    pub(super) profile_ids: Vec<Uuid>,
}

/// The `discovery:` section; its values are decoded even when it is
/// disabled, but range-checked only when `enabled` is true.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    #[serde(default)]
    pub(super) enabled: bool,
    #[serde(default, deserialize_with = "duration")]
    pub(super) refresh_interval: Option<Duration>,
    pub(super) page_size: Option<u32>,
    pub(super) max_customers: Option<usize>,
    pub(super) max_items_per_list: Option<usize>,
    #[serde(default)]
    pub(super) include: Vec<RawRule>,
    #[serde(default)]
    pub(super) exclude: Vec<RawRule>,
}

/// One entry of `discovery.include` or `discovery.exclude`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(
    expecting = "a mapping with any of customer_id, organization, profile_name (regular expressions)"
)]
pub(super) struct RawRule {
    #[serde(default, deserialize_with = "regex")]
    pub(super) customer_id: Option<Regex>,
    #[serde(default, deserialize_with = "regex")]
    pub(super) organization: Option<Regex>,
    #[serde(default, deserialize_with = "regex")]
    pub(super) profile_name: Option<Regex>,
}

/// The `profile_details:` section.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfileDetails {
    pub(super) enabled: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) refresh_interval: Option<Duration>,
}
