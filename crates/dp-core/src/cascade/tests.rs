use super::*;
use crate::flow::hash::hash_5tuple;
use crate::flow::key::{ETH_TYPE_IPV4, FLOW_NW_FRAG_ANY, VLAN_CFI};

fn pkt(in_port: u32, dst_last: u8, tp_src: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = in_port;
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_proto = 17;
    k.nw_dst = [10, 0, 0, dst_last];
    k.tp_src = tp_src;
    k
}

/// A cascade with the EMC off and a 4096-entry SMC in `smc` mode, so the
/// SMC and the classifier are the levels under test.
fn without_emc(smc: SmcMode) -> Cascade {
    Cascade::new(CascadeConfig {
        emc_insert_inv_prob: 0,
        smc,
        smc_entries: 4096,
        ..CascadeConfig::default()
    })
}

fn dst_mask() -> FlowKey {
    let mut m = FlowKey::ZERO;
    m.dl_type = u16::MAX;
    m.nw_dst = [0xff; 4];
    m
}

fn hashes_of(keys: &[FlowKey]) -> Vec<u32> {
    keys.iter().map(|k| hash_5tuple(k, 0)).collect()
}

fn run(
    cascade: &mut Cascade,
    table: &mut FlowTable<u32>,
    keys: &[FlowKey],
    now: u64,
) -> Vec<Disposition> {
    let mut out = [Disposition::Miss; MAX_BURST];
    cascade.lookup_batch(table, keys, &hashes_of(keys), now, &mut out);
    out[..keys.len()].to_vec()
}

#[test]
fn levels_and_counters_follow_ovs() {
    let mut table: FlowTable<u32> = FlowTable::default();
    let f1 = table
        .insert(&pkt(1, 1, 0), &dst_mask(), None, 1, 0)
        .expect("f1");
    let mut cascade = Cascade::new(CascadeConfig {
        emc_insert_inv_prob: 1,
        emc: EmcMode::On,
        ..CascadeConfig::default()
    });
    let keys: Vec<FlowKey> = (0..8).map(|i| pkt(1, 1 + (i % 2) as u8, i)).collect();
    let out = run(&mut cascade, &mut table, &keys, 0);
    for (k, d) in keys.iter().zip(&out) {
        if k.nw_dst[3] == 1 {
            assert_eq!(
                *d,
                Disposition::Hit {
                    flow: f1,
                    level: HitLevel::Megaflow
                }
            );
        } else {
            assert_eq!(*d, Disposition::Miss);
        }
    }
    let s = *cascade.stats();
    assert_eq!(
        (s.packets, s.megaflow_hits, s.misses, s.emc_hits),
        (8, 4, 4, 0)
    );
    assert_eq!(s.avg_subtable_lookups_per_megaflow_hit(), 1.0);
    // Second pass: inv_prob 1 put every hit in the EMC.
    let out = run(&mut cascade, &mut table, &keys, 1);
    assert!(
        out.iter()
            .zip(&keys)
            .filter(|(_, k)| k.nw_dst[3] == 1)
            .all(|(d, _)| *d
                == Disposition::Hit {
                    flow: f1,
                    level: HitLevel::Emc
                })
    );
    let s = *cascade.stats();
    assert_eq!(
        (s.packets, s.emc_hits, s.megaflow_hits, s.misses),
        (16, 4, 4, 8)
    );
    let text = s.to_string();
    assert!(text.contains("  emc hits: 4\n"), "{text}");
    assert!(text.contains("  avg. subtable lookups per megaflow hit: 1.00\n"));
    cascade.reset_stats();
    // A reset keeps the states.
    assert_eq!(
        *cascade.stats(),
        LookupStats {
            emc_active: true,
            ..LookupStats::default()
        }
    );
}

#[test]
fn emc_disabled_never_hits_and_smc_serves_when_enabled() {
    let mut table: FlowTable<u32> = FlowTable::default();
    let f = table
        .insert(&pkt(1, 1, 0), &dst_mask(), None, 1, 0)
        .expect("f");
    let mut cascade = without_emc(SmcMode::On);
    let keys = [pkt(1, 1, 7)];
    for round in 0..3 {
        let out = run(&mut cascade, &mut table, &keys, round);
        let level = if round == 0 {
            HitLevel::Megaflow
        } else {
            HitLevel::Smc
        };
        assert_eq!(out[0], Disposition::Hit { flow: f, level });
    }
    let s = *cascade.stats();
    assert_eq!((s.emc_hits, s.smc_hits, s.megaflow_hits), (0, 2, 1));
    cascade.set_smc_enabled(false);
    assert_eq!(cascade.smc().heap_bytes(), 0);
}

