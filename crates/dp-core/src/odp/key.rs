//! Flow keys and masks as ODP text: `recirc_id(0),in_port(1),eth(...),...`.
//!
//! # How it works
//! Parsing follows OVS's `odp_flow_from_string`: each attribute appends to
//! a key list and, in step, to a mask list (a field written without `/mask`
//! is exact, a field left out of an attribute is wildcarded, an attribute
//! left out is absent from both lists). Formatting follows
//! `odp_flow_format`: attributes in key order, each looked up in the mask
//! by type; a wildcarded attribute is skipped unless `verbose`, a
//! partially masked field prints `value/mask`. An exact key prints through
//! the same path with no mask and `verbose` set, which is how OVS prints
//! keys (`odp_flow_key_format`).

use super::attr::*;
use super::fmt::{self, chomp, hexp};
use super::scan::{Cursor, OdpError, Result};
use super::{MAX_NESTING, PortNames, format_port};
use std::fmt::Write;

/// A parsed key with its mask (same shape; see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaskedKey {
    pub key: Vec<KeyAttr>,
    pub mask: Vec<KeyAttr>,
}

/// Parses a flow key with optional masks (`field=value/mask`). A leading
/// `ufid:<uuid>` is skipped.
pub fn parse_masked(s: &str, names: Option<&PortNames>) -> Result<MaskedKey> {
    let mut c = Cursor::new(s);
    let mut out = MaskedKey::default();
    let mut depth = 0;
    loop {
        c.skip_delims();
        if c.at_end() {
            return Ok(out);
        }
        if c.eat("ufid:") {
            skip_uuid(&mut c)?;
            c.skip_delims();
            if c.at_end() {
                return Ok(out);
            }
        }
        parse_attr(&mut c, names, &mut depth, &mut out.key, &mut out.mask)?;
    }
}

/// Parses an exact flow key (masks, if written, are ignored).
pub fn parse(s: &str, names: Option<&PortNames>) -> Result<Vec<KeyAttr>> {
    parse_masked(s, names).map(|m| m.key)
}

/// Formats a key with its mask the way dump-flows does (`verbose` is
/// dump-flows `-m`: also print wildcarded attributes and fields).
pub fn format_masked(
    key: &[KeyAttr],
    mask: Option<&[KeyAttr]>,
    names: Option<&PortNames>,
    verbose: bool,
) -> String {
    let mut out = String::new();
    format_attrs(&mut out, key, mask, names, verbose);
    out
}

/// Formats an exact key (every field of every attribute).
pub fn format(key: &[KeyAttr], names: Option<&PortNames>) -> String {
    format_masked(key, None, names, true)
}

fn skip_uuid(c: &mut Cursor) -> Result<()> {
    let r = c.rest();
    let ok = r.len() >= 36
        && r[..36].iter().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    if !ok {
        return Err(c.err("ufid: expected a UUID"));
    }
    c.set_pos(c.pos() + 36);
    Ok(())
}

// ---------------------------------------------------------------- parsing

/// `value` or `value/mask`; `full` is the mask when none is written.
fn masked<'a, T: Copy>(
    c: &mut Cursor<'a>,
    what: &str,
    full: T,
    f: fn(&mut Cursor<'a>) -> Option<T>,
) -> Result<(T, T)> {
    let v = f(c).ok_or_else(|| c.err(&format!("{what}: bad value")))?;
    if c.eat("/") {
        let m = f(c).ok_or_else(|| c.err(&format!("{what}: bad mask")))?;
        Ok((v, m))
    } else {
        Ok((v, full))
    }
}

/// The `name=value,...)` loop shared by struct attributes. `field` returns
/// true when it recognised and scanned a field.
fn fields(
    c: &mut Cursor,
    attr: &str,
    mut field: impl FnMut(&mut Cursor) -> Result<bool>,
) -> Result<()> {
    loop {
        if !field(c)? {
            if c.eat(")") {
                return Ok(());
            }
            return Err(c.err(&format!("{attr}: unknown field '{}'", c.word())));
        }
        match c.bump() {
            Some(b',') => continue,
            Some(b')') => return Ok(()),
            _ => return Err(c.err(&format!("{attr}: expected ',' or ')'"))),
        }
    }
}

macro_rules! field {
    ($c:ident, $name:literal, $what:literal, $full:expr, $f:expr, $k:expr, $m:expr) => {
        if $c.eat($name) {
            let (v, mm) = masked($c, $what, $full, $f)?;
            $k = v;
            $m = mm;
            return Ok(true);
        }
    };
}

fn single<'a, T: Copy>(
    c: &mut Cursor<'a>,
    what: &str,
    full: T,
    f: fn(&mut Cursor<'a>) -> Option<T>,
) -> Result<(T, T)> {
    let r = masked(c, what, full, f)?;
    c.expect(")", what)?;
    Ok(r)
}

