//! A small packet generator and sink built on this crate's own ports, for
//! benchmarks on veths in network namespaces (the kernel here has no
//! pktgen module).
//!
//! ```text
//! pktgen tx --netns NS --iface IF [--type system|afxdp] [--xdp-mode M] [--size 64]
//!           [--flows 1] [--seconds 5] [--rate PPS]
//!           [--src-mac M --dst-mac M --src-ip A --dst-ip A --dst-port P]
//! pktgen rx --netns NS --iface IF [--type system|afxdp] [--xdp-mode M] [--seconds 5]
//! pktgen drop --netns NS --iface IF [--seconds 5]
//! pktgen xdp-pass --netns NS|- --iface IF [--seconds 5]
//! ```
//!
//! `tx` sends UDP frames of `--size` bytes (without FCS), cycling the UDP
//! source port over `--flows` values, in batches of 32 through the port's
//! tx queue (one `sendmmsg` or one AF_XDP kick per batch), as fast as it
//! can or at `--rate`. `rx` counts what the port receives. `drop` opens no
//! port: it counts and drops everything the interface receives in its tcx
//! ingress hook ([`netdev_afxdp::drop_sink`], the path every frame takes
//! when the interface has no XDP program and GRO off; see there why the
//! benchmark's far side uses it). Each prints one line per second and a
//! total. `tx --type xdp-live` sends through [`netdev_afxdp::live_gen`]
//! (no skb; the peer must have an XDP program), and `xdp-pass` holds a
//! native `XDP_PASS` program on an interface for `--seconds`, so that a
//! veth whose stack forwards (no switch program on it) takes such frames. The thread enters `--netns` first (the
//! interface is the namespace's end of a veth).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dp_core::packet::{MAX_BURST, PacketBatch, PacketPool, PoolConfig};

fn usage() -> ExitCode {
    eprintln!(
        "usage: pktgen tx|rx|drop --netns NS --iface IF [--type system|afxdp] [--xdp-mode M] [--size 64] \
         [--flows 1] [--seconds 5] [--rate PPS] [--src-mac M] [--dst-mac M] \
         [--src-ip A] [--dst-ip A] [--dst-port P]"
    );
    ExitCode::from(2)
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    bytes.try_into().ok()
}

fn parse_ip(s: &str) -> Option<[u8; 4]> {
    s.parse::<std::net::Ipv4Addr>().ok().map(|a| a.octets())
}

