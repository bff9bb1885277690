//! The scanners under comparison: how each is invoked and how its output
//! becomes a set of open `(address, port)` pairs.

use crate::scenario::{Ports, Scenario};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub enum Tool {
    /// `vigil scan` with connect probes.
    Vigil(PathBuf),
    /// `vigil scan --syn` (raw SYN probes); with `true`, `-T5` (nmap's
    /// insane timing template, as the nmap it is compared with uses).
    VigilSyn(PathBuf, bool),
    /// The Windows build of `vigil scan`, under Wine (its prefix shared).
    VigilWine(PathBuf, std::sync::Arc<vigil_testwine::Wine>),
    Nmap,
    /// `nmap -sS --min-rate 100000`: nmap's SYN scan at the rate of
    /// Vigil's SYN engine; with `true`, `-T5` too (its fastest).
    NmapSyn(bool),
    RustScan(PathBuf),
}

pub struct Outcome {
    pub elapsed: Duration,
    pub open: BTreeSet<(IpAddr, u16)>,
    /// Killed at the time limit: `elapsed` is a lower bound, `open` empty.
    pub timed_out: bool,
}

impl Tool {
    pub fn name(&self) -> &'static str {
        match self {
            Tool::Vigil(_) => "vigil scan --connect",
            Tool::VigilSyn(_, false) => "vigil scan --syn",
            Tool::VigilSyn(_, true) => "vigil scan --syn -T5",
            Tool::VigilWine(..) => "vigil.exe scan (Wine)",
            Tool::Nmap => "nmap -sT -T4",
            Tool::NmapSyn(false) => "nmap -sS --min-rate 100000",
            Tool::NmapSyn(true) => "nmap -sS -T5 --min-rate 100000",
            Tool::RustScan(_) => "rustscan",
        }
    }

    /// The exact command line, for the report.
    pub fn command(&self, s: &Scenario) -> Command {
        let mut cmd = match self {
            Tool::Vigil(bin) | Tool::VigilSyn(bin, _) => {
                let mut c = s.net.scanner_cmd(bin);
                c.args(["scan", "--no-progress", "--json", "-p", &port_spec(s.ports)]);
                match self {
                    Tool::VigilSyn(_, false) => c.arg("--syn"),
                    Tool::VigilSyn(_, true) => c.args(["--syn", "-T5"]),
                    _ => c.arg("--connect"),
                };
                c
            }
            Tool::VigilWine(exe, wine) => {
                let mut c = s.net.scanner_cmd(wine.loader());
                wine.configure(&mut c);
                c.arg(exe)
                    .args(["scan", "--no-progress", "--json", "-p", &port_spec(s.ports)]);
                c
            }
            Tool::Nmap => {
                let mut c = s.net.scanner_cmd("nmap");
                c.args([
                    "-sT",
                    "-T4",
                    "-Pn",
                    "-n",
                    "-oX",
                    "-",
                    "-p",
                    &port_spec(s.ports),
                ]);
                c
            }
            Tool::NmapSyn(t5) => {
                let mut c = s.net.scanner_cmd("nmap");
                c.arg("-sS");
                if *t5 {
                    c.arg("-T5");
                }
                c.args(["--min-rate", "100000", "-Pn", "-n", "-oX", "-"])
                    .args(["-p", &port_spec(s.ports)]);
                c
            }
            Tool::RustScan(bin) => {
                let mut c = s.net.scanner_cmd(bin);
                c.args(["-n", "--no-banner", "-g", "--scripts", "none"]);
                match s.ports {
                    Ports::Range(a, b) => c.args(["-r", &format!("{a}-{b}")]),
                    Ports::One(p) => c.args(["-p", &p.to_string()]),
                };
                c.arg("-a");
                c
            }
        };
        cmd.arg(&s.target);
        cmd
    }

    /// Runs the tool once, killing it after `limit`.
    pub fn run(&self, s: &Scenario, limit: Duration) -> Result<Outcome> {
        let mut cmd = self.command(s);
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.name()))?;
        // Read output on threads so a chatty tool cannot block on a full pipe.
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        let out = std::thread::spawn(move || read_all(stdout));
        let err = std::thread::spawn(move || read_all(stderr));
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Outcome {
                    elapsed: started.elapsed(),
                    open: BTreeSet::new(),
                    timed_out: true,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = started.elapsed();
        let out = out.join().unwrap_or_default();
        let err = err.join().unwrap_or_default();
        if !status.success() {
            bail!("{} failed ({status}): {err}", self.name());
        }
        let open = match self {
            Tool::Vigil(_) | Tool::VigilSyn(..) | Tool::VigilWine(..) => parse_vigil(&out)?,
            Tool::Nmap | Tool::NmapSyn(_) => {
                vigil_testnet::nmap::open_set(&vigil_testnet::nmap::parse_xml(&out)?)
            }
            Tool::RustScan(_) => parse_rustscan(&out)?,
        };
        Ok(Outcome {
            elapsed,
            open,
            timed_out: false,
        })
    }
}

fn port_spec(p: Ports) -> String {
    match p {
        Ports::Range(a, b) => format!("{a}-{b}"),
        Ports::One(p) => p.to_string(),
    }
}

fn read_all(mut r: impl std::io::Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// `{"addr":"198.51.100.2","port":22,"state":"open",…}` per line.
fn parse_vigil(out: &str) -> Result<BTreeSet<(IpAddr, u16)>> {
    let mut open = BTreeSet::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).context("vigil JSON line")?;
        if v["state"] == "open" {
            let addr = v["addr"].as_str().context("addr")?.parse()?;
            let port = v["port"].as_u64().context("port")?;
            open.insert((addr, u16::try_from(port)?));
        }
    }
    Ok(open)
}

/// Greppable mode: `198.51.100.2 -> [22,80]` per host with open ports.
fn parse_rustscan(out: &str) -> Result<BTreeSet<(IpAddr, u16)>> {
    let mut open = BTreeSet::new();
    for line in out.lines() {
        let Some((addr, ports)) = line.split_once(" -> ") else {
            continue;
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("rustscan line {line:?}"))?;
        let ports = ports.trim().trim_start_matches('[').trim_end_matches(']');
        for p in ports.split(',').filter(|p| !p.is_empty()) {
            open.insert((addr, p.trim().parse()?));
        }
    }
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rustscan_greppable_lines() {
        let set = parse_rustscan("198.51.100.2 -> [22,80]\nnoise\n").expect("parse");
        let a: IpAddr = "198.51.100.2".parse().expect("ip");
        assert_eq!(set, BTreeSet::from([(a, 22), (a, 80)]));
    }

    #[test]
    fn reads_vigil_json_lines() {
        let set = parse_vigil(
            "{\"addr\":\"::1\",\"port\":22,\"state\":\"open\"}\n{\"addr\":\"::1\",\"port\":23,\"state\":\"closed\"}\n",
        )
        .expect("parse");
        assert_eq!(set.len(), 1);
    }
}
