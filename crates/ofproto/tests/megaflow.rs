//! Megaflow soundness: for random rule sets and random packets, every
//! packet that matches the produced (key, mask) translates to the same
//! datapath actions as the original packet. Plus the classifier against a
//! linear reference.

mod common;

use common::blend;
use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use ofproto::classifier::Classifier;
use ofproto::odp_actions::format_odp_actions;
use ofproto::{Match, OfFlow, Ofproto, PortConfig, VlanMode};
use proptest::prelude::*;
use proptest::sample::select;

const MACS: [&str; 4] = [
    "00:00:00:00:00:01",
    "00:00:00:00:00:02",
    "00:00:00:00:01:01",
    "ff:ff:ff:ff:ff:ff",
];
const IPS: [&str; 6] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.1.1",
    "10.1.0.1",
    "192.168.0.1",
    "172.16.0.1",
];
const IP6S: [&str; 3] = ["2001:db8::1", "2001:db8::2", "2001:db8:1::1"];

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![2 => Just(None), 1 => s.prop_map(Some)].boxed()
}

fn mac_match(name: &'static str) -> BoxedStrategy<Option<String>> {
    opt((
        select(&MACS[..]),
        select(vec!["", "/ff:ff:ff:ff:ff:00", "/01:00:00:00:00:00"]),
    )
        .prop_map(move |(m, k)| format!("{name}={m}{k}")))
}

fn ip_match(name: &'static str) -> BoxedStrategy<Option<String>> {
    opt((
        select(&IPS[..]),
        select(vec![
            "",
            "/8",
            "/16",
            "/23",
            "/24",
            "/30",
            "/31",
            "/255.0.255.0",
        ]),
    )
        .prop_map(move |(a, p)| format!("{name}={a}{p}")))
}

fn ip6_match(name: &'static str) -> BoxedStrategy<Option<String>> {
    opt((
        select(&IP6S[..]),
        select(vec!["", "/32", "/48", "/64", "/127"]),
    )
        .prop_map(move |(a, p)| format!("{name}={a}{p}")))
}

fn port_match(name: &'static str) -> BoxedStrategy<Option<String>> {
    opt((
        select(vec![0u16, 1, 22, 80, 443]),
        select(vec!["", "/0xfff0", "/0x1"]),
    )
        .prop_map(move |(v, m)| format!("{name}={v}{m}")))
}

fn match_text(table: u8) -> BoxedStrategy<String> {
    let proto = select(vec!["", "ip", "tcp", "udp", "icmp", "arp", "ipv6", "tcp6"]);
    let common = (
        opt(1u16..=4).prop_map(|p| p.map(|p| format!("in_port={p}"))),
        mac_match("dl_src"),
        mac_match("dl_dst"),
        opt(select(vec![
            "dl_vlan=1",
            "dl_vlan=2",
            "dl_vlan=0xffff",
            "dl_vlan_pcp=3",
            "vlan_tci=0x1000/0x1000",
        ]))
        .prop_map(|v| v.map(str::to_string)),
        opt(0u32..3).prop_map(move |r| r.filter(|_| table > 0).map(|r| format!("reg0={r}"))),
    );
    let l3 = (
        ip_match("nw_src"),
        ip_match("nw_dst"),
        opt(select(vec![
            "nw_ttl=1",
            "nw_ttl=64",
            "nw_tos=4",
            "ip_frag=no",
            "ip_frag=later",
            "ip_frag=not_later",
        ]))
        .prop_map(|v| v.map(str::to_string)),
        ip6_match("ipv6_src"),
        ip6_match("ipv6_dst"),
        port_match("tp_src"),
        port_match("tp_dst"),
        opt(select(vec![
            "tcp_flags=+syn",
            "tcp_flags=-syn+ack",
            "tcp_flags=0x12",
        ]))
        .prop_map(|v| v.map(str::to_string)),
        opt(select(vec!["icmp_type=8", "icmp_code=0", "arp_op=1"]))
            .prop_map(|v| v.map(str::to_string)),
    );
    (proto, common, l3)
        .prop_map(|(proto, c, l)| {
            let mut parts: Vec<String> = Vec::new();
            if !proto.is_empty() {
                parts.push(proto.to_string());
            }
            parts.extend([c.0, c.1, c.2, c.3, c.4].into_iter().flatten());
            let ip4 = matches!(proto, "ip" | "tcp" | "udp" | "icmp");
            let v6 = matches!(proto, "ipv6" | "tcp6");
            let arp = proto == "arp";
            if ip4 || arp {
                let rename = |s: String| {
                    if arp {
                        s.replace("nw_src", "arp_spa").replace("nw_dst", "arp_tpa")
                    } else {
                        s
                    }
                };
                parts.extend([l.0, l.1].into_iter().flatten().map(rename));
            }
            if ip4 || v6 {
                parts.extend(l.2.into_iter().filter(|s| !(v6 && s.starts_with("nw_tos"))));
            }
            if v6 {
                parts.extend([l.3, l.4].into_iter().flatten());
            }
            if matches!(proto, "tcp" | "udp" | "tcp6") {
                parts.extend([l.5, l.6].into_iter().flatten());
            }
            if matches!(proto, "tcp" | "tcp6") {
                parts.extend(l.7);
            }
            match (proto, l.8.as_deref()) {
                ("icmp", Some(s @ ("icmp_type=8" | "icmp_code=0"))) => parts.push(s.to_string()),
                ("arp", Some("arp_op=1")) => parts.push("arp_op=1".into()),
                _ => {}
            }
            parts.join(",")
        })
        .boxed()
}

