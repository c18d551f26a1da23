use super::*;
use crate::flow::key::{ETH_TYPE_ARP, VLAN_CFI};

fn udp_key(in_port: u32, src: [u8; 4], dst: [u8; 4], tp_dst: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = in_port;
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_proto = 17;
    k.nw_src = src;
    k.nw_dst = dst;
    k.tp_dst = tp_dst;
    k
}

fn five_tuple_mask() -> FlowKey {
    let mut m = FlowKey::ZERO;
    m.dl_type = u16::MAX;
    m.nw_proto = u8::MAX;
    m.nw_src = [0xff; 4];
    m.nw_dst = [0xff; 4];
    m.tp_dst = u16::MAX;
    m
}

#[test]
fn murmur3_x64_128_matches_reference_vectors() {
    // Reference values of MurmurHash3_x64_128 (smhasher), seed 0.
    assert_eq!(murmur3_x64_128(b"", 0), 0);
    let fox = murmur3_x64_128(b"The quick brown fox jumps over the lazy dog", 0);
    assert_eq!(fox as u64, 0xe34b_bc7b_bc07_1b6c);
    assert_eq!((fox >> 64) as u64, 0x7a43_3ca9_c49a_9347);
}

#[test]
fn ufid_generation_is_deterministic_and_depends_on_the_match() {
    let key = udp_key(1, [10, 0, 0, 1], [10, 0, 0, 2], 53);
    let mask = five_tuple_mask();
    let ufid = ufid_from_match(&key, &mask);
    assert_eq!(ufid, ufid_from_match(&key, &mask));
    // Bits outside the mask do not change it.
    let mut noisy = key;
    noisy.tp_src = 999;
    noisy.dl_src = [1; 6];
    assert_eq!(ufid, ufid_from_match(&noisy, &mask));
    // The in_port mask is always exact, whatever the installer says.
    let mut exact_port = mask;
    exact_port.in_port = u32::MAX;
    assert_eq!(ufid, ufid_from_match(&key, &exact_port));
    // A different key or a different mask gives a different UFID.
    assert_ne!(
        ufid,
        ufid_from_match(&udp_key(1, [10, 0, 0, 1], [10, 0, 0, 2], 54), &mask)
    );
    let mut wider = mask;
    wider.tp_dst = 0;
    let mut same_value_key = key;
    same_value_key.tp_dst = 0;
    assert_ne!(
        ufid_from_match(&same_value_key, &mask),
        ufid_from_match(&same_value_key, &wider)
    );
    // Pinned value: a change to the function breaks UFIDs across restarts.
    let mut table: FlowTable<()> = FlowTable::default();
    let r = table.insert(&key, &mask, None, (), 0).expect("insert");
    assert_eq!(table.get(r).expect("live").ufid(), ufid);
    assert_eq!(UfidDisplay(ufid).to_string().len(), "ufid:".len() + 36);
}

#[test]
fn murmur3_words_equals_murmur3_of_the_bytes() {
    // The streaming form must be the byte function, for every length
    // parity (a word left pending for the tail, or not).
    let words: Vec<u64> = (0..11u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 7))
        .collect();
    for n in 0..=words.len() {
        let mut h = Murmur3Words::new(0);
        let mut bytes = Vec::new();
        for w in &words[..n] {
            h.write(*w);
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(h.finish(), murmur3_x64_128(&bytes, 0), "{n} words");
    }
}

#[test]
fn ufid_is_a_version_4_uuid_and_pinned() {
    let key = udp_key(1, [10, 0, 0, 1], [10, 0, 0, 2], 53);
    let ufid = ufid_from_match(&key, &five_tuple_mask());
    let text = UfidDisplay(ufid).to_string();
    // ufid:xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx, as OVS's UFIDs.
    assert_eq!(&text[19..20], "4", "{text}");
    assert!("89ab".contains(&text[24..25]), "{text}");
    // The documented encoding, built by hand: the word map, then each
    // masked word's mask and masked key, hashed as bytes.
    let mut mask = five_tuple_mask();
    mask.in_port = u32::MAX;
    let masked = key.masked(&mask);
    let mut bytes = mask.nonzero_word_map().to_le_bytes().to_vec();
    for i in 0..crate::flow::FLOW_U64S {
        if mask.words()[i] != 0 {
            bytes.extend_from_slice(&mask.words()[i].to_le_bytes());
            bytes.extend_from_slice(&masked.words()[i].to_le_bytes());
        }
    }
    let h = murmur3_x64_128(&bytes, 0);
    let version_variant_bits = (0xf000u128 << 32) | (0xc000_0000u128 << 64);
    assert_eq!(ufid & !version_variant_bits, h & !version_variant_bits);
    // Pinned: the UFID of a match must not change between builds that
    // keep the encoding (dumps, logs and tests name flows by it).
    assert_eq!(text, "ufid:5a475a71-3a50-4232-95dc-a9f28ce3f15c");
}

