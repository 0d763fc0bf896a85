//! The exposition's line writers, shared by the families streamed from a
//! snapshot (`profiles.rs`, `details.rs`): label values escaped as both
//! text formats require, floats in the exposition's spelling, and a
//! profile's series opened with its two id labels. Hand-written rather
//! than through prometheus-client's encoder: they run for every series of
//! every profile of every scrape (BENCHMARKS.md).

use std::fmt::Write as _;

use crate::config::ProfileTarget;

/// Output is handed out in pieces of about this size.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Append a label value, escaped as both text formats require.
pub(super) fn push_escaped(out: &mut String, value: &str) {
    // Bytes, not chars: every id and name of every scrape passes here, and
    // the three characters are ASCII (a UTF-8 continuation byte never
    // equals one of them).
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `name{customer_id="...",profile_id="..."` (no closing brace).
pub(super) fn open_series(out: &mut String, name: &str, target: &ProfileTarget) {
    out.push_str(name);
    out.push_str("{customer_id=\"");
    push_escaped(out, &target.customer_id);
    out.push_str("\",profile_id=\"");
    push_escaped(out, &target.profile_id);
    out.push('"');
}

/// `name{customer_id="...",profile_id="..."} value`, an integer.
pub(super) fn line_int(out: &mut String, name: &str, target: &ProfileTarget, value: i64) {
    open_series(out, name, target);
    out.push_str("} ");
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// `name{customer_id="...",profile_id="..."} value`, a float.
pub(super) fn line_float(out: &mut String, name: &str, target: &ProfileTarget, value: f64) {
    open_series(out, name, target);
    out.push_str("} ");
    push_float(out, value);
    out.push('\n');
}

/// Integers an `f64` holds exactly (2^53): below this a whole value
/// prints as the integer it is.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Rust's `Display` gives the shortest round-trip decimal, never an
/// exponent; only the non-finite values need the exposition's spelling.
pub(super) fn push_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < MAX_EXACT_INTEGER && !value.is_sign_negative() {
        // Whole seconds and counts: the same digits `Display` writes, in
        // a fraction of the time (most values of a scrape are these).
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_display_writes_them_fast_path_or_not() {
        for value in [
            0.0,
            -0.0,
            1.0,
            -3.0,
            0.25,
            1_764_672_000.0,
            1_764_672_000.123,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            1e21,
            f64::MIN_POSITIVE,
        ] {
            let mut out = String::new();
            push_float(&mut out, value);
            assert_eq!(out, value.to_string(), "{value:?}");
        }
        let mut out = String::new();
        push_escaped(&mut out, "a\\b\"c\nd é");
        assert_eq!(out, "a\\\\b\\\"c\\nd é");
    }

    #[test]
    fn floats_use_the_exposition_spelling() {
        let mut out = String::new();
        for value in [0.1, 1e21, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -0.5] {
            push_float(&mut out, value);
            out.push(' ');
        }
        assert_eq!(out, "0.1 1000000000000000000000 +Inf -Inf NaN -0.5 ");
    }
}
