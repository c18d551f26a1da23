//! `tnl_push` / `tnl_pop`: outer headers checked independently with
//! etherparse (IPv4 header checksum, lengths, UDP checksum), push-then-pop
//! round trips back to the original frame and metadata, and mangled outer
//! headers dropped as tunnel pop errors. Buffer accounting is checked when
//! each harness drops.

mod execute_support;

use dp_core::action::{Action, TnlPush, vport_type};
use dp_core::execute::{DropCounters, DropReason, TunnelKind, TunnelPort, tnl_flags, tunnel};
use dp_core::flow::{FlowKey, extract_frame, hash::hash_5tuple};
use dp_core::packet::{PacketBatch, PacketMetadata, PacketType};
use etherparse::{Ipv4Header, Ipv6Header, UdpHeader};
use execute_support::*;

const UNDERLAY_SRC: [u8; 6] = [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6];
const UNDERLAY_DST: [u8; 6] = [0xaa, 0x55, 0xaa, 0x55, 0x00, 0x00];
const VTEP_A: [u8; 4] = [192, 168, 1, 1];
const VTEP_B: [u8; 4] = [192, 168, 1, 2];
const VTEP6_A: [u8; 16] = [0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa];
const VTEP6_B: [u8; 16] = [0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb];
const TNL_PORT: u32 = 4789;
const TOS: u8 = 0x28;

#[derive(Clone, Copy, PartialEq)]
enum Ip {
    V4,
    V6,
}

fn outer_ip(ip: Ip, proto: u8) -> Vec<u8> {
    let mut h = UNDERLAY_DST.to_vec();
    h.extend_from_slice(&UNDERLAY_SRC);
    match ip {
        Ip::V4 => {
            h.extend_from_slice(&[0x08, 0x00]);
            h.extend_from_slice(&[0x45, TOS, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]);
            h.extend_from_slice(&VTEP_A);
            h.extend_from_slice(&VTEP_B);
        }
        Ip::V6 => {
            h.extend_from_slice(&[0x86, 0xdd]);
            let vtcfl: u32 = (6 << 28) | (u32::from(TOS) << 20);
            h.extend_from_slice(&vtcfl.to_be_bytes());
            h.extend_from_slice(&[0, 0, proto, 64]);
            h.extend_from_slice(&VTEP6_A);
            h.extend_from_slice(&VTEP6_B);
        }
    }
    h
}

fn udp(dst_port: u16, csum: bool) -> [u8; 8] {
    let c = if csum { 0xff } else { 0 };
    let [p0, p1] = dst_port.to_be_bytes();
    [0, 0, p0, p1, 0, 0, c, c]
}

fn vxlan_push(ip: Ip, vni: u32, csum: bool) -> TnlPush {
    let mut header = outer_ip(ip, 17);
    header.extend_from_slice(&udp(4789, csum));
    header.extend_from_slice(&[0x08, 0, 0, 0]);
    header.extend_from_slice(&(vni << 8).to_be_bytes());
    TnlPush {
        tnl_port: TNL_PORT,
        out_port: 2,
        tnl_type: vport_type::VXLAN,
        header,
    }
}

// Class 0x0102, type 0x01 (not critical), 8 bytes of data.
const GENEVE_OPTS: [u8; 12] = [0x01, 0x02, 0x01, 0x02, 1, 2, 3, 4, 5, 6, 7, 8];

fn geneve_push(ip: Ip, vni: u32, opts: &[u8], csum: bool) -> TnlPush {
    let mut header = outer_ip(ip, 17);
    header.extend_from_slice(&udp(6081, csum));
    header.extend_from_slice(&[(opts.len() / 4) as u8, 0, 0x65, 0x58]);
    header.extend_from_slice(&(vni << 8).to_be_bytes());
    header.extend_from_slice(opts);
    TnlPush {
        tnl_port: TNL_PORT,
        out_port: 2,
        tnl_type: vport_type::GENEVE,
        header,
    }
}

