//! Probes for orchestrators and load balancers, on the REST listener:
//! `GET /healthz` (the process answers; nothing else is checked, so it
//! stays cheap) and `GET /readyz` (the database answers too, within a
//! short time: a replica that cannot reach it should get no traffic).

use crate::app::App;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use vigil_store::{Store, StoreError};

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 `ready`, or 503 with the reason.
pub(crate) async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    match readiness(&app.store, READY_TIMEOUT).await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            )
        }
    }
}

/// Whether the database answers within `timeout`; why not otherwise.
pub(crate) async fn readiness(store: &Store, timeout: Duration) -> Result<(), String> {
    probe(store.ping(), timeout).await
}

async fn probe(
    ping: impl std::future::Future<Output = Result<(), StoreError>>,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the database is unreachable: {e}")),
        Err(_) => Err(format!(
            "the database did not answer within {} s",
            timeout.as_secs_f32()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_while_the_database_answers() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        assert_eq!(readiness(&store, READY_TIMEOUT).await, Ok(()));
        store.close().await;
        let reason = readiness(&store, READY_TIMEOUT).await.unwrap_err();
        assert!(
            reason.starts_with("the database is unreachable"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_database_that_hangs_is_not_ready_after_the_timeout() {
        let timeout = Duration::from_millis(50);
        let reason = probe(std::future::pending(), timeout).await.unwrap_err();
        assert_eq!(reason, "the database did not answer within 0.05 s");
    }
}
