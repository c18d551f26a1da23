//! Runs of packets with the same flow key: a batch's keys extracted with
//! a few word compares for each packet whose headers are those of the
//! packet before it.
//!
//! # Why
//! A busy flow (one 5-tuple at line rate; a TCP burst) brings batches of
//! consecutive packets of one flow. Their keys, word maps and 5-tuple
//! hashes are the same, yet each packet paid a whole extraction and hash
//! (~190 instructions for a plain UDP frame: DPDK bench `1flow`).
//!
//! # How
//! [`prepare_runs`] extracts each packet as
//! [`extract_reusing`](super::extract::extract_reusing) does. When that
//! took the fixed-offset fast path (a plain Ethernet + IPv4 + UDP/TCP
//! frame on its first pass), it keeps the frame's first [`HEAD_BYTES`]
//! bytes as six words, with the bytes the key does not depend on masked
//! out (the IP identification and checksum, the UDP length or TCP
//! sequence number, the payload), and the frame's length and `in_port`.
//! The next packet whose masked words, length and `in_port` are the same,
//! and which is on its first pass, takes the fast path with the same
//! result: every byte and length that path reads is compared. So its
//! key is the previous slot's words copied, its map and header offsets
//! the previous ones, and its hash the previous one (or its own NIC
//! hash, as extraction would keep it).
//!
//! The packets after a fast-path packet are compared in a loop of their
//! own (`scan_run`) until one differs: the run's bits are set as one
//! span, and the loop carries nothing but the index and the last hash
//! (DPDK bench `1flow`, callgrind: 418.8 -> 397.2 instructions a packet
//! in `Pmd::poll_once`; `100k` 709.3 -> 691.7), and whether a copy's hash
//! differs from the one before (an own NIC hash) is one AND a packet, the
//! bits found afterwards only when one does (397.2 -> 390.6).
//!
//! Mixed traffic (100k flows) would pay the compares for nothing: after
//! [`TRIES`] misses in a row a batch stops looking for runs.
//!
//! # Invariants
//! - Every slot ends exactly as [`extract_reusing`] would leave it, with
//!   the same map, header offsets, packet metadata and hash
//!   (property-tested against a fresh extraction over sequences with
//!   repeated and near-equal frames).
//! - Bit `i` of the returned run mask is set only when key, map and hash
//!   `i` equal those of `i - 1`.
//!
//! [`extract_reusing`]: super::extract::extract_reusing

use super::extract::{PLAIN_WORDS, extract_reusing_fast, is_first_pass, zero_words};
use super::hash::{hash_finish, packet_rss_hash};
use super::key::{FlowKey, IPPROTO_TCP};
use crate::packet::{HeaderOffsets, MAX_BURST, PacketBatch, PacketMetadata};

/// How many leading frame bytes the fast path's key depends on: through
/// the TCP flags of a 20-byte IPv4 header (bytes 46 and 47).
pub const HEAD_BYTES: usize = 48;

/// Misses in a row after which a batch stops comparing (2 rather than
/// 3: DPDK bench `100k`, callgrind, 652.2 -> 649.8 instructions a packet,
/// `1flow` unchanged).
const TRIES: u32 = 2;

/// Masks of the six head words (little-endian loads: byte `j` of a word
/// at bits `8 * j`). Word 2: IP identification (bytes 18, 19) out. Word
/// 3: IP checksum (24, 25) out. Word 4: the UDP length or TCP sequence
/// number's first half (38, 39) out. Word 5 (40..48) is all payload for
/// UDP; for TCP its bytes 46 and 47 (data offset and flags) are in.
const MASKS: [u64; 5] = [
    u64::MAX,
    u64::MAX,
    !(0xffff << 16),
    !0xffff,
    0x0000_ffff_ffff_ffff,
];
const TCP_TAIL_MASK: u64 = 0xffff << 48;

