//! The location's whole network: what a *local network* sweep covers, and
//! the inventory of devices it finds.
//!
//! An agent sits inside its location's network. A policy target
//! [`crate::PolicyTarget::LocalNetwork`] has it sweep the subnets of its own
//! interfaces (see `vigil_agent::lan` for which are left out by default),
//! and [`crate::PolicyTarget::Network`] adds CIDR blocks and ranges the
//! user names. Every device that answers, or that the agent's neighbour
//! table lists after the sweep, goes into the location's inventory
//! ([`inventory`]), known by its MAC address where there is one, so a
//! DHCP address change is the same device. Each device keeps a
//! [`history`] of what the sweeps saw change about it; [`review`] says
//! how it looks under the location's policy (new? unauthorized ports?).

pub mod history;
pub mod inventory;
pub mod mac;
pub mod policy;
pub mod review;
pub mod scope;

pub use history::{DeviceEvent, DeviceEventKind};
pub use inventory::{merge, merge_sweep, Coverage, Device, InventoryChange, Sighting};
pub use mac::{MacAddr, MacError};
pub use policy::{authorized_ports, device_target, forward_target, DeviceKind, UnreviewedDevices};
pub use review::{review, Arrival, DeviceFilter, Review};
pub use scope::{network_range, sweep_limit, ScopeError};
