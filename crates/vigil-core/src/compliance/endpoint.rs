//! One row of the compliance results: a machine as the assessment sees it,
//! from Active Directory, from an IP range or from both joined into one.

use super::dn::Dn;
use super::identify::IdentifyCheck;
use super::names::NameSource;
use super::status::EndpointStatus;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use uuid::Uuid;

/// A machine in the compliance results. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The AD `cn`; for a machine known only by address, the name found
    /// for the address (see `names.rs`) or else the address itself.
    pub name: String,
    /// Where `name` came from; `None` when it is the address itself.
    #[serde(default)]
    pub name_source: Option<NameSource>,
    /// The AD `dNSHostName`, if any.
    #[serde(default)]
    pub dns_name: Option<String>,
    /// The addresses assessed for this machine (may be empty for AD
    /// computers that could not be resolved).
    #[serde(default)]
    pub addrs: Vec<IpAddr>,
    pub status: EndpointStatus,
    /// The AD `operatingSystem`, if set.
    #[serde(default)]
    pub os: Option<String>,
    /// The AD container (OU) holding the computer object.
    #[serde(default)]
    pub container: Option<Dn>,
    /// The AD `objectGUID`.
    #[serde(default)]
    pub ad_guid: Option<Uuid>,
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The server ID the agent reported (kept for agents of other servers).
    #[serde(default)]
    pub server_id: Option<String>,
    #[serde(default)]
    pub agent_version: Option<String>,
    /// The verdict on the identify reply behind `agent_id` and `server_id`
    /// (`forged`: a host answered in the name of an agent of this server
    /// without proof, and is counted as having no agent); `None` when no
    /// identify reply was checked (e.g. an agent known from the database).
    #[serde(default)]
    pub identify: Option<IdentifyCheck>,
    /// The latest sign of life: an answer to the assessment, the agent's last
    /// contact with this server, or the AD last logon.
    #[serde(default)]
    pub last_seen: Option<i64>,
    /// The AD account is disabled (userAccountControl 0x2).
    #[serde(default)]
    pub disabled: bool,
}

impl Endpoint {
    /// Whether the agent fields may stand for an agent of ours: not taken
    /// from a reply judged forged, or from a removed agent (an endpoint
    /// whose reply was never checked, e.g. stored before replies were,
    /// is taken as it is).
    pub fn identify_trusted(&self) -> bool {
        !matches!(
            self.identify,
            Some(IdentifyCheck::Forged | IdentifyCheck::Removed)
        )
    }

    /// A bare endpoint: a name, a status and nothing else known.
    pub fn new(name: impl Into<String>, status: EndpointStatus) -> Self {
        Endpoint {
            name: name.into(),
            name_source: None,
            dns_name: None,
            addrs: Vec::new(),
            status,
            os: None,
            container: None,
            ad_guid: None,
            agent_id: None,
            server_id: None,
            agent_version: None,
            identify: None,
            last_seen: None,
            disabled: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_and_removed_claims_are_not_trusted() {
        let cases = [
            (None, true),
            (Some(IdentifyCheck::Verified), true),
            (Some(IdentifyCheck::Unverified), true),
            (Some(IdentifyCheck::Forged), false),
            (Some(IdentifyCheck::Removed), false),
        ];
        for (check, want) in cases {
            let mut ep = Endpoint::new("pc", EndpointStatus::NoAgent);
            ep.identify = check;
            assert_eq!(ep.identify_trusted(), want, "{check:?}");
        }
    }
}
