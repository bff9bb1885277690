//! What an enrolled agent remembers: who it is, which server manages it and
//! how to recognise that server. Stored as `identity.json` in the agent's
//! state directory, readable by its owner only (it holds the credential).

use crate::AgentError;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "identity.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The server's agent URL, e.g. `https://vigil.example:8443`.
    pub server_url: String,
    /// `sha256:…` of the server certificate.
    pub pin: String,
    pub agent_id: String,
    pub credential: String,
    pub server_id: String,
}

impl Identity {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE)
    }

    /// The stored identity, or `None` if this agent was never enrolled.
    pub fn load(state_dir: &Path) -> Result<Option<Identity>, AgentError> {
        let path = Self::path(state_dir);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| AgentError::Corrupt {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::io("reading", path, e)),
        }
    }

    /// Writes the identity atomically with mode 0600.
    pub fn save(&self, state_dir: &Path) -> Result<(), AgentError> {
        fs::create_dir_all(state_dir).map_err(|e| AgentError::io("creating", state_dir, e))?;
        let path = Self::path(state_dir);
        let tmp = state_dir.join(format!(".{FILE}.tmp"));
        let body = serde_json::to_vec_pretty(self).map_err(|e| AgentError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| AgentError::io("writing", &path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Identity::load(dir.path()).expect("load"), None);
        let id = Identity {
            server_url: "https://127.0.0.1:8443".into(),
            pin: format!("sha256:{}", "ab".repeat(32)),
            agent_id: "a".into(),
            credential: "secret".into(),
            server_id: "s".into(),
        };
        id.save(dir.path()).expect("save");
        assert_eq!(Identity::load(dir.path()).expect("load"), Some(id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(Identity::path(dir.path()))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(Identity::path(dir.path()), b"{").expect("corrupt");
        assert!(Identity::load(dir.path()).is_err());
    }
}
