//! Datapaths and upcall handlers for tests and benchmarks.
//!
//! - Tests that check a driver, not the switching logic: one PMD on the
//!   last core and a handler that installs in_port-only megaflows
//!   ([`PortSwap`], [`Reflect`]).
//! - Tests and benchmarks of the PMD and the revalidator: [`Megaflows`],
//!   a handler whose megaflows have a fixed mask ([`five_tuple_mask`],
//!   [`udp_source_mask`]) and whose actions a routing function chooses
//!   from the flow key and a version the test bumps; and [`udp_frame`],
//!   the 60-byte UDP/IPv4 frame they inject.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::flow::key::{FLOW_NW_FRAG_ANY, FLOW_NW_FRAG_LATER, VLAN_CFI};
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::datapath::{Datapath, DatapathConfig, PortOptions};
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{Pmd, PolledRxq};
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

/// What every ofproto-lite translation matches (xlate.rs `wc_init`, as
/// OVS's `xlate_wc_init`): in_port, recirc_id, packet_type, dl_type, the
/// IP fragment bits and tag presence. Benchmarks' handlers start their
/// megaflow masks from it, as the real translation does.
pub fn translation_base_mask() -> FlowKey {
    let mut mask = FlowKey::ZERO;
    mask.in_port = u32::MAX;
    mask.recirc_id = u32::MAX;
    mask.packet_type = u32::MAX;
    mask.dl_type = u16::MAX;
    mask.nw_frag = FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER;
    mask.vlans[0].tci = VLAN_CFI;
    mask
}

/// The mask of a simple-match megaflow: [`translation_base_mask`] with
/// the whole first VLAN TCI (one megaflow per Ethernet type, tag and
/// fragment kind), the flows the simple-match table serves.
pub fn simple_match_mask() -> FlowKey {
    let mut mask = translation_base_mask();
    mask.vlans[0].tci = 0x1fff;
    mask
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

/// Chooses a megaflow's actions from the packet's flow key and the
/// handler's version (empty: drop).
pub type Route = fn(key: &FlowKey, version: u64) -> Vec<Action>;

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
        let actions = (self.route)(key, self.version.load(Ordering::Relaxed));
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
    let macs = ([0, 0, 0, 0, 0, 2], [0, 0, 0, 0, 0, 1]);
    udp4_frame_with(macs, true, (src, dst), (sport, dport))
}

/// A 60-byte UDP/IPv4 frame `macs.1` → `macs.0`, `ips.0` → `ips.1`,
/// ports `ports.0` → `ports.1`, TTL 64, DF if `df`, checksums 0.
fn udp4_frame_with(
    macs: ([u8; 6], [u8; 6]),
    df: bool,
    ips: ([u8; 4], [u8; 4]),
    ports: (u16, u16),
) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&macs.0);
    f.extend_from_slice(&macs.1);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[
        0x45,
        0,
        0,
        46,
        0,
        0,
        if df { 0x40 } else { 0 },
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&ips.0);
    f.extend_from_slice(&ips.1);
    f.extend_from_slice(&ports.0.to_be_bytes());
    f.extend_from_slice(&ports.1.to_be_bytes());
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

/// Frame `flow` of a DPDK replay: 60-byte UDP 02:..:01 → 02:..:02,
/// 10.0.0.1 → 10.1.0.1, source port = `flow`, destination port 4789.
pub fn replay_frame(flow: u16) -> Vec<u8> {
    let macs = ([0x02, 0, 0, 0, 0, 2], [0x02, 0, 0, 0, 0, 1]);
    udp4_frame_with(macs, false, ([10, 0, 0, 1], [10, 1, 0, 1]), (flow, 4789))
}

/// Writes a pcap file of the [`replay_frame`]s of flows `0..flows` for a
/// DPDK `net_pcap` replay.
pub fn udp_pcap(path: &std::path::Path, flows: u16) {
    let mut bytes = Vec::new();
    dp_core::pcap::write_header(&mut bytes);
    for i in 0..flows {
        dp_core::pcap::write_record(&mut bytes, 0, &replay_frame(i));
    }
    std::fs::write(path, bytes).unwrap();
}

/// Two dummy ports, `p1` and `p2`, attached to a stepped `pmd` as
/// datapath ports 1 and 2 (queue 0 each, received and sent on); the
/// tests inject frames into them and read what was sent.
pub fn two_dummy_ports(pmd: &mut Pmd) -> (Arc<DummyNetdev>, Arc<DummyNetdev>) {
    let p1 = Arc::new(DummyNetdev::new("p1", DummyConfig::default()));
    let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
    for (no, port) in [(1u32, &p1), (2, &p2)] {
        pmd.add_rxq(PolledRxq::new(
            no,
            port.name(),
            0,
            port.open_rxq(0).expect("dummy rxq 0"),
        ));
        pmd.add_txq(no, port.open_txq(0).expect("dummy txq 0"));
    }
    (p1, p2)
}
