//! The per-PMD megaflow table: every installed flow with its match, its
//! actions, its UFID and its statistics, plus the per-port classifiers and
//! the simple-match table that find it.
//!
//! # What
//! A [`FlowTable<A>`] owns the flows; `A` is the action payload (the
//! datapath's action list, usually behind an `Arc` so a dump can share it),
//! which this module never looks at. A flow is named two ways:
//! - its UFID (`u128`), the control plane's name, given by the installer or
//!   generated from the match ([`ufid_from_match`]);
//! - a [`FlowRef`] (slot index + generation), the fast path's name, which
//!   the EMC and SMC store.
//!
//! # How
//! Flows live in a slab of slots. Deleting a flow bumps its slot's
//! generation, so every `FlowRef` to it (in an EMC entry, say) stops
//! resolving at once, with no cache sweep: [`FlowTable::get`] and
//! [`FlowTable::is_live`] compare generations. A slot whose generation
//! would wrap is retired rather than reused, so a stale `FlowRef` can never
//! alias a later flow.
//!
//! The match lives in the classifier of the flow's `in_port` (one
//! [`Dpcls`] per port, as in OVS); the flow keeps the rule's handle, so
//! the masked key is stored once. `in_port` is always matched exactly:
//! the installer's mask is widened to an exact `in_port` (OVS
//! dpif-netdev does the same).
//!
//! # Simple match (OVS 3.x)
//! A flow whose mask is exactly `in_port`, `recirc_id`, `packet_type`,
//! `dl_type`, the first VLAN's VID+CFI (`0x1fff`) and the fragment bits
//! (or no fragment bits for a non-IP `dl_type`) is also entered in an
//! exact table keyed by those fields. So is a flow that matches only the
//! CFI bit, as 0 (untagged: what ofproto-lite installs for a rule that
//! never looks at VLANs): on extracted keys that is VID+CFI = 0. When every flow of a port is simple
//! ([`FlowTable::simple_match_enabled`]), the cascade serves that port's
//! packets from the exact table ahead of the EMC. A simple hit is sound by
//! construction (equal simple keys imply the masked match); a simple miss
//! falls through to the normal cascade, so it is never wrong, only slower.
//!
//! # Invariants
//! - A live flow is in its port's classifier (value = slot index), in the
//!   UFID index, and in the simple table iff `flow.simple`.
//! - No two live flows share a UFID, nor a (mask, masked key).
//! - At most `max_flows` live flows (OVS `MAX_FLOWS` = 65536 by default).
//!
//! # Thread story
//! One table per PMD thread, used through `&mut`: the control plane's
//! puts and deletes arrive as messages the PMD applies between
//! iterations. Lookups do not allocate.
//!
//! Times (`now_ms`) are the caller's monotonic clock in milliseconds.

use std::collections::HashMap;

use crate::dpcls::index::{HashIndex, WordHashBuilder};
use crate::dpcls::prefetch::prefetch_addr;
use crate::dpcls::{Dpcls, DpclsConfig, DpclsError, RuleHandle};
use crate::flow::FlowKey;
use crate::flow::hash::hash_finish;
use crate::flow::key::{
    ETH_TYPE_IPV4, ETH_TYPE_IPV6, FLOW_NW_FRAG_ANY, FLOW_NW_FRAG_LATER, VLAN_CFI,
};

/// OVS dpif-netdev's default flow limit per PMD (`MAX_FLOWS`).
pub const DEFAULT_MAX_FLOWS: usize = 65536;

/// VLAN VID + CFI bits: the part of the first TCI a simple match matches.
const SIMPLE_TCI_MASK: u16 = 0x1fff;
const FRAG_MASK: u8 = FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER;

/// The fast path's name for a flow: slot index and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowRef {
    index: u32,
    generation: u32,
}

impl FlowRef {
    /// The slot index (stable while the flow lives).
    pub fn index(self) -> u32 {
        self.index
    }
    /// The slot generation this reference was taken at.
    pub fn generation(self) -> u32 {
        self.generation
    }
    /// The reference to slot `index` at `generation` (a cache's stored
    /// reference; like any reference, verified before use).
    pub(crate) fn from_parts(index: u32, generation: u32) -> FlowRef {
        FlowRef { index, generation }
    }
}

/// Per-flow statistics, as `dump-flows` prints them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    pub bytes: u64,
    /// Last time a packet hit the flow (ms); 0 = never.
    pub used_ms: u64,
    /// OR of the TCP flags seen.
    pub tcp_flags: u16,
}

/// One installed megaflow. Its port and rule handle live in its slot
/// (see [`Slot`]); the fields a hit reads and writes come first.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Flow<A> {
    pub actions: A,
    pub stats: FlowStats,
    ufid: u128,
    created_ms: u64,
    in_port: u32,
    simple: bool,
}

impl<A> Flow<A> {
    pub fn ufid(&self) -> u128 {
        self.ufid
    }
    pub fn in_port(&self) -> u32 {
        self.in_port
    }
    /// True when the flow is also in the simple-match table.
    pub fn is_simple(&self) -> bool {
        self.simple
    }
    /// When it was installed (ms).
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }
}

/// What [`FlowTable::remove`] hands back.
#[derive(Clone, Debug)]
pub struct RemovedFlow<A> {
    pub ufid: u128,
    pub key: FlowKey,
    pub mask: FlowKey,
    pub actions: A,
    pub stats: FlowStats,
}

