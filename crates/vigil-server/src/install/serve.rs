//! What the agent API serves for the manual install: the install scripts
//! (`install.sh`, `install.ps1`) and the agent binaries (`vigil`,
//! `vigil.exe`). All are public like the enrollment endpoint: none holds a
//! secret (the token is the script's argument), and curl or PowerShell
//! reach them over the pinned TLS connection.

use super::{ps1, script, Layout, WinLayout, DOWNLOAD_EXE_PATH, DOWNLOAD_PATH, NO_WINDOWS_BINARY};
use crate::app::App;
use crate::http::error::ApiError;
use crate::http::extract::Query;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use vigil_proto::api::{AgentStart, ErrorBody};

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

/// `?install_dir=C:\…&state_dir=C:\…`, both optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ps1Query {
    install_dir: Option<String>,
    state_dir: Option<String>,
}

/// `GET /agent/v1/install.ps1`: the Windows installer, carrying the
/// certificate pin and the SHA-256 of `vigil.exe`.
pub(crate) async fn install_ps1(
    State(app): State<Arc<App>>,
    Query(q): Query<Ps1Query>,
) -> Result<Response, ApiError> {
    let layout = WinLayout::new(q.install_dir.as_deref(), q.state_dir.as_deref())
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let Ok(windows) = app.install.windows() else {
        return Ok(no_windows_binary());
    };
    let download = format!("{}{DOWNLOAD_EXE_PATH}", app.agent_url.trim_end_matches('/'));
    let body = ps1::install_ps1(
        &layout,
        &app.agent_url,
        &app.pin.to_string(),
        &windows.sha256,
        &download,
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// 404 with the reason, in the API's error shape.
fn no_windows_binary() -> Response {
    let body = ErrorBody {
        error: NO_WINDOWS_BINARY.into(),
    };
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// `GET /agent/v1/download/vigil.exe`: the Windows agent, streamed from disk.
pub(crate) async fn download_exe(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let Ok(windows) = app.install.windows() else {
        return Ok(no_windows_binary());
    };
    Ok(serve_file(&windows.path, "vigil.exe")
        .await?
        .into_response())
}

/// `GET /agent/v1/download/vigil`: the agent binary, streamed from disk.
pub(crate) async fn download(State(app): State<Arc<App>>) -> Result<impl IntoResponse, ApiError> {
    serve_file(&app.install.binary(), "vigil").await
}

async fn serve_file(path: &Path, name: &str) -> Result<impl IntoResponse, ApiError> {
    let file = tokio::fs::File::open(path).await.map_err(|e| {
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
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    ))
}
