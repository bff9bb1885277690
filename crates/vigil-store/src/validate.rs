//! Input checks. Everything a caller passes in is checked here before it
//! reaches SQL, so bad input is a [`StoreError::Invalid`], never a panic or a
//! database error.

use crate::{Result, StoreError};
use std::time::Duration;

/// Limits on what the store accepts.
pub mod limits {
    use std::time::Duration;

    /// Names of accounts, agents, tokens and contacts, in characters (after trimming).
    pub const MAX_NAME_CHARS: usize = 200;
    /// An email address, in bytes (RFC 5321 path limit).
    pub const MAX_EMAIL_LEN: usize = 254;
    /// The local part of an email address, in bytes.
    pub const MAX_EMAIL_LOCAL_LEN: usize = 64;
    /// Shortest accepted password, in characters.
    pub const MIN_PASSWORD_CHARS: usize = 8;
    /// Longest accepted password, in bytes.
    pub const MAX_PASSWORD_LEN: usize = 1024;
    /// A scan target (hostname, address or policy-target key such as
    /// `host:` and a 253-byte hostname), in bytes.
    pub const MAX_TARGET_LEN: usize = MAX_TARGET_KEY_LEN;
    /// A client-chosen upload id, in bytes (printable ASCII only).
    pub const MAX_UPLOAD_ID_LEN: usize = 128;
    /// The address a scan result's target resolved to, in bytes (printable ASCII only).
    pub const MAX_ADDR_LEN: usize = 64;
    /// The task id a scan result reports, in bytes (printable ASCII only).
    pub const MAX_TASK_ID_LEN: usize = 128;
    /// A scan task's policy-target key (`host:` and a hostname), in bytes.
    pub const MAX_TARGET_KEY_LEN: usize = 300;
    /// A scan task's port list, in bytes.
    pub const MAX_TASK_PORTS_LEN: usize = 64 * 1024;
    /// Ports in one scan result.
    pub const MAX_PORTS_PER_RESULT: usize = 65_536;
    /// A scan result's probed ports as a port list, in bytes: a longer one
    /// (a scattered top-ports list) is stored as its count alone.
    pub const MAX_PROBED_PORTS_LEN: usize = 256;
    /// What an agent reports about itself (address, version, OS, hostname), in bytes.
    pub const MAX_AGENT_FIELD_LEN: usize = 255;
    /// A webhook / ntfy URL, in bytes.
    pub const MAX_URL_LEN: usize = 2048;
    /// An outbox dedupe key, in bytes.
    pub const MAX_DEDUPE_KEY_LEN: usize = 255;
    /// An outbox payload, in bytes of JSON.
    pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;
    /// An event kind in a notification rule, in bytes (`[a-z0-9_.:-]`).
    pub const MAX_EVENT_KIND_LEN: usize = 64;
    /// Event kinds in one notification rule.
    pub const MAX_EVENTS_PER_RULE: usize = 32;
    /// Stored delivery error messages are cut to this many characters.
    pub const MAX_ERROR_CHARS: usize = 2000;
    /// Longest validity of an enrollment token.
    pub const MAX_ENROLLMENT_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
    /// Most rows one list call returns.
    pub const MAX_LIST_LIMIT: u32 = 1000;
    /// A text field of a compliance endpoint (name, DNS name, OS, container,
    /// agent id, server id, agent version), in bytes.
    pub const MAX_ENDPOINT_FIELD_LEN: usize = 1024;
    /// A name pattern of a compliance search, in bytes.
    pub const MAX_SEARCH_PATTERN_LEN: usize = 1024;
    /// Most compliance endpoints one search returns (a whole export of the
    /// largest IP scope).
    pub const MAX_ENDPOINT_PAGE: u64 = 1 << 20;
}

