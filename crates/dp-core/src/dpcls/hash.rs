//! The classifier's hash: NH over pairs of 64-bit words with a per-process
//! random key, reduced to 32 bits.
//!
//! # What
//! [`nh_hash`] maps a short list of 64-bit words (a subtable's masked key
//! words, or a whole mask) to the 32-bit value the [`super::index`] uses:
//! its low bits pick the home bucket, its top 7 bits are the bucket's
//! control byte and all 32 bits are the stored tag.
//!
//! # How, and why this hash
//! The words are taken two at a time: `(w[2i] + k[2i]) * (w[2i+1] +
//! k[2i+1])`, each factor a 64-bit wrapping sum and the product the full
//! 128 bits, and the products are summed mod 2^128; an odd last word is
//! paired with a zero word. That is NH, the hash at the core of UMAC
//! (Black, Halevi, Krawczyk, Krovetz, Rogaway, "UMAC: Fast and Secure
//! Message Authentication", CRYPTO '99, theorem 3.2): for uniformly random
//! keys it is 2^-64-almost-Δ-universal over inputs of the same length,
//! which every key of one subtable is. So whoever does not know the keys
//! cannot aim packets (and the megaflows they cause) at one bucket any
//! better than by chance: the defence against crafted collisions that a
//! fixed hash cannot give. The 128-bit sum is then folded and finished by
//! a multiply, and the top 32 bits of that product are the hash.
//!
//! Cost: one 64x64→128 multiply, two adds and an add-with-carry per *two*
//! words, against a multiply and its fold per word for the per-word mixing
//! this replaced; the products of different pairs are independent, so the
//! CPU overlaps them. Callgrind, bench loop included: 228.7 -> 209.9
//! instructions a packet for `dpcls_hit_uniform_100k_flows/1` (one 5-word
//! mask) and 902.6 -> 851.3 for `dpcls_20_subtables_skewed/ranked` (about
//! 5.6 subtables probed a packet), measured with this hash and the
//! line-aligned rule slots, before the index's load bound changed.
//!
//! The keys are drawn once per process from the standard library's
//! `RandomState` (SipHash keyed from the operating system's random source
//! when the first thread asks for it), on the control path: the first
//! subtable or mask hashed. Lookups only read them.
//!
//! # Invariants
//! - Within a process the same words always hash the same (inserts and
//!   every lookup loop call [`nh_hash`] with the same keys).
//! - `keys.len() > words.len()`: the key word past the last input word
//!   pairs with an odd last word.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use crate::flow::FLOW_U64S;

/// Key words: one per flow-key word, plus the one that pads an odd count.
pub const HASH_KEY_WORDS: usize = FLOW_U64S + 1;

/// This process's random hash keys (drawn on first use).
pub fn process_keys() -> &'static [u64; HASH_KEY_WORDS] {
    static KEYS: OnceLock<[u64; HASH_KEY_WORDS]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let state = RandomState::new();
        std::array::from_fn(|i| state.hash_one(i as u64))
    })
}

/// NH of `words` under `keys`, reduced to 32 bits; see the module
/// documentation. `keys` must hold at least `words.len() + 1` words. When
/// the caller's slices have a length known at compile time the loop
/// unrolls completely.
#[inline(always)]
pub fn nh_hash(words: &[u64], keys: &[u64]) -> u32 {
    debug_assert!(keys.len() > words.len());
    let mut acc = 0u128;
    let pairs = words.len() / 2;
    for p in 0..pairs {
        let a = words[2 * p].wrapping_add(keys[2 * p]);
        let b = words[2 * p + 1].wrapping_add(keys[2 * p + 1]);
        acc = acc.wrapping_add(u128::from(a) * u128::from(b));
    }
    if words.len() % 2 == 1 {
        let last = words.len() - 1;
        let a = words[last].wrapping_add(keys[last]);
        acc = acc.wrapping_add(u128::from(a) * u128::from(keys[last + 1]));
    }
    finish(acc)
}

