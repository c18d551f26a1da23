//! Datapaths for tests that check a driver, not the switching logic: one
//! PMD on the last core and an upcall handler that installs in_port-only
//! megaflows ([`PortSwap`], [`Reflect`]).

use std::sync::Arc;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::packet::Packet;
use dp_pmd::datapath::{Datapath, DatapathConfig, PortOptions};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};

/// A megaflow that matches in_port only and outputs to `out`.
fn in_port_megaflow(out: u32) -> Translation {
    let mut mask = FlowKey::ZERO;
    mask.in_port = u32::MAX;
    Translation::Megaflow {
        mask,
        actions: Arc::from(vec![Action::Output(out)]),
    }
}

/// in_port 1 → 2, anything else → 1.
#[derive(Debug, Default)]
pub struct PortSwap;

impl UpcallHandler for PortSwap {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        Ok(in_port_megaflow(if key.in_port == 1 { 2 } else { 1 }))
    }
    fn version(&self) -> u64 {
        0
    }
}

/// Sends every packet back out of the port it came in on.
#[derive(Debug, Default)]
pub struct Reflect;

impl UpcallHandler for Reflect {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        Ok(in_port_megaflow(key.in_port))
    }
    fn version(&self) -> u64 {
        0
    }
}

/// A datapath with one PMD on the last core and `handler`. With
/// `busy_poll` the PMD never sleeps; otherwise it backs off to 100 µs
/// when idle (so tests on a 2-core machine leave a core to the traffic).
pub fn one_pmd_datapath(busy_poll: bool, handler: Arc<dyn UpcallHandler>) -> Datapath {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    Datapath::new(
        DatapathConfig {
            pmd_cores: vec![n - 1],
            pmd_sleep_max_us: if busy_poll { 0 } else { 100 },
            non_pmd_sleep_max_us: 100,
            ..DatapathConfig::default()
        },
        handler,
    )
    .expect("datapath starts")
}

/// Options for a port with number `n`, everything else default.
pub fn port_no(n: u32) -> PortOptions {
    PortOptions {
        port_no: Some(n),
        ..PortOptions::default()
    }
}

/// Writes a pcap file of `flows` 60-byte UDP frames (02:..:01 → 02:..:02,
/// 10.0.0.1 → 10.1.0.1, source port = the flow's index, destination port
/// 4789) for a DPDK `net_pcap` replay.
pub fn udp_pcap(path: &std::path::Path, flows: u16) {
    let mut bytes = Vec::new();
    dp_core::pcap::write_header(&mut bytes);
    for i in 0..flows {
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
        f[34..36].copy_from_slice(&i.to_be_bytes());
        f[36..38].copy_from_slice(&4789u16.to_be_bytes());
        f[38..40].copy_from_slice(&26u16.to_be_bytes());
        dp_core::pcap::write_record(&mut bytes, 0, &f);
    }
    std::fs::write(path, bytes).unwrap();
}
