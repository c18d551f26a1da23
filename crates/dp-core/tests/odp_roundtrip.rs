//! Round-trip properties of the ODP text: for random megaflows and random
//! action lists, `format(parse(format(x))) == format(x)`, and a megaflow
//! survives text → FlowKey → text.

use dp_core::action::{Action, Ct, HashAlg, Nat, NatAddrs, NatKind, Userdata, Userspace};
use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use dp_core::odp::attr::{EthKey, Ipv4Key, KeyAttr, PortsKey};
use dp_core::odp::{actions, flow, key};
use proptest::prelude::*;

fn mask_u8() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), Just(0xff), any::<u8>()]
}
fn mask_u16() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), Just(0xffff), any::<u16>()]
}
fn mask_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()]
}
fn mask_bytes<const N: usize>() -> impl Strategy<Value = [u8; N]> {
    prop_oneof![Just([0u8; N]), Just([0xffu8; N]), any::<[u8; N]>()]
}

prop_compose! {
    fn megaflow()(
        dl_type in prop::sample::select(vec![ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_ARP, ETH_TYPE_MPLS, 0x1234]),
        nw_proto in prop::sample::select(vec![IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMP, IPPROTO_ICMPV6, 47]),
        frag in prop::sample::select(vec![0u8, FLOW_NW_FRAG_ANY, FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER]),
        vlan in prop::option::of(0u16..0x1000),
        tunnel in any::<bool>(),
        k in any::<([u8; 6], [u8; 6], [u8; 4], [u8; 4], [u8; 16], [u8; 16], u8, u8, u16, u16)>(),
        meta in any::<(u32, u32, u32, u32, u8, u16, u32, u64, [u8; 4])>(),
        label in 0u32..0x100000,
        mpls in any::<[u32; 3]>(),
        mpls_labels in 1usize..=3,
        tcp_flags in 0u16..0x1000,
        m1 in (mask_bytes::<6>(), mask_bytes::<6>(), mask_bytes::<4>(), mask_bytes::<4>(), mask_bytes::<16>(), mask_bytes::<16>()),
        m2 in (mask_u8(), mask_u8(), mask_u16(), mask_u16(), Just(()), mask_u32(), mask_u16(), mask_u8(), any::<bool>(), mask_u32(), 0u16..0x1000),
        m3 in (mask_u32(), mask_u32(), mask_u16(), 0u32..0x100000, any::<[u32; 3]>(), mask_u8()),
    ) -> (FlowKey, FlowKey) {
        let mut f = FlowKey::ZERO;
        let mut m = FlowKey::ZERO;
        f.dl_dst = k.0; f.dl_src = k.1;
        f.dl_type = dl_type;
        if let Some(tci) = vlan {
            f.vlans[0] = VlanHeader { tpid: ETH_TYPE_VLAN_8021Q, tci: tci | VLAN_CFI };
            m.vlans[0] = VlanHeader { tpid: 0xffff, tci: m2.6 | VLAN_CFI };
        }
        (f.recirc_id, f.dp_hash, f.skb_priority, f.pkt_mark, f.ct_state, f.ct_zone, f.ct_mark) =
            (meta.0, meta.1, meta.2, meta.3, meta.4, meta.5, meta.6);
        f.in_port = meta.2 % 100;
        if tunnel {
            f.tun_id = meta.7;
            f.tun_ipv4_dst = meta.8;
            f.tun_ipv4_dst[0] |= 1;
            f.tun_ttl = k.6;
            f.tun_flags = 8 | 4;
            m.tun_id = u64::MAX;
            m.tun_ipv4_dst = [0xff; 4];
            m.tun_ttl = 0xff;
            m.tun_flags = 0xf;
        }
        match dl_type {
            ETH_TYPE_IPV4 | ETH_TYPE_IPV6 => {
                f.nw_proto = nw_proto;
                f.nw_frag = frag;
                f.nw_tos = k.6; f.nw_ttl = k.7;
                f.tp_src = k.8; f.tp_dst = k.9;
                if matches!(nw_proto, IPPROTO_ICMP | IPPROTO_ICMPV6) {
                    f.tp_src &= 0xff; f.tp_dst &= 0xff;
                }
                if nw_proto == IPPROTO_TCP { f.tcp_flags = tcp_flags; }
                if dl_type == ETH_TYPE_IPV4 {
                    f.nw_src = k.2; f.nw_dst = k.3;
                } else {
                    f.ipv6_src = k.4; f.ipv6_dst = k.5; f.ipv6_label = label;
                }
            }
            ETH_TYPE_ARP => { f.nw_src = k.2; f.nw_dst = k.3; f.nw_proto = k.6; f.arp_sha = k.0; f.arp_tha = k.1; }
            ETH_TYPE_MPLS => {
                // A well-formed stack: bottom-of-stack set on the last
                // label only, nothing after it (what extraction produces).
                for (i, (lse, raw)) in f.mpls_lse.iter_mut().zip(mpls).enumerate().take(mpls_labels) {
                    let bos = if i + 1 == mpls_labels { 0x100 } else { 0 };
                    *lse = (raw & !0x100) | bos;
                }
            }
            _ => {}
        }
        (m.dl_dst, m.dl_src, m.nw_src, m.nw_dst, m.ipv6_src, m.ipv6_dst) = m1;
        m.arp_sha = m1.0; m.arp_tha = m1.1;
        (m.nw_tos, m.nw_ttl, m.tp_src, m.tp_dst) = (m2.0, m2.1, m2.2, m2.3);
        // The datapath always matches recirc_id exactly (OVS parses it so).
        m.recirc_id = u32::MAX;
        m.dp_hash = m2.5;
        m.nw_proto = m2.7;
        m.nw_frag = if m2.8 { FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER } else { 0 };
        m.in_port = m2.9;
        m.tcp_flags = m2.10;
        (m.skb_priority, m.pkt_mark, m.ct_zone, m.ipv6_label, m.mpls_lse, m.ct_state) = m3;
        // Megaflows always match the BOS bits (OVS flow_count_mpls_labels
        // un-wildcards them): the label count must survive masking.
        for lse in &mut m.mpls_lse {
            *lse |= 0x100;
        }
        m.dl_type = 0xffff;
        m.packet_type = u32::MAX;
        (f.masked(&m), m)
    }
}

