//! The uniform-batch shortcuts of a datapath pass: when every packet of a
//! received batch hit the same megaflow (one busy flow; a port whose
//! traffic one simple-match flow serves), or hit megaflows that all run
//! one action list (`run_one_list`), its actions run on the batch as
//! received, without the per-packet verdicts and grouping that a mixed
//! batch needs.
//!
//! It does exactly what the general path does for such a batch: the flow
//! is credited with every packet, its bytes and TCP flags, then its
//! actions run once on all packets in order. Anything else (a miss, two
//! flows, a flow deleted since the lookup) takes the general path.
//! Callgrind, 1-flow DPDK bench: ~40 instructions per packet less.
//!
//! A batch that is one run of one flow's packets (every packet has the
//! first one's headers: `flow::same`) goes further ([`Pmd::run_whole_run`]):
//! only the first packet's key is looked up (the cascade credits the
//! rest), the other packets' keys are never copied into their slots, and
//! the flow's bytes are the first packet's length times the count (a run
//! packet's length is compared), so nothing is done per packet between
//! receive and the actions.

use std::sync::Arc;

use dp_core::cascade::Disposition;
use dp_core::flow::same::materialise;
use dp_core::packet::PacketBatch;

use super::Pmd;

impl Pmd {
    /// Runs `batch` (its `n` packets looked up) through its one flow when
    /// all hit the same live flow and returns `true` (the batch left to
    /// the caller to clear); otherwise `false`, the batch untouched.
    #[inline]
    pub(super) fn run_uniform(&mut self, batch: &mut PacketBatch, n: usize, now_ns: u64) -> bool {
        let Some(&Disposition::Hit { flow, .. }) = self.dispositions[..n].first() else {
            return false;
        };
        debug_assert_eq!(n, batch.len(), "every packet of the batch looked up");
        // One pass for the verdicts, TCP flags and bytes.
        let (mut tcp_flags, mut bytes) = (0u16, 0u64);
        let verdicts = self.dispositions[..n].iter().zip(&self.keys[..n]);
        for ((disposition, key), packet) in verdicts.zip(batch.iter()) {
            match disposition {
                Disposition::Hit { flow: f, .. } if *f == flow => {
                    tcp_flags |= key.tcp_flags;
                    bytes += packet.len() as u64;
                }
                _ => return false,
            }
        }
        let Some(actions) = self.flows.get(flow).map(|f| Arc::clone(&f.actions)) else {
            return false;
        };
        self.flows
            .record_use(flow, n as u64, bytes, tcp_flags, now_ns / 1_000_000);
        self.execute(&actions, batch, now_ns);
        true
    }

    /// Runs `batch` (its `n` packets looked up) in place when every
    /// packet hit a live flow and all those flows run one action list
    /// (many megaflows, all `output:2`), and returns `true` (the batch
    /// left to the caller to clear); otherwise `false`, nothing done.
    /// This is the general path's in-place case for a batch without a
    /// miss (same credits, same execution: see `general`), read straight
    /// from the dispositions: no verdicts, and each run of one flow's
    /// packets looks its flow up once.
    #[inline]
    pub(super) fn run_one_list(&mut self, batch: &mut PacketBatch, n: usize, now_ns: u64) -> bool {
        let dispositions = &self.dispositions[..n];
        let Some(&Disposition::Hit { flow: head, .. }) = dispositions.first() else {
            return false;
        };
        if batch.len() != n {
            return false;
        }
        let Some(actions) = self.flows.get(head).map(|f| &f.actions) else {
            return false;
        };
        // Every packet a hit, each new flow's list the head's.
        let mut prev = head;
        for disposition in &dispositions[1..] {
            let &Disposition::Hit { flow, .. } = disposition else {
                return false;
            };
            if flow != prev {
                match self.flows.get(flow) {
                    Some(f) if Arc::ptr_eq(&f.actions, actions) || f.actions[..] == actions[..] => {
                    }
                    _ => return false,
                }
                prev = flow;
            }
        }
        let actions = Arc::clone(actions);
        // Each run of one flow's packets credited as it ends (a flow met
        // in two runs is credited twice: the same sums).
        let now_ms = now_ns / 1_000_000;
        let (mut run_flow, mut count, mut bytes, mut tcp_flags) = (head, 0u64, 0u64, 0u16);
        let hits = self.dispositions[..n].iter().zip(&self.keys[..n]);
        for ((disposition, key), packet) in hits.zip(batch.iter()) {
            let flow = disposition.flow().unwrap_or(run_flow);
            if flow != run_flow {
                self.flows
                    .record_use(run_flow, count, bytes, tcp_flags, now_ms);
                (run_flow, count, bytes, tcp_flags) = (flow, 0, 0, 0);
            }
            count += 1;
            bytes += packet.len() as u64;
            tcp_flags |= key.tcp_flags;
        }
        self.flows
            .record_use(run_flow, count, bytes, tcp_flags, now_ms);
        self.execute(&actions, batch, now_ns);
        true
    }

    /// Runs `batch` (`n >= 2` packets, one run: `Runs::is_whole`, keys
    /// deferred, only slot 0's key, map and hash written) through its flow
    /// when stage 1 serves the first packet, and returns `true` (the batch
    /// left to the caller to clear); otherwise `false`, with the batch
    /// untouched and, when the cascade was not asked, nothing counted, or
    /// (the flow deleted since the lookup) the dispositions written and
    /// the keys materialised, for the general path. What it does is what
    /// `lookup_batch_runs` and [`Pmd::run_uniform`] do for such a batch.
    #[inline]
    pub(super) fn run_whole_run(&mut self, batch: &mut PacketBatch, n: usize, now_ns: u64) -> bool {
        debug_assert!(n >= 2 && n == batch.len());
        let now_ms = now_ns / 1_000_000;
        let Some((flow, level)) = self.cascade.lookup_whole_run(
            &mut self.flows,
            &self.keys[0],
            self.maps[0],
            self.hashes[0],
            n,
            now_ms,
        ) else {
            return false;
        };
        let Some(actions) = self.flows.get(flow).map(|f| Arc::clone(&f.actions)) else {
            // Counted as looked up: the general path takes it from here
            // with what the lookup would have left (the rx loop's next
            // step after `one_pass`'s lookup).
            self.dispositions[..n].fill(Disposition::Hit { flow, level });
            materialise(&mut self.keys, &mut self.maps, (u32::MAX >> (32 - n)) & !1);
            self.run_general(batch, n, now_ns);
            return true;
        };
        // Every packet of the run has the first one's length and TCP
        // flags.
        let len = batch.get(0).map_or(0, |p| p.len() as u64);
        let tcp_flags = self.keys[0].tcp_flags;
        self.flows
            .record_use(flow, n as u64, len * n as u64, tcp_flags, now_ms);
        self.execute(&actions, batch, now_ns);
        true
    }
}
