//! Serde types for AvePoint's Graph API and the enums behind its codes.
//!
//! Decoding is deliberately lenient where AvePoint's documentation is vague
//! (unknown enum codes, extra fields, time formats) and strict where a value
//! is needed to produce a metric (the counts and the status code).

use serde::Deserialize;
use time::OffsetDateTime;

use super::endpoint::{EndpointFacts, Method, Paged, paged};
use super::lenient::UnreadableFields;
use crate::config::{CUSTOMERS_SCOPE, SCAN_PROFILES_SCOPE};

/// One scan profile's latest daily report, as both profile endpoints return it.
///
/// The `changes` endpoint adds three object lists with no documented size
/// limit. The exporter exports the count fields, present on both endpoints;
/// of the lists it keeps only their lengths ([`list_length`]), counted item
/// by item as they stream past, so a body of any length decodes in bounded
/// memory. The lengths say when a list disagrees with its count.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanProfileReport {
    /// Display name of the profile; may contain any Unicode.
    #[serde(default, deserialize_with = "text")]
    pub profile_name: String,
    /// The profile id as AvePoint spells it.
    #[serde(default, deserialize_with = "text")]
    pub profile_id: String,
    /// Short tenant name, e.g. `contoso` of `contoso.onmicrosoft.com`.
    #[serde(default, deserialize_with = "text")]
    pub tenant_domain: String,
    /// Microsoft 365 tenant id.
    #[serde(default, deserialize_with = "text")]
    pub tenant_id: String,
    /// Raw scan mode code: 0 Express, 1 Advanced.
    #[serde(default, deserialize_with = "super::lenient::optional")]
    pub scan_mode: Option<i64>,
    /// When the profile was last changed.
    #[serde(with = "api_time::option", default)]
    pub modified_time: Option<OffsetDateTime>,
    /// When the daily report was generated (equals `modified_time` before the first report).
    #[serde(with = "api_time::option", default)]
    pub last_update_time: Option<OffsetDateTime>,
    /// Raw `lastScanStatus` code; see [`ScanStatus`].
    #[serde(deserialize_with = "super::strict::report::status_code")]
    pub last_scan_status: i64,
    /// Objects newly registered in the latest daily report (never
    /// negative; `i64::MAX` when AvePoint sends more).
    #[serde(deserialize_with = "super::strict::report::new_registered_count")]
    pub new_registered_content_count: i64,
    /// Objects moved to another container in the latest daily report.
    #[serde(deserialize_with = "super::strict::report::moved_count")]
    pub moved_to_another_container: i64,
    /// Objects removed from Microsoft 365 or out of policy (note AvePoint's `Outof` spelling).
    #[serde(
        rename = "removedFromMicrosoft365OrOutofPolicy",
        deserialize_with = "super::strict::report::removed_count"
    )]
    pub removed_from_m365_or_out_of_policy: i64,
    /// Items in the `newRegisteredContent` list (`changes` only).
    #[serde(
        rename = "newRegisteredContent",
        default,
        deserialize_with = "list_length"
    )]
    pub new_registered_content_listed: Option<u64>,
    /// Items in the `movedToAnotherContainerObjects` list (`changes` only).
    #[serde(
        rename = "movedToAnotherContainerObjects",
        default,
        deserialize_with = "list_length"
    )]
    pub moved_to_another_container_listed: Option<u64>,
    /// Items in the `removedFromMicrosoft365OrOutOfPolicyObjects` list
    /// (`changes` only; note `OutOf` here, `Outof` in the count's name).
    #[serde(
        rename = "removedFromMicrosoft365OrOutOfPolicyObjects",
        default,
        deserialize_with = "list_length"
    )]
    pub removed_from_m365_or_out_of_policy_listed: Option<u64>,
}

/// A list whose length disagrees with its count field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMismatch {
    /// The count field, as AvePoint spells it.
    pub count_field: &'static str,
    /// Its value (the one exported).
    pub count: i64,
    /// The list, as AvePoint spells it.
    pub list_field: &'static str,
    /// How many items the list held.
    pub listed: u64,
}

