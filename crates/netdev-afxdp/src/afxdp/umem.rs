//! A UMEM: a page-aligned area of equal frames that the kernel and we pass
//! back and forth by frame address, plus the free list and the per-frame
//! ownership that make every frame come back. One UMEM serves one AF_XDP
//! socket, or several (`XDP_SHARED_UMEM`, see [`super::shared`]): then
//! every socket has its own fill, rx, tx and completion rings over the
//! one area and the one free list.
//!
//! # Where a frame is
//! Exactly one of ([`Umem::owner`] of the frame says which):
//! - `FREE`: on the free list;
//! - `LENT`: lent to a [`Packet`] (counted in [`Umem::in_use`]);
//! - a socket id: in the kernel on behalf of that socket (its fill ring,
//!   the driver, its rx ring not yet read, its tx ring, its completion
//!   ring not yet drained).
//!
//! Frames move: free → fill ring of socket S (owner S) → rx ring of S →
//! packet (LENT) → (packet dropped) → free; free → (copy) → tx ring of T
//! (owner T) → completion ring of T → free; and, for a packet sent out of
//! the UMEM it came from (any socket of it), packet → tx ring of T
//! directly ([`Umem::hand_off`]: owner T, so dropping the packet does not
//! free it; T's completion ring does). So a frame is never on two rings,
//! and never on the free list twice.
//!
//! # A socket going away
//! A socket's id is given up by its [`SocketFrames`] guard, which is
//! dropped only after the socket's rings are unmapped and its descriptor
//! closed (the kernel has then released the socket: the last reference
//! to the file was ours, and the release ran before `close` returned).
//! The guard moves every frame still owned by that socket (in its fill,
//! rx, tx or completion ring, or held by a zero-copy driver) back to the
//! free list. Until then those frames stay where they are: the kernel may
//! still write them.
//!
//! # Lifetime
//! A lent frame's [`ForeignFrame`] token is a strong reference to the
//! `Umem` (`Arc::into_raw`), released by `release_frame`. So the area
//! stays mapped while any packet still points into it, even after its
//! port and socket are gone; every socket (through its [`SocketFrames`])
//! holds one too, so the area outlives the last socket; the last
//! reference unmaps it.
//!
//! # The free list is a stack
//! The frame freed last is the one taken next (as OVS's umem pool): the
//! tx copy into a free frame, and the kernel's copy into a frame from the
//! fill ring, then write lines that are still in this core's cache. A FIFO
//! (the `ArrayQueue` this replaced) handed out the frame freed longest ago,
//! ~2,000 frames back: the tx copy of a 1,500-byte frame cost 6.7–6.9 %
//! of the PMD's samples under iperf3 against OVS's 3.2–3.6 % for the same
//! copy (afxdp-vs-ovs.sh with BENCH_PROFILE=1).
//!
//! # Huge pages
//! The area is mapped on a 2 MiB boundary and advised `MADV_HUGEPAGE`
//! before it is faulted in ([`Mmap::anonymous_huge`]), so that with
//! transparent huge pages in `madvise` mode (this machine's) or
//! `always` it lies in 2 MiB pages. A frame is a 4 KiB page, and the
//! frames a port cycles through are the whole area (a full fill ring and
//! a full rx ring): in small pages every received packet's first header
//! read, and every copy into a frame, wanted a TLB entry of its own out
//! of 4,096 per queue, more than the TLB holds; in huge pages the area
//! needs 8. (The kernel reaches the frames through its own mapping, so
//! this is the userspace side: the PMD's reads and copies.) Without
//! huge pages (THP `never`, memory too fragmented) the area is the same
//! memory in small pages.
//!
//! # Threads
//! Packets may be dropped on any thread: the free list is behind a mutex
//! (one lock per frame or per batch; uncontended when one thread polls
//! every queue of the UMEM, contended when PMDs share it), the counters
//! are atomics, and the owner of a lent frame is only changed (hand-off,
//! release) by the thread that owns the packet at that time; the owner of
//! a frame in the kernel on behalf of socket S changes only through S's
//! rings, whose holders are gone when S's frames are reclaimed.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dp_core::dpcls::prefetch::prefetch_addr;
use dp_core::packet::{ForeignFrame, Packet, PacketPool};

use crate::sys::Mmap;

