//! Shared harness of the real-traffic tests: prerequisites (root, `ip`,
//! `ethtool`, `ping`), a [`Topology`] guard that creates two network
//! namespaces with unique names and deletes everything on drop (even when
//! the test panics), a port-swapping upcall handler (port 1 ↔ port 2), a
//! datapath with one PMD, and traffic checks (ping, UDP, TCP) run from
//! threads that enter the namespaces.
//!
//! When `CI=true` a missing prerequisite fails the test; elsewhere the test
//! is skipped with a printed reason.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::packet::Packet;
use dp_pmd::datapath::{Datapath, DatapathConfig};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use netdev_afxdp::testing::enter_netns;

pub const IP_A: &str = "10.77.0.1";
pub const IP_B: &str = "10.77.0.2";

/// Checks the prerequisites; `false` means "skip" (outside CI only).
pub fn prerequisites(test: &str) -> bool {
    let mut missing = Vec::new();
    // The effective uid, from /proc (no unsafe code in tests).
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
        let found = Command::new(tool).arg("-V").output().is_ok();
        if !found {
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

/// Runs a command; panics with its output on failure.
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

/// Runs a command and ignores failure (clean-up).
pub fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Two namespaces `a` and `b` with unique names, and the host-side names
/// of their links. Everything is deleted on drop.
#[derive(Debug)]
pub struct Topology {
    pub ns_a: String,
    pub ns_b: String,
    /// Host-side interface names (veth ends, or taps before they move).
    pub host_a: String,
    pub host_b: String,
    /// Interface names inside the namespaces.
    pub inner_a: String,
    pub inner_b: String,
    extra_links: Vec<String>,
}

impl Topology {
    fn names(tag: &str) -> Topology {
        let id = format!(
            "{:x}{}",
            std::process::id() % 0xfffff,
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        Topology {
            ns_a: format!("oxvs-{tag}-{id}-a"),
            ns_b: format!("oxvs-{tag}-{id}-b"),
            host_a: format!("ox{tag}{id}a"),
            host_b: format!("ox{tag}{id}b"),
            inner_a: format!("ox{tag}{id}A"),
            inner_b: format!("ox{tag}{id}B"),
            extra_links: Vec::new(),
        }
    }

    /// Namespaces joined to the host by single-queue veth pairs; the
    /// namespace ends carry `IP_A`/`IP_B` with tx checksum offload off.
    pub fn veth(tag: &str) -> Topology {
        let topo = Topology::names(tag);
        assert!(
            topo.host_a.len() <= 15,
            "interface name {} too long",
            topo.host_a
        );
        for (ns, host, inner, ip) in [
            (&topo.ns_a, &topo.host_a, &topo.inner_a, IP_A),
            (&topo.ns_b, &topo.host_b, &topo.inner_b, IP_B),
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
            configure_inner(ns, inner, ip);
        }
        topo
    }

    /// Namespaces only; the test creates tap ports named `host_a`/`host_b`
    /// and calls [`Topology::move_tap`].
    pub fn namespaces(tag: &str) -> Topology {
        let topo = Topology::names(tag);
        sh(&["ip", "netns", "add", &topo.ns_a]);
        sh(&["ip", "netns", "add", &topo.ns_b]);
        topo
    }

    /// Moves tap `host` (already open) into `ns` and gives it `ip`.
    pub fn move_tap(&self, host: &str, ns: &str, ip: &str) {
        sh(&["ip", "link", "set", host, "netns", ns]);
        configure_inner(ns, host, ip);
    }

    /// Deletes `link` from the host namespace on drop too.
    pub fn also_delete(&mut self, link: &str) {
        self.extra_links.push(link.to_string());
    }
}

fn configure_inner(ns: &str, dev: &str, ip: &str) {
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    sh(&[
        "ip",
        "-n",
        ns,
        "addr",
        "add",
        &format!("{ip}/24"),
        "dev",
        dev,
    ]);
    sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    // The switch does not complete partial checksums (see the notes).
    sh(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]);
    // No IPv6 chatter (router solicitations, DAD) in the counters.
    sh_quiet(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
    ]);
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth and tap ends inside it, and
        // with a veth end its peer.
        sh_quiet(&["ip", "netns", "del", &self.ns_a]);
        sh_quiet(&["ip", "netns", "del", &self.ns_b]);
        for link in [&self.host_a, &self.host_b]
            .into_iter()
            .chain(self.extra_links.iter())
        {
            if std::path::Path::new(&format!("/sys/class/net/{link}")).exists() {
                sh_quiet(&["ip", "link", "del", link]);
            }
        }
    }
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

/// Sends every packet back out of the port it came in on.
#[derive(Debug, Default)]
pub struct Reflect;

impl UpcallHandler for Reflect {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(vec![Action::Output(key.in_port)]),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

/// A datapath with one PMD on the last core and the port-swap handler.
pub fn datapath(busy_poll: bool) -> Datapath {
    datapath_with(busy_poll, Arc::new(PortSwap))
}

/// A datapath with one PMD on the last core and `handler`.
pub fn datapath_with(busy_poll: bool, handler: Arc<dyn UpcallHandler>) -> Datapath {
    let cores = core_ids();
    let core = *cores.last().expect("at least one core");
    Datapath::new(
        DatapathConfig {
            pmd_cores: vec![core],
            pmd_sleep_max_us: if busy_poll { 0 } else { 100 },
            non_pmd_sleep_max_us: 100,
            ..DatapathConfig::default()
        },
        handler,
    )
    .expect("datapath starts")
}

fn core_ids() -> Vec<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// Runs `f` on a thread inside namespace `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns).unwrap_or_else(|e| panic!("entering netns {ns}: {e}"));
        f()
    })
}

