//! vhost-user without a VM: a `net_vhost` port (the `dpdkvhostuser`
//! server side) and DPDK's own `net_virtio_user` connecting to its socket
//! as the guest. Packets cross both ways; every mbuf comes back.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use dp_core::netdev::Netdev;
use dp_core::packet::{PacketBatch, PacketPool, PoolConfig};
use netdev_dpdk::{DpdkConfig, DpdkNetdev};

/// DPDK's vhost library keeps process-wide state (the vhost-user socket
/// registry, its event thread); two vhost port pairs set up and torn down
/// at once in one process crash it (seen as SIGSEGV at teardown), so the
/// tests of this file take turns.
static VHOST_SERIAL: Mutex<()> = Mutex::new(());

fn config(devargs: String) -> DpdkConfig {
    DpdkConfig {
        devargs,
        mtu: 1496,
        n_rxq_desc: 256,
        n_txq_desc: 256,
        n_mbufs: Some(4096),
        ..DpdkConfig::default()
    }
}

/// Polls `rxq` until `n` packets came or 5 s passed; returns them.
fn recv_n(rxq: &mut Box<dyn dp_core::netdev::RxQueue>, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < n && Instant::now() < deadline {
        let mut batch = PacketBatch::new();
        if rxq.recv(&mut batch).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        got.extend(batch.iter().map(|p| p.data().to_vec()));
    }
    got
}

#[test]
fn vhost_user_server_and_virtio_user_guest_exchange_packets() {
    let _turn = VHOST_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let sock = std::env::temp_dir().join(format!("oxvs-vhost-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let host = DpdkNetdev::open(
        "vhu0",
        &config(format!(
            "net_vhost_t0,iface={},queues=1,client=0",
            sock.display()
        )),
    )
    .expect("net_vhost server");
    let guest = DpdkNetdev::open(
        "guest",
        &config(format!(
            "net_virtio_user_t0,path={},queues=1,queue_size=256",
            sock.display()
        )),
    )
    .expect("net_virtio_user guest");
    let pool = host.mempool().clone();
    let heap = PacketPool::new("heap", PoolConfig::heap(64));
    let mut host_rx = host.open_rxq(0).unwrap();
    let mut host_tx = host.open_txq(0).unwrap();
    let mut guest_rx = guest.open_rxq(0).unwrap();
    let mut guest_tx = guest.open_txq(0).unwrap();

    // Guest → host (the vring may take a moment to come up).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        let mut batch = PacketBatch::new();
        for i in 0..8 {
            batch
                .push(heap.alloc_from(&common::udp_frame(i)).unwrap())
                .unwrap();
        }
        guest_tx.send(&mut batch);
        got = recv_n(&mut host_rx, 8);
    }
    assert!(!got.is_empty(), "nothing crossed from virtio-user to vhost");
    assert!(
        got.iter()
            .all(|f| f.len() == 60 && f[12..14] == [0x08, 0x00])
    );

    // Host → guest, zero-copy from the host's own mbufs.
    let mut batch = PacketBatch::new();
    for i in 100..108 {
        batch
            .push(heap.alloc_from(&common::udp_frame(i)).unwrap())
            .unwrap();
    }
    let out = host_tx.send(&mut batch);
    assert_eq!(out.sent + out.dropped, 8);
    let back = recv_n(&mut guest_rx, out.sent);
    assert_eq!(back.len(), out.sent);
    assert_eq!(&back[0][34..36], &100u16.to_be_bytes());

    drop((host_rx, host_tx, guest_rx, guest_tx));
    drop(guest);
    drop(host);
    let _ = std::fs::remove_file(&sock);
    assert_eq!(heap.in_use(), 0);
    assert_eq!(pool.in_use(), 0, "{:?}", pool.info());
}

