//! Trusted peers: other Vigil servers an account may move agents from.
//!
//! A peer holds an API token of the other server (it is sent there, so it
//! is stored as given, like the AD bind password, and never handed out by
//! the API) and that server's ID, which is how an endpoint "managed by
//! another server" is matched to the peer that can hand it over.

use crate::error::found;
use crate::ids::{AccountId, AssessmentId, PeerId};
use crate::model::now_unix;
use crate::validate::{self, limits};
use crate::{with_pool, Result, Store, StoreError, UnixTime};

/// Longest peer API token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 512;
/// Longest server ID accepted, in bytes.
const MAX_SERVER_ID_LEN: usize = 128;

/// What it takes to trust a peer.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPeer<'a> {
    pub name: &'a str,
    /// The peer's REST API base URL (`http(s)://…`, without `/api/v1`).
    pub api_url: &'a str,
    pub api_token: &'a str,
    /// The peer's server ID, as its `GET /api/v1/server` reported it.
    pub server_id: &'a str,
}

/// A trusted peer. `Debug` does not show the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: PeerId,
    pub account_id: AccountId,
    pub name: String,
    pub api_url: String,
    pub api_token: String,
    pub server_id: String,
    pub created_at: UnixTime,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("api_url", &self.api_url)
            .field("server_id", &self.server_id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct PeerRow {
    id: String,
    account_id: String,
    name: String,
    api_url: String,
    api_token: String,
    server_id: String,
    created_at: i64,
}

impl TryFrom<PeerRow> for Peer {
    type Error = StoreError;

    fn try_from(r: PeerRow) -> Result<Peer> {
        Ok(Peer {
            id: PeerId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            name: r.name,
            api_url: r.api_url,
            api_token: r.api_token,
            server_id: r.server_id,
            created_at: r.created_at,
        })
    }
}

/// What a sealed peer token is bound to.
pub(crate) fn token_context(account: AccountId) -> String {
    format!("compliance_peers.api_token:{account}")
}

const PEER_COLS: &str = "id, account_id, name, api_url, api_token, server_id, created_at";

impl Store {
    /// Trusts a peer. A second peer with the same server ID in the account
    /// is a [`StoreError::Conflict`].
    pub async fn create_peer(&self, account: AccountId, new: &NewPeer<'_>) -> Result<Peer> {
        let name = validate::name("peer name", new.name)?;
        let api_url = validate::url(new.api_url)?;
        validate::printable("peer API token", new.api_token, MAX_TOKEN_LEN)?;
        validate::printable("peer server ID", new.server_id, MAX_SERVER_ID_LEN)?;
        let sql = format!(
            "INSERT INTO compliance_peers ({PEER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING {PEER_COLS}"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, PeerRow>(&sql)
            .bind(PeerId::random().db())
            .bind(account.db())
            .bind(&name)
            .bind(api_url.trim_end_matches('/'))
            .bind(self.seal(&token_context(account), new.api_token)?)
            .bind(new.server_id)
            .bind(now_unix())
            .fetch_one(pool)
            .await)?;
        self.opened(row)
    }

    /// A peer row with its token opened.
    fn opened(&self, mut row: PeerRow) -> Result<Peer> {
        let account = AccountId::from_db(&row.account_id)?;
        row.api_token = self.open(&token_context(account), &row.api_token)?;
        row.try_into()
    }

    /// The account's peers, by name.
    pub async fn peers(&self, account: AccountId) -> Result<Vec<Peer>> {
        let sql = format!(
            "SELECT {PEER_COLS} FROM compliance_peers WHERE account_id = $1 ORDER BY name, id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, PeerRow>(&sql)
            .bind(account.db())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(|r| self.opened(r)).collect()
    }

    /// The account's peer whose agents report `server_id`, if trusted.
    pub async fn peer_by_server(
        &self,
        account: AccountId,
        server_id: &str,
    ) -> Result<Option<Peer>> {
        let sql = format!(
            "SELECT {PEER_COLS} FROM compliance_peers WHERE account_id = $1 AND server_id = $2"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, PeerRow>(&sql)
            .bind(account.db())
            .bind(server_id)
            .fetch_optional(pool)
            .await)?;
        row.map(|r| self.opened(r)).transpose()
    }

    /// Stops trusting a peer.
    pub async fn delete_peer(&self, account: AccountId, peer: PeerId) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "DELETE FROM compliance_peers WHERE id = $1 AND account_id = $2",
        )
        .bind(peer.db())
        .bind(account.db())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)
    }

    /// The endpoint of an assessment where the agent `agent_id` of another
    /// server answered: its name and that server's ID.
    pub async fn managed_elsewhere(
        &self,
        account: AccountId,
        assessment: AssessmentId,
        agent_id: &str,
    ) -> Result<Option<(String, String)>> {
        validate::text("agent id", agent_id, limits::MAX_ENDPOINT_FIELD_LEN)?;
        let row = with_pool!(self, pool => sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT name, server_id FROM compliance_endpoints \
             WHERE assessment_id = $1 AND account_id = $2 AND agent_id = $3 \
               AND status = 'managed_elsewhere' \
             ORDER BY seq LIMIT 1",
        )
        .bind(assessment.db())
        .bind(account.db())
        .bind(agent_id)
        .fetch_optional(pool)
        .await)?;
        Ok(row.and_then(|(name, server)| server.map(|s| (name, s))))
    }
}
