//! How far an identify reply can be trusted.
//!
//! Any host can answer the identify probe with a real agent's id and our
//! server's id. The sweep therefore challenges every agent port with a
//! fresh nonce and checks the reply's MAC with the key of the agent it
//! names (the protocol is `vigil_proto::identify`; the check is IO and
//! yields a [`Proof`]). What that proof means is decided here:
//!
//! | the reply names    | proof                     | check        | status        |
//! |--------------------|---------------------------|--------------|---------------|
//! | no server          | —                         | none         | no agent      |
//! | another server     | — (only its server could) | `unverified` | managed elsewhere |
//! | this server        | valid, agent of the account | `verified` | managed here  |
//! | this server        | valid, agent removed      | `removed`    | no agent      |
//! | this server        | missing, wrong, replayed, or an agent the account does not have | `forged` | no agent |
//!
//! An agent of another account of this server is "an agent the account
//! does not have": a tenant's machines are not protected by another
//! tenant's agents. The check is kept on the endpoint so people see why a
//! host that answered like an agent is counted as having none.

use super::error::ComplianceError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What the MAC of an identify reply proved, as checked by the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// Nothing: no MAC, a wrong one (e.g. replayed from another exchange),
    /// an agent the assessed account does not have — or nobody checked
    /// (replies naming another server cannot be checked).
    #[default]
    Unproven,
    /// The MAC is valid for this exchange's nonce under the key of an agent
    /// of the assessed account.
    Valid,
    /// Valid, but the account removed that agent.
    RemovedAgent,
}

/// The verdict on an identify reply, kept on the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifyCheck {
    /// An agent of this server and account, proven by its MAC.
    Verified,
    /// Names another server, which alone could check it.
    Unverified,
    /// Names this server without a valid proof: something answered in an
    /// agent's name.
    Forged,
    /// A proven agent of this server that the account removed.
    Removed,
}

impl IdentifyCheck {
    /// Every check, in the order above.
    pub const ALL: [IdentifyCheck; 4] = [
        IdentifyCheck::Verified,
        IdentifyCheck::Unverified,
        IdentifyCheck::Forged,
        IdentifyCheck::Removed,
    ];

    /// The machine name, as serialized: `verified`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifyCheck::Verified => "verified",
            IdentifyCheck::Unverified => "unverified",
            IdentifyCheck::Forged => "forged",
            IdentifyCheck::Removed => "removed",
        }
    }

    /// What it means, as shown to people.
    pub fn label(self) -> &'static str {
        match self {
            IdentifyCheck::Verified => "identify reply verified",
            IdentifyCheck::Unverified => "identify reply unverified (another server's agent)",
            IdentifyCheck::Forged => {
                "forged identify reply: claimed an agent of this server without proof"
            }
            IdentifyCheck::Removed => "the agent answered, but it was removed from this server",
        }
    }
}

impl fmt::Display for IdentifyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdentifyCheck {
    type Err = ComplianceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdentifyCheck::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ComplianceError::UnknownStatus { status: s.into() })
    }
}

/// The verdict on a reply naming `server_id`, with `proof`, at the server
/// `our_server_id` (see the module docs); `None` for an agent enrolled
/// nowhere. Server ids are compared exactly.
pub fn check_identify(server_id: &str, our_server_id: &str, proof: Proof) -> Option<IdentifyCheck> {
    if server_id.is_empty() {
        return None;
    }
    if server_id != our_server_id {
        return Some(IdentifyCheck::Unverified);
    }
    Some(match proof {
        Proof::Valid => IdentifyCheck::Verified,
        Proof::RemovedAgent => IdentifyCheck::Removed,
        Proof::Unproven => IdentifyCheck::Forged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use IdentifyCheck::*;
    use Proof::*;

    const OURS: &str = "srv-ours";

    #[test]
    fn check_table() {
        // (case, server id in the reply, proof, expected)
        let cases = [
            ("our agent, proven", OURS, Valid, Some(Verified)),
            (
                "our server, no proof (forged or replayed)",
                OURS,
                Unproven,
                Some(Forged),
            ),
            (
                "our server, agent removed",
                OURS,
                RemovedAgent,
                Some(Removed),
            ),
            (
                "another server: never checked",
                "srv-other",
                Unproven,
                Some(Unverified),
            ),
            // A valid proof cannot come with another server's id (the sweep
            // checks only its own); if it did, it would not make it ours.
            (
                "another server, proof",
                "srv-other",
                Valid,
                Some(Unverified),
            ),
            (
                "server id differs in case",
                "SRV-OURS",
                Valid,
                Some(Unverified),
            ),
            ("not enrolled", "", Unproven, None),
            ("not enrolled, proof", "", Valid, None),
        ];
        for (case, server, proof, want) in cases {
            assert_eq!(check_identify(server, OURS, proof), want, "{case}");
        }
        // A server whose id is empty never takes an unenrolled agent.
        assert_eq!(check_identify("", "", Valid), None);
    }

    #[test]
    fn names_round_trip() {
        for c in IdentifyCheck::ALL {
            assert_eq!(c.as_str().parse::<IdentifyCheck>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
            assert!(!c.label().is_empty());
        }
        assert!("Forged".parse::<IdentifyCheck>().is_err());
        assert_eq!(Proof::default(), Unproven);
    }
}
