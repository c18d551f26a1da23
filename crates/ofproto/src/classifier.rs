//! A priority classifier for OpenFlow rules that reports which bits of
//! the packet it examined, so the megaflow built from a lookup is as wide
//! as it can soundly be (OVS `lib/classifier.c`, reduced).
//!
//! # How it works
//! Tuple space search: rules with the same mask share a *subtable*, a
//! hash map from masked flow to the rules (highest priority first).
//! Subtables are visited in decreasing order of their best priority, and
//! the walk stops once the best match found so far outranks every
//! remaining subtable; stopping for priority reasons examines no packet
//! bits, so it adds nothing to the wildcards.
//!
//! Two techniques keep the wildcards narrow:
//! - **Staged lookup.** A subtable also indexes its rules' partial keys
//!   over cumulative stages (metadata, +L2, +L3, +L4). A packet that
//!   misses at an early stage only needs the bits of the stages examined
//!   so far, so an L2 miss does not pin the transport ports.
//! - **Prefix tracking.** For `nw_src`, `nw_dst`, `ipv6_src` and
//!   `ipv6_dst`, a binary trie holds every rule's prefix. Before a
//!   subtable that matches the field with prefix length `P` is searched,
//!   the trie says whether any rule prefix of length `P` covers the
//!   packet; if none does, the subtable is skipped and only the bits the
//!   trie walk examined are unwildcarded. This is what lets a /24 rule
//!   live beside a /32 rule without every megaflow becoming a /32.
//!
//! # Invariants
//! - Soundness: for the `wc` a lookup returns, every flow that agrees
//!   with the looked-up flow on the bits of `wc` gets the same result.
//!   `tests/megaflow.rs` checks it against a linear scan.
//! - At most one rule per (match, priority).
//!
//! # Threads
//! A classifier is a plain value: built and changed by the control
//! thread, then published inside an immutable snapshot and read
//! concurrently through `&self`. Tries keep nodes of deleted prefixes
//! (harmless: they only make a walk examine a few more bits) until the
//! next rebuild.

use crate::field::{Field, OF_U64S, OfFlow, cidr_len, prefix_mask};
use crate::r#match::Match;
use dp_core::flow::FlowKey;
use dp_core::flow::key::{ETH_TYPE_IPV4, ETH_TYPE_IPV6, FLOW_MAX_VLAN_HEADERS, VlanHeader};
use std::collections::HashMap;

// The subtables' maps are keyed by *compact* masked flows: only the
// words the (stage) mask has bits in, in word order. A lookup gathers
// `flow & mask` for those words into a stack buffer and hashes and
// compares just them, instead of materialising a whole masked `OfFlow`
// and hashing all of its words (the masked copy and its derived `Hash`
// were ~1,900 instructions per translation, DPDK bench `setup-ofproto`).
// Within one map every key has the same word list, so two compact keys
// are equal exactly when the masked flows are.
//
// Their keys are rules' matches, which only the bridge's administrator
// writes, so a fast unkeyed word hash is safe here (packets only look
// up, never insert); std's SipHash cost ~6,500 instructions.
use dp_core::dpcls::index::WordHashBuilder;

/// The nonzero words of a mask: (word index, mask word).
type MaskWords = Box<[(u8, u64)]>;

/// A map keyed by compact masked flows (see above).
type CompactMap<V> = HashMap<Box<[u64]>, V, WordHashBuilder>;

fn mask_words(mask: &OfFlow) -> MaskWords {
    (0..OF_U64S)
        .filter_map(|i| {
            let m = mask.word(i);
            // OF_U64S is far below 256 (checked below).
            (m != 0).then_some((i as u8, m))
        })
        .collect()
}

const _: () = assert!(OF_U64S <= u8::MAX as usize);

/// `flow & mask` on the words of `words`, gathered into `buf`.
#[inline]
fn compact<'b>(flow: &OfFlow, words: &[(u8, u64)], buf: &'b mut [u64; OF_U64S]) -> &'b [u64] {
    for (out, &(i, m)) in buf.iter_mut().zip(words) {
        *out = flow.word(usize::from(i)) & m;
    }
    &buf[..words.len()]
}

