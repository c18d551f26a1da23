//! Internet checksum (RFC 1071) arithmetic and SCTP's CRC32c.
//!
//! Full sums are used where a header is built (the outer IPv4 header of a
//! tunnel, an outer UDP checksum) or verified (`tnl_pop`); everywhere a
//! field is rewritten in place the checksum is patched incrementally with
//! RFC 1624's `HC' = ~(~HC + ~m + m')`, so the cost does not depend on
//! the payload size and a checksum that was wrong stays wrong by the same
//! amount (as OVS's `recalc_csum*`).
//!
//! Checksums are handled as host `u16` values of the big-endian wire words.

/// Adds `data` as big-endian 16-bit words to a running 32-bit sum (an odd
/// trailing byte is padded with zero).
#[inline]
pub fn sum_bytes(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        sum += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        sum += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        sum += u64::from(rest[i]) << 8;
    }
    sum
}

/// Folds a running sum to 16 bits (not complemented).
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum of `data`: the complemented fold.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_bytes(0, data))
}

/// Patches checksum `csum` for one 16-bit word changing from `old` to
/// `new`.
#[inline]
pub fn recalc16(csum: u16, old: u16, new: u16) -> u16 {
    let sum = u64::from(!csum) + u64::from(!old) + u64::from(new);
    !fold(sum)
}

/// Patches `csum` for an even-length, word-aligned run of bytes changing
/// from `old` to `new` (equal lengths).
#[cfg(test)]
pub fn recalc_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    debug_assert_eq!(old.len() % 2, 0);
    let mut sum = u64::from(!csum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u64::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
    !fold(sum)
}

/// The one's-complement delta of a 16-bit word changing from `old` to
/// `new`, to accumulate over several fields before one [`apply_delta`].
#[inline(always)]
pub fn delta16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// [`delta16`] for a 32-bit field (two words).
#[inline(always)]
pub fn delta32(old: u32, new: u32) -> u32 {
    delta16((old >> 16) as u16, (new >> 16) as u16) + delta16(old as u16, new as u16)
}

/// Patches checksum `csum` by an accumulated delta (fewer than 2^15
/// words' worth).
#[inline(always)]
pub fn apply_delta(csum: u16, delta: u32) -> u16 {
    let sum = u32::from(!csum) + delta;
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// Sum of the IPv4 pseudo-header for an upper-layer packet of `len` bytes.
#[inline]
pub fn pseudo_sum_v4(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u64 {
    let sum = sum_bytes(0, src);
    let sum = sum_bytes(sum, dst);
    sum + u64::from(proto) + len as u64
}

/// Sum of the IPv6 pseudo-header for an upper-layer packet of `len` bytes.
#[inline]
pub fn pseudo_sum_v6(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u64 {
    let sum = sum_bytes(0, src);
    let sum = sum_bytes(sum, dst);
    sum + u64::from(proto) + (len as u64 & 0xffff) + (len as u64 >> 16)
}

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC32C: [u32; 256] = crc32c_table();

/// CRC32c (Castagnoli) as SCTP uses it; the result is the value to store
/// in the header as little-endian bytes.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC32C[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example words.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_bytes(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum_bytes(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let mut data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        data[10] = 0;
        data[11] = 0;
        let csum = checksum(&data);
        data[10..12].copy_from_slice(&csum.to_be_bytes());
        assert_eq!(checksum(&data), 0);
        // Rewrite 4 bytes at 16 and patch.
        let old: [u8; 4] = data[16..20].try_into().unwrap();
        let new = [0xde, 0xad, 0xbe, 0xef];
        data[16..20].copy_from_slice(&new);
        let patched = recalc_bytes(csum, &old, &new);
        data[10..12].copy_from_slice(&patched.to_be_bytes());
        assert_eq!(checksum(&data), 0);
        // The same change through the delta API.
        let mut again = data.clone();
        again[16..20].copy_from_slice(&old);
        again[10..12].copy_from_slice(&csum.to_be_bytes());
        let d = delta32(u32::from_be_bytes(old), u32::from_be_bytes(new));
        assert_eq!(apply_delta(csum, d), patched);
        // A single word.
        let old16 = u16::from_be_bytes([data[2], data[3]]);
        data[2..4].copy_from_slice(&0xffffu16.to_be_bytes());
        let patched = recalc16(patched, old16, 0xffff);
        data[10..12].copy_from_slice(&patched.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }

    #[test]
    fn crc32c_check_value() {
        // The standard CRC-32C check value.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