fn gre_push(ip: Ip, key: Option<u32>, csum: bool) -> TnlPush {
    let mut header = outer_ip(ip, 47);
    let flags: u16 = if csum { 0x8000 } else { 0 } | if key.is_some() { 0x2000 } else { 0 };
    header.extend_from_slice(&flags.to_be_bytes());
    header.extend_from_slice(&[0x65, 0x58]);
    if csum {
        header.extend_from_slice(&[0; 4]);
    }
    if let Some(key) = key {
        header.extend_from_slice(&key.to_be_bytes());
    }
    let tnl_type = if ip == Ip::V4 {
        vport_type::GRE
    } else {
        vport_type::IP6GRE
    };
    TnlPush {
        tnl_port: TNL_PORT,
        out_port: 2,
        tnl_type,
        header,
    }
}

/// RFC 1071, written out independently of the executor's checksum code.
fn rfc1071(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn inner_hash(frame: &[u8]) -> u32 {
    let mut key = FlowKey::ZERO;
    extract_frame(frame, &PacketMetadata::new(1), &mut key);
    hash_5tuple(&key, 0)
}

/// Pushes `push` onto `inner` and returns the encapsulated frame.
fn encapsulate(h: &mut Harness, push: &TnlPush, inner: &[u8]) -> Vec<u8> {
    h.run(
        &[Action::TnlPush(push.clone()), Action::Output(2)],
        &[inner],
    );
    let out = h.sink.sent(2).pop().expect("one packet out");
    h.assert_no_leak();
    assert_eq!(&out[..push.header.len()][..12], &push.header[..12]);
    assert_eq!(&out[push.header.len()..], inner, "inner frame intact");
    out
}

/// Checks every per-packet field of an outer IPv4/IPv6 + UDP header
/// with etherparse and returns the UDP source port.
fn check_outer_udp(out: &[u8], inner: &[u8], csum: bool) -> u16 {
    let (udp_at, udp_len) = if out[12..14] == [0x08, 0x00] {
        let (ip, _) = Ipv4Header::from_slice(&out[14..]).unwrap();
        assert_eq!(usize::from(ip.total_len), out.len() - 14);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(rfc1071(&out[14..34]), 0);
        let (udp, payload) = UdpHeader::from_slice(&out[34..]).unwrap();
        if csum {
            assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ip, payload).unwrap());
        }
        (34, usize::from(udp.length))
    } else {
        let (ip, _) = Ipv6Header::from_slice(&out[14..]).unwrap();
        assert_eq!(usize::from(ip.payload_length), out.len() - 54);
        let (udp, payload) = UdpHeader::from_slice(&out[54..]).unwrap();
        if csum {
            assert_eq!(udp.checksum, udp.calc_checksum_ipv6(&ip, payload).unwrap());
        }
        (54, usize::from(udp.length))
    };
    assert_eq!(udp_len, out.len() - udp_at);
    let csum_field = u16::from_be_bytes([out[udp_at + 6], out[udp_at + 7]]);
    assert_eq!(
        csum_field != 0,
        csum,
        "UDP checksum on/off as the action says"
    );
    let sport = u16::from_be_bytes([out[udp_at], out[udp_at + 1]]);
    assert_eq!(sport, tunnel::src_port(inner_hash(inner)));
    assert!((tunnel::TNL_SRC_PORT_MIN..tunnel::TNL_SRC_PORT_MAX).contains(&sport));
    sport
}

#[test]
fn vxlan_push_fills_lengths_checksums_and_source_port() {
    let mut h = Harness::new();
    for (ip, csum) in [
        (Ip::V4, false),
        (Ip::V4, true),
        (Ip::V6, false),
        (Ip::V6, true),
    ] {
        for inner in [tcp4(b"inner tcp"), udp6(&[9; 333]), icmp4_echo(b"odd")] {
            let out = encapsulate(&mut h, &vxlan_push(ip, 0x7b, csum), &inner);
            check_outer_udp(&out, &inner, csum);
        }
    }
}

