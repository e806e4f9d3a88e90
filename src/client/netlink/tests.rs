//! Netlink messages built by hand from the struct layouts.

use super::*;

fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(data);
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

fn msg(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&7u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // port
    m.extend_from_slice(body);
    m
}

/// `ifaddrmsg` for AF_INET /24 on interface 3, then attributes.
fn ifaddr(family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![family, 24, 0, 0];
    b.extend_from_slice(&3u32.to_ne_bytes());
    for a in attrs {
        b.extend_from_slice(a);
    }
    b
}

/// `rtmsg` with `dst_len` and `table`, then attributes.
fn rtmsg(dst_len: u8, table: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![AF_INET, dst_len, 0, 0, table, 4, 0, 1];
    b.extend_from_slice(&0u32.to_ne_bytes());
    for a in attrs {
        b.extend_from_slice(a);
    }
    b
}

#[test]
fn address_added_and_removed() {
    let a = [10, 9, 0, 2];
    let mut buf = msg(
        RTM_NEWADDR,
        &ifaddr(
            AF_INET,
            &[
                attr(IFA_ADDRESS, &a),
                attr(IFA_LOCAL, &a),
                attr(3, b"eth0\0"),
            ],
        ),
    );
    buf.extend(msg(
        RTM_DELADDR,
        &ifaddr(AF_INET, &[attr(IFA_LOCAL, &[10, 9, 0, 3])]),
    ));
    assert_eq!(
        parse(&buf),
        [
            NetChange::AddrAdded(IpAddr::from([10, 9, 0, 2])),
            NetChange::AddrRemoved(IpAddr::from([10, 9, 0, 3])),
        ]
    );
}

#[test]
fn point_to_point_prefers_the_local_address() {
    let buf = msg(
        RTM_NEWADDR,
        &ifaddr(
            AF_INET,
            &[
                attr(IFA_ADDRESS, &[10, 0, 0, 1]),
                attr(IFA_LOCAL, &[10, 0, 0, 2]),
            ],
        ),
    );
    assert_eq!(
        parse(&buf),
        [NetChange::AddrAdded(IpAddr::from([10, 0, 0, 2]))]
    );
}

#[test]
fn ipv6_address() {
    let v6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    let buf = msg(
        RTM_DELADDR,
        &ifaddr(AF_INET6, &[attr(IFA_ADDRESS, &v6.octets())]),
    );
    assert_eq!(parse(&buf), [NetChange::AddrRemoved(IpAddr::V6(v6))]);
}

#[test]
fn default_routes_only_of_the_main_table() {
    let gw = [10, 9, 0, 1];
    let mut buf = msg(
        RTM_NEWROUTE,
        &rtmsg(
            0,
            254,
            &[attr(RTA_GATEWAY, &gw), attr(4, &2u32.to_ne_bytes())],
        ),
    );
    // Not default: a /24.
    buf.extend(msg(
        RTM_NEWROUTE,
        &rtmsg(24, 254, &[attr(RTA_DST, &[10, 9, 0, 0])]),
    ));
    // The local table.
    buf.extend(msg(RTM_NEWROUTE, &rtmsg(0, 255, &[])));
    // The table in an attribute (tables above 255).
    buf.extend(msg(
        RTM_DELROUTE,
        &rtmsg(0, 252, &[attr(RTA_TABLE, &RT_TABLE_MAIN.to_ne_bytes())]),
    ));
    buf.extend(msg(
        RTM_DELROUTE,
        &rtmsg(0, 254, &[attr(RTA_TABLE, &1000u32.to_ne_bytes())]),
    ));
    assert_eq!(
        parse(&buf),
        [
            NetChange::DefaultRoute {
                added: true,
                gateway: Some(IpAddr::from(gw))
            },
            NetChange::DefaultRoute {
                added: false,
                gateway: None
            },
        ]
    );
}

#[test]
fn other_messages_are_skipped() {
    // RTM_NEWLINK (16) and NLMSG_DONE (3) between two address messages.
    let mut buf = msg(16, &[0; 16]);
    buf.extend(msg(3, &0u32.to_ne_bytes()));
    buf.extend(msg(
        RTM_NEWADDR,
        &ifaddr(AF_INET, &[attr(IFA_LOCAL, &[1, 2, 3, 4])]),
    ));
    assert_eq!(
        parse(&buf),
        [NetChange::AddrAdded(IpAddr::from([1, 2, 3, 4]))]
    );
}

#[test]
fn malformed_input_never_panics() {
    let good = msg(
        RTM_NEWADDR,
        &ifaddr(AF_INET, &[attr(IFA_LOCAL, &[1, 2, 3, 4])]),
    );
    // Every truncation, and every length field overwritten.
    for cut in 0..good.len() {
        let _ = parse(&good[..cut]);
    }
    for v in [0u32, 1, 15, 16, 17, 1_000, u32::MAX] {
        let mut bad = good.clone();
        bad[..4].copy_from_slice(&v.to_ne_bytes());
        let _ = parse(&bad);
    }
    // An attribute whose length is below its header, or past the end.
    for l in [0u16, 1, 3, 200, u16::MAX] {
        let mut bad = good.clone();
        bad[24..26].copy_from_slice(&l.to_ne_bytes());
        assert_eq!(parse(&bad), [], "attr len {l}");
    }
    // Wrong address sizes give nothing.
    let short = msg(
        RTM_NEWADDR,
        &ifaddr(AF_INET, &[attr(IFA_LOCAL, &[1, 2, 3])]),
    );
    assert_eq!(parse(&short), []);
    let mut rng = 12345u64;
    for _ in 0..2_000 {
        let len = (rng % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 56) as u8
            })
            .collect();
        let _ = parse(&bytes);
    }
}

#[test]
fn gateway_from_proc_net_route() {
    let text =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                eth0\t0009000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                eth0\t00000000\t0100090A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
    let expected = if cfg!(target_endian = "little") {
        IpAddr::from([10, 9, 0, 1])
    } else {
        IpAddr::from([1, 0, 9, 10])
    };
    assert_eq!(default_gateway(text), Some(expected));
    assert_eq!(default_gateway("Iface\tDestination\n"), None);
    assert_eq!(default_gateway(""), None);
}
