//! The real daemon binary, driven through its real control socket: our
//! own JSON-RPC client, the stock `ovs-appctl` (Debian's
//! openvswitch-common), packets injected with `netdev-dummy/receive`,
//! config errors, reload, hostile clients, and a clean shutdown with every
//! buffer returned. Each test uses its own temp directory and socket and
//! stops its daemon, even on failure.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::daemon::{Daemon, TempDir, two_dummy_ports_config};

/// The daemon under test, started on `config` in `dir`.
fn start(dir: &TempDir, config: &str) -> Daemon {
    Daemon::start(env!("CARGO_BIN_EXE_oxvsd"), dir, config)
}

const UDP_FLOW: &str = "in_port(1),eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1000,dst=2000)";

/// Two dummy-pmd ports on `br0`; the EMC takes every flow.
fn two_port_config(extra_datapath: &str, bridge: &str) -> String {
    two_dummy_ports_config(
        &format!("pmd_sleep_max = 500\nemc_insert_inv_prob = 1\n{extra_datapath}"),
        "",
        bridge,
    )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forwards_injected_traffic_and_reports_flows_and_stats() {
    let dir = TempDir::new("oxvsd-fwd");
    let d = start(&dir, &two_port_config("", ""));
    for _ in 0..20 {
        d.ok("netdev-dummy/receive", &["p1", UDP_FLOW]);
    }
    wait_until("20 packets forwarded", || {
        d.ok("dpctl/show", &["-s"]).contains("TX packets:20 ")
    });

    let flows = d.ok("dpctl/dump-flows", &[]);
    let lines: Vec<&str> = flows
        .lines()
        .filter(|l| l.starts_with("recirc_id"))
        .collect();
    assert_eq!(lines.len(), 1, "{flows}");
    assert!(
        lines[0].contains("in_port(1)")
            && lines[0].contains("packets:20, bytes:2120")
            && lines[0].ends_with("actions:2"),
        "{flows}"
    );
    assert!(
        flows.starts_with("flow-dump from pmd on cpu core: 0\n"),
        "{flows}"
    );
    let verbose = d.ok("dpctl/dump-flows", &["-m"]);
    assert!(
        verbose.contains("ufid:") && verbose.contains("dp:ovs"),
        "{verbose}"
    );

    let stats = d.ok("dpif-netdev/pmd-stats-show", &[]);
    assert!(
        stats.contains("pmd thread numa_id 0 core_id 0:\n  packets received: 20\n"),
        "{stats}"
    );
    assert!(
        stats.contains("  smc: inactive (smc-enable=auto)\n"),
        "{stats}"
    );
    // Packets that share the upcall's batch hit the freshly installed
    // megaflow; all later ones hit the EMC. Together: 19 hits, 1 upcall.
    let count = |label: &str| -> u64 {
        let pmd = &stats[stats.find("core_id 0:").expect("the PMD's block")..];
        pmd.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{label} in {stats}"))
    };
    assert_eq!(count("emc hits:") + count("megaflow hits:"), 19, "{stats}");
    assert_eq!(count("miss with success upcall:"), 1, "{stats}");
    let fdb = d.ok("fdb/show", &["br0"]);
    assert!(fdb.contains("50:54:00:00:00:01"), "{fdb}");
    let ofctl = d.ok("ofctl/dump-flows", &["br0"]);
    assert!(
        ofctl.contains("n_packets=20") && ofctl.contains("actions=NORMAL"),
        "{ofctl}"
    );

    d.ok("dpif-netdev/pmd-stats-clear", &[]);
    assert!(
        d.ok("dpif-netdev/pmd-stats-show", &[])
            .contains("packets received: 0")
    );
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("all packet buffers returned"), "{log}");
}

#[test]
fn datapath_flows_can_be_added_read_and_deleted() {
    let dir = TempDir::new("oxvsd-dpctl");
    let d = start(
        &dir,
        &two_port_config("", "flows = [\"priority=0,actions=drop\"]"),
    );
    d.ok("dpctl/add-flow", &["in_port(1),eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(dst=10.0.0.2)", "2"]);
    let err = d.call("dpctl/add-flow", &["in_port(1),eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(dst=10.0.0.2)", "2"]).unwrap_err();
    assert!(err.contains("exists"), "{err}");
    d.ok("netdev-dummy/receive", &["p1", UDP_FLOW]);
    wait_until("the installed flow forwards", || {
        d.ok("dpctl/show", &["-s"]).contains("TX packets:1 ")
    });
    let flows = d.ok("dpctl/dump-flows", &[]);
    assert!(
        flows.contains("ipv4(dst=10.0.0.2)") && flows.contains("packets:1"),
        "{flows}"
    );
    d.ok("dpctl/mod-flow", &["in_port(1),eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(dst=10.0.0.2)", "drop"]);
    assert!(d.ok("dpctl/dump-flows", &[]).contains("actions:drop"));
    let ufid_line = d.ok("dpctl/dump-flows", &["-m"]);
    let ufid = ufid_line
        .split_whitespace()
        .find(|w| w.starts_with("ufid:"))
        .unwrap()
        .trim_end_matches(',');
    assert!(d.ok("dpctl/get-flow", &[ufid]).contains("actions:drop"));
    d.ok("dpctl/del-flow", &[ufid]);
    assert!(!d.ok("dpctl/dump-flows", &[]).contains("recirc_id"));
    assert!(
        d.call(
            "dpctl/add-flow",
            &[
                "in_port(1),eth(),eth_type(0x0800),ipv4(dst=10.0.0.999)",
                "2"
            ]
        )
        .unwrap_err()
        .contains("ipv4")
    );
    assert_eq!(d.stop().0, 0);
}

