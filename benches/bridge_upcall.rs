//! The daemon's upcall handler ([`oxvs::bridge::Bridges`]) against
//! ofproto-lite alone, per new flow: what the daemon's own handler adds
//! to a flow setup (finding the bridge, crediting the rules, remembering
//! the megaflow's rules by UFID) on top of the translation that the DPDK
//! bench's `setup-ofproto` case measures.
//!
//! One bridge, `in_port=p1,actions=output:p2`; 50,000 UDP flows, each a
//! new megaflow (the key varies in the source address and port), as the
//! setup cases feed them. Cases, each the median of
//! `BRIDGE_BENCH_ROUNDS` (default 5) rounds on a fresh bridge:
//! - `ofproto`: `Ofproto::translate` per flow (the DPDK bench's handler);
//! - `bridges`: `Bridges::translate_upcall` per flow, one thread;
//! - `bridges-2t`: the same flows split over two threads at once (two
//!   PMDs upcalling together), wall time per flow.
//!
//! Output: `bridge_upcall <case> <ns per flow>`. For instruction counts,
//! `BRIDGE_BENCH_ROUNDS=1` under callgrind and the case's function.

use std::sync::Arc;
use std::time::Instant;

use dp_core::flow::FlowKey;
use dp_core::flow::key::{ETH_TYPE_IPV4, IPPROTO_UDP};
use dp_core::packet::{PacketPool, PoolConfig};
use dp_pmd::stats::PmdIdentity;
use dp_pmd::upcall::UpcallHandler;
use ofproto::{Ofproto, PortConfig};
use oxvs::bridge::Bridges;

const FLOWS: u32 = 50_000;

fn bridge() -> Arc<Ofproto> {
    let o = Ofproto::new("br0");
    o.add_port(PortConfig::new("p1", 1).with_ofport(1))
        .expect("port p1");
    o.add_port(PortConfig::new("p2", 2).with_ofport(2))
        .expect("port p2");
    o.add_flow("in_port=p1,actions=output:p2", 0).expect("flow");
    Arc::new(o)
}

fn bridges() -> Bridges {
    let b = Bridges::new();
    let br = bridge();
    b.attach_port(1, Arc::clone(&br));
    b.attach_port(2, Arc::clone(&br));
    b.add_bridge(br);
    b
}

/// Flow `i`'s key: UDP from 10.(i>>16).(i>>8).(i):1024+i%50000 to
/// 10.255.0.1:i%20, as the DPDK bench's capture.
fn key(i: u32) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = 1;
    k.dl_src = [2, 0, 0, 0, 0, 1];
    k.dl_dst = [2, 0, 0, 0, 0, 2];
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    k.nw_dst = [10, 255, 0, 1];
    k.nw_proto = IPPROTO_UDP;
    k.nw_ttl = 64;
    k.tp_src = (1024 + i % 50_000) as u16;
    k.tp_dst = (i % 20) as u16;
    k
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[inline(never)]
fn run_ofproto(o: &Ofproto, keys: &[FlowKey]) -> usize {
    let mut n = 0;
    for k in keys {
        n += o.translate(k, 0).actions.len();
    }
    n
}

#[inline(never)]
fn run_bridges(b: &Bridges, keys: &[FlowKey], packet: &dp_core::packet::Packet) -> usize {
    // The mask buffer, as the PMD keeps one.
    let mut mask = FlowKey::ZERO;
    let mut n = 0;
    for k in keys {
        if let Ok(up) = b.translate_upcall(k, packet, 0, PmdIdentity::Main, &mut mask) {
            n += up.install as usize;
        }
    }
    n
}

fn main() {
    let rounds: usize = std::env::var("BRIDGE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let keys: Vec<FlowKey> = (0..FLOWS).map(key).collect();
    let pool = PacketPool::new("bench", PoolConfig::heap(4));
    let packet = pool.alloc_from(&[0u8; 60]).expect("a packet");
    let per_flow = |t: Instant| t.elapsed().as_nanos() as f64 / f64::from(FLOWS);

    let mut ns = Vec::new();
    for _ in 0..rounds {
        let o = bridge();
        let t = Instant::now();
        assert_eq!(run_ofproto(&o, &keys), keys.len());
        ns.push(per_flow(t));
    }
    println!("bridge_upcall ofproto {:.1}", median(ns));

    let mut ns = Vec::new();
    for _ in 0..rounds {
        let b = bridges();
        let t = Instant::now();
        assert_eq!(run_bridges(&b, &keys, &packet), keys.len());
        ns.push(per_flow(t));
    }
    println!("bridge_upcall bridges {:.1}", median(ns));

    let mut ns = Vec::new();
    for _ in 0..rounds {
        let b = bridges();
        let (first, second) = keys.split_at(keys.len() / 2);
        let t = Instant::now();
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                let packet = pool.alloc_from(&[0u8; 60]).expect("a packet");
                run_bridges(&b, second, &packet)
            });
            assert_eq!(run_bridges(&b, first, &packet), first.len());
            assert_eq!(other.join().expect("second thread"), second.len());
        });
        ns.push(per_flow(t));
    }
    println!("bridge_upcall bridges-2t {:.1}", median(ns));
}