use limits::*;

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
pub(crate) fn name(what: &str, value: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(StoreError::invalid(format!("{what} must not be empty")));
    }
    if v.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::invalid(format!(
            "{what} is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if has_control(v) {
        return Err(StoreError::invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(v.to_owned())
}

/// An email address, trimmed and lower-cased. Deliberately simple: one `@`,
/// a local part of printable ASCII without spaces or quotes, and a domain of
/// at least two dot-separated labels of letters, digits and `-`.
pub(crate) fn email(value: &str) -> Result<String> {
    let v = value.trim().to_ascii_lowercase();
    let bad = |why: &str| Err(StoreError::invalid(format!("invalid email address: {why}")));
    if v.is_empty() {
        return bad("empty");
    }
    if v.len() > MAX_EMAIL_LEN {
        return bad("longer than 254 characters");
    }
    let Some((local, domain)) = v.split_once('@') else {
        return bad("missing '@'");
    };
    if local.is_empty() || local.len() > MAX_EMAIL_LOCAL_LEN {
        return bad("the part before '@' must be 1 to 64 characters");
    }
    let local_ok = local.bytes().all(|b| {
        b.is_ascii_graphic()
            && !matches!(
                b,
                b'@' | b'"' | b'(' | b')' | b',' | b':' | b';' | b'<' | b'>' | b'[' | b'\\' | b']'
            )
    });
    if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return bad("unsupported characters before '@'");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return bad("the domain needs a dot");
    }
    for label in labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return bad("invalid domain");
        }
    }
    Ok(v)
}

/// A new password: [`MIN_PASSWORD_CHARS`] characters to [`MAX_PASSWORD_LEN`] bytes.
pub(crate) fn password(value: &str) -> Result<()> {
    if value.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::invalid(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if value.len() > MAX_PASSWORD_LEN {
        return Err(StoreError::invalid(format!(
            "password is longer than {MAX_PASSWORD_LEN} bytes"
        )));
    }
    if value.contains('\0') {
        return Err(StoreError::invalid("password must not contain NUL"));
    }
    Ok(())
}

/// A short machine-ish text (scan target, agent version, ...): 1 to `max`
/// bytes, no whitespace at the ends, no control characters.
pub(crate) fn text(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(StoreError::invalid(format!("{what} must not be empty")));
    }
    if value.len() > max {
        return Err(StoreError::invalid(format!(
            "{what} is longer than {max} bytes"
        )));
    }
    if has_control(value) || value.trim() != value {
        return Err(StoreError::invalid(format!(
            "{what} must not contain control characters or surrounding whitespace"
        )));
    }
    Ok(())
}

/// A scan task's port list: at most [`MAX_TASK_PORTS_LEN`] bytes without
/// control characters; empty is allowed (a task that probes nothing).
pub(crate) fn task_ports(value: &str) -> Result<()> {
    if value.len() > MAX_TASK_PORTS_LEN {
        return Err(StoreError::invalid(format!(
            "ports is longer than {MAX_TASK_PORTS_LEN} bytes"
        )));
    }
    if has_control(value) {
        return Err(StoreError::invalid(
            "ports must not contain control characters",
        ));
    }
    Ok(())
}

/// A scan target as stored with results, alerts and target states.
pub(crate) fn target(value: &str) -> Result<()> {
    text("target", value, MAX_TARGET_LEN)?;
    if value.chars().any(char::is_whitespace) {
        return Err(StoreError::invalid("target must not contain whitespace"));
    }
    Ok(())
}

/// A client-chosen idempotency key: 1 to [`MAX_UPLOAD_ID_LEN`] printable ASCII characters.
pub(crate) fn upload_id(value: &str) -> Result<()> {
    printable("upload id", value, MAX_UPLOAD_ID_LEN)
}

/// A token-like value: 1 to `max` printable ASCII characters, no spaces.
pub(crate) fn printable(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() || value.len() > max {
        return Err(StoreError::invalid(format!(
            "{what} must be 1 to {max} characters"
        )));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::invalid(format!(
            "{what} must be printable ASCII without spaces"
        )));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host, no whitespace.
pub(crate) fn url(value: &str) -> Result<String> {
    let v = value.trim();
    let bad = |why: &str| Err(StoreError::invalid(format!("invalid URL: {why}")));
    if v.is_empty() {
        return bad("empty");
    }
    if v.len() > MAX_URL_LEN {
        return bad("longer than 2048 characters");
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace or control characters");
    }
    let lower = v.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("http://") {
        r
    } else {
        return bad("must start with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return bad("missing host");
    }
    Ok(v.to_owned())
}

/// An event kind: 1 to [`MAX_EVENT_KIND_LEN`] of `a-z 0-9 _ . : -`.
pub(crate) fn event_kind(value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= MAX_EVENT_KIND_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "invalid event kind {value:?}: use 1 to {MAX_EVENT_KIND_LEN} of a-z, 0-9, '_', '.', ':', '-'"
        )))
    }
}

