//! The benchmarks' far-side drop sink (`netdev_afxdp::drop_sink`): on a
//! veth end with no XDP program, every frame sent into the pair is counted
//! and dropped before the namespace's IP stack sees it (the backlog path,
//! not veth's NAPI), and detaching gives the interface back to the stack.

mod common;

use std::time::Duration;

use common::*;
use dp_core::packet::{MAX_BURST, PacketBatch, PacketPool, PoolConfig};
use netdev_afxdp::drop_sink::DropSink;

/// IPv4 packets namespace `ns`'s stack has received (`Ip: InReceives`).
fn ip_in_receives(ns: &str) -> u64 {
    let snmp = sh_output(&["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]);
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
    let col = names
        .split_whitespace()
        .position(|n| n == "InReceives")
        .expect("InReceives in /proc/net/snmp");
    values.split_whitespace().nth(col).unwrap().parse().unwrap()
}

/// A veth counter of `iface` in `ns` (`ethtool -S`).
fn ethtool_stat(ns: &str, iface: &str, name: &str) -> u64 {
    sh_output(&["ip", "netns", "exec", ns, "ethtool", "-S", iface])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{name}: "))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no {name} in ethtool -S {iface}"))
        .parse()
        .unwrap()
}

/// Sends `count` 60-byte broadcast IPv4/UDP frames out of host-side veth
/// end `iface` (a `system` port in this thread's namespace), a batch per
/// millisecond, so the receiver's backlog never overflows.
fn send_frames(iface: &str, count: usize) {
    let netdev = netdev_afxdp::open_netdev("system", iface, &[]).expect("generator port");
    let mut txq = netdev.open_txq(0).expect("generator txq");
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&netdev.info().mac);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&46u16.to_be_bytes());
    frame[22] = 64;
    frame[23] = 17;
    let pool = PacketPool::new("gen", PoolConfig::heap(4 * MAX_BURST));
    let mut batch = PacketBatch::new();
    let mut left = count;
    let mut idle_rounds = 0;
    while left > 0 {
        while !batch.is_full() && batch.len() < left {
            let _ = batch.push(pool.alloc_from(&frame).expect("a generator buffer"));
        }
        let sent = txq.send(&mut batch).sent;
        left -= sent;
        batch.clear();
        idle_rounds = if sent == 0 { idle_rounds + 1 } else { 0 };
        assert!(
            idle_rounds < 1000,
            "{iface} took none of the last 1000 batches"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn drop_sink_counts_every_frame_and_the_stack_sees_none() {
    if !prerequisites("drop sink (tcx)") {
        return;
    }
    let topo = Topology::veth("ds");
    let (ns, inner) = (topo.ns_b.clone(), topo.inner_b.clone());
    let sink = in_netns(&ns, move || DropSink::attach(&inner))
        .join()
        .unwrap()
        .expect("attaching the drop sink");
    const N: usize = 2000;
    let ip0 = ip_in_receives(&topo.ns_b);
    send_frames(&topo.host_b, N);
    // The frames are handled in softirq by the time the sends return;
    // give a loaded machine a moment anyway.
    wait_for("the drop sink to count every frame", 10, || {
        sink.dropped().unwrap() >= N as u64
    });
    let dropped = sink.dropped().unwrap();
    // The host end may add a few IPv6 neighbour-discovery frames.
    assert!(
        dropped <= N as u64 + 10,
        "the sink counted {dropped} frames for {N} sent"
    );
    assert_eq!(
        ip_in_receives(&topo.ns_b) - ip0,
        0,
        "IPv4 frames got past the drop sink to the namespace's stack"
    );
    assert_eq!(
        ethtool_stat(&topo.ns_b, &topo.inner_b, "rx_queue_0_xdp_packets"),
        0,
        "frames took veth's NAPI path (no XDP program, GRO off: there is none)"
    );

    // Detached, the interface is the stack's again.
    drop(sink);
    let ip1 = ip_in_receives(&topo.ns_b);
    send_frames(&topo.host_b, N);
    wait_for(
        "the stack to see the frames after the sink is gone",
        10,
        || ip_in_receives(&topo.ns_b) - ip1 >= N as u64,
    );
}

#[test]
fn drop_sink_names_a_missing_interface() {
    if !prerequisites("drop sink errors") {
        return;
    }
    let err = DropSink::attach("a6-no-such-if").unwrap_err();
    assert!(
        err.to_string().contains("a6-no-such-if"),
        "the error does not name the interface: {err}"
    );
}
