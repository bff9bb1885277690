//! Two-factor login: a user's TOTP secret, its recovery codes, and the
//! account's "required for everyone" flag (migration `two_factor`).
//!
//! The code math is `vigil_core::totp`; the store keeps what must survive a
//! restart and be shared by replicas: the secret (in plain text, like the
//! other secrets the server must read back — encrypting them at rest is
//! issue 14, point 11), the last accepted step (a compare-and-set, so no
//! code is accepted twice even by two replicas at once), and the recovery
//! codes as SHA-256 hashes, each spent once.

use crate::error::found;
use crate::ids::{AccountId, UserId};
use crate::model::now_unix;
use crate::secret::sha256_hex;
use crate::{with_pool, Result, Store, StoreError};

/// Most recovery codes a user holds.
pub const MAX_RECOVERY_CODES: usize = 20;

#[derive(sqlx::FromRow)]
struct TotpRow {
    totp_secret: Option<String>,
    totp_last_step: Option<i64>,
}

/// The enabled second factor of a user: the base32 secret, and the last
/// step whose code was accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct Totp {
    pub secret: String,
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// What a sealed TOTP secret (enabled or being enrolled) is bound to.
pub(crate) fn totp_context(user: UserId) -> String {
    format!("users.totp:{user}")
}

/// How a recovery code is stored: SHA-256 hex of its normalized text.
fn recovery_hash(normalized: &str) -> String {
    sha256_hex(normalized.as_bytes())
}

impl Store {
    /// The user's enabled TOTP, if any.
    pub async fn totp(&self, account: AccountId, user: UserId) -> Result<Option<Totp>> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, TotpRow>(
            "SELECT totp_secret, totp_last_step FROM users WHERE id = $1 AND account_id = $2",
        )
        .bind(user.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        let row = row.ok_or(StoreError::NotFound)?;
        row.totp_secret
            .map(|sealed| {
                Ok(Totp {
                    secret: self.open(&totp_context(user), &sealed)?,
                    last_step: row.totp_last_step,
                })
            })
            .transpose()
    }

    /// Keeps `secret` (base32) as the user's TOTP being enrolled, replacing
    /// one being enrolled before; the enabled one (if any) stays until
    /// [`Store::activate_totp`].
    pub async fn start_totp(&self, account: AccountId, user: UserId, secret: &str) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE users SET totp_pending = $3 WHERE id = $1 AND account_id = $2",
        )
        .bind(user.db())
        .bind(account.db())
        .bind(self.seal(&totp_context(user), secret)?)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)
    }

    /// The secret being enrolled, if any.
    pub async fn pending_totp(&self, account: AccountId, user: UserId) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT totp_pending FROM users WHERE id = $1 AND account_id = $2",
        )
        .bind(user.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?
            .0
            .map(|sealed| self.open(&totp_context(user), &sealed))
            .transpose()
    }

    /// Enables the secret being enrolled (`pending`, which its first code
    /// was checked against, at `step`) and replaces the user's recovery
    /// codes by `recovery_codes` (normalized text). [`StoreError::NotFound`]
    /// if that secret is no longer the one being enrolled.
    pub async fn activate_totp(
        &self,
        account: AccountId,
        user: UserId,
        pending: &str,
        step: i64,
        recovery_codes: &[String],
    ) -> Result<()> {
        if recovery_codes.len() > MAX_RECOVERY_CODES {
            return Err(StoreError::invalid("too many recovery codes"));
        }
        crate::in_account_tx!(self, account, |tx| {
            // The pending secret is stored sealed (a fresh nonce each time):
            // compare what it opens to, then swap that very value.
            let stored: Option<(Option<String>,)> =
                sqlx::query_as("SELECT totp_pending FROM users WHERE id = $1 AND account_id = $2")
                    .bind(user.db())
                    .bind(account.db())
                    .fetch_optional(&mut *tx)
                    .await?;
            let sealed = stored.and_then(|r| r.0).ok_or(StoreError::NotFound)?;
            if self.open(&totp_context(user), &sealed)? != pending {
                return Err(StoreError::NotFound);
            }
            let n = sqlx::query(
                "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, \
                     totp_last_step = $4 \
                 WHERE id = $1 AND account_id = $2 AND totp_pending = $3",
            )
            .bind(user.db())
            .bind(account.db())
            .bind(&sealed)
            .bind(step)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            found(n)?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND account_id = $2")
                .bind(user.db())
                .bind(account.db())
                .execute(&mut *tx)
                .await?;
            for code in recovery_codes {
                sqlx::query(
                    "INSERT INTO recovery_codes (user_id, account_id, code_hash) \
                     VALUES ($1, $2, $3)",
                )
                .bind(user.db())
                .bind(account.db())
                .bind(recovery_hash(code))
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// Records that the code of `step` was used: `false` if that step (or
    /// a later one) was used already, so the code is refused.
    pub async fn use_totp_step(&self, account: AccountId, user: UserId, step: i64) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE users SET totp_last_step = $3 \
             WHERE id = $1 AND account_id = $2 AND totp_secret IS NOT NULL \
               AND (totp_last_step IS NULL OR totp_last_step < $3)",
        )
        .bind(user.db())
        .bind(account.db())
        .bind(step)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Spends a recovery code (normalized text): `false` if the user has no
    /// such unspent code.
    pub async fn use_recovery_code(
        &self,
        account: AccountId,
        user: UserId,
        normalized: &str,
    ) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE recovery_codes SET used_at = $4 \
             WHERE user_id = $1 AND account_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(user.db())
        .bind(account.db())
        .bind(recovery_hash(normalized))
        .bind(now_unix())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// How many unspent recovery codes the user has.
    pub async fn recovery_codes_left(&self, account: AccountId, user: UserId) -> Result<i64> {
        let (n,): (i64,) = with_pool!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM recovery_codes \
             WHERE user_id = $1 AND account_id = $2 AND used_at IS NULL",
        )
        .bind(user.db())
        .bind(account.db())
        .fetch_one(pool)
        .await)?;
        Ok(n)
    }

    /// Whether the user's account requires two-factor login, and whether the
    /// user has it (one query: asked on every console page).
    pub async fn two_factor_status(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<(bool, bool)> {
        let row: Option<(bool, bool)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT a.require_totp, u.totp_secret IS NOT NULL FROM users u \
             JOIN accounts a ON a.id = u.account_id WHERE u.id = $1 AND u.account_id = $2",
        )
        .bind(user.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)
    }

    /// Whether the account's owner requires two-factor login of every user.
    pub async fn totp_required(&self, account: AccountId) -> Result<bool> {
        let row: Option<(bool,)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT require_totp FROM accounts WHERE id = $1",
        )
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        Ok(row.ok_or(StoreError::NotFound)?.0)
    }

    /// Sets [`Store::totp_required`].
    pub async fn set_totp_required(&self, account: AccountId, required: bool) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE accounts SET require_totp = $2 WHERE id = $1",
        )
        .bind(account.db())
        .bind(required)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)
    }
}
