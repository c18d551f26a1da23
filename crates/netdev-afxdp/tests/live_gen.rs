//! The benchmarks' live-frames generator (`netdev_afxdp::live_gen`): every
//! frame it sends out of a veth end reaches an AF_XDP port of ours on the
//! peer, byte for byte; with no XDP program on the peer, veth takes none,
//! and with a native XDP_PASS one (`XdpPass`) it hands them to the stack.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use dp_core::packet::PacketBatch;
use netdev_afxdp::live_gen::{LiveGen, XdpPass};

/// A 60-byte broadcast IPv4/UDP frame with a recognisable payload.
fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0xa6, 0x01]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = 0xa0 + i as u8;
    }
    f
}

/// Frames received by an afxdp port on `iface` in `ns` until `stop`: how
/// many were `expected` byte for byte, and how many others (the host end's
/// IPv6 neighbour discovery, say) came too.
fn afxdp_sink(
    ns: &str,
    iface: &str,
    expected: Vec<u8>,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    let iface = iface.to_string();
    in_netns(ns, move || {
        let netdev = netdev_afxdp::open_netdev("afxdp", &iface, &[]).expect("sink port");
        let mut rxq = netdev.open_rxq(0).expect("sink rxq");
        ready.store(true, Ordering::Release);
        let mut batch = PacketBatch::new();
        let (mut got, mut other) = (0, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            rxq.recv(&mut batch).expect("sink recv");
            for p in batch.iter() {
                if p.data() == expected.as_slice() {
                    got += 1;
                } else {
                    other += 1;
                }
            }
            batch.clear();
        }
        // What is still in the ring (a starved sink thread under load).
        while rxq.recv(&mut batch).expect("sink recv") > 0 {
            got += batch
                .iter()
                .filter(|p| p.data() == expected.as_slice())
                .count() as u64;
            batch.clear();
        }
        (got, other)
    })
}

#[test]
fn live_generator_frames_reach_the_peers_xdp_socket_intact() {
    if !prerequisites("live-frames generator") {
        return;
    }
    let topo = Topology::veth("lg");
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let sink = afxdp_sink(
        &topo.ns_b,
        &topo.inner_b,
        frame(),
        stop.clone(),
        ready.clone(),
    );
    wait_for("the sink's port to open", 10, || {
        ready.load(Ordering::Acquire)
    });
    const BURSTS: u32 = 20;
    const BURST: u32 = 50;
    let generator = LiveGen::new(&topo.host_b, &frame()).expect("loading the generator");
    for _ in 0..BURSTS {
        generator.send(BURST).expect("a live-frames run");
        // The sink's ring holds 2048 frames: stay well under it.
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Release);
    let (got, other) = sink.join().unwrap();
    assert_eq!(
        got,
        (BURSTS * BURST) as u64,
        "the sink got {got} of {} frames intact ({other} other frames)",
        BURSTS * BURST
    );
}

#[test]
fn live_generator_frames_need_an_xdp_program_on_the_peer_and_pass_takes_them() {
    if !prerequisites("live-frames generator without a peer program") {
        return;
    }
    let topo = Topology::veth("lh");
    let rx_packets = || -> u64 {
        let path = format!("/sys/class/net/{}/statistics/rx_packets", topo.inner_b);
        sh_output(&["ip", "netns", "exec", &topo.ns_b, "cat", &path])
            .trim()
            .parse()
            .unwrap()
    };
    let rx0 = rx_packets();
    let generator = LiveGen::new(&topo.host_b, &frame()).expect("loading the generator");
    // The run itself succeeds; the redirect fails (a veth end offers
    // ndo_xdp_xmit only while its peer has an XDP program) and the frames
    // are dropped.
    generator.send(1000).expect("a live-frames run");
    std::thread::sleep(Duration::from_millis(100));
    // The host end may add a few IPv6 neighbour-discovery frames.
    let rx = rx_packets() - rx0;
    assert!(
        rx < 10,
        "veth delivered {rx} frames to a peer without an XDP program"
    );

    // With a native XDP_PASS program on the peer (what the bench's kernel
    // system uses), veth takes them and hands them to the stack.
    let inner = topo.inner_b.clone();
    let pass = in_netns(&topo.ns_b, move || XdpPass::attach(&inner))
        .join()
        .unwrap()
        .expect("attaching the pass program");
    let rx1 = rx_packets();
    generator.send(1000).expect("a live-frames run");
    wait_for("the peer to count the live frames", 10, || {
        rx_packets() - rx1 >= 1000
    });
    drop(pass);
}
