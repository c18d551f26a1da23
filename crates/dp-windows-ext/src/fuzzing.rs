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
    // Pools live for the thread (dp-core leaks each pool's small header
    // on purpose; one pair per run would read as a leak to the fuzzer).
    thread_local! {
        static POOLS: (PacketPool, PacketPool) = (
            PacketPool::new("fuzz", PoolConfig::metadata_only(64)),
            PacketPool::new("fuzz-heap", PoolConfig::heap(8)),
        );
    }
    let (pool, heap) = &POOLS.with(|p| p.clone());
    assert_eq!((pool.in_use(), heap.in_use()), (0, 0));
    let (mut rx, mut tx) = queue_pair(&frames, PORT, pool, Box::new(NoDoorbell));
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

/// The ring contract alone, for the throughput numbers: a shim thread
/// punts 60-byte frames from the fill ring and completes injects, while
/// the calling thread receives bursts of up to 32 through a `windows` rx
/// queue and sends them back through the tx queue. Returns the packets
/// forwarded (each punted once and injected once) in `duration`. With
/// `threads == false` both sides take turns on the calling thread, which
/// gives the contract's CPU cost per packet without scheduling noise.
pub fn ring_loopback(duration: std::time::Duration, threads: bool) -> u64 {
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::ring::{Consumer, Producer};

    const PORT: u32 = 1;
    let layout = Layout::new(1024, 4096, 2048).expect("layout");
    let region = heap_region(layout.size);
    layout.init_header(&region);
    let frames = QueueFrames::new(region, layout, Arc::new(BadInputCounters::default()));
    let pool = PacketPool::new("bench", PoolConfig::metadata_only(4096));
    let (mut rx, mut tx) = queue_pair(&frames, PORT, &pool, Box::new(NoDoorbell));
    let stop = Arc::new(AtomicBool::new(false));
    let shim_frames = Arc::clone(&frames);
    let mut shim = ShimSide {
        fill: Consumer::new(layout.fill, &frames.region),
        punt: Producer::new(layout.punt, &frames.region),
        inject: Consumer::new(layout.inject, &frames.region),
        completion: Producer::new(layout.completion, &frames.region),
    };
    let shim_thread = threads.then(|| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if shim.step(&shim_frames.region, PORT) == 0 {
                    // Two cores, other busy threads: give the core away
                    // rather than spin a whole time slice.
                    std::thread::yield_now();
                }
            }
        })
    });
    let mut inline_shim = (!threads).then(|| ShimSide {
        fill: Consumer::new(layout.fill, &frames.region),
        punt: Producer::new(layout.punt, &frames.region),
        inject: Consumer::new(layout.inject, &frames.region),
        completion: Producer::new(layout.completion, &frames.region),
    });
    let mut forwarded = 0u64;
    let end = std::time::Instant::now() + duration;
    let mut batch = PacketBatch::new();
    while std::time::Instant::now() < end {
        for _ in 0..64 {
            if let Some(shim) = inline_shim.as_mut() {
                let _ = shim.step(&frames.region, PORT);
            }
            if rx.recv(&mut batch).unwrap_or(0) > 0 {
                forwarded += tx.send(&mut batch).sent as u64;
            } else if threads {
                std::thread::yield_now();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = shim_thread {
        let _ = t.join();
    }
    forwarded
}

/// A minimal honest shim over one region (benchmarks).
struct ShimSide {
    fill: crate::ring::Consumer,
    punt: crate::ring::Producer,
    inject: crate::ring::Consumer,
    completion: crate::ring::Producer,
}

impl ShimSide {
    /// Punts up to 32 frames from the fill ring as 60-byte frames of
    /// `port`, then completes up to 64 injected frames; returns the work done.
    fn step(&mut self, r: &crate::ring::Region, port: u32) -> u32 {
        use crate::ring::{InjectDesc, index_from_bytes};
        let n = self
            .fill
            .available(r)
            .unwrap_or(0)
            .min(self.punt.free(r).unwrap_or(0))
            .min(32);
        for i in 0..n {
            let frame = index_from_bytes(self.fill.get(r, i));
            let desc = PuntDesc {
                frame,
                offset: 0,
                len: 60,
                src_port: port,
                meta: 0,
            };
            self.punt.put(r, i, &desc.to_bytes());
        }
        if n > 0 {
            self.fill.release(r, n);
            self.punt.submit(r, n);
        }
        let m = self
            .inject
            .available(r)
            .unwrap_or(0)
            .min(self.completion.free(r).unwrap_or(0))
            .min(64);
        for i in 0..m {
            let d = InjectDesc::from_bytes(self.inject.get(r, i));
            self.completion.put(r, i, &d.frame.to_le_bytes());
        }
        if m > 0 {
            self.inject.release(r, m);
            self.completion.submit(r, m);
        }
        n + m
    }
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
