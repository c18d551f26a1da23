//! One poll-mode thread's datapath: its receive queues, caches, flow table
//! and transmit buffers, and the per-iteration packet path.
//!
//! # How it works
//! [`Pmd::poll_once`] is one iteration: for each owned rx queue, receive a
//! burst (served by the simple-match fast path, `simple_rx`, when every
//! packet hits a simple flow of an all-simple port), extract keys and
//! hashes, look the batch up through the cascade (simple match → EMC →
//! SMC → megaflow classifier), resolve the misses through the upcall
//! handler (within a per-iteration budget, installing the resulting
//! megaflows unless the flow limit is reached), then execute
//! each flow's actions on its group of packets. Outputs collect in per-port
//! transmit buffers, flushed when full and at the end of the iteration (or
//! once `tx_flush_interval` has passed). Recirculated packets take another
//! pass in the same iteration.
//!
//! The struct is sans-IO apart from the driver calls: the caller passes
//! the time, so a test can step iterations one by one
//! ([`Pmd::poll_once`]) and apply control messages between them
//! ([`Pmd::handle`]).
//!
//! # Invariants
//! - Every packet received is transmitted, recirculated to completion, or
//!   dropped with a counted reason before `poll_once` returns, except
//!   packets waiting in transmit buffers under a non-zero flush interval.
//! - Dropping a `Pmd` returns every buffer it holds.
//! - The receive batch (`rx_batch`) is empty between iterations: what a
//!   queue puts in it is moved out and processed in the same iteration.
//!
//! # Thread story
//! A `Pmd` is owned by exactly one thread (see [`thread`]) and used through
//! `&mut`: no locks, no atomics on the per-packet path. The flow limit is
//! an atomic the revalidator writes and the PMD reads once per iteration.

pub mod admission;
mod batch_installs;
pub mod clock;
pub mod exec;
mod general;
mod install;
pub mod msg;
pub mod observe;
mod simple_rx;
pub mod thread;
mod uniform;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::cascade::{Cascade, CascadeConfig, Disposition};
use dp_core::flow::FlowKey;
use dp_core::flow::same::{materialise, prepare_runs_deferred};
use dp_core::flow_table::{FlowRef, FlowTable, FlowTableConfig};
use dp_core::netdev::{RxQueue, TxQueue};
use dp_core::packet::{MAX_BURST, Packet, PacketBatch};

use crate::capture::CaptureTap;
use crate::cycles;
use crate::stats::{PmdIdentity, PmdStats};
use crate::upcall::{FlowActions, UpcallHandler};
use exec::Executor;
pub use msg::{FlowDump, PmdMsg, RxqStatus};

/// Default upcalls a PMD serves per iteration before dropping further
/// misses, so a flood of new flows cannot starve established ones.
pub const DEFAULT_UPCALL_BUDGET: usize = 64;
/// Default flow limit (OVS `flow-limit`).
pub const DEFAULT_FLOW_LIMIT: usize = 200_000;
/// Processing-cycle history kept per rx queue for `cycles` assignment:
/// this many intervals.
pub const RXQ_CYCLE_HISTORY: usize = 6;

/// Tunables of one PMD.
#[derive(Clone, Debug)]
pub struct PmdConfig {
    pub identity: PmdIdentity,
    pub cascade: CascadeConfig,
    pub flow_table: FlowTableConfig,
    /// Upcalls served per iteration.
    pub upcall_budget: usize,
    /// Share of a contended PMD's cycles upcalls may take (%; 0: no
    /// admission control); see [`admission`].
    pub upcall_share_pct: u32,
    /// Longest a packet may wait in a transmit buffer (µs); 0 flushes at
    /// the end of every iteration.
    pub tx_flush_interval_us: u64,
    /// Buffers for packet copies made by multi-output and clone actions.
    pub clone_pool_capacity: usize,
    /// Where `userspace` actions send packets (bounded); `None` drops them
    /// as "userspace queue full".
    pub userspace: Option<crossbeam_channel::Sender<exec::UserspacePacket>>,
}