fn action(table: u8) -> BoxedStrategy<String> {
    let next = if table < 2 { table + 1 } else { table };
    let mut v: Vec<String> = vec![
        "output:1",
        "output:2",
        "output:3",
        "output:4",
        "NORMAL",
        "FLOOD",
        "ALL",
        "in_port",
        "controller",
        "mod_vlan_vid:1",
        "mod_vlan_vid:3",
        "strip_vlan",
        "push_vlan:0x8100",
        "mod_vlan_pcp:5",
        "mod_dl_src:00:00:00:00:00:02",
        "mod_dl_dst:00:00:00:00:00:01",
        "mod_nw_dst:10.0.0.2",
        "mod_nw_src:10.0.1.1",
        "mod_nw_tos:4",
        "mod_tp_dst:80",
        "dec_ttl",
        "load:0x1->NXM_NX_REG0[]",
        "load:0x2->NXM_NX_REG0[]",
        "set_field:0x1->reg0",
        "move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]",
        "move:NXM_OF_ETH_SRC[0..1]->NXM_NX_REG0[0..1]",
        "move:NXM_OF_TCP_SRC[0..1]->NXM_NX_REG0[0..1]",
        "move:NXM_OF_IP_DST[0..3]->NXM_OF_IP_SRC[0..3]",
        "meter:1",
        "set_tunnel:0x5",
        "output:10",
        "LOCAL",
        "mod_tp_dst:4789",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    if table < 2 {
        v.push(format!("resubmit(,{next})"));
        v.push(format!("resubmit(2,{next})"));
        v.push(format!("resubmit(,{next})"));
    }
    v.push("resubmit(,0)".into());
    select(v).boxed()
}

fn rule() -> BoxedStrategy<String> {
    (0u8..3)
        .prop_flat_map(|table| {
            (
                Just(table),
                0u16..6,
                match_text(table),
                prop::collection::vec(action(table), 0..4),
            )
        })
        .prop_map(|(table, prio, m, acts)| {
            let acts = if acts.is_empty() {
                "drop".to_string()
            } else {
                acts.join(",")
            };
            let m = if m.is_empty() {
                String::new()
            } else {
                format!("{m},")
            };
            format!("table={table},priority={prio},{m}actions={acts}")
        })
        .boxed()
}

fn mac_bytes(i: usize, low: u8) -> [u8; 6] {
    let s = MACS[i];
    let mut m = [0u8; 6];
    for (j, p) in s.split(':').enumerate() {
        m[j] = u8::from_str_radix(p, 16).unwrap();
    }
    if i != 3 {
        m[5] ^= low & 1;
    }
    m
}

fn ip_bytes(i: usize, low: u8) -> [u8; 4] {
    let mut a: [u8; 4] = IPS[i].parse::<std::net::Ipv4Addr>().unwrap().octets();
    a[3] ^= low;
    a
}

fn packet() -> BoxedStrategy<FlowKey> {
    let l2 = (
        prop_oneof![8 => 11u32..=14, 1 => Just(4789u32), 1 => Just(99u32)],
        (0usize..4, any::<u8>()),
        (0usize..4, any::<u8>()),
        prop_oneof![Just(None), (1u16..4, 0u16..8).prop_map(Some)],
        select(vec![
            ETH_TYPE_IPV4,
            ETH_TYPE_IPV4,
            ETH_TYPE_IPV6,
            ETH_TYPE_ARP,
            0x1234,
        ]),
    );
    let l3 = (
        (0usize..6, select(vec![0u8, 1, 2, 3, 4, 200])),
        (0usize..6, select(vec![0u8, 0, 1, 2, 3, 4, 200])),
        (0usize..3, 0usize..3, any::<u8>()),
        select(vec![IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47]),
        (
            select(vec![0u16, 1, 22, 23, 80, 81, 443]),
            select(vec![0u16, 1, 22, 80, 443, 8, 4789]),
        ),
        (
            select(vec![0u8, 1, 2, 64]),
            any::<u8>(),
            select(vec![0u8, 1, 3]),
            0u16..0x1000,
        ),
    );
    (l2, l3)
        .prop_map(
            |(
                (in_port, src, dst, vlan, dl_type),
                (s4, d4, v6, proto, (sp, dp), (ttl, tos, frag, flags)),
            )| {
                let mut k = FlowKey::ZERO;
                k.in_port = in_port;
                k.dl_src = mac_bytes(src.0, src.1);
                k.dl_dst = mac_bytes(dst.0, dst.1);
                if let Some((vid, pcp)) = vlan {
                    k.vlans[0] = VlanHeader {
                        tpid: ETH_TYPE_VLAN_8021Q,
                        tci: VLAN_CFI | vid | (pcp << 13),
                    };
                }
                k.dl_type = dl_type;
                if in_port == 4789 {
                    k.tun_id = 5;
                    k.tun_ipv4_src = [172, 16, 0, 2];
                    k.tun_ipv4_dst = [172, 16, 0, 1];
                }
                k.nw_src = ip_bytes(s4.0, s4.1);
                k.nw_dst = ip_bytes(d4.0, d4.1);
                let mut a6: [u8; 16] = IP6S[v6.0].parse::<std::net::Ipv6Addr>().unwrap().octets();
                a6[15] ^= v6.2;
                k.ipv6_src = a6;
                k.ipv6_dst = IP6S[v6.1].parse::<std::net::Ipv6Addr>().unwrap().octets();
                k.nw_proto = proto;
                k.tp_src = sp;
                k.tp_dst = dp;
                k.nw_ttl = ttl;
                k.nw_tos = tos;
                k.nw_frag = frag;
                k.tcp_flags = flags;
                normalize(&mut k);
                k
            },
        )
        .boxed()
}

/// Zeroes what extraction would leave zero for this kind of packet.
fn normalize(k: &mut FlowKey) {
    if !k.vlans[0].is_present() {
        k.vlans = [VlanHeader::default(); 2];
    } else {
        k.vlans[0].tpid = ETH_TYPE_VLAN_8021Q;
        k.vlans[1] = VlanHeader::default();
    }
    if k.in_port != 4789 {
        // Only the tunnel's port sees decapsulated packets.
        k.tun_ipv4_dst = [0; 4];
    }
    if k.tun_ipv4_dst == [0; 4] {
        k.tun_id = 0;
        k.tun_ipv4_src = [0; 4];
    }
    let ip4 = k.dl_type == ETH_TYPE_IPV4;
    let ip6 = k.dl_type == ETH_TYPE_IPV6;
    let arp = k.dl_type == ETH_TYPE_ARP;
    if !ip4 && !arp {
        k.nw_src = [0; 4];
        k.nw_dst = [0; 4];
    }
    if !ip6 {
        k.ipv6_src = [0; 16];
        k.ipv6_dst = [0; 16];
    }
    if arp {
        k.nw_proto &= 3;
    }
    if !(ip4 || ip6) {
        if !arp {
            k.nw_proto = 0;
        }
        k.nw_ttl = 0;
        k.nw_tos = 0;
        k.nw_frag = 0;
        k.tp_src = 0;
        k.tp_dst = 0;
        k.tcp_flags = 0;
        return;
    }
    if k.nw_frag & FLOW_NW_FRAG_ANY == 0 {
        k.nw_frag = 0;
    }
    let later = k.nw_frag & FLOW_NW_FRAG_LATER != 0;
    if k.nw_proto != IPPROTO_TCP || later {
        k.tcp_flags = 0;
    }
    match k.nw_proto {
        _ if later => {
            k.tp_src = 0;
            k.tp_dst = 0;
        }
        IPPROTO_TCP | IPPROTO_UDP => {}
        IPPROTO_ICMP if ip4 => {
            k.tp_src &= 0xff;
            k.tp_dst &= 0xff;
        }
        _ => {
            k.tp_src = 0;
            k.tp_dst = 0;
        }
    }
}

fn bridge(rules: &[String]) -> Ofproto {
    let o = Ofproto::new("br0");
    o.add_port(PortConfig::new("p1", 11).with_ofport(1))
        .unwrap();
    o.add_port(
        PortConfig::new("p2", 12)
            .with_ofport(2)
            .with_vlan(VlanMode::Access(1)),
    )
    .unwrap();
    o.add_port(
        PortConfig::new("p3", 13)
            .with_ofport(3)
            .with_vlan(VlanMode::Trunk(vec![1, 2])),
    )
    .unwrap();
    o.add_port(PortConfig::new("p4", 14).with_ofport(4))
        .unwrap();
    o.add_port(PortConfig::new("br0", 100).with_ofport(ofproto::ports::OFPP_LOCAL))
        .unwrap();
    let mut tun = ofproto::TunnelConfig::vxlan([172, 16, 0, 1], [172, 16, 0, 2], 11);
    tun.next_hop_mac = [2, 0, 0, 0, 0, 2];
    o.add_port(
        PortConfig::new("vx0", 4789)
            .with_ofport(10)
            .with_tunnel(tun),
    )
    .unwrap();
    // A catch-all to LOCAL (random rules may replace it) so native tunnel
    // termination gets exercised.
    o.add_flow("table=0,priority=0,actions=LOCAL", 0).unwrap();
    o.add_flows(&rules.join("\n"), 0).unwrap();
    o
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn megaflows_are_sound(
        rules in prop::collection::vec(rule(), 1..14),
        learn in prop::collection::vec(packet(), 0..6),
        pkts in prop::collection::vec(packet(), 1..12),
        others in prop::collection::vec(packet(), 8),
    ) {
        let o = bridge(&rules);
        // Give NORMAL a MAC table to consult; then freeze it.
        for k in &learn {
            o.translate(k, 0);
        }
        for p in &pkts {
            let t = o.translate_readonly(p, 1);
            let want = format_odp_actions(&t.actions);
            prop_assert!(p.matches_masked(&t.mask, &p.masked(&t.mask)));
            for other in &others {
                let mut q = blend(p, &t.mask, other);
                normalize(&mut q);
                if !q.matches_masked(&t.mask, &p.masked(&t.mask)) {
                    // Normalisation left the megaflow: not a packet of it.
                    continue;
                }
                let tq = o.translate_readonly(&q, 1);
                prop_assert_eq!(
                    format_odp_actions(&tq.actions), want.clone(),
                    "\nrules:\n{}\np: {:?}\nq: {:?}\nmask: {:?}\ntrace p:\n{}",
                    rules.join("\n"), p, q, t.mask,
                    o.trace(&dp_core::odp::key::format(&dp_core::odp::flow::flow_to_key(p), None), 1).unwrap_or_default()
                );
            }
        }
    }

    #[test]
    fn classifier_matches_linear_reference(
        rules in prop::collection::vec(rule(), 1..20),
        pkts in prop::collection::vec(packet(), 1..16),
        others in prop::collection::vec(packet(), 4),
    ) {
        // Table-0 view of every rule, distinct priorities by position.
        let mut c = Classifier::new();
        let mut linear: Vec<(Match, u16)> = Vec::new();
        for (i, text) in rules.iter().enumerate() {
            let fm = ofproto::parse_flow_mod(text, ofproto::FlowModCommand::Add, &ofproto::ports::NoNames).unwrap();
            let prio = i as u16;
            c.insert(fm.r#match, prio, prio);
            linear.push((fm.r#match, prio));
        }
        for p in &pkts {
            let mut f = OfFlow::from_key(*p);
            f.key.in_port = p.in_port.saturating_sub(10);
            let mut wc = OfFlow::ZERO;
            let got = c.lookup(&f, &mut wc).map(|e| e.priority);
            let want = linear.iter().filter(|(m, _)| m.matches(&f)).map(|(_, p)| *p).max();
            prop_assert_eq!(got, want);
            for other in &others {
                let mut g = OfFlow::from_key(*other);
                g.key.in_port = other.in_port.saturating_sub(10);
                let q = OfFlow::from_words(&{
                    let (a, m, b) = (f.words(), wc.words(), g.words());
                    std::array::from_fn(|i| (a[i] & m[i]) | (b[i] & !m[i]))
                });
                let want_q = linear.iter().filter(|(m, _)| m.matches(&q)).map(|(_, p)| *p).max();
                prop_assert_eq!(want_q, want, "wildcards not sound: {:?}", wc);
            }
        }
    }
}
