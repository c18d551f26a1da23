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
//! A cell knows its pool through a `&'static PoolShared`, so returning a
//! packet is one queue push and no reference count moves per packet. The
//! shared header (the free list's slot array, 16 bytes × capacity) is
//! therefore never unmapped: it is *type-stable* memory, as the kernel's
//! `SLAB_TYPESAFE_BY_RCU` caches are. When a closed pool's last cell is
//! freed, the header is retired to a process-wide list and the next pool
//! of the same capacity reuses it, so port churn does not grow memory:
//! headers kept ≤ the most pools of one capacity that were ever alive at
//! once ([`retained_pool_headers`]).
//!
//! What matters for memory, the cells and their buffers, is freed when
//! the last [`PacketPool`] handle goes: the pool is closed and its free
//! cells are dropped; packets still out are dropped (not queued) when they
//! come back. A packet returning while the pool closes pushes, then
//! re-checks and drains, so no cell is left behind either way.
//!
//! # Invariants of the header's lives
//! - `state` packs a life counter, a retired bit and the handle count. A
//!   header is retired only by a compare-exchange from "this life, closed,
//!   not retired", and only once it holds no cell (`created == 0`), so two
//!   participants cannot both retire it, and a participant that looked at
//!   an earlier life cannot retire a later one.
//! - A cell counts in `created` from its creation until it is freed, so a
//!   recycler's push always lands in the life its cell belongs to. After
//!   the push the recycler may read the header in a later life (its cell
//!   was drained meanwhile); all it does there is what any participant of
//!   that life may do: see the pool open and stop, or see it closed and
//!   help drain it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

/// `PoolShared::state`: live handles in the low 32 bits (0 = closed).
const HANDLES_MASK: u64 = (1 << 32) - 1;
/// `PoolShared::state`: set once the closed, empty header is retired.
const RETIRED: u64 = 1 << 32;
/// `PoolShared::state`: one life of the header (bits 33 and up).
const LIFE: u64 = 1 << 33;

#[derive(Debug)]
pub(crate) struct PoolShared {
    free: ArrayQueue<Box<PacketCell>>,
    /// Cells alive (in the free list or out as packets).
    created: AtomicUsize,
    alloc_failures: AtomicU64,
    /// Life, retired bit and live handle count (see the constants).
    state: AtomicU64,
}

/// Retired headers, waiting for a pool of their capacity.
static RETIRED_HEADERS: Mutex<Vec<&'static PoolShared>> = Mutex::new(Vec::new());
/// Headers ever allocated (retired or in use).
static HEADERS_ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// Pool headers this process holds, in use or retired for reuse; bounded
/// by the most pools of one capacity that were alive at once.
pub fn retained_pool_headers() -> usize {
    HEADERS_ALLOCATED.load(Ordering::Relaxed)
}

