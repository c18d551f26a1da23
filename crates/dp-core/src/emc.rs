//! The exact-match cache (EMC): the first, cheapest level of the lookup
//! cascade, for the few thousand flows of a PMD's heaviest traffic.
//!
//! # How it works
//! A direct-mapped array of `size` entries (default 8192, a power of two),
//! each holding a full [`FlowKey`], its word map, its hash and a
//! [`FlowRef`]. A packet with hash `h` may live at two positions:
//! `h & mask` and `(h >> shift) & mask` where `shift` is the index width
//! (OVS's `EM_FLOW_HASH_SEGS = 2`). A hit needs an equal hash, an equal
//! key and a live flow: the flow table's generation check makes an entry
//! whose flow was deleted dead at once, without a sweep.
//!
//! # Comparing only the populated words
//! A word map (bit `i` = key word `i`) is a superset of a key's non-zero
//! words: extraction returns one for free ([`crate::flow::extract_mapped`],
//! exact for plain packets: ~7 of the [`crate::flow::FLOW_U64S`] words of
//! a UDP/IPv4 packet), and [`FlowKey::nonzero_word_map`] gives the exact
//! one. An entry keeps the map of its key. Both keys are complete (zero
//! outside their maps), so two keys are equal exactly when they agree on
//! the words of the union of their maps: outside it both are zero. The
//! lookup compares just those words, as OVS compares a miniflow's
//! populated words, and is right for any mix of exact and superset maps
//! (a caller without a map passes [`FlowKey::ALL_WORDS`]: the whole key).
//!
//! Inserts happen after a lower level hit, with probability
//! `1 / emc_insert_inv_prob` (OVS `emc-insert-inv-prob`, default 100):
//! 1 inserts always, 0 disables the EMC (no lookups, no inserts). A draw
//! is an internal xorshift32 PRNG seeded at construction, compared with
//! `u32::MAX / inv_prob` exactly as OVS's `emc_insert_min`. On insert, an
//! entry with the same key is updated; otherwise the victim is a dead
//! entry if any, else the one with the smaller hash (OVS `emc_insert`).
//!
//! # Invariants
//! - Entries are never trusted: a hit is re-verified against the key and
//!   the flow's liveness, so a stale or colliding entry is a miss.
//!
//! # Thread story
//! One EMC per PMD thread, used through `&mut`; lookups do not allocate.
//!
//! Memory: [`Emc::ENTRY_BYTES`] bytes per entry (the key dominates).

use crate::dpcls::prefetch::prefetch_addr;
use crate::flow::FlowKey;
use crate::flow::extract::{PLAIN_WORDS, PLAIN_WORDS_MAP};
use crate::flow_table::{FlowRef, FlowTable};
use zerocopy::FromZeros;

/// Default number of entries (OVS `EM_FLOW_HASH_ENTRIES`).
pub const EMC_DEFAULT_ENTRIES: usize = 8192;
/// Default insert inverse probability (OVS `DEFAULT_EM_FLOW_INSERT_INV_PROB`).
pub const EMC_DEFAULT_INSERT_INV_PROB: u32 = 100;

/// Hash, flow and map first: a lookup reads them before the key, and a
/// hash mismatch then touches one cache line only. All zeros is an empty
/// entry, so the array comes from zeroed memory (see [`Emc::new`]).
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C)]
struct EmcEntry {
    hash: u32,
    flow: CachedFlow,
    /// A superset of `key`'s non-zero words.
    map: u64,
    key: FlowKey,
}

/// An entry's flow: its slot index plus one (0: the entry is empty; the
/// flow table never uses slot `u32::MAX`, so this never wraps) and the
/// slot generation it was cached at.
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C)]
struct CachedFlow {
    slot_plus_one: u32,
    generation: u32,
}

impl CachedFlow {
    #[inline(always)]
    fn of(flow: FlowRef) -> CachedFlow {
        CachedFlow {
            slot_plus_one: flow.index().wrapping_add(1),
            generation: flow.generation(),
        }
    }

    /// The flow, `None` for an empty entry.
    #[inline(always)]
    fn get(self) -> Option<FlowRef> {
        (self.slot_plus_one != 0)
            .then(|| FlowRef::from_parts(self.slot_plus_one - 1, self.generation))
    }
}

