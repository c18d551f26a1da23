//! Zero-initialised, fixed-length tables for the classifier's big arrays
//! (hash index buckets, rule slabs), backed by transparent huge pages
//! where the kernel allows.
//!
//! # Why
//! With 100k megaflows one subtable's buckets and rules span ~8 MiB, about
//! 2,000 4 KiB pages, as many as the second-level TLB holds: each packet's
//! bucket and rule reads then also miss the TLB. On 2 MiB pages the same
//! tables need 4 TLB entries. This machine (like most distributions) has
//! `transparent_hugepage=madvise`: only memory marked `MADV_HUGEPAGE`
//! gets huge pages, so the allocator's memory is not enough
//! (`dpcls_hit_uniform_100k_flows/1`: min 21.8-28.8 ns/packet with
//! glibc's `glibc.malloc.hugetlb=1` tunable doing the marking against
//! 30.9-35.7 without, same binary, alternating runs, load 8).
//!
//! # How
//! On Linux a table of at least [`HUGE_PAGE`] bytes is its own anonymous
//! mapping, 2 MiB aligned, rounded up to whole huge pages and marked
//! `MADV_HUGEPAGE` before anything touches it, so the first write to
//! each 2 MiB faults in a huge page. (Memory from the allocator would not
//! do: it may be recycled and already faulted in on small pages.) Smaller
//! tables, and every table elsewhere, come from the allocator 64-byte
//! aligned, so a bucket or a rule slot never straddles a cache line. A
//! kernel without THP, or out of huge pages, ignores the advice and the
//! table works on small pages.
//!
//! # Invariants
//! - `ptr` points to memory of `backing` (or is dangling for an empty
//!   table), owned by this table alone; its first `len` elements are
//!   initialised (to zero, then whatever was written).
//! - `T: FromZeros`, so the all-zero bytes are a valid `T`.

use std::alloc::Layout;
use std::ptr::NonNull;

use zerocopy::FromZeros;

/// The huge page size of x86_64 and arm64 Linux (2 MiB).
pub const HUGE_PAGE: usize = 2 << 20;

/// Alignment of every non-empty table: one cache line.
const LINE: usize = 64;

/// A heap array of `len` `T`s, zero-initialised; see the module
/// documentation.
pub struct LargeTable<T: FromZeros> {
    ptr: NonNull<T>,
    len: usize,
    backing: Backing,
}

/// Where a table's memory comes from.
#[derive(Clone, Copy, Debug)]
enum Backing {
    /// Nothing (a zero-byte table; `ptr` is dangling).
    Empty,
    /// The global allocator, with this layout.
    Heap(Layout),
    /// An anonymous mapping of this many bytes, 2 MiB aligned.
    Mapped(usize),
}

// SAFETY: the table owns its memory exclusively (like `Vec<T>`), so
// sending it sends the `T`s and sharing it shares `&[T]`.
unsafe impl<T: FromZeros + Send> Send for LargeTable<T> {}
// SAFETY: as above; `&LargeTable` only hands out `&[T]`.
unsafe impl<T: FromZeros + Sync> Sync for LargeTable<T> {}

impl<T: FromZeros> LargeTable<T> {
    /// `len` zeroed elements. Panics, like `Vec`, when the size overflows
    /// and aborts when memory is exhausted.
    pub fn zeroed(len: usize) -> LargeTable<T> {
        let size = len
            .checked_mul(size_of::<T>())
            .expect("table size overflows usize");
        if size == 0 {
            return LargeTable {
                ptr: NonNull::dangling(),
                len,
                backing: Backing::Empty,
            };
        }
        if size >= HUGE_PAGE
            && let Some(mapped) = map_huge(size.next_multiple_of(HUGE_PAGE))
        {
            return LargeTable {
                ptr: mapped.cast::<T>(),
                len,
                backing: Backing::Mapped(size.next_multiple_of(HUGE_PAGE)),
            };
        }
        let layout =
            Layout::from_size_align(size, LINE.max(align_of::<T>())).expect("table layout");
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(bytes) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        LargeTable {
            ptr: bytes.cast::<T>(),
            len,
            backing: Backing::Heap(layout),
        }
    }

    /// Bytes allocated (0 for an empty table).
    pub fn heap_bytes(&self) -> usize {
        match self.backing {
            Backing::Empty => 0,
            Backing::Heap(layout) => layout.size(),
            Backing::Mapped(size) => size,
        }
    }
}

