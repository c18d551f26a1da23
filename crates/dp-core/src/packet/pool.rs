//! Packet pools: a bounded set of reusable packet cells.
//!
//! A pool creates cells lazily up to its capacity and keeps the returned
//! ones in a lock-free free list, so after warm-up allocation is a queue
//! pop and freeing a queue push. A heap pool's cells own their frame bytes;
//! a metadata-only pool's cells carry foreign frames that a driver attaches
//! per packet ([`PacketPool::wrap_foreign`]).
//!
//! The number of packets in use is derived (`created - free`), not counted
//! per packet, so accounting costs nothing on the fast path. Tests assert
//! that it returns to its baseline.
//!
//! # Lifetime without per-packet reference counting
//! A cell knows its pool through a `&'static PoolShared`: the shared
//! header of every pool is leaked on purpose, so returning a packet is one
//! queue push and no atomic reference count moves per packet. The header
//! includes the free list's slot array, so what stays behind per pool ever
//! created is about 16 bytes × capacity plus the name (1 MiB for a
//! 65,536-packet pool): bounded by how many ports a daemon ever opens, but
//! it grows with port churn (known limitation; freeing it needs the
//! recycling path to know when no packet can still reach the queue). What matters for memory, the cells
//! and their buffers, is freed: when the last [`PacketPool`] handle goes,
//! the pool is closed and its free cells are dropped; packets still out
//! are dropped (not queued) when they come back. A packet returning while
//! the pool closes pushes, then re-checks and drains, so no cell is left
//! behind either way.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

use super::{ForeignFrame, Packet, PacketCell, PacketMetadata, Storage};

/// Headroom kept in front of received data for pushed headers (same as
/// DPDK's `RTE_PKTMBUF_HEADROOM`).
pub const DEFAULT_HEADROOM: usize = 128;

/// Sizing of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most packets that can be in use at once.
    pub capacity: usize,
    /// Bytes of storage per heap packet (headroom included); 0 for a
    /// metadata-only pool.
    pub buffer_size: usize,
}

impl PoolConfig {
    /// A heap pool of `capacity` buffers big enough for a 1500-byte MTU
    /// frame with VLAN tags, plus headroom (2 KiB of data room).
    pub fn heap(capacity: usize) -> PoolConfig {
        PoolConfig {
            capacity,
            buffer_size: DEFAULT_HEADROOM + 2048,
        }
    }

    /// A pool whose cells only ever carry foreign frames.
    pub fn metadata_only(capacity: usize) -> PoolConfig {
        PoolConfig {
            capacity,
            buffer_size: 0,
        }
    }
}

/// A snapshot of a pool's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub name: String,
    pub capacity: usize,
    /// Cells created so far (never more than `capacity`).
    pub created: usize,
    /// Packets currently out of the pool.
    pub in_use: usize,
    /// Allocations refused because every cell was in use.
    pub alloc_failures: u64,
}

#[derive(Debug)]
pub(crate) struct PoolShared {
    name: String,
    config: PoolConfig,
    free: ArrayQueue<Box<PacketCell>>,
    created: AtomicUsize,
    alloc_failures: AtomicU64,
    /// Live `PacketPool` handles; 0 means closed.
    handles: AtomicUsize,
}

impl PoolShared {
    fn is_closed(&self) -> bool {
        self.handles.load(Ordering::Acquire) == 0
    }

    /// Takes back a cell whose packet was dropped.
    #[inline]
    pub(crate) fn recycle(&'static self, mut cell: Box<PacketCell>) {
        if self.is_closed() {
            self.discard(cell);
            return;
        }
        cell.meta.reset();
        // The queue holds `capacity` cells and at most `capacity` exist, so
        // the push cannot fail; if it ever did, freeing the cell is safe.
        if let Err(cell) = self.free.push(cell) {
            self.discard(cell);
        }
        // The pool may have closed between the check and the push.
        if self.is_closed() {
            self.drain();
        }
    }

    fn discard(&self, cell: Box<PacketCell>) {
        drop(cell);
        self.created.fetch_sub(1, Ordering::Relaxed);
    }

