//! The agent's main loop: heartbeat, run the tasks it is given, spool the
//! results, deliver the spool.
//!
//! Order matters for "exactly once": a result is on disk before delivery
//! starts and leaves the disk only after the server acknowledged it (stored
//! or already stored). A crash between the two re-sends it, and the server
//! recognises the upload id.

use crate::client::{ClientError, ServerClient};
use crate::spool::Spool;
use crate::task;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::watch;
use vigil_proto::agent::{AgentFacts, Heartbeat, UploadStatus};
use vigil_scan::ScanConfig;

/// Heartbeat interval bounds, whatever the server asks for.
const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);
/// Task ids remembered so a task handed out twice runs once.
const RECENT_TASKS: usize = 1024;

pub struct Runner {
    pub client: ServerClient,
    pub spool: Spool,
    pub facts: AgentFacts,
    pub scan: ScanConfig,
    /// The server's address, to find the address "self" means.
    pub server_addr: IpAddr,
    recent: VecDeque<String>,
}

impl Runner {
    pub fn new(
        client: ServerClient,
        spool: Spool,
        facts: AgentFacts,
        scan: ScanConfig,
        server_addr: IpAddr,
    ) -> Self {
        Runner {
            client,
            spool,
            facts,
            scan,
            server_addr,
            recent: VecDeque::new(),
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut interval = Duration::from_secs(30);
        let mut failures: u32 = 0;
        loop {
            match self.cycle().await {
                Ok(next) => {
                    interval = next;
                    failures = 0;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "cannot reach the server; results stay spooled");
                }
            }
            // Back off while the server is away, but never beyond the
            // normal interval × 4, so recovery is noticed soon.
            let wait = if failures == 0 {
                interval
            } else {
                (MIN_HEARTBEAT * 2u32.saturating_pow(failures.min(10))).min(interval * 4)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One heartbeat, its tasks, and a spool flush. Returns the next
    /// heartbeat interval.
    pub async fn cycle(&mut self) -> Result<Duration, ClientError> {
        let spooled = self.spool.len().unwrap_or(0) as u64;
        let hb = Heartbeat {
            facts: self.facts.clone(),
            spooled,
        };
        // Deliver first: a spool filled during an outage goes out as soon
        // as the server is back, before new work is added.
        self.flush().await?;
        let resp = self.client.heartbeat(&hb).await?;
        let self_addr = task::own_address(self.server_addr).unwrap_or(self.server_addr);
        for t in &resp.tasks {
            if self.recent.contains(&t.task_id) {
                continue;
            }
            self.remember(&t.task_id);
            match task::run(t, self_addr, self.scan.clone()).await {
                Ok(uploads) => {
                    for u in &uploads {
                        if let Err(e) = self.spool.push(u) {
                            tracing::error!(error = %e, "cannot spool a result");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "task refused"),
            }
        }
        self.flush().await?;
        Ok(Duration::from_secs(resp.heartbeat_secs).clamp(MIN_HEARTBEAT, MAX_HEARTBEAT))
    }

    /// Delivers spooled results in order; stops at the first transient error.
    pub async fn flush(&mut self) -> Result<usize, ClientError> {
        let (entries, bad) = match self.spool.pending() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                return Ok(0);
            }
        };
        for e in bad {
            tracing::error!(error = %e, "quarantined an unreadable spooled result");
        }
        let mut delivered = 0;
        for entry in entries {
            match self.client.upload(&entry.upload).await {
                Ok(ack) => {
                    if ack.status == UploadStatus::Duplicate {
                        tracing::info!(upload = %entry.upload.upload_id, "server already had this result");
                    }
                    delivered += 1;
                }
                Err(ClientError::Rejected { status, body }) => {
                    // Retrying cannot help; keep it for inspection instead.
                    tracing::error!(status, %body, upload = %entry.upload.upload_id, "server refused a result");
                    if let Err(e) = self.spool.quarantine_entry(&entry) {
                        tracing::error!(error = %e, "cannot quarantine");
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            if let Err(e) = self.spool.ack(&entry) {
                tracing::error!(error = %e, "cannot remove a delivered result");
            }
        }
        Ok(delivered)
    }

    fn remember(&mut self, task_id: &str) {
        if self.recent.len() >= RECENT_TASKS {
            self.recent.pop_front();
        }
        self.recent.push_back(task_id.to_string());
    }
}
