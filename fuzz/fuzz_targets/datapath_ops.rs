//! Structured datapath fuzzing: the input is decoded into a sequence of
//! operations (inject a packet or a burst, put/modify/delete/flush flows,
//! revalidate, change the rules, change the flow limit, add and remove
//! ports) applied to a real [`Pmd`] over `dummy-pmd` ports, stepped with an
//! injected clock. The input's first bytes choose the EMC insertion
//! probability and whether the SMC is on.
//!
//! Every single-packet injection is checked against a linear reference:
//! the flows installed before the packet (a dump) are scanned in full for
//! one whose mask and masked key match the packet's key.
//! - If one matches, the packet must be counted on a flow that matches it
//!   (any of them when several overlap) and make no upcall.
//! - If none matches, the packet must go to the upcall handler, whose
//!   decision (install, execute once, fail, or refused by the flow limit)
//!   is predicted by asking the same deterministic handler.
//!
//! So a stale cache entry (a deleted flow still hit), a classifier that
//! misses an installed flow, or one that returns a non-matching flow all
//! fail. The packet must then come out of exactly the ports its actions
//! name. After every step every pool's in-use count is zero (the flush
//! interval is 0, so nothing waits in a transmit buffer), and at the end,
//! after dropping the PMD, every buffer of every port ever created is back.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dp_pmd::dp_core::action::Action;
use dp_pmd::dp_core::cascade::CascadeConfig;
use dp_pmd::dp_core::flow::{FlowKey, extract_frame};
use dp_pmd::dp_core::netdev::Netdev;
use dp_pmd::dp_core::packet::{Packet, PacketMetadata};
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::msg::PutMode;
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg, PolledRxq};
use dp_pmd::revalidator::{FlowAction, RevalidatorConfig, plan_round};
use dp_pmd::upcall::{FlowActions, Translation, UpcallError, UpcallHandler};
use libfuzzer_sys::arbitrary::{Result as UResult, Unstructured};
use libfuzzer_sys::fuzz_target;

/// LeakSanitizer off for this target: a packet pool's header is leaked
/// on purpose (cells point at a `&'static` header, so packets carry no
/// reference count; closing the pool frees every cell and buffer), and
/// each input creates pools, so libFuzzer would run a full leak scan after
/// every input (15 executions/s instead of hundreds). Packet buffers are
/// checked here by the pools' in-use counts; the other targets keep LSan.
// SAFETY: the sanitizer runtime calls this C-ABI hook once at start-up
// and only reads the returned NUL-terminated static string.
#[unsafe(no_mangle)]
pub extern "C" fn __lsan_default_options() -> *const std::ffi::c_char {
    c"detect_leaks=0".as_ptr()
}

/// Port numbers are 1..=MAX_PORTS; a removed port's number is reused.
const MAX_PORTS: u32 = 4;
/// Operations per input, so one input cannot run for ever.
const MAX_OPS: usize = 300;
const MS: u64 = 1_000_000;

/// The translation layer the PMD upcalls into: a pure function of the key
/// and the rule version, so the fuzz target can predict every decision.
#[derive(Debug, Default)]
struct Rules {
    version: AtomicU64,
}

impl Rules {
    fn decide(key: &FlowKey, version: u64) -> Result<Translation, UpcallError> {
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        mask.dl_type = u16::MAX;
        if key.dl_type == 0x0800 {
            mask.nw_dst = [255; 4];
            match key.nw_dst[3] {
                66 => return Err(UpcallError("no rule for 10.0.0.66".into())),
                77 => {
                    // A rule that must see every packet: nothing installed.
                    return Ok(Translation::ExecuteOnly {
                        actions: Arc::from(vec![Action::Output(1)]),
                    });
                }
                // Odd destinations also look at L4: a second mask shape, so
                // the classifier holds several subtables.
                d if d % 2 == 1 => {
                    mask.nw_proto = u8::MAX;
                    mask.tp_dst = u16::MAX;
                }
                _ => {}
            }
        } else {
            mask.dl_dst = [255; 6];
        }
        let out = (key.in_port + version as u32) % MAX_PORTS + 1;
        let actions: Vec<Action> = match (key.nw_dst[3], version % 3) {
            (_, 2) => Vec::new(),
            (d, _) if d % 5 == 0 => vec![Action::Output(out), Action::Output(out % MAX_PORTS + 1)],
            _ => vec![Action::Output(out)],
        };
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(actions),
        })
    }
}