/// A frame bigger than the host pool's data room arrives from vhost as an
/// mbuf chain; it cannot be linearised into its first segment, so the
/// whole chain is freed (every segment) and counted, never leaked.
#[test]
fn oversized_chains_from_vhost_are_freed_whole() {
    let _turn = VHOST_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let sock = std::env::temp_dir().join(format!("oxvs-vhost-seg-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let mut host_config = config(format!(
        "net_vhost_seg0,iface={},queues=1,client=0",
        sock.display()
    ));
    host_config.mtu = 500; // 1 KiB mbufs: a 1400-byte frame takes two
    let host = DpdkNetdev::open("vhu1", &host_config).expect("net_vhost server");
    let mut guest_config = config(format!(
        "net_virtio_user_seg0,path={},queues=1,queue_size=256",
        sock.display()
    ));
    guest_config.mtu = 1498;
    let guest = DpdkNetdev::open("guest1", &guest_config).expect("net_virtio_user guest");
    let host_pool = host.mempool().clone();
    let guest_pool = guest.mempool().clone();
    let heap = PacketPool::new("heap", PoolConfig::heap(64));
    let mut host_rx = host.open_rxq(0).unwrap();
    let mut guest_tx = guest.open_txq(0).unwrap();

    let mut big = common::udp_frame(1);
    big.resize(1400, 0xab);
    let dropped = |port: &DpdkNetdev| {
        port.xstats()
            .into_iter()
            .find(|(n, _)| n == "ovs_rx_dropped")
            .map_or(0, |(_, v)| v)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut small_seen = 0;
    while (dropped(&host) == 0 || small_seen == 0) && Instant::now() < deadline {
        let mut batch = PacketBatch::new();
        batch.push(heap.alloc_from(&big).unwrap()).unwrap();
        batch
            .push(heap.alloc_from(&common::udp_frame(2)).unwrap())
            .unwrap();
        guest_tx.send(&mut batch);
        small_seen += recv_n(&mut host_rx, 1).len();
    }
    assert!(dropped(&host) > 0, "no chain arrived");
    assert!(small_seen > 0, "small frames must still pass");
    drop((host_rx, guest_tx));
    drop(guest);
    drop(host);
    let _ = std::fs::remove_file(&sock);
    assert_eq!(host_pool.in_use(), 0, "{:?}", host_pool.info());
    assert_eq!(guest_pool.in_use(), 0, "{:?}", guest_pool.info());
}

/// `net_vhost` raises link-state-change events when a guest connects and
/// leaves: the port logs and counts them (`link_resets`) from DPDK's
/// interrupt thread, without anyone reading the link.
#[test]
fn vhost_link_follows_the_guest_through_lsc_events() {
    let _turn = VHOST_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let sock = std::env::temp_dir().join(format!("oxvs-vhost-lsc-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let host = DpdkNetdev::open(
        "vhu-lsc",
        &config(format!(
            "net_vhost_lsc0,iface={},queues=1,client=0",
            sock.display()
        )),
    )
    .expect("net_vhost server");
    assert_eq!(host.link_resets(), 0);
    let wait_resets = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while host.link_resets() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        host.link_resets()
    };
    let guest = DpdkNetdev::open(
        "guest-lsc",
        &config(format!(
            "net_virtio_user_lsc0,path={},queues=1,queue_size=256",
            sock.display()
        )),
    )
    .expect("net_virtio_user guest");
    assert_eq!(wait_resets(1), 1, "no link-up event when the guest came");
    assert_eq!(host.link_state(), dp_core::netdev::LinkState::Up);
    drop(guest);
    assert_eq!(wait_resets(2), 2, "no link-down event when the guest left");
    assert_eq!(host.link_state(), dp_core::netdev::LinkState::Down);
    let xstat = host
        .xstats()
        .into_iter()
        .find(|(n, _)| n == "ovs_link_resets")
        .map(|(_, v)| v);
    assert_eq!(xstat, Some(2));
    drop(host);
    let _ = std::fs::remove_file(&sock);
}
