//! The simple-match fast path of received batches (`pmd/simple_rx.rs`)
//! against the usual path: two PMDs stepped over dummy ports with the same
//! simple flows (in_port, dl_type, VLAN TCI, fragment bits), one with the
//! simple-match table off, must forward the same packets in the same
//! order, credit each flow the same packets, bytes and TCP flags, and
//! return every buffer. The traffic mixes what the fast path serves
//! (IPv4/IPv6 TCP and UDP, VLAN tags, fragments, ARP) with what it hands
//! back (MPLS, IPv6 extension headers, LLC, a truncated IPv4 header, a
//! packet with no flow yet) inside the same batches.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::flow_table::FlowTableConfig;
use dp_core::netdev::Netdev;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg, PolledRxq};
use testbed::datapath::{Megaflows, simple_match_mask};

fn eth(dl_type: u16) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1];
    f.extend_from_slice(&dl_type.to_be_bytes());
    f
}

/// IPv4 to 10.0.0.2 with `payload` bytes of protocol `proto`.
fn ipv4(proto: u8, payload: usize, frag: u16) -> Vec<u8> {
    let mut h = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    h[2..4].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h
}

fn ipv6(next: u8, payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h
}

/// A TCP header from port `sport` with `flags`.
fn tcp(sport: u16, flags: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[12..14].copy_from_slice(&((5 << 12) | flags).to_be_bytes());
    t
}

fn tcp4(sport: u16, flags: u16) -> Vec<u8> {
    [eth(0x0800), ipv4(6, 20, 0), tcp(sport, flags)].concat()
}

fn udp4(sport: u16) -> Vec<u8> {
    let mut udp = vec![0, 0, 0, 53, 0, 8, 0, 0];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    [eth(0x0800), ipv4(17, 8, 0), udp].concat()
}

fn tcp6(sport: u16, flags: u16) -> Vec<u8> {
    [eth(0x86dd), ipv6(6, 20), tcp(sport, flags)].concat()
}

fn vlan_tcp4(vid: u8, sport: u16) -> Vec<u8> {
    let mut f = eth(0x8100);
    f.extend_from_slice(&[0, vid]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend(ipv4(6, 20, 0));
    f.extend(tcp(sport, 0x10));
    f
}

/// Frames the fast path serves once their flows exist.
fn served(i: u16) -> Vec<u8> {
    match i % 8 {
        0 | 1 => tcp4(1000 + i, [0x10, 0x18, 0x11][usize::from(i % 3)]),
        2 => udp4(2000 + i),
        3 => tcp6(3000 + i, 0x18),
        4 => vlan_tcp4(5, 4000 + i),
        5 => [eth(0x0800), ipv4(6, 20, 0x2000), tcp(5000 + i, 0x02)].concat(),
        6 => [eth(0x0800), ipv4(6, 20, 0x0010), tcp(6000 + i, 0x02)].concat(),
        _ => {
            let mut arp = eth(0x0806);
            arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 1, 2, 3, 4, 5, 6, 10, 0, 0, 1]);
            arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
            arp
        }
    }
}

/// Frames the fast path hands back (full parse needed), with flows
/// installed for them by the first pass too.
fn declined(i: u16) -> Vec<u8> {
    match i % 4 {
        0 => [eth(0x8847), vec![0, 1, 0x41, 64]].concat(),
        1 => [
            eth(0x86dd),
            ipv6(0, 28),
            vec![6, 0, 0, 0, 0, 0, 0, 0],
            tcp(7000 + i, 0x04),
        ]
        .concat(),
        2 => [eth(0x0040), vec![0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00]].concat(),
        _ => [eth(0x0800), vec![0x45, 0, 0, 20]].concat(),
    }
}

fn dump(pmd: &mut Pmd) -> Vec<FlowDump> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    let mut flows = rx.recv().unwrap();
    flows.sort_by_key(|f| f.ufid);
    flows
}

struct Rig {
    pmd: Pmd,
    p1: Arc<DummyNetdev>,
    p2: Arc<DummyNetdev>,
}

fn rig(simple_match: bool) -> Rig {
    let mut pmd = Pmd::new(
        PmdConfig {
            flow_table: FlowTableConfig {
                simple_match,
                ..FlowTableConfig::default()
            },
            ..PmdConfig::default()
        },
        // What ofproto-lite installs for `in_port=1,actions=output:2`:
        // a simple flow per (dl_type, TCI, frag).
        Arc::new(Megaflows::new(simple_match_mask(), |_, _| {
            vec![Action::Output(2)]
        })),
        Arc::new(AtomicUsize::new(1000)),
    );
    let p1 = Arc::new(DummyNetdev::new("p1", DummyConfig::default()));
    let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
    pmd.add_rxq(PolledRxq::new(1, "p1", 0, p1.open_rxq(0).unwrap()));
    pmd.add_txq(2, p2.open_txq(0).unwrap());
    Rig { pmd, p1, p2 }
}

