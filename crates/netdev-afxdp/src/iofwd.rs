//! An io forwarder: two `afxdp` ports and nothing between them — what
//! `dpdk-testpmd --forward-mode=io` is to a DPDK switch. Each iteration
//! receives a burst on each port's rx queue and sends it, as it is, out of
//! the other port's tx queue: no flow key, no lookup, no actions, no
//! datapath. The ports, queues and UMEMs are the ones the PMD uses
//! ([`AfxdpNetdev`], its [`RxQueue`]/[`TxQueue`]), opened from the same
//! option parser as oxvsd's ports ([`crate::afxdp_config`]: by default
//! `best-effort` xdp-mode, 2048-entry rings, both ports on the process's
//! shared UMEM), so what it costs per packet is the driver's and the
//! kernel's share of a switch's cost: the ceiling an AF_XDP userspace
//! switch with this driver can approach on a machine, never pass.
//!
//! # Cycle accounting
//! As the PMD's `pmd-stats-show`: an iteration that received packets is
//! busy, its cycles (receive on both queues and the sends) count as
//! processing cycles, and `avg processing cycles per packet` is those over
//! the packets received; an iteration that received none is idle. The
//! caller passes the cycle counter (the PMD's own, `dp_pmd::cycles::now`,
//! so the figures compare with `pmd-stats-show`'s): this driver crate does
//! not carry a second copy of it.
//!
//! # Invariants
//! - Every packet received is sent or dropped within its iteration: the
//!   batch is empty between iterations, so no UMEM frame is lent while the
//!   forwarder is idle, and [`IoForwarder::close`] finds none lent and,
//!   once the ports are gone, every frame of their UMEMs back on the free
//!   list (it reports both, the caller checks them).
//! - The XDP programs are attached exactly while the forwarder lives (the
//!   ports' bpf_links).
#![forbid(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use dp_core::netdev::{Netdev, RxQueue, TxQueue};
use dp_core::packet::PacketBatch;

use crate::afxdp::AfxdpNetdev;
use crate::afxdp::umem::UmemWatch;
use crate::error::{OpenCause, OpenError};

/// Counters of an [`IoForwarder`]; direction 0 is port a → port b,
/// direction 1 is b → a.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoFwdStats {
    /// Packets received on the direction's rx port.
    pub received: [u64; 2],
    /// Of those, packets the other port's tx queue took.
    pub sent: [u64; 2],
    /// Of those, packets the tx queue dropped (ring full, bad length).
    pub tx_dropped: [u64; 2],
    /// Receive errors (a device gone).
    pub rx_errors: [u64; 2],
    /// TSC cycles of the iterations that received packets.
    pub busy_cycles: u64,
    /// TSC cycles of the iterations that received none.
    pub idle_cycles: u64,
}

impl IoFwdStats {
    /// Packets received both ways.
    pub fn packets(&self) -> u64 {
        self.received[0] + self.received[1]
    }

    /// `avg processing cycles per packet` as the PMD computes it (busy
    /// cycles over packets received); `None` before any packet.
    pub fn processing_cycles_per_packet(&self) -> Option<f64> {
        let n = self.packets();
        (n > 0).then(|| self.busy_cycles as f64 / n as f64)
    }
}

/// What [`IoForwarder::close`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoFwdClose {
    pub stats: IoFwdStats,
    /// UMEM frames lent to packets after the last iteration (before the
    /// ports closed): must be 0.
    pub in_use: usize,
    /// Frames of the ports' UMEMs not on the free list once the ports and
    /// their sockets are gone: must be 0.
    pub not_free: usize,
}

/// A port's rx and tx queue 0.
type Queues = (Box<dyn RxQueue>, Box<dyn TxQueue>);

/// The forwarder; see the module docs.
#[derive(Debug)]
pub struct IoForwarder {
    // Queues before ports: they are dropped first (field order).
    rxqs: [Box<dyn RxQueue>; 2],
    txqs: [Box<dyn TxQueue>; 2],
    ports: [AfxdpNetdev; 2],
    batch: PacketBatch,
    stats: IoFwdStats,
}