/// Adds a mask given by its nonzero words to `wc` (as `or_assign` with
/// the whole mask, touching only those words).
#[inline]
fn or_words(wc: &mut OfFlow, words: &[(u8, u64)]) {
    for &(i, m) in words {
        wc.or_word(usize::from(i), m);
    }
}

/// The owned compact key of `flow` under `words` (insertion side).
fn compact_key(flow: &OfFlow, words: &[(u8, u64)]) -> Box<[u64]> {
    let mut buf = [0u64; OF_U64S];
    compact(flow, words, &mut buf).into()
}

/// Fields with prefix tracking.
const TRIE_FIELDS: [Field; 4] = [Field::IpSrc, Field::IpDst, Field::Ipv6Src, Field::Ipv6Dst];

fn trie_usable(t: usize, flow: &OfFlow) -> bool {
    match t {
        0 | 1 => flow.key.dl_type == ETH_TYPE_IPV4,
        _ => flow.key.dl_type == ETH_TYPE_IPV6,
    }
}

/// Cumulative stage masks: metadata; +L2; +L3 (the last stage, L4, is
/// the whole mask).
fn stage_masks() -> [OfFlow; 3] {
    let mut meta = OfFlow::ZERO;
    {
        let k = &mut meta.key;
        let full = FlowKey::exact_mask();
        k.tun_id = full.tun_id;
        k.tun_ipv4_src = full.tun_ipv4_src;
        k.tun_ipv4_dst = full.tun_ipv4_dst;
        k.tun_ipv6_src = full.tun_ipv6_src;
        k.tun_ipv6_dst = full.tun_ipv6_dst;
        k.tun_flags = u16::MAX;
        k.tun_tos = u8::MAX;
        k.tun_ttl = u8::MAX;
        k.tun_tp_src = u16::MAX;
        k.tun_tp_dst = u16::MAX;
        k.tun_gbp_id = u16::MAX;
        k.tun_gbp_flags = u8::MAX;
        k.skb_priority = u32::MAX;
        k.pkt_mark = u32::MAX;
        k.dp_hash = u32::MAX;
        k.in_port = u32::MAX;
        k.recirc_id = u32::MAX;
        k.ct_mark = u32::MAX;
        k.ct_state = u8::MAX;
        k.ct_zone = u16::MAX;
        k.packet_type = u32::MAX;
        meta.metadata = u64::MAX;
        meta.regs = [u32::MAX; crate::field::N_REGS];
        meta.tun_metadata = [u64::MAX; crate::field::N_TUN_METADATA];
        meta.tun_metadata_present = u64::MAX;
    }
    let mut l2 = meta;
    l2.key.dl_src = [0xff; 6];
    l2.key.dl_dst = [0xff; 6];
    l2.key.dl_type = u16::MAX;
    l2.key.vlans = [VlanHeader {
        tpid: u16::MAX,
        tci: u16::MAX,
    }; FLOW_MAX_VLAN_HEADERS];
    l2.key.mpls_lse = [u32::MAX; 3];
    let mut l3 = l2;
    l3.key.nw_src = [0xff; 4];
    l3.key.nw_dst = [0xff; 4];
    l3.key.ipv6_src = [0xff; 16];
    l3.key.ipv6_dst = [0xff; 16];
    l3.key.ipv6_label = u32::MAX;
    l3.key.nw_frag = u8::MAX;
    l3.key.nw_tos = u8::MAX;
    l3.key.nw_ttl = u8::MAX;
    l3.key.nw_proto = u8::MAX;
    l3.key.nd_target = [0xff; 16];
    l3.key.arp_sha = [0xff; 6];
    l3.key.arp_tha = [0xff; 6];
    [meta, l2, l3]
}

/// Result of a trie walk: which prefix lengths cover the value, and how
/// many leading bits the walk depended on.
#[derive(Clone, Copy, Debug, Default)]
struct TrieMatch {
    /// Bit `p - 1` set: some rule prefix of length `p` covers the value.
    plens: u128,
    check_bits: u32,
}

#[derive(Clone, Debug, Default)]
struct TrieNode {
    child: [u32; 2],
    n_prefixes: u32,
}

/// A binary trie of prefixes of one field.
#[derive(Clone, Debug)]
struct Trie {
    bits: u32,
    nodes: Vec<TrieNode>,
}