#[test]
fn udp_source_port_follows_the_inner_flow() {
    let mut h = Harness::new();
    let push = vxlan_push(Ip::V4, 1, false);
    let a = encapsulate(&mut h, &push, &tcp4(b"x"));
    let b = encapsulate(&mut h, &push, &tcp4(b"different payload, same flow"));
    let c = encapsulate(&mut h, &push, &udp4(b"x"));
    assert_eq!(a[34..36], b[34..36]);
    assert_ne!(a[34..36], c[34..36]);
}

#[test]
fn geneve_push_with_options() {
    let mut h = Harness::new();
    for ip in [Ip::V4, Ip::V6] {
        let push = geneve_push(ip, 0xabcdef, &GENEVE_OPTS, true);
        let inner = tcp6(b"geneve");
        let out = encapsulate(&mut h, &push, &inner);
        check_outer_udp(&out, &inner, true);
        let gnv = push.header.len() - 8 - GENEVE_OPTS.len();
        assert_eq!(out[gnv], 3, "option length in 4-byte words");
        assert_eq!(&out[gnv + 8..gnv + 20], &GENEVE_OPTS);
    }
}

#[test]
fn gre_push_fills_ip_fields_and_gre_checksum() {
    let mut h = Harness::new();
    let inner = udp4(b"gre payload");
    let out = encapsulate(&mut h, &gre_push(Ip::V4, Some(0x1234), true), &inner);
    let (ip, _) = Ipv4Header::from_slice(&out[14..]).unwrap();
    assert_eq!(usize::from(ip.total_len), out.len() - 14);
    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
    assert_eq!(
        rfc1071(&out[34..]),
        0,
        "GRE checksum covers GRE header and payload"
    );
    assert_ne!(&out[38..40], &[0, 0]);

    let out6 = encapsulate(&mut h, &gre_push(Ip::V6, Some(7), false), &inner);
    let (ip6, _) = Ipv6Header::from_slice(&out6[14..]).unwrap();
    assert_eq!(usize::from(ip6.payload_length), out6.len() - 54);
}

/// Pushes then pops and checks the original frame and metadata return.
fn round_trip(push: TnlPush, kind: TunnelKind, csum: bool, inner: Vec<u8>) {
    let mut h = Harness::new();
    h.exec.set_tunnel_port(TNL_PORT, kind);
    let out = encapsulate(&mut h, &push, &inner);
    h.run(&[Action::TnlPop(TNL_PORT)], &[&out]);
    assert_eq!(h.exec.drops().total(), 0, "{:?}", h.exec.drops());
    assert_eq!(h.sink.recirculated.len(), 1);
    let popped = &h.sink.recirculated[0];
    assert_eq!(popped.data(), &inner[..], "original frame back");
    let meta = popped.meta();
    assert_eq!(meta.in_port, TNL_PORT);
    assert_eq!(meta.recirc_id, 0);
    assert_eq!(meta.recirc_depth, 1);
    assert_eq!(meta.packet_type, PacketType::ETHERNET);
    assert!(
        !meta.rss_hash_valid,
        "the outer hash is not the inner flow's"
    );
    let tun = &meta.tunnel;
    assert!(tun.is_valid());
    if out[12..14] == [0x08, 0x00] {
        assert_eq!((tun.ipv4_src, tun.ipv4_dst), (VTEP_A, VTEP_B));
    } else {
        assert_eq!((tun.ipv6_src, tun.ipv6_dst), (VTEP6_A, VTEP6_B));
    }
    assert_eq!((tun.tos, tun.ttl), (TOS, 64));
    // The outer IPv4 header has DF, which OVS's tnl_pop does not carry
    // into the metadata (IPv6 has no such bit).
    let mut flags = if csum { tnl_flags::CSUM } else { 0 };
    match kind {
        TunnelKind::Vxlan | TunnelKind::Geneve => {
            flags |= tnl_flags::KEY;
            assert_eq!(tun.tp_src, tunnel::src_port(inner_hash(&inner)));
            let dst = if kind == TunnelKind::Vxlan {
                4789
            } else {
                6081
            };
            assert_eq!(tun.tp_dst, dst);
        }
        TunnelKind::Gre => {
            if tun.tun_id != 0 {
                flags |= tnl_flags::KEY;
            }
        }
    }
    assert_eq!(tun.flags, flags);
    if kind == TunnelKind::Geneve {
        assert_eq!(tun.geneve_options(), &GENEVE_OPTS);
    } else {
        assert_eq!(tun.geneve_len, 0);
    }
}