/// An Ethernet/IPv4/UDP frame of `size` bytes.
fn udp_frame(
    size: usize,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    src_port: u16,
    dst_port: u16,
) -> Vec<u8> {
    let size = size.max(42);
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (size - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src_ip);
    f[30..34].copy_from_slice(&dst_ip);
    let mut sum: u32 = f[14..34]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&src_port.to_be_bytes());
    f[36..38].copy_from_slice(&dst_port.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    // UDP checksum 0: none (allowed for IPv4).
    f
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first().cloned() else {
        return usage();
    };
    let mut opts = HashMap::new();
    let mut it = args[1..].iter();
    while let Some(key) = it.next() {
        let Some(value) = it.next() else {
            return usage();
        };
        opts.insert(key.trim_start_matches("--").to_string(), value.clone());
    }
    let get = |k: &str, d: &str| opts.get(k).cloned().unwrap_or_else(|| d.to_string());
    let (Some(netns), Some(iface)) = (opts.get("netns"), opts.get("iface")) else {
        return usage();
    };
    let port_type = get("type", "system");
    let seconds: u64 = get("seconds", "5").parse().unwrap_or(5);

    // `--netns -`: the namespace pktgen runs in.
    if netns != "-"
        && let Err(e) = netdev_afxdp::testing::enter_netns(netns)
    {
        eprintln!("pktgen: entering netns {netns}: {e}");
        return ExitCode::FAILURE;
    }
    if mode == "xdp-pass" {
        return xdp_pass(iface, seconds);
    }
    if mode == "drop" {
        return drop_sink(iface, seconds);
    }
    if mode == "tx" && port_type == "xdp-live" {
        return live_tx(iface, seconds, &get);
    }
    // `--xdp-mode` for an afxdp port: a benchmark passes the mode it
    // knows works (best-effort first attaches for zero-copy, detaches
    // when the bind is refused and attaches again).
    let xdp_mode = opts.get("xdp-mode").cloned();
    let options: Vec<(&str, &str)> = match (&xdp_mode, port_type.as_str()) {
        (Some(mode), "afxdp") => vec![("xdp-mode", mode.as_str())],
        _ => Vec::new(),
    };
    let netdev = match netdev_afxdp::open_netdev(&port_type, iface, &options) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("pktgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut total = 0u64;
    let mut second = Instant::now();
    let mut this_second = 0u64;
    let mut batch = PacketBatch::new();
    let start = Instant::now();

    match mode.as_str() {
        "tx" => {
            let info = netdev.info();
            let src_mac = parse_mac(&get("src-mac", "")).unwrap_or(info.mac);
            let dst_mac = parse_mac(&get("dst-mac", "ff:ff:ff:ff:ff:ff")).unwrap_or([0xff; 6]);
            let src_ip = parse_ip(&get("src-ip", "10.77.0.1")).unwrap_or([10, 77, 0, 1]);
            let dst_ip = parse_ip(&get("dst-ip", "10.77.0.2")).unwrap_or([10, 77, 0, 2]);
            let dst_port: u16 = get("dst-port", "9").parse().unwrap_or(9);
            let size: usize = get("size", "64").parse().unwrap_or(64);
            let flows: u16 = get("flows", "1").parse().unwrap_or(1).max(1);
            let rate: f64 = get("rate", "0").parse().unwrap_or(0.0);
            // Frames without FCS: a "64-byte" frame is 60 bytes on the wire
            // buffer.
            let frames: Vec<Vec<u8>> = (0..flows)
                .map(|i| {
                    udp_frame(
                        size.saturating_sub(4),
                        src_mac,
                        dst_mac,
                        src_ip,
                        dst_ip,
                        1024 + i,
                        dst_port,
                    )
                })
                .collect();
            let pool = PacketPool::new("pktgen", PoolConfig::heap(4 * MAX_BURST));
            let mut txq = match netdev.open_txq(0) {
                Ok(q) => q,
                Err(e) => {
                    eprintln!("pktgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut flow = 0usize;
            let mut dropped = 0u64;
            while Instant::now() < end {
                while !batch.is_full() {
                    let Some(p) = pool.alloc_from(&frames[flow]) else {
                        break;
                    };
                    flow = (flow + 1) % frames.len();
                    let _ = batch.push(p);
                }
                let out = txq.send(&mut batch);
                total += out.sent as u64;
                this_second += out.sent as u64;
                dropped += out.dropped as u64;
                if rate > 0.0 {
                    let due = start + Duration::from_secs_f64(total as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                if second.elapsed() >= Duration::from_secs(1) {
                    println!("tx {this_second} pps (dropped so far {dropped})");
                    this_second = 0;
                    second = Instant::now();
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "tx total {total} packets in {secs:.2} s = {:.0} pps ({dropped} dropped)",
                total as f64 / secs
            );
        }
        "rx" => {
            let mut rxq = match netdev.open_rxq(0) {
                Ok(q) => q,
                Err(e) => {
                    eprintln!("pktgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            while Instant::now() < end {
                match rxq.recv(&mut batch) {
                    Ok(n) => {
                        total += n as u64;
                        this_second += n as u64;
                        batch.clear();
                    }
                    Err(e) => {
                        eprintln!("pktgen: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                if second.elapsed() >= Duration::from_secs(1) {
                    println!("rx {this_second} pps");
                    this_second = 0;
                    second = Instant::now();
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "rx total {total} packets in {secs:.2} s = {:.0} pps",
                total as f64 / secs
            );
            // Where a low count lost its packets (for an afxdp sink, the
            // kernel's socket counters: ring full, fill ring empty, ...).
            let counters: Vec<String> = netdev
                .custom_stats()
                .into_iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            if !counters.is_empty() {
                println!("rx counters {}", counters.join(" "));
            }
        }
        _ => return usage(),
    }
    ExitCode::SUCCESS
}

/// `pktgen drop`: the tcx drop sink on `iface` for `seconds`.
fn drop_sink(iface: &str, seconds: u64) -> ExitCode {
    let sink = match netdev_afxdp::drop_sink::DropSink::attach(iface) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pktgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let mut last = 0u64;
    for _ in 0..seconds {
        std::thread::sleep(Duration::from_secs(1));
        match sink.dropped() {
            Ok(n) => {
                println!("drop {} pps", n - last);
                last = n;
            }
            Err(e) => {
                eprintln!("pktgen: reading the drop count on {iface}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "drop total {last} packets in {secs:.2} s = {:.0} pps",
        last as f64 / secs
    );
    ExitCode::SUCCESS
}

/// `pktgen tx --type xdp-live`: [`netdev_afxdp::live_gen`], bursts of
/// `--burst` (default 64) frames per system call.
fn live_tx(iface: &str, seconds: u64, get: &dyn Fn(&str, &str) -> String) -> ExitCode {
    let src_mac = match netdev_afxdp::testing::if_mac(iface) {
        Ok(m) => parse_mac(&get("src-mac", "")).unwrap_or(m),
        Err(e) => {
            eprintln!("pktgen: {iface}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dst_mac = parse_mac(&get("dst-mac", "ff:ff:ff:ff:ff:ff")).unwrap_or([0xff; 6]);
    let src_ip = parse_ip(&get("src-ip", "10.77.0.1")).unwrap_or([10, 77, 0, 1]);
    let dst_ip = parse_ip(&get("dst-ip", "10.77.0.2")).unwrap_or([10, 77, 0, 2]);
    let dst_port: u16 = get("dst-port", "9").parse().unwrap_or(9);
    let size: usize = get("size", "64").parse().unwrap_or(64);
    let burst: u32 = get("burst", "64").parse().unwrap_or(64).max(1);
    let frame = udp_frame(
        size.saturating_sub(4),
        src_mac,
        dst_mac,
        src_ip,
        dst_ip,
        1024,
        dst_port,
    );
    let generator = match netdev_afxdp::live_gen::LiveGen::new(iface, &frame) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("pktgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let (mut total, mut this_second, mut second) = (0u64, 0u64, Instant::now());
    while Instant::now() < end {
        if let Err(e) = generator.send(burst) {
            eprintln!("pktgen: sending on {iface}: {e}");
            return ExitCode::FAILURE;
        }
        total += burst as u64;
        this_second += burst as u64;
        if second.elapsed() >= Duration::from_secs(1) {
            println!("tx {this_second} pps (dropped so far 0)");
            this_second = 0;
            second = Instant::now();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "tx total {total} packets in {secs:.2} s = {:.0} pps (0 dropped)",
        total as f64 / secs
    );
    ExitCode::SUCCESS
}

/// `pktgen xdp-pass`: [`netdev_afxdp::live_gen::XdpPass`] on `iface` for
/// `seconds`.
fn xdp_pass(iface: &str, seconds: u64) -> ExitCode {
    let _pass = match netdev_afxdp::live_gen::XdpPass::attach(iface) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pktgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    std::thread::sleep(Duration::from_secs(seconds));
    ExitCode::SUCCESS
}
