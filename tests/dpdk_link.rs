//! `netdev-dpdk/link-state` on the real daemon: a `dpdkvhostuser` port
//! (DPDK's `net_vhost`, server side) whose guest is a second `dpdk` port
//! of the same daemon (`net_virtio_user` connecting to the socket), added
//! and deleted through the control socket. Each connect and disconnect is
//! a link change that DPDK reports as an event; the command must show the
//! state and count them as OVS's `link_resets`.

#![cfg(feature = "dpdk")]

use std::time::{Duration, Instant};

use testbed::daemon::{Daemon, TempDir};

/// The value of `field` in `port`'s block of `netdev-dpdk/link-state`.
fn field(out: &str, port: &str, field: &str) -> Option<String> {
    let mut in_port = false;
    for line in out.lines() {
        if !line.starts_with(' ') {
            in_port = line.starts_with(&format!("{port} ("));
        } else if in_port && let Some(v) = line.trim().strip_prefix(&format!("{field}: ")) {
            return Some(v.to_string());
        }
    }
    None
}

/// Polls `vhu0` until its link is `state` with `resets` changes counted.
fn wait_link(d: &Daemon, state: &str, resets: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = d.ok("netdev-dpdk/link-state", &["vhu0"]);
        let seen = (
            field(&out, "vhu0", "link_state"),
            field(&out, "vhu0", "link_resets"),
        );
        if seen == (Some(state.to_string()), Some(resets.to_string())) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "vhu0 never reached {state} with {resets} resets; last:\n{out}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn link_state_shows_vhost_link_changes_as_link_resets() {
    let dir = TempDir::new("oxvs-dpdk-link");
    let sock = dir.path("vhu0.sock");
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

[[bridge.port]]
name = "vhu0"
type = "dpdkvhostuser"
options = {{ vhost-server-path = "{sock}", n_mbufs = 4096 }}

[[bridge.port]]
name = "d0"
type = "dummy"
"#,
        sock = sock.display()
    );
    let d = Daemon::start(env!("CARGO_BIN_EXE_oxvsd"), &dir, &config);

    // No guest yet: down, nothing counted (the state at start is not a
    // change).
    wait_link(&d, "down", 0);

    // The guest connects: DPDK's link-state event, one reset.
    let devargs = format!(
        "dpdk-devargs=net_virtio_user_d3link,path={},queues=1,queue_size=256",
        sock.display()
    );
    d.ok("bridge/add-port", &["br0", "guest0", "dpdk", &devargs]);
    let out = wait_link(&d, "up", 1);
    let speed: u64 = field(&out, "vhu0", "link_speed")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no speed: {out}"));
    assert!(speed >= 1_000_000, "link_speed is in bit/s: {out}");

    // Every DPDK port without an argument, by name; the dummy port is
    // not one.
    let all = d.ok("netdev-dpdk/link-state", &[]);
    assert_eq!(
        field(&all, "guest0", "link_state"),
        Some("up".into()),
        "{all}"
    );
    assert_eq!(
        field(&all, "vhu0", "link_resets"),
        Some("1".into()),
        "{all}"
    );
    assert!(
        all.find("guest0 (").unwrap() < all.find("vhu0 (").unwrap(),
        "{all}"
    );
    assert!(!all.contains("d0 ("), "{all}");

    // The guest leaves: a second change.
    d.ok("bridge/del-port", &["br0", "guest0"]);
    wait_link(&d, "down", 2);
    // Port statistics carry it too (the driver's custom counters).
    let show = d.ok("dpctl/show", &["-s"]);
    let vhu0 = show
        .split("port ")
        .find(|block| block.contains(": vhu0"))
        .unwrap_or_else(|| panic!("no vhu0 in dpctl/show -s:\n{show}"));
    assert!(vhu0.contains("link_resets:2"), "{show}");

    let err = d.call("netdev-dpdk/link-state", &["nosuch"]).unwrap_err();
    assert!(err.contains("no such port: nosuch"), "{err}");
    let err = d.call("netdev-dpdk/link-state", &["d0"]).unwrap_err();
    assert!(err.contains("d0 is not a DPDK port"), "{err}");
    d.stop_clean();
}