/// A fresh anonymous mapping of `size` bytes (a multiple of
/// [`HUGE_PAGE`]) at a 2 MiB boundary, marked `MADV_HUGEPAGE`. Not from
/// the allocator: its recycled memory may already be faulted in on small
/// pages, which the advice does not change. Its pages are zero and
/// untouched, so each first write faults in a huge page. `None` when the
/// kernel refuses the mapping (the caller falls back to the heap).
#[cfg(target_os = "linux")]
fn map_huge(size: usize) -> Option<NonNull<u8>> {
    let span = size.checked_add(HUGE_PAGE)?;
    // SAFETY: a new private anonymous mapping at an address the kernel
    // chooses: no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let head = (raw as usize).next_multiple_of(HUGE_PAGE) - raw as usize;
    let tail = span - head - size;
    let start = raw.cast::<u8>().wrapping_add(head);
    // SAFETY: the head and tail are the parts of the mapping just made
    // that lie outside `start..start + size`; nothing refers to them, and
    // unmapping them (page aligned: `raw`, `head`, `size` and `span` are
    // page multiples) leaves the table's range mapped. The advice changes
    // how the table's pages are backed, never their contents. Its result
    // is ignored: without THP the table works on small pages.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap(start.wrapping_add(size).cast(), tail);
        }
        libc::madvise(start.cast(), size, libc::MADV_HUGEPAGE);
    }
    NonNull::new(start)
}