/// [`Umem::owner`]: the frame is on the free list.
pub const FREE: u32 = 0;
/// [`Umem::owner`]: the frame is lent to a packet.
pub const LENT: u32 = 1;
/// The first socket id (ids below are the states above).
const FIRST_SOCKET: u32 = 2;

/// A UMEM; see the module docs.
#[derive(Debug)]
pub struct Umem {
    area: Mmap,
    frame_shift: u32,
    n_frames: u32,
    /// Free frames, a stack (see the module docs).
    free: Mutex<Vec<u32>>,
    /// Frames lent to packets now.
    in_use: AtomicUsize,
    /// Per frame: `FREE`, `LENT` or the id of the socket whose rings (or
    /// driver) hold it.
    owner: Box<[AtomicU32]>,
    /// The next socket id to give out.
    next_socket: AtomicU32,
    /// Frames promised to the sockets now using this UMEM (each socket
    /// reserves its share when it joins; see [`Umem::try_reserve`]).
    reserved: Mutex<u32>,
}

impl Umem {
    /// Maps `n_frames` frames of `frame_size` bytes (a power of two, at
    /// least 2048), all on the free list.
    pub fn new(n_frames: u32, frame_size: u32) -> io::Result<Arc<Umem>> {
        assert!(frame_size.is_power_of_two() && frame_size >= 2048);
        let area = Mmap::anonymous_huge(n_frames as usize * frame_size as usize)?;
        // Reversed, so that frame 0 is taken first.
        let free: Vec<u32> = (0..n_frames).rev().collect();
        Ok(Arc::new(Umem {
            area,
            frame_shift: frame_size.trailing_zeros(),
            n_frames,
            free: Mutex::new(free),
            in_use: AtomicUsize::new(0),
            owner: (0..n_frames).map(|_| AtomicU32::new(FREE)).collect(),
            next_socket: AtomicU32::new(FIRST_SOCKET),
            reserved: Mutex::new(0),
        }))
    }

    /// Reserves `frames` of this UMEM for a socket joining it: `false`
    /// when the sockets already using it have taken too many (a socket
    /// needs a full fill ring and rx ring of frames, so a UMEM serves only
    /// as many sockets as it has frames for).
    pub fn try_reserve(&self, frames: u32) -> bool {
        let mut reserved = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        if *reserved + frames > self.n_frames {
            return false;
        }
        *reserved += frames;
        true
    }

