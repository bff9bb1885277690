//! PagerDuty Events API v2 (`POST /v2/enqueue`): an alert triggers an
//! incident, its recovery resolves it (same `dedup_key`, from the condition).

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::{Notification, Severity};
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render::{facts, one_line, truncate_chars};
use crate::sinks::condition_key;
use crate::sinks::http::{join, HttpRequest};
use serde_json::{json, Map, Value};

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "PagerDuty",
    fields: &[
        FieldSpec::new(
            "routing_key",
            "Integration key",
            FieldKind::Secret,
            "The Events API v2 integration key (routing key) of a PagerDuty service.",
        ),
        FieldSpec::base_url("https://events.pagerduty.com", "The Events API server."),
    ],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let url = join(&d.url("base_url")?, &["v2", "enqueue"])?;
    let mut body = json!({
        "routing_key": d.require("routing_key")?,
        "dedup_key": condition_key(n, 255),
    });
    if n.severity == Severity::Recovery {
        body["event_action"] = "resolve".into();
    } else {
        let details: Map<String, Value> = facts(n)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v)))
            .collect();
        body["event_action"] = "trigger".into();
        body["payload"] = json!({
            "summary": truncate_chars(&format!("[{}] {}", n.severity.tag(), one_line(&n.title)), 1024),
            "source": one_line(n.target.as_deref().unwrap_or(&n.agent_name)),
            "severity": match n.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
                _ => "info",
            },
            "component": one_line(&n.agent_name),
            "group": one_line(&n.account),
            "class": n.event.as_str(),
            "custom_details": details,
        });
        if let Some(url) = &n.console_url {
            body["links"] = json!([{"href": url, "text": "Open in the Vigil console"}]);
        }
    }
    Ok(HttpRequest::json(url, &body))
}
