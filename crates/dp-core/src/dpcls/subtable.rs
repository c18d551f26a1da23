//! One subtable of the megaflow classifier: every rule that shares one
//! mask, looked up with a single hash probe per packet.
//!
//! # How it works
//! The mask is reduced to the list of its non-zero 64-bit words
//! (`word_idx`, `mask_words`: OVS's miniflow map), so hashing and
//! comparing touch only the words the mask has. A rule stores only those
//! words of its masked key, in a slot of a slab (value first, then the
//! `n` words), so a rule's position never changes while it lives and the
//! flow table can keep it as a handle. A [`HashIndex`] maps the hash of
//! the masked words to rule positions; a candidate is confirmed by
//! comparing the `n` words.
//!
//! Slots of masks up to 7 words are a power of two words long (2, 4 or
//! 8) in a 64-byte aligned slab, so a rule is never split over two cache
//! lines and a candidate costs one line and one prefetch; wider masks
//! take `n + 1` words. (`dpcls_hit_uniform_100k_flows/1`: the 5-word
//! mask's 48-byte slots put half the rules across two lines.) Slabs and
//! index buckets of 2 MiB or more live on transparent huge pages
//! (`large.rs`), which spares the TLB misses of 100k rules.
//!
//! Lookup is batched in three passes over the active packets: hash every
//! packet's masked words and prefetch its home bucket
//! (`Subtable::probe_start`); read the buckets and prefetch each
//! candidate rule (`Subtable::probe_candidates`); confirm the
//! candidates (`Subtable::probe_confirm`). The classifier runs each
//! pass for all its subtables before the next (see the parent module),
//! carrying the per-packet state in `Probes`, so the cache misses of
//! the batch's packets overlap instead of queueing. A packet without a
//! candidate skips the third pass, so probing a subtable
//! that misses, the common case with many subtables, costs a hash and one
//! bucket read. A mask of `n` words with `n` in [`SPECIALISED_WIDTHS`] is
//! looked up by a const-generic copy of the loop whose word count the
//! compiler knows (unrolled, the confirm an xor-or of `n` words); other
//! widths take the generic loop. The `dpcls_width` and
//! `dpcls_specialised_vs_generic` benchmarks in benches/classifier.rs are
//! the evidence for the widths kept.
//!
//! The hash is NH with a per-process random key ([`super::hash`]): one
//! multiply per two words, and no crafted collisions without the key.
//!
//! # Common-bits filter
//! A subtable also keeps the bits on which every rule inserted into it
//! agrees (`filter_mask`: the first rule's mask, narrowed by each insert
//! to the bits where the new rule equals `filter_val`) and their values
//! (`filter_val`). A packet whose masked words differ from
//! `filter_val` in any of those bits matches no rule, and is rejected
//! before it is hashed or its bucket read: three word operations per mask
//! word instead of a hash and a bucket read. Megaflows give subtables such
//! bits all the time (a mask that matches `nw_proto` or a port usually
//! holds rules of one protocol or one port; a mask matching a prefix,
//! rules of one subnet), and it is what makes the probes of the subtables
//! ranked before the one a packet hits cheap. Removing a rule does not
//! give the filter back the bits that rule disagreed on (that would take
//! a pass over every remaining rule): the filter keeps the bits every rule inserted since the subtable was
//! last empty agreed on, which the remaining rules still agree on, so it
//! stays sound, only less selective. An insert into an empty subtable
//! starts it afresh. The classifier
//! skips the filter when it has a single subtable, where every packet
//! would pay for it and none could be spared a probe.
//!
//! # Invariants
//! - The hash of a key is [`subtable_hash`] of its masked words in word
//!   order, the same for insert, remove, the generic loop and every
//!   specialised loop.
//! - A slot's value word is `FREE_WORD` exactly when its position is on
//!   the free list (or was never handed out).
//! - The slab's words start at a 64-byte boundary (`LargeTable`), so a
//!   slot of 2, 4 or 8 words never straddles a cache line.
//! - Every live rule's masked words `w` satisfy
//!   `w & filter_mask == filter_val` (word by word).

