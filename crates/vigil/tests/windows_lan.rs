//! `vigil.exe agent sweep` (the Windows build, under Wine) on a bridged test
//! LAN: the Windows code of the local-network sweep — connect probes only
//! (Windows gives no packet socket for ARP), the neighbour table read with
//! `GetIpNetTable2`, the interfaces with `GetAdaptersAddresses` (netdev) —
//! finds every host with its MAC and open ports, as the ground truth and
//! the Linux binary say.
//!
//! Wine turns those calls into Linux ones inside the exe's process, which
//! runs in the LAN's agent namespace: nothing leaves the namespaces.

mod common;

use common::lan::{add, mac_text, swept_devices, Host, SweptDevices};
use common::wine::wine_and_exe;
use common::{can_build_networks, run_ok, vigil_bin};
use std::net::Ipv4Addr;
use std::process::Command;
use vigil_testnet::TestLan;

const SUBNET: &str = "198.51.100.0/24";
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

const PRINTER: Host = Host {
    name: "printer",
    mac: [0x3c, 0xd9, 0x2b, 0x00, 0x00, 0x10],
    addr: Ipv4Addr::new(198, 51, 100, 10),
    ports: &[631, 9100],
};
/// Refuses every port: found by its resets.
const NAS: Host = Host {
    name: "nas",
    mac: [0x00, 0x11, 0x32, 0x00, 0x00, 0x12],
    addr: Ipv4Addr::new(198, 51, 100, 12),
    ports: &[],
};
/// Drops every TCP packet: found only by its neighbour entry.
const ALARM: Host = Host {
    name: "alarm",
    mac: [0x00, 0x1b, 0x63, 0x00, 0x00, 0x15],
    addr: Ipv4Addr::new(198, 51, 100, 15),
    ports: &[],
};

fn sweep(mut cmd: Command) -> SweptDevices {
    cmd.args(["agent", "sweep", "--network", SUBNET, "--json", "-p"])
        .arg("22,80,443,631,9100");
    swept_devices(&run_ok(&mut cmd))
}

#[test]
fn windows_sweep_finds_the_lan_as_linux_does() {
    if !can_build_networks() {
        return;
    }
    let Some((wine, exe)) = wine_and_exe() else {
        return;
    };
    let mut lan = TestLan::new(SUBNET.parse().expect("subnet"), AGENT).expect("test LAN");
    for h in [&PRINTER, &NAS, &ALARM] {
        add(&mut lan, h);
    }
    run_ok(lan.host_cmd(ALARM.name, "nft").args([
        "add table inet alarm { chain input { type filter hook input priority 0; \
         meta l4proto tcp drop; }; }",
    ]));

    // From a cold neighbour table, as the Linux agent without ARP does.
    run_ok(lan.agent_cmd("ip").args(["neigh", "flush", "all"]));
    let mut cmd = lan.agent_cmd(wine.loader());
    wine.configure(&mut cmd);
    cmd.arg(&exe);
    let windows = sweep(cmd);
    eprintln!("vigil.exe found {windows:#?}");

    let truth: SweptDevices = [&PRINTER, &NAS, &ALARM]
        .iter()
        .map(|h| {
            (
                h.addr.to_string(),
                Some(mac_text(h.mac)),
                h.ports.iter().map(|&p| u64::from(p)).collect(),
            )
        })
        .collect();
    let hosts: SweptDevices = windows
        .iter()
        .filter(|d| d.0 != AGENT.to_string())
        .cloned()
        .collect();
    assert_eq!(hosts, truth, "vigil.exe against the ground truth");
    // The agent's own address is a device too, with its interface's MAC.
    let own = windows
        .iter()
        .find(|d| d.0 == AGENT.to_string())
        .unwrap_or_else(|| panic!("the agent's own address: {windows:#?}"));
    assert!(own.1.is_some(), "{own:?}");

    run_ok(lan.agent_cmd("ip").args(["neigh", "flush", "all"]));
    let linux = sweep(lan.agent_cmd(vigil_bin()));
    assert_eq!(windows, linux, "vigil.exe and the Linux vigil disagree");
}
