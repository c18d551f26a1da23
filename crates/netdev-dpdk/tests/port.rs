//! The `dpdk` port on virtual devices: open/close, options, MTU limits,
//! zero-copy forwarding between ports, copy-once from other pools, stats.
//! Each test uses its own MTU, hence its own mbuf pool, so in-use counts
//! do not mix between tests running in parallel.

mod common;

use dp_core::netdev::{Netdev, NetdevError};
use dp_core::packet::{PacketBatch, PacketPool, PoolConfig};
use netdev_dpdk::{DpdkConfig, DpdkNetdev};

fn config(devargs: &str, mtu: u16) -> DpdkConfig {
    DpdkConfig {
        devargs: devargs.into(),
        mtu,
        n_rxq_desc: 256,
        n_txq_desc: 256,
        n_mbufs: Some(2048),
        ..DpdkConfig::default()
    }
}

#[test]
fn mtu_outside_68_9702_is_a_clear_error() {
    common::eal();
    for mtu in [67, 9703] {
        let e = DpdkNetdev::open("p", &config("net_null_mtu0,no-rx=1", mtu)).unwrap_err();
        assert!(e.0.contains(&format!("unsupported MTU {mtu}")), "{e}");
    }
    // The device was never plugged, so the same devargs open fine after.
    let p = DpdkNetdev::open("p", &config("net_null_mtu0,no-rx=1", 1400)).unwrap();
    assert_eq!(p.info().mtu, 1400);
}

#[test]
fn bad_devargs_and_double_use_are_errors() {
    common::eal();
    let e = DpdkNetdev::open("p", &config("net_nosuchdriver0", 1450)).unwrap_err();
    assert!(e.0.contains("cannot attach"), "{e}");
    let p = DpdkNetdev::open("a", &config("net_null_dup0,no-rx=1", 1450)).unwrap();
    let e = DpdkNetdev::open("b", &config("net_null_dup0,no-rx=1", 1450)).unwrap_err();
    assert!(e.0.contains("already used"), "{e}");
    assert!(matches!(
        p.open_rxq(1),
        Err(NetdevError::NoSuchQueue { .. })
    ));
    let q = p.open_rxq(0).unwrap();
    assert!(matches!(p.open_rxq(0), Err(NetdevError::QueueTaken { .. })));
    drop(p);
    // An open queue keeps the device: still in use.
    assert!(DpdkNetdev::open("b", &config("net_null_dup0,no-rx=1", 1450)).is_err());
    drop(q);
    // Closing unplugged it: it can be opened again.
    DpdkNetdev::open("b", &config("net_null_dup0,no-rx=1", 1450)).unwrap();
}

#[test]
fn forwarding_reuses_the_received_mbuf_and_copies_foreign_packets_once() {
    common::eal();
    // net_ring with no arguments loops its tx ring back to rx.
    let ring = DpdkNetdev::open("ring", &config("net_ring_zc0", 1460)).unwrap();
    let pool = ring.mempool().clone();
    assert_eq!(pool.in_use(), 0);
    let mut rxq = ring.open_rxq(0).unwrap();
    let mut txq = ring.open_txq(0).unwrap();

    // A heap packet goes out as one copied mbuf.
    let heap = PacketPool::new("heap", PoolConfig::heap(4));
    let mut batch = PacketBatch::new();
    batch
        .push(heap.alloc_from(&common::udp_frame(7)).unwrap())
        .unwrap();
    let out = txq.send(&mut batch);
    assert_eq!((out.sent, out.dropped), (1, 0));
    assert_eq!(heap.in_use(), 0);
    assert_eq!(pool.in_use(), 1);

    // It comes back as a packet whose buffer is that mbuf.
    assert_eq!(ring.packets_in_use(), 0);
    assert_eq!(rxq.recv(&mut batch).unwrap(), 1);
    assert_eq!(ring.packets_in_use(), 1);
    let first = batch.get(0).unwrap();
    assert_eq!(first.data(), common::udp_frame(7).as_slice());
    assert!(first.foreign().is_some());
    let token = first.foreign().unwrap().token();
    let data_ptr = first.data().as_ptr();
    // The pool's private area (the packet cell) is whole cache lines, so
    // the data after the headroom starts on one (mempool::PRIV_SIZE).
    assert_eq!(data_ptr as usize % 64, 0, "data at {data_ptr:p}");

    // Modify it (push a header) and send it again: same mbuf, no copy.
    batch
        .get_mut(0)
        .unwrap()
        .push_front(4)
        .unwrap()
        .copy_from_slice(&[1, 2, 3, 4]);
    let out = txq.send(&mut batch);
    assert_eq!((out.sent, out.dropped), (1, 0));
    assert_eq!(pool.in_use(), 1);
    assert_eq!(ring.packets_in_use(), 0, "sent: no longer lent");
    assert_eq!(rxq.recv(&mut batch).unwrap(), 1);
    let again = batch.get(0).unwrap();
    assert_eq!(again.foreign().unwrap().token(), token);
    assert_eq!(again.data().as_ptr(), data_ptr.wrapping_sub(4));
    assert_eq!(&again.data()[..4], &[1, 2, 3, 4]);
    assert_eq!(&again.data()[4..], common::udp_frame(7).as_slice());

    let copied = ring
        .xstats()
        .into_iter()
        .find(|(n, _)| n == "ovs_tx_copied")
        .unwrap()
        .1;
    assert_eq!(copied, 1);
    let stats = ring.stats();
    assert_eq!((stats.tx_packets, stats.rx_packets), (2, 2));
    batch.clear();
    assert_eq!(pool.in_use(), 0);
    assert_eq!(ring.packets_in_use(), 0);
}