/// Pings `ip` from `ns` (`count` echoes); returns the min/avg RTT in µs.
pub fn ping(ns: &str, ip: &str, count: u32) -> (f64, f64) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
        ])
        .args(["-W", "2", "-w", "15", ip])
        .output()
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ping {ip} from {ns} failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // rtt min/avg/max/mdev = 0.025/0.040/0.061/0.013 ms
    let stats = text
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .expect("ping summary line");
    let mut fields = stats.trim().split(['/', ' ']).map(|f| f.parse::<f64>());
    let min = fields.next().and_then(Result::ok).unwrap_or(0.0) * 1000.0;
    let avg = fields.next().and_then(Result::ok).unwrap_or(0.0) * 1000.0;
    (min, avg)
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

/// Payload of datagram `seq`: a size from 1 to 1472 bytes that varies
/// with `seq`, then bytes derived from `seq`.
fn udp_payload(seq: u32) -> Vec<u8> {
    let len = match seq % 5 {
        0 => 1472,
        1 => 18,
        _ => 4 + (seq.wrapping_mul(2654435761) % 1468) as usize,
    };
    let mut p = vec![0u8; len.max(4)];
    p[..4].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(4) {
        *b = (seq as usize * 31 + i * 7) as u8;
    }
    p
}

/// Sends `count` datagrams of mixed sizes from `ns_tx` to `dst_ip` and
/// checks in `ns_rx` that each arrives intact, exactly once. Panics with
/// the count received otherwise.
pub fn udp_exchange(ns_tx: &str, ns_rx: &str, dst_ip: &'static str, count: u32) {
    let port = 20000 + (NEXT_ID.fetch_add(1, Ordering::Relaxed) % 20000) as u16;
    let ready = Arc::new(AtomicBool::new(false));
    let ready_rx = Arc::clone(&ready);
    let receiver = in_netns(ns_rx, move || {
        let sock = UdpSocket::bind((dst_ip, port)).expect("bind udp sink");
        netdev_afxdp::testing::set_rcvbuf(&sock, 8 << 20).expect("SO_RCVBUFFORCE");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        ready_rx.store(true, Ordering::Release);
        let mut seen = vec![false; count as usize];
        let mut got = 0;
        let mut corrupt = 0;
        let mut buf = vec![0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(20);
        while got < count && Instant::now() < deadline {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    if n < 4 {
                        corrupt += 1;
                        continue;
                    }
                    let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
                    if seq >= count || buf[..n] != udp_payload(seq)[..] || seen[seq as usize] {
                        corrupt += 1;
                        continue;
                    }
                    seen[seq as usize] = true;
                    got += 1;
                }
                Err(_) => continue,
            }
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
            sock.send_to(&udp_payload(seq), dst).expect("udp send");
            // Pace the sender so socket and veth queues never overflow:
            // this checks integrity, not capacity.
            if seq % 32 == 31 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    sender.join().expect("udp sender");
    let (got, corrupt) = receiver.join().expect("udp receiver");
    let udp_stats = |ns: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .filter(|l| l.starts_with("Udp:"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    assert_eq!(
        (got, corrupt),
        (count, 0),
        "UDP {ns_tx} -> {ns_rx}: {got}/{count} arrived intact, {corrupt} corrupt or duplicate; \
         receiver {}; sender {}",
        udp_stats(ns_rx),
        udp_stats(ns_tx)
    );
}

/// FNV-1a over a byte stream.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// Sends `bytes` of pseudo-random data over TCP from `ns_tx` to `dst_ip`
/// in `ns_rx`; compares length and checksum on both sides. Returns the
/// throughput in Mbit/s.
pub fn tcp_transfer(ns_tx: &str, ns_rx: &str, dst_ip: &'static str, bytes: usize) -> f64 {
    let port = 40000 + (NEXT_ID.fetch_add(1, Ordering::Relaxed) % 20000) as u16;
    let ready = Arc::new(AtomicBool::new(false));
    let ready_rx = Arc::clone(&ready);
    let receiver = in_netns(ns_rx, move || {
        let listener = TcpListener::bind((dst_ip, port)).expect("tcp listen");
        ready_rx.store(true, Ordering::Release);
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("no TCP connection within 30 s: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut hash = Fnv::new();
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hash.update(&buf[..n]);
                    total += n;
                }
                Err(e) => panic!("TCP receive after {total} bytes: {e}"),
            }
        }
        (total, hash.0)
    });
    while !ready.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let sender = in_netns(ns_tx, move || {
        let addr: SocketAddr = format!("{dst_ip}:{port}").parse().unwrap();
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("tcp connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut hash = Fnv::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut left = bytes;
        let start = Instant::now();
        while left > 0 {
            for b in chunk.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            let n = left.min(chunk.len());
            stream.write_all(&chunk[..n]).expect("tcp send");
            hash.update(&chunk[..n]);
            left -= n;
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        // Wait for the receiver to close (all data consumed).
        let mut sink = [0u8; 16];
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.read(&mut sink);
        (hash.0, start.elapsed())
    });
    let (sent_hash, elapsed) = sender.join().expect("tcp sender");
    let (total, recv_hash) = receiver.join().expect("tcp receiver");
    assert_eq!(total, bytes, "TCP: received {total} of {bytes} bytes");
    assert_eq!(recv_hash, sent_hash, "TCP: checksum mismatch");
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6
}

/// Binds a UDP socket on `ip:9` in `ns` that is never read, so a flood
/// does not draw an ICMP port-unreachable per packet; it lives until
/// `stop` is set.
pub fn udp_sink(ns: &str, ip: &'static str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    in_netns(ns, move || {
        let _sock = UdpSocket::bind((ip, 9)).expect("bind udp sink");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Floods UDP from `ns` to `dst_ip` until `stop` is set; returns how
/// many datagrams were sent.
pub fn udp_flood(
    ns: &str,
    dst_ip: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let sent = Arc::new(AtomicU64::new(0));
    in_netns(ns, move || {
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind udp source");
        sock.set_nonblocking(true).unwrap();
        let dst: SocketAddr = format!("{dst_ip}:9").parse().unwrap();
        let payload = [0x5au8; 200];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            if sock.send_to(&payload, dst).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            } else {
                std::thread::yield_now();
            }
        }
        sent.load(Ordering::Relaxed)
    })
}

/// Waits (bounded) for `done`.
pub fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `size`-byte broadcast UDP frames as fast as it can from a port of
/// `port_type` on `iface` in `ns`, until `stop`; returns how many went.
pub fn port_generator(
    ns: &str,
    iface: &str,
    port_type: &'static str,
    size: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    use dp_core::packet::{PacketBatch, PacketPool, PoolConfig};
    let iface = iface.to_string();
    in_netns(ns, move || {
        let netdev = netdev_afxdp::open_netdev(port_type, &iface, &[]).expect("generator port");
        let mut txq = netdev.open_txq(0).expect("generator txq");
        let mut frame = vec![0u8; size.max(42)];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&netdev.info().mac);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&((size - 14) as u16).to_be_bytes());
        frame[22] = 64;
        frame[23] = 17;
        let pool = PacketPool::new("gen", PoolConfig::heap(128));
        let mut batch = PacketBatch::new();
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut round = 0u32;
        // The clock is read every 64 rounds: it would cost more than the
        // loop itself.
        while !stop.load(Ordering::Relaxed) && (round & 63 != 0 || Instant::now() < deadline) {
            round = round.wrapping_add(1);
            while !batch.is_full() {
                let Some(p) = pool.alloc_from(&frame) else {
                    break;
                };
                let _ = batch.push(p);
            }
            sent += txq.send(&mut batch).sent as u64;
        }
        sent
    })
}

/// Counts what a port of `port_type` on `iface` in `ns` receives, until
/// `stop`.
pub fn port_sink(
    ns: &str,
    iface: &str,
    port_type: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    use dp_core::packet::PacketBatch;
    let iface = iface.to_string();
    in_netns(ns, move || {
        let netdev = netdev_afxdp::open_netdev(port_type, &iface, &[]).expect("sink port");
        let mut rxq = netdev.open_rxq(0).expect("sink rxq");
        let mut batch = PacketBatch::new();
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut round = 0u32;
        while !stop.load(Ordering::Relaxed) && (round & 63 != 0 || Instant::now() < deadline) {
            round = round.wrapping_add(1);
            got += rxq.recv(&mut batch).unwrap_or(0) as u64;
            batch.clear();
        }
        got
    })
}