/// Why a flow-table operation failed; each names the flow or the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowTableError {
    /// A flow with this UFID is installed.
    UfidExists { ufid: u128 },
    /// A flow with the same match (mask and masked key) is installed.
    MatchExists { ufid: u128 },
    /// The table holds `limit` flows.
    TableFull { limit: usize },
    /// The port's classifier has `limit` masks and this one is new.
    SubtableLimit { in_port: u32, limit: usize },
    /// No flow has this UFID.
    NoSuchFlow { ufid: u128 },
}

impl std::fmt::Display for FlowTableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowTableError::UfidExists { ufid } => {
                write!(f, "flow table: {} already exists", UfidDisplay(*ufid))
            }
            FlowTableError::MatchExists { ufid } => write!(
                f,
                "flow table: a flow with the same match exists ({})",
                UfidDisplay(*ufid)
            ),
            FlowTableError::TableFull { limit } => {
                write!(f, "flow table: full ({limit} flows)")
            }
            FlowTableError::SubtableLimit { in_port, limit } => write!(
                f,
                "flow table: in_port {in_port} has {limit} masks, the subtable limit; new mask refused"
            ),
            FlowTableError::NoSuchFlow { ufid } => {
                write!(f, "flow table: no flow {}", UfidDisplay(*ufid))
            }
        }
    }
}

impl std::error::Error for FlowTableError {}

/// Prints a UFID as OVS does: `ufid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`
/// (the four 32-bit words of the little-endian `ovs_u128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UfidDisplay(pub u128);

impl std::fmt::Display for UfidDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = |i: u32| (self.0 >> (32 * i)) as u32;
        write!(
            f,
            "ufid:{:08x}-{:04x}-{:04x}-{:04x}-{:04x}{:08x}",
            w(0),
            w(1) >> 16,
            w(1) & 0xffff,
            w(2) >> 16,
            w(2) & 0xffff,
            w(3)
        )
    }
}

