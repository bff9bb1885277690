//! What an enrolled agent remembers: who it is, which server manages it and
//! how to recognise that server. Stored as `identity.json` in the agent's
//! state directory, readable by its owner only (it holds the credential):
//! mode 0600 on Linux, SYSTEM and Administrators on Windows.
//!
//! A replicated server has several URLs, one pin: `server_url` is the
//! preferred one, as before (files of single-URL agents read unchanged, and
//! older agents read the new files); `fallback_urls` are the other URLs
//! given at enrollment and `announced_urls` the replicas the server names.

use crate::{sys, AgentError};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

const FILE: &str = "identity.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The server's agent URL, e.g. `https://vigil.example:8443`: the
    /// preferred one of a replicated server.
    pub server_url: String,
    /// The other URLs given at enrollment, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_urls: Vec<String>,
    /// The replica URLs the server announced last (sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announced_urls: Vec<String>,
    /// `sha256:…` of the server certificate (every replica presents it).
    pub pin: String,
    pub agent_id: String,
    pub credential: String,
    pub server_id: String,
}

impl Identity {
    /// Every URL of the server, preferred first, once each.
    pub fn server_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        let all = std::iter::once(&self.server_url)
            .chain(&self.fallback_urls)
            .chain(&self.announced_urls);
        for url in all {
            let url = url.trim_end_matches('/');
            if !urls.iter().any(|u| u == url) {
                urls.push(url.to_string());
            }
        }
        urls
    }

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

    /// Writes the identity atomically, readable only by the agent's account
    /// and administrators (see [`crate::sys::write_private`]).
    pub fn save(&self, state_dir: &Path) -> Result<(), AgentError> {
        fs::create_dir_all(state_dir).map_err(|e| AgentError::io("creating", state_dir, e))?;
        let path = Self::path(state_dir);
        let body = serde_json::to_vec_pretty(self).map_err(|e| AgentError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        sys::write_private(&path, &body)
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
            fallback_urls: vec!["https://127.0.0.2:8443".into()],
            announced_urls: vec!["https://127.0.0.3:8443".into()],
            pin: format!("sha256:{}", "ab".repeat(32)),
            agent_id: "a".into(),
            credential: "secret".into(),
            server_id: "s".into(),
        };
        id.save(dir.path()).expect("save");
        assert_eq!(Identity::load(dir.path()).expect("load"), Some(id));
        let protection = sys::private_file_check(&Identity::path(dir.path())).expect("check");
        assert!(protection.private || sys::under_wine(), "{protection}");
        fs::write(Identity::path(dir.path()), b"{").expect("corrupt");
        assert!(Identity::load(dir.path()).is_err());
    }

    #[test]
    fn single_url_files_read_as_before_and_stay_readable_by_older_agents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = r#"{"server_url":"https://10.0.0.1:8443","pin":"sha256:00","agent_id":"a","credential":"c","server_id":"s"}"#;
        fs::write(Identity::path(dir.path()), old).expect("write");
        let id = Identity::load(dir.path()).expect("load").expect("enrolled");
        assert_eq!(id.server_urls(), ["https://10.0.0.1:8443"]);
        id.save(dir.path()).expect("save");
        let text = fs::read_to_string(Identity::path(dir.path())).expect("read");
        assert!(!text.contains("fallback_urls"), "{text}");
        assert!(!text.contains("announced_urls"), "{text}");
    }

    #[test]
    fn server_urls_preferred_first_once_each() {
        let id = |server: &str, fallback: &[&str], announced: &[&str]| Identity {
            server_url: server.into(),
            fallback_urls: fallback.iter().map(|u| u.to_string()).collect(),
            announced_urls: announced.iter().map(|u| u.to_string()).collect(),
            pin: String::new(),
            agent_id: String::new(),
            credential: String::new(),
            server_id: String::new(),
        };
        let cases: &[(Identity, &[&str])] = &[
            (id("https://a", &[], &[]), &["https://a"]),
            (
                id("https://a/", &["https://b", "https://a"], &[]),
                &["https://a", "https://b"],
            ),
            (
                id("https://lb", &["https://b"], &["https://a", "https://b/"]),
                &["https://lb", "https://b", "https://a"],
            ),
        ];
        for (identity, want) in cases {
            assert_eq!(identity.server_urls(), *want, "{identity:?}");
        }
    }
}
