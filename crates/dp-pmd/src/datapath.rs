//! The datapath object (OVS's `dp_netdev`): ports, the PMD threads that
//! poll them, the revalidator, and the control operations the daemon
//! exposes (port add/remove, flow put/del/dump, stats, rxq placement).
//!
//! # How it works
//! Ports get datapath numbers (0 is reserved for the bridge's LOCAL port,
//! as in OVS). Each PMD thread is pinned to one configured core; one extra
//! non-PMD thread, unpinned and sleeping when idle, polls the ports whose
//! driver says `is_pmd() == false` (kernel-facing ports). Every thread can
//! transmit to every port through its own tx queue (queue `i % n_txq`
//! for thread `i`, so ports with fewer tx queues than threads share them,
//! and their driver locks).
//!
//! Adding or removing a port re-deals every rx queue with the configured
//! `pmd-rxq-assign` policy; queues carry their measured cycle history with
//! them, so `cycles` and `group` placements use real load. The PMD core
//! list can change at run time ([`Datapath::set_pmd_cores`], in
//! [`cores`]): threads start and stop and the queues are dealt again.
//!
//! # Thread story
//! The datapath lives on the control thread. It changes PMDs only by
//! message and waits for replies, so a PMD's state has one owner. Shutdown
//! (`Drop`) stops the revalidator, then every PMD thread, each of which
//! flushes its output and returns every buffer it holds.

pub mod cores;
mod observe;

pub use cores::CoreChange;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use dp_core::cascade::{CascadeConfig, EmcMode, SmcMode, cache_state};
use dp_core::emc::EMC_DEFAULT_INSERT_INV_PROB;
use dp_core::flow::FlowKey;
use dp_core::flow_table::FlowTableConfig;
use dp_core::netdev::{Netdev, NetdevStats};

use crate::pmd::exec::UserspacePacket;
use crate::pmd::msg::PutMode;
use crate::pmd::thread::{PmdThread, PmdThreadConfig};
use crate::pmd::{
    DEFAULT_FLOW_LIMIT, DEFAULT_UPCALL_BUDGET, FlowDump, Pmd, PmdConfig, PmdMsg, PolledRxq,
    RxqStatus,
};
use crate::revalidator::{Revalidator, RevalidatorConfig};
use crate::sched::{RxqAssign, RxqInfo, assign_rxqs};
use crate::stats::{PmdIdentity, PmdStats, format_pmd_stats};
use crate::upcall::{FlowActions, UpcallHandler};

/// The LOCAL port's number.
pub const LOCAL_PORT: u32 = 0;
/// How long a control request waits for a PMD's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Datapath settings (the daemon's `[datapath]` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatapathConfig {
    /// Cores to run PMD threads on (one thread each).
    pub pmd_cores: Vec<usize>,
    pub rxq_assign: RxqAssign,
    /// PMDs with pinned queues take no others (`pmd-rxq-isolate`).
    pub rxq_isolate: bool,
    pub emc_insert_inv_prob: u32,
    /// `emc-enable`: auto (the default) or always as OVS, see
    /// [`dp_core::cascade`].
    pub emc_enable: EmcMode,
    /// OVS `smc-enable`, plus auto (the default): see
    /// [`dp_core::cascade`].
    pub smc_enable: SmcMode,
    pub tx_flush_interval_us: u64,
    pub upcall_budget: usize,
    /// Share of a contended PMD's cycles upcalls may take (%; 0: no
    /// admission control), see [`crate::pmd::admission`].
    pub upcall_share_pct: u32,
    pub flow_limit: usize,
    pub max_idle_ms: u64,
    /// PMD idle back-off ceiling (µs); 0 = busy polling.
    pub pmd_sleep_max_us: u64,
    /// Idle back-off ceiling of the non-PMD thread (µs).
    pub non_pmd_sleep_max_us: u64,
    /// rx-cycle history interval (ms).
    pub rxq_interval_ms: u64,
    /// Revalidation round interval (ms).
    pub revalidate_interval_ms: u64,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            pmd_cores: Vec::new(),
            rxq_assign: RxqAssign::Cycles,
            rxq_isolate: true,
            emc_insert_inv_prob: EMC_DEFAULT_INSERT_INV_PROB,
            emc_enable: EmcMode::Auto,
            smc_enable: SmcMode::Auto,
            tx_flush_interval_us: 0,
            upcall_budget: DEFAULT_UPCALL_BUDGET,
            upcall_share_pct: crate::pmd::admission::DEFAULT_UPCALL_SHARE_PCT,
            flow_limit: DEFAULT_FLOW_LIMIT,
            max_idle_ms: 10_000,
            pmd_sleep_max_us: 0,
            non_pmd_sleep_max_us: 1000,
            rxq_interval_ms: 10_000,
            revalidate_interval_ms: 500,
        }
    }
}

