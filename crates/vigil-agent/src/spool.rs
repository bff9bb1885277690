//! The result spool: one JSON file per finished scan, written atomically,
//! removed only once the server acknowledged it.
//!
//! File names are `<sequence>-<upload id>.json` with a zero-padded sequence,
//! so delivery follows completion order after a restart too. A file that
//! cannot be parsed (a disk error, an edit by hand) is moved to `bad/` and
//! reported, never retried forever and never fatal. The spool is bounded:
//! beyond [`Spool::capacity`] files the oldest are dropped with a warning,
//! so a server that is gone for months cannot fill the disk.

use crate::AgentError;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use vigil_proto::agent::{NetworkUpload, ResultUpload};

/// Default number of results kept while the server is unreachable (at one
/// scan of a few targets every 15 minutes, about a month).
pub const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    capacity: usize,
    next_seq: u64,
}

/// What the spool holds: the result of one scanned address, or one
/// local-network sweep. A sweep's file is `{"network": {…}}`; a result's
/// is the bare upload, as spools written before sweeps existed hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Upload {
    Network { network: NetworkUpload },
    Result(ResultUpload),
}

impl Upload {
    pub fn upload_id(&self) -> &str {
        match self {
            Upload::Network { network } => &network.upload_id,
            Upload::Result(r) => &r.upload_id,
        }
    }
}

impl From<ResultUpload> for Upload {
    fn from(r: ResultUpload) -> Self {
        Upload::Result(r)
    }
}

impl From<NetworkUpload> for Upload {
    fn from(network: NetworkUpload) -> Self {
        Upload::Network { network }
    }
}

/// A spooled result and where it lives.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: PathBuf,
    pub upload: Upload,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`.
    pub fn open(dir: impl Into<PathBuf>, capacity: usize) -> Result<Self, AgentError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| AgentError::io("creating spool", &dir, e))?;
        let next_seq = list(&dir)?
            .last()
            .and_then(|p| seq_of(p))
            .map_or(0, |s| s + 1);
        Ok(Spool {
            dir,
            capacity: capacity.max(1),
            next_seq,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stores a result durably (written to a temporary file, synced, then
    /// renamed into place). Returns the results dropped to stay within the
    /// capacity, oldest first.
    pub fn push(&mut self, upload: &Upload) -> Result<Vec<PathBuf>, AgentError> {
        let name = format!(
            "{:016}-{}.json",
            self.next_seq,
            sanitize(upload.upload_id())
        );
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let body = serde_json::to_vec(upload).map_err(|e| AgentError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            // Make the rename itself durable.
            crate::sys::sync_dir(&self.dir)
        };
        write().map_err(|e| AgentError::io("writing spooled result", &path, e))?;
        self.next_seq += 1;
        let files = list(&self.dir)?;
        let excess = files.len().saturating_sub(self.capacity);
        let mut dropped = Vec::new();
        for old in files.into_iter().take(excess) {
            tracing::warn!(file = %old.display(), "spool full: dropping the oldest result");
            fs::remove_file(&old).map_err(|e| AgentError::io("dropping", &old, e))?;
            dropped.push(old);
        }
        Ok(dropped)
    }

    /// Spooled results, oldest first. Unreadable files are moved to `bad/`
    /// and returned as errors alongside.
    pub fn pending(&self) -> Result<(Vec<Entry>, Vec<AgentError>), AgentError> {
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        for path in list(&self.dir)? {
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(upload) => entries.push(Entry { path, upload }),
                Err(reason) => {
                    self.quarantine(&path)?;
                    bad.push(AgentError::Corrupt { path, reason });
                }
            }
        }
        Ok((entries, bad))
    }

    /// Number of spooled results.
    pub fn len(&self) -> Result<usize, AgentError> {
        Ok(list(&self.dir)?.len())
    }

    pub fn is_empty(&self) -> Result<bool, AgentError> {
        Ok(self.len()? == 0)
    }

    /// Forgets a result the server acknowledged.
    pub fn ack(&self, entry: &Entry) -> Result<(), AgentError> {
        match fs::remove_file(&entry.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AgentError::io("removing delivered result", &entry.path, e)),
        }
    }

    /// Moves a result the server refused to `bad/`, out of the delivery queue.
    pub fn quarantine_entry(&self, entry: &Entry) -> Result<(), AgentError> {
        self.quarantine(&entry.path)
    }

    fn quarantine(&self, path: &Path) -> Result<(), AgentError> {
        let bad_dir = self.dir.join("bad");
        fs::create_dir_all(&bad_dir).map_err(|e| AgentError::io("creating", &bad_dir, e))?;
        let target = bad_dir.join(path.file_name().unwrap_or_default());
        fs::rename(path, &target).map_err(|e| AgentError::io("quarantining", path, e))
    }
}

/// Spool files (`*.json`, not temporaries), sorted by name = by sequence.
fn list(dir: &Path) -> Result<Vec<PathBuf>, AgentError> {
    let read = fs::read_dir(dir).map_err(|e| AgentError::io("listing spool", dir, e))?;
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn seq_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.split('-').next()?.parse().ok()
}

/// Upload ids are ours (UUIDs), but keep file names safe regardless.
fn sanitize(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::PortState;
    use vigil_proto::agent::PortObservation;

    fn upload(id: &str) -> ResultUpload {
        ResultUpload {
            upload_id: id.into(),
            task_id: "t".into(),
            target: "self".into(),
            addr: "127.0.0.1".into(),
            started_at: 1,
            finished_at: 2,
            ports: vec![PortObservation {
                port: 22,
                state: PortState::Open,
                details: None,
            }],
        }
    }

    fn ids(spool: &Spool) -> Vec<String> {
        let (entries, bad) = spool.pending().expect("pending");
        assert!(bad.is_empty(), "{bad:?}");
        entries
            .into_iter()
            .map(|e| e.upload.upload_id().to_string())
            .collect()
    }

    #[test]
    fn keeps_order_across_reopen_and_forgets_acked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path(), 100).expect("open");
        for id in ["a", "b", "c"] {
            spool.push(&Upload::from(upload(id))).expect("push");
        }
        let mut spool = Spool::open(dir.path(), 100).expect("reopen");
        spool.push(&Upload::from(upload("d"))).expect("push");
        assert_eq!(ids(&spool), ["a", "b", "c", "d"]);
        let (entries, _) = spool.pending().expect("pending");
        spool.ack(&entries[0]).expect("ack");
        spool.ack(&entries[0]).expect("acking twice is harmless");
        assert_eq!(ids(&spool), ["b", "c", "d"]);
        assert_eq!(entries[1].upload, Upload::from(upload("b")));
    }

    #[test]
    fn drops_the_oldest_beyond_capacity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path(), 2).expect("open");
        spool.push(&Upload::from(upload("a"))).expect("push");
        spool.push(&Upload::from(upload("b"))).expect("push");
        let dropped = spool.push(&Upload::from(upload("c"))).expect("push");
        assert_eq!(dropped.len(), 1);
        assert_eq!(ids(&spool), ["b", "c"]);
    }

    #[test]
    fn corrupt_files_are_quarantined_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path(), 10).expect("open");
        spool.push(&Upload::from(upload("a"))).expect("push");
        fs::write(dir.path().join("0000000000000005-x.json"), b"{not json").expect("write");
        fs::write(dir.path().join(".0000000000000006-y.json.tmp"), b"half").expect("write");
        let (entries, bad) = spool.pending().expect("pending");
        assert_eq!(entries.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(dir.path().join("bad/0000000000000005-x.json").exists());
        assert_eq!(spool.len().expect("len"), 1);
    }
}
