//! The embedded stylesheet and script, served under names that carry a
//! hash of their content, so browsers may cache them for a year.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

fn hashed(stem: &str, ext: &str, content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{stem}-{hex}.{ext}")
}

fn css_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| hashed("console", "css", CSS))
}

fn js_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| hashed("console", "js", JS))
}

pub(crate) fn css_path() -> String {
    format!("/static/{}", css_name())
}

pub(crate) fn js_path() -> String {
    format!("/static/{}", js_name())
}

/// `GET /static/{file}`: the current stylesheet or script; any other name
/// (an older hash, say) is a 404.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = if file == css_name() {
        (CSS, "text/css; charset=utf-8")
    } else if file == js_name() {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_change_with_content() {
        assert!(css_path().starts_with("/static/console-") && css_path().ends_with(".css"));
        assert_ne!(hashed("c", "css", "a"), hashed("c", "css", "b"));
    }
}
