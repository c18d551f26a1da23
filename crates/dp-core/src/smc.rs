//! The signature-match cache (SMC): an optional level between the EMC and
//! the classifier (`smc-enable`). OVS has it off by default; here the
//! default is `auto`, used while the classifier needs it (the cascade
//! decides: see [`crate::cascade`]).
//!
//! # How it works
//! Buckets of [`SMC_WAYS`] = 4 entries, each a 16-bit signature and a
//! flow-table slot index (OVS `smc_bucket`). A packet with hash `h` looks
//! in bucket `h & mask` for signature `h >> 16`. A signature hit is only
//! a hint: the flow at that index must be live and its megaflow must
//! match the packet's key (OVS `dpcls_rule_matches_key`), so a colliding
//! signature, a deleted flow or a slot reused by another flow can only
//! give a miss or a flow that truly matches the packet. Memory is 32 bytes
//! per bucket (24 used, aligned so that a bucket never straddles two cache
//! lines), 8 bytes per entry, against the EMC's full key per entry, which
//! is why it covers far more flows. The buckets are one [`LargeTable`]: at
//! the default million entries (8 MiB) on 2 MiB pages, a lookup's bucket
//! read does not also miss the TLB, as it would on 2,048 small pages.
//!
//! A batch is looked up in passes that overlap its cache misses (bucket,
//! then flow slot, then rule: [`Smc::lookup_batch`]).
//!
//! Inserts after a classifier hit: an entry with the same signature is
//! updated, else a free way is used, else a pseudo-random way is replaced
//! (internal xorshift32 PRNG seeded at construction).
//!
//! # Thread story
//! One SMC per PMD thread, used through `&mut`; lookups do not allocate.
//! Disabled, it holds no memory.

use zerocopy::FromZeros;

use crate::dpcls::large::LargeTable;
use crate::dpcls::prefetch::prefetch_addr;
use crate::emc::XorShift32;
use crate::flow::FlowKey;
use crate::flow_table::{FlowRef, FlowTable};
use crate::packet::MAX_BURST;

/// Ways per bucket (OVS `SMC_ENTRY_PER_BUCKET`).
pub const SMC_WAYS: usize = 4;
/// Default number of entries when enabled (OVS `SMC_ENTRIES` = 1 << 20).
pub const SMC_DEFAULT_ENTRIES: usize = 1 << 20;

/// A free way's `flows` entry (all-zero buckets are empty ones).
const FREE: u32 = 0;
/// A slot index no flow has (the flow table never uses `u32::MAX`).
const NO_SLOT: u32 = u32::MAX;

/// One bucket: way `w` holds signature `sigs[w]` and flow-table slot
/// `flows[w] - 1`, or nothing when `flows[w]` is [`FREE`].
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C, align(32))]
struct SmcBucket {
    sigs: [u16; SMC_WAYS],
    flows: [u32; SMC_WAYS],
}

impl SmcBucket {
    /// The slot of way `way`'s flow ([`NO_SLOT`] when free).
    #[inline(always)]
    fn slot(&self, way: usize) -> u32 {
        self.flows[way].wrapping_sub(1)
    }
}

/// The signature-match cache of one PMD thread; see the module docs.
#[derive(Clone, Debug)]
pub struct Smc {
    buckets: LargeTable<SmcBucket>,
    mask: usize,
    rng: XorShift32,
}

impl Smc {
    /// Bytes per entry.
    pub const ENTRY_BYTES: usize = size_of::<SmcBucket>() / SMC_WAYS;

    /// A disabled SMC (no memory).
    pub fn disabled() -> Smc {
        Smc {
            buckets: LargeTable::zeroed(0),
            mask: 0,
            rng: XorShift32::new(1),
        }
    }

