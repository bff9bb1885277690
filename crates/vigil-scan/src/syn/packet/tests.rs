use super::*;

const A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// A minimal IPv4 header (no options) for `proto` from `src` to `dst`.
fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// A TCP answer from `port` to `our_port` acknowledging `ack` with `flags`.
fn segment(port: u16, our_port: u16, ack: u32, flags: u8) -> Vec<u8> {
    let mut s = vec![0u8; 20];
    s[0..2].copy_from_slice(&port.to_be_bytes());
    s[2..4].copy_from_slice(&our_port.to_be_bytes());
    s[8..12].copy_from_slice(&ack.to_be_bytes());
    s[12] = 5 << 4;
    s[13] = flags;
    s
}

#[test]
fn syn_layout_and_checksum() {
    let p = syn(40000, 443, 0xdead_beef, Some((A, B)));
    assert_eq!(&p[0..4], &[0x9c, 0x40, 0x01, 0xbb]);
    assert_eq!(&p[4..8], &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(p[12] >> 4, 6, "data offset covers the MSS option");
    assert_eq!(p[13], SYN);
    assert_eq!(&p[20..24], &[2, 4, 0x05, 0xb4]);
    // A correct checksum sums (with the pseudo-header) to 0xffff, i.e.
    // checksumming the segment with it in place gives 0.
    assert_eq!(checksum_v4(A, B, &p), 0);
    // IPv6: left to the kernel.
    assert_eq!(&syn(40000, 443, 1, None)[16..18], &[0, 0]);
}

#[test]
fn checksum_matches_a_known_segment() {
    // RFC 1071's example words, as a "segment" over a zero pseudo-header
    // part: checked against an independent one's-complement sum.
    let seg = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut sum: u32 = 0x0006 + seg.len() as u32;
    for w in seg.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(checksum_v4(zero, zero, &seg), !(sum as u16));
}

#[test]
fn syn_ack_is_open_and_rst_ack_closed() {
    let pkt = ipv4(6, B, A, &segment(443, 40000, 0x1000_0001, SYN | ACK));
    let (from, tcp) = tcp_of_ipv4(&pkt).expect("tcp");
    let a = tcp_answer(from, tcp).expect("answer");
    assert_eq!(a.target, IpAddr::V4(B));
    assert_eq!((a.port, a.our_port, a.cookie), (443, 40000, 0x1000_0000));
    assert_eq!(a.verdict, Verdict::Open);
    let rst = tcp_answer(from, &segment(22, 40000, 0, RST | ACK)).expect("rst");
    assert_eq!(rst.verdict, Verdict::Closed);
    assert_eq!(rst.cookie, u32::MAX, "ack 0 wraps to cookie 2^32-1");
}

#[test]
fn other_segments_are_not_answers() {
    let from = IpAddr::V4(B);
    for flags in [SYN, ACK, RST, SYN | ACK | FIN, 0] {
        assert_eq!(
            tcp_answer(from, &segment(1, 2, 3, flags)),
            None,
            "{flags:#x}"
        );
    }
    assert_eq!(tcp_answer(from, &segment(1, 2, 3, SYN | ACK)[..13]), None);
    // Not TCP, not IPv4, a header longer than the packet.
    assert_eq!(tcp_of_ipv4(&ipv4(17, B, A, &[0; 8])), None);
    let mut v6 = ipv4(6, B, A, &[]);
    v6[0] = 0x65;
    assert_eq!(tcp_of_ipv4(&v6), None);
    let mut long = ipv4(6, B, A, &[]);
    long[0] = 0x4f;
    assert_eq!(tcp_of_ipv4(&long), None);
}

/// An ICMPv4 unreachable with `code` quoting our probe to `dst`:`port`.
fn icmp4(code: u8, dst: Ipv4Addr, port: u16, cookie: u32) -> Vec<u8> {
    let probe = syn(40000, port, cookie, Some((A, dst)));
    let quoted = ipv4(6, A, dst, &probe[..8]);
    let mut icmp = vec![3, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    ipv4(1, Ipv4Addr::new(198, 51, 100, 254), A, &icmp)
}

#[test]
fn icmp4_unreachables_name_the_quoted_probe() {
    let cases = [
        (0, Verdict::Unreachable("net-unreach")),
        (1, Verdict::Unreachable("host-unreach")),
        (3, Verdict::Filtered("port-unreach")),
        (13, Verdict::Filtered("admin-prohibited")),
        (10, Verdict::Filtered("host-prohibited")),
    ];
    for (code, verdict) in cases {
        let a = icmp4_answer(&icmp4(code, B, 3389, 77)).expect("answer");
        assert_eq!(a.verdict, verdict, "code {code}");
        assert_eq!(
            a.target,
            IpAddr::V4(B),
            "the quoted destination, not the sender"
        );
        assert_eq!((a.port, a.our_port, a.cookie), (3389, 40000, 77));
    }
    assert_eq!(
        icmp4_answer(&icmp4(4, B, 1, 1)),
        None,
        "fragmentation needed"
    );
    let mut echo = icmp4(1, B, 1, 1);
    echo[20] = 0;
    assert_eq!(icmp4_answer(&echo), None, "an echo reply");
    let short = icmp4(1, B, 1, 1);
    assert_eq!(
        icmp4_answer(&short[..short.len() - 1]),
        None,
        "truncated quote"
    );
}

#[test]
fn icmp6_unreachables_name_the_quoted_probe() {
    let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let message = |code: u8| {
        let mut m = vec![1, code, 0, 0, 0, 0, 0, 0];
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 24, 6, 64];
        ip6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&dst.octets());
        m.extend_from_slice(&ip6);
        m.extend_from_slice(&syn(40001, 80, 9, None)[..8]);
        m
    };
    let a = icmp6_answer(&message(3)).expect("answer");
    assert_eq!(a.verdict, Verdict::Unreachable("host-unreach"));
    assert_eq!(
        (a.target, a.port, a.our_port, a.cookie),
        (IpAddr::V6(dst), 80, 40001, 9)
    );
    assert_eq!(
        icmp6_answer(&message(1)).unwrap().verdict,
        Verdict::Filtered("admin-prohibited")
    );
    assert_eq!(
        icmp6_answer(&message(0)).unwrap().verdict,
        Verdict::Unreachable("no-route")
    );
    let mut udp = message(3);
    udp[8 + 6] = 17;
    assert_eq!(icmp6_answer(&udp), None, "not a TCP probe");
    assert_eq!(icmp6_answer(&message(3)[..50]), None, "truncated");
}

#[test]
fn cookies_depend_on_every_part_and_the_key() {
    let c = Cookie::new();
    let t = IpAddr::V4(B);
    let base = c.of(t, 80, 40000);
    assert_eq!(base, c.of(t, 80, 40000));
    assert_ne!(base, c.of(t, 81, 40000));
    assert_ne!(base, c.of(t, 80, 40001));
    assert_ne!(base, c.of(IpAddr::V4(A), 80, 40000));
    assert_ne!(
        base,
        Cookie::new().of(t, 80, 40000),
        "a new scan, a new key"
    );
}
