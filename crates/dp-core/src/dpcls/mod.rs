//! The megaflow classifier (OVS `dpcls`): tuple space search over the
//! installed megaflows of one input port.
//!
//! # What
//! A [`Dpcls`] maps (mask, masked key) rules to a `u32` value (the flow
//! table stores its flow index there) and answers, for a batch of packet
//! keys, which rule each packet matches. The flow table keeps one `Dpcls`
//! per `in_port`, as OVS does, so a port's packets never search another
//! port's masks.
//!
//! # How
//! One [`subtable`] per distinct mask. Each packet gets the first
//! subtable in rank order that holds a rule it matches. Each subtable
//! counts its hits; [`Dpcls::maybe_sort`] re-ranks the subtables by those
//! counts and resets them once per interval (default 1000 ms), so the
//! subtables that serve most traffic are searched first.
//!
//! A batch is looked up in three passes that run across all subtables,
//! so that the cache misses of all its packets overlap (the buckets and
//! rules of 100k megaflows are far bigger than L2):
//! 1. walk the ranks, and give each packet to the first subtable whose
//!    common-bits filter it passes (see [`subtable`]); hash it there and
//!    prefetch its home bucket. Each subtable tests one *lead* filter
//!    word first, the one that best tells its rules from the subtables
//!    ranked after it (chosen when the subtable is made and at each
//!    sort), so most packets that belong further down are turned away
//!    on one word;
//! 2. read every such bucket and prefetch the candidate rule;
//! 3. confirm each candidate by comparing the masked words. A packet its
//!    subtable does not confirm goes round again (passes 1 to 3) from
//!    the next rank.
//!
//! Probing one subtable after the other instead (all packets against the
//! best, then the misses against the next) serialised two memory round
//! trips per subtable that had a packet: about 15 subtables a batch in
//! the 20-mask skewed benchmark, where each subtable's few packets could
//! not hide the latency. The answer is the same: a packet reaches a
//! subtable in pass 1 only if every better-ranked subtable's filter, or
//! its probe, has ruled it out.
//!
//! Rules are not prioritised: megaflows installed by the upcall path do
//! not overlap for any packet (the translation unwildcards every field it
//! looked at), so any matching rule is the right one. When rules do
//! overlap the classifier returns one of the matching rules, the one in
//! the best-ranked subtable; which one may change after a re-sort.
//!
//! # Tuple-space explosion (CVE-2019-25076 class)
//! Every distinct mask costs every missing packet one more probe. The
//! number of subtables is capped ([`DpclsConfig::max_subtables`]); an
//! insert that would need one more is refused with
//! [`DpclsError::SubtableLimit`] and counted in
//! [`Dpcls::subtable_limit_hits`], so the upcall path can fall back
//! (e.g. to a wider mask or to executing the packet without installing).
//!
//! # Thread story
//! Owned by one PMD thread and used through `&mut`: no locks, no atomics.
//! Lookups do not allocate; inserts may grow the subtable storage.

pub mod hash;
pub mod index;
#[allow(
    unsafe_code,
    reason = "an aligned allocation and madvise for huge pages; see the module"
)]
pub(crate) mod large;
#[allow(
    unsafe_code,
    reason = "the prefetch intrinsic; see the module for why it is sound"
)]
pub mod prefetch;
pub mod subtable;

use crate::flow::FlowKey;
use crate::packet::MAX_BURST;
use index::HashIndex;
pub use subtable::{LookupImpl, SPECIALISED_WIDTHS};
use subtable::{Probes, Subtable};

/// Default subtable re-ranking interval (OVS DPCLS_OPTIMIZATION_INTERVAL).
pub const DEFAULT_SORT_INTERVAL_MS: u64 = 1000;
/// How many of the best-ranked subtables get a lead filter word chosen
/// at each sort (the rest test their first word first).
const LEAD_RANKS: usize = 32;
/// Default cap on subtables per classifier.
pub const DEFAULT_MAX_SUBTABLES: usize = 512;

/// Tunables of one classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DpclsConfig {
    /// Most distinct masks (subtables); inserts needing more are refused.
    pub max_subtables: usize,
    /// How often [`Dpcls::maybe_sort`] re-ranks subtables, in ms.
    pub sort_interval_ms: u64,
    /// Use the width-specialised lookup loops (off only for benchmarks).
    pub specialised_lookup: bool,
}

