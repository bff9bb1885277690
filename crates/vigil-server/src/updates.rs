//! Agent self-update, the server's side: the agent builds this server
//! offers (per platform: the Linux binary it hands out for installs, and
//! the Windows one if it has it), signed with its update key, and the
//! offer in heartbeat answers (see [`vigil_core::update`] for when).
//!
//! The update key (`<data-dir>/update-signing.key`, Ed25519, created on
//! first start, readable by the server's user only) signs each build's
//! version, platform, SHA-256 and size; agents keep the public key from
//! their first heartbeat answer and refuse builds it did not sign.
//! Replicas share the file like `tls/`.
//!
//! A build's version is read from its stamp (`vigil_proto::version`), so
//! any Vigil binary can be offered, Linux or Windows, without running it.
//! Builds are read and hashed the first time an offer needs them, not at
//! start (they are tens of MB).

use crate::app::App;
use crate::error::ServerError;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::io::Read;
use std::path::{Path, PathBuf};
use tokio::sync::OnceCell;
use vigil_proto::agent::{update_message, Heartbeat, UpdateOffer, UpdateOutcome};
use vigil_proto::api::{AgentBuildView, AgentUpdateView, UpdatesView};
use vigil_store::{Agent, StoreError};

/// The update key's file in the data directory.
pub const KEY_FILE: &str = "update-signing.key";

/// One agent build this server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Build {
    pub platform: String,
    pub version: String,
    /// The agent API path it is downloaded from.
    pub path: &'static str,
    pub size: u64,
    pub sha256: String,
    pub signature: String,
}

impl Build {
    pub fn offer(&self) -> UpdateOffer {
        UpdateOffer {
            version: self.version.clone(),
            platform: self.platform.clone(),
            path: self.path.to_string(),
            size: self.size,
            sha256: self.sha256.clone(),
            signature: self.signature.clone(),
        }
    }
}

/// A file offered for a platform.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub platform: String,
    pub file: PathBuf,
    pub path: &'static str,
}

pub(crate) struct Updates {
    key: Ed25519KeyPair,
    /// Hex of the public key, sent in heartbeat answers.
    pub public_key: String,
    sources: Vec<Source>,
    builds: OnceCell<Vec<Build>>,
}

impl Updates {
    /// Loads (or creates) the update key of `data_dir`.
    pub fn load(data_dir: &Path, sources: Vec<Source>) -> Result<Updates, ServerError> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| ServerError::Config("cannot generate the update key".into()))?;
            crate::tls::write_file(&path, pkcs8.as_ref(), 0o600)?;
            tracing::info!(path = %path.display(), "created the key that signs agent builds");
        }
        let der = std::fs::read(&path)
            .map_err(|e| ServerError::io("reading the update key", &path, e))?;
        let key = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| {
            ServerError::Config(format!("{}: not an Ed25519 key: {e}", path.display()))
        })?;
        let public_key = hex(key.public_key().as_ref());
        Ok(Updates {
            key,
            public_key,
            sources,
            builds: OnceCell::new(),
        })
    }

    /// The builds offered (read and signed on first use).
    pub async fn builds(&self) -> &[Build] {
        self.builds
            .get_or_init(|| async {
                let mut builds = Vec::new();
                for source in self.sources.clone() {
                    let file = source.file.clone();
                    let read = tokio::task::spawn_blocking(move || read_build(&file)).await;
                    match read {
                        Ok(Ok((version, size, sha256))) => {
                            let message = update_message(&version, &source.platform, &sha256, size);
                            builds.push(Build {
                                signature: hex(self.key.sign(&message).as_ref()),
                                platform: source.platform,
                                version,
                                path: source.path,
                                size,
                                sha256,
                            });
                        }
                        Ok(Err(why)) => tracing::warn!(
                            file = %source.file.display(), platform = %source.platform, %why,
                            "this agent build is not offered for updates"
                        ),
                        Err(e) => tracing::warn!(error = %e, "reading an agent build failed"),
                    }
                }
                builds
            })
            .await
    }

    /// The build for `platform`, if offered.
    pub async fn build(&self, platform: &str) -> Option<&Build> {
        self.builds().await.iter().find(|b| b.platform == platform)
    }
}