#[test]
fn ufids_of_distinct_matches_are_distinct() {
    // Many matches that differ in one key bit, in which words the mask
    // covers, or only in a mask bit whose key bit is 0: no two share a
    // UFID (the encoding is injective; a 122-bit collision here would be
    // a bug, not bad luck).
    let mut seen = std::collections::HashSet::new();
    let mut ufids = std::collections::HashSet::new();
    let mut count = 0;
    let masks = {
        let mut v = vec![FlowKey::ZERO, five_tuple_mask()];
        let mut m = five_tuple_mask();
        m.tp_src = u16::MAX;
        v.push(m);
        let mut m = FlowKey::ZERO;
        m.nw_src = [0xff, 0xff, 0xff, 0];
        v.push(m);
        let mut m = FlowKey::ZERO;
        m.dl_dst = [0xff; 6];
        v.push(m);
        v
    };
    for mask in &masks {
        for i in 0..20_000u32 {
            let b = i.to_be_bytes();
            let key = udp_key(1 + i % 3, [10, b[1], b[2], b[3]], [0; 4], (i % 7) as u16);
            let mut masked = key.masked(mask);
            masked.in_port = key.in_port;
            if seen.insert((masked.words().to_vec(), mask.words().to_vec())) {
                count += 1;
                let ufid = ufid_from_match(&key, mask);
                assert!(
                    ufids.insert(ufid),
                    "collision at match {count}: {}",
                    UfidDisplay(ufid)
                );
            }
        }
    }
    assert!(count > 40_000, "{count} distinct matches");
}

#[test]
fn ufid_display_matches_ovs_layout() {
    let ufid = 0x0000_0004_0000_0003_0000_0002_0000_0001u128;
    assert_eq!(
        UfidDisplay(ufid).to_string(),
        "ufid:00000001-0000-0002-0000-000300000004"
    );
}

#[test]
fn insert_find_modify_remove() {
    let mut table: FlowTable<&'static str> = FlowTable::default();
    let key = udp_key(3, [1, 1, 1, 1], [2, 2, 2, 2], 80);
    let r = table
        .insert(&key, &five_tuple_mask(), Some(77), "out:1", 5)
        .expect("insert");
    assert_eq!(table.len(), 1);
    assert_eq!(table.find_ufid(77), Some(r));
    assert_eq!(table.find_match(&key, &five_tuple_mask()), Some(r));
    assert_eq!(table.mask_count(3), 1);
    assert_eq!(table.mask_count(4), 0);
    let (masked, mask) = table.flow_match(r).expect("match");
    assert_eq!(masked, key);
    assert_eq!(mask.in_port, u32::MAX);
    assert_eq!(table.get(r).expect("live").created_ms(), 5);

    assert_eq!(
        table.insert(&key, &five_tuple_mask(), Some(77), "x", 0),
        Err(FlowTableError::UfidExists { ufid: 77 })
    );
    assert_eq!(
        table.insert(&key, &five_tuple_mask(), Some(78), "x", 0),
        Err(FlowTableError::MatchExists { ufid: 77 })
    );

    table.record_use(r, 2, 120, 0x12, 10);
    assert_eq!(table.modify_actions(77, "out:2", false), Ok("out:1"));
    let flow = table.get(r).expect("still live after modify");
    assert_eq!(flow.actions, "out:2");
    assert_eq!(flow.stats.packets, 2);
    assert_eq!(flow.stats.bytes, 120);
    assert_eq!(flow.stats.tcp_flags, 0x12);
    assert_eq!(flow.stats.used_ms, 10);
    assert_eq!(table.modify_actions(77, "out:3", true), Ok("out:2"));
    assert_eq!(table.get(r).expect("live").stats, FlowStats::default());
    assert_eq!(
        table.modify_actions(1, "x", false),
        Err(FlowTableError::NoSuchFlow { ufid: 1 })
    );

    let removed = table.remove(77).expect("remove");
    assert_eq!(removed.actions, "out:3");
    assert_eq!(removed.key, key);
    assert!(!table.is_live(r));
    assert_eq!(table.find_ufid(77), None);
    assert_eq!(table.mask_count(3), 0);
    assert!(table.is_empty());
    assert_eq!(
        table.remove(77).map(|_| ()),
        Err(FlowTableError::NoSuchFlow { ufid: 77 })
    );
}

