//! The one error type of the compliance module. Every message is meant for
//! the person who typed the input: it names the value and says what to change.

use super::range::MAX_RANGE_ADDRESSES;
use super::scope::MAX_SCOPE_ADDRESSES;
use std::fmt;
use thiserror::Error;

/// Why a compliance scope, a search or one of their parts was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ComplianceError {
    #[error(
        "an IP range is empty; write an address, a CIDR block (198.51.100.0/24) \
         or a dash range (198.51.100.10-198.51.100.99)"
    )]
    EmptyRange,
    #[error("range {range:?} contains whitespace; write it without spaces (e.g. 198.51.100.10-198.51.100.99)")]
    RangeWhitespace { range: String },
    #[error("range {range:?} is not valid: {reason}")]
    RangeSyntax { range: String, reason: &'static str },
    #[error("range {range:?} mixes IPv4 and IPv6; both ends must be of one family")]
    RangeMixedFamily { range: String },
    #[error("range {range:?} starts after it ends; write the lower address first")]
    RangeReversed { range: String },
    #[error(
        "range {range:?} has {} addresses; a range may hold at most {} ({})",
        Thousands(*.addresses),
        Thousands(MAX_RANGE_ADDRESSES),
        prefix_rule(*.ipv6)
    )]
    RangeTooLarge {
        range: String,
        addresses: u128,
        ipv6: bool,
    },
    #[error("the IP scope is enabled but lists no ranges; add a range or disable the IP scope")]
    IpScopeEmpty,
    #[error(
        "the IP ranges cover {} addresses in all; a scope may cover at most {} \
         (16 full /16 or /112 ranges): narrow or remove ranges",
        Thousands(*.addresses),
        Thousands(MAX_SCOPE_ADDRESSES)
    )]
    IpScopeTooLarge { addresses: u128 },
    #[error(
        "list at least one agent port (Vigil agents listen on {} by default)",
        super::scope::DEFAULT_AGENT_PORT
    )]
    NoAgentPorts,
    #[error("port 0 is not valid for {what}; use a port from 1 to 65535")]
    PortZero { what: &'static str },
    #[error("cannot remove agent port {port}: at least one agent port is needed")]
    LastAgentPort { port: u16 },
    #[error("LDAP URL {url:?} is not valid: {reason}")]
    AdUrl { url: String, reason: &'static str },
    #[error("StartTLS applies to ldap:// URLs only; ldaps:// is already encrypted: turn StartTLS off or use ldap://")]
    StartTlsWithLdaps,
    #[error(
        "a simple bind over plain ldap:// would send the password unencrypted; \
         use ldaps://, turn on StartTLS, or bind with Kerberos (GSSAPI)"
    )]
    CleartextBind,
    #[error("bind name {name:?} is not valid: {reason}")]
    BindName { name: String, reason: &'static str },
    #[error("the AD connection changed ({fields}): enter the bind password again")]
    AdConnectionChanged { fields: String },
    #[error("add at least one base DN or OU to search (e.g. OU=Computers,DC=example,DC=test)")]
    NoBaseDn,
    #[error("{dn:?} is not a valid distinguished name: {reason}")]
    InvalidDn { dn: String, reason: String },
    #[error("the CA certificate is not valid: {reason}")]
    CaCert { reason: &'static str },
    #[error("base DN {dn:?} is listed more than once")]
    DuplicateBaseDn { dn: String },
    #[error("LDAP filter {filter:?} is not valid: {reason}")]
    InvalidFilter {
        filter: String,
        reason: &'static str,
    },
    #[error("enter {what} to search for, or * for all")]
    EmptyPattern { what: &'static str },
    #[error("\"last seen after\" must be earlier than \"last seen before\"")]
    LastSeenBounds,
    #[error(
        "unknown status {status:?}: expected managed_here, managed_elsewhere, no_agent, \
         unreachable, unresolved_ad or no_host"
    )]
    UnknownStatus { status: String },
    #[error("a pinned certificate needs TLS: use ldaps:// or StartTLS")]
    PinWithoutTls,
    #[error("unknown name source {given:?}: expected ad, dns, netbios or agent")]
    UnknownNameSource { given: String },
}

fn prefix_rule(ipv6: bool) -> &'static str {
    if ipv6 {
        "IPv6: prefix /112 to /128"
    } else {
        "IPv4: prefix /16 to /32"
    }
}

/// Formats a count with comma thousands separators: `16,777,216`.
struct Thousands(u128);

impl fmt::Display for Thousands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        // Digits are ASCII, so byte slicing is safe; after the first group the
        // rest is a whole number of 3-digit groups.
        let first = match digits.len() % 3 {
            0 => 3,
            r => r,
        };
        let (head, mut rest) = digits.split_at(first.min(digits.len()));
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        out.push_str(head);
        while rest.len() >= 3 {
            out.push(',');
            out.push_str(&rest[..3]);
            rest = &rest[3..];
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        let cases: &[(u128, &str)] = &[
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (65_536, "65,536"),
            (16_777_216, "16,777,216"),
            (
                u128::MAX,
                "340,282,366,920,938,463,463,374,607,431,768,211,455",
            ),
        ];
        for (n, want) in cases {
            assert_eq!(Thousands(*n).to_string(), *want);
        }
    }
}
