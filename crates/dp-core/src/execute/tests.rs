//! Unit tests of the executor's internals; behaviour tests with fixture
//! frames live in `crates/dp-core/tests/execute_*.rs`.

use super::*;
use crate::packet::{MAX_BURST, PoolConfig};

#[test]
fn mask_all_covers_exactly_len_packets() {
    assert_eq!(mask_all(0), 0);
    assert_eq!(mask_all(3), 0b111);
    assert_eq!(mask_all(MAX_BURST), u32::MAX);
}

#[test]
fn take_marked_splits_in_order() {
    let pool = PacketPool::new("t", PoolConfig::heap(8));
    let mut batch = PacketBatch::new();
    for i in 0..5u8 {
        batch.push(pool.alloc_from(&[i]).unwrap()).unwrap();
    }
    let taken = take_marked(&mut batch, 0b10110);
    let ids = |b: &PacketBatch| b.iter().map(|p| p.data()[0]).collect::<Vec<_>>();
    assert_eq!(ids(&taken), vec![1, 2, 4]);
    assert_eq!(ids(&batch), vec![0, 3]);
    drop((taken, batch));
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn tunnel_source_ports_stay_in_range() {
    assert_eq!(tunnel::src_port(0), tunnel::TNL_SRC_PORT_MIN);
    assert!(tunnel::src_port(u32::MAX) < tunnel::TNL_SRC_PORT_MAX);
    assert_ne!(tunnel::src_port(0x1234_5678), tunnel::src_port(0x8765_4321));
}

#[test]
fn prng_is_seeded() {
    let pool = PacketPool::new("t", PoolConfig::heap(1));
    let mut a = Executor::new(pool.clone(), 1);
    let mut b = Executor::new(pool.clone(), 1);
    let mut c = Executor::new(pool, 2);
    let xs: Vec<u32> = (0..8).map(|_| a.next_u32()).collect();
    assert_eq!(xs, (0..8).map(|_| b.next_u32()).collect::<Vec<_>>());
    assert_ne!(xs, (0..8).map(|_| c.next_u32()).collect::<Vec<_>>());
}
