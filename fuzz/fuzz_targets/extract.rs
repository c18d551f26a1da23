//! Flow-key extraction on arbitrary frames: must not panic, offsets must lie
//! inside the frame, and the fields etherparse also understands must agree
//! with it (differential fuzzing). The simple-match light parse, whenever
//! it answers, must agree with the full extraction: its fields and the
//! header offsets it writes.
#![no_main]

use dp_core::flow::simple::parse_simple;
use dp_core::flow::{FlowKey, extract_frame, oracle};
use dp_core::packet::{OFS_NONE, PacketMetadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let meta = PacketMetadata::new(1);
    let mut key = FlowKey::ZERO;
    let offsets = extract_frame(frame, &meta, &mut key);
    for ofs in [offsets.l2_5, offsets.l3, offsets.l4] {
        assert!(ofs == OFS_NONE || usize::from(ofs) <= frame.len(), "offset {ofs} past {}", frame.len());
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
        assert_eq!(simple_offsets, offsets, "simple parse offsets disagree with extraction");
    }
});
