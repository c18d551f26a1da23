//! Flow-key extraction cost per packet (issue: dp-core foundation).
//!
//! Run: `cargo bench --bench extract`. Each case extracts a batch of 32
//! packets into 32 keys, so the figure per packet includes the batch loop.
//! Cases run through `benches/common::run_case` (a preemption-robust
//! figure first; `OXVS_BENCH_ONLY`, `OXVS_BENCH_QUICK` and, for callgrind,
//! `OXVS_BENCH_ITERS`).
//!
//! The `prepare_*` cases are what a PMD does per packet before its lookup:
//! the key and the packet hash (no NIC hash), either into zeroed keys
//! (`prepare_fresh`: `extract_mapped`, then `packet_rss_hash`) or into key
//! slots kept from batch to batch (`prepare_reusing`: `extract_reusing`,
//! which zeroes only stale words and hashes on its fast path).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dp_core::flow::hash::packet_rss_hash;
use dp_core::flow::{FlowKey, extract, extract_mapped, extract_reusing};
use dp_core::packet::{MAX_BURST, PacketBatch, PacketPool, PoolConfig};

mod common;

use common::udp4_60;

fn vlan_udp4() -> Vec<u8> {
    let plain = udp4_60();
    let mut f = plain[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    f.extend_from_slice(&plain[12..]);
    f
}

fn tcp6_ext() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 8 + 20];
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&28u16.to_be_bytes());
    f[20] = 0; // hop-by-hop
    f[21] = 64;
    f[22 + 15] = 1;
    f[38 + 15] = 2;
    f[54] = 6; // next: TCP, length 0 (8 bytes)
    f[62..64].copy_from_slice(&443u16.to_be_bytes());
    f[64..66].copy_from_slice(&5555u16.to_be_bytes());
    f[74] = 0x50;
    f[75] = 0x02;
    f
}

fn bench_case(c: &mut Criterion, name: &str, frames: &[Vec<u8>]) {
    let pool = PacketPool::new("bench", PoolConfig::heap(64));
    let mut batch = PacketBatch::new();
    for i in 0..MAX_BURST {
        batch
            .push(
                pool.alloc_from(&frames[i % frames.len()])
                    .expect("pool has room"),
            )
            .expect("batch has room");
    }
    let mut keys = [FlowKey::ZERO; MAX_BURST];
    let mut group = c.benchmark_group("extract");
    group.throughput(Throughput::Elements(MAX_BURST as u64));
    common::run_case(
        &format!("extract/{name}"),
        "pkt",
        MAX_BURST as u64,
        || {
            for (packet, key) in batch.iter_mut().zip(keys.iter_mut()) {
                extract(packet, key);
            }
            black_box(&keys);
        },
        |f| {
            group.bench_function(name, |b| b.iter(&mut *f));
        },
    );
    group.finish();
}

fn bench_prepare(c: &mut Criterion, name: &str, frames: &[Vec<u8>], reusing: bool) {
    let pool = PacketPool::new("bench", PoolConfig::heap(64));
    let mut batch = PacketBatch::new();
    for i in 0..MAX_BURST {
        batch
            .push(
                pool.alloc_from(&frames[i % frames.len()])
                    .expect("pool has room"),
            )
            .expect("batch has room");
    }
    let mut keys = [FlowKey::ZERO; MAX_BURST];
    let mut maps = [0u64; MAX_BURST];
    let mut hashes = [0u32; MAX_BURST];
    let kind = if reusing { "reusing" } else { "fresh" };
    let mut group = c.benchmark_group(format!("prepare_{kind}"));
    group.throughput(Throughput::Elements(MAX_BURST as u64));
    common::run_case(
        &format!("prepare_{kind}/{name}"),
        "pkt",
        MAX_BURST as u64,
        || {
            for (i, packet) in batch.iter_mut().enumerate() {
                // As received: no hash yet.
                packet.meta_mut().rss_hash_valid = false;
                if reusing {
                    maps[i] = extract_reusing(packet, &mut keys[i], maps[i]);
                } else {
                    maps[i] = extract_mapped(packet, &mut keys[i]);
                }
                hashes[i] = packet_rss_hash(packet, &keys[i]);
            }
            black_box((&keys, &maps, &hashes));
        },
        |f| {
            group.bench_function(name, |b| b.iter(&mut *f));
        },
    );
    group.finish();
}

fn extraction(c: &mut Criterion) {
    bench_case(c, "udp4_64B", &[udp4_60()]);
    bench_case(c, "tcp6_hopopts", &[tcp6_ext()]);
    bench_case(c, "vlan_udp4", &[vlan_udp4()]);
    bench_case(c, "mixed_batch32", &[udp4_60(), tcp6_ext(), vlan_udp4()]);
    for reusing in [false, true] {
        bench_prepare(c, "udp4_64B", &[udp4_60()], reusing);
        bench_prepare(
            c,
            "mixed_batch32",
            &[udp4_60(), tcp6_ext(), vlan_udp4()],
            reusing,
        );
    }
}

criterion_group!(benches, extraction);
criterion_main!(benches);