impl Default for PmdConfig {
    fn default() -> Self {
        PmdConfig {
            identity: PmdIdentity::Main,
            cascade: CascadeConfig::default(),
            flow_table: FlowTableConfig::default(),
            upcall_budget: DEFAULT_UPCALL_BUDGET,
            upcall_share_pct: admission::DEFAULT_UPCALL_SHARE_PCT,
            tx_flush_interval_us: 0,
            clone_pool_capacity: 4 * MAX_BURST,
            userspace: None,
        }
    }
}

/// An rx queue this PMD polls.
#[derive(Debug)]
pub struct PolledRxq {
    pub port_no: u32,
    pub port_name: String,
    pub qid: usize,
    rxq: Box<dyn RxQueue>,
    /// Processing cycles of the current interval, then the history.
    cycles_now: u64,
    cycles_history: [u64; RXQ_CYCLE_HISTORY],
    history_pos: usize,
    /// Back-off while the queue brings only refused misses.
    throttle: admission::RxqThrottle,
}

impl PolledRxq {
    pub fn new(port_no: u32, port_name: &str, qid: usize, rxq: Box<dyn RxQueue>) -> PolledRxq {
        PolledRxq {
            port_no,
            port_name: port_name.to_string(),
            qid,
            rxq,
            cycles_now: 0,
            cycles_history: [0; RXQ_CYCLE_HISTORY],
            history_pos: 0,
            throttle: admission::RxqThrottle::default(),
        }
    }

    /// Processing cycles over the history window.
    pub fn measured_cycles(&self) -> u64 {
        self.cycles_history.iter().sum::<u64>() + self.cycles_now
    }
}

/// A port this PMD transmits to, with its pending output.
#[derive(Debug)]
struct TxPort {
    txq: Box<dyn TxQueue>,
    pending: PacketBatch,
    /// When the oldest pending packet was queued (ns).
    pending_since_ns: u64,
}

/// Which actions a packet of the current batch runs.
#[derive(Clone, Copy, Debug, Default)]
enum Verdict {
    #[default]
    Dropped,
    Flow(FlowRef),
    /// Index into the batch's one-off action lists.
    OneOff(usize),
    /// A miss refused an upcall by admission control.
    Refused,
}

/// One PMD thread's datapath; see the module docs.
#[derive(Debug)]
pub struct Pmd {
    config: PmdConfig,
    cascade: Cascade,
    flows: FlowTable<FlowActions>,
    upcall: Arc<dyn UpcallHandler>,
    flow_limit: Arc<AtomicUsize>,
    rxqs: Vec<PolledRxq>,
    /// Indexed by datapath port number.
    tx: Vec<Option<TxPort>>,
    exec: Executor,
    stats: PmdStats,
    /// Capture tap and performance history (`observe`).
    obs: observe::PmdObserve,
    /// Misses that an earlier upcall of the same batch had already covered
    /// (the cascade counted them as misses; they are megaflow hits).
    relookup_hits: u64,
    /// The current batch's installs, which its later misses check.
    installs: batch_installs::BatchInstalls,
    /// Upcall admission control, and the misses of the current rx batch
    /// it refused.
    admission: admission::UpcallAdmission,
    batch_refused: u64,
    /// Where queues receive; empty between iterations. Kept, rather than
    /// made per poll, so an empty poll neither builds nor drops a batch
    /// (the drop checks all 32 slots): DPDK bench `empty`, 381 → 253
    /// instructions per idle iteration. Boxed, and taken out by pointer
    /// for an iteration (`Some` between iterations), so that the stages
    /// work on it in place, by `&mut`, while borrowing the PMD.
    rx_batch: Option<Box<PacketBatch>>,
    keys: Box<[FlowKey; MAX_BURST]>,
    /// Where the upcall handler writes a megaflow's mask (`install.rs`).
    upcall_mask: Option<Box<FlowKey>>,
    /// Each key's word map (the EMC compares only those words).
    maps: [u64; MAX_BURST],
    hashes: [u32; MAX_BURST],
    dispositions: [Disposition; MAX_BURST],
}

