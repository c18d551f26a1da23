//! In-tree netdev drivers that need no hardware and no privileges:
//! [`dummy`] (in-memory ports fed by an injection API, tx captured) and
//! [`pcap`] (rx replays a capture file, tx writes one or discards). Tests,
//! demos and benchmarks run on them; real drivers live in their own crates.

pub mod dummy;
pub mod pcap;

use std::sync::atomic::{AtomicU64, Ordering};

use dp_core::netdev::NetdevStats;

/// Port counters updated once per burst by the queue that owns the burst,
/// read by anyone.
#[derive(Debug, Default)]
pub(crate) struct AtomicStats {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
}

impl AtomicStats {
    pub(crate) fn add_rx(&self, packets: usize, bytes: usize) {
        self.rx_packets.fetch_add(packets as u64, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    pub(crate) fn add_rx_dropped(&self, packets: usize) {
        self.rx_dropped.fetch_add(packets as u64, Ordering::Relaxed);
    }
    pub(crate) fn add_tx(&self, packets: usize, bytes: usize, dropped: usize) {
        self.tx_packets.fetch_add(packets as u64, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.tx_dropped.fetch_add(dropped as u64, Ordering::Relaxed);
    }
    pub(crate) fn snapshot(&self) -> NetdevStats {
        NetdevStats {
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            rx_dropped: self.rx_dropped.load(Ordering::Relaxed),
            rx_errors: 0,
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            tx_dropped: self.tx_dropped.load(Ordering::Relaxed),
            tx_errors: 0,
        }
    }
}

/// Nanoseconds since the Unix epoch, for capture timestamps.
pub(crate) fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
