//! Control messages a PMD applies between iterations, and their replies.
//!
//! Everything that changes a PMD's state from outside (ports, queues,
//! flows, counters) arrives as a [`PmdMsg`]; answers go back on a channel
//! the sender provides. This keeps the PMD's state single-owner.

use crossbeam_channel::Sender;
use dp_core::flow::FlowKey;
use dp_core::flow_table::FlowStats;
use dp_core::netdev::TxQueue;

use super::{Pmd, PolledRxq};
use crate::stats::{PmdIdentity, PmdStats};
use crate::upcall::FlowActions;

/// One installed megaflow, as a dump reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowDump {
    pub ufid: u128,
    /// The masked key.
    pub key: FlowKey,
    pub mask: FlowKey,
    pub actions: FlowActions,
    pub stats: FlowStats,
    /// When this PMD installed it (ms, datapath clock).
    pub created_ms: u64,
    /// The PMD that holds this copy.
    pub pmd: PmdIdentity,
}

/// An rx queue as `pmd-rxq-show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxqStatus {
    pub port_no: u32,
    pub port_name: String,
    pub qid: usize,
    pub cycles: u64,
}

/// How a flow put treats an existing flow with the same match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Fail if it exists (`add-flow`).
    Create,
    /// Fail unless it exists (`mod-flow`); `zero_stats` clears counters.
    Modify { zero_stats: bool },
    /// Either (`add-flow --may-create` / `mod-flow --may-create`).
    CreateOrModify,
}

