//! Self-update: the agent installs the build its server offers.
//!
//! A heartbeat answer carries the server's update key (kept on first
//! sight, per server) and, when the owner rolled an update out, an
//! [`UpdateOffer`]. The agent then:
//!
//! 1. downloads the offer's path from the same server over the pinned
//!    channel into a file beside its own binary (at most [`MAX_DOWNLOAD`]),
//! 2. checks size, SHA-256 and the Ed25519 signature of the server's
//!    update key ([`check`]): a download path that was tampered with
//!    cannot push code,
//! 3. replaces its binary atomically, keeping the old one as
//!    `<binary>.previous` ([`install`], via `sys`),
//! 4. runs the new binary on trial: it must reach the server within the
//!    trial period (a minute) — `vigil agent run` does this part, as it
//!    owns the process — or the old binary is put back ([`roll_back`]) and
//!    that version is not tried again.
//!
//! The outcome goes to the server with the next heartbeat ([`State::report`]).

use crate::sys;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vigil_proto::agent::{update_message, UpdateOffer, UpdateOutcome, UpdateReport};

/// Where the update state lives in the agent's state directory.
const STATE_FILE: &str = "update.json";
/// The largest agent build accepted.
pub const MAX_DOWNLOAD: u64 = 256 << 20;
/// Set for a new binary on trial: the file it creates once it has reached
/// the server (then it exits; the old process hands over to it).
pub const TRIAL_ENV: &str = "VIGIL_UPDATE_TRIAL";
/// Failed versions remembered, oldest forgotten first.
const FAILED_KEPT: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    #[error("the server has not sent its update key: refused")]
    NoKey,
    #[error("the server's update key changed (was {kept}, now {offered}): refused")]
    KeyChanged { kept: String, offered: String },
    #[error("the download has {got} bytes, the offer says {expected}")]
    Size { expected: u64, got: u64 },
    #[error("the download's SHA-256 is {got}, the offer says {expected}")]
    Digest { expected: String, got: String },
    #[error("the offer's signature does not verify with the server's update key")]
    Signature,
    #[error("this agent cannot replace {path}: {reason}")]
    NotReplaceable { path: String, reason: String },
    #[error("{0}")]
    Io(String),
}

/// The platform of this build, as offers name it: `linux-x86_64`.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// What the agent remembers about updates (in `update.json`), per server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The server these belong to; another server starts afresh.
    pub server_id: String,
    /// The server's update key (hex Ed25519 public key), first seen.
    #[serde(default)]
    pub key: Option<String>,
    /// Versions that failed here, with why: not tried again.
    #[serde(default)]
    pub failed: BTreeMap<String, String>,
    /// What the next heartbeat tells the server.
    #[serde(default)]
    pub report: Option<UpdateReport>,
}

impl State {
    /// The stored state for `server_id` (empty if none, unreadable, or
    /// another server's).
    pub fn load(state_dir: &Path, server_id: &str) -> State {
        let fresh = State {
            server_id: server_id.to_string(),
            ..State::default()
        };
        match std::fs::read(state_dir.join(STATE_FILE)) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(s) if s.server_id == server_id => s,
                Ok(_) => fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable update state; starting afresh");
                    fresh
                }
            },
            Err(_) => fresh,
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), UpdateError> {
        let body = serde_json::to_vec_pretty(self).map_err(|e| UpdateError::Io(e.to_string()))?;
        sys::write_private(&state_dir.join(STATE_FILE), &body)
            .map_err(|e| UpdateError::Io(e.to_string()))
    }

    /// Keeps the server's key on first sight; a different one later is
    /// refused (and kept out: the first stays).
    pub fn learn_key(&mut self, offered: &str) -> Result<bool, UpdateError> {
        match &self.key {
            Some(kept) if kept == offered => Ok(false),
            Some(kept) => Err(UpdateError::KeyChanged {
                kept: kept.clone(),
                offered: offered.to_string(),
            }),
            None => {
                self.key = Some(offered.to_string());
                Ok(true)
            }
        }
    }

    /// Whether to take `offer`: another version, for this platform, not
    /// failed here before.
    pub fn wants(&self, offer: &UpdateOffer, running: &str) -> bool {
        offer.version != running
            && offer.platform == platform()
            && !self.failed.contains_key(&offer.version)
    }

    /// `version` failed: remembered, and told to the server.
    pub fn fail(&mut self, version: &str, why: &str) {
        while self.failed.len() >= FAILED_KEPT {
            let Some(oldest) = self.failed.keys().next().cloned() else {
                break;
            };
            self.failed.remove(&oldest);
        }
        self.failed.insert(version.to_string(), why.to_string());
        self.report = Some(UpdateReport {
            version: version.to_string(),
            outcome: UpdateOutcome::Failed,
            detail: why.to_string(),
        });
    }
}