impl Default for DpclsConfig {
    fn default() -> Self {
        DpclsConfig {
            max_subtables: DEFAULT_MAX_SUBTABLES,
            sort_interval_ms: DEFAULT_SORT_INTERVAL_MS,
            specialised_lookup: true,
        }
    }
}

/// Where a rule lives: stable while the rule is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleHandle {
    pub subtable: u32,
    pub pos: u32,
}

/// Why an insert was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpclsError {
    /// A rule with the same mask and masked key exists; its value.
    Duplicate { existing: u32 },
    /// The mask is new and the classifier already has `limit` subtables.
    SubtableLimit { limit: usize },
}

impl std::fmt::Display for DpclsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DpclsError::Duplicate { existing } => {
                write!(f, "dpcls: a rule with this match exists (value {existing})")
            }
            DpclsError::SubtableLimit { limit } => {
                write!(
                    f,
                    "dpcls: subtable limit {limit} reached (new mask refused)"
                )
            }
        }
    }
}

impl std::error::Error for DpclsError {}

/// What [`Dpcls::find_subtable`] found: the subtable of a mask, if
/// there is one. Only good until the classifier changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundSubtable(Option<u32>);

/// The result of a batch lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchLookup {
    /// Bit `i` set: packet `i` hit, its value is in `out[i]`.
    pub found: u32,
    /// Sum over hit packets of the 1-based rank of the subtable that hit
    /// (OVS's `masked_lookup` figure behind "avg. subtable lookups per
    /// megaflow hit").
    pub subtable_lookups: u64,
}

/// The classifier of one input port; see the module documentation.
#[derive(Clone, Debug)]
pub struct Dpcls {
    config: DpclsConfig,
    subtables: Vec<Option<Subtable>>,
    free_ids: Vec<u32>,
    /// Subtable ids, best-ranked first.
    order: Vec<u32>,
    /// Subtable ids by `mask_hash` (confirmed by comparing the mask).
    by_mask: HashIndex,
    /// The subtable the last insert went to: flow setups come in runs
    /// of one mask, and comparing one mask is cheaper than hashing it.
    last_insert: Option<u32>,
    len: usize,
    next_sort_ms: Option<u64>,
    subtable_limit_hits: u64,
}

impl Default for Dpcls {
    fn default() -> Self {
        Self::new(DpclsConfig::default())
    }
}

