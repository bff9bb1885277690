//! MAC addresses (EUI-48) as devices report them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid MAC address {given:?}: expected six hex octets, e.g. 00:1b:63:84:45:e6")]
pub struct MacError {
    pub given: String,
}

/// A 48-bit MAC address, written `00:1b:63:84:45:e6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Set by the device itself rather than assigned by the IEEE (phones
    /// randomizing their address per network, virtual machines): no vendor.
    pub fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }

    pub fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// All zeros: what an incomplete neighbour entry shows.
    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }

    /// A MAC a real device can have as its own (not zero, not multicast or
    /// broadcast).
    pub fn is_unicast(self) -> bool {
        !self.is_zero() && !self.is_multicast()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Accepts `00:1b:63:84:45:e6`, `00-1B-63-84-45-E6` (Windows) and
/// `001b.6384.45e6` (Cisco).
impl FromStr for MacAddr {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacError { given: s.into() };
        let hex: String = if s.contains(':') || s.contains('-') {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
                return Err(err());
            }
            parts.concat()
        } else if s.contains('.') {
            let parts: Vec<&str> = s.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.len() != 4) {
                return Err(err());
            }
            parts.concat()
        } else {
            return Err(err());
        };
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| err())?;
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_notations_and_prints_one() {
        for s in ["00:1b:63:84:45:e6", "00-1B-63-84-45-E6", "001b.6384.45e6"] {
            let mac: MacAddr = s.parse().expect(s);
            assert_eq!(mac.to_string(), "00:1b:63:84:45:e6", "{s}");
        }
    }

    #[test]
    fn refuses_anything_else_naming_it() {
        for s in [
            "",
            "00:1b:63:84:45",
            "00:1b:63:84:45:e6:01",
            "001b638445e6",
            "00:1b:63:84:45:g6",
            "0:1b:63:84:45:e6:",
            "00:1b:63-84:45:e",
            "+0:1b:63:84:45:e6",
        ] {
            let err = s.parse::<MacAddr>().expect_err(s);
            assert!(err.to_string().contains(&format!("{s:?}")), "{err}");
        }
    }

    #[test]
    fn kinds() {
        let mac = |s: &str| s.parse::<MacAddr>().expect(s);
        assert!(mac("02:00:00:00:00:01").is_locally_administered());
        assert!(!mac("00:1b:63:84:45:e6").is_locally_administered());
        assert!(!mac("ff:ff:ff:ff:ff:ff").is_unicast());
        assert!(!mac("00:00:00:00:00:00").is_unicast());
        assert!(mac("00:1b:63:84:45:e6").is_unicast());
    }

    #[test]
    fn serializes_as_text() {
        let mac: MacAddr = "00:1b:63:84:45:e6".parse().expect("mac");
        let json = serde_json::to_string(&mac).expect("json");
        assert_eq!(json, "\"00:1b:63:84:45:e6\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&json).expect("back"), mac);
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
    }
}