impl Pmd {
    /// A PMD with no queues yet.
    pub fn new(
        config: PmdConfig,
        upcall: Arc<dyn UpcallHandler>,
        flow_limit: Arc<AtomicUsize>,
    ) -> Pmd {
        let exec = Executor::new(&config);
        Pmd {
            cascade: Cascade::new(config.cascade),
            flows: FlowTable::new(config.flow_table),
            upcall,
            flow_limit,
            rxqs: Vec::new(),
            tx: Vec::new(),
            exec,
            stats: PmdStats::default(),
            obs: observe::PmdObserve::default(),
            relookup_hits: 0,
            installs: batch_installs::BatchInstalls::default(),
            admission: admission::UpcallAdmission::new(config.upcall_share_pct),
            batch_refused: 0,
            rx_batch: Some(Box::new(PacketBatch::new())),
            keys: Box::new([FlowKey::ZERO; MAX_BURST]),
            upcall_mask: Some(Box::new(FlowKey::ZERO)),
            maps: [0; MAX_BURST],
            hashes: [0; MAX_BURST],
            dispositions: [Disposition::Miss; MAX_BURST],
            config,
        }
    }

    pub fn identity(&self) -> PmdIdentity {
        self.config.identity
    }

    /// The flow table (for tests and dumps).
    pub fn flows(&self) -> &FlowTable<FlowActions> {
        &self.flows
    }

    /// Counters, with the cascade's levels folded in.
    pub fn stats(&self) -> PmdStats {
        let mut s = self.stats;
        s.lookup = *self.cascade.stats();
        s.lookup.misses -= self.relookup_hits;
        s.lookup.megaflow_hits += self.relookup_hits;
        s
    }

    /// Drop counters of the action executor, by reason.
    pub fn drop_counts(&self) -> Vec<(&'static str, u64)> {
        self.exec.drop_counts()
    }

    /// Starts polling `rxq`.
    pub fn add_rxq(&mut self, rxq: PolledRxq) {
        self.rxqs.push(rxq);
    }

    /// Stops polling the queues of `port_no`, returning them (their owner
    /// closes them by dropping).
    pub fn remove_rxqs(&mut self, port_no: u32) -> Vec<PolledRxq> {
        let (gone, kept) = std::mem::take(&mut self.rxqs)
            .into_iter()
            .partition(|q| q.port_no == port_no);
        self.rxqs = kept;
        gone
    }

    /// Takes every rx queue away (for reassignment).
    pub fn take_rxqs(&mut self) -> Vec<PolledRxq> {
        std::mem::take(&mut self.rxqs)
    }

    /// Current rx queues and their measured cycles.
    pub fn rxq_status(&self) -> Vec<RxqStatus> {
        self.rxqs
            .iter()
            .map(|q| RxqStatus {
                port_no: q.port_no,
                port_name: q.port_name.clone(),
                qid: q.qid,
                cycles: q.measured_cycles(),
            })
            .collect()
    }

    /// Starts an rx-cycles history interval (called every few seconds).
    pub fn rotate_rxq_cycles(&mut self) {
        for q in &mut self.rxqs {
            q.cycles_history[q.history_pos] = q.cycles_now;
            q.history_pos = (q.history_pos + 1) % RXQ_CYCLE_HISTORY;
            q.cycles_now = 0;
        }
    }

    /// Lets this PMD transmit to `port_no` through `txq`.
    pub fn add_txq(&mut self, port_no: u32, txq: Box<dyn TxQueue>) {
        let i = port_no as usize;
        if self.tx.len() <= i {
            self.tx.resize_with(i + 1, || None);
        }
        self.tx[i] = Some(TxPort {
            txq,
            pending: PacketBatch::new(),
            pending_since_ns: 0,
        });
    }

    /// Stops transmitting to `port_no` (pending packets are sent first) and
    /// forgets every flow received on it.
    pub fn remove_port(&mut self, port_no: u32, now_ns: u64) {
        self.flush_port(port_no as usize);
        if let Some(slot) = self.tx.get_mut(port_no as usize) {
            *slot = None;
        }
        let _ = now_ns;
        let doomed: Vec<u128> = self
            .flows
            .iter()
            .filter(|(_, f)| f.in_port() == port_no)
            .map(|(_, f)| f.ufid())
            .collect();
        for ufid in doomed {
            self.delete_flow(ufid);
        }
    }