    /// Frames reserved by the sockets using this UMEM now.
    pub fn reserved(&self) -> u32 {
        *self.reserved.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new socket's id and its guard, which reclaims the socket's frames
    /// and gives back its `reserved` frames when dropped (see the module
    /// docs: drop it only once the socket is released).
    pub fn new_socket(self: &Arc<Self>, reserved: u32) -> SocketFrames {
        let id = self.next_socket.fetch_add(1, Ordering::Relaxed);
        assert!(id >= FIRST_SOCKET, "socket ids of a UMEM exhausted");
        SocketFrames {
            umem: Arc::clone(self),
            id,
            reserved,
        }
    }

    /// Who holds frame `index` now (`FREE`, `LENT` or a socket id).
    #[inline]
    pub fn owner(&self, index: u32) -> u32 {
        self.owner[index as usize].load(Ordering::Relaxed)
    }

    /// Records that frame `index`, taken off the free list, now goes to
    /// socket `socket`'s fill or tx ring.
    #[inline]
    pub fn give_to_kernel(&self, index: u32, socket: u32) {
        debug_assert!(socket >= FIRST_SOCKET);
        self.owner[index as usize].store(socket, Ordering::Relaxed);
    }

    /// Moves every frame owned by socket `socket` to the free list; how
    /// many. Only for a socket the kernel has released.
    fn reclaim(&self, socket: u32) -> usize {
        let mut free = self.free_list();
        let before = free.len();
        for (index, owner) in self.owner.iter().enumerate() {
            if owner.load(Ordering::Relaxed) == socket {
                owner.store(FREE, Ordering::Relaxed);
                free.push(index as u32);
            }
        }
        free.len() - before
    }

    /// Counts frames by where they are, and checks the free list: every
    /// entry a frame marked `FREE`, none twice. For tests and leak checks
    /// (walks every frame under the free-list lock).
    pub fn audit(&self) -> UmemAudit {
        let free = self.free_list();
        let mut seen = vec![false; self.n_frames as usize];
        let mut bad_free = 0;
        for &index in free.iter() {
            let i = index as usize;
            if i >= seen.len() || seen[i] || self.owner(index) != FREE {
                bad_free += 1;
            } else {
                seen[i] = true;
            }
        }
        let mut out = UmemAudit {
            free: free.len(),
            free_list_errors: bad_free,
            ..UmemAudit::default()
        };
        let mut sockets: Vec<u32> = Vec::new();
        for owner in self.owner.iter() {
            match owner.load(Ordering::Relaxed) {
                FREE => out.marked_free += 1,
                LENT => out.lent += 1,
                socket => {
                    out.in_kernel += 1;
                    if !sockets.contains(&socket) {
                        sockets.push(socket);
                    }
                }
            }
        }
        out.sockets_in_kernel = sockets.len();
        out
    }

    /// The area's address and length (for `XDP_UMEM_REG`).
    pub fn area(&self) -> (u64, u64) {
        (self.area.ptr().as_ptr() as u64, self.area.len() as u64)
    }

    pub fn frame_size(&self) -> u32 {
        1 << self.frame_shift
    }

    pub fn n_frames(&self) -> u32 {
        self.n_frames
    }

    /// The UMEM address of frame `index`.
    #[inline]
    pub fn frame_addr(&self, index: u32) -> u64 {
        (index as u64) << self.frame_shift
    }

    /// The frame holding UMEM address `addr` (aligned mode: the frame
    /// bits of the address).
    #[inline]
    pub fn frame_of_addr(&self, addr: u64) -> u32 {
        (addr >> self.frame_shift) as u32
    }

    /// Frame index and offset of `ptr` when it points into this UMEM.
    #[inline]
    pub fn locate(&self, ptr: *const u8) -> Option<(u32, usize)> {
        let base = self.area.ptr().as_ptr() as usize;
        let offset = (ptr as usize).checked_sub(base)?;
        if offset >= self.area.len() {
            return None;
        }
        Some((
            (offset >> self.frame_shift) as u32,
            offset & ((1 << self.frame_shift) - 1),
        ))
    }

    #[inline]
    fn free_list(&self) -> MutexGuard<'_, Vec<u32>> {
        // The list is consistent after any push or pop, so a panic
        // elsewhere while it was held leaves nothing half done.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a frame off the free list (the one freed last).
    #[inline]
    pub fn take_free(&self) -> Option<u32> {
        self.free_list().pop()
    }

    /// Takes up to `out.len()` frames off the free list under one lock;
    /// returns how many were written to the front of `out`.
    #[inline]
    pub fn take_free_into(&self, out: &mut [u32]) -> usize {
        let mut free = self.free_list();
        let n = out.len().min(free.len());
        let rest = free.len() - n;
        // The most recently freed go first.
        for (slot, index) in out.iter_mut().zip(free.drain(rest..).rev()) {
            *slot = index;
        }
        n
    }

    /// Puts a frame back on the free list.
    #[inline]
    pub fn put_free(&self, index: u32) {
        debug_assert!(index < self.n_frames);
        let mut free = self.free_list();
        self.owner[index as usize].store(FREE, Ordering::Relaxed);
        // The list holds every frame at most once, so it stays within the
        // capacity it was made with and never reallocates.
        free.push(index);
    }

    /// Puts frames back on the free list under one lock.
    #[inline]
    pub fn put_free_all(&self, indexes: &[u32]) {
        let mut free = self.free_list();
        for &index in indexes {
            self.owner[index as usize].store(FREE, Ordering::Relaxed);
        }
        free.extend_from_slice(indexes);
    }

    /// Frames on the free list now.
    pub fn free_frames(&self) -> usize {
        self.free_list().len()
    }

    /// Frames lent to packets now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    /// Frame `index`, writable.
    ///
    /// # Safety
    /// The caller owns the frame exclusively: it took it from the free list
    /// and has not yet handed it to the kernel or a packet.
    #[inline]
    #[allow(
        clippy::mut_from_ref,
        reason = "frames are owned by index, as documented"
    )]
    pub unsafe fn frame_mut(&self, index: u32) -> &mut [u8] {
        debug_assert!(index < self.n_frames);
        let size = self.frame_size() as usize;
        // SAFETY: the frame lies inside the live area; the caller owns it
        // exclusively (this function's contract).
        unsafe {
            std::slice::from_raw_parts_mut(
                self.area.ptr().as_ptr().add(index as usize * size),
                size,
            )
        }
    }

    /// Marks frame `index` as put on socket `socket`'s tx ring by the
    /// packet that holds it, so that dropping the packet leaves it to
    /// that socket's completion ring.
    #[inline]
    pub fn hand_off(&self, index: u32, socket: u32) {
        debug_assert_eq!(self.owner(index), LENT);
        self.give_to_kernel(index, socket);
    }

    /// Asks for the first cache line of the data at `addr` (a received
    /// descriptor's address), so that the misses of a burst overlap. The
    /// frames were written by the CPU that ran the XDP redirect (the
    /// sender's), so on the PMD's CPU each first read of a header is a
    /// cross-core miss; taken one packet at a time by the flow extraction
    /// they were served one after another.
    #[inline(always)]
    pub fn prefetch_data(&self, addr: u64) {
        // A hint that never faults: any `addr` is safe to ask for.
        prefetch_addr(self.area.ptr().as_ptr().wrapping_add(addr as usize));
    }

    /// Lends the frame holding received descriptor `(addr, len)` to a
    /// packet from `pool`. On failure (pool exhausted, bad descriptor) the
    /// frame is already back on the free list.
    #[inline]
    pub fn lend(self: &Arc<Self>, addr: u64, len: u32, pool: &PacketPool) -> Option<Packet> {
        let index = self.frame_of_addr(addr);
        if index >= self.n_frames {
            return None;
        }
        let size = self.frame_size() as usize;
        let data_start = (addr as usize) & (size - 1);
        // SAFETY: the frame is inside the area (checked above).
        let ptr =
            unsafe { NonNull::new_unchecked(self.area.ptr().as_ptr().add(index as usize * size)) };
        self.owner[index as usize].store(LENT, Ordering::Relaxed);
        self.in_use.fetch_add(1, Ordering::Relaxed);
        let token = Arc::into_raw(Arc::clone(self)) as usize;
        // SAFETY: the kernel handed this frame to us on the rx ring, so we
        // own it exclusively until `release_frame` puts it back on the free
        // list; the strong reference in `token` keeps the area mapped until
        // then; `size` is a frame, far below isize::MAX.
        let frame = unsafe { ForeignFrame::new(ptr, size, token, release_frame) };
        // A refused frame is dropped here, which releases it.
        pool.wrap_foreign(frame, data_start, len as usize).ok()
    }
}

