//! A real Active Directory domain controller for Vigil's tests and
//! benchmarks: Samba AD DC, in the target namespace of a
//! [`vigil_testnet::TestNet`], with LDAPS and bulk-loaded computer objects.
//!
//! [`SambaDc::start`] provisions the domain `EXAMPLE.TEST` (NetBIOS
//! `EXAMPLE`, DC `DC1`) with `samba-tool`, runs `samba` listening only on
//! the address you give it, and waits until LDAP answers. Code under test
//! reaches it from the scanner namespace at [`SambaDc::ldaps_url`], binds as
//! [`SambaDc::bind_dn`] / [`SambaDc::password`] and trusts
//! [`SambaDc::ca_cert_pem`]. [`SambaDc::add_computers`] creates thousands
//! of computer objects in one call (seconds, not the minutes one
//! `samba-tool computer add` per computer would take).
//!
//! ```no_run
//! use vigil_testdir::{Computer, DcOptions, SambaDc};
//! use vigil_testnet::{NetSpec, TestNet};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = TestNet::new(NetSpec::default())?;
//! let dc = match SambaDc::start(&net, "198.51.100.53".parse()?, &DcOptions::default()) {
//!     Err(e) if e.is_unavailable() => {
//!         eprintln!("SKIPPED: {e}");
//!         return Ok(());
//!     }
//!     dc => dc?,
//! };
//! dc.add_computers(&[Computer {
//!     dns_host_name: Some("ws1.example.test".into()),
//!     ou: Some("Workstations".into()),
//!     ..Computer::new("WS1")
//! }])?;
//! let guid = dc.object_guid("WS1")?;
//! // ... scan ldaps://198.51.100.53:636 from net.in_scanner(...) ...
//! # let _ = guid; Ok(()) }
//! ```
//!
//! Isolation: everything Samba does happens in the target namespace, which
//! has no route out; it listens on the given address only, its DNS server
//! forwards nowhere, dynamic DNS updates are off, and its state, sockets
//! and logs live in a temporary directory. Drop the [`SambaDc`] before the
//! [`TestNet`](vigil_testnet::TestNet) (declare it after the net).
//!
//! Requirements: root, and Samba AD DC (Debian 12:
//! `apt-get install -y samba-ad-dc samba-ad-provision`). Without them
//! [`SambaDc::start`] returns [`DirError::Unavailable`], so tests print
//! `SKIPPED` and pass, unless `VIGIL_REQUIRE_SAMBA=1`, which turns it into
//! [`DirError::Required`]; see [`check_available`].

mod cmd;
mod computers;
mod dc;
mod error;
mod provision;
mod tls;

pub use computers::{Computer, UF_ACCOUNTDISABLE, UF_WORKSTATION_TRUST_ACCOUNT};
pub use dc::{DcOptions, DcTimings, SambaDc};
pub use error::DirError;
pub use provision::REQUIRE_ENV;

/// Kerberos realm of the test domain.
pub const REALM: &str = "EXAMPLE.TEST";
/// NetBIOS name of the test domain.
pub const DOMAIN: &str = "EXAMPLE";
/// NetBIOS name of the domain controller.
pub const NETBIOS_NAME: &str = "DC1";

/// `Ok` if [`SambaDc::start`] can work here (root, namespaces, Samba AD DC
/// installed), else [`DirError::Unavailable`] (skip) or, with
/// `VIGIL_REQUIRE_SAMBA=1`, [`DirError::Required`] (fail). Checked once per
/// process; lets a test skip before it builds a test network.
pub fn check_available() -> Result<(), DirError> {
    provision::tools().map(drop)
}