    /// An enabled SMC of about `entries` entries (rounded up to a power of
    /// two number of buckets).
    pub fn new(entries: usize, seed: u32) -> Smc {
        let buckets = (entries / SMC_WAYS).max(1).next_power_of_two();
        Smc {
            buckets: LargeTable::zeroed(buckets),
            mask: buckets - 1,
            rng: XorShift32::new(seed),
        }
    }

    #[inline]
    pub fn is_enabled(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// Number of entries (0 when disabled).
    pub fn capacity(&self) -> usize {
        self.buckets.len() * SMC_WAYS
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.heap_bytes()
    }

    /// The live flow whose megaflow matches `key`, found through the
    /// signature of `hash`.
    #[inline]
    pub fn lookup<A>(&self, key: &FlowKey, hash: u32, flows: &FlowTable<A>) -> Option<FlowRef> {
        let bucket = self.buckets.get(hash as usize & self.mask)?;
        let sig = (hash >> 16) as u16;
        for way in 0..SMC_WAYS {
            if bucket.sigs[way] != sig || bucket.flows[way] == FREE {
                continue;
            }
            let verified = flows.matching_flow_at(bucket.slot(way), key);
            if verified.is_some() {
                return verified;
            }
        }
        None
    }

    /// [`Smc::lookup`] for the packets of `pending` (`keys[i]`, hash
    /// `hashes[i]`), writing `out[i]` for each hit; returns the hits.
    ///
    /// Four passes over the batch, so that its cache misses overlap (at
    /// 100k flows each step misses: the bucket, the flow's slot, its
    /// rule): prefetch every bucket; read them, take each packet's first
    /// way with its signature and prefetch that flow's slot; prefetch the
    /// flows' rules; confirm ([`FlowTable::matching_flows_at`]). A packet whose first candidate does not
    /// confirm (another flow with the same signature) takes
    /// [`Smc::lookup`] over every way, so the answers are the same.
    pub fn lookup_batch<A>(
        &self,
        keys: &[FlowKey],
        hashes: &[u32],
        pending: u32,
        flows: &FlowTable<A>,
        out: &mut [Option<FlowRef>; MAX_BURST],
    ) -> u32 {
        if !self.is_enabled() {
            return 0;
        }
        let hashes = &hashes[..keys.len().min(hashes.len())];
        let mut bits = pending;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(&hash) = hashes.get(i) {
                prefetch_addr(
                    self.buckets
                        .as_ptr()
                        .wrapping_add(hash as usize & self.mask),
                );
            }
        }
        let mut slots = [NO_SLOT; MAX_BURST];
        let mut todo = 0u32;
        let mut bits = pending;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            let Some(&hash) = hashes.get(i) else {
                continue;
            };
            let bucket = &self.buckets[hash as usize & self.mask];
            let sig = (hash >> 16) as u16;
            if let Some(way) =
                (0..SMC_WAYS).find(|&w| bucket.sigs[w] == sig && bucket.flows[w] != FREE)
            {
                slots[i] = bucket.slot(way);
                flows.prefetch_slot(slots[i]);
                todo |= 1 << i;
            }
        }
        if todo == 0 {
            return 0;
        }
        let found = flows.matching_flows_at(keys, &slots, todo, out);
        // Candidates that did not confirm: the other ways.
        let mut found_all = found;
        let mut bits = todo & !found;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (MAX_BURST - 1);
            bits &= bits - 1;
            if let Some(flow) = self.lookup(&keys[i], hashes[i], flows) {
                out[i] = Some(flow);
                found_all |= 1 << i;
            }
        }
        found_all
    }

    /// Remembers that packets with `hash` hit `flow`.
    pub fn insert(&mut self, hash: u32, flow: FlowRef) {
        if !self.is_enabled() {
            return;
        }
        let sig = (hash >> 16) as u16;
        let bucket = &mut self.buckets[hash as usize & self.mask];
        let way = (0..SMC_WAYS)
            .find(|&w| bucket.flows[w] != FREE && bucket.sigs[w] == sig)
            .or_else(|| (0..SMC_WAYS).find(|&w| bucket.flows[w] == FREE))
            .unwrap_or_else(|| self.rng.next_u32() as usize % SMC_WAYS);
        bucket.sigs[way] = sig;
        // Slot indices stop below u32::MAX (the flow table's invariant),
        // so index + 1 never wraps to FREE.
        bucket.flows[way] = flow.index().wrapping_add(1);
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.buckets.fill(SmcBucket::new_zeroed());
    }
}

