//! Per-action fixture tests for the batch executor: frames in, expected
//! frames out (byte compare), with expected checksums recomputed from
//! scratch by etherparse, and buffer accounting checked when each
//! harness drops.

mod execute_support;

use dp_core::action::{Action, HashAlg, Userdata, Userspace};
use dp_core::execute::{
    BandConfig, DropReason, Executor, MAX_RECIRC_DEPTH, MeterConfig, MeterUnit, crc32c,
};
use dp_core::odp::attr::{
    ArpKey, EthKey, IcmpKey, Ipv4Key, Ipv6Key, KeyAttr, NdKey, PortsKey, TunAttr,
};
use dp_core::packet::{PacketPool, PacketType, PoolConfig};
use execute_support::*;

fn set_ipv4_dst(dst: [u8; 4]) -> Action {
    Action::SetMasked {
        key: KeyAttr::Ipv4(Ipv4Key {
            dst,
            ..Default::default()
        }),
        mask: KeyAttr::Ipv4(Ipv4Key {
            dst: [0xff; 4],
            ..Default::default()
        }),
    }
}

fn userspace(pid: u32) -> Userspace {
    Userspace {
        pid,
        userdata: Some(Userdata::SlowPath { reasons: 1 }),
        include_actions: false,
        tunnel_out_port: None,
    }
}

// ---- output, drop, accounting ---------------------------------------

#[test]
fn output_as_last_action_moves_without_copying() {
    let mut h = Harness::new();
    let frames = vec![tcp4(b"a"), tcp4(b"bb"), udp4(b"ccc")];
    h.run(&[Action::Output(3)], &frames);
    assert_eq!(h.sink.sent(3), frames);
    assert_eq!(h.clones.stats().created, 0, "no copy for a final output");
    assert_eq!(h.exec.drops().total(), 0);
}

#[test]
fn multiple_outputs_copy_all_but_the_last() {
    let mut h = Harness::new();
    let frames = vec![tcp4(b"a"), udp4(b"b")];
    h.run(
        &[Action::Output(1), Action::Output(2), Action::Output(3)],
        &frames,
    );
    for port in 1..=3 {
        assert_eq!(h.sink.sent(port), frames, "port {port}");
    }
    // Ports 1 and 2 got copies, port 3 the originals.
    assert_eq!(h.clones.in_use(), 4);
    assert_eq!(h.pool.in_use(), 2);
}

#[test]
fn a_port_that_makes_its_own_copies_gets_them_and_the_executor_copies_none() {
    let mut h = Harness::new();
    // Port 1's queue has room for one copy: the second packet's copy for
    // port 1 falls back to the executor's clone pool.
    let own = PacketPool::new("port 1 copies", PoolConfig::heap(1));
    h.sink.port_clones = Some((1, own.clone()));
    let frames = vec![tcp4(b"a"), udp4(b"bb")];
    h.run(
        &[Action::Output(1), Action::Output(2), Action::Output(3)],
        &frames,
    );
    for port in 1..=3 {
        assert_eq!(h.sink.sent(port), frames, "port {port}");
    }
    for (port, packet) in &h.sink.outputs {
        assert_eq!(packet.meta().in_port, 1, "port {port}: metadata copied");
    }
    assert_eq!(own.in_use(), 1, "port 1's first copy is its own");
    // Port 1's second copy and both of port 2's came from the clone pool.
    assert_eq!(h.clones.in_use(), 3);
    assert_eq!(h.exec.drops().total(), 0);
    h.assert_no_leak();
    assert_eq!(own.in_use(), 0);
}

#[test]
fn exhausted_clone_pool_counts_the_missing_copies() {
    let mut h = Harness::with_clone_capacity(1);
    let frames = vec![tcp4(b"a"), tcp4(b"b"), tcp4(b"c")];
    h.run(&[Action::Output(1), Action::Output(2)], &frames);
    assert_eq!(h.sink.sent(1).len(), 1);
    assert_eq!(h.sink.sent(2), frames);
    assert_eq!(h.dropped(DropReason::NoCloneBuffer), 2);
}

#[test]
fn refused_output_is_a_tx_error() {
    let mut h = Harness::new();
    h.sink.broken_ports.push(9);
    h.run(
        &[Action::Output(9), Action::Output(2)],
        &[tcp4(b"x"), tcp4(b"y")],
    );
    h.run(&[Action::Output(9)], &[tcp4(b"z")]);
    assert_eq!(h.dropped(DropReason::TxError), 3);
    assert_eq!(h.sink.sent(2).len(), 2);
}

