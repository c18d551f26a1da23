//! What a PMD lets the operator see: its capture tap, its performance
//! history, and traced packets run through its real packet path.
//!
//! # How it works
//! [`PmdObserve`] is one field of the [`Pmd`]; the packet path calls its
//! two hooks (the capture tap on each received and each transmitted
//! batch, the perf history at the end of each iteration). Everything else
//! arrives as an [`ObserveMsg`], applied between iterations like every
//! other control message, so the PMD stays the only owner of its state.
//!
//! A traced packet ([`ObserveMsg::Trace`]) is built in a small pool of
//! this module's own, stamped with its input port and run through
//! [`Pmd::process_batch`], exactly as a received batch of one: the
//! cascade, the upcall, the actions and the transmit buffers are the real
//! ones. The cache level it hit is read from the difference of the PMD's
//! counters around the pass, so the packet path carries no trace flag.
//!
//! # Invariants
//! - The PMD's state is touched only by the PMD: hooks on the packet path,
//!   messages between iterations.
//! - A trace leaves nothing pending: its transmit buffers are flushed
//!   before the report is read (so `tx_packets` is what it sent, under
//!   any `tx_flush_interval`), and the trace pool's buffers are back once
//!   the ports have sent them.

use std::sync::Arc;

use crossbeam_channel::Sender;
use dp_core::flow::FlowKey;
use dp_core::flow::extract::extract_frame;
use dp_core::packet::{PacketBatch, PacketPool, PoolConfig};

use super::{FlowDump, Pmd};
use crate::capture::{CaptureRing, CaptureSpec, CaptureTap};
use crate::perf::{PerfLogConfig, PerfSnapshot, PmdPerf};
use crate::stats::PmdStats;

/// Buffers of the trace pool (a trace is one packet; recirculation and
/// multi-output copies come from the executor's clone pool).
const TRACE_POOL: usize = 4;

/// A PMD's observation state; see the module docs.
#[derive(Debug, Default)]
pub struct PmdObserve {
    pub(crate) capture: CaptureTap,
    pub(crate) perf: PmdPerf,
    trace_pool: Option<PacketPool>,
}

/// A PMD's view for `pmd-perf-show` and the metrics endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ObserveSnapshot {
    pub perf: PerfSnapshot,
    /// Megaflows installed in this PMD.
    pub flows: usize,
    /// Whether a capture is copying on this PMD.
    pub capturing: bool,
}