impl IoForwarder {
    /// Opens `a` and `b` as `afxdp` ports with `options` (the port
    /// options oxvsd takes, see [`crate::afxdp_config`]; `n_rxq` must be
    /// 1: one queue each way) and their queue 0.
    pub fn open(a: &str, b: &str, options: &[(&str, &str)]) -> Result<IoForwarder, OpenError> {
        let config = crate::afxdp_config(options)
            .map_err(|what| OpenError::new(a, OpenCause::BadConfig(what)))?;
        if config.n_rxq != 1 {
            return Err(OpenError::new(
                a,
                OpenCause::BadConfig(format!(
                    "the io forwarder polls one queue per port (n_rxq {})",
                    config.n_rxq
                )),
            ));
        }
        let pa = AfxdpNetdev::open(a, &config)?;
        let pb = AfxdpNetdev::open(b, &config)?;
        let queue = |p: &AfxdpNetdev| -> Result<Queues, OpenError> {
            let device = |e: dp_core::netdev::NetdevError| {
                OpenError::new(
                    p.name(),
                    OpenCause::Io {
                        op: "opening queue 0",
                        err: io::Error::other(e.to_string()),
                    },
                )
            };
            Ok((
                p.open_rxq(0).map_err(device)?,
                p.open_txq(0).map_err(device)?,
            ))
        };
        let (rxa, txa) = queue(&pa)?;
        let (rxb, txb) = queue(&pb)?;
        Ok(IoForwarder {
            rxqs: [rxa, rxb],
            txqs: [txa, txb],
            ports: [pa, pb],
            batch: PacketBatch::new(),
            stats: IoFwdStats::default(),
        })
    }

    /// The two ports (a, b).
    pub fn ports(&self) -> &[AfxdpNetdev; 2] {
        &self.ports
    }

    /// The counters so far.
    pub fn stats(&self) -> IoFwdStats {
        self.stats
    }

    /// One iteration: a burst from each port out of the other, timed with
    /// `cycles` (see the module's cycle accounting); returns the packets
    /// received.
    #[inline]
    pub fn poll_once(&mut self, cycles: impl Fn() -> u64) -> usize {
        let start = cycles();
        let mut received = 0;
        for dir in 0..2 {
            if self.rxqs[dir].recv(&mut self.batch).is_err() {
                self.stats.rx_errors[dir] += 1;
            }
            let n = self.batch.len();
            if n == 0 {
                continue;
            }
            received += n;
            self.stats.received[dir] += n as u64;
            // `send` consumes the whole batch, error or not.
            let out = self.txqs[1 - dir].send(&mut self.batch);
            self.stats.sent[dir] += out.sent as u64;
            self.stats.tx_dropped[dir] += out.dropped as u64;
            self.batch.clear();
        }
        let spent = cycles().wrapping_sub(start);
        if received > 0 {
            self.stats.busy_cycles += spent;
        } else {
            self.stats.idle_cycles += spent;
        }
        received
    }

    /// Polls, timing each iteration with `cycles`, until `stop` is set or
    /// `deadline` passes (the wall clock is read every 1,024 iterations: it
    /// costs more than an idle iteration).
    pub fn run(&mut self, stop: &AtomicBool, deadline: Option<Instant>, cycles: impl Fn() -> u64) {
        let mut round = 0u32;
        loop {
            self.poll_once(&cycles);
            round = round.wrapping_add(1);
            if round & 1023 == 0
                && (stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d))
            {
                return;
            }
        }
    }

    /// Closes the queues and the ports (detaching XDP) and counts the UMEM
    /// frames not returned (see [`IoFwdClose`]).
    pub fn close(self) -> IoFwdClose {
        let IoForwarder {
            rxqs,
            txqs,
            ports,
            batch,
            stats,
        } = self;
        drop(batch);
        let mut watches: Vec<UmemWatch> = Vec::new();
        for w in ports.iter().flat_map(AfxdpNetdev::umem_watches) {
            if !watches.iter().any(|o| o.same_umem(&w)) {
                watches.push(w);
            }
        }
        let in_use = watches.iter().map(UmemWatch::in_use).sum();
        drop(rxqs);
        drop(txqs);
        drop(ports);
        let not_free = watches
            .iter()
            .map(|w| w.n_frames() as usize - w.free_frames())
            .sum();
        IoFwdClose {
            stats,
            in_use,
            not_free,
        }
    }
}