#[test]
fn drops_are_counted_by_reason() {
    let mut h = Harness::new();
    h.run(&[], &[tcp4(b"")]);
    h.run(&[Action::Drop], &[tcp4(b""), tcp4(b"")]);
    h.run(
        &[Action::Output(1), Action::Drop, Action::Output(2)],
        &[tcp4(b"")],
    );
    h.run(&[set_ipv4_dst(IP_A)], &[tcp4(b"")]);
    assert_eq!(h.dropped(DropReason::Explicit), 4);
    assert_eq!(h.dropped(DropReason::EndOfActions), 1);
    assert_eq!(h.sink.sent(1).len(), 1);
    assert!(h.sink.sent(2).is_empty());
    let names: Vec<_> = h.exec.drops().iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(
        names,
        vec![
            ("datapath_drop_action", 4),
            ("datapath_drop_end_of_actions", 1)
        ]
    );
}

#[test]
fn failure_midway_through_a_list_returns_every_buffer() {
    let mut h = Harness::new();
    let runt = vec![0xffu8; 10];
    let good = tcp4(b"payload");
    // The copy for port 1 is made before the runt fails push_vlan; the
    // runt is then dropped, the good packet carries on.
    h.run(
        &[
            Action::Output(1),
            Action::PushVlan {
                tpid: 0x8100,
                tci: 0x1064,
            },
            Action::Output(2),
            Action::Ct(Default::default()),
        ],
        &[runt.clone(), good.clone()],
    );
    assert_eq!(h.sink.sent(1), vec![runt, good]);
    assert_eq!(h.sink.sent(2).len(), 1);
    assert_eq!(h.dropped(DropReason::InvalidPacket), 1);
    assert_eq!(h.dropped(DropReason::CtUnavailable), 1);
    assert_eq!(
        h.pool.in_use() + h.clones.in_use(),
        3,
        "held by the sink only"
    );
}

// ---- VLAN -------------------------------------------------------------

fn with_tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    v.extend_from_slice(&tpid.to_be_bytes());
    v.extend_from_slice(&tci.to_be_bytes());
    v.extend_from_slice(&frame[12..]);
    v
}

#[test]
fn push_vlan_8021q_and_8021ad() {
    let mut h = Harness::new();
    let frame = tcp4(b"vlan");
    h.run(
        &[
            Action::PushVlan {
                tpid: 0x8100,
                tci: 0x1000 | 0x2064,
            },
            Action::Output(1),
            Action::PushVlan {
                tpid: 0x88a8,
                tci: 0x1000 | 0x0007,
            },
            Action::Output(2),
        ],
        &[&frame],
    );
    // The CFI marker (0x1000) is not put on the wire.
    let single = with_tag(&frame, 0x8100, 0x2064);
    assert_eq!(h.sink.sent(1), vec![single.clone()]);
    assert_eq!(h.sink.sent(2), vec![with_tag(&single, 0x88a8, 0x0007)]);
}

#[test]
fn pop_vlan_restores_the_untagged_frame_and_ignores_untagged() {
    let mut h = Harness::new();
    let frame = udp4(b"pop");
    h.run(
        &[Action::PopVlan, Action::Output(1)],
        &[
            with_tag(&with_tag(&frame, 0x8100, 5), 0x88a8, 9),
            frame.clone(),
        ],
    );
    assert_eq!(h.sink.sent(1), vec![with_tag(&frame, 0x8100, 5), frame]);
}

#[test]
fn set_after_push_vlan_finds_the_moved_headers() {
    let mut h = Harness::new();
    let frame = tcp4(b"offsets");
    h.run(
        &[
            Action::PushVlan {
                tpid: 0x8100,
                tci: 0x1001,
            },
            set_ipv4_dst([192, 168, 1, 1]),
            Action::Output(1),
        ],
        &[&frame],
    );
    let expected = expect_edited(&with_tag(&frame, 0x8100, 1), |v| {
        v[34..38].copy_from_slice(&[192, 168, 1, 1]);
    });
    assert_eq!(h.sink.sent(1), vec![expected]);
}

// ---- set: Ethernet, IPv4 ------------------------------------------------

#[test]
fn set_and_masked_set_ethernet() {
    let mut h = Harness::new();
    let frame = tcp4(b"");
    let src = [2, 2, 2, 2, 2, 2];
    let dst = [4, 4, 4, 4, 4, 4];
    h.run(
        &[
            Action::Set(KeyAttr::Ethernet(EthKey { src, dst })),
            Action::Output(1),
            Action::SetMasked {
                key: KeyAttr::Ethernet(EthKey {
                    src: [0xaa; 6],
                    dst: [0; 6],
                }),
                mask: KeyAttr::Ethernet(EthKey {
                    src: [0, 0, 0, 0, 0, 0xff],
                    dst: [0; 6],
                }),
            },
            Action::Output(2),
        ],
        &[&frame],
    );
    let mut one = frame.clone();
    one[0..6].copy_from_slice(&dst);
    one[6..12].copy_from_slice(&src);
    let mut two = one.clone();
    two[11] = 0xaa;
    assert_eq!(h.sink.sent(1), vec![one]);
    assert_eq!(h.sink.sent(2), vec![two]);
}