/// Asks the kernel to back the whole 2 MiB pages inside `len` bytes at
/// `ptr` with huge pages (`MADV_HUGEPAGE`), for a big array that must stay
/// a `Vec` (the flow table's slots hold `Arc`s, not zeroable values).
/// Pages already touched stay small until the kernel collapses them;
/// untouched ones fault in huge. Advice only: contents never change, and
/// a kernel without THP ignores it.
#[cfg(target_os = "linux")]
pub(crate) fn advise_huge_pages(ptr: *const u8, len: usize) {
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize).saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
    if end > start {
        // SAFETY: `start..end` lies inside the caller's allocation of
        // `len` bytes at `ptr` and is 2 MiB aligned; MADV_HUGEPAGE changes
        // how those pages are backed, never their contents or mapping.
        // Its result is ignored (advice).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// Other systems: nothing to advise.
#[cfg(not(target_os = "linux"))]
pub(crate) fn advise_huge_pages(_ptr: *const u8, _len: usize) {}

/// Other systems: no mapping, the heap serves every table.
#[cfg(not(target_os = "linux"))]
fn map_huge(_size: usize) -> Option<NonNull<u8>> {
    None
}

impl<T: FromZeros> std::ops::Deref for LargeTable<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` is valid for `len` initialised `T`s (or dangling
        // and well aligned with `len * size_of::<T>() == 0`), owned by
        // `self`, and borrowed for `self`'s lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: FromZeros> std::ops::DerefMut for LargeTable<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: FromZeros> Drop for LargeTable<T> {
    fn drop(&mut self) {
        // SAFETY: the `len` elements are initialised and owned by the
        // table, dropped once here (a no-op for an empty table).
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
        }
        match self.backing {
            Backing::Empty => {}
            // SAFETY: `ptr` came from `alloc_zeroed(layout)` and is freed
            // once, here.
            Backing::Heap(layout) => unsafe {
                std::alloc::dealloc(self.ptr.as_ptr().cast(), layout);
            },
            #[cfg(target_os = "linux")]
            // SAFETY: `ptr..ptr + size` is the mapping `map_huge` made for
            // this table alone, unmapped once, here.
            Backing::Mapped(size) => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), size);
            },
            #[cfg(not(target_os = "linux"))]
            Backing::Mapped(_) => unreachable!("no mappings off Linux"),
        }
    }
}

impl<T: FromZeros + Copy> LargeTable<T> {
    /// A table of `len` elements (at least `self.len()`) starting with a
    /// copy of this one's, the rest zero. Unlike `zeroed` plus a copy, the
    /// copied part is written once, not zeroed first: growing a rule slab
    /// from empty otherwise zeroed about twice what it copied.
    pub fn grown(&self, len: usize) -> LargeTable<T> {
        assert!(len >= self.len, "a grown table keeps every element");
        let size = len
            .checked_mul(size_of::<T>())
            .expect("table size overflows usize");
        if size == 0 || size >= HUGE_PAGE {
            // A fresh mapping is already zero: only the copy writes.
            let mut table = LargeTable::zeroed(len);
            table[..self.len].copy_from_slice(self);
            return table;
        }
        let layout =
            Layout::from_size_align(size, LINE.max(align_of::<T>())).expect("table layout");
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(bytes) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        let ptr = bytes.cast::<T>();
        // SAFETY: `ptr` is a fresh allocation for `len` `T`s, disjoint
        // from `self`; the first `self.len` are copied from `self`'s
        // initialised elements (`T: Copy`), the remaining `len - self.len`
        // are zeroed, a valid `T` (`T: FromZeros`). All `len` are then
        // initialised, as the table's invariant requires.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), ptr.as_ptr(), self.len);
            std::ptr::write_bytes(ptr.as_ptr().add(self.len), 0, len - self.len);
        }
        LargeTable {
            ptr,
            len,
            backing: Backing::Heap(layout),
        }
    }
}

impl<T: FromZeros + Copy> Clone for LargeTable<T> {
    fn clone(&self) -> LargeTable<T> {
        let mut copy = LargeTable::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl<T: FromZeros> std::fmt::Debug for LargeTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LargeTable")
            .field("len", &self.len)
            .field("backing", &self.backing)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_empty_tables_are_zeroed_line_aligned_and_writable() {
        let empty: LargeTable<u64> = LargeTable::zeroed(0);
        assert!(empty.is_empty());
        assert_eq!(empty.heap_bytes(), 0);
        let mut t: LargeTable<u64> = LargeTable::zeroed(1000);
        assert_eq!(t.len(), 1000);
        assert!(t.iter().all(|&w| w == 0));
        assert_eq!(t.as_ptr() as usize % LINE, 0);
        t[999] = 7;
        let c = t.clone();
        assert_eq!(c[999], 7);
        assert_eq!(c.as_ptr() as usize % LINE, 0);
        let g = t.grown(3000);
        assert_eq!(g.len(), 3000);
        assert_eq!(g[999], 7);
        assert!(g[..999].iter().chain(&g[1000..]).all(|&w| w == 0));
        assert_eq!(g.as_ptr() as usize % LINE, 0);
        assert_eq!(g.heap_bytes(), 3000 * 8);
        let e: LargeTable<u64> = LargeTable::zeroed(0);
        assert!(e.grown(0).is_empty());
        assert_eq!(e.grown(4).len(), 4);
    }

    /// A table of 2 MiB or more is zeroed and fully writable, and on Linux
    /// huge-page aligned, rounded up to whole huge pages and advised (the
    /// advice shows in /proc/self/smaps as the `hg` VmFlag whatever the
    /// THP mode). A clone is a table of its own.
    #[test]
    fn large_tables_are_huge_page_aligned_and_advised() {
        let len = (3 * HUGE_PAGE) / 8 + 5;
        let mut t: LargeTable<u64> = LargeTable::zeroed(len);
        #[cfg(target_os = "linux")]
        {
            assert_eq!(t.as_ptr() as usize % HUGE_PAGE, 0);
            assert_eq!(t.heap_bytes(), 4 * HUGE_PAGE);
        }
        assert!(t.iter().all(|&w| w == 0));
        for (i, w) in t.iter_mut().enumerate() {
            *w = i as u64;
        }
        assert_eq!(t[len - 1], len as u64 - 1);
        #[cfg(target_os = "linux")]
        {
            let start = t.as_ptr() as usize;
            let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
            let mut in_table = false;
            let mut advised = false;
            for line in smaps.lines() {
                if let Some((range, _)) = line.split_once(' ')
                    && let Some((lo, hi)) = range.split_once('-')
                    && let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    in_table = lo <= start && start < hi;
                } else if in_table && line.starts_with("VmFlags:") {
                    advised = line.split_whitespace().any(|f| f == "hg");
                }
            }
            assert!(advised, "the table's mapping carries MADV_HUGEPAGE");
            let copy = t.clone();
            assert_eq!(copy[len - 1], len as u64 - 1);
            assert_eq!(copy.as_ptr() as usize % HUGE_PAGE, 0);
        }
    }
}
