//! Native tunnelling end to end: two oxvs daemons, each inside its own
//! network namespace ("host" A and B, no PMD threads: the non-PMD thread
//! polls the kernel-facing ports and sleeps when idle), joined by an
//! underlay veth; a "VM" namespace behind each. The VTEP address lives on
//! each bridge's internal port, the daemons learn the route to it over
//! rtnetlink and resolve the peer VTEP with ARP requests they send
//! themselves (no static neighbour entries). Checked: ping and a TCP
//! transfer across the overlay, the neighbour cache filled from ARP
//! replies, a capture on the underlay that tshark decodes as
//! VXLAN/Geneve/GRE with the configured VNI (key), the `tnl/*` and
//! `ovs/route/*` commands, and a VNI mismatch dropped under its own name.
//!
//! ```text
//!  vmA ─ veth ─┐ oxvsd A (ns hA)             oxvsd B (ns hB) ┌─ veth ─ vmB
//!  10.77.0.1   └ br0: vm, ul, vtep(172.31.0.1), vx0 ─ ul ═══ ul ─ br0 ... 10.77.0.2
//! ```

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testbed::daemon::{Daemon, DaemonOptions, TempDir};
use testbed::{IP_A, IP_B, Topology, prerequisites, sh, sh_output, tcp_transfer, wait_for};

const VTEP_A: &str = "172.31.0.1";
const VTEP_B: &str = "172.31.0.2";

/// One side's names.
struct Side {
    host_ns: String,
    vm_port: String,
    ul: String,
    vtep: String,
    vtep_ip: &'static str,
    peer_ip: &'static str,
}

/// OVS's layout: the VM and the tunnel port on `brint`, the uplink and
/// the VTEP on `brphy` (a learning switch).
fn config_two_bridges(side: &Side, tunnel_type: &str, key: u32) -> String {
    format!(
        r#"
[control]
socket = "@SOCKET@"

[[bridge]]
name = "brint"
flows = [
    "in_port={vm},actions=output:tun0",
    "in_port=tun0,actions=output:{vm}",
]

[[bridge.port]]
name = "{vm}"
type = "system"

[[bridge.port]]
name = "tun0"
type = "{tunnel_type}"
options = {{ remote_ip = "{peer}", key = {key} }}

[[bridge]]
name = "brphy"

[[bridge.port]]
name = "{ul}"
type = "system"

[[bridge.port]]
name = "{vtep}"
type = "internal"
"#,
        vm = side.vm_port,
        ul = side.ul,
        vtep = side.vtep,
        peer = side.peer_ip,
    )
}

/// One bridge with explicit rules for both layers.
fn config(side: &Side, tunnel_type: &str, key: u32) -> String {
    format!(
        r#"
[control]
socket = "@SOCKET@"

[log]
level = "info"

[[bridge]]
name = "br0"
flows = [
    "priority=10,in_port={vm},actions=output:tun0",
    "priority=10,in_port=tun0,actions=output:{vm}",
    "priority=5,in_port={ul},actions=output:{vtep}",
    "priority=5,in_port={vtep},actions=output:{ul}",
]

[[bridge.port]]
name = "{vm}"
type = "system"

[[bridge.port]]
name = "{ul}"
type = "system"

[[bridge.port]]
name = "{vtep}"
type = "internal"

[[bridge.port]]
name = "tun0"
type = "{tunnel_type}"
options = {{ remote_ip = "{peer}", key = {key} }}
"#,
        vm = side.vm_port,
        ul = side.ul,
        vtep = side.vtep,
        peer = side.peer_ip,
    )
}

