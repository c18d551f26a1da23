//! Datapath action lists as ODP text: `1,set(ipv4(ttl=63)),clone(2),...`.
//!
//! # How it works
//! Parsing follows OVS's `odp_actions_from_string` (and the per-action
//! `parse_odp_action` grammar); formatting follows `format_odp_actions`.
//! An empty list prints as `drop`. `set(...)` becomes a plain
//! [`Action::Set`] when every bit of its attribute is given and a
//! [`Action::SetMasked`] otherwise, exactly where OVS switches between
//! `OVS_ACTION_ATTR_SET` and `_SET_MASKED`, so the printed text matches.
//! `tnl_push` headers are encoded to the bytes an executor pushes and
//! decoded back for printing.
//!
//! Nested lists (`sample`, `clone`, `check_pkt_len`) are bounded by
//! [`MAX_NESTING`].

use super::attr::KeyAttrKind;
use super::fmt::{self, hexp};
use super::scan::{Cursor, DELIMITERS, OdpError, Result};
use super::{MAX_NESTING, PortNames, format_port};
use super::{ct, key, tnl_push};
use crate::action::*;
use std::fmt::Write;

/// Parses an action list. `drop` (alone) and the empty string are the
/// empty list.
pub fn parse(s: &str, names: Option<&PortNames>) -> Result<Vec<Action>> {
    if s.eq_ignore_ascii_case("drop") {
        return Ok(Vec::new());
    }
    let mut c = Cursor::new(s);
    let mut out = Vec::new();
    loop {
        c.skip_delims();
        if c.at_end() {
            return Ok(out);
        }
        out.push(parse_action(&mut c, names, 0)?);
        if c.peek().is_some_and(|ch| !DELIMITERS.contains(&ch)) {
            return Err(c.err("expected ',' after action"));
        }
    }
}

/// Formats an action list (`drop` when empty).
pub fn format(actions: &[Action], names: Option<&PortNames>) -> String {
    let mut out = String::new();
    format_list(&mut out, actions, names);
    out
}

fn format_list(out: &mut String, actions: &[Action], names: Option<&PortNames>) {
    if actions.is_empty() {
        out.push_str("drop");
        return;
    }
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        format_action(out, a, names);
    }
}

// ---------------------------------------------------------------- parsing

pub(super) fn num<T>(c: &mut Cursor, v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| c.err(&format!("{what}: bad number")))
}

/// A nested list up to (not including) its `)`.
fn parse_list(c: &mut Cursor, names: Option<&PortNames>, depth: usize) -> Result<Vec<Action>> {
    let mut out = Vec::new();
    loop {
        c.skip_delims();
        match c.peek() {
            Some(b')') => return Ok(out),
            None => return Err(c.err("action list: missing ')'")),
            _ => out.push(parse_action(c, names, depth + 1)?),
        }
    }
}

