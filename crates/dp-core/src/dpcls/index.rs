//! A bucketised open-addressing index from a 32-bit hash to `u32` values,
//! shared by the classifier's subtables, the flow table's UFID index and
//! its simple-match table.
//!
//! # How it works
//! The index does not own keys. It stores, per slot, the full 32-bit hash
//! (the "tag") and a `u32` value (a rule or flow position); the caller
//! confirms a candidate by comparing its own key through a predicate. A
//! bucket is one 64-byte cache line: a control word, [`SLOTS`] tags and
//! [`SLOTS`] values. Bytes 0..7 of the control word are the slots'
//! control bytes (0: empty; else `0x80` | the hash's top 7 bits), so one
//! SWAR compare of a 64-bit word (a handful of instructions, no SIMD
//! intrinsics) finds the slots that can hold a hash; only those tags are
//! read. Byte 7 counts the entries that had to move past the bucket
//! because it was full (F14's "outbound overflow" count). A lookup reads
//! the home bucket (`hash & mask`) and moves to the next bucket only while
//! the current one records such an overflow, so a miss usually costs one
//! line.
//!
//! # Invariants
//! - `overflow(b)` is at least the number of live entries whose home bucket
//!   is at or before `b` (cyclically) but which live after `b`; exactly
//!   that number until it saturates at 255, after which it stays (the
//!   bucket then just keeps being probed through). Removal walks the same
//!   path as the insert did and decrements the counts it passed.
//! - A slot's control byte is non-zero exactly when the slot is occupied,
//!   and then equals `control_byte` of its tag.
//! - The load stays at most 7/8 of the slots (1/2 for a sparse index), so
//!   probing terminates.
//! - Growing (on insert, ×4 while small and ×2 after, or to the size
//!   `reserve` asks for) rebuilds from the stored tags; lookups never
//!   allocate.

use zerocopy::FromZeros;

use super::large::LargeTable;
use super::prefetch::prefetch_addr;

/// [`HashIndex::home_candidate`]'s "no candidate" (values are positions,
/// never `u32::MAX`).
pub const NO_CANDIDATE: u32 = u32::MAX;

/// Slots per bucket: a control word, 7 tags and 7 values fill 64 bytes.
pub const SLOTS: usize = 7;

/// Most entries per slot, as (numerator, denominator), before the index
/// doubles: the default, for indexes looked up on the control path
/// (UFIDs, masks), where memory matters more than an extra probe.
const DENSE_LOAD: (usize, usize) = (7, 8);

/// The same for indexes on the packet path ([`HashIndex::sparse`]): at
/// 7/8, 40% of the lookups of a 100k-rule subtable and most misses in the
/// 20-subtable benchmark met an overflowed home bucket and probed on.
const SPARSE_LOAD: (usize, usize) = (1, 2);

/// Below this many buckets (64 KiB) a full index grows ×4, at and above
/// it ×2. A table filling from empty (a flow-setup burst) then skips
/// half of the small rebuilds, while the quadrupling's overshoot stays at
/// most 48 KiB per index over what its entries need (1,024 buckets for
/// 897 entries at the sparse load) and a 1-entry index is still one
/// 64-byte bucket. Not higher: at 4096 the 20k-megaflow, 5-mask table of
/// `print_memory` (benches/classifier.rs) would hold 4,096 buckets per
/// subtable instead of 2,048 (+32 bytes per megaflow) for 10 fewer
/// instructions per new flow in the setup benchmark.
const QUADRUPLE_BELOW: usize = 1024;

#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C, align(64))]
struct Bucket {
    /// Bytes 0..7: control bytes of the slots; byte 7: overflow count.
    ctrl: u64,
    tags: [u32; SLOTS],
    values: [u32; SLOTS],
}

/// The low bit of every slot's control byte.
const CTRL_LOW: u64 = 0x0001_0101_0101_0101;
/// The high bit of every slot's control byte (set = occupied).
const CTRL_HIGH: u64 = 0x0080_8080_8080_8080;
const OVERFLOW_SHIFT: u32 = 56;
const OVERFLOW_ONE: u64 = 1 << OVERFLOW_SHIFT;
const OVERFLOW_MAX: u64 = 0xff;

/// The control byte of an entry with hash `hash`: never 0.
#[inline(always)]
fn control_byte(hash: u32) -> u64 {
    u64::from((hash >> 25) as u8 | 0x80)
}