impl ScanProfileReport {
    /// Every object list that is present and whose length is not its count.
    pub fn list_mismatches(&self) -> Vec<ListMismatch> {
        [
            (
                "newRegisteredContentCount",
                self.new_registered_content_count,
                "newRegisteredContent",
                self.new_registered_content_listed,
            ),
            (
                "movedToAnotherContainer",
                self.moved_to_another_container,
                "movedToAnotherContainerObjects",
                self.moved_to_another_container_listed,
            ),
            (
                "removedFromMicrosoft365OrOutofPolicy",
                self.removed_from_m365_or_out_of_policy,
                "removedFromMicrosoft365OrOutOfPolicyObjects",
                self.removed_from_m365_or_out_of_policy_listed,
            ),
        ]
        .into_iter()
        .filter_map(|(count_field, count, list_field, listed)| {
            let listed = listed?;
            (u64::try_from(count) != Ok(listed)).then_some(ListMismatch {
                count_field,
                count,
                list_field,
                listed,
            })
        })
        .collect()
    }
}

/// The length of a JSON list, counted without keeping its items: each one
/// is skipped as [`serde::de::IgnoredAny`]. `null` is `None`; anything else
/// but a list is an error.
pub fn list_length<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    struct Counter;
    impl<'de> serde::de::Visitor<'de> for Counter {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut items: A,
        ) -> Result<Self::Value, A::Error> {
            let mut length = 0u64;
            while items.next_element::<serde::de::IgnoredAny>()?.is_some() {
                length += 1;
            }
            Ok(Some(length))
        }
    }
    deserializer.deserialize_any(Counter)
}

/// `lastScanStatus` codes as documented by AvePoint.
///
/// Codes outside this list are exported raw and never fail a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// No scan recorded.
    None = 0,
    /// A scan is running.
    Running = 1,
    /// The last scan finished.
    Finished = 2,
    /// The last scan failed.
    Failed = 3,
    /// The last scan finished, with exceptions.
    FinishedWithException = 4,
    /// The scan was skipped.
    Skipped = 5,
    /// A scan is queued.
    Pending = 6,
    /// The scan could not start.
    FailedToStart = 7,
    /// The scan was canceled.
    Canceled = 8,
    /// The scan was rejected.
    Rejected = 9,
    /// The scan was stopped.
    Stopped = 10,
    /// Not scanned yet.
    NotScanned = 11,
    /// Scanning is disabled.
    Disabled = 12,
    /// Scanning has not started.
    NotStarted = 13,
    /// Waiting for configuration.
    WaitForConfiguration = 14,
}

impl ScanStatus {
    /// Every documented status, in code order.
    pub const ALL: [ScanStatus; 15] = [
        ScanStatus::None,
        ScanStatus::Running,
        ScanStatus::Finished,
        ScanStatus::Failed,
        ScanStatus::FinishedWithException,
        ScanStatus::Skipped,
        ScanStatus::Pending,
        ScanStatus::FailedToStart,
        ScanStatus::Canceled,
        ScanStatus::Rejected,
        ScanStatus::Stopped,
        ScanStatus::NotScanned,
        ScanStatus::Disabled,
        ScanStatus::NotStarted,
        ScanStatus::WaitForConfiguration,
    ];