/// A message to a PMD.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "control messages are rare; boxing the flow keys would only add an allocation"
)]
pub enum PmdMsg {
    AddRxq(PolledRxq),
    AddTxq {
        port_no: u32,
        txq: Box<dyn TxQueue>,
    },
    /// Stop using the port; its rx queues come back on `reply`.
    RemovePort {
        port_no: u32,
        reply: Sender<Vec<PolledRxq>>,
    },
    /// Give back every rx queue (for reassignment).
    TakeRxqs {
        reply: Sender<Vec<PolledRxq>>,
    },
    FlowPut {
        key: FlowKey,
        mask: FlowKey,
        ufid: Option<u128>,
        actions: FlowActions,
        mode: PutMode,
        reply: Sender<Result<u128, String>>,
    },
    /// Delete one flow; the reply carries its last dump (`None`: no such
    /// flow).
    FlowDel {
        ufid: u128,
        reply: Option<Sender<Option<FlowDump>>>,
    },
    /// Replace a flow's actions (revalidation), keeping its stats.
    FlowModifyActions {
        ufid: u128,
        actions: FlowActions,
    },
    /// Delete every flow.
    FlowFlush,
    DumpFlows {
        reply: Sender<Vec<FlowDump>>,
    },
    GetStats {
        reply: Sender<(PmdStats, Vec<(&'static str, u64)>)>,
    },
    ClearStats,
    RxqStatus {
        reply: Sender<Vec<RxqStatus>>,
    },
    /// Close a cycle-history interval of every rx queue.
    RotateRxqCycles,
    /// Declare (`Some`) or forget (`None`) datapath port `port_no` as a
    /// tunnel port, for `tnl_pop(port_no)`.
    SetTunnelPort {
        port_no: u32,
        config: Option<dp_core::execute::TunnelPort>,
    },
    /// Capture, performance history, traced packets.
    Observe(super::observe::ObserveMsg),
}

fn dump_of(pmd: &Pmd, flow: dp_core::flow_table::FlowRef) -> Option<FlowDump> {
    let f = pmd.flows.get(flow)?;
    let (key, mask) = pmd.flows.flow_match(flow)?;
    Some(FlowDump {
        ufid: f.ufid(),
        key,
        mask,
        actions: f.actions.clone(),
        stats: f.stats,
        created_ms: f.created_ms(),
        pmd: pmd.identity(),
    })
}

impl Pmd {
    /// Deletes the flow `ufid` and tells the upcall handler its final
    /// statistics ([`UpcallHandler::flow_removed`]); false if there is no
    /// such flow. Every delete of a single flow goes through here.
    ///
    /// [`UpcallHandler::flow_removed`]: crate::upcall::UpcallHandler::flow_removed
    pub(super) fn delete_flow(&mut self, ufid: u128) -> bool {
        let Some(created_ms) = self
            .flows
            .find_ufid(ufid)
            .and_then(|r| self.flows.get(r))
            .map(|f| f.created_ms())
        else {
            return false;
        };
        let Ok(gone) = self.flows.remove(ufid) else {
            return false;
        };
        self.upcall
            .flow_removed(ufid, self.identity(), created_ms, &gone.stats);
        true
    }

    /// Deletes every flow, telling the upcall handler each one's final
    /// statistics: `FlowFlush`, and a PMD thread's exit (its copies go
    /// with it: a `pmd-cpu-mask` change, shutdown).
    pub(super) fn flush_flows(&mut self) {
        let identity = self.identity();
        for (_, f) in self.flows.iter() {
            self.upcall
                .flow_removed(f.ufid(), identity, f.created_ms(), &f.stats);
        }
        self.flows.clear();
    }
}

pub(super) fn apply(pmd: &mut Pmd, msg: PmdMsg, now_ns: u64) {
    let now_ms = now_ns / 1_000_000;
    // Reply sends fail only when the requester gave up waiting; nothing to
    // do then.
    match msg {
        PmdMsg::AddRxq(rxq) => pmd.add_rxq(rxq),
        PmdMsg::AddTxq { port_no, txq } => pmd.add_txq(port_no, txq),
        PmdMsg::RemovePort { port_no, reply } => {
            let rxqs = pmd.remove_rxqs(port_no);
            pmd.remove_port(port_no, now_ns);
            let _ = reply.send(rxqs);
        }
        PmdMsg::TakeRxqs { reply } => {
            let _ = reply.send(pmd.take_rxqs());
        }
        PmdMsg::FlowPut {
            key,
            mask,
            ufid,
            actions,
            mode,
            reply,
        } => {
            let _ = reply.send(flow_put(pmd, &key, &mask, ufid, actions, mode, now_ms));
        }
        PmdMsg::FlowDel { ufid, reply } => {
            let dump = pmd.flows.find_ufid(ufid).and_then(|r| dump_of(pmd, r));
            if dump.is_some() {
                pmd.delete_flow(ufid);
            }
            if let Some(reply) = reply {
                let _ = reply.send(dump);
            }
        }
        PmdMsg::FlowModifyActions { ufid, actions } => {
            let _ = pmd.flows.modify_actions(ufid, actions, false);
        }
        PmdMsg::FlowFlush => pmd.flush_flows(),
        PmdMsg::DumpFlows { reply } => {
            let dumps = pmd.flows.iter().map(|(r, _)| r).collect::<Vec<_>>();
            let dumps = dumps.into_iter().filter_map(|r| dump_of(pmd, r)).collect();
            let _ = reply.send(dumps);
        }
        PmdMsg::GetStats { reply } => {
            let _ = reply.send((pmd.stats(), pmd.drop_counts()));
        }
        PmdMsg::ClearStats => {
            pmd.stats = PmdStats::default();
            pmd.relookup_hits = 0;
            pmd.exec.clear_drop_counts();
            pmd.cascade.reset_stats();
        }
        PmdMsg::RxqStatus { reply } => {
            let _ = reply.send(pmd.rxq_status());
        }
        PmdMsg::RotateRxqCycles => pmd.rotate_rxq_cycles(),
        PmdMsg::SetTunnelPort { port_no, config } => {
            let core = pmd.exec.core_mut();
            match config {
                Some(config) => core.set_tunnel_port_config(port_no, config),
                None => core.remove_tunnel_port(port_no),
            }
        }
        PmdMsg::Observe(msg) => super::observe::apply(pmd, msg, now_ns),
    }
}

fn flow_put(
    pmd: &mut Pmd,
    key: &FlowKey,
    mask: &FlowKey,
    ufid: Option<u128>,
    actions: FlowActions,
    mode: PutMode,
    now_ms: u64,
) -> Result<u128, String> {
    let existing = match ufid {
        Some(u) => pmd.flows.find_ufid(u),
        None => pmd.flows.find_match(key, mask),
    };
    match (existing, mode) {
        (Some(_), PutMode::Create) => Err("flow already exists".into()),
        (None, PutMode::Modify { .. }) => Err("no such flow".into()),
        (Some(r), PutMode::Modify { .. } | PutMode::CreateOrModify) => {
            let zero_stats = matches!(mode, PutMode::Modify { zero_stats: true });
            let f = pmd.flows.get(r).ok_or("flow vanished")?;
            let (u, created_ms, before) = (f.ufid(), f.created_ms(), f.stats);
            pmd.flows
                .modify_actions(u, actions, zero_stats)
                .map_err(|e| e.to_string())?;
            if zero_stats {
                pmd.upcall
                    .flow_stats_cleared(u, pmd.identity(), created_ms, &before);
            }
            Ok(u)
        }
        (None, PutMode::Create) | (None, PutMode::CreateOrModify) => {
            let r = pmd
                .flows
                .insert(key, mask, ufid, actions, now_ms)
                .map_err(|e| e.to_string())?;
            Ok(pmd.flows.get(r).map(|f| f.ufid()).unwrap_or_default())
        }
    }
}