/// Checks a download against its offer and the server's key.
pub fn check(
    offer: &UpdateOffer,
    key: Option<&str>,
    sha256: &str,
    size: u64,
) -> Result<(), UpdateError> {
    let key = key.ok_or(UpdateError::NoKey)?;
    if size != offer.size {
        return Err(UpdateError::Size {
            expected: offer.size,
            got: size,
        });
    }
    if !sha256.eq_ignore_ascii_case(&offer.sha256) {
        return Err(UpdateError::Digest {
            expected: offer.sha256.clone(),
            got: sha256.to_string(),
        });
    }
    let key = unhex(key).ok_or(UpdateError::Signature)?;
    let signature = unhex(&offer.signature).ok_or(UpdateError::Signature)?;
    let message = update_message(&offer.version, &offer.platform, &offer.sha256, offer.size);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(&message, &signature)
        .map_err(|_| UpdateError::Signature)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// A new binary in place of the old one, which is kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub exe: PathBuf,
    pub previous: PathBuf,
}

/// Where a download for `exe` goes: beside it (one file system, so the
/// replacement is a rename).
pub fn download_path(exe: &Path) -> PathBuf {
    sibling(exe, ".update")
}

fn sibling(exe: &Path, suffix: &str) -> PathBuf {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    exe.with_file_name(format!("{name}{suffix}"))
}

/// Whether this agent can replace `exe` (its directory writable by it);
/// a binary a package manager installed is upgraded with the package.
pub fn replaceable(exe: &Path) -> Result<(), UpdateError> {
    let probe = sibling(exe, ".probe");
    let refused = |reason: String| UpdateError::NotReplaceable {
        path: exe.display().to_string(),
        reason,
    };
    std::fs::write(&probe, b"").map_err(|e| refused(e.to_string()))?;
    let _ = std::fs::remove_file(&probe);
    if sys::packaged(exe) {
        return Err(refused(
            "it belongs to an installed package: upgrade the package instead".into(),
        ));
    }
    Ok(())
}

/// Puts `new` in place of `exe`, keeping `exe` as `<exe>.previous`.
pub fn install(new: &Path, exe: &Path) -> Result<Installed, UpdateError> {
    let previous = sibling(exe, ".previous");
    sys::replace_exe(new, exe, &previous).map_err(|e| {
        UpdateError::Io(format!(
            "replacing {} with {}: {e}",
            exe.display(),
            new.display()
        ))
    })?;
    Ok(Installed {
        exe: exe.to_path_buf(),
        previous,
    })
}

