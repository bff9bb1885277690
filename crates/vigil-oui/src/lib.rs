//! `vigil-oui`: the vendor of a MAC address, from the IEEE registry.
//!
//! The registry (MA-L 24-bit, MA-M 28-bit, MA-S and IAB 36-bit blocks) is
//! read at build time from Debian's `ieee-data` package
//! (`/usr/share/ieee-data`, or `$VIGIL_IEEE_DATA_DIR`) and compiled in as
//! a compact table: sorted prefixes per length and each vendor name once
//! (about 1 MB for the 2022 registry, see [`Registry::bytes`]). No file is
//! read at run time, so the agent names devices the same on every machine
//! it runs on, Windows included.
//!
//! Without the package the build still succeeds, with a warning, and every
//! lookup finds nothing; [`registry`] says so.
//!
//! ```
//! // 00:00:0C is Cisco's first block, in every edition of the registry.
//! if vigil_oui::registry().entries > 0 {
//!     let vendor = vigil_oui::vendor([0x00, 0x00, 0x0c, 0x12, 0x34, 0x56]);
//!     assert!(vendor.unwrap().to_lowercase().contains("cisco"));
//! }
//! // A locally administered address (randomized Wi-Fi MACs, VMs,
//! // containers) has no vendor.
//! assert_eq!(vigil_oui::vendor([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]), None);
//! ```
#![deny(missing_docs)]

mod table;

use table::{MA_L, MA_M, MA_S};

/// The vendor the IEEE registered `mac`'s block to: the longest matching
/// prefix wins (MA-S/IAB 36 bits, then MA-M 28, then MA-L 24), as the
/// "Organization Name" of the registry, trimmed. `None` for a locally
/// administered or a multicast address, and for an unassigned block.
pub fn vendor(mac: [u8; 6]) -> Option<&'static str> {
    if is_locally_administered(mac) || is_multicast(mac) {
        return None;
    }
    let mac48 = mac.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    [&MA_S, &MA_M, &MA_L]
        .into_iter()
        .find_map(|t| t.find(mac48))
        .and_then(table::name)
}

/// Whether `mac` is locally administered (bit `0x02` of the first octet):
/// set by software (randomized Wi-Fi addresses, VMs, containers), not
/// from a registered block.
pub fn is_locally_administered(mac: [u8; 6]) -> bool {
    mac[0] & 0x02 != 0
}

/// Whether `mac` is a group (multicast or broadcast) address (bit `0x01`
/// of the first octet): it names no device.
pub fn is_multicast(mac: [u8; 6]) -> bool {
    mac[0] & 0x01 != 0
}

/// What the compiled-in registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registry {
    /// Assigned blocks of all lengths (0: no registry was found at build
    /// time, every lookup finds nothing).
    pub entries: usize,
    /// Distinct vendor names.
    pub vendors: usize,
    /// Where the table came from: the directory and, when known, the
    /// date the package updated it, e.g.
    /// `/usr/share/ieee-data (updated 2022-08-27)`; `none: …` without one.
    pub source: &'static str,
    /// The registry files that were not found at build time (all four:
    /// the `ieee-data` package was not installed).
    pub missing: &'static [&'static str],
    /// Bytes the table adds to the binary (records, names, offsets).
    pub bytes: usize,
}

/// What the compiled-in registry holds; see [`Registry`].
pub fn registry() -> Registry {
    Registry {
        entries: table::ENTRIES,
        vendors: table::names(),
        source: table::SOURCE,
        missing: table::MISSING,
        bytes: table::BYTES,
    }
}

#[cfg(test)]
mod tests;