#[test]
fn set_ipv4_patches_ip_and_l4_checksums() {
    let mut h = Harness::new();
    let key = Ipv4Key {
        src: [172, 16, 0, 9],
        dst: [192, 168, 77, 200],
        proto: 6,
        tos: 0x2e,
        ttl: 9,
        frag: 0,
    };
    let frames = vec![tcp4(b"hello tcp"), udp4(b"hello udp!"), icmp4_echo(b"ping")];
    h.run(
        &[Action::Set(KeyAttr::Ipv4(key)), Action::Output(1)],
        &frames,
    );
    let expected: Vec<_> = frames
        .iter()
        .map(|f| {
            expect_edited(f, |v| {
                v[15] = 0x2e;
                v[22] = 9;
                v[26..30].copy_from_slice(&key.src);
                v[30..34].copy_from_slice(&key.dst);
            })
        })
        .collect();
    assert_eq!(h.sink.sent(1), expected);
}

#[test]
fn masked_set_ipv4_writes_only_masked_bits() {
    let mut h = Harness::new();
    let frame = tcp4(b"masked");
    h.run(
        &[
            Action::SetMasked {
                key: KeyAttr::Ipv4(Ipv4Key {
                    dst: [192, 168, 5, 0],
                    ttl: 0,
                    tos: 0x01,
                    ..Default::default()
                }),
                mask: KeyAttr::Ipv4(Ipv4Key {
                    dst: [255, 255, 255, 0],
                    tos: 0x03,
                    ..Default::default()
                }),
            },
            Action::Output(1),
        ],
        &[&frame],
    );
    let expected = expect_edited(&frame, |v| {
        v[15] = (v[15] & !0x03) | 0x01;
        v[30..33].copy_from_slice(&[192, 168, 5]);
    });
    assert_eq!(h.sink.sent(1), vec![expected]);
}

#[test]
fn udp_zero_checksum_stays_zero_over_ipv4() {
    let mut h = Harness::new();
    let mut frame = udp4(b"no checksum");
    frame[40..42].fill(0);
    h.run(
        &[
            set_ipv4_dst([8, 8, 8, 8]),
            Action::Set(KeyAttr::Udp(PortsKey { src: 1, dst: 2 })),
            Action::Output(1),
        ],
        &[&frame],
    );
    let expected = expect_edited(&frame, |v| {
        v[30..34].copy_from_slice(&[8, 8, 8, 8]);
        v[34..38].copy_from_slice(&[0, 1, 0, 2]);
    });
    assert_eq!(&expected[40..42], &[0, 0]);
    assert_eq!(h.sink.sent(1), vec![expected]);
}

#[test]
fn udp_checksum_that_patches_to_zero_is_sent_as_ffff() {
    let mut h = Harness::new();
    let frame = udp4(b"zero?");
    let csum = u16::from_be_bytes([frame[40], frame[41]]);
    let old_dst = 53u16;
    // Choose the new port so that the patched checksum folds to 0.
    let mut s = u32::from(!csum) + u32::from(!old_dst);
    s = (s & 0xffff) + (s >> 16);
    let new_dst = 0xffff - s as u16;
    h.run(
        &[
            Action::SetMasked {
                key: KeyAttr::Udp(PortsKey {
                    src: 0,
                    dst: new_dst,
                }),
                mask: KeyAttr::Udp(PortsKey {
                    src: 0,
                    dst: 0xffff,
                }),
            },
            Action::Output(1),
        ],
        &[&frame],
    );
    let sent = &h.sink.sent(1)[0];
    assert_eq!(&sent[40..42], &[0xff, 0xff]);
    let expected = expect_edited(&frame, |v| {
        v[36..38].copy_from_slice(&new_dst.to_be_bytes())
    });
    assert_eq!(sent, &expected, "etherparse also writes 0xffff");
}

#[test]
fn later_fragments_keep_their_payload() {
    let mut h = Harness::new();
    let mut frame = udp4(b"fragment payload");
    frame[20] = 0x00;
    frame[21] = 0x10; // fragment offset 16 (x8 bytes): a later fragment
    fix_checksums(&mut frame);
    h.run(
        &[
            set_ipv4_dst([1, 2, 3, 4]),
            Action::Set(KeyAttr::Udp(PortsKey { src: 7, dst: 7 })),
            Action::Output(1),
        ],
        &[&frame],
    );
    let mut expected = frame.clone();
    expected[30..34].copy_from_slice(&[1, 2, 3, 4]);
    let ip_csum = dp_core::execute::checksum(&{
        let mut hdr = expected[14..34].to_vec();
        hdr[10..12].fill(0);
        hdr
    });
    expected[24..26].copy_from_slice(&ip_csum.to_be_bytes());
    assert_eq!(h.sink.sent(1), vec![expected], "payload bytes untouched");
}

// ---- set: IPv6 ----------------------------------------------------------

