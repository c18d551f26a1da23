//! The general path of a datapath pass: a batch that is not one flow's
//! (misses, several flows). Each packet gets a verdict (its flow, a
//! one-off action list, a drop), misses go through admission and the
//! upcall, and the packets are executed per verdict group, groups in the
//! order of their first packet, packets in their order within a group.
//!
//! # How
//! - Misses: a miss after an install of the same batch is first checked
//!   against that batch's installs ([`BatchInstalls`]), not the whole
//!   classifier again; see that module for why this is complete.
//! - Grouping in one pass, as OVS keeps a batch pointer per flow: each
//!   packet's verdict is looked up in a 64-slot open-addressed table of
//!   this batch's groups (a packet with its predecessor's verdict skips
//!   it), and the packets of a group are chained by index. The quadratic
//!   scan it replaces cost ~230 instructions per packet of a batch of
//!   distinct flows (callgrind, DPDK setup bench).
//!
//! # Invariants
//! - Every packet of the batch is executed or dropped exactly once.
//! - A group holds exactly the packets whose verdicts are equal
//!   (`same_verdict`); the table only narrows where to look.

use std::sync::Arc;

use dp_core::cascade::Disposition;
use dp_core::execute::DropReason;
use dp_core::packet::{MAX_BURST, Packet, PacketBatch};

use super::{Pmd, Verdict, same_verdict};
use crate::cycles;
use crate::upcall::{FlowActions, Translation};

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
        let now_ms = now_ns / 1_000_000;
        let mut packets: [Option<Packet>; MAX_BURST] = [const { None }; MAX_BURST];
        for (slot, packet) in packets.iter_mut().zip(batch.drain()) {
            *slot = Some(packet);
        }
        let mut verdicts = [Verdict::Dropped; MAX_BURST];
        let mut one_offs: Vec<FlowActions> = Vec::new();
        self.installs.clear();
        let mut budget = self.config.upcall_budget;
        for (i, verdict) in verdicts.iter_mut().enumerate().take(n) {
            *verdict = match self.dispositions[i] {
                Disposition::Hit { flow, .. } => Verdict::Flow(flow),
                Disposition::Miss => {
                    self.handle_miss(i, &packets, &mut one_offs, &mut budget, now_ms)
                }
            };
        }
        self.installs.clear();

        // Group: `first[g]` heads group g's chain, `next[j]` links packet j
        // to the next packet of its group.
        let mut table = [NO_GROUP; GROUP_SLOTS];
        let mut group_verdict = [Verdict::Dropped; MAX_BURST];
        let mut first = [END; MAX_BURST];
        let mut last = [END; MAX_BURST];
        let mut next = [END; MAX_BURST];
        let mut groups = 0usize;
        let mut prev: Option<u8> = None;
        for (j, &verdict) in verdicts.iter().enumerate().take(n) {
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

        // One batch for every group in turn: execution and drops leave it
        // empty.
        let mut group = PacketBatch::new();
        for g in 0..groups {
            let verdict = group_verdict[g];
            let (mut bytes, mut tcp_flags) = (0u64, 0u16);
            let mut j = first[g];
            while j != END {
                let ji = usize::from(j);
                if let Some(packet) = packets[ji].take() {
                    bytes += packet.len() as u64;
                    tcp_flags |= self.keys[ji].tcp_flags;
                    let _ = group.push(packet);
                }
                j = next[ji];
            }
            match verdict {
                Verdict::Dropped => self.exec.drop_batch_no_flow(&mut group),
                Verdict::Refused => self
                    .exec
                    .core_mut()
                    .drop_batch(&mut group, DropReason::UpcallLimit),
                Verdict::Flow(flow) => {
                    let count = group.len() as u64;
                    self.flows.record_use(flow, count, bytes, tcp_flags, now_ms);
                    let actions = match self.flows.get(flow) {
                        Some(f) => Arc::clone(&f.actions),
                        None => {
                            self.exec.drop_batch_no_flow(&mut group);
                            continue;
                        }
                    };
                    self.execute(&actions, &mut group, now_ns);
                }
                Verdict::OneOff(k) => {
                    let actions = Arc::clone(&one_offs[k]);
                    self.execute(&actions, &mut group, now_ns);
                }
            }
        }
    }

    /// Resolves a cascade miss for packet `i`: a flow installed earlier in
    /// this batch, or an upcall (within the budget).
    fn handle_miss(
        &mut self,
        i: usize,
        packets: &[Option<Packet>; MAX_BURST],
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
        let verdict = self.upcall_and_install(i, packets, one_offs, now_ms);
        self.admission.charge(cycles::now().wrapping_sub(start));
        verdict
    }

    /// The upcall of packet `i` and the install of its megaflow.
    fn upcall_and_install(
        &mut self,
        i: usize,
        packets: &[Option<Packet>; MAX_BURST],
        one_offs: &mut Vec<FlowActions>,
        now_ms: u64,
    ) -> Verdict {
        // The handler may give the megaflow's UFID, which it computed
        // anyway (ofproto-lite does, to credit rules): the insert then
        // does not hash the match a second time.
        let translated = match packets[i].as_ref() {
            Some(packet) => self.upcall.translate_upcall(&self.keys[i], packet, now_ms),
            None => self
                .upcall
                .translate(&self.keys[i], None, now_ms)
                .map(|t| (t, None)),
        };
        match translated {
            Ok((Translation::Megaflow { mask, actions }, ufid)) => {
                self.stats.miss_upcall_ok += 1;
                self.install_megaflow(i, &mask, ufid, actions, one_offs, now_ms)
            }
            Ok((Translation::ExecuteOnly { actions }, _)) => {
                self.stats.miss_upcall_ok += 1;
                one_offs.push(actions);
                Verdict::OneOff(one_offs.len() - 1)
            }
            Err(_) => {
                self.stats.miss_upcall_failed += 1;
                Verdict::Dropped
            }
        }
    }
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