impl Default for Smc {
    fn default() -> Self {
        Smc::disabled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_hit_is_verified_against_the_megaflow() {
        let mut table: FlowTable<u8> = FlowTable::default();
        let mut mask = FlowKey::ZERO;
        mask.nw_dst = [255, 255, 255, 0];
        let mut key = FlowKey::ZERO;
        key.in_port = 3;
        key.nw_dst = [10, 1, 2, 0];
        let flow = table.insert(&key, &mask, None, 1, 0).expect("insert");
        let mut smc = Smc::new(1024, 7);
        smc.insert(0xabcd_0011, flow);
        let mut packet = key;
        packet.nw_dst = [10, 1, 2, 99];
        assert_eq!(smc.lookup(&packet, 0xabcd_0011, &table), Some(flow));
        // Same signature and bucket, key outside the megaflow: a miss.
        packet.nw_dst = [10, 1, 3, 99];
        assert_eq!(smc.lookup(&packet, 0xabcd_0011, &table), None);
        // Deleted flow: a miss.
        packet.nw_dst = [10, 1, 2, 99];
        table
            .remove(table.get(flow).expect("live").ufid())
            .expect("rm");
        assert_eq!(smc.lookup(&packet, 0xabcd_0011, &table), None);
    }

    /// Free ways are all-zero (the buckets come zeroed from a
    /// `LargeTable`), so a flow in slot 0 must still be found, and a
    /// cleared SMC must find nothing.
    #[test]
    fn slot_zero_is_an_entry_and_clear_frees_every_way() {
        let mut table: FlowTable<u8> = FlowTable::default();
        let mut key = FlowKey::ZERO;
        key.in_port = 1;
        let flow = table
            .insert(&key, &FlowKey::exact_mask(), None, 0, 0)
            .expect("insert");
        assert_eq!(flow.index(), 0);
        let mut smc = Smc::new(64, 3);
        let hashes: [u32; 4] = [0x0001_0005, 0x0002_0005, 0x0003_0005, 0x0004_0005];
        for &hash in &hashes {
            assert_eq!(smc.lookup(&key, hash, &table), None, "empty SMC");
            smc.insert(hash, flow);
            assert_eq!(smc.lookup(&key, hash, &table), Some(flow));
        }
        let mut out = [None; MAX_BURST];
        let keys = [key; 4];
        assert_eq!(
            smc.lookup_batch(&keys, &hashes, 0b1111, &table, &mut out),
            0b1111
        );
        assert!(out[..4].iter().all(|&f| f == Some(flow)));
        smc.clear();
        for &hash in &hashes {
            assert_eq!(smc.lookup(&key, hash, &table), None, "cleared SMC");
        }
        assert_eq!(
            smc.lookup_batch(&keys, &hashes, 0b1111, &table, &mut out),
            0
        );
    }

    #[test]
    fn disabled_smc_holds_nothing() {
        let table: FlowTable<u8> = FlowTable::default();
        let mut smc = Smc::disabled();
        assert!(!smc.is_enabled());
        assert_eq!(smc.heap_bytes(), 0);
        let mut t2: FlowTable<u8> = FlowTable::default();
        let f = t2
            .insert(&FlowKey::ZERO, &FlowKey::exact_mask(), None, 0, 0)
            .expect("insert");
        smc.insert(1, f);
        assert_eq!(smc.lookup(&FlowKey::ZERO, 1, &table), None);
        assert_eq!(Smc::ENTRY_BYTES, 8);
    }
}
