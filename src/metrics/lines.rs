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

/// Where ryu writes a fraction as a plain decimal, as `Display` does (it
/// switches to an exponent below 1e-5 and from 1e16 on; these bounds keep
/// clear of both).
const RYU_PLAIN: std::ops::Range<f64> = 1e-4..1e15;

/// Append a sample value in the exposition's spelling.
///
/// Rust's `Display` gives the shortest round-trip decimal, never an
/// exponent; only the non-finite values need the exposition's spelling.
/// Faster, from itoa for whole values (the same digits) and from ryu for
/// the fractions of everyday magnitude (durations, sizes): `Display` was
/// 4 % of a scrape's instructions. ryu's digits are as few and read back
/// as the same `f64`; where two spellings of 17 digits would, it may pick
/// the other one (`…350.6289062` for `…350.6289063`).
pub(super) fn push_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < MAX_EXACT_INTEGER && !value.is_sign_negative() {
        // Whole seconds and counts: the same digits `Display` writes, in
        // a fraction of the time (most values of a scrape are these).
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else if value.fract() != 0.0 && RYU_PLAIN.contains(&value.abs()) {
        out.push_str(ryu::Buffer::new().format_finite(value));
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

/// A profile's own labels, `customer_id="...",profile_id="..."`, escaped:
/// written once per scrape and reused by each of its series (escaping
/// them for every series was a tenth of a scrape's instructions).
pub(super) fn push_profile_labels(out: &mut String, target: &ProfileTarget) {
    out.push_str("customer_id=\"");
    push_escaped(out, &target.customer_id);
    out.push_str("\",profile_id=\"");
    push_escaped(out, &target.profile_id);
    out.push('"');
}

/// `name{<labels>` (no closing brace), `labels` from
/// [`push_profile_labels`], for the series that add labels of their own
/// before closing it.
pub(super) fn open_series(out: &mut String, name: &str, labels: &str) {
    out.push_str(name);
    out.push('{');
    out.push_str(labels);
}

/// `name{<labels>} value` for an integer.
pub(super) fn line_int(out: &mut String, name: &str, labels: &str, value: i64) {
    open_series(out, name, labels);
    out.push_str("} ");
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// `name{<labels>[,label="..."]} value`, with `label` a further label's
/// name and value (the value is escaped here).
pub(super) fn line_float(
    out: &mut String,
    name: &str,
    labels: &str,
    label: Option<(&str, &str)>,
    value: f64,
) {
    open_series(out, name, labels);
    if let Some((label, label_value)) = label {
        out.push(',');
        out.push_str(label);
        out.push_str("=\"");
        push_escaped(out, label_value);
        out.push('"');
    }
    out.push_str("} ");
    push_float(out, value);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_display_writes_them_and_read_back_the_same() {
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
            0.0001,
            0.000_123_4,
            -0.5,
            0.1 + 0.2,
            123_456.789,
            999_999_999_999_999.9,
            1e15 + 0.5,
        ] {
            let mut out = String::new();
            push_float(&mut out, value);
            assert_eq!(out, value.to_string(), "{value:?}");
        }
        // Every magnitude ryu is asked for, and its edges: a xorshift
        // walk over bit patterns, each as both of its signs, reads back
        // as the very same value, in a spelling Prometheus parses.
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..50_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let value = f64::from_bits(bits);
            let scaled = (value.abs() % 1e15).max(1e-4);
            for value in [value, scaled, -scaled] {
                let mut out = String::new();
                push_float(&mut out, value);
                if value.is_finite() {
                    assert_eq!(out.parse::<f64>().map(f64::to_bits), Ok(value.to_bits()));
                    assert!(!out.contains(['e', 'E']), "{value:?} as {out}");
                }
            }
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