impl UpcallHandler for Rules {
    fn translate(
        &self,
        key: &FlowKey,
        _packet: Option<&Packet>,
        _now_ms: u64,
    ) -> Result<Translation, UpcallError> {
        Rules::decide(key, self.version.load(Ordering::Relaxed))
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

/// A frame from a small space (so flows repeat and caches get hits), or
/// raw bytes.
fn frame(u: &mut Unstructured) -> UResult<Vec<u8>> {
    let kind = u.int_in_range(0u8..=6)?;
    let dst = u.int_in_range(0u8..=11)?.wrapping_mul(11);
    let port = u.int_in_range(0u16..=3)?;
    let mut f = vec![0u8; 14];
    f[..6].copy_from_slice(&[0, 0, 0, 0, 0, 2 + (dst & 1)]);
    f[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 1]);
    let ipv4 = |f: &mut Vec<u8>, proto: u8| {
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, dst]);
        f.extend_from_slice(&(1000 + port).to_be_bytes());
        f.extend_from_slice(&(53 + port).to_be_bytes());
        if proto == 6 {
            f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&[0, 8, 0, 0]);
        }
    };
    match kind {
        0 | 1 => {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            ipv4(&mut f, if kind == 0 { 17 } else { 6 });
        }
        2 => {
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&[0, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
            f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, dst]);
        }
        3 => {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
            f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, dst]);
            f.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        }
        4 => {
            f[12..14].copy_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&[0, port as u8 + 1, 0x08, 0x00]);
            ipv4(&mut f, 17);
        }
        _ => {
            let len = u.int_in_range(0usize..=200)?;
            return Ok(u.bytes(len)?.to_vec());
        }
    }
    // Pad to the Ethernet minimum, as a NIC would deliver it.
    if f.len() < 60 {
        f.resize(60, 0);
    }
    Ok(f)
}

fn key_of(frame: &[u8], in_port: u32) -> FlowKey {
    let mut key = FlowKey::ZERO;
    extract_frame(frame, &PacketMetadata::new(in_port), &mut key);
    key
}

/// A mask for a fuzz-installed flow: always exact on in_port (the
/// datapath's classifiers are per port), plus one of a few shapes.
fn mask(u: &mut Unstructured) -> UResult<FlowKey> {
    let mut m = FlowKey::ZERO;
    m.in_port = u32::MAX;
    match u.int_in_range(0u8..=4)? {
        0 => {}
        1 => m.dl_type = u16::MAX,
        2 => {
            m.dl_type = u16::MAX;
            m.nw_dst = [255, 255, 255, u.arbitrary()?];
        }
        3 => {
            m.dl_type = u16::MAX;
            m.nw_proto = u8::MAX;
            m.tp_dst = u16::MAX;
        }
        _ => m = FlowKey::exact_mask(),
    }
    Ok(m)
}

struct Harness {
    pmd: Pmd,
    rules: Arc<Rules>,
    flow_limit: Arc<AtomicUsize>,
    ports: HashMap<u32, Arc<DummyNetdev>>,
    /// Every port ever created, for the final buffer check.
    all_ports: Vec<Arc<DummyNetdev>>,
    now_ns: u64,
}

impl Harness {
    fn new(emc_insert_inv_prob: u32, smc_enabled: bool) -> Harness {
        let rules = Arc::new(Rules::default());
        let flow_limit = Arc::new(AtomicUsize::new(1000));
        let config = PmdConfig {
            // Small caches: cheap to create per input, and collisions and
            // replacements happen within a few hundred packets.
            cascade: CascadeConfig {
                emc_entries: 64,
                emc_insert_inv_prob,
                smc: if smc_enabled {
                    dp_core::cascade::SmcMode::On
                } else {
                    dp_core::cascade::SmcMode::Off
                },
                smc_entries: 256,
                ..CascadeConfig::default()
            },
            clone_pool_capacity: 64,
            // Admission control off: it reads the real cycle counter, so
            // with it a miss may be refused or not depending on how fast
            // this machine ran the previous burst, and a crash would not
            // reproduce. Its own stepped tests (dp-pmd flood_admission)
            // cover it; here every miss must upcall.
            upcall_share_pct: 0,
            ..PmdConfig::default()
        };
        let pmd = Pmd::new(config, rules.clone(), flow_limit.clone());
        let mut h = Harness {
            pmd,
            rules,
            flow_limit,
            ports: HashMap::new(),
            all_ports: Vec::new(),
            now_ns: MS,
        };
        for _ in 0..3 {
            h.add_port();
        }
        h
    }

