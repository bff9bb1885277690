//! One agent as the database has it, watched by a test.

use super::server::{unix_now, wait_for};
use std::time::{Duration, Instant};
use vigil_core::{AgentHealth, ConditionKind};
use vigil_store::{AccountId, AgentId, AlertFilter, Store};

/// The agent as the database has it.
pub struct Watch<'a> {
    pub rt: &'a tokio::runtime::Runtime,
    pub store: &'a Store,
    pub account: AccountId,
    pub agent: AgentId,
}

impl Watch<'_> {
    pub fn agent(&self) -> vigil_store::Agent {
        self.rt
            .block_on(self.store.agent(self.account, self.agent))
            .expect("agent")
    }

    pub fn last_seen(&self) -> i64 {
        self.agent().last_seen_at.unwrap_or(0)
    }

    /// Waits until the agent called in at or after `at` (unix seconds).
    pub fn seen_since(&self, at: i64, what: &str, limit: Duration) {
        wait_for(what, limit, || (self.last_seen() >= at).then_some(()));
    }

    /// For `span`, checks that the agent keeps calling in, stays
    /// communicating and has no *not communicating* alert.
    pub fn healthy_for(&self, span: Duration) {
        let end = Instant::now() + span;
        while Instant::now() < end {
            let agent = self.agent();
            let silent = unix_now() - agent.last_seen_at.unwrap_or(0);
            assert!(silent <= 3, "the agent has been silent for {silent} s");
            assert_eq!(agent.last_health, AgentHealth::Communicating);
            self.no_silence_alert();
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// No *agent not communicating* alert, open or resolved.
    pub fn no_silence_alert(&self) {
        let filter = AlertFilter {
            agent: Some(self.agent),
            ..AlertFilter::default()
        };
        let alerts = self
            .rt
            .block_on(self.store.alerts(self.account, &filter))
            .expect("alerts");
        assert!(
            alerts
                .iter()
                .all(|a| a.condition.kind != ConditionKind::AgentNotCommunicating),
            "the agent was counted as silent: {alerts:#?}"
        );
    }
}
