use std::path::PathBuf;

/// Errors that stop the server from starting or a background job from
/// running. Request errors are answered, not raised.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] vigil_store::StoreError),
}

impl ServerError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ServerError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
