//! Entry points for the fuzz target (`fuzz/fuzz_targets/windows_msg.rs`)
//! and the property tests beside them: the control-message decoder with
//! every typed reader, and the userspace ring consumer facing a hostile
//! shim driven by a sequence of operations.

use std::sync::Arc;

use dp_core::packet::{Packet, PacketBatch, PacketPool, PoolConfig};

use crate::bad_input::BadInputCounters;
use crate::codec::{Decoded, RingGrant, VportInfo, check_command, decode_all};
use crate::contract::*;
use crate::device::Doorbell;
use crate::netdev::{QueueFrames, queue_pair};
use crate::ring::{Layout, PuntDesc, heap_region};
use dp_core::netdev::{RxQueue, TxQueue};

/// Decodes `data` as a buffer of control messages and runs every typed
/// reader over each; returns how many messages decoded.
pub fn control_messages(data: &[u8]) -> usize {
    let Ok(all) = decode_all(data) else {
        return 0;
    };
    for m in &all {
        if let Decoded::Genl(m) = m {
            let _ = check_command(m.family(), m.cmd);
            let _ = VportInfo::read(m);
            let _ = RingGrant::read(m);
            let _ = m.u32_list(ATTR_PACKET_OUT_PORTS);
            let _ = m.str(ATTR_VPORT_NAME);
            let _ = m.attrs().count();
        }
    }
    all.len()
}

#[derive(Debug)]
struct NoDoorbell;

