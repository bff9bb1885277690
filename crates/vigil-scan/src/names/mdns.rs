//! Reverse lookup by multicast DNS, asked of the device itself: a
//! one-shot query (RFC 6762 §5.1) for `<reversed address>.in-addr.arpa`
//! (or `ip6.arpa`) PTR, sent by unicast to the address's port 5353 from
//! an ephemeral port. A responder answers such a "legacy unicast" query
//! by unicast, to the asking port, repeating the query id and question
//! (§6.7): avahi, Apple devices, printers and many IoT devices do, for
//! queries from their own link (§5.5: a responder ignores unicast queries
//! from addresses off its link).
//!
//! The DNS codec is hickory-proto's. A reply counts only if it comes
//! from port 5353, carries the id of one of the queries, is a response
//! without error, and holds a PTR record for exactly the name that query
//! asked, in class IN (the top, cache-flush bit ignored, §10.2); its name
//! is cleaned like every name from the network. Its source address is
//! not checked (see [`answer`]).

use super::exchange::{self, Plan, Question};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use vigil_core::compliance::clean_host_name;

/// The mDNS port, where responders listen.
pub const MDNS_PORT: u16 = 5353;
/// Pause between queries (about 1,000 a second: the timer's resolution).
const PACE: Duration = Duration::from_millis(1);
/// The largest reply read (RFC 6762 §17 allows 9,000 bytes; an answer to
/// one reverse query is a few hundred). Longer ones are cut and dropped.
const MAX_REPLY: usize = 4096;

/// The mDNS host name of each address whose responder answered a reverse
/// query, awaited `wait` after the last query. IPv6 link-local addresses
/// are skipped (an `IpAddr` has no interface to send them on).
pub async fn mdns_reverse(addrs: &[IpAddr], wait: Duration) -> HashMap<IpAddr, String> {
    let targets = super::unique(addrs.iter().copied().filter(|a| !is_v6_link_local(*a)));
    if targets.is_empty() {
        return HashMap::new();
    }
    // One query id per address: its index, from a random base.
    let base: u16 = rand::random();
    let asked: Vec<Name> = targets.iter().map(|a| Name::from(*a)).collect();
    let mut questions = Vec::with_capacity(targets.len());
    for (i, addr) in targets.iter().enumerate() {
        match query(base.wrapping_add(i as u16), &asked[i]) {
            Ok(payload) => questions.push(Question {
                to: SocketAddr::new(*addr, MDNS_PORT),
                payload,
            }),
            Err(e) => tracing::debug!(%addr, error = %e, "mDNS query not built"),
        }
    }
    let plan = Plan {
        what: "mDNS",
        pace: PACE,
        wait,
        max_reply: MAX_REPLY,
        reply_port: Some(MDNS_PORT),
    };
    exchange::ask(&plan, &questions, |_from, reply| {
        answer(reply, base, &targets, &asked)
    })
    .await
}

/// The asked address `reply` answers and the name it gives: the query
/// id says which address was asked (its index from `base`; with more
/// than 65,536 addresses several share an id, and the question tells
/// them apart), [`host_name`] the name.
///
/// The source address is not checked: a responder answers from its
/// interface's main address, which need not be the one asked (avahi
/// answers from the address it joined the mDNS group with).
fn answer(reply: &[u8], base: u16, targets: &[IpAddr], asked: &[Name]) -> Option<(IpAddr, String)> {
    let msg = Message::from_vec(reply).ok()?;
    let first = usize::from(msg.id().wrapping_sub(base));
    (first..targets.len())
        .step_by(1 << 16)
        .find_map(|i| Some((targets[i], host_name(&msg, &asked[i])?)))
}

/// A one-shot query: id `id`, no recursion, one question, `name` PTR IN.
fn query(id: u16, name: &Name) -> Result<Vec<u8>, hickory_proto::error::ProtoError> {
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(false)
        .add_query(Query::query(name.clone(), RecordType::PTR));
    msg.to_vec()
}

/// The cleaned host name `msg` gives `asked`, if it is a response
/// without error holding a PTR record for exactly `asked`, class IN (the
/// top, cache-flush bit ignored).
fn host_name(msg: &Message, asked: &Name) -> Option<String> {
    if msg.message_type() != MessageType::Response || msg.response_code() != ResponseCode::NoError {
        return None;
    }
    msg.answers()
        .iter()
        .filter(|r| {
            r.record_type() == RecordType::PTR
                && r.name() == asked
                && u16::from(r.dns_class()) & 0x7fff == u16::from(DNSClass::IN)
        })
        .find_map(|r| match r.data() {
            Some(RData::PTR(target)) => clean_host_name(&target.0.to_utf8()),
            _ => None,
        })
}