#[test]
fn set_ipv6_patches_pseudo_header_checksums() {
    let mut h = Harness::new();
    let src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd];
    let dst = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    let key = Ipv6Key {
        src,
        dst,
        label: 0xabcde,
        proto: 0,
        tclass: 0xb8,
        hlimit: 3,
        frag: 0,
    };
    let frames = vec![tcp6(b"six"), udp6(b"udp six"), icmp6_echo(b"ping6")];
    h.run(
        &[Action::Set(KeyAttr::Ipv6(key)), Action::Output(1)],
        &frames,
    );
    let expected: Vec<_> = frames
        .iter()
        .map(|f| {
            expect_edited(f, |v| {
                let vtcfl: u32 = (6 << 28) | (0xb8 << 20) | 0xabcde;
                v[14..18].copy_from_slice(&vtcfl.to_be_bytes());
                v[21] = 3;
                v[22..38].copy_from_slice(&src);
                v[38..54].copy_from_slice(&dst);
            })
        })
        .collect();
    assert_eq!(h.sink.sent(1), expected);
}

// ---- set: transport -------------------------------------------------------

#[test]
fn set_tcp_and_udp_ports() {
    let mut h = Harness::new();
    let frames = vec![tcp4(b"t"), tcp6(b"t6")];
    h.run(
        &[
            Action::Set(KeyAttr::Tcp(PortsKey {
                src: 4321,
                dst: 443,
            })),
            Action::Output(1),
        ],
        &frames,
    );
    let l4 = [34, 54];
    let expected: Vec<_> = frames
        .iter()
        .zip(l4)
        .map(|(f, at)| {
            expect_edited(f, |v| {
                v[at..at + 2].copy_from_slice(&4321u16.to_be_bytes());
                v[at + 2..at + 4].copy_from_slice(&443u16.to_be_bytes());
            })
        })
        .collect();
    assert_eq!(h.sink.sent(1), expected);

    let frames = vec![udp4(b"u"), udp6(b"u6")];
    h.run(
        &[
            Action::SetMasked {
                key: KeyAttr::Udp(PortsKey { src: 0, dst: 4789 }),
                mask: KeyAttr::Udp(PortsKey {
                    src: 0,
                    dst: 0xffff,
                }),
            },
            Action::Output(2),
        ],
        &frames,
    );
    let expected: Vec<_> = frames
        .iter()
        .zip(l4)
        .map(|(f, at)| {
            expect_edited(f, |v| {
                v[at + 2..at + 4].copy_from_slice(&4789u16.to_be_bytes())
            })
        })
        .collect();
    assert_eq!(h.sink.sent(2), expected);
}

#[test]
fn set_tcp_on_a_udp_packet_changes_nothing() {
    let mut h = Harness::new();
    let frame = udp4(b"not tcp");
    h.run(
        &[
            Action::Set(KeyAttr::Tcp(PortsKey { src: 1, dst: 2 })),
            Action::Output(1),
        ],
        &[&frame],
    );
    assert_eq!(h.sink.sent(1), vec![frame]);
}

fn sctp4() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(IP_A, IP_B, 64)
        .write(&mut v, etherparse::IpNumber(132), &{
            let mut s = vec![0x0b, 0xb8, 0x13, 0x88, 0, 0, 0, 1, 0, 0, 0, 0];
            s.extend_from_slice(&[0, 0, 0, 8, 1, 2, 3, 4]); // a DATA-ish chunk
            let crc = crc32c(&s);
            s[8..12].copy_from_slice(&crc.to_le_bytes());
            s
        })
        .unwrap();
    v
}

use etherparse::PacketBuilder;

fn sctp_crc_ok(frame: &[u8]) -> bool {
    let mut s = frame[34..].to_vec();
    let stored = u32::from_le_bytes(s[8..12].try_into().unwrap());
    s[8..12].fill(0);
    crc32c(&s) == stored
}

#[test]
fn set_sctp_ports_recomputes_crc32c_and_keeps_bad_crcs_bad() {
    let mut h = Harness::new();
    let good = sctp4();
    assert!(sctp_crc_ok(&good));
    let mut bad = good.clone();
    bad[42] ^= 0x5a;
    h.run(
        &[
            Action::Set(KeyAttr::Sctp(PortsKey { src: 9, dst: 10 })),
            Action::Output(1),
        ],
        &[good.clone(), bad],
    );
    let sent = h.sink.sent(1);
    assert_eq!(&sent[0][34..38], &[0, 9, 0, 10]);
    assert!(sctp_crc_ok(&sent[0]));
    assert_eq!(&sent[1][34..38], &[0, 9, 0, 10]);
    assert!(!sctp_crc_ok(&sent[1]));
}

