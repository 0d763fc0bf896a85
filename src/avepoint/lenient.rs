//! Fields read one by one: a value AvePoint sends that cannot be read makes
//! that one field unknown, never the item or the page.
//!
//! AvePoint's own documented samples send `"N/A"` where a value does not
//! apply (a size without BYOS storage, the name of a job, the times of a
//! module that never ran), `null` where a string is expected, and counts,
//! sizes and dates as strings. [`Field`] keeps the three outcomes apart:
//! a value, nothing to read (absent, `null`, `""`, `"N/A"`, .NET's minimum
//! date), or something that is not of the documented form, which the
//! readers count per endpoint and field
//! (`avepoint_api_unreadable_fields_total`) without ever logging the value.
//!
//! Imports nothing of the crate: `model` and `details` build on it.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use time::OffsetDateTime;

/// One field of an item, read on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Field<T> {
    /// Absent, `null`, empty, `"N/A"`: AvePoint has no value here.
    #[default]
    Missing,
    /// A value of the documented form.
    Value(T),
    /// Present, but not of the documented form: unknown, and counted.
    Unreadable,
}

impl<T> Field<T> {
    /// The value, if one could be read.
    pub fn value(self) -> Option<T> {
        match self {
            Field::Value(value) => Some(value),
            Field::Missing | Field::Unreadable => None,
        }
    }

    /// The value by reference, if one could be read.
    pub fn as_ref(&self) -> Field<&T> {
        match self {
            Field::Value(value) => Field::Value(value),
            Field::Missing => Field::Missing,
            Field::Unreadable => Field::Unreadable,
        }
    }

    /// Whether the field was sent in a form that could not be read.
    pub fn is_unreadable(&self) -> bool {
        matches!(self, Field::Unreadable)
    }
}

/// A value that AvePoint may send as a JSON string or a number.
pub trait WireValue: Sized {
    /// Read a string (already known not to be empty or `"N/A"`).
    fn from_text(text: &str) -> Field<Self>;
    /// Read a number.
    fn from_number(number: Number) -> Field<Self>;
    /// Read a JSON `true` or `false`: not of the documented form, but for
    /// flags.
    fn from_bool(_: bool) -> Field<Self> {
        Field::Unreadable
    }
}

/// A JSON number as serde hands it over.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Signed(i64),
    /// Anything with a fraction or exponent.
    Float(f64),
}

/// Whether a string says "no value": empty, blank, or `N/A` in any case.
pub fn says_nothing(text: &str) -> bool {
    let text = text.trim();
    text.is_empty() || text.eq_ignore_ascii_case("n/a")
}

impl<'de, T: WireValue> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<T>(PhantomData<T>);

impl<'de, T: WireValue> Visitor<'de> for FieldVisitor<T> {
    type Value = Field<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Missing)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Missing)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(if says_nothing(text) {
            Field::Missing
        } else {
            T::from_text(text.trim())
        })
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(T::from_number(Number::Unsigned(value)))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(T::from_number(if value >= 0 {
            Number::Unsigned(value.unsigned_abs())
        } else {
            Number::Signed(value)
        }))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(T::from_number(Number::Float(value)))
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(T::from_bool(value))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Unreadable)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Unreadable)
    }
}

fn read<T>(value: Option<T>) -> Field<T> {
    value.map_or(Field::Unreadable, Field::Value)
}

/// A count: `"2323"` or `2323`; never negative.
impl WireValue for u64 {
    fn from_text(text: &str) -> Field<Self> {
        read(text.parse().ok())
    }
    fn from_number(number: Number) -> Field<Self> {
        match number {
            Number::Unsigned(value) => Field::Value(value),
            Number::Signed(_) | Number::Float(_) => Field::Unreadable,
        }
    }
}

/// A code: `7` or `"7"`; negative codes are codes too (undocumented ones
/// are labelled as such, never refused).
impl WireValue for i64 {
    fn from_text(text: &str) -> Field<Self> {
        read(text.parse().ok())
    }
    fn from_number(number: Number) -> Field<Self> {
        match number {
            Number::Unsigned(value) => read(i64::try_from(value).ok()),
            Number::Signed(value) => Field::Value(value),
            Number::Float(_) => Field::Unreadable,
        }
    }
}

/// Text AvePoint sends is kept to this many characters: names become
/// label values and are written into every scrape, so a 20 MB
/// `profileName` must not be stored (nor a 3,000-character module name
/// become a label). Ids (UUIDs, 36) and every documented name fit.
pub const MAX_TEXT_CHARS: usize = 128;