#[test]
fn vxlan_push_then_pop_round_trips() {
    for ip in [Ip::V4, Ip::V6] {
        for csum in [false, true] {
            round_trip(
                vxlan_push(ip, 0x7b, csum),
                TunnelKind::Vxlan,
                csum,
                tcp4(b"rt"),
            );
        }
    }
    let mut h = Harness::new();
    h.exec.set_tunnel_port(TNL_PORT, TunnelKind::Vxlan);
    let out = encapsulate(&mut h, &vxlan_push(Ip::V4, 0xfedcba, false), &udp4(b"vni"));
    h.run(&[Action::TnlPop(TNL_PORT)], &[&out]);
    assert_eq!(h.sink.recirculated[0].meta().tunnel.tun_id, 0xfedcba);
}

#[test]
fn geneve_push_then_pop_round_trips_with_options() {
    for ip in [Ip::V4, Ip::V6] {
        for csum in [false, true] {
            let push = geneve_push(ip, 0x123456, &GENEVE_OPTS, csum);
            round_trip(push, TunnelKind::Geneve, csum, udp6(b"rt6"));
        }
    }
}

#[test]
fn gre_push_then_pop_round_trips() {
    round_trip(
        gre_push(Ip::V4, Some(0xdead), true),
        TunnelKind::Gre,
        true,
        tcp4(b"g"),
    );
    round_trip(
        gre_push(Ip::V4, None, false),
        TunnelKind::Gre,
        false,
        tcp4(b"g"),
    );
    round_trip(
        gre_push(Ip::V6, Some(1), false),
        TunnelKind::Gre,
        false,
        tcp6(b"g6"),
    );
}

#[test]
fn pop_strips_ethernet_padding_and_works_without_offsets() {
    let mut h = Harness::new();
    h.exec.set_tunnel_port(TNL_PORT, TunnelKind::Vxlan);
    let inner = tcp4(b"pad");
    let mut out = encapsulate(&mut h, &vxlan_push(Ip::V4, 5, false), &inner);
    out.extend_from_slice(&[0xee; 6]);
    // Not extracted: the executor finds the outer headers itself.
    let mut batch = PacketBatch::new();
    batch.push(h.pool.alloc_from(&out).unwrap()).unwrap();
    h.exec
        .execute(&[Action::TnlPop(TNL_PORT)], &mut batch, &mut h.sink, 0);
    assert_eq!(h.sink.recirculated[0].data(), &inner[..]);
}

/// Runs `tnl_pop` on `frame` and expects it dropped for `reason`.
fn expect_pop_drop(kind: TunnelKind, frame: &[u8], reason: DropReason, what: &str) {
    let mut h = Harness::new();
    h.exec.set_tunnel_port(TNL_PORT, kind);
    h.run(&[Action::TnlPop(TNL_PORT)], &[frame]);
    assert_eq!(h.dropped(reason), 1, "{what}: {:?}", h.exec.drops());
    assert_eq!(h.exec.drops().total(), 1, "{what}");
    assert!(h.sink.recirculated.is_empty(), "{what}");
}