#[test]
fn set_icmp_type_and_code() {
    let mut h = Harness::new();
    let frame = icmp4_echo(b"echo");
    h.run(
        &[
            Action::Set(KeyAttr::Icmp(IcmpKey {
                icmp_type: 0,
                code: 0,
            })),
            Action::Output(1),
        ],
        &[&frame],
    );
    let mut reply = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(IP_A, IP_B, 64)
        .icmpv4_echo_reply(7, 1)
        .write(&mut reply, b"echo")
        .unwrap();
    assert_eq!(h.sink.sent(1), vec![reply]);

    let frame6 = icmp6_echo(b"e6");
    h.run(
        &[
            Action::SetMasked {
                key: KeyAttr::Icmpv6(IcmpKey {
                    icmp_type: 129,
                    code: 0,
                }),
                mask: KeyAttr::Icmpv6(IcmpKey {
                    icmp_type: 0xff,
                    code: 0,
                }),
            },
            Action::Output(2),
        ],
        &[&frame6],
    );
    let mut reply6 = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(IP6_A, IP6_B, 64)
        .icmpv6_echo_reply(7, 1)
        .write(&mut reply6, b"e6")
        .unwrap();
    assert_eq!(h.sink.sent(2), vec![reply6]);
}

#[test]
fn set_arp_fields() {
    let mut h = Harness::new();
    let mut frame = MAC_B.to_vec();
    frame.extend_from_slice(&MAC_A);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&MAC_A);
    frame.extend_from_slice(&IP_A);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&IP_B);
    h.run(
        &[
            Action::Set(KeyAttr::Arp(ArpKey {
                sip: IP_B,
                tip: IP_A,
                op: 2,
                sha: MAC_B,
                tha: MAC_A,
            })),
            Action::Output(1),
        ],
        &[&frame],
    );
    let mut expected = frame[..20].to_vec();
    expected.extend_from_slice(&[0, 2]);
    expected.extend_from_slice(&MAC_B);
    expected.extend_from_slice(&IP_B);
    expected.extend_from_slice(&MAC_A);
    expected.extend_from_slice(&IP_A);
    assert_eq!(h.sink.sent(1), vec![expected]);
}

#[test]
fn set_metadata_fields() {
    let mut h = Harness::new();
    h.run(
        &[
            Action::Set(KeyAttr::SkbMark(0x55)),
            Action::SetMasked {
                key: KeyAttr::Priority(0x0f),
                mask: KeyAttr::Priority(0xff),
            },
            Action::Set(KeyAttr::Tunnel(vec![
                TunAttr::Id(77),
                TunAttr::Ipv4Dst([9, 9, 9, 9]),
                TunAttr::Geneve(vec![0, 1, 2, 1, 0xaa, 0xbb, 0xcc, 0xdd]),
            ])),
            Action::Output(1),
        ],
        &[tcp4(b"")],
    );
    let meta = h.sink.outputs[0].1.meta().clone();
    assert_eq!(meta.pkt_mark, 0x55);
    assert_eq!(meta.skb_priority, 0x0f);
    assert_eq!(meta.tunnel.tun_id, 77);
    assert_eq!(meta.tunnel.ipv4_dst, [9, 9, 9, 9]);
    assert_eq!(
        meta.tunnel.geneve_options(),
        &[0, 1, 2, 1, 0xaa, 0xbb, 0xcc, 0xdd]
    );
}

fn neighbour_solicitation(option_type: u8) -> Vec<u8> {
    let mut payload = IP6_B.to_vec(); // target
    payload.extend_from_slice(&[7, 1, 0, 0, 0, 0, 0, 0]); // an unknown option first
    payload.extend_from_slice(&[option_type, 1]);
    payload.extend_from_slice(&MAC_A);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(IP6_A, IP6_B, 255)
        .icmpv6_raw(if option_type == 1 { 135 } else { 136 }, 0, [0; 4])
        .write(&mut v, &payload)
        .unwrap();
    v
}

#[test]
fn set_nd_target_and_link_layer_options() {
    let mut h = Harness::new();
    let target = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let mac = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    let solicit = neighbour_solicitation(1);
    let advert = neighbour_solicitation(2);
    h.run(
        &[
            Action::Set(KeyAttr::Nd(NdKey {
                target,
                sll: mac,
                tll: mac,
            })),
            Action::Output(1),
        ],
        &[&solicit, &advert],
    );
    // ICMPv6 header at 54: type, code, checksum, 4 reserved; the target
    // at 62, the unknown option at 78, the link-layer option at 86.
    let expected: Vec<_> = [solicit, advert]
        .iter()
        .map(|f| {
            expect_edited(f, |v| {
                v[62..78].copy_from_slice(&target);
                v[88..94].copy_from_slice(&mac);
            })
        })
        .collect();
    assert_eq!(h.sink.sent(1), expected);
}