    fn add_port(&mut self) {
        let Some(port_no) = (1..=MAX_PORTS).find(|p| !self.ports.contains_key(p)) else {
            return;
        };
        let name = format!("p{}", self.all_ports.len());
        let port = Arc::new(DummyNetdev::new(
            &name,
            DummyConfig {
                pool_capacity: 256,
                ..DummyConfig::default()
            },
        ));
        let rxq = port.open_rxq(0).expect("fresh port has rx queue 0");
        self.pmd.add_rxq(PolledRxq::new(port_no, &name, 0, rxq));
        self.pmd.add_txq(
            port_no,
            port.open_txq(0).expect("fresh port has tx queue 0"),
        );
        self.ports.insert(port_no, port.clone());
        self.all_ports.push(port);
    }

    fn remove_port(&mut self, port_no: u32) {
        if self.ports.remove(&port_no).is_none() {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.pmd
            .handle(PmdMsg::RemovePort { port_no, reply: tx }, self.now_ns);
        let rxqs = rx.try_recv().expect("RemovePort replies at once");
        assert_eq!(rxqs.len(), 1, "port {port_no} had one rx queue");
        // After removal no flow received on the port may remain.
        assert!(
            self.dump().iter().all(|f| f.key.in_port != port_no),
            "flows of removed port {port_no} survived"
        );
    }

    fn dump(&mut self) -> Vec<FlowDump> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.pmd
            .handle(PmdMsg::DumpFlows { reply: tx }, self.now_ns);
        rx.try_recv().expect("DumpFlows replies at once")
    }

    fn tick(&mut self, ms: u64) {
        self.now_ns += ms * MS + 1;
    }

    fn poll_until_idle(&mut self) {
        for _ in 0..1000 {
            if self.pmd.poll_once(self.now_ns) == 0 {
                return;
            }
        }
        panic!("rx queues did not drain");
    }

    fn check_no_buffers_out(&self, when: &str) {
        for port in &self.all_ports {
            assert_eq!(
                port.pool().in_use(),
                0,
                "{when}: {} holds buffers",
                port.name()
            );
        }
    }

    fn take_all_sent(&self) -> HashMap<u32, Vec<Vec<u8>>> {
        self.ports
            .iter()
            .map(|(&no, p)| (no, p.take_sent()))
            .collect()
    }

