//! Flow-key extraction on arbitrary frames: must not panic, offsets must lie
//! inside the frame, and the fields etherparse also understands must agree
//! with it (differential fuzzing). The simple-match light parse, whenever
//! it answers, must agree with the full extraction: its fields and the
//! header offsets it writes. Extraction into a reused key slot
//! (`extract_reusing`, the PMD's path) must give the same key, word map,
//! offsets and hash as the fresh extraction, whatever key the slot held,
//! for a packet with written metadata and a fresh one. A batch of the
//! frame repeated and changed in one byte (`prepare_batch_runs`, which
//! copies a repeated frame's key) must give every packet the fresh
//! extraction's key, map, offsets and hash.
#![no_main]

use std::sync::LazyLock;

use dp_core::cascade::prepare_batch_runs;
use dp_core::flow::hash::{hash_5tuple, packet_rss_hash};
use dp_core::flow::simple::parse_simple;
use dp_core::flow::{FlowKey, extract_frame, extract_frame_mapped, extract_reusing, oracle};
use dp_core::packet::{MAX_BURST, OFS_NONE, PacketBatch, PacketMetadata, PacketPool, PoolConfig};
use libfuzzer_sys::fuzz_target;

static POOL: LazyLock<PacketPool> =
    LazyLock::new(|| PacketPool::new("fuzz-extract", PoolConfig::heap(2)));
static RUNS_POOL: LazyLock<PacketPool> =
    LazyLock::new(|| PacketPool::new("fuzz-extract-runs", PoolConfig::heap(8)));

/// A slot left holding the key of an 802.1ad + 802.1Q tagged IPv6/TCP
/// frame (many words set), and its map.
fn dirty_slot() -> (FlowKey, u64) {
    let mut f = vec![
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x88, 0xa8, 0, 5, 0x81, 0, 0, 7,
    ];
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0x0a, 0xbc, 0xde, 0, 20, 6, 255]);
    f.extend_from_slice(&[0xfe; 32]);
    f.extend_from_slice(&[
        0, 80, 0x1f, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12, 0xff, 0xff,
    ]);
    f.extend_from_slice(&[0; 4]);
    let mut key = FlowKey::ZERO;
    let (_, map) = extract_frame_mapped(&f, &PacketMetadata::new(9), &mut key);
    (key, map)
}

fuzz_target!(|frame: &[u8]| {
    let meta = PacketMetadata::new(1);
    let mut key = FlowKey::ZERO;
    let offsets = extract_frame(frame, &meta, &mut key);
    for ofs in [offsets.l2_5, offsets.l3, offsets.l4] {
        assert!(
            ofs == OFS_NONE || usize::from(ofs) <= frame.len(),
            "offset {ofs} past {}",
            frame.len()
        );
    }
    assert!(usize::from(offsets.l2_pad) <= frame.len());
    if let Err(diff) = oracle::compare_with_etherparse(frame, &key) {
        panic!("extraction disagrees with etherparse: {diff}");
    }
    if let Some((fields, simple_offsets)) = parse_simple(frame, &meta) {
        assert_eq!(
            (fields.dl_type, fields.tci, fields.nw_frag, fields.tcp_flags),
            (key.dl_type, key.vlans[0].tci, key.nw_frag, key.tcp_flags),
            "simple parse (dl_type, tci, nw_frag, tcp_flags) disagrees with extraction"
        );
        assert_eq!(
            simple_offsets, offsets,
            "simple parse offsets disagree with extraction"
        );
    }
    let mut mapped = FlowKey::ZERO;
    let (_, map) = extract_frame_mapped(frame, &meta, &mut mapped);
    let (slot_start, slot_map) = dirty_slot();
    let slots = [(slot_start, slot_map), (key, map), (FlowKey::ZERO, 0)];
    for ((mut slot, old_map), fresh) in slots.into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let Some(mut packet) = POOL.alloc_from(frame) else {
            return;
        };
        if fresh {
            packet.set_in_port(1);
        } else {
            packet.meta_mut().in_port = 1;
        }
        let new_map = extract_reusing(&mut packet, &mut slot, old_map);
        assert_eq!(slot, key, "a reused slot differs from a fresh extraction");
        assert_eq!(new_map, map, "a reused slot's word map differs");
        assert_eq!(
            packet.meta().offsets,
            offsets,
            "a reused slot's offsets differ"
        );
        assert_eq!(packet_rss_hash(&mut packet, &slot), hash_5tuple(&key, 0));
    }
    runs(frame);
});

/// The frame, again, changed in one byte of its first 64 (picked by its
/// last byte), again, and the frame: through `prepare_batch_runs` into
/// dirty slots, each packet's key, map, offsets and hash must be the
/// fresh extraction's.
fn runs(frame: &[u8]) {
    let mut near = frame.to_vec();
    if let Some(&last) = frame.last() {
        let at = usize::from(last) % near.len().min(64);
        near[at] ^= last | 1;
    }
    let frames = [frame, frame, &near[..], &near[..], frame];
    let mut batch = PacketBatch::new();
    for f in frames {
        let Some(mut packet) = RUNS_POOL.alloc_from(f) else {
            return;
        };
        packet.set_in_port(1);
        if batch.push(packet).is_err() {
            return;
        }
    }
    let (dirty, dirty_map) = dirty_slot();
    let mut keys = [dirty; MAX_BURST];
    let mut maps = [dirty_map; MAX_BURST];
    let mut hashes = [0; MAX_BURST];
    let (n, _) = prepare_batch_runs(&mut batch, &mut keys, &mut maps, &mut hashes);
    assert_eq!(n, frames.len());
    let meta = PacketMetadata::new(1);
    for (i, f) in frames.iter().enumerate() {
        let mut key = FlowKey::ZERO;
        let (offsets, map) = extract_frame_mapped(f, &meta, &mut key);
        assert_eq!(keys[i], key, "run slot {i} differs from a fresh extraction");
        assert_eq!(maps[i], map, "run slot {i}'s word map differs");
        let packet = batch.get(i).expect("packet");
        assert_eq!(
            packet.meta().offsets,
            offsets,
            "run packet {i}'s offsets differ"
        );
        assert_eq!(
            hashes[i],
            hash_5tuple(&key, 0),
            "run packet {i}'s hash differs"
        );
    }
}
