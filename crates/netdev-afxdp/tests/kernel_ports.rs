//! `system` (AF_PACKET) and `tap`/`internal` (TUN/TAP) ports between two
//! network namespaces, switched by a real datapath (their queues are
//! polled by the non-PMD thread): ping, 1000 mixed-size UDP datagrams each
//! way, a TCP transfer with checksum compare, and port removal under
//! traffic with every buffer back. A mixed test sends between an AF_XDP
//! port and an internal port (copy once in each direction).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use dp_core::netdev::Netdev;
use dp_core::packet::PacketPool;
use dp_pmd::datapath::{Datapath, PortOptions};
use netdev_afxdp::testing::xdp_attachment;
use netdev_afxdp::{AfxdpConfig, AfxdpNetdev, SystemNetdev, TapKind, TapNetdev};

fn port(n: u32) -> PortOptions {
    PortOptions {
        port_no: Some(n),
        ..PortOptions::default()
    }
}

fn full_traffic(tag: &str, topo: &Topology, dp: &Datapath) {
    wait_reachable(&topo.ns_a, IP_B);
    let Rtt {
        min_us: min,
        avg_us: avg,
    } = ping(&topo.ns_a, IP_B, 5);
    eprintln!("{tag}: ping a -> b rtt min {min:.0} µs avg {avg:.0} µs");
    ping(&topo.ns_b, IP_A, 3);
    udp_exchange(&topo.ns_a, &topo.ns_b, IP_B, 1000);
    udp_exchange(&topo.ns_b, &topo.ns_a, IP_A, 1000);
    let mbps = tcp_transfer(&topo.ns_a, &topo.ns_b, IP_B, 16 << 20);
    eprintln!("{tag}: TCP 16 MiB a -> b at {mbps:.0} Mbit/s");
    let stats = dp.port_stats(1).unwrap();
    assert!(
        stats.rx_packets >= 2000 && stats.tx_packets >= 1000,
        "{stats:?}"
    );
}

/// Floods a -> b, removes port 1 under the flood, and checks that the
/// removed port's pool is back to zero in use.
fn remove_under_traffic(topo: &Topology, dp: &mut Datapath, name: &str, pool: &PacketPool) {
    let stop = Arc::new(AtomicBool::new(false));
    let flood = udp_flood(&topo.ns_a, IP_B, Arc::clone(&stop));
    let before = dp.port_stats(1).unwrap().rx_packets;
    wait_for("traffic through port 1", 10, || {
        dp.port_stats(1).unwrap().rx_packets > before + 500
    });
    dp.del_port(name).unwrap();
    wait_for("buffers of the removed port back", 5, || pool.in_use() == 0);
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
}

/// The hosts keep tx checksum offload on (the default); only segmentation
/// offload is off (a super-frame does not fit a buffer). Their TCP and UDP
/// packets reach the ports with partial checksums, which the ports
/// complete: without that, not even the TCP handshake gets through.
#[test]
fn system_ports_complete_partial_checksums_from_offloading_hosts() {
    if !prerequisites("system ports, checksum offload on") {
        return;
    }
    let topo = Topology::veth("sc");
    for (ns, inner) in [(&topo.ns_a, &topo.inner_a), (&topo.ns_b, &topo.inner_b)] {
        sh(&[
            "ip", "netns", "exec", ns, "ethtool", "-K", inner, "tx", "on", "tso", "off", "gso",
            "off",
        ]);
    }
    let a = Arc::new(SystemNetdev::open(&topo.host_a).unwrap_or_else(|e| panic!("{e}")));
    let b = Arc::new(SystemNetdev::open(&topo.host_b).unwrap_or_else(|e| panic!("{e}")));
    let mut dp = datapath(false);
    dp.add_port(a.clone(), port(1)).unwrap();
    dp.add_port(b.clone(), port(2)).unwrap();
    full_traffic("system, tx offload on", &topo, &dp);
    // The 16 MiB transfer alone is thousands of segments; the few packets
    // a stack sends without offload (ICMP) are not counted.
    assert!(
        a.checksums_completed() > 1000 && b.checksums_completed() > 100,
        "completed: a {} b {}",
        a.checksums_completed(),
        b.checksums_completed()
    );
    drop(dp);
    assert_eq!(a.pool().in_use() + b.pool().in_use(), 0);
}

#[test]
fn system_ports_ping_udp_tcp_and_removal() {
    if !prerequisites("system ports") {
        return;
    }
    let topo = Topology::veth("sy");
    let a = SystemNetdev::open(&topo.host_a).unwrap_or_else(|e| panic!("{e}"));
    let b = SystemNetdev::open(&topo.host_b).unwrap_or_else(|e| panic!("{e}"));
    assert!(!a.is_pmd());
    assert!(a.has_rx_ring(), "PACKET_MMAP rx ring in use");
    let (pool_a, pool_b) = (a.pool().clone(), b.pool().clone());
    let mut dp = datapath(false);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();
    full_traffic("system", &topo, &dp);
    remove_under_traffic(&topo, &mut dp, &topo.host_a, &pool_a);
    drop(dp);
    assert_eq!(pool_b.in_use(), 0);
}

