//! The revalidator: keeps installed megaflows honest and bounded.
//!
//! # How it works
//! Every round (default 500 ms, or at once when the translation version
//! changes) the revalidator thread dumps every PMD's flows and decides, per
//! flow ([`plan_round`], a pure function so the policy is tested with an
//! injected clock):
//! - **idle expiry**: a flow unused for `max_idle` is deleted; the idle
//!   time drops to 100 ms while the datapath holds more flows than the
//!   flow limit, and every flow goes when it holds more than twice the
//!   limit (OVS's `udpif_revalidator` rules);
//! - **re-translation**: after a version change each flow's masked key is
//!   translated again; new actions with the same mask are written in place
//!   (stats kept), a different mask (or a failed translation) deletes the
//!   flow so the next packet installs the right one;
//! - **dynamic flow limit**: a slow dump shrinks the limit, a fast one
//!   grows it back towards the configured maximum, as OVS does.
//!
//! # Thread story
//! One revalidator thread per datapath. It talks to PMDs only through
//! their control channels and publishes the flow limit through an atomic
//! the PMDs read once per iteration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};

use crate::cycles;
use crate::pmd::{FlowDump, PmdMsg};
use crate::upcall::{Translation, UpcallHandler};

/// Lowest the dynamic flow limit goes.
pub const MIN_FLOW_LIMIT: usize = 1000;
/// Idle time used while over the flow limit (ms).
pub const OVER_LIMIT_MAX_IDLE_MS: u64 = 100;

/// Revalidator settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevalidatorConfig {
    /// `max-idle` (ms, default 10 000).
    pub max_idle_ms: u64,
    /// Configured (maximum) flow limit.
    pub max_flow_limit: usize,
    /// Time between rounds (ms).
    pub interval_ms: u64,
}

impl Default for RevalidatorConfig {
    fn default() -> Self {
        RevalidatorConfig {
            max_idle_ms: 10_000,
            max_flow_limit: crate::pmd::DEFAULT_FLOW_LIMIT,
            interval_ms: 500,
        }
    }
}

/// What a round does to one flow.
#[derive(Clone, Debug, PartialEq)]
pub enum FlowAction {
    Delete {
        ufid: u128,
        reason: DeleteReason,
    },
    Modify {
        ufid: u128,
        actions: crate::upcall::FlowActions,
    },
}

/// Why the revalidator deleted a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    Idle,
    /// More than twice the flow limit installed.
    FlowLimit,
    /// Re-translation wants a different mask, or failed.
    Retranslation,
    /// `revalidator/purge`.
    Purge,
}

/// Counters of the revalidator, for `upcall/show`.
#[derive(Debug, Default)]
pub struct RevalidatorStats {
    pub rounds: AtomicU64,
    pub last_dump_duration_ms: AtomicU64,
    pub flows_deleted_idle: AtomicU64,
    pub flows_deleted_limit: AtomicU64,
    pub flows_deleted_retranslation: AtomicU64,
    pub flows_modified: AtomicU64,
    pub last_flow_count: AtomicU64,
}

/// The flow limit after a dump that took `dump_ms` and found `n_flows`
/// (OVS's adjustment).
pub fn adjust_flow_limit(limit: usize, max_limit: usize, dump_ms: u64, n_flows: usize) -> usize {
    let mut limit = limit;
    if dump_ms > 2000 {
        limit /= (dump_ms / 1000) as usize;
    } else if dump_ms > 1300 {
        limit = limit * 3 / 4;
    } else if dump_ms < 1000 && n_flows > 2000 && limit < n_flows * 1000 / dump_ms.max(1) as usize {
        limit += 1000;
    }
    limit.clamp(MIN_FLOW_LIMIT.min(max_limit), max_limit)
}

