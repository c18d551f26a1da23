//! One subtable of the megaflow classifier: every rule that shares one
//! mask, looked up with a single hash probe per packet.
//!
//! # How it works
//! The mask is reduced to the list of its non-zero 64-bit words
//! (`word_idx`, `mask_words`: OVS's miniflow). A rule stores only those
//! words of its masked key, `n` words in a slab (`keys`, stride `n`), so a
//! rule's position never changes while it lives and the flow table can
//! keep it as a handle. A [`HashIndex`] maps the hash of the masked words
//! to rule positions; a candidate is confirmed by comparing the `n` words.
//!
//! Lookup is batched in three passes over the active packets: hash every
//! packet's masked words and prefetch its home bucket; read the buckets
//! and prefetch each candidate rule; confirm the candidates. The cache
//! misses of the batch's packets thus overlap instead of queueing (with
//! 100k rules in one subtable, 36-47 ns/packet against 66-90 for the
//! earlier unprefetched loop with scalar tag compares, same run). A packet without a candidate skips the third
//! pass, so probing a subtable that misses, the common case with many
//! subtables, costs a hash and one bucket read. A mask of `n` words with
//! `n` in [`SPECIALISED_WIDTHS`] is looked up by a const-generic copy of
//! the loop whose word count the compiler knows (unrolled, the confirm an
//! xor-or of `n` words); other widths take the generic loop. The
//! `dpcls_width` and `dpcls_specialised_vs_generic` benchmarks in
//! benches/classifier.rs are the evidence for the widths kept.
//!
//! The subtable hash is not OVS's murmur chain (`hash_add64` per word, a
//! serial dependency of ~13 cycles a word without CRC32 instructions,
//! which safe portable Rust cannot use). Each masked word is mixed on its
//! own, a 64x64→128 multiply of the word xor a per-position key, folded
//! to 64 bits; the terms are summed and the sum finalised. The multiplies
//! of different words are independent, so the CPU overlaps them instead
//! of waiting on a chain of 2n dependent multiplies
//! (`cascade/megaflow_hit_batch32_emc_off` measured 43 ns/packet with the
//! murmur chain and about 35 with this hash, same machine and load).
//!
//! # Invariants
//! - The hash of a key is [`subtable_hash`] of its masked words in word
//!   order, the same for insert, the generic loop and every specialised
//!   loop.
//! - `values[pos] == FREE` exactly when `pos` is on the free list.

use super::index::{HashIndex, NO_CANDIDATE};
use super::prefetch::prefetch;
use crate::flow::{FLOW_U64S, FlowKey};
use crate::packet::MAX_BURST;

/// Mask widths (in 64-bit words) with a specialised lookup loop. The
/// `dpcls_width` benchmark (hot cache, 4096 rules; load ~6, median
/// ns/packet specialised vs generic) measured 16 vs 26 (3 words), 26 vs 31
/// (4), 25 vs 34 (5), 28 vs 35 (6), 22 vs 42 (7), 33 vs 47 (8); with 100k
/// rules (`dpcls_specialised_vs_generic`) 54 vs 96 for one 5-word
/// subtable. Widths 1 and 2 showed no stable gain in earlier runs (their
/// "specialised" and "generic" cases run the same generic loop, so their
/// spread, up to 30% on this shared 2-core machine, is the noise) and take
/// the generic loop.
pub const SPECIALISED_WIDTHS: std::ops::RangeInclusive<usize> = 3..=8;

/// Marks a free rule slot (values are `u32`, so no value collides).
const FREE_WORD: u64 = u64::MAX;

const fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Per-position keys of the subtable hash.
const HASH_KEYS: [u64; FLOW_U64S] = {
    let mut keys = [0u64; FLOW_U64S];
    let mut i = 0;
    while i < FLOW_U64S {
        keys[i] = splitmix64(i as u64 + 1);
        i += 1;
    }
    keys
};