#[test]
fn tap_ports_ping_udp_tcp_and_removal() {
    if !prerequisites("tap ports") {
        return;
    }
    let topo = Topology::namespaces("tp");
    let a = TapNetdev::open(&topo.host_a, TapKind::Tap).unwrap_or_else(|e| panic!("{e}"));
    let b = TapNetdev::open(&topo.host_b, TapKind::Tap).unwrap_or_else(|e| panic!("{e}"));
    assert!(!a.is_pmd() && a.type_name() == "tap");
    topo.move_tap(&topo.host_a, &topo.ns_a, IP_A);
    topo.move_tap(&topo.host_b, &topo.ns_b, IP_B);
    let (pool_a, pool_b) = (a.pool().clone(), b.pool().clone());
    let mut dp = datapath(false);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();
    full_traffic("tap", &topo, &dp);
    remove_under_traffic(&topo, &mut dp, &topo.host_a, &pool_a);
    // The tap device goes with its port (not persistent).
    wait_for("the removed tap device to disappear", 5, || {
        !std::process::Command::new("ip")
            .args(["-n", &topo.ns_a, "link", "show", &topo.host_a])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    drop(dp);
    assert_eq!(pool_b.in_use(), 0);
}

#[test]
fn afxdp_to_internal_port_and_back() {
    if !prerequisites("afxdp <-> internal") {
        return;
    }
    // Side a: a veth end as an AF_XDP port. Side b: the bridge's internal
    // port, moved into namespace b to stand for the host stack.
    let topo = Topology::veth("in");
    let bridge = format!("{}br", &topo.host_b[..topo.host_b.len().min(12)]);
    let a =
        AfxdpNetdev::open(&topo.host_a, &AfxdpConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let watches = a.umem_watches();
    let b = TapNetdev::open(&bridge, TapKind::Internal).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.type_name(), "internal");
    // Namespace b keeps its veth end but without the address: the address
    // goes on the internal port.
    sh(&[
        "ip",
        "-n",
        &topo.ns_b,
        "addr",
        "flush",
        "dev",
        &topo.inner_b,
    ]);
    topo.move_tap(&bridge, &topo.ns_b, IP_B);
    let pool_b = b.pool().clone();
    let mut dp = datapath(false);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();
    full_traffic("afxdp<->internal", &topo, &dp);
    drop(dp);
    assert!(watches.iter().all(|w| w.in_use() == 0));
    assert_eq!(pool_b.in_use(), 0);
    assert_eq!(xdp_attachment(&topo.host_a).unwrap().prog_id, 0);
    assert!(!Path::new(&format!("/sys/class/net/{bridge}")).exists());
}

#[test]
fn open_errors_name_the_interface() {
    if !prerequisites("kernel port errors") {
        return;
    }
    let err = SystemNetdev::open("oxvs-nonexist").unwrap_err();
    assert!(
        matches!(err.cause, netdev_afxdp::OpenCause::NoSuchInterface),
        "{err}"
    );
    assert!(err.to_string().contains("oxvs-nonexist"), "{err}");
    // A tap port on a name that a veth already holds.
    let topo = Topology::veth("te");
    let err = TapNetdev::open(&topo.host_a, TapKind::Tap).unwrap_err();
    assert!(err.to_string().contains("not a tap device"), "{err}");
    assert!(err.to_string().contains(&topo.host_a), "{err}");

    let err = netdev_afxdp::open_netdev("afxdp", "x", &[("xdp-mode", "turbo")]).unwrap_err();
    assert!(err.to_string().contains("turbo"), "{err}");
    let err = netdev_afxdp::open_netdev("vxlan", "x", &[]).unwrap_err();
    assert!(err.to_string().contains("unknown port type"), "{err}");
}

#[test]
fn system_ports_with_recvmmsg_instead_of_the_ring() {
    if !prerequisites("system ports (recvmmsg)") {
        return;
    }
    let topo = Topology::veth("sm");
    let a = SystemNetdev::open_with_recvmmsg(&topo.host_a).unwrap_or_else(|e| panic!("{e}"));
    let b = SystemNetdev::open_with_recvmmsg(&topo.host_b).unwrap_or_else(|e| panic!("{e}"));
    assert!(!a.has_rx_ring());
    let (pool_a, pool_b) = (a.pool().clone(), b.pool().clone());
    let mut dp = datapath(false);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();
    full_traffic("system/recvmmsg", &topo, &dp);
    drop(dp);
    assert_eq!((pool_a.in_use(), pool_b.in_use()), (0, 0));
}
