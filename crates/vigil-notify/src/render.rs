//! Pure rendering of a [`Notification`] for each channel: no I/O, no clock.
//!
//! Text that comes from the monitored world (titles, details, host names) is
//! escaped or neutralised for each format: Slack control sequences, Discord
//! mentions, header line breaks.

use crate::notification::{Notification, Severity};
use base64::Engine as _;
use serde_json::{json, Value};

/// Subjects longer than this (in characters) are cut with `…`.
pub const MAX_SUBJECT_CHARS: usize = 150;
/// Discord rejects `content` longer than 2000 characters.
pub const DISCORD_MAX_CHARS: usize = 2000;
/// ntfy turns messages above 4096 bytes into attachments; stay below.
pub const NTFY_MAX_BYTES: usize = 4000;

/// `[Vigil] CRITICAL: <title>` on one line.
pub fn email_subject(n: &Notification) -> String {
    let subject = format!("[Vigil] {}: {}", n.severity.tag(), one_line(&n.title));
    truncate_chars(&subject, MAX_SUBJECT_CHARS)
}

/// The plain-text email body: title, details, then one fact per line.
pub fn email_body(n: &Notification) -> String {
    let mut out = String::new();
    out.push_str(&one_line(&n.title));
    out.push_str("\n\n");
    let details = n.details.trim();
    if !details.is_empty() {
        out.push_str(details);
        out.push_str("\n\n");
    }
    for (name, value) in facts(n) {
        out.push_str(&format!("{:<10} {value}\n", format!("{name}:")));
    }
    if let Some(url) = &n.console_url {
        out.push_str(&format!("{:<10} {url}\n", "Console:"));
    }
    if let Some(url) = &n.ack_url {
        out.push_str(&format!(
            "\nAcknowledge (no login needed; works once, for a day):\n{url}\n"
        ));
    }
    out.push_str("\n-- \nSent by Vigil security monitoring.\n");
    out.push_str(&format!("Reference: {}\n", one_line(&n.dedupe_key)));
    out
}

/// The facts shown under the details, in order: Event, Severity, Account,
/// Agent, Target (when known), Occurred.
pub fn facts(n: &Notification) -> Vec<(&'static str, String)> {
    let mut f = vec![
        (
            "Event",
            format!("{} ({})", n.event.label(), n.event.as_str()),
        ),
        ("Severity", n.severity.as_str().to_owned()),
        ("Account", one_line(&n.account)),
        (
            "Agent",
            format!("{} (id {})", one_line(&n.agent_name), one_line(&n.agent_id)),
        ),
    ];
    if let Some(loc) = n.location() {
        f.push(("Target", one_line(&loc)));
    }
    f.push(("Occurred", one_line(&n.occurred_at.to_rfc3339())));
    f
}

/// The generic webhook body: the notification itself, as serde writes it.
pub fn webhook_json(n: &Notification) -> Value {
    serde_json::to_value(n).expect("a Notification always serializes")
}

/// A Slack incoming-webhook body: `{"text": ...}` in Slack mrkdwn.
pub fn slack_json(n: &Notification) -> Value {
    let mut text = format!(
        "*[{}] {}*",
        n.severity.tag(),
        slack_escape(&one_line(&n.title))
    );
    let details = n.details.trim();
    if !details.is_empty() {
        text.push('\n');
        text.push_str(&slack_escape(details));
    }
    text.push('\n');
    text.push_str(&slack_escape(&facts_line(n)));
    if let Some(url) = &n.console_url {
        text.push_str(&format!(
            "\n<{}|Open in the Vigil console>",
            slack_escape(url)
        ));
    }
    if let Some(url) = &n.ack_url {
        text.push_str(&format!("\n<{}|Acknowledge>", slack_escape(url)));
    }
    json!({ "text": text })
}