/// Puts the previous binary back.
pub fn roll_back(installed: &Installed) -> Result<(), UpdateError> {
    sys::restore_exe(&installed.previous, &installed.exe).map_err(|e| {
        UpdateError::Io(format!(
            "putting {} back as {}: {e}",
            installed.previous.display(),
            installed.exe.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn signed(version: &str, body: &[u8]) -> (UpdateOffer, String) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let key = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
        let size = body.len() as u64;
        let signature = hex(key
            .sign(&update_message(version, &platform(), &sha256, size))
            .as_ref());
        let offer = UpdateOffer {
            version: version.into(),
            platform: platform(),
            path: "/agent/v1/download/vigil".into(),
            size,
            sha256,
            signature,
        };
        (offer, hex(key.public_key().as_ref()))
    }

    #[test]
    fn a_signed_matching_download_passes() {
        let (offer, key) = signed("9.9.9", b"new build");
        assert_eq!(check(&offer, Some(&key), &offer.sha256, offer.size), Ok(()));
    }

    #[test]
    fn anything_else_is_refused() {
        let (offer, key) = signed("9.9.9", b"new build");
        let (_, other_key) = signed("9.9.9", b"new build");
        assert_eq!(
            check(&offer, None, &offer.sha256, offer.size),
            Err(UpdateError::NoKey)
        );
        assert!(matches!(
            check(&offer, Some(&key), &offer.sha256, offer.size + 1),
            Err(UpdateError::Size { .. })
        ));
        let wrong = hex(&[0u8; 32]);
        assert!(matches!(
            check(&offer, Some(&key), &wrong, offer.size),
            Err(UpdateError::Digest { .. })
        ));
        // Signed by another key; or the offer changed after signing (the
        // download path was tampered with and its digest "fixed").
        assert_eq!(
            check(&offer, Some(&other_key), &offer.sha256, offer.size),
            Err(UpdateError::Signature)
        );
        let mut bumped = offer.clone();
        bumped.version = "9.9.10".into();
        assert_eq!(
            check(&bumped, Some(&key), &bumped.sha256, bumped.size),
            Err(UpdateError::Signature)
        );
        let mut garbled = offer.clone();
        garbled.signature = "zz".into();
        assert_eq!(
            check(&garbled, Some(&key), &garbled.sha256, garbled.size),
            Err(UpdateError::Signature)
        );
    }

    #[test]
    fn the_first_key_is_kept_and_a_new_one_refused() {
        let mut s = State::default();
        assert_eq!(s.learn_key("aa"), Ok(true));
        assert_eq!(s.learn_key("aa"), Ok(false));
        assert!(matches!(
            s.learn_key("bb"),
            Err(UpdateError::KeyChanged { .. })
        ));
        assert_eq!(s.key.as_deref(), Some("aa"));
    }

    #[test]
    fn failed_versions_are_not_wanted_again_and_are_reported() {
        let (offer, _) = signed("9.9.9", b"x");
        let mut s = State::default();
        assert!(s.wants(&offer, "0.2.0"));
        assert!(!s.wants(&offer, "9.9.9"), "already running it");
        let mut other = offer.clone();
        other.platform = "plan9-mips".into();
        assert!(!s.wants(&other, "0.2.0"), "another platform's build");
        s.fail("9.9.9", "no heartbeat within 60 s");
        assert!(!s.wants(&offer, "0.2.0"));
        let report = s.report.clone().expect("report");
        assert_eq!(report.outcome, UpdateOutcome::Failed);
        for i in 0..40 {
            s.fail(&format!("1.0.{i}"), "x");
        }
        assert!(s.failed.len() <= FAILED_KEPT);
    }

    #[test]
    fn state_is_per_server_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = State::load(dir.path(), "server-1");
        s.learn_key("aa").expect("key");
        s.fail("9.9.9", "why");
        s.save(dir.path()).expect("save");
        assert_eq!(State::load(dir.path(), "server-1"), s);
        assert_eq!(State::load(dir.path(), "server-2").key, None);
    }

    #[test]
    fn install_keeps_the_previous_binary_and_roll_back_restores_it() {
        let dir = tempfile::tempdir().expect("dir");
        let exe = dir.path().join("vigil");
        std::fs::write(&exe, b"old").expect("write");
        let new = download_path(&exe);
        std::fs::write(&new, b"new").expect("write");
        replaceable(&exe).expect("a temp dir is writable");
        let installed = install(&new, &exe).expect("install");
        assert_eq!(std::fs::read(&exe).expect("exe"), b"new");
        assert_eq!(
            std::fs::read(&installed.previous).expect("previous"),
            b"old"
        );
        assert!(!new.exists());
        roll_back(&installed).expect("roll back");
        assert_eq!(std::fs::read(&exe).expect("exe"), b"old");
    }
}