impl Trie {
    fn new(bits: u32) -> Trie {
        Trie {
            bits,
            nodes: vec![TrieNode::default()],
        }
    }

    fn bit(&self, v: u128, d: u32) -> usize {
        ((v >> (self.bits - 1 - d)) & 1) as usize
    }

    fn insert(&mut self, v: u128, plen: u32) {
        let mut n = 0usize;
        for d in 0..plen {
            let b = self.bit(v, d);
            let c = self.nodes[n].child[b];
            n = if c == 0 {
                self.nodes.push(TrieNode::default());
                let id = self.nodes.len() - 1;
                self.nodes[n].child[b] = id as u32;
                id
            } else {
                c as usize
            };
        }
        self.nodes[n].n_prefixes += 1;
    }

    fn remove(&mut self, v: u128, plen: u32) {
        let mut n = 0usize;
        for d in 0..plen {
            let c = self.nodes[n].child[self.bit(v, d)];
            if c == 0 {
                return;
            }
            n = c as usize;
        }
        self.nodes[n].n_prefixes = self.nodes[n].n_prefixes.saturating_sub(1);
    }

    fn lookup(&self, v: u128) -> TrieMatch {
        let mut r = TrieMatch::default();
        let mut n = 0usize;
        for d in 0..self.bits {
            let node = &self.nodes[n];
            let b = self.bit(v, d);
            let c = node.child[b];
            if c == 0 {
                // A leaf needs no more bits; a branch the other way needed
                // this bit to be ruled out.
                r.check_bits = if node.child[1 - b] != 0 { d + 1 } else { d };
                return r;
            }
            n = c as usize;
            if self.nodes[n].n_prefixes > 0 {
                r.plens |= 1u128 << d;
            }
        }
        r.check_bits = self.bits;
        r
    }
}

/// One classifier entry.
#[derive(Clone, Debug)]
pub struct Entry<R> {
    pub priority: u16,
    pub r#match: Match,
    pub rule: R,
}

#[derive(Clone, Debug)]
struct Stage {
    /// The cumulative stage mask (within the subtable's mask), as its
    /// nonzero words.
    words: MaskWords,
    /// Refcounted compact partial keys of the subtable's rules.
    keys: CompactMap<u32>,
}

#[derive(Clone, Debug)]
struct Subtable<R> {
    mask: OfFlow,
    mask_words: MaskWords,
    /// Cumulative stage masks before the last.
    stages: Vec<Stage>,
    /// Rules by compact masked match, highest priority first.
    buckets: CompactMap<Vec<Entry<R>>>,
    max_priority: u16,
    /// Prefix length per trie field; 0 when not a (non-empty) prefix.
    plens: [u32; 4],
    n_rules: usize,
}

impl<R> Subtable<R> {
    fn new(mask: OfFlow) -> Subtable<R> {
        let mut stages = Vec::new();
        let mut prev = OfFlow::ZERO;
        for s in stage_masks() {
            let m = mask.masked(&s);
            if m != prev && m != mask {
                stages.push(Stage {
                    words: mask_words(&m),
                    keys: HashMap::default(),
                });
                prev = m;
            }
        }
        let mut plens = [0; 4];
        for (t, f) in TRIE_FIELDS.iter().enumerate() {
            let fm = f.get(&mask);
            if fm != 0 {
                plens[t] = cidr_len(fm, f.bits()).unwrap_or(0);
            }
        }
        Subtable {
            mask,
            mask_words: mask_words(&mask),
            stages,
            buckets: HashMap::default(),
            max_priority: 0,
            plens,
            n_rules: 0,
        }
    }

    fn recompute_max(&mut self) {
        self.max_priority = self
            .buckets
            .values()
            .filter_map(|v| v.first().map(|e| e.priority))
            .max()
            .unwrap_or(0);
    }
}

/// The classifier (see the module docs).
#[derive(Clone, Debug)]
pub struct Classifier<R> {
    subtables: Vec<Subtable<R>>,
    tries: [Trie; 4],
    n_rules: usize,
}

impl<R> Default for Classifier<R> {
    fn default() -> Self {
        Classifier {
            subtables: Vec::new(),
            tries: [Trie::new(32), Trie::new(32), Trie::new(128), Trie::new(128)],
            n_rules: 0,
        }
    }
}

