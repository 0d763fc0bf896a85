//! Upstream text made safe to log, beyond what `http::sanitize` does:
//! our credentials in every form they take on the wire, and JSON decode
//! errors without the values that failed.
//!
//! Imports `avepoint::http` only.

use super::http::sanitize;

/// `text` with every wire form of `secret` replaced by `<secret>`: raw,
/// form-encoded (`Sec%7Eret`, `+` for a space) as the token request sends
/// it, percent-encoded (`%20`), either with lower-case hex, form-encoded
/// twice (a request quoted inside a URL), and JSON-escaped. A token
/// endpoint or proxy that echoes the request echoes it encoded; the raw
/// form alone let the client secret reach the log.
pub(crate) fn scrub_secret(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    let form = form_encode(secret);
    let percent = form.replace('+', "%20");
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned();
    let mut forms = vec![
        secret.to_owned(),
        lower_hex(&form),
        lower_hex(&percent),
        form_encode(&form),
        json.replace('/', "\\/"),
        form,
        percent,
        json,
    ];
    // Longest first: a form that holds another is replaced whole.
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms.dedup();
    let mut clean = text.to_owned();
    for form in forms.iter().filter(|form| !form.is_empty()) {
        if clean.contains(form.as_str()) {
            clean = clean.replace(form.as_str(), "<secret>");
        }
    }
    clean
}

/// [`scrub_secret`], then [`sanitize`]: safe to log, bounded.
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    sanitize(&scrub_secret(text, secret), "")
}

fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `%7E` as `%7e`: percent escapes are case-insensitive.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut escape = 0;
    for c in encoded.chars() {
        if c == '%' {
            escape = 2;
            out.push(c);
        } else if escape > 0 {
            escape -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a body is not the JSON asked for, in words safe to log: where it
/// broke (the field's path, when known, and the line and column) and what
/// was expected, never the value found there. serde's own text quotes the
/// value (`invalid type: string "jane@contoso.example", expected i64`): a
/// wrong-typed field may carry personal data or a megabyte of text.
pub(crate) fn json_error_text(error: &serde_json::Error, path: Option<&str>) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", error.line(), error.column());
    let place = match path.filter(|path| !path.is_empty() && *path != ".") {
        Some(path) => format!("{}, {at}", sanitize(path, "")),
        None => at,
    };
    match error.classify() {
        Category::Io => format!("reading the body failed ({place})"),
        Category::Eof => format!("the JSON ends early ({place})"),
        Category::Syntax => format!("not valid JSON ({place})"),
        Category::Data => format!("{} ({place})", without_values(&error.to_string())),
    }
}

/// serde's message without the values it quotes: `invalid type: string
/// "x", expected i64` becomes `invalid type: string, expected i64`; any
/// quoted part (`` `x` `` or `"x"`) goes, and so does serde_json's own
/// ` at line L column C` (said separately).
fn without_values(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(cut) => &message[..cut],
        None => message,
    };
    // These quote one of our own field names, never a value.
    if message.starts_with("missing field `") || message.starts_with("duplicate field `") {
        return sanitize(message, "");
    }
    let mut clean = String::new();
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(open) if c == open => quote = None,
            Some(_) => {}
            None if c == '`' || c == '"' => quote = Some(c),
            None => clean.push(c),
        }
    }
    // `a value, expected` once the quoted part went: tidy the spaces.
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    sanitize(&clean.replace(" ,", ","), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_form_of_the_secret_goes() {
        let secret = "Sec~ret/p a+ss\"wörd";
        let form = form_encode(secret);
        assert_eq!(form, "Sec%7Eret%2Fp+a%2Bss%22w%C3%B6rd");
        for echoed in [
            secret.to_owned(),
            form.clone(),
            form.replace('+', "%20"),
            lower_hex(&form),
            form_encode(&form),
            "Sec~ret\\/p a+ss\\\"wörd".to_owned(),
        ] {
            let text = format!("rejected: client_secret={echoed}&scope=x");
            assert_eq!(
                scrub_secret(&text, secret),
                "rejected: client_secret=<secret>&scope=x",
                "{echoed}"
            );
        }
        assert_eq!(scrub_secret("nothing here", ""), "nothing here");
    }

    #[test]
    fn decode_errors_say_where_and_what_was_expected_never_the_value() {
        use crate::avepoint::model::{Page, ScanProfileReport};
        let report = r#"{"lastScanStatus": 2, "newRegisteredContentCount": "jane@contoso.example",
            "movedToAnotherContainer": 0, "removedFromMicrosoft365OrOutofPolicy": 0}"#;
        let error = serde_json::from_str::<ScanProfileReport>(report).unwrap_err();
        assert_eq!(
            json_error_text(&error, None),
            "newRegisteredContentCount: expected a count (an integer of at least 0), got a string (line 1 column 73)"
        );
        let page = format!(
            r#"{{"data": [], "metadata": {{"totalCount": "{}"}}}}"#,
            "x".repeat(1 << 20)
        );
        let mut json = serde_json::Deserializer::from_str(&page);
        let error = serde_path_to_error::deserialize::<_, Page<u8>>(&mut json).unwrap_err();
        let text = json_error_text(error.inner(), Some(&error.path().to_string()));
        assert_eq!(
            text,
            format!(
                "invalid type: string, expected u64 (metadata.totalCount, line 1 column {})",
                page.len() - 2
            )
        );
        let truncated = serde_json::from_str::<ScanProfileReport>("{\"lastScan").unwrap_err();
        assert_eq!(
            json_error_text(&truncated, None),
            "the JSON ends early (line 1 column 10)"
        );
        let html = serde_json::from_str::<ScanProfileReport>("<html>").unwrap_err();
        assert_eq!(
            json_error_text(&html, None),
            "not valid JSON (line 1 column 1)"
        );
        let missing = serde_json::from_str::<ScanProfileReport>("{}").unwrap_err();
        assert_eq!(
            json_error_text(&missing, None),
            "missing field `lastScanStatus` (line 1 column 2)"
        );
    }
}
