//! Harness of the namespace tests: prerequisites (root, `ip`, `ethtool`,
//! `ping`; a missing one fails under `CI=true`, skips with a reason
//! otherwise), a [`Netns`] guard with unique names that deletes its
//! namespaces and links on drop (even when the test panics), the emulator
//! on the host ends as Hyper-V ports, a one-PMD datapath swapping ports 1
//! and 2, and bounded traffic checks run from threads inside the
//! namespaces.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::packet::Packet;
use dp_pmd::datapath::{Datapath, DatapathConfig, PortOptions};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use dp_windows_ext::contract::PortKind;
use dp_windows_ext::emulator::{EmuPortConfig, Emulator, EmulatorConfig};

pub const IP_A: &str = "10.79.0.1";
pub const IP_B: &str = "10.79.0.2";

/// `false` means skip (outside CI only).
pub fn prerequisites(test: &str) -> bool {
    let mut missing = Vec::new();
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if !root {
        missing.push("root".to_string());
    }
    for tool in ["ip", "ethtool", "ping"] {
        if Command::new(tool).arg("-V").output().is_err() {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("{test}: needs {}", missing.join(", "));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason} (CI=true: a missing prerequisite fails)");
    }
    eprintln!("SKIPPED {reason}");
    false
}

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, each joined to the host by a veth pair; the host ends
/// are what the emulated Hyper-V ports sit on.
#[derive(Debug)]
pub struct Netns {
    pub ns_a: String,
    pub ns_b: String,
    pub host_a: String,
    pub host_b: String,
    pub inner_a: String,
    pub inner_b: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let id = format!(
            "{:x}{}",
            std::process::id() % 0xfffff,
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let n = Netns {
            ns_a: format!("oxvs-w{tag}-{id}-a"),
            ns_b: format!("oxvs-w{tag}-{id}-b"),
            host_a: format!("w{tag}{id}a"),
            host_b: format!("w{tag}{id}b"),
            inner_a: format!("w{tag}{id}A"),
            inner_b: format!("w{tag}{id}B"),
        };
        assert!(n.host_a.len() <= 15, "interface name {} too long", n.host_a);
        // Built inside the guard: a failure half way still cleans up.
        for (ns, host, inner, ip) in [
            (&n.ns_a, &n.host_a, &n.inner_a, IP_A),
            (&n.ns_b, &n.host_b, &n.inner_b, IP_B),
        ] {
            sh(&["ip", "netns", "add", ns]);
            sh(&[
                "ip",
                "link",
                "add",
                host,
                "numtxqueues",
                "1",
                "numrxqueues",
                "1",
                "type",
                "veth",
                "peer",
                "name",
                inner,
                "numtxqueues",
                "1",
                "numrxqueues",
                "1",
            ]);
            sh(&["ip", "link", "set", inner, "netns", ns]);
            sh(&["ip", "link", "set", host, "up"]);
            // No GRO or TSO super-frames: a Hyper-V port sees MTU frames.
            sh_quiet(&[
                "ethtool", "-K", host, "gro", "off", "tso", "off", "gso", "off",
            ]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                inner,
            ]);
            sh(&["ip", "-n", ns, "link", "set", inner, "up"]);
            // The switch does not complete partial checksums.
            sh(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", inner, "tx", "off",
            ]);
            sh_quiet(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv6.conf.{inner}.disable_ipv6=1"),
            ]);
        }
        n
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside and its peer.
        sh_quiet(&["ip", "netns", "del", &self.ns_a]);
        sh_quiet(&["ip", "netns", "del", &self.ns_b]);
        for link in [&self.host_a, &self.host_b] {
            if std::path::Path::new(&format!("/sys/class/net/{link}")).exists() {
                sh_quiet(&["ip", "link", "del", link]);
            }
        }
    }
}

/// An emulator with Hyper-V ports `OVS-pa` on `host_a` and `OVS-pb` on
/// `host_b`, listening on a unique socket.
pub fn emulator(topo: &Netns) -> Emulator {
    let socket = std::env::temp_dir().join(format!("{}.winshim.sock", topo.ns_a));
    let mut config = EmulatorConfig::new(socket);
    config.ports = vec![
        EmuPortConfig {
            friendly_name: "OVS-pa".into(),
            ifname: topo.host_a.clone(),
            kind: PortKind::VmNic,
        },
        EmuPortConfig {
            friendly_name: "OVS-pb".into(),
            ifname: topo.host_b.clone(),
            kind: PortKind::External,
        },
    ];
    Emulator::start(config).expect("emulator starts")
}

