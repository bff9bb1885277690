//! Secrets the server must be able to read back (the AD bind password, peer
//! servers' API tokens, contact addresses — webhook URLs carry their hook's
//! secret — and TOTP secrets) are sealed with XChaCha20-Poly1305 under a key kept
//! outside the database (a file in the data directory, or the environment),
//! so a copy of the database alone does not give them away.
//!
//! A sealed value is `vgs1:<key id>:<base64 of nonce ‖ ciphertext>`; the
//! key id (8 hex digits of the key's SHA-256) says which key of the
//! [`Keyring`] opens it, so keys can be rotated: the first key seals, the
//! others only open (see the README, "Rotating the secrets key"). The
//! associated data names the column and the row's account, so a sealed
//! value copied into another account's row does not open.
//!
//! Values written before sealing existed are plain text (no `vgs1:`
//! prefix): they are read as they are and sealed when next written, or by
//! `vigil admin reseal-secrets`.

use crate::error::{Result, StoreError};
use crate::{with_pool, AccountId, Store, UserId};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const PREFIX: &str = "vgs1:";
const NONCE_LEN: usize = 24;

/// One 256-bit key and its id.
#[derive(Clone)]
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The keys secrets are sealed with: the first seals and opens, the rest
/// (older keys) only open.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// A keyring from the text of a key file: one key per line, 64 hex
    /// digits each, the current key first; blank lines and `#` comments
    /// are ignored.
    pub fn parse(text: &str) -> Result<Keyring> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = hex_decode(line).filter(|b| b.len() == 32).ok_or_else(|| {
                StoreError::invalid(format!(
                    "secrets key, line {}: not a key (64 hexadecimal digits)",
                    n + 1
                ))
            })?;
            keys.push(Key::new(&bytes));
        }
        if keys.is_empty() {
            return Err(StoreError::invalid("the secrets key file holds no key"));
        }
        Ok(Keyring { keys })
    }

    /// A new random key, as a key file line.
    pub fn generate_line() -> Result<String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| StoreError::invalid(format!("no randomness for a key: {e}")))?;
        Ok(key.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `plain` for the `context` (column and row owner).
    pub(crate) fn seal(&self, context: &str, plain: &str) -> Result<String> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::invalid(format!("no randomness for a nonce: {e}")))?;
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| StoreError::invalid("sealing a secret failed"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!(
            "{PREFIX}{}:{}",
            key.id,
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(blob)
        ))
    }

    /// Opens what [`seal`](Self::seal) made; plain text (written before
    /// sealing) is returned as it is.
    pub(crate) fn open(&self, context: &str, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let damaged = || StoreError::invalid(format!("a sealed secret ({context}) is damaged"));
        let (id, blob) = rest.split_once(':').ok_or_else(damaged)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            StoreError::invalid(format!(
                "a secret ({context}) is sealed with key {id}, which is not in the secrets key file \
                 (keys: {}); add the old key as a later line",
                self.keys
                    .iter()
                    .map(|k| k.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let blob = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(blob)
            .map_err(|_| damaged())?;
        if blob.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| damaged())?;
        String::from_utf8(plain).map_err(|_| damaged())
    }

    /// Whether `stored` is sealed with the current key (else resealing
    /// would change it).
    pub(crate) fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current_id())
    }
}

/// A column of sealed secrets: how to list its values (as `key, owner,
/// value`), how to replace one (`$1` new value, `$2` key, `$3` old value:
/// a value changed meanwhile is left alone), and the context its owner
/// binds a value to.
struct SealedColumn {
    select: &'static str,
    update: &'static str,
    context: fn(&str) -> Result<String>,
}

