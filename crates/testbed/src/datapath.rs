//! Datapaths and upcall handlers for tests and benchmarks.
//!
//! - Tests that check a driver, not the switching logic: one PMD on the
//!   last core and a handler that installs in_port-only megaflows
//!   ([`PortSwap`], [`Reflect`]).
//! - Tests and benchmarks of the PMD and the revalidator: [`Megaflows`],
//!   a handler whose megaflows have a fixed mask ([`five_tuple_mask`],
//!   [`udp_source_mask`]) and whose actions a routing function chooses
//!   from the in_port and a version the test bumps; and [`udp_frame`],
//!   the 60-byte UDP/IPv4 frame they inject.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The mask of an exact 5-tuple megaflow: in_port, dl_type, IPv4 addresses,
/// protocol and ports.
pub fn five_tuple_mask() -> FlowKey {
    let mut mask = FlowKey::ZERO;
    mask.in_port = u32::MAX;
    mask.dl_type = u16::MAX;
    mask.nw_src = [255; 4];
    mask.nw_dst = [255; 4];
    mask.nw_proto = u8::MAX;
    mask.tp_src = u16::MAX;
    mask.tp_dst = u16::MAX;
    mask
}

/// The mask of a megaflow on in_port, dl_type, protocol and the UDP source
/// port: one megaflow per source port.
pub fn udp_source_mask() -> FlowKey {
    let mut mask = FlowKey::ZERO;
    mask.in_port = u32::MAX;
    mask.dl_type = u16::MAX;
    mask.nw_proto = u8::MAX;
    mask.tp_src = u16::MAX;
    mask
}

/// Chooses a megaflow's actions from the packet's in_port and the
/// handler's version (empty: drop).
pub type Route = fn(in_port: u32, version: u64) -> Vec<Action>;

/// An upcall handler whose megaflows all have one mask and whose actions
/// come from a [`Route`]. It counts its translations, and its version is
/// the test's to bump (a rule change the revalidator must apply).
#[derive(Debug)]
pub struct Megaflows {
    mask: FlowKey,
    route: Route,
    version: AtomicU64,
    calls: AtomicU64,
}

impl Megaflows {
    /// A handler installing `mask` megaflows with the actions of `route`.
    pub fn new(mask: FlowKey, route: Route) -> Megaflows {
        Megaflows {
            mask,
            route,
            version: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// How many translations it has answered.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Moves to the next version: the revalidator re-translates every
    /// megaflow against it.
    pub fn bump_version(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
    }
}

impl UpcallHandler for Megaflows {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let actions = (self.route)(key.in_port, self.version.load(Ordering::Relaxed));
        Ok(Translation::Megaflow {
            mask: self.mask,
            actions: Arc::from(actions),
        })
    }
    fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

/// A 60-byte UDP/IPv4 frame 00:00:00:00:00:01 → 00:00:00:00:00:02,
/// `src` → 10.0.0.2, ports `sport` → `dport` (IP and UDP checksums 0).
pub fn udp_frame(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    udp4_frame(src, [10, 0, 0, 2], sport, dport)
}

/// A 60-byte UDP/IPv4 frame 00:00:00:00:00:01 → 00:00:00:00:00:02,
/// `src` → `dst`, ports `sport` → `dport`, TTL 64, DF, IP and UDP
/// checksums 0.
pub fn udp4_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 26, 0, 0]);
    f.resize(60, 0);
    f
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
