//! The key that seals secrets at rest ([`vigil_store::Keyring`]): kept
//! outside the database, in `<data-dir>/secrets.key` (created on first
//! start, readable by the server's user only) or given in the environment
//! (`VIGIL_SECRETS_KEY`, for containers whose data directory is the
//! database volume). Replicas share it like the `tls/` files.

use crate::error::ServerError;
use std::path::{Path, PathBuf};
use vigil_store::Keyring;

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecretsKey {
    /// `<data-dir>/secrets.key`, created if missing.
    #[default]
    DataDir,
    /// This file (not created: a missing file is an error).
    File(PathBuf),
    /// The key file's text itself (lines, or keys separated by commas).
    Inline(String),
}

/// The default key file in the data directory.
pub const KEY_FILE: &str = "secrets.key";

impl std::fmt::Display for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretsKey::DataDir => write!(f, "<data dir>/{KEY_FILE}"),
            SecretsKey::File(p) => write!(f, "{}", p.display()),
            SecretsKey::Inline(_) => f.write_str("VIGIL_SECRETS_KEY"),
        }
    }
}

/// Loads the keyring (creating the data directory's key file on first use).
pub fn load(source: &SecretsKey, data_dir: &Path) -> Result<Keyring, ServerError> {
    let bad = |e: vigil_store::StoreError| ServerError::Config(format!("{source}: {e}"));
    match source {
        SecretsKey::Inline(text) => Keyring::parse(&text.replace(',', "\n")).map_err(bad),
        SecretsKey::File(path) => read(path).and_then(|t| Keyring::parse(&t).map_err(bad)),
        SecretsKey::DataDir => {
            let path = data_dir.join(KEY_FILE);
            if !path.exists() {
                let line = Keyring::generate_line().map_err(bad)?;
                let text = format!(
                    "# Vigil's secrets key: the first line seals, later lines (old keys) only open.\n{line}\n"
                );
                crate::tls::write_file(&path, text.as_bytes(), 0o600)?;
                tracing::info!(path = %path.display(), "created the secrets key (keep it with backups of the database, apart from them)");
            }
            read(&path).and_then(|t| Keyring::parse(&t).map_err(bad))
        }
    }
}

fn read(path: &Path) -> Result<String, ServerError> {
    std::fs::read_to_string(path).map_err(|e| ServerError::io("reading the secrets key", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_key_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("dir");
        let first = load(&SecretsKey::DataDir, dir.path()).expect("created");
        let again = load(&SecretsKey::DataDir, dir.path()).expect("read");
        assert_eq!(first.current_id(), again.current_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let missing = SecretsKey::File(dir.path().join("nope"));
        assert!(load(&missing, dir.path()).is_err());
        let line = Keyring::generate_line().expect("key");
        let inline = SecretsKey::Inline(format!("{line},{}", "ab".repeat(32)));
        assert!(load(&inline, dir.path()).is_ok());
        let err = load(&SecretsKey::Inline("short".into()), dir.path()).unwrap_err();
        assert!(err.to_string().contains("VIGIL_SECRETS_KEY"), "{err}");
    }
}