use super::hash::{HASH_KEY_WORDS, nh_hash, nh_hash_iter, process_keys};
use super::index::{HashIndex, NO_CANDIDATE};
use super::large::{HUGE_PAGE, LargeTable};
use super::prefetch::prefetch_addr;
use crate::flow::{FLOW_U64S, FlowKey};
use crate::packet::MAX_BURST;

/// Mask widths (in 64-bit words) with a specialised lookup loop. The
/// `dpcls_width` benchmark (hot cache, 4096 rules) under callgrind,
/// instructions per packet specialised vs generic: 152 vs 191 (3 words),
/// 162 vs 208 (4), 178 vs 237 (5), 189 vs 254 (6), 207 vs 283 (7), 211
/// vs 300 (8); earlier timings agreed (e.g. 16 vs 26 ns for 3 words, 54
/// vs 96 ns for one 5-word subtable of 100k rules). Widths 1 and 2 showed
/// no stable gain when timed (their "specialised" and "generic" cases run
/// the same generic loop: 145 and 162 instructions) and take the generic
/// loop.
pub const SPECIALISED_WIDTHS: std::ops::RangeInclusive<usize> = 3..=8;

/// Failed duplicate compares in a row after which pass 1 stops looking
/// for duplicates in a batch (see `Subtable::start_fixed`).
const DUP_TRIES: u32 = 3;

/// Marks a free rule slot (values are `u32`, so no value collides).
const FREE_WORD: u64 = u64::MAX;

/// The hash of a rule or packet in a subtable whose masked words, in word
/// order, are `masked_words` (at most [`FLOW_U64S`]).
pub fn subtable_hash(masked_words: &[u64]) -> u32 {
    nh_hash(masked_words, process_keys())
}

/// How a subtable looks up a batch: chosen once, from the mask width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupImpl {
    Generic,
    Specialised(usize),
}

/// Words per rule slot for a mask of `n` words: the value plus `n` key
/// words, rounded up to a power of two while that fits one cache line.
const fn slot_stride(n: usize) -> usize {
    if n < 8 {
        (n + 1).next_power_of_two()
    } else {
        n + 1
    }
}

/// Rule slots in one line-aligned (or huge-page) allocation.
#[derive(Clone, Debug)]
struct RuleSlab {
    /// `capacity` slots of `stride` words.
    words: LargeTable<u64>,
    stride: usize,
    /// Positions handed out so far (live or on the free list).
    slots: usize,
}

