//! Opsgenie Alert API: an alert is created (`POST /v2/alerts`, with the
//! condition as `alias`), its recovery closes it by alias.

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::{Notification, Severity};
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render::{facts, one_line, truncate_chars};
use crate::sinks::condition_key;
use crate::sinks::http::{join, HttpRequest};
use serde_json::{json, Map, Value};

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Opsgenie",
    fields: &[
        FieldSpec::new(
            "api_key",
            "API key",
            FieldKind::Secret,
            "The key of an API integration in Opsgenie.",
        ),
        FieldSpec::base_url(
            "https://api.opsgenie.com",
            "https://api.eu.opsgenie.com for the EU instance.",
        ),
    ],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let base = d.url("base_url")?;
    let alias = condition_key(n, 512);
    let mut request = if n.severity == Severity::Recovery {
        let mut url = join(&base, &["v2", "alerts", &alias, "close"])?;
        url.query_pairs_mut().append_pair("identifierType", "alias");
        let body = json!({"source": "Vigil", "note": truncate_chars(&one_line(&n.title), 1000)});
        HttpRequest::json(url, &body)
    } else {
        let details: Map<String, Value> = facts(n)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect();
        let body = json!({
            "message": truncate_chars(&format!("[{}] {}", n.severity.tag(), one_line(&n.title)), 130),
            "alias": alias,
            "description": truncate_chars(n.details.trim(), 15_000),
            "source": "Vigil",
            "entity": one_line(n.target.as_deref().unwrap_or(&n.agent_name)),
            "priority": match n.severity {
                Severity::Critical => "P1",
                Severity::Warning => "P3",
                _ => "P5",
            },
            "tags": ["vigil", n.event.as_str()],
            "details": details,
        });
        HttpRequest::json(join(&base, &["v2", "alerts"])?, &body)
    };
    request.authorization = Some(format!("GenieKey {}", d.require("api_key")?));
    Ok(request)
}