#[test]
fn simple_rx_forwards_and_credits_as_the_usual_path() {
    let mut rigs = [rig(true), rig(false)];
    // Batches, in order: one of each kind (installs every flow); full
    // batches the fast path serves whole (one flow, then mixed flows);
    // batches with a declined packet or a new flow in the middle.
    let mut with_new: Vec<Vec<u8>> = (0..20).map(served).collect();
    with_new.insert(10, vlan_tcp4(9, 1));
    let batches: Vec<Vec<Vec<u8>>> = vec![
        (0..8).map(served).chain((0..4).map(declined)).collect(),
        // NS|PSH|ACK only here, a batch the fast path serves whole.
        (0..32)
            .map(|i| tcp4(100 + i, [0x10, 0x118][usize::from(i % 2)]))
            .collect(),
        (0..32).map(served).collect(),
        (0..31).map(served).chain([declined(1)]).collect(),
        with_new,
        (0..32).map(|i| served(i + 3)).collect(),
        (0..16).map(declined).chain((0..16).map(served)).collect(),
    ];

    let mut simple_hits = Vec::new();
    for r in &mut rigs {
        let mut hits = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            for f in batch {
                r.p1.receive(0, f).unwrap();
            }
            let now = (b as u64 + 1) * 1_000_000;
            assert_eq!(r.pmd.poll_once(now), batch.len());
            hits.push(r.pmd.stats().lookup.simple_match_hits);
        }
        simple_hits.push(hits);
    }
    let [simple, usual] = &mut rigs;

    let (sent_s, sent_u) = (simple.p2.take_sent(), usual.p2.take_sent());
    let total: usize = batches.iter().map(Vec::len).sum();
    assert_eq!(sent_s.len(), total, "every packet forwarded");
    assert_eq!(sent_s, sent_u, "same packets, same order");

    let (flows_s, flows_u) = (dump(&mut simple.pmd), dump(&mut usual.pmd));
    // IPv4 (plain, also the bad header's and the LLC/SNAP one's, whose
    // dl_type is IPv4's; first fragment; later fragment; VLAN 5; VLAN 9),
    // IPv6 (also the extension header's), ARP, MPLS.
    assert_eq!(flows_s.len(), 8);
    assert_eq!(flows_s.len(), flows_u.len());
    for (s, u) in flows_s.iter().zip(&flows_u) {
        assert_eq!(s.key, u.key);
        assert_eq!(s.stats.packets, u.stats.packets, "packets of {:?}", s.key);
        assert_eq!(s.stats.bytes, u.stats.bytes, "bytes of {:?}", s.key);
        assert_eq!(s.stats.tcp_flags, u.stats.tcp_flags, "flags of {:?}", s.key);
        assert_eq!(s.stats.used_ms, u.stats.used_ms);
    }
    let plain4 = flows_s
        .iter()
        .find(|f| f.key.dl_type == 0x0800 && f.key.nw_frag == 0 && f.key.vlans[0].tci == 0)
        .expect("IPv4 flow");
    // tcp4 of batch 1 (ACK, NS|PSH|ACK) and the served() ones: ACK,
    // PSH|ACK, FIN|ACK; UDP adds none.
    assert_eq!(plain4.stats.tcp_flags, 0x10 | 0x118 | 0x18 | 0x11);

    // The simple PMD served the all-simple batches from its simple table
    // (the usual path counts simple hits too, so the counts agree), and
    // the usual PMD never did.
    assert_eq!(simple_hits[1], vec![0; batches.len()]);
    assert_eq!(simple_hits[0][1], 32);
    assert_eq!(simple_hits[0][2], 64);
    let (s, u) = (simple.pmd.stats(), usual.pmd.stats());
    assert_eq!(s.packets_received, u.packets_received);
    assert_eq!(s.miss_upcall_ok, u.miss_upcall_ok);
    assert_eq!(
        s.lookup.simple_match_hits + s.lookup.emc_hits + s.lookup.megaflow_hits,
        u.lookup.emc_hits + u.lookup.megaflow_hits + u.lookup.smc_hits
    );

    for r in rigs {
        let Rig { pmd, p1, .. } = r;
        drop(pmd);
        assert_eq!(p1.pool().in_use(), 0, "every buffer back");
    }
}
