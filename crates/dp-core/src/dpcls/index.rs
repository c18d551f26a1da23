//! A bucketised open-addressing index from a 32-bit hash to `u32` values,
//! shared by the classifier's subtables, the flow table's UFID index and
//! its simple-match table.
//!
//! # How it works
//! The index does not own keys. It stores, per slot, the full 32-bit hash
//! (the "tag") and a `u32` value (a rule or flow position); the caller
//! confirms a candidate by comparing its own key through a predicate. A
//! bucket is one 64-byte cache line holding [`SLOTS`] tags (in an
//! 8-lane array, so the tag compare is two SIMD compares), [`SLOTS`]
//! values, and one word packing the occupancy bitmap and an overflow
//! count. A lookup reads the
//! home bucket (`hash & mask`) and moves to the next bucket only while the
//! current one records that some insert passed it because it was full
//! (F14's "outbound overflow" counter), so a miss usually costs one line.
//!
//! # Invariants
//! - `overflow[b]` is the number of live entries whose home bucket is at or
//!   before `b` (cyclically) but which live after `b`. Removal walks the
//!   same path as the insert did and decrements the counts it passed.
//! - The load stays at most 7/8 of the slots, so probing terminates.
//! - Growing (on insert only) rebuilds from the stored tags; lookups never
//!   allocate.

/// [`HashIndex::home_candidate`]'s "no candidate" (values are positions,
/// never `u32::MAX`).
pub const NO_CANDIDATE: u32 = u32::MAX;

/// Slots per bucket: 7 tags + 7 values + bookkeeping fill 64 bytes.
pub const SLOTS: usize = 7;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    /// Lane 7 is never occupied; it makes the compare 8 lanes wide.
    tags: [u32; 8],
    values: [u32; SLOTS],
    /// Bits 0..7: slot `j` holds an entry. Bits 8..32: entries that had to
    /// move past this bucket because it was full.
    meta: u32,
}

const OCCUPIED_MASK: u32 = (1 << SLOTS) - 1;
const OVERFLOW_ONE: u32 = 1 << 8;

impl Bucket {
    #[inline(always)]
    fn occupied(&self) -> u32 {
        self.meta & OCCUPIED_MASK
    }
    #[inline(always)]
    fn overflowed(&self) -> bool {
        self.meta >= OVERFLOW_ONE
    }
    /// Bitmap of occupied slots whose tag is `hash`.
    #[inline(always)]
    fn tag_hits(&self, hash: u32) -> u32 {
        let mut hits = 0u32;
        for (j, tag) in self.tags.iter().enumerate() {
            hits |= u32::from(*tag == hash) << j;
        }
        hits & self.occupied()
    }
}

const EMPTY_BUCKET: Bucket = Bucket {
    tags: [0; 8],
    values: [0; SLOTS],
    meta: 0,
};

const _: () = assert!(size_of::<Bucket>() == 64);

/// Maps 32-bit hashes to `u32` values; see the module documentation.
#[derive(Clone, Debug)]
pub struct HashIndex {
    buckets: Vec<Bucket>,
    len: usize,
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
            buckets: vec![EMPTY_BUCKET],
            len: 0,
        }
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

    /// Heap bytes held by the index.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
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
            let mut hits = bucket.tag_hits(hash);
            while hits != 0 {
                let j = hits.trailing_zeros() as usize;
                let value = bucket.values[j];
                if is_match(value) {
                    return Some(value);
                }
                hits &= hits - 1;
            }
            if !bucket.overflowed() {
                return None;
            }
            b = (b + 1) & mask;
        }
        None
    }

    /// The first value under `hash` in its home bucket, or
    /// [`NO_CANDIDATE`], and whether that is the whole answer (at most one
    /// tag matched and nothing overflowed the bucket). Lets a batch load
    /// every packet's bucket before confirming any candidate.
    #[inline]
    pub fn home_candidate(&self, hash: u32) -> (u32, bool) {
        let bucket = &self.buckets[hash as usize & self.mask()];
        let hits = bucket.tag_hits(hash);
        let first = if hits == 0 {
            NO_CANDIDATE
        } else {
            bucket.values[hits.trailing_zeros() as usize]
        };
        (
            first,
            hits & hits.wrapping_sub(1) == 0 && !bucket.overflowed(),
        )
    }

    /// Adds `value` under `hash`. Duplicates are the caller's business.
    pub fn insert(&mut self, hash: u32, value: u32) {
        if (self.len + 1) * 8 > self.buckets.len() * SLOTS * 7 {
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
            if bucket.occupied() != OCCUPIED_MASK {
                let j = (!bucket.occupied()).trailing_zeros() as usize;
                bucket.tags[j] = hash;
                bucket.values[j] = value;
                bucket.meta |= 1 << j;
                return;
            }
            bucket.meta += OVERFLOW_ONE;
            b = (b + 1) & mask;
        }
        // Every bucket full (the load bound makes this unreachable): undo
        // the counts this pass added, grow, and place the entry there.
        let mut p = hash as usize & mask;
        for _ in 0..self.buckets.len() {
            self.buckets[p].meta -= OVERFLOW_ONE;
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
            let found = (0..SLOTS).find(|&j| {
                bucket.occupied() & (1 << j) != 0
                    && bucket.tags[j] == hash
                    && bucket.values[j] == value
            });
            if let Some(j) = found {
                bucket.meta &= !(1 << j);
                let mut p = home;
                while p != b {
                    self.buckets[p].meta -= OVERFLOW_ONE;
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

    fn grow(&mut self) {
        let new_len = self.buckets.len() * 2;
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY_BUCKET; new_len]);
        for bucket in &old {
            for j in 0..SLOTS {
                if bucket.occupied() & (1 << j) != 0 {
                    self.insert_no_grow(bucket.tags[j], bucket.values[j]);
                }
            }
        }
    }

    /// Every (hash, value) entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.buckets.iter().flat_map(|bucket| {
            (0..SLOTS)
                .filter(move |j| bucket.occupied() & (1 << j) != 0)
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
        let mut index = HashIndex::new();
        let even = |k: u32| k * 2; // home bucket 0 once there are 2 buckets
        for k in 0..12 {
            index.insert(even(k), k);
        }
        assert_eq!(index.buckets.len(), 2);
        // Bucket 0 holds 0..7, bucket 1 the overflow 7..12.
        assert!(index.remove(even(0), 0) && index.remove(even(1), 1));
        index.insert(1, 100); // home 1, fills bucket 1
        index.insert(3, 101);
        assert!(index.remove(even(2), 2));
        index.insert(5, 102); // bucket 1 full: wraps into bucket 0
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
        assert!(index.buckets.iter().all(|b| b.meta == 0));
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
