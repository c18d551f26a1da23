//! The Geneve TLV map: which Geneve option (class, type, length) each
//! `tun_metadata<N>` field names, as `ovs-ofctl add-tlv-map` sets it.
//!
//! # How it works
//! The datapath keeps a received packet's Geneve options raw, in wire
//! order (`FlowKey::tun_geneve`, OVS's "UDPIF" form). OpenFlow rules see
//! them mapped: before translation, [`TlvMap::decode`] walks the options
//! and copies the data of each mapped one into its `tun_metadata<N>` slot
//! of the [`OfFlow`] (right-aligned, with its presence bit). After
//! translation, [`TlvMap::key_mask`] turns what the rules looked at (the
//! slot bits in the `OfFlow` wildcards) back into a mask over the raw
//! bytes: the option list's length, every option header up to the last
//! one consulted, and the consulted data bits. A packet that agrees on
//! those bytes has the same options at the same places, so it decodes to
//! the same slot values: the megaflow is sound. Traffic whose translation
//! never looked at `tun_metadata` keeps the options wildcarded.
//!
//! On the way out, [`TlvMap::encode`] builds the option TLVs of a Geneve
//! header from the present slots (set by `set_field:...->tun_metadata<N>`
//! or received), in slot order.
//!
//! # Limits (checked where entries are added, naming the entry)
//! `tun_metadata0`..`tun_metadata7` (OVS has 64), each option at most 8
//! bytes of data (`len` 4 or 8 here; OVS allows up to 124). One option
//! (class, type) maps to one field.
//!
//! # Invariants
//! - Every entry has a distinct field index and a distinct (class, type).
//! - `decode` never reads beyond `tun_geneve_len` or the key's bytes; a
//!   malformed option list decodes the options before the damage.

use crate::field::{N_TUN_METADATA, OfFlow};
use dp_core::execute::tunnel::GeneveKnown;
use dp_core::flow::FlowKey;
use dp_core::flow::key::GENEVE_KEY_OPTS;
use std::fmt::Write;

/// Most option data bytes one `tun_metadata` field holds here.
pub const MAX_TLV_LEN: u8 = 8;

/// One mapping: Geneve option `class`/`typ` with `len` data bytes is
/// field `tun_metadata<index>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlvMapping {
    pub class: u16,
    pub typ: u8,
    pub len: u8,
    pub index: u8,
}

impl std::fmt::Display for TlvMapping {
    /// `{class=0xffff,type=0x80,len=4}->tun_metadata0`, as ovs-ofctl
    /// writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{class={:#x},type={:#x},len={}}}->tun_metadata{}",
            self.class, self.typ, self.len, self.index
        )
    }
}

fn parse_num(text: &str, what: &str, max: u64) -> Result<u64, String> {
    let t = text.trim();
    let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse::<u64>().ok(),
    };
    n.filter(|n| *n <= max)
        .ok_or_else(|| format!("{what}: \"{t}\" is not a number in 0..={max:#x}"))
}

