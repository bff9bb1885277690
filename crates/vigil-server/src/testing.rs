//! Fixtures the unit tests of several modules share.

use vigil_core::{AgentHealth, Plan};
use vigil_store::{AccountId, Agent, AgentId};

/// A communicating Extended-plan agent named `name`, enrolled at
/// `enrolled_at`, of a random account.
pub(crate) fn agent(name: &str, enrolled_at: i64) -> Agent {
    Agent {
        id: AgentId::random(),
        account_id: AccountId::random(),
        name: name.into(),
        plan: Plan::Extended,
        enrolled_at,
        last_seen_at: None,
        public_addr: None,
        version: None,
        os: None,
        hostname: None,
        removed_at: None,
        last_health: AgentHealth::Communicating,
        tags: Vec::new(),
    }
}
