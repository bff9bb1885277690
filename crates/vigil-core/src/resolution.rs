//! Why an alert is over.
//!
//! "Port 8080/tcp no longer open" is false when the port is still open and
//! the alert ended because someone authorized it: a recovery notice has to
//! say which of these happened. [`crate::evaluate`] tells the two apart
//! ([`crate::Change::Cleared`] against [`crate::Change::Dropped`] with its
//! reason); the server stores the reason with the alert (and who changed
//! the policy, when it knows) and words titles and notices from it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an alert's condition is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The condition stopped: the port no longer answers, the service
    /// answers again, the host is reachable again, the agent calls in.
    Cleared,
    /// The policy no longer makes it a problem, while the port may well be
    /// as it was: an open port is now authorized, a port that is down is no
    /// longer monitored.
    PolicyChanged,
    /// The policy no longer scans its port at all, so nothing is known of it.
    NotScanned,
}

/// A stored spelling that is not a [`Resolution`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resolution {0:?}: expected cleared, policy_changed or not_scanned")]
pub struct UnknownResolution(pub String);

impl Resolution {
    /// Every resolution, in declaration order.
    pub const ALL: [Resolution; 3] = [
        Resolution::Cleared,
        Resolution::PolicyChanged,
        Resolution::NotScanned,
    ];

    /// The stored and API spelling: `cleared`, `policy_changed`, `not_scanned`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Cleared => "cleared",
            Resolution::PolicyChanged => "policy_changed",
            Resolution::NotScanned => "not_scanned",
        }
    }

    /// The reverse of [`Resolution::as_str`].
    pub fn parse(s: &str) -> Result<Resolution, UnknownResolution> {
        Resolution::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownResolution(s.to_string()))
    }

    /// Whether a person's change (not the scanned host) ended the alert.
    pub fn by_policy(self) -> bool {
        matches!(self, Resolution::PolicyChanged | Resolution::NotScanned)
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_match_serde() {
        let cases = [
            (Resolution::Cleared, "cleared", false),
            (Resolution::PolicyChanged, "policy_changed", true),
            (Resolution::NotScanned, "not_scanned", true),
        ];
        assert_eq!(cases.len(), Resolution::ALL.len());
        for (r, text, by_policy) in cases {
            assert_eq!(r.as_str(), text);
            assert_eq!(r.to_string(), text);
            assert_eq!(Resolution::parse(text), Ok(r));
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::Value::from(text)
            );
            assert_eq!(r.by_policy(), by_policy, "{r}");
        }
        for bad in ["", "Cleared", "closed", "policy changed"] {
            let err = Resolution::parse(bad).unwrap_err();
            assert!(err.to_string().contains("policy_changed"), "{err}");
        }
    }
}