impl<R: Clone> Classifier<R> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.n_rules
    }

    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    fn sort(&mut self) {
        self.subtables.retain(|s| s.n_rules > 0);
        self.subtables
            .sort_by_key(|s| std::cmp::Reverse(s.max_priority));
    }

    /// Inserts a rule; returns the rule it replaced (same match and
    /// priority), if any.
    pub fn insert(&mut self, m: Match, priority: u16, rule: R) -> Option<R> {
        let idx = match self.subtables.iter().position(|s| s.mask == m.mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable::new(m.mask));
                self.subtables.len() - 1
            }
        };
        let st = &mut self.subtables[idx];
        let bucket = st
            .buckets
            .entry(compact_key(&m.flow, &st.mask_words))
            .or_default();
        if let Some(e) = bucket.iter_mut().find(|e| e.priority == priority) {
            let old = std::mem::replace(&mut e.rule, rule);
            return Some(old);
        }
        let pos = bucket
            .iter()
            .position(|e| e.priority < priority)
            .unwrap_or(bucket.len());
        bucket.insert(
            pos,
            Entry {
                priority,
                r#match: m,
                rule,
            },
        );
        for stage in &mut st.stages {
            *stage
                .keys
                .entry(compact_key(&m.flow, &stage.words))
                .or_insert(0) += 1;
        }
        st.n_rules += 1;
        st.max_priority = st.max_priority.max(priority);
        let plens = st.plens;
        for (t, f) in TRIE_FIELDS.iter().enumerate() {
            if plens[t] > 0 {
                self.tries[t].insert(f.get(&m.flow), plens[t]);
            }
        }
        self.n_rules += 1;
        self.sort();
        None
    }

    /// Removes the rule with exactly this match and priority.
    pub fn remove(&mut self, m: &Match, priority: u16) -> Option<R> {
        let idx = self.subtables.iter().position(|s| s.mask == m.mask)?;
        let st = &mut self.subtables[idx];
        let key = compact_key(&m.flow, &st.mask_words);
        let bucket = st.buckets.get_mut(&key)?;
        let pos = bucket.iter().position(|e| e.priority == priority)?;
        let e = bucket.remove(pos);
        if bucket.is_empty() {
            st.buckets.remove(&key);
        }
        for stage in &mut st.stages {
            let k = compact_key(&m.flow, &stage.words);
            if let Some(c) = stage.keys.get_mut(&k) {
                *c -= 1;
                if *c == 0 {
                    stage.keys.remove(&k);
                }
            }
        }
        st.n_rules -= 1;
        st.recompute_max();
        let plens = st.plens;
        for (t, f) in TRIE_FIELDS.iter().enumerate() {
            if plens[t] > 0 {
                self.tries[t].remove(f.get(&m.flow), plens[t]);
            }
        }
        self.n_rules -= 1;
        self.sort();
        Some(e.rule)
    }

    /// The rule with exactly this match and priority.
    pub fn find_exact(&self, m: &Match, priority: u16) -> Option<&Entry<R>> {
        let st = self.subtables.iter().find(|s| s.mask == m.mask)?;
        let mut buf = [0u64; OF_U64S];
        st.buckets
            .get(compact(&m.flow, &st.mask_words, &mut buf))?
            .iter()
            .find(|e| e.priority == priority)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<R>> {
        self.subtables
            .iter()
            .flat_map(|s| s.buckets.values().flat_map(|b| b.iter()))
    }

    /// The highest-priority rule matching `flow`, adding to `wc` the bits
    /// the lookup depended on. Among equal priorities the result is one
    /// of them, always the same one for the same classifier.
    pub fn lookup(&self, flow: &OfFlow, wc: &mut OfFlow) -> Option<&Entry<R>> {
        let mut best: Option<&Entry<R>> = None;
        let mut tries: [Option<TrieMatch>; 4] = [None; 4];
        let mut buf = [0u64; OF_U64S];
        'subtables: for st in &self.subtables {
            if best.is_some_and(|b| b.priority >= st.max_priority) {
                break;
            }
            for t in 0..TRIE_FIELDS.len() {
                let plen = st.plens[t];
                if plen == 0 || !trie_usable(t, flow) {
                    continue;
                }
                let f = TRIE_FIELDS[t];
                let r = *tries[t].get_or_insert_with(|| self.tries[t].lookup(f.get(flow)));
                if r.plens & (1u128 << (plen - 1)) == 0 {
                    let bits = prefix_mask(r.check_bits.min(f.bits()), f.bits());
                    let old = f.get(wc);
                    f.set(wc, old | bits);
                    continue 'subtables;
                }
            }
            for stage in &st.stages {
                if !stage
                    .keys
                    .contains_key(compact(flow, &stage.words, &mut buf))
                {
                    or_words(wc, &stage.words);
                    continue 'subtables;
                }
            }
            or_words(wc, &st.mask_words);
            if let Some(e) = st
                .buckets
                .get(compact(flow, &st.mask_words, &mut buf))
                .and_then(|b| b.first())
                && best.is_none_or(|b| e.priority > b.priority)
            {
                best = Some(e);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_core::flow::key::IPPROTO_TCP;

    fn ip_rule(dst: [u8; 4], plen: u32) -> Match {
        let mut m = Match::catchall();
        m.set_exact(Field::EthType, u128::from(ETH_TYPE_IPV4));
        m.set(
            Field::IpDst,
            u128::from(u32::from_be_bytes(dst)),
            prefix_mask(plen, 32),
        );
        m
    }

    fn pkt(dst: [u8; 4]) -> OfFlow {
        let mut f = OfFlow::ZERO;
        f.key.dl_type = ETH_TYPE_IPV4;
        f.key.nw_dst = dst;
        f.key.nw_proto = IPPROTO_TCP;
        f.key.tp_dst = 80;
        f
    }

    #[test]
    fn prefix_tracking_keeps_megaflow_wide() {
        let mut c = Classifier::new();
        c.insert(ip_rule([10, 0, 0, 1], 32), 200, "host");
        c.insert(ip_rule([10, 0, 0, 0], 24), 100, "net");
        let mut wc = OfFlow::ZERO;
        let e = c.lookup(&pkt([10, 0, 0, 5]), &mut wc).unwrap();
        assert_eq!(e.rule, "net");
        // 10.0.0.5 and 10.0.0.1 differ at bit 29: /30 is enough.
        assert_eq!(wc.key.nw_dst, [255, 255, 255, 252]);
        assert_eq!(wc.key.tp_dst, 0);
        let mut wc = OfFlow::ZERO;
        assert_eq!(c.lookup(&pkt([10, 0, 0, 1]), &mut wc).unwrap().rule, "host");
        assert_eq!(wc.key.nw_dst, [255; 4]);
    }

    #[test]
    fn staged_lookup_stops_at_l2() {
        let mut c = Classifier::new();
        let mut m = Match::catchall();
        m.set_protocol("tcp");
        m.set_exact(Field::TpDst, 22);
        c.insert(m, 10, "ssh");
        let mut f = pkt([1, 2, 3, 4]);
        f.key.dl_type = 0x0806;
        let mut wc = OfFlow::ZERO;
        assert!(c.lookup(&f, &mut wc).is_none());
        assert_eq!(wc.key.dl_type, 0xffff);
        assert_eq!(wc.key.nw_proto, 0);
        assert_eq!(wc.key.tp_dst, 0);
    }

    #[test]
    fn replace_and_remove() {
        let mut c = Classifier::new();
        let m = ip_rule([10, 0, 0, 0], 8);
        assert_eq!(c.insert(m, 5, 1), None);
        assert_eq!(c.insert(m, 5, 2), Some(1));
        assert_eq!(c.insert(m, 6, 3), None);
        assert_eq!(c.len(), 2);
        let mut wc = OfFlow::ZERO;
        assert_eq!(c.lookup(&pkt([10, 1, 1, 1]), &mut wc).unwrap().rule, 3);
        assert_eq!(c.remove(&m, 6), Some(3));
        assert_eq!(c.lookup(&pkt([10, 1, 1, 1]), &mut wc).unwrap().rule, 2);
        assert_eq!(c.remove(&m, 5), Some(2));
        assert!(c.is_empty());
        assert_eq!(c.n_subtables(), 0);
    }
}
