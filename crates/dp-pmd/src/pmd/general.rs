//! The general path of a datapath pass: a batch that is not one flow's
//! (misses, several flows). Each packet gets a verdict (its flow, a
//! one-off action list, a drop), misses go through admission and the
//! upcall, and the packets are executed per verdict group, groups in the
//! order of their first packet, packets in their order within a group;
//! except that a batch whose groups all run one action list is executed
//! once, as received (arrival order: each flow's packets still in their
//! order, flows interleaved as they came).
//!
//! # How
//! - Misses: a miss after an install of the same batch is first checked
//!   against that batch's installs ([`BatchInstalls`]), not the whole
//!   classifier again; see that module for why this is complete.
//! - Verdicts first, in arrival order; then, unless the batch runs in
//!   place (below), grouping, as OVS keeps a batch pointer per flow:
//!   each packet's verdict is looked up in a 64-slot open-addressed table
//!   of this batch's groups (a packet with its predecessor's verdict skips
//!   it), and the packets of a group are chained by index. The quadratic
//!   scan it replaces cost ~230 instructions per packet of a batch of
//!   distinct flows (callgrind, DPDK setup bench).
//! - Execution per run of groups, not per group: consecutive groups whose
//!   action lists are equal (the same `Arc`, or equal lists: ofproto-lite
//!   builds one per translation) run as one batch, group after group.
//!   Every action treats each packet on its own, in batch order, so this
//!   sends exactly what one execution per group sends, in the same order
//!   on every port. Many megaflows with one action list (`100k-20masks`:
//!   ~1.5 packets a group) were one executor call, one `Arc` clone and
//!   one transmit-buffer append per group; the DPDK bench's 20-mask case
//!   went from ~1,241 to ~1,125 instructions a packet (callgrind, steady
//!   state).
//! - In place: when all packets run one list, the batch is executed as
//!   received, no packet moved out and back, and no group table built:
//!   each run of consecutive packets of one flow is credited as it ends
//!   (a flow met in two runs is credited twice: the same sums). When
//!   the groups are runs of consecutive packets that is exactly the
//!   per-group execution; otherwise it sends the same packets
//!   to the same ports, each flow's in its order, in arrival order rather
//!   than grouped by flow (OVS groups them: an artefact of its per-flow
//!   batches, not a promise; arrival order reorders less). `100k-20masks`
//!   has such batches (a few megaflows hold many microflows, so a batch
//!   meets some twice, apart): regrouping moved every packet twice. A
//!   batch without a miss does this straight from its dispositions
//!   (`Pmd::run_one_list`), before any verdict is built: 158 -> ~90
//!   instructions a packet for this path (callgrind, `100k-20masks`).
//!
//! # Invariants
//! - Every packet of the batch is executed or dropped exactly once.
//! - A group holds exactly the packets whose verdicts are equal
//!   (`same_verdict`); the table only narrows where to look.
//! - Each flow is credited with exactly the packets, bytes and TCP flags
//!   of its group, whichever way the group is executed.

use std::sync::Arc;

use dp_core::cascade::Disposition;
use dp_core::execute::DropReason;
use dp_core::flow_table::FlowTable;
use dp_core::packet::{MAX_BURST, Packet, PacketBatch};

use super::{Pmd, Verdict, same_verdict};
use crate::cycles;
use crate::upcall::FlowActions;

/// Group table slots: a power of two, twice a batch, so probes stay short.
const GROUP_SLOTS: usize = 2 * MAX_BURST;
/// An empty group-table slot.
const NO_GROUP: u8 = u8::MAX;
/// End of a group's packet chain.
const END: u8 = u8::MAX;

