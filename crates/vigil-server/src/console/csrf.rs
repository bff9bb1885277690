//! CSRF tokens: every state-changing form carries
//! `HMAC-SHA256(server key, session secret)`, which only a page rendered
//! for that session knows. The key is random per server process, so a
//! restart invalidates open forms (reload the page) but not sessions.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::OnceLock;

/// The hidden form field that carries the token.
pub(crate) const FIELD: &str = "csrf";

type HmacSha256 = Hmac<Sha256>;

fn server_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

fn mac(key: &[u8], session_secret: &str) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"vigil console csrf v1\0");
    mac.update(session_secret.as_bytes());
    mac
}

fn token_with(key: &[u8], session_secret: &str) -> String {
    let tag = mac(key, session_secret).finalize().into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

fn verify_with(key: &[u8], session_secret: &str, token: &str) -> bool {
    let Some(bytes) = decode_hex(token) else {
        return false;
    };
    // Constant-time comparison.
    mac(key, session_secret).verify_slice(&bytes).is_ok()
}

/// The token for forms of the session with this secret.
pub(crate) fn token(session_secret: &str) -> String {
    token_with(server_key(), session_secret)
}

/// Whether `token` is the session's token.
pub(crate) fn verify(session_secret: &str, token: &str) -> bool {
    verify_with(server_key(), session_secret, token)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
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
        let t = token_with(KEY, "vgl_session_a");
        assert_eq!(t.len(), 64);
        assert!(verify_with(KEY, "vgl_session_a", &t));
        assert!(verify("vgl_session_b", &token("vgl_session_b")));
    }

    #[test]
    fn other_sessions_keys_and_garbage_are_refused() {
        let t = token_with(KEY, "vgl_session_a");
        assert!(!verify_with(KEY, "vgl_session_b", &t), "another session");
        assert!(
            !verify_with(b"another key", "vgl_session_a", &t),
            "another key"
        );
        for bad in [
            "",
            "00",
            &t[..63],
            &"0".repeat(64),
            "zz".repeat(32).as_str(),
        ] {
            assert!(!verify_with(KEY, "vgl_session_a", bad), "{bad:?}");
        }
        let mut flipped = t.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(!verify_with(KEY, "vgl_session_a", &flipped));
        // Multi-byte characters never panic the decoder.
        assert!(!verify_with(KEY, "vgl_session_a", &"é".repeat(32)));
    }
}