/// MurmurHash3 x64_128 (the function behind OVS `hash_bytes128` on 64-bit
/// hosts) of `data` with `seed`; returns `h2 << 64 | h1`, i.e. OVS's
/// `ovs_u128 { lo: h1, hi: h2 }`.
pub fn murmur3_x64_128(data: &[u8], seed: u32) -> u128 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let fmix = murmur3_fmix;
    let mut h1 = u64::from(seed);
    let mut h2 = u64::from(seed);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let k1 = u64::from_le_bytes(block[..8].try_into().expect("8 bytes"));
        let k2 = u64::from_le_bytes(block[8..].try_into().expect("8 bytes"));
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    let mut k1 = 0u64;
    let mut k2 = 0u64;
    for (i, &b) in tail.iter().enumerate() {
        if i < 8 {
            k1 |= u64::from(b) << (8 * i);
        } else {
            k2 |= u64::from(b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        h2 ^= k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (u128::from(h2) << 64) | u128::from(h1)
}

/// The UFID of a flow whose installer gave none.
///
/// OVS (`odp_flow_key_hash`) hashes the flow with `hash_bytes128`
/// (MurmurHash3 x64_128) and marks the result as a version-4 UUID
/// (`uuid_set_bits_v4`); so do we, over a compact encoding of the match
/// rather than every word of key and mask:
///
/// ```text
/// word_map(mask), then for each word i set in it: mask[i], (key & mask)[i]
/// ```
///
/// as little-endian bytes, seed 0. Only the mask's non-zero words are
/// hashed (a 5-tuple megaflow: ~6 of the key's 37 words), which made the
/// UFID ~8x cheaper per new flow than hashing all 74 words.
///
/// - **Stable**: the same match always gets the same UFID, on every PMD,
///   across restarts and versions that keep this encoding; bits of `key`
///   outside the mask and the installer's `in_port` mask (always exact
///   here, as the table stores it) do not change it.
/// - **Unique**: the encoding is injective (the word map says which words
///   follow, so two different matches give different byte strings), so
///   two matches share a UFID only through a collision of the 122 hash
///   bits left after the UUID version/variant bits: ~2^-61 by the birthday
///   bound over 2^30 flows. MurmurHash3 is not collision-resistant
///   against a chosen input, so a crafted collision is possible in
///   principle; the table then refuses the second flow
///   ([`FlowTableError::UfidExists`]) and the PMD executes its actions
///   without installing it, never another flow's.
pub fn ufid_from_match(key: &FlowKey, mask: &FlowKey) -> u128 {
    let mask = normalise_mask(mask);
    ufid_of_normalised(key, &mask)
}

/// [`ufid_from_match`], the same value, for a caller that computes UFID
/// after UFID under a few masks (an upcall handler: a setup burst
/// installs flow after flow under one mask). Each thread remembers the
/// last mask's normalised form and word map ([`MaskMemo`]), so a repeated
/// mask costs a compare instead of a copy and a pass over every word.
pub fn ufid_from_match_memo(key: &FlowKey, mask: &FlowKey) -> u128 {
    thread_local! {
        static LAST_MASK: std::cell::RefCell<MaskMemo> =
            std::cell::RefCell::new(MaskMemo::new());
    }
    LAST_MASK
        .try_with(|memo| {
            let mut memo = memo.borrow_mut();
            memo.remember(mask);
            ufid_of_parts(key, &memo.normalised, memo.map)
        })
        // A thread being torn down computes it the long way.
        .unwrap_or_else(|_| ufid_from_match(key, mask))
}

/// [`ufid_from_match`] for a mask already normalised ([`normalise_mask`]);
/// `key` need not be masked.
fn ufid_of_normalised(key: &FlowKey, mask: &FlowKey) -> u128 {
    ufid_of_parts(key, mask, mask.nonzero_word_map())
}

/// The UFID hash of (normalised) `mask` with its word map `map`.
fn ufid_of_parts(key: &FlowKey, mask: &FlowKey, map: u64) -> u128 {
    let (k, m) = (key.words(), mask.words());
    let mut hasher = Murmur3Words::new(0);
    hasher.write(map);
    let mut bits = map;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        hasher.write(m[i]);
        hasher.write(k[i] & m[i]);
    }
    uuid_set_bits_v4(hasher.finish())
}

/// Marks a 128-bit hash as a random (version 4, RFC 4122 variant) UUID,
/// as OVS's `uuid_set_bits_v4` does on the `ovs_u128`'s 32-bit parts.
fn uuid_set_bits_v4(ufid: u128) -> u128 {
    const VERSION_MASK: u128 = 0xf000 << 32; // parts[1] bits 12..16
    const VERSION_4: u128 = 0x4000 << 32;
    const VARIANT_MASK: u128 = 0xc000_0000 << 64; // parts[2] top two bits
    const VARIANT_RFC4122: u128 = 0x8000_0000 << 64;
    (ufid & !VERSION_MASK & !VARIANT_MASK) | VERSION_4 | VARIANT_RFC4122
}

/// MurmurHash3 x64_128 fed one little-endian `u64` at a time: the same
/// result as [`murmur3_x64_128`] of the words' bytes, without building the
/// byte string.
struct Murmur3Words {
    h1: u64,
    h2: u64,
    /// A first word waiting for its block's second.
    pending: Option<u64>,
    len: u64,
}

impl Murmur3Words {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;

    fn new(seed: u32) -> Self {
        Murmur3Words {
            h1: u64::from(seed),
            h2: u64::from(seed),
            pending: None,
            len: 0,
        }
    }

    #[inline]
    fn write(&mut self, word: u64) {
        self.len += 8;
        let Some(k1) = self.pending.take() else {
            self.pending = Some(word);
            return;
        };
        let (c1, c2) = (Self::C1, Self::C2);
        self.h1 ^= k1.wrapping_mul(c1).rotate_left(31).wrapping_mul(c2);
        self.h1 = self
            .h1
            .rotate_left(27)
            .wrapping_add(self.h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        self.h2 ^= word.wrapping_mul(c2).rotate_left(33).wrapping_mul(c1);
        self.h2 = self
            .h2
            .rotate_left(31)
            .wrapping_add(self.h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }

    fn finish(mut self) -> u128 {
        if let Some(k1) = self.pending {
            // An 8-byte tail: only k1.
            self.h1 ^= k1
                .wrapping_mul(Self::C1)
                .rotate_left(31)
                .wrapping_mul(Self::C2);
        }
        let (mut h1, mut h2) = (self.h1 ^ self.len, self.h2 ^ self.len);
        h1 = h1.wrapping_add(h2);
        h2 = h2.wrapping_add(h1);
        h1 = murmur3_fmix(h1);
        h2 = murmur3_fmix(h2);
        h1 = h1.wrapping_add(h2);
        h2 = h2.wrapping_add(h1);
        (u128::from(h2) << 64) | u128::from(h1)
    }
}

#[inline]
fn murmur3_fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The mask as the table stores it: exact `in_port`, no padding bits.
fn normalise_mask(mask: &FlowKey) -> FlowKey {
    let mut mask = *mask;
    mask.in_port = u32::MAX;
    mask.clear_padding();
    mask
}

#[inline]
fn ufid_hash(ufid: u128) -> u32 {
    let folded = (ufid as u64) ^ ((ufid >> 64) as u64);
    hash_finish(folded as u32, (folded >> 32) as u32)
}

/// The fields a simple-match flow matches, packed into two words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SimpleKey([u64; 2]);

impl std::hash::Hash for SimpleKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
        state.write_u64(self.0[1]);
    }
}

impl SimpleKey {
    fn of_packet(key: &FlowKey) -> SimpleKey {
        Self::new(key, key.nw_frag & FRAG_MASK)
    }
    fn new(key: &FlowKey, nw_frag: u8) -> SimpleKey {
        Self::from_fields(
            key.in_port,
            key.recirc_id,
            key.packet_type,
            key.dl_type,
            key.vlans[0].tci,
            nw_frag,
        )
    }
    #[inline(always)]
    fn from_fields(
        in_port: u32,
        recirc_id: u32,
        packet_type: u32,
        dl_type: u16,
        tci: u16,
        nw_frag: u8,
    ) -> SimpleKey {
        SimpleKey([
            u64::from(in_port) << 32 | u64::from(recirc_id),
            u64::from(packet_type) << 32
                | u64::from(dl_type) << 16
                | u64::from(tci & SIMPLE_TCI_MASK) << 2
                | u64::from(nw_frag),
        ])
    }
}

/// The mask of a simple-match flow without the fragment bits.
const SIMPLE_MASK_WITHOUT_FRAG: FlowKey = {
    let mut m = FlowKey::ZERO;
    m.in_port = u32::MAX;
    m.recirc_id = u32::MAX;
    m.packet_type = u32::MAX;
    m.dl_type = u16::MAX;
    m.vlans[0].tci = SIMPLE_TCI_MASK;
    m
};

/// The mask of a simple-match flow with the fragment bits.
const SIMPLE_MASK_WITH_FRAG: FlowKey = {
    let mut m = SIMPLE_MASK_WITHOUT_FRAG;
    m.nw_frag = FRAG_MASK;
    m
};

/// The two masks a simple-match flow may have: with and without the
/// fragment bits.
fn simple_masks() -> (FlowKey, FlowKey) {
    (SIMPLE_MASK_WITH_FRAG, SIMPLE_MASK_WITHOUT_FRAG)
}

/// The simple key of a flow, or `None` when the flow is not simple.
fn simple_key_of_flow(masked_key: &FlowKey, mask: &FlowKey) -> Option<SimpleKey> {
    // Most megaflows match an address, a protocol or a port: rule them
    // out before comparing whole masks (every new flow passes here).
    if mask.nw_proto != 0
        || mask.tp_dst != 0
        || mask.tp_src != 0
        || mask.nw_src != [0; 4]
        || mask.nw_dst != [0; 4]
        || mask.dl_dst != [0; 6]
        || mask.dl_src != [0; 6]
    {
        return None;
    }
    let (with_frag, without_frag) = simple_masks();
    // A flow that matches only the CFI bit of the first TCI, as 0, says
    // "untagged" (ofproto-lite always matches tag presence, nothing more
    // when no rule looks at VLANs). Extraction leaves the whole TCI 0 on
    // an untagged packet and sets CFI on a tagged one, so for packets this
    // is the same match as VID+CFI = 0: the flow is simple, keyed by TCI 0.
    let widened;
    let mask = if mask.vlans[0].tci == VLAN_CFI && masked_key.vlans[0].tci == 0 {
        let mut m = *mask;
        m.vlans[0].tci = SIMPLE_TCI_MASK;
        widened = m;
        &widened
    } else {
        mask
    };
    if mask.words() == with_frag.words() {
        Some(SimpleKey::new(masked_key, masked_key.nw_frag))
    } else if mask.words() == without_frag.words()
        && !matches!(masked_key.dl_type, ETH_TYPE_IPV4 | ETH_TYPE_IPV6)
    {
        // Extraction leaves nw_frag 0 for non-IP packets, so the packet's
        // simple key carries 0 there too.
        Some(SimpleKey::new(masked_key, 0))
    } else {
        None
    }
}

/// Tunables of a flow table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTableConfig {
    /// Most live flows (OVS `MAX_FLOWS`).
    pub max_flows: usize,
    /// Configuration of each port's classifier.
    pub dpcls: DpclsConfig,
    /// Serve all-simple ports from the simple-match table.
    pub simple_match: bool,
}

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            max_flows: DEFAULT_MAX_FLOWS,
            dpcls: DpclsConfig::default(),
            simple_match: true,
        }
    }
}

