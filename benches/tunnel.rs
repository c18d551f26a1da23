//! The VXLAN fast path's datapath work, one PMD stepped on the bench's own
//! thread, without veths or a kernel in the way: 64-byte inner UDP frames
//! encapsulated (`tnl_push(vxlan)+output`), VXLAN frames decapsulated
//! (`tnl_pop(3)`, then the recirculated inner packet's megaflow
//! `output`), and the plain one-flow forwarding case to compare with.
//! Each case replays one frame from an in-memory `pcap` port forever into
//! a `pcap` port that discards, with the megaflows ofproto-lite installs
//! for it (same masks as its translations: in_port, recirc_id,
//! packet_type, dl_type, fragment bits, tag presence, plus what the tunnel
//! rules match).
//!
//! Run: `cargo bench --bench tunnel` (`TUNNEL_BENCH_SECONDS=N` per case,
//! default 3; `TUNNEL_BENCH_CASE=encap|decap|plain` runs one case).
//! Instructions per packet, independent of the machine's load:
//!
//! ```text
//! cargo bench --bench tunnel --no-run
//! TUNNEL_BENCH_ITERATIONS=20000 TUNNEL_BENCH_CASE=encap valgrind \
//!     --tool=callgrind --toggle-collect='*tunnel::measured*' \
//!     target/release/deps/tunnel-<hash>
//! ```
//!
//! then divide the collected `Ir` by the packets the bench prints (it
//! prints them in iteration mode), and `callgrind_annotate
//! --inclusive=yes` says where they go.
//!
//! The bench checks that every packet it counts went where the case says
//! (all received packets transmitted, one pass per packet for
//! plain/encap, two for decap, the expected megaflows): a case that
//! silently dropped would otherwise look fast.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use dp_core::action::{Action, TnlPush, vport_type};
use dp_core::cascade::CascadeConfig;
use dp_core::execute::{TunnelKind, TunnelPort};
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::cycles;
use dp_pmd::netdev::pcap::{PcapConfig, PcapNetdev};
use dp_pmd::pmd::{Pmd, PmdConfig, PmdMsg, PolledRxq};
use dp_pmd::stats::{PmdIdentity, PmdStats};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use testbed::datapath::translation_base_mask;

mod common;

/// Underlay port (rx), output port (tx) and the VXLAN tunnel port.
const RX_PORT: u32 = 1;
const TX_PORT: u32 = 2;
const TNL_PORT: u32 = 3;
const VNI: u32 = 123;
const LOCAL_IP: [u8; 4] = [192, 168, 1, 1];
const REMOTE_IP: [u8; 4] = [192, 168, 1, 2];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Plain,
    Encap,
    Decap,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Plain => "plain",
            Case::Encap => "encap",
            Case::Decap => "decap",
        }
    }
}

/// The outer header ofproto-lite builds for a VXLAN port with
/// `remote_ip=192.168.1.2` (what `tnl_push` carries): Ethernet, IPv4 with
/// DF and the checksum over a zero length, UDP to 4789, VXLAN with the
/// I flag and VNI 123.
fn vxlan_header(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut h = vec![
        0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6, 0xaa, 0x55, 0xaa, 0x55, 0, 0, 0x08, 0x00,
    ];
    h.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let sum = ipv4_checksum(&h[14..34]);
    h[24..26].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x12, 0xb5, 0, 0, 0, 0]);
    h.extend_from_slice(&[0x08, 0, 0, 0]);
    h.extend_from_slice(&(VNI << 8).to_be_bytes());
    h
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The inner frame every case starts from (UDP source port `sport`).
fn inner_frame(sport: u16) -> Vec<u8> {
    common::udp4_frame(
        [0x02, 0, 0, 0, 0, 2],
        [0x02, 0, 0, 0, 0, 1],
        [10, 0, 0, 1],
        [10, 1, 0, 1],
        sport,
        2000,
    )
}

/// A VXLAN frame from the remote VTEP to us, as the wire carries it
/// (valid IPv4 header checksum, no UDP checksum).
fn vxlan_frame(sport: u16) -> Vec<u8> {
    let inner = inner_frame(sport);
    let mut f = vxlan_header(REMOTE_IP, LOCAL_IP);
    let total = (f.len() - 14 + inner.len()) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let sum = ipv4_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    let udp_len = (f.len() - 34 + inner.len()) as u16;
    f[38..40].copy_from_slice(&udp_len.to_be_bytes());
    f[34..36].copy_from_slice(&50000u16.to_be_bytes());
    f.extend_from_slice(&inner);
    f
}

/// The translations ofproto-lite gives for the case's flows.
#[derive(Debug)]
struct Rules {
    case: Case,
}

