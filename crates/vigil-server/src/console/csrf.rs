//! CSRF tokens: every state-changing form carries
//! `HMAC-SHA256(console key, purpose, secret)`, which only a page rendered
//! for that session knows. The console key lives in the database
//! ([`vigil_store::Store::console_key`]), so a restart or another replica
//! accepts the forms a server rendered. The login form, before there is a
//! session, is bound the same way to a random value in a short-lived
//! cookie of its own.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The hidden form field that carries the token.
pub(crate) const FIELD: &str = "csrf";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], session_secret: &str) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"vigil console csrf v1\0");
    mac.update(session_secret.as_bytes());
    mac
}

/// The token for forms of the session (or login form) with this secret.
pub(crate) fn token(key: &[u8], session_secret: &str) -> String {
    let tag = mac(key, session_secret).finalize().into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `token` is the session's (or login form's) token.
pub(crate) fn verify(key: &[u8], session_secret: &str, token: &str) -> bool {
    let Some(bytes) = decode_hex(token) else {
        return false;
    };
    // Constant-time comparison.
    mac(key, session_secret).verify_slice(&bytes).is_ok()
}

/// A hex HMAC-SHA256 tag (64 hex digits) as bytes.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sessions_token_verifies() {
        let t = token(KEY, "vgl_session_a");
        assert_eq!(t.len(), 64);
        assert!(verify(KEY, "vgl_session_a", &t));
        let key = [7u8; 32];
        assert!(verify(&key, "vgl_session_b", &token(&key, "vgl_session_b")));
        assert!(!verify(
            &[8u8; 32],
            "vgl_session_b",
            &token(&key, "vgl_session_b")
        ));
    }

    #[test]
    fn other_sessions_keys_and_garbage_are_refused() {
        let t = token(KEY, "vgl_session_a");
        assert!(!verify(KEY, "vgl_session_b", &t), "another session");
        assert!(!verify(b"another key", "vgl_session_a", &t), "another key");
        for bad in [
            "",
            "00",
            &t[..63],
            &"0".repeat(64),
            "zz".repeat(32).as_str(),
        ] {
            assert!(!verify(KEY, "vgl_session_a", bad), "{bad:?}");
        }
        let mut flipped = t.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(!verify(KEY, "vgl_session_a", &flipped));
        // Multi-byte characters never panic the decoder.
        assert!(!verify(KEY, "vgl_session_a", &"é".repeat(32)));
    }
}