impl Dpcls {
    /// An empty classifier.
    pub fn new(config: DpclsConfig) -> Dpcls {
        Dpcls {
            config,
            subtables: Vec::new(),
            free_ids: Vec::new(),
            order: Vec::new(),
            by_mask: HashIndex::new(),
            last_insert: None,
            len: 0,
            next_sort_ms: None,
            subtable_limit_hits: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DpclsConfig {
        &self.config
    }

    /// Changes the subtable cap; existing subtables stay.
    pub fn set_max_subtables(&mut self, max_subtables: usize) {
        self.config.max_subtables = max_subtables;
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of subtables, i.e. distinct masks (OVS "masks: total").
    pub fn subtable_count(&self) -> usize {
        self.order.len()
    }

    /// Inserts refused because the subtable cap was reached.
    pub fn subtable_limit_hits(&self) -> u64 {
        self.subtable_limit_hits
    }

    fn subtable(&self, id: u32) -> Option<&Subtable> {
        self.subtables.get(id as usize)?.as_ref()
    }

    /// Adds the rule `key & mask → value`.
    ///
    /// `key` need not be pre-masked. Errors: a rule with the same match
    /// exists ([`DpclsError::Duplicate`]), or the mask is new and the
    /// subtable cap is reached ([`DpclsError::SubtableLimit`]).
    pub fn insert(
        &mut self,
        key: &FlowKey,
        mask: &FlowKey,
        value: u32,
    ) -> Result<RuleHandle, DpclsError> {
        let found = self.find_subtable(mask);
        self.insert_found(found, key, mask, value)
    }

    /// The first half of [`Dpcls::insert`]: finds the subtable of `mask`
    /// and changes nothing, so that a caller can check something else
    /// before committing (the flow table probes the flow's UFID in
    /// between, its cache miss overlapping this lookup) and then call
    /// [`Dpcls::insert_found`] with the same `mask`, or drop the answer.
    #[inline]
    pub fn find_subtable(&self, mask: &FlowKey) -> FoundSubtable {
        FoundSubtable(self.subtable_id(mask))
    }

    /// The second half of [`Dpcls::insert`], given what
    /// [`Dpcls::find_subtable`] said for `mask` with no change to the
    /// classifier in between.
    pub fn insert_found(
        &mut self,
        found: FoundSubtable,
        key: &FlowKey,
        mask: &FlowKey,
        value: u32,
    ) -> Result<RuleHandle, DpclsError> {
        debug_assert_eq!(found.0, self.subtable_id(mask), "stale find_subtable");
        let id = match found.0 {
            Some(id) => id,
            None => {
                if self.order.len() >= self.config.max_subtables {
                    self.subtable_limit_hits += 1;
                    return Err(DpclsError::SubtableLimit {
                        limit: self.config.max_subtables,
                    });
                }
                let subtable = Subtable::new(mask, self.config.specialised_lookup);
                let id = match self.free_ids.pop() {
                    Some(id) => {
                        self.subtables[id as usize] = Some(subtable);
                        id
                    }
                    None => {
                        self.subtables.push(Some(subtable));
                        u32::try_from(self.subtables.len() - 1).expect("< 2^32 subtables")
                    }
                };
                self.by_mask.insert(mask_hash(mask), id);
                // A new mask goes last: it has no hits yet (OVS inserts new
                // subtables at priority 0).
                self.order.push(id);
                id
            }
        };
        self.last_insert = Some(id);
        let subtable = self.subtables[id as usize]
            .as_mut()
            .expect("subtable just found or made");
        match subtable.insert(key, value) {
            Ok(pos) => {
                self.len += 1;
                if subtable.len() == 1 {
                    // A new subtable's lead word, until the next sort
                    // picks one by traffic: the word its first rule best
                    // tells apart from every other subtable's filter.
                    // (A walk over the subtables, once per new mask.)
                    let subtable = self.subtable(id).expect("just inserted");
                    let lead = self.lead_word(subtable, &self.order, |_| 1);
                    if let Some(subtable) = self.subtables[id as usize].as_mut() {
                        subtable.set_lead(lead);
                    }
                }
                Ok(RuleHandle { subtable: id, pos })
            }
            Err(pos) => Err(DpclsError::Duplicate {
                existing: subtable.value(pos).expect("found rule is live"),
            }),
        }
    }

    /// The id of the subtable for exactly `mask`, if there is one.
    fn subtable_id(&self, mask: &FlowKey) -> Option<u32> {
        let is_mask = |id: u32| {
            self.subtable(id)
                .is_some_and(|s| s.mask().words() == mask.words())
        };
        if let Some(id) = self.last_insert.filter(|&id| is_mask(id)) {
            return Some(id);
        }
        self.by_mask.find(mask_hash(mask), is_mask)
    }

    /// Removes a rule, returning its value; `None` when the handle names no
    /// live rule. A subtable left empty is destroyed.
    pub fn remove(&mut self, handle: RuleHandle) -> Option<u32> {
        let subtable = self.subtables.get_mut(handle.subtable as usize)?.as_mut()?;
        let value = subtable.remove(handle.pos)?;
        self.len -= 1;
        if subtable.len() == 0 {
            let removed = self
                .by_mask
                .remove(mask_hash(subtable.mask()), handle.subtable);
            debug_assert!(removed, "live subtable is indexed");
            self.subtables[handle.subtable as usize] = None;
            self.free_ids.push(handle.subtable);
            self.order.retain(|&id| id != handle.subtable);
        }
        Some(value)
    }

    /// The rule with exactly this match (mask and `key & mask`).
    pub fn find_exact(&self, key: &FlowKey, mask: &FlowKey) -> Option<(RuleHandle, u32)> {
        let id = self.subtable_id(mask)?;
        let subtable = self.subtable(id)?;
        let pos = subtable.find(key)?;
        Some((RuleHandle { subtable: id, pos }, subtable.value(pos)?))
    }

    /// The value of a live rule.
    pub fn value(&self, handle: RuleHandle) -> Option<u32> {
        self.subtable(handle.subtable)?.value(handle.pos)
    }

    /// The rule's match as (masked key, mask).
    pub fn rule_match(&self, handle: RuleHandle) -> Option<(FlowKey, FlowKey)> {
        let subtable = self.subtable(handle.subtable)?;
        subtable.value(handle.pos)?;
        Some((subtable.rule_key(handle.pos), *subtable.mask()))
    }

    /// True when `key` matches the live rule `handle`.
    #[inline]
    pub fn rule_matches(&self, handle: RuleHandle, key: &FlowKey) -> bool {
        self.subtable(handle.subtable)
            .is_some_and(|s| s.rule_matches(handle.pos, key))
    }

    /// Starts loading the rule `handle` (a hint: any handle is safe).
    #[inline]
    pub fn prefetch_rule(&self, handle: RuleHandle) {
        if let Some(subtable) = self.subtable(handle.subtable) {
            subtable.prefetch_rule(handle.pos);
        }
    }

    /// Every rule: (handle, value), subtable by subtable.
    pub fn rules(&self) -> impl Iterator<Item = (RuleHandle, u32)> + '_ {
        self.order.iter().flat_map(move |&id| {
            self.subtable(id).into_iter().flat_map(move |s| {
                s.rules()
                    .map(move |(pos, v)| (RuleHandle { subtable: id, pos }, v))
            })
        })
    }

    /// Looks up the packets `keys[i]` with bit `i` of `active` set: each
    /// gets the first subtable, in rank order, holding a rule it matches.
    /// Hits are written to `out[i]`. Does not allocate.
    ///
    /// The subtables' passes are interleaved (see the module docs): pass 1
    /// walks the ranks and gives each packet to the first subtable whose
    /// common-bits filter it passes, hashing it and prefetching its
    /// bucket there; pass 2 reads every such bucket and prefetches the
    /// candidate rules; pass 3 confirms. A packet its subtable does not
    /// confirm goes round again from the next rank.
    pub fn lookup_batch(
        &mut self,
        keys: &[FlowKey],
        active: u32,
        out: &mut [u32; MAX_BURST],
    ) -> BatchLookup {
        debug_assert!(keys.len() <= MAX_BURST);
        debug_assert!(keys.len() == MAX_BURST || active >> keys.len() == 0);
        // One subtable (one mask: the common case of a port whose flows
        // come from one rule shape): its three passes back to back, without
        // the rank bookkeeping, which has nothing to interleave (a packet
        // it does not confirm has no next rank). Same answers and counts:
        // every hit is at rank 1.
        if let [id] = self.order[..] {
            let Some(subtable) = self.subtables[id as usize].as_mut() else {
                return BatchLookup::default();
            };
            let mut probes = Probes::new();
            // Its filter could spare no probe (see subtable).
            let (probed, dups) = subtable.probe_start(keys, active, false, &mut probes);
            let to_confirm = subtable.probe_candidates(probed & !dups, &mut probes);
            let (found, hits) = subtable.probe_confirm(keys, to_confirm, dups, &probes, out);
            subtable.hits += u64::from(hits);
            return BatchLookup {
                found,
                subtable_lookups: u64::from(hits),
            };
        }
        // With several subtables, the filters spare probes.
        let filter = true;
        let (order, subtables) = (&self.order, &mut self.subtables);
        let mut probes = Probes::new();
        // (rank, packets, duplicates among them) a subtable took in pass
        // 1 of this round, in rank order; each takes at least one packet,
        // so at most 32.
        let mut claims = [(0u32, 0u32, 0u32); MAX_BURST];
        // (rank, packets) to try from that rank on in the next round.
        let mut retries = [(0u32, 0u32); MAX_BURST];
        let mut n_retries = 0;
        let mut found = 0u32;
        let mut subtable_lookups = 0u64;
        // Round 1: every packet from the best rank.
        let mut waiting = active;
        let mut rank = 0u32;
        let ranks = u32::try_from(order.len()).expect("subtables are capped far below 2^32");
        loop {
            // Pass 1.
            let mut n_claims = 0;
            let mut next_retry = 0;
            while rank < ranks {
                while next_retry < n_retries && retries[next_retry].0 == rank {
                    waiting |= retries[next_retry].1;
                    next_retry += 1;
                }
                if waiting == 0 {
                    // Skip the ranks no packet waits for.
                    match retries[..n_retries].get(next_retry) {
                        Some(&(at, _)) => rank = at,
                        None => break,
                    }
                    continue;
                }
                if let Some(subtable) = subtables[order[rank as usize] as usize].as_ref() {
                    let (probed, dups) = subtable.probe_start(keys, waiting, filter, &mut probes);
                    if probed != 0 {
                        claims[n_claims] = (rank, probed, dups);
                        n_claims += 1;
                        waiting &= !probed;
                    }
                }
                rank += 1;
            }
            // Pass 2: each claim's buckets were prefetched in pass 1.
            let mut to_confirm = [0u32; MAX_BURST];
            for (&(rank, probed, dups), to_confirm) in
                claims[..n_claims].iter().zip(&mut to_confirm)
            {
                if let Some(subtable) = subtables[order[rank as usize] as usize].as_ref() {
                    *to_confirm = subtable.probe_candidates(probed & !dups, &mut probes);
                }
            }
            // Pass 3.
            n_retries = 0;
            for (&(rank, probed, dups), &to_confirm) in claims[..n_claims].iter().zip(&to_confirm) {
                let Some(subtable) = subtables[order[rank as usize] as usize].as_mut() else {
                    continue;
                };
                let (hit, hits) = subtable.probe_confirm(keys, to_confirm, dups, &probes, out);
                let hits = u64::from(hits);
                subtable.hits += hits;
                subtable_lookups += hits * (u64::from(rank) + 1);
                found |= hit;
                if probed & !hit != 0 {
                    retries[n_retries] = (rank + 1, probed & !hit);
                    n_retries += 1;
                }
            }
            // Packets still waiting passed no remaining filter: misses.
            if n_retries == 0 {
                break;
            }
            waiting = 0;
            rank = retries[0].0;
        }
        BatchLookup {
            found,
            subtable_lookups,
        }
    }

    /// Looks up one key for a run of `n` packets that all carry it
    /// (`n >= 1`): what [`Dpcls::lookup_batch`] of the `n` keys gives
    /// each of them, the rule's value and its subtable's rank (1 for the
    /// first), with that subtable credited `n` hits as that call would.
    pub fn lookup_run(&mut self, key: &FlowKey, n: u32) -> Option<(u32, u32)> {
        // One key has nothing to overlap: each subtable's index is asked
        // straight (`find`: the rule holding exactly `key & mask`, which
        // is the rule it matches there), without the batch passes'
        // set-up. Same first rank, same value.
        let (order, subtables) = (&self.order, &mut self.subtables);
        for (rank, &id) in order.iter().enumerate() {
            let Some(subtable) = subtables[id as usize].as_mut() else {
                continue;
            };
            if let Some(value) = subtable.find(key).and_then(|pos| subtable.value(pos)) {
                subtable.hits += u64::from(n);
                return Some((value, rank as u32 + 1));
            }
        }
        None
    }

    /// Looks up one key.
    pub fn lookup(&mut self, key: &FlowKey) -> Option<u32> {
        let mut out = [0u32; MAX_BURST];
        let res = self.lookup_batch(std::slice::from_ref(key), 1, &mut out);
        (res.found & 1 != 0).then_some(out[0])
    }

    /// Re-ranks the subtables when the sort interval has elapsed since the
    /// last sort (the first call only starts the clock). `now_ms` is the
    /// caller's monotonic time in milliseconds. True when it sorted.
    pub fn maybe_sort(&mut self, now_ms: u64) -> bool {
        match self.next_sort_ms {
            None => {
                self.next_sort_ms = Some(now_ms.saturating_add(self.config.sort_interval_ms));
                false
            }
            Some(deadline) if now_ms >= deadline => {
                self.sort();
                self.next_sort_ms = Some(now_ms.saturating_add(self.config.sort_interval_ms));
                true
            }
            Some(_) => false,
        }
    }

    /// Re-ranks the subtables by hits since the last sort (most first,
    /// ties keep their order), picks their lead filter words
    /// (`Dpcls::choose_lead_words`) and resets the hit counts.
    pub fn sort(&mut self) {
        let subtables = &self.subtables;
        let hits = |id: &u32| {
            subtables[*id as usize]
                .as_ref()
                .map_or(0, |s: &Subtable| s.hits)
        };
        self.order.sort_by_key(|id| std::cmp::Reverse(hits(id)));
        self.choose_lead_words();
        for subtable in self.subtables.iter_mut().flatten() {
            subtable.hits = 0;
        }
    }

    /// For each of the best [`LEAD_RANKS`] subtables, the filter word
    /// pass 1 tests first (see `Subtable::start_fixed`): the packets a
    /// subtable sees in pass 1 are mostly those of the subtables ranked
    /// after it, so the word chosen is the one on which the filters of
    /// the most of them (weighted by their hits since the last sort, plus
    /// one) hold a different value in a bit both filters have. Such a
    /// packet is then rejected on one word. Any choice is sound (the
    /// whole filter is tested after the lead word passes); a poor one
    /// only costs instructions. Runs once per sort interval: at most
    /// `LEAD_RANKS`² subtable pairs times their widths.
    fn choose_lead_words(&mut self) {
        let top = &self.order[..self.order.len().min(LEAD_RANKS)];
        let mut leads = [0usize; LEAD_RANKS];
        for (rank, &id) in top.iter().enumerate() {
            if let Some(subtable) = self.subtable(id) {
                leads[rank] = self.lead_word(subtable, &top[rank + 1..], |later| {
                    later.hits.saturating_add(1)
                });
            }
        }
        for (rank, &id) in top.iter().enumerate() {
            if let Some(subtable) = self.subtables[id as usize].as_mut() {
                subtable.set_lead(leads[rank]);
            }
        }
    }

    /// The position of `subtable`'s filter word on which the filters of
    /// the most of `others` (each counted `weight` times) hold a
    /// different value in a bit both filters have; the first word when
    /// none does.
    fn lead_word(
        &self,
        subtable: &Subtable,
        others: &[u32],
        weight: impl Fn(&Subtable) -> u64,
    ) -> usize {
        let (mut lead, mut best_score) = (0, 0u64);
        for (j, (word, mask, val)) in subtable.filter_words().enumerate() {
            if mask == 0 {
                continue;
            }
            let score: u64 = others
                .iter()
                .filter_map(|&other| self.subtable(other))
                .filter(|other| {
                    other
                        .filter_on_word(word)
                        .is_some_and(|(m, v)| mask & m & (val ^ v) != 0)
                })
                .map(&weight)
                .fold(0u64, u64::saturating_add);
            if score > best_score {
                best_score = score;
                lead = j;
            }
        }
        lead
    }

    /// True when some subtable's common-bits filter lets `key` through
    /// (for tests: an insert narrows the filter, and a refused insert
    /// must not).
    #[cfg(test)]
    pub(crate) fn any_filter_admits(&self, key: &FlowKey) -> bool {
        self.subtables
            .iter()
            .flatten()
            .any(|s| s.key_passes_filter(key))
    }

    /// The subtables best-ranked first, for `dpif-netdev/subtable-lookup`
    /// style introspection.
    pub fn subtable_info(&self) -> impl Iterator<Item = SubtableInfo> + '_ {
        self.order.iter().filter_map(move |&id| {
            let s = self.subtable(id)?;
            Some(SubtableInfo {
                id,
                mask: *s.mask(),
                rules: s.len(),
                width_words: s.width(),
                hits_since_sort: s.hits,
                lookup_impl: s.lookup_impl(),
            })
        })
    }

    /// Heap bytes held by the classifier (subtables, rule storage, maps).
    pub fn heap_bytes(&self) -> usize {
        self.subtables.capacity() * size_of::<Option<Subtable>>()
            + self
                .subtables
                .iter()
                .flatten()
                .map(Subtable::heap_bytes)
                .sum::<usize>()
            + self.order.capacity() * 4
            + self.free_ids.capacity() * 4
            + self.by_mask.heap_bytes()
    }
}

/// The hash of a whole mask, for finding its subtable.
fn mask_hash(mask: &FlowKey) -> u32 {
    hash::nh_hash(mask.words(), hash::process_keys())
}

/// A subtable as seen from outside.
#[derive(Clone, Debug)]
pub struct SubtableInfo {
    pub id: u32,
    pub mask: FlowKey,
    pub rules: usize,
    pub width_words: usize,
    pub hits_since_sort: u64,
    pub lookup_impl: LookupImpl,
}

#[cfg(test)]
mod tests;