#[test]
fn deleted_flow_is_never_returned_by_any_level() {
    let mut table: FlowTable<u32> = FlowTable::default();
    let f = table
        .insert(&pkt(1, 1, 0), &dst_mask(), Some(9), 1, 0)
        .expect("f");
    let mut cascade = Cascade::new(CascadeConfig {
        emc_insert_inv_prob: 1,
        emc: EmcMode::On,
        smc: SmcMode::On,
        smc_entries: 4096,
        ..CascadeConfig::default()
    });
    let keys = [pkt(1, 1, 7)];
    run(&mut cascade, &mut table, &keys, 0);
    assert_eq!(run(&mut cascade, &mut table, &keys, 0)[0].flow(), Some(f));
    table.remove(9).expect("rm");
    assert_eq!(
        run(&mut cascade, &mut table, &keys, 0)[0],
        Disposition::Miss
    );
    // The EMC is off: only the SMC could answer from its stale entry.
    cascade.emc_mut().set_insert_inv_prob(0);
    assert_eq!(
        run(&mut cascade, &mut table, &keys, 0)[0],
        Disposition::Miss
    );
}

/// Inserts on `in_port` the one simple flow (VLAN 10, any IPv4 packet
/// that is not a fragment), so that simple match serves the port.
fn insert_simple_vlan10(table: &mut FlowTable<u32>, in_port: u32) -> FlowRef {
    let mut mask = FlowKey::ZERO;
    mask.recirc_id = u32::MAX;
    mask.packet_type = u32::MAX;
    mask.dl_type = u16::MAX;
    mask.vlans[0].tci = 0x1fff;
    mask.nw_frag = 3;
    let mut k = pkt(in_port, 0, 0);
    k.nw_proto = 0;
    k.nw_dst = [0; 4];
    k.vlans[0].tci = VLAN_CFI | 10;
    let f = table.insert(&k, &mask, None, 1, 0).expect("simple");
    assert!(table.simple_match_enabled(in_port));
    f
}

#[test]
fn simple_match_serves_all_simple_ports_first() {
    let mut table: FlowTable<u32> = FlowTable::default();
    let f = insert_simple_vlan10(&mut table, 4);
    let mut cascade = Cascade::new(CascadeConfig {
        emc_insert_inv_prob: 1,
        emc: EmcMode::On,
        ..CascadeConfig::default()
    });
    let mut packet = pkt(4, 9, 9);
    packet.vlans[0].tci = VLAN_CFI | 10;
    let mut frag = packet;
    frag.nw_frag = FLOW_NW_FRAG_ANY;
    let out = run(&mut cascade, &mut table, &[packet, packet, frag], 0);
    assert_eq!(
        out[0],
        Disposition::Hit {
            flow: f,
            level: HitLevel::SimpleMatch
        }
    );
    assert_eq!(
        out[1],
        Disposition::Hit {
            flow: f,
            level: HitLevel::SimpleMatch
        }
    );
    assert_eq!(out[2], Disposition::Miss);
    assert_eq!(cascade.stats().simple_match_hits, 2);
    assert!(
        cascade
            .stats()
            .to_string()
            .starts_with("  simple match hits: 2\n")
    );
}

#[test]
fn batches_mixing_ports_use_each_ports_classifier() {
    let mut table: FlowTable<u32> = FlowTable::default();
    let f1 = table
        .insert(&pkt(1, 1, 0), &dst_mask(), None, 1, 0)
        .expect("1");
    let f2 = table
        .insert(&pkt(2, 1, 0), &dst_mask(), None, 2, 0)
        .expect("2");
    let mut cascade = Cascade::default();
    let keys: Vec<FlowKey> = (0..MAX_BURST)
        .map(|i| pkt(1 + (i % 3) as u32, 1, 0))
        .collect();
    let out = run(&mut cascade, &mut table, &keys, 0);
    for (k, d) in keys.iter().zip(&out) {
        let want = match k.in_port {
            1 => Some(f1),
            2 => Some(f2),
            _ => None,
        };
        assert_eq!(d.flow(), want);
    }
    let s = cascade.stats();
    assert_eq!(s.megaflow_hits + s.misses + s.emc_hits, MAX_BURST as u64);
}

#[test]
fn prepare_batch_extracts_keys_and_hashes() {
    use crate::packet::{PacketPool, PoolConfig};
    let pool = PacketPool::new("cascade-test", PoolConfig::heap(4));
    let mut frame = vec![0u8; 60];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&46u16.to_be_bytes());
    frame[23] = 17;
    frame[30..34].copy_from_slice(&[10, 0, 0, 2]);
    let mut batch = PacketBatch::new();
    batch
        .push(pool.alloc_from(&frame).expect("room"))
        .expect("batch room");
    let mut keys = [FlowKey::ZERO; MAX_BURST];
    let mut hashes = [0u32; MAX_BURST];
    assert_eq!(prepare_batch(&mut batch, &mut keys, &mut hashes), 1);
    assert_eq!(keys[0].nw_dst, [10, 0, 0, 2]);
    assert_eq!(hashes[0], hash_5tuple(&keys[0], 0));
}