/// A flow's place in the table. A hit reads the generation, the port
/// and the rule handle (to confirm a signature-cache candidate), the
/// actions, and writes the statistics: laid out in this order
/// (`repr(C)`, the flow's actions and stats first) and aligned to a
/// cache line, with the datapath's `Arc<[Action]>` actions all of that is
/// the slot's first line, and the UFID and creation time are on the
/// second (`a_hit_reads_one_line_of_its_slot` checks the offsets). A
/// 96-byte slot at any offset touched two or three lines a hit at 100k
/// flows, each a likely cache miss. The price: a slot is 128 bytes (two
/// lines) where it was 96, a third more slot memory (25.6 MB for 200k
/// flows per PMD, was 19.2 MB).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
struct Slot<A> {
    generation: u32,
    /// The flow's `in_port` and its rule in that port's classifier,
    /// meaningful while `flow` is `Some`.
    in_port: u32,
    rule: RuleHandle,
    flow: Option<Flow<A>>,
}

/// An empty, never used slot.
const fn fresh_slot<A>() -> Slot<A> {
    Slot {
        generation: 0,
        in_port: 0,
        rule: RuleHandle {
            subtable: 0,
            pos: 0,
        },
        flow: None,
    }
}

#[derive(Clone, Debug)]
struct PortClassifier {
    dpcls: Dpcls,
    simple_flows: usize,
}

/// The flow table of one PMD thread; see the module documentation.
#[derive(Clone, Debug)]
pub struct FlowTable<A> {
    config: FlowTableConfig,
    slots: Vec<Slot<A>>,
    free: Vec<u32>,
    len: usize,
    by_ufid: HashIndex,
    ports: HashMap<u32, PortClassifier, WordHashBuilder>,
    simple: HashMap<SimpleKey, u32, WordHashBuilder>,
    subtable_limit_hits: u64,
    next_sort_ms: Option<u64>,
    last_mask: MaskMemo,
}

/// The last insert's mask as given, normalised, and the normalised mask's
/// word map. A flow-setup burst installs flow after flow under one mask;
/// normalising it (a copy) and finding its words (a pass over all
/// [`FLOW_U64S`](crate::flow::FLOW_U64S)) is then done once, and each insert masks only the
/// mask's words: ~150 instructions less a new flow (callgrind, DPDK setup
/// bench). Another mask costs one compare more than before.
#[derive(Clone, Debug)]
struct MaskMemo {
    given: FlowKey,
    normalised: FlowKey,
    map: u64,
}

impl MaskMemo {
    fn new() -> MaskMemo {
        let normalised = normalise_mask(&FlowKey::ZERO);
        MaskMemo {
            given: FlowKey::ZERO,
            map: normalised.nonzero_word_map(),
            normalised,
        }
    }

