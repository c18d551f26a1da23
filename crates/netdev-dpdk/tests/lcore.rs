//! PMD threads register with DPDK: a PMD thread spawned after the DPDK
//! thread hook is added gets an lcore id (so its mempool cache is used)
//! while it runs, forwards through it, and gives the id back when it
//! stops, with every mbuf back in the pool; the pool's info shows the
//! mbufs that thread's lcore cache holds (`netdev-dpdk/get-mempool-info`).

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::pmd::thread::{PmdThread, PmdThreadConfig, ThreadHook, add_thread_hook};
use dp_pmd::pmd::{Pmd, PmdConfig, PolledRxq};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use netdev_dpdk::{DpdkConfig, DpdkNetdev};

#[derive(Debug)]
struct ToSink;

impl UpcallHandler for ToSink {
    fn translate(
        &self,
        _: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        mask.recirc_id = u32::MAX;
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(vec![Action::Output(2)]),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

fn config(devargs: &str) -> DpdkConfig {
    DpdkConfig {
        devargs: devargs.into(),
        mtu: 1410,
        n_rxq_desc: 256,
        n_txq_desc: 256,
        n_mbufs: Some(2048),
        ..DpdkConfig::default()
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pmd_threads_get_an_lcore_while_they_run() {
    common::eal();
    add_thread_hook(ThreadHook {
        name: "dpdk",
        start: netdev_dpdk::eal::register_thread,
        stop: netdev_dpdk::eal::unregister_thread,
    });
    // This thread initialised the EAL: it is the main lcore already, so
    // registering it is a no-op.
    let main_lcore = netdev_dpdk::eal::current_lcore().expect("the EAL's thread has an lcore");
    netdev_dpdk::eal::register_thread();
    assert_eq!(netdev_dpdk::eal::registered_threads(), 0);

    // Any other thread gets its own lcore id, and gives it back.
    std::thread::spawn(move || {
        assert_eq!(netdev_dpdk::eal::current_lcore(), None);
        netdev_dpdk::eal::register_thread();
        let lcore = netdev_dpdk::eal::current_lcore().expect("registered");
        assert_ne!(lcore, main_lcore);
        assert_eq!(netdev_dpdk::eal::registered_threads(), 1);
        netdev_dpdk::eal::unregister_thread();
        assert_eq!(netdev_dpdk::eal::current_lcore(), None);
        assert_eq!(netdev_dpdk::eal::registered_threads(), 0);
    })
    .join()
    .unwrap();

    // A PMD thread registers through the hook and forwards.
    let src = DpdkNetdev::open("src", &config("net_null_lcore0,size=64")).unwrap();
    let sink = DpdkNetdev::open("sink", &config("net_null_lcore1,no-rx=1")).unwrap();
    let pool = src.mempool().clone();
    let mut pmd = Pmd::new(
        PmdConfig::default(),
        Arc::new(ToSink),
        Arc::new(AtomicUsize::new(1000)),
    );
    pmd.add_rxq(PolledRxq::new(1, "src", 0, src.open_rxq(0).unwrap()));
    pmd.add_txq(2, sink.open_txq(0).unwrap());
    let (control, control_rx) = crossbeam_channel::bounded(4);
    let thread = PmdThread::spawn(
        "pmd-lcore-test".into(),
        pmd,
        control_rx,
        PmdThreadConfig::default(),
    )
    .unwrap();
    wait_for("PMD thread registered", || {
        netdev_dpdk::eal::registered_threads() == 1
    });
    wait_for("traffic forwarded", || sink.stats().tx_packets > 10_000);
    thread.stop();
    drop(control);
    assert_eq!(netdev_dpdk::eal::registered_threads(), 0);
    assert_eq!(src.packets_in_use(), 0);
    // Mbufs left in the exited thread's cache count as available.
    assert_eq!(pool.in_use(), 0, "{:?}", pool.info());

    // The PMD's lcore cache was used, and get-mempool-info shows it.
    let info = pool.info();
    assert!(
        info.lcore_caches
            .iter()
            .any(|&(lcore, n)| lcore != main_lcore && n > 0),
        "no PMD lcore cache in use: {info:?}"
    );
    assert!(info.private_data_size as usize >= dp_core::packet::EMBEDDED_CELL_SIZE);
    assert_eq!(info.available, info.n_mbufs);
    let text = info.to_text();
    for line in [
        format!("mempool <{}>", info.name),
        "  size=2048".to_string(),
        "    cache_count[".to_string(),
        format!("    total_cache_count={}", info.cached()),
        "  in_use_count=0".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} missing from:\n{text}");
    }
}
