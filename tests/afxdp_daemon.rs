//! AF_XDP ports as the real `oxvsd` opens them from its config file,
//! over veth pairs into network namespaces.
//!
//! - The port's `mtu` key: the daemon sets the host end's MTU to 2000, and
//!   1,900-byte don't-fragment pings cross the switch both ways.
//! - The driver's own counters reach the operator: `dpctl/show -s` lists
//!   the AF_XDP socket statistics and the partial-checksum count, which
//!   rises when a namespace's veth hands over packets with checksum offload
//!   on (the misconfiguration the port warns about).
//! - The daemon's afxdp ports share a UMEM (`shared-umem`, on by default):
//!   what crosses from one to the other is sent as is (`tx_zero_copy_packets`
//!   counts it, `tx_copied_packets` stays 0), and exiting under traffic, by
//!   request or by signal, returns every frame and detaches XDP each time.
//!
//! Needs root, iproute2, ping and ethtool (`testbed::prerequisites`):
//! skipped with a reason outside CI, a failure under `CI=true`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use testbed::daemon::{Daemon, TempDir};
use testbed::traffic::{udp_flood, udp_sink, wait_for, wait_reachable};
use testbed::{IP_A, IP_B, Topology, sh, sh_output};

/// The `name:value` fields of `port`'s driver line in `dpctl/show -s`.
fn driver_counters(d: &Daemon, port: &str) -> Vec<(String, u64)> {
    let show = d.ok("dpctl/show", &["-s"]);
    let mut lines = show
        .lines()
        .skip_while(|l| !l.contains(&format!(": {port} (")));
    lines.next();
    lines
        .take_while(|l| l.starts_with("    "))
        .filter(|l| !l.starts_with("    RX ") && !l.starts_with("    TX "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|f| {
            let (k, v) = f.split_once(':')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn counter(d: &Daemon, port: &str, name: &str) -> u64 {
    let counters = driver_counters(d, port);
    counters
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{port}: no {name} in dpctl/show -s ({counters:?})"))
}

#[test]
fn afxdp_mtu_key_and_driver_counters_through_the_daemon() {
    if !testbed::prerequisites("afxdp ports through oxvsd", &["ping", "ethtool"]) {
        return;
    }
    let topo = Topology::veth("xm");
    for (ns, inner) in [(&topo.ns_a, &topo.inner_a), (&topo.ns_b, &topo.inner_b)] {
        sh(&["ip", "-n", ns, "link", "set", inner, "mtu", "2000"]);
    }
    let dir = TempDir::new("xm");
    let mut config = String::from(
        "[datapath]\npmd_cores = [0]\npmd_sleep_max = 500\n\n\
         [control]\nsocket = \"@SOCKET@\"\n\n[[bridge]]\nname = \"br0\"\n",
    );
    for port in [&topo.host_a, &topo.host_b] {
        config.push_str(&format!(
            "\n[[bridge.port]]\nname = \"{port}\"\ntype = \"afxdp\"\nmtu = 2000\n"
        ));
    }
    let d = Daemon::start(env!("CARGO_BIN_EXE_oxvsd"), &dir, &config);

    for port in [&topo.host_a, &topo.host_b] {
        let link = sh_output(&["ip", "link", "show", port]);
        assert!(link.contains("mtu 2000"), "{port} not at MTU 2000: {link}");
    }
    wait_reachable(&topo.ns_a, IP_B);
    // 1,900 bytes of ICMP payload with DF set: only crosses at MTU ≥ 1,928.
    for (ns, ip) in [(&topo.ns_a, IP_B), (&topo.ns_b, IP_A)] {
        sh(&[
            "ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s",
            "1900", ip,
        ]);
    }
    // Shared UMEM: the pings and ARP crossed without a copy.
    for port in [&topo.host_a, &topo.host_b] {
        assert!(counter(&d, port, "tx_zero_copy_packets") >= 3, "{port}");
        assert_eq!(counter(&d, port, "tx_copied_packets"), 0, "{port}");
    }
    for name in [
        "xsk_rx_dropped",
        "xsk_rx_ring_full",
        "xsk_rx_fill_ring_empty_descs",
        "tx_zero_copy_packets",
    ] {
        counter(&d, &topo.host_a, name);
    }
    // The topology turns checksum offload off on the namespace ends, so
    // far every checksum was complete.
    assert_eq!(counter(&d, &topo.host_a, "rx_csum_partial"), 0);

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
    wait_for("partial checksums shown for port a", 10, || {
        counter(&d, &topo.host_a, "rx_csum_partial") > 10
    });
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    sink.join().unwrap();
    assert_eq!(
        counter(&d, &topo.host_b, "rx_csum_partial"),
        0,
        "b's namespace sent nothing offloaded"
    );
    let log = d.stop_clean();
    assert!(
        log.contains("partial checksum"),
        "the partial-checksum warning was not logged:\n{log}"
    );
}

/// XDP programs attached to `port` now, as `ip link` shows them.
fn xdp_shown(port: &str) -> bool {
    sh_output(&["ip", "link", "show", port]).contains("xdp")
}

#[test]
fn daemon_exit_under_traffic_returns_every_umem_frame_and_detaches_xdp() {
    if !testbed::prerequisites("afxdp daemon exit under traffic", &[]) {
        return;
    }
    let topo = Topology::veth("xx");
    let dir = TempDir::new("xx");
    let mut config = String::from(
        "[datapath]\npmd_cores = [0]\npmd_sleep_max = 500\n\n[control]\nsocket = \"@SOCKET@\"\n\n[[bridge]]\nname = \"br0\"\n",
    );
    for port in [&topo.host_a, &topo.host_b] {
        config.push_str(&format!(
            "\n[[bridge.port]]\nname = \"{port}\"\ntype = \"afxdp\"\n"
        ));
    }
    // By request, then by each signal: every exit path drops the ports
    // with frames in flight on both sides.
    for how in ["exit", "TERM", "INT"] {
        let d = Daemon::start(env!("CARGO_BIN_EXE_oxvsd"), &dir, &config);
        wait_reachable(&topo.ns_a, IP_B);
        let stop = Arc::new(AtomicBool::new(false));
        let sink = udp_sink(&topo.ns_b, IP_B, Arc::clone(&stop));
        let flood = udp_flood(&topo.ns_a, IP_B, Arc::clone(&stop));
        wait_for("zero-copy traffic a -> b", 10, || {
            counter(&d, &topo.host_b, "tx_zero_copy_packets") > 1000
        });
        let (code, log) = if how == "exit" {
            d.stop()
        } else {
            d.signal_and_wait(how)
        };
        stop.store(true, Ordering::Relaxed);
        flood.join().unwrap();
        sink.join().unwrap();
        assert_eq!(code, 0, "{how}: {log}");
        assert!(log.contains("all packet buffers returned"), "{how}: {log}");
        for port in [&topo.host_a, &topo.host_b] {
            assert!(!xdp_shown(port), "{how}: {port} keeps an XDP program");
        }
    }
}