impl RuleSlab {
    fn new(stride: usize) -> RuleSlab {
        RuleSlab {
            words: LargeTable::zeroed(0),
            stride,
            slots: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.words.len() / self.stride
    }

    /// A fresh allocation for `capacity` slots starting with a copy of
    /// the current ones (all handed out: it is called when the slab is
    /// full), the rest zero; see [`LargeTable::grown`].
    fn reallocated(&self, capacity: usize) -> RuleSlab {
        RuleSlab {
            words: self.words.grown(capacity * self.stride),
            stride: self.stride,
            slots: self.slots,
        }
    }

    /// A new slot position (its words are stale until written).
    fn push(&mut self) -> u32 {
        if self.slots == self.capacity() {
            // Small slabs double (fewer copies while a subtable fills
            // from empty: the flow setup path); from 4096 slots they grow
            // by half, as a slab of 20k rules wasted 40 bytes a rule on
            // average at doubling (`print_memory` in
            // benches/classifier.rs). Copies stay amortised O(1).
            let old = self.capacity();
            let mut capacity = if old < 4096 {
                (old * 2).max(8)
            } else {
                old + old / 2
            };
            // A huge-page table is rounded up to whole huge pages: use them.
            let slot_bytes = self.stride * 8;
            if capacity * slot_bytes >= HUGE_PAGE {
                capacity = (capacity * slot_bytes).next_multiple_of(HUGE_PAGE) / slot_bytes;
            }
            *self = self.reallocated(capacity);
        }
        let pos = u32::try_from(self.slots).expect("fewer than 2^32 rules");
        self.slots += 1;
        pos
    }

    /// The first word of slot `pos`.
    #[inline(always)]
    fn start(&self, pos: u32) -> usize {
        pos as usize * self.stride
    }

    /// Slot `pos`: the value word and then the key words (`n + 1` words;
    /// the caller takes the prefix it needs).
    #[inline(always)]
    fn slot(&self, pos: u32, n: usize) -> &[u64] {
        let start = self.start(pos);
        &self.words[start..start + n + 1]
    }

    /// The value word of slot `pos`, `FREE_WORD` for a position never
    /// handed out.
    #[inline(always)]
    fn value_word(&self, pos: u32) -> u64 {
        if (pos as usize) < self.slots {
            self.words[self.start(pos)]
        } else {
            FREE_WORD
        }
    }

    /// Starts loading slot `pos` (`n + 1` words): one line when the slot
    /// is line-aligned, else its first and last line.
    #[inline(always)]
    fn prefetch(&self, pos: u32, n: usize) {
        // A prefetch of any address is harmless (see `prefetch_addr`), so
        // a stale candidate needs no bounds check.
        let first = self.words.as_ptr().wrapping_add(self.start(pos));
        prefetch_addr(first);
        if self.stride > 8 {
            prefetch_addr(first.wrapping_add(n));
        }
    }

    fn heap_bytes(&self) -> usize {
        self.words.heap_bytes()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Subtable {
    mask: FlowKey,
    word_idx: Vec<u8>,
    mask_words: Vec<u64>,
    hash_keys: &'static [u64; HASH_KEY_WORDS],
    slab: RuleSlab,
    free: Vec<u32>,
    index: HashIndex,
    len: usize,
    /// The bits on which every rule inserted since the subtable was last
    /// empty agrees, and their values (see the module docs);
    /// `filter_val` has no bit outside `filter_mask`.
    filter_mask: Vec<u64>,
    filter_val: Vec<u64>,
    /// The position (in `word_idx`) of the filter word pass 1 tests
    /// first, alone: the one that best tells this subtable's rules from
    /// the packets of the subtables ranked after it (set by
    /// [`super::Dpcls::sort`]; any position is sound).
    lead: usize,
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
            hash_keys: process_keys(),
            slab: RuleSlab::new(slot_stride(n)),
            free: Vec::new(),
            index: HashIndex::sparse(),
            len: 0,
            filter_mask: vec![0; n],
            filter_val: vec![0; n],
            lead: 0,
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

    /// The hash index (for tests of its shape).
    #[cfg(test)]
    pub(crate) fn index(&self) -> &HashIndex {
        &self.index
    }

    /// Heap bytes held by this subtable's rule storage and index.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slab.heap_bytes()
            + self.free.capacity() * 4
            + self.index.heap_bytes()
            + self.word_idx.capacity()
            + self.mask_words.capacity() * 8
            + (self.filter_mask.capacity() + self.filter_val.capacity()) * 8
    }

    /// True when `key` passes the common-bits filter (for tests).
    #[cfg(test)]
    pub(crate) fn key_passes_filter(&self, key: &FlowKey) -> bool {
        self.passes_filter(self.masked_words(key))
    }

    /// The filter's (mask, value) on flow-key word `word`, if the mask
    /// has that word (for choosing lead words).
    pub(crate) fn filter_on_word(&self, word: usize) -> Option<(u64, u64)> {
        let j = self.word_idx.iter().position(|&i| usize::from(i) == word)?;
        Some((self.filter_mask[j], self.filter_val[j]))
    }

    /// The flow-key word index, filter mask and value of each of the
    /// filter's words.
    pub(crate) fn filter_words(&self) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        self.word_idx
            .iter()
            .zip(&self.filter_mask)
            .zip(&self.filter_val)
            .map(|((&i, &m), &v)| (usize::from(i), m, v))
    }

    /// Makes the filter word at position `lead` (of
    /// [`Subtable::filter_words`]) the one pass 1 tests first.
    pub(crate) fn set_lead(&mut self, lead: usize) {
        // A catch-all subtable (all-zero mask) has no filter words, and
        // its lead is position 0 of nothing: no lookup path reads it.
        debug_assert!(lead < self.word_idx.len() || (lead == 0 && self.word_idx.is_empty()));
        self.lead = lead.min(self.word_idx.len().saturating_sub(1));
    }

    /// The position of the lead filter word (for tests).
    #[cfg(test)]
    pub(crate) fn lead(&self) -> usize {
        self.lead
    }

    /// True when the masked words `masked` can match a rule (they agree
    /// with every rule on the filter's bits).
    #[inline]
    fn passes_filter(&self, masked: impl Iterator<Item = u64>) -> bool {
        masked
            .zip(&self.filter_mask)
            .zip(&self.filter_val)
            .fold(0u64, |diff, ((w, &m), &v)| diff | ((w & m) ^ v))
            == 0
    }

    /// `key`'s masked words, in word order.
    #[inline]
    fn masked_words<'k>(&'k self, key: &'k FlowKey) -> impl Iterator<Item = u64> + 'k {
        let words = key.words();
        self.word_idx
            .iter()
            .zip(&self.mask_words)
            .map(move |(&i, &m)| words[usize::from(i)] & m)
    }

    #[inline]
    fn hash_key(&self, key: &FlowKey) -> u32 {
        nh_hash_iter(self.masked_words(key), self.hash_keys)
    }

    /// The key words of the rule at `pos`.
    #[inline]
    fn rule_words(&self, pos: u32) -> &[u64] {
        &self.slab.slot(pos, self.word_idx.len())[1..]
    }

    /// The rule position holding exactly `key & mask`, given its hash.
    fn find_hashed(&self, hash: u32, key: &FlowKey) -> Option<u32> {
        self.index
            .find(hash, |pos| self.masked_words_eq(key, self.rule_words(pos)))
    }

    /// The rule position holding exactly `key & mask`, if any.
    pub(crate) fn find(&self, key: &FlowKey) -> Option<u32> {
        self.find_hashed(self.hash_key(key), key)
    }

    /// Adds the rule `key & mask → value` unless a rule with that match
    /// exists: `Ok(position)`, or `Err(position of the existing rule)`.
    /// Hashes the key once for both.
    pub(crate) fn insert(&mut self, key: &FlowKey, value: u32) -> Result<u32, u32> {
        let hash = self.hash_key(key);
        if let Some(existing) = self.find_hashed(hash, key) {
            return Err(existing);
        }
        let pos = self.free.pop().unwrap_or_else(|| self.slab.push());
        let n = self.word_idx.len();
        let start = self.slab.start(pos);
        self.slab.words[start] = u64::from(value);
        let words = key.words();
        let rule = &mut self.slab.words[start + 1..start + 1 + n];
        for ((dst, &i), &m) in rule.iter_mut().zip(&self.word_idx).zip(&self.mask_words) {
            *dst = words[usize::from(i)] & m;
        }
        // The filter: the first rule's words exactly; then only the bits
        // on which the new rule agrees with the filter's values stay.
        if self.len == 0 {
            self.filter_mask.copy_from_slice(&self.mask_words);
            self.filter_val.copy_from_slice(rule);
        } else {
            for ((fm, fv), &w) in self
                .filter_mask
                .iter_mut()
                .zip(self.filter_val.iter_mut())
                .zip(rule.iter())
            {
                *fm &= !(w ^ *fv);
                *fv &= *fm;
            }
        }
        self.index.insert(hash, pos);
        self.len += 1;
        Ok(pos)
    }

    /// Removes the rule at `pos`, returning its value.
    pub(crate) fn remove(&mut self, pos: u32) -> Option<u32> {
        let value = self.value(pos)?;
        let hash = nh_hash(self.rule_words(pos), self.hash_keys);
        let removed = self.index.remove(hash, pos);
        debug_assert!(removed, "live rule is indexed");
        let start = self.slab.start(pos);
        self.slab.words[start] = FREE_WORD;
        self.free.push(pos);
        self.len -= 1;
        Some(value)
    }

    /// The value of the live rule at `pos`.
    pub(crate) fn value(&self, pos: u32) -> Option<u32> {
        let word = self.slab.value_word(pos);
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

    /// True when `key` & mask equals the masked words `rule`.
    #[inline]
    fn masked_words_eq(&self, key: &FlowKey, rule: &[u64]) -> bool {
        let words = key.words();
        self.word_idx
            .iter()
            .zip(&self.mask_words)
            .zip(rule)
            .all(|((&i, &m), &r)| words[usize::from(i)] & m == r)
    }

    /// True when `key` matches the rule at `pos` (a live rule). The SMC
    /// confirms every hit here: a mask of a specialised width compares
    /// as an unrolled xor-or (callgrind, DPDK bench 100k-20masks: the
    /// generic zip loop cost ~55 instructions a packet).
    #[inline]
    pub(crate) fn rule_matches(&self, pos: u32, key: &FlowKey) -> bool {
        match self.lookup_impl {
            LookupImpl::Specialised(3) => self.rule_matches_fixed::<3>(pos, key),
            LookupImpl::Specialised(4) => self.rule_matches_fixed::<4>(pos, key),
            LookupImpl::Specialised(5) => self.rule_matches_fixed::<5>(pos, key),
            LookupImpl::Specialised(6) => self.rule_matches_fixed::<6>(pos, key),
            LookupImpl::Specialised(7) => self.rule_matches_fixed::<7>(pos, key),
            LookupImpl::Specialised(8) => self.rule_matches_fixed::<8>(pos, key),
            _ => self.value(pos).is_some() && self.masked_words_eq(key, self.rule_words(pos)),
        }
    }

    /// [`Subtable::rule_matches`] for masks of exactly `N` words. One
    /// packet a call, so the word positions are bounds-checked where they
    /// are used (a compare each) rather than clamped up front as the
    /// batch loops do (`fixed_mask`: ~25 instructions a call).
    #[inline]
    fn rule_matches_fixed<const N: usize>(&self, pos: u32, key: &FlowKey) -> bool {
        if self.value(pos).is_none() {
            return false;
        }
        let word_idx: &[u8; N] = self.word_idx[..N].try_into().expect("N words");
        let mask: &[u64; N] = self.mask_words[..N].try_into().expect("N words");
        let rule: &[u64; N] = self.slab.slot(pos, N)[1..]
            .try_into()
            .expect("slot holds N words");
        let words = key.words();
        (0..N).fold(0u64, |d, j| {
            d | ((words[usize::from(word_idx[j])] & mask[j]) ^ rule[j])
        }) == 0
    }

    /// Starts loading the rule at `pos` (any position: a prefetch needs
    /// no bounds check).
    #[inline(always)]
    pub(crate) fn prefetch_rule(&self, pos: u32) {
        self.slab.prefetch(pos, self.word_idx.len());
    }

    /// Every live rule: (position, value).
    pub(crate) fn rules(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.slab.slots as u32).filter_map(|pos| Some((pos, self.value(pos)?)))
    }

    /// Looks up the packets whose bit is set in `active`, writing the
    /// value of each hit to `out[i]`; returns the bitmap of hits and
    /// their number (counted as found: x86-64 v1 has no `popcnt`). With
    /// `filter`, packets that fail the common-bits filter are rejected
    /// without a probe. The three passes of [`Subtable::probe_start`],
    /// [`Subtable::probe_candidates`] and [`Subtable::probe_confirm`] back
    /// to back (for tests: the classifier interleaves the passes of its
    /// subtables).
    #[cfg(test)]
    pub(crate) fn lookup_batch(
        &self,
        keys: &[FlowKey],
        active: u32,
        out: &mut [u32; MAX_BURST],
        filter: bool,
    ) -> (u32, u32) {
        let mut probes = Probes::new();
        let (probed, dups) = self.probe_start(keys, active, filter, &mut probes);
        let to_confirm = self.probe_candidates(probed & !dups, &mut probes);
        self.probe_confirm(keys, to_confirm, dups, &probes, out)
    }

    /// Pass 1 of a batch lookup: for each packet of `active` that passes
    /// the common-bits filter (every one without `filter`), hashes its
    /// masked words into `probes` and prefetches its home bucket. Returns
    /// the packets it took (the others match no rule here) and, among
    /// them, the *duplicates*: packets whose masked words equal those of
    /// the packet it hashed last, which are not hashed (`dup_of` in
    /// `probes` names that packet) and must skip pass 2; pass 3 gives
    /// each its packet's answer.
    #[inline]
    pub(crate) fn probe_start(
        &self,
        keys: &[FlowKey],
        active: u32,
        filter: bool,
        probes: &mut Probes,
    ) -> (u32, u32) {
        match (self.lookup_impl, filter) {
            (LookupImpl::Specialised(3), false) => {
                self.start_fixed::<3, false>(keys, active, probes)
            }
            (LookupImpl::Specialised(3), true) => self.start_fixed::<3, true>(keys, active, probes),
            (LookupImpl::Specialised(4), false) => {
                self.start_fixed::<4, false>(keys, active, probes)
            }
            (LookupImpl::Specialised(4), true) => self.start_fixed::<4, true>(keys, active, probes),
            (LookupImpl::Specialised(5), false) => {
                self.start_fixed::<5, false>(keys, active, probes)
            }
            (LookupImpl::Specialised(5), true) => self.start_fixed::<5, true>(keys, active, probes),
            (LookupImpl::Specialised(6), false) => {
                self.start_fixed::<6, false>(keys, active, probes)
            }
            (LookupImpl::Specialised(6), true) => self.start_fixed::<6, true>(keys, active, probes),
            (LookupImpl::Specialised(7), false) => {
                self.start_fixed::<7, false>(keys, active, probes)
            }
            (LookupImpl::Specialised(7), true) => self.start_fixed::<7, true>(keys, active, probes),
            (LookupImpl::Specialised(8), false) => {
                self.start_fixed::<8, false>(keys, active, probes)
            }
            (LookupImpl::Specialised(8), true) => self.start_fixed::<8, true>(keys, active, probes),
            _ => self.start_generic(keys, active, filter, probes),
        }
    }

    /// Pass 2: reads the home bucket of each packet of `probed` (hashed
    /// by pass 1, bucket prefetched) and prefetches its candidate rule.
    /// Returns the packets pass 3 must look at: those with a candidate,
    /// and those whose bucket cannot rule the hash out (rare at our
    /// load). The others miss this subtable.
    #[inline]
    pub(crate) fn probe_candidates(&self, probed: u32, probes: &mut Probes) -> u32 {
        let n = self.word_idx.len();
        let mut to_confirm = 0u32;
        let mut bits = probed;
        // `i & (MAX_BURST - 1)` (a no-op: `i` comes from a u32 bitmap)
        // lets the compiler drop the bounds checks on the batch arrays.
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let (candidate, must_find) = self.index.home_candidate(probes.hashes[i]);
            probes.candidates[i] = candidate;
            if candidate != NO_CANDIDATE {
                self.slab.prefetch(candidate, n);
                to_confirm |= 1 << i;
            } else {
                to_confirm |= u32::from(must_find) << i;
            }
        }
        to_confirm
    }