/// One action; `depth` is 0 at the top level. Like OVS, an action 32
/// levels deep is rejected (so 30 nested `clone(`s around an output
/// parse, 31 do not).
fn parse_action(c: &mut Cursor, names: Option<&PortNames>, depth: usize) -> Result<Action> {
    if depth + 1 >= MAX_NESTING {
        return Err(OdpError::TooDeep);
    }
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        let p = c.u32_i();
        return Ok(Action::Output(num(c, p, "output port")?));
    }
    if c.eat("trunc(") {
        let v = c.u32_i();
        let v = num(c, v, "trunc")?;
        c.expect(")", "trunc")?;
        return Ok(Action::Trunc(v));
    }
    if let Some(names) = names {
        let r = c.rest();
        let n = r.iter().take_while(|b| !DELIMITERS.contains(b)).count();
        if let Some(port) = std::str::from_utf8(&r[..n])
            .ok()
            .and_then(|w| names.number(w))
        {
            c.set_pos(c.pos() + n);
            return Ok(Action::Output(port));
        }
    }
    if c.eat("recirc(") {
        let v = c.u32_i();
        let v = num(c, v, "recirc")?;
        c.expect(")", "recirc")?;
        return Ok(Action::Recirc(v));
    }
    if c.eat("userspace(") {
        return parse_userspace(c);
    }
    if c.eat("set(") {
        let (mut k, mut m) = (Vec::new(), Vec::new());
        // A set's attribute is parsed in a fresh context, as in OVS.
        let mut d = 0;
        key::parse_attr(c, None, &mut d, &mut k, &mut m)?;
        c.expect(")", "set")?;
        let (Some(k), Some(m)) = (k.pop(), m.pop()) else {
            return Err(c.err("set: expected a key attribute"));
        };
        return Ok(match k.kind() {
            KeyAttrKind::Encap => {
                return Err(OdpError::Invalid("set: encap() cannot be set".into()));
            }
            KeyAttrKind::Tunnel => Action::Set(k),
            _ if m.mask_is_all_ones() => Action::Set(k),
            _ => Action::SetMasked { key: k, mask: m },
        });
    }
    if c.eat("push_vlan(") {
        let mut tpid = 0x8100u16;
        if c.eat("tpid=") {
            let v = c.u16_i();
            tpid = num(c, v, "push_vlan tpid")?;
            c.expect(",", "push_vlan")?;
        }
        c.expect("vid=", "push_vlan")?;
        let vid = c.u16_i();
        let vid = num(c, vid, "push_vlan vid")?;
        c.expect(",pcp=", "push_vlan")?;
        let pcp = c.u16_i();
        let pcp = num(c, pcp, "push_vlan pcp")?;
        let mut cfi = 1;
        if c.eat(",cfi=") {
            let v = c.u16_i();
            cfi = num(c, v, "push_vlan cfi")?;
        }
        c.expect(")", "push_vlan")?;
        if vid > 0xfff || pcp > 7 {
            return Err(OdpError::Invalid(
                "push_vlan: vid must fit 12 bits and pcp 3 bits".into(),
            ));
        }
        let tci = vid | (pcp << 13) | if cfi != 0 { 0x1000 } else { 0 };
        return Ok(Action::PushVlan { tpid, tci });
    }
    if c.eat("pop_vlan") {
        return Ok(Action::PopVlan);
    }
    if c.eat("meter(") {
        let v = c.u32_i();
        let v = num(c, v, "meter")?;
        c.expect(")", "meter")?;
        return Ok(Action::Meter(v));
    }
    if c.eat("sample(sample=") {
        let r = c.rest();
        let n = r
            .iter()
            .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
            .count();
        let pct: f64 = std::str::from_utf8(&r[..n])
            .ok()
            .and_then(|t| t.parse().ok())
            .filter(|p: &f64| (0.0..=100.0).contains(p))
            .ok_or_else(|| c.err("sample: percentage must be 0..100"))?;
        c.set_pos(c.pos() + n);
        c.expect("%,actions(", "sample")?;
        let actions = parse_list(c, names, depth)?;
        c.expect("))", "sample")?;
        let p = (f64::from(u32::MAX) * (pct / 100.0) + 0.5).floor();
        let probability = if p <= 0.0 {
            0
        } else if p >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            p as u32
        };
        return Ok(Action::Sample {
            probability,
            actions,
        });
    }
    if c.eat("clone(") {
        let actions = parse_list(c, names, depth)?;
        c.expect(")", "clone")?;
        return Ok(Action::Clone(actions));
    }
    if c.eat("check_pkt_len(size=") {
        let v = c.u16_i();
        let pkt_len = num(c, v, "check_pkt_len size")?;
        c.expect(",gt(", "check_pkt_len")?;
        let gt = if c.eat("drop") {
            Vec::new()
        } else {
            parse_list(c, names, depth)?
        };
        c.expect("),le(", "check_pkt_len")?;
        let le = if c.eat("drop") {
            Vec::new()
        } else {
            parse_list(c, names, depth)?
        };
        c.expect("))", "check_pkt_len")?;
        return Ok(Action::CheckPktLen { pkt_len, gt, le });
    }
    if c.eat("tnl_pop(") {
        // OVS prints the port's name here but only reads numbers; read
        // both so printed text parses back.
        let mut v = c.u32_i();
        if v.is_none() {
            let r = c.rest();
            let n = r.iter().take_while(|b| **b != b')').count();
            let name = std::str::from_utf8(&r[..n]).unwrap_or("");
            v = names.and_then(|m| m.number(name));
            if v.is_some() {
                c.set_pos(c.pos() + n);
            }
        }
        let v = num(c, v, "tnl_pop")?;
        c.expect(")", "tnl_pop")?;
        return Ok(Action::TnlPop(v));
    }
    if c.eat("ct_clear") {
        return Ok(Action::CtClear);
    }
    if c.eat("tnl_push(") {
        return tnl_push::parse_tnl_push(c);
    }
    if c.eat("lb_output(") {
        let v = c.u32_i();
        let v = num(c, v, "lb_output")?;
        c.expect(")", "lb_output")?;
        return Ok(Action::LbOutput(v));
    }
    if c.eat("psample(") {
        return parse_psample(c);
    }
    if c.eat("push_mpls(") {
        let mut f = [0u32; 4];
        for (i, (name, max)) in [("label=", 0xfffff), ("tc=", 7), ("ttl=", 0xff), ("bos=", 1)]
            .iter()
            .enumerate()
        {
            if i > 0 {
                c.expect(",", "push_mpls")?;
            }
            c.expect(name, "push_mpls")?;
            let v = c.u32_i().filter(|v| v <= max);
            f[i] = num(c, v, "push_mpls")?;
        }
        c.expect(",eth_type=", "push_mpls")?;
        let t = c.int_x().and_then(|t| u16::try_from(t).ok());
        let ethertype = num(c, t, "push_mpls eth_type")?;
        c.expect(")", "push_mpls")?;
        let lse = (f[0] << 12) | (f[1] << 9) | (f[3] << 8) | f[2];
        return Ok(Action::PushMpls { lse, ethertype });
    }
    if c.eat("pop_mpls(eth_type=") {
        let t = c.int_x().and_then(|t| u16::try_from(t).ok());
        let ethertype = num(c, t, "pop_mpls eth_type")?;
        c.expect(")", "pop_mpls")?;
        return Ok(Action::PopMpls { ethertype });
    }
    if c.eat("hash(") {
        let alg = if c.eat("l4(") {
            HashAlg::L4
        } else if c.eat("sym_l4(") {
            HashAlg::SymL4
        } else {
            return Err(c.err("hash: expected l4( or sym_l4("));
        };
        let v = c.u32_i();
        let basis = num(c, v, "hash basis")?;
        c.expect("))", "hash")?;
        return Ok(Action::Hash { alg, basis });
    }
    if c.eat("push_eth(src=") {
        let src = c.mac();
        let src = num(c, src, "push_eth src")?;
        c.expect(",dst=", "push_eth")?;
        let dst = c.mac();
        let dst = num(c, dst, "push_eth dst")?;
        if c.eat(",type=") {
            let _ = c.u16_i();
        }
        c.expect(")", "push_eth")?;
        return Ok(Action::PushEth { src, dst });
    }
    if c.eat("pop_eth") {
        return Ok(Action::PopEth);
    }
    if c.eat("drop") {
        return Ok(Action::Drop);
    }
    if c.starts("ct") {
        return ct::parse_ct(c);
    }
    let word = c.word();
    Err(match word.as_str() {
        "push_nsh" | "pop_nsh" | "encap_nsh" | "decap_nsh" => {
            OdpError::Unsupported(format!("{word}: NSH actions are not implemented"))
        }
        "add_mpls" | "dec_ttl" => OdpError::Unsupported(format!("{word}: not implemented")),
        "" => c.err("expected an action"),
        _ => c.err(&format!("unknown action '{word}'")),
    })
}

