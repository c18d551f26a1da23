//! Packet buffers: one owned frame plus the metadata the datapath keeps
//! beside it, recycled through a pool.
//!
//! # How it works
//! A [`Packet`] is a pointer-sized handle to a [`PacketCell`] that came out
//! of a [`PacketPool`]. The cell holds the packet metadata (input port,
//! hashes, recirculation id, tunnel metadata, header offsets) and the frame
//! storage, which is either heap bytes owned by the cell or a foreign frame
//! (a DPDK mbuf's data room, an AF_XDP UMEM frame) that a driver lent. Cells
//! are allocated once and reused, so steady-state traffic never touches the
//! allocator, and moving a packet between batches copies 8 bytes.
//!
//! Storage layout: `[ headroom | data | tailroom ]`. Headers are pushed into
//! the headroom (VLAN tags, tunnel encapsulation) without copying the
//! payload.
//!
//! A driver may instead keep the cell inside its own buffer, as OVS keeps
//! its `dp_packet` around each DPDK mbuf ([`wrap_embedded`]): then receiving
//! and dropping a packet touch no pool at all, and the driver's release
//! function, which frees the buffer, frees the cell with it.
//!
//! # Invariants
//! - Every packet returns to its pool exactly once: dropping the handle
//!   gives the cell back and, for a foreign frame, calls the driver's
//!   release function once. Ownership makes double returns impossible.
//! - An embedded cell is never touched after its frame is released (the
//!   release frees the memory it lives in).
//! - `data_start + data_len <= capacity` at all times.
//! - Header offsets are relative to the start of the data and are either
//!   [`OFS_NONE`] or inside the data.
//!
//! # Threads
//! A packet is `Send`: it may be handed between threads (a PMD and a
//! control thread) but is used by one owner at a time. Returning a cell to
//! its pool is a lock-free queue push, safe from any thread.

mod batch;
mod embedded;
mod foreign;
mod metadata;
mod pool;

pub use batch::{MAX_BURST, PacketBatch};
pub use embedded::{EMBEDDED_CELL_ALIGN, EMBEDDED_CELL_SIZE, init_embedded_cell, wrap_embedded};
pub use foreign::{ForeignFrame, ReleaseFn};
pub use metadata::{HeaderOffsets, OFS_NONE, PacketMetadata, PacketType, TunnelMetadata};
pub use pool::{DEFAULT_HEADROOM, PacketPool, PoolConfig, PoolStats, retained_pool_headers};

use std::ptr::NonNull;

use pool::PoolShared;

/// Where a cell's frame bytes live.
#[derive(Debug)]
enum Storage {
    /// Heap bytes owned by the cell for its whole life.
    Owned(Box<[u8]>),
    /// A driver's frame, returned to the driver when the packet is dropped.
    Foreign(ForeignFrame),
    /// A metadata-only cell waiting for a foreign frame.
    Empty,
}

impl Storage {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Owned(b) => b,
            Storage::Foreign(f) => f.bytes(),
            Storage::Empty => &[],
        }
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Owned(b) => b,
            Storage::Foreign(f) => f.bytes_mut(),
            Storage::Empty => &mut [],
        }
    }
}

/// A packet's storage and metadata; reached through [`Packet`].
#[derive(Debug)]
pub struct PacketCell {
    meta: PacketMetadata,
    /// The metadata is a fresh packet's (`PacketMetadata::default()`)
    /// outside `in_port`, the RSS hash and the header offsets: set where
    /// the metadata is reset, cleared by every handing out of `&mut
    /// PacketMetadata` except the crate's own that write only those
    /// fields. Lets extraction skip its field-by-field first-pass test
    /// and a reset skip the fields nobody wrote.
    fresh: bool,
    data_start: u32,
    data_len: u32,
    storage: Storage,
    /// The pool this cell returns to (see `pool` for why `'static`);
    /// `None` for a cell embedded in its driver's buffer.
    home: Option<&'static PoolShared>,
}

/// An owned packet. Dropping it returns its buffer to its pool.
///
/// The handle is a pointer to its cell: a boxed cell from a
/// [`PacketPool`] (`home` set) or a cell embedded in a driver's buffer
/// (`home` is `None`). Either way the packet is its cell's only user.
pub struct Packet {
    cell: NonNull<PacketCell>,
}

