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

/// A 60-byte UDP frame with source port `flow`.
pub fn udp_frame(flow: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 1, 0, 1]);
    f[34..36].copy_from_slice(&flow.to_be_bytes());
    f[36..38].copy_from_slice(&4789u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
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
    let mut bytes = Vec::new();
    dp_core::pcap::write_header(&mut bytes);
    for i in 0..flows {
        dp_core::pcap::write_record(&mut bytes, 0, &udp_frame(i));
    }
    std::fs::write(&path, bytes).expect("write pcap");
    TempPcap(path)
}