/// Parses ovs-ofctl's TLV map syntax: one or more
/// `{class=C,type=T,len=L}->tun_metadataN`, separated by commas.
pub fn parse_mappings(text: &str) -> Result<Vec<TlvMapping>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let body_start = rest
            .strip_prefix('{')
            .ok_or_else(|| format!("\"{rest}\": expected {{class=...,type=...,len=...}}"))?;
        let close = body_start
            .find('}')
            .ok_or_else(|| format!("\"{rest}\": missing '}}'"))?;
        let (body, after) = (&body_start[..close], &body_start[close + 1..]);
        let (mut class, mut typ, mut len) = (None, None, None);
        for part in body.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("\"{part}\": expected key=value"))?;
            match k.trim() {
                "class" => class = Some(parse_num(v, "class", 0xffff)? as u16),
                "type" => typ = Some(parse_num(v, "type", 0xff)? as u8),
                "len" => len = Some(parse_num(v, "len", 124)? as u8),
                other => return Err(format!("\"{other}\": expected class, type or len")),
            }
        }
        let what = format!("{{{body}}}");
        let class = class.ok_or_else(|| format!("{what}: class is missing"))?;
        let typ = typ.ok_or_else(|| format!("{what}: type is missing"))?;
        let len = len.ok_or_else(|| format!("{what}: len is missing"))?;
        if len == 0 || len % 4 != 0 || len > MAX_TLV_LEN {
            return Err(format!(
                "{what}: len {len} is not supported (4 or 8 bytes of option data)"
            ));
        }
        let after = after.trim_start();
        let after = after
            .strip_prefix("->")
            .ok_or_else(|| format!("{what}: expected ->tun_metadataN"))?
            .trim_start();
        let end = after.find(',').unwrap_or(after.len());
        let field = after[..end].trim();
        let index = field
            .strip_prefix("tun_metadata")
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|i| usize::from(*i) < N_TUN_METADATA)
            .ok_or_else(|| {
                format!(
                    "{what}: \"{field}\" is not tun_metadata0..tun_metadata{}",
                    N_TUN_METADATA - 1
                )
            })?;
        out.push(TlvMapping {
            class,
            typ,
            len,
            index,
        });
        rest = after[end..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    if out.is_empty() {
        return Err("no TLV mapping given".into());
    }
    Ok(out)
}

/// A bridge's TLV map (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlvMap {
    entries: Vec<TlvMapping>,
}

/// The empty map, for translations that need no `Arc` of one.
pub static EMPTY_TLV_MAP: TlvMap = TlvMap {
    entries: Vec::new(),
};

impl TlvMap {
    /// The empty map, shared: a fresh `Arc` per translation of a bridge
    /// without options was an allocation and a free per flow setup.
    pub fn shared_empty() -> std::sync::Arc<TlvMap> {
        static EMPTY: std::sync::OnceLock<std::sync::Arc<TlvMap>> = std::sync::OnceLock::new();
        EMPTY.get_or_init(std::sync::Arc::default).clone()
    }
}

/// Where one option of a received list is.
struct Opt {
    at: usize,
    class: u16,
    typ: u8,
    data_len: usize,
}

/// The options of `key` as (offset, header) in wire order, stopping at
/// the first malformed one.
fn options(key: &FlowKey) -> impl Iterator<Item = Opt> + '_ {
    let len = usize::from(key.tun_geneve_len).min(GENEVE_KEY_OPTS);
    let b = &key.tun_geneve[..len];
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos + 4 > b.len() {
            return None;
        }
        let data_len = usize::from(b[pos + 3] & 0x1f) * 4;
        if pos + 4 + data_len > b.len() {
            return None;
        }
        let o = Opt {
            at: pos,
            class: u16::from_be_bytes([b[pos], b[pos + 1]]),
            typ: b[pos + 2],
            data_len,
        };
        pos += 4 + data_len;
        Some(o)
    })
}

impl TlvMap {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[TlvMapping] {
        &self.entries
    }

    /// Adds `new` (all or nothing). A field index or option already
    /// mapped is an error naming it, as in OVS (delete it first).
    pub fn add(&mut self, new: &[TlvMapping]) -> Result<(), String> {
        let mut next = self.entries.clone();
        for m in new {
            if let Some(old) = next.iter().find(|e| e.index == m.index) {
                return Err(format!(
                    "tun_metadata{} is already mapped ({old}): delete it first",
                    m.index
                ));
            }
            if let Some(old) = next.iter().find(|e| e.class == m.class && e.typ == m.typ) {
                return Err(format!(
                    "option class={:#x},type={:#x} is already mapped ({old})",
                    m.class, m.typ
                ));
            }
            next.push(*m);
        }
        next.sort_by_key(|e| e.index);
        self.entries = next;
        Ok(())
    }