/// Equality of two keys each zero outside its word map (see the module
/// docs): the words of `a_map | b_map`, or the whole key as one memory
/// compare (`bcmp`, faster than a word loop over every word) when the
/// union is every word.
///
/// The common case, both keys from the fixed-offset extraction (plain
/// UDP/TCP over IPv4, maps inside [`PLAIN_WORDS_MAP`]), compares its seven
/// words straight, without the loop over the map: words of that set
/// outside a map are zero in both keys, so comparing them too is exact.
/// Callgrind, DPDK bench `1flow`: 667 -> 652 instructions a packet.
#[inline(always)]
fn keys_equal(a: &FlowKey, a_map: u64, b: &FlowKey, b_map: u64) -> bool {
    let union = a_map | b_map;
    if union & !PLAIN_WORDS_MAP == 0 {
        let (a, b) = (a.words(), b.words());
        let mut diff = 0;
        for i in PLAIN_WORDS {
            diff |= a[i] ^ b[i];
        }
        return diff == 0;
    }
    let mut map = union & FlowKey::ALL_WORDS;
    if map == FlowKey::ALL_WORDS {
        return a.words() == b.words();
    }
    let (a, b) = (a.words(), b.words());
    while map != 0 {
        let i = map.trailing_zeros() as usize;
        if a[i] != b[i] {
            return false;
        }
        map &= map - 1;
    }
    true
}

/// A small xorshift32 PRNG: the caches' only source of randomness.
#[derive(Clone, Copy, Debug)]
pub struct XorShift32(u32);

impl XorShift32 {
    /// A generator from `seed` (0 is replaced: xorshift has no zero state).
    pub fn new(seed: u32) -> XorShift32 {
        XorShift32(if seed == 0 { 0x9e37_79b9 } else { seed })
    }
    /// The next value.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// The exact-match cache of one PMD thread; see the module documentation.
#[derive(Clone, Debug)]
pub struct Emc {
    entries: Box<[EmcEntry]>,
    mask: usize,
    shift: u32,
    insert_inv_prob: u32,
    /// OVS `emc_insert_min`: insert when a draw is `<=` this; 0 = never.
    insert_min: u32,
    rng: XorShift32,
}

impl Emc {
    /// Bytes per entry (key, word map, hash, flow reference).
    pub const ENTRY_BYTES: usize = size_of::<EmcEntry>();

    /// An EMC of `entries` entries (rounded up to a power of two, at least
    /// 2), inserting with probability `1 / insert_inv_prob`; `seed` seeds
    /// the insert draw.
    ///
    /// The entries come from zeroed memory (`calloc`: for an array this
    /// size, pages the kernel maps on first touch), not written one by
    /// one: an EMC the `auto` mode never uses holds no resident memory,
    /// and one it starts using faults its pages in a few at a time, as
    /// inserts touch them, instead of costing the PMD a 2.8 MB write.
    pub fn new(entries: usize, insert_inv_prob: u32, seed: u32) -> Emc {
        let entries = entries.max(2).next_power_of_two();
        let mut emc = Emc {
            entries: EmcEntry::new_vec_zeroed(entries)
                .unwrap_or_else(|_| panic!("no memory for an EMC of {entries} entries"))
                .into_boxed_slice(),
            mask: entries - 1,
            shift: entries.trailing_zeros(),
            insert_inv_prob: 0,
            insert_min: 0,
            rng: XorShift32::new(seed),
        };
        emc.set_insert_inv_prob(insert_inv_prob);
        emc
    }

    /// Number of entries.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes of the entry array.
    pub fn heap_bytes(&self) -> usize {
        self.entries.len() * Self::ENTRY_BYTES
    }

    /// The configured inverse insert probability.
    pub fn insert_inv_prob(&self) -> u32 {
        self.insert_inv_prob
    }

    /// Sets the inverse insert probability: 0 disables the EMC, 1 inserts
    /// on every lower-level hit, N inserts one time in N on average.
    pub fn set_insert_inv_prob(&mut self, insert_inv_prob: u32) {
        self.insert_inv_prob = insert_inv_prob;
        self.insert_min = u32::MAX.checked_div(insert_inv_prob).unwrap_or(0);
    }

    /// True when the EMC is on (lookups are worth doing).
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.insert_min != 0
    }

