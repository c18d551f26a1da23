//! The megaflows installed while one rx batch is processed, so that a
//! later miss of the same batch finds the flow an earlier upcall put in
//! without another classifier lookup.
//!
//! # Why
//! The cascade looks a batch up before any of its misses is upcalled. A
//! miss after the batch's first install may be covered by that new flow
//! (a burst of one new connection; a wide megaflow such as an in_port-only
//! rule's). OVS (`fast_path_processing`) and this PMD used to look every
//! such miss up in the classifier again: ~430 instructions per miss, paid
//! by every new flow of a flow-setup burst although the table only changed
//! by this batch's own installs. Only those installs can match, so only
//! they are checked.
//!
//! # How
//! Each install is recorded with its mask (masks are kept once per
//! distinct mask, as a subtable would) and a hash of its masked key over
//! the mask's non-zero words. A miss is hashed the same way under each
//! recorded mask (usually one) and compared with that mask's recorded
//! hashes through a 64-slot open-addressed index; an equal hash is only a
//! hint, confirmed by the flow table's own match check
//! ([`FlowTable::matching_flow_at`]).
//!
//! # Invariants
//! - `find` returns only a live flow that matches the key (checked by the
//!   flow table), so a hash collision costs an upcall, never wrong actions.
//! - A flow installed in this batch that matches the key is found: its
//!   mask is recorded and the key's masked hash under it equals the
//!   flow's. The table normalises masks (exact `in_port`, cleared padding):
//!   a key hashed under the translation's un-normalised mask and found
//!   nothing can only differ from the flow in a word the normalised mask
//!   adds, i.e. a key the flow does not match.
//! - No allocation: the vectors are made with a batch's capacity and
//!   hold at most one entry per packet of a batch (a pass that installs
//!   more, with recirculation, records only the first `MAX_BURST`).

use dp_core::flow::FlowKey;
use dp_core::flow_table::{FlowRef, FlowTable};
use dp_core::packet::MAX_BURST;

/// Hash-table slots: a power of two, twice a batch.
const SLOTS: usize = 2 * MAX_BURST;

/// See the module docs.
#[derive(Debug)]
pub(super) struct BatchInstalls {
    /// Distinct masks of this batch's installs, with their non-zero word
    /// maps.
    masks: Vec<(FlowKey, u64)>,
    /// (mask index, masked-key hash, flow) per install.
    flows: Vec<(u32, u64, FlowRef)>,
    /// Open-addressed index of `flows` by hash: entry index + 1, 0 empty.
    slots: [u8; SLOTS],
    /// The key hashes of the last `find`, per mask, and which packet it
    /// was for: the install that follows a fruitless `find` of the same
    /// packet reuses its hash instead of hashing the key again.
    probed: Option<usize>,
    probe_hashes: Vec<u64>,
}

impl Default for BatchInstalls {
    fn default() -> Self {
        BatchInstalls {
            masks: Vec::with_capacity(4),
            flows: Vec::with_capacity(MAX_BURST),
            slots: [0; SLOTS],
            probed: None,
            probe_hashes: Vec::with_capacity(4),
        }
    }
}

impl BatchInstalls {
    /// Forgets the previous batch's installs.
    #[inline]
    pub(super) fn clear(&mut self) {
        if !self.flows.is_empty() {
            self.masks.clear();
            self.flows.clear();
            self.slots = [0; SLOTS];
        }
        self.probed = None;
    }

    /// True when nothing was installed in this batch yet.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Records that `flow`, matching `key & mask` (`key` being packet
    /// `packet`'s), was installed. Beyond
    /// one batch's worth (recirculation passes share it) further installs
    /// are not recorded: their later misses take an upcall, as before.
    pub(super) fn record(&mut self, packet: usize, key: &FlowKey, mask: &FlowKey, flow: FlowRef) {
        if self.flows.len() >= MAX_BURST {
            return;
        }
        // A whole-key compare first: the word map (a pass over every
        // word) is only needed for a mask not seen in this batch.
        // (Words, not the derived field-by-field `==`: one memcmp.)
        let known = self
            .masks
            .iter()
            .position(|(known, _)| known.words() == mask.words());
        let (m, hash) = match known {
            Some(m) if self.probed == Some(packet) => (m, self.probe_hashes[m]),
            Some(m) => (m, masked_hash(key, mask, self.masks[m].1)),
            None => {
                let map = mask.nonzero_word_map();
                self.masks.push((*mask, map));
                (self.masks.len() - 1, masked_hash(key, mask, map))
            }
        };
        self.flows.push((m as u32, hash, flow));
        let mut s = slot_of(hash);
        while self.slots[s] != 0 {
            s = (s + 1) % SLOTS;
        }
        // At most MAX_BURST entries (< 255), so the index fits.
        self.slots[s] = self.flows.len() as u8;
    }

    /// A flow installed in this batch that matches `key` (packet
    /// `packet`'s).
    pub(super) fn find<A>(
        &mut self,
        packet: usize,
        key: &FlowKey,
        table: &FlowTable<A>,
    ) -> Option<FlowRef> {
        self.probe_hashes.clear();
        self.probed = Some(packet);
        for (m, (mask, map)) in self.masks.iter().enumerate() {
            let hash = masked_hash(key, mask, *map);
            self.probe_hashes.push(hash);
            let mut s = slot_of(hash);
            loop {
                let e = self.slots[s];
                if e == 0 {
                    break;
                }
                let (fm, fh, flow) = self.flows[usize::from(e) - 1];
                if fh == hash
                    && fm == m as u32
                    && let Some(found) = table.matching_flow_at(flow.index(), key)
                {
                    return Some(found);
                }
                s = (s + 1) % SLOTS;
            }
        }
        None
    }
}

#[inline]
fn slot_of(hash: u64) -> usize {
    (hash >> 58) as usize % SLOTS
}

/// A hash of `key & mask` over the words of `map` (the mask's non-zero
/// words); a hint only, so a fast multiply-rotate mix is enough.
#[inline]
fn masked_hash(key: &FlowKey, mask: &FlowKey, map: u64) -> u64 {
    let (k, m) = (key.words(), mask.words());
    let mut h = 0u64;
    let mut bits = map;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        h = (h.rotate_left(23) ^ (k[i] & m[i])).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    h
}
