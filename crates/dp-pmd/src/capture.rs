//! The live-capture tap: copies of the packets a port receives or sends,
//! taken on the PMD fast path and handed to a writer thread through a
//! bounded ring per PMD.
//!
//! # How it works
//! Each PMD owns a [`CaptureTap`]. With no capture active it holds `None`,
//! and the hooks in the packet path cost one predictable branch
//! (`active.is_some()`) per received batch and per transmitted batch.
//!
//! A capture gives every PMD its own [`CaptureRing`]: two bounded
//! channels that together hold a fixed set of preallocated
//! [`CaptureRecord`]s. The PMD takes an empty record from `free`, copies
//! the packet into it (its storage is reused, so steady capture does not
//! allocate unless a frame is larger than any before, and then exactly to
//! that frame's kept length) and pushes it to
//! `filled`; the writer thread takes filled records, writes them out and
//! returns them to `free`. The PMD is the only producer and the writer the
//! only consumer of `filled` (and the reverse for `free`), so each ring
//! is single-producer single-consumer.
//!
//! # Invariants
//! - The forwarded packet is never touched: the tap reads it and copies.
//!   When `free` is empty (the writer is behind) the *copy* is dropped and
//!   counted in [`CaptureRing::ring_full_drops`].
//! - A ring's records never hold more than `slots × snaplen` bytes: each
//!   is preallocated to at most the snap length and grows only to the
//!   bytes it keeps ([`ring_bytes`] is that bound; the daemon refuses a
//!   capture whose rings could pass [`MAX_RING_BYTES`]).
//! - A closed ring ([`CaptureRing::close`]) is let go by its PMD at the
//!   next packet it would have captured, so a finished capture stops
//!   costing copies even before the control thread's stop message.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};
use dp_core::flow::FlowKey;
use dp_core::flow::extract::extract_frame;
use dp_core::packet::{Packet, PacketBatch};

/// Default records per PMD ring.
pub const DEFAULT_RING_SLOTS: usize = 1024;
/// Bytes preallocated per record (larger frames grow it once).
const RECORD_PREALLOC: usize = 2048;
/// Longest snap length accepted.
pub const MAX_SNAPLEN: usize = 65_535;
/// Most bytes one ring's records may come to (slots × snap length): the
/// default ring of full-length records fits.
pub const MAX_RING_BYTES: usize = 64 << 20;

/// The most bytes a ring of `slots` records of at most `snaplen` bytes
/// holds (see the module invariants).
pub fn ring_bytes(slots: usize, snaplen: usize) -> usize {
    slots.max(1).saturating_mul(snaplen.max(1))
}

/// Which direction a capture copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Rx,
    Tx,
    Both,
}

impl Direction {
    fn rx(self) -> bool {
        matches!(self, Direction::Rx | Direction::Both)
    }
    fn tx(self) -> bool {
        matches!(self, Direction::Tx | Direction::Both)
    }
}

/// What to capture.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureSpec {
    /// Identifies the capture in stop messages.
    pub id: u64,
    pub port_no: u32,
    pub direction: Direction,
    /// `(masked key, mask)`: only packets whose flow key matches on the
    /// mask's fields are copied (as `dump-flows filter=`).
    pub filter: Option<(FlowKey, FlowKey)>,
    /// Bytes kept per packet (the rest is cut, the original length kept).
    pub snaplen: usize,
    /// Records in each PMD's ring.
    pub ring_slots: usize,
}

/// One copied packet.
#[derive(Clone, Debug, Default)]
pub struct CaptureRecord {
    /// Datapath clock (ns, [`crate::cycles::monotonic_ns`]) when the PMD
    /// saw the packet.
    pub at_ns: u64,
    /// Whether it was being sent (else received).
    pub tx: bool,
    /// Length on the wire.
    pub orig_len: u32,
    /// The first `snaplen` bytes.
    pub data: Vec<u8>,
}

/// One PMD's ring of a capture; see the module docs.
#[derive(Debug)]
pub struct CaptureRing {
    free_tx: Sender<Box<CaptureRecord>>,
    free_rx: Receiver<Box<CaptureRecord>>,
    filled_tx: Sender<Box<CaptureRecord>>,
    filled_rx: Receiver<Box<CaptureRecord>>,
    ring_full: AtomicU64,
    closed: AtomicBool,
}