/// The [`ForeignFrame`] release function of UMEM frames: gives the frame
/// back (free list, unless it was handed off to the tx ring) and drops the
/// packet's reference to the UMEM.
fn release_frame(token: usize, ptr: NonNull<u8>) {
    // SAFETY: `token` came from `Arc::into_raw` in `Umem::lend`, and the
    // frame contract calls this exactly once per token.
    let umem = unsafe { Arc::from_raw(token as *const Umem) };
    if let Some((index, _)) = umem.locate(ptr.as_ptr())
        && umem.owner(index) == LENT
    {
        umem.put_free(index);
    }
    umem.in_use.fetch_sub(1, Ordering::Release);
}

/// One socket's claim on a UMEM: its id (the owner of the frames its
/// rings hold) and its reserved frames. Dropping it reclaims every frame
/// the socket still owns and gives the reservation back; so it must be
/// dropped after the socket's rings are unmapped and its descriptor
/// closed (see the module docs). It also keeps the UMEM alive.
#[derive(Debug)]
pub struct SocketFrames {
    umem: Arc<Umem>,
    id: u32,
    reserved: u32,
}

impl SocketFrames {
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn umem(&self) -> &Arc<Umem> {
        &self.umem
    }
}

impl Drop for SocketFrames {
    fn drop(&mut self) {
        let n = self.umem.reclaim(self.id);
        if n > 0 {
            tracing::debug!(
                "AF_XDP socket {} closed: {n} UMEM frame(s) reclaimed",
                self.id
            );
        }
        let mut reserved = self
            .umem
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *reserved = reserved.saturating_sub(self.reserved);
    }
}

