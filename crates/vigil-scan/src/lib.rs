//! `vigil-scan`: an asynchronous TCP connect scanner, usable on its own.
//!
//! The engine connects to every (address, port) pair of a scan in a random
//! order across hosts, classifies each port as open, closed, filtered or
//! unreachable, and streams the results. Timeouts adapt per host to the
//! measured round-trip time (nmap's SRTT/RTTVAR rule) and only unanswered
//! probes are retried, so filtered ports cost a few timeouts and answered
//! ports cost one round trip.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vigil_scan::ScanError> {
//! use vigil_scan::{ScanConfig, Scanner, TargetSet};
//! let targets = TargetSet::resolve(&["127.0.0.1".parse().unwrap()], Default::default()).await?;
//! let ports = vigil_core::PortList::parse("22,80,443").unwrap();
//! let mut scan = Scanner::new(ScanConfig::default())?.start(targets, ports)?;
//! while let Some(result) = scan.next().await {
//!     println!("{}:{} {}", result.addr, result.port, result.state);
//! }
//! # Ok(()) }
//! ```

mod engine;
mod error;
pub mod names;
mod pacing;
mod permits;
mod permute;
mod probe;
pub mod services;
mod syn;
mod sys;
mod targets;
mod timing;

pub use engine::{BannerConfig, Method, PortResult, Scan, ScanConfig, ScanSummary, Scanner};
pub use error::ScanError;
pub use permits::{Permit, PermitFuture, PermitSource, Permits};
pub use syn::DEFAULT_RATE as SYN_DEFAULT_RATE;
pub use syn::{ScanService, ServiceShare, ServiceUse, MAX_RUNNING as SERVICE_MAX_RUNNING};
pub use targets::{Family, TargetSet, MAX_HOSTS};
pub use timing::TimingConfig;

/// How many connects a scan keeps in flight when its config names no
/// number: from the open-file limit on Unix (raised to the hard limit), a
/// share of the dynamic port range on Windows.
pub fn auto_concurrency() -> usize {
    sys::auto_concurrency()
}

/// Raises the soft open-file limit to the hard one and returns it (Unix);
/// `None` where the OS has no such per-process limit (Windows).
pub fn raise_nofile_limit() -> Option<u64> {
    sys::open_limit()
}

/// Whether this process can send SYN probes (Linux with `CAP_NET_RAW`).
pub fn syn_available() -> bool {
    syn::available()
}