#[test]
fn limits_are_enforced_and_named() {
    let mut table: FlowTable<u8> = FlowTable::new(FlowTableConfig {
        max_flows: 2,
        ..FlowTableConfig::default()
    });
    table
        .insert(
            &udp_key(1, [1; 4], [1; 4], 1),
            &five_tuple_mask(),
            None,
            0,
            0,
        )
        .expect("1");
    table
        .insert(
            &udp_key(1, [1; 4], [1; 4], 2),
            &five_tuple_mask(),
            None,
            0,
            0,
        )
        .expect("2");
    assert_eq!(
        table.insert(
            &udp_key(1, [1; 4], [1; 4], 3),
            &five_tuple_mask(),
            None,
            0,
            0
        ),
        Err(FlowTableError::TableFull { limit: 2 })
    );

    let mut table: FlowTable<u8> = FlowTable::default();
    table.set_max_subtables(1);
    table
        .insert(
            &udp_key(1, [1; 4], [1; 4], 1),
            &five_tuple_mask(),
            None,
            0,
            0,
        )
        .expect("first mask");
    let err = table
        .insert(
            &udp_key(1, [1; 4], [1; 4], 1),
            &FlowKey::exact_mask(),
            None,
            0,
            0,
        )
        .expect_err("second mask on port 1");
    assert_eq!(
        err,
        FlowTableError::SubtableLimit {
            in_port: 1,
            limit: 1
        }
    );
    assert!(err.to_string().contains("in_port 1"));
    assert_eq!(table.subtable_limit_hits(), 1);
    // Another port has its own classifier and budget.
    table
        .insert(
            &udp_key(2, [1; 4], [1; 4], 1),
            &FlowKey::exact_mask(),
            None,
            0,
            0,
        )
        .expect("port 2");
    assert_eq!(table.total_mask_count(), 2);
    assert_eq!(table.len(), 2);
}

#[test]
fn stale_refs_die_and_reused_slots_get_new_generations() {
    let mut table: FlowTable<u8> = FlowTable::default();
    let a = table
        .insert(
            &udp_key(1, [1; 4], [1; 4], 1),
            &five_tuple_mask(),
            None,
            1,
            0,
        )
        .expect("a");
    let ufid = table.get(a).expect("live").ufid();
    table.remove(ufid).expect("rm");
    let b = table
        .insert(
            &udp_key(1, [1; 4], [1; 4], 2),
            &five_tuple_mask(),
            None,
            2,
            0,
        )
        .expect("b");
    assert_eq!(a.index(), b.index());
    assert_ne!(a.generation(), b.generation());
    assert!(table.get(a).is_none());
    assert_eq!(table.get(b).expect("b").actions, 2);
    assert_eq!(table.iter().count(), 1);
    table.clear();
    assert!(table.is_empty());
    assert_eq!(table.total_mask_count(), 0);
}