const SEALED_COLUMNS: [SealedColumn; 5] = [
    SealedColumn {
        select: "SELECT account_id, account_id, ad_password FROM compliance_scopes \
                 WHERE ad_password IS NOT NULL",
        update: "UPDATE compliance_scopes SET ad_password = $1 \
                 WHERE account_id = $2 AND ad_password = $3",
        context: |owner| {
            Ok(crate::compliance::ad_password_context(AccountId::from_db(
                owner,
            )?))
        },
    },
    SealedColumn {
        select: "SELECT id, account_id, api_token FROM compliance_peers",
        update: "UPDATE compliance_peers SET api_token = $1 WHERE id = $2 AND api_token = $3",
        context: |owner| Ok(crate::peers::token_context(AccountId::from_db(owner)?)),
    },
    SealedColumn {
        select: "SELECT id, account_id, address FROM contacts",
        update: "UPDATE contacts SET address = $1 WHERE id = $2 AND address = $3",
        context: |owner| Ok(crate::notify::address_context(AccountId::from_db(owner)?)),
    },
    SealedColumn {
        select: "SELECT id, id, totp_secret FROM users WHERE totp_secret IS NOT NULL",
        update: "UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3",
        context: |owner| Ok(crate::two_factor::totp_context(UserId::from_db(owner)?)),
    },
    SealedColumn {
        select: "SELECT id, id, totp_pending FROM users WHERE totp_pending IS NOT NULL",
        update: "UPDATE users SET totp_pending = $1 WHERE id = $2 AND totp_pending = $3",
        context: |owner| Ok(crate::two_factor::totp_context(UserId::from_db(owner)?)),
    },
];

impl Store {
    /// Seals every stored secret with the current key (plain text from
    /// before sealing, or sealed with an older key); returns how many
    /// changed. Run after putting a new key first in the key file.
    pub async fn reseal_secrets(&self) -> Result<usize> {
        let Some(ring) = self.inner.keyring.get() else {
            return Err(StoreError::invalid("no secrets key is configured"));
        };
        let mut changed = 0u64;
        for column in &SEALED_COLUMNS {
            let rows = with_pool!(self, pool => sqlx::query_as::<_, (String, String, String)>(
                column.select,
            )
            .fetch_all(pool)
            .await)?;
            for (key, owner, stored) in rows.into_iter().filter(|(_, _, s)| !ring.is_current(s)) {
                let context = (column.context)(&owner)?;
                let sealed = ring.seal(&context, &ring.open(&context, &stored)?)?;
                changed += with_pool!(self, pool => sqlx::query(column.update)
                    .bind(&sealed)
                    .bind(&key)
                    .bind(&stored)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected()))?;
            }
        }
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }
}

impl Key {
    fn new(bytes: &[u8]) -> Key {
        let digest = Sha256::digest(bytes);
        Key {
            id: digest[..4].iter().map(|b| format!("{b:02x}")).collect(),
            cipher: XChaCha20Poly1305::new_from_slice(bytes).expect("a 32-byte key"),
        }
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(lines: &[&str]) -> Keyring {
        Keyring::parse(&lines.join("\n")).expect("keyring")
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let a = Keyring::generate_line().expect("key");
        let b = Keyring::generate_line().expect("key");
        let ring_a = ring(&[&a]);
        let sealed = ring_a
            .seal("peers.api_token:acct-1", "vgl_secret")
            .expect("seal");
        assert!(sealed.starts_with("vgs1:"), "{sealed}");
        assert!(!sealed.contains("vgl_secret"));
        assert_eq!(
            ring_a
                .open("peers.api_token:acct-1", &sealed)
                .expect("open"),
            "vgl_secret"
        );
        // Two seals of one secret differ (fresh nonce).
        assert_ne!(
            sealed,
            ring_a
                .seal("peers.api_token:acct-1", "vgl_secret")
                .expect("seal")
        );
        // Another row's context, a damaged value, another key: refused.
        assert!(ring_a.open("peers.api_token:acct-2", &sealed).is_err());
        let mut damaged = sealed.clone();
        damaged.pop();
        assert!(ring_a.open("peers.api_token:acct-1", &damaged).is_err());
        let err = ring(&[&b])
            .open("peers.api_token:acct-1", &sealed)
            .unwrap_err();
        assert!(err.to_string().contains(ring_a.current_id()), "{err}");
        // Rotation: the new key first, the old one after it still opens.
        let rotated = ring(&[&b, "# old", &a]);
        assert_eq!(
            rotated
                .open("peers.api_token:acct-1", &sealed)
                .expect("open"),
            "vgl_secret"
        );
        assert!(!rotated.is_current(&sealed));
        let resealed = rotated
            .seal("peers.api_token:acct-1", "vgl_secret")
            .expect("seal");
        assert!(rotated.is_current(&resealed));
        // Plain text from before sealing reads as it is.
        assert_eq!(ring_a.open("x", "old plain").expect("open"), "old plain");
    }

    #[test]
    fn key_files_are_checked() {
        for bad in [
            "",
            "# only a comment",
            "abc",
            &"g".repeat(64),
            &"a".repeat(62),
        ] {
            assert!(Keyring::parse(bad).is_err(), "{bad:?}");
        }
    }
}