impl UpcallHandler for Rules {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = translation_base_mask();
        let actions = match (self.case, key.in_port) {
            (Case::Plain, RX_PORT) => vec![Action::Output(TX_PORT)],
            (Case::Encap, RX_PORT) => vec![
                Action::TnlPush(TnlPush {
                    tnl_port: TNL_PORT,
                    out_port: TX_PORT,
                    tnl_type: vport_type::VXLAN,
                    header: vxlan_header(LOCAL_IP, REMOTE_IP),
                }),
                Action::Output(TX_PORT),
            ],
            // The underlay packet to our VTEP address and the VXLAN port
            // (what the tunnel-pop translation matches).
            (Case::Decap, RX_PORT) => {
                mask.dl_dst = [0xff; 6];
                mask.nw_dst = [0xff; 4];
                mask.nw_proto = u8::MAX;
                mask.tp_dst = u16::MAX;
                vec![Action::TnlPop(TNL_PORT)]
            }
            // The inner packet, back from recirculation on the tunnel
            // port: its tunnel metadata.
            (Case::Decap, TNL_PORT) => {
                mask.tun_id = u64::MAX;
                mask.tun_ipv4_src = [0xff; 4];
                mask.tun_ipv4_dst = [0xff; 4];
                mask.tun_flags = u16::MAX;
                vec![Action::Output(TX_PORT)]
            }
            (_, port) => {
                return Err(UpcallError(format!(
                    "tunnel bench: no rule for in_port {port}"
                )));
            }
        };
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(actions),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

/// The measured loop, kept out of line so that callgrind's
/// `--toggle-collect='*tunnel::measured*'` counts exactly it.
#[inline(never)]
fn measured(pmd: &mut Pmd, iterations: u64) {
    for _ in 0..iterations {
        pmd.poll_once(0);
    }
}

struct CaseResult {
    packets: u64,
    mpps: f64,
    cycles_per_packet: f64,
    passes_per_packet: f64,
}

fn delta(before: &PmdStats, after: &PmdStats) -> (u64, u64, u64) {
    (
        after.packets_received - before.packets_received,
        after.recirculations - before.recirculations,
        after.tx_packets - before.tx_packets,
    )
}

/// The case's frames (inner UDP source ports `sports`) as a pcap file.
fn write_frames(path: &std::path::Path, case: Case, sports: impl Iterator<Item = u16>) {
    let mut bytes = Vec::new();
    dp_core::pcap::write_header(&mut bytes);
    for sport in sports {
        let frame = match case {
            Case::Decap => vxlan_frame(sport),
            Case::Plain | Case::Encap => inner_frame(sport),
        };
        dp_core::pcap::write_record(&mut bytes, 0, &frame);
    }
    std::fs::write(path, bytes).expect("write bench pcap");
}

/// A PMD polling `rx` (port 1) into `tx` (port 2) with the case's rules
/// and port 3 declared a VXLAN tunnel port. The netdevs come back too:
/// they must outlive the PMD (dropping `tx` flushes its file).
fn stepped_pmd(
    case: Case,
    config: PmdConfig,
    rx: &PcapConfig,
    tx: &PcapConfig,
) -> (Pmd, PcapNetdev, PcapNetdev) {
    let rx = PcapNetdev::new("rx", rx).expect("rx port");
    let tx = PcapNetdev::new("tx", tx).expect("tx port");
    let mut pmd = Pmd::new(
        config,
        Arc::new(Rules { case }),
        Arc::new(AtomicUsize::new(1_000_000)),
    );
    pmd.add_rxq(PolledRxq::new(
        RX_PORT,
        "rx",
        0,
        rx.open_rxq(0).expect("rxq"),
    ));
    pmd.add_txq(TX_PORT, tx.open_txq(0).expect("txq"));
    pmd.handle(
        PmdMsg::SetTunnelPort {
            port_no: TNL_PORT,
            config: Some(TunnelPort::new(TunnelKind::Vxlan)),
        },
        0,
    );
    (pmd, rx, tx)
}

fn run_case(case: Case, seconds: f64, iterations: Option<u64>) -> CaseResult {
    let dir = std::env::temp_dir().join(format!("oxvs-bench-tunnel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{}.pcap", case.name()));
    write_frames(&path, case, std::iter::once(1000));
    let config = PmdConfig {
        identity: PmdIdentity::Pmd {
            numa_id: 0,
            core_id: 1,
        },
        cascade: CascadeConfig {
            emc_insert_inv_prob: 1,
            emc: dp_core::cascade::EmcMode::On,
            ..CascadeConfig::default()
        },
        upcall_budget: 64,
        ..PmdConfig::default()
    };
    let rx = PcapConfig {
        rx_file: Some(path),
        infinite: true,
        pool_capacity: 256,
        ..PcapConfig::default()
    };
    let (mut pmd, _rx, _tx) = stepped_pmd(case, config, &rx, &PcapConfig::default());

    // Warm-up: install the megaflows, fill the caches.
    for _ in 0..1000 {
        pmd.poll_once(cycles::monotonic_ns());
    }
    let before = pmd.stats();
    let (t0, c0) = (Instant::now(), cycles::now());
    match iterations {
        Some(n) => measured(&mut pmd, n),
        None => {
            while t0.elapsed().as_secs_f64() < seconds {
                measured(&mut pmd, 256);
            }
        }
    }
    let (elapsed, spent) = (t0.elapsed().as_secs_f64(), cycles::now() - c0);
    let after = pmd.stats();
    let (packets, recirculations, tx_packets) = delta(&before, &after);
    let flows = pmd.flows().len();
    drop(pmd);
    let _ = std::fs::remove_dir_all(&dir);

    // Every packet must have gone where the case says.
    assert!(packets > 0, "{}: no packets received", case.name());
    assert_eq!(
        tx_packets,
        packets,
        "{}: packets received but not transmitted (dropped?)",
        case.name()
    );
    let (want_recirc, want_flows) = match case {
        Case::Decap => (packets, 2),
        Case::Plain | Case::Encap => (0, 1),
    };
    assert_eq!(
        recirculations,
        want_recirc,
        "{}: recirculations",
        case.name()
    );
    assert_eq!(flows, want_flows, "{}: megaflows installed", case.name());
    CaseResult {
        packets,
        mpps: packets as f64 / elapsed / 1e6,
        cycles_per_packet: spent as f64 / packets as f64,
        passes_per_packet: (packets + recirculations) as f64 / packets as f64,
    }
}

/// Whether a case sends a burst of 32 packets of one megaflow out in the
/// order they came in: one pass over a non-repeating capture of 32 inner
/// UDP source ports 1..=32 into a `pcap` file, read back. Printed (not
/// asserted: this bench measures; the datapath's tests own correctness).
fn order_check(case: Case) -> Result<(), Vec<u16>> {
    let dir = std::env::temp_dir().join(format!("oxvs-bench-tunnel-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (rx_path, tx_path) = (dir.join("rx.pcap"), dir.join("tx.pcap"));
    write_frames(&rx_path, case, 1..=32);
    let rx = PcapConfig {
        rx_file: Some(rx_path),
        pool_capacity: 256,
        ..PcapConfig::default()
    };
    let tx = PcapConfig {
        tx_file: Some(tx_path.clone()),
        ..PcapConfig::default()
    };
    let config = PmdConfig {
        upcall_budget: usize::MAX,
        ..PmdConfig::default()
    };
    let (mut pmd, _rx, tx) = stepped_pmd(case, config, &rx, &tx);
    for _ in 0..16 {
        pmd.poll_once(0);
    }
    drop(pmd);
    drop(tx);
    let out = dp_core::pcap::parse(&std::fs::read(&tx_path).expect("read tx pcap"))
        .expect("parse tx pcap");
    let _ = std::fs::remove_dir_all(&dir);
    // The inner UDP source port: after the outer headers when encapsulated.
    let at = if case == Case::Encap { 50 + 34 } else { 34 };
    let sports: Vec<u16> = out
        .iter()
        .map(|r| u16::from_be_bytes([r.data[at], r.data[at + 1]]))
        .collect();
    if sports == (1..=32).collect::<Vec<u16>>() {
        Ok(())
    } else {
        Err(sports)
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let seconds: f64 = std::env::var("TUNNEL_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let iterations: Option<u64> = std::env::var("TUNNEL_BENCH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok());
    let only = std::env::var("TUNNEL_BENCH_CASE").ok();
    if let Some(core) = core_affinity::get_core_ids().and_then(|c| c.last().copied()) {
        core_affinity::set_for_current(core);
    }
    println!(
        "oxvs VXLAN fast path, one PMD, 64-byte inner UDP, pcap (in memory, forever) -> discard"
    );
    println!("TSC: {:.2} GHz", cycles::hz() as f64 / 1e9);
    for case in [Case::Plain, Case::Encap, Case::Decap] {
        if only.as_deref().is_some_and(|o| o != case.name()) {
            continue;
        }
        if iterations.is_none() {
            match order_check(case) {
                Ok(()) => println!("{:<6} keeps a 32-packet burst in order", case.name()),
                Err(got) => println!(
                    "{:<6} REORDERS a 32-packet burst: inner source ports out {got:?}",
                    case.name()
                ),
            }
        }
        let r = run_case(case, seconds, iterations);
        println!(
            "{:<6} {:>7.2} Mpps  {:>7.1} cycles/packet  {:.2} passes/packet  {} packets",
            case.name(),
            r.mpps,
            r.cycles_per_packet,
            r.passes_per_packet,
            r.packets
        );
    }
}