/// Mixes the masked word at compact position `j`.
#[inline(always)]
fn mix_word(j: usize, word: u64) -> u64 {
    let product = u128::from(word ^ HASH_KEYS[j % FLOW_U64S]) * 0x9fb2_1c65_1e98_df25u128;
    (product >> 64) as u64 ^ product as u64
}

#[inline(always)]
fn finish_hash(acc: u64) -> u32 {
    let h = (acc ^ (acc >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h ^ (h >> 32)) as u32
}

/// The hash of a rule or packet in a subtable: the masked words in word
/// order (see the module documentation).
#[inline(always)]
pub fn subtable_hash(masked_words: impl IntoIterator<Item = u64>) -> u32 {
    let acc = masked_words
        .into_iter()
        .enumerate()
        .fold(0u64, |acc, (j, w)| acc.wrapping_add(mix_word(j, w)));
    finish_hash(acc)
}

/// How a subtable looks up a batch: chosen once, from the mask width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupImpl {
    Generic,
    Specialised(usize),
}

#[derive(Clone, Debug)]
pub(crate) struct Subtable {
    mask: FlowKey,
    word_idx: Vec<u8>,
    mask_words: Vec<u64>,
    /// Rule slab, `n + 1` words a rule: the value (or [`FREE_WORD`]), then
    /// the `n` masked key words, so a confirming compare and the value read
    /// share a cache line.
    rules: Vec<u64>,
    free: Vec<u32>,
    index: HashIndex,
    len: usize,
    /// Packets that hit this subtable since the last re-sort.
    pub(crate) hits: u64,
    lookup_impl: LookupImpl,
}

impl Subtable {
    pub(crate) fn new(mask: &FlowKey, allow_specialised: bool) -> Subtable {
        let word_map = mask.nonzero_word_map();
        let word_idx: Vec<u8> = (0..FLOW_U64S as u8)
            .filter(|&i| word_map & (1 << i) != 0)
            .collect();
        let mask_words = word_idx
            .iter()
            .map(|&i| mask.words()[usize::from(i)])
            .collect();
        let n = word_idx.len();
        let lookup_impl = if allow_specialised && SPECIALISED_WIDTHS.contains(&n) {
            LookupImpl::Specialised(n)
        } else {
            LookupImpl::Generic
        };
        Subtable {
            mask: *mask,
            word_idx,
            mask_words,
            rules: Vec::new(),
            free: Vec::new(),
            index: HashIndex::new(),
            len: 0,
            hits: 0,
            lookup_impl,
        }
    }

    pub(crate) fn mask(&self) -> &FlowKey {
        &self.mask
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn width(&self) -> usize {
        self.word_idx.len()
    }

    pub(crate) fn lookup_impl(&self) -> LookupImpl {
        self.lookup_impl
    }

    /// Heap bytes held by this subtable's rule storage and index.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.rules.capacity() * 8
            + self.free.capacity() * 4
            + self.index.heap_bytes()
            + self.word_idx.capacity()
            + self.mask_words.capacity() * 8
    }

    #[inline]
    fn hash(&self, key: &FlowKey) -> u32 {
        let words = key.words();
        subtable_hash(
            self.word_idx
                .iter()
                .zip(&self.mask_words)
                .map(|(&i, &m)| words[usize::from(i)] & m),
        )
    }

    #[inline]
    fn stride(&self) -> usize {
        self.word_idx.len() + 1
    }

    #[inline]
    fn rule_words(&self, pos: u32) -> &[u64] {
        let start = pos as usize * self.stride();
        &self.rules[start + 1..start + self.stride()]
    }

    #[inline]
    fn rule_value(&self, pos: u32) -> u64 {
        self.rules
            .get(pos as usize * self.stride())
            .copied()
            .unwrap_or(FREE_WORD)
    }

    fn masked_words_eq(&self, key: &FlowKey, rule: &[u64]) -> bool {
        let words = key.words();
        self.word_idx
            .iter()
            .zip(&self.mask_words)
            .zip(rule)
            .all(|((&i, &m), &r)| words[usize::from(i)] & m == r)
    }