fn parse_psample(c: &mut Cursor) -> Result<Action> {
    let (mut group, mut cookie) = (None, Vec::new());
    loop {
        c.skip_delims();
        if c.eat(")") {
            break;
        }
        if c.eat("group=") {
            let v = c.u32_i();
            group = Some(num(c, v, "psample group")?);
        } else if c.eat("cookie=") {
            cookie = parse_hex_bytes(c, 16)
                .ok_or_else(|| c.err("psample cookie: expected 0x and up to 16 bytes of hex"))?;
        } else {
            return Err(c.err(&format!("psample: unknown field '{}'", c.word())));
        }
    }
    let group = group.ok_or_else(|| OdpError::Invalid("psample: group is required".into()))?;
    Ok(Action::Psample { group, cookie })
}

/// `0x` followed by hex digits, as bytes (an odd digit count gets a
/// leading zero nibble).
fn parse_hex_bytes(c: &mut Cursor, max: usize) -> Option<Vec<u8>> {
    if !(c.eat("0x") || c.eat("0X")) {
        return None;
    }
    let r = c.rest();
    let n = r.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if n == 0 || n.div_ceil(2) > max {
        return None;
    }
    let digits: Vec<u8> = r[..n]
        .iter()
        .map(|d| (*d as char).to_digit(16).unwrap_or(0) as u8)
        .collect();
    let mut out = Vec::with_capacity(n.div_ceil(2));
    let mut i = 0;
    if n % 2 == 1 {
        out.push(digits[0]);
        i = 1;
    }
    while i + 1 < n {
        out.push((digits[i] << 4) | digits[i + 1]);
        i += 2;
    }
    c.set_pos(c.pos() + n);
    Some(out)
}