/// Slot index of the lowest byte flagged in a byte bitmap (bit `8j + 7`).
#[inline(always)]
fn first_slot(byte_bits: u64) -> usize {
    (byte_bits.trailing_zeros() / 8) as usize
}

impl Bucket {
    /// Byte bitmap (bit `8j + 7`) of the occupied slots.
    #[inline(always)]
    fn occupied(&self) -> u64 {
        self.ctrl & CTRL_HIGH
    }
    #[inline(always)]
    fn overflow(&self) -> u64 {
        self.ctrl >> OVERFLOW_SHIFT
    }
    #[inline(always)]
    fn overflowed(&self) -> bool {
        self.overflow() != 0
    }
    #[inline(always)]
    fn add_overflow(&mut self) {
        if self.overflow() != OVERFLOW_MAX {
            self.ctrl += OVERFLOW_ONE;
        }
    }
    #[inline(always)]
    fn sub_overflow(&mut self) {
        // A saturated count no longer knows the true number: it stays.
        if self.overflow() != OVERFLOW_MAX {
            self.ctrl -= OVERFLOW_ONE;
        }
    }
    /// Byte bitmap (bit `8j + 7`) of the slots whose control byte is
    /// `hash`'s: every slot holding `hash`, plus rare false positives (a
    /// 7-bit collision, or the borrow of the zero-byte test above a true
    /// match), which the caller's tag compare removes.
    #[inline(always)]
    fn candidates(&self, hash: u32) -> u64 {
        let x = self.ctrl ^ control_byte(hash).wrapping_mul(CTRL_LOW);
        x.wrapping_sub(CTRL_LOW) & !x & CTRL_HIGH
    }
    #[inline(always)]
    fn set_slot(&mut self, j: usize, hash: u32, value: u32) {
        self.ctrl |= control_byte(hash) << (8 * j);
        self.tags[j] = hash;
        self.values[j] = value;
    }
    #[inline(always)]
    fn clear_slot(&mut self, j: usize) {
        self.ctrl &= !(0xff << (8 * j));
    }
    /// Occupied slot indices.
    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        let mut bits = self.occupied();
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let j = first_slot(bits);
                bits &= bits - 1;
                j
            })
        })
    }
}

const _: () = assert!(size_of::<Bucket>() == 64);

/// Maps 32-bit hashes to `u32` values; see the module documentation.
#[derive(Clone, Debug)]
pub struct HashIndex {
    /// A power-of-two number of buckets; all-zero is an empty bucket.
    buckets: LargeTable<Bucket>,
    len: usize,
    /// Most entries per slot before growing (numerator, denominator).
    max_load: (usize, usize),
}

impl Default for HashIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl HashIndex {
    /// An empty index with one bucket.
    pub fn new() -> HashIndex {
        HashIndex {
            buckets: LargeTable::zeroed(1),
            len: 0,
            max_load: DENSE_LOAD,
        }
    }

    /// An empty index that stays at most half full, so that a probe
    /// rarely needs a second bucket: for the classifier's subtables.
    pub fn sparse() -> HashIndex {
        HashIndex {
            buckets: LargeTable::zeroed(1),
            len: 0,
            max_load: SPARSE_LOAD,
        }
    }

    /// An empty dense index (as [`HashIndex::new`]) with room for `n`
    /// entries before it grows.
    pub fn with_capacity(n: usize) -> HashIndex {
        let mut index = HashIndex::new();
        index.reserve(n);
        index
    }

    /// Makes room for `additional` more entries, so that inserting them
    /// neither grows nor rebuilds the index: one rebuild now instead of
    /// one per doubling. Sizes the table for exactly that load (a power
    /// of two buckets), never shrinks it.
    pub fn reserve(&mut self, additional: usize) {
        let want = self.len.saturating_add(additional);
        let buckets = self.buckets_for(want);
        if buckets > self.buckets.len() {
            self.rebuild(buckets);
        }
    }