    /// The rule position holding exactly `key & mask`, if any.
    pub(crate) fn find(&self, key: &FlowKey) -> Option<u32> {
        self.index.find(self.hash(key), |pos| {
            self.masked_words_eq(key, self.rule_words(pos))
        })
    }

    /// Adds a rule (the caller checked it is not a duplicate).
    pub(crate) fn insert(&mut self, key: &FlowKey, value: u32) -> u32 {
        let hash = self.hash(key);
        let words = key.words();
        let masked = self
            .word_idx
            .iter()
            .zip(&self.mask_words)
            .map(|(&i, &m)| words[usize::from(i)] & m);
        let stride = self.stride();
        let pos = match self.free.pop() {
            Some(pos) => {
                let start = pos as usize * stride;
                let slot = &mut self.rules[start..start + stride];
                slot[0] = u64::from(value);
                for (dst, w) in slot[1..].iter_mut().zip(masked) {
                    *dst = w;
                }
                pos
            }
            None => {
                let pos = u32::try_from(self.rules.len() / stride).expect("fewer than 2^32 rules");
                self.rules.push(u64::from(value));
                self.rules.extend(masked);
                pos
            }
        };
        self.index.insert(hash, pos);
        self.len += 1;
        pos
    }

    /// Removes the rule at `pos`, returning its value.
    pub(crate) fn remove(&mut self, pos: u32) -> Option<u32> {
        let value = self.value(pos)?;
        let key = self.rule_key(pos);
        let hash = self.hash(&key);
        let removed = self.index.remove(hash, pos);
        debug_assert!(removed, "live rule is indexed");
        let start = pos as usize * self.stride();
        self.rules[start] = FREE_WORD;
        self.free.push(pos);
        self.len -= 1;
        Some(value)
    }

    /// The value of the live rule at `pos`.
    pub(crate) fn value(&self, pos: u32) -> Option<u32> {
        let word = self.rule_value(pos);
        (word != FREE_WORD).then_some(word as u32)
    }

    /// The masked key of the rule at `pos`, as a full key.
    pub(crate) fn rule_key(&self, pos: u32) -> FlowKey {
        let mut key = FlowKey::ZERO;
        let words = key.words_mut();
        for (&i, &w) in self.word_idx.iter().zip(self.rule_words(pos)) {
            words[usize::from(i)] = w;
        }
        key
    }

    /// True when `key` matches the rule at `pos` (a live rule).
    #[inline]
    pub(crate) fn rule_matches(&self, pos: u32, key: &FlowKey) -> bool {
        self.value(pos).is_some() && self.masked_words_eq(key, self.rule_words(pos))
    }

    /// Every live rule: (position, value).
    pub(crate) fn rules(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.rules
            .chunks_exact(self.stride())
            .enumerate()
            .filter(|(_, rule)| rule[0] != FREE_WORD)
            .map(|(pos, rule)| (pos as u32, rule[0] as u32))
    }

    /// Looks up the packets whose bit is set in `active`, writing the
    /// value of each hit to `out[i]`; returns the bitmap of hits.
    #[inline]
    pub(crate) fn lookup_batch(
        &self,
        keys: &[FlowKey],
        active: u32,
        out: &mut [u32; MAX_BURST],
    ) -> u32 {
        match self.lookup_impl {
            LookupImpl::Specialised(3) => self.lookup_fixed::<3>(keys, active, out),
            LookupImpl::Specialised(4) => self.lookup_fixed::<4>(keys, active, out),
            LookupImpl::Specialised(5) => self.lookup_fixed::<5>(keys, active, out),
            LookupImpl::Specialised(6) => self.lookup_fixed::<6>(keys, active, out),
            LookupImpl::Specialised(7) => self.lookup_fixed::<7>(keys, active, out),
            LookupImpl::Specialised(8) => self.lookup_fixed::<8>(keys, active, out),
            _ => self.lookup_generic(keys, active, out),
        }
    }

