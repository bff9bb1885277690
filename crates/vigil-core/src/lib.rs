//! Vigil's domain core: the pure types and decisions every other crate shares.
//!
//! Nothing in here performs IO. Parsing user input (port lists, target
//! specifications) lives here because the same rules apply whether the input
//! comes from the `vigil scan` command line, a security-scan policy or a
//! compliance scope.

pub mod compliance;
pub mod csv_cell;
pub mod evaluate;
pub mod fair_share;
pub mod followup;
pub mod history;
pub mod lan;
pub mod listener;
pub mod liveness;
pub mod maintenance;
pub mod netpolicy;
pub mod outside;
pub mod pin;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod resolution;
pub mod state;
pub mod targets;
pub mod throttle;
pub mod timeline;
pub mod totp;
pub mod trend;
pub mod update;

pub use csv_cell::csv_cell;
pub use ports::{
    listed_in_result, probed_summary, NotListed, PortList, PortSpecError, MAX_SILENT_LISTED,
};
pub use resolution::Resolution;
pub use state::PortState;
pub use targets::{TargetSpec, TargetSpecError};

pub use evaluate::{
    evaluate, Change, Condition, ConditionKind, DampingConfig, Event, Observation, TargetState,
};
pub use liveness::{
    contact_range, health, liveness_event, scan_status, AgentHealth, LivenessConfig, LivenessEvent,
    ScanStatus, StatusReason,
};
pub use plan::{AccountKind, IntervalError, Plan, ScanInterval, MEMBER_INTERVALS};
pub use policy::{PolicyError, PolicyTarget, SecurityPolicy};