/// The event kinds of a rule: 1 to [`MAX_EVENTS_PER_RULE`], each valid; duplicates removed, sorted.
pub(crate) fn events<S: AsRef<str>>(values: &[S]) -> Result<Vec<String>> {
    if values.is_empty() {
        return Err(StoreError::invalid(
            "a notification rule needs at least one event kind",
        ));
    }
    if values.len() > MAX_EVENTS_PER_RULE {
        return Err(StoreError::invalid(format!(
            "a notification rule may list at most {MAX_EVENTS_PER_RULE} event kinds"
        )));
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        event_kind(v.as_ref())?;
        out.push(v.as_ref().to_owned());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// An outbox dedupe key: 1 to [`MAX_DEDUPE_KEY_LEN`] bytes, no control characters.
pub(crate) fn dedupe_key(value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_DEDUPE_KEY_LEN || has_control(value) {
        return Err(StoreError::invalid(format!(
            "dedupe key must be 1 to {MAX_DEDUPE_KEY_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// An enrollment token lifetime: more than zero, at most [`MAX_ENROLLMENT_TTL`].
pub(crate) fn ttl(value: Duration) -> Result<i64> {
    if value.is_zero() || value > MAX_ENROLLMENT_TTL {
        return Err(StoreError::invalid(format!(
            "enrollment token lifetime must be between 1 second and {} days",
            MAX_ENROLLMENT_TTL.as_secs() / 86_400
        )));
    }
    Ok(value.as_secs().max(1) as i64)
}

/// A list limit: 1 to [`MAX_LIST_LIMIT`].
pub(crate) fn limit(value: u32) -> Result<i64> {
    if value == 0 || value > MAX_LIST_LIMIT {
        return Err(StoreError::invalid(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    Ok(i64::from(value))
}

/// Cuts a free-form message to [`MAX_ERROR_CHARS`] characters and replaces
/// control characters (other than newlines and tabs) by spaces.
pub(crate) fn error_message(value: &str) -> String {
    value
        .chars()
        .take(MAX_ERROR_CHARS)
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(StoreError::Invalid(_)))
    }

    #[test]
    fn names() {
        assert_eq!(name("name", "  Home office ").unwrap(), "Home office");
        assert!(is_invalid(name("name", "")));
        assert!(is_invalid(name("name", "   \t ")));
        assert!(is_invalid(name("name", "a\u{0}b")));
        assert!(is_invalid(name("name", "line\nbreak")));
        assert!(name("name", &"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(is_invalid(name("name", &"x".repeat(MAX_NAME_CHARS + 1))));
        let msg = name("agent name", "").unwrap_err().to_string();
        assert!(msg.contains("agent name"), "{msg}");
    }

    #[test]
    fn emails() {
        assert_eq!(
            email(" Alice.Smith+vigil@Example.COM ").unwrap(),
            "alice.smith+vigil@example.com"
        );
        assert!(email("a@b.co").is_ok());
        assert!(email("x@sub-domain.example.org").is_ok());
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@localhost",
            "alice@@example.com",
            "al ice@example.com",
            "alice@exa mple.com",
            "alice@-example.com",
            "alice@example..com",
            ".alice@example.com",
            "a..b@example.com",
            "alice@example.com\n",
            "\"alice\"@example.com",
            "alice@exam_ple.com",
        ] {
            // trailing newline is trimmed, so that one is fine
            if bad == "alice@example.com\n" {
                assert!(email(bad).is_ok());
                continue;
            }
            assert!(is_invalid(email(bad)), "{bad:?} accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(is_invalid(email(&long_local)));
        let long = format!("a@{}.com", "b".repeat(250));
        assert!(is_invalid(email(&long)));
    }

    #[test]
    fn passwords() {
        assert!(password("correct horse").is_ok());
        assert!(is_invalid(password("")));
        assert!(is_invalid(password("short")));
        assert!(is_invalid(password(&"x".repeat(MAX_PASSWORD_LEN + 1))));
        assert!(password(&"x".repeat(MAX_PASSWORD_LEN)).is_ok());
        assert!(is_invalid(password("abcdefgh\0")));
    }

    #[test]
    fn targets_and_texts() {
        assert!(target("nas.example").is_ok());
        assert!(target("2001:db8::1").is_ok());
        assert!(is_invalid(target("")));
        assert!(is_invalid(target("a b")));
        assert!(is_invalid(target(" a")));
        assert!(is_invalid(target(&"a".repeat(MAX_TARGET_LEN + 1))));
        let longest_key = format!("host:{}", "h".repeat(253));
        assert!(target(&longest_key).is_ok(), "target keys fit");
        assert!(text("os", "Debian GNU/Linux 12", 255).is_ok());
        assert!(is_invalid(text("os", "x\u{7}", 255)));
    }

    #[test]
    fn upload_ids() {
        assert!(upload_id("2f1c-0001").is_ok());
        assert!(is_invalid(upload_id("")));
        assert!(is_invalid(upload_id("has space")));
        assert!(is_invalid(upload_id("ünïcode")));
        assert!(is_invalid(upload_id(&"u".repeat(MAX_UPLOAD_ID_LEN + 1))));
        assert!(printable("address", "[2001:db8::1]:443", MAX_ADDR_LEN).is_ok());
        assert!(printable("address", &"a".repeat(MAX_ADDR_LEN), MAX_ADDR_LEN).is_ok());
        let msg = printable("address", &"a".repeat(MAX_ADDR_LEN + 1), MAX_ADDR_LEN)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("address must be 1 to 64 characters"), "{msg}");
        let msg = printable("task id", "a\tb", MAX_TASK_ID_LEN)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("task id must be printable ASCII"), "{msg}");
    }

    #[test]
    fn urls() {
        assert_eq!(
            url(" https://hooks.example/x?y=1 ").unwrap(),
            "https://hooks.example/x?y=1"
        );
        assert!(url("HTTP://10.0.0.1:8080/hook").is_ok());
        assert!(url("https://user:pw@ntfy.example/topic").is_ok());
        for bad in [
            "",
            "ftp://x.example",
            "https://",
            "https:///path",
            "https://:80/",
            "https://a b.example",
            "javascript:alert(1)",
        ] {
            assert!(is_invalid(url(bad)), "{bad:?} accepted");
        }
        assert!(is_invalid(url(&format!(
            "https://x.example/{}",
            "a".repeat(MAX_URL_LEN)
        ))));
    }

    #[test]
    fn event_kinds() {
        assert_eq!(
            events(&["alert.raised", "agent_silent", "alert.raised"]).unwrap(),
            vec!["agent_silent".to_owned(), "alert.raised".to_owned()]
        );
        assert!(is_invalid(events::<&str>(&[])));
        assert!(is_invalid(events(&["Alert"])));
        assert!(is_invalid(events(&[""])));
        assert!(is_invalid(events(&["a b"])));
        let many: Vec<String> = (0..=MAX_EVENTS_PER_RULE).map(|i| format!("e{i}")).collect();
        assert!(is_invalid(events(&many)));
    }

    #[test]
    fn ttls_limits_and_keys() {
        assert_eq!(ttl(Duration::from_secs(60)).unwrap(), 60);
        assert!(is_invalid(ttl(Duration::ZERO)));
        assert!(is_invalid(ttl(MAX_ENROLLMENT_TTL + Duration::from_secs(1))));
        assert_eq!(ttl(Duration::from_millis(10)).unwrap(), 1);
        assert!(is_invalid(limit(0)));
        assert!(is_invalid(limit(MAX_LIST_LIMIT + 1)));
        assert_eq!(limit(5).unwrap(), 5);
        assert!(dedupe_key("alert:1:raised").is_ok());
        assert!(is_invalid(dedupe_key("")));
        assert!(is_invalid(dedupe_key(&"k".repeat(MAX_DEDUPE_KEY_LEN + 1))));
    }

    #[test]
    fn error_messages_are_cut_and_cleaned() {
        assert_eq!(error_message("a\u{0}b\nc"), "a b\nc");
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        assert_eq!(error_message(&long).chars().count(), MAX_ERROR_CHARS);
    }
}