impl CaptureRing {
    /// A ring of `slots` preallocated records for packets cut to
    /// `snaplen` bytes (done on the control thread).
    pub fn new(slots: usize, snaplen: usize) -> Arc<CaptureRing> {
        let slots = slots.max(1);
        let prealloc = RECORD_PREALLOC.min(snaplen.max(1));
        let (free_tx, free_rx) = bounded(slots);
        let (filled_tx, filled_rx) = bounded(slots);
        for _ in 0..slots {
            let record = Box::new(CaptureRecord {
                data: Vec::with_capacity(prealloc),
                ..CaptureRecord::default()
            });
            // Cannot fail: the channel holds exactly `slots`.
            let _ = free_tx.try_send(record);
        }
        Arc::new(CaptureRing {
            free_tx,
            free_rx,
            filled_tx,
            filled_rx,
            ring_full: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// Copies dropped because the writer had not returned a record yet.
    pub fn ring_full_drops(&self) -> u64 {
        self.ring_full.load(Ordering::Relaxed)
    }

    /// The writer's side: filled records, oldest first.
    pub fn filled(&self) -> &Receiver<Box<CaptureRecord>> {
        &self.filled_rx
    }

    /// The writer gives a record back once written.
    pub fn recycle(&self, mut record: Box<CaptureRecord>) {
        record.data.clear();
        // Cannot fail: at most `slots` records exist.
        let _ = self.free_tx.try_send(record);
    }

    /// Tells the PMD to stop copying (the writer is done).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A capture running on one PMD.
#[derive(Debug)]
struct ActiveCapture {
    spec: CaptureSpec,
    ring: Arc<CaptureRing>,
    /// Scratch key for the filter.
    key: Box<FlowKey>,
}

impl ActiveCapture {
    /// Copies the packets of `batch` that pass the filter. Returns false
    /// when the ring was closed (the capture is over).
    fn copy_batch<'a>(
        &mut self,
        packets: impl Iterator<Item = &'a Packet>,
        tx: bool,
        now_ns: u64,
    ) -> bool {
        if self.ring.is_closed() {
            return false;
        }
        for packet in packets {
            if let Some((fkey, fmask)) = &self.spec.filter {
                // Received packets already carry their in_port; sent ones
                // carry the port they came in on.
                extract_frame(packet.data(), packet.meta(), &mut self.key);
                if !self.key.matches_masked(fmask, fkey) {
                    continue;
                }
            }
            let Ok(mut record) = self.ring.free_rx.try_recv() else {
                self.ring.ring_full.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let data = packet.data();
            let keep = data.len().min(self.spec.snaplen);
            record.at_ns = now_ns;
            record.tx = tx;
            record.orig_len = data.len() as u32;
            record.data.clear();
            // Exactly: a doubling growth could pass `slots × snaplen`.
            record.data.reserve_exact(keep);
            record.data.extend_from_slice(&data[..keep]);
            if let Err(e) = self.ring.filled_tx.try_send(record) {
                // Only if the writer leaked records; keep the set whole.
                self.ring.ring_full.fetch_add(1, Ordering::Relaxed);
                let _ = self.ring.free_tx.try_send(e.into_inner());
            }
        }
        true
    }
}

/// A PMD's capture hook; see the module docs.
#[derive(Debug, Default)]
pub struct CaptureTap {
    active: Option<Box<ActiveCapture>>,
    /// The datapath clock the tap last saw (for transmits flushed outside
    /// an iteration's packet path).
    clock_ns: u64,
}

impl CaptureTap {
    /// Starts copying for `spec` into `ring` (replacing any capture).
    pub fn start(&mut self, spec: CaptureSpec, ring: Arc<CaptureRing>) {
        self.active = Some(Box::new(ActiveCapture {
            spec,
            ring,
            key: Box::new(FlowKey::ZERO),
        }));
    }

    /// Stops capture `id` (another id is left running).
    pub fn stop(&mut self, id: u64) {
        if self.active.as_ref().is_some_and(|a| a.spec.id == id) {
            self.active = None;
        }
    }

    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// The latest datapath time the tap saw.
    pub fn clock(&self) -> u64 {
        self.clock_ns
    }

    /// Hook: `batch` was received on `port_no`.
    #[inline(always)]
    pub fn rx(&mut self, port_no: u32, batch: &PacketBatch, now_ns: u64) {
        if let Some(active) = &mut self.active {
            self.clock_ns = now_ns;
            if active.spec.port_no == port_no && active.spec.direction.rx() {
                Self::copy(&mut self.active, batch.iter(), false, now_ns);
            }
        }
    }

    /// Hook: `batch` is about to be sent on `port_no`.
    #[inline(always)]
    pub fn tx(&mut self, port_no: u32, batch: &PacketBatch, now_ns: Option<u64>) {
        if let Some(active) = &mut self.active
            && active.spec.port_no == port_no
            && active.spec.direction.tx()
        {
            let now = now_ns.unwrap_or(self.clock_ns);
            Self::copy(&mut self.active, batch.iter(), true, now);
        }
    }

    #[cold]
    #[inline(never)]
    fn copy<'a>(
        active: &mut Option<Box<ActiveCapture>>,
        packets: impl Iterator<Item = &'a Packet>,
        tx: bool,
        now_ns: u64,
    ) {
        if let Some(a) = active
            && !a.copy_batch(packets, tx, now_ns)
        {
            *active = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_core::packet::{PacketPool, PoolConfig};

    fn batch_of(pool: &PacketPool, frames: &[Vec<u8>]) -> PacketBatch {
        let mut b = PacketBatch::new();
        for f in frames {
            b.push(pool.alloc_from(f).unwrap()).unwrap();
        }
        b
    }

    fn spec(direction: Direction, slots: usize) -> CaptureSpec {
        CaptureSpec {
            id: 1,
            port_no: 3,
            direction,
            filter: None,
            snaplen: MAX_SNAPLEN,
            ring_slots: slots,
        }
    }

    #[test]
    fn copies_matching_port_and_direction_and_counts_a_full_ring() {
        let pool = PacketPool::new("t", PoolConfig::heap(64));
        let frames: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 60 + i as usize]).collect();
        let mut tap = CaptureTap::default();
        let batch = batch_of(&pool, &frames);
        tap.rx(3, &batch, 5);
        assert!(!tap.is_active());

        let ring = CaptureRing::new(5, MAX_SNAPLEN);
        tap.start(spec(Direction::Rx, 5), ring.clone());
        tap.rx(4, &batch, 10); // other port
        tap.tx(3, &batch, Some(10)); // other direction
        assert!(ring.filled().is_empty());
        tap.rx(3, &batch, 11);
        // 5 copied, 3 dropped for want of a record; the batch is intact.
        assert_eq!(ring.filled().len(), 5);
        assert_eq!(ring.ring_full_drops(), 3);
        assert_eq!(batch.len(), 8);
        let first = ring.filled().try_recv().unwrap();
        assert_eq!(
            (first.at_ns, first.tx, first.data.as_slice()),
            (11, false, &frames[0][..])
        );
        ring.recycle(first);
        tap.rx(3, &batch, 12);
        assert_eq!(ring.filled().len(), 5);
        assert_eq!(ring.ring_full_drops(), 10);

        // Closing lets the PMD drop the capture at the next packet.
        ring.close();
        tap.rx(3, &batch, 13);
        assert!(!tap.is_active());
        drop(batch);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn filter_and_snaplen() {
        let pool = PacketPool::new("t", PoolConfig::heap(8));
        let mut udp = vec![0u8; 14 + 20 + 8];
        udp[12..14].copy_from_slice(&[0x08, 0x00]);
        udp[14] = 0x45;
        udp[14 + 9] = 17;
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let batch = batch_of(&pool, &[udp.clone(), arp]);
        // Match on the Ethernet type only, taken from the UDP frame's key.
        let mut key = FlowKey::ZERO;
        extract_frame(&udp, batch.get(0).unwrap().meta(), &mut key);
        let mut mask = FlowKey::ZERO;
        mask.dl_type = 0xffff;
        let mut s = spec(Direction::Both, 4);
        s.filter = Some((key.masked(&mask), mask));
        s.snaplen = 20;
        let ring = CaptureRing::new(4, 20);
        let mut tap = CaptureTap::default();
        tap.start(s, ring.clone());
        tap.tx(3, &batch, None);
        assert_eq!(ring.filled().len(), 1, "only the IPv4 frame");
        let r = ring.filled().try_recv().unwrap();
        assert!(r.tx);
        assert_eq!(r.orig_len as usize, udp.len());
        assert_eq!(r.data, udp[..20]);
    }

    #[test]
    fn records_stay_within_the_snap_length() {
        let pool = PacketPool::new("t", PoolConfig::heap(4));
        let batch = batch_of(&pool, &[vec![7u8; 1500]]);
        let mut s = spec(Direction::Rx, 2);
        s.snaplen = 100;
        let ring = CaptureRing::new(2, 100);
        let mut tap = CaptureTap::default();
        tap.start(s, ring.clone());
        for _ in 0..5 {
            tap.rx(3, &batch, 1);
            let r = ring.filled().try_recv().unwrap();
            assert_eq!((r.data.len(), r.orig_len), (100, 1500));
            assert!(r.data.capacity() <= 100, "{}", r.data.capacity());
            ring.recycle(r);
        }
        // A frame longer than the preallocation grows its record to the
        // kept length only (doubling 2048 would pass the 3000-byte bound).
        let big_pool = PacketPool::new(
            "t-big",
            PoolConfig {
                buffer_size: 4096,
                ..PoolConfig::heap(1)
            },
        );
        let jumbo = batch_of(&big_pool, &[vec![9u8; 2500]]);
        let mut s = spec(Direction::Rx, 1);
        s.snaplen = 3000;
        let ring = CaptureRing::new(1, 3000);
        tap.start(s, ring.clone());
        tap.rx(3, &jumbo, 2);
        let r = ring.filled().try_recv().unwrap();
        assert_eq!(r.data.len(), 2500);
        assert!(r.data.capacity() <= 3000, "{}", r.data.capacity());
        assert!(
            ring_bytes(1024, MAX_SNAPLEN) <= MAX_RING_BYTES,
            "the default fits"
        );
        assert!(ring_bytes(65_536, MAX_SNAPLEN) > MAX_RING_BYTES);
        assert_eq!(ring_bytes(0, 0), 1);
    }
}