fn leaf_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        any::<u32>().prop_map(Action::Output),
        any::<u32>().prop_map(Action::Trunc),
        any::<u32>().prop_map(Action::Recirc),
        any::<u32>().prop_map(Action::Meter),
        any::<u32>().prop_map(Action::TnlPop),
        any::<u32>().prop_map(Action::LbOutput),
        Just(Action::PopVlan),
        Just(Action::CtClear),
        (any::<bool>(), 0u16..0x1000, 0u16..8).prop_map(|(ad, vid, pcp)| Action::PushVlan {
            tpid: if ad { 0x88a8 } else { 0x8100 },
            tci: vid | (pcp << 13) | 0x1000,
        }),
        (any::<bool>(), any::<u32>()).prop_map(|(sym, basis)| Action::Hash {
            alg: if sym { HashAlg::SymL4 } else { HashAlg::L4 },
            basis
        }),
        (any::<[u8; 6]>(), any::<[u8; 6]>())
            .prop_map(|(src, dst)| Action::Set(KeyAttr::Ethernet(EthKey { src, dst }))),
        (any::<u16>(), any::<u16>(), 1u16..).prop_map(|(src, dst, m)| Action::SetMasked {
            key: KeyAttr::Tcp(PortsKey { src: src & m, dst }),
            mask: KeyAttr::Tcp(PortsKey {
                src: m.min(0xfffe),
                dst: 0xffff
            }),
        }),
        (any::<[u8; 4]>(), any::<u8>()).prop_map(|(dst, ttl)| Action::SetMasked {
            key: KeyAttr::Ipv4(Ipv4Key {
                dst,
                ttl,
                ..Default::default()
            }),
            mask: KeyAttr::Ipv4(Ipv4Key {
                dst: [0xff; 4],
                ttl: 0xff,
                ..Default::default()
            }),
        }),
        (
            any::<u32>(),
            prop::option::of(any::<u32>()),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(pid, tun, act, data)| Action::Userspace(Userspace {
                pid,
                userdata: Some(Userdata::Opaque(data)),
                include_actions: act,
                tunnel_out_port: tun,
            })),
        (
            any::<bool>(),
            any::<u16>(),
            any::<[u8; 4]>(),
            prop::option::of(1u16..)
        )
            .prop_map(|(commit, zone, ip, port)| Action::Ct(Ct {
                commit,
                zone,
                nat: Some(Nat {
                    kind: Some(NatKind::Src),
                    addrs: Some(NatAddrs::V4 { min: ip, max: None }),
                    ports: port.map(|p| (p, None)),
                    ..Default::default()
                }),
                ..Default::default()
            })),
    ]
}