    /// Removes the mappings equal to `old` (all or nothing): one that is
    /// not in the map is an error naming it.
    pub fn remove(&mut self, old: &[TlvMapping]) -> Result<(), String> {
        for m in old {
            if !self.entries.contains(m) {
                return Err(format!("{m}: not in the TLV map"));
            }
        }
        self.entries.retain(|e| !old.contains(e));
        Ok(())
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The (class, type) pairs the datapath should let through even when
    /// critical.
    pub fn known(&self) -> GeneveKnown {
        GeneveKnown::new(self.entries.iter().map(|e| (e.class, e.typ))).unwrap_or(GeneveKnown::NONE)
    }

    fn lookup(&self, class: u16, typ: u8, data_len: usize) -> Option<&TlvMapping> {
        self.entries
            .iter()
            .find(|e| e.class == class && e.typ == typ && usize::from(e.len) == data_len)
    }

    /// Fills `flow`'s `tun_metadata` slots from `key`'s raw options (the
    /// first occurrence of an option wins, as in OVS).
    pub fn decode(&self, key: &FlowKey, flow: &mut OfFlow) {
        flow.tun_metadata = [0; N_TUN_METADATA];
        flow.tun_metadata_present = 0;
        if self.entries.is_empty() {
            return;
        }
        for o in options(key) {
            let Some(e) = self.lookup(o.class, o.typ, o.data_len) else {
                continue;
            };
            let bit = 1u64 << e.index;
            if flow.tun_metadata_present & bit != 0 {
                continue;
            }
            let data = &key.tun_geneve[o.at + 4..o.at + 4 + o.data_len];
            flow.tun_metadata[usize::from(e.index)] =
                data.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
            flow.tun_metadata_present |= bit;
        }
    }

    /// Adds to the datapath `mask` the raw option bytes that decide what
    /// translation saw of `wc`'s `tun_metadata` bits for a packet with
    /// `key` (see the module docs). Nothing when no slot was consulted.
    pub fn key_mask(&self, key: &FlowKey, wc: &OfFlow, mask: &mut FlowKey) {
        // No map (every bridge without options, every flow setup there):
        // no slot is mapped, so none can have been consulted.
        if self.entries.is_empty() {
            return;
        }
        let consulted = wc.tun_metadata_present
            | wc.tun_metadata
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, v)| m | (u64::from(*v != 0) << i));
        // A slot the map does not name is never present, whatever the
        // options: looking at it depends on nothing in the packet.
        let mapped = self.entries.iter().fold(0u64, |m, e| m | 1 << e.index);
        if consulted & mapped == 0 {
            return;
        }
        // The length and every header fix where each option is (and that
        // an option absent here is absent there too).
        mask.tun_geneve_len = u8::MAX;
        let mut seen = 0u64;
        for o in options(key) {
            mask.tun_geneve[o.at..o.at + 4].fill(0xff);
            let Some(e) = self.lookup(o.class, o.typ, o.data_len) else {
                continue;
            };
            let bit = 1u64 << e.index;
            if seen & bit != 0 {
                continue;
            }
            seen |= bit;
            if consulted & bit == 0 {
                continue;
            }
            let m = wc.tun_metadata[usize::from(e.index)].to_be_bytes();
            let data = &mut mask.tun_geneve[o.at + 4..o.at + 4 + o.data_len];
            for (d, b) in data.iter_mut().zip(&m[8 - o.data_len..]) {
                *d |= *b;
            }
        }
        // A malformed tail decodes to nothing: keep it exact too.
        let len = usize::from(key.tun_geneve_len).min(GENEVE_KEY_OPTS);
        let parsed: usize = options(key).map(|o| 4 + o.data_len).sum();
        mask.tun_geneve[parsed..len].fill(0xff);
    }

    /// The Geneve option TLVs for `flow`'s present `tun_metadata` slots,
    /// in slot order (a present slot the map no longer names is skipped).
    pub fn encode(&self, flow: &OfFlow) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            if flow.tun_metadata_present & (1 << e.index) == 0 {
                continue;
            }
            out.extend_from_slice(&e.class.to_be_bytes());
            out.push(e.typ);
            out.push(e.len / 4);
            let v = flow.tun_metadata[usize::from(e.index)].to_be_bytes();
            out.extend_from_slice(&v[8 - usize::from(e.len)..]);
        }
        out
    }

    /// The table as `ovs-ofctl dump-tlv-map` shows it.
    pub fn show(&self, bridge: &str) -> String {
        let mut s = String::new();
        let space: usize = self.entries.iter().map(|e| usize::from(e.len)).sum();
        let _ = writeln!(s, "bridge {bridge}:");
        let _ = writeln!(
            s,
            " max option space={} max fields={N_TUN_METADATA}",
            usize::from(MAX_TLV_LEN) * N_TUN_METADATA
        );
        let _ = writeln!(s, " allocated option space={space}");
        let _ = writeln!(s);
        let _ = writeln!(s, " mapping table:");
        let _ = writeln!(s, "  class  type  length  match field");
        let _ = writeln!(s, " ------  ----  ------  --------------");
        for e in &self.entries {
            let _ = writeln!(
                s,
                "  {:#06x}  {:#04x}  {:>6}  tun_metadata{}",
                e.class, e.typ, e.len, e.index
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_with(opts: &[u8]) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.tun_ipv4_dst = [1, 1, 1, 1];
        k.tun_geneve_len = opts.len() as u8;
        k.tun_geneve[..opts.len()].copy_from_slice(opts);
        k
    }

    #[test]
    fn test_parse_ofctl_syntax_and_errors_name_the_entry() {
        let m = parse_mappings(
            "{class=0xffff,type=0x80,len=4}->tun_metadata0, {class=0x102,type=1,len=8}->tun_metadata3",
        )
        .unwrap();
        assert_eq!(
            m,
            vec![
                TlvMapping {
                    class: 0xffff,
                    typ: 0x80,
                    len: 4,
                    index: 0
                },
                TlvMapping {
                    class: 0x102,
                    typ: 1,
                    len: 8,
                    index: 3
                }
            ]
        );
        assert_eq!(
            m[0].to_string(),
            "{class=0xffff,type=0x80,len=4}->tun_metadata0"
        );
        for (bad, says) in [
            ("{class=0xffff,type=0x80,len=5}->tun_metadata0", "len 5"),
            ("{class=0xffff,type=0x80,len=12}->tun_metadata0", "len 12"),
            ("{class=0xffff,len=4}->tun_metadata0", "type is missing"),
            (
                "{class=0xffff,type=0x80,len=4}->tun_metadata8",
                "tun_metadata8",
            ),
            ("{class=0x10000,type=0x80,len=4}->tun_metadata0", "class"),
            ("{class=0xffff,type=0x80,len=4}", "->tun_metadataN"),
            ("", "no TLV mapping"),
        ] {
            let e = parse_mappings(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let mut map = TlvMap::default();
        map.add(&m).unwrap();
        let e = map.add(&m[..1]).unwrap_err();
        assert!(e.contains("tun_metadata0 is already mapped"), "{e}");
        let other = parse_mappings("{class=0xffff,type=0x80,len=4}->tun_metadata1").unwrap();
        assert!(map.add(&other).unwrap_err().contains("already mapped"));
        assert!(map.known().contains(0xffff, 0x80));
        assert!(!map.known().contains(0xffff, 0x81));
        map.remove(&m[..1]).unwrap();
        assert!(map.remove(&m[..1]).is_err());
        assert_eq!(map.entries().len(), 1);
    }

    #[test]
    fn test_decode_encode_round_trip() {
        let mut map = TlvMap::default();
        map.add(&parse_mappings("{class=0xffff,type=0x80,len=4}->tun_metadata0,{class=0x102,type=0x1,len=8}->tun_metadata2").unwrap())
            .unwrap();
        // An unmapped option first, then both mapped ones.
        let opts = [
            0x01, 0x02, 0x05, 1, 9, 9, 9, 9, // unmapped
            0x01, 0x02, 0x01, 2, 1, 2, 3, 4, 5, 6, 7, 8, // tun_metadata2
            0xff, 0xff, 0x80, 1, 0, 0, 0x12, 0x34, // tun_metadata0
        ];
        let key = key_with(&opts);
        let mut flow = OfFlow::from_key(key);
        map.decode(&key, &mut flow);
        assert_eq!(flow.tun_metadata_present, 0b101);
        assert_eq!(flow.tun_metadata[0], 0x1234);
        assert_eq!(flow.tun_metadata[2], 0x0102_0304_0506_0708);
        assert_eq!(
            map.encode(&flow),
            [
                &[0xff, 0xff, 0x80, 1, 0, 0, 0x12, 0x34][..],
                &[0x01, 0x02, 0x01, 2, 1, 2, 3, 4, 5, 6, 7, 8]
            ]
            .concat()
        );
        // A length that differs from the map's is not that option.
        let key = key_with(&[0xff, 0xff, 0x80, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        map.decode(&key, &mut flow);
        assert_eq!(flow.tun_metadata_present, 0);
        // No options, or a truncated list: nothing, no panic.
        map.decode(&key_with(&[0xff, 0xff, 0x80, 1, 0]), &mut flow);
        assert_eq!(flow.tun_metadata_present, 0);
    }

    /// The megaflow mask is sound: every key that agrees with the
    /// original on the masked bytes decodes to the same consulted slot
    /// bits, checked over byte-level mutations of the option list.
    #[test]
    fn test_key_mask_is_sound_for_mutated_option_lists() {
        let mut map = TlvMap::default();
        map.add(&parse_mappings("{class=0xffff,type=0x80,len=4}->tun_metadata0,{class=0xffff,type=0x81,len=4}->tun_metadata1").unwrap())
            .unwrap();
        let opts = [
            0x01, 0x02, 0x05, 1, 9, 9, 9, 9, 0xff, 0xff, 0x80, 1, 0, 0, 0x12, 0x34,
        ];
        let key = key_with(&opts);
        let mut wc = OfFlow::ZERO;
        wc.tun_metadata[0] = 0xff00;
        wc.tun_metadata_present = 0b11;
        let mut mask = FlowKey::ZERO;
        map.key_mask(&key, &wc, &mut mask);
        assert_eq!(mask.tun_geneve_len, 0xff);
        assert_eq!(&mask.tun_geneve[..4], &[0xff; 4], "unmapped header exact");
        assert_eq!(&mask.tun_geneve[4..8], &[0; 4], "unmapped data wildcarded");
        assert_eq!(&mask.tun_geneve[12..16], &[0, 0, 0xff, 0]);
        let decode = |k: &FlowKey| {
            let mut f = OfFlow::from_key(*k);
            map.decode(k, &mut f);
            (
                f.tun_metadata_present & wc.tun_metadata_present,
                f.tun_metadata[0] & wc.tun_metadata[0],
                f.tun_metadata[1] & wc.tun_metadata[1],
            )
        };
        let want = decode(&key);
        let masked = key.masked(&mask);
        let mut checked = 0;
        for pos in 0..=opts.len() {
            for v in [0u8, 1, 0x12, 0x80, 0x81, 0xff] {
                let mut k = key;
                if pos < opts.len() {
                    k.tun_geneve[pos] = v;
                } else {
                    k.tun_geneve_len = v.min(GENEVE_KEY_OPTS as u8);
                }
                if k.masked(&mask) == masked {
                    assert_eq!(decode(&k), want, "byte {pos} = {v:#x}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 20);
        // Nothing consulted: options stay wildcarded.
        let mut mask = FlowKey::ZERO;
        map.key_mask(&key, &OfFlow::ZERO, &mut mask);
        assert_eq!(mask, FlowKey::ZERO);
    }
}
