//! Changing the PMD core list of a running datapath (what
//! `ovs-vsctl set Open_vSwitch . other_config:pmd-cpu-mask=…` does to
//! OVS's dpif-netdev).
//!
//! # How it works
//! [`Datapath::set_pmd_cores`] compares the new list with the running one:
//! 1. a PMD thread is started on each added core, with a transmit queue on
//!    every port (the lowest free tx slot, so it reuses a stopped thread's
//!    queue rather than sharing a live one) and every tunnel port's
//!    receive settings;
//! 2. the threads on removed cores leave the thread list and hand back
//!    their rx queues, which are dealt, with everybody else's, over the
//!    remaining PMDs by the configured `pmd-rxq-assign` policy (queues
//!    carry their cycle history, so `cycles` and `group` use real load);
//! 3. the leaving threads are stopped: each flushes its transmit buffers
//!    and drops its `Pmd`, returning every buffer it held; its megaflows
//!    and caches go with it, and the PMD that now polls its queues
//!    re-learns them through upcalls;
//! 4. the revalidator is restarted over the new thread list, its counters
//!    carried over.
//!
//! # Invariants
//! - No packet buffer is lost: a queue is polled by exactly one thread at a
//!   time (between `TakeRxqs` and `AddRxq` nobody polls it and packets wait
//!   in the device ring); a stopping thread returns its buffers on drop.
//! - A failure to start a thread (or open its transmit queues) stops what
//!   this call started and leaves the running set as it was.
//!
//! # Not carried to new threads
//! Flows added by hand (`dpctl/add-flow`) exist only on the threads that
//! were running then, as in OVS; a live capture keeps the rings of the
//! threads it started with (restart it to see a new PMD's packets); a
//! per-core `pmd-perf-log-set` does not apply to a new PMD.

use std::sync::atomic::Ordering;

use crate::pmd::PmdMsg;
use crate::revalidator::RevalidatorStats;
use crate::stats::PmdIdentity;

use super::{Datapath, DatapathError, PmdLink};

/// What [`Datapath::set_pmd_cores`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreChange {
    /// Cores that got a new PMD thread.
    pub added: Vec<usize>,
    /// Cores whose PMD thread was stopped.
    pub removed: Vec<usize>,
    /// The rx-queue scheduler's warnings (e.g. a queue pinned by
    /// `pmd-rxq-affinity` to a core that has no PMD any more).
    pub warnings: Vec<String>,
}

impl CoreChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl Datapath {
    /// The cores PMD threads run on now.
    pub fn pmd_cores(&self) -> Vec<usize> {
        self.threads.iter().filter_map(|t| t.core).collect()
    }

