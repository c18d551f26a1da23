//! oxvs forwarding between DPDK virtual devices, one PMD: `net_pcap`
//! (`rx_pcap=FILE,infinite_rx=1`) → the datapath → `net_null` (`no-rx=1`),
//! the same setup `benches/dpdk-vs-ovs.sh` gives Open vSwitch and
//! `dpdk-testpmd`. The PMD is the EAL's main lcore (this thread), stepped
//! with `Pmd::poll_once`, so the figures are the datapath's own.
//!
//! Cases (`DPDK_BENCH_CASES`, comma-separated; default all):
//! - `1flow`: one UDP flow (EMC).
//! - `10k`, `100k`: distinct UDP 5-tuples through one megaflow matching
//!   in_port + IPv4/UDP (EMC thrash → megaflow classifier).
//! - `100k-inport`: the same traffic, rule on in_port only: its megaflow
//!   matches only what every translation matches (in_port, dl_type, ...),
//!   which both OVS's and oxvs's simple-match tables serve.
//! - `100k-20masks`: each flow matches one of 20 rules with different
//!   source-prefix masks (20 subtables, one megaflow per flow).
//! - `empty` (not in the default list): one PMD iteration over an idle
//!   port (`net_null`, `no-rx=1`), in ns and cycles: what polling costs
//!   between bursts. `DPDK_BENCH_EMPTY_CLOCK` picks how each iteration
//!   gets the time: `pmd` (the PMD thread's TSC clock, default),
//!   `monotonic` (`clock_gettime`), `none`.
//! - `io`: the driver alone, no datapath: each received batch is sent as
//!   is (what testpmd's io mode does), to separate driver cost from
//!   switching cost.
//! - `setup`: 50k new flows, each its own megaflow (one pass of the file):
//!   flows installed per second and the time to install them all; the
//!   median of `DPDK_BENCH_SETUP_RUNS` (default 5) setups, each on a fresh
//!   PMD (set it to 1 for instruction counts per new flow).
//! - `setup-ofproto`: the same with ofproto-lite translating every upcall
//!   (not in the default list; for its share of the setup cost).
//! - `<N>`, `<N>-20masks` (not in the default list): N flows under the
//!   `10k` rule or the 20-mask rules.
//!
//! `DPDK_BENCH_EMC` (true, false, auto: the default) sets the EMC mode
//! (oxvsd's `emc_enable`); the lookup levels' hit counts go to stderr.
//!
//! Output: one line per case, `oxvs <case> <Mpps> <cycles/packet>` (setup:
//! `oxvs setup <flows/s> <seconds for 50k>`), each the median of per-second
//! samples over `DPDK_BENCH_SECONDS` (default 5).
//!
//! Files: `DPDK_BENCH_PCAP_DIR` holds `<case>.pcap` (the script writes
//! them, shared by all three systems); without it they are generated in a
//! temp dir. EAL: `DPDK_BENCH_LCORE` (default: the last CPU), `--no-huge`
//! unless `DPDK_BENCH_HUGE_DIR` names a mounted hugetlbfs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::cycles;
use dp_pmd::pmd::{Pmd, PmdConfig, PolledRxq};
use dp_pmd::upcall::{FlowActions, Translation, UpcallError, UpcallHandler, Upcalled};
use netdev_dpdk::{DpdkConfig, DpdkNetdev, EalConfig};
use testbed::datapath::translation_base_mask;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// in_port + IPv4 + UDP (+ frag), as OVS's megaflow for
    /// `in_port=1,udp,actions=output:2`.
    InPortUdp,
    /// in_port only.
    InPort,
    /// 20 rules, source prefixes /12 … /31 chosen by the flow.
    TwentyMasks,
    /// Every 5-tuple its own megaflow.
    PerFlow,
}

/// The bench's translation: a fixed rule, and one action list made at
/// start and shared by every megaflow, as ofproto-lite shares one
/// translation's list among the PMDs (the list's allocation is the
/// handler's business, not the datapath's).
#[derive(Debug)]
struct Handler(Rule, FlowActions);