    /// The fewest buckets (a power of two, at least the current count)
    /// that hold `entries` within the load bound.
    fn buckets_for(&self, entries: usize) -> usize {
        let (num, den) = self.max_load;
        let per_bucket = SLOTS * num;
        let needed = entries.saturating_mul(den).div_ceil(per_bucket).max(1);
        needed.next_power_of_two()
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// (buckets, buckets whose overflow count is not zero): how often a
    /// probe has to look past the home bucket, for tests and diagnostics.
    pub fn overflow_stats(&self) -> (usize, usize) {
        let overflowed = self.buckets.iter().filter(|b| b.overflowed()).count();
        (self.buckets.len(), overflowed)
    }

    /// Heap bytes held by the index.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.heap_bytes()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The first value stored under `hash` for which `is_match` is true.
    #[inline]
    pub fn find(&self, hash: u32, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.mask();
        let mut b = hash as usize & mask;
        // Each bucket at most once: a probe can never spin, whatever the
        // overflow counters say.
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            let mut hits = bucket.candidates(hash);
            while hits != 0 {
                let j = first_slot(hits);
                hits &= hits - 1;
                let value = bucket.values[j];
                if bucket.tags[j] == hash && is_match(value) {
                    return Some(value);
                }
            }
            if !bucket.overflowed() {
                return None;
            }
            b = (b + 1) & mask;
        }
        None
    }

    /// Starts loading `hash`'s home bucket (a software prefetch).
    #[inline(always)]
    pub fn prefetch(&self, hash: u32) {
        // No bounds check: `hash & mask` is in range, and a prefetch is
        // harmless anyway.
        prefetch_addr(
            self.buckets
                .as_ptr()
                .wrapping_add(hash as usize & self.mask()),
        );
    }

    /// The first value under `hash` in its home bucket (its tag equal
    /// to `hash`), or [`NO_CANDIDATE`] and whether [`HashIndex::find`]
    /// must still look (another slot shares the control byte, or the
    /// bucket overflowed); `false` then means `hash` is absent. A
    /// candidate the caller finds not to match also needs `find`. Lets a
    /// batch load every packet's bucket before confirming any candidate.
    #[inline(always)]
    pub fn home_candidate(&self, hash: u32) -> (u32, bool) {
        let bucket = &self.buckets[hash as usize & self.mask()];
        let hits = bucket.candidates(hash);
        if hits != 0 {
            let j = first_slot(hits);
            if bucket.tags[j] == hash {
                return (bucket.values[j], false);
            }
            return (NO_CANDIDATE, true);
        }
        (NO_CANDIDATE, bucket.overflowed())
    }

    /// Adds `value` under `hash`. Duplicates are the caller's business.
    pub fn insert(&mut self, hash: u32, value: u32) {
        if (self.len + 1) * self.max_load.1 > self.buckets.len() * SLOTS * self.max_load.0 {
            self.grow();
        }
        self.insert_no_grow(hash, value);
        self.len += 1;
    }

    fn insert_no_grow(&mut self, hash: u32, value: u32) {
        let mask = self.mask();
        let mut b = hash as usize & mask;
        for _ in 0..self.buckets.len() {
            let bucket = &mut self.buckets[b];
            let free = !bucket.occupied() & CTRL_HIGH;
            if free != 0 {
                bucket.set_slot(first_slot(free), hash, value);
                return;
            }
            bucket.add_overflow();
            b = (b + 1) & mask;
        }
        // Every bucket full (the load bound makes this unreachable): undo
        // the counts this pass added, grow, and place the entry there.
        let mut p = hash as usize & mask;
        for _ in 0..self.buckets.len() {
            self.buckets[p].sub_overflow();
            p = (p + 1) & mask;
        }
        self.grow();
        self.insert_no_grow(hash, value);
    }

    /// Removes the entry (`hash`, `value`); false when it is not there.
    pub fn remove(&mut self, hash: u32, value: u32) -> bool {
        let mask = self.mask();
        let home = hash as usize & mask;
        let mut b = home;
        for _ in 0..self.buckets.len() {
            let bucket = &mut self.buckets[b];
            let found = bucket
                .slots()
                .find(|&j| bucket.tags[j] == hash && bucket.values[j] == value);
            if let Some(j) = found {
                bucket.clear_slot(j);
                let mut p = home;
                while p != b {
                    self.buckets[p].sub_overflow();
                    p = (p + 1) & mask;
                }
                self.len -= 1;
                return true;
            }
            if !bucket.overflowed() {
                return false;
            }
            b = (b + 1) & mask;
        }
        false
    }

