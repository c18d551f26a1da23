//! The netdev provider interface: what a driver (DPDK, AF_XDP, tap, the
//! Windows shim, the in-memory dummy, pcap) implements so the datapath can
//! receive and send packets through it.
//!
//! # How it works
//! A [`Netdev`] is the port as a whole: name, type, addresses, link state,
//! counters, and how many queues it has. Its queues are separate objects,
//! opened once each and then owned by exactly one thread: a PMD thread owns
//! the [`RxQueue`]s it polls and one [`TxQueue`] per port it sends to. So
//! the fast path calls `recv`/`send` through `&mut` with no locking; only a
//! driver whose tx queue is shared by several PMDs (fewer tx queues than
//! PMDs) locks, inside its own `TxQueue`.
//!
//! # Ownership and limits (the contract every driver keeps)
//! - `recv` appends at most `MAX_BURST - batch.len()` packets to the batch
//!   and returns how many it added. `Ok(0)` means "would block": nothing is
//!   ready now; the caller polls again later. Received packets belong to
//!   the caller.
//! - `send` consumes its whole batch, even on error: every packet is either
//!   handed to the device or dropped (returned to its pool) and counted in
//!   [`TxOutcome::dropped`]. The batch is empty when `send` returns.
//! - Neither call blocks or sleeps. A driver that needs a syscall to kick
//!   the device (an AF_XDP wakeup) makes at most one per call.
//! - Counters in [`NetdevStats`] are cumulative since the port was opened.
//!
//! Drivers never see each other; the datapath only knows this trait.

use std::fmt;

use crate::packet::{Packet, PacketBatch};

/// What went wrong in a driver call, naming the port and queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetdevError {
    /// The queue id is not below the port's queue count.
    NoSuchQueue {
        port: String,
        qid: usize,
        n_queues: usize,
    },
    /// The queue was already opened (each queue has one owner).
    QueueTaken { port: String, qid: usize },
    /// The device is gone or down for good (unplugged, closed).
    Disconnected { port: String },
    /// Any other device error, with the driver's explanation.
    Device { port: String, reason: String },
}

impl fmt::Display for NetdevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetdevError::NoSuchQueue {
                port,
                qid,
                n_queues,
            } => write!(
                f,
                "port {port}: queue {qid} does not exist (the port has {n_queues})"
            ),
            NetdevError::QueueTaken { port, qid } => {
                write!(f, "port {port}: queue {qid} is already open")
            }
            NetdevError::Disconnected { port } => write!(f, "port {port}: device disconnected"),
            NetdevError::Device { port, reason } => write!(f, "port {port}: {reason}"),
        }
    }
}

impl std::error::Error for NetdevError {}

/// Link state as the driver sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up,
    Down,
}

/// Offloads and features a driver provides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Received packets carry a hardware RSS hash (`rss_hash_valid`).
    pub rx_rss_hash: bool,
    /// The device verifies IPv4/L4 checksums on receive.
    pub rx_checksum: bool,
    /// The device can compute IPv4/L4 checksums on transmit.
    pub tx_checksum: bool,
}

/// Static facts about a port, fixed while it is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetdevInfo {
    pub n_rxq: usize,
    pub n_txq: usize,
    pub mac: [u8; 6],
    pub mtu: u16,
    pub capabilities: Capabilities,
}

/// Cumulative counters of a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetdevStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Packets the device or driver dropped on receive (no buffer, ring full).
    pub rx_dropped: u64,
    pub rx_errors: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets dropped on transmit (queue full, device error).
    pub tx_dropped: u64,
    pub tx_errors: u64,
}

/// The result of one [`TxQueue::send`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Packets handed to the device.
    pub sent: usize,
    /// Packets dropped (already returned to their pools).
    pub dropped: usize,
}

/// A port, as a driver provides it. Shared between threads; queues are
/// opened from it once each.
pub trait Netdev: Send + Sync + fmt::Debug {
    /// The port's name (as in the config).
    fn name(&self) -> &str;
    /// The driver type (`dummy`, `pcap`, `afxdp`, `dpdk`, ...).
    fn type_name(&self) -> &'static str;
    /// Queue counts, MAC, MTU and capabilities.
    fn info(&self) -> NetdevInfo;
    /// Current link state.
    fn link_state(&self) -> LinkState;
    /// True when PMD threads poll this port; false for ports the non-PMD
    /// thread polls (kernel-facing ports such as tap), as OVS's
    /// `netdev_is_pmd`.
    fn is_pmd(&self) -> bool {
        true
    }
    /// Cumulative counters (reading them may take a lock; never on the
    /// fast path).
    fn stats(&self) -> NetdevStats;
    /// Driver-specific cumulative counters beyond [`NetdevStats`], as
    /// `(name, value)` in a stable order (OVS's `netdev_get_custom_stats`):
    /// what tells an operator why this port type loses or mangles packets.
    /// Counters only (they never go down); gauges such as buffers in use
    /// are reported with the pools. Never on the fast path.
    fn custom_stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Opens receive queue `qid`, to be owned by one polling thread.
    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError>;
    /// Opens transmit queue `qid` for one sending thread. Drivers whose tx
    /// queues can be shared may allow several opens of one `qid` and lock
    /// inside the returned object.
    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError>;
}

/// A receive queue, owned by the thread that polls it.
pub trait RxQueue: Send + fmt::Debug {
    /// Appends received packets to `batch` (see the module docs for the
    /// contract); `Ok(0)` means nothing is ready.
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError>;
}

/// A transmit queue, owned by the thread that sends on it.
pub trait TxQueue: Send + fmt::Debug {
    /// Sends every packet of `batch`, consuming it even on error.
    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome;

    /// A copy of `packet` (bytes and metadata) in this queue's own buffer
    /// kind, for an output that needs its own copy (every output of a
    /// multi-output action but the last). A driver that sends its own
    /// buffers without a copy (an AF_XDP UMEM frame) makes the copy there,
    /// so the packet is copied once, not once by the executor and again at
    /// transmit. `None` (the default, or no buffer free): the executor
    /// copies into its clone pool.
    fn clone_packet(&mut self, packet: &Packet) -> Option<Packet> {
        let _ = packet;
        None
    }
}

/// Checks `qid` against `n_queues` for port `port`.
pub fn check_qid(port: &str, qid: usize, n_queues: usize) -> Result<(), NetdevError> {
    if qid < n_queues {
        Ok(())
    } else {
        Err(NetdevError::NoSuchQueue {
            port: port.to_string(),
            qid,
            n_queues,
        })
    }
}
