//! Time-based one-time passwords (RFC 6238, as authenticator apps make
//! them: HMAC-SHA1, 6 digits, 30-second steps), and the recovery codes
//! that stand in for a lost authenticator.
//!
//! A code is accepted for its own step and one step either side (clocks
//! drift), and only for a step later than the last one accepted for the
//! user, so a code seen over someone's shoulder cannot be used again.
//! Times are unix seconds passed in by the caller.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps either side of now that are still accepted.
pub const SKEW_STEPS: u64 = 1;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// The RFC 4648 base32 alphabet, which authenticator apps read secrets in.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The step of unix time `t`.
pub fn step(t: u64) -> u64 {
    t / STEP_SECS
}

/// The code of `secret` for step `step` (RFC 4226's HOTP of the step).
pub fn code(secret: &[u8], step: u64) -> u32 {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

/// The step whose code `typed` is, at unix time `now`, if it is one of the
/// accepted steps later than `last_used`. Spaces in `typed` are ignored.
pub fn verify(secret: &[u8], typed: &str, now: u64, last_used: Option<u64>) -> Option<u64> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let typed: u32 = digits.parse().ok()?;
    let now = step(now);
    let mut found = None;
    // Every candidate is computed, so the time taken says nothing.
    for s in now.saturating_sub(SKEW_STEPS)..=now.saturating_add(SKEW_STEPS) {
        let fresh = last_used.is_none_or(|l| s > l);
        if code(secret, s) == typed && fresh && found.is_none() {
            found = Some(s);
        }
    }
    found
}

/// `otpauth://` URI of a secret, which authenticator apps read from a QR
/// code. `issuer` and `account` are shown in the app.
pub fn uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let issuer_enc = percent(issuer);
    format!(
        "otpauth://totp/{issuer_enc}:{}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent(account),
        base32(secret)
    )
}

/// Base32 without padding (what authenticator apps accept typed in).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The bytes of base32 text (case, spaces and padding ignored); `None` if
/// it holds anything else.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let c = c.to_ascii_uppercase();
        let v = BASE32.iter().position(|&a| char::from(a) == c)?;
        buffer = (buffer << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// Letters and digits of recovery codes: Crockford's base32, without the
/// easily confused I, L, O and U.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters of a recovery code (shown as two groups of five).
pub const RECOVERY_CHARS: usize = 10;

/// A recovery code made of `random` (one byte per character; 5 bits of
/// each are used: 50 bits in all), as `XXXXX-XXXXX`.
pub fn recovery_code(random: &[u8; RECOVERY_CHARS]) -> String {
    let chars: String = random
        .iter()
        .map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)]))
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// A typed recovery code as stored: upper-case, without spaces or dashes.
pub fn normalize_recovery_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .take(4 * RECOVERY_CHARS)
        .collect()
}

/// Whether `typed` looks like a recovery code rather than a TOTP code.
pub fn is_recovery_code(typed: &str) -> bool {
    normalize_recovery_code(typed).len() == RECOVERY_CHARS
}

fn percent(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_test_vectors() {
        // The RFC's 8-digit codes, last six digits.
        let cases = [
            (59, 94287082 % 1_000_000),
            (1111111109, 7081804 % 1_000_000),
            (1111111111, 14050471 % 1_000_000),
            (1234567890, 89005924 % 1_000_000),
            (2000000000, 69279037 % 1_000_000),
            (20000000000, 65353130 % 1_000_000),
        ];
        for (t, want) in cases {
            assert_eq!(code(RFC_SECRET, step(t)), want, "t={t}");
        }
    }

    #[test]
    fn verify_accepts_one_step_either_side_and_never_twice() {
        let t = 1_234_567_890; // step 41152263
        let s = step(t);
        let at = |st: u64| format!("{:06}", code(RFC_SECRET, st));
        let cases = [
            // (typed, last used, accepted step)
            (at(s), None, Some(s)),
            (at(s - 1), None, Some(s - 1)),
            (at(s + 1), None, Some(s + 1)),
            (at(s - 2), None, None),
            (at(s + 2), None, None),
            // replay: the same or an older step is refused
            (at(s), Some(s), None),
            (at(s - 1), Some(s - 1), None),
            (at(s + 1), Some(s), Some(s + 1)),
            (format!("{} {}", &at(s)[..3], &at(s)[3..]), None, Some(s)),
            ("12345".to_string(), None, None),
            ("1234567".to_string(), None, None),
            ("abcdef".to_string(), None, None),
            (String::new(), None, None),
        ];
        for (typed, last, want) in cases {
            assert_eq!(
                verify(RFC_SECRET, &typed, t, last),
                want,
                "{typed:?} {last:?}"
            );
        }
    }

    #[test]
    fn base32_round_trips() {
        // RFC 4648's test vectors.
        let cases = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (raw, enc) in cases {
            assert_eq!(base32(raw.as_bytes()), enc);
            assert_eq!(from_base32(enc).as_deref(), Some(raw.as_bytes()));
        }
        assert_eq!(
            from_base32("mzxw 6ytb oi==").as_deref(),
            Some(&b"foobar"[..])
        );
        assert_eq!(from_base32("MZ1"), None);
    }

    #[test]
    fn uri_for_apps() {
        assert_eq!(
            uri(b"foobar", "Vigil Acme", "me@acme.test"),
            "otpauth://totp/Vigil%20Acme:me@acme.test?secret=MZXW6YTBOI&issuer=Vigil%20Acme\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes() {
        let c = recovery_code(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 31]);
        assert_eq!(c, "01234-5678Z");
        assert!(is_recovery_code(&c));
        assert!(is_recovery_code(" 01234 5678z "));
        assert!(!is_recovery_code("123456"));
        assert_eq!(normalize_recovery_code("01234-5678z"), "012345678Z");
    }
}
