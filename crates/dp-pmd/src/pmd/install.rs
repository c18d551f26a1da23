//! The install step of an upcall: a translation said "megaflow", so put
//! it in this PMD's flow table (and EMC) and decide which actions the
//! packet that missed runs.
//!
//! Admission (the per-iteration upcall budget, `admission.rs`) and the
//! translation call live in `general.rs` (`handle_miss`,
//! `upcall_and_install`); this is what follows a successful translation,
//! kept apart so the two can change separately.
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

use super::{Pmd, Verdict};
use crate::upcall::FlowActions;

impl Pmd {
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
                // As OVS: the new flow goes into the EMC now, so the next
                // packet of the connection hits there.
                self.cascade.emc_mut().probabilistic_insert_mapped(
                    key,
                    Some(self.maps[i]),
                    self.hashes[i],
                    flow,
                    &self.flows,
                );
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