// SAFETY: a packet is the only handle to its cell (boxed or embedded) and
// the cell's contents are Send (a ForeignFrame is Send; pools are
// thread-safe), so moving the handle moves exclusive access with it.
unsafe impl Send for Packet {}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet").field("cell", self.cell()).finish()
    }
}

impl Drop for Packet {
    fn drop(&mut self) {
        let cell = self.cell.as_ptr();
        // SAFETY: the packet is the cell's only user and `drop` runs once.
        match unsafe { (*cell).home } {
            Some(home) => {
                // SAFETY: a cell with a home came from `Box::leak` in
                // `from_cell`; nothing else holds it, so the box is ours.
                let mut cell = unsafe { Box::from_raw(cell) };
                if matches!(cell.storage, Storage::Foreign(_)) {
                    // Gives the frame back to its driver now; the cell goes
                    // back to the pool without it.
                    cell.storage = Storage::Empty;
                }
                home.recycle(cell);
            }
            None => {
                // SAFETY: an embedded cell is valid until its frame is
                // released. The frame is moved out first and the cell is
                // never touched again: releasing the frame frees the
                // memory the cell lives in.
                let storage =
                    unsafe { std::ptr::replace(&raw mut (*cell).storage, Storage::Empty) };
                drop(storage);
            }
        }
    }
}

/// Resets a cell's metadata to a fresh packet's and marks it fresh. A
/// cell still fresh since its last reset differs from that only in the
/// fields a fresh packet may have set: only those are rewritten (on
/// DPDK receive, ~4 stores instead of the whole reset).
#[inline(always)]
fn reset_meta(cell: &mut PacketCell) {
    if cell.fresh {
        let meta = &mut cell.meta;
        meta.in_port = 0;
        meta.rss_hash = 0;
        meta.rss_hash_valid = false;
        meta.offsets = HeaderOffsets::NONE;
        debug_assert!(
            {
                // Option bytes past `geneve_len` are never cleared.
                let mut fresh = PacketMetadata::default();
                fresh.tunnel.geneve_opts = meta.tunnel.geneve_opts;
                *meta == fresh
            },
            "a fresh cell's metadata: {meta:?}"
        );
    } else {
        cell.meta.reset();
        cell.fresh = true;
    }
}

impl Packet {
    fn from_cell(cell: Box<PacketCell>) -> Packet {
        Packet {
            cell: NonNull::from(Box::leak(cell)),
        }
    }

    #[inline]
    fn cell(&self) -> &PacketCell {
        // SAFETY: the cell is valid while the packet lives (boxed, or
        // embedded in a frame released only by this packet's drop) and
        // the packet is its only user.
        unsafe { self.cell.as_ref() }
    }

    #[inline]
    fn cell_mut(&mut self) -> &mut PacketCell {
        // SAFETY: as in `cell`; `&mut self` makes this the only view.
        unsafe { self.cell.as_mut() }
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let cell = self.cell();
        let start = cell.data_start as usize;
        &cell.storage.bytes()[start..start + cell.data_len as usize]
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let cell = self.cell_mut();
        let start = cell.data_start as usize;
        let len = cell.data_len as usize;
        &mut cell.storage.bytes_mut()[start..start + len]
    }

    /// The packet bytes and, writable, the metadata: for a parse that
    /// reads the frame and records what it found beside it.
    #[inline]
    pub fn data_and_meta_mut(&mut self) -> (&[u8], &mut PacketMetadata) {
        let cell = self.cell_mut();
        cell.fresh = false;
        let start = cell.data_start as usize;
        let len = cell.data_len as usize;
        (&cell.storage.bytes()[start..start + len], &mut cell.meta)
    }

    /// The metadata, writable, for the crate's parsers and hashes, which
    /// write only the header offsets and the RSS hash: the packet stays
    /// fresh.
    #[inline]
    pub(crate) fn parse_meta_mut(&mut self) -> &mut PacketMetadata {
        &mut self.cell_mut().meta
    }

    /// [`Self::data_and_meta_mut`] for the crate's parsers, which write
    /// only the header offsets and the RSS hash: the packet stays fresh,
    /// and whether it is comes back with the borrows.
    #[inline]
    pub(crate) fn data_and_meta_fresh(&mut self) -> (&[u8], &mut PacketMetadata, bool) {
        let cell = self.cell_mut();
        let start = cell.data_start as usize;
        let len = cell.data_len as usize;
        (
            &cell.storage.bytes()[start..start + len],
            &mut cell.meta,
            cell.fresh,
        )
    }