/// Options of one port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortOptions {
    /// Requested datapath port number (`None`: the lowest free one ≥ 1).
    pub port_no: Option<u32>,
    /// `pmd-rxq-affinity`: `(queue, core)` pairs.
    pub rxq_affinity: Vec<(usize, usize)>,
}

/// A datapath error, naming the port, the flow or the thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatapathError {
    PortExists(String),
    PortNumberInUse(u32),
    NoSuchPort(String),
    NoSuchFlow(String),
    Netdev(String),
    Flow(String),
    /// A PMD thread did not answer (stuck or gone).
    PmdUnresponsive(String),
    Thread(String),
}

impl std::fmt::Display for DatapathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatapathError::PortExists(p) => write!(f, "port {p} already exists"),
            DatapathError::PortNumberInUse(n) => write!(f, "port number {n} is in use"),
            DatapathError::NoSuchPort(p) => write!(f, "no such port: {p}"),
            DatapathError::NoSuchFlow(u) => write!(f, "no such flow: {u}"),
            DatapathError::Netdev(e) | DatapathError::Flow(e) | DatapathError::Thread(e) => {
                f.write_str(e)
            }
            DatapathError::PmdUnresponsive(t) => write!(f, "{t} did not answer"),
        }
    }
}

impl std::error::Error for DatapathError {}

#[derive(Debug)]
struct PortEntry {
    name: String,
    netdev: Arc<dyn Netdev>,
    options: PortOptions,
}

#[derive(Debug)]
struct PmdLink {
    identity: PmdIdentity,
    core: Option<usize>,
    /// Which transmit queue this thread opens on each port (`slot %
    /// n_txq`): the lowest slot no other live thread holds, so threads
    /// started at run time reuse the queues of stopped ones instead of
    /// piling onto a shared queue.
    tx_slot: usize,
    control: Sender<PmdMsg>,
    thread: Option<PmdThread>,
}

/// One thread's counters, as `pmd_stats` reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct PmdReport {
    pub identity: PmdIdentity,
    pub stats: PmdStats,
    /// Drop counters by printed name.
    pub drops: Vec<(&'static str, u64)>,
}

/// A running datapath; see the module docs.
#[derive(Debug)]
pub struct Datapath {
    config: DatapathConfig,
    upcall: Arc<dyn UpcallHandler>,
    flow_limit: Arc<AtomicUsize>,
    ports: BTreeMap<u32, PortEntry>,
    /// PMD threads, then the non-PMD thread last.
    threads: Vec<PmdLink>,
    revalidator: Option<Revalidator>,
    userspace: Option<Sender<UserspacePacket>>,
    /// Tunnel ports' receive settings, replayed to PMDs started later
    /// (locked: the daemon declares them through `&self`).
    tunnel_ports: Mutex<BTreeMap<u32, dp_core::execute::TunnelPort>>,
}

impl Datapath {
    /// Starts the PMD threads, the non-PMD thread and the revalidator.
    pub fn new(
        config: DatapathConfig,
        upcall: Arc<dyn UpcallHandler>,
    ) -> Result<Datapath, DatapathError> {
        Datapath::with_userspace_queue(config, upcall, None)
    }