#[test]
fn simple_match_flows_are_recognised() {
    let mut table: FlowTable<u8> = FlowTable::default();
    let (with_frag, without_frag) = simple_masks();
    let mut ip = FlowKey::ZERO;
    ip.in_port = 5;
    ip.dl_type = ETH_TYPE_IPV4;
    ip.vlans[0].tci = VLAN_CFI | 100;
    let r = table.insert(&ip, &with_frag, None, 1, 0).expect("ip");
    assert!(table.get(r).expect("live").is_simple());
    assert!(table.simple_match_enabled(5));
    let mut packet = ip;
    packet.nw_src = [9, 9, 9, 9];
    packet.vlans[0].tci |= 0xe000; // PCP is not matched
    assert_eq!(table.simple_lookup(&packet), Some(r));
    packet.nw_frag = FLOW_NW_FRAG_ANY;
    assert_eq!(table.simple_lookup(&packet), None);

    // Non-IP without fragment bits is simple; IP without them is not.
    let mut arp = ip;
    arp.dl_type = ETH_TYPE_ARP;
    let ra = table.insert(&arp, &without_frag, None, 2, 0).expect("arp");
    assert!(table.get(ra).expect("live").is_simple());
    let mut ip6 = ip;
    ip6.dl_type = ETH_TYPE_IPV6;
    let r6 = table.insert(&ip6, &without_frag, None, 3, 0).expect("ip6");
    assert!(!table.get(r6).expect("live").is_simple());
    assert!(
        !table.simple_match_enabled(5),
        "one non-simple flow disables"
    );
    table
        .remove(table.get(r6).expect("live").ufid())
        .expect("rm");
    assert!(table.simple_match_enabled(5));
    table
        .remove(table.get(r).expect("live").ufid())
        .expect("rm");
    assert_eq!(table.simple_lookup(&ip), None);

    let mut off: FlowTable<u8> = FlowTable::new(FlowTableConfig {
        simple_match: false,
        ..FlowTableConfig::default()
    });
    off.insert(&ip, &with_frag, None, 1, 0).expect("ip");
    assert!(!off.simple_match_enabled(5));
}

#[test]
fn untagged_flows_matching_only_the_cfi_bit_are_simple() {
    // What ofproto-lite installs for `in_port=5,actions=...` on untagged
    // IPv4: in_port, recirc_id, packet_type, dl_type, fragment bits and
    // the CFI bit (tag presence) as 0.
    let (with_frag, _) = simple_masks();
    let mut mask = with_frag;
    mask.vlans[0].tci = VLAN_CFI;
    let mut ip = FlowKey::ZERO;
    ip.in_port = 5;
    ip.dl_type = ETH_TYPE_IPV4;
    let mut table: FlowTable<u8> = FlowTable::default();
    let r = table.insert(&ip, &mask, None, 1, 0).expect("insert");
    assert!(table.get(r).expect("live").is_simple());
    assert!(table.simple_match_enabled(5));
    let mut packet = ip;
    packet.nw_src = [9, 9, 9, 9];
    packet.tp_src = 1234;
    assert_eq!(table.simple_lookup(&packet), Some(r));
    // A tagged packet does not match the flow, and misses the table.
    for tci in [VLAN_CFI, VLAN_CFI | 7, VLAN_CFI | 0xe000] {
        packet.vlans[0].tci = tci;
        assert!(!packet.matches_masked(&mask, &ip.masked(&mask)));
        assert_eq!(table.simple_lookup(&packet), None, "tci {tci:#x}");
    }
    // Removal finds the same simple key.
    table
        .remove(table.get(r).expect("live").ufid())
        .expect("rm");
    assert_eq!(table.simple_lookup(&ip), None);
    assert!(!table.simple_match_enabled(5));

    // CFI as 1 (any VLAN) is not an exact VID: not simple.
    let mut tagged = ip;
    tagged.vlans[0].tci = VLAN_CFI;
    let r = table.insert(&tagged, &mask, None, 2, 0).expect("insert");
    assert!(!table.get(r).expect("live").is_simple());
}

#[test]
fn re_ranking_runs_once_per_interval_for_all_ports() {
    let mut table: FlowTable<u8> = FlowTable::default();
    for port in 1..=3 {
        table
            .insert(
                &udp_key(port, [1; 4], [1; 4], 1),
                &five_tuple_mask(),
                None,
                0,
                0,
            )
            .expect("insert");
    }
    assert!(!table.maybe_sort(5), "first call starts the clock");
    assert!(!table.maybe_sort(1004));
    assert!(table.maybe_sort(1005));
    assert!(!table.maybe_sort(1500));
    assert!(table.maybe_sort(2005));
}

