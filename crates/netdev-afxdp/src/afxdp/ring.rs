//! The four AF_XDP rings as single-producer/single-consumer queues over
//! memory shared with the kernel.
//!
//! # How it works
//! Each ring is an `mmap` of the socket: a producer index, a consumer
//! index, a flags word and a power-of-two array of entries (`u64` frame
//! addresses for the fill and completion rings, [`libc::xdp_desc`] for rx
//! and tx). We produce on fill and tx and consume rx and completion; the
//! kernel does the opposite. Indexes are free-running `u32`s; an entry
//! lives at `index & mask`.
//!
//! As in libxdp's `xsk_ring_prod`/`xsk_ring_cons`, the side we own keeps a
//! cached copy of the other side's index and reloads it (acquire) only
//! when the cache says the ring is full or empty; publishing our index is a
//! release store, after the entries are written or read.
//!
//! # Invariants
//! - One owner per ring (`&mut self`): the rx queue owns rx and fill, the
//!   tx state (behind its mutex) owns tx and completion.
//! - The mapping lives as long as the ring (it owns its `Mmap`).

use std::io;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{self, Mmap};

/// The ring wants a syscall to make progress (`XDP_RING_NEED_WAKEUP`).
const NEED_WAKEUP: u32 = libc::XDP_RING_NEED_WAKEUP;

/// The mapped memory of one ring.
#[derive(Debug)]
struct RingMap<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    size: u32,
    mask: u32,
    _map: Mmap,
    _entry: PhantomData<T>,
}

// SAFETY: the pointers point into `_map`, which moves with the ring; the
// ring has one owner at a time (see the module invariants), and the
// indexes it shares with the kernel are atomics.
unsafe impl<T: Send> Send for RingMap<T> {}

impl<T: Copy> RingMap<T> {
    /// Maps ring `off` of `fd` with `size` entries at page offset `pgoff`.
    fn map(fd: &OwnedFd, off: &libc::xdp_ring_offset, size: u32, pgoff: u64) -> io::Result<Self> {
        debug_assert!(size.is_power_of_two());
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mmap::shared(fd, len, pgoff)?;
        let base = map.ptr().as_ptr();
        // The kernel reports offsets inside the mapping it just created,
        // aligned for their types.
        debug_assert!(off.producer as usize + 4 <= len && off.consumer as usize + 4 <= len);
        // SAFETY: each offset is inside the `len`-byte mapping (the kernel
        // laid it out; checked above in debug builds).
        let (producer, consumer, flags, entries) = unsafe {
            (
                base.add(off.producer as usize).cast::<AtomicU32>(),
                base.add(off.consumer as usize).cast::<AtomicU32>(),
                base.add(off.flags as usize).cast::<AtomicU32>(),
                base.add(off.desc as usize).cast::<T>(),
            )
        };
        Ok(RingMap {
            producer,
            consumer,
            flags,
            entries,
            size,
            mask: size - 1,
            _map: map,
            _entry: PhantomData,
        })
    }

    #[inline]
    fn load_producer(&self) -> u32 {
        // SAFETY: `producer` points at an aligned u32 inside the live
        // mapping; the kernel updates it atomically.
        unsafe { (*self.producer).load(Ordering::Acquire) }
    }

    #[inline]
    fn load_consumer(&self) -> u32 {
        // SAFETY: as in `load_producer`.
        unsafe { (*self.consumer).load(Ordering::Acquire) }
    }

    #[inline]
    fn needs_wakeup(&self) -> bool {
        // SAFETY: as in `load_producer`.
        unsafe { (*self.flags).load(Ordering::Relaxed) & NEED_WAKEUP != 0 }
    }

    #[inline]
    fn read(&self, index: u32) -> T {
        // SAFETY: `index & mask < size`, inside the entry array; the entry
        // was published by the kernel (acquire load of its producer index)
        // and is not reused until we release it.
        unsafe { self.entries.add((index & self.mask) as usize).read() }
    }

    #[inline]
    fn write(&mut self, index: u32, value: T) {
        // SAFETY: `index & mask < size`; the slot is free (the producer
        // checked the kernel's consumer index) and only we write it.
        unsafe { self.entries.add((index & self.mask) as usize).write(value) }
    }
}

/// A ring we produce into (fill, tx).
#[derive(Debug)]
pub struct ProdRing<T> {
    ring: RingMap<T>,
    cached_prod: u32,
    /// The kernel's consumer index plus the ring size.
    cached_cons: u32,
}

impl<T: Copy> ProdRing<T> {
    pub fn map(
        fd: &OwnedFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
    ) -> io::Result<Self> {
        let ring = RingMap::map(fd, off, size, pgoff)?;
        let cached_prod = ring.load_producer();
        let cached_cons = ring.load_consumer().wrapping_add(size);
        Ok(ProdRing {
            ring,
            cached_prod,
            cached_cons,
        })
    }

    /// Free slots, at least `want` if that many are free (reloads the
    /// kernel's index only when the cache shows fewer).
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = self.ring.load_consumer().wrapping_add(self.ring.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Writes slot `i` past the producer index (`i < free()`).
    #[inline]
    pub fn set(&mut self, i: u32, value: T) {
        debug_assert!(i < self.cached_cons.wrapping_sub(self.cached_prod));
        self.ring.write(self.cached_prod.wrapping_add(i), value);
    }

    /// Publishes `n` written slots to the kernel.
    #[inline]
    pub fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        // SAFETY: `producer` points into the live mapping; release orders
        // the entry writes before the index the kernel reads.
        unsafe { (*self.ring.producer).store(self.cached_prod, Ordering::Release) };
    }

    /// Entries the kernel has not consumed yet (reloads its index).
    pub fn pending(&mut self) -> u32 {
        self.cached_cons = self.ring.load_consumer().wrapping_add(self.ring.size);
        self.ring.size - self.cached_cons.wrapping_sub(self.cached_prod)
    }

    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }
}

/// A ring we consume from (rx, completion).
#[derive(Debug)]
pub struct ConsRing<T> {
    ring: RingMap<T>,
    cached_prod: u32,
    cached_cons: u32,
}

impl<T: Copy> ConsRing<T> {
    pub fn map(
        fd: &OwnedFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
    ) -> io::Result<Self> {
        let ring = RingMap::map(fd, off, size, pgoff)?;
        let cached_prod = ring.load_producer();
        let cached_cons = ring.load_consumer();
        Ok(ConsRing {
            ring,
            cached_prod,
            cached_cons,
        })
    }

    /// Entries ready to read, at most `max`.
    #[inline]
    pub fn available(&mut self, max: u32) -> u32 {
        let mut n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n == 0 {
            self.cached_prod = self.ring.load_producer();
            n = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        n.min(max)
    }

    /// Entry `i` past the consumer index (`i < available()`).
    #[inline]
    pub fn get(&self, i: u32) -> T {
        self.ring.read(self.cached_cons.wrapping_add(i))
    }

    /// Gives `n` read entries back to the kernel.
    #[inline]
    pub fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        // SAFETY: `consumer` points into the live mapping; release orders
        // our reads of the entries before the kernel may reuse them.
        unsafe { (*self.ring.consumer).store(self.cached_cons, Ordering::Release) };
    }
}

/// The ring layout the kernel reports for socket `fd`.
pub fn mmap_offsets(fd: &OwnedFd) -> io::Result<libc::xdp_mmap_offsets> {
    let (off, _) =
        sys::getsockopt::<libc::xdp_mmap_offsets>(fd, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS)?;
    Ok(off)
}