    #[inline]
    fn positions(&self, hash: u32) -> [usize; 2] {
        let h = hash as usize;
        [h & self.mask, (h >> self.shift) & self.mask]
    }

    /// Starts loading both entries a packet with `hash` may live in, so
    /// that a batch's EMC probes miss the cache together rather than one
    /// after another (with more flows than entries, most probes miss).
    #[inline(always)]
    pub fn prefetch(&self, hash: u32) {
        for pos in self.positions(hash) {
            prefetch_addr(self.entries.as_ptr().wrapping_add(pos));
        }
    }

    /// The live flow cached for `key` (with packet hash `hash`), comparing
    /// the whole key.
    #[inline]
    pub fn lookup<A>(&self, key: &FlowKey, hash: u32, flows: &FlowTable<A>) -> Option<FlowRef> {
        self.lookup_mapped(key, FlowKey::ALL_WORDS, hash, flows)
    }

    /// The live flow cached for `key`, whose non-zero words are all in
    /// `map` (as [`crate::flow::extract_mapped`] returns it).
    ///
    /// Always inlined: with a second caller (`Cascade::lookup_whole_run`)
    /// LLVM made it a call in stage 1's per-packet loop, and DPDK bench
    /// `100k` took ~34 instructions a packet more (callgrind).
    #[inline(always)]
    pub fn lookup_mapped<A>(
        &self,
        key: &FlowKey,
        map: u64,
        hash: u32,
        flows: &FlowTable<A>,
    ) -> Option<FlowRef> {
        debug_assert_eq!(key.nonzero_word_map() & !map, 0, "word map of {key:?}");
        for pos in self.positions(hash) {
            let entry = &self.entries[pos];
            if entry.hash != hash {
                continue;
            }
            let verified = entry
                .flow
                .get()
                .filter(|&flow| keys_equal(&entry.key, entry.map, key, map) && flows.is_live(flow));
            if verified.is_some() {
                return verified;
            }
        }
        None
    }

    /// Inserts with the configured probability (after a lower-level hit).
    /// True when it inserted.
    #[inline]
    pub fn probabilistic_insert<A>(
        &mut self,
        key: &FlowKey,
        hash: u32,
        flow: FlowRef,
        flows: &FlowTable<A>,
    ) -> bool {
        self.probabilistic_insert_mapped(key, None, hash, flow, flows)
    }

    /// [`Emc::probabilistic_insert`] for a key whose non-zero words are all
    /// in `map` (`None`: computed from the key).
    ///
    /// Always inlined, the insert itself never: the cascade calls this on
    /// every SMC and megaflow hit and the draw says no 99 times in 100, so
    /// the common case is the draw and a compare, not a call (as a call it
    /// was ~33 instructions a hit, ~30 of them its prologue and epilogue).
    #[inline(always)]
    pub fn probabilistic_insert_mapped<A>(
        &mut self,
        key: &FlowKey,
        map: Option<u64>,
        hash: u32,
        flow: FlowRef,
        flows: &FlowTable<A>,
    ) -> bool {
        if self.insert_min == 0 {
            return false;
        }
        // inv_prob 1 gives insert_min u32::MAX: every draw passes.
        if self.rng.next_u32() > self.insert_min {
            return false;
        }
        self.insert_mapped(key, map, hash, flow, flows);
        true
    }

    /// Inserts (or refreshes) the entry for `key` unconditionally.
    pub fn insert<A>(&mut self, key: &FlowKey, hash: u32, flow: FlowRef, flows: &FlowTable<A>) {
        self.insert_mapped(key, None, hash, flow, flows);
    }

