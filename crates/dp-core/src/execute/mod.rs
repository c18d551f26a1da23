//! Executing a flow's datapath actions on a batch of packets.
//!
//! # What it is
//! After classification a PMD thread groups its packets by the flow they
//! hit; [`Executor::execute`] then runs that flow's [`Action`] list on the
//! whole group. Each action is one stage over the batch (VPP style): it
//! computes a disposition for every packet (rewritten, failed, sampled,
//! longer than `pkt_len`...) and then acts on the batch at once, so the
//! action list is walked once per batch, not once per packet.
//!
//! # Ownership
//! Packets enter in a [`PacketBatch`] and never come back: every packet
//! ends up in exactly one of the [`ActionSink`]'s hands (output, slow
//! path, recirculation) or is dropped, which returns its buffer to its pool
//! and bumps one [`DropReason`] counter. That holds on every path,
//! including a failure in the middle of a list.
//! - `output` as the last action moves the packets to the sink; an
//!   `output` with more actions after it sends copies (OVS's "steal" rule).
//!   The same goes for `clone`, `sample`, `check_pkt_len`, `userspace`,
//!   `recirc` and `tnl_pop`: the last action consumes the originals, an
//!   earlier one works on copies. Copies come from the clone pool the
//!   caller gives the executor; when it is exhausted the copy is not made
//!   and is counted ([`DropReason::NoCloneBuffer`]).
//! - `trunc(n)` applies to the next packet-emitting action only (output,
//!   `tnl_push`, `tnl_pop`), as OVS's cutlen.
//! - `recirc(id)` and `tnl_pop(port)` hand packets to
//!   [`ActionSink::recirculate`] with their depth incremented; packets
//!   already at [`MAX_RECIRC_DEPTH`] are dropped.
//! - A list that ends with packets still in hand drops them
//!   ([`DropReason::EndOfActions`]); an empty list is an explicit drop.
//! - Actions that do not exist here yet (conntrack, bond `lb_output`,
//!   `psample`, `set` of fields without a writer) drop the packets with
//!   their own counter rather than pretend; [`Executor::check`] finds them
//!   at flow install time.
//!
//! # Determinism
//! No clock reads, syscalls, locks or atomics of its own (a copy is a
//! pop from the clone pool's lock-free free list); the caller passes
//! `now_ns` (meters) and seeds the PRNG that `sample` draws from. Steady
//! state allocates nothing: batches live on the stack, copies come from
//! the clone pool.
//!
//! # Threads
//! One executor per PMD thread, used through `&mut`. Its drop counters,
//! meters and tunnel-port table are that thread's; the control thread
//! changes meters and tunnel ports by message between iterations.

mod checksum;
mod drop_reason;
pub mod l2;
pub mod meter;
pub mod set_field;
pub mod tunnel;

#[cfg(test)]
mod tests;

pub use checksum::{checksum, crc32c};
pub use drop_reason::{DropCounters, DropReason};
pub use meter::{BandConfig, BandStats, MeterConfig, MeterStats, MeterTable, MeterUnit};
pub use tunnel::{PushPlan, TunnelKind, TunnelPort, tnl_flags};

use crate::action::{Action, HashAlg, Userspace};
use crate::flow::extract_frame;
use crate::flow::hash::{hash_5tuple, hash_add, hash_add64, hash_finish};
use crate::flow::key::{ETH_TYPE_IPV4, ETH_TYPE_IPV6, FlowKey};
use crate::packet::{Packet, PacketBatch, PacketPool};

/// Most times a packet may be recirculated (`recirc`, `tnl_pop`).
pub const MAX_RECIRC_DEPTH: u8 = 8;

/// Where executed packets go: the PMD's tx buffers, its upcall queue and
/// its recirculation queue.
///
/// Each method receives packets by ownership. For the batch methods, the
/// sink takes what it accepts out of `batch` (e.g. with
/// [`PacketBatch::drain`]); whatever it leaves there was refused and is
/// dropped and counted by the executor.
pub trait ActionSink {
    /// Packets to send on datapath port `port`. Packets left in `batch`
    /// count as [`DropReason::TxError`].
    fn output(&mut self, port: u32, batch: &mut PacketBatch);

