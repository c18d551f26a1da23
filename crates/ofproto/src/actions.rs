//! OpenFlow actions as `ovs-ofctl` writes them: the typed list a rule
//! carries ([`OfAction`]), its parser and its formatter.
//!
//! # Scope
//! Output to physical and reserved ports (`NORMAL`, `FLOOD`, `ALL`,
//! `LOCAL`, `IN_PORT`, `CONTROLLER`), VLAN edits, `mod_*` rewrites,
//! `set_field`, `load`/`move` on bit ranges, `dec_ttl`, `resubmit`,
//! `goto_table`, `note`, `set_tunnel`, `meter`. Everything else is a parse
//! error naming the action, never silently ignored.
//!
//! # Invariants
//! - Parsed actions are consistent with the rule's match where OpenFlow
//!   1.2+ requires it (`set_field` on a field whose prerequisites the
//!   match does not guarantee is refused, naming the field).
//! - `format(parse(s))` parses back to the same list.

use crate::field::{Field, Syntax};
use crate::r#match::{Match, parse_value};
use crate::parse::{ParseError, parse_uint};
use crate::ports::{OFPP_CONTROLLER, OFPP_IN_PORT, PortNamer, format_port, parse_port};
use dp_core::odp::fmt as odpfmt;
use std::fmt::Write;

/// A bit range of a field: `NXM_NX_REG0[0..15]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubField {
    pub field: Field,
    pub ofs: u32,
    pub n_bits: u32,
}

impl SubField {
    /// The whole field.
    pub fn whole(field: Field) -> SubField {
        SubField {
            field,
            ofs: 0,
            n_bits: field.bits(),
        }
    }

    /// The mask of this range within the field.
    pub fn mask(&self) -> u128 {
        let ones = if self.n_bits == 128 {
            u128::MAX
        } else {
            (1u128 << self.n_bits) - 1
        };
        ones << self.ofs
    }

    fn parse(s: &str) -> Result<SubField, String> {
        let (name, range) = s
            .split_once('[')
            .ok_or_else(|| format!("{s}: expected FIELD[] or FIELD[start..end]"))?;
        let range = range
            .strip_suffix(']')
            .ok_or_else(|| format!("{s}: missing ]"))?;
        let field = Field::from_name(name).ok_or_else(|| format!("{name}: unknown field"))?;
        let bits = field.bits();
        let (ofs, end) = if range.is_empty() {
            (0, bits - 1)
        } else if let Some((a, b)) = range.split_once("..") {
            let a = a
                .parse::<u32>()
                .map_err(|_| format!("{s}: bad bit range"))?;
            let b = b
                .parse::<u32>()
                .map_err(|_| format!("{s}: bad bit range"))?;
            (a, b)
        } else {
            let a = range
                .parse::<u32>()
                .map_err(|_| format!("{s}: bad bit index"))?;
            (a, a)
        };
        if ofs > end || end >= bits {
            return Err(format!(
                "{s}: bits {ofs}..{end} are outside the {bits}-bit field"
            ));
        }
        Ok(SubField {
            field,
            ofs,
            n_bits: end - ofs + 1,
        })
    }

    fn format(&self, s: &mut String) {
        s.push_str(self.field.nxm_name().unwrap_or(self.field.name()));
        if self.ofs == 0 && self.n_bits == self.field.bits() {
            s.push_str("[]");
        } else if self.n_bits == 1 {
            let _ = write!(s, "[{}]", self.ofs);
        } else {
            let _ = write!(s, "[{}..{}]", self.ofs, self.ofs + self.n_bits - 1);
        }
    }
}

/// How a field write was written, so it prints back the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetStyle {
    /// `set_field:V->F`.
    SetField,
    /// `mod_dl_src:V`, `mod_nw_tos:V`, ... (OpenFlow 1.0 actions). These
    /// are silently skipped at translation when the packet lacks the
    /// protocol, as OpenFlow 1.0 specifies.
    Legacy,
}

/// One OpenFlow action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OfAction {
    /// Output to a port (physical or reserved other than CONTROLLER).
    Output {
        port: u32,
    },
    /// Send to the controller (the userspace sink).
    Controller {
        max_len: u16,
    },
    /// Set the VLAN id, pushing a tag if there is none.
    SetVlanVid(u16),
    /// Set the VLAN priority, pushing a tag if there is none.
    SetVlanPcp(u8),
    /// Pop the outer VLAN tag.
    StripVlan,
    /// Push a new outer VLAN tag with this TPID.
    PushVlan(u16),
    /// Write `value` on the bits of `mask` of a field.
    SetField {
        field: Field,
        value: u128,
        mask: u128,
        style: SetStyle,
    },
    DecTtl,
    /// `load:value->dst`.
    Load {
        value: u128,
        dst: SubField,
    },
    /// `move:src->dst`.
    Move {
        src: SubField,
        dst: SubField,
    },
    /// `resubmit(port,table)`; `None` keeps the current in_port / table.
    Resubmit {
        port: Option<u32>,
        table: Option<u8>,
    },
    GotoTable(u8),
    Note(Vec<u8>),
    /// `set_tunnel`/`set_tunnel64`.
    SetTunnel(u64),
    Meter(u32),
}