/// in_port 1 → 2, anything else → 1; megaflows match in_port only.
#[derive(Debug, Default)]
pub struct PortSwap;

impl UpcallHandler for PortSwap {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        let out = if key.in_port == 1 { 2 } else { 1 };
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(vec![Action::Output(out)]),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

/// One PMD on the last core, polling with a short idle back-off.
pub fn datapath() -> Datapath {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    Datapath::new(
        DatapathConfig {
            pmd_cores: vec![n - 1],
            pmd_sleep_max_us: 100,
            non_pmd_sleep_max_us: 100,
            ..DatapathConfig::default()
        },
        Arc::new(PortSwap),
    )
    .expect("datapath starts")
}

pub fn port(n: u32) -> PortOptions {
    PortOptions {
        port_no: Some(n),
        ..PortOptions::default()
    }
}

/// Runs `f` on a thread inside namespace `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        netdev_afxdp::testing::enter_netns(&ns)
            .unwrap_or_else(|e| panic!("entering netns {ns}: {e}"));
        f()
    })
}

/// Pings until one echo comes back (ARP, first-packet upcalls), bounded.
pub fn wait_reachable(ns: &str, ip: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", ip])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ip} not reachable from {ns} within 10 s"
        );
    }
}

/// `count` pings from `ns` to `ip`, all answered (bounded by `-w`).
pub fn ping(ns: &str, ip: &str, count: u32) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", &count.to_string()])
        .args(["-i", "0.2", "-W", "2", "-w", "15", ip])
        .output()
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ping {ip} from {ns} failed:\n{text}");
    text.lines()
        .find(|l| l.contains("min/avg/max"))
        .unwrap_or_default()
        .to_string()
}

fn payload(seq: u32) -> Vec<u8> {
    let len = match seq % 4 {
        0 => 1472,
        1 => 18,
        _ => 4 + (seq.wrapping_mul(2654435761) % 1400) as usize,
    };
    let mut p = vec![0u8; len];
    p[..4].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(4) {
        *b = (seq as usize * 31 + i * 7) as u8;
    }
    p
}

/// Sends `count` mixed-size datagrams from `ns_tx` to `dst_ip` (in
/// `ns_rx`) in bursts; each must arrive intact, exactly once.
pub fn udp_burst(ns_tx: &str, ns_rx: &str, dst_ip: &'static str, count: u32) {
    let port = 20000 + (NEXT_ID.fetch_add(1, Ordering::Relaxed) % 20000) as u16;
    let ready = Arc::new(AtomicBool::new(false));
    let ready_rx = Arc::clone(&ready);
    let receiver = in_netns(ns_rx, move || {
        let sock = UdpSocket::bind((dst_ip, port)).expect("bind udp sink");
        let _ = netdev_afxdp::testing::set_rcvbuf(&sock, 8 << 20);
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        ready_rx.store(true, Ordering::Release);
        let mut seen = vec![false; count as usize];
        let (mut got, mut corrupt) = (0, 0);
        let mut buf = vec![0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(20);
        while got < count && Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let seq = if n >= 4 {
                u32::from_be_bytes(buf[..4].try_into().unwrap())
            } else {
                u32::MAX
            };
            if seq >= count || buf[..n] != payload(seq)[..] || seen[seq as usize] {
                corrupt += 1;
                continue;
            }
            seen[seq as usize] = true;
            got += 1;
        }
        (got, corrupt)
    });
    while !ready.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let sender = in_netns(ns_tx, move || {
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind udp source");
        let dst: SocketAddr = format!("{dst_ip}:{port}").parse().unwrap();
        for seq in 0..count {
            sock.send_to(&payload(seq), dst).expect("udp send");
            // Bursts of 64, paced so no queue overflows: this checks
            // integrity, not capacity.
            if seq % 64 == 63 {
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    });
    sender.join().expect("udp sender");
    let (got, corrupt) = receiver.join().expect("udp receiver");
    assert_eq!(
        (got, corrupt),
        (count, 0),
        "UDP {ns_tx} -> {ns_rx}: {got}/{count} intact, {corrupt} corrupt or duplicate"
    );
}