    /// Starts loading the rule slot at `pos` (its first and last word,
    /// which may be on different lines).
    #[inline(always)]
    fn prefetch_rule(&self, pos: u32) {
        let start = pos as usize * self.stride();
        if let Some(first) = self.rules.get(start) {
            prefetch(first);
        }
        if let Some(last) = self.rules.get(start + self.stride() - 1) {
            prefetch(last);
        }
    }

    fn lookup_generic(&self, keys: &[FlowKey], active: u32, out: &mut [u32; MAX_BURST]) -> u32 {
        let mut hashes = [0u32; MAX_BURST];
        let mut bits = active;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            hashes[i] = self.hash(&keys[i]);
            self.index.prefetch(hashes[i]);
            bits &= bits - 1;
        }
        let mut found = 0u32;
        let mut bits = active;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            let key = &keys[i];
            if let Some(pos) = self.index.find(hashes[i], |pos| {
                self.masked_words_eq(key, self.rule_words(pos))
            }) {
                out[i] = self.rule_value(pos) as u32;
                found |= 1 << i;
            }
            bits &= bits - 1;
        }
        found
    }

    /// The batch lookup for masks of exactly `N` words, in three passes so
    /// that the cache misses of the batch's packets overlap: (1) mask and
    /// hash every packet and prefetch its home bucket, (2) read the
    /// buckets and prefetch each candidate rule, (3) confirm the
    /// candidates by comparing the `N` words. Pass 3 visits only packets
    /// with a candidate (or an unusual bucket), so a packet that misses
    /// this subtable, the common case with many subtables, costs a hash
    /// and one bucket read.
    fn lookup_fixed<const N: usize>(
        &self,
        keys: &[FlowKey],
        active: u32,
        out: &mut [u32; MAX_BURST],
    ) -> u32 {
        debug_assert_eq!(self.word_idx.len(), N);
        let idx: [usize; N] = std::array::from_fn(|j| usize::from(self.word_idx[j]) % FLOW_U64S);
        let mask: [u64; N] = std::array::from_fn(|j| self.mask_words[j]);
        let masked_of = |key: &FlowKey| -> [u64; N] {
            let words = key.words();
            std::array::from_fn(|j| words[idx[j]] & mask[j])
        };
        // `i & (MAX_BURST - 1)` (a no-op: `i` comes from a u32 bitmap)
        // lets the compiler drop the bounds checks on the batch arrays.
        let mut hashes = [0u32; MAX_BURST];
        let mut bits = active;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let hash = subtable_hash(masked_of(&keys[i]));
            hashes[i] = hash;
            self.index.prefetch(hash);
        }
        let mut candidates = [NO_CANDIDATE; MAX_BURST];
        let mut with_candidate = 0u32;
        let mut unusual = 0u32;
        let mut bits = active;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let (candidate, whole_answer) = self.index.home_candidate(hashes[i]);
            unusual |= u32::from(!whole_answer) << i;
            if candidate != NO_CANDIDATE {
                candidates[i] = candidate;
                with_candidate |= 1 << i;
                self.prefetch_rule(candidate);
            }
        }
        let slot_at = |pos: u32| -> &[u64; N] {
            let start = pos as usize * (N + 1);
            self.rules[start + 1..start + 1 + N]
                .try_into()
                .expect("rule slot holds N words")
        };
        // Xor-or over the words: branch-free, no memcmp call.
        let equal = |rule: &[u64; N], m: &[u64; N]| {
            rule.iter().zip(m).fold(0u64, |diff, (r, w)| diff | (r ^ w)) == 0
        };
        let mut found = 0u32;
        let mut bits = with_candidate | unusual;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let masked = masked_of(&keys[i]);
            let candidate = candidates[i];
            let hit = if candidate != NO_CANDIDATE && equal(slot_at(candidate), &masked) {
                Some(candidate)
            } else if unusual & (1 << i) == 0 {
                None
            } else {
                self.index
                    .find(hashes[i], |pos| equal(slot_at(pos), &masked))
            };
            if let Some(pos) = hit {
                out[i] = self.rules[pos as usize * (N + 1)] as u32;
                found |= 1 << i;
            }
        }
        found
    }
}
