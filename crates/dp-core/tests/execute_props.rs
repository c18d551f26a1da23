//! Property test: random action lists (nested `clone`/`sample`/
//! `check_pkt_len`, failing and unsupported actions included) on random,
//! possibly truncated or corrupted frames never panic, always empty the
//! batch, and return every buffer to its pool, with sinks that refuse
//! packets and a clone pool small enough to run dry.

mod execute_support;

use dp_core::action::{Action, HashAlg, TnlPush, Userdata, Userspace, vport_type};
use dp_core::execute::{BandConfig, MeterConfig, MeterUnit, TunnelKind};
use dp_core::odp::attr::{EthKey, IcmpKey, Ipv4Key, Ipv6Key, KeyAttr, NdKey, PortsKey};
use execute_support::*;
use proptest::prelude::*;

fn vxlan_header(valid: bool) -> Vec<u8> {
    let mut h = MAC_B.to_vec();
    h.extend_from_slice(&MAC_A);
    h.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    h.extend_from_slice(&[192, 168, 1, 1, 192, 168, 1, 2]);
    h.extend_from_slice(&[0, 0, 0x12, 0xb5, 0, 0, 0xff, 0xff]);
    h.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0x7b, 0]);
    if !valid {
        h.truncate(40);
    }
    h
}

fn leaf() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0u32..4).prop_map(Action::Output),
        (0u32..200).prop_map(Action::Trunc),
        Just(Action::Userspace(Userspace {
            pid: 1,
            userdata: Some(Userdata::Ipfix { output_port: 2 }),
            include_actions: false,
            tunnel_out_port: None,
        })),
        (any::<[u8; 4]>(), any::<u8>()).prop_map(|(dst, ttl)| Action::Set(KeyAttr::Ipv4(
            Ipv4Key {
                dst,
                ttl,
                ..Default::default()
            }
        ))),
        (any::<u16>(), any::<u16>()).prop_map(|(k, m)| Action::SetMasked {
            key: KeyAttr::Udp(PortsKey { src: k, dst: k }),
            mask: KeyAttr::Udp(PortsKey { src: m, dst: 0 }),
        }),
        any::<u16>().prop_map(|p| Action::Set(KeyAttr::Tcp(PortsKey { src: p, dst: p }))),
        any::<u16>().prop_map(|p| Action::Set(KeyAttr::Sctp(PortsKey { src: p, dst: 1 }))),
        any::<[u8; 16]>().prop_map(|src| Action::Set(KeyAttr::Ipv6(Ipv6Key {
            src,
            ..Default::default()
        }))),
        any::<u8>().prop_map(|t| Action::Set(KeyAttr::Icmp(IcmpKey {
            icmp_type: t,
            code: 0
        }))),
        any::<u8>().prop_map(|t| Action::Set(KeyAttr::Icmpv6(IcmpKey {
            icmp_type: t,
            code: 1
        }))),
        Just(Action::Set(KeyAttr::Ethernet(EthKey {
            src: MAC_B,
            dst: MAC_A
        }))),
        Just(Action::Set(KeyAttr::Nd(NdKey::default()))),
        Just(Action::Set(KeyAttr::NdExt(Default::default()))),
        (prop_oneof![Just(0x8100u16), Just(0x88a8)], any::<u16>())
            .prop_map(|(tpid, tci)| Action::PushVlan { tpid, tci }),
        Just(Action::PopVlan),
        any::<u32>().prop_map(|lse| Action::PushMpls {
            lse,
            ethertype: 0x8847
        }),
        Just(Action::PopMpls { ethertype: 0x0800 }),
        Just(Action::PushEth {
            src: MAC_A,
            dst: MAC_B
        }),
        Just(Action::PopEth),
        (0u32..5).prop_map(Action::Recirc),
        any::<u32>().prop_map(|basis| Action::Hash {
            alg: HashAlg::L4,
            basis
        }),
        Just(Action::Hash {
            alg: HashAlg::SymL4,
            basis: 0
        }),
        Just(Action::Ct(Default::default())),
        Just(Action::CtClear),
        any::<bool>().prop_map(|valid| Action::TnlPush(TnlPush {
            tnl_port: 1,
            out_port: 2,
            tnl_type: vport_type::VXLAN,
            header: vxlan_header(valid),
        })),
        (1u32..4).prop_map(Action::TnlPop),
        (0u32..3).prop_map(Action::Meter),
        Just(Action::Drop),
        Just(Action::LbOutput(1)),
    ]
}

fn action_list() -> impl Strategy<Value = Vec<Action>> {
    let action = leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Action::Clone),
            (any::<u32>(), prop::collection::vec(inner.clone(), 0..4)).prop_map(
                |(probability, actions)| Action::Sample {
                    probability,
                    actions
                }
            ),
            (
                0u16..200,
                prop::collection::vec(inner.clone(), 0..3),
                prop::collection::vec(inner, 0..3)
            )
                .prop_map(|(pkt_len, gt, le)| Action::CheckPktLen { pkt_len, gt, le }),
        ]
    });
    prop::collection::vec(action, 0..6)
}

fn frame() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        Just(tcp4(b"tcp payload")),
        Just(udp4(&[3; 40])),
        Just(icmp4_echo(b"ping")),
        Just(tcp6(b"six")),
        Just(udp6(b"udp six")),
        Just(icmp6_echo(b"p6")),
        Just({
            let mut v = vxlan_header(true);
            v.extend_from_slice(&tcp4(b"inner"));
            v
        }),
    ];
    (
        base,
        any::<prop::sample::Index>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(mut f, cut, flips, truncate)| {
            for (at, byte) in flips {
                let i = at.index(f.len());
                f[i] = byte;
            }
            if truncate {
                f.truncate(cut.index(f.len() + 1));
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_action_lists_never_leak_or_panic(
        actions in action_list(),
        frames in prop::collection::vec(frame(), 1..33),
        clone_capacity in 1usize..48,
        upcall_limit in 0usize..4,
        recirc_limit in 0usize..40,
        seed in any::<u64>(),
    ) {
        let mut h = Harness::with_clone_capacity(clone_capacity);
        h.exec = dp_core::execute::Executor::new(h.clones.clone(), seed);
        h.exec.set_tunnel_port(1, TunnelKind::Vxlan);
        h.exec.set_tunnel_port(2, TunnelKind::Geneve);
        h.exec.meters_mut().set(1, &MeterConfig {
            unit: MeterUnit::Pktps,
            bands: vec![BandConfig { rate: 10, burst: 3 }],
        }).unwrap();
        h.sink.broken_ports.push(3);
        h.sink.upcall_limit = Some(upcall_limit);
        h.sink.recirc_limit = Some(recirc_limit);
        let mut batch = h.batch(&frames);
        h.exec.execute(&actions, &mut batch, &mut h.sink, 1_000);
        prop_assert!(batch.is_empty());
        drop(batch);
        // Every packet that left is accounted for: the originals either
        // reached the sink or were counted as dropped (copies may add more).
        let delivered = h.sink.outputs.len() + h.sink.upcalls.len() + h.sink.recirculated.len();
        prop_assert!(delivered as u64 + h.exec.drops().total() >= frames.len() as u64);
        h.assert_no_leak();
    }
}
