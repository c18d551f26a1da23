//! The frame area of one queue's region, seen from userspace: which frames
//! are ours, which the shim holds, and lending frames to packets without a
//! copy (as netdev-afxdp's UMEM).
//!
//! # Where a frame is
//! Exactly one of: on the free list; held by the shim (put on the fill or
//! inject ring, not yet back through punt or completion: `shim_holds`
//! set); lent to a [`Packet`] (counted in `lent`); or in the hands of the
//! thread between those steps. A descriptor from the shim naming a frame
//! it does not hold is [`BadInput::FrameNotLent`] and ignored, so a buggy
//! shim cannot make us lend one frame twice.
//!
//! # Lifetime
//! A lent frame's token is a strong reference to the [`QueueFrames`]
//! (`Arc::into_raw`), dropped by [`release_frame`]: the region stays mapped
//! while any packet points into it, even after the port is closed.
//!
//! # Threads
//! Packets are dropped on any thread: the free list is a lock-free
//! `ArrayQueue` and the per-frame flags are atomics.
#![allow(unsafe_code, reason = "lending shared-memory frames to packets")]

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;
use dp_core::packet::{ForeignFrame, Packet, PacketPool};

use crate::bad_input::{BadInput, BadInputCounters};
use crate::ring::{Layout, Region};

/// The frames of one queue; see the module docs.
#[derive(Debug)]
pub struct QueueFrames {
    pub region: Region,
    pub layout: Layout,
    free: ArrayQueue<u32>,
    shim_holds: Box<[AtomicBool]>,
    lent: AtomicUsize,
    pub bad: Arc<BadInputCounters>,
}

impl QueueFrames {
    /// Every frame starts on the free list.
    pub fn new(region: Region, layout: Layout, bad: Arc<BadInputCounters>) -> Arc<QueueFrames> {
        let free = ArrayQueue::new(layout.n_frames as usize);
        for i in 0..layout.n_frames {
            let _ = free.push(i);
        }
        Arc::new(QueueFrames {
            region,
            layout,
            free,
            shim_holds: (0..layout.n_frames)
                .map(|_| AtomicBool::new(false))
                .collect(),
            lent: AtomicUsize::new(0),
            bad,
        })
    }

    /// A free frame, now owned by the caller.
    pub fn take_free(&self) -> Option<u32> {
        self.free.pop()
    }

    /// Puts a frame the caller owns back on the free list.
    pub fn put_free(&self, frame: u32) {
        // Cannot overflow: there are only n_frames frames and each is in
        // one place at a time.
        let _ = self.free.push(frame);
    }

    /// Marks a frame the caller owns as handed to the shim.
    pub fn give_to_shim(&self, frame: u32) {
        self.shim_holds[frame as usize].store(true, Ordering::Release);
    }

    /// Takes back a frame the shim returned; `FrameOutOfRange` or
    /// `FrameNotLent` (counted) when it is not one the shim holds.
    pub fn take_from_shim(&self, frame: u32) -> Result<(), BadInput> {
        let Some(flag) = self.shim_holds.get(frame as usize) else {
            self.bad.count(BadInput::FrameOutOfRange);
            return Err(BadInput::FrameOutOfRange);
        };
        if flag.swap(false, Ordering::AcqRel) {
            Ok(())
        } else {
            self.bad.count(BadInput::FrameNotLent);
            Err(BadInput::FrameNotLent)
        }
    }

    /// Frames on the free list.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Frames the shim holds now.
    pub fn held_by_shim(&self) -> usize {
        self.shim_holds
            .iter()
            .filter(|f| f.load(Ordering::Relaxed))
            .count()
    }

    /// Frames lent to packets now.
    pub fn lent(&self) -> usize {
        self.lent.load(Ordering::Relaxed)
    }

    /// Lends frame `frame` (which the caller owns) holding `len` bytes at
    /// `offset` (already checked by [`Layout::check_frame`]) to a packet
    /// from `pool`; when the pool is exhausted the frame goes back to the
    /// free list and `None` comes back.
    pub fn lend(
        self: &Arc<Self>,
        pool: &PacketPool,
        frame: u32,
        offset: usize,
        len: usize,
    ) -> Option<Packet> {
        let size = self.layout.frame_size as usize;
        let ptr = self.region.frame_ptr(self.layout.frame_offset(frame), size);
        let token = Arc::into_raw(Arc::clone(self)) as usize;
        self.lent.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the frame is inside our mapping (`frame_ptr` checked it);
        // the caller owns it (taken from the shim or the free list), so no
        // other packet points at it until `release_frame` puts it back; the
        // strong reference in `token` keeps the mapping alive until then.
        // The shim can still write the shared bytes: the same trust as an
        // AF_XDP UMEM, whose frames the kernel could also touch.
        let foreign = unsafe { ForeignFrame::new(ptr, size, token, release_frame) };
        // On failure the frame is dropped, which releases it to the free
        // list through `release_frame`.
        pool.wrap_foreign(foreign, offset, len).ok()
    }
}

/// Takes a lent frame back (the packet holding it was dropped).
fn release_frame(token: usize, ptr: NonNull<u8>) {
    // SAFETY: `token` came from `Arc::into_raw` in `QueueFrames::lend`,
    // and the frame contract calls this exactly once per token.
    let frames = unsafe { Arc::from_raw(token as *const QueueFrames) };
    if let Some(off) = frames.region.offset_of(ptr) {
        let index = (off - frames.layout.frames) / frames.layout.frame_size as usize;
        frames.put_free(index as u32);
    }
    frames.lent.fetch_sub(1, Ordering::Relaxed);
}