/// Decides a round for `flows` (every PMD's copies). `retranslate` is set
/// when the translation version changed since the last round.
pub fn plan_round(
    flows: &[FlowDump],
    now_ms: u64,
    flow_limit: usize,
    config: &RevalidatorConfig,
    retranslate: Option<&dyn UpcallHandler>,
) -> Vec<FlowAction> {
    let n_flows = flows.len();
    if n_flows > 2 * flow_limit {
        return flows
            .iter()
            .map(|f| FlowAction::Delete {
                ufid: f.ufid,
                reason: DeleteReason::FlowLimit,
            })
            .collect();
    }
    let max_idle = if n_flows > flow_limit {
        OVER_LIMIT_MAX_IDLE_MS.min(config.max_idle_ms)
    } else {
        config.max_idle_ms
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in flows {
        // Several PMDs may hold the same flow; decide once per UFID using
        // the most recent use.
        if !seen.insert(f.ufid) {
            continue;
        }
        let last_used = flows
            .iter()
            .filter(|g| g.ufid == f.ufid)
            .map(|g| g.stats.used_ms)
            .max()
            .unwrap_or(0);
        let idle_since = if last_used == 0 {
            f.created_ms
        } else {
            last_used
        };
        if now_ms.saturating_sub(idle_since) >= max_idle {
            out.push(FlowAction::Delete {
                ufid: f.ufid,
                reason: DeleteReason::Idle,
            });
            continue;
        }
        let Some(handler) = retranslate else {
            continue;
        };
        match handler.translate(&f.key, None, now_ms) {
            Ok(Translation::Megaflow { mask, actions }) if mask == f.mask => {
                if actions != f.actions {
                    out.push(FlowAction::Modify {
                        ufid: f.ufid,
                        actions,
                    });
                }
            }
            _ => out.push(FlowAction::Delete {
                ufid: f.ufid,
                reason: DeleteReason::Retranslation,
            }),
        }
    }
    out
}

/// A running revalidator thread.
#[derive(Debug)]
pub struct Revalidator {
    stop: Arc<AtomicBool>,
    purge: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    stats: Arc<RevalidatorStats>,
}

impl Revalidator {
    /// Starts revalidating the PMDs behind `pmds`.
    pub fn spawn(
        pmds: Vec<Sender<PmdMsg>>,
        handler: Arc<dyn UpcallHandler>,
        flow_limit: Arc<AtomicUsize>,
        config: RevalidatorConfig,
    ) -> std::io::Result<Revalidator> {
        let stop = Arc::new(AtomicBool::new(false));
        let purge = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(RevalidatorStats::default());
        let (stop_flag, purge_flag, thread_stats) =
            (Arc::clone(&stop), Arc::clone(&purge), Arc::clone(&stats));
        let handle = std::thread::Builder::new()
            .name("revalidator".into())
            .spawn(move || {
                let mut seen_version = handler.version();
                while !stop_flag.load(Ordering::Acquire) {
                    // Sleep in small steps so a stop or a version change is
                    // noticed quickly.
                    let mut waited = 0;
                    while waited < config.interval_ms
                        && !stop_flag.load(Ordering::Acquire)
                        && handler.version() == seen_version
                        && !purge_flag.load(Ordering::Acquire)
                    {
                        std::thread::sleep(Duration::from_millis(10));
                        waited += 10;
                    }
                    if stop_flag.load(Ordering::Acquire) {
                        break;
                    }
                    let version = handler.version();
                    let retranslate = version != seen_version;
                    seen_version = version;
                    let purge_now = purge_flag.swap(false, Ordering::AcqRel);
                    round(
                        &pmds,
                        handler.as_ref(),
                        &flow_limit,
                        &config,
                        retranslate,
                        purge_now,
                        &thread_stats,
                    );
                }
            })?;
        Ok(Revalidator {
            stop,
            purge,
            handle: Some(handle),
            stats,
        })
    }

    /// Deletes every flow at the next round (`revalidator/purge`).
    pub fn purge(&self) {
        self.purge.store(true, Ordering::Release);
    }

    pub fn stats(&self) -> &RevalidatorStats {
        &self.stats
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Revalidator {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Every PMD's flows, and beside them the index of the PMD that holds
/// each (a flow installed on two PMDs appears twice).
fn dump_all(pmds: &[Sender<PmdMsg>]) -> (Vec<FlowDump>, Vec<usize>) {
    let mut replies = Vec::new();
    for (i, pmd) in pmds.iter().enumerate() {
        let (tx, rx) = bounded(1);
        if pmd.send(PmdMsg::DumpFlows { reply: tx }).is_ok() {
            replies.push((i, rx));
        }
    }
    let mut flows = Vec::new();
    let mut owners = Vec::new();
    for (i, rx) in replies {
        if let Ok(dumped) = rx.recv_timeout(Duration::from_secs(5)) {
            owners.resize(owners.len() + dumped.len(), i);
            // The first reply is moved, not copied: one PMD is the
            // common case, and a dump can hold the whole flow limit.
            if flows.is_empty() {
                flows = dumped;
            } else {
                flows.extend(dumped);
            }
        }
    }
    (flows, owners)
}

fn round(
    pmds: &[Sender<PmdMsg>],
    handler: &dyn UpcallHandler,
    flow_limit: &AtomicUsize,
    config: &RevalidatorConfig,
    retranslate: bool,
    purge: bool,
    stats: &RevalidatorStats,
) {
    let start = cycles::monotonic_ns();
    let (flows, owners) = dump_all(pmds);
    let dump_ms = (cycles::monotonic_ns() - start) / 1_000_000;
    let limit = adjust_flow_limit(
        flow_limit.load(Ordering::Relaxed),
        config.max_flow_limit,
        dump_ms,
        flows.len(),
    );
    flow_limit.store(limit, Ordering::Relaxed);
    stats.rounds.fetch_add(1, Ordering::Relaxed);
    stats
        .last_dump_duration_ms
        .store(dump_ms, Ordering::Relaxed);
    stats
        .last_flow_count
        .store(flows.len() as u64, Ordering::Relaxed);

    let now_ms = cycles::monotonic_ns() / 1_000_000;
    let plan = if purge {
        flows
            .iter()
            .map(|f| FlowAction::Delete {
                ufid: f.ufid,
                reason: DeleteReason::Purge,
            })
            .collect()
    } else {
        plan_round(
            &flows,
            now_ms,
            limit,
            config,
            retranslate.then_some(handler),
        )
    };
    // Which PMDs hold each flow, found once: the plan can name every flow
    // (a purge), and scanning the dump per action would be quadratic.
    let mut holders: Vec<(u128, usize)> = flows.iter().map(|f| f.ufid).zip(owners).collect();
    holders.sort_unstable();
    for action in plan {
        let ufid = match &action {
            FlowAction::Delete { ufid, .. } | FlowAction::Modify { ufid, .. } => *ufid,
        };
        match &action {
            FlowAction::Delete {
                reason: DeleteReason::Idle,
                ..
            } => &stats.flows_deleted_idle,
            FlowAction::Delete {
                reason: DeleteReason::FlowLimit | DeleteReason::Purge,
                ..
            } => &stats.flows_deleted_limit,
            FlowAction::Delete {
                reason: DeleteReason::Retranslation,
                ..
            } => &stats.flows_deleted_retranslation,
            FlowAction::Modify { .. } => &stats.flows_modified,
        }
        .fetch_add(1, Ordering::Relaxed);
        let first = holders.partition_point(|&(u, _)| u < ufid);
        for (_, i) in holders[first..].iter().take_while(|&&(u, _)| u == ufid) {
            let msg = match &action {
                FlowAction::Delete { .. } => PmdMsg::FlowDel { ufid, reply: None },
                FlowAction::Modify { actions, .. } => PmdMsg::FlowModifyActions {
                    ufid,
                    actions: actions.clone(),
                },
            };
            let _ = pmds[*i].send(msg);
        }
    }
}