fn is_v6_link_local(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, PTR};
    use hickory_proto::rr::Record;

    fn asked() -> Name {
        Name::from(IpAddr::from([192, 0, 2, 7]))
    }

    /// A response to query `id` with `answers` (owner, class, target).
    fn response(id: u16, answers: &[(&Name, u16, &str)]) -> Vec<u8> {
        let answers: Vec<(&Name, u16, Name)> = answers
            .iter()
            .map(|(owner, class, target)| (*owner, *class, Name::from_ascii(target).unwrap()))
            .collect();
        response_to(id, &answers)
    }

    fn response_to(id: u16, answers: &[(&Name, u16, Name)]) -> Vec<u8> {
        let mut msg = Message::new();
        msg.set_id(id)
            .set_message_type(MessageType::Response)
            .set_authoritative(true)
            .add_query(Query::query(asked(), RecordType::PTR));
        for (owner, class, target) in answers {
            let mut r = Record::from_rdata((*owner).clone(), 10, RData::PTR(PTR(target.clone())));
            r.set_dns_class(DNSClass::from(*class));
            msg.add_answer(r);
        }
        msg.to_vec().unwrap()
    }

    #[test]
    fn the_reverse_name_is_asked_as_ptr_in() {
        assert_eq!(asked().to_ascii(), "7.2.0.192.in-addr.arpa.");
        let v6 = Name::from("2001:db8::1".parse::<IpAddr>().unwrap()).to_ascii();
        assert!(v6.starts_with("1.0.0.0.") && v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa."));
        let bytes = query(0x1234, &asked()).unwrap();
        let msg = Message::from_vec(&bytes).unwrap();
        assert_eq!(msg.id(), 0x1234);
        assert!(!msg.recursion_desired());
        assert_eq!(msg.queries().len(), 1);
        let q = &msg.queries()[0];
        assert_eq!(
            (q.name(), q.query_type(), q.query_class()),
            (&asked(), RecordType::PTR, DNSClass::IN)
        );
    }

    #[test]
    fn only_ptr_answers_to_the_question_count() {
        let asked = asked();
        let other = Name::from(IpAddr::from([192, 0, 2, 8]));
        let cases: [(&str, Vec<u8>, Option<&str>); 8] = [
            (
                "answer",
                response(7, &[(&asked, 1, "printer.local.")]),
                Some("printer.local"),
            ),
            (
                "cache-flush bit",
                response(7, &[(&asked, 0x8001, "printer.local.")]),
                Some("printer.local"),
            ),
            (
                "another id",
                response(8, &[(&asked, 1, "printer.local.")]),
                None,
            ),
            (
                "another name's PTR",
                response(7, &[(&other, 1, "evil.local.")]),
                None,
            ),
            (
                "class CH",
                response(7, &[(&asked, 3, "printer.local.")]),
                None,
            ),
            (
                "unusable name, then a good one",
                response_to(
                    7,
                    &[
                        (
                            &asked,
                            1,
                            Name::from_labels([&b"bad name"[..], b"local"]).unwrap(),
                        ),
                        (&asked, 1, Name::from_ascii("good.local.").unwrap()),
                    ],
                ),
                Some("good.local"),
            ),
            ("no answers", response(7, &[]), None),
            ("garbage", vec![0, 7, 0x84, 0, 0, 1, 0xff], None),
        ];
        let targets = [IpAddr::from([192, 0, 2, 7])];
        for (what, reply, want) in cases {
            let got = answer(&reply, 7, &targets, std::slice::from_ref(&asked));
            assert_eq!(got, want.map(|n| (targets[0], n.to_string())), "{what}");
        }
        // A query is not an answer, even with the id and a record.
        let mut q = Message::from_vec(&response(7, &[(&asked, 1, "x.local.")])).unwrap();
        q.set_message_type(MessageType::Query);
        assert_eq!(host_name(&q, &asked), None);
        // An A record for the name is not a PTR.
        let mut a = Message::new();
        a.set_id(7).set_message_type(MessageType::Response);
        a.add_answer(Record::from_rdata(
            asked.clone(),
            10,
            RData::A(A::new(192, 0, 2, 7)),
        ));
        assert_eq!(host_name(&a, &asked), None);
    }

    #[test]
    fn the_id_and_the_question_say_which_address_is_answered() {
        // More addresses than ids: 1 and 65,537 share id `base + 1`.
        let targets: Vec<IpAddr> = (0..65_538u32)
            .map(|i| IpAddr::from((0xc612_0000u32 + i).to_be_bytes()))
            .collect();
        let asked: Vec<Name> = targets.iter().map(|a| Name::from(*a)).collect();
        let base: u16 = 0xfff0;
        let id = base.wrapping_add(1);
        for i in [1, 65_537] {
            let reply = response_to(id, &[(&asked[i], 1, Name::from_ascii("x.local.").unwrap())]);
            assert_eq!(
                answer(&reply, base, &targets, &asked),
                Some((targets[i], "x.local".to_string()))
            );
        }
        // The right name under the wrong id: not an answer.
        let reply = response_to(id, &[(&asked[2], 1, Name::from_ascii("x.local.").unwrap())]);
        assert_eq!(answer(&reply, base, &targets, &asked), None);
    }

    #[test]
    fn link_local_v6_is_skipped() {
        for (addr, skip) in [
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", false),
            ("2001:db8::1", false),
            ("169.254.1.1", false),
        ] {
            assert_eq!(is_v6_link_local(addr.parse().unwrap()), skip, "{addr}");
        }
    }
}