    /// Makes `mask` the remembered one (a whole-key compare when it
    /// already is).
    #[inline]
    fn remember(&mut self, mask: &FlowKey) {
        if self.given.words() != mask.words() {
            self.given = *mask;
            self.normalised = normalise_mask(mask);
            self.map = self.normalised.nonzero_word_map();
        }
    }
}

/// `key & mask` where `map` holds every non-zero word of `mask`, written
/// into `out` (which must be all zero): built in place, not returned,
/// since a returned key was one more 328-byte copy per new flow.
#[inline]
fn mask_on_map_into(key: &FlowKey, mask: &FlowKey, map: u64, out: &mut FlowKey) {
    let (k, m) = (key.words(), mask.words());
    let out = out.words_mut();
    let mut bits = map;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        out[i] = k[i] & m[i];
    }
}

/// Slots a table holds before it grows by [`SLOT_GROWTH`] at a time.
const SMALL_SLOTS: usize = 1024;
/// How much the slot array grows at once past [`SMALL_SLOTS`]: in a
/// flow-setup burst each growth copies every slot (and touches the new
/// pages), so 1024 → 8192 → 65536 copies ~9k slots where doubling
/// copies ~64k. A table's first growth takes [`SMALL_SLOTS`] slots,
/// whatever the flow limit; past them, capacity is never more than this
/// many times the slots in use, nor above the flow limit (unless that is
/// below the live slots). The pages of unused capacity are never touched.
const SLOT_GROWTH: usize = 8;

/// The slot of the live flow with this UFID, by the UFID index.
#[inline]
fn find_in_ufid_index<A>(by_ufid: &HashIndex, slots: &[Slot<A>], ufid: u128) -> Option<u32> {
    by_ufid.find(ufid_hash(ufid), |i| {
        slots[i as usize]
            .flow
            .as_ref()
            .is_some_and(|f| f.ufid == ufid)
    })
}

impl<A> Default for FlowTable<A> {
    fn default() -> Self {
        Self::new(FlowTableConfig::default())
    }
}

impl<A> FlowTable<A> {
    /// An empty table.
    pub fn new(config: FlowTableConfig) -> FlowTable<A> {
        FlowTable {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            by_ufid: HashIndex::new(),
            ports: HashMap::default(),
            simple: HashMap::default(),
            subtable_limit_hits: 0,
            next_sort_ms: None,
            last_mask: MaskMemo::new(),
        }
    }

    pub fn config(&self) -> &FlowTableConfig {
        &self.config
    }

    /// Number of live flows.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts refused because a port's subtable limit was reached.
    pub fn subtable_limit_hits(&self) -> u64 {
        self.subtable_limit_hits
    }

    /// Changes the subtable limit of every port's classifier, present and
    /// future.
    pub fn set_max_subtables(&mut self, max_subtables: usize) {
        self.config.dpcls.max_subtables = max_subtables;
        for port in self.ports.values_mut() {
            port.dpcls.set_max_subtables(max_subtables);
        }
    }

    /// Number of masks (subtables) of `in_port`'s classifier.
    pub fn mask_count(&self, in_port: u32) -> usize {
        self.ports
            .get(&in_port)
            .map_or(0, |p| p.dpcls.subtable_count())
    }

    /// The most subtables any one port's classifier has.
    pub fn max_port_subtables(&self) -> usize {
        self.ports
            .values()
            .map(|p| p.dpcls.subtable_count())
            .max()
            .unwrap_or(0)
    }

    /// Number of masks over all ports.
    pub fn total_mask_count(&self) -> usize {
        self.ports.values().map(|p| p.dpcls.subtable_count()).sum()
    }

    /// The classifier of `in_port`, if it has flows.
    pub fn classifier(&self, in_port: u32) -> Option<&Dpcls> {
        self.ports.get(&in_port).map(|p| &p.dpcls)
    }