pub(crate) fn parse_attr(
    c: &mut Cursor,
    names: Option<&PortNames>,
    depth: &mut usize,
    key: &mut Vec<KeyAttr>,
    mask: &mut Vec<KeyAttr>,
) -> Result<()> {
    let mut push = |k: KeyAttr, m: KeyAttr| {
        key.push(k);
        mask.push(m);
    };
    if c.eat("skb_priority(") {
        let (k, m) = single(c, "skb_priority", u32::MAX, Cursor::u32_i)?;
        push(KeyAttr::Priority(k), KeyAttr::Priority(m));
    } else if c.eat("skb_mark(") {
        let (k, m) = single(c, "skb_mark", u32::MAX, Cursor::u32_i)?;
        push(KeyAttr::SkbMark(k), KeyAttr::SkbMark(m));
    } else if c.eat("recirc_id(") {
        let k = c.u32_i().ok_or_else(|| c.err("recirc_id: bad value"))?;
        c.expect(")", "recirc_id")?;
        push(KeyAttr::RecircId(k), KeyAttr::RecircId(u32::MAX));
    } else if c.eat("dp_hash(") {
        let (k, m) = single(c, "dp_hash", u32::MAX, Cursor::u32_i)?;
        push(KeyAttr::DpHash(k), KeyAttr::DpHash(m));
    } else if c.eat("ct_state(") {
        let (k, m) = parse_flags(c, "ct_state", fmt::ct_state_name, 0xff)?;
        c.expect(")", "ct_state")?;
        push(KeyAttr::CtState(k), KeyAttr::CtState(m));
    } else if c.eat("ct_zone(") {
        let (k, m) = single(c, "ct_zone", u16::MAX, Cursor::u16_i)?;
        push(KeyAttr::CtZone(k), KeyAttr::CtZone(m));
    } else if c.eat("ct_mark(") {
        let (k, m) = single(c, "ct_mark", u32::MAX, Cursor::u32_i)?;
        push(KeyAttr::CtMark(k), KeyAttr::CtMark(m));
    } else if c.eat("ct_label(") {
        let (k, m) = single(c, "ct_label", u128::MAX, scan_u128)?;
        push(KeyAttr::CtLabels(k), KeyAttr::CtLabels(m));
    } else if c.eat("ct_tuple4(") {
        let (mut k, mut m) = (CtTuple4::default(), CtTuple4::default());
        fields(c, "ct_tuple4", |c| {
            field!(
                c,
                "src=",
                "ct_tuple4 src",
                [0xff; 4],
                Cursor::ipv4,
                k.src,
                m.src
            );
            field!(
                c,
                "dst=",
                "ct_tuple4 dst",
                [0xff; 4],
                Cursor::ipv4,
                k.dst,
                m.dst
            );
            field!(
                c,
                "proto=",
                "ct_tuple4 proto",
                0xff,
                Cursor::u8_i,
                k.proto,
                m.proto
            );
            field!(
                c,
                "tp_src=",
                "ct_tuple4 tp_src",
                0xffff,
                Cursor::u16_i,
                k.src_port,
                m.src_port
            );
            field!(
                c,
                "tp_dst=",
                "ct_tuple4 tp_dst",
                0xffff,
                Cursor::u16_i,
                k.dst_port,
                m.dst_port
            );
            Ok(false)
        })?;
        push(KeyAttr::CtTuple4(k), KeyAttr::CtTuple4(m));
    } else if c.eat("ct_tuple6(") {
        let (mut k, mut m) = (CtTuple6::default(), CtTuple6::default());
        fields(c, "ct_tuple6", |c| {
            field!(
                c,
                "src=",
                "ct_tuple6 src",
                [0xff; 16],
                Cursor::ipv6,
                k.src,
                m.src
            );
            field!(
                c,
                "dst=",
                "ct_tuple6 dst",
                [0xff; 16],
                Cursor::ipv6,
                k.dst,
                m.dst
            );
            field!(
                c,
                "proto=",
                "ct_tuple6 proto",
                0xff,
                Cursor::u8_i,
                k.proto,
                m.proto
            );
            field!(
                c,
                "tp_src=",
                "ct_tuple6 tp_src",
                0xffff,
                Cursor::u16_i,
                k.src_port,
                m.src_port
            );
            field!(
                c,
                "tp_dst=",
                "ct_tuple6 tp_dst",
                0xffff,
                Cursor::u16_i,
                k.dst_port,
                m.dst_port
            );
            // OVS prints these names but only parses tp_*; accept both.
            field!(
                c,
                "src_port=",
                "ct_tuple6 src_port",
                0xffff,
                Cursor::u16_i,
                k.src_port,
                m.src_port
            );
            field!(
                c,
                "dst_port=",
                "ct_tuple6 dst_port",
                0xffff,
                Cursor::u16_i,
                k.dst_port,
                m.dst_port
            );
            Ok(false)
        })?;
        push(KeyAttr::CtTuple6(k), KeyAttr::CtTuple6(m));
    } else if c.eat("tunnel(") {
        let (k, m) = parse_tunnel(c)?;
        push(KeyAttr::Tunnel(k), KeyAttr::Tunnel(m));
    } else if c.eat("in_port(") {
        let (k, m) = parse_port(c, names)?;
        c.expect(")", "in_port")?;
        push(KeyAttr::InPort(k), KeyAttr::InPort(m));
    } else if c.eat("eth(") {
        let (mut k, mut m) = (EthKey::default(), EthKey::default());
        fields(c, "eth", |c| {
            field!(c, "src=", "eth src", [0xff; 6], Cursor::mac, k.src, m.src);
            field!(c, "dst=", "eth dst", [0xff; 6], Cursor::mac, k.dst, m.dst);
            Ok(false)
        })?;
        push(KeyAttr::Ethernet(k), KeyAttr::Ethernet(m));
    } else if c.eat("vlan(") {
        let (mut k, mut m) = (0x1000u16, 0x1000u16);
        fields(c, "vlan", |c| {
            for (name, bits, shift) in [("vid=", 12, 0), ("pcp=", 3, 13), ("cfi=", 1, 12)] {
                if c.eat(name) {
                    scan_bitfield(c, name, bits, shift, &mut k, &mut m)?;
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
        push(KeyAttr::Vlan(k), KeyAttr::Vlan(m));
    } else if c.eat("eth_type(") {
        let (k, m) = single(c, "eth_type", u16::MAX, Cursor::u16_i)?;
        push(KeyAttr::EthType(k), KeyAttr::EthType(m));
    } else if c.eat("mpls(") {
        let (k, m) = parse_mpls(c)?;
        push(KeyAttr::Mpls(k), KeyAttr::Mpls(m));
    } else if c.eat("ipv4(") {
        let (mut k, mut m) = (Ipv4Key::default(), Ipv4Key::default());
        fields(c, "ipv4", |c| {
            field!(c, "src=", "ipv4 src", [0xff; 4], Cursor::ipv4, k.src, m.src);
            field!(c, "dst=", "ipv4 dst", [0xff; 4], Cursor::ipv4, k.dst, m.dst);
            field!(
                c,
                "proto=",
                "ipv4 proto",
                0xff,
                Cursor::u8_i,
                k.proto,
                m.proto
            );
            field!(c, "tos=", "ipv4 tos", 0xff, Cursor::u8_i, k.tos, m.tos);
            field!(c, "ttl=", "ipv4 ttl", 0xff, Cursor::u8_i, k.ttl, m.ttl);
            if c.eat("frag=") {
                k.frag = scan_frag(c, "ipv4")?;
                m.frag = 0xff;
                return Ok(true);
            }
            Ok(false)
        })?;
        push(KeyAttr::Ipv4(k), KeyAttr::Ipv4(m));
    } else if c.eat("ipv6(") {
        let (mut k, mut m) = (Ipv6Key::default(), Ipv6Key::default());
        fields(c, "ipv6", |c| {
            field!(
                c,
                "src=",
                "ipv6 src",
                [0xff; 16],
                Cursor::ipv6,
                k.src,
                m.src
            );
            field!(
                c,
                "dst=",
                "ipv6 dst",
                [0xff; 16],
                Cursor::ipv6,
                k.dst,
                m.dst
            );
            field!(
                c,
                "label=",
                "ipv6 label",
                0xfffff,
                scan_label,
                k.label,
                m.label
            );
            field!(
                c,
                "proto=",
                "ipv6 proto",
                0xff,
                Cursor::u8_i,
                k.proto,
                m.proto
            );
            field!(
                c,
                "tclass=",
                "ipv6 tclass",
                0xff,
                Cursor::u8_i,
                k.tclass,
                m.tclass
            );
            field!(
                c,
                "hlimit=",
                "ipv6 hlimit",
                0xff,
                Cursor::u8_i,
                k.hlimit,
                m.hlimit
            );
            if c.eat("frag=") {
                k.frag = scan_frag(c, "ipv6")?;
                m.frag = 0xff;
                return Ok(true);
            }
            Ok(false)
        })?;
        push(KeyAttr::Ipv6(k), KeyAttr::Ipv6(m));
    } else if c.eat("tcp(") {
        let (k, m) = parse_ports(c, "tcp")?;
        push(KeyAttr::Tcp(k), KeyAttr::Tcp(m));
    } else if c.eat("tcp_flags(") {
        let (k, m) = parse_flags(c, "tcp_flags", fmt::tcp_flag_name, 0x0fff)?;
        c.expect(")", "tcp_flags")?;
        push(KeyAttr::TcpFlags(k as u16), KeyAttr::TcpFlags(m as u16));
    } else if c.eat("udp(") {
        let (k, m) = parse_ports(c, "udp")?;
        push(KeyAttr::Udp(k), KeyAttr::Udp(m));
    } else if c.eat("sctp(") {
        let (k, m) = parse_ports(c, "sctp")?;
        push(KeyAttr::Sctp(k), KeyAttr::Sctp(m));
    } else if c.eat("icmp(") {
        let (k, m) = parse_icmp(c, "icmp")?;
        push(KeyAttr::Icmp(k), KeyAttr::Icmp(m));
    } else if c.eat("icmpv6(") {
        let (k, m) = parse_icmp(c, "icmpv6")?;
        push(KeyAttr::Icmpv6(k), KeyAttr::Icmpv6(m));
    } else if c.eat("arp(") {
        let (mut k, mut m) = (ArpKey::default(), ArpKey::default());
        fields(c, "arp", |c| {
            field!(c, "sip=", "arp sip", [0xff; 4], Cursor::ipv4, k.sip, m.sip);
            field!(c, "tip=", "arp tip", [0xff; 4], Cursor::ipv4, k.tip, m.tip);
            field!(c, "op=", "arp op", 0xffff, Cursor::u16_i, k.op, m.op);
            field!(c, "sha=", "arp sha", [0xff; 6], Cursor::mac, k.sha, m.sha);
            field!(c, "tha=", "arp tha", [0xff; 6], Cursor::mac, k.tha, m.tha);
            Ok(false)
        })?;
        push(KeyAttr::Arp(k), KeyAttr::Arp(m));
    } else if c.eat("nd(") {
        let (mut k, mut m) = (NdKey::default(), NdKey::default());
        fields(c, "nd", |c| {
            field!(
                c,
                "target=",
                "nd target",
                [0xff; 16],
                Cursor::ipv6,
                k.target,
                m.target
            );
            field!(c, "sll=", "nd sll", [0xff; 6], Cursor::mac, k.sll, m.sll);
            field!(c, "tll=", "nd tll", [0xff; 6], Cursor::mac, k.tll, m.tll);
            Ok(false)
        })?;
        push(KeyAttr::Nd(k), KeyAttr::Nd(m));
    } else if c.eat("nd_ext(") {
        let (mut k, mut m) = (NdExtKey::default(), NdExtKey::default());
        fields(c, "nd_ext", |c| {
            field!(
                c,
                "nd_reserved=",
                "nd_ext nd_reserved",
                u32::MAX,
                Cursor::u32_i,
                k.reserved,
                m.reserved
            );
            field!(
                c,
                "nd_options_type=",
                "nd_ext nd_options_type",
                0xff,
                Cursor::u8_i,
                k.options_type,
                m.options_type
            );
            Ok(false)
        })?;
        push(KeyAttr::NdExt(k), KeyAttr::NdExt(m));
    } else if c.eat("packet_type(") {
        let (mut ns, mut ns_m, mut id, mut id_m) = (0u16, 0u16, 0u16, 0u16);
        fields(c, "packet_type", |c| {
            field!(c, "ns=", "packet_type ns", 0xffff, Cursor::u16_i, ns, ns_m);
            field!(c, "id=", "packet_type id", 0xffff, Cursor::u16_i, id, id_m);
            Ok(false)
        })?;
        push(
            KeyAttr::PacketType((u32::from(ns) << 16) | u32::from(id)),
            KeyAttr::PacketType((u32::from(ns_m) << 16) | u32::from(id_m)),
        );
    } else if c.eat("encap(") {
        if *depth + 1 >= MAX_NESTING {
            return Err(OdpError::TooDeep);
        }
        *depth += 1;
        let (mut k, mut m) = (Vec::new(), Vec::new());
        loop {
            c.skip_delims();
            if c.at_end() {
                return Err(c.err("encap: missing ')'"));
            }
            if c.eat(")") {
                break;
            }
            parse_attr(c, names, depth, &mut k, &mut m)?;
        }
        *depth -= 1;
        push(KeyAttr::Encap(k), KeyAttr::Encap(m));
    } else {
        let word = c.word();
        return Err(match word.as_str() {
            "nsh" => OdpError::Unsupported("nsh: NSH flow keys are not implemented".into()),
            "" => c.err("expected a key attribute"),
            _ => c.err(&format!("unknown key attribute '{word}'")),
        });
    }
    Ok(())
}

fn scan_u128(c: &mut Cursor) -> Option<u128> {
    let b = c.int_string(16)?;
    let mut a = [0u8; 16];
    a.copy_from_slice(&b);
    Some(u128::from_be_bytes(a))
}

fn scan_label(c: &mut Cursor) -> Option<u32> {
    c.int_max(0xfffff).map(|v| v as u32)
}

fn scan_frag(c: &mut Cursor, attr: &str) -> Result<u8> {
    for (name, v) in [
        ("no", FRAG_NO),
        ("first", FRAG_FIRST),
        ("later", FRAG_LATER),
    ] {
        if c.starts(name) && !c.rest().get(name.len()).is_some_and(u8::is_ascii_lowercase) {
            c.eat(name);
            return Ok(v);
        }
    }
    Err(c.err(&format!("{attr} frag: expected no, first or later")))
}

/// A value in a `bits`-wide field at `shift` of a 16-bit word (VLAN TCI).
fn scan_bitfield(
    c: &mut Cursor,
    name: &str,
    bits: u32,
    shift: u32,
    key: &mut u16,
    mask: &mut u16,
) -> Result<()> {
    let field = ((1u32 << bits) - 1) << shift;
    let what = format!("vlan {}", name.trim_end_matches('='));
    let v = c
        .u16_i()
        .ok_or_else(|| c.err(&format!("{what}: bad value")))?;
    if u32::from(v) >> bits != 0 {
        return Err(OdpError::Invalid(format!(
            "{what}: {v} does not fit {bits} bits"
        )));
    }
    *key = ((u32::from(*key) & !field) | (u32::from(v) << shift)) as u16;
    if c.eat("/") {
        let m = c
            .u16_i()
            .ok_or_else(|| c.err(&format!("{what}: bad mask")))?;
        if u32::from(m) >> bits != 0 {
            return Err(OdpError::Invalid(format!(
                "{what}: mask {m:#x} does not fit {bits} bits"
            )));
        }
        *mask = ((u32::from(*mask) & !field) | (u32::from(m) << shift)) as u16;
    } else {
        *mask |= field as u16;
    }
    Ok(())
}

fn parse_port(c: &mut Cursor, names: Option<&PortNames>) -> Result<(u32, u32)> {
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        return masked(c, "in_port", u32::MAX, Cursor::u32_i);
    }
    let r = c.rest();
    let n = r.iter().take_while(|b| **b != b')').count();
    let name = String::from_utf8_lossy(&r[..n]).into_owned();
    match names.and_then(|m| m.number(&name)) {
        Some(port) => {
            c.set_pos(c.pos() + n);
            Ok((port, u32::MAX))
        }
        None => Err(c.err(&format!("in_port: unknown port '{name}'"))),
    }
}

fn parse_ports(c: &mut Cursor, attr: &str) -> Result<(PortsKey, PortsKey)> {
    let (mut k, mut m) = (PortsKey::default(), PortsKey::default());
    fields(c, attr, |c| {
        field!(c, "src=", "src port", 0xffff, Cursor::u16_i, k.src, m.src);
        field!(c, "dst=", "dst port", 0xffff, Cursor::u16_i, k.dst, m.dst);
        Ok(false)
    })?;
    Ok((k, m))
}

fn parse_icmp(c: &mut Cursor, attr: &str) -> Result<(IcmpKey, IcmpKey)> {
    let (mut k, mut m) = (IcmpKey::default(), IcmpKey::default());
    fields(c, attr, |c| {
        field!(
            c,
            "type=",
            "icmp type",
            0xff,
            Cursor::u8_i,
            k.icmp_type,
            m.icmp_type
        );
        field!(c, "code=", "icmp code", 0xff, Cursor::u8_i, k.code, m.code);
        Ok(false)
    })?;
    Ok((k, m))
}

/// OVS `parse_flags` with `)` as terminator: numeric `v/m`, `+a-b` (masked)
/// or `a|b` (exact). Does not consume the `)`.
pub(crate) fn parse_flags(
    c: &mut Cursor,
    what: &str,
    name: fmt::BitName,
    allowed: u32,
) -> Result<(u32, u32)> {
    let unknown = |c: &Cursor| c.err(&format!("{what}: unknown flag"));
    // Numeric value/mask.
    let start = c.pos();
    if let Some(v) = c.u32_i() {
        if c.eat("/") {
            let m = c
                .u32_i()
                .ok_or_else(|| c.err(&format!("{what}: bad mask")))?;
            if v & !allowed != 0 || m & !allowed != 0 {
                return Err(unknown(c));
            }
            return Ok((v, m));
        }
        c.set_pos(start);
    }
    let find = |c: &Cursor, ends: &[u8]| -> Option<(u32, usize)> {
        (0..32).map(|i| 1u32 << i).find_map(|bit| {
            let n = name(bit)?;
            let r = c.rest();
            (r.starts_with(n.as_bytes()) && r.get(n.len()).is_some_and(|e| ends.contains(e)))
                .then_some((bit, n.len()))
        })
    };
    if matches!(c.peek(), Some(b'+' | b'-')) {
        let (mut v, mut m) = (0u32, 0u32);
        while c.peek() != Some(b')') {
            let set = match c.bump() {
                Some(b'+') => true,
                Some(b'-') => false,
                _ => return Err(c.err(&format!("{what}: flags must be preceded by '+' or '-'"))),
            };
            let (bit, len) = find(c, b"+-)").ok_or_else(|| unknown(c))?;
            if m & bit != 0 {
                return Err(c.err(&format!("{what}: each flag can be specified only once")));
            }
            if bit & allowed == 0 {
                return Err(unknown(c));
            }
            if set {
                v |= bit;
            }
            m |= bit;
            c.set_pos(c.pos() + len);
        }
        return Ok((v, m));
    }
    let mut v = 0u32;
    loop {
        match c.peek() {
            Some(b')') => break,
            None => return Err(c.err(&format!("{what}: missing ')'"))),
            _ => {}
        }
        if let Some(n) = c.u32_i() {
            if n & !allowed != 0 {
                return Err(unknown(c));
            }
            v |= n;
        } else {
            let (bit, len) = find(c, b"|)").ok_or_else(|| unknown(c))?;
            if bit & allowed == 0 {
                return Err(unknown(c));
            }
            v |= bit;
            c.set_pos(c.pos() + len);
        }
        if !c.eat("|") && c.peek() != Some(b')') {
            return Err(unknown(c));
        }
    }
    Ok((v, u32::MAX))
}

fn parse_mpls(c: &mut Cursor) -> Result<(Vec<u32>, Vec<u32>)> {
    const FIELDS: [(&str, u32, u32); 4] = [
        ("label=", 20, 12),
        ("tc=", 3, 9),
        ("ttl=", 8, 0),
        ("bos=", 1, 8),
    ];
    let (mut k, mut m) = (vec![0u32], vec![0u32]);
    let mut seen = 0u32;
    fields(c, "mpls", |c| {
        for (i, (name, bits, shift)) in FIELDS.iter().enumerate() {
            if c.eat(name) {
                if seen & (1 << i) != 0 {
                    if k.len() == 3 {
                        return Err(OdpError::Invalid("mpls: more than 3 labels".into()));
                    }
                    seen = 0;
                    k.push(0);
                    m.push(0);
                }
                seen |= 1 << i;
                let what = format!("mpls {}", name.trim_end_matches('='));
                let field = ((1u64 << bits) - 1) << shift;
                let v = c
                    .u32_i()
                    .ok_or_else(|| c.err(&format!("{what}: bad value")))?;
                if u64::from(v) >> bits != 0 {
                    return Err(OdpError::Invalid(format!(
                        "{what}: {v} does not fit {bits} bits"
                    )));
                }
                let (kl, ml) = (k.last_mut(), m.last_mut());
                if let (Some(kl), Some(ml)) = (kl, ml) {
                    *kl = ((u64::from(*kl) & !field) | (u64::from(v) << shift)) as u32;
                    if c.eat("/") {
                        let mv = c
                            .u32_i()
                            .ok_or_else(|| c.err(&format!("{what}: bad mask")))?;
                        if u64::from(mv) >> bits != 0 {
                            return Err(OdpError::Invalid(format!("{what}: mask does not fit")));
                        }
                        *ml = ((u64::from(*ml) & !field) | (u64::from(mv) << shift)) as u32;
                    } else {
                        *ml |= field as u32;
                    }
                }
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    Ok((k, m))
}

fn parse_tunnel(c: &mut Cursor) -> Result<(Vec<TunAttr>, Vec<TunAttr>)> {
    let (mut k, mut m) = (Vec::new(), Vec::new());
    fields(c, "tunnel", |c| {
        macro_rules! tun {
            ($name:literal, $what:literal, $full:expr, $f:expr, $variant:path) => {
                if c.eat($name) {
                    let (v, mm) = masked(c, $what, $full, $f)?;
                    k.push($variant(v));
                    m.push($variant(mm));
                    return Ok(true);
                }
            };
        }
        tun!(
            "tun_id=",
            "tunnel tun_id",
            u64::MAX,
            Cursor::u64_i,
            TunAttr::Id
        );
        tun!(
            "src=",
            "tunnel src",
            [0xff; 4],
            Cursor::ipv4,
            TunAttr::Ipv4Src
        );
        tun!(
            "dst=",
            "tunnel dst",
            [0xff; 4],
            Cursor::ipv4,
            TunAttr::Ipv4Dst
        );
        tun!(
            "ipv6_src=",
            "tunnel ipv6_src",
            [0xff; 16],
            Cursor::ipv6,
            TunAttr::Ipv6Src
        );
        tun!(
            "ipv6_dst=",
            "tunnel ipv6_dst",
            [0xff; 16],
            Cursor::ipv6,
            TunAttr::Ipv6Dst
        );
        tun!("tos=", "tunnel tos", 0xff, Cursor::u8_i, TunAttr::Tos);
        tun!("ttl=", "tunnel ttl", 0xff, Cursor::u8_i, TunAttr::Ttl);
        tun!(
            "tp_src=",
            "tunnel tp_src",
            0xffff,
            Cursor::u16_i,
            TunAttr::TpSrc
        );
        tun!(
            "tp_dst=",
            "tunnel tp_dst",
            0xffff,
            Cursor::u16_i,
            TunAttr::TpDst
        );
        if c.eat("erspan(") {
            let (ek, em) = parse_erspan(c)?;
            k.push(TunAttr::Erspan(ek));
            m.push(TunAttr::Erspan(em));
            return Ok(true);
        }
        if c.eat("vxlan(gbp(") {
            let (gk, gm) = parse_gbp(c)?;
            if gk != 0 {
                k.push(TunAttr::VxlanGbp(gk));
            }
            if gm != 0 {
                m.push(TunAttr::VxlanGbp(gm));
            }
            return Ok(true);
        }
        if c.eat("geneve(") {
            let (gk, gm) = parse_geneve(c, true)?;
            k.push(TunAttr::Geneve(gk));
            m.push(TunAttr::Geneve(gm));
            return Ok(true);
        }
        if c.eat("flags(") {
            let (fk, fm) = parse_flags(c, "tunnel flags", fmt::tun_flag_name, 0xf)?;
            c.expect(")", "tunnel flags")?;
            for (bit, attr) in [
                (2, TunAttr::DontFragment),
                (4, TunAttr::Csum),
                (1, TunAttr::Oam),
            ] {
                if fk & bit != 0 {
                    k.push(attr.clone());
                }
                if fm & bit != 0 {
                    m.push(attr);
                }
            }
            return Ok(true);
        }
        Ok(false)
    })?;
    Ok((k, m))
}

fn parse_gbp(c: &mut Cursor) -> Result<(u32, u32)> {
    let (mut id, mut id_m, mut fl, mut fl_m) = (0u16, 0u16, 0u8, 0u8);
    if c.eat("id=") {
        (id, id_m) = masked(c, "vxlan gbp id", 0xffff, Cursor::u16_i)?;
    }
    c.eat(",");
    if c.eat("flags=") {
        (fl, fl_m) = masked(c, "vxlan gbp flags", 0xff, Cursor::u8_i)?;
    }
    c.expect("))", "vxlan gbp")?;
    Ok((
        (u32::from(fl) << 16) | u32::from(id),
        (u32::from(fl_m) << 16) | u32::from(id_m),
    ))
}

fn parse_erspan(c: &mut Cursor) -> Result<(ErspanOpts, ErspanOpts)> {
    let (mut k, mut m) = (ErspanOpts::default(), ErspanOpts::default());
    if c.eat("ver=") {
        (k.version, m.version) = masked(c, "erspan ver", 0xff, Cursor::u8_i)?;
    }
    c.eat(",");
    match k.version {
        1 => {
            if c.eat("idx=") {
                (k.index, m.index) = masked(c, "erspan idx", u32::MAX, Cursor::u32_i)?;
            }
        }
        2 => {
            if c.eat("dir=") {
                (k.dir, m.dir) = masked(c, "erspan dir", 0xff, Cursor::u8_i)?;
            }
            c.eat(",");
            if c.eat("hwid=") {
                (k.hwid, m.hwid) = masked(c, "erspan hwid", 0xff, Cursor::u8_i)?;
            }
        }
        v => return Err(OdpError::Invalid(format!("erspan ver: {v} is not 1 or 2"))),
    }
    c.expect(")", "erspan")?;
    Ok((k, m))
}

/// Geneve options `{class=..,type=..,len=..,data/mask}...)` as raw TLV
/// bytes (key, mask). Consumes the closing `)`.
pub(crate) fn parse_geneve(c: &mut Cursor, with_mask: bool) -> Result<(Vec<u8>, Vec<u8>)> {
    let (mut k, mut m) = (Vec::new(), Vec::new());
    let mut remain: usize = 252;
    while c.peek() == Some(b'{') && remain >= 4 {
        c.bump();
        remain -= 4;
        let (mut class, mut class_m, mut typ, mut typ_m) = (0u16, 0u16, 0u8, 0u8);
        let (mut len, mut len_m) = (0u8, 0x1fu8);
        if c.eat("class=") {
            (class, class_m) = masked(c, "geneve class", 0xffff, Cursor::u16_i)?;
        }
        c.eat(",");
        if c.eat("type=") {
            (typ, typ_m) = masked(c, "geneve type", 0xff, Cursor::u8_i)?;
        }
        c.eat(",");
        if c.eat("len=") {
            let (l, lm) = masked(c, "geneve len", 0xff, Cursor::u8_i)?;
            if l > 124 || l % 4 != 0 || usize::from(l) > remain {
                return Err(OdpError::Invalid(format!(
                    "geneve len: {l} is not a multiple of 4 up to 124"
                )));
            }
            len = l;
            len_m = lm & 0x1f;
        }
        let dlen = usize::from(len);
        let mut data = vec![0u8; dlen];
        let mut data_m = vec![0xffu8; dlen];
        if c.eat(",") {
            data = c
                .int_string(dlen)
                .ok_or_else(|| c.err("geneve: bad option data"))?;
        }
        if with_mask && c.eat("/") {
            data_m = c
                .int_string(dlen)
                .ok_or_else(|| c.err("geneve: bad option mask"))?;
        }
        c.expect("}", "geneve option")?;
        k.extend_from_slice(&class.to_be_bytes());
        k.push(typ);
        k.push(len / 4);
        k.extend_from_slice(&data);
        m.extend_from_slice(&class_m.to_be_bytes());
        m.push(typ_m);
        m.push(len_m);
        m.extend_from_slice(&data_m);
        remain -= dlen;
    }
    c.expect(")", "geneve")?;
    Ok((k, m))
}

// ------------------------------------------------------------- formatting

fn mask_empty<T: PartialEq + Default>(m: Option<&T>) -> bool {
    m.is_some_and(|m| *m == T::default())
}

fn f_eth(out: &mut String, name: &str, k: &Mac, m: Option<&Mac>, verbose: bool) {
    if verbose || !mask_empty(m) {
        let _ = write!(out, "{name}=");
        fmt::mac(out, k);
        if let Some(m) = m.filter(|m| **m != [0xff; 6]) {
            out.push('/');
            fmt::mac(out, m);
        }
        out.push(',');
    }
}

fn f_ipv4(out: &mut String, name: &str, k: &Ip4, m: Option<&Ip4>, verbose: bool) {
    if verbose || !mask_empty(m) {
        let _ = write!(out, "{name}=");
        fmt::ipv4(out, k);
        if let Some(m) = m.filter(|m| **m != [0xff; 4]) {
            out.push('/');
            fmt::ipv4(out, m);
        }
        out.push(',');
    }
}

fn f_in6(out: &mut String, name: &str, k: &Ip6, m: Option<&Ip6>, verbose: bool) {
    if verbose || !mask_empty(m) {
        let _ = write!(out, "{name}=");
        fmt::ipv6(out, k);
        if let Some(m) = m.filter(|m| **m != [0xff; 16]) {
            out.push('/');
            fmt::ipv6(out, m);
        }
        out.push(',');
    }
}

/// `%#x` or `%u` value with `/%#x` mask, for integer fields.
fn f_int(
    out: &mut String,
    name: &str,
    hex: bool,
    k: u64,
    m: Option<u64>,
    full: u64,
    verbose: bool,
) {
    if verbose || m != Some(0) {
        if hex {
            let _ = write!(out, "{name}={}", hexp(k.into()));
        } else {
            let _ = write!(out, "{name}={k}");
        }
        if let Some(m) = m.filter(|m| *m != full) {
            let _ = write!(out, "/{}", hexp(m.into()));
        }
        out.push(',');
    }
}

fn f_u8u(out: &mut String, name: &str, k: u8, m: Option<u8>, verbose: bool) {
    f_int(out, name, false, k.into(), m.map(u64::from), 0xff, verbose);
}
fn f_u8x(out: &mut String, name: &str, k: u8, m: Option<u8>, verbose: bool) {
    f_int(out, name, true, k.into(), m.map(u64::from), 0xff, verbose);
}
fn f_be16(out: &mut String, name: &str, k: u16, m: Option<u16>, verbose: bool) {
    f_int(
        out,
        name,
        false,
        k.into(),
        m.map(u64::from),
        0xffff,
        verbose,
    );
}
fn f_be16x(out: &mut String, name: &str, k: u16, m: Option<u16>, verbose: bool) {
    f_int(out, name, true, k.into(), m.map(u64::from), 0xffff, verbose);
}

fn f_frag(out: &mut String, k: u8, m: Option<u8>) {
    let empty = m == Some(0);
    let full = m.is_none_or(|m| m == 0xff);
    if !empty && !full {
        let _ = write!(
            out,
            "error: partial mask not supported for frag ({}),",
            hexp(m.unwrap_or(0).into())
        );
    } else if !empty {
        let name = match k {
            FRAG_NO => "no",
            FRAG_FIRST => "first",
            FRAG_LATER => "later",
            _ => "<error>",
        };
        let _ = write!(out, "frag={name},");
    }
}

/// OVS `format_vlan_tci`.
pub(crate) fn f_vlan_tci(out: &mut String, tci: u16, mask: u16, verbose: bool) {
    let (vid, vid_m) = (tci & 0xfff, mask & 0xfff);
    let (pcp, pcp_m) = (tci >> 13, mask >> 13);
    if verbose || vid != 0 || vid_m != 0 {
        let _ = write!(out, "vid={vid}");
        if vid_m != 0xfff {
            let _ = write!(out, "/{vid_m:#x}");
        }
        out.push(',');
    }
    if verbose || pcp != 0 || pcp_m != 0 {
        let _ = write!(out, "pcp={pcp}");
        if pcp_m != 7 {
            let _ = write!(out, "/{pcp_m:#x}");
        }
        out.push(',');
    }
    if tci & 0x1000 == 0 {
        out.push_str("cfi=0,");
    }
    chomp(out, ',');
}

pub(crate) fn f_mpls_lse(out: &mut String, lse: u32) {
    let _ = write!(
        out,
        "label={},tc={},ttl={},bos={}",
        lse >> 12,
        (lse >> 9) & 7,
        lse & 0xff,
        (lse >> 8) & 1
    );
}

fn f_u128(out: &mut String, k: u128, m: Option<u128>, verbose: bool) {
    if verbose || m.is_some_and(|m| m != 0) {
        fmt::put_hex(out, &k.to_be_bytes());
        if let Some(m) = m.filter(|m| *m != u128::MAX) {
            out.push('/');
            fmt::put_hex(out, &m.to_be_bytes());
        }
    }
}

/// OVS `odp_flow_format`.
fn format_attrs(
    out: &mut String,
    key: &[KeyAttr],
    mask: Option<&[KeyAttr]>,
    names: Option<&PortNames>,
    verbose: bool,
) {
    if key.is_empty() {
        out.push_str("<empty>");
        return;
    }
    let mask = mask.filter(|m| !m.is_empty());
    let mut has_ethtype = false;
    let mut has_packet_type = false;
    let mut first = true;
    for a in key {
        let kind = a.kind();
        let mut ma = mask
            .and_then(|m| find(m, kind))
            .filter(|m| m.kind() == kind)
            .cloned();
        match kind {
            KeyAttrKind::EthType => has_ethtype = true,
            KeyAttrKind::PacketType => has_packet_type = true,
            _ => {}
        }
        let nested = matches!(kind, KeyAttrKind::Encap | KeyAttrKind::Tunnel);
        let wildcard = mask.is_some() && ma.as_ref().is_none_or(KeyAttr::mask_is_wildcard);
        if verbose || !wildcard || nested {
            if wildcard && ma.is_none() {
                ma = Some(a.zeroed());
            }
            if !first {
                out.push(',');
            }
            format_attr(out, a, ma.as_ref(), names, verbose);
            first = false;
        } else if kind == KeyAttrKind::Ethernet && !has_packet_type {
            // OVS prints an all-wildcarded eth() because its presence
            // says the packet is Ethernet (and, like OVS, does not count
            // it as a first field).
            if !first {
                out.push(',');
            }
            out.push_str("eth()");
        }
    }
    if !has_ethtype
        && let Some(KeyAttr::EthType(m)) = mask.and_then(|m| find(m, KeyAttrKind::EthType))
    {
        let _ = write!(out, ",eth_type(0/0x{m:04x})");
    }
}

/// OVS `format_odp_key_attr__`: one attribute, `name(...)`.
pub(crate) fn format_attr(
    out: &mut String,
    a: &KeyAttr,
    ma: Option<&KeyAttr>,
    names: Option<&PortNames>,
    verbose: bool,
) {
    let exact = ma.is_none_or(KeyAttr::mask_is_exact);
    out.push_str(a.kind().name());
    out.push('(');
    macro_rules! mk {
        ($variant:path) => {
            match ma {
                Some($variant(m)) => Some(m),
                _ => None,
            }
        };
    }
    match a {
        KeyAttr::Encap(k) => {
            let m = mk!(KeyAttr::Encap);
            match m {
                Some(m) if !m.is_empty() && !k.is_empty() => {
                    format_attrs(out, k, Some(m), names, verbose)
                }
                _ if !k.is_empty() => format_attrs(out, k, None, names, verbose),
                _ => {}
            }
        }
        KeyAttr::Priority(v) | KeyAttr::SkbMark(v) | KeyAttr::DpHash(v) | KeyAttr::RecircId(v) => {
            out.push_str(&hexp((*v).into()));
            if !exact {
                let m = match ma {
                    Some(
                        KeyAttr::Priority(m)
                        | KeyAttr::SkbMark(m)
                        | KeyAttr::DpHash(m)
                        | KeyAttr::RecircId(m),
                    ) => *m,
                    _ => 0,
                };
                let _ = write!(out, "/{}", hexp(m.into()));
            }
        }
        KeyAttr::CtMark(v) => {
            let m = mk!(KeyAttr::CtMark).copied();
            if verbose || m.is_some_and(|m| m != 0) {
                out.push_str(&hexp((*v).into()));
                if !exact {
                    let _ = write!(out, "/{}", hexp(m.unwrap_or(0).into()));
                }
            }
        }
        KeyAttr::CtState(v) => {
            let m = mk!(KeyAttr::CtState).copied().unwrap_or(0);
            if verbose {
                out.push_str(&hexp((*v).into()));
                if !exact {
                    let _ = write!(out, "/{}", hexp(m.into()));
                }
            } else if !exact {
                fmt::flags_masked(out, fmt::ct_state_name, *v, m, u32::MAX);
            } else {
                fmt::flags(out, fmt::ct_state_name, *v, '|');
            }
        }
        KeyAttr::CtZone(v) => {
            let m = mk!(KeyAttr::CtZone).copied();
            if verbose || m.is_some_and(|m| m != 0) {
                out.push_str(&hexp((*v).into()));
                if !exact {
                    let _ = write!(out, "/{}", hexp(m.unwrap_or(0).into()));
                }
            }
        }
        KeyAttr::CtLabels(v) => f_u128(out, *v, mk!(KeyAttr::CtLabels).copied(), verbose),
        KeyAttr::CtTuple4(k) => {
            let m = mk!(KeyAttr::CtTuple4);
            f_ipv4(out, "src", &k.src, m.map(|m| &m.src), verbose);
            f_ipv4(out, "dst", &k.dst, m.map(|m| &m.dst), verbose);
            f_u8u(out, "proto", k.proto, m.map(|m| m.proto), verbose);
            f_be16(out, "tp_src", k.src_port, m.map(|m| m.src_port), verbose);
            f_be16(out, "tp_dst", k.dst_port, m.map(|m| m.dst_port), verbose);
            chomp(out, ',');
        }
        KeyAttr::CtTuple6(k) => {
            let m = mk!(KeyAttr::CtTuple6);
            f_in6(out, "src", &k.src, m.map(|m| &m.src), verbose);
            f_in6(out, "dst", &k.dst, m.map(|m| &m.dst), verbose);
            f_u8u(out, "proto", k.proto, m.map(|m| m.proto), verbose);
            f_be16(out, "src_port", k.src_port, m.map(|m| m.src_port), verbose);
            f_be16(out, "dst_port", k.dst_port, m.map(|m| m.dst_port), verbose);
            chomp(out, ',');
        }
        KeyAttr::Tunnel(k) => {
            format_tunnel(out, k, mk!(KeyAttr::Tunnel).map(Vec::as_slice), verbose)
        }
        KeyAttr::InPort(v) => {
            if exact {
                format_port(out, names, *v);
            } else {
                let m = mk!(KeyAttr::InPort).copied().unwrap_or(0);
                let _ = write!(out, "{v}/{}", hexp(m.into()));
            }
        }
        KeyAttr::PacketType(v) => {
            let m = mk!(KeyAttr::PacketType).copied().unwrap_or(u32::MAX);
            f_be16(out, "ns", (v >> 16) as u16, Some((m >> 16) as u16), verbose);
            f_be16x(out, "id", *v as u16, Some(m as u16), verbose);
            chomp(out, ',');
        }
        KeyAttr::Ethernet(k) => {
            let m = mk!(KeyAttr::Ethernet);
            f_eth(out, "src", &k.src, m.map(|m| &m.src), verbose);
            f_eth(out, "dst", &k.dst, m.map(|m| &m.dst), verbose);
            chomp(out, ',');
        }
        KeyAttr::Vlan(tci) => f_vlan_tci(
            out,
            *tci,
            mk!(KeyAttr::Vlan).copied().unwrap_or(0xffff),
            verbose,
        ),
        KeyAttr::Mpls(k) => {
            if k.is_empty() {
                out.push_str("(bad key length 0)");
            } else if exact {
                for lse in k {
                    f_mpls_lse(out, *lse);
                    out.push(',');
                }
                chomp(out, ',');
            } else {
                let m = mk!(KeyAttr::Mpls).cloned().unwrap_or_default();
                if m.len() != k.len() {
                    let _ = write!(
                        out,
                        "(key length {} != mask length {})",
                        k.len() * 4,
                        m.len() * 4
                    );
                } else {
                    for (lse, ml) in k.iter().zip(&m) {
                        let _ = write!(
                            out,
                            "label={}/{:#x},tc={}/{:x},ttl={}/{:#x},bos={}/{:x},",
                            lse >> 12,
                            ml >> 12,
                            (lse >> 9) & 7,
                            (ml >> 9) & 7,
                            lse & 0xff,
                            ml & 0xff,
                            (lse >> 8) & 1,
                            (ml >> 8) & 1
                        );
                    }
                    chomp(out, ',');
                }
            }
        }
        KeyAttr::EthType(v) => {
            let _ = write!(out, "0x{v:04x}");
            if !exact {
                let _ = write!(
                    out,
                    "/0x{:04x}",
                    mk!(KeyAttr::EthType).copied().unwrap_or(0)
                );
            }
        }
        KeyAttr::Ipv4(k) => {
            let m = mk!(KeyAttr::Ipv4);
            f_ipv4(out, "src", &k.src, m.map(|m| &m.src), verbose);
            f_ipv4(out, "dst", &k.dst, m.map(|m| &m.dst), verbose);
            f_u8u(out, "proto", k.proto, m.map(|m| m.proto), verbose);
            f_u8x(out, "tos", k.tos, m.map(|m| m.tos), verbose);
            f_u8u(out, "ttl", k.ttl, m.map(|m| m.ttl), verbose);
            f_frag(out, k.frag, m.map(|m| m.frag));
            chomp(out, ',');
        }
        KeyAttr::Ipv6(k) => {
            let m = mk!(KeyAttr::Ipv6);
            f_in6(out, "src", &k.src, m.map(|m| &m.src), verbose);
            f_in6(out, "dst", &k.dst, m.map(|m| &m.dst), verbose);
            let lm = m.map(|m| m.label);
            if verbose || lm != Some(0) {
                let _ = write!(out, "label={}", hexp(k.label.into()));
                if let Some(lm) = lm.filter(|lm| lm & 0xfffff != 0xfffff) {
                    let _ = write!(out, "/{}", hexp(lm.into()));
                }
                out.push(',');
            }
            f_u8u(out, "proto", k.proto, m.map(|m| m.proto), verbose);
            f_u8x(out, "tclass", k.tclass, m.map(|m| m.tclass), verbose);
            f_u8u(out, "hlimit", k.hlimit, m.map(|m| m.hlimit), verbose);
            f_frag(out, k.frag, m.map(|m| m.frag));
            chomp(out, ',');
        }
        KeyAttr::Tcp(k) | KeyAttr::Udp(k) | KeyAttr::Sctp(k) => {
            let m = match ma {
                Some(KeyAttr::Tcp(m) | KeyAttr::Udp(m) | KeyAttr::Sctp(m)) => Some(m),
                _ => None,
            };
            f_be16(out, "src", k.src, m.map(|m| m.src), verbose);
            f_be16(out, "dst", k.dst, m.map(|m| m.dst), verbose);
            chomp(out, ',');
        }
        KeyAttr::TcpFlags(v) => {
            if !exact {
                let m = mk!(KeyAttr::TcpFlags).copied().unwrap_or(0);
                fmt::flags_masked(
                    out,
                    fmt::tcp_flag_name,
                    (*v).into(),
                    u32::from(m & 0xfff),
                    0xfff,
                );
            } else {
                fmt::flags(out, fmt::tcp_flag_name, (*v).into(), '|');
            }
        }
        KeyAttr::Icmp(k) | KeyAttr::Icmpv6(k) => {
            let m = match ma {
                Some(KeyAttr::Icmp(m) | KeyAttr::Icmpv6(m)) => Some(m),
                _ => None,
            };
            f_u8u(out, "type", k.icmp_type, m.map(|m| m.icmp_type), verbose);
            f_u8u(out, "code", k.code, m.map(|m| m.code), verbose);
            chomp(out, ',');
        }
        KeyAttr::Arp(k) => {
            let m = mk!(KeyAttr::Arp);
            f_ipv4(out, "sip", &k.sip, m.map(|m| &m.sip), verbose);
            f_ipv4(out, "tip", &k.tip, m.map(|m| &m.tip), verbose);
            f_be16(out, "op", k.op, m.map(|m| m.op), verbose);
            f_eth(out, "sha", &k.sha, m.map(|m| &m.sha), verbose);
            f_eth(out, "tha", &k.tha, m.map(|m| &m.tha), verbose);
            chomp(out, ',');
        }
        KeyAttr::Nd(k) => {
            let m = mk!(KeyAttr::Nd);
            f_in6(out, "target", &k.target, m.map(|m| &m.target), verbose);
            f_eth(out, "sll", &k.sll, m.map(|m| &m.sll), verbose);
            f_eth(out, "tll", &k.tll, m.map(|m| &m.tll), verbose);
            chomp(out, ',');
        }
        KeyAttr::NdExt(k) => {
            let m = mk!(KeyAttr::NdExt);
            // `0x%x`, which (unlike `%#x`) prints zero as 0x0.
            let _ = write!(out, "nd_reserved={:#x},", k.reserved);
            f_u8u(
                out,
                "nd_options_type",
                k.options_type,
                m.map(|m| m.options_type),
                verbose,
            );
            chomp(out, ',');
        }
    }
    out.push(')');
}

/// OVS `format_odp_tun_attr`.
fn format_tunnel(out: &mut String, key: &[TunAttr], mask: Option<&[TunAttr]>, verbose: bool) {
    let (mut flags, mut mask_flags) = (0u32, 0u32);
    for a in key {
        let ma = mask.map(|m| find_tun(m, a.kind()).cloned().unwrap_or_else(|| a.zeroed()));
        macro_rules! m {
            ($variant:path) => {
                match &ma {
                    Some($variant(m)) => Some(m.clone()),
                    _ => None,
                }
            };
        }
        match a {
            TunAttr::Id(v) => {
                f_int(out, "tun_id", true, *v, m!(TunAttr::Id), u64::MAX, verbose);
                // `0x%x` for the value even when zero.
                if *v == 0 && (verbose || m!(TunAttr::Id) != Some(0)) {
                    fix_zero_hex(out, "tun_id=");
                }
                flags |= 8;
                if ma.is_some() {
                    mask_flags |= 8;
                }
            }
            TunAttr::Ipv4Src(v) => f_ipv4(out, "src", v, m!(TunAttr::Ipv4Src).as_ref(), verbose),
            TunAttr::Ipv4Dst(v) => f_ipv4(out, "dst", v, m!(TunAttr::Ipv4Dst).as_ref(), verbose),
            TunAttr::Ipv6Src(v) => {
                f_in6(out, "ipv6_src", v, m!(TunAttr::Ipv6Src).as_ref(), verbose)
            }
            TunAttr::Ipv6Dst(v) => {
                f_in6(out, "ipv6_dst", v, m!(TunAttr::Ipv6Dst).as_ref(), verbose)
            }
            TunAttr::Tos(v) => f_u8x(out, "tos", *v, m!(TunAttr::Tos), verbose),
            TunAttr::Ttl(v) => f_u8u(out, "ttl", *v, m!(TunAttr::Ttl), verbose),
            TunAttr::DontFragment => flags |= 2,
            TunAttr::Csum => flags |= 4,
            TunAttr::Oam => flags |= 1,
            TunAttr::TpSrc(v) => f_be16(out, "tp_src", *v, m!(TunAttr::TpSrc), verbose),
            TunAttr::TpDst(v) => f_be16(out, "tp_dst", *v, m!(TunAttr::TpDst), verbose),
            TunAttr::VxlanGbp(v) => {
                let mv = m!(TunAttr::VxlanGbp);
                out.push_str("vxlan(gbp(");
                f_be16(out, "id", *v as u16, mv.map(|m| m as u16), verbose);
                f_u8x(
                    out,
                    "flags",
                    (*v >> 16) as u8,
                    mv.map(|m| (m >> 16) as u8),
                    verbose,
                );
                chomp(out, ',');
                out.push_str(")),");
            }
            TunAttr::Geneve(v) => {
                out.push_str("geneve(");
                let mv = m!(TunAttr::Geneve);
                match &mv {
                    Some(mv) if mv.len() != v.len() => {
                        let _ = write!(
                            out,
                            "value len {} different from mask len {}",
                            v.len(),
                            mv.len()
                        );
                    }
                    _ => format_geneve(out, v, mv.as_deref(), verbose),
                }
                out.push_str("),");
            }
            TunAttr::Erspan(e) => {
                let me = m!(TunAttr::Erspan);
                out.push_str("erspan(");
                f_u8u(out, "ver", e.version, me.map(|m| m.version), verbose);
                if e.version == 1 {
                    match me {
                        Some(me) => {
                            let _ = write!(
                                out,
                                "idx={}/{},",
                                hexp(e.index.into()),
                                hexp(me.index.into())
                            );
                        }
                        None => {
                            let _ = write!(out, "idx={},", hexp(e.index.into()));
                        }
                    }
                } else if e.version == 2 {
                    f_u8u(out, "dir", e.dir, me.map(|m| m.dir), verbose);
                    f_u8x(out, "hwid", e.hwid, me.map(|m| m.hwid), verbose);
                }
                chomp(out, ',');
                out.push_str("),");
            }
        }
    }
    if let Some(mask) = mask {
        for a in mask {
            match a {
                TunAttr::DontFragment => mask_flags |= 2,
                TunAttr::Csum => mask_flags |= 4,
                TunAttr::Oam => mask_flags |= 1,
                _ => {}
            }
        }
    }
    let mf = mask.map(|_| mask_flags);
    if verbose || mf != Some(0) {
        out.push_str("flags(");
        match mf {
            Some(mf) => fmt::flags_masked(out, fmt::tun_flag_name, flags, mf & 0xf, 0xf),
            None => fmt::flags(out, fmt::tun_flag_name, flags, '|'),
        }
        out.push_str("),");
    }
    chomp(out, ',');
}

/// Rewrites a trailing `name=0` (from `%#x`) to `name=0x0` (`0x%x`).
fn fix_zero_hex(out: &mut String, name: &str) {
    let pat = format!("{name}0");
    if let Some(pos) = out.rfind(&pat) {
        out.replace_range(pos + name.len()..pos + pat.len(), "0x0");
    }
}

/// OVS `format_geneve_opts`.
pub(crate) fn format_geneve(out: &mut String, opts: &[u8], mask: Option<&[u8]>, verbose: bool) {
    let mut off = 0usize;
    while off < opts.len() {
        let left = opts.len() - off;
        if left < 4 {
            let _ = write!(out, "opt len {left} less than minimum 4");
            return;
        }
        let o = &opts[off..];
        let data_len = usize::from(o[3] & 0x1f) * 4;
        let len = 4 + data_len;
        if len > left {
            let _ = write!(out, "opt len {len} greater than remaining {left}");
            return;
        }
        let m = mask.map(|m| &m[off..off + len]);
        out.push('{');
        f_be16x(
            out,
            "class",
            u16::from_be_bytes([o[0], o[1]]),
            m.map(|m| u16::from_be_bytes([m[0], m[1]])),
            verbose,
        );
        f_u8x(out, "type", o[2], m.map(|m| m[2]), verbose);
        let len_m = m.map(|m| {
            if m[3] & 0x1f == 0x1f {
                0xff
            } else {
                m[3] & 0x1f
            }
        });
        f_u8u(out, "len", data_len as u8, len_m, verbose);
        let data = &o[4..len];
        let data_m = m.map(|m| &m[4..len]);
        if data_len > 0 && (verbose || data_m.is_none_or(|d| d.iter().any(|b| *b != 0))) {
            fmt::put_hex(out, data);
            if let Some(dm) = data_m.filter(|d| d.iter().any(|b| *b != 0xff)) {
                out.push('/');
                fmt::put_hex(out, dm);
            }
        } else {
            chomp(out, ',');
        }
        out.push('}');
        off += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> String {
        let m = parse_masked(s, None).unwrap();
        format_masked(&m.key, Some(&m.mask), None, false)
    }

    #[test]
    fn test_parse_masked_round_trip() {
        for s in [
            "in_port(1/0xff),eth(src=00:01:02:03:04:05/ff:ff:ff:ff:ff:f0,dst=10:11:12:13:14:15/ff:ff:ff:ff:ff:f0)",
            "skb_mark(0x1234/0xfff0),in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x86dd),ipv6(src=::1/::255,dst=::2/::255,label=0/0xf0,proto=10/0xf0,tclass=0x70/0xf0,hlimit=128/0xf0,frag=no)",
            "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),ct_state(+trk),ct_zone(0x5/0xff),eth_type(0x0800),ipv4(src=35.8.2.41,dst=172.16.0.20,proto=17,tos=0,ttl=128,frag=later)",
        ] {
            assert_eq!(rt(s), s);
        }
    }

    #[test]
    fn test_parse_errors_name_the_field() {
        let e = parse_masked("ipv4(src=1.2.3)", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ipv4"), "{e}");
        let e = parse_masked("nsh(flags=0)", None).unwrap_err();
        assert!(matches!(e, OdpError::Unsupported(_)));
        let e = parse_masked("bogus(1)", None).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn test_parse_deep_encap_is_bounded() {
        let s = "encap(".repeat(100);
        assert_eq!(parse_masked(&s, None).unwrap_err(), OdpError::TooDeep);
    }
}