fn legacy_name(field: Field) -> Option<&'static str> {
    Some(match field {
        Field::EthSrc => "mod_dl_src",
        Field::EthDst => "mod_dl_dst",
        Field::IpSrc => "mod_nw_src",
        Field::IpDst => "mod_nw_dst",
        Field::NwTos => "mod_nw_tos",
        Field::IpEcn => "mod_nw_ecn",
        Field::NwTtl => "mod_nw_ttl",
        Field::TpSrc => "mod_tp_src",
        Field::TpDst => "mod_tp_dst",
        _ => return None,
    })
}

fn format_value(s: &mut String, field: Field, v: u128) {
    match field.syntax() {
        Syntax::Mac => {
            let b = v.to_be_bytes();
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[10..]);
            odpfmt::mac(s, &m);
        }
        Syntax::Ipv4 => odpfmt::ipv4(s, &(v as u32).to_be_bytes()),
        Syntax::Ipv6 => odpfmt::ipv6(s, &v.to_be_bytes()),
        _ => s.push_str(&odpfmt::hexp(v)),
    }
}

/// Formats an action list the way `ovs-ofctl dump-flows` does (`drop`
/// for an empty list).
pub fn format_actions(acts: &[OfAction], names: Option<&dyn PortNamer>) -> String {
    if acts.is_empty() {
        return "drop".to_string();
    }
    let mut s = String::new();
    for (i, a) in acts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        format_action(&mut s, a, names);
    }
    s
}

/// Formats one action.
pub fn format_action(s: &mut String, a: &OfAction, names: Option<&dyn PortNamer>) {
    match a {
        OfAction::Output { port } if *port >= 0xfff8 => format_port(s, *port, names),
        OfAction::Output { port } => {
            s.push_str("output:");
            format_port(s, *port, names);
        }
        OfAction::Controller { max_len } => {
            if *max_len == u16::MAX {
                s.push_str("CONTROLLER:65535");
            } else {
                let _ = write!(s, "CONTROLLER:{max_len}");
            }
        }
        OfAction::SetVlanVid(v) => {
            let _ = write!(s, "mod_vlan_vid:{v}");
        }
        OfAction::SetVlanPcp(v) => {
            let _ = write!(s, "mod_vlan_pcp:{v}");
        }
        OfAction::StripVlan => s.push_str("strip_vlan"),
        OfAction::PushVlan(t) => {
            let _ = write!(s, "push_vlan:0x{t:04x}");
        }
        OfAction::SetField {
            field,
            value,
            mask,
            style,
        } => match (style, legacy_name(*field)) {
            (SetStyle::Legacy, Some(n)) => {
                let _ = write!(s, "{n}:");
                if matches!(
                    field,
                    Field::NwTos | Field::IpEcn | Field::NwTtl | Field::TpSrc | Field::TpDst
                ) {
                    let _ = write!(s, "{value}");
                } else {
                    format_value(s, *field, *value);
                }
            }
            _ => {
                s.push_str("set_field:");
                format_value(s, *field, *value);
                if *mask != field.full() {
                    s.push('/');
                    format_value(s, *field, *mask);
                }
                let _ = write!(s, "->{}", field.name());
            }
        },
        OfAction::DecTtl => s.push_str("dec_ttl"),
        OfAction::Load { value, dst } => {
            let _ = write!(s, "load:{}->", odpfmt::hexp(*value));
            dst.format(s);
        }
        OfAction::Move { src, dst } => {
            s.push_str("move:");
            src.format(s);
            s.push_str("->");
            dst.format(s);
        }
        OfAction::Resubmit { port, table } => match (port, table) {
            (Some(p), None) => {
                s.push_str("resubmit:");
                format_port(s, *p, names);
            }
            _ => {
                s.push_str("resubmit(");
                if let Some(p) = port {
                    format_port(s, *p, names);
                }
                s.push(',');
                if let Some(t) = table {
                    let _ = write!(s, "{t}");
                }
                s.push(')');
            }
        },
        OfAction::GotoTable(t) => {
            let _ = write!(s, "goto_table:{t}");
        }
        OfAction::Note(bytes) => {
            s.push_str("note:");
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                let _ = write!(s, "{b:02x}");
            }
        }
        OfAction::SetTunnel(v) => {
            if *v > u64::from(u32::MAX) {
                let _ = write!(s, "set_tunnel64:{v:#x}");
            } else {
                let _ = write!(s, "set_tunnel:{v:#x}");
            }
        }
        OfAction::Meter(m) => {
            let _ = write!(s, "meter:{m}");
        }
    }
}

