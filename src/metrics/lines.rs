//! The line writers of the hand-written families: label escaping, sample
//! values, and the `# HELP`/`# TYPE`/`# UNIT` lines of both text formats.
//!
//! Kept apart from the streamer and from the families so that every
//! hand-written line goes through the same few functions: the escaping and
//! the number spelling are what promtool and the reference parsers check,
//! and they are on the hot path of every scrape (a fast path each for the
//! common case, no allocation).

use std::fmt::Write as _;

use super::Format;
use crate::config::ProfileTarget;

/// Append a label value, escaped as both text formats require.
pub(super) fn push_escaped(out: &mut String, value: &str) {
    // Every id and name of every scrape passes here: memchr's vectorised
    // search, a few instructions per 16 bytes where a byte loop took
    // several per byte (15 % of a scrape's instructions). The three
    // characters are ASCII: a UTF-8 continuation byte never equals one.
    if memchr::memchr3(b'\\', b'"', b'\n', value.as_bytes()).is_none() {
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

/// Integers an `f64` holds exactly (2^53): below this a whole value
/// prints as the integer it is.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Append a sample value in the exposition's spelling.
///
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

/// `# HELP`, `# TYPE` (always a gauge) and, in OpenMetrics only, `# UNIT`.
pub(super) fn push_header(
    out: &mut String,
    format: Format,
    name: &str,
    help: &str,
    unit: Option<&str>,
) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push_str(" gauge\n");
    if let (Format::OpenMetrics, Some(unit)) = (format, unit) {
        out.push_str("# UNIT ");
        out.push_str(name);
        out.push(' ');
        out.push_str(unit);
        out.push('\n');
    }
}

/// `name{customer_id="...",profile_id="..."` (no closing brace), for the
/// series that add labels of their own before closing it.
pub(super) fn open_series(out: &mut String, name: &str, target: &ProfileTarget) {
    out.push_str(name);
    out.push_str("{customer_id=\"");
    push_escaped(out, &target.customer_id);
    out.push_str("\",profile_id=\"");
    push_escaped(out, &target.profile_id);
    out.push('"');
}

/// `name{customer_id="...",profile_id="..."} value` for an integer.
pub(super) fn line_int(out: &mut String, name: &str, target: &ProfileTarget, value: i64) {
    open_series(out, name, target);
    out.push_str("} ");
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// `name{customer_id="...",profile_id="..."<extra>} value`, `extra` being
/// further labels already escaped (empty for none).
pub(super) fn line_float(
    out: &mut String,
    name: &str,
    target: &ProfileTarget,
    extra: &str,
    value: f64,
) {
    open_series(out, name, target);
    out.push_str(extra);
    out.push_str("} ");
    push_float(out, value);
    out.push('\n');
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
