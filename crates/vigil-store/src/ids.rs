//! UUIDv4 identifiers, one newtype per kind of row, serialized as strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (version 4) identifier.
            pub fn random() -> Self {
                $name(Uuid::new_v4())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                $name(uuid)
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses the text stored in the database.
            #[allow(dead_code)]
            pub(crate) fn from_db(s: &str) -> crate::Result<Self> {
                s.parse()
                    .map_err(|_| crate::StoreError::corrupt(stringify!($name), s))
            }

            /// The text stored in the database (lower-case, hyphenated).
            pub(crate) fn db(&self) -> String {
                self.0.hyphenated().to_string()
            }
        }

        /// Lower-case hyphenated form, e.g. `67e55044-10b1-426f-9247-bb680e5fe0c8`.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                $name(uuid)
            }
        }
    )*};
}

id_type! {
    /// An account (tenant): a member or an organization.
    AccountId;
    /// A user of an account (someone who logs in to the console).
    UserId;
    /// An API token of a user.
    ApiTokenId;
    /// A one-time enrollment token.
    EnrollmentId;
    /// An agent; also the agent's GUID.
    AgentId;
    /// One uploaded scan result.
    ScanResultId;
    /// One alert (an occurrence of a condition on a target).
    AlertId;
    /// A notification contact.
    ContactId;
    /// A notification rule.
    RuleId;
    /// A queued notification.
    OutboxId;
    /// A scan task the server handed to an agent.
    TaskId;
    /// One compliance assessment (a run over the account's compliance scope).
    AssessmentId;
    /// A trusted peer server (another Vigil installation).
    PeerId;
    /// A reusable deployment key (enrolls many agents).
    DeploymentKeyId;
    DeviceId;
    /// A maintenance window of an account.
    MaintenanceId;
    /// A push-install job (agents installed over SSH on several hosts).
    InstallJobId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_v4_and_distinct() {
        let a = AgentId::random();
        let b = AgentId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_uuid().get_version_num(), 4);
    }

    #[test]
    fn display_parse_round_trip() {
        let id = AccountId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<AccountId>().unwrap(), id);
        assert_eq!(id.db(), text);
        assert!("not-a-uuid".parse::<AccountId>().is_err());
        assert!(AccountId::from_db("nope").is_err());
    }

    #[test]
    fn serialized_as_string() {
        let id = UserId::random();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: UserId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<UserId>("42").is_err());
    }
}