fn parse_userspace(c: &mut Cursor) -> Result<Action> {
    c.expect("pid=", "userspace")?;
    let v = c.u32_i();
    let pid = num(c, v, "userspace pid")?;
    let mut userdata = None;
    if c.eat(",sFlow(vid=") {
        let vid = c.u16_i().filter(|v| *v <= 0xfff);
        let vid = num(c, vid, "sFlow vid")?;
        c.expect(",pcp=", "sFlow")?;
        let pcp = c.u16_i().filter(|v| *v <= 7);
        let pcp = num(c, pcp, "sFlow pcp")?;
        c.expect(",output=", "sFlow")?;
        let o = c.u32_i();
        let output = num(c, o, "sFlow output")?;
        c.expect(")", "sFlow")?;
        let mut tci = vid | (pcp << 13);
        if tci != 0 {
            tci |= 0x1000;
        }
        userdata = Some(Userdata::SFlow {
            vlan_tci: tci,
            output,
        });
    } else if c.eat(",slow_path(") {
        let mut reasons = 0u32;
        while !c.eat(")") {
            if let Some(v) = c.u32_i() {
                reasons |= v;
            } else {
                let bit = (0..7).map(|i| 1u32 << i).find(|b| {
                    fmt::slow_path_name(*b).is_some_and(|n| {
                        c.starts(n) && matches!(c.rest().get(n.len()), Some(b',' | b'|' | b')'))
                    })
                });
                let bit = bit.ok_or_else(|| c.err("slow_path: unknown reason"))?;
                c.eat(fmt::slow_path_name(bit).unwrap_or(""));
                reasons |= bit;
            }
            if !c.eat("|") && !c.eat(",") && c.peek() != Some(b')') {
                return Err(c.err("slow_path: expected ')'"));
            }
        }
        userdata = Some(Userdata::SlowPath { reasons });
    } else if c.eat(",flow_sample(probability=") {
        let mut v = [0u32; 5];
        for (i, name) in [
            "",
            ",collector_set_id=",
            ",obs_domain_id=",
            ",obs_point_id=",
            ",output_port=",
        ]
        .iter()
        .enumerate()
        {
            c.expect(name, "flow_sample")?;
            let x = c.u32_i();
            v[i] = num(c, x, "flow_sample")?;
        }
        let probability = u16::try_from(v[0])
            .map_err(|_| OdpError::Invalid("flow_sample probability: must fit 16 bits".into()))?;
        let direction = if c.eat(",ingress") {
            SampleDirection::Ingress
        } else if c.eat(",egress") {
            SampleDirection::Egress
        } else {
            SampleDirection::Default
        };
        c.expect(")", "flow_sample")?;
        userdata = Some(Userdata::FlowSample {
            probability,
            collector_set_id: v[1],
            obs_domain_id: v[2],
            obs_point_id: v[3],
            output_port: v[4],
            direction,
        });
    } else if c.eat(",ipfix(output_port=") {
        let x = c.u32_i();
        let output_port = num(c, x, "ipfix output_port")?;
        c.expect(")", "ipfix")?;
        userdata = Some(Userdata::Ipfix { output_port });
    } else if c.eat(",controller(reason=") {
        let r = c.u16_i();
        let reason = num(c, r, "controller reason")?;
        c.expect(",dont_send=", "controller")?;
        let d = c.u8_i();
        let dont_send = num(c, d, "controller dont_send")? != 0;
        c.expect(",continuation=", "controller")?;
        let d = c.u8_i();
        let continuation = num(c, d, "controller continuation")? != 0;
        c.expect(",recirc_id=", "controller")?;
        let d = c.u32_i();
        let recirc_id = num(c, d, "controller recirc_id")?;
        c.expect(",rule_cookie=", "controller")?;
        let d = c.int_x();
        let rule_cookie = num(c, d, "controller rule_cookie")?;
        c.expect(",controller_id=", "controller")?;
        let d = c.u16_i();
        let controller_id = num(c, d, "controller controller_id")?;
        c.expect(",max_len=", "controller")?;
        let d = c.u16_i();
        let max_len = num(c, d, "controller max_len")?;
        c.expect(")", "controller")?;
        userdata = Some(Userdata::Controller {
            reason,
            dont_send,
            continuation,
            recirc_id,
            rule_cookie,
            controller_id,
            max_len,
        });
    } else if c.eat(",userdata(") {
        let mut bytes = Vec::new();
        loop {
            while c.peek().is_some_and(|b| b" \t\r\n".contains(&b)) {
                c.bump();
            }
            let r = c.rest();
            match (r.first(), r.get(1)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                    let hi = (*a as char).to_digit(16).unwrap_or(0) as u8;
                    let lo = (*b as char).to_digit(16).unwrap_or(0) as u8;
                    bytes.push((hi << 4) | lo);
                    c.set_pos(c.pos() + 2);
                }
                _ => break,
            }
        }
        c.expect(")", "userdata")?;
        userdata = Some(Userdata::Opaque(bytes));
    }
    let include_actions = c.eat(",actions");
    let mut tunnel_out_port = None;
    if c.eat(",tunnel_out_port=") {
        let x = c.u32_i();
        tunnel_out_port = Some(num(c, x, "userspace tunnel_out_port")?);
    }
    c.expect(")", "userspace")?;
    if let Some(Userdata::Opaque(d)) = &userdata {
        // Like OVS: the whole action must fit one netlink attribute
        // (nested header, pid, userdata, flags; 4-byte aligned).
        let size = 4
            + 8
            + 4
            + d.len().div_ceil(4) * 4
            + if include_actions { 4 } else { 0 }
            + if tunnel_out_port.is_some() { 8 } else { 0 };
        if size > usize::from(u16::MAX) {
            return Err(OdpError::Invalid(format!(
                "userspace userdata: {} bytes do not fit one netlink attribute",
                d.len()
            )));
        }
    }
    Ok(Action::Userspace(Userspace {
        pid,
        userdata,
        include_actions,
        tunnel_out_port,
    }))
}

