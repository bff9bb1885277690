//! Security compliance: finding machines in the network that Vigil does not
//! protect.
//!
//! A tenant saves a [`ComplianceScope`] (Active Directory and/or IP ranges,
//! agent ports, the optional unreachable-port check). An assessment probes
//! every address (IO, elsewhere), [`classify`]s each probe into an
//! [`EndpointStatus`], [`join()`]s AD computers and IP results so both sides
//! appear once, and stores the resulting [`Endpoint`]s, which users count by
//! status and search by name ([`NamePattern`]) or with an [`AdvancedQuery`].
//!
//! Everything here is pure: resolved names, probe results, known agents and
//! the current time are passed in.

pub mod ad;
pub mod dn;
pub mod endpoint;
pub mod entry;
pub mod error;
pub mod filter;
pub mod guid;
pub mod identify;
pub mod join;
pub mod names;
pub mod netbios;
pub mod range;
pub mod schedule;
pub mod scope;
pub mod search;
pub mod status;

pub use ad::{
    ad_connection_changes, check_keep_bind_password, AdBind, AdConnectionField, AdScope,
    COMPUTER_ATTRIBUTES, MAX_CA_CERT_BYTES,
};
pub use dn::Dn;
pub use endpoint::Endpoint;
pub use entry::{ad_computer_from_entry, EntryError};
pub use error::ComplianceError;
pub use filter::validate_filter;
pub use guid::{
    ad_guid_filter, ad_guid_from_bytes, ad_guid_to_bytes, filetime_to_unix,
    ldap_filter_escape_bytes, parse_filetime, parse_uac, uac_disabled,
};
pub use identify::{check_identify, IdentifyCheck, Proof};
pub use join::{
    addresses_to_probe, join, names_to_resolve, settle_silent_addresses, AdComputer, IpEndpoint,
    KnownAgent,
};
pub use names::{clean_host_name, pick_name, NameSource, SeenNames};
pub use netbios::{
    node_status_request, parse_node_status, NbstatError, NodeStatus, NETBIOS_NAME_PORT,
};
pub use range::{IpRange, MAX_RANGE_ADDRESSES};
pub use schedule::{
    ComplianceSchedule, ScheduleError, MAX_EVERY_MINUTES, MIN_EVERY_MINUTES, WEEKDAYS,
};
pub use scope::{
    AgentPorts, ComplianceScope, IpScope, DEFAULT_AGENT_PORT, DEFAULT_UNREACHABLE_PORT,
    MAX_SCOPE_ADDRESSES,
};
pub use search::{AdvancedQuery, NamePattern, OsPattern};
pub use status::{classify, EndpointStatus, Identified, Probe, Reachability, StatusCounts};