/// Splits `s` on top-level commas (commas inside parentheses stay).
pub(crate) fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced )".into());
                }
            }
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced (".into());
    }
    out.push(s[start..].trim());
    Ok(out.into_iter().filter(|t| !t.is_empty()).collect())
}

fn num<T: TryFrom<u128>>(name: &str, arg: &str) -> Result<T, ParseError> {
    parse_uint(arg)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| ParseError::new(name, format!("{arg}: expected a number in range")))
}

/// Parses an action list (the text after `actions=`). `m` is the rule's
/// match, used for the OpenFlow 1.2 prerequisite check of `set_field`.
pub fn parse_actions(
    text: &str,
    m: &Match,
    names: &dyn PortNamer,
) -> Result<Vec<OfAction>, ParseError> {
    let toks = split_top(text).map_err(|e| ParseError::new("actions", e))?;
    let mut out = Vec::new();
    let n = toks.len();
    for (i, tok) in toks.into_iter().enumerate() {
        if tok.eq_ignore_ascii_case("drop") {
            if n > 1 {
                return Err(ParseError::new("drop", "drop must be the only action"));
            }
            continue;
        }
        let a = parse_action(tok, m, names)?;
        if matches!(a, OfAction::GotoTable(_)) && i + 1 != n {
            return Err(ParseError::new(
                "goto_table",
                "goto_table must be the last action",
            ));
        }
        out.push(a);
    }
    Ok(out)
}

