//! The real daemon with `dpdk` ports on DPDK virtual devices (no hugepages,
//! no PCI): `net_pcap` replaying UDP forever → an OpenFlow rule →
//! `net_null`; counters through the control socket; the PMD thread's
//! lcore cache in `netdev-dpdk/get-mempool-info`; a clean exit whose leak
//! check covers the mbufs lent to packets.

#![cfg(feature = "dpdk")]

use std::time::{Duration, Instant};

use testbed::daemon::{Daemon, TempDir};

#[test]
fn forwards_net_pcap_to_net_null_and_exits_clean() {
    let dir = TempDir::new("oxvsd-dpdk");
    let capture = dir.path("in.pcap");
    testbed::udp_pcap(&capture, 16);
    let config = format!(
        r#"
[datapath]
pmd_cores = [0]

[datapath.dpdk]
no_huge = true
socket_mem = "256"
extra_args = ["--no-pci"]

[control]
socket = "@SOCKET@"

[[bridge]]
name = "br0"
flows = ["in_port=1,actions=output:2"]

[[bridge.port]]
name = "p1"
type = "dpdk"
options = {{ dpdk-devargs = "net_pcap_oxvsd0,rx_pcap={capture},infinite_rx=1", n_mbufs = 4096, n_rxq_desc = 256, n_txq_desc = 256 }}

[[bridge.port]]
name = "p2"
type = "dpdk"
options = {{ dpdk-devargs = "net_null_oxvsd0,no-rx=1", n_txq_desc = 256 }}
"#,
        capture = capture.display(),
    );
    let d = Daemon::start(env!("CARGO_BIN_EXE_oxvsd"), &dir, &config);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let forwarded = d.port_counter("p2", "TX packets");
        if forwarded >= 100_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {forwarded} forwarded: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The PMD thread registered as a DPDK lcore: its cache in the pool
    // holds mbufs (lcore 0 is the EAL's main thread).
    let info = d.ok("netdev-dpdk/get-mempool-info", &["p1"]);
    assert!(info.starts_with("mempool <ovs_mp_"), "{info}");
    let pmd_cached: u64 = info
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cache_count["))
        .filter_map(|l| l.split_once("]="))
        .filter(|(lcore, _)| *lcore != "0")
        .map(|(_, n)| n.parse::<u64>().unwrap())
        .sum();
    assert!(pmd_cached > 0, "no PMD lcore cache in use:\n{info}");
    assert!(d.call("netdev-dpdk/get-mempool-info", &["nosuch"]).is_err());
    let all = d.ok("netdev-dpdk/get-mempool-info", &[]);
    assert!(all.contains(info.lines().next().unwrap()), "{all}");
    d.stop_clean();
}