impl UpcallHandler for Handler {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = translation_base_mask();
        if self.0 != Rule::InPort {
            mask.nw_proto = u8::MAX;
        }
        match self.0 {
            Rule::InPortUdp | Rule::InPort => {}
            Rule::TwentyMasks => {
                // The rule is picked by the flow's UDP destination port
                // (0..20); its mask keeps 12 + r bits of the source.
                mask.tp_dst = u16::MAX;
                let r = u32::from(key.tp_dst % 20);
                mask.nw_src = (u32::MAX << (20 - r)).to_be_bytes();
            }
            Rule::PerFlow => {
                mask.nw_src = [255; 4];
                mask.nw_dst = [255; 4];
                mask.tp_src = u16::MAX;
                mask.tp_dst = u16::MAX;
            }
        }
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::clone(&self.1),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

/// ofproto-lite translating each upcall, as the daemon's bridges do: one
/// bridge, `in_port=p1,actions=output:p2`; the megaflow is widened to
/// the 5-tuple, as OVS's run of this case disables megaflows. What the
/// bridges add on top (finding the bridge, crediting rules) is left out:
/// the root package's `benches/bridge_upcall.rs` measures it.
#[derive(Debug)]
struct OfprotoHandler(ofproto::Ofproto);

impl OfprotoHandler {
    fn new() -> OfprotoHandler {
        use ofproto::ports::PortConfig;
        let o = ofproto::Ofproto::new("br0");
        o.add_port(PortConfig::new("p1", 1).with_ofport(1))
            .expect("port p1");
        o.add_port(PortConfig::new("p2", 2).with_ofport(2))
            .expect("port p2");
        o.add_flow("in_port=p1,actions=output:p2", 0).expect("flow");
        OfprotoHandler(o)
    }
}

impl UpcallHandler for OfprotoHandler {
    fn translate(
        &self,
        key: &FlowKey,
        packet: Option<&Packet>,
        now_ms: u64,
    ) -> Result<Translation, UpcallError> {
        let t = match packet {
            Some(_) => self.0.translate(key, now_ms),
            None => self.0.translate_readonly(key, now_ms),
        };
        if let Some(err) = &t.error {
            return Err(UpcallError(err.to_string()));
        }
        let mut mask = t.mask;
        widen(&mut mask);
        Ok(Translation::Megaflow {
            mask,
            actions: t.actions,
        })
    }
    /// The PMD's upcall, as the daemon's handler answers it: the mask
    /// written into the PMD's buffer.
    fn translate_upcall(
        &self,
        key: &FlowKey,
        _: &Packet,
        now_ms: u64,
        _: dp_pmd::stats::PmdIdentity,
        mask: &mut FlowKey,
    ) -> Result<Upcalled, UpcallError> {
        let t = self.0.translate(key, now_ms);
        if let Some(err) = &t.error {
            return Err(UpcallError(err.to_string()));
        }
        *mask = t.mask;
        widen(mask);
        Ok(Upcalled {
            actions: t.actions,
            install: t.install,
            ufid: None,
        })
    }
    fn version(&self) -> u64 {
        self.0.version()
    }
}

/// Makes the 5-tuple exact in an ofproto-lite megaflow mask.
fn widen(mask: &mut FlowKey) {
    mask.nw_src = [255; 4];
    mask.nw_dst = [255; 4];
    mask.nw_proto = u8::MAX;
    mask.tp_src = u16::MAX;
    mask.tp_dst = u16::MAX;
}

/// The UDP frame of flow `i`: source 10.(i>>16).(i>>8).(i), UDP source
/// port 1024 + i % 50000 and destination port i % 20 (the 20-mask rule).
fn udp_frame(i: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
    f[30..34].copy_from_slice(&[10, 255, 0, 1]);
    f[34..36].copy_from_slice(&((1024 + i % 50_000) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&((i % 20) as u16).to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

fn write_pcap(path: &Path, flows: u32) {
    let mut bytes = Vec::new();
    dp_core::pcap::write_header(&mut bytes);
    for i in 0..flows {
        dp_core::pcap::write_record(&mut bytes, 0, &udp_frame(i));
    }
    std::fs::write(path, bytes).expect("write bench pcap");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

struct Bench {
    pcaps: PathBuf,
    seconds: usize,
    next_vdev: usize,
}

impl Bench {
    fn pcap(&self, case: &str, flows: u32) -> PathBuf {
        let path = self.pcaps.join(format!("{case}.pcap"));
        if !path.exists() {
            write_pcap(&path, flows);
        }
        path
    }

    fn ports(&mut self, pcap: &Path, infinite: bool) -> (DpdkNetdev, DpdkNetdev) {
        self.next_vdev += 1;
        let n = self.next_vdev;
        let rx = DpdkNetdev::open(
            "p1",
            &DpdkConfig {
                devargs: format!(
                    "net_pcap_bench{n},rx_pcap={}{}",
                    pcap.display(),
                    if infinite { ",infinite_rx=1" } else { "" }
                ),
                n_mbufs: Some(262_144),
                ..DpdkConfig::default()
            },
        )
        .expect("net_pcap port");
        let tx = DpdkNetdev::open(
            "p2",
            &DpdkConfig {
                devargs: format!("net_null_bench{n},no-rx=1"),
                ..DpdkConfig::default()
            },
        )
        .expect("net_null port");
        (rx, tx)
    }

    fn pmd(rule: Rule, rx: &DpdkNetdev, tx: &DpdkNetdev) -> Pmd {
        let handler = Arc::new(Handler(rule, Arc::from(vec![Action::Output(2)])));
        Self::pmd_with(handler, rule == Rule::PerFlow, rx, tx)
    }

    fn pmd_with(
        handler: Arc<dyn UpcallHandler>,
        unlimited_upcalls: bool,
        rx: &DpdkNetdev,
        tx: &DpdkNetdev,
    ) -> Pmd {
        let mut pmd = Pmd::new(
            PmdConfig {
                upcall_budget: if unlimited_upcalls { usize::MAX } else { 64 },
                // `DPDK_BENCH_EMC` = true | false | auto (the default,
                // as oxvsd's `emc_enable`).
                cascade: dp_core::cascade::CascadeConfig {
                    emc: std::env::var("DPDK_BENCH_EMC")
                        .ok()
                        .map(|v| v.parse().expect("DPDK_BENCH_EMC: true, false or auto"))
                        .unwrap_or_default(),
                    ..Default::default()
                },
                ..PmdConfig::default()
            },
            handler,
            Arc::new(AtomicUsize::new(1_000_000)),
        );
        pmd.add_rxq(PolledRxq::new(1, "p1", 0, rx.open_rxq(0).expect("rxq")));
        pmd.add_txq(2, tx.open_txq(0).expect("txq"));
        pmd
    }

    /// Median Mpps and cycles/packet over per-second samples.
    fn forwarding(&mut self, case: &str, flows: u32, rule: Rule) -> (f64, f64, usize) {
        let pcap = self.pcap(case, flows);
        let (rx, tx) = self.ports(&pcap, true);
        let mut pmd = Self::pmd(rule, &rx, &tx);
        // Warm-up: install the megaflows, fill the caches.
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < 1.0 {
            for _ in 0..256 {
                pmd.poll_once(cycles::monotonic_ns());
            }
        }
        let mut mpps = Vec::new();
        let mut cpp = Vec::new();
        for _ in 0..self.seconds {
            let before = pmd.stats().packets_received;
            let (t, c) = (Instant::now(), cycles::now());
            while t.elapsed().as_secs_f64() < 1.0 {
                for _ in 0..256 {
                    pmd.poll_once(0);
                }
            }
            let packets = (pmd.stats().packets_received - before) as f64;
            let secs = t.elapsed().as_secs_f64();
            mpps.push(packets / secs / 1e6);
            cpp.push((cycles::now() - c) as f64 / packets);
        }
        let installed = pmd.flows().len();
        // For instruction counts (callgrind): the packets of the whole
        // run, warm-up included.
        let stats = pmd.stats();
        eprintln!("  ({} packets in all)", stats.packets_received);
        let l = &stats.lookup;
        eprintln!(
            "  (hits: simple {}, emc {}, smc {}, megaflow {}, miss {})",
            l.simple_match_hits, l.emc_hits, l.smc_hits, l.megaflow_hits, l.misses
        );
        drop(pmd);
        (median(mpps), median(cpp), installed)
    }

    /// Nanoseconds and cycles per PMD iteration over a port that brings
    /// nothing (`net_null` with `no-rx=1`): the cost of polling an idle
    /// queue, which a PMD pays between every two bursts.
    fn empty(&mut self) -> (f64, f64) {
        self.next_vdev += 1;
        let n = self.next_vdev;
        let idle = DpdkNetdev::open(
            "p1",
            &DpdkConfig {
                devargs: format!("net_null_idle{n},no-rx=1"),
                ..DpdkConfig::default()
            },
        )
        .expect("net_null port");
        let mut pmd = Self::pmd(Rule::InPortUdp, &idle, &idle);
        const ITERS: u32 = 1 << 16;
        // The time each iteration gets, as the PMD thread reads it
        // (`DPDK_BENCH_EMPTY_CLOCK`): `pmd` (its TSC clock, the default),
        // `monotonic` (clock_gettime per iteration, as before it), `none`.
        let which = std::env::var("DPDK_BENCH_EMPTY_CLOCK").unwrap_or_else(|_| "pmd".into());
        let mut clock = dp_pmd::pmd::clock::PmdClock::new();
        let mut run = |pmd: &mut Pmd| {
            let (t, c) = (Instant::now(), cycles::now());
            for _ in 0..ITERS {
                let now = match which.as_str() {
                    "monotonic" => cycles::monotonic_ns(),
                    "none" => 0,
                    _ => clock.now_ns(),
                };
                pmd.poll_once(now);
            }
            let ns = t.elapsed().as_nanos() as f64 / f64::from(ITERS);
            (ns, (cycles::now() - c) as f64 / f64::from(ITERS))
        };
        run(&mut pmd);
        let samples: Vec<(f64, f64)> = (0..self.seconds.max(3)).map(|_| run(&mut pmd)).collect();
        // For instruction counts (callgrind): the iterations of the run.
        eprintln!(
            "  ({} iterations in all)",
            (samples.len() as u32 + 1) * ITERS
        );
        (
            median(samples.iter().map(|s| s.0).collect()),
            median(samples.iter().map(|s| s.1).collect()),
        )
    }

    /// Driver-only forwarding (zero-copy rx → tx, no datapath).
    fn io(&mut self) -> (f64, f64) {
        let pcap = self.pcap("1flow", 1);
        let (rx, tx) = self.ports(&pcap, true);
        let mut rxq = rx.open_rxq(0).expect("rxq");
        let mut txq = tx.open_txq(0).expect("txq");
        let mut batch = dp_core::packet::PacketBatch::new();
        let mut pass = |packets: &mut u64| {
            for _ in 0..256 {
                if let Ok(n) = rxq.recv(&mut batch) {
                    *packets += n as u64;
                }
                txq.send(&mut batch);
            }
        };
        let mut warm = 0;
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < 1.0 {
            pass(&mut warm);
        }
        let (mut mpps, mut cpp) = (Vec::new(), Vec::new());
        for _ in 0..self.seconds {
            let mut packets = 0;
            let (t, c) = (Instant::now(), cycles::now());
            while t.elapsed().as_secs_f64() < 1.0 {
                pass(&mut packets);
            }
            mpps.push(packets as f64 / t.elapsed().as_secs_f64() / 1e6);
            cpp.push((cycles::now() - c) as f64 / packets as f64);
            warm += packets;
        }
        // For instruction counts (callgrind): the packets of the whole run.
        eprintln!("  ({warm} packets in all)");
        (median(mpps), median(cpp))
    }

    /// New flows per second, and seconds to install all of `flows`, with
    /// ofproto-lite translating (`setup-ofproto`) or the fixed handler.
    /// The
    /// capture is replayed from memory (`infinite_rx=1`) as the script
    /// feeds OVS, so the rate is the datapath's and not libpcap's file
    /// reading (~440 instructions a packet); its first pass brings every
    /// flow once.
    fn setup(&mut self, flows: u32, ofproto: bool) -> (f64, f64) {
        let pcap = self.pcap("setup", flows);
        let (rx, tx) = self.ports(&pcap, true);
        let mut pmd = if ofproto {
            Self::pmd_with(Arc::new(OfprotoHandler::new()), true, &rx, &tx)
        } else {
            Self::pmd(Rule::PerFlow, &rx, &tx)
        };
        let t0 = Instant::now();
        // Bounded: a replay that never brings the last flows (installs
        // refused) ends after 60 s and reports what was installed.
        while (pmd.flows().len() as u32) < flows && t0.elapsed().as_secs() < 60 {
            pmd.poll_once(0);
        }
        let secs = t0.elapsed().as_secs_f64();
        let installed = pmd.flows().len();
        // For instruction counts per new flow (callgrind).
        eprintln!(
            "  ({installed} flows installed, {} packets)",
            pmd.stats().packets_received
        );
        (installed as f64 / secs, secs)
    }
}

fn main() {
    let env = |k: &str| std::env::var(k).ok();
    let lcore = env("DPDK_BENCH_LCORE")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get() - 1));
    let mut eal = EalConfig {
        lcore: Some(lcore),
        extra_args: vec!["--no-pci".into()],
        log_level: 4,
        ..EalConfig::default()
    };
    match env("DPDK_BENCH_HUGE_DIR") {
        Some(dir) => {
            eal.memory_mb = Some(1024);
            eal.extra_args.extend(["--huge-dir".into(), dir]);
        }
        None => {
            eal.no_huge = true;
            eal.memory_mb = Some(2048);
        }
    }
    netdev_dpdk::eal::init(&eal).expect("EAL");
    let scratch;
    let pcaps = match env("DPDK_BENCH_PCAP_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            scratch = std::env::temp_dir().join(format!("oxvs-dpdk-bench-{}", std::process::id()));
            std::fs::create_dir_all(&scratch).expect("temp dir");
            scratch.clone()
        }
    };
    let mut bench = Bench {
        pcaps: pcaps.clone(),
        seconds: env("DPDK_BENCH_SECONDS")
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
        next_vdev: 0,
    };
    let cases = env("DPDK_BENCH_CASES")
        .unwrap_or_else(|| "1flow,10k,100k,100k-inport,100k-20masks,setup".into());
    eprintln!(
        "oxvs: one PMD on lcore {lcore}, net_pcap -> net_null, 64-byte UDP; TSC {:.2} GHz",
        cycles::hz() as f64 / 1e9
    );
    for case in cases.split(',') {
        let (flows, rule) = match case {
            "1flow" => (1, Rule::InPortUdp),
            "10k" => (10_000, Rule::InPortUdp),
            "100k" => (100_000, Rule::InPortUdp),
            "100k-inport" => (100_000, Rule::InPort),
            "100k-20masks" => (100_000, Rule::TwentyMasks),
            "empty" => {
                let (ns, cycles) = bench.empty();
                println!("oxvs empty {ns:.1} {cycles:.1}");
                continue;
            }
            "io" => {
                let (mpps, cpp) = bench.io();
                println!("oxvs io {mpps:.2} {cpp:.1}");
                continue;
            }
            "setup" | "setup-ofproto" => {
                // One setup takes 40-80 ms, so a single one swings with
                // whatever else the machine does: the median of several,
                // each on a fresh PMD and fresh ports.
                let runs = env("DPDK_BENCH_SETUP_RUNS")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(5usize)
                    .max(1);
                let results: Vec<(f64, f64)> = (0..runs)
                    .map(|_| bench.setup(50_000, case == "setup-ofproto"))
                    .collect();
                let rate = median(results.iter().map(|r| r.0).collect());
                let secs = median(results.iter().map(|r| r.1).collect());
                println!("oxvs {case} {rate:.0} {secs:.3}");
                continue;
            }
            // `<N>`, `<N>-20masks`: N flows with the 1flow/10k/100k rule
            // or the 20-mask rules.
            other if other.trim_end_matches("-20masks").parse::<u32>().is_ok() => {
                let n = other.trim_end_matches("-20masks").parse().unwrap();
                let rule = if other.ends_with("-20masks") {
                    Rule::TwentyMasks
                } else {
                    Rule::InPortUdp
                };
                (n, rule)
            }
            other => panic!("unknown case {other}"),
        };
        // 100k-inport and 100k share the capture.
        let file = if case == "100k-inport" { "100k" } else { case };
        let (mpps, cpp, installed) = bench.forwarding(file, flows, rule);
        println!("oxvs {case} {mpps:.2} {cpp:.1}");
        eprintln!("  ({installed} megaflows)");
    }
    if env("DPDK_BENCH_PCAP_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&pcaps);
    }
}
