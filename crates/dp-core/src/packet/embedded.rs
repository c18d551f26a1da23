//! Packet cells embedded in a driver's own buffers, as OVS keeps its
//! `dp_packet` in each DPDK mbuf's private area.
//!
//! # How it works
//! A driver reserves [`EMBEDDED_CELL_SIZE`] bytes beside every buffer it
//! owns (DPDK: the mbuf private area) and writes an empty cell there once
//! with [`init_embedded_cell`] when it creates its buffers. On receive,
//! [`wrap_embedded`] resets that cell's metadata and attaches the frame: no
//! pool queue is touched, no allocation, no atomic. When the packet is
//! dropped, the frame is moved out of the cell and released; the release
//! (freeing the buffer) frees the cell with it, so the cell is never
//! touched afterwards. [`Packet::into_foreign`](super::Packet::into_foreign)
//! takes the frame back without releasing it and leaves the cell empty in
//! its buffer, ready for the buffer's next use.
//!
//! # Invariants
//! - Between uses an embedded cell is a valid, empty cell (`Storage::Empty`,
//!   no home): [`init_embedded_cell`] establishes it, dropping or
//!   unwrapping the packet restores it.
//! - At most one packet uses a cell; the driver guarantees it by wrapping a
//!   buffer only when it owns the buffer (just received it).

use std::ptr::NonNull;

use super::{ForeignFrame, Packet, PacketCell, PacketMetadata, Storage, reset_meta};

/// Bytes a driver reserves beside each buffer for an embedded cell.
pub const EMBEDDED_CELL_SIZE: usize = std::mem::size_of::<PacketCell>();
/// Alignment the embedded cell needs.
pub const EMBEDDED_CELL_ALIGN: usize = std::mem::align_of::<PacketCell>();

/// Writes an empty cell at `at`, once per buffer, when the driver creates
/// its buffers.
///
/// # Safety
/// `at` is aligned to [`EMBEDDED_CELL_ALIGN`], valid for writes of
/// [`EMBEDDED_CELL_SIZE`] bytes, and not used by any packet. What was
/// there is overwritten without being dropped.
pub unsafe fn init_embedded_cell(at: NonNull<u8>) {
    debug_assert!(at.as_ptr().cast::<PacketCell>().is_aligned());
    let cell = PacketCell {
        meta: PacketMetadata::default(),
        fresh: true,
        data_start: 0,
        data_len: 0,
        storage: Storage::Empty,
        home: None,
    };
    // SAFETY: the caller's contract: aligned, writable, unused.
    unsafe { at.cast::<PacketCell>().as_ptr().write(cell) };
}

/// A packet of `len` bytes at `data_start` in `frame`, whose cell is the
/// embedded cell at `at`. When the range is outside the frame, the frame
/// comes back untouched.
///
/// # Safety
/// - `at` holds a cell written by [`init_embedded_cell`] and since used
///   only through this function, and no live packet uses it now;
/// - the cell's memory stays valid and unaliased until `frame` is
///   released (typically the cell lives in the buffer the frame
///   describes, and releasing the frame frees both).
pub unsafe fn wrap_embedded(
    at: NonNull<u8>,
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
    let cell = at.cast::<PacketCell>();
    // SAFETY: the caller's contract: a valid cell nobody else uses.
    let c = unsafe { &mut *cell.as_ptr() };
    debug_assert!(c.home.is_none() && matches!(c.storage, Storage::Empty));
    reset_meta(c);
    c.data_start = data_start as u32;
    c.data_len = len as u32;
    // SAFETY: the old storage is `Empty` (the invariant), which owns
    // nothing, so overwriting it without a drop loses nothing.
    unsafe { std::ptr::write(&raw mut c.storage, Storage::Foreign(frame)) };
    Ok(Packet { cell })
}