/// Where a UMEM's frames are, from [`Umem::audit`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UmemAudit {
    /// Entries on the free list.
    pub free: usize,
    /// Free-list entries that are out of range, not marked free, or
    /// repeated (a frame that could be handed out twice): always 0.
    pub free_list_errors: usize,
    /// Frames marked free (equals `free` when the list is sound).
    pub marked_free: usize,
    /// Frames lent to packets.
    pub lent: usize,
    /// Frames in some socket's rings (or its driver).
    pub in_kernel: usize,
    /// Sockets holding those frames.
    pub sockets_in_kernel: usize,
}

/// A handle that watches a queue's UMEM accounting after its port is gone
/// (tests, leak checks). Holding it keeps the area mapped, nothing else.
#[derive(Clone, Debug)]
pub struct UmemWatch(pub(crate) Arc<Umem>);

impl UmemWatch {
    /// Where the frames are now (see [`UmemAudit`]).
    pub fn audit(&self) -> UmemAudit {
        self.0.audit()
    }

    /// Whether `other` watches the same UMEM (ports sharing one).
    pub fn same_umem(&self, other: &UmemWatch) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Frames lent to packets now.
    pub fn in_use(&self) -> usize {
        self.0.in_use()
    }

    /// Frames on the free list now.
    pub fn free_frames(&self) -> usize {
        self.0.free_frames()
    }

