//! AF_XDP ports on the host ends of two veth pairs, switched by a real
//! datapath (one PMD): ping, 1000 mixed-size UDP datagrams each way, a TCP
//! transfer with checksum compare, port removal under traffic (UMEM frames
//! all back, XDP detached), stale-program replacement, and the errors that
//! name their cause.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use dp_pmd::datapath::PortOptions;
use netdev_afxdp::testing::{attach_stale_program, xdp_attachment};
use netdev_afxdp::{AfxdpConfig, AfxdpNetdev, OpenCause, UmemGroup, UmemWatch, XdpMode};

fn open(name: &str, mode: XdpMode) -> AfxdpNetdev {
    AfxdpNetdev::open(
        name,
        &AfxdpConfig {
            xdp_mode: mode,
            ..AfxdpConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn port(n: u32) -> PortOptions {
    PortOptions {
        port_no: Some(n),
        ..PortOptions::default()
    }
}

/// Ping, UDP both ways and TCP through two AF_XDP ports in `mode`.
fn traffic(tag: &str, mode: XdpMode, use_need_wakeup: bool) {
    traffic_with(
        tag,
        AfxdpConfig {
            xdp_mode: mode,
            use_need_wakeup,
            ..AfxdpConfig::default()
        },
    );
}

/// Ping, UDP both ways and TCP through two AF_XDP ports opened with
/// `config`.
fn traffic_with(tag: &str, config: AfxdpConfig) {
    let topo = Topology::veth(tag);
    let a = AfxdpNetdev::open(&topo.host_a, &config).unwrap_or_else(|e| panic!("{e}"));
    let b = AfxdpNetdev::open(&topo.host_b, &config).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{tag}: xdp-mode in use {}", a.xdp_mode_in_use());
    let watches: Vec<UmemWatch> = a
        .umem_watches()
        .into_iter()
        .chain(b.umem_watches())
        .collect();
    let mut dp = datapath(false);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();

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
    drop(dp);
    for w in &watches {
        assert_eq!(w.in_use(), 0, "UMEM frames still lent after shutdown");
    }
    for host in [&topo.host_a, &topo.host_b] {
        assert_eq!(
            xdp_attachment(host).unwrap().prog_id,
            0,
            "{host}: XDP left attached"
        );
    }
}

#[test]
fn best_effort_ping_udp_and_tcp_across_the_switch() {
    if !prerequisites("afxdp best-effort traffic") {
        return;
    }
    traffic("xb", XdpMode::BestEffort, true);
}

#[test]
fn generic_mode_ping_udp_and_tcp_across_the_switch() {
    if !prerequisites("afxdp generic traffic") {
        return;
    }
    traffic("xg", XdpMode::Generic, true);
}

#[test]
fn native_mode_without_need_wakeup() {
    if !prerequisites("afxdp native, no need_wakeup") {
        return;
    }
    traffic("xn", XdpMode::Native, false);
}

#[test]
fn ring_sizes_from_the_options_carry_traffic() {
    if !prerequisites("afxdp n_rxq_desc/n_txq_desc") {
        return;
    }
    // Rx rings four times and tx rings an eighth of the default: each
    // ring is mapped and indexed with its own size (a mix-up corrupts or
    // loses frames), and every frame still comes back.
    let config =
        netdev_afxdp::afxdp_config(&[("n_rxq_desc", "8192"), ("n_txq_desc", "256")]).unwrap();
    assert_eq!((config.rx_ring_size, config.tx_ring_size), (8192, 256));
    traffic_with("xr", config);
}

#[test]
fn best_effort_on_veth_falls_back_from_zero_copy() {
    if !prerequisites("afxdp mode fallback") {
        return;
    }
    let topo = Topology::veth("xf");
    let netdev = open(&topo.host_a, XdpMode::BestEffort);
    // veth has native XDP but no zero-copy AF_XDP.
    assert_eq!(netdev.xdp_mode_in_use(), XdpMode::Native);
    assert_eq!(
        xdp_attachment(&topo.host_a).unwrap().attached,
        1,
        "driver mode"
    );
    drop(netdev);
    let err = AfxdpNetdev::open(
        &topo.host_a,
        &AfxdpConfig {
            xdp_mode: XdpMode::NativeWithZerocopy,
            ..AfxdpConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err.cause, OpenCause::NoXdpSupport { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&topo.host_a) && text.contains("native-with-zerocopy"),
        "{text}"
    );
    assert_eq!(
        xdp_attachment(&topo.host_a).unwrap().prog_id,
        0,
        "refusal left XDP attached"
    );
}

#[test]
fn port_removal_under_traffic_returns_every_frame_and_detaches_xdp() {
    if !prerequisites("afxdp removal under traffic") {
        return;
    }
    let topo = Topology::veth("xr");
    let a = open(&topo.host_a, XdpMode::BestEffort);
    let b = open(&topo.host_b, XdpMode::BestEffort);
    let watches_a = a.umem_watches();
    let watches_b = b.umem_watches();
    let mut dp = datapath(false);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();
    wait_reachable(&topo.ns_a, IP_B);

    let stop = Arc::new(AtomicBool::new(false));
    let flood = udp_flood(&topo.ns_a, IP_B, Arc::clone(&stop));
    let before = dp.port_stats(1).unwrap().rx_packets;
    wait_for("traffic through port 1", 10, || {
        dp.port_stats(1).unwrap().rx_packets > before + 1000
    });
    dp.del_port(&topo.host_a).unwrap();
    let still = dp.port_stats(2).unwrap().tx_packets;
    wait_for("UMEM frames of the removed port back", 5, || {
        watches_a.iter().all(|w| w.in_use() == 0)
    });
    assert_eq!(
        xdp_attachment(&topo.host_a).unwrap().prog_id,
        0,
        "removed port left its XDP program attached"
    );
    assert!(
        xdp_attachment(&topo.host_b).unwrap().prog_id != 0,
        "the other port keeps its XDP"
    );
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    eprintln!("flood sent {sent} datagrams; port 2 sent {still} before removal settled");
    drop(dp);
    for w in watches_a.iter().chain(&watches_b) {
        assert_eq!(w.in_use(), 0);
        assert!(w.free_frames() as u32 <= w.n_frames());
    }
    assert_eq!(xdp_attachment(&topo.host_b).unwrap().prog_id, 0);
}

#[test]
fn stale_program_is_replaced_and_a_live_one_is_refused() {
    if !prerequisites("afxdp stale program") {
        return;
    }
    let topo = Topology::veth("xs");
    attach_stale_program(&topo.host_a).expect("legacy attach");
    let stale = xdp_attachment(&topo.host_a).unwrap();
    assert_ne!(stale.prog_id, 0);
    let netdev = open(&topo.host_a, XdpMode::BestEffort);
    let now = xdp_attachment(&topo.host_a).unwrap();
    assert_ne!(now.prog_id, stale.prog_id, "the stale program was replaced");

    // A second port on the same interface while the first is open: the
    // program is owned by a live link and must not be taken over.
    let err = AfxdpNetdev::open(&topo.host_a, &AfxdpConfig::default()).unwrap_err();
    assert!(matches!(err.cause, OpenCause::XdpBusy { .. }), "{err}");
    drop(netdev);
    assert_eq!(xdp_attachment(&topo.host_a).unwrap().prog_id, 0);
}

#[test]
fn errors_name_the_interface_and_the_cause() {
    if !prerequisites("afxdp errors") {
        return;
    }
    let err = AfxdpNetdev::open("oxvs-nonexist", &AfxdpConfig::default()).unwrap_err();
    assert!(matches!(err.cause, OpenCause::NoSuchInterface), "{err}");
    assert!(err.to_string().contains("oxvs-nonexist"), "{err}");

    let topo = Topology::veth("xe");
    sh(&["ip", "link", "set", &topo.host_a, "mtu", "9000"]);
    let err = AfxdpNetdev::open(&topo.host_a, &AfxdpConfig::default()).unwrap_err();
    assert!(
        matches!(err.cause, OpenCause::MtuTooLarge { mtu: 9000, .. }),
        "{err}"
    );

    sh(&["ip", "link", "set", &topo.host_a, "mtu", "1500"]);
    let err = AfxdpNetdev::open(
        &topo.host_a,
        &AfxdpConfig {
            n_rxq: 2,
            ..AfxdpConfig::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err.cause,
            OpenCause::TooManyQueues {
                requested: 2,
                available: 1
            }
        ),
        "{err}"
    );
    assert_eq!(xdp_attachment(&topo.host_a).unwrap().prog_id, 0);
}

#[test]
fn mtu_from_the_config_is_set_and_one_too_large_for_a_frame_is_refused() {
    if !prerequisites("afxdp mtu") {
        return;
    }
    let topo = Topology::veth("xm");
    let with_mtu = |mtu| AfxdpConfig {
        mtu: Some(mtu),
        ..AfxdpConfig::default()
    };
    let iface_mtu = |name: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap()
    };

    // Too large: refused by name before the interface is touched.
    let err = AfxdpNetdev::open(&topo.host_a, &with_mtu(9000)).unwrap_err();
    assert!(
        matches!(err.cause, OpenCause::MtuTooLarge { mtu: 9000, max } if max == netdev_afxdp::afxdp::max_mtu()),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&topo.host_a) && text.contains("MTU 9000"),
        "{text}"
    );
    assert_eq!(iface_mtu(&topo.host_a), 1500);
    assert_eq!(xdp_attachment(&topo.host_a).unwrap().prog_id, 0);
    // The option parser gives the same answer at config check time.
    let err = netdev_afxdp::check_options("afxdp", &[("mtu", "9000")]).unwrap_err();
    assert!(err.contains("mtu 9000 is too large"), "{err}");

    // Within a frame: the interface gets it and the port reports it.
    let netdev = AfxdpNetdev::open(&topo.host_a, &with_mtu(2000)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(iface_mtu(&topo.host_a), 2000);
    assert_eq!(dp_core::netdev::Netdev::info(&netdev).mtu, 2000);
    drop(netdev);

    // Large frames cross the switch once both host ends and both hosts
    // have the MTU (no fragmentation: DF set by ping -M do).
    let config = with_mtu(2000);
    let a = AfxdpNetdev::open(&topo.host_a, &config).unwrap_or_else(|e| panic!("{e}"));
    let b = AfxdpNetdev::open(&topo.host_b, &config).unwrap_or_else(|e| panic!("{e}"));
    for (ns, inner) in [(&topo.ns_a, &topo.inner_a), (&topo.ns_b, &topo.inner_b)] {
        sh(&["ip", "-n", ns, "link", "set", inner, "mtu", "2000"]);
    }
    let mut dp = datapath(false);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();
    wait_reachable(&topo.ns_a, IP_B);
    sh(&[
        "ip", "netns", "exec", &topo.ns_a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do",
        "-s", "1900", IP_B,
    ]);
    drop(dp);
}

/// A host with tx checksum offload on hands AF_XDP packets whose checksum
/// is only the pseudo-header sum; the port cannot repair them (no
/// checksum state reaches XDP) but counts them, so the misconfiguration is
/// visible. With offload off (the topology's default) nothing is counted.
#[test]
fn partial_checksums_from_an_offloading_host_are_counted() {
    if !prerequisites("afxdp partial checksums") {
        return;
    }
    let topo = Topology::veth("xp");
    let a = Arc::new(open(&topo.host_a, XdpMode::BestEffort));
    let b = Arc::new(open(&topo.host_b, XdpMode::BestEffort));
    let mut dp = datapath(false);
    dp.add_port(a.clone(), port(1)).unwrap();
    dp.add_port(b.clone(), port(2)).unwrap();
    wait_reachable(&topo.ns_a, IP_B);
    udp_exchange(&topo.ns_a, &topo.ns_b, IP_B, 200);
    assert_eq!(a.rx_partial_checksums(), 0, "offload off: full checksums");

    sh(&[
        "ip",
        "netns",
        "exec",
        &topo.ns_a,
        "ethtool",
        "-K",
        &topo.inner_a,
        "tx",
        "on",
        "tso",
        "off",
        "gso",
        "off",
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let sink = udp_sink(&topo.ns_b, IP_B, Arc::clone(&stop));
    let flood = udp_flood(&topo.ns_a, IP_B, Arc::clone(&stop));
    wait_for("partial checksums counted on port a", 10, || {
        a.rx_partial_checksums() > 100
    });
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    sink.join().unwrap();
    assert!(a.rx_partial_checksums() <= sent, "{sent} sent");
    assert_eq!(
        b.rx_partial_checksums(),
        0,
        "b's host sent nothing offloaded"
    );
    drop(dp);
}

#[test]
fn two_queues_are_each_bound() {
    if !prerequisites("afxdp two queues") {
        return;
    }
    // A veth with two queues: both sockets are bound and in the XSKMAP, so
    // traffic hashed to either queue reaches the switch.
    let topo = Topology::veth("xq");
    sh(&["ip", "link", "del", &topo.host_a]);
    sh(&[
        "ip",
        "link",
        "add",
        &topo.host_a,
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        &topo.inner_a,
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
    ]);
    sh(&["ip", "link", "set", &topo.inner_a, "netns", &topo.ns_a]);
    sh(&["ip", "link", "set", &topo.host_a, "up"]);
    sh(&[
        "ip",
        "-n",
        &topo.ns_a,
        "addr",
        "add",
        &format!("{IP_A}/24"),
        "dev",
        &topo.inner_a,
    ]);
    sh(&["ip", "-n", &topo.ns_a, "link", "set", &topo.inner_a, "up"]);
    sh(&[
        "ip",
        "netns",
        "exec",
        &topo.ns_a,
        "ethtool",
        "-K",
        &topo.inner_a,
        "tx",
        "off",
    ]);
    // Both queues and port b share one UMEM: the second queue's socket
    // joins the first's on another queue of the same device (its own
    // fill and completion rings).
    let group = UmemGroup::new();
    let a = AfxdpNetdev::open(
        &topo.host_a,
        &AfxdpConfig {
            n_rxq: 2,
            umem_group: Some(group.clone()),
            ..AfxdpConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let b = AfxdpNetdev::open(&topo.host_b, &shared(&group)).unwrap_or_else(|e| panic!("{e}"));
    let watches = a.umem_watches();
    assert_eq!(watches.len(), 1, "the port's queues share one UMEM");
    assert!(b.umem_watches()[0].same_umem(&watches[0]));
    let mut dp = datapath(false);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();
    wait_reachable(&topo.ns_a, IP_B);
    let result = std::panic::catch_unwind(|| udp_exchange(&topo.ns_a, &topo.ns_b, IP_B, 1000));
    eprintln!(
        "port 1 {:?}\nport 2 {:?}",
        dp.port_stats(1),
        dp.port_stats(2)
    );
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    tcp_transfer(&topo.ns_a, &topo.ns_b, IP_B, 4 << 20);
    drop(dp);
    let audit = watches[0].audit();
    assert_eq!(audit.free, watches[0].n_frames() as usize, "{audit:?}");
    assert_eq!(audit.free_list_errors, 0);
}

#[test]
fn hairpin_sends_from_the_same_umem_without_a_copy() {
    if !prerequisites("afxdp hairpin") {
        return;
    }
    let topo = Topology::veth("xh");
    // A neighbour that does not exist: the switch reflects the frames back
    // into namespace a, whose stack drops them (not its MAC).
    sh(&[
        "ip",
        "-n",
        &topo.ns_a,
        "neigh",
        "add",
        "10.77.0.99",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        &topo.inner_a,
    ]);
    let a = Arc::new(open(&topo.host_a, XdpMode::BestEffort));
    let watches = a.umem_watches();
    let mut dp = datapath_with(false, Arc::new(Reflect));
    dp.add_port(Arc::clone(&a) as Arc<dyn dp_core::netdev::Netdev>, port(1))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flood = udp_flood(&topo.ns_a, "10.77.0.99", Arc::clone(&stop));
    wait_for("1000 reflected packets", 10, || {
        dp.port_stats(1).unwrap().tx_packets >= 1000
    });
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let stats = dp.port_stats(1).unwrap();
    let zero_copy = a.tx_zero_copy_packets();
    eprintln!("hairpin: {stats:?}, zero-copy tx {zero_copy}");
    // Every reflected packet but the upcalled ones went out as is.
    assert!(
        zero_copy >= stats.tx_packets.saturating_sub(10),
        "{zero_copy} of {}",
        stats.tx_packets
    );
    dp.del_port(&topo.host_a).unwrap();
    drop(dp);
    drop(a);
    for w in &watches {
        assert_eq!(w.in_use(), 0);
    }
    assert_eq!(xdp_attachment(&topo.host_a).unwrap().prog_id, 0);
}

/// Forwarding rate and latency through one busy-polling PMD (not a
/// pass/fail test: run with `--release -- --ignored --nocapture`).
#[test]
#[ignore = "measurement; run explicitly in release mode"]
fn measure_udp_rate_and_ping_through_one_pmd() {
    if !prerequisites("afxdp measurement") {
        return;
    }
    let topo = Topology::veth("xm");
    let a = open(&topo.host_a, XdpMode::BestEffort);
    let b = open(&topo.host_b, XdpMode::BestEffort);
    let mode = a.xdp_mode_in_use();
    let mut dp = datapath(true);
    dp.add_port(Arc::new(a), port(1)).unwrap();
    dp.add_port(Arc::new(b), port(2)).unwrap();
    wait_reachable(&topo.ns_a, IP_B);
    let Rtt {
        min_us: min,
        avg_us: avg,
    } = ping(&topo.ns_a, IP_B, 20);
    eprintln!(
        "measure: xdp-mode {mode}; ping rtt min {min:.0} µs avg {avg:.0} µs (busy-polling PMD)"
    );
    let mbps = tcp_transfer(&topo.ns_a, &topo.ns_b, IP_B, 256 << 20);
    eprintln!("measure: TCP 256 MiB a -> b at {mbps:.0} Mbit/s");

    // Generator: 60-byte UDP frames (64 on the wire) from an AF_PACKET
    // port on namespace a's veth end; sink: an AF_XDP port on namespace
    // b's end counting what arrives (the kernel stack stays out of it).
    let stop = Arc::new(AtomicBool::new(false));
    let sink = port_sink(&topo.ns_b, &topo.inner_b, "afxdp", Arc::clone(&stop));
    let gen_ = port_generator(&topo.ns_a, &topo.inner_a, "system", 60, Arc::clone(&stop));
    std::thread::sleep(std::time::Duration::from_millis(500));
    dp.pmd_stats_clear();
    let (rx0, tx0) = (
        dp.port_stats(1).unwrap().rx_packets,
        dp.port_stats(2).unwrap().tx_packets,
    );
    let t0 = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let secs = t0.elapsed().as_secs_f64();
    let (rx1, tx1) = (
        dp.port_stats(1).unwrap().rx_packets,
        dp.port_stats(2).unwrap().tx_packets,
    );
    let report = dp.pmd_stats_show().unwrap();
    stop.store(true, Ordering::Relaxed);
    let sent = gen_.join().unwrap();
    let received = sink.join().unwrap();
    eprintln!(
        "measure: 64-byte UDP: generator sent {sent}, sink got {received}; \
         port 1 rx {:.0} pps, port 2 tx {:.0} pps; port 1 {:?}",
        (rx1 - rx0) as f64 / secs,
        (tx1 - tx0) as f64 / secs,
        dp.port_stats(1).unwrap()
    );
    eprintln!("{report}");
}

/// The driver alone, no datapath: one thread moves packets from port a's
/// rx queue to port b's tx queue and times each call (run with
/// `--release -- --ignored --nocapture`; `DRIVER_LOOP_ONLY` picks one
/// variant, see below).
#[test]
#[ignore = "measurement; run explicitly in release mode"]
fn measure_driver_forwarding_loop() {
    if !prerequisites("afxdp driver loop") {
        return;
    }
    // Each queue its own UMEM (a copy per forwarded packet), then the two
    // ports on one UMEM (none), one after the other in one run; 64-byte
    // and 1,514-byte frames.
    for size in [60, 1514] {
        for (what, group) in [
            ("per-queue UMEMs", None),
            ("shared UMEM", Some(UmemGroup::new())),
        ] {
            // DRIVER_LOOP_ONLY="1514 shared" runs one variant (for
            // valgrind --tool=callgrind, whose counts are per process).
            if std::env::var("DRIVER_LOOP_ONLY").is_ok_and(|only| {
                !only
                    .split_whitespace()
                    .all(|w| format!("{size} {what}").contains(w))
            }) {
                continue;
            }
            driver_loop(what, group, size);
        }
    }
}

fn driver_loop(what: &str, umem_group: Option<UmemGroup>, size: usize) {
    use dp_core::netdev::Netdev;
    use dp_core::packet::PacketBatch;
    use std::time::{Duration, Instant};
    let topo = Topology::veth("xl");
    let config = AfxdpConfig {
        umem_group,
        ..AfxdpConfig::default()
    };
    let a = AfxdpNetdev::open(&topo.host_a, &config).unwrap_or_else(|e| panic!("{e}"));
    let b = AfxdpNetdev::open(&topo.host_b, &config).unwrap_or_else(|e| panic!("{e}"));
    let mut rxq = a.open_rxq(0).unwrap();
    let mut txq = b.open_txq(0).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sink = port_sink(&topo.ns_b, &topo.inner_b, "afxdp", Arc::clone(&stop));
    let gen_ = port_generator(&topo.ns_a, &topo.inner_a, "system", size, Arc::clone(&stop));
    let mut batch = PacketBatch::new();
    let (mut t_rx, mut t_tx, mut n_rx, mut calls_rx, mut calls_tx) =
        (Duration::ZERO, Duration::ZERO, 0u64, 0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let t = Instant::now();
        let n = rxq.recv(&mut batch).unwrap();
        t_rx += t.elapsed();
        calls_rx += 1;
        if n > 0 {
            n_rx += n as u64;
            let t = Instant::now();
            txq.send(&mut batch);
            t_tx += t.elapsed();
            calls_tx += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = gen_.join().unwrap();
    let got = sink.join().unwrap();
    eprintln!(
        "driver loop, {size}-byte frames, {what}: gen {sent}, forwarded {n_rx} ({} zero-copy, {} copied), sink {got}; \
         recv calls {calls_rx} ({:.2} µs avg), send calls {calls_tx} ({:.2} µs avg, {:.3} µs/packet)",
        b.tx_zero_copy_packets(),
        b.tx_copied_packets(),
        t_rx.as_secs_f64() * 1e6 / calls_rx as f64,
        t_tx.as_secs_f64() * 1e6 / calls_tx.max(1) as f64,
        t_tx.as_secs_f64() * 1e6 / n_rx.max(1) as f64,
    );
}

fn shared(group: &UmemGroup) -> AfxdpConfig {
    AfxdpConfig {
        umem_group: Some(group.clone()),
        ..AfxdpConfig::default()
    }
}

/// A megaflow mask on in_port only.
fn in_port_mask() -> dp_core::flow::FlowKey {
    let mut mask = dp_core::flow::FlowKey::ZERO;
    mask.in_port = u32::MAX;
    mask
}

/// 1 ↔ 2; 3 → 1 and 2 (a flood: a clone out of 1, the packet itself
/// out of 2); 4 → 2.
fn shared_routes(key: &dp_core::flow::FlowKey, _: u64) -> Vec<dp_core::action::Action> {
    use dp_core::action::Action::Output;
    match key.in_port {
        1 => vec![Output(2)],
        2 => vec![Output(1)],
        3 => vec![Output(1), Output(2)],
        4 => vec![Output(2)],
        _ => Vec::new(),
    }
}

/// One more veth pair, its inner end in a new namespace of `topo` with
/// `ip`, and a static neighbour entry there for [`IP_B`] (replies from b
/// go to port 1, so ARP from here would never be answered); returns the
/// host end's name and the namespace.
fn extra_leg(topo: &mut Topology, suffix: char, ip: &str) -> (String, String) {
    let ns = topo.add_namespace(&suffix.to_string());
    let host = format!("{}{suffix}", topo.host_a.trim_end_matches('a'));
    let inner = host.to_uppercase();
    // No IPv6 chatter in the copy counters: off before the link arrives.
    for scope in ["all", "default"] {
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{scope}.disable_ipv6=1"),
        ]);
    }
    add_veth(&host, &inner);
    topo.also_delete(&host);
    sh(&["ip", "link", "set", &inner, "netns", &ns]);
    sh(&["ip", "link", "set", &host, "up"]);
    sh(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{ip}/24"),
        "dev",
        &inner,
    ]);
    sh(&["ip", "-n", &ns, "link", "set", &inner, "up"]);
    let mac_b = sh_output(&[
        "ip",
        "-n",
        &topo.ns_b,
        "-br",
        "link",
        "show",
        "dev",
        &topo.inner_b,
    ]);
    let mac_b = mac_b
        .split_whitespace()
        .nth(2)
        .expect("mac of b's interface")
        .to_string();
    sh(&[
        "ip", "-n", &ns, "neigh", "add", IP_B, "lladdr", &mac_b, "dev", &inner,
    ]);
    (host, ns)
}

/// Waits until the datapath's ports have received nothing in two
/// 250 ms windows in a row: a stopped sender's packets still queued in
/// the rings are through (two windows, so that one PMD preemption on a
/// loaded machine does not pass for quiet).
fn settle(dp: &dp_pmd::datapath::Datapath, ports: std::ops::RangeInclusive<u32>) {
    let rx = || -> u64 {
        ports
            .clone()
            .map(|p| dp.port_stats(p).unwrap().rx_packets)
            .sum()
    };
    let mut last = rx();
    let mut quiet = 0;
    wait_for("the ports to go quiet", 10, || {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let now = rx();
        quiet = if std::mem::replace(&mut last, now) == now {
            quiet + 1
        } else {
            0
        };
        quiet >= 2
    });
}

/// (zero-copy, copied) tx packets of a port.
fn tx_copies(p: &AfxdpNetdev) -> (u64, u64) {
    (p.tx_zero_copy_packets(), p.tx_copied_packets())
}

#[test]
fn ports_of_one_umem_forward_without_a_copy_and_flood_by_one_clone() {
    if !prerequisites("afxdp shared UMEM") {
        return;
    }
    let mut topo = Topology::veth("xu");
    let (host_c, ns_c) = extra_leg(&mut topo, 'c', "10.77.0.3");
    let (host_d, ns_d) = extra_leg(&mut topo, 'd', "10.77.0.4");
    let group = UmemGroup::new();
    let open_shared = |name: &str| {
        Arc::new(AfxdpNetdev::open(name, &shared(&group)).unwrap_or_else(|e| panic!("{e}")))
    };
    let (a, b, c) = (
        open_shared(&topo.host_a),
        open_shared(&topo.host_b),
        open_shared(&host_c),
    );
    let watch = a.umem_watches();
    assert_eq!(watch.len(), 1);
    let watch = watch.into_iter().next().unwrap();
    for other in [&b, &c] {
        assert!(
            other.umem_watches()[0].same_umem(&watch),
            "ports of one group share a UMEM"
        );
    }
    assert_eq!(group.umems(), 1);
    let d = netdev_afxdp::open_netdev("system", &host_d, &[]).unwrap_or_else(|e| panic!("{e}"));
    let handler = Arc::new(testbed::datapath::Megaflows::new(
        in_port_mask(),
        shared_routes,
    ));
    let mut dp = datapath_with(false, handler);
    for (n, port) in [&a, &b, &c].into_iter().enumerate() {
        dp.add_port(
            Arc::clone(port) as Arc<dyn dp_core::netdev::Netdev>,
            port_no(n as u32 + 1),
        )
        .unwrap();
    }
    dp.add_port(d, port_no(4)).unwrap();

    // a <-> b: every packet goes out of the other port's tx ring from the
    // frame it was received into.
    wait_reachable(&topo.ns_a, IP_B);
    udp_exchange(&topo.ns_a, &topo.ns_b, IP_B, 1000);
    udp_exchange(&topo.ns_b, &topo.ns_a, IP_A, 1000);
    tcp_transfer(&topo.ns_a, &topo.ns_b, IP_B, 4 << 20);
    settle(&dp, 1..=4);
    let (tx_a, tx_b) = (
        dp.port_stats(1).unwrap().tx_packets,
        dp.port_stats(2).unwrap().tx_packets,
    );
    eprintln!(
        "a->b: port 1 tx {tx_a} {:?}, port 2 tx {tx_b} {:?} (zero-copy, copied)",
        tx_copies(&a),
        tx_copies(&b)
    );
    assert!(tx_a >= 1000 && tx_b >= 1000);
    assert_eq!(tx_copies(&a), (tx_a, 0), "port 1 sent every packet as is");
    assert_eq!(tx_copies(&b), (tx_b, 0), "port 2 sent every packet as is");

    // c floods to 1 and 2: port 1 gets a clone, copied once into a frame
    // of the UMEM by its queue (`clone_packet`) and then sent as it is;
    // port 2 the received frame itself; one frame is never on two rings.
    // b's sink keeps its stack from answering (ICMP port unreachable).
    let sink_stop = Arc::new(AtomicBool::new(false));
    let sink = udp_sink(&topo.ns_b, IP_B, Arc::clone(&sink_stop));
    let (a0, b0) = (tx_copies(&a), tx_copies(&b));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = udp_flood(&ns_c, IP_B, Arc::clone(&stop));
    wait_for("1000 flooded packets out of each port", 10, || {
        tx_copies(&a).0 >= a0.0 + 1000 && tx_copies(&b).0 >= b0.0 + 1000
    });
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    settle(&dp, 1..=4);
    let (a1, b1) = (tx_copies(&a), tx_copies(&b));
    eprintln!("flood from c: port 1 {a0:?} -> {a1:?}, port 2 {b0:?} -> {b1:?}");
    // One copy per clone: each was counted once when it was made, and
    // sent without another (a copy at send would count in .1 and not in
    // .0, as it did when the executor made the clone on the heap).
    assert_eq!(
        a1.0 - a0.0,
        a1.1 - a0.1,
        "port 1 sent every clone as it was made, copied once"
    );
    assert_eq!(b1.1, b0.1, "port 2 got the frames themselves");

    // d is a system port: its packets are copied into a frame once.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = udp_flood(&ns_d, IP_B, Arc::clone(&stop));
    wait_for(
        "1000 packets from the system port out of port 2",
        10,
        || tx_copies(&b).1 >= b1.1 + 1000,
    );
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    settle(&dp, 1..=4);
    assert_eq!(tx_copies(&b).0, b1.0, "nothing from d was sent as is");
    sink_stop.store(true, Ordering::Relaxed);
    sink.join().unwrap();

    drop(dp);
    drop((a, b, c));
    let audit = watch.audit();
    eprintln!("after shutdown: {audit:?}");
    assert_eq!(watch.in_use(), 0);
    assert_eq!(audit.free, watch.n_frames() as usize, "every frame back");
    assert_eq!(audit.marked_free, audit.free);
    assert_eq!(audit.free_list_errors, 0);
    assert_eq!(group.umems(), 0, "no socket left on the UMEM");
    for host in [&topo.host_a, &topo.host_b, &host_c] {
        assert_eq!(xdp_attachment(host).unwrap().prog_id, 0, "{host}");
    }
}

#[test]
fn removing_either_port_of_a_shared_umem_under_traffic_reclaims_its_frames() {
    if !prerequisites("afxdp shared UMEM removal") {
        return;
    }
    // First the receiving port (its fill ring and lent packets), then the
    // sending one (its tx ring holds frames the other port received).
    for (tag, first) in [("xv", 1u32), ("xw", 2u32)] {
        let topo = Topology::veth(tag);
        let group = UmemGroup::new();
        let a = AfxdpNetdev::open(&topo.host_a, &shared(&group)).unwrap_or_else(|e| panic!("{e}"));
        let b = AfxdpNetdev::open(&topo.host_b, &shared(&group)).unwrap_or_else(|e| panic!("{e}"));
        let watch = a.umem_watches().remove(0);
        assert!(b.umem_watches()[0].same_umem(&watch));
        let mut dp = datapath(false);
        dp.add_port(Arc::new(a), port(1)).unwrap();
        dp.add_port(Arc::new(b), port(2)).unwrap();
        wait_reachable(&topo.ns_a, IP_B);
        let stop = Arc::new(AtomicBool::new(false));
        let sink = udp_sink(&topo.ns_b, IP_B, Arc::clone(&stop));
        let flood = udp_flood(&topo.ns_a, IP_B, Arc::clone(&stop));
        let before = dp.port_stats(2).unwrap().tx_packets;
        wait_for("traffic through both ports", 10, || {
            dp.port_stats(2).unwrap().tx_packets > before + 1000
        });
        let (gone, kept) = if first == 1 {
            (&topo.host_a, &topo.host_b)
        } else {
            (&topo.host_b, &topo.host_a)
        };
        dp.del_port(gone).unwrap();
        wait_for("the removed socket's frames reclaimed", 10, || {
            watch.audit().sockets_in_kernel == 1
        });
        let audit = watch.audit();
        eprintln!("{tag}: port {first} removed under traffic: {audit:?}");
        // (Frames keep moving on the other port: only what holds at any
        // instant is checked here.)
        assert_eq!(audit.free_list_errors, 0, "{audit:?}");
        assert_eq!(xdp_attachment(gone).unwrap().prog_id, 0, "{gone}");
        assert_ne!(xdp_attachment(kept).unwrap().prog_id, 0, "{kept}");
        stop.store(true, Ordering::Relaxed);
        flood.join().unwrap();
        sink.join().unwrap();
        drop(dp);
        let audit = watch.audit();
        assert_eq!(watch.in_use(), 0, "{audit:?}");
        assert_eq!(audit.free, watch.n_frames() as usize, "{audit:?}");
        assert_eq!(audit.free_list_errors, 0);
        assert_eq!(xdp_attachment(kept).unwrap().prog_id, 0, "{kept}");
    }
}

#[test]
fn a_port_joins_the_shared_umem_through_a_live_socket_when_the_first_lost_its_device() {
    if !prerequisites("afxdp shared UMEM after a device is deleted") {
        return;
    }
    let mut topo = Topology::veth("xd");
    let (host_c, _ns_c) = extra_leg(&mut topo, 'c', "10.77.0.3");
    let group = UmemGroup::new();
    let a = AfxdpNetdev::open(&topo.host_a, &shared(&group)).unwrap_or_else(|e| panic!("{e}"));
    let b = AfxdpNetdev::open(&topo.host_b, &shared(&group)).unwrap_or_else(|e| panic!("{e}"));
    let watch = a.umem_watches().remove(0);
    // The socket that registered the UMEM is unbound by the kernel when
    // its veth goes; the port object lives on (as in the daemon, until the
    // port is removed from the config).
    sh(&["ip", "link", "del", &topo.host_a]);
    let c = AfxdpNetdev::open(&host_c, &shared(&group)).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.umem_watches()[0].same_umem(&watch),
        "c joined through b's socket"
    );
    assert_eq!(group.umems(), 1);
    drop((a, b, c));
    let audit = watch.audit();
    assert_eq!(audit.free, watch.n_frames() as usize, "{audit:?}");
    assert_eq!(audit.free_list_errors, 0);
}