    /// The documented status for a raw code, if any.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.code() == code)
    }

    /// The raw API code.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The snake_case name used as the `state` label value.
    pub fn label(self) -> &'static str {
        match self {
            ScanStatus::None => "none",
            ScanStatus::Running => "running",
            ScanStatus::Finished => "finished",
            ScanStatus::Failed => "failed",
            ScanStatus::FinishedWithException => "finished_with_exception",
            ScanStatus::Skipped => "skipped",
            ScanStatus::Pending => "pending",
            ScanStatus::FailedToStart => "failed_to_start",
            ScanStatus::Canceled => "canceled",
            ScanStatus::Rejected => "rejected",
            ScanStatus::Stopped => "stopped",
            ScanStatus::NotScanned => "not_scanned",
            ScanStatus::Disabled => "disabled",
            ScanStatus::NotStarted => "not_started",
            ScanStatus::WaitForConfiguration => "wait_for_configuration",
        }
    }

    /// Human wording, as the Elements portal shows it.
    pub fn description(self) -> &'static str {
        match self {
            ScanStatus::None => "None",
            ScanStatus::Running => "Running",
            ScanStatus::Finished => "Finished",
            ScanStatus::Failed => "Failed",
            ScanStatus::FinishedWithException => "Finished with exception",
            ScanStatus::Skipped => "Skipped",
            ScanStatus::Pending => "Pending",
            ScanStatus::FailedToStart => "Failed to start",
            ScanStatus::Canceled => "Canceled",
            ScanStatus::Rejected => "Rejected",
            ScanStatus::Stopped => "Stopped",
            ScanStatus::NotScanned => "Not scanned",
            ScanStatus::Disabled => "Disabled",
            ScanStatus::NotStarted => "Not started",
            ScanStatus::WaitForConfiguration => "Wait for configuration",
        }
    }
}

/// The `scan_mode` label value for a raw `scanMode` code.
pub fn scan_mode_label(code: Option<i64>) -> &'static str {
    match code {
        Some(0) => "express",
        Some(1) => "advanced",
        _ => "unknown",
    }
}

/// API error body: `{statusCode, message, errors[], requestId, timestamp,
/// traceId}`, the one error body AvePoint documents (for another of its
/// APIs). Every field is optional and a field of an odd type is dropped,
/// not fatal: what is there still helps the user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorBody {
    /// Human-readable message, when present.
    #[serde(default, deserialize_with = "lenient_text")]
    pub message: Option<String>,
    /// AvePoint's id of the request, for support tickets (the `request-id`
    /// header says the same, when it is sent).
    #[serde(default, deserialize_with = "lenient_text")]
    pub request_id: Option<String>,
    /// AvePoint's trace id of the request.
    #[serde(default, deserialize_with = "lenient_text")]
    pub trace_id: Option<String>,
}

/// A string, or a number as text; anything else is `None`.
fn lenient_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Some(text),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    })
}

/// A customer from `POST .../customers/batch`.
///
/// `ownerEmail` is personal data: it is not even decoded.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Customer id (empty when AvePoint sent none: such an item is skipped).
    #[serde(default, deserialize_with = "text")]
    pub id: String,
    /// Organization name.
    #[serde(default, deserialize_with = "text")]
    pub organization: String,
    /// Raw job status code.
    #[serde(default, deserialize_with = "super::lenient::optional")]
    pub job_status: Option<i64>,
    /// Country or region.
    #[serde(default, deserialize_with = "super::lenient::optional")]
    pub country_or_region: Option<String>,
    /// Raw management mode code.
    #[serde(default, deserialize_with = "super::lenient::optional")]
    pub management_mode: Option<i64>,
    /// Microsoft 365 tenants of this customer.
    #[serde(default, deserialize_with = "list")]
    pub tenants: Vec<Tenant>,
}

// Read strictly: a customer or profile that cannot be read fails its page.
impl UnreadableFields for Customer {}

/// A tenant of a customer.
#[derive(Debug, Clone, Deserialize)]
pub struct Tenant {
    /// Tenant id (empty when AvePoint sent none).
    #[serde(default, deserialize_with = "text")]
    pub id: String,
    /// Tenant name.
    #[serde(default, deserialize_with = "text")]
    pub name: String,
}

/// A scan profile from `POST .../customers/{id}/scan-profiles/batch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanProfileSummary {
    /// Profile name.
    #[serde(default, deserialize_with = "text")]
    pub profile_name: String,
    /// Profile id (empty when AvePoint sent none: such an item is skipped).
    #[serde(default, deserialize_with = "text")]
    pub profile_id: String,
    /// Raw scan mode code.
    #[serde(default, deserialize_with = "super::lenient::optional")]
    pub scan_mode: Option<i64>,
    /// When the profile was last changed.
    #[serde(with = "api_time::option", default)]
    pub modified_time: Option<OffsetDateTime>,
}