// ------------------------------------------------------------- formatting

fn format_action(out: &mut String, a: &Action, names: Option<&PortNames>) {
    match a {
        Action::Output(p) => format_port(out, names, *p),
        Action::LbOutput(p) => {
            let _ = write!(out, "lb_output({p})");
        }
        Action::Trunc(n) => {
            let _ = write!(out, "trunc({n})");
        }
        Action::Userspace(u) => format_userspace(out, u, names),
        Action::Set(k) => {
            out.push_str("set(");
            key::format_attr(out, k, None, None, true);
            out.push(')');
        }
        Action::SetMasked { key: k, mask } => {
            out.push_str("set(");
            key::format_attr(out, k, Some(mask), None, false);
            out.push(')');
        }
        Action::PushVlan { tpid, tci } => {
            out.push_str("push_vlan(");
            if *tpid != 0x8100 {
                let _ = write!(out, "tpid=0x{tpid:04x},");
            }
            key::f_vlan_tci(out, *tci, 0xffff, false);
            out.push(')');
        }
        Action::PopVlan => out.push_str("pop_vlan"),
        Action::PushMpls { lse, ethertype } => {
            out.push_str("push_mpls(");
            key::f_mpls_lse(out, *lse);
            let _ = write!(out, ",eth_type=0x{ethertype:x})");
        }
        Action::PopMpls { ethertype } => {
            let _ = write!(out, "pop_mpls(eth_type=0x{ethertype:x})");
        }
        Action::PushEth { src, dst } => {
            out.push_str("push_eth(src=");
            fmt::mac(out, src);
            out.push_str(",dst=");
            fmt::mac(out, dst);
            out.push(')');
        }
        Action::PopEth => out.push_str("pop_eth"),
        Action::Recirc(id) => {
            let _ = write!(out, "recirc({})", hexp((*id).into()));
        }
        Action::Hash { alg, basis } => {
            let _ = match alg {
                HashAlg::L4 => write!(out, "hash(l4({basis}))"),
                HashAlg::SymL4 => write!(out, "hash(sym_l4({basis}))"),
                HashAlg::Unknown(n) => write!(out, "hash(Unknown hash algorithm({n}))"),
            };
        }
        Action::Sample {
            probability,
            actions,
        } => {
            let pct = 100.0 * f64::from(*probability) / f64::from(u32::MAX);
            let _ = write!(out, "sample(sample={pct:.1}%,actions(");
            format_list(out, actions, names);
            out.push_str("))");
        }
        Action::Clone(actions) => {
            out.push_str("clone(");
            format_list(out, actions, names);
            out.push(')');
        }
        Action::CheckPktLen { pkt_len, gt, le } => {
            let _ = write!(out, "check_pkt_len(size={pkt_len},gt(");
            format_list(out, gt, names);
            out.push_str("),le(");
            format_list(out, le, names);
            out.push_str("))");
        }
        Action::Ct(c) => ct::format_ct(out, c),
        Action::CtClear => out.push_str("ct_clear"),
        Action::TnlPush(t) => tnl_push::format_tnl_push(out, t, names),
        Action::TnlPop(p) => {
            out.push_str("tnl_pop(");
            format_port(out, names, *p);
            out.push(')');
        }
        Action::Meter(m) => {
            let _ = write!(out, "meter({m})");
        }
        Action::Psample { group, cookie } => {
            let _ = write!(out, "psample(group={group}");
            if !cookie.is_empty() {
                out.push_str(",cookie=0x");
                for b in cookie {
                    let _ = write!(out, "{b:02x}");
                }
            }
            out.push(')');
        }
        Action::Drop => out.push_str("drop"),
    }
}

