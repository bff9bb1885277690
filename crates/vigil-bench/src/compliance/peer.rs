//! The peer: nmap's connect scan of the same ports on the same range, in
//! the same namespace.
//!
//! The assessment asks, per address, "does port 135 answer?" and, for the
//! addresses that do, "is an agent port open, and whose agent is it?". The
//! nmap job that gathers the same facts (less the identify exchange) is a
//! connect scan of ports 135 and 47760 on every address, without host
//! discovery (`-Pn`: hosts that drop everything must not be skipped for a
//! reason the assessment does not use), without DNS (`-n`), at `-T4` and
//! with two retries like Vigil's scanner. nmap needs many minutes for a
//! sparse /16 (see the sweep in BENCHMARKS.md), so by default it scans a
//! sample of the range (a /22 of IPv4, the same number of IPv6 addresses)
//! and its time is extrapolated linearly to the whole range, which is fair
//! to nmap: its time is dominated by waiting out silent addresses in host
//! groups of fixed size, so it grows with the address count.

use super::network::Range;
use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vigil_testnet::TestNet;

/// A finished (or killed) nmap run.
pub struct NmapRun {
    pub command: String,
    pub target: IpNet,
    pub addresses: u64,
    pub elapsed: Duration,
    pub killed: bool,
    /// Open `(address, port)` pairs found, and those that exist.
    pub found: usize,
    pub exist: usize,
    pub exact: bool,
}

/// The first `/prefix` of the range (IPv4; for IPv6 the prefix that holds
/// as many addresses), or the range itself if it is smaller.
pub fn sample_of(range: &Range, v4_prefix: u8) -> Result<IpNet> {
    let prefix = match range.net {
        IpNet::V4(_) => v4_prefix,
        IpNet::V6(_) => v4_prefix + 96,
    };
    if prefix <= range.net.prefix_len() {
        return Ok(range.net);
    }
    Ok(IpNet::new(range.net.network(), prefix)?)
}

fn args(target: &IpNet) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if matches!(target, IpNet::V6(_)) {
        a.push("-6".into());
    }
    for s in [
        "-sT",
        "-Pn",
        "-n",
        "-T4",
        "--max-retries",
        "2",
        "-p",
        "135,47760",
        "-oX",
        "-",
    ] {
        a.push(s.into());
    }
    a.push(target.to_string());
    a
}

/// Runs nmap on `target` (part of `range`), killing it after `limit`.
pub fn run(net: &TestNet, range: &Range, target: IpNet, limit: Duration) -> Result<NmapRun> {
    let args = args(&target);
    let command = format!("nmap {}", args.join(" "));
    let mut cmd: Command = net.scanner_cmd("nmap");
    cmd.args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting nmap")?;
    let stdout = child.stdout.take().context("stdout")?;
    let stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit || super::check_interrupted().is_err() {
            let _ = child.kill();
            killed = true;
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let truth = range.open_in(&target);
    let mut run = NmapRun {
        command,
        target,
        addresses: match target {
            IpNet::V4(n) => 1u64 << (32 - n.prefix_len()),
            IpNet::V6(n) => 1u64 << (128 - n.prefix_len()),
        },
        elapsed,
        killed,
        found: 0,
        exist: truth.len(),
        exact: false,
    };
    super::check_interrupted()?;
    if killed {
        return Ok(run);
    }
    if !status.success() {
        bail!("nmap failed ({status}): {err}");
    }
    let open: BTreeSet<(IpAddr, u16)> =
        vigil_testnet::nmap::open_set(&vigil_testnet::nmap::parse_xml(&out)?);
    run.found = open.intersection(&truth).count();
    run.exact = open == truth;
    Ok(run)
}

/// nmap's version line.
pub fn version() -> String {
    Command::new("nmap")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "nmap not found".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn range(net: &str) -> Range {
        Range {
            label: "test",
            net: net.parse().expect("net"),
            size: 65_536,
            hosts: BTreeMap::new(),
        }
    }

    #[test]
    fn samples_hold_as_many_addresses_in_both_families() {
        let v4 = sample_of(&range("198.19.0.0/16"), 22).expect("v4");
        let v6 = sample_of(&range("2001:db8:1::/112"), 22).expect("v6");
        assert_eq!(v4.to_string(), "198.19.0.0/22");
        assert_eq!(v6.to_string(), "2001:db8:1::/118");
        assert_eq!(
            sample_of(&range("198.19.0.0/16"), 16).expect("all"),
            range("198.19.0.0/16").net
        );
    }

    #[test]
    fn nmap_gets_the_family_flag_for_ipv6_only() {
        let v6: IpNet = "2001:db8:1::/118".parse().expect("net");
        let v4: IpNet = "198.19.0.0/22".parse().expect("net");
        assert_eq!(args(&v6)[0], "-6");
        assert_eq!(args(&v4)[0], "-sT");
        assert_eq!(args(&v4).last().map(String::as_str), Some("198.19.0.0/22"));
    }
}