fn parse_action(tok: &str, m: &Match, names: &dyn PortNamer) -> Result<OfAction, ParseError> {
    // name:arg, name(arg), name=arg, or a bare word.
    let (name, arg) = if let Some(p) = tok.find(['(', ':', '=']) {
        let (n, rest) = tok.split_at(p);
        let rest = &rest[1..];
        if tok.as_bytes()[p] == b'(' {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| ParseError::new(n, "missing )"))?;
            (n, Some(inner))
        } else {
            (n, Some(rest))
        }
    } else {
        (tok, None)
    };
    let lname = name.to_ascii_lowercase();
    let need = |what: &str| -> Result<&str, ParseError> {
        arg.ok_or_else(|| ParseError::new(name, format!("needs {what}")))
    };
    let a = match lname.as_str() {
        "output" => {
            let p = parse_port(need("a port")?, names).map_err(|e| ParseError::new(name, e))?;
            if p == OFPP_CONTROLLER {
                OfAction::Controller { max_len: u16::MAX }
            } else {
                OfAction::Output { port: p }
            }
        }
        "controller" => {
            let max_len = match arg {
                None => u16::MAX,
                Some(a) => {
                    let a = a.strip_prefix("max_len=").unwrap_or(a);
                    num(name, a)?
                }
            };
            OfAction::Controller { max_len }
        }
        "in_port" if arg.is_none() => OfAction::Output { port: OFPP_IN_PORT },
        "mod_vlan_vid" | "set_vlan_vid" => {
            let v: u16 = num(name, need("a VLAN id")?)?;
            if v > 4095 {
                return Err(ParseError::new(name, format!("{v} is not a VLAN id")));
            }
            OfAction::SetVlanVid(v)
        }
        "mod_vlan_pcp" | "set_vlan_pcp" => {
            let v: u8 = num(name, need("a priority")?)?;
            if v > 7 {
                return Err(ParseError::new(
                    name,
                    format!("{v} is not a priority (0..7)"),
                ));
            }
            OfAction::SetVlanPcp(v)
        }
        "strip_vlan" | "pop_vlan" => OfAction::StripVlan,
        "push_vlan" => {
            let t: u16 = num(name, need("an Ethernet type")?)?;
            if t != 0x8100 && t != 0x88a8 {
                return Err(ParseError::new(name, format!("{t:#x} is not a VLAN TPID")));
            }
            OfAction::PushVlan(t)
        }
        "mod_dl_src" | "mod_dl_dst" | "mod_nw_src" | "mod_nw_dst" | "mod_tp_src" | "mod_tp_dst"
        | "mod_nw_tos" | "mod_nw_ecn" | "mod_nw_ttl" => {
            let field = match lname.as_str() {
                "mod_dl_src" => Field::EthSrc,
                "mod_dl_dst" => Field::EthDst,
                "mod_nw_src" => Field::IpSrc,
                "mod_nw_dst" => Field::IpDst,
                "mod_tp_src" => Field::TpSrc,
                "mod_tp_dst" => Field::TpDst,
                "mod_nw_tos" => Field::NwTos,
                "mod_nw_ecn" => Field::IpEcn,
                _ => Field::NwTtl,
            };
            let arg = need("a value")?;
            let (value, _) = parse_value(field, arg).map_err(|e| ParseError::new(name, e))?;
            if field == Field::NwTos && value & 3 != 0 {
                return Err(ParseError::new(
                    name,
                    format!("{value}: low 2 bits must be zero"),
                ));
            }
            OfAction::SetField {
                field,
                value,
                mask: field.full(),
                style: SetStyle::Legacy,
            }
        }
        "set_field" => {
            let arg = need("VALUE->FIELD")?;
            let (v, f) = arg
                .split_once("->")
                .ok_or_else(|| ParseError::new(name, "expected VALUE[/MASK]->FIELD"))?;
            let field = Field::from_name(f)
                .ok_or_else(|| ParseError::new(name, format!("{f}: unknown field")))?;
            if !field.writable() {
                return Err(ParseError::new(f, "field is not writable"));
            }
            if !m.prereq_ok(field.prereq()) {
                return Err(ParseError::new(
                    f,
                    format!(
                        "set_field needs the match to guarantee {}",
                        field.prereq().describe()
                    ),
                ));
            }
            let (value, mask) = parse_value(field, v).map_err(|e| ParseError::new(f, e))?;
            OfAction::SetField {
                field,
                value,
                mask,
                style: SetStyle::SetField,
            }
        }
        "dec_ttl" => OfAction::DecTtl,
        "load" => {
            let arg = need("VALUE->DST")?;
            let (v, d) = arg
                .split_once("->")
                .ok_or_else(|| ParseError::new(name, "expected VALUE->DST[...]"))?;
            let dst = SubField::parse(d).map_err(|e| ParseError::new(name, e))?;
            if !dst.field.writable() {
                return Err(ParseError::new(dst.field.name(), "field is not writable"));
            }
            let value = parse_uint(v)
                .ok_or_else(|| ParseError::new(name, format!("{v}: expected a number")))?;
            if dst.n_bits < 128 && value >> dst.n_bits != 0 {
                return Err(ParseError::new(
                    name,
                    format!("{value:#x} does not fit in {} bits", dst.n_bits),
                ));
            }
            OfAction::Load { value, dst }
        }
        "move" => {
            let arg = need("SRC->DST")?;
            let (s, d) = arg
                .split_once("->")
                .ok_or_else(|| ParseError::new(name, "expected SRC[...]->DST[...]"))?;
            let src = SubField::parse(s).map_err(|e| ParseError::new(name, e))?;
            let dst = SubField::parse(d).map_err(|e| ParseError::new(name, e))?;
            if src.n_bits != dst.n_bits {
                return Err(ParseError::new(
                    name,
                    format!(
                        "source is {} bits but destination is {}",
                        src.n_bits, dst.n_bits
                    ),
                ));
            }
            if !dst.field.writable() {
                return Err(ParseError::new(dst.field.name(), "field is not writable"));
            }
            OfAction::Move { src, dst }
        }
        "resubmit" => {
            let arg = need("a port or (port,table)")?;
            if tok.contains('(') {
                let (p, t) = arg
                    .split_once(',')
                    .ok_or_else(|| ParseError::new(name, "expected (port,table)"))?;
                let port = if p.trim().is_empty() {
                    None
                } else {
                    Some(parse_port(p, names).map_err(|e| ParseError::new(name, e))?)
                };
                let table = if t.trim().is_empty() {
                    None
                } else {
                    let t: u8 = num(name, t.trim())?;
                    if t == 255 {
                        return Err(ParseError::new(name, "table 255 is not a table"));
                    }
                    Some(t)
                };
                if port.is_none() && table.is_none() {
                    return Err(ParseError::new(name, "needs a port or a table"));
                }
                OfAction::Resubmit { port, table }
            } else {
                let port = parse_port(arg, names).map_err(|e| ParseError::new(name, e))?;
                OfAction::Resubmit {
                    port: Some(port),
                    table: None,
                }
            }
        }
        "goto_table" => {
            let t: u8 = num(name, need("a table id")?)?;
            if t == 255 {
                return Err(ParseError::new(name, "table 255 is not a table"));
            }
            OfAction::GotoTable(t)
        }
        "note" => {
            let arg = arg.unwrap_or("");
            let mut bytes = Vec::new();
            let hex: String = arg.chars().filter(|c| *c != '.').collect();
            if !hex.len().is_multiple_of(2) {
                return Err(ParseError::new(name, "hex bytes come in pairs"));
            }
            for i in (0..hex.len()).step_by(2) {
                bytes
                    .push(u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| {
                        ParseError::new(name, format!("{arg}: expected hex bytes"))
                    })?);
            }
            OfAction::Note(bytes)
        }
        "set_tunnel" | "set_tunnel64" => OfAction::SetTunnel(num(name, need("a tunnel id")?)?),
        "meter" => OfAction::Meter(num(name, need("a meter id")?)?),
        _ if arg.is_none() => {
            // A bare port: a number, reserved name or port name.
            match parse_port(tok, names) {
                Ok(OFPP_CONTROLLER) => OfAction::Controller { max_len: u16::MAX },
                Ok(p) => OfAction::Output { port: p },
                Err(_) => return Err(ParseError::new(tok, "unknown action")),
            }
        }
        _ => return Err(ParseError::new(name, "unknown action")),
    };
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::NoNames;

    fn rt(s: &str, m: &Match) -> String {
        let a = parse_actions(s, m, &NoNames).unwrap();
        let f = format_actions(&a, None);
        assert_eq!(parse_actions(&f, m, &NoNames).unwrap(), a, "{f}");
        f
    }

    #[test]
    fn round_trips() {
        let mut m = Match::catchall();
        m.set_protocol("tcp");
        assert_eq!(rt("2", &m), "output:2");
        assert_eq!(
            rt("output:3,NORMAL,FLOOD,ALL,LOCAL,in_port", &m),
            "output:3,NORMAL,FLOOD,ALL,LOCAL,IN_PORT"
        );
        assert_eq!(rt("controller", &m), "CONTROLLER:65535");
        assert_eq!(rt("drop", &m), "drop");
        assert_eq!(
            rt(
                "mod_vlan_vid:10,mod_vlan_pcp:3,strip_vlan,push_vlan:0x8100",
                &m
            ),
            "mod_vlan_vid:10,mod_vlan_pcp:3,strip_vlan,push_vlan:0x8100"
        );
        assert_eq!(
            rt(
                "mod_dl_src:00:01:02:03:04:05,mod_nw_dst:1.2.3.4,mod_tp_dst:80,mod_nw_tos:8,mod_nw_ttl:9",
                &m
            ),
            "mod_dl_src:00:01:02:03:04:05,mod_nw_dst:1.2.3.4,mod_tp_dst:80,mod_nw_tos:8,mod_nw_ttl:9"
        );
        assert_eq!(
            rt("set_field:10.0.0.1->nw_dst,set_field:0x5->reg3", &m),
            "set_field:10.0.0.1->nw_dst,set_field:0x5->reg3"
        );
        assert_eq!(
            rt(
                "load:0x5->NXM_NX_REG0[0..15],move:NXM_OF_IN_PORT[]->reg1[0..15]",
                &m
            ),
            "load:0x5->NXM_NX_REG0[0..15],move:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15]"
        );
        assert_eq!(
            rt(
                "resubmit:3,resubmit(,2),resubmit(1,4),dec_ttl,note:ab.cd,set_tunnel:0x5,meter:2,goto_table:7",
                &m
            ),
            "resubmit:3,resubmit(,2),resubmit(1,4),dec_ttl,note:ab.cd,set_tunnel:0x5,meter:2,goto_table:7"
        );
    }

    #[test]
    fn errors_name_the_action_or_field() {
        let m = Match::catchall();
        for (s, field) in [
            ("output:", "output"),
            ("mod_vlan_vid:4096", "mod_vlan_vid"),
            ("set_field:1.2.3.4->nw_dst", "nw_dst"),
            ("set_field:1->nw_proto", "nw_proto"),
            ("load:0x10000->NXM_NX_REG0[0..15]", "load"),
            ("move:reg0[0..3]->reg1[0..4]", "move"),
            ("frobnicate", "frobnicate"),
            ("goto_table:1,output:2", "goto_table"),
            ("resubmit(,255)", "resubmit"),
            ("output:2,drop", "drop"),
        ] {
            let e = parse_actions(s, &m, &NoNames).unwrap_err();
            assert_eq!(e.field, field, "{s}: {e}");
        }
    }
}