/// The head word `i` of `head`, loaded little-endian whatever the
/// target, so that the masks name bytes.
#[inline(always)]
fn word(head: &[u8; HEAD_BYTES], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&head[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// The masked head words of `frame`, the last one under `tail_mask`;
/// `None` when the frame is shorter than [`HEAD_BYTES`].
#[inline(always)]
fn head_words(frame: &[u8], tail_mask: u64) -> Option<[u64; 6]> {
    let head: &[u8; HEAD_BYTES] = frame.get(..HEAD_BYTES)?.try_into().ok()?;
    Some([
        word(head, 0) & MASKS[0],
        word(head, 1) & MASKS[1],
        word(head, 2) & MASKS[2],
        word(head, 3) & MASKS[3],
        word(head, 4) & MASKS[4],
        word(head, 5) & tail_mask,
    ])
}

/// Whether `frame` has `last`'s length and masked head: one OR of the
/// masked differences, no branch per word. The ports' and addresses'
/// words come first, as they differ most often between flows.
#[inline(always)]
fn same_head(frame: &[u8], last: &Last) -> bool {
    let Some(head) = frame.first_chunk::<HEAD_BYTES>() else {
        return false;
    };
    let h = &last.head;
    let diff = ((word(head, 4) ^ h[4]) & MASKS[4])
        | ((word(head, 3) ^ h[3]) & MASKS[3])
        | (word(head, 0) ^ h[0])
        | (word(head, 1) ^ h[1])
        | ((word(head, 2) ^ h[2]) & MASKS[2])
        | ((word(head, 5) ^ h[5]) & last.tail_mask);
    diff == 0 && frame.len() == last.len
}

/// The last fast-path packet of the batch, as the next one is compared
/// with it.
#[derive(Clone, Copy)]
struct Last {
    head: [u64; 6],
    tail_mask: u64,
    len: usize,
    in_port: u32,
    /// The 5-tuple hash its extraction computed; `None` when it came with
    /// a NIC hash (a packet without one then extracts in full).
    hash: Option<u32>,
    offsets: HeaderOffsets,
}

/// Whether `meta` (on its first pass, `in_port` checked) lets a packet
/// take `last`'s result; the hash it gets if so (stored in `meta` as
/// extraction would store it).
#[inline(always)]
fn take_hash(last: &Last, meta: &mut PacketMetadata) -> Option<u32> {
    let hash = adopt_hash(last, meta)?;
    // As `packet_rss_hash`.
    Some(if meta.recirc_depth > 0 {
        hash_finish(hash, u32::from(meta.recirc_depth))
    } else {
        hash
    })
}

/// Extracts the key, word map and hash of every packet of `batch` into
/// the reused slots `keys`, `maps` and `hashes` (the contract of
/// [`crate::cascade::prepare_batch_mapped`]), a packet with the previous
/// one's headers by copying (see the module docs). Returns the number of
/// packets and the run mask: bit `i` set when packet `i`'s key, map and
/// hash are packet `i - 1`'s.
#[inline]
pub fn prepare_runs(
    batch: &mut PacketBatch,
    keys: &mut [FlowKey; MAX_BURST],
    maps: &mut [u64; MAX_BURST],
    hashes: &mut [u32; MAX_BURST],
) -> (usize, u32) {
    let runs = prepare_runs_deferred(batch, keys, maps, hashes);
    materialise(keys, maps, runs.copies);
    (runs.n, runs.runs)
}

/// What [`prepare_runs_deferred`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runs {
    /// Packets in the batch.
    pub n: usize,
    /// Bit `i` set when packet `i`'s key, map and hash are packet
    /// `i - 1`'s (the run mask of [`prepare_runs`]).
    pub runs: u32,
    /// Bit `i` set when packet `i`'s key and map are packet `i - 1`'s
    /// (its hash may be its own NIC hash): the slots
    /// [`prepare_runs_deferred`] left for [`materialise`] to copy. A
    /// superset of `runs`.
    pub copies: u32,
}

impl Runs {
    /// Every packet after the first is a run of the one before it (and
    /// there are at least two): the whole batch has the first packet's
    /// key, map and hash, and the first packet's length (a run packet's
    /// frame length is compared).
    #[inline]
    pub fn is_whole(&self) -> bool {
        self.n >= 2 && self.runs == whole_mask(self.n)
    }
}

/// The run mask of a batch of `n >= 2` packets that is one run: bits 1
/// to `n - 1`.
#[inline]
fn whole_mask(n: usize) -> u32 {
    debug_assert!((2..=MAX_BURST).contains(&n));
    (u32::MAX >> (32 - n)) & !1
}

/// [`prepare_runs`] without the copies: a packet with the previous one's
/// headers gets its hash (and its metadata, as extraction would write
/// it), but its key and map slots are left as they were, and its bit set
/// in [`Runs::copies`]. [`materialise`] then makes the slots what
/// [`prepare_runs`] would have left; until then they hold an older key
/// with its own map, so the slot contract (a map names every non-zero
/// word of its key) still holds, and nothing may read them as this
/// batch's keys.
///
/// Why: a batch that is one run and hits stage 1 needs only the first
/// packet's key (the PMD's whole-run path), so the 7-word copy and the
/// map update of every other packet were for nothing (callgrind, DPDK
/// bench `1flow`: see the PMD's `uniform`).
#[inline]
pub fn prepare_runs_deferred(
    batch: &mut PacketBatch,
    keys: &mut [FlowKey; MAX_BURST],
    maps: &mut [u64; MAX_BURST],
    hashes: &mut [u32; MAX_BURST],
) -> Runs {
    let n = batch.len();
    // `differ`: copies whose hash is not the packet before's (an own NIC
    // hash); the run mask is the copies without them.
    let (mut copies, mut differ) = (0u32, 0u32);
    let mut tries = TRIES;
    let mut i = 0;
    while i < n {
        let Some(packet) = batch.get_mut(i) else {
            break;
        };
        let had_hash = packet.meta().rss_hash_valid;
        let (map, fast) = extract_reusing_fast(packet, &mut keys[i], maps[i]);
        maps[i] = map;
        let hash = packet_rss_hash(packet, &keys[i]);
        hashes[i] = hash;
        if !fast || tries == 0 {
            i += 1;
            continue;
        }
        // A TCP frame's data offset decides whether its key has TCP
        // fields at all: compared whenever the protocol is TCP.
        let tail_mask = if keys[i].nw_proto == IPPROTO_TCP {
            TCP_TAIL_MASK
        } else {
            0
        };
        let frame = packet.data();
        let Some(head) = head_words(frame, tail_mask) else {
            i += 1;
            continue;
        };
        let meta = packet.meta();
        let last = Last {
            head,
            tail_mask,
            len: frame.len(),
            in_port: meta.in_port,
            hash: (!had_hash).then_some(meta.rss_hash),
            offsets: meta.offsets,
        };
        // The packets after it with its headers: one tight loop.
        let start = i + 1;
        let (end, run_differ) = scan_run(batch, start, &last, hashes, hash);
        copies |= span_mask(start, end);
        differ |= run_differ;
        if end > start {
            tries = TRIES;
        }
        if end < n {
            // Packet `end` was compared and is not a copy: a miss.
            tries -= 1;
        }
        i = end;
    }
    Runs {
        n,
        runs: copies & !differ,
        copies,
    }
}

/// Bits `start` to `end - 1` (none when `end <= start`; `end <= 32`).
#[inline(always)]
fn span_mask(start: usize, end: usize) -> u32 {
    if end <= start {
        return 0;
    }
    let below_end = if end >= 32 {
        u32::MAX
    } else {
        (1u32 << end) - 1
    };
    below_end & !((1u32 << start) - 1)
}

/// From packet `from` on, the packets with `last`'s headers (see
/// [`same_head`]), `in_port` and first pass get their hash (in `hashes`
/// and, as extraction writes it, in their metadata) and header offsets;
/// returns the index of the first packet that is not such a copy (or the
/// batch length) and the copies whose hash differs from the packet
/// before's (`prev_hash`: that of packet `from - 1`).
#[inline(always)]
fn scan_run(
    batch: &mut PacketBatch,
    from: usize,
    last: &Last,
    hashes: &mut [u32; MAX_BURST],
    prev_hash: u32,
) -> (usize, u32) {
    let n = batch.len().min(MAX_BURST);
    // Whether every copy's hash is the packet before's (no own NIC hash
    // that differs): one AND a packet, where the copy bit of each one
    // that differs cost ~10 instructions; the bits are found afterwards
    // in the rare case that one does.
    let mut all_same = true;
    let mut prev = prev_hash;
    let mut i = from;
    while i < n {
        let Some(packet) = batch.get_mut(i) else {
            break;
        };
        let (frame, meta, fresh) = packet.data_and_meta_fresh();
        if !same_head(frame, last) || meta.in_port != last.in_port {
            break;
        }
        // A fresh packet is on its first pass with no recirculation
        // depth: no field-by-field test.
        let hash = if fresh {
            take_hash_fresh(last, meta)
        } else if is_first_pass(meta) {
            take_hash(last, meta)
        } else {
            None
        };
        let Some(hash) = hash else {
            break;
        };
        hashes[i] = hash;
        all_same &= hash == prev;
        prev = hash;
        i += 1;
    }
    let differ = if all_same {
        0
    } else {
        differing(hashes, from, i, prev_hash)
    };
    (i, differ)
}

/// Bits `from` to `end - 1` of the slots whose hash differs from the
/// slot before's (`before`: the hash before slot `from`).
#[cold]
#[inline(never)]
fn differing(hashes: &[u32; MAX_BURST], from: usize, end: usize, before: u32) -> u32 {
    let mut differ = 0u32;
    let mut prev = before;
    for (i, &hash) in hashes.iter().enumerate().take(end).skip(from) {
        if hash != prev {
            differ |= 1 << i;
        }
        prev = hash;
    }
    differ
}

/// [`take_hash`] for a fresh packet (see `Packet::is_fresh`), whose
/// recirculation depth is 0.
#[inline(always)]
fn take_hash_fresh(last: &Last, meta: &mut PacketMetadata) -> Option<u32> {
    debug_assert_eq!(meta.recirc_depth, 0, "a fresh packet's depth");
    adopt_hash(last, meta)
}

/// The packet's own NIC hash, or else `last`'s 5-tuple hash stored in
/// `meta` as extraction would store it (`None`: `last` has none), with
/// `last`'s offsets; before any recirculation-depth mixing.
#[inline(always)]
fn adopt_hash(last: &Last, meta: &mut PacketMetadata) -> Option<u32> {
    let hash = if meta.rss_hash_valid {
        meta.rss_hash
    } else {
        let hash = last.hash?;
        meta.rss_hash = hash;
        meta.rss_hash_valid = true;
        hash
    };
    meta.offsets = last.offsets;
    Some(hash)
}

/// Copies the key and map of each slot named in `copies` (from
/// [`prepare_runs_deferred`]) from the slot before it, in order (a copy
/// may follow a copy): afterwards the slots are what [`prepare_runs`]
/// leaves.
#[inline]
pub fn materialise(keys: &mut [FlowKey; MAX_BURST], maps: &mut [u64; MAX_BURST], copies: u32) {
    debug_assert_eq!(copies & 1, 0, "slot 0 copies from nothing");
    let mut bits = copies & !1;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let (before, after) = keys.split_at_mut(i);
        let (prev, key) = (&before[i - 1], &mut after[0]);
        let (prev_w, w) = (prev.words(), key.words_mut());
        // The previous key is zero outside its map, so the words of
        // PLAIN_WORDS it does not have are copied as zeros.
        for j in PLAIN_WORDS {
            w[j] = prev_w[j];
        }
        let map = maps[i - 1];
        let stale = maps[i] & !map;
        if stale != 0 {
            zero_words(key, stale);
        }
        maps[i] = map;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::extract::extract_mapped;
    use crate::flow::key::{ETH_TYPE_IPV4, ETH_TYPE_IPV6, IPPROTO_ICMP, IPPROTO_UDP};
    use crate::packet::{Packet, PacketPool, PoolConfig};
    use proptest::prelude::*;

    /// An Ethernet + IPv4 frame of `proto` with `l4` as its payload, the
    /// IP total length `l4`'s, padded with `pad` bytes of Ethernet
    /// padding.
    fn ipv4(proto: u8, l4: &[u8], pad: usize) -> Vec<u8> {
        let mut f = vec![
            0, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0x66, 0x77, 0x88, 0x99, 0xaa,
        ];
        f.extend_from_slice(&ETH_TYPE_IPV4.to_be_bytes());
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[0x45, 0x10]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0xab, 0xcd]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(l4);
        f.extend(std::iter::repeat_n(0xee, pad));
        f
    }

    /// Frames of the fast path's shapes (UDP, TCP with and without
    /// options, a short one, a cut UDP header) and others (ICMP, IPv6).
    fn templates() -> Vec<Vec<u8>> {
        let mut udp = vec![0x04, 0x00, 0x00, 0x35, 0, 30, 0, 0];
        udp.extend(0..22u8);
        let tcp = |data_offset: u8, flags: u8, len: usize| {
            let mut t = vec![0, 80, 0x1f, 0x90, 1, 2, 3, 4, 5, 6, 7, 8];
            t.extend_from_slice(&[data_offset << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
            t.resize(len, 0x5a);
            t
        };
        let mut v6 = vec![
            0, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0x66, 0x77, 0x88, 0x99, 0xaa,
        ];
        v6.extend_from_slice(&ETH_TYPE_IPV6.to_be_bytes());
        v6.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, IPPROTO_UDP, 64]);
        v6.extend([0xfe; 32]);
        v6.extend_from_slice(&[0x04, 0x00, 0x00, 0x35, 0, 8, 0, 0]);
        vec![
            ipv4(IPPROTO_UDP, &udp, 0),
            ipv4(IPPROTO_UDP, &udp[..8], 4),
            ipv4(IPPROTO_TCP, &tcp(5, 0x10, 26), 0),
            ipv4(IPPROTO_TCP, &tcp(6, 0x18, 30), 2),
            ipv4(IPPROTO_UDP, &udp[..6], 30),
            ipv4(IPPROTO_ICMP, &[8, 0, 0, 0, 0, 1, 0, 1], 20),
            v6,
        ]
    }

    /// How a frame of the sequence comes from the one before it.
    #[derive(Clone, Debug)]
    enum Next {
        /// A template, with one byte flipped.
        New(usize, usize, u8),
        /// The previous frame again.
        Same,
        /// The previous frame with byte `.0` (of the first 64) changed.
        OneByte(usize, u8),
        /// The previous frame one byte longer or shorter.
        Length(bool),
    }

    /// The packet's metadata: fresh with its port (and a NIC hash), or
    /// written through `meta_mut` (first pass or not).
    #[derive(Clone, Debug)]
    enum Meta {
        Fresh {
            port: u32,
            nic: Option<u32>,
        },
        Written {
            port: u32,
            recirc: u32,
            depth: u8,
            mark: u32,
        },
    }

    fn next() -> impl Strategy<Value = Next> {
        prop_oneof![
            2 => (0usize..7, any::<usize>(), any::<u8>()).prop_map(|(t, at, b)| Next::New(t, at, b)),
            4 => Just(Next::Same),
            3 => (0usize..64, 1u8..=255).prop_map(|(at, x)| Next::OneByte(at, x)),
            1 => any::<bool>().prop_map(Next::Length),
        ]
    }

    fn meta() -> impl Strategy<Value = Meta> {
        prop_oneof![
            4 => (0u32..3, prop::option::of(any::<u32>()))
                .prop_map(|(port, nic)| Meta::Fresh { port, nic }),
            1 => (0u32..3, prop_oneof![Just(0u32), any::<u32>()], 0u8..3, prop_oneof![Just(0u32), 1u32..9])
                .prop_map(|(port, recirc, depth, mark)| Meta::Written { port, recirc, depth, mark }),
        ]
    }

    fn frames(seq: &[Next]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for step in seq {
            let prev = out.last().cloned();
            let frame = match (step, prev) {
                (Next::New(..), _) | (_, None) => {
                    let (t, at, b) = match step {
                        Next::New(t, at, b) => (*t, *at, *b),
                        _ => (0, 0, 0),
                    };
                    let mut f = templates().swap_remove(t);
                    let at = at % f.len();
                    // Any byte: a key byte or not, a plain frame or not.
                    f[at] ^= b;
                    f
                }
                (Next::Same, Some(p)) => p,
                (Next::OneByte(at, x), Some(mut p)) => {
                    let at = at % p.len();
                    p[at] ^= x;
                    p
                }
                (Next::Length(longer), Some(mut p)) => {
                    if *longer {
                        p.push(0xee);
                    } else {
                        p.pop();
                    }
                    p
                }
            };
            out.push(frame);
        }
        out
    }

    fn packet(pool: &PacketPool, frame: &[u8], meta: &Meta) -> Packet {
        let mut p = pool.alloc_from(frame).expect("pool room");
        match *meta {
            Meta::Fresh { port, nic } => {
                p.set_in_port(port);
                if let Some(h) = nic {
                    p.set_rss_hash(h);
                }
                assert!(p.is_fresh());
            }
            Meta::Written {
                port,
                recirc,
                depth,
                mark,
            } => {
                let m = p.meta_mut();
                m.in_port = port;
                m.recirc_id = recirc;
                m.recirc_depth = depth;
                m.pkt_mark = mark;
                assert!(!p.is_fresh());
            }
        }
        p
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Batches of frames repeated, changed in one byte of their
        /// first 64 (key bytes and others), lengthened and cut, with
        /// fresh and written metadata, through `prepare_runs` into slots
        /// reused from batch to batch: every slot holds exactly what a
        /// fresh extraction gives (key, map, header offsets, metadata,
        /// hash), and the run mask names only packets equal to the one
        /// before.
        #[test]
        fn runs_equal_a_fresh_extraction(
            batches in prop::collection::vec(
                prop::collection::vec((next(), meta()), 1..=MAX_BURST),
                1..4,
            ),
        ) {
            use crate::flow::hash::packet_rss_hash;
            let pool = PacketPool::new("same-runs", PoolConfig::heap(2 * MAX_BURST));
            let mut keys = [FlowKey::ZERO; MAX_BURST];
            let mut maps = [0u64; MAX_BURST];
            let mut hashes = [0u32; MAX_BURST];
            for steps in batches {
                let seq: Vec<Next> = steps.iter().map(|(n, _)| n.clone()).collect();
                let frames = frames(&seq);
                let mut batch = PacketBatch::new();
                let mut fresh = Vec::new();
                for (frame, (_, meta)) in frames.iter().zip(&steps) {
                    batch.push(packet(&pool, frame, meta)).expect("room");
                    fresh.push(packet(&pool, frame, meta));
                }
                let (n, same) = prepare_runs(&mut batch, &mut keys, &mut maps, &mut hashes);
                prop_assert_eq!(n, frames.len());
                for (i, (got, mut want)) in batch.iter().zip(fresh).enumerate() {
                    let mut key = FlowKey::ZERO;
                    let map = extract_mapped(&mut want, &mut key);
                    let hash = packet_rss_hash(&mut want, &key);
                    prop_assert_eq!(keys[i].words(), key.words(), "packet {}", i);
                    prop_assert_eq!(maps[i], map, "packet {}", i);
                    prop_assert_eq!(hashes[i], hash, "packet {}", i);
                    prop_assert_eq!(got.meta(), want.meta(), "packet {}", i);
                    if same & (1 << i) != 0 {
                        prop_assert!(i > 0);
                        prop_assert_eq!(keys[i], keys[i - 1]);
                        prop_assert_eq!((maps[i], hashes[i]), (maps[i - 1], hashes[i - 1]));
                    }
                }
            }
        }
    }

    /// The run mask on plain traffic: a repeated UDP frame is one run
    /// whatever its IP identification, checksum and payload; a change in
    /// one key byte (a port, the TTL, a TCP flag) starts a new run; a
    /// frame that is not plain (ICMP) is extracted in full.
    #[test]
    fn repeated_headers_make_runs() {
        let pool = PacketPool::new("same-runs", PoolConfig::heap(MAX_BURST));
        let mut keys = [FlowKey::ZERO; MAX_BURST];
        let mut maps = [0u64; MAX_BURST];
        let mut hashes = [0u32; MAX_BURST];
        let [udp, _, tcp, ..] = <[Vec<u8>; 7]>::try_from(templates()).unwrap();
        let mut run = |frames: &[Vec<u8>]| {
            let mut batch = PacketBatch::new();
            for f in frames {
                let mut p = pool.alloc_from(f).unwrap();
                p.set_in_port(1);
                batch.push(p).unwrap();
            }
            prepare_runs(&mut batch, &mut keys, &mut maps, &mut hashes).1
        };
        let mut frames = vec![udp.clone(); MAX_BURST];
        for (i, f) in frames.iter_mut().enumerate() {
            f[18] = i as u8; // IP identification
            f[24] = !(i as u8); // IP checksum
            f[50] = i as u8; // payload
        }
        assert_eq!(run(&frames), !1);
        // Destination port from packet 5 on, TTL from 9 on: new runs.
        for f in &mut frames[5..] {
            f[37] ^= 1;
        }
        for f in &mut frames[9..] {
            f[22] ^= 1;
        }
        assert_eq!(run(&frames), !1 & !(1 << 5 | 1 << 9));
        // One packet of another flow: two misses in a row, then this batch
        // stops comparing (mixed traffic pays for no more compares).
        let (a, other) = (frames[1].clone(), frames[5].clone());
        assert_eq!(run(&[a.clone(), other.clone(), a.clone(), a.clone()]), 0);
        // One miss does not: a new run starts.
        assert_eq!(run(&[a.clone(), a, other.clone(), other]), 1 << 1 | 1 << 3);
        // TCP: the flags are in the key, the sequence number is not.
        let mut frames = vec![tcp.clone(); 4];
        frames[1][38] ^= 0xff;
        frames[2][47] ^= 0x08;
        frames[3] = frames[2].clone();
        assert_eq!(run(&frames), 1 << 1 | 1 << 3);
        // Not plain: no run, even repeated.
        let icmp = &templates()[5];
        assert_eq!(run(&[icmp.clone(), icmp.clone()]), 0);
    }

    /// Extraction (fast path and general), its hash and the simple-match
    /// parse write only what a fresh packet may have set: a received
    /// packet stays fresh through them, so its buffer's next reset is the
    /// short one and a later pass still skips the first-pass test.
    #[test]
    fn parsing_keeps_a_packet_fresh() {
        use crate::flow::hash::packet_rss_hash;
        use crate::flow::simple::parse_simple_packet;
        let pool = PacketPool::new("same-fresh", PoolConfig::heap(2));
        for frame in templates() {
            let mut p = pool.alloc_from(&frame).unwrap();
            p.set_in_port(1);
            let mut key = FlowKey::ZERO;
            extract_mapped(&mut p, &mut key);
            packet_rss_hash(&mut p, &key);
            let _ = parse_simple_packet(&mut p);
            assert!(p.is_fresh(), "{frame:02x?}");
        }
        let mut batch = PacketBatch::new();
        for frame in templates() {
            let mut p = pool.alloc_from(&frame).unwrap();
            p.set_in_port(1);
            batch.push(p).unwrap();
            let mut keys = [FlowKey::ZERO; MAX_BURST];
            let (mut maps, mut hashes) = ([0; MAX_BURST], [0; MAX_BURST]);
            prepare_runs(&mut batch, &mut keys, &mut maps, &mut hashes);
            assert!(batch.iter().all(Packet::is_fresh), "{frame:02x?}");
            batch.clear();
        }
    }
}
