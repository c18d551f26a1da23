//! Per-queue counters shared between a queue's owner and the port's
//! `stats()` reader: relaxed atomics, added once per batch.

use std::sync::atomic::{AtomicU64, Ordering};

use dp_core::netdev::NetdevStats;

/// Per-queue counters, summed into the port's [`NetdevStats`].
#[derive(Debug, Default)]
pub struct QueueStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub rx_errors: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub tx_errors: AtomicU64,
    /// AF_XDP: packets sent from the UMEM they were received into (no
    /// copy).
    pub tx_zero_copy: AtomicU64,
    /// AF_XDP: packets copied into a UMEM frame to be sent (they came
    /// from another UMEM or another port type, or are a flood's clones).
    pub tx_copied: AtomicU64,
    /// system: received packets whose partial L4 checksum was completed.
    pub rx_csum_completed: AtomicU64,
    /// afxdp: received packets with a partial L4 checksum (forwarded as
    /// they are: the sender's offload setting is wrong for AF_XDP).
    /// Sampled: only the first packet of each received burst is checked.
    pub rx_csum_partial: AtomicU64,
}

impl QueueStats {
    pub fn add_to(&self, out: &mut NetdevStats) {
        out.rx_packets += self.rx_packets.load(Ordering::Relaxed);
        out.rx_bytes += self.rx_bytes.load(Ordering::Relaxed);
        out.rx_dropped += self.rx_dropped.load(Ordering::Relaxed);
        out.rx_errors += self.rx_errors.load(Ordering::Relaxed);
        out.tx_packets += self.tx_packets.load(Ordering::Relaxed);
        out.tx_bytes += self.tx_bytes.load(Ordering::Relaxed);
        out.tx_dropped += self.tx_dropped.load(Ordering::Relaxed);
        out.tx_errors += self.tx_errors.load(Ordering::Relaxed);
    }
}

#[inline]
pub fn bump(counter: &AtomicU64, n: u64) {
    if n != 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