/// What a traced packet did on the PMD.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceReport {
    /// Lookups by level over every pass (`emc`, `smc`, `megaflow`,
    /// `simple match`, `miss`), non-zero only, in cascade order.
    pub lookups: Vec<(&'static str, u64)>,
    /// `upcall ok`, `upcall failed`, `upcall flow limit hit` when any.
    pub upcalls: Vec<(&'static str, u64)>,
    /// Datapath passes (1 + recirculations).
    pub passes: u64,
    /// Packets handed to transmit queues.
    pub tx_packets: u64,
    /// Drops by reason caused by the packet.
    pub drops: Vec<(&'static str, u64)>,
    /// The megaflow the packet matches now (after any install).
    pub flow: Option<FlowDump>,
}

/// Observation requests to a PMD.
#[derive(Debug)]
pub enum ObserveMsg {
    Snapshot {
        reply: Sender<ObserveSnapshot>,
    },
    SetPerfLog(PerfLogConfig),
    ClearPerf,
    CaptureStart {
        spec: Box<CaptureSpec>,
        ring: Arc<CaptureRing>,
    },
    CaptureStop {
        id: u64,
    },
    Trace {
        in_port: u32,
        frame: Vec<u8>,
        reply: Sender<Result<TraceReport, String>>,
    },
}

pub(super) fn apply(pmd: &mut Pmd, msg: ObserveMsg, now_ns: u64) {
    match msg {
        ObserveMsg::Snapshot { reply } => {
            let _ = reply.send(ObserveSnapshot {
                perf: pmd.obs.perf.snapshot(),
                flows: pmd.flows.len(),
                capturing: pmd.obs.capture.is_active(),
            });
        }
        ObserveMsg::SetPerfLog(config) => pmd.obs.perf.set_log(config),
        ObserveMsg::ClearPerf => pmd.obs.perf.clear(),
        ObserveMsg::CaptureStart { spec, ring } => pmd.obs.capture.start(*spec, ring),
        ObserveMsg::CaptureStop { id } => pmd.obs.capture.stop(id),
        ObserveMsg::Trace {
            in_port,
            frame,
            reply,
        } => {
            let _ = reply.send(trace(pmd, in_port, &frame, now_ns));
        }
    }
}

fn trace(pmd: &mut Pmd, in_port: u32, frame: &[u8], now_ns: u64) -> Result<TraceReport, String> {
    let pool = pmd
        .obs
        .trace_pool
        .get_or_insert_with(|| PacketPool::new("trace", PoolConfig::heap(TRACE_POOL)));
    let mut packet = pool
        .alloc_from(frame)
        .ok_or_else(|| format!("trace: a {}-byte frame does not fit a buffer", frame.len()))?;
    packet.meta_mut().in_port = in_port;
    let mut key = FlowKey::ZERO;
    extract_frame(packet.data(), packet.meta(), &mut key);
    let mut batch = PacketBatch::new();
    let _ = batch.push(packet);

    let before = pmd.stats();
    let drops_before = pmd.drop_counts();
    pmd.stats.packets_received += 1;
    pmd.process_batch(batch, now_ns);
    // Send what the packet queued now, whatever tx-flush-interval says:
    // the report counts it as transmitted, and the trace pool's buffers
    // come back at once.
    pmd.flush_all();
    let after = pmd.stats();
    let drops_after = pmd.drop_counts();

    let flow = pmd.lookup_one(&key).and_then(|r| {
        let f = pmd.flows.get(r)?;
        let (key, mask) = pmd.flows.flow_match(r)?;
        Some(FlowDump {
            ufid: f.ufid(),
            key,
            mask,
            actions: f.actions.clone(),
            stats: f.stats,
            created_ms: f.created_ms(),
            pmd: pmd.identity(),
        })
    });
    let drops = drops_after
        .iter()
        .zip(&drops_before)
        .filter(|(a, b)| a.1 > b.1)
        .map(|(a, b)| (a.0, a.1 - b.1))
        .collect();
    Ok(report(&before, &after, drops, flow))
}

fn report(
    before: &PmdStats,
    after: &PmdStats,
    drops: Vec<(&'static str, u64)>,
    flow: Option<FlowDump>,
) -> TraceReport {
    let (a, b) = (&after.lookup, &before.lookup);
    let nonzero = |v: Vec<(&'static str, u64)>| v.into_iter().filter(|(_, n)| *n > 0).collect();
    TraceReport {
        lookups: nonzero(vec![
            (
                "simple match",
                a.simple_match_hits.saturating_sub(b.simple_match_hits),
            ),
            ("emc", a.emc_hits.saturating_sub(b.emc_hits)),
            ("smc", a.smc_hits.saturating_sub(b.smc_hits)),
            ("megaflow", a.megaflow_hits.saturating_sub(b.megaflow_hits)),
            ("miss", a.misses.saturating_sub(b.misses)),
        ]),
        upcalls: nonzero(vec![
            ("upcall ok", after.miss_upcall_ok - before.miss_upcall_ok),
            (
                "upcall failed",
                after.miss_upcall_failed - before.miss_upcall_failed,
            ),
            (
                "upcall flow limit hit",
                after.upcall_flow_limit_hit - before.upcall_flow_limit_hit,
            ),
        ]),
        passes: 1 + after.recirculations - before.recirculations,
        tx_packets: after.tx_packets - before.tx_packets,
        drops,
        flow,
    }
}