    /// Pass 3: confirms the packets of `to_confirm` (from pass 2) by
    /// comparing their masked words with the candidate rule's, or by a
    /// full probe when the candidate does not match or there was none;
    /// then gives each duplicate of `dups` (from pass 1) the answer of the
    /// packet it duplicates. Writes each hit's value to `out[i]`; returns
    /// the hits and their number.
    #[inline]
    pub(crate) fn probe_confirm(
        &self,
        keys: &[FlowKey],
        to_confirm: u32,
        dups: u32,
        probes: &Probes,
        out: &mut [u32; MAX_BURST],
    ) -> (u32, u32) {
        let (mut found, mut hits) = self.confirm(keys, to_confirm, probes, out);
        // Equal masked words in one subtable: the same rule, or none.
        let mut bits = dups;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let of = usize::from(probes.dup_of[i]) & (MAX_BURST - 1);
            if found & (1 << of) != 0 {
                out[i] = out[of];
                found |= 1 << i;
                hits += 1;
            }
        }
        (found, hits)
    }

    #[inline]
    fn confirm(
        &self,
        keys: &[FlowKey],
        to_confirm: u32,
        probes: &Probes,
        out: &mut [u32; MAX_BURST],
    ) -> (u32, u32) {
        match self.lookup_impl {
            LookupImpl::Specialised(3) => self.confirm_fixed::<3>(keys, to_confirm, probes, out),
            LookupImpl::Specialised(4) => self.confirm_fixed::<4>(keys, to_confirm, probes, out),
            LookupImpl::Specialised(5) => self.confirm_fixed::<5>(keys, to_confirm, probes, out),
            LookupImpl::Specialised(6) => self.confirm_fixed::<6>(keys, to_confirm, probes, out),
            LookupImpl::Specialised(7) => self.confirm_fixed::<7>(keys, to_confirm, probes, out),
            LookupImpl::Specialised(8) => self.confirm_fixed::<8>(keys, to_confirm, probes, out),
            _ => self.confirm_generic(keys, to_confirm, probes, out),
        }
    }

    /// Pass 1 for other widths (finds no duplicates).
    fn start_generic(
        &self,
        keys: &[FlowKey],
        active: u32,
        filter: bool,
        probes: &mut Probes,
    ) -> (u32, u32) {
        let mut probed = 0u32;
        let mut bits = active;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            if filter && !self.passes_filter(self.masked_words(&keys[i])) {
                continue;
            }
            let hash = self.hash_key(&keys[i]);
            probes.hashes[i] = hash;
            self.index.prefetch(hash);
            probed |= 1 << i;
        }
        (probed, 0)
    }

    fn confirm_generic(
        &self,
        keys: &[FlowKey],
        to_confirm: u32,
        probes: &Probes,
        out: &mut [u32; MAX_BURST],
    ) -> (u32, u32) {
        let (mut found, mut hits) = (0u32, 0u32);
        let mut bits = to_confirm;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let key = &keys[i];
            let candidate = probes.candidates[i];
            let hit = if candidate != NO_CANDIDATE
                && self.masked_words_eq(key, self.rule_words(candidate))
            {
                Some(candidate)
            } else {
                self.index.find(probes.hashes[i], |pos| {
                    self.masked_words_eq(key, self.rule_words(pos))
                })
            };
            if let Some(pos) = hit {
                out[i] = self.slab.value_word(pos) as u32;
                found |= 1 << i;
                hits += 1;
            }
        }
        (found, hits)
    }

    /// The mask's word positions and words as `N`-word arrays, for the
    /// loops specialised to masks of exactly `N` words. `min` (a no-op:
    /// indices are below FLOW_U64S) lets the compiler drop the bounds
    /// checks on the key words; a compare and a move a word, once a call,
    /// where `% FLOW_U64S` cost a multiply-shift. One length check per
    /// array, not one per word (the subtable's arrays are all `N` long).
    #[inline(always)]
    fn fixed_mask<const N: usize>(&self) -> ([usize; N], [u64; N]) {
        debug_assert_eq!(self.word_idx.len(), N);
        let word_idx: &[u8; N] = self.word_idx[..N].try_into().expect("N words");
        let idx = std::array::from_fn(|j| usize::from(word_idx[j]).min(FLOW_U64S - 1));
        let mask = self.mask_words[..N].try_into().expect("N words");
        (idx, mask)
    }

    /// Pass 1 for masks of exactly `N` words (unrolled). With `FILTER`,
    /// the lead filter word alone first: in a classifier with many
    /// subtables most packets a subtable sees in pass 1 belong to a later
    /// one, and one word usually tells them apart. The filter tests the
    /// key's words as they are: its mask is within the subtable's.
    ///
    /// A packet whose masked words equal the last hashed packet's is a
    /// duplicate: many microflows share a megaflow, so a batch often
    /// holds runs of one megaflow (100k UDP flows over one in_port+udp
    /// rule: every packet), and `N` compares spare its hash, its bucket
    /// read and its confirm. After [`DUP_TRIES`] failed compares in a row
    /// the rest of the batch is not compared (distinct megaflows: the
    /// compares would only cost).
    fn start_fixed<const N: usize, const FILTER: bool>(
        &self,
        keys: &[FlowKey],
        active: u32,
        probes: &mut Probes,
    ) -> (u32, u32) {
        let (idx, mask) = self.fixed_mask::<N>();
        let fixed = |v: &[u64]| -> [u64; N] { v[..N].try_into().expect("N words") };
        let filter_mask = fixed(&self.filter_mask);
        let filter_val = fixed(&self.filter_val);
        let lead = self.lead.min(N - 1);
        let (lead_idx, lead_mask, lead_val) = (idx[lead], filter_mask[lead], filter_val[lead]);
        let hash_keys = self.hash_keys;
        let mut probed = active;
        let mut dups = 0u32;
        // The last hashed packet (none yet: out of range) and its words.
        let mut last = MAX_BURST;
        let mut last_words = keys.first().map_or(&[0u64; FLOW_U64S], FlowKey::words);
        // Compares left: each duplicate refills them, each other packet
        // spends one, so a batch of distinct megaflows stops comparing
        // after a few (the compare costs ~15 instructions a packet).
        let mut tries = DUP_TRIES;
        let mut bits = active;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let words = keys[i].words();
            if FILTER {
                if words[lead_idx] & lead_mask != lead_val {
                    probed &= !(1 << i);
                    continue;
                }
                let diff = (0..N).fold(0u64, |d, j| {
                    d | ((words[idx[j]] & filter_mask[j]) ^ filter_val[j])
                });
                if diff != 0 {
                    probed &= !(1 << i);
                    continue;
                }
            }
            if tries != 0 && last < MAX_BURST {
                let diff = (0..N).fold(0u64, |d, j| {
                    d | ((words[idx[j]] ^ last_words[idx[j]]) & mask[j])
                });
                if diff == 0 {
                    dups |= 1 << i;
                    // `last` < MAX_BURST = 32 here: fits a u8.
                    probes.dup_of[i] = last as u8;
                    tries = DUP_TRIES;
                    continue;
                }
                tries -= 1;
            }
            last = i;
            last_words = words;
            let masked: [u64; N] = std::array::from_fn(|j| words[idx[j]] & mask[j]);
            let hash = nh_hash(&masked, hash_keys);
            probes.hashes[i] = hash;
            self.index.prefetch(hash);
        }
        (probed, dups)
    }

    /// Pass 3 for masks of exactly `N` words: the confirm is an xor-or
    /// of `N` words (branch-free, no memcmp call).
    fn confirm_fixed<const N: usize>(
        &self,
        keys: &[FlowKey],
        to_confirm: u32,
        probes: &Probes,
        out: &mut [u32; MAX_BURST],
    ) -> (u32, u32) {
        let (idx, mask) = self.fixed_mask::<N>();
        let slot_at = |pos: u32| -> (u64, &[u64; N]) {
            let slot = self.slab.slot(pos, N);
            (slot[0], slot[1..].try_into().expect("slot holds N words"))
        };
        let equal = |rule: &[u64; N], m: &[u64; N]| {
            rule.iter().zip(m).fold(0u64, |diff, (r, w)| diff | (r ^ w)) == 0
        };
        let (mut found, mut hits) = (0u32, 0u32);
        let mut bits = to_confirm;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let words = keys[i].words();
            let masked: [u64; N] = std::array::from_fn(|j| words[idx[j]] & mask[j]);
            let candidate = probes.candidates[i];
            // A candidate that does not match, or no candidate in a bucket
            // that cannot tell, takes the full probe (rare at our load).
            let hit = if candidate != NO_CANDIDATE && equal(slot_at(candidate).1, &masked) {
                Some(candidate)
            } else {
                self.index
                    .find(probes.hashes[i], |pos| equal(slot_at(pos).1, &masked))
            };
            if let Some(pos) = hit {
                out[i] = slot_at(pos).0 as u32;
                found |= 1 << i;
                hits += 1;
            }
        }
        (found, hits)
    }
}

/// The per-packet state a batch lookup carries from one pass to the
/// next: each packet's hash in the subtable probing it (pass 1) and the
/// candidate rule its home bucket gave (pass 2). A packet is probed by
/// at most one subtable at a time, so one array serves every subtable of
/// a classifier's batch.
pub(crate) struct Probes {
    hashes: [u32; MAX_BURST],
    candidates: [u32; MAX_BURST],
    /// For a duplicate of pass 1, the packet whose answer it takes.
    dup_of: [u8; MAX_BURST],
}

impl Probes {
    #[inline(always)]
    pub(crate) fn new() -> Probes {
        Probes {
            hashes: [0; MAX_BURST],
            candidates: [NO_CANDIDATE; MAX_BURST],
            dup_of: [0; MAX_BURST],
        }
    }
}