fn format_userspace(out: &mut String, u: &Userspace, names: Option<&PortNames>) {
    let _ = write!(out, "userspace(pid={}", u.pid);
    match &u.userdata {
        None => {}
        Some(Userdata::SFlow { vlan_tci, output }) => {
            let _ = write!(
                out,
                ",sFlow(vid={},pcp={},output={output})",
                vlan_tci & 0xfff,
                vlan_tci >> 13
            );
        }
        Some(Userdata::SlowPath { reasons }) => {
            out.push_str(",slow_path(");
            fmt::flags(out, fmt::slow_path_name, *reasons, ',');
            out.push(')');
        }
        Some(Userdata::FlowSample {
            probability,
            collector_set_id,
            obs_domain_id,
            obs_point_id,
            output_port,
            direction,
        }) => {
            let _ = write!(
                out,
                ",flow_sample(probability={probability},collector_set_id={collector_set_id},obs_domain_id={obs_domain_id},obs_point_id={obs_point_id},output_port="
            );
            format_port(out, names, *output_port);
            match direction {
                SampleDirection::Ingress => out.push_str(",ingress"),
                SampleDirection::Egress => out.push_str(",egress"),
                SampleDirection::Default => {}
            }
            out.push(')');
        }
        Some(Userdata::Ipfix { output_port }) => {
            out.push_str(",ipfix(output_port=");
            format_port(out, names, *output_port);
            out.push(')');
        }
        Some(Userdata::Controller {
            reason,
            dont_send,
            continuation,
            recirc_id,
            rule_cookie,
            controller_id,
            max_len,
        }) => {
            let _ = write!(
                out,
                ",controller(reason={reason},dont_send={},continuation={},recirc_id={recirc_id},rule_cookie={},controller_id={controller_id},max_len={max_len})",
                u8::from(*dont_send),
                u8::from(*continuation),
                hexp((*rule_cookie).into())
            );
        }
        Some(Userdata::Opaque(bytes)) => {
            out.push_str(",userdata(");
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
            out.push(')');
        }
    }
    if u.include_actions {
        out.push_str(",actions");
    }
    if let Some(p) = u.tunnel_out_port {
        out.push_str(",tunnel_out_port=");
        format_port(out, names, p);
    }
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_emit_basic() {
        for s in [
            "1,2,3",
            "drop",
            "push_vlan(vid=12,pcp=0)",
            "set(tcp(dst=8080))",
            "clone(1)",
            "recirc(0x1)",
        ] {
            let a = parse(s, None).unwrap();
            assert_eq!(format(&a, None), s);
        }
        assert_eq!(parse("", None).unwrap(), vec![]);
    }

    #[test]
    fn test_parse_deep_clone_is_bounded() {
        let s = format!("{}1{}", "clone(".repeat(30), ")".repeat(30));
        assert!(parse(&s, None).is_ok());
        let s = format!("{}1{}", "clone(".repeat(31), ")".repeat(31));
        assert_eq!(parse(&s, None).unwrap_err(), OdpError::TooDeep);
    }

    #[test]
    fn test_tnl_push_header_bytes() {
        let s = "tnl_push(tnl_port(4),header(size=50,type=4,eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x1c7)),out_port(1))";
        let a = parse(s, None).unwrap();
        let Action::TnlPush(t) = &a[0] else { panic!() };
        assert_eq!(t.header.len(), 50);
        assert_eq!(&t.header[14..16], &[0x45, 0]);
        assert_eq!(format(&a, None), s);
    }

    #[test]
    fn test_port_names() {
        let mut n = PortNames::new();
        n.insert(3, "br0");
        let a = parse("br0,tnl_pop(br0)", Some(&n)).unwrap();
        assert_eq!(a, vec![Action::Output(3), Action::TnlPop(3)]);
        assert_eq!(format(&a, Some(&n)), "br0,tnl_pop(br0)");
    }
}