/// A build file's stamped version, size and SHA-256, in one pass.
fn read_build(path: &Path) -> Result<(String, u64, String), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    let mut version = None;
    // The stamp may straddle two reads: each scan sees the previous tail.
    let mut window: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        size += n as u64;
        if version.is_none() {
            window.extend_from_slice(&buf[..n]);
            version = vigil_proto::version::find_stamp(&window);
            let keep = window.len().saturating_sub(128);
            window.drain(..keep);
        }
    }
    let version = version.ok_or("no version stamp: not a Vigil binary")?;
    Ok((version, size, hex(digest.finish().as_ref())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What this server offers `agent` with its heartbeat `hb`, its update
/// record moved along (see [`vigil_core::update::on_heartbeat`]).
pub(crate) async fn on_heartbeat(
    app: &App,
    agent: &Agent,
    hb: &Heartbeat,
    now: i64,
) -> Result<Option<UpdateOffer>, StoreError> {
    use vigil_core::update::{self, Report};
    let Some(platform) = hb.platform.as_deref() else {
        return Ok(None);
    };
    let (record, auto) = app.store.update_status(agent.account_id, agent.id).await?;
    let report = hb.update.as_ref().map(|r| match r.outcome {
        UpdateOutcome::Installing => Report::Installing {
            version: &r.version,
        },
        UpdateOutcome::Failed => Report::Failed {
            version: &r.version,
            detail: &r.detail,
        },
    });
    // Nothing asked for and nothing to record: the builds are not read.
    if !record.requested && !auto && report.is_none() && record.state.is_none() {
        return Ok(None);
    }
    let build = app.updates.build(platform).await;
    let decision = update::on_heartbeat(
        &record,
        &update::Heartbeat {
            running: &hb.facts.version,
            build: build.map(|b| b.version.as_str()),
            auto,
            report,
            now,
        },
    );
    if let Some(next) = &decision.record {
        app.store
            .put_agent_update(agent.account_id, agent.id, next)
            .await?;
        if next.state != record.state {
            tracing::info!(agent = %agent.id, name = %agent.name, version = ?next.version,
                state = ?next.state, detail = ?next.detail, "agent update");
        }
    }
    Ok(build.filter(|_| decision.offer).map(Build::offer))
}

/// The platform of an agent as far as the server knows it (agents report
/// it with heartbeats, which are not stored): from its OS name.
pub(crate) fn platform_of(agent: &Agent) -> Option<String> {
    let os = agent.os.as_deref()?;
    Some(if os.to_ascii_lowercase().contains("windows") {
        "windows-x86_64".to_string()
    } else {
        format!("linux-{}", std::env::consts::ARCH)
    })
}

/// Where one agent's update stands (see [`AgentUpdateView`]).
pub(crate) fn agent_view(
    agent: &Agent,
    record: Option<&vigil_core::update::Record>,
    builds: &[Build],
) -> AgentUpdateView {
    use vigil_core::update::State;
    let platform = platform_of(agent);
    let build = platform
        .as_deref()
        .and_then(|p| builds.iter().find(|b| b.platform == p));
    let running = agent.version.as_deref();
    let current = build.is_some_and(|b| Some(b.version.as_str()) == running);
    let state = match record.and_then(|r| r.state) {
        Some(s @ (State::Offered | State::Installing | State::Failed)) => s.as_str(),
        Some(State::Updated) if current => State::Updated.as_str(),
        _ if record.is_some_and(|r| r.requested) && !current => "requested",
        _ if current => "current",
        _ if build.is_none() => "no_build",
        _ => "outdated",
    };
    AgentUpdateView {
        agent_id: agent.id.to_string(),
        name: agent.name.clone(),
        version: agent.version.clone(),
        platform,
        state: state.to_string(),
        target_version: record.and_then(|r| r.version.clone()),
        detail: record.and_then(|r| r.detail.clone()),
        updated_at: record.and_then(|r| r.updated_at),
    }
}

/// `GET /updates`.
pub(crate) async fn view(
    app: &App,
    account: vigil_store::AccountId,
) -> Result<UpdatesView, StoreError> {
    let builds = app.updates.builds().await;
    let agents = app.store.agents(account).await?;
    let records = app.store.agent_updates(account).await?;
    Ok(UpdatesView {
        builds: builds
            .iter()
            .map(|b| AgentBuildView {
                platform: b.platform.clone(),
                version: b.version.clone(),
                size: b.size,
                sha256: b.sha256.clone(),
            })
            .collect(),
        auto_update: app.store.auto_update(account).await?,
        agents: agents
            .iter()
            .map(|a| agent_view(a, records.get(&a.id), builds))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_read_with_its_stamp_across_reads() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("vigil");
        // The stamp straddles the first 1 MiB read.
        let mut body = vec![0u8; (1 << 20) - 10];
        body.extend_from_slice(b"VIGIL_VERSION_STAMP[7.8.9]");
        body.extend_from_slice(&[1u8; 1000]);
        std::fs::write(&file, &body).expect("write");
        let (version, size, sha256) = read_build(&file).expect("read");
        assert_eq!(version, "7.8.9");
        assert_eq!(size, body.len() as u64);
        assert_eq!(
            sha256,
            hex(ring::digest::digest(&ring::digest::SHA256, &body).as_ref())
        );
        std::fs::write(&file, b"#!/bin/sh\n").expect("write");
        assert!(read_build(&file).is_err());
    }

    #[tokio::test]
    async fn builds_are_signed_with_the_kept_key() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("agent");
        std::fs::write(&file, b"xxVIGIL_VERSION_STAMP[1.2.3]xx").expect("write");
        let source = || Source {
            platform: "linux-x86_64".into(),
            file: file.clone(),
            path: "/agent/v1/download/vigil",
        };
        let first = Updates::load(dir.path(), vec![source()]).expect("created");
        let again = Updates::load(dir.path(), vec![source()]).expect("loaded");
        assert_eq!(first.public_key, again.public_key, "the key is kept");
        let build = again.build("linux-x86_64").await.expect("offered").clone();
        assert_eq!(build.version, "1.2.3");
        assert!(again.build("windows-x86_64").await.is_none());
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            again.key.public_key().as_ref().to_vec(),
        );
        let message = update_message(&build.version, &build.platform, &build.sha256, build.size);
        let signature: Vec<u8> = (0..build.signature.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&build.signature[i..i + 2], 16).expect("hex"))
            .collect();
        assert!(key.verify(&message, &signature).is_ok());
    }
}