/// [`nh_hash`] of the words an iterator yields (at most `keys.len() - 1`
/// of them), for callers whose word count is not a constant: no buffer to
/// fill first. Equal to `nh_hash` of the same words.
#[inline]
pub fn nh_hash_iter(mut words: impl Iterator<Item = u64>, keys: &[u64]) -> u32 {
    let mut acc = 0u128;
    let mut j = 0;
    while let Some(first) = words.next() {
        let a = first.wrapping_add(keys[j]);
        let b = match words.next() {
            Some(second) => second.wrapping_add(keys[j + 1]),
            // An odd last word pairs with a zero word.
            None => keys[j + 1],
        };
        acc = acc.wrapping_add(u128::from(a) * u128::from(b));
        j += 2;
    }
    finish(acc)
}

/// Folds the 128-bit NH sum to 32 bits. The high half depends on every
/// input bit; the low half's low bits only on the inputs' low bits, so it
/// is rotated before the fold. The multiply's top half mixes all 64 bits.
#[inline(always)]
fn finish(acc: u128) -> u32 {
    let x = (acc >> 64) as u64 ^ (acc as u64).rotate_left(32);
    let x = (x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys are not a constant of the program: two `RandomState`s
    /// differ, so a process's keys are its own (checked indirectly: the
    /// key words are not all equal and not zero).
    #[test]
    fn keys_are_random_words() {
        let keys = process_keys();
        assert!(keys.iter().all(|&k| k != 0));
        let distinct: std::collections::HashSet<u64> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), HASH_KEY_WORDS);
        assert_eq!(process_keys(), keys, "drawn once");
    }

    #[test]
    fn the_iterator_form_equals_the_slice_form() {
        let keys = process_keys();
        for n in 0..=FLOW_U64S {
            let words: Vec<u64> = (0..n as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            assert_eq!(
                nh_hash_iter(words.iter().copied(), keys),
                nh_hash(&words, keys),
                "n {n}"
            );
        }
    }

    /// Every input word matters, in every position, including an odd
    /// last word and the high bits of a word.
    #[test]
    fn each_word_and_bit_changes_the_hash() {
        let keys = process_keys();
        for n in 1..=9usize {
            let base: Vec<u64> = (0..n as u64).map(|i| i * 0x0101_0101).collect();
            let h0 = nh_hash(&base, keys);
            for j in 0..n {
                for bit in [0, 1, 31, 32, 63] {
                    let mut w = base.clone();
                    w[j] ^= 1 << bit;
                    assert_ne!(nh_hash(&w, keys), h0, "n {n} word {j} bit {bit}");
                }
            }
        }
    }

    /// Sequential values in one word (the common case: addresses and
    /// ports counting up) spread evenly over the low bits that pick a
    /// bucket and the top bits of the control byte.
    #[test]
    fn sequential_words_spread_over_buckets_and_control_bytes() {
        const N: u64 = 1 << 16;
        const BUCKETS: usize = 1 << 10;
        let keys = process_keys();
        for word in 0..3usize {
            let mut per_bucket = vec![0u32; BUCKETS];
            let mut per_ctrl = [0u32; 128];
            for v in 0..N {
                let mut w = [0x0a00_0000_0000_0011u64, 0x0800, 0x1234];
                w[word] += v;
                let h = nh_hash(&w, keys);
                per_bucket[h as usize % BUCKETS] += 1;
                per_ctrl[(h >> 25) as usize] += 1;
            }
            // Mean 64 per bucket; a uniform hash stays far inside these
            // bounds (the standard deviation is 8), a weak one does not.
            let (lo, hi) = (
                *per_bucket.iter().min().expect("buckets"),
                *per_bucket.iter().max().expect("buckets"),
            );
            assert!(lo >= 20 && hi <= 120, "word {word}: {lo}..{hi}");
            let (lo, hi) = (
                *per_ctrl.iter().min().expect("ctrl"),
                *per_ctrl.iter().max().expect("ctrl"),
            );
            assert!(lo >= 350 && hi <= 700, "word {word}: control {lo}..{hi}");
        }
    }
}
