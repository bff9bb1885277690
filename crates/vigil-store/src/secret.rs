//! Secrets: random bearer tokens (stored as SHA-256) and passwords (stored as argon2id).

use crate::{Result, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Random bytes in every bearer token.
pub(crate) const TOKEN_BYTES: usize = 32;

/// Prefix of API tokens (`vgl_<base64url>`).
pub const API_TOKEN_PREFIX: &str = "vgl_";
/// Prefix of enrollment tokens (`vge_<base64url>`).
pub const ENROLLMENT_TOKEN_PREFIX: &str = "vge_";
/// Prefix of agent credentials (`vga_<base64url>`).
pub const AGENT_CREDENTIAL_PREFIX: &str = "vga_";
/// Prefix of deployment keys (`vgd_<base64url>`), reusable enrollment secrets.
pub const DEPLOYMENT_KEY_PREFIX: &str = "vgd_";

/// A freshly generated token: the plaintext (shown once) and what is stored.
pub(crate) struct NewToken {
    pub plaintext: String,
    pub hash: String,
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| {
        StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
            "no randomness available: {e}"
        ))))
    })?;
    Ok(buf)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    out
}

/// `prefix` + base64url(32 random bytes); stores SHA-256 hex of the 32 bytes.
pub(crate) fn new_token(prefix: &str) -> Result<NewToken> {
    let raw = random_bytes::<TOKEN_BYTES>()?;
    Ok(NewToken {
        plaintext: format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw)),
        hash: sha256_hex(&raw),
    })
}

/// The stored hash of a presented token, or `None` if it is not a well-formed
/// token with this prefix (so it cannot match anything).
pub(crate) fn token_hash(prefix: &str, presented: &str) -> Option<String> {
    let body = presented.strip_prefix(prefix)?;
    if body.len() != 43 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
    (raw.len() == TOKEN_BYTES).then(|| sha256_hex(&raw))
}

/// Compares two stored hashes without an early exit.
pub(crate) fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Argon2id cost of new password hashes. Existing hashes keep verifying with
/// the parameters they were made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordCost {
    /// OWASP's recommended argon2id setting: 19 MiB, 2 passes, 1 lane.
    pub const RECOMMENDED: PasswordCost = PasswordCost {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest setting argon2 accepts. **For tests only**: hashes made with
    /// it are easy to brute-force.
    pub const INSECURE_FAST_FOR_TESTS: PasswordCost = PasswordCost {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost::RECOMMENDED
    }
}

/// Hashes and verifies passwords. CPU-heavy: call from a blocking thread.
pub(crate) struct PasswordHashing {
    argon: Argon2<'static>,
    /// A hash of a password nobody knows, verified against when the email is
    /// unknown so that a login takes about as long either way.
    dummy: OnceLock<String>,
}

impl PasswordHashing {
    pub(crate) fn new(cost: PasswordCost) -> Result<Self> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| StoreError::invalid(format!("invalid password hashing cost: {e}")))?;
        Ok(PasswordHashing {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            dummy: OnceLock::new(),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh 16-byte salt.
    pub(crate) fn hash(&self, password: &str) -> Result<String> {
        let salt = SaltString::encode_b64(&random_bytes::<16>()?)
            .map_err(|e| StoreError::invalid(format!("password hashing failed: {e}")))?;
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::invalid(format!("password hashing failed: {e}")))
    }

    /// Whether `password` matches `phc`. A malformed stored hash never matches.
    pub(crate) fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Spends about the time of one failed verification (used for unknown emails).
    pub(crate) fn verify_dummy(&self, password: &str) {
        let dummy = self.dummy.get_or_init(|| {
            // A hash of random bytes that cannot be typed; if even that fails
            // the verification below fails fast, which is still correct.
            self.hash("vigil: no such user \u{1}").unwrap_or_default()
        });
        let _ = self.verify(password, dummy);
    }
}

/// How many password hashes or verifications run at once, and how many may
/// wait for a turn (each running one holds its argon2 memory, 19 MiB at the
/// recommended cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordWork {
    /// At most this many at once (default: the number of CPUs).
    pub workers: usize,
    /// At most this many waiting; one more fails at once with
    /// [`StoreError::Busy`] (default: 8 per worker).
    pub queue: usize,
}

impl Default for PasswordWork {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        PasswordWork {
            workers,
            queue: workers.saturating_mul(8),
        }
    }
}

/// The gate in front of the blocking threads that hash passwords: a
/// semaphore of [`PasswordWork::workers`] permits and a count of waiters.
pub(crate) struct PasswordGate {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    queue: usize,
}

/// One waiter counted for as long as it lives (a caller that gives up
/// while waiting is no longer counted).
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl PasswordGate {
    pub(crate) fn new(work: PasswordWork) -> Result<Self> {
        if work.workers == 0 {
            return Err(StoreError::invalid(
                "password hashing needs at least one worker",
            ));
        }
        Ok(PasswordGate {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(work.workers)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            queue: work.queue,
        })
    }

    /// A turn: at once if a worker is free, after waiting if fewer than
    /// `queue` wait already, else [`StoreError::Busy`]. The permit is to be
    /// held by the blocking work itself, so work whose caller went away
    /// still counts until it ends.
    pub(crate) async fn turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        use std::sync::atomic::Ordering;
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(StoreError::Busy),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(StoreError::Busy);
                }
                let _waiting = Waiting(&self.waiting);
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Busy)?
            }
        };
        Ok(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = new_token(API_TOKEN_PREFIX).unwrap();
        assert!(t.plaintext.starts_with("vgl_"));
        assert_eq!(t.plaintext.len(), 4 + 43);
        assert_eq!(t.hash.len(), 64);
        assert!(t.hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            token_hash(API_TOKEN_PREFIX, &t.plaintext).as_deref(),
            Some(t.hash.as_str())
        );
        // wrong prefix, truncated, padded, not base64
        assert_eq!(token_hash(ENROLLMENT_TOKEN_PREFIX, &t.plaintext), None);
        assert_eq!(token_hash(API_TOKEN_PREFIX, &t.plaintext[..40]), None);
        assert_eq!(
            token_hash(API_TOKEN_PREFIX, &format!("{}=", t.plaintext)),
            None
        );
        assert_eq!(
            token_hash(API_TOKEN_PREFIX, &format!("vgl_{}", "!".repeat(43))),
            None
        );
        assert_eq!(token_hash(API_TOKEN_PREFIX, ""), None);
        // two tokens differ
        assert_ne!(new_token(API_TOKEN_PREFIX).unwrap().hash, t.hash);
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hash_comparison() {
        assert!(hashes_equal("abc", "abc"));
        assert!(!hashes_equal("abc", "abd"));
        assert!(!hashes_equal("abc", "abcd"));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = PasswordHashing::new(PasswordCost::INSECURE_FAST_FOR_TESTS).unwrap();
        let phc = h.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery", &phc));
        assert!(!h.verify("correct horse batterY", &phc));
        assert!(!h.verify("correct horse battery", "not a hash"));
        // salted: the same password hashes differently
        assert_ne!(h.hash("correct horse battery").unwrap(), phc);
        // a verifier with another cost still verifies (parameters come from the hash)
        let other = PasswordHashing::new(PasswordCost {
            memory_kib: 16,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        assert!(other.verify("correct horse battery", &phc));
        h.verify_dummy("whatever");
    }

    #[test]
    fn bad_cost_is_invalid() {
        let bad = PasswordCost {
            memory_kib: 0,
            iterations: 0,
            parallelism: 0,
        };
        assert!(matches!(
            PasswordHashing::new(bad),
            Err(StoreError::Invalid(_))
        ));
    }
}
