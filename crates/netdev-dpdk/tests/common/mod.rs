//! Shared test setup: the EAL once per test process (no hugepages, no PCI,
//! nothing on disk), pcap files of UDP flows.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::PathBuf;

use netdev_dpdk::EalConfig;

pub fn eal() {
    let mut config = EalConfig::for_tests();
    config.log_level = 4;
    netdev_dpdk::eal::init(&config).expect("EAL init (--no-huge --no-pci --in-memory)");
}

/// A 60-byte UDP frame with source port `flow` (the DPDK replay frame).
pub fn udp_frame(flow: u16) -> Vec<u8> {
    testbed::replay_frame(flow)
}

/// A pcap of `flows` UDP packets (source ports 0..flows), in a fresh
/// file removed when the returned guard drops.
#[derive(Debug)]
pub struct TempPcap(pub PathBuf);

impl Drop for TempPcap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn pcap(tag: &str, flows: u16) -> TempPcap {
    let path = std::env::temp_dir().join(format!("oxvs-dpdk-{tag}-{}.pcap", std::process::id()));
    testbed::udp_pcap(&path, flows);
    TempPcap(path)
}
