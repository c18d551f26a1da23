//! The simple-match fast path of a received batch: when every flow of the
//! receiving port is simple, the packets' simple fields are read without
//! extracting their keys and looked up in the simple-match table, as OVS
//! 3.x does (see [`Cascade::lookup_simple_rx`]). A batch whose packets all
//! hit is executed from there (one flow: the uniform shortcut; several:
//! the general path's grouping); any other batch takes the usual path.
//!
//! # Invariants
//! - Only freshly received batches come here (metadata reset by the
//!   driver): recirculated packets carry a `recirc_id` and take the usual
//!   path.
//! - On this path the PMD's keys are not extracted: only `keys[i].tcp_flags`
//!   is written, the one key field the uniform and general paths read for
//!   a hit, and its word added to `maps[i]` (a slot's map names every
//!   non-zero word of its key: see `prepare_batch_mapped`). Packet hashes
//!   are not computed either; actions that need one compute it
//!   (`Executor`'s `inner_hash`).
//!
//! Callgrind, DPDK bench `100k-inport` (one in_port-only flow, 64-byte
//! UDP): 802 → 594 instructions per packet in `Pmd::poll_once`, drivers
//! included (extraction ~204, hash ~41 and EMC ~30 gone; the light parse
//! and simple lookup ~90 instead).
//!
//! [`Cascade::lookup_simple_rx`]: dp_core::cascade::Cascade::lookup_simple_rx

use dp_core::flow::FlowKey;
use dp_core::flow::key::words_of_bytes;
use dp_core::packet::{MAX_BURST, PacketBatch};

use super::Pmd;

impl Pmd {
    /// Runs a batch just received on `port_no` (its packets' `in_port`
    /// set) through the simple-match fast path when every packet hits a
    /// simple flow, and returns `true` (the batch left empty); otherwise
    /// `false`, the batch left for the usual path, nothing done but the
    /// header offsets.
    pub(super) fn run_simple_rx(
        &mut self,
        batch: &mut PacketBatch,
        port_no: u32,
        now_ns: u64,
    ) -> bool {
        let mut tcp_flags = [0u16; MAX_BURST];
        let Some(n) = self.cascade.lookup_simple_rx(
            &mut self.flows,
            batch,
            port_no,
            now_ns / 1_000_000,
            &mut self.dispositions,
            &mut tcp_flags,
        ) else {
            return false;
        };
        // The slot's map must keep naming every non-zero word of its key
        // (the next extraction into it zeroes only what the map names).
        let flags_word = words_of_bytes(std::mem::offset_of!(FlowKey, tcp_flags), 2);
        for ((key, map), flags) in self.keys[..n].iter_mut().zip(&mut self.maps).zip(tcp_flags) {
            key.tcp_flags = flags;
            *map |= flags_word;
        }
        if !self.run_uniform(batch, n, now_ns) {
            self.run_general(batch, n, now_ns);
        }
        true
    }
}
