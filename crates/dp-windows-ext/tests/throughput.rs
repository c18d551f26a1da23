//! Throughput of the punt/inject ring contract (measurements, run
//! explicitly):
//!
//! ```text
//! cargo test --release -p dp-windows-ext --test throughput -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - `ring_contract_alone`: the rings between two threads, no interface:
//!   what the contract itself costs per packet (punt + inject, bursts of
//!   32).
//! - `emulator_vs_afxdp_on_one_veth`: 64-byte frames from an AF_PACKET
//!   generator in a namespace arrive on the host end of its veth; first an
//!   emulated Hyper-V port (emulator + `windows` netdev), then an AF_XDP
//!   port on the same veth end, receive them in bursts of 32 and send
//!   each burst back out (inject / AF_XDP tx). Reports Mpps for both.
#![cfg(not(windows))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use dp_core::netdev::{Netdev, RxQueue, TxQueue};
use dp_core::packet::{PacketBatch, PacketPool, PoolConfig};
use dp_windows_ext::{WindowsConfig, WindowsNetdev};
use netdev_afxdp::{AfxdpConfig, AfxdpNetdev};

#[test]
#[ignore = "measurement; run explicitly in release mode"]
fn ring_contract_alone() {
    let secs = 3.0;
    for threads in [false, true] {
        let n = dp_windows_ext::fuzzing::ring_loopback(Duration::from_secs_f64(secs), threads);
        eprintln!(
            "ring contract alone: {:.2} Mpps punted+injected (batch 32, {}); {:.0} ns per packet",
            n as f64 / secs / 1e6,
            if threads {
                "shim and userspace on two threads"
            } else {
                "shim and userspace taking turns on one thread"
            },
            secs * 1e9 / n.max(1) as f64
        );
    }
}

/// 60-byte frames (64 on the wire), bursts of 32, from an AF_PACKET port
/// in `ns` on `iface`, until `stop`.
fn generator(ns: &str, iface: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let iface = iface.to_string();
    in_netns(ns, move || {
        let netdev = netdev_afxdp::open_netdev("system", &iface, &[]).expect("generator port");
        let mut txq = netdev.open_txq(0).expect("generator txq");
        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
        frame[6..12].copy_from_slice(&netdev.info().mac);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&46u16.to_be_bytes());
        frame[22] = 64;
        frame[23] = 17;
        let pool = PacketPool::new("gen", PoolConfig::heap(128));
        let mut batch = PacketBatch::new();
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
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

/// Receives bursts on `rxq` and sends each back on `txq` for `secs`;
/// returns (received, sent).
fn forward(rxq: &mut dyn RxQueue, txq: &mut dyn TxQueue, secs: f64) -> (u64, u64) {
    let mut batch = PacketBatch::new();
    let (mut got, mut sent) = (0u64, 0u64);
    // Warm-up, then measure.
    let warm = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warm {
        if rxq.recv(&mut batch).unwrap_or(0) > 0 {
            txq.send(&mut batch);
        }
    }
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        for _ in 0..16 {
            let n = rxq.recv(&mut batch).unwrap_or(0);
            if n > 0 {
                got += n as u64;
                sent += txq.send(&mut batch).sent as u64;
            } else {
                // Two cores shared with the generator (and the emulated
                // shim): an idle poll gives the core away.
                std::thread::yield_now();
            }
        }
    }
    (got, sent)
}

#[test]
#[ignore = "measurement; run explicitly in release mode"]
fn emulator_vs_afxdp_on_one_veth() {
    if !prerequisites("windows emulator throughput") {
        return;
    }
    let secs = 3.0;
    let topo = netns("t");
    let stop = Arc::new(AtomicBool::new(false));
    let gen_ = generator(&topo.ns_a, &topo.inner_a, Arc::clone(&stop));

    let (emu_rx, emu_tx) = {
        let emu = emulator(&topo);
        let config = WindowsConfig {
            device: emu.socket().to_str().unwrap().to_string(),
            ring_size: 2048,
            n_frames: 4096,
            ..WindowsConfig::default()
        };
        let port = WindowsNetdev::open("pa", &config).unwrap_or_else(|e| panic!("{e}"));
        let mut rxq = port.open_rxq(0).unwrap();
        let mut txq = port.open_txq(0).unwrap();
        let r = forward(rxq.as_mut(), txq.as_mut(), secs);
        eprintln!(
            "emulator: punted {} injected {} dropped {}",
            emu.stats().punted.load(Ordering::Relaxed),
            emu.stats().injected.load(Ordering::Relaxed),
            emu.stats().dropped.load(Ordering::Relaxed)
        );
        r
    };
    let (xdp_rx, xdp_tx) = {
        let port = AfxdpNetdev::open(&topo.host_a, &AfxdpConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("afxdp: xdp-mode {}", port.xdp_mode_in_use());
        let mut rxq = port.open_rxq(0).unwrap();
        let mut txq = port.open_txq(0).unwrap();
        forward(rxq.as_mut(), txq.as_mut(), secs)
    };
    stop.store(true, Ordering::Relaxed);
    let generated = gen_.join().unwrap();
    let mpps = |n: u64| n as f64 / secs / 1e6;
    eprintln!(
        "64-byte frames, batch 32, one veth (generator sent {generated} over both runs):\n  \
         emulated Hyper-V port (punt/inject rings): rx {:.3} Mpps, tx {:.3} Mpps\n  \
         AF_XDP port:                               rx {:.3} Mpps, tx {:.3} Mpps",
        mpps(emu_rx),
        mpps(emu_tx),
        mpps(xdp_rx),
        mpps(xdp_tx)
    );
}
