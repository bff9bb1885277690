//! What the agent API serves for the manual install: the install script and
//! the agent binary. Both are public like the enrollment endpoint: neither
//! holds a secret (the token is the script's argument), and curl reaches
//! them over the pinned TLS connection.

use super::{script, Layout, DOWNLOAD_PATH};
use crate::api::error::ApiError;
use crate::api::extract::Query;
use crate::app::App;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use std::sync::Arc;
use vigil_proto::api::AgentStart;

/// `?install_dir=…&state_dir=…&unit_dir=…&start=…`, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScriptQuery {
    install_dir: Option<String>,
    state_dir: Option<String>,
    unit_dir: Option<String>,
    #[serde(default)]
    start: AgentStart,
}

/// `GET /agent/v1/install.sh`.
pub(crate) async fn install_script(
    State(app): State<Arc<App>>,
    Query(q): Query<ScriptQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let layout = Layout::new(
        q.install_dir.as_deref(),
        q.state_dir.as_deref(),
        q.unit_dir.as_deref(),
        q.start,
    )
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let download = format!("{}{DOWNLOAD_PATH}", app.agent_url.trim_end_matches('/'));
    let body = script::install_sh(
        &layout,
        &app.agent_url,
        &app.pin.to_string(),
        &app.install.curl_pin,
        &download,
    );
    Ok((
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        body,
    ))
}

/// `GET /agent/v1/download/vigil`: the agent binary, streamed from disk.
pub(crate) async fn download(State(app): State<Arc<App>>) -> Result<impl IntoResponse, ApiError> {
    let path = app.install.binary();
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::Internal(format!("opening the agent binary {}: {e}", path.display()))
    })?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?
        .len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"vigil\"".to_string(),
            ),
        ],
        body,
    ))
}