/// Inserts alternating between masks (the remembered mask changes at
/// every insert, or stays) install exactly what a fresh table would: the
/// generated UFID is `ufid_from_match`'s, the stored match is `key & mask`
/// with `in_port` exact, and each key finds its own flow. The masks
/// include the all-wildcard one (the memo's initial value) and one with
/// `in_port` wildcarded.
#[test]
fn inserts_under_alternating_masks_store_each_flows_own_match() {
    let mut dst_only = FlowKey::ZERO;
    dst_only.dl_type = u16::MAX;
    dst_only.nw_dst = [255; 4];
    let masks = [
        five_tuple_mask(),
        dst_only,
        FlowKey::ZERO,
        five_tuple_mask(),
    ];
    let mut table: FlowTable<u32> = FlowTable::default();
    let mut installed = Vec::new();
    for i in 0..40u8 {
        // Two inserts per mask in a row, then the next mask.
        let mask = masks[usize::from(i / 2) % masks.len()];
        let in_port = 1 + u32::from(i);
        let key = udp_key(in_port, [10, 0, 0, i], [10, 1, 0, i], 80);
        let r = table
            .insert(&key, &mask, None, u32::from(i), 0)
            .expect("insert");
        let mut exact_port = mask;
        exact_port.in_port = u32::MAX;
        let f = table.get(r).expect("live");
        assert_eq!(f.ufid(), ufid_from_match(&key, &mask), "insert {i}");
        let (masked, stored) = table.flow_match(r).expect("match");
        assert_eq!(masked, key.masked(&exact_port), "insert {i}");
        assert_eq!(stored.words()[..], exact_port.words()[..], "insert {i}");
        installed.push((key, r));
    }
    for (key, r) in installed {
        let mut found = [0u32; crate::packet::MAX_BURST];
        let res = table.classify_batch(key.in_port, std::slice::from_ref(&key), 1, &mut found);
        assert_eq!(res.found & 1, 1);
        assert_eq!(table.flow_at(found[0]), r);
    }
}

/// A flow refused for its UFID leaves nothing behind, whichever other
/// refusal would also apply (the classifier insert now runs before the
/// UFID probe and is undone): the UFID wins, no rule, mask or port
/// classifier stays, and the counters do not move.
#[test]
fn a_flow_refused_for_its_ufid_leaves_no_trace() {
    let mut table: FlowTable<u8> = FlowTable::new(FlowTableConfig {
        max_flows: 2,
        ..FlowTableConfig::default()
    });
    let first = udp_key(3, [1; 4], [1; 4], 1);
    table
        .insert(&first, &five_tuple_mask(), Some(77), 0, 0)
        .expect("first");
    // Another match under the same UFID: same mask, new mask, new port.
    let other = udp_key(3, [2; 4], [2; 4], 2);
    // A key that differs from `first` only in a bit where `other` does
    // too: the subtable's filter rejects it while `first` is its only
    // rule, and would let it through had `other` been inserted (an
    // insert narrows the filter to the bits its rules agree on).
    let probe = udp_key(3, [3; 4], [1; 4], 1);
    let admits = |table: &FlowTable<u8>| {
        table
            .classifier(3)
            .expect("port 3 has flows")
            .any_filter_admits(&probe)
    };
    assert!(!admits(&table));
    for (key, mask) in [
        (other, five_tuple_mask()),
        (other, FlowKey::exact_mask()),
        (udp_key(5, [2; 4], [2; 4], 2), five_tuple_mask()),
    ] {
        assert_eq!(
            table.insert(&key, &mask, Some(77), 1, 0),
            Err(FlowTableError::UfidExists { ufid: 77 })
        );
        assert_eq!(table.find_match(&key, &mask), None);
    }
    assert_eq!(table.len(), 1);
    assert_eq!(table.mask_count(3), 1);
    assert!(!admits(&table), "a refused flow narrowed the filter");
    assert_eq!(table.mask_count(5), 0);
    assert!(table.classifier(5).is_none());
    // The same match again: its UFID, not its match, is named.
    assert_eq!(
        table.insert(&first, &five_tuple_mask(), Some(77), 1, 0),
        Err(FlowTableError::UfidExists { ufid: 77 })
    );
    // A full table and a subtable limit yield to the UFID as well.
    table
        .insert(&other, &five_tuple_mask(), Some(78), 1, 0)
        .expect("the refused match was not left in the classifier");
    assert_eq!(
        table.insert(
            &udp_key(3, [9; 4], [9; 4], 9),
            &five_tuple_mask(),
            Some(78),
            2,
            0
        ),
        Err(FlowTableError::UfidExists { ufid: 78 })
    );
    assert_eq!(
        table.insert(
            &udp_key(3, [9; 4], [9; 4], 9),
            &five_tuple_mask(),
            Some(79),
            2,
            0
        ),
        Err(FlowTableError::TableFull { limit: 2 })
    );
    table.remove(78).expect("remove");
    table.set_max_subtables(1);
    assert_eq!(
        table.insert(&other, &FlowKey::exact_mask(), Some(77), 2, 0),
        Err(FlowTableError::UfidExists { ufid: 77 })
    );
    assert_eq!(table.subtable_limit_hits(), 0);
    assert_eq!(
        table.classifier(3).map(Dpcls::subtable_limit_hits),
        Some(0),
        "the classifier counted a flow refused for its UFID"
    );
    assert_eq!(
        table
            .find_ufid(77)
            .and_then(|r| table.get(r))
            .map(|f| f.actions),
        Some(0)
    );
    assert_eq!(table.len(), 1);
}

