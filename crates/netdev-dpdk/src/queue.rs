//! The fast path: mbufs in and out of packets without copying.
//!
//! - Receive: an mbuf's data room *is* the packet's buffer and its private
//!   area holds the packet's cell (see `mempool`), so receiving a packet
//!   takes nothing from any pool but DPDK's. Each mbuf is wrapped in a
//!   [`ForeignFrame`] whose token is the mbuf pointer and whose release is
//!   `rte_pktmbuf_free`, so however the packet leaves the datapath (sent,
//!   dropped, cloned-then-dropped, port removed) the mbuf goes back exactly
//!   once. An mbuf from a pool that is not the queue's (a `net_ring` peer's)
//!   gets a cell from the queue's cell pool instead. Multi-segment chains
//!   are linearised into the first segment (the rest freed) or, when that
//!   cannot be done, freed whole and counted.
//! - Accounting: mbufs lent to packets are counted per ethdev port (the
//!   mbuf's `port` field, which receive sets), added once per burst and
//!   subtracted once per transmitted batch or per dropped packet, so the
//!   daemon's leak check sees them without a per-packet atomic.
//! - Transmit: a packet whose frame is one of our mbufs (from any `dpdk`
//!   port) is unwrapped without releasing it, its mbuf header updated to
//!   the packet's current data span, and handed to the device; any other
//!   packet is copied once into an mbuf of this port's pool. Whatever the
//!   device does not take after retrying while it makes progress is freed
//!   and counted as dropped.
//! - Copies for a multi-output action (`TxQueue::clone_packet`) are made
//!   straight into a fresh mbuf of the output port's pool and lent to a
//!   packet as a received mbuf is, so they are sent without another copy.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dp_core::netdev::{NetdevError, RxQueue, TxOutcome, TxQueue};
use std::sync::atomic::AtomicUsize;

use dp_core::packet::{ForeignFrame, MAX_BURST, Packet, PacketBatch, PacketPool, wrap_embedded};
use dpdk_sys as sys;

use crate::ffi::{self, Mbuf};
use crate::port::PortShared;

/// Mbufs received on each ethdev port and lent to packets right now.
static LENT: [AtomicUsize; sys::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicUsize::new(0) }; sys::RTE_MAX_ETHPORTS as usize];

/// Mbufs received on `port_id` that are still lent to packets.
pub(crate) fn lent(port_id: u16) -> usize {
    LENT.get(usize::from(port_id))
        .map_or(0, |n| n.load(Ordering::Relaxed))
}