impl Doorbell for NoDoorbell {
    fn ring(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Plays a shim that writes `data`-chosen indices and descriptors into a
/// region while the userspace rx and tx queues consume it. Panics if a
/// frame is lost or lent twice (the fuzz target's oracle). Returns the
/// packets received and sent.
pub fn ring_consumer(data: &[u8]) -> (usize, usize) {
    const PORT: u32 = 7;
    let layout = Layout::new(8, 24, 2048).expect("layout");
    let region = heap_region(layout.size);
    layout.init_header(&region);
    let bad = Arc::new(BadInputCounters::default());
    let frames = QueueFrames::new(region, layout, Arc::clone(&bad));
    let pool = PacketPool::new("fuzz", PoolConfig::metadata_only(64));
    let heap = PacketPool::new("fuzz-heap", PoolConfig::heap(8));
    let (mut rx, mut tx) = queue_pair(&frames, PORT, &pool, Box::new(NoDoorbell));
    let r = &frames.region;
    let word = |ring: usize, which: usize| r.atomic_u32(ring + which);
    let mut held: Vec<Packet> = Vec::new();
    let (mut received, mut sent) = (0, 0);
    // The honest shim's own view of the rings it consumes/produces.
    let (mut fill_cons, mut punt_prod, mut inject_cons, mut comp_prod) = (0u32, 0u32, 0u32, 0u32);
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        match op % 8 {
            0 => {
                let mut batch = PacketBatch::new();
                let _ = rx.recv(&mut batch);
                received += batch.len();
                held.extend(batch.drain());
            }
            1 => {
                // A producer index anywhere (possibly out of range).
                punt_prod = punt_prod.wrapping_add(u32::from(arg) % 12);
                word(layout.punt.base, 0).store(punt_prod, std::sync::atomic::Ordering::Release);
            }
            2 => {
                // A raw descriptor of garbage at slot `arg`.
                let mut d = [0u8; 16];
                for b in &mut d {
                    *b = bytes.next().unwrap_or(0);
                }
                let slot = layout.punt.base + 192 + (usize::from(arg) % 8) * 16;
                r.write(slot, &d);
            }
            3 => {
                // Completion of a frame index chosen by the input.
                let slot = layout.completion.base + 192 + (comp_prod as usize % 8) * 4;
                r.write(slot, &u32::from(arg % 30).to_le_bytes());
                comp_prod = comp_prod.wrapping_add(1);
                word(layout.completion.base, 0)
                    .store(comp_prod, std::sync::atomic::Ordering::Release);
            }
            4 => {
                let mut batch = PacketBatch::new();
                for _ in 0..(arg % 4) {
                    if let Some(p) = heap.alloc_from(&[arg; 60]) {
                        let _ = batch.push(p);
                    }
                }
                sent += tx.send(&mut batch).sent;
            }
            5 => {
                // An honest punt of what the fill ring offers.
                let prod = word(layout.fill.base, 0).load(std::sync::atomic::Ordering::Acquire);
                let cons_punt =
                    word(layout.punt.base, 64).load(std::sync::atomic::Ordering::Acquire);
                while fill_cons != prod && punt_prod.wrapping_sub(cons_punt) < 8 {
                    let slot = layout.fill.base + 192 + (fill_cons as usize % 8) * 4;
                    let f: [u8; 4] = r.read(slot);
                    let desc = PuntDesc {
                        frame: u32::from_le_bytes(f),
                        offset: u16::from(arg),
                        len: 60,
                        src_port: if arg == 255 { 9 } else { PORT },
                        meta: 0,
                    };
                    let pslot = layout.punt.base + 192 + (punt_prod as usize % 8) * 16;
                    r.write(pslot, &desc.to_bytes());
                    punt_prod = punt_prod.wrapping_add(1);
                    fill_cons = fill_cons.wrapping_add(1);
                }
                word(layout.fill.base, 64).store(fill_cons, std::sync::atomic::Ordering::Release);
                word(layout.punt.base, 0).store(punt_prod, std::sync::atomic::Ordering::Release);
            }
            6 => {
                // An honest completion of everything injected.
                let prod = word(layout.inject.base, 0).load(std::sync::atomic::Ordering::Acquire);
                while inject_cons != prod {
                    let slot = layout.inject.base + 192 + (inject_cons as usize % 8) * 32;
                    let d: [u8; 4] = r.read(slot);
                    let cslot = layout.completion.base + 192 + (comp_prod as usize % 8) * 4;
                    r.write(cslot, &d);
                    comp_prod = comp_prod.wrapping_add(1);
                    inject_cons = inject_cons.wrapping_add(1);
                }
                word(layout.inject.base, 64)
                    .store(inject_cons, std::sync::atomic::Ordering::Release);
                word(layout.completion.base, 0)
                    .store(comp_prod, std::sync::atomic::Ordering::Release);
            }
            _ => held.truncate(usize::from(arg) % 4),
        }
        // No frame is lent twice: each held packet has a distinct frame.
        let mut ptrs: Vec<usize> = held
            .iter()
            .filter_map(|p| p.foreign().map(|f| f.bytes().as_ptr() as usize))
            .collect();
        ptrs.sort_unstable();
        ptrs.dedup();
        assert_eq!(ptrs.len(), held.len(), "a frame lent twice");
        assert_eq!(frames.lent(), held.len());
    }
    drop(held);
    assert_eq!(frames.lent(), 0);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(heap.in_use(), 0);
    // Every frame is either free or with the shim: none lost.
    assert_eq!(
        frames.free_count() + frames.held_by_shim(),
        layout.n_frames as usize
    );
    (received, sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no extra dependency).
    fn inputs(n: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n).map(move |i| {
            let len = 16 + i % 400;
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect()
        })
    }

    #[test]
    fn ring_consumer_survives_hostile_shims_and_loses_no_frame() {
        for input in inputs(3000) {
            let _ = ring_consumer(&input);
        }
    }

    #[test]
    fn honest_shim_sequence_moves_packets_both_ways() {
        // fill+punt honestly, receive, send, complete, repeat.
        let script: Vec<u8> = [0u8, 0, 5, 0, 0, 0, 4, 3, 6, 0, 7, 0, 5, 0, 0, 0, 7, 0].repeat(20);
        let (received, sent) = ring_consumer(&script);
        assert!(
            received >= 20 && sent >= 20,
            "received {received}, sent {sent}"
        );
    }

    #[test]
    fn control_messages_survive_random_bytes() {
        for input in inputs(3000) {
            control_messages(&input);
        }
    }
}
