//! Hashing for flow keys: OVS's murmur-style mixing (`mhash`), a 5-tuple
//! hash that stands in for the NIC's RSS hash, and masked-key hashing for
//! the caches and the classifier.
//!
//! All functions are pure and allocation-free; equal inputs give equal
//! hashes on every thread and every run.

use super::key::*;
use crate::packet::Packet;

#[inline(always)]
fn mhash_add_raw(hash: u32, data: u32) -> u32 {
    let data = data
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    hash ^ data
}

/// Mixes 32 bits into `hash`.
#[inline(always)]
pub fn hash_add(hash: u32, data: u32) -> u32 {
    mhash_add_raw(hash, data)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

/// Mixes 64 bits into `hash`.
#[inline(always)]
pub fn hash_add64(hash: u32, data: u64) -> u32 {
    hash_add(hash_add(hash, data as u32), (data >> 32) as u32)
}

/// Final avalanche, folding in `final_word` (usually a length or a basis).
#[inline(always)]
pub fn hash_finish(hash: u32, final_word: u32) -> u32 {
    let mut h = hash ^ final_word;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Hash of the IP addresses, protocol and ports, the software stand-in for
/// an RSS hash (OVS `miniflow_hash_5tuple`). Non-IP packets hash to a
/// constant, so they all land on one queue/EMC way, as in OVS.
#[inline]
pub fn hash_5tuple(key: &FlowKey, basis: u32) -> u32 {
    let mut hash = basis;
    match key.dl_type {
        ETH_TYPE_IPV6 => {
            for half in [&key.ipv6_src, &key.ipv6_dst] {
                hash = hash_add64(
                    hash,
                    u64::from_ne_bytes(half[..8].try_into().expect("8 bytes")),
                );
                hash = hash_add64(
                    hash,
                    u64::from_ne_bytes(half[8..].try_into().expect("8 bytes")),
                );
            }
        }
        ETH_TYPE_IPV4 | ETH_TYPE_ARP => {
            hash = hash_add(hash, u32::from_ne_bytes(key.nw_src));
            hash = hash_add(hash, u32::from_ne_bytes(key.nw_dst));
        }
        _ => return hash_finish(hash, 42),
    }
    hash = hash_add(hash, u32::from(key.nw_proto));
    if matches!(
        key.nw_proto,
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_ICMP | IPPROTO_ICMPV6
    ) {
        hash = hash_add(hash, (u32::from(key.tp_src) << 16) | u32::from(key.tp_dst));
    }
    hash_finish(hash, 42)
}

/// The packet's RSS hash, computing (and caching in the metadata) the
/// 5-tuple hash when the NIC gave none. A recirculated packet's hash is
/// mixed with its depth so each pass gets its own EMC entry, as in OVS.
#[inline]
pub fn packet_rss_hash(packet: &mut Packet, key: &FlowKey) -> u32 {
    // Only the hash is written: a fresh packet stays fresh.
    let meta = packet.parse_meta_mut();
    let hash = if meta.rss_hash_valid {
        meta.rss_hash
    } else {
        let hash = hash_5tuple(key, 0);
        meta.rss_hash = hash;
        meta.rss_hash_valid = true;
        hash
    };
    if meta.recirc_depth > 0 {
        hash_finish(hash, u32::from(meta.recirc_depth))
    } else {
        hash
    }
}

/// Hash of `key & mask` over the words set in `word_map` (words outside
/// the map must be zero in `mask`). Used for megaflow subtables, where the
/// map is the mask's non-zero words.
#[inline]
pub fn hash_masked_words(key: &FlowKey, mask: &FlowKey, word_map: u64, basis: u32) -> u32 {
    let words = key.words();
    let mask_words = mask.words();
    let mut hash = basis;
    let mut map = word_map;
    while map != 0 {
        let i = map.trailing_zeros() as usize;
        hash = hash_add64(hash, words[i] & mask_words[i]);
        map &= map - 1;
    }
    hash_finish(hash, word_map.count_ones() * 8)
}

/// Hash of every word of `key` (an exact-match hash).
#[inline]
pub fn hash_key(key: &FlowKey, basis: u32) -> u32 {
    let mut hash = basis;
    for w in key.words() {
        hash = hash_add64(hash, *w);
    }
    hash_finish(hash, (FLOW_U64S * 8) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_tuple_hash_depends_on_ports_not_macs() {
        let mut a = FlowKey::ZERO;
        a.dl_type = ETH_TYPE_IPV4;
        a.nw_proto = IPPROTO_UDP;
        a.nw_src = [10, 0, 0, 1];
        a.tp_src = 1000;
        let mut b = a;
        b.dl_src = [1, 2, 3, 4, 5, 6];
        assert_eq!(hash_5tuple(&a, 0), hash_5tuple(&b, 0));
        b.tp_src = 1001;
        assert_ne!(hash_5tuple(&a, 0), hash_5tuple(&b, 0));
    }

    #[test]
    fn masked_hash_ignores_masked_out_bits() {
        let mut mask = FlowKey::ZERO;
        mask.nw_dst = [255, 255, 255, 0];
        let map = mask.nonzero_word_map();
        let mut a = FlowKey::ZERO;
        a.nw_dst = [10, 0, 0, 1];
        let mut b = a;
        b.nw_dst = [10, 0, 0, 200];
        b.tp_dst = 99;
        assert_eq!(
            hash_masked_words(&a, &mask, map, 0),
            hash_masked_words(&b, &mask, map, 0)
        );
        b.nw_dst = [10, 0, 1, 1];
        assert_ne!(
            hash_masked_words(&a, &mask, map, 0),
            hash_masked_words(&b, &mask, map, 0)
        );
    }
}
