//! Flow-key extraction on arbitrary frames: must not panic, offsets must lie
//! inside the frame, and the fields etherparse also understands must agree
//! with it (differential fuzzing).
#![no_main]

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
});