    /// Frames in the UMEM.
    pub fn n_frames(&self) -> u32 {
        self.0.n_frames()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_core::packet::PoolConfig;

    #[test]
    fn lent_frames_come_back_on_drop_and_hand_off_skips_the_free_list() {
        let umem = Umem::new(8, 4096).unwrap();
        let pool = PacketPool::new("t", PoolConfig::metadata_only(8));
        let index = umem.take_free().unwrap();
        let addr = umem.frame_addr(index) + 256;
        let packet = umem.lend(addr, 60, &pool).unwrap();
        assert_eq!(packet.len(), 60);
        assert_eq!(packet.headroom(), 256);
        assert_eq!(umem.in_use(), 1);
        assert_eq!(umem.locate(packet.data().as_ptr()), Some((index, 256)));
        drop(packet);
        assert_eq!(umem.in_use(), 0);
        assert_eq!(umem.free_frames(), 8);

        let socket = umem.new_socket(0);
        let index = umem.take_free().unwrap();
        let packet = umem.lend(umem.frame_addr(index), 60, &pool).unwrap();
        umem.hand_off(index, socket.id());
        drop(packet);
        assert_eq!(umem.in_use(), 0);
        assert_eq!(umem.free_frames(), 7, "the completion ring returns it");
        assert_eq!(umem.owner(index), socket.id());
    }

    #[test]
    fn a_closed_sockets_frames_are_reclaimed_and_no_other() {
        let umem = Umem::new(16, 4096).unwrap();
        let pool = PacketPool::new("t", PoolConfig::metadata_only(16));
        assert!(umem.try_reserve(8));
        let a = umem.new_socket(8);
        assert!(umem.try_reserve(8));
        let b = umem.new_socket(8);
        assert!(!umem.try_reserve(1), "all frames reserved");
        // a: three frames on its fill ring, one lent to a packet that is
        // then sent out of b as is; b: two on its fill ring.
        let mut frames = [0u32; 6];
        assert_eq!(umem.take_free_into(&mut frames), 6);
        for &f in &frames[..4] {
            umem.give_to_kernel(f, a.id());
        }
        for &f in &frames[4..] {
            umem.give_to_kernel(f, b.id());
        }
        let lent = frames[0];
        let packet = umem.lend(umem.frame_addr(lent), 60, &pool).unwrap();
        umem.hand_off(lent, b.id());
        drop(packet);
        let audit = umem.audit();
        assert_eq!((audit.free, audit.in_kernel, audit.lent), (10, 6, 0));
        drop(a);
        assert_eq!(umem.free_frames(), 13, "a's three fill-ring frames");
        assert_eq!(umem.owner(lent), b.id(), "b's tx ring still has it");
        assert!(umem.try_reserve(8), "a's reservation was given back");
        drop(b);
        let audit = umem.audit();
        assert_eq!(audit.free, 16);
        assert_eq!(audit.marked_free, 16);
        assert_eq!(audit.free_list_errors, 0);
    }

    #[test]
    fn the_frame_freed_last_is_taken_first() {
        let umem = Umem::new(8, 4096).unwrap();
        let pool = PacketPool::new("t", PoolConfig::metadata_only(8));
        let mut taken = [0u32; 3];
        assert_eq!(umem.take_free_into(&mut taken), 3);
        assert_eq!(taken, [0, 1, 2]);
        let packet = umem.lend(umem.frame_addr(1), 60, &pool).unwrap();
        drop(packet);
        assert_eq!(
            umem.take_free(),
            Some(1),
            "the frame just freed, still cache-warm"
        );
        umem.put_free_all(&[2, 0]);
        let mut again = [0u32; 8];
        assert_eq!(umem.take_free_into(&mut again), 7);
        assert_eq!(&again[..3], &[0, 2, 3]);
        assert_eq!(umem.free_frames(), 0);
        umem.put_free_all(&again[..7]);
        umem.put_free(1);
        assert_eq!(umem.free_frames(), 8);
    }

    #[test]
    fn packets_keep_the_area_alive_after_the_umem_handle_is_gone() {
        let umem = Umem::new(4, 2048).unwrap();
        let pool = PacketPool::new("t", PoolConfig::metadata_only(4));
        let index = umem.take_free().unwrap();
        let watch = UmemWatch(Arc::clone(&umem));
        let mut packet = umem.lend(umem.frame_addr(index), 10, &pool).unwrap();
        drop(umem);
        packet.data_mut().fill(7);
        assert_eq!(watch.in_use(), 1);
        drop(packet);
        assert_eq!(watch.in_use(), 0);
    }

    /// `AnonHugePages` of the mappings of this process that overlap
    /// `[addr, addr + len)`, in kB (from /proc/self/smaps).
    fn anon_huge_kb(addr: u64, len: u64) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut kb = 0;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().and_then(|r| {
                let (a, b) = r.split_once('-')?;
                Some((
                    u64::from_str_radix(a, 16).ok()?,
                    u64::from_str_radix(b, 16).ok()?,
                ))
            });
            if let Some((start, end)) = range {
                inside = start < addr + len && addr < end;
            } else if inside && let Some(v) = line.strip_prefix("AnonHugePages:") {
                kb += v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
        kb
    }

    #[test]
    fn the_area_lies_in_huge_pages_when_the_kernel_has_them() {
        // Four huge pages' worth of frames.
        let umem = Umem::new(2048, 4096).unwrap();
        let (addr, len) = umem.area();
        assert_eq!(
            addr % crate::sys::HUGE_PAGE as u64,
            0,
            "the area starts on a huge-page boundary"
        );
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !thp.contains("[always]") && !thp.contains("[madvise]") {
            // A kernel setting, not a package: CI's kernel must have it.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "transparent huge pages are off here ({thp:?}); CI needs them in madvise or always mode"
            );
            eprintln!("THP off here ({thp:?}): only the alignment is checked");
            return;
        }
        let huge = anon_huge_kb(addr, len);
        assert!(
            huge > 0,
            "THP is {:?} but none of the {} kB area is in huge pages",
            thp.trim(),
            len / 1024
        );
        // The frames are usable as before (zeroed, writable).
        let index = umem.take_free().unwrap();
        // SAFETY: the frame just came off the free list.
        let frame = unsafe { umem.frame_mut(index) };
        assert!(frame.iter().all(|&b| b == 0));
        frame[..4].copy_from_slice(&[1, 2, 3, 4]);
        umem.put_free(index);
    }

    #[test]
    fn a_refused_frame_goes_back_to_the_free_list() {
        let umem = Umem::new(4, 2048).unwrap();
        let pool = PacketPool::new("t", PoolConfig::metadata_only(1));
        let a = umem.take_free().unwrap();
        let b = umem.take_free().unwrap();
        let kept = umem.lend(umem.frame_addr(a), 10, &pool).unwrap();
        assert!(umem.lend(umem.frame_addr(b), 10, &pool).is_none());
        assert_eq!(umem.in_use(), 1);
        assert_eq!(umem.free_frames(), 3);
        drop(kept);
        assert_eq!(umem.free_frames(), 4);
    }
}
