//! Accounts, users (passwords) and API tokens.

use crate::error::found;
use crate::ids::{AccountId, ApiTokenId, UserId};
use crate::model::{account_kind_str, now_unix, parse_account_kind, parse_stored, UnixTime};
use crate::secret::{hashes_equal, new_token, token_hash, API_TOKEN_PREFIX};
use crate::validate::{self, limits};
use crate::{with_pool, Account, ApiToken, Result, Role, Store, StoreError, User};
use std::time::Duration;
use vigil_core::AccountKind;

/// `last_used_at` of an API token is refreshed at most this often (seconds),
/// so authenticating is not a write on every request.
pub(crate) const LAST_USED_RESOLUTION: i64 = 60;

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    name: String,
    kind: String,
    created_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;

    fn try_from(r: AccountRow) -> Result<Account> {
        Ok(Account {
            id: AccountId::from_db(&r.id)?,
            name: r.name,
            kind: parse_account_kind(&r.kind)?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    account_id: String,
    email: String,
    role: String,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(r: UserRow) -> Result<User> {
        Ok(User {
            id: UserId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            email: r.email,
            role: parse_stored("role", &r.role)?,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

#[derive(sqlx::FromRow)]
struct TokenAuthRow {
    #[sqlx(flatten)]
    user: UserRow,
    token_id: String,
    token_hash: String,
    last_used_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ApiTokenRow {
    id: String,
    account_id: String,
    user_id: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    expires_at: Option<i64>,
}

impl TryFrom<ApiTokenRow> for ApiToken {
    type Error = StoreError;

    fn try_from(r: ApiTokenRow) -> Result<ApiToken> {
        Ok(ApiToken {
            id: ApiTokenId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            user_id: UserId::from_db(&r.user_id)?,
            name: r.name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            expires_at: r.expires_at,
        })
    }
}

const USER_COLS: &str = "id, account_id, email, role, created_at";

/// How long a token lasts: API tokens until revoked; web console sessions
/// for at most `lifetime`, and only while used at least every `idle`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenExpiry {
    pub lifetime: Option<Duration>,
    /// Measured from the last use, which is recorded at most once a minute:
    /// an idle limit is kept to within a minute.
    pub idle: Option<Duration>,
}

/// A token is alive at `$N` (unix seconds): not revoked, not past its
/// lifetime, not idle for too long. `$N` is the bind given.
fn alive_at(n: usize) -> String {
    format!(
        "t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ${n}) \
         AND (t.idle_timeout IS NULL OR COALESCE(t.last_used_at, t.created_at) + t.idle_timeout > ${n})"
    )
}

fn secs(d: Duration) -> Result<i64> {
    i64::try_from(d.as_secs()).map_err(|_| StoreError::invalid("duration is too long"))
}

impl Store {
    // ----- accounts -------------------------------------------------------

    /// Creates an account. `name`: 1 to 200 characters.
    pub async fn create_account(&self, name: &str, kind: AccountKind) -> Result<Account> {
        let account = Account {
            id: AccountId::random(),
            name: validate::name("account name", name)?,
            kind,
            created_at: now_unix(),
        };
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO accounts (id, name, kind, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account.id.db())
        .bind(&account.name)
        .bind(account_kind_str(kind))
        .bind(account.created_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(account)
    }

    pub async fn account(&self, id: AccountId) -> Result<Account> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, AccountRow>(
            "SELECT id, name, kind, created_at FROM accounts WHERE id = $1",
        )
        .bind(id.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    // ----- users ----------------------------------------------------------

    /// Creates a user. The email is lower-cased and must be unique across all
    /// accounts ([`StoreError::Conflict`] otherwise); the password (8 to 1024
    /// bytes) is stored as an argon2id hash.
    pub async fn create_user(
        &self,
        account: AccountId,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<User> {
        let email = validate::email(email)?;
        validate::password(password)?;
        let password = password.to_owned();
        let hash = self.blocking(move |h| h.hash(&password)).await??;
        let user = User {
            id: UserId::random(),
            account_id: account,
            email,
            role,
            created_at: now_unix(),
        };
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO users (id, account_id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id.db())
        .bind(account.db())
        .bind(&user.email)
        .bind(&hash)
        .bind(role.as_str())
        .bind(user.created_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(user)
    }

    pub async fn user(&self, account: AccountId, user: UserId) -> Result<User> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1 AND account_id = $2");
        let row = with_pool!(self, pool => sqlx::query_as::<_, UserRow>(&sql)
            .bind(user.db())
            .bind(account.db())
            .fetch_optional(pool)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The users of an account, by email.
    pub async fn users(&self, account: AccountId) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE account_id = $1 ORDER BY email");
        let rows = with_pool!(self, pool => sqlx::query_as::<_, UserRow>(&sql)
            .bind(account.db())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(User::try_from).collect()
    }

    pub async fn set_role(&self, account: AccountId, user: UserId, role: Role) -> Result<User> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE users SET role = $3 WHERE id = $1 AND account_id = $2",
        )
        .bind(user.db())
        .bind(account.db())
        .bind(role.as_str())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        self.user(account, user).await
    }

    /// Replaces a user's password.
    pub async fn set_password(
        &self,
        account: AccountId,
        user: UserId,
        password: &str,
    ) -> Result<()> {
        validate::password(password)?;
        let password = password.to_owned();
        let hash = self.blocking(move |h| h.hash(&password)).await??;
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND account_id = $2",
        )
        .bind(user.db())
        .bind(account.db())
        .bind(&hash)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        Ok(())
    }

    /// The user with this email and password, or `None`. Unknown or malformed
    /// emails cost one (failing) argon2 verification too, so the answer takes
    /// about as long either way.
    pub async fn verify_login(&self, email: &str, password: &str) -> Result<Option<User>> {
        let password = password.to_owned();
        let email = match validate::email(email) {
            Ok(e) if password.len() <= limits::MAX_PASSWORD_LEN => e,
            _ => {
                self.blocking(move |h| h.verify_dummy(&password)).await?;
                return Ok(None);
            }
        };
        let sql = format!("SELECT {USER_COLS}, password_hash FROM users WHERE email = $1");
        let row = with_pool!(self, pool => sqlx::query_as::<_, LoginRow>(&sql)
            .bind(&email)
            .fetch_optional(pool)
            .await)?;
        match row {
            None => {
                self.blocking(move |h| h.verify_dummy(&password)).await?;
                Ok(None)
            }
            Some(row) => {
                let phc = row.password_hash;
                let ok = self.blocking(move |h| h.verify(&password, &phc)).await?;
                if ok {
                    Ok(Some(row.user.try_into()?))
                } else {
                    Ok(None)
                }
            }
        }
    }

    // ----- API tokens -----------------------------------------------------

    /// Creates an API token for `user` and returns it with its plaintext
    /// (`vgl_…`), which is not stored and cannot be shown again. It lasts
    /// until revoked.
    pub async fn create_api_token(
        &self,
        account: AccountId,
        user: UserId,
        name: &str,
    ) -> Result<(ApiToken, String)> {
        self.create_token_expiring(account, user, name, TokenExpiry::default())
            .await
    }

    /// [`Store::create_api_token`] for a token that expires (a web console
    /// session): [`Store::authenticate_token`] refuses it once past its
    /// lifetime or idle for too long.
    pub async fn create_token_expiring(
        &self,
        account: AccountId,
        user: UserId,
        name: &str,
        expiry: TokenExpiry,
    ) -> Result<(ApiToken, String)> {
        let name = validate::name("token name", name)?;
        let secret = new_token(API_TOKEN_PREFIX)?;
        let created_at = now_unix();
        let expires_at = expiry
            .lifetime
            .map(|l| secs(l).map(|l| created_at.saturating_add(l)))
            .transpose()?;
        let idle = expiry.idle.map(secs).transpose()?;
        let token = ApiToken {
            id: ApiTokenId::random(),
            account_id: account,
            user_id: user,
            name,
            created_at,
            last_used_at: None,
            revoked_at: None,
            expires_at,
        };
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO api_tokens (id, account_id, user_id, name, token_hash, created_at, \
                 expires_at, idle_timeout) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token.id.db())
        .bind(account.db())
        .bind(user.db())
        .bind(&token.name)
        .bind(&secret.hash)
        .bind(token.created_at)
        .bind(expires_at)
        .bind(idle)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok((token, secret.plaintext))
    }

    /// Deletes the expiring tokens (console sessions) that can no longer be
    /// used at `now`: expired, idle too long or revoked. API tokens made to
    /// last are kept, revoked or not, for their history. Returns how many
    /// were deleted.
    pub async fn prune_expired_tokens(&self, now: UnixTime) -> Result<u64> {
        let sql = format!(
            "DELETE FROM api_tokens WHERE (expires_at IS NOT NULL OR idle_timeout IS NOT NULL) \
             AND id NOT IN (SELECT t.id FROM api_tokens t WHERE {})",
            alive_at(1)
        );
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(Into::into)
    }

    /// The API tokens of an account (revoked ones included), newest first.
    pub async fn api_tokens(&self, account: AccountId) -> Result<Vec<ApiToken>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, ApiTokenRow>(
            "SELECT id, account_id, user_id, name, created_at, last_used_at, revoked_at, \
                 expires_at FROM api_tokens WHERE account_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(ApiToken::try_from).collect()
    }

    /// The user behind an API token, or `None` for an unknown, malformed or
    /// revoked token. Refreshes the token's `last_used_at` (at most once a
    /// minute).
    pub async fn authenticate_token(&self, plaintext: &str) -> Result<Option<(User, AccountId)>> {
        let Some(hash) = token_hash(API_TOKEN_PREFIX, plaintext) else {
            return Ok(None);
        };
        let now = now_unix();
        let sql = format!(
            "SELECT u.id, u.account_id, u.email, u.role, u.created_at, \
                    t.id AS token_id, t.token_hash, t.last_used_at \
             FROM api_tokens t \
             JOIN users u ON u.id = t.user_id AND u.account_id = t.account_id \
             WHERE t.token_hash = $1 AND {}",
            alive_at(2)
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, TokenAuthRow>(&sql)
        .bind(&hash)
        .bind(now)
        .fetch_optional(pool)
        .await)?;
        let Some(row) = row else { return Ok(None) };
        if !hashes_equal(&row.token_hash, &hash) {
            return Ok(None);
        }
        if row
            .last_used_at
            .is_none_or(|t| now - t >= LAST_USED_RESOLUTION || t > now)
        {
            with_pool!(self, pool => sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
            )
            .bind(&row.token_id)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?;
        }
        let user = User::try_from(row.user)?;
        let account = user.account_id;
        Ok(Some((user, account)))
    }

    /// Revokes the API token whose plaintext this is (logging out of a web
    /// console session); an unknown or malformed token is no error.
    pub async fn revoke_token_secret(&self, plaintext: &str) -> Result<()> {
        let Some(hash) = token_hash(API_TOKEN_PREFIX, plaintext) else {
            return Ok(());
        };
        with_pool!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE token_hash = $1",
        )
        .bind(&hash)
        .bind(now_unix())
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Revokes an API token (idempotent: revoking twice keeps the first time).
    pub async fn revoke_token(&self, account: AccountId, token: ApiTokenId) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE id = $1 AND account_id = $2",
        )
        .bind(token.db())
        .bind(account.db())
        .bind(now_unix())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        Ok(())
    }
}