    /// [`Emc::insert`] for a key whose non-zero words are all in `map`
    /// (`None`: computed from the key, an exact map).
    #[inline(never)]
    pub fn insert_mapped<A>(
        &mut self,
        key: &FlowKey,
        map: Option<u64>,
        hash: u32,
        flow: FlowRef,
        flows: &FlowTable<A>,
    ) {
        let map = map.unwrap_or_else(|| key.nonzero_word_map());
        debug_assert_eq!(key.nonzero_word_map() & !map, 0, "word map of {key:?}");
        let positions = self.positions(hash);
        let mut victim: Option<usize> = None;
        for pos in positions {
            let entry = &self.entries[pos];
            if entry.flow.slot_plus_one != 0
                && entry.hash == hash
                && keys_equal(&entry.key, entry.map, key, map)
            {
                self.entries[pos].flow = CachedFlow::of(flow);
                return;
            }
            let alive = |e: &EmcEntry| e.flow.get().is_some_and(|f| flows.is_live(f));
            victim = match victim {
                None => Some(pos),
                Some(v) => {
                    let current = &self.entries[v];
                    if (alive(current) && !alive(entry)) || entry.hash < current.hash {
                        Some(pos)
                    } else {
                        Some(v)
                    }
                }
            };
        }
        let pos = victim.expect("two positions");
        self.entries[pos] = EmcEntry {
            key: *key,
            map,
            hash,
            flow: CachedFlow::of(flow),
        };
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.entries.fill(EmcEntry::new_zeroed());
    }

    /// Entries holding a live flow.
    pub fn live_entries<A>(&self, flows: &FlowTable<A>) -> usize {
        self.entries
            .iter()
            .filter(|e| e.flow.get().is_some_and(|f| flows.is_live(f)))
            .count()
    }
}