impl Pmd {
    /// Verdicts, upcalls and per-group execution of a looked-up batch of
    /// `n` packets (the general path; see the module docs).
    pub(super) fn run_general(&mut self, batch: &mut PacketBatch, n: usize, now_ns: u64) {
        // No miss and one action list: in place, from the dispositions.
        if self.run_one_list(batch, n, now_ns) {
            return;
        }
        let now_ms = now_ns / 1_000_000;
        let mut one_offs: Vec<FlowActions> = Vec::new();
        self.installs.clear();
        let mut budget = self.config.upcall_budget;

        // Verdicts first (misses resolved in arrival order), grouping only
        // when the batch needs it.
        let mut verdicts = [Verdict::Dropped; MAX_BURST];
        for (j, verdict) in verdicts[..n].iter_mut().enumerate() {
            *verdict = match self.dispositions[j] {
                Disposition::Hit { flow, .. } => Verdict::Flow(flow),
                Disposition::Miss => self.handle_miss(j, batch, &mut one_offs, &mut budget, now_ms),
            };
        }
        self.installs.clear();
        let verdicts = &verdicts[..n];

        // One action list for every packet (many flows, all `output:2`):
        // credit each run of one flow's packets and execute the batch as
        // received, in place. A flow met in several runs is credited once
        // a run: the same sums.
        if batch.len() == n
            && let Some(actions) = one_action_list(&self.flows, verdicts, &one_offs)
        {
            let (mut count, mut bytes, mut tcp_flags) = (0u64, 0u64, 0u16);
            for (j, (packet, key)) in batch.iter().zip(&self.keys[..n]).enumerate() {
                count += 1;
                bytes += packet.len() as u64;
                tcp_flags |= key.tcp_flags;
                let verdict = verdicts[j];
                if verdicts
                    .get(j + 1)
                    .is_none_or(|&v| !same_verdict(v, verdict))
                {
                    if let Verdict::Flow(flow) = verdict {
                        self.flows.record_use(flow, count, bytes, tcp_flags, now_ms);
                    }
                    (count, bytes, tcp_flags) = (0, 0, 0);
                }
            }
            self.execute(&actions, batch, now_ns);
            return;
        }

        // Grouping: `first[g]` heads group g's chain, `next[j]` links
        // packet j to the next packet of its group.
        let mut table = [NO_GROUP; GROUP_SLOTS];
        let mut group_verdict = [Verdict::Dropped; MAX_BURST];
        let mut first = [END; MAX_BURST];
        let mut last = [END; MAX_BURST];
        let mut next = [END; MAX_BURST];
        let mut groups = 0usize;
        let mut prev: Option<u8> = None;
        for (j, &verdict) in verdicts.iter().enumerate() {
            let g = match prev {
                Some(g) if same_verdict(group_verdict[usize::from(g)], verdict) => g,
                _ => {
                    let mut s = slot_of(verdict);
                    loop {
                        let g = table[s];
                        if g == NO_GROUP {
                            // New group (at most n <= MAX_BURST < 255).
                            let g = groups as u8;
                            groups += 1;
                            table[s] = g;
                            group_verdict[usize::from(g)] = verdict;
                            break g;
                        }
                        if same_verdict(group_verdict[usize::from(g)], verdict) {
                            break g;
                        }
                        s = (s + 1) % GROUP_SLOTS;
                    }
                }
            };
            prev = Some(g);
            let gi = usize::from(g);
            if first[gi] == END {
                first[gi] = j as u8;
            } else {
                next[usize::from(last[gi])] = j as u8;
            }
            last[gi] = j as u8;
        }

        let mut packets: [Option<Packet>; MAX_BURST] = [const { None }; MAX_BURST];
        for (slot, packet) in packets.iter_mut().zip(batch.drain()) {
            *slot = Some(packet);
        }

        // Groups in turn, each flow credited with its packets. Consecutive
        // groups whose action lists are equal run as one execution: the
        // packets of group g, then those of group g+1, in one batch, which
        // is exactly what running the list on g and then on g+1 does
        // (every action treats each packet on its own, in batch order), so
        // each port sees the same packets in the same order. A batch of
        // distinct flows with one action list (many megaflows, all
        // `output:2`) is then one execution, not one per packet: callgrind,
        // DPDK bench `100k-20masks`, see the module docs.
        let mut group = PacketBatch::new();
        let mut pending: Option<FlowActions> = None;
        for g in 0..groups {
            let verdict = group_verdict[g];
            // A flow gone since the lookup cannot happen within a pass
            // (nothing removes flows in between); dropped if it does.
            let actions = actions_of(&self.flows, &one_offs, verdict);
            let joins = match (&pending, actions) {
                (Some(p), Some(a)) => same_actions(p, a),
                _ => false,
            };
            if !joins {
                let starting = actions.map(Arc::clone);
                if let Some(p) = std::mem::replace(&mut pending, starting) {
                    self.execute(&p, &mut group, now_ns);
                }
            }
            let (mut bytes, mut tcp_flags) = (0u64, 0u16);
            let start = group.len();
            let mut j = first[g];
            while j != END {
                let ji = usize::from(j);
                if let Some(packet) = packets[ji].take() {
                    bytes += packet.len() as u64;
                    tcp_flags |= self.keys[ji].tcp_flags;
                    // Cannot fail: the batch's packets fill at most one
                    // batch.
                    let _ = group.push(packet);
                }
                j = next[ji];
            }
            match verdict {
                Verdict::Flow(flow) if pending.is_some() => {
                    let count = (group.len() - start) as u64;
                    self.flows.record_use(flow, count, bytes, tcp_flags, now_ms);
                }
                Verdict::Refused => self
                    .exec
                    .core_mut()
                    .drop_batch(&mut group, DropReason::UpcallLimit),
                Verdict::Flow(_) | Verdict::Dropped => self.exec.drop_batch_no_flow(&mut group),
                Verdict::OneOff(_) => {}
            }
        }
        if let Some(p) = pending {
            self.execute(&p, &mut group, now_ns);
        }
    }

