//! A bounded soak of the real `oxvsd` over every port type that carries
//! traffic on this machine: an `afxdp` port and a `system` port on veth
//! pairs into namespaces `a` and `b`, a `tap` port moved into namespace
//! `c`, and two `dpdk` ports on DPDK virtual devices (no hugepages):
//! `net_pcap` replaying UDP without end into `net_null`, by a rule.
//!
//! While UDP with ever new source ports (new 5-tuples, so new megaflows)
//! flows from `a` to `b` and `c` pings `b` through the tap, the test
//! churns what a running switch sees churn: OpenFlow rules added and
//! removed (the revalidator re-translates), the datapath flows flushed,
//! and the afxdp and system ports deleted and added again in turn (XDP
//! detached and attached, sockets closed and opened).
//!
//! At the end: traffic crosses every port again, the daemon exits cleanly
//! with every packet buffer, UMEM frame and mbuf back, and its RSS did not grow
//! over the second half (the floor of the last quarter against the floor
//! of the quarter before half time, as in `tests/reliability.rs`).
//! `OXVS_SOAK_SECS` sets the length (default 30 s); `OXVS_SOAK_TRACE=1`
//! prints each memory sample.
//!
//! Needs root, iproute2 and ping (`testbed::prerequisites`): skipped with
//! a reason outside CI, a failure under `CI=true`.

use std::net::UdpSocket;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use testbed::daemon::{Daemon, TempDir};
use testbed::traffic::{in_netns, ping, udp_sink, wait_reachable_within};
use testbed::{IP_A, IP_B, Topology};

const IP_C: &str = "10.77.0.3";

/// UDP from `ns` to `dst`:9, a new socket (so a new source port) every 50
/// datagrams, about 10,000 datagrams/s so the 2-CPU machine keeps room
/// for the daemon and the churn; returns the datagrams sent.
fn new_flows(ns: &str, dst: &'static str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    in_netns(ns, move || {
        let mut sent = 0u64;
        let payload = [0x3cu8; 100];
        while !stop.load(Ordering::Relaxed) {
            let Ok(sock) = UdpSocket::bind("0.0.0.0:0") else {
                continue;
            };
            for _ in 0..50 {
                if sock.send_to(&payload, (dst, 9)).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        sent
    })
}

/// Pings `dst` from `ns` once every 200 ms until stopped; returns
/// (sent, answered).
fn pinger(
    ns: &str,
    dst: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let (mut sent, mut answered) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let ok = Command::new("ip")
                .args(["netns", "exec", &ns, "ping", "-c", "1", "-W", "1", dst])
                .output()
                .is_ok_and(|o| o.status.success());
            sent += 1;
            answered += ok as u64;
            std::thread::sleep(Duration::from_millis(200));
        }
        (sent, answered)
    })
}

fn floor(samples: &[(Duration, u64)], from: Duration, to: Duration) -> u64 {
    samples
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, v)| *v)
        .min()
        .expect("memory samples in the window")
}

