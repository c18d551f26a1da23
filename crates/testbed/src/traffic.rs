//! Traffic checks run from threads that enter a namespace: each is
//! bounded in time and panics with what it saw when the check fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Distinct UDP/TCP ports for checks running at once in one process.
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

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

/// Round-trip times of a [`ping`] run, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rtt {
    pub min_us: f64,
    pub avg_us: f64,
}

impl std::fmt::Display for Rtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rtt min {:.1} us, avg {:.1} us",
            self.min_us, self.avg_us
        )
    }
}

/// Pings `ip` from `ns` (`count` echoes, every one must be answered within
/// 15 s in all); returns the round-trip times.
pub fn ping(ns: &str, ip: &str, count: u32) -> Rtt {
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
    let min_us = fields.next().and_then(Result::ok).unwrap_or(0.0) * 1000.0;
    let avg_us = fields.next().and_then(Result::ok).unwrap_or(0.0) * 1000.0;
    Rtt { min_us, avg_us }
}

/// Pings until one echo comes back (ARP, first-packet upcalls), for at
/// most 10 s.
pub fn wait_reachable(ns: &str, ip: &str) {
    wait_reachable_within(ns, ip, 10);
}

/// Pings until one echo comes back, for at most `secs` seconds.
pub fn wait_reachable_within(ns: &str, ip: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
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
            "{ip} not reachable from {ns} within {secs} s"
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
    let port = 20000 + (NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 20000) as u16;
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
    let port = 40000 + (NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 20000) as u16;
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
