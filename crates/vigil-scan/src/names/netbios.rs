//! NetBIOS node status (UDP 137, RFC 1002 §4.2.17): the computer name a
//! Windows or Samba host registered. The codec is pure, in
//! `vigil_core::compliance::netbios`; this is the exchange.

use super::exchange::{self, Plan, Question};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use vigil_core::compliance::{
    clean_host_name, node_status_request, parse_node_status, NETBIOS_NAME_PORT,
};

/// Pause between node-status requests (the timer's resolution makes it
/// about a millisecond in practice).
const PACE: Duration = Duration::from_micros(50);
/// A node-status reply: the header, the name, up to 255 names of 18
/// bytes and the statistics fit in an Ethernet frame in practice.
const MAX_REPLY: usize = 1500;

/// The NetBIOS computer name of each IPv4 address that answered node
/// status, awaited `wait` after the last request. IPv6 addresses are
/// skipped (NetBIOS has none).
pub async fn node_status(addrs: &[IpAddr], wait: Duration) -> HashMap<IpAddr, String> {
    let targets: Vec<IpAddr> = super::unique(addrs.iter().copied().filter(IpAddr::is_ipv4));
    if targets.is_empty() {
        return HashMap::new();
    }
    // One transaction id per address (its index, wrapping), checked on
    // the reply together with the address it came from.
    let base: u16 = rand::random();
    let id = |i: usize| base.wrapping_add(i as u16);
    let index: HashMap<IpAddr, usize> = targets.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let questions: Vec<Question> = targets
        .iter()
        .enumerate()
        .map(|(i, addr)| Question {
            to: SocketAddr::new(*addr, NETBIOS_NAME_PORT),
            payload: node_status_request(id(i)),
        })
        .collect();
    let plan = Plan {
        what: "NetBIOS",
        pace: PACE,
        wait,
        max_reply: MAX_REPLY,
        // Windows and nmbd answer from 137; a reply is matched by its
        // source address and transaction id.
        reply_port: None,
    };
    exchange::ask(&plan, &questions, |from, reply| {
        let i = *index.get(&from.ip())?;
        match parse_node_status(reply, id(i)) {
            Ok(status) => Some((from.ip(), clean_host_name(status.computer_name()?)?)),
            Err(e) => {
                tracing::debug!(%from, error = %e, "not a node-status reply");
                None
            }
        }
    })
    .await
}
