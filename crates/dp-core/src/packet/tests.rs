//! Buffer accounting and headroom tests: every path returns its buffer.

use std::ptr::NonNull;
use std::sync::Mutex;

use super::*;

fn pool(capacity: usize) -> PacketPool {
    PacketPool::new("test", PoolConfig::heap(capacity))
}

#[test]
fn drop_returns_buffer_and_cells_are_reused() {
    let pool = pool(4);
    assert_eq!(pool.in_use(), 0);
    let a = pool.alloc_from(&[1, 2, 3]).unwrap();
    let b = pool.alloc().unwrap();
    assert_eq!(pool.in_use(), 2);
    drop(a);
    assert_eq!(pool.in_use(), 1);
    drop(b);
    assert_eq!(pool.in_use(), 0);
    // Steady state: no more cells are created.
    for _ in 0..100 {
        let p = pool.alloc_from(&[9; 60]).unwrap();
        drop(p);
    }
    assert_eq!(pool.stats().created, 2);
}

#[test]
fn exhausted_pool_refuses_and_counts() {
    let pool = pool(2);
    let a = pool.alloc().unwrap();
    let b = pool.alloc().unwrap();
    assert!(pool.alloc().is_none());
    assert_eq!(pool.stats().alloc_failures, 1);
    drop((a, b));
    assert!(pool.alloc().is_some());
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn recycled_packet_has_fresh_metadata() {
    let pool = pool(1);
    let mut p = pool.alloc_from(&[0; 64]).unwrap();
    p.meta_mut().in_port = 7;
    p.meta_mut().recirc_id = 3;
    p.meta_mut().tunnel.ipv4_dst = [1, 2, 3, 4];
    drop(p);
    let p = pool.alloc().unwrap();
    assert_eq!(p.meta(), &PacketMetadata::default());
    assert_eq!(p.len(), 0);
    assert_eq!(p.headroom(), DEFAULT_HEADROOM);
}

#[test]
fn batch_drop_clear_retain_drain_return_buffers() {
    let pool = pool(MAX_BURST + 1);
    let mut batch = PacketBatch::new();
    for i in 0..MAX_BURST {
        batch
            .push(pool.alloc_from(&[i as u8; 20]).unwrap())
            .unwrap();
    }
    let extra = pool.alloc().unwrap();
    let extra = batch.push(extra).unwrap_err();
    drop(extra);
    assert_eq!(pool.in_use(), MAX_BURST);

    batch.retain(|p| p.data()[0] % 2 == 0);
    assert_eq!(batch.len(), MAX_BURST / 2);
    assert_eq!(pool.in_use(), MAX_BURST / 2);
    assert!(batch.iter().all(|p| p.data()[0] % 2 == 0));

    // A drain that stops early still returns the rest.
    let first = batch.drain().next().unwrap();
    assert_eq!(first.data()[0], 0);
    assert!(batch.is_empty());
    assert_eq!(pool.in_use(), 1);
    drop(first);

    for _ in 0..3 {
        batch.push(pool.alloc().unwrap()).unwrap();
    }
    batch.clear();
    assert_eq!(pool.in_use(), 0);
    for _ in 0..3 {
        batch.push(pool.alloc().unwrap()).unwrap();
    }
    drop(batch);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn pool_outlives_its_handle_while_packets_are_out() {
    let pool = pool(2);
    let packet = pool.alloc_from(&[1, 2]).unwrap();
    let observer = pool.clone();
    drop(pool);
    assert_eq!(observer.in_use(), 1);
    drop(packet);
    assert_eq!(observer.in_use(), 0);
}

#[test]
fn push_and_pull_front_move_offsets() {
    let pool = pool(1);
    let mut p = pool.alloc_from(&[0xaa; 64]).unwrap();
    p.meta_mut().offsets.l3 = 14;
    p.meta_mut().offsets.l4 = 34;
    p.push_front(4).unwrap().copy_from_slice(&[0x81, 0, 0, 5]);
    assert_eq!(p.len(), 68);
    assert_eq!(&p.data()[..4], &[0x81, 0, 0, 5]);
    assert_eq!(p.meta().offsets.l3, 18);
    assert!(p.pull_front(20));
    assert_eq!(p.meta().offsets.l3, OFS_NONE);
    assert_eq!(p.meta().offsets.l4, 18);
    assert!(!p.pull_front(1000));
    assert!(p.push_front(DEFAULT_HEADROOM + 17).is_none());
    p.truncate(10);
    assert_eq!(p.len(), 10);
    assert_eq!(p.meta().offsets.l4, OFS_NONE);
    let tail = p.tailroom();
    assert!(p.push_back(tail + 1).is_none());
    assert_eq!(p.push_back(tail).unwrap().len(), tail);
}

#[test]
fn reserve_headroom_slides_data_into_the_tailroom() {
    let pool = pool(1);
    let mut p = pool.alloc_from(&[1, 2, 3, 4]).unwrap();
    p.meta_mut().offsets.l3 = 2;
    assert!(p.reserve_headroom(DEFAULT_HEADROOM));
    assert_eq!(p.headroom(), DEFAULT_HEADROOM, "enough already: no move");
    assert!(p.reserve_headroom(DEFAULT_HEADROOM + 100));
    assert_eq!(p.headroom(), DEFAULT_HEADROOM + 100);
    assert_eq!(p.data(), &[1, 2, 3, 4]);
    assert_eq!(p.meta().offsets.l3, 2);
    assert!(p.push_front(DEFAULT_HEADROOM + 100).is_some());
    let cap = p.capacity();
    assert!(!p.reserve_headroom(cap));
    assert_eq!(p.len(), DEFAULT_HEADROOM + 104, "unchanged on failure");
}

#[test]
fn clone_into_copies_bytes_and_metadata_and_accounts_both() {
    let a = pool(1);
    let b = pool(1);
    let mut p = a.alloc_from(&[5; 100]).unwrap();
    p.meta_mut().in_port = 9;
    let c = p.clone_into(&b).unwrap();
    assert_eq!(c.data(), p.data());
    assert_eq!(c.meta().in_port, 9);
    assert!(p.clone_into(&b).is_none(), "b is exhausted");
    drop((p, c));
    assert_eq!(a.in_use() + b.in_use(), 0);
}

#[test]
fn oversized_data_is_refused_without_leaking() {
    let pool = PacketPool::new(
        "small",
        PoolConfig {
            capacity: 1,
            buffer_size: 64,
        },
    );
    assert!(pool.alloc_from(&[0; 65]).is_none());
    assert_eq!(pool.in_use(), 0);
    let p = pool.alloc_from(&[0; 64]).unwrap();
    assert_eq!(p.headroom(), 0);
}

/// A fake driver region: frames are slices of one buffer; release records
/// the token so the test can prove each frame came back exactly once.
static RELEASED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn record_release(token: usize, _ptr: NonNull<u8>) {
    RELEASED.lock().unwrap().push(token);
}

#[test]
fn foreign_frames_are_released_exactly_once() {
    let mut region = vec![0u8; 4 * 256];
    let meta_pool = PacketPool::new("meta", PoolConfig::metadata_only(2));
    let base = region.as_mut_ptr();
    let frame = |i: usize| {
        let ptr = NonNull::new(base.wrapping_add(i * 256)).unwrap();
        // SAFETY: each frame is a distinct 256-byte slice of `region`, which
        // outlives every packet in this test and is not touched while lent.
        unsafe { ForeignFrame::new(ptr, 256, 100 + i, record_release) }
    };
    let mut p0 = meta_pool.wrap_foreign(frame(0), 64, 60).unwrap();
    p0.data_mut().fill(0x11);
    let p1 = meta_pool.wrap_foreign(frame(1), 0, 256).unwrap();
    // Out of cells: the frame comes back unreleased, the caller keeps it.
    let refused = meta_pool.wrap_foreign(frame(2), 0, 10).unwrap_err();
    // Out of range.
    drop(p1);
    let bad = meta_pool.wrap_foreign(frame(3), 200, 100).unwrap_err();
    assert_eq!(meta_pool.in_use(), 1);
    assert_eq!(p0.headroom(), 64);
    assert!(p0.push_front(4).is_some());
    drop(p0);
    assert_eq!(meta_pool.in_use(), 0);
    drop(refused);
    drop(bad);
    let mut released = RELEASED.lock().unwrap().clone();
    released.sort_unstable();
    assert_eq!(released, vec![100, 101, 102, 103]);
    assert!(region[64..124].iter().all(|b| *b == 0x11));
}

static TAKEN_RELEASED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn taken_release(token: usize, _ptr: NonNull<u8>) {
    TAKEN_RELEASED.lock().unwrap().push(token);
}

#[test]
fn into_foreign_takes_the_frame_without_releasing_it() {
    let mut region = vec![0u8; 256];
    let meta_pool = PacketPool::new("meta-take", PoolConfig::metadata_only(1));
    let ptr = NonNull::new(region.as_mut_ptr()).unwrap();
    // SAFETY: the frame is `region`, which outlives the packet and is not
    // touched while lent.
    let frame = unsafe { ForeignFrame::new(ptr, 256, 7, taken_release) };
    let mut p = meta_pool.wrap_foreign(frame, 64, 60).unwrap();
    assert_eq!(p.foreign().map(ForeignFrame::token), Some(7));
    assert!(p.push_front(4).is_some());
    let (frame, start, len) = p.into_foreign().unwrap();
    assert_eq!((start, len), (60, 64));
    assert_eq!(meta_pool.in_use(), 0);
    assert_eq!(
        frame.release_fn() as usize,
        (taken_release as crate::packet::ReleaseFn) as usize
    );
    let (token, raw) = frame.into_raw();
    assert_eq!((token, raw), (7, ptr));
    assert!(TAKEN_RELEASED.lock().unwrap().is_empty());
    // A heap packet is not foreign and comes back untouched.
    let heap = pool(1);
    let p = heap.alloc_from(&[1, 2, 3]).unwrap();
    assert!(p.foreign().is_none());
    let p = p.into_foreign().unwrap_err();
    assert_eq!(p.data(), &[1, 2, 3]);
}

#[test]
fn packets_returning_after_the_pool_closed_are_freed() {
    let pool = pool(8);
    let late = pool.alloc_from(&[1; 60]).unwrap();
    let parked = pool.alloc().unwrap();
    drop(parked); // one cell in the free list
    drop(pool); // last handle: closed, the free cell is freed
    let mut late = late;
    late.data_mut()[0] = 2; // still a valid packet
    drop(late); // returns to a closed pool: freed, not queued
}

/// A fake driver buffer: an embedded cell followed by the frame, as DPDK
/// lays out an mbuf's private area before its data room.
#[repr(C, align(64))]
struct FakeBuffer {
    cell: [u8; EMBEDDED_CELL_SIZE],
    frame: [u8; 256],
}

static EMBEDDED_RELEASED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn embedded_release(token: usize, _ptr: NonNull<u8>) {
    EMBEDDED_RELEASED.lock().unwrap().push(token);
}

#[test]
fn embedded_cells_need_no_pool_and_release_their_frame_once() {
    const { assert!(EMBEDDED_CELL_ALIGN <= 64) };
    let mut buf = Box::new(FakeBuffer {
        cell: [0xAA; EMBEDDED_CELL_SIZE],
        frame: [0; 256],
    });
    let cell = NonNull::new(buf.cell.as_mut_ptr()).unwrap();
    let frame_ptr = NonNull::new(buf.frame.as_mut_ptr()).unwrap();
    // SAFETY: `cell` is 64-byte aligned, EMBEDDED_CELL_SIZE long, unused.
    unsafe { init_embedded_cell(cell) };
    let frame = |token| {
        // SAFETY: the frame is `buf.frame`, which outlives every packet
        // here and is not touched while lent.
        unsafe { ForeignFrame::new(frame_ptr, 256, token, embedded_release) }
    };

    // First use: metadata written, then the packet dropped: released once.
    // SAFETY: the cell was initialised above and no packet uses it; it
    // lives in `buf`, which outlives the frame's loan.
    let mut p = unsafe { wrap_embedded(cell, frame(1), 128, 60) }.unwrap();
    p.data_mut().fill(0x22);
    p.meta_mut().recirc_id = 9;
    p.meta_mut().tunnel.ipv4_dst = [1, 2, 3, 4];
    assert_eq!(p.headroom(), 128);
    drop(p);
    assert_eq!(*EMBEDDED_RELEASED.lock().unwrap(), vec![1]);

    // Reuse: fresh metadata; into_foreign hands the frame back unreleased.
    // SAFETY: as above; the previous packet was dropped.
    let mut p = unsafe { wrap_embedded(cell, frame(2), 64, 100) }.unwrap();
    assert_eq!(p.meta(), &PacketMetadata::default());
    assert!(p.push_front(4).is_some());
    assert_eq!(p.data().len(), 104);
    let (f, start, len) = p.into_foreign().unwrap();
    assert_eq!((f.token(), start, len), (2, 60, 104));
    let _ = f.into_raw();
    assert_eq!(*EMBEDDED_RELEASED.lock().unwrap(), vec![1]);

    // Out of range: the frame comes back, the cell stays usable.
    // SAFETY: as above; no packet uses the cell.
    let bad = unsafe { wrap_embedded(cell, frame(3), 200, 100) }.unwrap_err();
    let _ = bad.into_raw();
    // SAFETY: as above.
    let p = unsafe { wrap_embedded(cell, frame(4), 0, 256) }.unwrap();
    // Copies go to a heap pool and outlive the embedded original.
    let heap = pool(1);
    let copy = p.clone_into(&heap).unwrap();
    drop(p);
    assert_eq!(*EMBEDDED_RELEASED.lock().unwrap(), vec![1, 4]);
    assert_eq!(copy.len(), 256);
    assert!(buf.frame[128..188].iter().all(|b| *b == 0x22));
}

#[test]
fn closed_pool_headers_are_reused_not_leaked() {
    // An unusual capacity, so other tests' pools do not share its headers.
    const CAPACITY: usize = 7919;
    let before = crate::packet::retained_pool_headers();
    for round in 0..1000 {
        let pool = PacketPool::new(format!("churn{round}"), PoolConfig::heap(CAPACITY));
        let kept = pool.alloc_from(&[round as u8; 60]).unwrap();
        let _returned = pool.alloc().unwrap();
        drop(pool);
        // The header stays with the packet still out, and is retired when
        // it comes back.
        drop(kept);
    }
    let grown = crate::packet::retained_pool_headers() - before;
    // Other tests in this binary may create headers meanwhile; 1000 pools
    // without reuse would add 1000.
    assert!(grown < 100, "{grown} pool headers kept for 1000 pools");
    let pool = PacketPool::new("after", PoolConfig::heap(CAPACITY));
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.stats().created, 0);
    assert_eq!(pool.stats().alloc_failures, 0);
    assert_eq!(pool.stats().capacity, CAPACITY);
}

#[test]
fn packets_returning_while_their_pool_closes_free_every_cell() {
    use std::sync::mpsc;
    // A header is retired only once every cell of its life is freed, so
    // a cell left behind by the race would pin its header: 20,000 pools
    // would then keep thousands of headers.
    const CAPACITY: usize = 61;
    let (tx, rx) = mpsc::sync_channel::<Vec<Packet>>(4);
    let recycler = std::thread::spawn(move || {
        for packets in rx {
            drop(packets);
        }
    });
    let before = crate::packet::retained_pool_headers();
    for round in 0..20_000usize {
        let pool = PacketPool::new("race", PoolConfig::heap(CAPACITY));
        let packets: Vec<Packet> = (0..8)
            .map(|_| pool.alloc_from(&[round as u8; 64]).unwrap())
            .collect();
        tx.send(packets).unwrap();
        // Closes the pool while the recycler may be returning its packets.
        drop(pool);
    }
    drop(tx);
    recycler.join().unwrap();
    let grown = crate::packet::retained_pool_headers() - before;
    assert!(grown < 100, "{grown} pool headers kept for 20,000 pools");
}

#[test]
fn extend_from_fn_appends_in_order_skips_none_and_stops_at_the_room() {
    let pool = pool(64);
    let mut batch = PacketBatch::new();
    batch.push(pool.alloc_from(&[0]).unwrap()).unwrap();
    // Odd items make no packet; every packet made lands in order.
    let items: Vec<u8> = (1..=9).collect();
    let mut seen = Vec::new();
    let added = batch.extend_from_fn(&items, |&i| {
        seen.push(i);
        (i % 2 == 0).then(|| pool.alloc_from(&[i]).unwrap())
    });
    assert_eq!(added, 4);
    assert_eq!(seen, items);
    let firsts: Vec<u8> = batch.iter().map(|p| p.data()[0]).collect();
    assert_eq!(firsts, vec![0, 2, 4, 6, 8]);
    // Items beyond the room are not looked at: nothing made, nothing lost.
    let many: Vec<u8> = (10..60).collect();
    let mut calls = 0;
    let added = batch.extend_from_fn(&many, |&i| {
        calls += 1;
        Some(pool.alloc_from(&[i]).unwrap())
    });
    assert_eq!((added, calls), (MAX_BURST - 5, MAX_BURST - 5));
    assert!(batch.is_full());
    assert_eq!(pool.in_use(), MAX_BURST);
    assert_eq!(batch.extend_from_fn(&many, |_| unreachable!()), 0);
    // Slots freed by pop/drain/retain are reused without losing packets.
    batch.retain(|p| p.data()[0] % 4 == 0);
    let kept = batch.len();
    assert_eq!(pool.in_use(), kept);
    let added = batch.extend_from_fn(&[100u8, 101], |&i| pool.alloc_from(&[i]));
    assert_eq!(added, 2);
    assert_eq!(batch.len(), kept + 2);
    assert_eq!(batch.get(kept).unwrap().data(), &[100]);
    assert_eq!(pool.in_use(), kept + 2);
    batch.clear();
    assert_eq!(pool.in_use(), 0);
}

static TOKEN_RELEASED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn token_release(token: usize, _ptr: NonNull<u8>) {
    TOKEN_RELEASED.lock().unwrap().push(token);
}

#[test]
fn into_foreign_token_ends_the_loan_only_for_its_release_function() {
    let mut region = vec![0u8; 512];
    let base = region.as_mut_ptr();
    let frame = |i: usize| {
        let ptr = NonNull::new(base.wrapping_add(i * 256)).unwrap();
        // SAFETY: two distinct 256-byte slices of `region`, which outlives
        // every packet here and is not touched while lent.
        unsafe { ForeignFrame::new(ptr, 256, 40 + i, token_release) }
    };
    // A pooled cell: the loan ends, the cell goes back to its pool.
    let meta_pool = PacketPool::new("meta-token", PoolConfig::metadata_only(1));
    let mut p = meta_pool.wrap_foreign(frame(0), 64, 60).unwrap();
    assert!(p.push_front(4).is_some());
    // Another driver's release function: the packet comes back intact.
    let p = p.into_foreign_token(taken_release).unwrap_err();
    assert_eq!((p.headroom(), p.len()), (60, 64));
    assert_eq!(p.into_foreign_token(token_release).unwrap(), (40, 60, 64));
    assert_eq!(meta_pool.in_use(), 0);
    // An embedded cell: left empty and reusable.
    let mut buf = Box::new(FakeBuffer {
        cell: [0; EMBEDDED_CELL_SIZE],
        frame: [0; 256],
    });
    let cell = NonNull::new(buf.cell.as_mut_ptr()).unwrap();
    // SAFETY: `cell` is 64-byte aligned, EMBEDDED_CELL_SIZE long, unused.
    unsafe { init_embedded_cell(cell) };
    for round in 0..2 {
        // SAFETY: initialised above; the previous packet ended its loan.
        let p = unsafe { wrap_embedded(cell, frame(1), 128 - round, 10) }.unwrap();
        assert_eq!(
            p.into_foreign_token(token_release).unwrap(),
            (41, 128 - round, 10)
        );
    }
    // Heap packets are not foreign.
    let heap = pool(1);
    let p = heap.alloc_from(&[1, 2, 3]).unwrap();
    assert_eq!(
        p.into_foreign_token(token_release).unwrap_err().data(),
        &[1, 2, 3]
    );
    // No loan ended by the token was released.
    assert!(TOKEN_RELEASED.lock().unwrap().is_empty());
    drop(region);
}

/// `into_embedded_token` ends the loan of an embedded cell's packet with
/// its release function only (the cell left empty and reusable) and
/// gives back unchanged a pooled cell's foreign packet, another driver's
/// and a heap packet.
#[test]
fn into_embedded_token_takes_only_embedded_cells() {
    let mut region = vec![0u8; 512];
    let base = region.as_mut_ptr();
    let frame = |i: usize| {
        let ptr = NonNull::new(base.wrapping_add(i * 256)).unwrap();
        // SAFETY: two distinct 256-byte slices of `region`, which outlives
        // every packet here and is not touched while lent.
        unsafe { ForeignFrame::new(ptr, 256, 50 + i, token_release) }
    };
    // A pooled cell's foreign packet: refused, intact, its cell still
    // out of the pool until the general path ends the loan.
    let meta_pool = PacketPool::new("meta-embedded", PoolConfig::metadata_only(1));
    let p = meta_pool.wrap_foreign(frame(0), 64, 60).unwrap();
    let p = p.into_embedded_token(token_release).unwrap_err();
    assert_eq!((p.headroom(), p.len(), meta_pool.in_use()), (64, 60, 1));
    assert_eq!(p.into_foreign_token(token_release).unwrap(), (50, 64, 60));
    // An embedded cell: refused for another release function, taken for
    // its own, left empty and reusable.
    let mut buf = Box::new(FakeBuffer {
        cell: [0; EMBEDDED_CELL_SIZE],
        frame: [0; 256],
    });
    let cell = NonNull::new(buf.cell.as_mut_ptr()).unwrap();
    // SAFETY: `cell` is 64-byte aligned, EMBEDDED_CELL_SIZE long, unused.
    unsafe { init_embedded_cell(cell) };
    for round in 0..2 {
        // SAFETY: initialised above; the previous packet ended its loan.
        let mut p = unsafe { wrap_embedded(cell, frame(1), 128, 10 + round) }.unwrap();
        assert!(p.push_front(4).is_some());
        let p = p.into_embedded_token(taken_release).unwrap_err();
        assert_eq!(p.len(), 14 + round);
        assert_eq!(
            p.into_embedded_token(token_release).unwrap(),
            (51, 124, 14 + round)
        );
    }
    // Heap packets are not foreign.
    let heap = pool(1);
    let p = heap.alloc_from(&[1, 2, 3]).unwrap();
    assert_eq!(
        p.into_embedded_token(token_release).unwrap_err().data(),
        &[1, 2, 3]
    );
    assert!(TOKEN_RELEASED.lock().unwrap().is_empty());
    drop(region);
}

fn quiet_release(_token: usize, _ptr: NonNull<u8>) {}

/// `is_fresh`: set by a reset, kept by the setters a receive path uses
/// (and by offset moves), cleared by any `meta_mut` or
/// `data_and_meta_mut`; a reset of a cell still fresh (only the fields
/// a fresh packet may set are rewritten) and of one that is not both
/// give a fresh packet's metadata, heap and embedded.
#[test]
fn fresh_metadata_is_tracked_and_every_reset_gives_a_fresh_packet() {
    let heap = pool(1);
    let mut p = heap.alloc_from(&[1; 60]).unwrap();
    assert!(p.is_fresh());
    p.set_in_port(3);
    p.set_rss_hash(7);
    assert!(p.push_front(4).is_some() && p.pull_front(4));
    p.truncate(50);
    assert!(p.is_fresh());
    let copy = p.clone_into(&pool(1)).unwrap();
    assert!(copy.is_fresh());
    drop(copy);
    drop(p);
    // Still fresh: the cheap reset.
    let mut p = heap.alloc().unwrap();
    assert!(p.is_fresh());
    assert_eq!(p.meta(), &PacketMetadata::default());
    p.meta_mut().recirc_id = 5;
    assert!(!p.is_fresh());
    let copy = p.clone_into(&pool(1)).unwrap();
    assert!(!copy.is_fresh());
    drop(p);
    let mut p = heap.alloc().unwrap();
    assert!(p.is_fresh());
    assert_eq!(p.meta(), &PacketMetadata::default());
    let _ = p.data_and_meta_mut();
    assert!(!p.is_fresh());
    drop(p);

    let mut buf = Box::new(FakeBuffer {
        cell: [0xAA; EMBEDDED_CELL_SIZE],
        frame: [0; 256],
    });
    let cell = NonNull::new(buf.cell.as_mut_ptr()).unwrap();
    let frame_ptr = NonNull::new(buf.frame.as_mut_ptr()).unwrap();
    // SAFETY: `cell` is 64-byte aligned, EMBEDDED_CELL_SIZE long, unused.
    unsafe { init_embedded_cell(cell) };
    let frame = || {
        // SAFETY: the frame is `buf.frame`, which outlives every packet
        // here and is not touched while lent.
        unsafe { ForeignFrame::new(frame_ptr, 256, 0, quiet_release) }
    };
    for dirty in [false, true, false] {
        // SAFETY: the cell was initialised above and no packet uses it
        // (the last one was dropped); it lives in `buf`, which outlives
        // the frame's loan.
        let mut p = unsafe { wrap_embedded(cell, frame(), 64, 60) }.unwrap();
        assert!(p.is_fresh());
        assert_eq!(p.meta(), &PacketMetadata::default());
        p.set_in_port(2);
        p.set_rss_hash(9);
        if dirty {
            p.meta_mut().tunnel.ipv4_dst = [1, 2, 3, 4];
            p.meta_mut().ct_label = [5; 16];
        }
        assert_eq!(p.is_fresh(), !dirty);
        drop(p);
    }
}
