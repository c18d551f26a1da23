//! The upcall of a miss and its install: ask the handler, and when the
//! translation says "megaflow", put it in this PMD's flow table (and EMC)
//! and decide which actions the packet that missed runs.
//!
//! Admission (the per-iteration upcall budget, `admission.rs`) lives in
//! `general.rs` (`handle_miss`), which calls [`Pmd::upcall_and_install`].
//! The handler writes the megaflow's mask into the PMD's buffer
//! (`upcall_mask`, taken out for the call) rather than returning it: see
//! [`UpcallHandler::translate_upcall`](crate::upcall::UpcallHandler::translate_upcall).
//!
//! # Invariants
//! - The packet always gets the actions of a flow that matches it: the
//!   new flow, an existing flow with the same match, or (when the table
//!   refuses the flow) the translation's own actions as a one-off. A flow
//!   found only by its UFID is used only if it matches the packet, so a
//!   UFID collision ([`dp_core::flow_table::ufid_from_match`]) costs an
//!   install, never the wrong actions.
//! - No allocation beyond the flow table's own growth and the one-off
//!   list of the batch.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dp_core::flow::FlowKey;
use dp_core::flow_table::FlowTableError;
use dp_core::packet::PacketBatch;

use super::{Pmd, Verdict};
use crate::upcall::{FlowActions, Upcalled};

impl Pmd {
    /// The upcall of packet `i` and the install of its megaflow.
    pub(super) fn upcall_and_install(
        &mut self,
        i: usize,
        batch: &PacketBatch,
        one_offs: &mut Vec<FlowActions>,
        now_ms: u64,
    ) -> Verdict {
        // Taken out so that the install below may borrow the PMD whole;
        // a buffer lost to a panicking handler is made again. It holds the
        // last upcall's mask: the handler writes it whole (trait doc).
        let mut mask = self
            .upcall_mask
            .take()
            .unwrap_or_else(|| Box::new(FlowKey::ZERO));
        let translated = match batch.get(i) {
            Some(packet) => self.upcall.translate_upcall(
                &self.keys[i],
                packet,
                now_ms,
                self.config.identity,
                &mut mask,
            ),
            None => self
                .upcall
                .translate(&self.keys[i], None, now_ms)
                .map(|t| t.into_upcalled(&mut mask)),
        };
        let verdict = match translated {
            Ok(Upcalled {
                actions,
                install: true,
                ufid,
            }) => {
                self.stats.miss_upcall_ok += 1;
                self.install_megaflow(i, &mask, ufid, actions, one_offs, now_ms)
            }
            Ok(Upcalled { actions, .. }) => {
                self.stats.miss_upcall_ok += 1;
                one_offs.push(actions);
                Verdict::OneOff(one_offs.len() - 1)
            }
            Err(_) => {
                self.stats.miss_upcall_failed += 1;
                Verdict::Dropped
            }
        };
        self.upcall_mask = Some(mask);
        verdict
    }

    /// Installs the megaflow `keys[i] & mask` → `actions` that the upcall
    /// of packet `i` produced (under `ufid` when the handler gave it), and
    /// returns the packet's verdict.
    pub(super) fn install_megaflow(
        &mut self,
        i: usize,
        mask: &FlowKey,
        ufid: Option<u128>,
        actions: FlowActions,
        one_offs: &mut Vec<FlowActions>,
        now_ms: u64,
    ) -> Verdict {
        let mut one_off = |actions: FlowActions| {
            one_offs.push(actions);
            Verdict::OneOff(one_offs.len() - 1)
        };
        if self.flows.len() >= self.flow_limit.load(Ordering::Relaxed) {
            self.stats.upcall_flow_limit_hit += 1;
            return one_off(actions);
        }
        let key = &self.keys[i];
        match self
            .flows
            .insert(key, mask, ufid, Arc::clone(&actions), now_ms)
        {
            Ok(flow) => {
                // Later misses of this batch check it first.
                self.installs.record(i, key, mask, flow);
                // As OVS: the new flow goes into the EMC (when in use)
                // now, so the next packet of the connection hits there.
                self.cascade
                    .offer_emc(key, self.maps[i], self.hashes[i], flow, &self.flows);
                Verdict::Flow(flow)
            }
            // Same mask and masked key: that flow matches this packet.
            Err(FlowTableError::MatchExists { ufid }) => match self.flows.find_ufid(ufid) {
                Some(flow) => Verdict::Flow(flow),
                None => one_off(actions),
            },
            // Same UFID: the same match, or a hash collision with another
            // one; only a flow that matches the packet may serve it.
            Err(FlowTableError::UfidExists { ufid }) => {
                match self
                    .flows
                    .find_ufid(ufid)
                    .and_then(|flow| self.flows.matching_flow_at(flow.index(), key))
                {
                    Some(flow) => Verdict::Flow(flow),
                    None => one_off(actions),
                }
            }
            // Table full or subtable limit: counted by the table; the
            // packet still gets its actions.
            Err(_) => one_off(actions),
        }
    }
}