fn lend_return(port_id: u16, n: usize) {
    if let Some(c) = LENT.get(usize::from(port_id)) {
        c.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Gives a received mbuf back to DPDK; the packet's release function.
fn release_mbuf(token: usize, _data: NonNull<u8>) {
    let m = token as Mbuf;
    // SAFETY: `token` is the mbuf this frame was created from (`wrap`),
    // owned by the frame until now; ForeignFrame calls this exactly once
    // and never touches the data again. Its `port` was set by `wrap`.
    unsafe {
        lend_return((*m).port, 1);
        ffi::pktmbuf_free(m);
    }
}

/// A receive queue of a `dpdk` port, owned by one polling thread.
#[derive(Debug)]
pub(crate) struct DpdkRxq {
    shared: Arc<PortShared>,
    qid: u16,
    /// Cells for received mbufs of another pool (whose private area holds
    /// no cell); bounded by the mbuf pool, so it never runs out before the
    /// mbufs do.
    cells: PacketPool,
    scratch: [Mbuf; MAX_BURST],
}

// SAFETY: the raw pointers in `scratch` are only meaningful during one
// `recv` call; between calls they are stale values never dereferenced. The
// queue is used by one thread at a time (`&mut self`).
unsafe impl Send for DpdkRxq {}

impl DpdkRxq {
    pub(crate) fn new(shared: Arc<PortShared>, qid: u16) -> DpdkRxq {
        let cells = shared.rx_cells[usize::from(qid)].clone();
        DpdkRxq {
            shared,
            qid,
            cells,
            scratch: [std::ptr::null_mut(); MAX_BURST],
        }
    }

    /// Turns a received mbuf chain into a packet, or frees it (and takes
    /// back its lent count, which `recv` gave it up front).
    ///
    /// `RSS`: the port delivers RSS hashes, so the mbuf's flag is worth
    /// testing (a per-burst choice: without it the flag is never set).
    /// `port_id` and `our_pool` are the queue's, read once per burst.
    ///
    /// The common case (one segment, our pool's mbuf) is straight-line
    /// code; everything else is out of line.
    ///
    /// # Safety
    /// `m` is a valid mbuf chain just returned by `rx_burst`, owned by the
    /// caller and by nothing else.
    #[inline(always)]
    unsafe fn wrap<const RSS: bool>(
        &self,
        m: Mbuf,
        port_id: u16,
        our_pool: *mut sys::rte_mempool,
    ) -> Option<Packet> {
        // SAFETY: the caller's contract: `m` is valid and ours.
        let mb = unsafe { &mut *m };
        // Invariant the transmit side relies on: a packet's mbuf is one
        // segment (`nb_segs == 1`, `next` null) from here on; nothing in
        // the datapath makes a chain.
        if mb.nb_segs != 1 || !mb.next.is_null() {
            // SAFETY: as above.
            if !unsafe { self.linearise(m) } {
                return None;
            }
        }
        let Some(data) = NonNull::new(mb.buf_addr.cast::<u8>()) else {
            // SAFETY: as above.
            return unsafe { self.drop_received(m) };
        };
        mb.port = port_id;
        let (start, len) = (usize::from(mb.data_off), usize::from(mb.data_len));
        // SAFETY: the data room `buf_addr..buf_addr + buf_len` belongs to
        // this mbuf alone (the mbuf header lies before it); the mbuf is
        // ours until `release_mbuf` frees it, and its pool is never freed.
        let frame =
            unsafe { ForeignFrame::new(data, usize::from(mb.buf_len), m as usize, release_mbuf) };
        let wrapped = if mb.pool == our_pool {
            // SAFETY: the private area follows the mbuf header inside the
            // same mempool element (`mempool` sizes it for the cell), so
            // the offset stays in bounds and the pointer is non-null.
            let cell = unsafe { NonNull::from(&mut *mb).add(1).cast::<u8>() };
            // SAFETY: mbufs of our pool carry an initialised cell in their
            // private area (mempool.rs), unused while the mbuf is outside
            // our packets (every path that hands an mbuf back to DPDK
            // empties its cell first); the cell lives in the mbuf, so it
            // stays valid until the frame's release frees the mbuf.
            unsafe { wrap_embedded(cell, frame, start, len) }
        } else {
            self.cells.wrap_foreign(frame, start, len)
        };
        let mut packet = match wrapped {
            Ok(packet) => packet,
            Err(frame) => return self.wrap_failed(frame),
        };
        if RSS && mb.ol_flags & ffi::RX_RSS_HASH != 0 {
            // SAFETY: the flag says `hash.rss` is the member DPDK wrote.
            let hash = unsafe { mb.__bindgen_anon_2.hash.rss };
            packet.set_rss_hash(hash);
        }
        Some(packet)
    }

    /// Linearises a received chain into its first segment; `false` when
    /// it could not be, and then the chain is freed and counted.
    ///
    /// # Safety
    /// As [`Self::wrap`].
    #[cold]
    #[inline(never)]
    unsafe fn linearise(&self, m: Mbuf) -> bool {
        // SAFETY: `m` is a valid chain we own.
        if unsafe { ffi::pktmbuf_linearize(m) } {
            self.shared
                .counters
                .rx_linearised
                .fetch_add(1, Ordering::Relaxed);
            // SAFETY: as above; linearising leaves one segment.
            debug_assert!(unsafe { (*m).nb_segs == 1 && (*m).next.is_null() });
            true
        } else {
            // SAFETY: as above; frees every segment. `None` is discarded.
            let _ = unsafe { self.drop_received(m) };
            false
        }
    }

    /// Frees a received mbuf chain that cannot become a packet, counted
    /// as an rx drop; always `None`.
    ///
    /// # Safety
    /// As [`Self::wrap`]; `m` is never used again.
    #[cold]
    #[inline(never)]
    unsafe fn drop_received(&self, m: Mbuf) -> Option<Packet> {
        // SAFETY: the caller's contract; frees every segment.
        unsafe { ffi::pktmbuf_free(m) };
        lend_return(self.shared.port_id, 1);
        self.shared
            .counters
            .rx_dropped
            .fetch_add(1, Ordering::Relaxed);
        None
    }

    /// A frame no cell would take (span outside the frame, cell pool
    /// empty): released (the mbuf and its count) and counted; `None`.
    #[cold]
    #[inline(never)]
    fn wrap_failed(&self, frame: ForeignFrame) -> Option<Packet> {
        drop(frame);
        self.shared
            .counters
            .rx_dropped
            .fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl RxQueue for DpdkRxq {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError> {
        let room = MAX_BURST.saturating_sub(batch.len());
        if room == 0 {
            return Ok(0);
        }
        // SAFETY: the port is started and stays so while `shared` lives;
        // `qid` was set up and this queue object is its only poller
        // (`open_rxq` hands each qid out once).
        let n = unsafe { ffi::rx_burst(self.shared.port_id, self.qid, &mut self.scratch[..room]) };
        if n == 0 {
            return Ok(0);
        }
        // Counted lent up front; every path that frees one takes it back.
        LENT[usize::from(self.shared.port_id)].fetch_add(n, Ordering::Relaxed);
        Ok(if self.shared.rx_rss_hash {
            self.wrap_burst::<true>(n, batch)
        } else {
            self.wrap_burst::<false>(n, batch)
        })
    }
}

impl DpdkRxq {
    /// Wraps the `n` mbufs just received into `scratch` and appends them
    /// to `batch` (which has room for all `n`); returns how many it
    /// appended. One pass, with the per-burst values in registers.
    #[inline(always)]
    fn wrap_burst<const RSS: bool>(&self, n: usize, batch: &mut PacketBatch) -> usize {
        debug_assert!(n <= MAX_BURST - batch.len());
        let port_id = self.shared.port_id;
        let our_pool = self.shared.mempool.raw();
        batch.extend_from_fn(&self.scratch[..n], |&m| {
            // SAFETY: `m` was just received and is owned by nobody else;
            // `recv` asked for no more than the batch's room, so
            // `extend_from_fn` calls this for every one of them.
            unsafe { self.wrap::<RSS>(m, port_id, our_pool) }
        })
    }
}

/// Lent mbufs taken back while a batch becomes mbufs: one atomic per run
/// of packets from the same port (usually one per batch). Plain locals in
/// `send`'s loop (a struct behind `&mut` was kept in memory: ~10
/// instructions a packet, callgrind, DPDK bench `1flow`, against ~4).
#[inline(always)]
fn tally_returned(port: u16, run_port: &mut u16, run_n: &mut usize) {
    if port != *run_port {
        flush_returned(*run_port, *run_n);
        *run_port = port;
        *run_n = 0;
    }
    *run_n += 1;
}

/// Gives back the lent count of a run of returned mbufs (none: nothing).
#[inline(never)]
fn flush_returned(port: u16, n: usize) {
    if n > 0 {
        lend_return(port, n);
    }
}

/// Makes a received mbuf that a packet lent, now ours again, describe
/// the packet's current data span (`start`, `len` inside its data room)
/// for transmit; returns its `port` (the port it was counted lent on).
///
/// # Safety
/// `m` was lent to a packet by `DpdkRxq::wrap` (or `clone_packet`) and
/// the loan has ended without freeing it: the caller owns it. The packet
/// invariants keep `start + len <= buf_len` (the frame's capacity), which
/// fits u16.
#[inline(always)]
unsafe fn restore_sent(m: Mbuf, start: usize, len: usize) -> u16 {
    // SAFETY: the caller's contract.
    let mb = unsafe { &mut *m };
    debug_assert!(start + len <= usize::from(mb.buf_len));
    // `nb_segs` and `next` need no rewrite: `wrap` made the mbuf one
    // segment and nothing since makes a chain.
    debug_assert!(mb.nb_segs == 1 && mb.next.is_null());
    mb.data_off = start as u16;
    mb.data_len = len as u16;
    mb.pkt_len = len as u32;
    // Receive flags are not transmit requests; but a vhost-user queue may
    // set transmit offload flags on receive (the guest's GSO/checksum
    // requests), which this datapath does not honour yet: clear them.
    mb.ol_flags &= ffi::OWNERSHIP_FLAGS;
    mb.port
}

/// Why `DpdkTxq::send`'s straight-line loop stopped.
enum Rare {
    /// The burst is full (never: a batch holds at most `MAX_BURST`).
    Full,
    /// A packet that is not one of our lent mbufs in an embedded cell.
    Other(Packet),
    /// A lent mbuf (ours again) from another port than the last one's.
    NewPort(Mbuf, u16),
}

/// A transmit queue of a `dpdk` port.
#[derive(Debug)]
pub(crate) struct DpdkTxq {
    shared: Arc<PortShared>,
    qid: u16,
    scratch: [Mbuf; MAX_BURST],
}

// SAFETY: as for DpdkRxq: `scratch` holds nothing between calls.
unsafe impl Send for DpdkTxq {}

impl DpdkTxq {
    pub(crate) fn new(shared: Arc<PortShared>, qid: u16) -> DpdkTxq {
        DpdkTxq {
            shared,
            qid,
            scratch: [std::ptr::null_mut(); MAX_BURST],
        }
    }

    /// The mbuf to send for `packet` (consumed); `None` when it had to be
    /// dropped (no mbuf for the copy, too big). A lent mbuf taken back is
    /// tallied in the run `run_port`/`run_n` (see [`tally_returned`]).
    #[inline(never)]
    fn to_mbuf(&self, packet: Packet, run_port: &mut u16, run_n: &mut usize) -> Option<Mbuf> {
        match packet.into_foreign_token(release_mbuf) {
            Ok((token, start, len)) => {
                let m = token as Mbuf;
                // SAFETY: the frame was created by `DpdkRxq::wrap` from
                // this mbuf (its release function says so) and the loan
                // ended without freeing it, so we own `m` again.
                let port = unsafe { restore_sent(m, start, len) };
                tally_returned(port, run_port, run_n);
                Some(m)
            }
            Err(packet) => self.copy_to_mbuf(packet),
        }
    }

    /// A packet from another netdev type (or another pool's cell): copied
    /// once into an mbuf of this port's pool.
    #[inline(never)]
    fn copy_to_mbuf(&self, packet: Packet) -> Option<Mbuf> {
        let m = self.alloc_copy(packet.data())?;
        self.shared
            .counters
            .tx_copied
            .fetch_add(1, Ordering::Relaxed);
        Some(m)
    }

    /// A fresh mbuf of this port's pool holding a copy of `data` (one
    /// segment, at the default headroom); `None` when the pool is empty or
    /// `data` does not fit its data room.
    fn alloc_copy(&self, data: &[u8]) -> Option<Mbuf> {
        let m = ffi::pktmbuf_alloc(self.shared.mempool.ptr())?;
        // SAFETY: `m` is a fresh, reset mbuf we own: `buf_addr + data_off`
        // starts its writable data room of `buf_len - data_off` bytes.
        unsafe {
            let mb = &mut *m;
            let room = usize::from(mb.buf_len) - usize::from(mb.data_off);
            let len = data.len();
            if len > room {
                ffi::pktmbuf_free(m);
                return None;
            }
            let dst = mb.buf_addr.cast::<u8>().add(usize::from(mb.data_off));
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst, len);
            mb.data_len = len as u16;
            mb.pkt_len = len as u32;
        }
        Some(m)
    }
}

impl TxQueue for DpdkTxq {
    /// The copy for one output of a multi-output action (a flood) goes
    /// straight into a fresh mbuf of this port's pool, lent to a packet
    /// exactly as a received mbuf is (its cell in the private area, its
    /// `port` this port's, counted lent), so `send` hands that mbuf to the
    /// device as it is: one copy, where the executor's heap copy and a
    /// second copy into an mbuf at send were two. `None` (pool empty, too
    /// big): the executor copies into its clone pool as before.
    fn clone_packet(&mut self, packet: &Packet) -> Option<Packet> {
        let len = packet.len();
        if len == 0 {
            return None;
        }
        let m = self.alloc_copy(packet.data())?;
        // SAFETY: `m` is a fresh mbuf we own holding the copy (one
        // segment, `data_off` at the default headroom); nobody else sees
        // it.
        let mb = unsafe { &mut *m };
        let start = usize::from(mb.data_off);
        let Some(data) = NonNull::new(mb.buf_addr.cast::<u8>()) else {
            // SAFETY: ours, never used again.
            unsafe { ffi::pktmbuf_free(m) };
            return None;
        };
        let port_id = self.shared.port_id;
        mb.port = port_id;
        // Lent from here: `release_mbuf` (a drop) or `send` (taken back)
        // gives the count back.
        LENT[usize::from(port_id)].fetch_add(1, Ordering::Relaxed);
        // SAFETY: as in `DpdkRxq::wrap`: the data room belongs to this
        // mbuf alone and stays valid until the frame's release frees it.
        let frame =
            unsafe { ForeignFrame::new(data, usize::from(mb.buf_len), m as usize, release_mbuf) };
        // SAFETY: the mbuf is from this port's pool, whose private areas
        // hold initialised cells unused while their mbuf is outside our
        // packets (see `DpdkRxq::wrap`); the cell lives in the mbuf, so it
        // stays valid until the frame's release frees it.
        let cell = unsafe { NonNull::from(&mut *mb).add(1).cast::<u8>() };
        // SAFETY: as above.
        let mut copy = match unsafe { wrap_embedded(cell, frame, start, len) } {
            Ok(copy) => copy,
            Err(frame) => {
                // Releases the mbuf and its lent count.
                drop(frame);
                return None;
            }
        };
        copy.meta_mut().clone_from(packet.meta());
        self.shared
            .counters
            .tx_copied
            .fetch_add(1, Ordering::Relaxed);
        Some(copy)
    }

    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome {
        let mut n = 0;
        let mut dropped = 0;
        // No port has this number (`lend_return` ignores it), so the first
        // returned mbuf starts a run without giving anything back.
        let (mut run_port, mut run_n) = (u16::MAX, 0);
        let mut packets = batch.drain();
        'all: loop {
            // The common case in a loop that calls nothing, so that its
            // state stays in registers (with the rare cases' calls inside
            // it, every counter lived on the stack): a packet lent one of
            // our mbufs, its cell embedded, from the last one's port.
            let rare = loop {
                // A batch holds at most MAX_BURST packets: never full
                // before the batch ends (handled all the same).
                if n == MAX_BURST {
                    break Rare::Full;
                }
                let Some(packet) = packets.next() else {
                    break 'all;
                };
                let (token, start, len) = match packet.into_embedded_token(release_mbuf) {
                    Ok(lent) => lent,
                    Err(packet) => break Rare::Other(packet),
                };
                let m = token as Mbuf;
                // SAFETY: the frame was created by `DpdkRxq::wrap` (or
                // `clone_packet`) from this mbuf (its release function
                // says so) and the loan ended without freeing it, so we
                // own `m` again.
                let port = unsafe { restore_sent(m, start, len) };
                if port != run_port {
                    break Rare::NewPort(m, port);
                }
                run_n += 1;
                self.scratch[n] = m;
                n += 1;
            };
            match rare {
                Rare::NewPort(m, port) => {
                    flush_returned(run_port, run_n);
                    (run_port, run_n) = (port, 1);
                    self.scratch[n] = m;
                    n += 1;
                }
                Rare::Other(packet) => {
                    if let Some(m) = self.to_mbuf(packet, &mut run_port, &mut run_n) {
                        self.scratch[n] = m;
                        n += 1;
                    } else {
                        dropped += 1;
                    }
                }
                Rare::Full => {
                    for packet in packets.by_ref() {
                        if let Some(m) = self.to_mbuf(packet, &mut run_port, &mut run_n) {
                            // SAFETY: `m` is ours and never used again.
                            unsafe { ffi::pktmbuf_free(m) };
                        }
                        dropped += 1;
                    }
                    break;
                }
            }
        }
        drop(packets);
        flush_returned(run_port, run_n);
        let mut sent = 0;
        {
            let _guard = self.shared.tx_locks[usize::from(self.qid)]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            while sent < n {
                // SAFETY: the port is started while `shared` lives; the
                // queue lock makes us its only user now; every mbuf in
                // `scratch[sent..n]` is a valid chain we own.
                let k = unsafe {
                    ffi::tx_burst(self.shared.port_id, self.qid, &mut self.scratch[sent..n])
                };
                if k == 0 {
                    break;
                }
                sent += k;
            }
        }
        for &m in &self.scratch[sent..n] {
            // SAFETY: the device did not take these; they are ours.
            unsafe { ffi::pktmbuf_free(m) };
        }
        dropped += n - sent;
        if dropped > 0 {
            self.shared
                .counters
                .tx_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        TxOutcome { sent, dropped }
    }
}