    /// One iteration over every rx queue; returns the packets received.
    pub fn poll_once(&mut self, now_ns: u64) -> usize {
        let iter_start = cycles::now();
        let mut received = 0;
        // Always `Some` here; a fresh batch only if a panic lost it.
        let mut batch = self.rx_batch.take().unwrap_or_default();
        for i in 0..self.rxqs.len() {
            if self.rxqs[i].throttle.skip(self.admission.admit()) {
                continue;
            }
            let start = cycles::now();
            // A queue error (device gone) is the driver's to count; the
            // port will be removed by the control path. Whatever the
            // queue put in the batch is processed, error or not.
            let _ = self.rxqs[i].rxq.recv(&mut batch);
            if batch.is_empty() {
                continue;
            }
            let n = batch.len();
            let port_no = self.rxqs[i].port_no;
            for packet in batch.iter_mut() {
                packet.set_in_port(port_no);
            }
            received += n;
            self.stats.packets_received += n as u64;
            self.obs.capture.rx(port_no, &batch, now_ns);
            let hits_before = admission::cache_hits(self.cascade.stats());
            // The stages work on the batch in place: moving a 264-byte
            // batch by value through them cost four `memcpy`s, a `memset`
            // and a 32-slot drop per batch (callgrind, DPDK bench `1flow`:
            // ~10 instructions a packet).
            if !self.run_simple_rx(&mut batch, port_no, now_ns) {
                self.one_pass(&mut batch, now_ns);
            }
            // Whatever a stage left behind is dropped, as a batch passed
            // by value was; the next queue receives into an empty batch.
            batch.clear();
            self.finish_recirculations(now_ns);
            let batch_cycles = cycles::now().wrapping_sub(start);
            self.rxqs[i].cycles_now += batch_cycles;
            let hits = admission::cache_hits(self.cascade.stats()) - hits_before;
            self.admission.end_batch(batch_cycles, hits, n as u64);
            let refused = std::mem::take(&mut self.batch_refused);
            self.rxqs[i].throttle.after_batch(n as u64, hits, refused);
        }
        self.rx_batch = Some(batch);
        self.flush_due(now_ns);
        let spent = cycles::now().wrapping_sub(iter_start);
        self.admission.end_iteration(now_ns);
        if received > 0 {
            self.stats.busy_cycles += spent;
        } else {
            self.stats.idle_cycles += spent;
        }
        let upcalls = self.stats.miss_upcall_ok + self.stats.miss_upcall_failed;
        self.obs
            .perf
            .end_iteration(spent, received, upcalls, now_ns);
        received
    }

    /// Runs a batch of packets (already carrying their `in_port`) through
    /// the datapath, including recirculations. Counted in
    /// `packets received` by the caller (rx) or as recirculations.
    pub fn process_batch(&mut self, mut batch: PacketBatch, now_ns: u64) {
        self.one_pass(&mut batch, now_ns);
        drop(batch);
        self.finish_recirculations(now_ns);
    }

    /// Runs the packets recirculated by the last pass, and theirs, to
    /// completion.
    fn finish_recirculations(&mut self, now_ns: u64) {
        while let Some(recirc) = self.exec.take_recirculated() {
            self.stats.recirculations += recirc.len() as u64;
            let mut recirc = recirc;
            self.one_pass(&mut recirc, now_ns);
        }
    }

    /// One datapath pass over `batch`.
    fn one_pass(&mut self, batch: &mut PacketBatch, now_ns: u64) {
        let now_ms = now_ns / 1_000_000;
        let runs = prepare_runs_deferred(batch, &mut self.keys, &mut self.maps, &mut self.hashes);
        if runs.is_whole() && self.run_whole_run(batch, runs.n, now_ns) {
            return;
        }
        materialise(&mut self.keys, &mut self.maps, runs.copies);
        let (n, runs) = (runs.n, runs.runs);
        self.cascade.lookup_batch_runs(
            &mut self.flows,
            &self.keys[..n],
            &self.maps[..n],
            &self.hashes[..n],
            runs,
            now_ms,
            &mut self.dispositions[..n],
        );
        if !self.run_uniform(batch, n, now_ns) {
            self.run_general(batch, n, now_ns);
        }
    }