impl Default for Emc {
    fn default() -> Self {
        Emc::new(
            EMC_DEFAULT_ENTRIES,
            EMC_DEFAULT_INSERT_INV_PROB,
            0x5eed_e3c1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::field_words;

    mod compare {
        use super::*;
        use proptest::prelude::*;

        /// A key with values in a few words (mostly the plain-packet
        /// words, sometimes any word), and a map naming at least its
        /// non-zero words (sometimes more).
        fn mapped_key() -> impl Strategy<Value = (FlowKey, u64)> {
            (
                prop::collection::vec((0usize..12, 0u64..3), 0..8),
                any::<u64>(),
                any::<bool>(),
            )
                .prop_map(|(words, extra, superset)| {
                    let mut key = FlowKey::ZERO;
                    for (which, value) in words {
                        // 0..7: a plain word; otherwise any word.
                        let i = PLAIN_WORDS
                            .get(which)
                            .copied()
                            .unwrap_or((which * 7 + value as usize) % crate::flow::FLOW_U64S);
                        key.words_mut()[i] = value;
                    }
                    let mut map = key.nonzero_word_map();
                    if superset {
                        map |= extra & PLAIN_WORDS_MAP;
                    }
                    (key, map)
                })
        }

        proptest! {
            /// Whichever way the maps fall (both inside the plain words,
            /// one outside, supersets), the mapped compare is key equality.
            #[test]
            fn keys_equal_is_key_equality((a, a_map) in mapped_key(), (b, b_map) in mapped_key()) {
                prop_assert_eq!(keys_equal(&a, a_map, &b, b_map), a == b);
                prop_assert!(keys_equal(&a, a_map, &a, a_map));
                let mut c = a;
                c.words_mut()[PLAIN_WORDS[6]] ^= 1;
                let c_map = a_map | PLAIN_WORDS_MAP;
                prop_assert!(!keys_equal(&a, a_map, &c, c_map));
            }
        }
    }

    fn table_with_flow() -> (FlowTable<u32>, FlowKey, FlowRef) {
        let mut table = FlowTable::default();
        let mut key = FlowKey::ZERO;
        key.in_port = 1;
        key.nw_src = [10, 0, 0, 1];
        let flow = table
            .insert(&key, &FlowKey::exact_mask(), None, 7, 0)
            .expect("insert");
        (table, key, flow)
    }

    #[test]
    fn inv_prob_zero_disables_and_one_always_inserts() {
        let (table, key, flow) = table_with_flow();
        let mut emc = Emc::new(64, 0, 1);
        assert!(!emc.is_enabled());
        for _ in 0..1000 {
            assert!(!emc.probabilistic_insert(&key, 5, flow, &table));
        }
        assert_eq!(emc.lookup(&key, 5, &table), None);

        emc.set_insert_inv_prob(1);
        assert!(emc.is_enabled());
        for i in 0..1000u32 {
            assert!(emc.probabilistic_insert(&key, i, flow, &table));
            assert_eq!(emc.lookup(&key, i, &table), Some(flow));
        }
    }

    #[test]
    fn inv_prob_n_inserts_about_one_in_n() {
        let (table, key, flow) = table_with_flow();
        let mut emc = Emc::new(64, 100, 12345);
        let inserted = (0..100_000)
            .filter(|_| emc.probabilistic_insert(&key, 9, flow, &table))
            .count();
        assert!((800..1200).contains(&inserted), "inserted {inserted}");
    }

    #[test]
    fn deleted_flow_never_hits_and_slot_reuse_does_not_alias() {
        let (mut table, key, flow) = table_with_flow();
        let mut emc = Emc::new(64, 1, 1);
        emc.insert(&key, 3, flow, &table);
        assert_eq!(emc.lookup(&key, 3, &table), Some(flow));
        let ufid = table.get(flow).expect("live").ufid();
        table.remove(ufid).expect("remove");
        assert_eq!(emc.lookup(&key, 3, &table), None);
        // A new flow reuses the slot: the old entry still must not hit.
        let mut other = key;
        other.nw_src = [10, 0, 0, 2];
        let new_flow = table
            .insert(&other, &FlowKey::exact_mask(), None, 8, 0)
            .expect("insert");
        assert_eq!(new_flow.index(), flow.index());
        assert_eq!(emc.lookup(&key, 3, &table), None);
    }

    #[test]
    fn key_and_hash_must_both_match() {
        let (table, key, flow) = table_with_flow();
        let mut emc = Emc::new(64, 1, 1);
        emc.insert(&key, 3, flow, &table);
        assert_eq!(emc.lookup(&key, 4, &table), None);
        let mut other = key;
        other.tp_src = 1;
        assert_eq!(emc.lookup(&other, 3, &table), None);
    }

    #[test]
    fn exact_and_superset_maps_agree() {
        let (table, key, flow) = table_with_flow();
        let exact = key.nonzero_word_map();
        let superset = exact | field_words!(tp_src, nd_target, vlans);
        let mut emc = Emc::new(64, 1, 1);
        // Inserted with an exact map, found with a superset, and back.
        emc.insert_mapped(&key, Some(exact), 3, flow, &table);
        assert_eq!(emc.lookup_mapped(&key, superset, 3, &table), Some(flow));
        assert_eq!(emc.lookup(&key, 3, &table), Some(flow));
        emc.clear();
        emc.insert_mapped(&key, Some(superset), 3, flow, &table);
        assert_eq!(emc.lookup_mapped(&key, exact, 3, &table), Some(flow));
        // A key that differs only in a word outside one of the maps.
        let mut other = key;
        other.nd_target = [1; 16];
        let other_map = other.nonzero_word_map();
        assert_eq!(emc.lookup_mapped(&other, other_map, 3, &table), None);
        emc.clear();
        emc.insert_mapped(&key, Some(exact), 3, flow, &table);
        assert_eq!(emc.lookup_mapped(&other, other_map, 3, &table), None);
        // And one that differs inside both maps.
        let mut third = key;
        third.nw_src = [10, 0, 0, 9];
        assert_eq!(emc.lookup_mapped(&third, exact, 3, &table), None);
        // A refresh with another map for the same key keeps one entry.
        emc.insert_mapped(&key, Some(superset), 3, flow, &table);
        assert_eq!(emc.live_entries(&table), 1);
    }

    #[test]
    fn two_ways_hold_two_colliding_keys() {
        let mut table: FlowTable<u32> = FlowTable::default();
        let mut a = FlowKey::ZERO;
        a.in_port = 1;
        let mut b = a;
        b.tp_dst = 2;
        let fa = table
            .insert(&a, &FlowKey::exact_mask(), None, 1, 0)
            .expect("a");
        let fb = table
            .insert(&b, &FlowKey::exact_mask(), None, 2, 0)
            .expect("b");
        let mut emc = Emc::new(64, 1, 1);
        // Same first position (low bits), different second (high bits).
        let (ha, hb) = (0x0000_0005u32, 0x0000_0045u32);
        emc.insert(&a, ha, fa, &table);
        emc.insert(&b, hb, fb, &table);
        assert_eq!(emc.lookup(&a, ha, &table), Some(fa));
        assert_eq!(emc.lookup(&b, hb, &table), Some(fb));
        assert_eq!(emc.capacity(), 64);
    }
}
