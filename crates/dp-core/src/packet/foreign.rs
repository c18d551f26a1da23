//! Frames lent by a driver (a DPDK mbuf's data room, an AF_XDP UMEM
//! frame): raw memory the packet owns until it is dropped, when the
//! driver's release function takes it back.
//!
//! This is the one place in dp-core that turns a raw pointer into a slice.
//! The contract is carried by [`ForeignFrame::new`]: whoever creates a frame
//! promises that the memory stays valid and unaliased until `release` runs.

use std::ptr::NonNull;

/// Gives a foreign frame back to its driver. Called exactly once per frame,
/// with the `token` and pointer the frame was created with. Must not panic.
pub type ReleaseFn = fn(token: usize, ptr: NonNull<u8>);

/// A driver-owned frame on loan to a packet.
///
/// `repr(C)`, pointer then capacity: the same places as a boxed slice's
/// pointer and length, so `Packet::data` reads either storage kind with
/// the same two loads instead of a branch per kind (callgrind, DPDK bench
/// `1flow`).
#[repr(C)]
pub struct ForeignFrame {
    ptr: NonNull<u8>,
    capacity: usize,
    token: usize,
    release: ReleaseFn,
}

// SAFETY: a ForeignFrame is the only handle to its memory (the contract of
// `ForeignFrame::new`), so moving it to another thread moves exclusive
// access with it; `release` is a plain function pointer.
unsafe impl Send for ForeignFrame {}

impl std::fmt::Debug for ForeignFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignFrame")
            .field("ptr", &self.ptr)
            .field("capacity", &self.capacity)
            .field("token", &self.token)
            .finish()
    }
}

impl ForeignFrame {
    /// Wraps `capacity` bytes at `ptr`.
    ///
    /// # Safety
    /// Until `release(token, ptr)` is called (when the frame is dropped):
    /// - `ptr..ptr + capacity` is valid for reads and writes and is not
    ///   accessed through any other pointer;
    /// - the memory stays allocated, even if the driver that lent it is
    ///   torn down (drivers keep their memory alive while frames are out).
    ///
    /// `capacity` must not exceed `isize::MAX`.
    pub unsafe fn new(
        ptr: NonNull<u8>,
        capacity: usize,
        token: usize,
        release: ReleaseFn,
    ) -> ForeignFrame {
        debug_assert!(capacity <= isize::MAX as usize);
        ForeignFrame {
            ptr,
            capacity,
            token,
            release,
        }
    }

    /// The whole frame.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `new`'s contract: valid, exclusively ours, `capacity` long.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.capacity) }
    }

    /// The whole frame, writable.
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes this the only live view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.capacity) }
    }

    /// The driver's token for this frame.
    pub fn token(&self) -> usize {
        self.token
    }

    /// The function that will take this frame back, so a driver can
    /// recognise its own frames (a false "not mine" only costs a copy).
    pub fn release_fn(&self) -> ReleaseFn {
        self.release
    }

    /// Ends the loan without calling `release`: the caller takes the
    /// frame's memory back under the token (a driver sending its own frame
    /// without a copy). Returns `(token, ptr)`.
    pub fn into_raw(self) -> (usize, NonNull<u8>) {
        let this = std::mem::ManuallyDrop::new(self);
        (this.token, this.ptr)
    }
}

impl Drop for ForeignFrame {
    fn drop(&mut self) {
        (self.release)(self.token, self.ptr);
    }
}
