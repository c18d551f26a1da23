//! The one place that touches shared ring memory through raw pointers.
//!
//! A [`Region`] is a mapped area shared with the other side (the shim, or
//! userspace when we are the emulator). The other side may write any byte
//! at any time, so nothing here hands out a Rust reference to shared bytes
//! except the atomics of the ring indices and the frames whose ownership
//! the ring protocol has given us (see [`Region::frame_ptr`]). Every access
//! is bounds-checked against the mapping's length.
#![allow(unsafe_code, reason = "shared-memory access of the ring region")]

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

/// Keeps a mapping alive (unmaps on drop).
pub trait Mapping: Send + Sync + fmt::Debug {}

/// A shared memory area of `len` bytes.
pub struct Region {
    base: NonNull<u8>,
    len: usize,
    _mapping: Box<dyn Mapping>,
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the region is plain shared memory accessed only through atomics,
// volatile copies and raw pointers; `Mapping` is Send + Sync.
unsafe impl Send for Region {}
// SAFETY: as above; no method gives out `&mut` to shared bytes.
unsafe impl Sync for Region {}

impl Region {
    /// Wraps `len` bytes at `base`, kept mapped by `mapping`.
    ///
    /// # Safety
    /// `base..base + len` must be readable and writable and stay mapped
    /// until `mapping` is dropped; `base` must be aligned to 64 bytes; no
    /// Rust reference to those bytes may exist elsewhere in this process.
    pub unsafe fn new(base: NonNull<u8>, len: usize, mapping: Box<dyn Mapping>) -> Region {
        debug_assert_eq!(base.as_ptr() as usize % 64, 0);
        debug_assert!(len <= isize::MAX as usize);
        Region {
            base,
            len,
            _mapping: mapping,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, off: usize, len: usize) {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "region access {off}+{len} beyond {}",
            self.len
        );
    }

    /// The ring index or flags word at `off`.
    pub fn atomic_u32(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4);
        assert_eq!(off % 4, 0, "misaligned ring word");
        // SAFETY: in bounds (checked) and 4-byte aligned (base is 64-byte
        // aligned, `off` a multiple of 4); the memory lives as long as
        // `self`; AtomicU32 has u32's layout and both sides only access
        // these words atomically.
        unsafe { &*self.base.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// Copies `N` bytes at `off` out of the region (a descriptor). The peer
    /// may be writing them: the copy is volatile and the caller validates
    /// the value it got.
    pub fn read<const N: usize>(&self, off: usize) -> [u8; N] {
        self.check(off, N);
        // SAFETY: in bounds (checked); [u8; N] has alignment 1; a volatile
        // read of plain bytes cannot observe an invalid value.
        unsafe { std::ptr::read_volatile(self.base.as_ptr().add(off).cast::<[u8; N]>()) }
    }

    /// Copies `bytes` into the region at `off`.
    pub fn write(&self, off: usize, bytes: &[u8]) {
        self.check(off, bytes.len());
        // SAFETY: in bounds (checked); `bytes` is our own memory, which
        // cannot overlap the shared mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.as_ptr().add(off), bytes.len())
        }
    }

    /// Copies `out.len()` bytes at `off` out of the region.
    pub fn copy_out(&self, off: usize, out: &mut [u8]) {
        self.check(off, out.len());
        // SAFETY: in bounds (checked); `out` is our own memory.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.as_ptr().add(off), out.as_mut_ptr(), out.len())
        }
    }

    /// A pointer to `len` bytes at `off` (a frame the ring protocol gave
    /// us, to lend to a packet or to receive into).
    pub fn frame_ptr(&self, off: usize, len: usize) -> NonNull<u8> {
        self.check(off, len);
        // SAFETY: in bounds (checked), so the result is inside the mapping
        // and non-null.
        unsafe { NonNull::new_unchecked(self.base.as_ptr().add(off)) }
    }

    /// Whether `ptr` points into this region (a frame of ours).
    pub fn contains(&self, ptr: NonNull<u8>) -> bool {
        let p = ptr.as_ptr() as usize;
        let b = self.base.as_ptr() as usize;
        p >= b && p < b + self.len
    }

    /// The offset of `ptr` inside the region.
    pub fn offset_of(&self, ptr: NonNull<u8>) -> Option<usize> {
        self.contains(ptr)
            .then(|| ptr.as_ptr() as usize - self.base.as_ptr() as usize)
    }
}

/// Heap memory standing in for a shared mapping (tests and fuzzing).
#[derive(Debug)]
pub struct HeapMapping {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: the allocation is owned by this value and only freed in drop.
unsafe impl Send for HeapMapping {}
// SAFETY: it is never accessed through `&HeapMapping`.
unsafe impl Sync for HeapMapping {}
impl Mapping for HeapMapping {}

impl Drop for HeapMapping {
    fn drop(&mut self) {
        // SAFETY: allocated in `heap_region` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A zeroed heap region of `len` bytes (tests, fuzzing, benchmarks).
pub fn heap_region(len: usize) -> Region {
    let layout = std::alloc::Layout::from_size_align(len.max(64), 4096).expect("region layout");
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
    // SAFETY: freshly allocated, zeroed, 4096-aligned, `len` bytes, owned
    // by the mapping we hand over; nothing else references it.
    unsafe { Region::new(ptr, len, Box::new(HeapMapping { ptr, layout })) }
}