#[test]
fn soak_over_afxdp_system_tap_and_dpdk_ports_returns_every_buffer_and_holds_memory() {
    if !testbed::prerequisites("kernel-port soak", &["ping"]) {
        return;
    }
    let secs: u64 = std::env::var("OXVS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut topo = Topology::veth("sk");
    let ns_c = topo.add_namespace("c");
    let tap = format!("{}t", topo.host_a.trim_end_matches('a'));
    topo.also_delete(&tap);

    let dir = TempDir::new("sk");
    let capture = dir.path("replay.pcap");
    testbed::udp_pcap(&capture, 16);
    // NORMAL for the kernel ports; the DPDK replay (port 4) goes to the
    // null device (port 5) by its own rule, which the churn never deletes.
    let mut config = String::from(
        "[datapath]\npmd_cores = [0]\npmd_sleep_max = 500\n\n\
         [datapath.dpdk]\nno_huge = true\nsocket_mem = \"256\"\nextra_args = [\"--no-pci\"]\n\n\
         [control]\nsocket = \"@SOCKET@\"\n\n[[bridge]]\nname = \"br0\"\n\
         flows = [\"priority=300,in_port=4,actions=output:5\", \"priority=0,actions=NORMAL\"]\n",
    );
    for (port, kind) in [
        (&topo.host_a, "afxdp"),
        (&topo.host_b, "system"),
        (&tap, "tap"),
    ] {
        config.push_str(&format!(
            "\n[[bridge.port]]\nname = \"{port}\"\ntype = \"{kind}\"\n"
        ));
    }
    config.push_str(&format!(
        "\n[[bridge.port]]\nname = \"dpdkrx\"\ntype = \"dpdk\"\n\
         options = {{ dpdk-devargs = \"net_pcap_soak0,rx_pcap={},infinite_rx=1\", \
         n_mbufs = 4096, n_rxq_desc = 256, n_txq_desc = 256 }}\n\
         \n[[bridge.port]]\nname = \"dpdknull\"\ntype = \"dpdk\"\n\
         options = {{ dpdk-devargs = \"net_null_soak0,no-rx=1\", n_txq_desc = 256 }}\n",
        capture.display()
    ));
    let d = Daemon::start(env!("CARGO_BIN_EXE_oxvsd"), &dir, &config);
    topo.move_tap(&tap, &ns_c, IP_C);
    // The first answers wait for the debug build's PMD, busy with the DPDK
    // replay, to learn the MACs: allow more than the usual 10 s.
    wait_reachable_within(&topo.ns_a, IP_B, 30);
    wait_reachable_within(&ns_c, IP_B, 30);

    let stop = Arc::new(AtomicBool::new(false));
    let sink = udp_sink(&topo.ns_b, IP_B, Arc::clone(&stop));
    let flows = new_flows(&topo.ns_a, IP_B, Arc::clone(&stop));
    let pings = pinger(&ns_c, IP_B, Arc::clone(&stop));

    let trace = std::env::var_os("OXVS_SOAK_TRACE").is_some();
    let start = Instant::now();
    let total = Duration::from_secs(secs);
    let mut samples = Vec::new();
    let rounds = AtomicU64::new(0);
    let mut port_churns = 0u32;
    // Whether the churned ports are on the bridge: the run can end in the
    // round that took one away.
    let (mut a_attached, mut b_attached) = (true, true);
    while start.elapsed() < total {
        let round = rounds.fetch_add(1, Ordering::Relaxed);
        // Rules: a drop rule for some source ports comes and goes; the
        // revalidator re-translates the megaflows it covers.
        let rule = format!(
            "priority=200,udp,nw_dst={IP_B},tp_src={}",
            32768 + round % 1000
        );
        if round.is_multiple_of(2) {
            d.ok("ofctl/add-flow", &["br0", &format!("{rule},actions=drop")]);
        } else {
            d.ok("ofctl/del-flows", &["br0", "udp,nw_dst=10.77.0.2"]);
        }
        // Ports: the afxdp and the system port leave and come back in
        // turn, each away for one round.
        match round % 8 {
            2 => {
                d.ok("bridge/del-port", &["br0", &topo.host_a]);
                a_attached = false;
            }
            3 => {
                d.ok("bridge/add-port", &["br0", &topo.host_a, "afxdp"]);
                a_attached = true;
                port_churns += 1;
            }
            6 => {
                d.ok("bridge/del-port", &["br0", &topo.host_b]);
                b_attached = false;
            }
            7 => {
                d.ok("bridge/add-port", &["br0", &topo.host_b, "system"]);
                b_attached = true;
                port_churns += 1;
            }
            _ => {}
        }
        if round % 10 == 9 {
            d.ok("dpctl/del-flows", &[]);
        }
        std::thread::sleep(Duration::from_millis(500));
        let sample = (start.elapsed(), d.rss_kib());
        if trace {
            eprintln!("{:.1} s: RSS {} KiB", sample.0.as_secs_f64(), sample.1);
        }
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    let datagrams = flows.join().unwrap();
    let (pings_sent, pings_answered) = pings.join().unwrap();
    sink.join().unwrap();

    // Every port forwards after the churn, once the one the last round
    // took away is back (its MACs are learned again from the first
    // answers, behind the DPDK replay as at the start).
    if !a_attached {
        d.ok("bridge/add-port", &["br0", &topo.host_a, "afxdp"]);
    }
    if !b_attached {
        d.ok("bridge/add-port", &["br0", &topo.host_b, "system"]);
    }
    d.ok("ofctl/del-flows", &["br0", "udp,nw_dst=10.77.0.2"]);
    wait_reachable_within(&topo.ns_a, IP_B, 30);
    ping(&topo.ns_a, IP_B, 3);
    ping(&ns_c, IP_A, 3);
    let flows_seen = d.ok("coverage/show", &[]);
    let dpdk_forwarded = d.port_counter("dpdknull", "TX packets");

    let (q1, q2, q3) = (total / 4, total / 2, total * 3 / 4);
    let before = floor(&samples, q1, q2);
    let after = floor(&samples, q3, total * 2);
    let max = samples.iter().map(|(_, v)| *v).max().unwrap_or(0);
    eprintln!(
        "kernel-port soak: {secs} s, {} rounds, {port_churns} port re-adds, {datagrams} datagrams \
         on new 5-tuples, {pings_answered}/{pings_sent} tap pings answered; oxvsd RSS \
         {before} -> {after} KiB (floors), max {max} KiB; {dpdk_forwarded} packets net_pcap -> net_null",
        rounds.load(Ordering::Relaxed)
    );
    assert!(port_churns >= 2, "the run was too short to churn ports");
    assert!(datagrams > 1000, "the generator sent {datagrams} datagrams");
    assert!(
        pings_answered * 2 > pings_sent,
        "the tap port answered {pings_answered} of {pings_sent} pings during the churn\n{flows_seen}"
    );
    assert!(
        dpdk_forwarded > 10_000,
        "the DPDK ports forwarded {dpdk_forwarded} packets"
    );
    let log = d.stop_clean();
    assert!(
        !log.contains("panicked"),
        "the daemon panicked during the soak:\n{log}"
    );
    assert!(
        after <= before + (before / 10).max(8 * 1024),
        "oxvsd RSS grew from {before} KiB to {after} KiB over the second half"
    );
}
