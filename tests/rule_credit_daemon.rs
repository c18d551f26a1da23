//! Rule statistics through the real daemon: a megaflow deleted from the
//! datapath (`dpctl/del-flow`, on the PMD's thread) pushes its final
//! packets to the OpenFlow rule it came from, as OVS does, so
//! `ofctl/dump-flows` counts every forwarded packet even when no periodic
//! sample ran between the traffic and the delete.

use std::time::{Duration, Instant};

use testbed::daemon::{Daemon, TempDir, two_dummy_ports_config};

const UDP_FLOW: &str = "in_port(1),eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1000,dst=2000)";

#[test]
fn a_deleted_megaflows_last_packets_reach_its_rule() {
    let dir = TempDir::new("oxvsd-b10-rule-credit");
    let d = Daemon::start(
        env!("CARGO_BIN_EXE_oxvsd"),
        &dir,
        &two_dummy_ports_config("pmd_sleep_max = 500", "", ""),
    );
    // Each round sets the megaflow up again, forwards 10 on it and deletes
    // it at once: neither `dpctl/dump-flows` nor `dpctl/del-flow` samples
    // the flows for the rules, so only the delete's push (or, by chance,
    // the once-a-second periodic sample) credits the last 9 packets.
    for round in 1..=3u64 {
        for _ in 0..10 {
            d.ok("netdev-dummy/receive", &["p1", UDP_FLOW]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let flows = loop {
            let flows = d.ok("dpctl/dump-flows", &["-m"]);
            if flows.contains("packets:10,") {
                break flows;
            }
            assert!(Instant::now() < deadline, "round {round}: {flows}");
            std::thread::sleep(Duration::from_millis(10));
        };
        let ufid = flows
            .split_whitespace()
            .find(|w| w.starts_with("ufid:"))
            .expect("a UFID")
            .trim_end_matches(',');
        d.ok("dpctl/del-flow", &[ufid]);
        let ofctl = d.ok("ofctl/dump-flows", &["br0"]);
        assert!(
            ofctl.contains(&format!("n_packets={}", 10 * round)),
            "round {round}: {ofctl}"
        );
    }
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
}