    /// Injects one frame on `port_no` and checks the packet against the
    /// linear reference (see the module docs).
    fn inject_checked(&mut self, port_no: u32, frame: &[u8]) {
        let Some(port) = self.ports.get(&port_no).cloned() else {
            return;
        };
        let before = self.dump();
        let stats_before = self.pmd.stats();
        let subtable_hits_before = self.pmd.flows().subtable_limit_hits();
        let flows_before = self.pmd.flows().len();
        if port.receive(0, frame).is_err() {
            // Over the MTU: refused at the port, never entered the datapath.
            return;
        }
        assert_eq!(self.pmd.poll_once(self.now_ns), 1);
        let after = self.dump();
        let stats = self.pmd.stats();
        let key = key_of(frame, port_no);

        let counts_before: HashMap<u128, u64> =
            before.iter().map(|f| (f.ufid, f.stats.packets)).collect();
        let hit: Vec<&FlowDump> = after
            .iter()
            .filter(|f| f.stats.packets > counts_before.get(&f.ufid).copied().unwrap_or(0))
            .collect();
        assert!(hit.len() <= 1, "one packet counted on {} flows", hit.len());
        let reference: Vec<&FlowDump> = before
            .iter()
            .filter(|f| key.matches_masked(&f.mask, &f.key))
            .collect();
        let upcalls = |s: &dp_pmd::stats::PmdStats| s.miss_upcall_ok + s.miss_upcall_failed;

        let actions: Option<FlowActions> = if !reference.is_empty() {
            // Linear reference found a flow: the datapath must hit one of
            // the matching flows and must not upcall.
            let hit = hit.first().unwrap_or_else(|| {
                panic!(
                    "key {key:?} matches {} installed flows but hit none",
                    reference.len()
                )
            });
            assert!(
                reference.iter().any(|f| f.ufid == hit.ufid),
                "packet hit flow {:x} which the linear reference does not match",
                hit.ufid
            );
            assert_eq!(
                upcalls(&stats),
                upcalls(&stats_before),
                "upcall despite a match"
            );
            Some(hit.actions.clone())
        } else {
            assert_eq!(
                upcalls(&stats),
                upcalls(&stats_before) + 1,
                "no installed flow matches, so the packet must upcall"
            );
            match Rules::decide(&key, self.rules.version()) {
                Err(_) => {
                    assert!(hit.is_empty(), "failed upcall counted on a flow");
                    assert_eq!(
                        stats.miss_upcall_failed,
                        stats_before.miss_upcall_failed + 1
                    );
                    None
                }
                Ok(Translation::ExecuteOnly { actions }) => {
                    assert!(hit.is_empty(), "execute-only upcall installed a flow");
                    Some(actions)
                }
                Ok(Translation::Megaflow { mask, actions }) => {
                    if flows_before >= self.flow_limit.load(Ordering::Relaxed) {
                        assert!(hit.is_empty(), "installed over the flow limit");
                        assert_eq!(
                            stats.upcall_flow_limit_hit,
                            stats_before.upcall_flow_limit_hit + 1
                        );
                    } else if hit.is_empty() {
                        // The only other refusal is the subtable limit.
                        assert!(
                            self.pmd.flows().subtable_limit_hits() > subtable_hits_before,
                            "upcall's megaflow was neither installed nor refused"
                        );
                    } else {
                        let new = hit[0];
                        assert!(!counts_before.contains_key(&new.ufid));
                        assert_eq!(new.mask, mask, "installed with another mask");
                        assert_eq!(new.key, key.masked(&mask));
                    }
                    Some(actions)
                }
            }
        };

        // The packet comes out exactly where its actions send it.
        let sent = self.take_all_sent();
        let mut expected: HashMap<u32, usize> = HashMap::new();
        for action in actions.iter().flat_map(|a| a.iter()) {
            if let Action::Output(p) = action
                && self.ports.contains_key(p)
            {
                *expected.entry(*p).or_default() += 1;
            }
        }
        for (no, frames) in &sent {
            assert_eq!(
                frames.len(),
                expected.get(no).copied().unwrap_or(0),
                "port {no} got {} copies; actions {actions:?}",
                frames.len()
            );
            assert!(frames.iter().all(|f| f == frame), "output frame altered");
        }
        self.check_no_buffers_out("after one packet");
    }

    fn revalidate(&mut self, max_idle_ms: u64, retranslate: bool) {
        let flows = self.dump();
        let config = RevalidatorConfig {
            max_idle_ms,
            ..RevalidatorConfig::default()
        };
        let limit = self.flow_limit.load(Ordering::Relaxed);
        let handler: &dyn UpcallHandler = &*self.rules;
        let plan = plan_round(
            &flows,
            self.now_ns / MS,
            limit,
            &config,
            retranslate.then_some(handler),
        );
        let mut deleted = Vec::new();
        for action in plan {
            match action {
                FlowAction::Delete { ufid, .. } => {
                    self.pmd
                        .handle(PmdMsg::FlowDel { ufid, reply: None }, self.now_ns);
                    deleted.push(ufid);
                }
                FlowAction::Modify { ufid, actions } => {
                    self.pmd
                        .handle(PmdMsg::FlowModifyActions { ufid, actions }, self.now_ns);
                }
            }
        }
        let after = self.dump();
        for ufid in deleted {
            assert!(
                after.iter().all(|f| f.ufid != ufid),
                "deleted flow {ufid:x} remains"
            );
        }
    }

