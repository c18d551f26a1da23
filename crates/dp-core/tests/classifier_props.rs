//! Property tests of the lookup structures against a trivial reference: a
//! linear list of (mask, masked key) rules (OVS `test-classifier.c`).
//!
//! Overlap semantics. Megaflows installed by the upcall path never overlap
//! for a packet (translation unwildcards what it looked at), and the
//! classifier has no priorities. So there are two kinds of checks:
//! - with arbitrary, possibly overlapping rule sets, an answer is correct
//!   when it is one of the matching rules, and a miss when none matches;
//! - with non-overlapping rule sets (a generated rule that overlaps a live
//!   one is skipped, which is OVS's by-construction property), the answer
//!   must be exactly the unique matching rule, so the cascade (simple
//!   match + EMC + SMC + dpcls) must equal the classifier alone.
//!
//! Fields take few values so packets really hit rules, masks mix exact,
//! partial and wildcarded fields (many subtables), and the caches are tiny
//! with weak hashes so collisions, evictions and stale entries happen.

use std::collections::HashMap;

use dp_core::cascade::{Cascade, CascadeConfig, Disposition, SmcMode};
use dp_core::dpcls::{Dpcls, DpclsConfig, DpclsError, RuleHandle};
use dp_core::flow::FlowKey;
use dp_core::flow_table::{FlowTable, FlowTableConfig};
use dp_core::packet::MAX_BURST;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
struct Fields {
    in_port: u32,
    dl_type: u16,
    src: u8,
    dst: u8,
    tp_src: u16,
    tp_dst: u16,
    tci: u16,
    frag: u8,
    recirc: u32,
}

fn key_of(f: &Fields) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = f.in_port;
    k.dl_type = f.dl_type;
    k.nw_src = [10, 0, f.src >> 2, f.src & 3];
    k.nw_dst = [10, 1, f.dst >> 2, f.dst & 3];
    k.nw_proto = 17;
    k.tp_src = f.tp_src;
    k.tp_dst = f.tp_dst;
    k.vlans[0].tci = f.tci;
    k.nw_frag = f.frag;
    k.recirc_id = f.recirc;
    k
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        1u32..=3,
        prop::sample::select(vec![0x0800u16, 0x0806]),
        0u8..16,
        0u8..16,
        0u16..4,
        0u16..4,
        prop::sample::select(vec![0u16, 0x1001, 0x1002, 0xf001]),
        prop::sample::select(vec![0u8, 1, 3]),
        0u32..2,
    )
        .prop_map(
            |(in_port, dl_type, src, dst, tp_src, tp_dst, tci, frag, recirc)| Fields {
                in_port,
                dl_type,
                src,
                dst,
                tp_src,
                tp_dst,
                tci,
                frag,
                recirc,
            },
        )
}

/// A mask: per field 0 = wildcard, 1 = exact, 2 = partial; or the exact
/// simple-match shape.
fn mask() -> impl Strategy<Value = FlowKey> {
    prop_oneof![
        9 => (prop::array::uniform8(0u8..3), any::<bool>()).prop_map(|(sel, port)| {
            let mut m = FlowKey::ZERO;
            if port {
                m.in_port = u32::MAX;
            }
            m.dl_type = [0, u16::MAX, u16::MAX][sel[0] as usize];
            m.nw_src = [[0; 4], [0xff; 4], [0xff, 0xff, 0xff, 0x02]][sel[1] as usize];
            m.nw_dst = [[0; 4], [0xff; 4], [0xff, 0xff, 0x03, 0x00]][sel[2] as usize];
            m.tp_src = [0, u16::MAX, 0x0002][sel[3] as usize];
            m.tp_dst = [0, u16::MAX, 0x0001][sel[4] as usize];
            m.vlans[0].tci = [0, u16::MAX, 0x1fff][sel[5] as usize];
            m.nw_frag = [0, 3, 1][sel[6] as usize];
            m.recirc_id = [0, u32::MAX, u32::MAX][sel[7] as usize];
            m
        }),
        1 => Just({
            let mut m = FlowKey::ZERO;
            m.in_port = u32::MAX;
            m.recirc_id = u32::MAX;
            m.packet_type = u32::MAX;
            m.dl_type = u16::MAX;
            m.vlans[0].tci = 0x1fff;
            m.nw_frag = 3;
            m
        }),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    /// Inserts a rule built from `fields` or, when `from_pool` is set, from
    /// that packet of the pool (so rules and traffic meet).
    Insert {
        fields: Fields,
        from_pool: Option<usize>,
        mask: Box<FlowKey>,
    },
    /// Deletes the n-th live rule (modulo the count).
    Delete(usize),
    /// Looks up these packets of the pool (indices modulo its size), so the
    /// same packets come back after inserts and deletes and meet stale
    /// cache entries.
    Lookup(Vec<usize>),
    /// Advances the clock (ms), which may re-rank subtables.
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (fields(), prop::option::weighted(0.7, any::<usize>()), mask())
            .prop_map(|(fields, from_pool, mask)| Op::Insert { fields, from_pool, mask: Box::new(mask) }),
        2 => any::<usize>().prop_map(Op::Delete),
        4 => prop::collection::vec(any::<usize>(), 1..=MAX_BURST).prop_map(Op::Lookup),
        1 => (0u64..1500).prop_map(Op::Tick),
    ]
}