#[test]
fn unsupported_set_is_a_counted_drop_and_check_finds_it() {
    let mut h = Harness::new();
    let nd = Action::Set(KeyAttr::NdExt(Default::default()));
    let actions = vec![Action::Clone(vec![nd.clone()]), Action::Output(1)];
    assert_eq!(Executor::check(&actions), Err(&nd));
    assert_eq!(Executor::check(&[Action::Output(1)]), Ok(()));
    assert!(Executor::check(&[Action::Ct(Default::default())]).is_err());
    h.run(&actions, &[tcp4(b"")]);
    assert_eq!(h.dropped(DropReason::Unsupported), 1);
    assert_eq!(h.sink.sent(1).len(), 1, "the original still goes out");
}

// ---- MPLS, Ethernet push/pop ---------------------------------------------

#[test]
fn push_and_pop_mpls() {
    let mut h = Harness::new();
    let frame = tcp4(b"mpls");
    let lse: u32 = (100 << 12) | (1 << 8) | 64;
    h.run(
        &[
            Action::PushMpls {
                lse,
                ethertype: 0x8847,
            },
            Action::Output(1),
            Action::PopMpls { ethertype: 0x0800 },
            Action::Output(2),
        ],
        &[&frame],
    );
    let mut mpls = frame[..12].to_vec();
    mpls.extend_from_slice(&[0x88, 0x47]);
    mpls.extend_from_slice(&lse.to_be_bytes());
    mpls.extend_from_slice(&frame[14..]);
    assert_eq!(h.sink.sent(1), vec![mpls]);
    assert_eq!(h.sink.sent(2), vec![frame]);
}

#[test]
fn pop_and_push_ethernet() {
    let mut h = Harness::new();
    let frame = udp4(b"l3");
    h.run(
        &[
            Action::PopEth,
            Action::Output(1),
            Action::PushEth {
                src: MAC_A,
                dst: MAC_B,
            },
            Action::Output(2),
        ],
        &[&frame],
    );
    assert_eq!(h.sink.sent(1), vec![frame[14..].to_vec()]);
    assert_eq!(
        h.sink.outputs[0].1.meta().packet_type,
        PacketType::new(1, 0x0800)
    );
    assert_eq!(h.sink.sent(2), vec![frame]);
    assert_eq!(h.sink.outputs[1].1.meta().packet_type, PacketType::ETHERNET);
}

// ---- recirc, hash ----------------------------------------------------------

#[test]
fn recirc_hands_packets_back_with_new_id_and_depth() {
    let mut h = Harness::new();
    h.run(&[Action::Recirc(42)], &[tcp4(b"a"), tcp4(b"b")]);
    assert_eq!(h.sink.recirculated.len(), 2);
    for p in &h.sink.recirculated {
        assert_eq!(p.meta().recirc_id, 42);
        assert_eq!(p.meta().recirc_depth, 1);
    }
    assert_eq!(h.clones.stats().created, 0);

    // Not last: a copy recirculates, the original goes on.
    h.run(&[Action::Recirc(7), Action::Output(1)], &[tcp4(b"c")]);
    assert_eq!(h.sink.recirculated[2].meta().recirc_id, 7);
    assert_eq!(h.sink.outputs[0].1.meta().recirc_id, 0);
}

#[test]
fn recirc_beyond_the_depth_limit_is_dropped() {
    let mut h = Harness::new();
    let mut batch = h.batch(&[tcp4(b"deep"), tcp4(b"shallow")]);
    batch.get_mut(0).unwrap().meta_mut().recirc_depth = MAX_RECIRC_DEPTH;
    batch.get_mut(1).unwrap().meta_mut().recirc_depth = MAX_RECIRC_DEPTH - 1;
    h.exec
        .execute(&[Action::Recirc(1)], &mut batch, &mut h.sink, 0);
    assert_eq!(h.dropped(DropReason::RecircDepth), 1);
    assert_eq!(h.sink.recirculated.len(), 1);
    assert_eq!(h.sink.recirculated[0].meta().recirc_depth, MAX_RECIRC_DEPTH);
}

#[test]
fn full_recirculation_queue_is_counted() {
    let mut h = Harness::new();
    h.sink.recirc_limit = Some(1);
    h.run(&[Action::Recirc(3)], &[tcp4(b"1"), tcp4(b"2"), tcp4(b"3")]);
    assert_eq!(h.dropped(DropReason::RecircQueueFull), 2);
}