    fn op(&mut self, u: &mut Unstructured) -> UResult<()> {
        match u.int_in_range(0u8..=11)? {
            0..=3 => {
                let port_no = u.int_in_range(1..=MAX_PORTS)?;
                let f = frame(u)?;
                self.inject_checked(port_no, &f);
            }
            4 => {
                // A burst across ports: no exact reference (flows installed
                // mid-batch overlap), but accounting must hold.
                let n = u.int_in_range(1usize..=40)?;
                for _ in 0..n {
                    let port_no = u.int_in_range(1..=MAX_PORTS)?;
                    let f = frame(u)?;
                    if let Some(port) = self.ports.get(&port_no) {
                        let _ = port.receive(0, &f);
                    }
                }
                let received_before = self.pmd.stats().packets_received;
                self.poll_until_idle();
                let received = self.pmd.stats().packets_received - received_before;
                assert!(received <= n as u64);
                let _ = self.take_all_sent();
                self.check_no_buffers_out("after a burst");
            }
            5 => {
                let in_port = u.int_in_range(1..=MAX_PORTS)?;
                let f = frame(u)?;
                let m = mask(u)?;
                let key = key_of(&f, in_port);
                let out = u.int_in_range(0..=MAX_PORTS)?;
                let actions: FlowActions = if out == 0 {
                    Arc::from(Vec::new())
                } else {
                    Arc::from(vec![Action::Output(out)])
                };
                let mode = match u.int_in_range(0u8..=2)? {
                    0 => PutMode::Create,
                    1 => PutMode::Modify {
                        zero_stats: u.arbitrary()?,
                    },
                    _ => PutMode::CreateOrModify,
                };
                let ufid = if u.arbitrary()? {
                    Some(u128::from(u.int_in_range(1u8..=8)?))
                } else {
                    None
                };
                let (tx, rx) = crossbeam_channel::bounded(1);
                self.pmd.handle(
                    PmdMsg::FlowPut {
                        key,
                        mask: m,
                        ufid,
                        actions,
                        mode,
                        reply: tx,
                    },
                    self.now_ns,
                );
                let _ = rx.try_recv().expect("FlowPut replies at once");
            }
            6 => {
                let flows = self.dump();
                if !flows.is_empty() {
                    let victim = flows[u.choose_index(flows.len())?].ufid;
                    let (tx, rx) = crossbeam_channel::bounded(1);
                    self.pmd.handle(
                        PmdMsg::FlowDel {
                            ufid: victim,
                            reply: Some(tx),
                        },
                        self.now_ns,
                    );
                    let gone = rx.try_recv().expect("FlowDel replies at once");
                    assert_eq!(gone.map(|d| d.ufid), Some(victim));
                    assert!(self.dump().iter().all(|f| f.ufid != victim));
                }
            }
            7 => {
                self.pmd.handle(PmdMsg::FlowFlush, self.now_ns);
                assert!(self.dump().is_empty());
            }
            8 => {
                let bump = u.arbitrary::<bool>()?;
                if bump {
                    self.rules.version.fetch_add(1, Ordering::Relaxed);
                }
                let max_idle_ms = u.int_in_range(1u64..=20)?;
                self.revalidate(max_idle_ms, bump);
            }
            9 => {
                let limit = u.int_in_range(0usize..=30)?;
                self.flow_limit.store(limit, Ordering::Relaxed);
            }
            10 => {
                if u.arbitrary()? {
                    self.add_port();
                } else {
                    let port_no = u.int_in_range(1..=MAX_PORTS)?;
                    self.remove_port(port_no);
                }
                self.check_no_buffers_out("after a port change");
            }
            _ => {
                let ms = u.int_in_range(0u64..=10)?;
                self.tick(ms);
            }
        }
        self.tick(0);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let emc_insert_inv_prob = match u.int_in_range(0u8..=2) {
        Ok(0) => 0,
        Ok(1) => 1,
        _ => 100,
    };
    let smc_enabled = u.arbitrary().unwrap_or(false);
    let mut h = Harness::new(emc_insert_inv_prob, smc_enabled);
    for _ in 0..MAX_OPS {
        if u.is_empty() || h.op(&mut u).is_err() {
            break;
        }
    }
    h.poll_until_idle();
    let _ = h.take_all_sent();
    let Harness { pmd, all_ports, .. } = h;
    drop(pmd);
    for port in &all_ports {
        assert_eq!(port.pool().in_use(), 0, "{} leaked buffers", port.name());
    }
});