/// A Microsoft Teams incoming-webhook body (legacy Office 365 connector MessageCard).
pub fn teams_json(n: &Notification) -> Value {
    let heading = format!("[{}] {}", n.severity.tag(), one_line(&n.title));
    let facts: Vec<Value> = facts(n)
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    let mut card = json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": heading,
        "themeColor": theme_color(n.severity),
        "title": heading,
        "text": n.details.trim(),
        "sections": [{ "facts": facts }],
    });
    if let Some(url) = &n.console_url {
        card["potentialAction"] = json!([{
            "@type": "OpenUri",
            "name": "Open in the Vigil console",
            "targets": [{ "os": "default", "uri": url }],
        }]);
    }
    card
}

/// A Discord webhook body: `{"content": ...}`, at most 2000 characters, no pings.
pub fn discord_json(n: &Notification) -> Value {
    let mut text = format!("**[{}] {}**", n.severity.tag(), one_line(&n.title));
    let details = n.details.trim();
    if !details.is_empty() {
        text.push('\n');
        text.push_str(details);
    }
    text.push('\n');
    text.push_str(&facts_line(n));
    if let Some(url) = &n.console_url {
        // <...> keeps Discord from unfurling a preview of the console page.
        text.push_str(&format!("\n<{url}>"));
    }
    if let Some(url) = &n.ack_url {
        text.push_str(&format!("\nAcknowledge: <{url}>"));
    }
    json!({
        "content": truncate_chars(&text, DISCORD_MAX_CHARS),
        // Text from the monitored world must never ping @everyone or anyone else.
        "allowed_mentions": { "parse": [] },
    })
}

/// What an ntfy publish carries: the body and its headers' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfyMessage {
    pub title: String,
    /// 1 (min) to 5 (urgent).
    pub priority: u8,
    /// Emoji short codes and plain tags, comma-joined in the `Tags` header.
    pub tags: Vec<&'static str>,
    /// The console link, sent as `Click`.
    pub click: Option<String>,
    pub body: String,
}

impl NtfyMessage {
    /// The headers of the publish request, ready to send (`Title` RFC 2047-encoded
    /// when it is not plain ASCII).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("Title", header_text(&self.title)),
            ("Priority", self.priority.to_string()),
            ("Tags", self.tags.join(",")),
        ];
        if let Some(url) = &self.click {
            h.push(("Click", header_text(url)));
        }
        h
    }
}

/// The ntfy publish for a notification.
pub fn ntfy(n: &Notification) -> NtfyMessage {
    let (priority, emoji) = match n.severity {
        Severity::Critical => (5, "rotating_light"),
        Severity::Warning => (4, "warning"),
        Severity::Info => (3, "information_source"),
        Severity::Recovery => (3, "white_check_mark"),
    };
    let mut body = String::new();
    let details = n.details.trim();
    if !details.is_empty() {
        body.push_str(details);
        body.push_str("\n\n");
    }
    body.push_str(&facts_line(n));
    NtfyMessage {
        title: one_line(&n.title),
        priority,
        tags: vec![emoji, "vigil", n.event.as_str()],
        click: n.console_url.clone(),
        body: truncate_bytes(&body, NTFY_MAX_BYTES),
    }
}

/// `Agent: x · Account: y · Target: z · At: t`
fn facts_line(n: &Notification) -> String {
    let mut parts = vec![
        format!("Agent: {}", one_line(&n.agent_name)),
        format!("Account: {}", one_line(&n.account)),
    ];
    if let Some(loc) = n.location() {
        parts.push(format!("Target: {}", one_line(&loc)));
    }
    parts.push(format!("At: {}", one_line(&n.occurred_at.to_rfc3339())));
    parts.join(" · ")
}

fn theme_color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "C62828",
        Severity::Warning => "F9A825",
        Severity::Info => "1565C0",
        Severity::Recovery => "2E7D32",
    }
}