#[test]
fn hash_sets_dp_hash_from_the_5_tuple() {
    let mut h = Harness::new();
    let fwd = tcp4(b"x");
    let mut rev = fwd.clone();
    rev[26..30].copy_from_slice(&IP_B);
    rev[30..34].copy_from_slice(&IP_A);
    rev[34..36].copy_from_slice(&80u16.to_be_bytes());
    rev[36..38].copy_from_slice(&1000u16.to_be_bytes());
    let mut other_port = fwd.clone();
    other_port[34] ^= 1;
    let frames = vec![fwd.clone(), rev, other_port, fwd];
    let hashes = |h: &mut Harness, alg, basis| -> Vec<u32> {
        h.run(&[Action::Hash { alg, basis }, Action::Output(1)], &frames);
        let v = h
            .sink
            .outputs
            .iter()
            .map(|(_, p)| p.meta().dp_hash)
            .collect();
        h.assert_no_leak();
        v
    };
    let l4 = hashes(&mut h, HashAlg::L4, 0);
    assert_eq!(l4[0], l4[3], "deterministic");
    assert_ne!(l4[0], l4[2], "ports matter");
    assert_ne!(l4[0], hashes(&mut h, HashAlg::L4, 1)[0], "basis matters");
    let sym = hashes(&mut h, HashAlg::SymL4, 0);
    assert_eq!(sym[0], sym[1], "symmetric");
    assert_ne!(sym[0], sym[2]);
}

// ---- clone, sample, trunc, check_pkt_len -----------------------------------

#[test]
fn clone_runs_nested_actions_on_a_copy() {
    let mut h = Harness::new();
    let frame = tcp4(b"clone");
    h.run(
        &[
            Action::Clone(vec![set_ipv4_dst([3, 3, 3, 3]), Action::Output(2)]),
            Action::Output(1),
        ],
        &[&frame],
    );
    assert_eq!(h.sink.sent(1), vec![frame.clone()]);
    assert_eq!(
        h.sink.sent(2),
        vec![expect_edited(&frame, |v| v[30..34].copy_from_slice(&[3, 3, 3, 3]))]
    );
    // As the last action, clone works on the originals.
    h.assert_no_leak();
    let created = h.clones.stats().created;
    h.run(&[Action::Clone(vec![Action::Output(2)])], &[frame]);
    assert_eq!(h.clones.stats().created, created);
}

#[test]
fn sample_probability_extremes_and_determinism() {
    let frames: Vec<_> = (0..32).map(|i| udp4(&[i as u8])).collect();
    let sampled = |probability: u32, seed: u64| -> Vec<Vec<u8>> {
        let mut h = Harness::new();
        h.exec = Executor::new(h.clones.clone(), seed);
        for _ in 0..4 {
            h.run(
                &[
                    Action::Sample {
                        probability,
                        actions: vec![Action::Output(2)],
                    },
                    Action::Output(1),
                ],
                &frames,
            );
        }
        assert_eq!(h.sink.sent(1).len(), 128);
        h.sink.sent(2)
    };
    assert!(sampled(0, 1).is_empty());
    assert_eq!(sampled(u32::MAX, 1).len(), 128);
    let half = sampled(u32::MAX / 2, 1);
    assert!((40..=88).contains(&half.len()), "{} of 128", half.len());
    assert_eq!(half, sampled(u32::MAX / 2, 1), "same seed, same samples");
    assert_ne!(half, sampled(u32::MAX / 2, 2));
}

#[test]
fn sample_as_last_action_moves_the_sampled_and_drops_the_rest() {
    let mut h = Harness::new();
    let frames: Vec<_> = (0..32).map(|i| udp4(&[i as u8])).collect();
    h.run(
        &[Action::Sample {
            probability: u32::MAX / 4,
            actions: vec![Action::Output(2)],
        }],
        &frames,
    );
    let n = h.sink.sent(2).len() as u64;
    assert_eq!(n + h.dropped(DropReason::EndOfActions), 32);
    assert_eq!(h.clones.stats().created, 0);
}

#[test]
fn trunc_cuts_only_the_next_output() {
    let mut h = Harness::new();
    let frame = udp4(&[7u8; 200]);
    h.run(
        &[
            Action::Trunc(100),
            Action::Output(1),
            Action::Output(2),
            Action::Trunc(64),
            Action::Output(3),
        ],
        &[&frame],
    );
    assert_eq!(h.sink.sent(1), vec![frame[..100].to_vec()]);
    assert_eq!(h.sink.sent(2), vec![frame.clone()]);
    assert_eq!(h.sink.sent(3), vec![frame[..64].to_vec()]);
}

#[test]
fn check_pkt_len_splits_the_batch() {
    let mut h = Harness::new();
    let small = udp4(&[1; 10]); // 52 bytes
    let big = udp4(&[2; 100]); // 142 bytes
    let actions = [
        Action::CheckPktLen {
            pkt_len: 100,
            gt: vec![Action::Output(1)],
            le: vec![Action::Output(2)],
        },
        Action::Output(3),
    ];
    h.run(&actions, &[small.clone(), big.clone(), small.clone()]);
    assert_eq!(h.sink.sent(1), vec![big.clone()]);
    assert_eq!(h.sink.sent(2), vec![small.clone(), small.clone()]);
    assert_eq!(h.sink.sent(3).len(), 3);
    h.assert_no_leak();
    // Last action: originals, no copies.
    let created = h.clones.stats().created;
    h.run(&actions[..1], &[big.clone(), small]);
    assert_eq!(h.clones.stats().created, created);
    assert_eq!(h.sink.sent(1), vec![big]);
}