    /// A copy of `packet` made by port `port`'s transmit queue in its own
    /// buffers ([`crate::netdev::TxQueue::clone_packet`]), for an output
    /// that is not the action list's last; `None` (the default) makes the
    /// executor copy into its clone pool.
    fn clone_for(&mut self, port: u32, packet: &Packet) -> Option<Packet> {
        let _ = (port, packet);
        None
    }

    /// A packet for the slow path with its `userspace` action (cookie,
    /// pid). `Err` hands the packet back when the queue is full; it is
    /// then counted as [`DropReason::UserspaceQueueFull`].
    fn userspace(&mut self, packet: Packet, action: &Userspace) -> Result<(), Packet>;

    /// Packets to classify again: after `recirc` (new `recirc_id`) or
    /// `tnl_pop` (fresh metadata, tunnel metadata, the tunnel port as
    /// `in_port`). Their header offsets are stale: extract them again.
    /// Packets left in `batch` count as [`DropReason::RecircQueueFull`].
    fn recirculate(&mut self, batch: &mut PacketBatch);
}

/// Runs action lists on batches for one PMD thread.
#[derive(Debug)]
pub struct Executor {
    clone_pool: PacketPool,
    rng: u64,
    drops: DropCounters,
    meters: MeterTable,
    tunnel_ports: Vec<(u32, TunnelPort)>,
    /// Next GRE sequence number per tunnel port.
    gre_seqs: Vec<(u32, u32)>,
    /// Scratch key for hashes that need a parse (no per-packet stack
    /// zeroing of a 300-byte key in the caller).
    key: FlowKey,
    now_ns: u64,
}

/// Bit set over the packets of a batch (`MAX_BURST` is 32).
type Mask = u32;

impl Executor {
    /// An executor that takes copies from `clone_pool` and draws `sample`
    /// decisions from a PRNG seeded with `seed`.
    pub fn new(clone_pool: PacketPool, seed: u64) -> Executor {
        Executor {
            clone_pool,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            drops: DropCounters::new(),
            meters: MeterTable::new(),
            tunnel_ports: Vec::new(),
            gre_seqs: Vec::new(),
            key: FlowKey::ZERO,
            now_ns: 0,
        }
    }

    /// The drop counters.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// The drop counters, writable (to count drops decided elsewhere in
    /// the PMD, such as [`DropReason::NoFlow`], or to clear them).
    pub fn drops_mut(&mut self) -> &mut DropCounters {
        &mut self.drops
    }

    /// The meters.
    pub fn meters(&self) -> &MeterTable {
        &self.meters
    }

    /// The meters, writable (configuration).
    pub fn meters_mut(&mut self) -> &mut MeterTable {
        &mut self.meters
    }

    /// Declares datapath port `port` a tunnel port of `kind`, so
    /// `tnl_pop(port)` knows how to decapsulate.
    pub fn set_tunnel_port(&mut self, port: u32, kind: TunnelKind) {
        self.set_tunnel_port_config(port, TunnelPort::new(kind));
    }

    /// Declares datapath port `port` a tunnel port with the receive checks
    /// of `config` (fixed key, required checksum).
    pub fn set_tunnel_port_config(&mut self, port: u32, config: TunnelPort) {
        match self.tunnel_ports.iter_mut().find(|(p, _)| *p == port) {
            Some(entry) => entry.1 = config,
            None => self.tunnel_ports.push((port, config)),
        }
    }

    /// Forgets tunnel port `port`.
    pub fn remove_tunnel_port(&mut self, port: u32) {
        self.tunnel_ports.retain(|(p, _)| *p != port);
    }

    /// Drops every packet of `batch`, counted under `reason`.
    pub fn drop_batch(&mut self, batch: &mut PacketBatch, reason: DropReason) {
        let n = batch.len();
        if n > 0 {
            batch.clear();
            self.drops.add(reason, n as u64);
        }
    }