/// `text` cut to [`MAX_TEXT_CHARS`] characters.
pub fn bounded_text(text: &str) -> String {
    // No more bytes than the bound: no more characters either, and no
    // walk over them (four texts of every report pass here).
    if text.len() <= MAX_TEXT_CHARS {
        return text.to_owned();
    }
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

/// Text, cut to [`MAX_TEXT_CHARS`]; a number sent where text is
/// documented is its decimal form.
impl WireValue for String {
    fn from_text(text: &str) -> Field<Self> {
        Field::Value(bounded_text(text))
    }
    fn from_number(number: Number) -> Field<Self> {
        Field::Value(match number {
            Number::Unsigned(value) => value.to_string(),
            Number::Signed(value) => value.to_string(),
            Number::Float(value) => value.to_string(),
        })
    }
}

/// A flag: `true`, `false`, or either as text in any case.
impl WireValue for bool {
    fn from_text(text: &str) -> Field<Self> {
        read(match text.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }
    fn from_number(_: Number) -> Field<Self> {
        Field::Unreadable
    }
    fn from_bool(value: bool) -> Field<Self> {
        Field::Value(value)
    }
}

/// A size in bytes, sent as `"0 GB"`, `"1.5 TB"` or a plain number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bytes(pub f64);

impl WireValue for Bytes {
    fn from_text(text: &str) -> Field<Self> {
        read(parse_size(text).map(Bytes))
    }
    fn from_number(number: Number) -> Field<Self> {
        let bytes = match number {
            Number::Unsigned(value) => value as f64,
            Number::Signed(_) => return Field::Unreadable,
            Number::Float(value) => value,
        };
        // `-0.0 >= 0.0`: a negative zero is zero, not "-0" in the output.
        read((bytes.is_finite() && bytes >= 0.0).then_some(Bytes(bytes.abs())))
    }
}

/// Bytes of a size string. Units are binary (1 KB = 1024 B), as AvePoint's
/// portal and Windows count them; `KiB`-style spellings mean the same.
/// Negative or non-finite sizes are refused.
pub fn parse_size(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let power = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" | "BYTE" | "BYTES" => 0,
        "KB" | "KIB" => 1,
        "MB" | "MIB" => 2,
        "GB" | "GIB" => 3,
        "TB" | "TIB" => 4,
        "PB" | "PIB" => 5,
        _ => return None,
    };
    // Finite after the unit too: 10^300 PB would be +Inf bytes.
    let bytes = number * 1024f64.powi(power);
    bytes.is_finite().then_some(bytes)
}

/// A job's duration, `"17m39s"` or `"1h2m"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobDuration(pub Duration);

impl WireValue for JobDuration {
    fn from_text(text: &str) -> Field<Self> {
        read(humantime::parse_duration(text).ok().map(JobDuration))
    }
    fn from_number(_: Number) -> Field<Self> {
        Field::Unreadable
    }
}

/// An ISO 8601 timestamp; a date before 1970 (.NET's `0001-01-01T00:00:00`
/// stands for "never") is no value, not a date in year 1.
impl WireValue for OffsetDateTime {
    fn from_text(text: &str) -> Field<Self> {
        match api_time::parse(text) {
            Ok(at) if at.unix_timestamp() < 0 => Field::Missing,
            Ok(at) => Field::Value(at),
            Err(_) => Field::Unreadable,
        }
    }
    fn from_number(_: Number) -> Field<Self> {
        Field::Unreadable
    }
}

/// Serde adapter: an optional value read leniently (anything that is not
/// of the documented form is `None`).
pub fn optional<'de, D: Deserializer<'de>, T: WireValue>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(Field::<T>::deserialize(deserializer)?.value())
}

/// AvePoint's timestamps: RFC 3339 with `Z`, an offset or fractional seconds;
/// a timestamp without any offset is taken as UTC rather than rejected.
pub mod api_time {
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, PrimitiveDateTime};

    /// Parse one API timestamp. A space instead of the `T` (as RFC 3339
    /// allows, and .NET's default formatting writes) is accepted.
    pub fn parse(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
        if text.len() > 10 && text.as_bytes()[10] == b' ' && text.is_char_boundary(11) {
            return parse_strict(&format!("{}T{}", &text[..10], &text[11..]));
        }
        parse_strict(text)
    }

    fn parse_strict(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
        OffsetDateTime::parse(text, &Rfc3339).or_else(|rfc_error| {
            // `[year]` below would take a sign; RFC 3339 years are 4 digits
            // (found by the api_report fuzz target).
            if !text.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(rfc_error);
            }
            let naive = time::macros::format_description!(
                version = 2,
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            );
            PrimitiveDateTime::parse(text, naive)
                .map(PrimitiveDateTime::assume_utc)
                .map_err(|_| rfc_error)
        })
    }

    /// Format one timestamp the way AvePoint's samples do.
    pub fn format(at: OffsetDateTime) -> String {
        at.format(&Rfc3339).unwrap_or_default()
    }

    /// Serde adapter for `Option<OffsetDateTime>`: a timestamp that is
    /// absent, `null`, empty, `"N/A"`, before 1970 (.NET's
    /// `0001-01-01T00:00:00`) or unreadable is `None`, never an error: no
    /// exported value depends on it alone, and one odd date must not fail
    /// a report or a discovery page.
    pub mod option {
        use serde::{Deserialize, Deserializer};
        use time::OffsetDateTime;

        use super::super::Field;

        /// Deserialize an optional API timestamp.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            Ok(Field::<OffsetDateTime>::deserialize(deserializer)?.value())
        }
    }
}