fn pool() -> impl Strategy<Value = Vec<Fields>> {
    prop::collection::vec(fields(), 1..24)
}

fn rule_fields(pool: &[Fields], fields: Fields, from_pool: Option<usize>) -> Fields {
    from_pool.map_or(fields, |i| pool[i % pool.len()])
}

fn pool_keys(pool: &[Fields], idx: &[usize]) -> Vec<FlowKey> {
    idx.iter().map(|i| key_of(&pool[i % pool.len()])).collect()
}

/// True when some packet matches both rules.
fn overlaps(k1: &FlowKey, m1: &FlowKey, k2: &FlowKey, m2: &FlowKey) -> bool {
    k1.words()
        .iter()
        .zip(k2.words())
        .zip(m1.words().iter().zip(m2.words()))
        .all(|((a, b), (x, y))| (a ^ b) & x & y == 0)
}

#[derive(Clone, Debug)]
struct RefRule {
    masked: FlowKey,
    mask: FlowKey,
}

impl RefRule {
    fn matches(&self, key: &FlowKey) -> bool {
        key.matches_masked(&self.mask, &self.masked)
    }
}

fn config_small_cls() -> DpclsConfig {
    DpclsConfig {
        sort_interval_ms: 1000,
        ..DpclsConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Dpcls alone vs the linear reference, overlapping rules allowed.
    #[test]
    fn dpcls_equals_linear_reference(pool in pool(), ops in prop::collection::vec(op(), 1..80)) {
        let mut cls = Dpcls::new(config_small_cls());
        // value → (rule, handle)
        let mut live: Vec<(u32, RefRule, RuleHandle)> = Vec::new();
        let mut next_value = 0u32;
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Insert { fields, from_pool, mask } => {
                    let mask = *mask;
                    let masked = key_of(&rule_fields(&pool, fields, from_pool)).masked(&mask);
                    let dup = live.iter().find(|(_, r, _)| r.mask == mask && r.masked == masked);
                    let res = cls.insert(&masked, &mask, next_value);
                    match (dup, res) {
                        (Some((v, _, _)), Err(DpclsError::Duplicate { existing })) => {
                            prop_assert_eq!(*v, existing)
                        }
                        (None, Ok(h)) => {
                            live.push((next_value, RefRule { masked, mask }, h));
                            next_value += 1;
                        }
                        (dup, res) => prop_assert!(false, "dup {:?} res {:?}", dup, res),
                    }
                }
                Op::Delete(n) => {
                    if !live.is_empty() {
                        let (v, _, h) = live.remove(n % live.len());
                        prop_assert_eq!(cls.remove(h), Some(v));
                        prop_assert_eq!(cls.remove(h), None);
                    }
                }
                Op::Lookup(pkts) => {
                    let keys = pool_keys(&pool, &pkts);
                    let mut out = [0u32; MAX_BURST];
                    let active = if keys.len() == 32 { u32::MAX } else { (1u32 << keys.len()) - 1 };
                    let res = cls.lookup_batch(&keys, active, &mut out);
                    for (i, key) in keys.iter().enumerate() {
                        let matching: Vec<u32> = live.iter()
                            .filter(|(_, r, _)| r.matches(key))
                            .map(|(v, _, _)| *v)
                            .collect();
                        if res.found & (1 << i) != 0 {
                            prop_assert!(matching.contains(&out[i]),
                                "packet {} got {} not in {:?}", i, out[i], matching);
                        } else {
                            prop_assert!(matching.is_empty(), "packet {} missed {:?}", i, matching);
                        }
                        // The single-key path agrees with the batch path.
                        prop_assert_eq!(cls.lookup(key).is_some(), !matching.is_empty());
                    }
                }
                Op::Tick(ms) => {
                    now += ms;
                    cls.maybe_sort(now);
                }
            }
            prop_assert_eq!(cls.len(), live.len());
            let masks: std::collections::HashSet<[u64; dp_core::flow::FLOW_U64S]> =
                live.iter().map(|(_, r, _)| *r.mask.words()).collect();
            prop_assert_eq!(cls.subtable_count(), masks.len());
        }
    }

    /// Non-overlapping megaflows: the flow table's classifier, and the full
    /// cascade (simple match + EMC + SMC + dpcls, tiny caches, weak
    /// hashes), return exactly the unique matching flow; deleted flows are
    /// never returned by any level.
    #[test]
    fn cascade_equals_classifier_alone(
        pool in pool(),
        ops in prop::collection::vec(op(), 1..80),
        emc_inv_prob in prop::sample::select(vec![0u32, 1, 2]),
        smc in any::<bool>(),
        hash_bits in prop::sample::select(vec![3u32, 8, 32]),
        maps_kind in 0usize..3,
        extra_bits in any::<u64>(),
    ) {
        let mut table: FlowTable<u32> = FlowTable::new(FlowTableConfig::default());
        let mut cascade = Cascade::new(CascadeConfig {
            emc_entries: 16,
            emc_insert_inv_prob: emc_inv_prob,
            emc: dp_core::cascade::EmcMode::On,
            smc: if smc { SmcMode::On } else { SmcMode::Off },
            smc_entries: 16,
            seed: 7,
        });
        let mut live: HashMap<u128, RefRule> = HashMap::new();
        let mut deleted: Vec<u128> = Vec::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Insert { fields, from_pool, mask } => {
                    let mut mask = *mask;
                    mask.in_port = u32::MAX; // the table always matches in_port exactly
                    let masked = key_of(&rule_fields(&pool, fields, from_pool)).masked(&mask);
                    if live.values().any(|r| overlaps(&r.masked, &r.mask, &masked, &mask)) {
                        continue;
                    }
                    let r = table.insert(&masked, &mask, None, 0, now);
                    let flow = r.expect("non-overlapping insert succeeds");
                    let ufid = table.get(flow).expect("live").ufid();
                    let previous = live.insert(ufid, RefRule { masked, mask });
                    prop_assert!(previous.is_none(), "UFID reused");
                }
                Op::Delete(n) => {
                    if !live.is_empty() {
                        let mut ufids: Vec<u128> = live.keys().copied().collect();
                        ufids.sort_unstable();
                        let ufid = ufids[n % ufids.len()];
                        table.remove(ufid).expect("live flow removes");
                        live.remove(&ufid);
                        deleted.push(ufid);
                    }
                }
                Op::Lookup(pkts) => {
                    let keys = pool_keys(&pool, &pkts);
                    let hashes: Vec<u32> = keys.iter()
                        .map(|k| dp_core::flow::hash::hash_5tuple(k, 0) & (u32::MAX >> (32 - hash_bits)))
                        .collect();
                    // Twice: the second pass exercises the caches filled by
                    // the first. The EMC compares only the words of the
                    // keys' word maps: whole keys, exact maps, or supersets
                    // (as extraction gives them), mixed across passes.
                    for pass in 0..2 {
                        let before = *cascade.stats();
                        let mut out = [Disposition::Miss; MAX_BURST];
                        let maps: Vec<u64> = keys.iter().enumerate().map(|(i, k)| {
                            let extra = extra_bits.rotate_left(i as u32 * 7) & FlowKey::ALL_WORDS;
                            match (maps_kind + pass) % 3 {
                                0 => FlowKey::ALL_WORDS,
                                1 => k.nonzero_word_map(),
                                _ => k.nonzero_word_map() | extra,
                            }
                        }).collect();
                        if (maps_kind + pass) % 3 == 0 {
                            cascade.lookup_batch(&mut table, &keys, &hashes, now, &mut out);
                        } else {
                            cascade.lookup_batch_mapped(&mut table, &keys, &maps, &hashes, now, &mut out);
                        }
                        for (i, key) in keys.iter().enumerate() {
                            let want: Vec<u128> = live.iter()
                                .filter(|(_, r)| r.matches(key))
                                .map(|(u, _)| *u)
                                .collect();
                            prop_assert!(want.len() <= 1, "generator produced an overlap");
                            let got = out[i].flow().map(|f| table.get(f).expect("returned flow is live").ufid());
                            if let Some(u) = got {
                                prop_assert!(!deleted.contains(&u) || live.contains_key(&u),
                                    "deleted flow returned");
                            }
                            prop_assert_eq!(got, want.first().copied(), "packet {} {:?}", i, out[i]);
                        }
                        let after = *cascade.stats();
                        let hits = (after.simple_match_hits - before.simple_match_hits)
                            + (after.emc_hits - before.emc_hits)
                            + (after.smc_hits - before.smc_hits)
                            + (after.megaflow_hits - before.megaflow_hits);
                        prop_assert_eq!(hits + after.misses - before.misses, keys.len() as u64);
                        prop_assert_eq!(after.packets - before.packets, keys.len() as u64);
                    }
                }
                Op::Tick(ms) => now += ms,
            }
            prop_assert_eq!(table.len(), live.len());
        }
    }

    /// Overlapping megaflows through the full cascade: every answer is a
    /// live flow that matches the packet, a miss only when none does.
    #[test]
    fn cascade_with_overlaps_returns_a_live_matching_flow(
        pool in pool(),
        ops in prop::collection::vec(op(), 1..80),
        smc in any::<bool>(),
    ) {
        let mut table: FlowTable<u32> = FlowTable::new(FlowTableConfig::default());
        let mut cascade = Cascade::new(CascadeConfig {
            emc_entries: 16,
            emc_insert_inv_prob: 1,
            emc: dp_core::cascade::EmcMode::On,
            smc: if smc { SmcMode::On } else { SmcMode::Off },
            smc_entries: 16,
            seed: 3,
        });
        let mut live: HashMap<u128, RefRule> = HashMap::new();
        let mut now = 0;
        for op in ops {
            match op {
                Op::Insert { fields, from_pool, mask } => {
                    let mut mask = *mask;
                    mask.in_port = u32::MAX;
                    let masked = key_of(&rule_fields(&pool, fields, from_pool)).masked(&mask);
                    if let Ok(flow) = table.insert(&masked, &mask, None, 0, now) {
                        live.insert(table.get(flow).expect("live").ufid(), RefRule { masked, mask });
                    }
                }
                Op::Delete(n) => {
                    if !live.is_empty() {
                        let mut ufids: Vec<u128> = live.keys().copied().collect();
                        ufids.sort_unstable();
                        let ufid = ufids[n % ufids.len()];
                        table.remove(ufid).expect("remove");
                        live.remove(&ufid);
                    }
                }
                Op::Lookup(pkts) => {
                    let keys = pool_keys(&pool, &pkts);
                    let hashes: Vec<u32> = keys.iter().map(|k| k.tp_src as u32 & 3).collect();
                    for _ in 0..2 {
                        let mut out = [Disposition::Miss; MAX_BURST];
                        cascade.lookup_batch(&mut table, &keys, &hashes, now, &mut out);
                        for (i, key) in keys.iter().enumerate() {
                            let any_match = live.values().any(|r| r.matches(key));
                            match out[i].flow() {
                                Some(f) => {
                                    let ufid = table.get(f).expect("live").ufid();
                                    let rule = live.get(&ufid).expect("returned flow is live");
                                    prop_assert!(rule.matches(key));
                                }
                                None => prop_assert!(!any_match),
                            }
                        }
                    }
                }
                Op::Tick(ms) => now += ms,
            }
        }
    }
}