fn fix_ipv4_header_checksum(frame: &mut [u8]) {
    frame[24..26].fill(0);
    let c = rfc1071(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn mangled_outer_headers_are_tunnel_pop_errors() {
    let mut h = Harness::new();
    let inner = tcp4(b"victim");
    let vx = encapsulate(&mut h, &vxlan_push(Ip::V4, 9, true), &inner);
    // Without a UDP checksum, so a mangled VXLAN header is not first
    // caught as a bad checksum.
    let vx_plain = encapsulate(&mut h, &vxlan_push(Ip::V4, 9, false), &inner);
    let gnv = encapsulate(&mut h, &geneve_push(Ip::V4, 9, &GENEVE_OPTS, false), &inner);
    let gre = encapsulate(&mut h, &gre_push(Ip::V4, Some(9), true), &inner);
    drop(h);
    let err = DropReason::TunnelPopError;
    let mangle = |frame: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = frame.to_vec();
        f(&mut v);
        v
    };

    expect_pop_drop(
        TunnelKind::Vxlan,
        &mangle(&vx, &|v| v[22] = 1),
        err,
        "bad IPv4 checksum",
    );
    expect_pop_drop(
        TunnelKind::Vxlan,
        &mangle(&vx, &|v| {
            v[20] = 0x20; // more fragments
            fix_ipv4_header_checksum(v);
        }),
        DropReason::TunnelFragment,
        "fragment",
    );
    expect_pop_drop(
        TunnelKind::Vxlan,
        &mangle(&vx, &|v| {
            v[16..18].copy_from_slice(&2000u16.to_be_bytes());
            fix_ipv4_header_checksum(v);
        }),
        err,
        "IP total length beyond the frame",
    );
    expect_pop_drop(TunnelKind::Vxlan, &vx[..60], err, "truncated");
    expect_pop_drop(
        TunnelKind::Vxlan,
        &mangle(&vx, &|v| {
            // IHL 6 with a 4-byte NOP option: OVS refuses IP options.
            v[14] = 0x46;
            v.splice(34..34, [1, 1, 1, 1]);
            let tot = u16::from_be_bytes([v[16], v[17]]) + 4;
            v[16..18].copy_from_slice(&tot.to_be_bytes());
            v[24..26].fill(0);
            let c = rfc1071(&v[14..38]);
            v[24..26].copy_from_slice(&c.to_be_bytes());
        }),
        err,
        "IPv4 options",
    );
    expect_pop_drop(
        TunnelKind::Vxlan,
        &mangle(&vx_plain, &|v| v[42] = 0x0c),
        err,
        "VXLAN flags",
    );
    expect_pop_drop(
        TunnelKind::Vxlan,
        &mangle(&vx_plain, &|v| v[49] = 1),
        err,
        "VXLAN reserved",
    );
    expect_pop_drop(
        TunnelKind::Vxlan,
        &mangle(&vx, &|v| *v.last_mut().unwrap() ^= 0xff),
        DropReason::TunnelBadChecksum,
        "UDP checksum",
    );
    expect_pop_drop(TunnelKind::Gre, &vx, err, "UDP packet on a GRE port");

    expect_pop_drop(
        TunnelKind::Geneve,
        &mangle(&gnv, &|v| v[42] |= 0x40),
        err,
        "Geneve version",
    );
    expect_pop_drop(
        TunnelKind::Geneve,
        &mangle(&gnv, &|v| v[45] = 0x59),
        err,
        "Geneve protocol",
    );

    expect_pop_drop(
        TunnelKind::Gre,
        &mangle(&gre, &|v| v[34] |= 0x40),
        err,
        "GRE routing bit",
    );
    expect_pop_drop(
        TunnelKind::Gre,
        &mangle(&gre, &|v| v[35] |= 0x01),
        err,
        "GRE version",
    );
    expect_pop_drop(
        TunnelKind::Gre,
        &mangle(&gre, &|v| *v.last_mut().unwrap() ^= 1),
        DropReason::TunnelBadChecksum,
        "GRE checksum",
    );
    expect_pop_drop(TunnelKind::Vxlan, &inner, err, "not a tunnel packet");

    let mut h = Harness::new();
    h.run(&[Action::TnlPop(77)], &[&vx]);
    assert_eq!(h.dropped(DropReason::InvalidTunnelPort), 1);
}

#[test]
fn pop_not_last_recirculates_a_copy_and_respects_depth() {
    let mut h = Harness::new();
    h.exec.set_tunnel_port(TNL_PORT, TunnelKind::Vxlan);
    let inner = tcp4(b"copy");
    let out = encapsulate(&mut h, &vxlan_push(Ip::V4, 3, false), &inner);
    h.run(&[Action::TnlPop(TNL_PORT), Action::Output(1)], &[&out]);
    assert_eq!(h.sink.recirculated[0].data(), &inner[..]);
    assert_eq!(h.sink.sent(1), vec![out.clone()]);
    h.assert_no_leak();

    let mut batch = h.batch(&[&out]);
    batch.get_mut(0).unwrap().meta_mut().recirc_depth = 8;
    h.exec
        .execute(&[Action::TnlPop(TNL_PORT)], &mut batch, &mut h.sink, 0);
    assert_eq!(h.dropped(DropReason::RecircDepth), 1);
}

#[test]
fn bad_push_headers_and_missing_headroom_are_counted() {
    let mut h = Harness::new();
    let mut wrong = vxlan_push(Ip::V4, 1, false);
    wrong.tnl_type = vport_type::GRE;
    h.run(&[Action::TnlPush(wrong), Action::Output(2)], &[tcp4(b"")]);
    assert_eq!(h.dropped(DropReason::TunnelPushError), 1);

    let mut erspan = vxlan_push(Ip::V4, 1, false);
    erspan.tnl_type = vport_type::ERSPAN;
    h.run(&[Action::TnlPush(erspan), Action::Output(2)], &[tcp4(b"")]);
    assert_eq!(h.dropped(DropReason::Unsupported), 1);

    // 64 bytes of Geneve options over IPv6: a 134-byte header, more than
    // the 128-byte headroom; the packet slides into its tailroom.
    let mut opts = vec![0x01, 0x02, 0x01, 15];
    opts.extend_from_slice(&[0x5a; 60]);
    let big = geneve_push(Ip::V6, 1, &opts, true);
    assert!(big.header.len() > 128);
    let inner = tcp4(b"many options");
    let out = encapsulate(&mut h, &big, &inner);
    check_outer_udp(&out, &inner, true);
    h.exec.set_tunnel_port(TNL_PORT, TunnelKind::Geneve);
    h.run(&[Action::TnlPop(TNL_PORT)], &[&out]);
    assert_eq!(h.sink.recirculated[0].data(), &inner[..]);
    assert_eq!(
        h.sink.recirculated[0].meta().tunnel.geneve_options(),
        &opts[..]
    );

    // No room at either end of the buffer.
    let huge = udp4(&vec![0; h.pool.buffer_size() - 60]);
    h.run(&[Action::TnlPush(big), Action::Output(2)], &[&huge]);
    assert_eq!(h.dropped(DropReason::TunnelPushError), 2);
}

#[test]
fn trunc_applies_to_the_pushed_packet() {
    let mut h = Harness::new();
    let inner = udp4(&[1; 300]);
    let push = vxlan_push(Ip::V4, 1, true);
    h.run(
        &[
            Action::Trunc(100),
            Action::TnlPush(push.clone()),
            Action::Output(2),
        ],
        &[&inner],
    );
    let out = h.sink.sent(2).pop().unwrap();
    assert_eq!(&out[push.header.len()..], &inner[..100]);
    check_outer_udp(&out, &inner[..100], true);
}

#[test]
fn gre_sequence_numbers_count_per_tunnel_port() {
    let mut h = Harness::new();
    let mut push = gre_push(Ip::V4, Some(5), true);
    // Add the S bit and its 4-byte field after the key.
    push.header[34] |= 0x10;
    push.header.extend_from_slice(&[0xaa; 4]);
    let mut other = push.clone();
    other.tnl_port = TNL_PORT + 1;
    let inner = tcp4(b"seq");
    let seqs = |h: &mut Harness, push: &TnlPush, n: usize| -> Vec<u32> {
        let frames: Vec<_> = (0..n).map(|_| inner.clone()).collect();
        h.run(&[Action::TnlPush(push.clone()), Action::Output(2)], &frames);
        let out = h.sink.sent(2);
        h.assert_no_leak();
        out.iter()
            .map(|f| {
                assert_eq!(
                    rfc1071(&f[34..]),
                    0,
                    "GRE checksum covers the sequence number"
                );
                u32::from_be_bytes(f[46..50].try_into().unwrap())
            })
            .collect()
    };
    assert_eq!(seqs(&mut h, &push, 3), vec![0, 1, 2]);
    assert_eq!(seqs(&mut h, &other, 1), vec![0]);
    assert_eq!(seqs(&mut h, &push, 2), vec![3, 4]);

    h.exec.set_tunnel_port(TNL_PORT, TunnelKind::Gre);
    h.run(&[Action::TnlPush(push), Action::Output(2)], &[&inner]);
    let out = h.sink.sent(2).pop().unwrap();
    h.assert_no_leak();
    h.run(&[Action::TnlPop(TNL_PORT)], &[&out]);
    assert_eq!(h.sink.recirculated[0].data(), &inner[..]);
    assert_eq!(h.sink.recirculated[0].meta().tunnel.tun_id, 5);
}

/// Runs `tnl_pop` on a port configured as `port` and returns the drop
/// counters (and what was recirculated).
fn pop_on(port: TunnelPort, frame: &[u8]) -> (u64, Vec<Vec<u8>>, DropCounters) {
    let mut h = Harness::new();
    h.exec.set_tunnel_port_config(TNL_PORT, port);
    h.run(&[Action::TnlPop(TNL_PORT)], &[frame]);
    let out = h
        .sink
        .recirculated
        .iter()
        .map(|p| p.data().to_vec())
        .collect();
    (h.exec.drops().total(), out, h.exec.drops().clone())
}

#[test]
fn port_receive_checks_have_their_own_drop_reasons() {
    let mut h = Harness::new();
    let inner = tcp4(b"named drops");
    let vx9 = encapsulate(&mut h, &vxlan_push(Ip::V4, 9, false), &inner);
    let vx9_csum = encapsulate(&mut h, &vxlan_push(Ip::V4, 9, true), &inner);
    let critical = [0x01, 0x02, 0x81, 0x01, 1, 2, 3, 4];
    let gnv_crit = encapsulate(&mut h, &geneve_push(Ip::V4, 9, &critical, false), &inner);
    // A critical option after a non-critical one is still found.
    let mut two = GENEVE_OPTS.to_vec();
    two.extend_from_slice(&critical);
    let gnv_crit2 = encapsulate(&mut h, &geneve_push(Ip::V6, 9, &two, true), &inner);
    let gre_plain = encapsulate(&mut h, &gre_push(Ip::V4, Some(9), false), &inner);
    drop(h);

    let vxlan = TunnelPort::new(TunnelKind::Vxlan);
    let fixed = |key| TunnelPort {
        key: Some(key),
        ..vxlan
    };
    // The right key passes, another is a wrong VNI.
    let (drops, out, _) = pop_on(fixed(9), &vx9);
    assert_eq!((drops, out), (0, vec![inner.clone()]));
    let (drops, out, c) = pop_on(fixed(10), &vx9);
    assert_eq!((drops, out.len()), (1, 0));
    assert_eq!(c.get(DropReason::TunnelWrongVni), 1, "{c:?}");

    // csum=true: a packet without a UDP checksum is refused, one with a
    // good checksum passes.
    let csum = TunnelPort {
        csum_required: true,
        ..vxlan
    };
    let (_, out, c) = pop_on(csum, &vx9);
    assert!(out.is_empty());
    assert_eq!(c.get(DropReason::TunnelBadChecksum), 1, "{c:?}");
    let (drops, out, _) = pop_on(csum, &vx9_csum);
    assert_eq!((drops, out), (0, vec![inner.clone()]));

    let gre_csum = TunnelPort {
        csum_required: true,
        ..TunnelPort::new(TunnelKind::Gre)
    };
    let (_, out, c) = pop_on(gre_csum, &gre_plain);
    assert!(out.is_empty());
    assert_eq!(c.get(DropReason::TunnelBadChecksum), 1, "GRE: {c:?}");

    for (frame, what) in [(&gnv_crit, "only option"), (&gnv_crit2, "second option")] {
        let (_, out, c) = pop_on(TunnelPort::new(TunnelKind::Geneve), frame);
        assert!(out.is_empty(), "{what}");
        assert_eq!(c.get(DropReason::TunnelGeneveCritical), 1, "{what}: {c:?}");
    }
}

/// A critical option the port's bridge maps is known: the packet is
/// decapsulated and its options reach the flow key as received; an
/// unmapped critical option is still dropped, and on a port that maps
/// options a list longer than the key holds is refused by name.
#[test]
fn mapped_critical_geneve_options_pass_and_reach_the_flow_key() {
    use dp_core::flow::key::GENEVE_KEY_OPTS;
    use tunnel::GeneveKnown;
    let mut h = Harness::new();
    let inner = tcp4(b"mapped option");
    let critical = [0x01, 0x02, 0x81, 0x01, 1, 2, 3, 4];
    let gnv_crit = encapsulate(&mut h, &geneve_push(Ip::V4, 9, &critical, false), &inner);
    // 36 bytes of non-critical options: more than the key holds.
    let mut long = vec![0x01, 0x02, 0x01, 8];
    long.extend_from_slice(&[0xab; 32]);
    assert!(long.len() > GENEVE_KEY_OPTS);
    let gnv_long = encapsulate(&mut h, &geneve_push(Ip::V4, 9, &long, false), &inner);
    drop(h);

    let known = |opts: &[(u16, u8)]| TunnelPort {
        geneve_known: GeneveKnown::new(opts.iter().copied()).unwrap(),
        ..TunnelPort::new(TunnelKind::Geneve)
    };
    let mut h = Harness::new();
    h.exec
        .set_tunnel_port_config(TNL_PORT, known(&[(0xffff, 0x80), (0x0102, 0x81)]));
    h.run(&[Action::TnlPop(TNL_PORT)], &[&gnv_crit]);
    assert_eq!(h.exec.drops().total(), 0, "{:?}", h.exec.drops());
    let p = &h.sink.recirculated[0];
    assert_eq!(p.data(), &inner[..]);
    let mut key = FlowKey::ZERO;
    extract_frame(p.data(), p.meta(), &mut key);
    assert_eq!(usize::from(key.tun_geneve_len), critical.len());
    assert_eq!(&key.tun_geneve[..critical.len()], &critical);
    assert!(key.tun_geneve[critical.len()..].iter().all(|b| *b == 0));

    // Same class, another type: still unknown.
    let (_, out, c) = pop_on(known(&[(0x0102, 0x80)]), &gnv_crit);
    assert!(out.is_empty());
    assert_eq!(c.get(DropReason::TunnelGeneveCritical), 1, "{c:?}");

    // Too long for the key: refused where options are mapped, passed
    // (without options in the key) where none are.
    let (_, out, c) = pop_on(known(&[(0xffff, 0x80)]), &gnv_long);
    assert!(out.is_empty());
    assert_eq!(c.get(DropReason::TunnelGeneveOptsTooLong), 1, "{c:?}");
    let mut h = Harness::new();
    h.exec
        .set_tunnel_port_config(TNL_PORT, TunnelPort::new(TunnelKind::Geneve));
    h.run(&[Action::TnlPop(TNL_PORT)], &[&gnv_long]);
    assert_eq!(h.exec.drops().total(), 0);
    let p = &h.sink.recirculated[0];
    assert_eq!(p.meta().tunnel.geneve_options(), &long[..]);
    let mut key = FlowKey::ZERO;
    extract_frame(p.data(), p.meta(), &mut key);
    assert_eq!(key.tun_geneve_len, 0);
}