/// A copy for one output of a multi-output action (`clone_packet`) is
/// made once, straight into an mbuf of the output port's pool and lent
/// like a received one: sending it hands that same mbuf to the device (no
/// second copy, `ovs_tx_copied` counts one), and a copy dropped unsent
/// gives its mbuf and its lent count back.
#[test]
fn a_clone_for_a_port_is_one_mbuf_sent_as_it_is() {
    common::eal();
    let ring = DpdkNetdev::open("ring", &config("net_ring_clone0", 1444)).unwrap();
    let pool = ring.mempool().clone();
    assert_eq!(pool.in_use(), 0);
    let mut rxq = ring.open_rxq(0).unwrap();
    let mut txq = ring.open_txq(0).unwrap();

    let heap = PacketPool::new("heap", PoolConfig::heap(4));
    let mut original = heap.alloc_from(&common::udp_frame(9)).unwrap();
    original.meta_mut().in_port = 5;
    original.meta_mut().recirc_id = 3;
    let copy = txq.clone_packet(&original).expect("a copy in an mbuf");
    assert_eq!(copy.data(), original.data());
    assert_eq!(copy.meta(), original.meta());
    assert!(copy.foreign().is_some(), "the copy's buffer is an mbuf");
    assert_eq!((pool.in_use(), ring.packets_in_use()), (1, 1));
    let token = copy.foreign().unwrap().token();

    let mut batch = PacketBatch::new();
    batch.push(copy).unwrap();
    let out = txq.send(&mut batch);
    assert_eq!((out.sent, out.dropped), (1, 0));
    assert_eq!(ring.packets_in_use(), 0, "sent: no longer lent");
    assert_eq!(pool.in_use(), 1, "on the ring");
    assert_eq!(rxq.recv(&mut batch).unwrap(), 1);
    let back = batch.get(0).unwrap();
    assert_eq!(back.foreign().unwrap().token(), token, "the same mbuf");
    assert_eq!(back.data(), common::udp_frame(9).as_slice());
    batch.clear();
    let copied = |ring: &DpdkNetdev| {
        ring.xstats()
            .into_iter()
            .find(|(n, _)| n == "ovs_tx_copied")
            .unwrap()
            .1
    };
    assert_eq!(copied(&ring), 1, "one copy, at clone time");

    // A copy that is never sent.
    let unsent = txq.clone_packet(&original).expect("a copy in an mbuf");
    assert_eq!((pool.in_use(), ring.packets_in_use()), (1, 1));
    drop(unsent);
    drop(original);
    assert_eq!((pool.in_use(), ring.packets_in_use()), (0, 0));
    assert_eq!(heap.in_use(), 0);
}

