//! Certificate pins: `sha256:` + the hex SHA-256 of the server certificate's
//! DER encoding (what `openssl x509 -fingerprint -sha256` prints, colons
//! optional).
//!
//! The server's certificate is self-signed, so no CA vouches for it; the
//! admin copies its pin into the enrollment command and the agent accepts
//! exactly that certificate from then on.

use crate::ProtoError;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertPin([u8; 32]);

impl CertPin {
    /// The pin of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        CertPin(Sha256::digest(der).into())
    }

    pub fn matches(&self, der: &[u8]) -> bool {
        *self == CertPin::of_der(der)
    }
}

impl FromStr for CertPin {
    type Err = ProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ProtoError::Pin(s.chars().take(120).collect());
        let hex = s
            .trim()
            .strip_prefix("sha256:")
            .or_else(|| s.trim().strip_prefix("SHA256:"))
            .ok_or_else(bad)?;
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        // `from_str_radix` alone would also take a sign: `+f` as 0f.
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(CertPin(out))
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints_and_openssl_style() {
        let pin = CertPin::of_der(b"certificate");
        let text = pin.to_string();
        assert_eq!(text.len(), 7 + 64);
        assert_eq!(text.parse::<CertPin>(), Ok(pin));
        let openssl = format!(
            "SHA256:{}",
            text.as_bytes()[7..]
                .chunks(2)
                .map(|c| std::str::from_utf8(c).expect("ascii").to_uppercase())
                .collect::<Vec<_>>()
                .join(":")
        );
        assert_eq!(openssl.parse::<CertPin>(), Ok(pin));
        assert!(pin.matches(b"certificate"));
        assert!(!pin.matches(b"another certificate"));
    }

    #[test]
    fn rejects_malformed_pins() {
        for bad in [
            "",
            "sha256:",
            "md5:00",
            "sha256:zz",
            &format!("sha256:{}", "0".repeat(63)),
            &format!("sha256:{}", "é".repeat(32)),
            // Found by fuzzing: a sign is not a hex digit.
            &format!("sha256:+b{}", "ab".repeat(31)),
            &format!("SHA256:AB:+B{}", ":AB".repeat(30)),
        ] {
            assert!(bad.parse::<CertPin>().is_err(), "{bad:?}");
        }
    }
}