    /// Finds the first action (nested lists included) that this executor
    /// would not carry out, for refusing a flow at install time.
    pub fn check(actions: &[Action]) -> Result<(), &Action> {
        for action in actions {
            match action {
                Action::Set(key) if !set_field::supported(key, None) => return Err(action),
                Action::SetMasked { key, mask } if !set_field::supported(key, Some(mask)) => {
                    return Err(action);
                }
                Action::Hash {
                    alg: HashAlg::Unknown(_),
                    ..
                }
                | Action::LbOutput(_)
                | Action::Psample { .. }
                | Action::Ct(_) => return Err(action),
                Action::TnlPush(push) if PushPlan::new(push).is_err() => return Err(action),
                Action::Sample { actions, .. } | Action::Clone(actions) => Self::check(actions)?,
                Action::CheckPktLen { gt, le, .. } => {
                    Self::check(gt)?;
                    Self::check(le)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs `actions` on every packet of `batch` (packets of one flow),
    /// consuming them all: `batch` is empty on return.
    pub fn execute<S: ActionSink>(
        &mut self,
        actions: &[Action],
        batch: &mut PacketBatch,
        sink: &mut S,
        now_ns: u64,
    ) {
        self.now_ns = now_ns;
        self.run(actions, batch, sink, None);
        debug_assert!(batch.is_empty());
    }

    fn run<S: ActionSink>(
        &mut self,
        actions: &[Action],
        batch: &mut PacketBatch,
        sink: &mut S,
        mut cut: Option<u32>,
    ) {
        if actions.is_empty() {
            self.drop_batch(batch, DropReason::Explicit);
            return;
        }
        for (i, action) in actions.iter().enumerate() {
            if batch.is_empty() {
                return;
            }
            let last = i + 1 == actions.len();
            match action {
                Action::Output(port) => {
                    if last {
                        apply_cut(batch, cut);
                        self.output(*port, batch, sink);
                        return;
                    }
                    let mut copies = self.copies_for_port(*port, batch, sink);
                    apply_cut(&mut copies, cut.take());
                    self.output(*port, &mut copies, sink);
                }
                Action::Trunc(max_len) => cut = Some(*max_len),
                Action::Userspace(userspace) => {
                    if last {
                        for packet in batch.drain() {
                            if let Err(packet) = sink.userspace(packet, userspace) {
                                drop(packet);
                                self.drops.add(DropReason::UserspaceQueueFull, 1);
                            }
                        }
                        return;
                    }
                    for packet in batch.iter() {
                        let Some(copy) = packet.clone_into(&self.clone_pool) else {
                            self.drops.add(DropReason::NoCloneBuffer, 1);
                            continue;
                        };
                        if let Err(copy) = sink.userspace(copy, userspace) {
                            drop(copy);
                            self.drops.add(DropReason::UserspaceQueueFull, 1);
                        }
                    }
                }
                Action::Set(key) | Action::SetMasked { key, .. } => {
                    let mask = match action {
                        Action::SetMasked { mask, .. } => Some(mask),
                        _ => None,
                    };
                    if !set_field::supported(key, mask) {
                        self.drop_batch(batch, DropReason::Unsupported);
                        return;
                    }
                    set_field::apply_batch(batch, key, mask);
                }
                Action::PushVlan { tpid, tci } => {
                    let failed = each(batch, |p| l2::push_vlan(p, *tpid, *tci));
                    self.drop_marked(batch, failed, DropReason::InvalidPacket);
                }
                Action::PopVlan => {
                    let failed = each(batch, l2::pop_vlan);
                    self.drop_marked(batch, failed, DropReason::InvalidPacket);
                }
                Action::PushMpls { lse, ethertype } => {
                    let failed = each(batch, |p| l2::push_mpls(p, *lse, *ethertype));
                    self.drop_marked(batch, failed, DropReason::InvalidPacket);
                }
                Action::PopMpls { ethertype } => {
                    let failed = each(batch, |p| l2::pop_mpls(p, *ethertype));
                    self.drop_marked(batch, failed, DropReason::InvalidPacket);
                }
                Action::PushEth { src, dst } => {
                    let failed = each(batch, |p| l2::push_eth(p, src, dst));
                    self.drop_marked(batch, failed, DropReason::InvalidPacket);
                }
                Action::PopEth => {
                    let failed = each(batch, l2::pop_eth);
                    self.drop_marked(batch, failed, DropReason::InvalidPacket);
                }
                Action::Recirc(recirc_id) => {
                    let recirc_id = *recirc_id;
                    self.recirculate(batch, last, sink, |p| {
                        p.meta_mut().recirc_id = recirc_id;
                        Ok(())
                    });
                    if last {
                        return;
                    }
                }
                Action::Hash { alg, basis } => {
                    if let HashAlg::Unknown(_) = alg {
                        self.drop_batch(batch, DropReason::Unsupported);
                        return;
                    }
                    for packet in batch.iter_mut() {
                        let hash = match alg {
                            HashAlg::SymL4 => self.symmetric_hash(packet, *basis),
                            _ => hash_finish(hash_add(*basis, self.inner_hash(packet)), 4),
                        };
                        packet.meta_mut().dp_hash = hash;
                    }
                }
                Action::Sample {
                    probability,
                    actions,
                } => {
                    let mut chosen: Mask = 0;
                    for i in 0..batch.len() {
                        if *probability == u32::MAX || self.next_u32() < *probability {
                            chosen |= 1 << i;
                        }
                    }
                    let mut sub = if last {
                        let sub = take_marked(batch, chosen);
                        self.drop_batch(batch, DropReason::EndOfActions);
                        sub
                    } else {
                        self.copies_marked(batch, chosen)
                    };
                    self.run(actions, &mut sub, sink, cut);
                    if last {
                        return;
                    }
                }
                Action::Clone(actions) => {
                    if last {
                        self.run(actions, batch, sink, cut);
                        return;
                    }
                    let mut copies = self.copies(batch);
                    self.run(actions, &mut copies, sink, cut);
                }
                Action::CheckPktLen { pkt_len, gt, le } => {
                    let mut longer: Mask = 0;
                    for (i, p) in batch.iter().enumerate() {
                        let len = p.len() - p.meta().offsets.l2_pad as usize;
                        if len > usize::from(*pkt_len) {
                            longer |= 1 << i;
                        }
                    }
                    let all: Mask = mask_all(batch.len());
                    let (mut gt_batch, mut le_batch) = if last {
                        let gt_batch = take_marked(batch, longer);
                        (gt_batch, std::mem::take(batch))
                    } else {
                        (
                            self.copies_marked(batch, longer),
                            self.copies_marked(batch, all & !longer),
                        )
                    };
                    self.run(gt, &mut gt_batch, sink, cut);
                    self.run(le, &mut le_batch, sink, cut);
                    if last {
                        return;
                    }
                }
                Action::Ct(_) => {
                    self.drop_batch(batch, DropReason::CtUnavailable);
                    return;
                }
                Action::CtClear => {
                    for packet in batch.iter_mut() {
                        let meta = packet.meta_mut();
                        meta.ct_state = 0;
                        meta.ct_zone = 0;
                        meta.ct_mark = 0;
                        meta.ct_label = [0; 16];
                    }
                }
                Action::TnlPush(push) => {
                    let plan = match PushPlan::new(push) {
                        Ok(plan) => plan,
                        Err(reason) => {
                            self.drop_batch(batch, reason);
                            return;
                        }
                    };
                    if last {
                        // Nothing would see the result (OVS skips it too).
                        self.drop_batch(batch, DropReason::EndOfActions);
                        return;
                    }
                    apply_cut(batch, cut.take());
                    let mut seq = if plan.has_gre_seq() {
                        self.gre_seq(push.tnl_port)
                    } else {
                        0
                    };
                    let mut failed: Mask = 0;
                    for i in 0..batch.len() {
                        let packet = batch.get_mut(i).expect("index below len");
                        let hash = self.inner_hash(packet);
                        if tunnel::push(packet, &push.header, &plan, hash, seq) {
                            seq = seq.wrapping_add(1);
                        } else {
                            failed |= 1 << i;
                        }
                    }
                    if plan.has_gre_seq() {
                        self.set_gre_seq(push.tnl_port, seq);
                    }
                    self.drop_marked(batch, failed, DropReason::TunnelPushError);
                }
                Action::TnlPop(port) => {
                    let port = *port;
                    let Some(config) = self.tunnel_config(port) else {
                        self.drop_batch(batch, DropReason::InvalidTunnelPort);
                        return;
                    };
                    let trunc = cut.take();
                    self.recirculate(batch, last, sink, |p| {
                        if let Some(max_len) = trunc {
                            p.truncate((max_len as usize).max(14));
                        }
                        tunnel::pop_port(p, &config)?;
                        p.meta_mut().in_port = port;
                        Ok(())
                    });
                    if last {
                        return;
                    }
                }
                Action::Meter(id) => {
                    let dropped = self.meters.run(*id, batch, self.now_ns);
                    self.drop_marked(batch, dropped, DropReason::Meter);
                }
                Action::Drop => {
                    self.drop_batch(batch, DropReason::Explicit);
                    return;
                }
                Action::LbOutput(_) | Action::Psample { .. } => {
                    self.drop_batch(batch, DropReason::Unsupported);
                    return;
                }
            }
        }
        self.drop_batch(batch, DropReason::EndOfActions);
    }

    #[inline]
    fn output<S: ActionSink>(&mut self, port: u32, batch: &mut PacketBatch, sink: &mut S) {
        sink.output(port, batch);
        self.drop_batch(batch, DropReason::TxError);
    }

    /// Hands the batch (or copies, when not `last`) to recirculation after
    /// `prepare` succeeds on each packet (a failure drops the packet under
    /// the reason `prepare` gives: `recirc`'s never fails).
    fn recirculate<S: ActionSink>(
        &mut self,
        batch: &mut PacketBatch,
        last: bool,
        sink: &mut S,
        mut prepare: impl FnMut(&mut Packet) -> Result<(), DropReason>,
    ) {
        let mut too_deep: Mask = 0;
        for (i, p) in batch.iter().enumerate() {
            if p.meta().recirc_depth >= MAX_RECIRC_DEPTH {
                too_deep |= 1 << i;
            }
        }
        let mut out = if last {
            self.drop_marked(batch, too_deep, DropReason::RecircDepth);
            std::mem::take(batch)
        } else {
            self.drops
                .add(DropReason::RecircDepth, u64::from(too_deep.count_ones()));
            self.copies_marked(batch, mask_all(batch.len()) & !too_deep)
        };
        let drops = &mut self.drops;
        let failed = each(&mut out, |p| match prepare(p) {
            Ok(()) => {
                p.meta_mut().recirc_depth += 1;
                true
            }
            Err(reason) => {
                drops.add(reason, 1);
                false
            }
        });
        // Counted above, each under its own reason. (Only when some failed:
        // rebuilding the batch costs ~36 instructions a packet.)
        if failed != 0 {
            drop(take_marked(&mut out, failed));
        }
        if !out.is_empty() {
            sink.recirculate(&mut out);
            self.drop_batch(&mut out, DropReason::RecircQueueFull);
        }
    }

    /// The next GRE sequence number of tunnel port `port`.
    fn gre_seq(&self, port: u32) -> u32 {
        self.gre_seqs
            .iter()
            .find(|(p, _)| *p == port)
            .map_or(0, |(_, seq)| *seq)
    }

    fn set_gre_seq(&mut self, port: u32, seq: u32) {
        match self.gre_seqs.iter_mut().find(|(p, _)| *p == port) {
            Some(entry) => entry.1 = seq,
            // Once per tunnel port that sends sequenced GRE.
            None => self.gre_seqs.push((port, seq)),
        }
    }

    fn tunnel_config(&self, port: u32) -> Option<TunnelPort> {
        self.tunnel_ports
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, c)| *c)
    }

    /// Copies of every packet of `batch` for output on `port`: made by
    /// the port's queue in its own buffers where it can
    /// ([`ActionSink::clone_for`]), else in the clone pool.
    fn copies_for_port<S: ActionSink>(
        &mut self,
        port: u32,
        batch: &PacketBatch,
        sink: &mut S,
    ) -> PacketBatch {
        self.copies_made(batch, mask_all(batch.len()), |packet| {
            sink.clone_for(port, packet)
        })
    }

    /// Copies of every packet of `batch`.
    fn copies(&mut self, batch: &PacketBatch) -> PacketBatch {
        self.copies_marked(batch, mask_all(batch.len()))
    }

    /// Copies of the packets of `batch` selected by `which`.
    fn copies_marked(&mut self, batch: &PacketBatch, which: Mask) -> PacketBatch {
        self.copies_made(batch, which, |_| None)
    }

    /// Copies of the packets of `batch` selected by `which`, each made by
    /// `make` where it can, else in the clone pool; a packet neither has
    /// a buffer for is counted as [`DropReason::NoCloneBuffer`].
    #[inline]
    fn copies_made(
        &mut self,
        batch: &PacketBatch,
        which: Mask,
        mut make: impl FnMut(&Packet) -> Option<Packet>,
    ) -> PacketBatch {
        let mut out = PacketBatch::new();
        for (i, packet) in batch.iter().enumerate() {
            if which & (1 << i) == 0 {
                continue;
            }
            match make(packet).or_else(|| packet.clone_into(&self.clone_pool)) {
                Some(copy) => {
                    // `out` holds at most as many packets as `batch`.
                    let _ = out.push(copy);
                }
                None => self.drops.add(DropReason::NoCloneBuffer, 1),
            }
        }
        out
    }

    /// Drops the packets selected by `which`, counted under `reason`.
    #[inline]
    fn drop_marked(&mut self, batch: &mut PacketBatch, which: Mask, reason: DropReason) {
        if which == 0 {
            return;
        }
        let mut i = 0;
        batch.retain(|_| {
            let keep = which & (1 << i) == 0;
            i += 1;
            keep
        });
        self.drops.add(reason, u64::from(which.count_ones()));
    }

    /// The inner flow's 5-tuple hash: the RSS hash when the NIC (or an
    /// earlier stage) gave one, else computed and cached in the packet.
    #[inline]
    fn inner_hash(&mut self, packet: &mut Packet) -> u32 {
        let meta = packet.meta();
        if meta.rss_hash_valid {
            return meta.rss_hash;
        }
        extract_frame(packet.data(), packet.meta(), &mut self.key);
        let hash = hash_5tuple(&self.key, 0);
        let meta = packet.meta_mut();
        meta.rss_hash = hash;
        meta.rss_hash_valid = true;
        hash
    }

    /// A 5-tuple hash that is the same in both directions.
    fn symmetric_hash(&mut self, packet: &Packet, basis: u32) -> u32 {
        extract_frame(packet.data(), packet.meta(), &mut self.key);
        let k = &self.key;
        let mut hash = basis;
        match k.dl_type {
            ETH_TYPE_IPV4 => {
                let (a, b) = (u32::from_be_bytes(k.nw_src), u32::from_be_bytes(k.nw_dst));
                hash = hash_add(hash, a.min(b));
                hash = hash_add(hash, a.max(b));
            }
            ETH_TYPE_IPV6 => {
                let (a, b) = (
                    u128::from_be_bytes(k.ipv6_src),
                    u128::from_be_bytes(k.ipv6_dst),
                );
                for x in [a.min(b), a.max(b)] {
                    hash = hash_add64(hash, x as u64);
                    hash = hash_add64(hash, (x >> 64) as u64);
                }
            }
            _ => return hash_finish(hash, 42),
        }
        hash = hash_add(hash, u32::from(k.nw_proto));
        let (a, b) = (k.tp_src, k.tp_dst);
        hash = hash_add(hash, (u32::from(a.min(b)) << 16) | u32::from(a.max(b)));
        hash_finish(hash, 42)
    }

    /// xorshift64*: deterministic for a given seed.
    #[inline]
    fn next_u32(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

#[inline(always)]
fn mask_all(len: usize) -> Mask {
    if len >= 32 { Mask::MAX } else { (1 << len) - 1 }
}

/// Runs `op` on every packet; returns the bit set of packets it failed on.
#[inline(always)]
fn each(batch: &mut PacketBatch, mut op: impl FnMut(&mut Packet) -> bool) -> Mask {
    let mut failed: Mask = 0;
    for (i, packet) in batch.iter_mut().enumerate() {
        if !op(packet) {
            failed |= 1 << i;
        }
    }
    failed
}

/// Moves the packets selected by `which` out of `batch`, keeping order.
fn take_marked(batch: &mut PacketBatch, which: Mask) -> PacketBatch {
    let mut taken = PacketBatch::new();
    let mut kept = PacketBatch::new();
    for (i, packet) in batch.drain().enumerate() {
        let dest = if which & (1 << i) != 0 {
            &mut taken
        } else {
            &mut kept
        };
        // Both hold at most as many packets as `batch` did.
        let _ = dest.push(packet);
    }
    *batch = kept;
    taken
}

/// Cuts every packet to the pending `trunc` length (at least an Ethernet
/// header, as OVS).
#[inline]
fn apply_cut(batch: &mut PacketBatch, cut: Option<u32>) {
    if let Some(max_len) = cut {
        let max_len = (max_len as usize).max(14);
        for packet in batch.iter_mut() {
            packet.truncate(max_len);
        }
    }
}