// Read strictly: a customer or profile that cannot be read fails its page.
impl UnreadableFields for ScanProfileSummary {}

/// `POST .../customers/batch`: every customer.
pub const CUSTOMERS: Paged<Customer, 0> = paged(&EndpointFacts {
    label: "customers_batch",
    method: Method::Post,
    path_template: Some("/partner/external/v3/general/customers/batch"),
    permission: Some(CUSTOMERS_SCOPE),
    description: "a page of customers",
});

/// `POST .../customers/{c}/scan-profiles/batch`: a customer's profiles.
pub const SCAN_PROFILES: Paged<ScanProfileSummary, 1> = paged(&EndpointFacts {
    label: "scan_profiles_batch",
    method: Method::Post,
    path_template: Some("/partner/external/v3/general/customers/{customer}/scan-profiles/batch"),
    permission: Some(SCAN_PROFILES_SCOPE),
    description: "a page of scan profiles",
});

pub use super::lenient::{api_time, list, text};
pub use super::page::{Page, PageMetadata};

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_BODY: &str = r#"{
      "profileName": "Default Microsoft 365 Scan Profile",
      "profileId": "47dba9a1-1004-4c2d-b2ce-8f5e66f5842d",
      "tenantDomain": "v0s40",
      "tenantId": "c2350b99-c7a2-4605-b7d4-79e8646f66c3",
      "description": "This is a partner-configured scan profile.",
      "scanMode": 0,
      "modifiedTime": "2025-09-11T03:19:14Z",
      "lastUpdateTime": "2025-09-11T03:19:14Z",
      "lastScanStatus": 2,
      "newRegisteredContentCount": 0,
      "movedToAnotherContainer": 0,
      "removedFromMicrosoft365OrOutofPolicy": 0
    }"#;

    #[test]
    fn decodes_the_documented_sample() {
        let report: ScanProfileReport = serde_json::from_str(SEED_BODY).unwrap();
        assert_eq!(report.profile_name, "Default Microsoft 365 Scan Profile");
        assert_eq!(report.last_scan_status, 2);
        assert_eq!(scan_mode_label(report.scan_mode), "express");
        assert_eq!(
            report.last_update_time.unwrap().unix_timestamp(),
            1_757_560_754
        );
    }

    #[test]
    fn missing_count_is_an_error_naming_the_field() {
        let body = SEED_BODY.replace("\"movedToAnotherContainer\": 0,", "");
        let error = serde_json::from_str::<ScanProfileReport>(&body).unwrap_err();
        assert!(
            error.to_string().contains("movedToAnotherContainer"),
            "{error}"
        );
    }

    #[test]
    fn timestamps_accept_offsets_fractions_and_no_zone() {
        let utc = 1_757_560_754;
        assert_eq!(
            api_time::parse("2025-09-11T03:19:14Z")
                .unwrap()
                .unix_timestamp(),
            utc
        );
        assert_eq!(
            api_time::parse("2025-09-11T05:19:14+02:00")
                .unwrap()
                .unix_timestamp(),
            utc
        );
        let fractional = api_time::parse("2025-09-11T03:19:14.250Z").unwrap();
        assert_eq!(fractional.unix_timestamp(), utc);
        assert_eq!(fractional.millisecond(), 250);
        assert_eq!(
            api_time::parse("2025-09-11T03:19:14.5")
                .unwrap()
                .unix_timestamp(),
            utc
        );
        assert!(api_time::parse("yesterday").is_err());
        assert!(api_time::parse("-2025-09-11T03:19:14").is_err());
        assert!(api_time::parse("+2025-09-11T03:19:14").is_err());
    }

    #[test]
    fn statuses_round_trip_and_unknown_codes_are_none() {
        for (index, status) in ScanStatus::ALL.iter().enumerate() {
            assert_eq!(status.code(), index as i64);
            assert_eq!(ScanStatus::from_code(index as i64), Some(*status));
        }
        assert_eq!(ScanStatus::from_code(15), None);
        assert_eq!(ScanStatus::from_code(-1), None);
        assert_eq!(scan_mode_label(Some(7)), "unknown");
    }
}