#[test]
fn bad_requests_get_errors_and_the_daemon_keeps_forwarding() {
    let dir = TempDir::new("oxvsd-bad");
    let d = start(&dir, &two_port_config("", ""));
    assert_eq!(
        d.call("no/such-command", &[]).unwrap_err(),
        "\"no/such-command\" is not a valid command"
    );
    assert!(d.call("fdb/show", &[]).unwrap_err().contains("arguments"));
    assert!(
        d.call("netdev-dummy/receive", &["p1", "eth(garbage"])
            .is_err()
    );
    assert!(
        d.call(
            "ofctl/add-flow",
            &["br0", "priority=1,nw_dst=1.2.3.4.5,actions=drop"]
        )
        .unwrap_err()
        .contains("nw_dst")
    );
    // Garbage bytes: an error reply, then the connection closes.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\x00\x01garbage{{{").unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.contains("invalid JSON"), "{reply}");
    // A client that disconnects mid-request.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.write_all(br#"{"id":1,"method":"dpctl/sh"#).unwrap();
    drop(s);
    // An oversized request.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = format!(
        r#"{{"id":1,"method":"version","params":["{}"]}}"#,
        "x".repeat(2 << 20)
    );
    let _ = s.write_all(big.as_bytes());
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.contains("larger than"), "{reply}");
    // Still alive and forwarding.
    d.ok("netdev-dummy/receive", &["p1", UDP_FLOW]);
    wait_until("forwarding after abuse", || {
        d.ok("dpctl/show", &["-s"]).contains("TX packets:1 ")
    });
    assert_eq!(d.stop().0, 0);
}

#[test]
fn config_errors_are_one_line_naming_file_key_and_reason() {
    let dir = TempDir::new("oxvsd-cfg");
    let cases = [
        (
            "[datapath]\npmd_cores = [999]\n",
            "datapath.pmd_cores: core 999 is not available",
        ),
        ("[datapath]\nno_such_key = 1\n", "no_such_key"),
        (
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p\"\ntype = \"vhost\"\n",
            "bridge br0 port p.type: unknown port type \"vhost\"",
        ),
        (
            "[[bridge]]\nname = \"br0\"\nflows = [\"priority=1,nw_dst=300.1.1.1,actions=drop\"]\n",
            "bridge br0.flows[0]",
        ),
        (
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p\"\ntype = \"pcap\"\noptions = { rx_pcap = \"/nonexistent.pcap\" }\n",
            "/nonexistent.pcap",
        ),
    ];
    for (i, (config, expected)) in cases.iter().enumerate() {
        let path = dir.path(&format!("bad{i}.toml"));
        std::fs::write(
            &path,
            format!(
                "[control]\nsocket = \"{}\"\n{config}",
                dir.path("never").display()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_oxvsd"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "case {i}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "case {i}: one line: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains(&path.display().to_string())
                || stderr.contains(expected),
            "case {i}: {stderr}"
        );
        assert!(
            !dir.path("never").exists(),
            "case {i}: nothing half-started"
        );
    }
}

#[test]
fn reload_adds_and_removes_ports_without_touching_the_others() {
    let dir = TempDir::new("oxvsd-reload");
    let d = start(&dir, &two_port_config("", ""));
    d.ok("netdev-dummy/receive", &["p1", UDP_FLOW]);
    wait_until("first packet", || {
        d.ok("dpctl/show", &["-s"]).contains("TX packets:1 ")
    });
    let config = std::fs::read_to_string(dir.path("oxvs.toml")).unwrap();
    let with_p3 = format!("{config}\n[[bridge.port]]\nname = \"p3\"\ntype = \"dummy\"\n");
    std::fs::write(dir.path("oxvs.toml"), &with_p3).unwrap();
    let summary = d.ok("reload", &[]);
    assert!(summary.contains("added port p3"), "{summary}");
    assert!(d.ok("dpctl/show", &[]).contains("port 3: p3 (dummy)"));
    // SIGHUP does the same: drop p3 again.
    std::fs::write(dir.path("oxvs.toml"), &config).unwrap();
    let pid = d.pid();
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    wait_until("p3 removed by SIGHUP", || {
        !d.ok("dpctl/show", &[]).contains("p3")
    });
    // p1 → p2 traffic never stopped.
    d.ok("netdev-dummy/receive", &["p1", UDP_FLOW]);
    wait_until("second packet", || {
        d.ok("dpctl/show", &["-s"]).contains("TX packets:2 ")
    });
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn the_stock_ovs_appctl_talks_to_oxvsd() {
    let Ok(appctl) = which("ovs-appctl") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ovs-appctl (openvswitch-common) is required in CI"
        );
        eprintln!("skipping: ovs-appctl not installed (apt-get install openvswitch-common)");
        return;
    };
    let dir = TempDir::new("oxvsd-appctl");
    let d = start(&dir, &two_port_config("", ""));
    let run = |args: &[&str]| {
        let out = Command::new(&appctl)
            .arg("-t")
            .arg(d.socket())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["version"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("oxvsd (oxvs)"), "{out}");
    let (code, _, _) = run(&["netdev-dummy/receive", "p1", UDP_FLOW]);
    assert_eq!(code, Some(0));
    wait_until("forwarded", || {
        d.ok("dpctl/show", &["-s"]).contains("TX packets:1 ")
    });
    let (code, out, _) = run(&["dpctl/dump-flows"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("actions:2"), "{out}");
    let (code, out, _) = run(&["dpif-netdev/pmd-stats-show"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("packets received: 1"), "{out}");
    let (code, _, err) = run(&["no/such"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("\"no/such\" is not a valid command"), "{err}");
    assert_eq!(d.stop().0, 0);
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}
