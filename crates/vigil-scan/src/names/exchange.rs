//! One question per address over UDP, from one socket per address family:
//! the shape NetBIOS node status and mDNS reverse queries share.
//!
//! Questions go out paced. The protocol's parser says which asked address
//! a datagram answers (by its source, its transaction id, its question…)
//! and with what name; only the first good answer per address is kept.
//! The exchange ends when every address has answered, or [`Plan::wait`]
//! after the last question.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::UdpSocket;

/// How an exchange runs.
pub(super) struct Plan {
    /// The protocol, for log lines.
    pub(super) what: &'static str,
    /// Pause between questions.
    pub(super) pace: Duration,
    /// How long replies are awaited after the last question.
    pub(super) wait: Duration,
    /// The receive buffer: a longer datagram is cut to this and fails to
    /// parse.
    pub(super) max_reply: usize,
    /// The port replies must come from (mDNS: 5353), if the protocol
    /// fixes it.
    pub(super) reply_port: Option<u16>,
}

/// A question for one address (each address once): where it goes and
/// its bytes.
pub(super) struct Question {
    pub(super) to: SocketAddr,
    pub(super) payload: Vec<u8>,
}

/// The names found so far, and how many per family (a receive loop ends
/// when its family is complete).
#[derive(Default)]
struct Found {
    names: HashMap<IpAddr, String>,
    /// IPv4, IPv6.
    per_family: [usize; 2],
}

/// The socket the questions of one address family go out from.
struct FamilySocket {
    socket: UdpSocket,
    /// Index in [`Found::per_family`].
    family: usize,
    /// How many addresses of this family were asked.
    asked: usize,
}

/// Sends `questions` and returns the names `answer(source, reply)` found:
/// it gives the asked address a reply answers, and its name, or `None`
/// for a reply that is no usable answer. A name for an address that was
/// not asked, or already named, is ignored.
pub(super) async fn ask<F>(
    plan: &Plan,
    questions: &[Question],
    answer: F,
) -> HashMap<IpAddr, String>
where
    F: Fn(SocketAddr, &[u8]) -> Option<(IpAddr, String)> + Sync,
{
    let asked: HashSet<IpAddr> = questions.iter().map(|q| q.to.ip()).collect();
    // A mutex only so the future is `Send`: never held across an await.
    let found = Mutex::new(Found::default());
    let v4 = family_socket(plan, questions, true).await;
    let v6 = family_socket(plan, questions, false).await;
    let send = async {
        for q in questions {
            let socket = if q.to.is_ipv4() { &v4 } else { &v6 };
            let Some(FamilySocket { socket, .. }) = socket else {
                continue;
            };
            if let Err(e) = socket.send_to(&q.payload, q.to).await {
                tracing::debug!(to = %q.to, error = %e, "{} question not sent", plan.what);
            }
            tokio::time::sleep(plan.pace).await;
        }
        tokio::time::sleep(plan.wait).await;
    };
    let receive = Receive {
        plan,
        asked: &asked,
        found: &found,
        answer: &answer,
    };
    tokio::select! {
        _ = futures::future::join(receive.run(v4.as_ref()), receive.run(v6.as_ref())) => {}
        _ = send => {}
    }
    found.into_inner().unwrap_or_else(|e| e.into_inner()).names
}

/// What a receive loop shares with the other.
struct Receive<'a, F> {
    plan: &'a Plan,
    asked: &'a HashSet<IpAddr>,
    found: &'a Mutex<Found>,
    answer: &'a F,
}

impl<F> Receive<'_, F>
where
    F: Fn(SocketAddr, &[u8]) -> Option<(IpAddr, String)> + Sync,
{
    /// Reads the replies arriving on `socket` until every address of its
    /// family has a name.
    async fn run(&self, socket: Option<&FamilySocket>) {
        let Some(FamilySocket {
            socket,
            family,
            asked,
        }) = socket
        else {
            return;
        };
        let mut buf = vec![0u8; self.plan.max_reply];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    // e.g. an ICMP error reported on the socket (Windows):
                    // not a reply.
                    tracing::debug!(error = %e, "{} receive failed", self.plan.what);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            if self.plan.reply_port.is_some_and(|p| p != from.port()) {
                continue;
            }
            let Some((addr, name)) = (self.answer)(from, &buf[..n]) else {
                tracing::debug!(%from, "{} reply without a usable name", self.plan.what);
                continue;
            };
            let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
            if !self.asked.contains(&addr) || found.names.contains_key(&addr) {
                continue;
            }
            found.names.insert(addr, name);
            found.per_family[family_of(addr)] += 1;
            if found.per_family[*family] >= *asked {
                return;
            }
        }
    }
}

/// A socket for the questions of one family (IPv4 if `v4`); `None` if
/// there are none or no socket opens.
async fn family_socket(plan: &Plan, questions: &[Question], v4: bool) -> Option<FamilySocket> {
    let asked = questions.iter().filter(|q| q.to.is_ipv4() == v4).count();
    if asked == 0 {
        return None;
    }
    let bind: SocketAddr = if v4 {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    match UdpSocket::bind(bind).await {
        Ok(socket) => Some(FamilySocket {
            socket,
            family: family_of(bind.ip()),
            asked,
        }),
        Err(e) => {
            tracing::warn!(error = %e, %bind, "cannot open a UDP socket: addresses get no {} names", plan.what);
            None
        }
    }
}

/// [`Found::per_family`]'s index for `addr`.
fn family_of(addr: IpAddr) -> usize {
    usize::from(addr.is_ipv6())
}