/// Builds the two hosts and their VMs; returns the topology guard (VMs
/// are its namespaces a and b) and the two sides.
fn build(tag: &str) -> (Topology, [Side; 2]) {
    let mut topo = Topology::veth(tag);
    topo.host_offloads_off();
    let id = topo
        .host_a
        .trim_start_matches("ox")
        .trim_end_matches('a')
        .to_string();
    let host_a = topo.add_namespace("ha");
    let host_b = topo.add_namespace("hb");
    // The underlay: one veth, an end in each host.
    let (ul_a, ul_b) = (format!("tnu{id}a"), format!("tnu{id}b"));
    topo.also_delete(&ul_a);
    testbed::add_veth(&ul_a, &ul_b);
    for (dev, ns) in [(&ul_a, &host_a), (&ul_b, &host_b)] {
        sh(&[
            "ethtool", "-K", dev, "gro", "off", "tso", "off", "gso", "off",
        ]);
        sh(&["ip", "link", "set", dev, "netns", ns]);
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    for (dev, ns) in [(&topo.host_a, &host_a), (&topo.host_b, &host_b)] {
        sh(&["ip", "link", "set", dev, "netns", ns]);
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    // Room for the 50-byte VXLAN/Geneve header on a 1500-byte underlay.
    sh(&[
        "ip",
        "-n",
        &topo.ns_a,
        "link",
        "set",
        &topo.inner_a,
        "mtu",
        "1400",
    ]);
    sh(&[
        "ip",
        "-n",
        &topo.ns_b,
        "link",
        "set",
        &topo.inner_b,
        "mtu",
        "1400",
    ]);
    let sides = [
        Side {
            host_ns: host_a,
            vm_port: topo.host_a.clone(),
            ul: ul_a,
            vtep: format!("tnv{id}a"),
            vtep_ip: VTEP_A,
            peer_ip: VTEP_B,
        },
        Side {
            host_ns: host_b,
            vm_port: topo.host_b.clone(),
            ul: ul_b,
            vtep: format!("tnv{id}b"),
            vtep_ip: VTEP_B,
            peer_ip: VTEP_A,
        },
    ];
    (topo, sides)
}

/// Starts a daemon per host, then gives each VTEP its address (the
/// daemons learn the new route over rtnetlink).
fn start(
    sides: &[Side; 2],
    dirs: &[TempDir; 2],
    tunnel_type: &str,
    keys: [u32; 2],
    two_bridges: bool,
) -> Vec<Daemon> {
    let daemons: Vec<Daemon> = sides
        .iter()
        .zip(dirs)
        .zip(keys)
        .map(|((s, dir), key)| {
            let text = if two_bridges {
                config_two_bridges(s, tunnel_type, key)
            } else {
                config(s, tunnel_type, key)
            };
            Daemon::start_with(
                env!("CARGO_BIN_EXE_oxvsd"),
                dir,
                &text,
                DaemonOptions {
                    netns: Some(s.host_ns.clone()),
                    ..DaemonOptions::default()
                },
            )
        })
        .collect();
    for (s, d) in sides.iter().zip(&daemons) {
        sh(&[
            "ip",
            "-n",
            &s.host_ns,
            "addr",
            "add",
            &format!("{}/24", s.vtep_ip),
            "dev",
            &s.vtep,
        ]);
        sh(&["ip", "-n", &s.host_ns, "link", "set", &s.vtep, "up"]);
        let want = format!("Cached: 172.31.0.0/24 dev {} SRC {}", s.vtep, s.vtep_ip);
        wait_for("the VTEP route learned over rtnetlink", 10, || {
            d.ok("ovs/route/show", &[]).contains(&want)
        });
    }
    daemons
}

fn mac_of(ns: &str, dev: &str) -> String {
    let out = sh_output(&["ip", "-n", ns, "-o", "link", "show", dev]);
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {out}"))
        .to_string()
}

/// Captures tunnel packets on `dev` in `ns` while `traffic` runs and
/// returns tshark's decoded `(vni, outer src, outer dst)` per packet.
fn capture(ns: &str, dev: &str, tunnel_type: &str, traffic: impl FnOnce()) -> Vec<String> {
    let (filter, field) = match tunnel_type {
        "vxlan" => ("udp dst port 4789", "vxlan.vni"),
        "geneve" => ("udp dst port 6081", "geneve.vni"),
        _ => ("ip proto 47", "gre.key"),
    };
    let mut tshark = Command::new("ip")
        .args(["netns", "exec", ns, "tshark", "-l", "-n", "-i", dev])
        .args(["-f", filter, "-c", "10", "-a", "duration:20"])
        .args(["-T", "fields", "-e", field, "-e", "ip.src", "-e", "ip.dst"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark runs");
    // tshark says "Capturing on ..." once the capture is open.
    let mut stderr = tshark.stderr.take().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("Capturing on") {
        assert!(
            Instant::now() < deadline,
            "tshark did not start: {}",
            String::from_utf8_lossy(&seen)
        );
        match stderr.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => panic!("tshark failed: {}", String::from_utf8_lossy(&seen)),
        }
    }
    // "Capturing on" comes a moment before packets are seen, and a loaded
    // machine stretches that moment.
    std::thread::sleep(Duration::from_millis(500));
    traffic();
    let out = tshark.wait_with_output().expect("tshark finishes");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn overlay(tag: &str, tunnel_type: &str, two_bridges: bool) {
    if !prerequisites(&format!("{tunnel_type} overlay"), &["tshark"]) {
        return;
    }
    let (topo, sides) = build(tag);
    let dirs = [
        TempDir::new(&format!("tn{tag}a")),
        TempDir::new(&format!("tn{tag}b")),
    ];
    let daemons = start(&sides, &dirs, tunnel_type, [5000, 5000], two_bridges);
    let (a, b) = (&daemons[0], &daemons[1]);

    // No neighbour is known until the daemons ask.
    assert!(!a.ok("tnl/neigh/show", &[]).contains(VTEP_B));
    let ports = a.ok("tnl/ports/show", &[]);
    let bridge = if two_bridges { "brint" } else { "br0" };
    let port = match tunnel_type {
        "vxlan" => "4789",
        "geneve" => "6081",
        _ => "ip proto 47",
    };
    assert!(
        ports.contains(&format!(
            "tun0 ({port}) type={tunnel_type} bridge={bridge} remote_ip={VTEP_B} key=5000"
        )),
        "{ports}"
    );

    testbed::wait_reachable_within(&topo.ns_a, IP_B, 20);
    // Both caches were filled from ARP replies (the peer's VTEP MAC).
    let neigh = a.ok("tnl/neigh/show", &[]);
    let mac_b = mac_of(&sides[1].host_ns, &sides[1].vtep);
    assert!(
        neigh
            .lines()
            .any(|l| l.starts_with(VTEP_B) && l.contains(&mac_b) && !l.contains("STATIC")),
        "A's neighbour cache lacks {VTEP_B} at {mac_b}:\n{neigh}"
    );
    let mac_a = mac_of(&sides[0].host_ns, &sides[0].vtep);
    assert!(b.ok("tnl/neigh/show", &[]).contains(&mac_a));

    // The underlay carries the right VNI between the VTEPs.
    let decoded = capture(&sides[0].host_ns, &sides[0].ul, tunnel_type, || {
        testbed::ping(&topo.ns_a, IP_B, 10);
    });
    let mut with_inner_ip = 0;
    for line in &decoded {
        let f: Vec<&str> = line.split('\t').collect();
        // VXLAN's VNI prints in decimal, Geneve's VNI and GRE's key in hex.
        let vni = f[0]
            .strip_prefix("0x")
            .map_or_else(|| f[0].parse().ok(), |h| u32::from_str_radix(h, 16).ok());
        assert_eq!(vni, Some(5000), "VNI in {decoded:?}");
        // tshark lists the outer then the inner address of each field
        // (an inner ARP packet has no inner address).
        let src: Vec<&str> = f.get(1).map_or(vec![], |a| a.split(',').collect());
        let dst: Vec<&str> = f.get(2).map_or(vec![], |a| a.split(',').collect());
        let outer = (src.first().copied(), dst.first().copied());
        assert!(
            outer == (Some(VTEP_A), Some(VTEP_B)) || outer == (Some(VTEP_B), Some(VTEP_A)),
            "outer addresses in {decoded:?}"
        );
        if let (Some(s), Some(d)) = (src.get(1), dst.get(1)) {
            let inner = (*s, *d);
            assert!(
                inner == (IP_A, IP_B) || inner == (IP_B, IP_A),
                "inner addresses in {decoded:?}"
            );
            with_inner_ip += 1;
        }
    }

    assert!(with_inner_ip >= 3, "tshark decoded {decoded:?}");

    // TCP across the overlay, checked byte for byte.
    let mbps = tcp_transfer(&topo.ns_a, &topo.ns_b, IP_B, 4 << 20);
    eprintln!("{tunnel_type}: TCP across the overlay {mbps:.0} Mbit/s");

    // Flushing forgets the peer; the next packets resolve it again.
    assert_eq!(a.ok("tnl/neigh/flush", &[]), "OK\n");
    assert!(!a.ok("tnl/neigh/show", &[]).contains(VTEP_B));
    // (Installed megaflows may carry a ping or two before the
    // revalidator removes them; traffic after that asks again.)
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a.ok("tnl/neigh/show", &[]).contains(&mac_b) {
        assert!(
            Instant::now() < deadline,
            "{VTEP_B} not learned again after a flush"
        );
        testbed::wait_reachable_within(&topo.ns_a, IP_B, 20);
    }
    testbed::ping(&topo.ns_a, IP_B, 3);

    for d in daemons {
        // Exit 0 with every packet buffer back in its pool.
        d.stop_clean();
    }
    drop(topo);
}

#[test]
fn vxlan_overlay_between_two_daemons() {
    overlay("tx", "vxlan", false);
}

#[test]
fn geneve_overlay_between_two_daemons() {
    // OVS's two-bridge layout: tunnel port and VTEP on different bridges.
    overlay("tg", "geneve", true);
}

#[test]
fn gre_overlay_between_two_daemons() {
    overlay("te", "gre", false);
}

/// A drop counter from `coverage/show`.
fn drops(d: &Daemon, name: &str) -> u64 {
    d.ok("coverage/show", &[])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// The route commands through the control socket, and a VNI the port
/// does not take dropped under its own name.
#[test]
fn route_commands_and_wrong_vni() {
    if !prerequisites("route commands", &[]) {
        return;
    }
    let (topo, sides) = build("tr");
    let dirs = [TempDir::new("tntra"), TempDir::new("tntrb")];
    // B's port only takes VNI 7; A sends 5000.
    let daemons = start(&sides, &dirs, "vxlan", [5000, 7], false);
    let (a, b) = (&daemons[0], &daemons[1]);
    let vtep = &sides[0].vtep;

    let e = a
        .call("ovs/route/add", &["10.99.0.0/16", "nosuchport"])
        .unwrap_err();
    assert!(e.contains("nosuchport"), "{e}");
    let e = a
        .call("ovs/route/add", &["10.99.0.0/40", vtep])
        .unwrap_err();
    assert!(e.contains("10.99.0.0/40"), "{e}");
    assert_eq!(
        a.ok("ovs/route/add", &["10.99.0.0/16", vtep, "172.31.0.254"]),
        "OK\n"
    );
    let shown = a.ok("ovs/route/show", &[]);
    assert!(
        shown.contains(&format!(
            "User: 10.99.0.0/16 dev {vtep} GW 172.31.0.254 SRC {VTEP_A}"
        )),
        "{shown}"
    );
    assert_eq!(a.ok("ovs/route/del", &["10.99.0.0/16"]), "OK\n");
    assert!(a.call("ovs/route/del", &["10.99.0.0/16"]).is_err());
    assert!(!a.ok("ovs/route/show", &[]).contains("User:"));

    // A route change in the host reaches the table without a restart.
    sh(&[
        "ip",
        "-n",
        &sides[0].host_ns,
        "route",
        "add",
        "10.98.0.0/16",
        "via",
        "172.31.0.254",
    ]);
    wait_for("a new host route", 10, || {
        a.ok("ovs/route/show", &[])
            .contains(&format!("Cached: 10.98.0.0/16 dev {vtep} GW 172.31.0.254"))
    });

    // A's packets reach B's tunnel port with VNI 5000 and are dropped there.
    let _ = Command::new("ip")
        .args([
            "netns", "exec", &topo.ns_a, "ping", "-c", "3", "-W", "1", IP_B,
        ])
        .output();
    wait_for("wrong-VNI drops on B", 15, || {
        drops(b, "datapath_drop_tunnel_wrong_vni") > 0
    });
    assert_eq!(drops(b, "datapath_drop_tunnel_pop_error"), 0);
    for d in daemons {
        // Exit 0 with every packet buffer back in its pool.
        d.stop_clean();
    }
    drop(topo);
}