// ---- userspace ----------------------------------------------------------------

#[test]
fn userspace_sends_a_copy_with_its_cookie_unless_last() {
    let mut h = Harness::new();
    let frame = tcp4(b"upcall");
    h.run(
        &[Action::Userspace(userspace(5)), Action::Output(1)],
        &[&frame],
    );
    assert_eq!(h.sink.upcalls.len(), 1);
    assert_eq!(h.sink.upcalls[0].0.data(), &frame[..]);
    assert_eq!(h.sink.upcalls[0].1, userspace(5));
    assert_eq!(h.sink.sent(1), vec![frame.clone()]);

    h.sink.upcall_limit = Some(2);
    h.run(&[Action::Userspace(userspace(6))], &[frame.clone(), frame]);
    assert_eq!(h.sink.upcalls.len(), 2);
    assert_eq!(h.dropped(DropReason::UserspaceQueueFull), 1);
}

// ---- meter ----------------------------------------------------------------------

#[test]
fn packet_meter_polices_with_burst_and_refill() {
    let mut h = Harness::new();
    h.exec
        .meters_mut()
        .set(
            1,
            &MeterConfig {
                unit: MeterUnit::Pktps,
                bands: vec![BandConfig {
                    rate: 1000,
                    burst: 10,
                }],
            },
        )
        .unwrap();
    let frames: Vec<_> = (0..32).map(|_| udp4(b"m")).collect();
    let actions = [Action::Meter(1), Action::Output(1)];
    h.run_at(&actions, &frames, 1_000_000_000);
    assert_eq!(h.sink.sent(1).len(), 10, "the burst");
    // 5 ms later: 5 packets' worth of tokens.
    h.run_at(&actions, &frames, 1_005_000_000);
    assert_eq!(h.sink.sent(1).len(), 15);
    assert_eq!(h.dropped(DropReason::Meter), 64 - 15);
    let stats = h.exec.meters().stats(1).unwrap();
    assert_eq!(stats.packets, 64);
    assert_eq!(stats.bands[0].packets, 64 - 15);
    // Unknown meters pass everything, as in OVS.
    h.run(&[Action::Meter(99), Action::Output(2)], &frames[..3]);
    assert_eq!(h.sink.sent(2).len(), 3);
}

#[test]
fn kbps_meter_charges_bits_and_the_fastest_exceeded_band_counts() {
    let mut h = Harness::new();
    let frame = udp4(&[0u8; 83]); // 125 bytes = 1000 bits
    assert_eq!(frame.len(), 125);
    h.exec
        .meters_mut()
        .set(
            2,
            &MeterConfig {
                unit: MeterUnit::Kbps,
                // 8 kbit and 4 kbit buckets.
                bands: vec![
                    BandConfig { rate: 8, burst: 8 },
                    BandConfig {
                        rate: 1000,
                        burst: 4,
                    },
                ],
            },
        )
        .unwrap();
    let frames: Vec<_> = (0..10).map(|_| frame.clone()).collect();
    h.run(&[Action::Meter(2), Action::Output(1)], &frames);
    assert_eq!(h.sink.sent(1).len(), 4);
    let stats = h.exec.meters().stats(2).unwrap();
    // Packets 5..8 exceed only the 1000 kbit/s band; 9 and 10 exceed both
    // and are charged to the faster one.
    assert_eq!(stats.bands[0].packets, 0);
    assert_eq!(stats.bands[1].packets, 6);
    assert_eq!(stats.bands[1].bytes, 750);
    assert!(
        h.exec
            .meters_mut()
            .set(
                3,
                &MeterConfig {
                    unit: MeterUnit::Kbps,
                    bands: vec![]
                }
            )
            .is_err()
    );
}

// ---- conntrack -------------------------------------------------------------------

#[test]
fn ct_is_an_explicit_drop_and_ct_clear_clears() {
    let mut h = Harness::new();
    let mut batch = h.batch(&[tcp4(b"ct")]);
    {
        let meta = batch.get_mut(0).unwrap().meta_mut();
        meta.ct_state = 0x21;
        meta.ct_zone = 3;
        meta.ct_mark = 9;
        meta.ct_label = [1; 16];
    }
    h.exec.execute(
        &[Action::CtClear, Action::Output(1)],
        &mut batch,
        &mut h.sink,
        0,
    );
    let meta = h.sink.outputs[0].1.meta();
    assert_eq!(
        (meta.ct_state, meta.ct_zone, meta.ct_mark, meta.ct_label),
        (0, 0, 0, [0; 16])
    );
    h.run(
        &[Action::Ct(Default::default()), Action::Output(1)],
        &[tcp4(b"x")],
    );
    assert_eq!(h.dropped(DropReason::CtUnavailable), 1);
    assert_eq!(h.sink.sent(1).len(), 1);
}