#[test]
fn mbufs_from_another_ports_pool_forward_without_a_copy() {
    common::eal();
    // Two MTUs, two pools: net_null generates into one, the ring's
    // receive side hands those same mbufs back on a port whose own pool
    // is the other one, so their cells come from the queue's cell pool.
    let src = DpdkNetdev::open("src", &config("net_null_xpool0,size=64", 1420)).unwrap();
    let ring = DpdkNetdev::open("ring", &config("net_ring_xpool0", 1430)).unwrap();
    let (src_pool, ring_pool) = (src.mempool().clone(), ring.mempool().clone());
    assert_ne!(src_pool.name(), ring_pool.name());
    let mut src_rxq = src.open_rxq(0).unwrap();
    let mut ring_txq = ring.open_txq(0).unwrap();
    let mut ring_rxq = ring.open_rxq(0).unwrap();
    let mut batch = PacketBatch::new();
    for _ in 0..50 {
        assert_eq!(src_rxq.recv(&mut batch).unwrap(), 32);
        assert_eq!(src.packets_in_use(), 32);
        let tokens: Vec<usize> = batch.iter().map(|p| p.foreign().unwrap().token()).collect();
        let out = ring_txq.send(&mut batch);
        assert_eq!((out.sent, out.dropped), (32, 0));
        assert_eq!(src.packets_in_use(), 0);
        assert_eq!(ring_rxq.recv(&mut batch).unwrap(), 32);
        assert_eq!(ring.packets_in_use(), 32);
        let back: Vec<usize> = batch.iter().map(|p| p.foreign().unwrap().token()).collect();
        assert_eq!(back, tokens, "the same mbufs, not copies");
        for p in batch.iter_mut() {
            assert_eq!(p.meta().recirc_id, 0);
            p.meta_mut().recirc_id = 5;
        }
        batch.clear();
        assert_eq!(ring.packets_in_use(), 0);
    }
    assert_eq!((src_pool.in_use(), ring_pool.in_use()), (0, 0));
    let copied = ring
        .xstats()
        .into_iter()
        .find(|(n, _)| n == "ovs_tx_copied")
        .unwrap()
        .1;
    assert_eq!(copied, 0);
}

#[test]
fn a_full_tx_ring_frees_and_counts_the_remainder() {
    common::eal();
    let ring = DpdkNetdev::open("ring", &config("net_ring_full0", 1470)).unwrap();
    let pool = ring.mempool().clone();
    let heap = PacketPool::new("heap", PoolConfig::heap(32));
    let mut txq = ring.open_txq(0).unwrap();
    let (mut sent, mut dropped) = (0, 0);
    for _ in 0..100 {
        let mut batch = PacketBatch::new();
        for i in 0..32 {
            batch
                .push(heap.alloc_from(&common::udp_frame(i)).unwrap())
                .unwrap();
        }
        let out = txq.send(&mut batch);
        assert!(batch.is_empty());
        sent += out.sent;
        dropped += out.dropped;
    }
    assert!(dropped > 0, "the ring never filled ({sent} sent)");
    assert_eq!(sent + dropped, 3200);
    assert_eq!(ring.stats().tx_dropped, dropped as u64);
    // Only what sits in the ring is out of the pool.
    assert_eq!(pool.in_use() as usize, sent);
    let mut rxq = ring.open_rxq(0).unwrap();
    let mut batch = PacketBatch::new();
    let mut drained = 0;
    while let Ok(n @ 1..) = rxq.recv(&mut batch) {
        drained += n;
        batch.clear();
    }
    assert_eq!(drained, sent);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(heap.in_use(), 0);
}

#[test]
fn null_rx_generates_and_stats_count() {
    common::eal();
    let src = DpdkNetdev::open("src", &config("net_null_src0,size=64", 1480)).unwrap();
    let pool = src.mempool().clone();
    let mut rxq = src.open_rxq(0).unwrap();
    let mut batch = PacketBatch::new();
    assert_eq!(rxq.recv(&mut batch).unwrap(), 32);
    assert_eq!(batch.get(0).unwrap().len(), 64);
    assert_eq!(pool.in_use(), 32);
    drop(batch);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(src.stats().rx_packets, 32);
    assert_eq!(src.type_name(), "dpdk");
    let info = pool.info();
    assert_eq!((info.n_mbufs, info.mtu), (2048, 1480));
}