    /// Installs a megaflow matching `key & mask` (`mask.in_port` is forced
    /// exact). `ufid: None` generates one with [`ufid_from_match`].
    pub fn insert(
        &mut self,
        key: &FlowKey,
        mask: &FlowKey,
        ufid: Option<u128>,
        actions: A,
        now_ms: u64,
    ) -> Result<FlowRef, FlowTableError> {
        self.last_mask.remember(mask);
        let MaskMemo {
            normalised: mask,
            map,
            ..
        } = &self.last_mask;
        let map = *map;
        let mut masked = FlowKey::ZERO;
        mask_on_map_into(key, mask, map, &mut masked);
        let ufid = ufid.unwrap_or_else(|| ufid_of_parts(&masked, mask, map));
        // A UFID already installed refuses the flow before anything else
        // does, and before anything changes (an insert narrows its
        // subtable's filter for good). The probe of the UFID index is a
        // cache miss in a big table (~7 % of a flow setup), so its bucket
        // is loaded first and probed after the classifier has found the
        // mask's subtable (a mask compare), which hides the miss.
        let ufid_exists = |by_ufid: &HashIndex, slots: &[Slot<A>]| {
            find_in_ufid_index(by_ufid, slots, ufid).is_some()
        };
        self.by_ufid.prefetch(ufid_hash(ufid));
        let full = FlowTableError::TableFull {
            limit: self.config.max_flows,
        };
        let index = match self.free.last() {
            _ if self.len >= self.config.max_flows => None,
            Some(&index) => Some(index),
            None => u32::try_from(self.slots.len())
                .ok()
                .filter(|&i| i != u32::MAX),
        };
        let Some(index) = index else {
            return Err(if ufid_exists(&self.by_ufid, &self.slots) {
                FlowTableError::UfidExists { ufid }
            } else {
                full
            });
        };
        let found = self
            .ports
            .get(&masked.in_port)
            .map(|port| port.dpcls.find_subtable(mask));
        if ufid_exists(&self.by_ufid, &self.slots) {
            return Err(FlowTableError::UfidExists { ufid });
        }
        let dpcls_config = self.config.dpcls;
        let port = self
            .ports
            .entry(masked.in_port)
            .or_insert_with(|| PortClassifier {
                dpcls: Dpcls::new(dpcls_config),
                simple_flows: 0,
            });
        let found = found.unwrap_or_else(|| port.dpcls.find_subtable(mask));
        let inserted = port.dpcls.insert_found(found, &masked, mask, index);
        let rule = match inserted {
            Ok(rule) => rule,
            Err(err) => {
                if port.dpcls.is_empty() {
                    self.ports.remove(&masked.in_port);
                }
                return Err(match err {
                    DpclsError::Duplicate { existing } => FlowTableError::MatchExists {
                        ufid: self.slots[existing as usize]
                            .flow
                            .as_ref()
                            .expect("classifier values are live flows")
                            .ufid,
                    },
                    DpclsError::SubtableLimit { limit } => {
                        self.subtable_limit_hits += 1;
                        FlowTableError::SubtableLimit {
                            in_port: masked.in_port,
                            limit,
                        }
                    }
                });
            }
        };
        let simple_key = simple_key_of_flow(&masked, mask).filter(|k| !self.simple.contains_key(k));
        let simple = simple_key.is_some();
        if let Some(simple_key) = simple_key {
            self.simple.insert(simple_key, index);
            port.simple_flows += 1;
        }
        let flow = Flow {
            ufid,
            in_port: masked.in_port,
            simple,
            created_ms: now_ms,
            actions,
            stats: FlowStats::default(),
        };
        if index as usize == self.slots.len() {
            if self.slots.len() == self.slots.capacity() {
                self.grow_slots();
            }
            self.slots.push(fresh_slot());
        } else {
            self.free.pop();
        }
        let slot = &mut self.slots[index as usize];
        slot.in_port = masked.in_port;
        slot.rule = rule;
        slot.flow = Some(flow);
        self.by_ufid.insert(ufid_hash(ufid), index);
        self.len += 1;
        Ok(FlowRef {
            index,
            generation: self.slots[index as usize].generation,
        })
    }

    /// Makes room for more slots: see [`SLOT_GROWTH`].
    #[cold]
    fn grow_slots(&mut self) {
        let len = self.slots.len();
        let target = if len < SMALL_SLOTS {
            SMALL_SLOTS
        } else {
            (len * SLOT_GROWTH).min(self.config.max_flows.max(len + 1))
        };
        self.slots.reserve_exact(target.max(len + 1) - len);
        // At 100k flows the slots span megabytes: on small pages each
        // hit's slot read would also miss the TLB (see `dpcls::large`).
        crate::dpcls::large::advise_huge_pages(
            self.slots.as_ptr().cast(),
            self.slots.capacity() * size_of::<Slot<A>>(),
        );
    }

    /// The live flow with this UFID.
    pub fn find_ufid(&self, ufid: u128) -> Option<FlowRef> {
        let index = find_in_ufid_index(&self.by_ufid, &self.slots, ufid)?;
        Some(self.live_ref(index))
    }

    /// The live flow with exactly this match (`mask.in_port` forced exact).
    pub fn find_match(&self, key: &FlowKey, mask: &FlowKey) -> Option<FlowRef> {
        let mask = normalise_mask(mask);
        let port = self.ports.get(&key.in_port)?;
        let (_, index) = port.dpcls.find_exact(key, &mask)?;
        Some(self.live_ref(index))
    }