    /// Runs PMD threads on exactly `cores` (duplicates ignored): starts
    /// the missing ones, stops the others, and re-deals every rx queue.
    /// See the module docs.
    pub fn set_pmd_cores(&mut self, cores: &[usize]) -> Result<CoreChange, DatapathError> {
        let mut wanted: Vec<usize> = Vec::new();
        for &c in cores {
            if !wanted.contains(&c) {
                wanted.push(c);
            }
        }
        let running = self.pmd_cores();
        let mut change = CoreChange {
            added: wanted
                .iter()
                .copied()
                .filter(|c| !running.contains(c))
                .collect(),
            removed: running
                .iter()
                .copied()
                .filter(|c| !wanted.contains(c))
                .collect(),
            warnings: Vec::new(),
        };
        if change.is_empty() {
            return Ok(change);
        }

        // 1. New threads, fully wired before any queue moves to them.
        let first_new = self.threads.len();
        for &core in &change.added {
            if let Err(e) = self.start_pmd(core) {
                self.stop_started_since(first_new);
                return Err(e);
            }
        }

        // 2. The leaving threads give their rx queues back.
        let leaving_core = |t: &PmdLink| t.core.is_some_and(|c| change.removed.contains(&c));
        let (leaving, staying): (Vec<PmdLink>, Vec<PmdLink>) = std::mem::take(&mut self.threads)
            .into_iter()
            .partition(leaving_core);
        self.threads = staying;
        let mut orphans = Vec::new();
        let mut stuck = None;
        for link in &leaving {
            match self.request(link, |reply| PmdMsg::TakeRxqs { reply }) {
                Ok(queues) => orphans.extend(queues),
                Err(e) => {
                    stuck = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = stuck {
            // A thread that does not answer cannot be stopped safely: keep
            // every leaving thread and report it. The queues already taken
            // go to the non-PMD thread (a new deal would ask the stuck
            // thread again and lose them on its timeout); the next
            // rebalance spreads them. The new threads stay (they are sound).
            self.threads.extend(leaving);
            self.keep_non_pmd_last();
            let non_pmd = self.threads.last().expect("the non-PMD thread");
            for q in orphans {
                let _ = non_pmd.control.send(PmdMsg::AddRxq(q));
            }
            self.config.pmd_cores = self.pmd_cores();
            self.restart_revalidator()?;
            return Err(e);
        }
        self.keep_non_pmd_last();
        change.warnings = self.place_rxqs(orphans)?;

        // 3. Stop the leaving threads: they flush and return every buffer.
        for mut link in leaving {
            if let Some(thread) = link.thread.take() {
                thread.stop();
            }
        }

        // 4. The revalidator follows the new thread list.
        self.restart_revalidator()?;
        self.config.pmd_cores = self.pmd_cores();
        Ok(change)
    }

    /// Starts a PMD on `core` with a transmit queue on every port and the
    /// tunnel ports declared; it polls nothing yet.
    fn start_pmd(&mut self, core: usize) -> Result<(), DatapathError> {
        self.spawn_thread(
            PmdIdentity::Pmd {
                numa_id: 0,
                core_id: core,
            },
            Some(core),
        )?;
        let link = self.threads.last().expect("just spawned");
        let mut txqs = Vec::new();
        for (&port_no, port) in &self.ports {
            let qid = link.tx_slot % port.netdev.info().n_txq.max(1);
            let txq = port.netdev.open_txq(qid).map_err(|e| {
                DatapathError::Netdev(format!("port {}: tx queue {qid}: {e}", port.name))
            })?;
            txqs.push((port_no, txq));
        }
        for (port_no, txq) in txqs {
            let _ = link.control.send(PmdMsg::AddTxq { port_no, txq });
        }
        let tunnels = self.tunnel_ports.lock().unwrap_or_else(|e| e.into_inner());
        for (&port_no, &config) in tunnels.iter() {
            let _ = link.control.send(PmdMsg::SetTunnelPort {
                port_no,
                config: Some(config),
            });
        }
        Ok(())
    }

    /// Stops the threads at `threads[first..]` that are PMDs (a failed
    /// change undoing its new threads); they polled nothing.
    fn stop_started_since(&mut self, first: usize) {
        let mut i = first;
        while i < self.threads.len() {
            if self.threads[i].core.is_some() {
                let mut link = self.threads.remove(i);
                if let Some(thread) = link.thread.take() {
                    thread.stop();
                }
            } else {
                i += 1;
            }
        }
        self.keep_non_pmd_last();
    }

    /// PMD threads sorted by core, the non-PMD thread last (the order
    /// every report and `place_rxqs` rely on).
    fn keep_non_pmd_last(&mut self) {
        self.threads
            .sort_by_key(|t| (t.core.is_none(), t.core.unwrap_or(0)));
    }

    fn restart_revalidator(&mut self) -> Result<(), DatapathError> {
        // The old one stops first, so it sends nothing to a thread list
        // that is no longer the datapath's.
        let carried = self.revalidator.take().map(|r| {
            let counts = snapshot(r.stats());
            r.stop();
            counts
        });
        let new = self.spawn_revalidator()?;
        if let Some(counts) = carried {
            add_counts(new.stats(), &counts);
        }
        self.revalidator = Some(new);
        Ok(())
    }
}

/// The revalidator's cumulative counters, to carry over a restart.
struct Counts {
    rounds: u64,
    deleted_idle: u64,
    deleted_limit: u64,
    deleted_retranslation: u64,
    modified: u64,
}

fn snapshot(s: &RevalidatorStats) -> Counts {
    Counts {
        rounds: s.rounds.load(Ordering::Relaxed),
        deleted_idle: s.flows_deleted_idle.load(Ordering::Relaxed),
        deleted_limit: s.flows_deleted_limit.load(Ordering::Relaxed),
        deleted_retranslation: s.flows_deleted_retranslation.load(Ordering::Relaxed),
        modified: s.flows_modified.load(Ordering::Relaxed),
    }
}

/// Added, not stored: the new thread may already have counted a round.
fn add_counts(s: &RevalidatorStats, c: &Counts) {
    s.rounds.fetch_add(c.rounds, Ordering::Relaxed);
    s.flows_deleted_idle
        .fetch_add(c.deleted_idle, Ordering::Relaxed);
    s.flows_deleted_limit
        .fetch_add(c.deleted_limit, Ordering::Relaxed);
    s.flows_deleted_retranslation
        .fetch_add(c.deleted_retranslation, Ordering::Relaxed);
    s.flows_modified.fetch_add(c.modified, Ordering::Relaxed);
}