/// Slack mrkdwn escaping: `&`, `<`, `>` (so text cannot inject `<!channel>` or links).
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Control characters (line breaks included) become spaces; runs of white space collapse.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most `max` characters, the last one `…` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// At most `max` bytes on a character boundary, ending in `…` when cut.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A header value: one line; RFC 2047 `=?UTF-8?B?...?=` when not printable ASCII.
pub fn header_text(s: &str) -> String {
    let line = one_line(s);
    if line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        line
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(line.as_bytes())
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::notification::{EventKind, OccurredAt};

    pub(crate) fn sample() -> Notification {
        Notification {
            event: EventKind::UnauthorizedPortOpen,
            severity: Severity::Critical,
            account: "Acme Corp".into(),
            agent_name: "office-gw".into(),
            agent_id: "a1b2c3".into(),
            target: Some("203.0.113.7".into()),
            port: Some(23),
            occurred_at: OccurredAt::Unix(1_777_636_800),
            title: "Port 23/tcp open on 203.0.113.7".into(),
            details: "Telnet answers on a port the policy does not allow.\nClose it or allow it in the console.".into(),
            dedupe_key: "acme/office-gw/203.0.113.7/unauthorized/23".into(),
            console_url: Some("https://vigil.example/conditions/42".into()),
            delivery_id: None,
            ack_url: None,
        }
    }

    #[test]
    fn email_subject_and_body() {
        let n = sample();
        assert_eq!(
            email_subject(&n),
            "[Vigil] CRITICAL: Port 23/tcp open on 203.0.113.7"
        );
        let body = email_body(&n);
        let expected = "\
Port 23/tcp open on 203.0.113.7

Telnet answers on a port the policy does not allow.
Close it or allow it in the console.

Event:     Unauthorized port open (unauthorized_port_open)
Severity:  critical
Account:   Acme Corp
Agent:     office-gw (id a1b2c3)
Target:    203.0.113.7:23
Occurred:  2026-05-01T12:00:00Z
Console:   https://vigil.example/conditions/42

-- 
Sent by Vigil security monitoring.
Reference: acme/office-gw/203.0.113.7/unauthorized/23
";
        assert_eq!(body, expected);
    }

    #[test]
    fn ack_links_show_where_the_channel_can_carry_them() {
        let mut n = sample();
        let link = "https://vigil.example/ack/a.b.c.1.ff";
        assert!(!email_body(&n).contains("Acknowledge"));
        n.ack_url = Some(link.into());
        let body = email_body(&n);
        assert!(
            body.contains(&format!(
                "Acknowledge (no login needed; works once, for a day):\n{link}\n"
            )),
            "{body}"
        );
        assert_eq!(webhook_json(&n)["ack_url"], link);
        assert!(slack_json(&n)["text"]
            .as_str()
            .is_some_and(|t| t.ends_with(&format!("<{link}|Acknowledge>"))));
        assert!(discord_json(&n)["content"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("Acknowledge: <{link}>"))));
    }

    #[test]
    fn email_subject_is_one_bounded_line() {
        let mut n = sample();
        n.severity = Severity::Recovery;
        n.title = "Port closed\r\nBcc: evil@example.com".into();
        assert_eq!(
            email_subject(&n),
            "[Vigil] RECOVERED: Port closed Bcc: evil@example.com"
        );
        n.title = "x".repeat(500);
        let s = email_subject(&n);
        assert_eq!(s.chars().count(), MAX_SUBJECT_CHARS);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn email_body_without_optional_parts() {
        let mut n = sample();
        n.target = None;
        n.port = None;
        n.console_url = None;
        n.details = "  ".into();
        n.occurred_at = OccurredAt::Rfc3339("2026-05-01T14:00:00+02:00".into());
        let body = email_body(&n);
        assert!(!body.contains("Target:"));
        assert!(!body.contains("Console:"));
        assert!(body.starts_with("Port 23/tcp open on 203.0.113.7\n\nEvent:"));
        assert!(body.contains("Occurred:  2026-05-01T14:00:00+02:00\n"));
    }

    #[test]
    fn webhook_is_the_notification() {
        let n = sample();
        let v = webhook_json(&n);
        assert_eq!(v["event"], "unauthorized_port_open");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["port"], 23);
        assert_eq!(v["occurred_at"], 1_777_636_800);
        let back: Notification = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn slack_text_is_escaped() {
        let mut n = sample();
        n.details = "<!channel> look at <https://evil.example|this> & that".into();
        let v = slack_json(&n);
        let text = v["text"].as_str().unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert!(text.starts_with("*[CRITICAL] Port 23/tcp open on 203.0.113.7*\n"));
        assert!(
            text.contains("&lt;!channel&gt; look at &lt;https://evil.example|this&gt; &amp; that")
        );
        assert!(text.contains(
            "Agent: office-gw · Account: Acme Corp · Target: 203.0.113.7:23 · At: 2026-05-01T12:00:00Z"
        ));
        assert!(text.ends_with("\n<https://vigil.example/conditions/42|Open in the Vigil console>"));
    }

    #[test]
    fn teams_card() {
        let v = teams_json(&sample());
        assert_eq!(v["@type"], "MessageCard");
        assert_eq!(v["themeColor"], "C62828");
        assert_eq!(v["title"], "[CRITICAL] Port 23/tcp open on 203.0.113.7");
        assert_eq!(v["summary"], v["title"]);
        let facts = v["sections"][0]["facts"].as_array().unwrap();
        assert_eq!(facts[0]["name"], "Event");
        assert!(facts
            .iter()
            .any(|f| f["name"] == "Target" && f["value"] == "203.0.113.7:23"));
        assert_eq!(
            v["potentialAction"][0]["targets"][0]["uri"],
            "https://vigil.example/conditions/42"
        );
        let mut n = sample();
        n.console_url = None;
        assert!(teams_json(&n).get("potentialAction").is_none());
    }

    #[test]
    fn discord_content_is_bounded_and_pings_nobody() {
        let mut n = sample();
        n.details = "@everyone ".repeat(500);
        let v = discord_json(&n);
        let content = v["content"].as_str().unwrap();
        assert!(content.starts_with("**[CRITICAL] Port 23/tcp open on 203.0.113.7**\n@everyone"));
        assert_eq!(content.chars().count(), DISCORD_MAX_CHARS);
        assert_eq!(v["allowed_mentions"]["parse"], json!([]));
        let short = discord_json(&sample());
        assert!(short["content"]
            .as_str()
            .unwrap()
            .ends_with("\n<https://vigil.example/conditions/42>"));
    }

    #[test]
    fn ntfy_headers_by_severity() {
        let m = ntfy(&sample());
        assert_eq!(m.title, "Port 23/tcp open on 203.0.113.7");
        assert_eq!(m.priority, 5);
        assert_eq!(
            m.tags,
            vec!["rotating_light", "vigil", "unauthorized_port_open"]
        );
        assert!(m.body.starts_with("Telnet answers"));
        assert!(m.body.ends_with("At: 2026-05-01T12:00:00Z"));
        let h = m.headers();
        assert!(h.contains(&("Priority", "5".into())));
        assert!(h.contains(&("Tags", "rotating_light,vigil,unauthorized_port_open".into())));
        assert!(h.contains(&("Click", "https://vigil.example/conditions/42".into())));

        let mut n = sample();
        n.severity = Severity::Recovery;
        n.event = EventKind::ServiceRecovered;
        n.console_url = None;
        let m = ntfy(&n);
        assert_eq!(m.priority, 3);
        assert_eq!(m.tags[0], "white_check_mark");
        assert!(m.headers().iter().all(|(k, _)| *k != "Click"));
        n.severity = Severity::Warning;
        assert_eq!(ntfy(&n).priority, 4);
    }

    #[test]
    fn ntfy_body_is_bounded() {
        let mut n = sample();
        n.details = "é".repeat(5000);
        let m = ntfy(&n);
        assert!(m.body.len() <= NTFY_MAX_BYTES);
        assert!(m.body.ends_with('…'));
    }

    #[test]
    fn header_text_encodes_non_ascii() {
        assert_eq!(header_text("Port open"), "Port open");
        assert_eq!(header_text("a\r\nb"), "a b");
        assert_eq!(header_text("Büro"), "=?UTF-8?B?QsO8cm8=?=");
    }

    #[test]
    fn truncation_helpers() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_bytes("abcd", 4), "abcd");
        assert_eq!(truncate_bytes("ééé", 5), "é…");
        assert_eq!(one_line("  a\t\tb\n c  "), "a b c");
    }
}