fn action_list() -> impl Strategy<Value = Vec<Action>> {
    let leaf = prop::collection::vec(leaf_action(), 0..4);
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop::collection::vec(
            prop_oneof![
                leaf_action(),
                inner.clone().prop_map(Action::Clone),
                (any::<u32>(), inner.clone()).prop_map(|(probability, actions)| Action::Sample {
                    probability,
                    actions
                }),
                (any::<u16>(), inner.clone(), inner)
                    .prop_map(|(pkt_len, gt, le)| Action::CheckPktLen { pkt_len, gt, le }),
            ],
            0..4,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn masked_key_text_is_a_fixed_point((f, m) in megaflow()) {
        let (k, mk) = flow::flow_to_masked_key(&f, &m);
        for verbose in [false, true] {
            let text = key::format_masked(&k, Some(&mk), None, verbose);
            let back = key::parse_masked(&text, None).unwrap_or_else(|e| panic!("{text}: {e}"));
            prop_assert_eq!(key::format_masked(&back.key, Some(&back.mask), None, verbose), text);
        }
    }

    #[test]
    fn exact_key_survives_flow_round_trip((f, _m) in megaflow()) {
        let text = key::format(&flow::flow_to_key(&f), None);
        let attrs = key::parse(&text, None).unwrap_or_else(|e| panic!("{text}: {e}"));
        let (f2, _fit) = flow::key_to_flow(&attrs).unwrap();
        prop_assert_eq!(key::format(&flow::flow_to_key(&f2), None), text);
    }

    #[test]
    fn megaflow_survives_text((f, m) in megaflow()) {
        let (k, mk) = flow::flow_to_masked_key(&f, &m);
        let text = key::format_masked(&k, Some(&mk), None, false);
        let back = key::parse_masked(&text, None).unwrap();
        let (f2, m2) = flow::masked_key_to_flow(&back.key, &back.mask).unwrap();
        let (k2, mk2) = flow::flow_to_masked_key(&f2, &m2);
        prop_assert_eq!(key::format_masked(&k2, Some(&mk2), None, false), text);
    }

    #[test]
    fn action_text_is_a_fixed_point(acts in action_list()) {
        let text = actions::format(&acts, None);
        let back = actions::parse(&text, None).unwrap_or_else(|e| panic!("{text}: {e}"));
        prop_assert_eq!(actions::format(&back, None), text);
    }

    #[test]
    fn parsers_never_panic(s in "[a-z_0-9(),=./:x+|-]{0,80}") {
        let _ = key::parse_masked(&s, None);
        let _ = actions::parse(&s, None);
        let _ = dp_core::odp::normalize_key(&s);
    }
}

/// The fuzz seeds (deep nesting, 64 KiB userdata, ...) parse or fail
/// cleanly and quickly.
#[test]
fn fuzz_seeds_are_handled() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/odp_parse");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let start = std::time::Instant::now();
        let acts = actions::parse(&text, None);
        let _ = key::parse_masked(&text, None);
        let _ = dp_core::odp::normalize_key(&text);
        assert!(start.elapsed().as_secs() < 2, "{} is slow", path.display());
        if let Ok(acts) = acts {
            let printed = actions::format(&acts, None);
            assert_eq!(printed, text, "{}", path.display());
        }
        n += 1;
    }
    assert!(n >= 10);
    let deep = std::fs::read_to_string(format!("{dir}/deep-clone-30")).unwrap();
    assert!(actions::parse(&deep, None).is_ok());
    let big = std::fs::read_to_string(format!("{dir}/userdata-64k")).unwrap();
    let Action::Userspace(u) = &actions::parse(&big, None).unwrap()[0] else {
        panic!()
    };
    assert!(matches!(&u.userdata, Some(Userdata::Opaque(d)) if d.len() == 32768));
}