    /// [`Datapath::new`], with `userspace` actions delivering their
    /// packets to `userspace` (a bounded queue the daemon drains).
    pub fn with_userspace_queue(
        config: DatapathConfig,
        upcall: Arc<dyn UpcallHandler>,
        userspace: Option<Sender<UserspacePacket>>,
    ) -> Result<Datapath, DatapathError> {
        let flow_limit = Arc::new(AtomicUsize::new(config.flow_limit));
        let mut dp = Datapath {
            config,
            upcall,
            flow_limit,
            ports: BTreeMap::new(),
            threads: Vec::new(),
            revalidator: None,
            userspace,
            tunnel_ports: Mutex::new(BTreeMap::new()),
        };
        let cores = dp.config.pmd_cores.clone();
        for core in cores {
            dp.spawn_thread(
                PmdIdentity::Pmd {
                    numa_id: 0,
                    core_id: core,
                },
                Some(core),
            )?;
        }
        dp.spawn_thread(PmdIdentity::Main, None)?;
        dp.revalidator = Some(dp.spawn_revalidator()?);
        Ok(dp)
    }

    /// A revalidator over the threads running now.
    fn spawn_revalidator(&self) -> Result<Revalidator, DatapathError> {
        let senders = self.threads.iter().map(|t| t.control.clone()).collect();
        Revalidator::spawn(
            senders,
            Arc::clone(&self.upcall),
            Arc::clone(&self.flow_limit),
            RevalidatorConfig {
                max_idle_ms: self.config.max_idle_ms,
                max_flow_limit: self.config.flow_limit,
                interval_ms: self.config.revalidate_interval_ms,
            },
        )
        .map_err(|e| DatapathError::Thread(format!("revalidator: {e}")))
    }

    fn pmd_config(&self, identity: PmdIdentity, index: usize) -> PmdConfig {
        PmdConfig {
            identity,
            cascade: CascadeConfig {
                emc_insert_inv_prob: self.config.emc_insert_inv_prob,
                emc: self.config.emc_enable,
                smc: self.config.smc_enable,
                seed: 0x0a5c_ade5 ^ (index as u32).wrapping_mul(0x9e37_79b9),
                ..CascadeConfig::default()
            },
            flow_table: FlowTableConfig::default(),
            upcall_budget: self.config.upcall_budget,
            upcall_share_pct: self.config.upcall_share_pct,
            tx_flush_interval_us: self.config.tx_flush_interval_us,
            userspace: self.userspace.clone(),
            ..PmdConfig::default()
        }
    }

    /// The lowest transmit slot no thread holds.
    fn free_tx_slot(&self) -> usize {
        (0..)
            .find(|s| self.threads.iter().all(|t| t.tx_slot != *s))
            .expect("slots are plenty")
    }

    /// Starts a thread (appended to `threads`) with no queues yet.
    fn spawn_thread(
        &mut self,
        identity: PmdIdentity,
        core: Option<usize>,
    ) -> Result<(), DatapathError> {
        let tx_slot = self.free_tx_slot();
        let pmd = Pmd::new(
            self.pmd_config(identity, tx_slot),
            Arc::clone(&self.upcall),
            Arc::clone(&self.flow_limit),
        );
        let (tx, rx): (Sender<PmdMsg>, Receiver<PmdMsg>) = unbounded();
        let name = match core {
            Some(c) => format!("pmd-c{c:02}"),
            None => "non-pmd".to_string(),
        };
        let thread = PmdThread::spawn(
            name.clone(),
            pmd,
            rx,
            PmdThreadConfig {
                core,
                sleep_max_us: if core.is_some() {
                    self.config.pmd_sleep_max_us
                } else {
                    self.config.non_pmd_sleep_max_us
                },
                rxq_interval_ms: self.config.rxq_interval_ms,
            },
        )
        .map_err(|e| DatapathError::Thread(format!("{name}: {e}")))?;
        self.threads.push(PmdLink {
            identity,
            core,
            tx_slot,
            control: tx,
            thread: Some(thread),
        });
        Ok(())
    }

    /// The flow limit in force now (dynamic).
    pub fn flow_limit(&self) -> usize {
        self.flow_limit.load(Ordering::Relaxed)
    }

    /// Sets the configured (maximum) flow limit (`upcall/set-flow-limit`).
    pub fn set_flow_limit(&mut self, limit: usize) {
        self.config.flow_limit = limit;
        self.flow_limit.store(limit, Ordering::Relaxed);
    }

    /// The revalidator (for `upcall/show` and `revalidator/purge`).
    pub fn revalidator(&self) -> Option<&Revalidator> {
        self.revalidator.as_ref()
    }