    /// Resolves a cascade miss for packet `i`: a flow installed earlier in
    /// this batch, or an upcall (within the budget).
    fn handle_miss(
        &mut self,
        i: usize,
        batch: &PacketBatch,
        one_offs: &mut Vec<FlowActions>,
        budget: &mut usize,
        now_ms: u64,
    ) -> Verdict {
        if !self.installs.is_empty()
            && let Some(flow) = self.installs.find(i, &self.keys[i], &self.flows)
        {
            self.relookup_hits += 1;
            return Verdict::Flow(flow);
        }
        if !self.admission.admit() {
            self.stats.miss_upcall_failed += 1;
            self.batch_refused += 1;
            return Verdict::Refused;
        }
        if *budget == 0 {
            self.stats.upcall_budget_exceeded += 1;
            self.stats.miss_upcall_failed += 1;
            return Verdict::Dropped;
        }
        *budget -= 1;
        let start = cycles::now();
        let verdict = self.upcall_and_install(i, batch, one_offs, now_ms);
        self.admission.charge(cycles::now().wrapping_sub(start));
        verdict
    }
}

/// The action list every packet of a batch runs, when they all run the
/// same one (equal lists, not only the same `Arc`: ofproto-lite builds
/// one per translation); `None` when they differ or a packet is dropped.
/// A packet with its predecessor's verdict is not looked at again.
fn one_action_list(
    flows: &FlowTable<FlowActions>,
    verdicts: &[Verdict],
    one_offs: &[FlowActions],
) -> Option<FlowActions> {
    let (&head, _) = verdicts.split_first()?;
    let actions = actions_of(flows, one_offs, head)?;
    for pair in verdicts.windows(2) {
        if !same_verdict(pair[0], pair[1])
            && !same_actions(actions, actions_of(flows, one_offs, pair[1])?)
        {
            return None;
        }
    }
    Some(Arc::clone(actions))
}

/// The action list a verdict runs: its flow's, or its one-off list;
/// `None` for a dropped packet (and a flow no longer in the table).
#[inline]
fn actions_of<'a>(
    flows: &'a FlowTable<FlowActions>,
    one_offs: &'a [FlowActions],
    verdict: Verdict,
) -> Option<&'a FlowActions> {
    match verdict {
        Verdict::Flow(flow) => flows.get(flow).map(|f| &f.actions),
        Verdict::OneOff(k) => one_offs.get(k),
        Verdict::Dropped | Verdict::Refused => None,
    }
}

/// True when two action lists do the same: the same `Arc`, or equal
/// lists (ofproto-lite builds one per translation).
#[inline]
fn same_actions(a: &FlowActions, b: &FlowActions) -> bool {
    Arc::ptr_eq(a, b) || a[..] == b[..]
}

/// The group-table slot a verdict's probe starts at.
#[inline]
fn slot_of(verdict: Verdict) -> usize {
    let x: u64 = match verdict {
        Verdict::Flow(f) => u64::from(f.index()) << 32 | u64::from(f.generation()),
        Verdict::OneOff(k) => k as u64 ^ 0x5555_0000,
        Verdict::Dropped => 0xd0d0,
        Verdict::Refused => 0xfefe,
    };
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % GROUP_SLOTS
}