impl PoolShared {
    /// A header for a new pool with one handle: a retired one of this
    /// capacity if there is one, else a new allocation.
    fn acquire(capacity: usize) -> &'static PoolShared {
        let reused = {
            let mut retired = RETIRED_HEADERS.lock().unwrap_or_else(|e| e.into_inner());
            retired
                .iter()
                .position(|h| h.free.capacity() == capacity)
                .map(|i| retired.swap_remove(i))
        };
        match reused {
            Some(header) => {
                header.alloc_failures.store(0, Ordering::Relaxed);
                // Next life, not retired, one handle. Nothing else can
                // write the state of a retired header.
                let life = header.state.load(Ordering::Relaxed) & !(RETIRED | HANDLES_MASK);
                header
                    .state
                    .store(life.wrapping_add(LIFE) | 1, Ordering::Release);
                header
            }
            None => {
                HEADERS_ALLOCATED.fetch_add(1, Ordering::Relaxed);
                Box::leak(Box::new(PoolShared {
                    free: ArrayQueue::new(capacity),
                    created: AtomicUsize::new(0),
                    alloc_failures: AtomicU64::new(0),
                    state: AtomicU64::new(1),
                }))
            }
        }
    }

    /// The state when the pool is closed (no handle left), else `None`.
    fn closed_state(&self) -> Option<u64> {
        let state = self.state.load(Ordering::Acquire);
        (state & (HANDLES_MASK | RETIRED) == 0).then_some(state)
    }

    /// Takes back a cell whose packet was dropped.
    #[inline]
    pub(crate) fn recycle(&'static self, mut cell: Box<PacketCell>) {
        if self.closed_state().is_some() {
            self.discard(cell);
            self.close_step();
            return;
        }
        super::reset_meta(&mut cell);
        // The queue holds `capacity` cells and at most `capacity` exist, so
        // the push cannot fail; if it ever did, freeing the cell is safe.
        if let Err(cell) = self.free.push(cell) {
            self.discard(cell);
        }
        // The pool may have closed between the check and the push.
        if self.closed_state().is_some() {
            self.close_step();
        }
    }

    fn discard(&self, cell: Box<PacketCell>) {
        drop(cell);
        self.created.fetch_sub(1, Ordering::AcqRel);
    }

    /// For a closed pool: frees every cell in the free list, then retires
    /// the header if no cell of this life is left.
    fn close_step(&'static self) {
        let Some(state) = self.closed_state() else {
            return;
        };
        while let Some(cell) = self.free.pop() {
            self.discard(cell);
        }
        if self.created.load(Ordering::Acquire) == 0
            && self
                .state
                .compare_exchange(state, state | RETIRED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            RETIRED_HEADERS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self);
        }
    }
}

/// A handle to a packet pool. Cheap to clone; clones share the pool.
#[derive(Debug)]
pub struct PacketPool {
    shared: &'static PoolShared,
    name: Arc<str>,
    /// Bytes of storage per heap cell; 0 for a metadata-only pool.
    buffer_size: usize,
}

impl Clone for PacketPool {
    fn clone(&self) -> Self {
        self.shared.state.fetch_add(1, Ordering::AcqRel);
        PacketPool {
            shared: self.shared,
            name: self.name.clone(),
            buffer_size: self.buffer_size,
        }
    }
}

impl Drop for PacketPool {
    fn drop(&mut self) {
        let before = self.shared.state.fetch_sub(1, Ordering::AcqRel);
        if before & HANDLES_MASK == 1 {
            self.shared.close_step();
        }
    }
}

impl PacketPool {
    /// Creates an empty pool; cells are created on first use.
    pub fn new(name: impl Into<String>, config: PoolConfig) -> PacketPool {
        let capacity = config.capacity.max(1);
        PacketPool {
            shared: PoolShared::acquire(capacity),
            name: Arc::from(name.into()),
            buffer_size: config.buffer_size,
        }
    }

    /// The pool's name (shown in stats).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of storage per heap packet.
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    fn take_cell(&self) -> Option<Box<PacketCell>> {
        let shared = self.shared;
        if let Some(cell) = shared.free.pop() {
            return Some(cell);
        }
        // Reserve a creation slot; give it back if the pool is full.
        let slot = shared.created.fetch_add(1, Ordering::AcqRel);
        if slot >= shared.free.capacity() {
            shared.created.fetch_sub(1, Ordering::AcqRel);
            shared.alloc_failures.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let storage = if self.buffer_size == 0 {
            Storage::Empty
        } else {
            Storage::Owned(vec![0u8; self.buffer_size].into_boxed_slice())
        };
        Some(Box::new(PacketCell {
            meta: PacketMetadata::default(),
            fresh: true,
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
            name: self.name.to_string(),
            capacity: self.shared.free.capacity(),
            created: self.shared.created.load(Ordering::Relaxed),
            in_use: self.in_use(),
            alloc_failures: self.shared.alloc_failures.load(Ordering::Relaxed),
        }
    }
}