    /// Ports by number.
    pub fn ports(&self) -> impl Iterator<Item = (u32, &str, &Arc<dyn Netdev>)> {
        self.ports
            .iter()
            .map(|(n, p)| (*n, p.name.as_str(), &p.netdev))
    }

    /// The number of the port named `name`.
    pub fn port_no(&self, name: &str) -> Option<u32> {
        self.ports
            .iter()
            .find(|(_, p)| p.name == name)
            .map(|(n, _)| *n)
    }

    /// Per-port counters.
    pub fn port_stats(&self, port_no: u32) -> Option<NetdevStats> {
        self.ports.get(&port_no).map(|p| p.netdev.stats())
    }

    fn request<T>(
        &self,
        link: &PmdLink,
        make: impl FnOnce(Sender<T>) -> PmdMsg,
    ) -> Result<T, DatapathError> {
        let (tx, rx) = bounded(1);
        link.control
            .send(make(tx))
            .map_err(|_| DatapathError::PmdUnresponsive(thread_name(link)))?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| DatapathError::PmdUnresponsive(thread_name(link)))
    }

    /// Adds `netdev` as a port; returns its datapath number.
    pub fn add_port(
        &mut self,
        netdev: Arc<dyn Netdev>,
        options: PortOptions,
    ) -> Result<u32, DatapathError> {
        let name = netdev.name().to_string();
        if self.port_no(&name).is_some() {
            return Err(DatapathError::PortExists(name));
        }
        let port_no = match options.port_no {
            Some(n) if self.ports.contains_key(&n) => {
                return Err(DatapathError::PortNumberInUse(n));
            }
            Some(n) => n,
            None => (1..)
                .find(|n| !self.ports.contains_key(n))
                .expect("port numbers are plenty"),
        };
        let info = netdev.info();
        // Open every queue first, so a failing driver leaves nothing behind.
        let mut txqs = Vec::new();
        for link in &self.threads {
            let qid = link.tx_slot % info.n_txq.max(1);
            txqs.push(
                netdev
                    .open_txq(qid)
                    .map_err(|e| DatapathError::Netdev(e.to_string()))?,
            );
        }
        let mut rxqs = Vec::new();
        for qid in 0..info.n_rxq {
            let rxq = netdev
                .open_rxq(qid)
                .map_err(|e| DatapathError::Netdev(e.to_string()))?;
            rxqs.push(PolledRxq::new(port_no, &name, qid, rxq));
        }
        for (link, txq) in self.threads.iter().zip(txqs) {
            let _ = link.control.send(PmdMsg::AddTxq { port_no, txq });
        }
        self.ports.insert(
            port_no,
            PortEntry {
                name,
                netdev,
                options,
            },
        );
        self.place_rxqs(rxqs)?;
        Ok(port_no)
    }

    /// Declares (`Some`) or forgets (`None`) datapath port `port_no` as a
    /// tunnel port on every thread, so `tnl_pop(port_no)` decapsulates with
    /// `config`'s receive checks.
    pub fn set_tunnel_port(&self, port_no: u32, config: Option<dp_core::execute::TunnelPort>) {
        let mut known = self.tunnel_ports.lock().unwrap_or_else(|e| e.into_inner());
        match config {
            Some(c) => known.insert(port_no, c),
            None => known.remove(&port_no),
        };
        for link in &self.threads {
            let _ = link.control.send(PmdMsg::SetTunnelPort { port_no, config });
        }
    }

    /// Removes the port named `name`: PMDs stop polling it, flush what they
    /// queued for it and forget its flows.
    pub fn del_port(&mut self, name: &str) -> Result<(), DatapathError> {
        let port_no = self
            .port_no(name)
            .ok_or_else(|| DatapathError::NoSuchPort(name.to_string()))?;
        for link in &self.threads {
            // The returned queues close when dropped here.
            drop(self.request(link, |reply| PmdMsg::RemovePort { port_no, reply })?);
        }
        self.ports.remove(&port_no);
        self.tunnel_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&port_no);
        Ok(())
    }

    /// Re-deals every rx queue with the configured policy
    /// (`pmd-rxq-rebalance`).
    pub fn rebalance(&mut self) -> Result<(), DatapathError> {
        self.place_rxqs(Vec::new()).map(drop)
    }

    /// Takes all rx queues back, adds `new`, and deals them out again;
    /// returns the scheduler's warnings (affinity to a core without PMD).
    fn place_rxqs(&mut self, new: Vec<PolledRxq>) -> Result<Vec<String>, DatapathError> {
        let mut all = new;
        for link in &self.threads {
            all.extend(self.request(link, |reply| PmdMsg::TakeRxqs { reply })?);
        }
        let non_pmd_index = self.threads.len() - 1;
        let (pmd_queues, kernel_queues): (Vec<PolledRxq>, Vec<PolledRxq>) =
            all.into_iter().partition(|q| {
                self.ports
                    .get(&q.port_no)
                    .is_some_and(|p| p.netdev.is_pmd())
            });
        for q in kernel_queues {
            let _ = self.threads[non_pmd_index].control.send(PmdMsg::AddRxq(q));
        }
        let cores: Vec<usize> = self.threads.iter().filter_map(|t| t.core).collect();
        let infos: Vec<RxqInfo> = pmd_queues
            .iter()
            .map(|q| RxqInfo {
                port_no: q.port_no,
                port_name: q.port_name.clone(),
                qid: q.qid,
                affinity: self.ports.get(&q.port_no).and_then(|p| {
                    p.options
                        .rxq_affinity
                        .iter()
                        .find(|(qid, _)| *qid == q.qid)
                        .map(|(_, c)| *c)
                }),
                cycles: q.measured_cycles(),
            })
            .collect();
        let assignment = assign_rxqs(
            &infos,
            &cores,
            self.config.rxq_assign,
            self.config.rxq_isolate,
        );
        for (i, q) in pmd_queues.into_iter().enumerate() {
            let target = match assignment.core_of(i) {
                Some(core) => self
                    .threads
                    .iter()
                    .position(|t| t.core == Some(core))
                    .unwrap_or(non_pmd_index),
                // No PMD cores at all: the non-PMD thread polls everything.
                None => non_pmd_index,
            };
            let _ = self.threads[target].control.send(PmdMsg::AddRxq(q));
        }
        Ok(assignment.warnings)
    }

    /// Installs (or modifies) a flow on every thread (`dpctl/add-flow`),
    /// or only on the PMD on `pmd_core`.
    pub fn flow_put(
        &self,
        key: &FlowKey,
        mask: &FlowKey,
        ufid: Option<u128>,
        actions: FlowActions,
        mode: PutMode,
        pmd_core: Option<usize>,
    ) -> Result<u128, DatapathError> {
        let mut result = Err(DatapathError::Flow(
            "no PMD thread to install the flow on".into(),
        ));
        for link in self
            .threads
            .iter()
            .filter(|t| pmd_core.is_none() || t.core == pmd_core)
        {
            let r = self.request(link, |reply| PmdMsg::FlowPut {
                key: *key,
                mask: *mask,
                ufid,
                actions: Arc::clone(&actions),
                mode,
                reply,
            })?;
            result = r.map_err(DatapathError::Flow);
            if let Err(e) = &result {
                return Err(e.clone());
            }
        }
        result
    }

    /// Deletes the flow `ufid` everywhere; returns its dumps (one per
    /// thread that had it).
    pub fn flow_del(&self, ufid: u128) -> Result<Vec<FlowDump>, DatapathError> {
        let mut out = Vec::new();
        for link in &self.threads {
            if let Some(d) = self.request(link, |reply| PmdMsg::FlowDel {
                ufid,
                reply: Some(reply),
            })? {
                out.push(d);
            }
        }
        if out.is_empty() {
            return Err(DatapathError::NoSuchFlow(
                dp_core::flow_table::UfidDisplay(ufid).to_string(),
            ));
        }
        Ok(out)
    }

    /// Deletes every flow (`dpctl/del-flows`).
    pub fn flow_flush(&self) {
        for link in &self.threads {
            let _ = link.control.send(PmdMsg::FlowFlush);
        }
    }

    /// Every thread's flows (`dpctl/dump-flows`).
    pub fn dump_flows(&self) -> Result<Vec<FlowDump>, DatapathError> {
        let mut out = Vec::new();
        for link in &self.threads {
            out.extend(self.request(link, |reply| PmdMsg::DumpFlows { reply })?);
        }
        Ok(out)
    }

    /// Counters of every thread, with its identity and drop reasons.
    pub fn pmd_stats(&self) -> Result<Vec<PmdReport>, DatapathError> {
        let mut out = Vec::new();
        for link in &self.threads {
            let (stats, drops) = self.request(link, |reply| PmdMsg::GetStats { reply })?;
            out.push(PmdReport {
                identity: link.identity,
                stats,
                drops,
            });
        }
        Ok(out)
    }

    /// `dpif-netdev/pmd-stats-show` text (main thread first, as OVS),
    /// each block followed by its [`format_cache_state`] lines.
    pub fn pmd_stats_show(&self) -> Result<String, DatapathError> {
        let mut stats = self.pmd_stats()?;
        stats.rotate_right(1);
        let mut out = String::new();
        for report in &stats {
            format_pmd_stats(&mut out, report.identity, &report.stats);
            format_cache_state(&mut out, &report.stats, self.emc_mode(), self.smc_mode());
        }
        Ok(out)
    }

    /// The configured `smc-enable`.
    pub fn smc_mode(&self) -> SmcMode {
        self.config.smc_enable
    }

    /// The configured `emc-enable`.
    pub fn emc_mode(&self) -> EmcMode {
        self.config.emc_enable
    }

    /// `dpif-netdev/pmd-stats-clear`.
    pub fn pmd_stats_clear(&self) {
        for link in &self.threads {
            let _ = link.control.send(PmdMsg::ClearStats);
        }
        self.clear_perf();
    }

    /// Each thread's rx queues.
    pub fn rxq_status(&self) -> Result<Vec<(PmdIdentity, Vec<RxqStatus>)>, DatapathError> {
        let mut out = Vec::new();
        for link in &self.threads {
            out.push((
                link.identity,
                self.request(link, |reply| PmdMsg::RxqStatus { reply })?,
            ));
        }
        Ok(out)
    }

    /// `dpif-netdev/pmd-rxq-show` text.
    pub fn pmd_rxq_show(&self) -> Result<String, DatapathError> {
        let mut out = String::new();
        for (who, queues) in self.rxq_status()? {
            let core = match who {
                PmdIdentity::Pmd { core_id, .. } => core_id,
                PmdIdentity::Main => continue,
            };
            let isolated = queues.iter().any(|q| {
                self.ports.get(&q.port_no).is_some_and(|p| {
                    p.options
                        .rxq_affinity
                        .iter()
                        .any(|(qid, c)| *qid == q.qid && *c == core)
                })
            }) && self.config.rxq_isolate;
            let _ = writeln!(out, "pmd thread numa_id 0 core_id {core}:");
            let _ = writeln!(out, "  isolated : {isolated}");
            let total: u64 = queues.iter().map(|q| q.cycles).sum();
            for q in &queues {
                let usage = (q.cycles.saturating_mul(100))
                    .checked_div(total)
                    .unwrap_or(0);
                let _ = writeln!(
                    out,
                    "  port: {:<16}  queue-id: {:>2} (enabled)   pmd usage: {:>2} %",
                    q.port_name, q.qid, usage
                );
            }
        }
        Ok(out)
    }

    /// Stops every thread (also done on drop).
    pub fn shutdown(&mut self) {
        if let Some(r) = self.revalidator.take() {
            r.stop();
        }
        for link in &mut self.threads {
            if let Some(t) = link.thread.take() {
                t.stop();
            }
        }
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn thread_name(link: &PmdLink) -> String {
    match link.identity {
        PmdIdentity::Pmd { core_id, .. } => format!("pmd thread on core {core_id}"),
        PmdIdentity::Main => "non-pmd thread".into(),
    }
}

/// The lines `pmd-stats-show` adds after OVS's block of a thread: whether
/// its EMC and SMC are in use now, and the configured modes (with `auto`
/// they follow the classifier; see [`dp_core::cascade`]).
pub fn format_cache_state(out: &mut String, stats: &PmdStats, emc: EmcMode, smc: SmcMode) {
    let _ = writeln!(
        out,
        "  emc: {} (emc-enable={emc})",
        cache_state(stats.lookup.emc_active)
    );
    let _ = writeln!(
        out,
        "  smc: {} (smc-enable={smc})",
        cache_state(stats.lookup.smc_active)
    );
}
