//! The served OpenAPI document describes routes that exist: every
//! documented operation, called on the real server, is routed (neither 404
//! nor 405) and asks for credentials unless documented as public.

use crate::common::Server;
use reqwest::Method;
use serde_json::{json, Value};

api_tests!(
    every_documented_operation_exists_and_asks_for_credentials,
    the_document_is_valid_json_with_resolvable_references,
);

async fn every_documented_operation_exists_and_asks_for_credentials(s: Server) {
    let reply = s.send(Method::GET, "/openapi.json", None, None).await;
    let doc = reply.ok(200);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    assert_eq!(doc["servers"][0]["url"], vigil_proto::api::API_PREFIX);
    let global_security = doc["security"].clone();
    let paths = doc["paths"].as_object().expect("paths");

    let mut called = Vec::new();
    for (template, item) in paths {
        let ops = item.as_object().expect("path item");
        for (method, op) in ops {
            let Ok(m) = method.to_uppercase().parse::<Method>() else {
                continue; // "parameters", "summary", ...
            };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                continue;
            }
            let path = template
                .replace("{id}", &uuid::Uuid::new_v4().to_string())
                .replace("{device}", &uuid::Uuid::new_v4().to_string());
            assert!(!path.contains('{'), "unknown path parameter in {template}");
            let body = matches!(m, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let reply = s.send(m.clone(), &path, None, body.as_ref()).await;
            let status = reply.status.as_u16();
            assert!(
                status != 404 && status != 405,
                "documented {m} {template} is not routed: {reply:?}"
            );
            assert!(!reply.status.is_server_error(), "{m} {template}: {reply:?}");
            let security = op.get("security").unwrap_or(&global_security);
            let public = security.as_array().is_some_and(Vec::is_empty);
            if public {
                assert_ne!(status, 401, "public {m} {template}: {reply:?}");
            } else {
                reply.assert_error(401, &["credentials"]);
            }
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{m} {template} answered {status}, which its responses do not document"
            );
            called.push((m.to_string(), template.clone(), public));
        }
    }

    // The public operations are exactly these two.
    let mut public: Vec<(&str, &str)> = called
        .iter()
        .filter(|(_, _, p)| *p)
        .map(|(m, t, _)| (m.as_str(), t.as_str()))
        .collect();
    public.sort_unstable();
    assert_eq!(public, vec![("GET", "/openapi.json"), ("POST", "/login")]);
    // Every operation the other tests use is documented.
    for (m, t) in [
        ("GET", "/me"),
        ("GET", "/users"),
        ("POST", "/users"),
        ("GET", "/tokens"),
        ("POST", "/tokens"),
        ("DELETE", "/tokens/{id}"),
        ("GET", "/agents"),
        ("GET", "/agents/{id}"),
        ("PATCH", "/agents/{id}"),
        ("DELETE", "/agents/{id}"),
        ("GET", "/agents/{id}/policy"),
        ("PUT", "/agents/{id}/policy"),
        ("GET", "/agents/{id}/results"),
        ("POST", "/agents/{id}/scan"),
        ("POST", "/enrollments"),
        ("GET", "/alerts"),
        ("GET", "/alerts/{id}"),
        ("GET", "/alerts/{id}/history"),
        ("POST", "/alerts/{id}/ack"),
        ("GET", "/contacts"),
        ("POST", "/contacts"),
        ("GET", "/contacts/{id}"),
        ("PUT", "/contacts/{id}"),
        ("DELETE", "/contacts/{id}"),
        ("POST", "/contacts/{id}/test"),
        ("GET", "/rules"),
        ("POST", "/rules"),
        ("DELETE", "/rules/{id}"),
    ] {
        assert!(
            called.iter().any(|(cm, ct, _)| cm == m && ct == t),
            "{m} {t} is served but not documented"
        );
    }
    s.shutdown().await;
}

async fn the_document_is_valid_json_with_resolvable_references(s: Server) {
    let doc = s
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .ok(200);
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty(), "no $ref at all?");
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // The channels and their fields come from the registry.
    let schemas = &doc["components"]["schemas"];
    let names: Vec<&str> = vigil_notify::Channel::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(
        schemas["ContactBody"]["properties"]["channel"]["enum"],
        json!(names)
    );
    for c in vigil_notify::Channel::ALL {
        let fields = &schemas["ChannelFields"]["properties"][c.as_str()];
        for f in c.fields() {
            let p = &fields["properties"][f.name];
            assert_eq!(p["x-vigil-kind"], f.kind.as_str(), "{c}.{}", f.name);
            assert_eq!(p["writeOnly"] == true, f.kind.is_secret(), "{c}.{}", f.name);
        }
    }
    assert_eq!(
        schemas["ChannelFields"]["properties"]["pagerduty"]["properties"]["base_url"]["default"],
        "https://events.pagerduty.com"
    );
    s.shutdown().await;
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