    /// Length of the packet in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.cell().data_len as usize
    }

    /// True for a zero-length packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.cell().data_len == 0
    }

    /// Bytes free in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.cell().data_start as usize
    }

    /// Bytes free after the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.capacity() - self.headroom() - self.len()
    }

    /// Total storage size.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cell().storage.bytes().len()
    }

    /// The metadata kept beside the frame.
    #[inline]
    pub fn meta(&self) -> &PacketMetadata {
        &self.cell().meta
    }

    /// The metadata, writable.
    #[inline]
    pub fn meta_mut(&mut self) -> &mut PacketMetadata {
        let cell = self.cell_mut();
        cell.fresh = false;
        &mut cell.meta
    }

    /// Sets the port the packet arrived on; a fresh packet stays fresh
    /// (what a PMD does to every received packet).
    #[inline]
    pub fn set_in_port(&mut self, port: u32) {
        self.cell_mut().meta.in_port = port;
    }

    /// Sets the packet's RSS hash (a NIC's); a fresh packet stays fresh.
    #[inline]
    pub fn set_rss_hash(&mut self, hash: u32) {
        let meta = &mut self.cell_mut().meta;
        meta.rss_hash = hash;
        meta.rss_hash_valid = true;
    }

    /// True while the metadata is a freshly received packet's: nothing
    /// but `in_port`, the RSS hash and the header offsets was set since
    /// its last reset (no `meta_mut`). A packet that is not fresh may
    /// still have such metadata (someone wrote default values).
    #[inline]
    pub fn is_fresh(&self) -> bool {
        self.cell().fresh
    }

    /// Grows the packet at the front by `n` bytes taken from the headroom
    /// and returns them (contents unspecified). Header offsets move with
    /// the data. `None` when the headroom is too small.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.headroom() || n > u16::MAX as usize {
            return None;
        }
        self.cell_mut().data_start -= n as u32;
        self.cell_mut().data_len += n as u32;
        self.cell_mut().meta.offsets.shift_forward(n as u16);
        Some(&mut self.data_mut()[..n])
    }

    /// Makes at least `n` bytes of headroom free, sliding the data toward
    /// the tail (one copy of the data) when the headroom is short but the
    /// tailroom is not; header offsets are unaffected. For pushes bigger
    /// than the default headroom (a tunnel header with many options).
    /// `false` (and no change) when the buffer is too small.
    pub fn reserve_headroom(&mut self, n: usize) -> bool {
        let headroom = self.headroom();
        if headroom >= n {
            return true;
        }
        let shift = n - headroom;
        if shift > self.tailroom() {
            return false;
        }
        let start = headroom;
        let len = self.len();
        self.cell_mut()
            .storage
            .bytes_mut()
            .copy_within(start..start + len, start + shift);
        self.cell_mut().data_start += shift as u32;
        true
    }

    /// Removes `n` bytes from the front. Header offsets that pointed into
    /// the removed bytes become [`OFS_NONE`]. `false` (and no change) when
    /// the packet is shorter than `n`.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len() || n > u16::MAX as usize {
            return false;
        }
        self.cell_mut().data_start += n as u32;
        self.cell_mut().data_len -= n as u32;
        self.cell_mut().meta.offsets.shift_back(n as u16);
        true
    }

    /// Grows the packet at the end by `n` bytes from the tailroom and
    /// returns them (contents unspecified); `None` when there is no room.
    #[inline]
    pub fn push_back(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.len();
        self.cell_mut().data_len += n as u32;
        Some(&mut self.data_mut()[old..])
    }

    /// Cuts the packet to `len` bytes (no-op when already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.cell_mut().data_len = len as u32;
            self.cell_mut().meta.offsets.clamp_to(len);
        }
    }

    /// Replaces the contents with `bytes`, placed after the default
    /// headroom when the storage allows it. `false` when it does not fit.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        let cap = self.capacity();
        if bytes.len() > cap {
            return false;
        }
        let start = DEFAULT_HEADROOM.min(cap - bytes.len());
        self.cell_mut().data_start = start as u32;
        self.cell_mut().data_len = bytes.len() as u32;
        self.cell_mut().meta.offsets = HeaderOffsets::NONE;
        self.data_mut().copy_from_slice(bytes);
        true
    }

    /// The driver frame holding this packet's bytes, if it has one.
    pub fn foreign(&self) -> Option<&ForeignFrame> {
        match &self.cell().storage {
            Storage::Foreign(f) => Some(f),
            _ => None,
        }
    }

    /// Takes the driver frame out of a foreign packet without releasing
    /// it, with the data's `(start, len)` inside the frame; the packet's
    /// cell goes back to its pool (an embedded cell stays, empty, in the
    /// frame's buffer). A packet with heap storage comes back
    /// unchanged as `Err`.
    pub fn into_foreign(mut self) -> Result<(ForeignFrame, usize, usize), Packet> {
        match std::mem::replace(&mut self.cell_mut().storage, Storage::Empty) {
            Storage::Foreign(frame) => {
                let cell = self.cell();
                let span = (cell.data_start as usize, cell.data_len as usize);
                if cell.home.is_some() {
                    drop(self); // the cell goes back to its pool
                } else {
                    // An embedded cell is already empty, which is all its
                    // drop would do; skip it (the fast path of sending a
                    // received mbuf).
                    std::mem::forget(self);
                }
                Ok((frame, span.0, span.1))
            }
            other => {
                self.cell_mut().storage = other;
                Err(self)
            }
        }
    }

    /// Ends the loan of a foreign packet whose frame `release` would take
    /// back, without calling it, and returns the frame's token with the
    /// data's `(start, len)` inside the frame: what `into_foreign` and
    /// [`ForeignFrame::into_raw`] do together, for a driver sending its own
    /// frame. Any other packet comes back unchanged as `Err`.
    ///
    /// Only the token and the span are read and only the storage tag is
    /// written, rather than the whole frame moved out and back (DPDK bench
    /// `io`, callgrind: part of the tx unwrap's ~50 → ~25 instructions).
    #[inline]
    pub fn into_foreign_token(
        mut self,
        release: ReleaseFn,
    ) -> Result<(usize, usize, usize), Packet> {
        let cell = self.cell_mut();
        let token = match &cell.storage {
            Storage::Foreign(f) if f.release_fn() as usize == release as usize => f.token(),
            _ => return Err(self),
        };
        let span = (cell.data_start as usize, cell.data_len as usize);
        // The caller now owns the frame under `token`: forget it, as
        // `ForeignFrame::into_raw` does.
        std::mem::forget(std::mem::replace(&mut cell.storage, Storage::Empty));
        if cell.home.is_some() {
            drop(self); // the (now empty) cell goes back to its pool
        } else {
            // An embedded cell is already empty, which is all its drop
            // would do.
            std::mem::forget(self);
        }
        Ok((token, span.0, span.1))
    }

    /// [`Self::into_foreign_token`] for a packet whose cell is embedded in
    /// its frame's buffer ([`wrap_embedded`]); any other packet (a pooled
    /// cell, heap storage, another release function) comes back
    /// unchanged as `Err`. Its success path makes no call (a pooled cell
    /// would go back to its pool), so a driver's transmit loop built on
    /// it keeps its state in registers (DPDK bench `1flow`, callgrind:
    /// see `netdev-dpdk`'s `queue`).
    #[inline(always)]
    pub fn into_embedded_token(
        mut self,
        release: ReleaseFn,
    ) -> Result<(usize, usize, usize), Packet> {
        let cell = self.cell_mut();
        if cell.home.is_some() {
            return Err(self);
        }
        let token = match &cell.storage {
            Storage::Foreign(f) if f.release_fn() as usize == release as usize => f.token(),
            _ => return Err(self),
        };
        let span = (cell.data_start as usize, cell.data_len as usize);
        // The caller now owns the frame under `token`: forget it, as
        // `ForeignFrame::into_raw` does, leaving the embedded cell empty
        // (the invariant between uses). Forgetting the packet skips its
        // drop, which for an empty embedded cell would do nothing.
        std::mem::forget(std::mem::replace(&mut cell.storage, Storage::Empty));
        std::mem::forget(self);
        Ok((token, span.0, span.1))
    }

    /// Copies this packet (bytes and metadata) into a new buffer from
    /// `pool`; `None` when the pool is exhausted or its buffers are too
    /// small.
    pub fn clone_into(&self, pool: &PacketPool) -> Option<Packet> {
        let mut copy = pool.alloc()?;
        if !copy.set_data(self.data()) {
            return None;
        }
        copy.cell_mut().meta.clone_from(&self.cell().meta);
        copy.cell_mut().fresh = self.cell().fresh;
        Some(copy)
    }
}

#[cfg(test)]
mod tests;