    /// Grows a full index: ×4 while small, ×2 from [`QUADRUPLE_BELOW`]
    /// buckets.
    fn grow(&mut self) {
        let old = self.buckets.len();
        let factor = if old < QUADRUPLE_BELOW { 4 } else { 2 };
        self.rebuild(old * factor);
    }

    /// Moves every entry into a new zeroed table of `new_len` buckets (a
    /// power of two that holds them within the load bound).
    fn rebuild(&mut self, new_len: usize) {
        let old = std::mem::replace(&mut self.buckets, LargeTable::zeroed(new_len));
        for bucket in old.iter() {
            for j in bucket.slots() {
                self.insert_no_grow(bucket.tags[j], bucket.values[j]);
            }
        }
    }

    /// Every (hash, value) entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.buckets.iter().flat_map(|bucket| {
            bucket
                .slots()
                .map(move |j| (bucket.tags[j], bucket.values[j]))
        })
    }
}

/// A fast, non-cryptographic hasher for the control-path maps keyed by
/// words the datapath already trusts (ports, masks, simple-match keys).
/// Flow keys come from packets, but these maps are only written by the
/// flow installer, so hash flooding is not a concern here.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }
}

/// `BuildHasher` for [`WordHasher`].
pub type WordHashBuilder = std::hash::BuildHasherDefault<WordHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Overflow chains can wrap all the way around the table after
    /// removals (each bucket then records an entry that moved past it),
    /// so "continue while overflowed" alone would probe an absent key
    /// forever. Probes stop after one lap.
    #[test]
    fn lookup_of_an_absent_key_terminates_when_overflow_wraps_around() {
        // Two buckets filled far past the load bound (inserting in place,
        // without the growth `insert` would do) to reach the wrapped state.
        let mut index = HashIndex {
            buckets: LargeTable::zeroed(2),
            len: 0,
            max_load: DENSE_LOAD,
        };
        let insert = |index: &mut HashIndex, hash: u32, value: u32| {
            index.insert_no_grow(hash, value);
            index.len += 1;
        };
        let even = |k: u32| k * 2; // home bucket 0
        for k in 0..12 {
            insert(&mut index, even(k), k);
        }
        // Bucket 0 holds 0..7, bucket 1 the overflow 7..12.
        assert!(index.remove(even(0), 0) && index.remove(even(1), 1));
        insert(&mut index, 1, 100); // home 1, fills bucket 1
        insert(&mut index, 3, 101);
        assert!(index.remove(even(2), 2));
        insert(&mut index, 5, 102); // bucket 1 full: wraps into bucket 0
        assert!(
            index.buckets.iter().all(Bucket::overflowed),
            "the wrapped state"
        );
        assert_eq!(index.find(even(500), |_| true), None);
        assert!(!index.remove(even(500), 7));
        for (hash, value) in [(even(11), 11), (5, 102), (1, 100)] {
            assert_eq!(index.find(hash, |v| v == value), Some(value));
        }
    }

    #[test]
    fn colliding_hashes_overflow_and_shrink_back() {
        let mut index = HashIndex::new();
        // All in one home bucket: forces overflow chains.
        for v in 0..100u32 {
            index.insert(0x40, v);
        }
        for v in 0..100u32 {
            assert_eq!(index.find(0x40, |x| x == v), Some(v));
        }
        for v in (0..100u32).step_by(2) {
            assert!(index.remove(0x40, v));
            assert!(!index.remove(0x40, v));
        }
        for v in 0..100u32 {
            let want = (v % 2 == 1).then_some(v);
            assert_eq!(index.find(0x40, |x| x == v), want);
        }
        for v in (1..100u32).step_by(2) {
            assert!(index.remove(0x40, v));
        }
        assert!(index.is_empty());
        assert!(index.buckets.iter().all(|b| b.ctrl == 0));
    }

    /// More than 255 entries pass one bucket: its overflow count
    /// saturates and stays, which must only cost probes, never answers.
    #[test]
    fn saturated_overflow_counts_keep_every_entry_reachable() {
        let mut index = HashIndex::new();
        // Same home bucket for all (low bits 0 in every table size up to
        // 2^16 buckets), distinct hashes, same control byte.
        let hash = |v: u32| v << 16;
        for v in 0..600u32 {
            index.insert(hash(v), v);
        }
        assert_eq!(index.buckets[0].overflow(), OVERFLOW_MAX);
        for v in 0..600u32 {
            assert_eq!(index.find(hash(v), |x| x == v), Some(v), "entry {v}");
        }
        for v in (0..600u32).filter(|v| v % 3 != 0) {
            assert!(index.remove(hash(v), v));
        }
        for v in 0..600u32 {
            let want = (v % 3 == 0).then_some(v);
            assert_eq!(index.find(hash(v), |x| x == v), want, "entry {v}");
            let (candidate, must_find) = index.home_candidate(hash(v));
            assert!(
                candidate == v || (candidate == NO_CANDIDATE && must_find),
                "the home bucket stays overflowed: a miss there is not final"
            );
        }
        assert_eq!(index.len(), 200);
    }

    /// Hashes that share their control byte (top 7 bits) and home bucket
    /// but differ elsewhere are told apart by the full tag.
    #[test]
    fn control_byte_collisions_are_resolved_by_the_full_tag() {
        let mut index = HashIndex::new();
        for v in 0..5u32 {
            index.insert(v * 0x100, v);
        }
        for v in 0..5u32 {
            assert_eq!(index.find(v * 0x100, |_| true), Some(v));
            let (candidate, must_find) = index.home_candidate(v * 0x100);
            assert!(
                candidate == v || (candidate == NO_CANDIDATE && must_find),
                "several slots share the control byte: the first is not final"
            );
        }
        assert_eq!(index.find(7 * 0x100, |_| true), None);
    }

    /// A small full index grows ×4 (fewer rebuilds in a setup burst), a
    /// large one ×2 (bounded overshoot); `reserve` sizes the table once
    /// so the reserved inserts never rebuild, and a 1-entry index stays
    /// one bucket.
    #[test]
    fn growth_quadruples_while_small_and_reserve_presizes() {
        let spread = |v: u32| v.wrapping_mul(0x9e37_79b9);
        let mut index = HashIndex::sparse();
        index.insert(spread(1), 1);
        assert_eq!(index.heap_bytes(), 64, "one entry: one bucket");
        let mut sizes = vec![index.overflow_stats().0];
        for v in 2..=40_000u32 {
            index.insert(spread(v), v);
            let buckets = index.overflow_stats().0;
            if buckets != *sizes.last().unwrap() {
                sizes.push(buckets);
            }
        }
        assert_eq!(
            sizes,
            [1, 4, 16, 64, 256, 1024, 2048, 4096, 8192, 16384],
            "×4 below {QUADRUPLE_BELOW} buckets, ×2 above"
        );
        for v in 1..=40_000u32 {
            assert_eq!(index.find(spread(v), |x| x == v), Some(v));
        }

        let mut reserved = HashIndex::with_capacity(10_000);
        let buckets = reserved.overflow_stats().0;
        // 10,000 entries at 7/8 of 7 slots: 1,633 buckets, rounded up.
        assert_eq!(buckets, 2048);
        for v in 0..10_000u32 {
            reserved.insert(spread(v), v);
        }
        assert_eq!(reserved.overflow_stats().0, buckets, "no rebuild");
        reserved.reserve(1);
        assert_eq!(reserved.overflow_stats().0, buckets, "room left");
        reserved.reserve(10_000);
        assert_eq!(reserved.overflow_stats().0, 4096, "grows, keeps entries");
        for v in 0..10_000u32 {
            assert_eq!(reserved.find(spread(v), |x| x == v), Some(v));
        }
        assert_eq!(HashIndex::with_capacity(1).heap_bytes(), 64);
        assert_eq!(HashIndex::with_capacity(0).heap_bytes(), 64);
    }

    #[test]
    fn matches_a_hashmap_model() {
        let mut index = HashIndex::new();
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut x = 0x1234_5678u32;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let value = x % 3000;
            let hash = value.wrapping_mul(0x9e37_79b9) & 0xffff_0fff;
            if model.contains_key(&value) && step % 3 != 0 {
                assert!(index.remove(hash, value));
                model.remove(&value);
            } else if let std::collections::hash_map::Entry::Vacant(e) = model.entry(value) {
                index.insert(hash, value);
                e.insert(hash);
            }
            assert_eq!(index.len(), model.len());
        }
        for (&value, &hash) in &model {
            assert_eq!(index.find(hash, |v| v == value), Some(value));
        }
        assert_eq!(index.iter().count(), model.len());
    }
}