    /// Classifier lookup of one key (`trace --generate`).
    fn lookup_one(&mut self, key: &FlowKey) -> Option<FlowRef> {
        let keys = std::slice::from_ref(key);
        let mut found = [0u32; MAX_BURST];
        let res = self.flows.classify_batch(key.in_port, keys, 1, &mut found);
        (res.found & 1 != 0).then(|| self.flows.flow_at(found[0]))
    }

    fn execute(&mut self, actions: &FlowActions, group: &mut PacketBatch, now_ns: u64) {
        let Pmd {
            exec,
            tx,
            stats,
            obs,
            ..
        } = self;
        let capture = &mut obs.capture;
        let mut sink = TxSink {
            tx,
            stats,
            capture,
            now_ns,
        };
        exec.execute(actions, group, &mut sink, now_ns);
    }

    /// Sends pending output that is due: everything when the flush
    /// interval is 0, else what has waited long enough.
    fn flush_due(&mut self, now_ns: u64) {
        let interval_ns = self.config.tx_flush_interval_us * 1000;
        for i in 0..self.tx.len() {
            let due = match &self.tx[i] {
                Some(port) if !port.pending.is_empty() => {
                    interval_ns == 0 || now_ns.saturating_sub(port.pending_since_ns) >= interval_ns
                }
                _ => false,
            };
            if due {
                self.flush_port(i);
            }
        }
    }

    /// Sends every pending packet now (shutdown, port removal).
    pub fn flush_all(&mut self) {
        for i in 0..self.tx.len() {
            self.flush_port(i);
        }
    }

    fn flush_port(&mut self, i: usize) {
        if let Some(Some(port)) = self.tx.get_mut(i) {
            let (capture, now) = (&mut self.obs.capture, None);
            send_pending(port, i as u32, &mut self.stats, capture, now);
        }
    }

    /// Applies a control message (between iterations).
    pub fn handle(&mut self, msg: PmdMsg, now_ns: u64) {
        msg::apply(self, msg, now_ns);
    }
}

impl Drop for Pmd {
    fn drop(&mut self) {
        // Pending output goes out rather than being dropped silently.
        self.flush_all();
    }
}

fn same_verdict(a: Verdict, b: Verdict) -> bool {
    match (a, b) {
        (Verdict::Dropped, Verdict::Dropped) => true,
        (Verdict::Flow(x), Verdict::Flow(y)) => x == y,
        (Verdict::OneOff(x), Verdict::OneOff(y)) => x == y,
        (Verdict::Refused, Verdict::Refused) => true,
        _ => false,
    }
}

// Out of line: inlined into `TxSink::output` its register needs (the
// capture hook's arguments) cost every output call a larger prologue.
#[inline(never)]
fn send_pending(
    port: &mut TxPort,
    port_no: u32,
    stats: &mut PmdStats,
    capture: &mut CaptureTap,
    now_ns: Option<u64>,
) {
    if port.pending.is_empty() {
        return;
    }
    capture.tx(port_no, &port.pending, now_ns);
    let n = port.pending.len() as u64;
    port.txq.send(&mut port.pending);
    stats.tx_packets += n;
    stats.tx_batches += 1;
}

/// Where the executor's `output` actions go: this PMD's transmit buffers.
pub struct TxSink<'a> {
    tx: &'a mut Vec<Option<TxPort>>,
    stats: &'a mut PmdStats,
    capture: &'a mut CaptureTap,
    now_ns: u64,
}

impl TxSink<'_> {
    /// Queues `packet` for `port_no`; `Err` gives it back when this PMD
    /// has no such port.
    pub fn output(&mut self, port_no: u32, packet: Packet) -> Result<(), Packet> {
        let Some(Some(port)) = self.tx.get_mut(port_no as usize) else {
            return Err(packet);
        };
        if port.pending.is_empty() {
            port.pending_since_ns = self.now_ns;
        }
        let packet = match port.pending.push(packet) {
            Ok(()) => return Ok(()),
            Err(packet) => packet,
        };
        let now = Some(self.now_ns);
        send_pending(port, port_no, self.stats, self.capture, now);
        port.pending_since_ns = self.now_ns;
        port.pending.push(packet)
    }
}

impl std::fmt::Debug for TxSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxSink")
            .field("ports", &self.tx.len())
            .finish()
    }
}