/// The slot array grows in large steps but never past the flow limit,
/// and every flow stays where it was put across the growths.
#[test]
fn slots_grow_in_steps_within_the_flow_limit() {
    let limit = 3000;
    let mut table: FlowTable<u32> = FlowTable::new(FlowTableConfig {
        max_flows: limit,
        ..FlowTableConfig::default()
    });
    let key = |i: u32| udp_key(1, i.to_be_bytes(), [1; 4], 1);
    let mut refs = Vec::new();
    for i in 0..limit as u32 {
        refs.push(
            table
                .insert(&key(i), &five_tuple_mask(), None, i, 0)
                .expect("under the limit"),
        );
        assert!(
            table.slots.capacity() <= limit,
            "{} slots",
            table.slots.capacity()
        );
    }
    assert_eq!(table.slots.capacity(), limit);
    for (i, r) in refs.into_iter().enumerate() {
        assert_eq!(table.get(r).map(|f| f.actions), Some(i as u32));
        assert_eq!(
            table.find_match(&key(i as u32), &five_tuple_mask()),
            Some(r)
        );
    }
}

/// The remembering UFID function gives exactly `ufid_from_match`'s
/// value, for keys under alternating masks (a mask change must not leave
/// the last mask's words or map behind).
#[test]
fn ufid_from_match_memo_equals_ufid_from_match() {
    let mut exact = FlowKey::exact_mask();
    exact.in_port = 0;
    let masks = [five_tuple_mask(), exact, FlowKey::ZERO, five_tuple_mask()];
    for i in 0..64u32 {
        let key = udp_key(i % 3, i.to_be_bytes(), [9, 9, 9, i as u8], i as u16);
        for mask in &masks[(i as usize % 2)..] {
            assert_eq!(
                ufid_from_match_memo(&key, mask),
                ufid_from_match(&key, mask),
                "key {i}"
            );
        }
    }
}

/// What a hit reads of its slot (generation, port, rule handle, the
/// actions, the statistics it adds to) lies on the slot's first cache
/// line, with the datapath's action payload (an `Arc<[_]>`), and each
/// slot starts a line: see `Slot`.
#[test]
fn a_hit_reads_one_line_of_its_slot() {
    type S = Slot<std::sync::Arc<[u64]>>;
    type F = Flow<std::sync::Arc<[u64]>>;
    assert_eq!(align_of::<S>(), 64);
    let flow = std::mem::offset_of!(S, flow);
    let hot_end = [
        std::mem::offset_of!(S, generation) + 4,
        std::mem::offset_of!(S, in_port) + 4,
        std::mem::offset_of!(S, rule) + size_of::<RuleHandle>(),
        // `Option<Flow>` stores no tag: the `Arc`'s niche says `None`.
        flow + std::mem::offset_of!(F, actions) + size_of::<std::sync::Arc<[u64]>>(),
        flow + std::mem::offset_of!(F, stats) + size_of::<FlowStats>(),
    ];
    assert_eq!(size_of::<Option<F>>(), size_of::<F>());
    assert!(
        hot_end.iter().all(|&end| end <= 64),
        "hot fields end at {hot_end:?}"
    );
    assert!(flow + std::mem::offset_of!(F, ufid) >= 64);
}
