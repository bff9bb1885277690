//! What a compliance sweep needs to check identify replies: the key of
//! every agent of the account.
//!
//! The key of an agent's identify MAC is the SHA-256 digest of its
//! credential's random bytes (`vigil_proto::identify::IdentifyKey`), which
//! is exactly what the agents table keeps to authenticate the agent; the
//! credential itself is never stored. So no new secret exists for identify:
//! this reads the digests out, for the account being assessed only.

use crate::ids::AccountId;
use crate::{with_pool, Result, Store};
use std::fmt;

/// One agent's identify key material.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentIdentifyKey {
    /// The agent id, as agents report it.
    pub agent_id: String,
    /// Hex SHA-256 of the agent's credential bytes: the identify MAC key
    /// (as secret as the credential for that purpose; never logged).
    pub credential_digest: String,
    /// The account removed the agent (its replies prove it answered, not
    /// that it protects anything).
    pub removed: bool,
}

impl fmt::Debug for AgentIdentifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentIdentifyKey")
            .field("agent_id", &self.agent_id)
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The identify key material of every agent of `account`, removed ones
    /// included (a sweep tells "removed" from "forged"); nothing of other
    /// accounts.
    pub async fn agent_identify_keys(&self, account: AccountId) -> Result<Vec<AgentIdentifyKey>> {
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, AgentIdentifyKey>(
            "SELECT id AS agent_id, credential_hash AS credential_digest, \
                    (removed_at IS NOT NULL) AS removed \
             FROM agents WHERE account_id = $1 ORDER BY id",
        )
        .bind(account.db())
        .fetch_all(pool)
        .await)?,
        )
    }
}
