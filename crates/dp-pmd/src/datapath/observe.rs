//! The datapath's observation operations: performance history, the
//! suspicious-iteration log, live capture and traced packets, each
//! forwarded to the PMD threads as an [`ObserveMsg`] (see
//! [`crate::pmd::observe`]).
//!
//! Like every datapath operation these run on the control thread and wait
//! for the PMDs' replies with the usual timeout.

use std::sync::Arc;

use crate::capture::{CaptureRing, CaptureSpec};
use crate::perf::PerfLogConfig;
use crate::pmd::PmdMsg;
use crate::pmd::observe::{ObserveMsg, ObserveSnapshot, TraceReport};
use crate::stats::PmdIdentity;

use super::{Datapath, DatapathError};

impl Datapath {
    /// Every thread's performance history and flow count.
    pub fn observe_snapshots(&self) -> Result<Vec<(PmdIdentity, ObserveSnapshot)>, DatapathError> {
        let mut out = Vec::new();
        for link in &self.threads {
            let snap = self.request(link, |reply| {
                PmdMsg::Observe(ObserveMsg::Snapshot { reply })
            })?;
            out.push((link.identity, snap));
        }
        Ok(out)
    }

    /// `pmd-perf-log-set`: on every PMD thread, or the one on `core`.
    pub fn set_perf_log(&self, config: PerfLogConfig, core: Option<usize>) {
        for link in &self.threads {
            if core.is_none() || link.core == core {
                let _ = link
                    .control
                    .send(PmdMsg::Observe(ObserveMsg::SetPerfLog(config)));
            }
        }
    }

    /// Forgets every thread's performance history (`pmd-stats-clear`).
    pub fn clear_perf(&self) {
        for link in &self.threads {
            let _ = link.control.send(PmdMsg::Observe(ObserveMsg::ClearPerf));
        }
    }

    /// Starts capture `spec` on every thread (any of them may receive on
    /// or transmit to the port), one ring each; the caller's writer drains
    /// the rings.
    pub fn capture_start(
        &self,
        spec: &CaptureSpec,
    ) -> Result<Vec<Arc<CaptureRing>>, DatapathError> {
        if !self.ports.contains_key(&spec.port_no) {
            return Err(DatapathError::NoSuchPort(format!(
                "port number {}",
                spec.port_no
            )));
        }
        let mut rings = Vec::new();
        for link in &self.threads {
            let ring = CaptureRing::new(spec.ring_slots, spec.snaplen);
            link.control
                .send(PmdMsg::Observe(ObserveMsg::CaptureStart {
                    spec: Box::new(spec.clone()),
                    ring: Arc::clone(&ring),
                }))
                .map_err(|_| DatapathError::PmdUnresponsive(super::thread_name(link)))?;
            rings.push(ring);
        }
        Ok(rings)
    }

    /// Stops capture `id` on every thread.
    pub fn capture_stop(&self, id: u64) {
        for link in &self.threads {
            let _ = link
                .control
                .send(PmdMsg::Observe(ObserveMsg::CaptureStop { id }));
        }
    }

    /// Runs `frame` through the datapath as if received on `in_port`, on
    /// the thread that polls that port (the first thread if none does).
    pub fn trace_packet(
        &self,
        in_port: u32,
        frame: Vec<u8>,
    ) -> Result<(PmdIdentity, TraceReport), DatapathError> {
        if !self.ports.contains_key(&in_port) {
            return Err(DatapathError::NoSuchPort(format!("port number {in_port}")));
        }
        let polling = self
            .rxq_status()?
            .into_iter()
            .find(|(_, queues)| queues.iter().any(|q| q.port_no == in_port))
            .map(|(who, _)| who);
        let link = self
            .threads
            .iter()
            .find(|t| Some(t.identity) == polling)
            .unwrap_or(&self.threads[0]);
        let report = self.request(link, |reply| {
            PmdMsg::Observe(ObserveMsg::Trace {
                in_port,
                frame,
                reply,
            })
        })?;
        report
            .map(|r| (link.identity, r))
            .map_err(DatapathError::Flow)
    }
}
