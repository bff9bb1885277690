//! Plans, account kinds and the scan intervals each account may choose.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// The plan an agent is on. Only [`Plan::Extended`] allows a security scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Community,
    Extended,
}

impl Plan {
    /// Whether agents on this plan may run security scans.
    pub fn allows_security_scan(self) -> bool {
        matches!(self, Plan::Extended)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Community => "community",
            Plan::Extended => "extended",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who owns the agent: an individual member or an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Member,
    Organization,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Member => "member",
            AccountKind::Organization => "organization",
        }
    }
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The only intervals (in minutes) a member account may pick:
/// 15 min, 30 min, 1 h, 2 h, 6 h, 12 h and 1 day.
pub const MEMBER_INTERVALS: [u32; 7] = [15, 30, 60, 120, 360, 720, 1440];

/// Smallest interval any account may pick, in minutes.
pub const MIN_INTERVAL_MINUTES: u32 = 1;

/// Largest interval any account may pick, in minutes (one year of 365 days).
pub const MAX_INTERVAL_MINUTES: u32 = 525_600;

/// Why a scan interval was rejected. Messages name the rejected value and the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IntervalError {
    #[error(
        "scan interval of {minutes} min is not available for member accounts: \
         choose one of {} minutes",
        member_list()
    )]
    NotOffered { minutes: u32 },
    #[error(
        "scan interval of {minutes} min is out of range: choose a whole number of minutes \
         from {MIN_INTERVAL_MINUTES} to {MAX_INTERVAL_MINUTES} (one year)"
    )]
    OutOfRange { minutes: u32 },
}

fn member_list() -> String {
    MEMBER_INTERVALS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How often a security scan runs, in whole minutes.
///
/// Deserialization accepts a bare number of minutes and only enforces the
/// global bounds (1 to 525600); call [`ScanInterval::for_account`] (or
/// [`crate::policy::SecurityPolicy::validate`]) to apply the per-account rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ScanInterval {
    minutes: u32,
}

impl ScanInterval {
    /// Validates `minutes` for an account of the given kind.
    ///
    /// Members may only pick one of [`MEMBER_INTERVALS`]; organizations any
    /// whole number of minutes from 1 to 525600 (one year).
    pub fn for_account(kind: AccountKind, minutes: u32) -> Result<ScanInterval, IntervalError> {
        match kind {
            AccountKind::Member if !MEMBER_INTERVALS.contains(&minutes) => {
                Err(IntervalError::NotOffered { minutes })
            }
            _ => ScanInterval::try_from(minutes),
        }
    }

    pub fn minutes(self) -> u32 {
        self.minutes
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.minutes) * 60)
    }
}

/// One hour: valid for every account kind.
impl Default for ScanInterval {
    fn default() -> Self {
        ScanInterval { minutes: 60 }
    }
}

/// Checks only the global bounds (1 to 525600 minutes), not the account rules.
impl TryFrom<u32> for ScanInterval {
    type Error = IntervalError;

    fn try_from(minutes: u32) -> Result<Self, Self::Error> {
        if (MIN_INTERVAL_MINUTES..=MAX_INTERVAL_MINUTES).contains(&minutes) {
            Ok(ScanInterval { minutes })
        } else {
            Err(IntervalError::OutOfRange { minutes })
        }
    }
}

impl From<ScanInterval> for u32 {
    fn from(i: ScanInterval) -> u32 {
        i.minutes
    }
}

/// `"15 min"`, `"1440 min"`.
impl fmt::Display for ScanInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} min", self.minutes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_extended_allows_security_scans() {
        assert!(!Plan::Community.allows_security_scan());
        assert!(Plan::Extended.allows_security_scan());
    }

    #[test]
    fn intervals_per_account_kind() {
        use AccountKind::*;
        // (kind, minutes, accepted)
        let cases: &[(AccountKind, u32, bool)] = &[
            (Member, 15, true),
            (Member, 30, true),
            (Member, 60, true),
            (Member, 120, true),
            (Member, 360, true),
            (Member, 720, true),
            (Member, 1440, true),
            (Member, 0, false),
            (Member, 1, false),
            (Member, 14, false),
            (Member, 45, false),
            (Member, 1441, false),
            (Member, 525_600, false),
            (Organization, 0, false),
            (Organization, 1, true),
            (Organization, 7, true),
            (Organization, 45, true),
            (Organization, 1440, true),
            (Organization, 525_600, true),
            (Organization, 525_601, false),
            (Organization, u32::MAX, false),
        ];
        for &(kind, minutes, ok) in cases {
            let got = ScanInterval::for_account(kind, minutes);
            assert_eq!(got.is_ok(), ok, "{kind} {minutes}: {got:?}");
            if let Ok(i) = got {
                assert_eq!(i.minutes(), minutes);
            }
        }
    }

    #[test]
    fn every_member_interval_is_within_global_bounds() {
        for m in MEMBER_INTERVALS {
            assert!(ScanInterval::try_from(m).is_ok(), "{m}");
        }
    }

    #[test]
    fn errors_name_the_value_and_the_allowed_ones() {
        let cases: &[(AccountKind, u32, &[&str])] = &[
            (
                AccountKind::Member,
                45,
                &["45 min", "member", "15, 30, 60, 120, 360, 720, 1440"],
            ),
            (AccountKind::Organization, 0, &["0 min", "1 to 525600"]),
            (
                AccountKind::Organization,
                600_000,
                &["600000 min", "1 to 525600", "one year"],
            ),
        ];
        for (kind, minutes, needles) in cases {
            let err = ScanInterval::for_account(*kind, *minutes)
                .unwrap_err()
                .to_string();
            for needle in *needles {
                assert!(
                    err.contains(needle),
                    "{kind} {minutes}: {err:?} lacks {needle:?}"
                );
            }
        }
    }

    #[test]
    fn displays_and_converts() {
        let i = ScanInterval::for_account(AccountKind::Member, 15).unwrap();
        assert_eq!(i.to_string(), "15 min");
        assert_eq!(i.as_duration(), Duration::from_secs(900));
        assert_eq!(ScanInterval::default().minutes(), 60);
        assert_eq!(Plan::Extended.to_string(), "extended");
        assert_eq!(AccountKind::Organization.to_string(), "organization");
    }

    #[test]
    fn serde_uses_snake_case_and_bare_minutes() {
        assert_eq!(
            serde_json::to_string(&Plan::Community).unwrap(),
            "\"community\""
        );
        assert_eq!(
            serde_json::from_str::<AccountKind>("\"organization\"").unwrap(),
            AccountKind::Organization
        );
        let i: ScanInterval = serde_json::from_str("90").unwrap();
        assert_eq!(i.minutes(), 90);
        assert_eq!(serde_json::to_string(&i).unwrap(), "90");
        let err = serde_json::from_str::<ScanInterval>("0").unwrap_err();
        assert!(err.to_string().contains("0 min"), "{err}");
    }
}