    #[inline]
    fn live_ref(&self, index: u32) -> FlowRef {
        FlowRef {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// The flow `flow` names, if it is still installed.
    #[inline]
    pub fn get(&self, flow: FlowRef) -> Option<&Flow<A>> {
        let slot = self.slots.get(flow.index as usize)?;
        if slot.generation != flow.generation {
            return None;
        }
        slot.flow.as_ref()
    }

    /// Mutable access to a live flow (actions, stats).
    #[inline]
    pub fn get_mut(&mut self, flow: FlowRef) -> Option<&mut Flow<A>> {
        let slot = self.slots.get_mut(flow.index as usize)?;
        if slot.generation != flow.generation {
            return None;
        }
        slot.flow.as_mut()
    }

    /// True when `flow` names an installed flow.
    #[inline]
    pub fn is_live(&self, flow: FlowRef) -> bool {
        self.get(flow).is_some()
    }

    /// The flow's match as (masked key, mask).
    pub fn flow_match(&self, flow: FlowRef) -> Option<(FlowKey, FlowKey)> {
        self.get(flow)?;
        let slot = &self.slots[flow.index as usize];
        self.ports.get(&slot.in_port)?.dpcls.rule_match(slot.rule)
    }

    /// The live flow at slot `index` if `key` matches it (the SMC's check:
    /// a signature hit is only a hint).
    #[inline]
    pub fn matching_flow_at(&self, index: u32, key: &FlowKey) -> Option<FlowRef> {
        let slot = self.slots.get(index as usize)?;
        slot.flow.as_ref()?;
        if slot.in_port != key.in_port {
            return None;
        }
        let port = self.ports.get(&slot.in_port)?;
        port.dpcls.rule_matches(slot.rule, key).then_some(FlowRef {
            index,
            generation: slot.generation,
        })
    }

    /// Starts loading slot `index` (a hint: any index is safe), the
    /// first step of confirming a signature-cache candidate.
    #[inline(always)]
    pub fn prefetch_slot(&self, index: u32) {
        // One line: everything a hit reads is on the slot's first (see
        // `Slot`).
        prefetch_addr(self.slots.as_ptr().wrapping_add(index as usize));
    }

    /// [`FlowTable::matching_flow_at`] for each packet `i` of `todo`
    /// (`keys[i]` against the flow at slot `slots[i]`, whose slot the
    /// caller prefetched), writing `out[i]` for each match; returns the
    /// packets that matched. Two passes, so that the rules' cache misses
    /// overlap: read each flow and prefetch its rule, then confirm. The
    /// candidates of the first candidate's port (all of them, for a
    /// received batch) share one port lookup; others take
    /// [`FlowTable::matching_flow_at`].
    pub fn matching_flows_at(
        &self,
        keys: &[FlowKey],
        slots: &[u32; crate::packet::MAX_BURST],
        todo: u32,
        out: &mut [Option<FlowRef>; crate::packet::MAX_BURST],
    ) -> u32 {
        const N: usize = crate::packet::MAX_BURST;
        let mut port: Option<(u32, &Dpcls)> = None;
        let mut rules = [RuleHandle {
            subtable: 0,
            pos: 0,
        }; N];
        let mut generations = [0u32; N];
        let (mut fast, mut slow) = (0u32, 0u32);
        let mut bits = todo;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (N - 1);
            bits &= bits - 1;
            let Some(slot) = self.slots.get(slots[i] as usize) else {
                continue;
            };
            let (Some(_), Some(key)) = (slot.flow.as_ref(), keys.get(i)) else {
                continue;
            };
            if slot.in_port != key.in_port {
                continue;
            }
            let dpcls = match port {
                Some((p, dpcls)) if p == slot.in_port => dpcls,
                Some(_) => {
                    slow |= 1 << i;
                    continue;
                }
                None => match self.ports.get(&slot.in_port) {
                    Some(p) => {
                        port = Some((slot.in_port, &p.dpcls));
                        &p.dpcls
                    }
                    None => continue,
                },
            };
            dpcls.prefetch_rule(slot.rule);
            rules[i] = slot.rule;
            generations[i] = slot.generation;
            fast |= 1 << i;
        }
        let mut matched = 0u32;
        if let Some((_, dpcls)) = port {
            let mut bits = fast;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize & (N - 1);
                bits &= bits - 1;
                if dpcls.rule_matches(rules[i], &keys[i]) {
                    out[i] = Some(FlowRef {
                        index: slots[i],
                        generation: generations[i],
                    });
                    matched |= 1 << i;
                }
            }
        }
        let mut bits = slow;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize & (N - 1);
            bits &= bits - 1;
            if let Some(flow) = self.matching_flow_at(slots[i], &keys[i]) {
                out[i] = Some(flow);
                matched |= 1 << i;
            }
        }
        matched
    }

    /// Replaces a flow's actions, keeping (or, with `zero_stats`, clearing)
    /// its statistics; returns the old actions. Cached references stay
    /// valid: the match did not change.
    pub fn modify_actions(
        &mut self,
        ufid: u128,
        actions: A,
        zero_stats: bool,
    ) -> Result<A, FlowTableError> {
        let flow_ref = self
            .find_ufid(ufid)
            .ok_or(FlowTableError::NoSuchFlow { ufid })?;
        let flow = self.get_mut(flow_ref).expect("found flow is live");
        if zero_stats {
            flow.stats = FlowStats::default();
        }
        Ok(std::mem::replace(&mut flow.actions, actions))
    }

    /// Deletes the flow with this UFID. Every `FlowRef` to it dies now.
    pub fn remove(&mut self, ufid: u128) -> Result<RemovedFlow<A>, FlowTableError> {
        let flow_ref = self
            .find_ufid(ufid)
            .ok_or(FlowTableError::NoSuchFlow { ufid })?;
        Ok(self.remove_ref(flow_ref).expect("found flow is live"))
    }

    /// Deletes the flow `flow_ref` names, if live.
    pub fn remove_ref(&mut self, flow_ref: FlowRef) -> Option<RemovedFlow<A>> {
        self.get(flow_ref)?;
        let index = flow_ref.index;
        let slot = &mut self.slots[index as usize];
        let flow = slot.flow.take().expect("checked live");
        let rule = slot.rule;
        slot.generation = slot.generation.wrapping_add(1);
        // A slot whose generation wrapped is retired, never reused: an old
        // FlowRef with generation 0 must not see a new flow.
        if slot.generation != u32::MAX {
            self.free.push(index);
        }
        let removed = self.by_ufid.remove(ufid_hash(flow.ufid), index);
        debug_assert!(removed, "live flow is in the UFID index");
        let port = self
            .ports
            .get_mut(&flow.in_port)
            .expect("live flow has a classifier");
        let (key, mask) = port.dpcls.rule_match(rule).expect("live flow has a rule");
        port.dpcls.remove(rule);
        if flow.simple {
            let simple_key = simple_key_of_flow(&key, &mask).expect("simple flow has a key");
            self.simple.remove(&simple_key);
            port.simple_flows -= 1;
        }
        if port.dpcls.is_empty() {
            self.ports.remove(&flow.in_port);
        }
        self.len -= 1;
        Some(RemovedFlow {
            ufid: flow.ufid,
            key,
            mask,
            actions: flow.actions,
            stats: flow.stats,
        })
    }

    /// Deletes every flow (`dpctl/del-flows`).
    pub fn clear(&mut self) {
        let refs: Vec<FlowRef> = self.iter().map(|(r, _)| r).collect();
        for r in refs {
            self.remove_ref(r);
        }
    }

    /// Every live flow, in slot order (for dumps).
    pub fn iter(&self) -> impl Iterator<Item = (FlowRef, &Flow<A>)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, slot)| {
            slot.flow.as_ref().map(|f| {
                (
                    FlowRef {
                        index: i as u32,
                        generation: slot.generation,
                    },
                    f,
                )
            })
        })
    }

    /// Credits `packets` packets of `bytes` bytes to a flow.
    #[inline]
    pub fn record_use(
        &mut self,
        flow: FlowRef,
        packets: u64,
        bytes: u64,
        tcp_flags: u16,
        now_ms: u64,
    ) {
        if let Some(f) = self.get_mut(flow) {
            f.stats.packets += packets;
            f.stats.bytes += bytes;
            f.stats.tcp_flags |= tcp_flags;
            f.stats.used_ms = f.stats.used_ms.max(now_ms);
        }
    }

    /// True when `in_port`'s packets can be served by the simple-match
    /// table: the feature is on and every flow of the port is simple.
    #[inline]
    pub fn simple_match_enabled(&self, in_port: u32) -> bool {
        self.config.simple_match
            && self
                .ports
                .get(&in_port)
                .is_some_and(|p| p.simple_flows > 0 && p.simple_flows == p.dpcls.len())
    }

    /// The simple-match flow `key` hits, if any.
    #[inline]
    pub fn simple_lookup(&self, key: &FlowKey) -> Option<FlowRef> {
        let &index = self.simple.get(&SimpleKey::of_packet(key))?;
        Some(self.live_ref(index))
    }

    /// The simple-match key of a packet received on `in_port` whose
    /// simple fields were read without its key ([`crate::flow::simple`]):
    /// the key its extracted key would give. Packets with equal keys get
    /// the same [`FlowTable::simple_lookup_key`] answer.
    #[inline]
    pub(crate) fn simple_key_of_fields(
        in_port: u32,
        meta: &crate::packet::PacketMetadata,
        fields: &crate::flow::simple::SimpleFields,
    ) -> SimpleKey {
        SimpleKey::from_fields(
            in_port,
            meta.recirc_id,
            meta.packet_type.0,
            fields.dl_type,
            fields.tci,
            fields.nw_frag & FRAG_MASK,
        )
    }

    /// [`FlowTable::simple_lookup`] by simple-match key
    /// ([`FlowTable::simple_key_of_fields`]).
    #[inline]
    pub(crate) fn simple_lookup_key(&self, key: &SimpleKey) -> Option<FlowRef> {
        let &index = self.simple.get(key)?;
        Some(self.live_ref(index))
    }

    /// [`FlowTable::classify_batch`] of a run of `n` packets on `in_port`
    /// that all carry `key`, probed once: the slot index of their flow
    /// and its subtable's rank ([`Dpcls::lookup_run`]).
    #[inline]
    pub fn classify_run(&mut self, in_port: u32, key: &FlowKey, n: u32) -> Option<(u32, u32)> {
        self.ports.get_mut(&in_port)?.dpcls.lookup_run(key, n)
    }

    /// Looks up a batch of misses of one port in its classifier; `out[i]`
    /// gets the slot index of each hit. See [`Dpcls::lookup_batch`].
    #[inline]
    pub fn classify_batch(
        &mut self,
        in_port: u32,
        keys: &[FlowKey],
        active: u32,
        out: &mut [u32; crate::packet::MAX_BURST],
    ) -> crate::dpcls::BatchLookup {
        match self.ports.get_mut(&in_port) {
            Some(port) => port.dpcls.lookup_batch(keys, active, out),
            None => crate::dpcls::BatchLookup::default(),
        }
    }

    /// The reference to the live flow at slot `index` (a classifier value).
    #[inline]
    pub fn flow_at(&self, index: u32) -> FlowRef {
        self.live_ref(index)
    }

    /// Re-ranks each port's subtables when its interval elapsed.
    ///
    /// One deadline for the whole table, so the per-batch check costs one
    /// compare however many ports there are; the first call starts the
    /// clock. True when it sorted.
    pub fn maybe_sort(&mut self, now_ms: u64) -> bool {
        let interval = self.config.dpcls.sort_interval_ms;
        match self.next_sort_ms {
            Some(deadline) if now_ms < deadline => false,
            None => {
                self.next_sort_ms = Some(now_ms.saturating_add(interval));
                false
            }
            Some(_) => {
                for port in self.ports.values_mut() {
                    port.dpcls.sort();
                }
                self.next_sort_ms = Some(now_ms.saturating_add(interval));
                true
            }
        }
    }

    /// Heap bytes held by the table (slots, indexes, classifiers).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot<A>>()
            + self.free.capacity() * 4
            + self.by_ufid.heap_bytes()
            + self
                .ports
                .values()
                .map(|p| p.dpcls.heap_bytes())
                .sum::<usize>()
            + self.ports.capacity() * (size_of::<PortClassifier>() + 5)
            + self.simple.capacity() * (size_of::<(SimpleKey, u32)>() + 1)
    }
}

#[cfg(test)]
mod tests;