/// A string field: `null` (and a number) where text is documented is read
/// as text or as empty, never an error.
pub fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match <Field<String>>::deserialize(deserializer)? {
        Field::Value(text) => text,
        _ => String::new(),
    })
}

/// A list field: `null` is an empty list.
pub fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Items whose fields are read one by one can say which were unreadable.
pub trait UnreadableFields {
    /// The wire names of the fields sent in a form that could not be read
    /// (none, for a type read strictly: it fails instead).
    fn unreadable_fields(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

/// The wire names of the unreadable fields among `fields`.
pub fn unreadable<const N: usize>(fields: [(&'static str, bool); N]) -> Vec<&'static str> {
    fields
        .into_iter()
        .filter_map(|(name, unreadable)| unreadable.then_some(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<T: WireValue>(json: &str) -> Field<T> {
        serde_json::from_str(json).expect("any JSON value decodes")
    }

    #[test]
    fn nothing_to_read_is_missing_not_unreadable() {
        for json in ["null", "\"\"", "\" \"", "\"N/A\"", "\"n/a\""] {
            assert_eq!(field::<u64>(json), Field::Missing, "{json}");
            assert_eq!(field::<Bytes>(json), Field::Missing, "{json}");
            assert_eq!(field::<OffsetDateTime>(json), Field::Missing, "{json}");
        }
        assert_eq!(
            field::<OffsetDateTime>("\"0001-01-01T00:00:00\""),
            Field::Missing
        );
    }

    #[test]
    fn counts_sizes_and_times_read_their_documented_forms() {
        assert_eq!(field::<u64>("\"2323\""), Field::Value(2323));
        assert_eq!(field::<u64>("25"), Field::Value(25));
        assert_eq!(field::<Bytes>("\"0 GB\""), Field::Value(Bytes(0.0)));
        assert_eq!(
            field::<Bytes>("\"1.5 TB\""),
            Field::Value(Bytes(1.5 * 1024f64.powi(4)))
        );
        assert_eq!(
            field::<JobDuration>("\"17m39s\""),
            Field::Value(JobDuration(Duration::from_secs(17 * 60 + 39)))
        );
        assert_eq!(
            field::<OffsetDateTime>("\"2025-09-11T03:21:16Z\"")
                .value()
                .map(OffsetDateTime::unix_timestamp),
            Some(1_757_560_876)
        );
        assert_eq!(field::<i64>("\"304\""), Field::Value(304));
    }

    #[test]
    fn values_of_another_form_are_unreadable() {
        for json in ["\"12x\"", "-1", "1.5", "true", "[1]", "{\"a\": 1}"] {
            assert_eq!(field::<u64>(json), Field::Unreadable, "{json}");
        }
        for json in ["\"-1 GB\"", "\"1 XB\"", "-5", "\"1,5 GB\""] {
            assert_eq!(field::<Bytes>(json), Field::Unreadable, "{json}");
        }
        assert_eq!(field::<OffsetDateTime>("\"yesterday\""), Field::Unreadable);
        assert_eq!(field::<JobDuration>("\"soon\""), Field::Unreadable);
    }

    #[test]
    fn text_is_cut_to_the_bound_by_characters() {
        let long = format!("\"{}\"", "é".repeat(MAX_TEXT_CHARS + 50));
        let Field::Value(text) = field::<String>(&long) else {
            panic!("text decodes");
        };
        assert_eq!(text.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(
            field::<String>("\"short\""),
            Field::Value("short".to_owned())
        );
    }

    #[test]
    fn sizes_are_binary_and_strict() {
        assert_eq!(parse_size("0 GB"), Some(0.0));
        assert_eq!(parse_size("512KB"), Some(512.0 * 1024.0));
        assert_eq!(parse_size("12 B"), Some(12.0));
        assert_eq!(parse_size("7 MiB"), Some(7.0 * 1024.0 * 1024.0));
        assert_eq!(parse_size("12"), Some(12.0));
        let huge = format!("{} PB", "9".repeat(300));
        assert_eq!(parse_size(&huge), None, "10^300 PB is no finite size");
        assert_eq!(field::<Bytes>("-0.0"), Field::Value(Bytes(0.0)));
        assert!(field::<Bytes>("-0.0").value().unwrap().0.is_sign_positive());
        for bad in ["", "GB", "1,5 GB", "1 XB", "-1 GB", "1e3 GB", "NaN GB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