    /// Frees every cell in the free list (the pool is closed).
    fn drain(&self) {
        while let Some(cell) = self.free.pop() {
            self.discard(cell);
        }
    }
}

/// A handle to a packet pool. Cheap to clone; clones share the pool.
#[derive(Debug)]
pub struct PacketPool {
    shared: &'static PoolShared,
}

impl Clone for PacketPool {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        PacketPool {
            shared: self.shared,
        }
    }
}

impl Drop for PacketPool {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.drain();
        }
    }
}

impl PacketPool {
    /// Creates an empty pool; cells are created on first use.
    pub fn new(name: impl Into<String>, config: PoolConfig) -> PacketPool {
        let capacity = config.capacity.max(1);
        let shared = Box::leak(Box::new(PoolShared {
            name: name.into(),
            free: ArrayQueue::new(capacity),
            config: PoolConfig { capacity, ..config },
            created: AtomicUsize::new(0),
            alloc_failures: AtomicU64::new(0),
            handles: AtomicUsize::new(1),
        }));
        PacketPool { shared }
    }

    /// The pool's name (shown in stats).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Bytes of storage per heap packet.
    pub fn buffer_size(&self) -> usize {
        self.shared.config.buffer_size
    }

    fn take_cell(&self) -> Option<Box<PacketCell>> {
        let shared = self.shared;
        if let Some(cell) = shared.free.pop() {
            return Some(cell);
        }
        // Reserve a creation slot; give it back if the pool is full.
        let slot = shared.created.fetch_add(1, Ordering::Relaxed);
        if slot >= shared.config.capacity {
            shared.created.fetch_sub(1, Ordering::Relaxed);
            shared.alloc_failures.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let storage = if shared.config.buffer_size == 0 {
            Storage::Empty
        } else {
            Storage::Owned(vec![0u8; shared.config.buffer_size].into_boxed_slice())
        };
        Some(Box::new(PacketCell {
            meta: PacketMetadata::default(),
            data_start: 0,
            data_len: 0,
            storage,
            home: Some(shared),
        }))
    }

    /// An empty packet with [`DEFAULT_HEADROOM`] in front (less if the
    /// buffers are smaller); `None` when every buffer is in use.
    #[inline]
    pub fn alloc(&self) -> Option<Packet> {
        let mut cell = self.take_cell()?;
        cell.data_start = DEFAULT_HEADROOM.min(cell.storage.bytes().len()) as u32;
        cell.data_len = 0;
        Some(Packet::from_cell(cell))
    }

    /// A packet holding a copy of `bytes`; `None` when the pool is
    /// exhausted or `bytes` does not fit a buffer.
    pub fn alloc_from(&self, bytes: &[u8]) -> Option<Packet> {
        let mut packet = self.alloc()?;
        packet.set_data(bytes).then_some(packet)
    }

    /// Wraps a driver's frame holding `len` bytes of packet data at
    /// `data_start`. When the pool is exhausted or the range is outside the
    /// frame, the frame is handed back untouched.
    pub fn wrap_foreign(
        &self,
        frame: ForeignFrame,
        data_start: usize,
        len: usize,
    ) -> Result<Packet, ForeignFrame> {
        let fits = data_start
            .checked_add(len)
            .is_some_and(|end| end <= frame.bytes().len() && end <= u32::MAX as usize);
        if !fits {
            return Err(frame);
        }
        let Some(mut cell) = self.take_cell() else {
            return Err(frame);
        };
        cell.storage = Storage::Foreign(frame);
        cell.data_start = data_start as u32;
        cell.data_len = len as u32;
        Ok(Packet::from_cell(cell))
    }

    /// Packets currently out of the pool.
    pub fn in_use(&self) -> usize {
        self.shared.created.load(Ordering::Relaxed) - self.shared.free.len()
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            name: self.shared.name.clone(),
            capacity: self.shared.config.capacity,
            created: self.shared.created.load(Ordering::Relaxed),
            in_use: self.in_use(),
            alloc_failures: self.shared.alloc_failures.load(Ordering::Relaxed),
        }
    }
}
