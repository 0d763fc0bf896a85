//! The integers a metric cannot do without (a report's counts and status
//! code), read strictly: the one place where a field that cannot be read
//! fails its item, as the report cannot be exported without it.
//!
//! Imports nothing of the crate.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// An integer a metric needs (a report's counts and status): strict, as
/// the report cannot be exported without it, but never wrapped and never
/// echoed: the error names the field and what was expected, and says only
/// what kind of value came instead (a wrong-typed field may hold anything,
/// an e-mail address or a megabyte of text).
struct StrictInteger {
    field: &'static str,
    /// Whether negative values are allowed (codes), or refused (counts).
    signed: bool,
}

impl StrictInteger {
    fn expected(&self) -> &'static str {
        if self.signed {
            "an integer"
        } else {
            "a count (an integer of at least 0)"
        }
    }

    fn refuse<E: de::Error>(&self, got: &str) -> E {
        E::custom(format_args!(
            "{}: expected {}, got {got}",
            self.field,
            self.expected()
        ))
    }
}

impl<'de> Visitor<'de> for StrictInteger {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.expected())
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
        // Past i64::MAX a count stays there instead of wrapping to -1.
        Ok(i64::try_from(value).unwrap_or(i64::MAX))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
        if value < 0 && !self.signed {
            return Err(self.refuse("a negative number"));
        }
        Ok(value)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<i64, E> {
        Err(self.refuse("a number with a fraction or exponent"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<i64, E> {
        Err(self.refuse("a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<i64, E> {
        Err(self.refuse("a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
        Err(self.refuse("null"))
    }
    fn visit_none<E: de::Error>(self) -> Result<i64, E> {
        Err(self.refuse("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<i64, A::Error> {
        Err(self.refuse("a list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<i64, A::Error> {
        Err(self.refuse("an object"))
    }
}

/// A required count: a non-negative integer, `i64::MAX` past it; any
/// other value is an error naming `field` (see [`StrictInteger`]).
pub(super) fn strict_count<'de, D: Deserializer<'de>>(
    deserializer: D,
    field: &'static str,
) -> Result<i64, D::Error> {
    let visitor = StrictInteger {
        field,
        signed: false,
    };
    deserializer.deserialize_any(visitor)
}

/// A required code: any integer (`i64::MAX` past it); any other value is
/// an error naming `field`.
pub(super) fn strict_code<'de, D: Deserializer<'de>>(
    deserializer: D,
    field: &'static str,
) -> Result<i64, D::Error> {
    let visitor = StrictInteger {
        field,
        signed: true,
    };
    deserializer.deserialize_any(visitor)
}

/// The scan report's required integers, each read strictly under its wire
/// name (the derive cannot pass a field's name to its `deserialize_with`).
pub(super) mod report {
    use serde::Deserializer;

    /// `lastScanStatus`.
    pub(crate) fn status_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        super::strict_code(deserializer, "lastScanStatus")
    }
    /// `newRegisteredContentCount`.
    pub(crate) fn new_registered_count<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<i64, D::Error> {
        super::strict_count(deserializer, "newRegisteredContentCount")
    }
    /// `movedToAnotherContainer`.
    pub(crate) fn moved_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        super::strict_count(deserializer, "movedToAnotherContainer")
    }
    /// `removedFromMicrosoft365OrOutofPolicy`.
    pub(crate) fn removed_count<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<i64, D::Error> {
        super::strict_count(deserializer, "removedFromMicrosoft365OrOutofPolicy")
    }
}
