//! The PMD side of action execution: dp-core's [`Executor`](CoreExecutor)
//! plus the queues its actions feed (transmit buffers, recirculation,
//! slow path) and the drops the PMD decides itself (failed upcalls).

use crossbeam_channel::{Sender, TrySendError};
use dp_core::action::{Action, Userspace};
use dp_core::execute::{ActionSink, DropReason, Executor as CoreExecutor};
use dp_core::packet::{MAX_BURST, Packet, PacketBatch, PacketPool, PoolConfig};

use super::{PmdConfig, TxSink};

/// Recirculated packets one pass may queue for the next.
const RECIRC_QUEUE_DEPTH: usize = 4 * MAX_BURST;

/// A packet for the slow path (`userspace` action), with its action.
#[derive(Debug)]
pub struct UserspacePacket {
    pub packet: Packet,
    pub action: Userspace,
}

/// Action execution for one PMD.
#[derive(Debug)]
pub struct Executor {
    core: CoreExecutor,
    recirc: Vec<Packet>,
    userspace: Option<Sender<UserspacePacket>>,
}

impl Executor {
    pub fn new(config: &PmdConfig) -> Executor {
        let pool = PacketPool::new("clone", PoolConfig::heap(config.clone_pool_capacity));
        Executor {
            core: CoreExecutor::new(pool, 0x5eed_0000 ^ identity_seed(config)),
            recirc: Vec::with_capacity(RECIRC_QUEUE_DEPTH),
            userspace: config.userspace.clone(),
        }
    }

    /// Runs `actions` on `group`, sending output through `tx`; `group`
    /// is left empty. (By reference: a batch is 264 bytes, and moving one
    /// per flow group was a `memcpy` per group.)
    pub fn execute(
        &mut self,
        actions: &[Action],
        group: &mut PacketBatch,
        tx: &mut TxSink<'_>,
        now_ns: u64,
    ) {
        let mut sink = Sink {
            tx,
            recirc: &mut self.recirc,
            userspace: self.userspace.as_ref(),
        };
        self.core.execute(actions, group, &mut sink, now_ns);
    }

    /// Up to a batch of packets recirculated by the last executions.
    pub fn take_recirculated(&mut self) -> Option<PacketBatch> {
        if self.recirc.is_empty() {
            return None;
        }
        let mut batch = PacketBatch::new();
        let take = self.recirc.len().min(MAX_BURST);
        batch.extend(self.recirc.drain(..take));
        Some(batch)
    }

    /// Drops packets whose upcall failed or was over budget.
    pub fn drop_batch_no_flow(&mut self, batch: &mut PacketBatch) {
        self.core.drop_batch(batch, DropReason::NoFlow);
    }

    /// Drop counters by printed name.
    pub fn drop_counts(&self) -> Vec<(&'static str, u64)> {
        self.core.drops().iter().collect()
    }

    /// Clears the drop counters (`pmd-stats-clear`).
    pub fn clear_drop_counts(&mut self) {
        self.core.drops_mut().clear();
    }

    /// The executor (meters, tunnel ports).
    pub fn core_mut(&mut self) -> &mut CoreExecutor {
        &mut self.core
    }
}

fn identity_seed(config: &PmdConfig) -> u64 {
    match config.identity {
        crate::stats::PmdIdentity::Pmd { core_id, .. } => core_id as u64 + 1,
        crate::stats::PmdIdentity::Main => 0,
    }
}

impl TxSink<'_> {
    /// A copy of `packet` made by `port_no`'s transmit queue in its own
    /// buffers, if it makes them (see `TxQueue::clone_packet`).
    pub fn clone_for(&mut self, port_no: u32, packet: &Packet) -> Option<Packet> {
        let Some(Some(port)) = self.tx.get_mut(port_no as usize) else {
            return None;
        };
        port.txq.clone_packet(packet)
    }

    /// Queues every packet of `batch` for `port_no`, in order. A batch
    /// meeting an empty transmit buffer becomes that buffer (one swap, not
    /// a move per packet); otherwise packets are appended, the buffer sent
    /// whenever it fills. When this PMD has no such port, the packets stay
    /// in `batch` (refused).
    pub fn output_batch(&mut self, port_no: u32, batch: &mut PacketBatch) {
        let Some(Some(port)) = self.tx.get_mut(port_no as usize) else {
            return;
        };
        if batch.is_empty() {
            return;
        }
        if port.pending.is_empty() {
            port.pending_since_ns = self.now_ns;
            std::mem::swap(&mut port.pending, batch);
            return;
        }
        for packet in batch.drain() {
            if let Err(packet) = port.pending.push(packet) {
                super::send_pending(port, port_no, self.stats, self.capture, Some(self.now_ns));
                port.pending_since_ns = self.now_ns;
                // Cannot fail: sending emptied the buffer (a send
                // consumes its batch even on error).
                let _ = port.pending.push(packet);
            }
        }
    }
}

struct Sink<'a, 'b> {
    tx: &'a mut TxSink<'b>,
    recirc: &'a mut Vec<Packet>,
    userspace: Option<&'a Sender<UserspacePacket>>,
}

impl ActionSink for Sink<'_, '_> {
    fn output(&mut self, port: u32, batch: &mut PacketBatch) {
        self.tx.output_batch(port, batch);
    }

    fn clone_for(&mut self, port: u32, packet: &Packet) -> Option<Packet> {
        self.tx.clone_for(port, packet)
    }

    fn userspace(&mut self, packet: Packet, action: &Userspace) -> Result<(), Packet> {
        let Some(queue) = self.userspace else {
            return Err(packet);
        };
        queue
            .try_send(UserspacePacket {
                packet,
                action: action.clone(),
            })
            .map_err(|e| match e {
                TrySendError::Full(u) | TrySendError::Disconnected(u) => u.packet,
            })
    }

    /// Queues the batch in order (the next pass must see the packets as
    /// they arrived: popping from the end reversed every recirculated
    /// burst). What does not fit stays in `batch` for the executor to
    /// drop as queue-full: the last packets, never earlier ones.
    fn recirculate(&mut self, batch: &mut PacketBatch) {
        let room = RECIRC_QUEUE_DEPTH.saturating_sub(self.recirc.len());
        if batch.len() <= room {
            self.recirc.extend(batch.drain());
            return;
        }
        let mut overflow = PacketBatch::new();
        for (i, packet) in batch.drain().enumerate() {
            if i < room {
                self.recirc.push(packet);
            } else {
                // At most as many as `batch` held.
                let _ = overflow.push(packet);
            }
        }
        *batch = overflow;
    }
}