/// Extracted keys go through the EMC with their word maps: a UDP/IPv4
/// packet's map names ~7 words, the EMC hits on them, and a packet that
/// differs only in a word outside a plain packet's map (a VLAN tag) does
/// not hit the plain packet's entry.
#[test]
fn mapped_batches_hit_the_emc_on_their_words_only() {
    use crate::packet::{PacketPool, PoolConfig};
    let pool = PacketPool::new("cascade-test", PoolConfig::heap(8));
    let mut frame = vec![0u8; 60];
    frame[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&46u16.to_be_bytes());
    frame[23] = 17;
    frame[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    frame[34..38].copy_from_slice(&[0x03, 0xe8, 0x07, 0xd0]);
    let mut tagged = frame[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    tagged.extend_from_slice(&frame[12..]);
    let mut batch = PacketBatch::new();
    for f in [&frame, &tagged] {
        let mut p = pool.alloc_from(f).expect("room");
        p.meta_mut().in_port = 1;
        batch.push(p).expect("batch room");
    }
    let mut keys = [FlowKey::ZERO; MAX_BURST];
    let mut maps = [0u64; MAX_BURST];
    let mut hashes = [0u32; MAX_BURST];
    assert_eq!(
        prepare_batch_mapped(&mut batch, &mut keys, &mut maps, &mut hashes),
        2
    );
    assert_eq!(maps[0], keys[0].nonzero_word_map(), "exact for plain UDP");
    assert!(maps[0].count_ones() <= 8, "map {:#x}", maps[0]);
    assert_eq!(maps[1] & !maps[0], crate::flow::key::field_words!(vlans));
    assert_eq!(hashes[0], hashes[1], "the 5-tuple ignores the tag");

    // Exact-match megaflows for both.
    let mut table: FlowTable<u32> = FlowTable::default();
    let mask = FlowKey::exact_mask();
    let plain = table.insert(&keys[0], &mask, None, 0, 0).expect("plain");
    let vlan = table.insert(&keys[1], &mask, None, 1, 0).expect("tagged");
    let mut cascade = Cascade::new(CascadeConfig {
        emc_insert_inv_prob: 1,
        emc: EmcMode::On,
        ..CascadeConfig::default()
    });
    let mut out = [Disposition::Miss; MAX_BURST];
    // Only the plain packet first: its entry fills the EMC.
    cascade.lookup_batch_mapped(
        &mut table,
        &keys[..1],
        &maps[..1],
        &hashes[..1],
        0,
        &mut out,
    );
    assert_eq!(cascade.stats().megaflow_hits, 1);
    // The tagged packet has the same hash and equal words in the plain
    // map, but must not hit the plain packet's entry.
    cascade.lookup_batch_mapped(
        &mut table,
        &keys[..2],
        &maps[..2],
        &hashes[..2],
        0,
        &mut out,
    );
    assert_eq!(
        out[..2],
        [
            Disposition::Hit {
                flow: plain,
                level: HitLevel::Emc
            },
            Disposition::Hit {
                flow: vlan,
                level: HitLevel::Megaflow
            }
        ]
    );
    // Whole-key lookups find the entries that mapped lookups inserted.
    cascade.lookup_batch(&mut table, &keys[..2], &hashes[..2], 0, &mut out);
    assert_eq!(cascade.stats().emc_hits, 3);
}

#[test]
fn misses_overwrite_a_reused_output_array() {
    // The PMD reuses its dispositions from batch to batch: a packet that
    // misses must read `Miss`, whatever the slot held before (stage 1
    // leaves pending slots alone; stage 3 writes the misses).
    let mut table: FlowTable<u32> = FlowTable::default();
    let f1 = table
        .insert(&pkt(1, 1, 0), &dst_mask(), None, 1, 0)
        .expect("f1");
    let mut cascade = Cascade::default();
    let hit = Disposition::Hit {
        flow: f1,
        level: HitLevel::Emc,
    };
    let mut out = [hit; MAX_BURST];
    // Port 1 (has a classifier) and port 9 (has none): every key misses.
    let keys: Vec<FlowKey> = (0..6)
        .map(|i| pkt(if i % 2 == 0 { 1 } else { 9 }, 7, i))
        .collect();
    cascade.lookup_batch(&mut table, &keys, &hashes_of(&keys), 0, &mut out);
    assert_eq!(out[..6], [Disposition::Miss; 6]);
    assert_eq!(out[6], hit, "slots past the batch untouched");
    assert_eq!(cascade.stats().misses, 6);
}

/// A table whose port 1 has `n` subtables (masks differing in how many
/// high bits of `tp_src` they match), one rule each: subtable `k` holds
/// `pkt(1, k + 1, 0)` (UFID `100 + k`).
fn table_with_subtables(n: u8) -> (FlowTable<u32>, Vec<FlowRef>) {
    let mut table: FlowTable<u32> = FlowTable::default();
    let flows = (0..n)
        .map(|k| {
            let mut mask = dst_mask();
            mask.tp_src = !(u16::MAX >> (k + 1));
            table
                .insert(&pkt(1, k + 1, 0), &mask, Some(100 + u128::from(k)), 1, 0)
                .expect("insert")
        })
        .collect();
    assert_eq!(table.mask_count(1), usize::from(n));
    (table, flows)
}

/// Sends `rounds` batches of 32 packets spread evenly over the first
/// `spread` subtables of [`table_with_subtables`], each packet with its
/// own `tp_dst` (its own hash: no SMC hit), at time `now`; checks every
/// answer.
fn uniform_traffic(
    cascade: &mut Cascade,
    table: &mut FlowTable<u32>,
    flows: &[FlowRef],
    spread: u8,
    rounds: u16,
    now: u64,
) {
    for round in 0..rounds {
        let keys: Vec<FlowKey> = (0..32u16)
            .map(|i| {
                let mut key = pkt(1, (i % u16::from(spread)) as u8 + 1, 0);
                // No mask has tp_dst: it only makes the hashes differ.
                key.tp_dst = round.wrapping_mul(32).wrapping_add(i);
                key
            })
            .collect();
        let out = run(cascade, table, &keys, now);
        for (i, d) in out.iter().enumerate() {
            assert_eq!(d.flow(), Some(flows[i % usize::from(spread)]), "packet {i}");
        }
    }
}

#[test]
fn auto_smc_turns_on_when_hits_probe_many_subtables_and_off_when_they_do_not() {
    let (mut table, flows) = table_with_subtables(8);
    let mut cascade = Cascade::new(CascadeConfig {
        emc_insert_inv_prob: 0,
        ..CascadeConfig::default()
    });
    assert_eq!(cascade.smc_mode(), SmcMode::Auto);
    assert!(!cascade.smc_active());
    // Nothing allocated until it is needed.
    assert_eq!(cascade.smc().heap_bytes(), 0);

    // Uniform over 8 subtables: 4.5 lookups per megaflow hit. No decision
    // before the re-sort (the sample is below SMC_AUTO_SAMPLE).
    let interval = crate::dpcls::DEFAULT_SORT_INTERVAL_MS;
    uniform_traffic(&mut cascade, &mut table, &flows, 8, 64, 0);
    assert!(!cascade.smc_active());
    assert!(cascade.stats().avg_subtable_lookups_per_megaflow_hit() >= SMC_AUTO_ON_LOOKUPS);
    // The re-sort decides: on.
    uniform_traffic(&mut cascade, &mut table, &flows, 8, 1, interval);
    assert!(cascade.smc_active());
    assert!(cascade.stats().smc_active);
    assert!(cascade.smc().heap_bytes() > 0);
    // The packets seen since are now served by the SMC, with the same
    // answers.
    let keys: Vec<FlowKey> = (0..32u16)
        .map(|i| {
            let mut key = pkt(1, (i % 8) as u8 + 1, 0);
            key.tp_dst = i;
            key
        })
        .collect();
    let out = run(&mut cascade, &mut table, &keys, interval);
    for (i, d) in out.iter().enumerate() {
        assert_eq!(
            *d,
            Disposition::Hit {
                flow: flows[i % 8],
                level: HitLevel::Smc
            }
        );
    }
    // A clear keeps the state.
    cascade.reset_stats();
    assert!(cascade.stats().smc_active);
    assert!(cascade.stats().to_string().contains("  smc: active\n"));

    // Seven masks go; the hits on the last one all take one lookup: off
    // at the next re-sort.
    for k in 1..8u128 {
        table.remove(100 + k).expect("remove");
    }
    uniform_traffic(&mut cascade, &mut table, &flows, 1, 64, 2 * interval - 1);
    assert!(cascade.smc_active());
    uniform_traffic(&mut cascade, &mut table, &flows, 1, 1, 2 * interval);
    assert!(!cascade.smc_active());
    assert!(cascade.stats().to_string().contains("  smc: inactive\n"));
    assert_eq!(cascade.stats().avg_subtable_lookups_per_megaflow_hit(), 1.0);
}

#[test]
fn auto_smc_stays_off_while_the_classifier_is_cheap() {
    // Three subtables, uniform: 2 lookups per hit, under the threshold.
    let (mut table, flows) = table_with_subtables(3);
    let mut cascade = Cascade::new(CascadeConfig {
        emc_insert_inv_prob: 0,
        ..CascadeConfig::default()
    });
    let interval = crate::dpcls::DEFAULT_SORT_INTERVAL_MS;
    for t in 0..4 {
        uniform_traffic(&mut cascade, &mut table, &flows, 3, 64, t * interval);
        assert!(!cascade.smc_active(), "at {t} s");
    }
    assert_eq!(cascade.stats().smc_hits, 0);
    assert_eq!(cascade.smc().heap_bytes(), 0);
}

#[test]
fn auto_smc_decides_after_a_large_sample_without_a_re_sort() {
    // The clock never moves (no re-sort): SMC_AUTO_SAMPLE hits decide.
    let (mut table, flows) = table_with_subtables(8);
    let mut cascade = Cascade::new(CascadeConfig {
        emc_insert_inv_prob: 0,
        ..CascadeConfig::default()
    });
    let rounds = (SMC_AUTO_SAMPLE / 32) as u16;
    uniform_traffic(&mut cascade, &mut table, &flows, 8, rounds, 0);
    assert!(!cascade.smc_active());
    uniform_traffic(&mut cascade, &mut table, &flows, 8, 1, 0);
    assert!(cascade.smc_active());
}

#[test]
fn forced_smc_modes_ignore_the_classifier() {
    let (mut table, flows) = table_with_subtables(8);
    let interval = crate::dpcls::DEFAULT_SORT_INTERVAL_MS;
    for (mode, active) in [(SmcMode::Off, false), (SmcMode::On, true)] {
        let mut cascade = without_emc(mode);
        assert_eq!(cascade.smc_active(), active);
        for t in 0..3 {
            uniform_traffic(&mut cascade, &mut table, &flows, 8, 64, t * interval);
            assert_eq!(cascade.smc_active(), active, "{mode} at {t} s");
        }
    }
    // On with a single subtable stays on too.
    let (mut table, flows) = table_with_subtables(1);
    let mut cascade = Cascade::new(CascadeConfig {
        smc: SmcMode::On,
        smc_entries: 4096,
        ..CascadeConfig::default()
    });
    for t in 0..3 {
        uniform_traffic(&mut cascade, &mut table, &flows, 1, 64, t * interval);
    }
    assert!(cascade.smc_active());
}

#[test]
fn cache_mode_parses_the_config_spellings() {
    assert_eq!("auto".parse(), Ok(CacheMode::Auto));
    assert_eq!("true".parse(), Ok(CacheMode::On));
    assert_eq!("false".parse(), Ok(CacheMode::Off));
    let err = "yes".parse::<CacheMode>().expect_err("not a mode");
    assert!(
        err.contains("true, false or \"auto\"") && err.contains("\"yes\""),
        "{err}"
    );
    assert_eq!(CacheMode::default(), CacheMode::Auto);
}

#[test]
fn smc_serves_batches_mixing_ports() {
    // The SMC confirms the first candidate's port in one pass and the
    // others one by one: both must answer, and a packet of a third port
    // whose hash collides with a port-1 entry must not take its flow.
    let mut table: FlowTable<u32> = FlowTable::default();
    let f1 = table
        .insert(&pkt(1, 1, 0), &dst_mask(), None, 1, 0)
        .expect("1");
    let f2 = table
        .insert(&pkt(2, 1, 0), &dst_mask(), None, 2, 0)
        .expect("2");
    let mut cascade = without_emc(SmcMode::On);
    let keys: Vec<FlowKey> = (0..MAX_BURST)
        .map(|i| pkt(1 + (i % 3) as u32, 1, i as u16))
        .collect();
    // The same hash for every packet: every packet of ports 2 and 3
    // finds a candidate of another port or flow first.
    let hashes = vec![0x1234_5678; keys.len()];
    let mut out = [Disposition::Miss; MAX_BURST];
    for round in 0..3 {
        cascade.lookup_batch(&mut table, &keys, &hashes, 0, &mut out);
        for (k, d) in keys.iter().zip(&out) {
            let want = match k.in_port {
                1 => Some(f1),
                2 => Some(f2),
                _ => None,
            };
            assert_eq!(d.flow(), want, "round {round}, {k:?}");
        }
    }
    let s = cascade.stats();
    assert!(s.smc_hits > 0, "{s:?}");
    // Realistic hashes too: each packet its own.
    let mut out = [Disposition::Miss; MAX_BURST];
    for _ in 0..2 {
        cascade.lookup_batch(&mut table, &keys, &hashes_of(&keys), 0, &mut out);
    }
    for (k, d) in keys.iter().zip(&out) {
        let want = match k.in_port {
            1 => Some((f1, HitLevel::Smc)),
            2 => Some((f2, HitLevel::Smc)),
            _ => None,
        };
        assert_eq!(d.flow().map(|f| (f, HitLevel::Smc)), want, "{k:?}: {d:?}");
        if want.is_some() {
            assert!(
                matches!(
                    d,
                    Disposition::Hit {
                        level: HitLevel::Smc,
                        ..
                    }
                ),
                "{d:?}"
            );
        }
    }
}

/// A run packet (key, map and hash equal to the packet before it) takes
/// that packet's stage-1 answer without a probe: over seeded batches of
/// repeated keys on an all-simple port and a classifier port (simple-match
/// hits, EMC hits, megaflow hits and misses, runs across all of them),
/// [`Cascade::lookup_batch_runs`] gives every packet the disposition and
/// the cascade the counters that [`Cascade::lookup_batch_mapped`] gives a
/// twin cascade and table without the mask.
#[test]
fn run_packets_get_what_a_probe_would_give() {
    let mut table: FlowTable<u32> = FlowTable::default();
    insert_simple_vlan10(&mut table, 4);
    // Port 1: megaflows on the destination for 10.0.0.1-3; .4-5 miss.
    let mut mask = dst_mask();
    mask.in_port = u32::MAX;
    for d in 1..=3 {
        table
            .insert(&pkt(1, d, 0), &mask, None, u32::from(d), 0)
            .expect("megaflow");
    }
    assert!(!table.simple_match_enabled(1));
    let mut with_runs = Cascade::new(CascadeConfig {
        // One megaflow hit in 20 fills the EMC: both EMC hits and
        // megaflow hits of the same flows come up.
        emc_insert_inv_prob: 20,
        emc: EmcMode::On,
        ..CascadeConfig::default()
    });
    let (mut twin, mut twin_table) = (with_runs.clone(), table.clone());

    let mut pool: Vec<FlowKey> = (1..=5)
        .flat_map(|d| (0..12).map(move |port| pkt(1, d, port)))
        .collect();
    let mut tagged = pkt(4, 9, 9);
    tagged.vlans[0].tci = VLAN_CFI | 10;
    pool.push(tagged);
    let mut other_vlan = tagged;
    other_vlan.vlans[0].tci = VLAN_CFI | 11;
    pool.push(other_vlan);

    let mut seed = 0x9e37_79b9_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let (mut run_packets, mut runs_after) = (0u32, [0u32; 4]);
    for batch in 0..400u64 {
        let n = 1 + next() as usize % MAX_BURST;
        let mut keys = Vec::with_capacity(n);
        for i in 0..n {
            // Runs of 1-6 packets of one key.
            if i == 0 || next() % 3 == 0 {
                keys.push(pool[next() as usize % pool.len()]);
            } else {
                keys.push(keys[i - 1]);
            }
        }
        let maps: Vec<u64> = keys.iter().map(FlowKey::nonzero_word_map).collect();
        let hashes = hashes_of(&keys);
        let mut runs = 0u32;
        for i in 1..n {
            if keys[i] == keys[i - 1] {
                runs |= 1 << i;
            }
        }
        let (mut got, mut want) = (
            [Disposition::Miss; MAX_BURST],
            [Disposition::Miss; MAX_BURST],
        );
        with_runs.lookup_batch_runs(&mut table, &keys, &maps, &hashes, runs, batch, &mut got);
        twin.lookup_batch_mapped(&mut twin_table, &keys, &maps, &hashes, batch, &mut want);
        assert_eq!(got[..n], want[..n], "batch {batch}, runs {runs:#x}");
        assert_eq!(with_runs.stats(), twin.stats(), "batch {batch}");
        for i in (1..n).filter(|i| runs & (1 << i) != 0) {
            run_packets += 1;
            let slot = match got[i - 1] {
                Disposition::Hit {
                    level: HitLevel::SimpleMatch,
                    ..
                } => 0,
                Disposition::Hit {
                    level: HitLevel::Emc,
                    ..
                } => 1,
                Disposition::Hit { .. } => 2,
                Disposition::Miss => 3,
            };
            runs_after[slot] += 1;
        }
    }
    // Runs followed every kind of answer.
    assert!(run_packets > 1000, "{run_packets} run packets");
    assert!(
        runs_after.iter().all(|&c| c > 20),
        "runs after simple/emc/lower/miss: {runs_after:?}"
    );
}

/// A batch that is one run (every packet the first one's key, map and
/// hash) looked up by [`Cascade::lookup_whole_run`] from its first key
/// alone, falling back to [`Cascade::lookup_batch_runs`] when it answers
/// `None`, gets every disposition and counter that `lookup_batch_runs`
/// with the whole run mask gives a twin cascade and table: over 400
/// batches of simple-match hits, EMC hits, SMC hits, megaflow hits in
/// either of two subtables (re-ranked every 20 batches) and misses, with
/// mixed batches between, in each EMC and SMC mode.
#[test]
fn a_whole_run_gets_what_lookup_batch_runs_gives() {
    let mut base: FlowTable<u32> = FlowTable::default();
    insert_simple_vlan10(&mut base, 4);
    let mut mask = dst_mask();
    mask.in_port = u32::MAX;
    for d in 1..=3 {
        base.insert(&pkt(1, d, 0), &mask, None, u32::from(d), 0)
            .expect("megaflow");
    }
    // A second subtable on port 1 (tp_src too), so ranks and the
    // subtables' hit counts matter.
    mask.tp_src = u16::MAX;
    for p in 0..6 {
        base.insert(&pkt(1, 4, p), &mask, None, 10 + u32::from(p), 0)
            .expect("megaflow");
    }
    let modes = [
        (EmcMode::On, SmcMode::Off),
        (EmcMode::Off, SmcMode::Off),
        (EmcMode::Off, SmcMode::On),
        (EmcMode::On, SmcMode::On),
        (EmcMode::Auto, SmcMode::Auto),
    ];
    for (emc, smc) in modes {
        let mut table = base.clone();
        let mut whole = Cascade::new(CascadeConfig {
            emc_insert_inv_prob: 20,
            emc,
            smc,
            smc_entries: 4096,
            ..CascadeConfig::default()
        });
        let (mut twin, mut twin_table) = (whole.clone(), table.clone());

        let mut pool: Vec<FlowKey> = (1..=5)
            .flat_map(|d| (0..12).map(move |port| pkt(1, d, port)))
            .collect();
        let mut tagged = pkt(4, 9, 9);
        tagged.vlans[0].tci = VLAN_CFI | 10;
        // Weighted, so whole runs of it come up often.
        pool.extend([tagged; 20]);

        let mut seed = 0x2545_f491_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        // Whole runs served by simple match, EMC, SMC, megaflow.
        let mut served = [0u32; 4];
        let mut declined = 0u32;
        for batch in 0..400u64 {
            let n = 2 + next() as usize % (MAX_BURST - 1);
            let mixed = next() % 4 == 0;
            let keys: Vec<FlowKey> = if mixed {
                (0..n).map(|_| pool[next() as usize % pool.len()]).collect()
            } else if next() % 10 < 7 {
                // Mostly the second subtable's flows: it outranks the
                // first only if a whole run credits it every packet.
                vec![pkt(1, 4, (next() % 6) as u16); n]
            } else {
                vec![pool[next() as usize % pool.len()]; n]
            };
            let maps: Vec<u64> = keys.iter().map(FlowKey::nonzero_word_map).collect();
            let hashes = hashes_of(&keys);
            let runs = if mixed {
                0
            } else {
                (u32::MAX >> (32 - n)) & !1
            };
            let now = batch * crate::dpcls::DEFAULT_SORT_INTERVAL_MS / 20;
            let (mut got, mut want) = (
                [Disposition::Miss; MAX_BURST],
                [Disposition::Miss; MAX_BURST],
            );
            let answer = (!mixed)
                .then(|| whole.lookup_whole_run(&mut table, &keys[0], maps[0], hashes[0], n, now))
                .flatten();
            match answer {
                Some((flow, level)) => {
                    got[..n].fill(Disposition::Hit { flow, level });
                    served[level as usize] += 1;
                }
                None => {
                    declined += u32::from(!mixed);
                    whole.lookup_batch_runs(&mut table, &keys, &maps, &hashes, runs, now, &mut got);
                }
            }
            twin.lookup_batch_runs(&mut twin_table, &keys, &maps, &hashes, runs, now, &mut want);
            let what = format!("{emc:?}/{smc:?} batch {batch}, {n} packets, mixed {mixed}");
            assert_eq!(got[..n], want[..n], "{what}");
            assert_eq!(whole.stats(), twin.stats(), "{what}");
        }
        // Each level that serves whole runs in this mode did, often.
        let [simple, emc_hits, smc_hits, megaflow] = served;
        let what = format!("{emc:?}/{smc:?}: {served:?}, declined {declined}");
        assert!(simple > 10 && declined > 10, "{what}");
        match (emc, smc) {
            (EmcMode::On, _) => assert!(emc_hits > 10, "{what}"),
            (EmcMode::Off, SmcMode::On) => assert!(smc_hits > 10 && megaflow > 0, "{what}"),
            (EmcMode::Off, _) => assert!(megaflow > 10, "{what}"),
            (EmcMode::Auto, _) => assert!(megaflow + smc_hits + emc_hits > 10, "{what}"),
        }
    }
}

/// 32 keys spread over the first `spread` subtables of
/// [`table_with_subtables`], the same at every call.
fn fixed_keys(spread: u8) -> Vec<FlowKey> {
    (0..32u16)
        .map(|i| {
            let mut key = pkt(1, (i % u16::from(spread)) as u8 + 1, 0);
            key.tp_dst = i;
            key
        })
        .collect()
}

#[test]
fn auto_emc_is_used_while_hits_probe_several_subtables_and_the_smc_is_not() {
    let interval = crate::dpcls::DEFAULT_SORT_INTERVAL_MS;
    let config = CascadeConfig {
        emc_insert_inv_prob: 1,
        smc: SmcMode::Off,
        ..CascadeConfig::default()
    };
    let levels = |out: &[Disposition]| -> Vec<HitLevel> {
        out.iter()
            .map(|d| match d {
                Disposition::Hit { level, .. } => *level,
                Disposition::Miss => panic!("a miss"),
            })
            .collect()
    };

    // One subtable: its hit costs less than an EMC probe. The EMC stays
    // unused, and unfilled although every hit would insert.
    let (mut table, flows) = table_with_subtables(1);
    let mut cascade = Cascade::new(config);
    assert_eq!(cascade.emc_mode(), EmcMode::Auto);
    assert!(!cascade.emc_active());
    for t in 0..3 {
        uniform_traffic(&mut cascade, &mut table, &flows, 1, 64, t * interval);
        let keys = fixed_keys(1);
        run(&mut cascade, &mut table, &keys, t * interval);
        let out = run(&mut cascade, &mut table, &keys, t * interval);
        assert!(levels(&out).iter().all(|&l| l == HitLevel::Megaflow));
    }
    assert!(!cascade.emc_active());
    assert_eq!(cascade.stats().emc_hits, 0);
    assert!(cascade.stats().to_string().contains("  emc: inactive\n"));

    // Four subtables, uniform: 2.5 lookups a hit. The re-sort turns the
    // EMC on, and a key seen again hits it.
    let (mut table, flows) = table_with_subtables(4);
    let mut cascade = Cascade::new(config);
    uniform_traffic(&mut cascade, &mut table, &flows, 4, 64, 0);
    assert!(!cascade.emc_active(), "no decision before the re-sort");
    uniform_traffic(&mut cascade, &mut table, &flows, 4, 1, interval);
    assert!(cascade.emc_active() && cascade.stats().emc_active);
    assert!(cascade.stats().to_string().contains("  emc: active\n"));
    let keys = fixed_keys(4);
    run(&mut cascade, &mut table, &keys, interval);
    let out = run(&mut cascade, &mut table, &keys, interval);
    assert!(levels(&out).iter().all(|&l| l == HitLevel::Emc));
    for (i, d) in out.iter().enumerate() {
        assert_eq!(d.flow(), Some(flows[i % 4]));
    }
    // Traffic on the best subtable only (1 lookup a hit, below 1.5):
    // off at the next re-sort that has seen enough megaflow hits.
    for t in 2..5 {
        uniform_traffic(&mut cascade, &mut table, &flows, 1, 64, t * interval);
    }
    assert!(!cascade.emc_active());
    let out = run(&mut cascade, &mut table, &keys, 5 * interval);
    assert!(levels(&out).iter().all(|&l| l == HitLevel::Megaflow));

    // Eight subtables with the SMC on auto too: 4.5 lookups a hit turn
    // the SMC on, and the EMC stays out of its way.
    let (mut table, flows) = table_with_subtables(8);
    let mut cascade = Cascade::new(CascadeConfig {
        smc: SmcMode::Auto,
        smc_entries: 4096,
        ..config
    });
    uniform_traffic(&mut cascade, &mut table, &flows, 8, 64, 0);
    uniform_traffic(&mut cascade, &mut table, &flows, 8, 1, interval);
    assert!(cascade.smc_active() && !cascade.emc_active());

    // `On` is OVS's EMC: used with one subtable too.
    let (mut table, flows) = table_with_subtables(1);
    let mut cascade = Cascade::new(CascadeConfig {
        emc: EmcMode::On,
        ..config
    });
    uniform_traffic(&mut cascade, &mut table, &flows, 1, 64, 0);
    uniform_traffic(&mut cascade, &mut table, &flows, 1, 1, interval);
    assert!(cascade.emc_active());
    let keys = fixed_keys(1);
    run(&mut cascade, &mut table, &keys, interval);
    let out = run(&mut cascade, &mut table, &keys, interval);
    assert!(levels(&out).iter().all(|&l| l == HitLevel::Emc));
}
