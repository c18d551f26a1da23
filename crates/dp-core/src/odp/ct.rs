//! `ct(...)` text: conntrack commit/zone/mark/label/helper/timeout and
//! `nat(...)`, following OVS's `parse_conntrack_action` and
//! `format_odp_conntrack_action`. Like OVS, NAT options that the datapath
//! would not encode (flags without an address, a range max equal to its
//! min) are dropped at parse time, so printing shows what is installed.

use super::actions::num;
use super::fmt::{self, hexp};
use super::scan::{Cursor, OdpError, Result};
use crate::action::*;
use std::fmt::Write;

pub(super) fn parse_ct(c: &mut Cursor) -> Result<Action> {
    c.eat("ct");
    let mut ct = Ct::default();
    if c.eat("(") {
        loop {
            c.skip_delims();
            if c.eat(")") {
                break;
            }
            if c.at_end() {
                return Err(c.err("ct: missing ')'"));
            }
            if c.eat("commit") {
                ct.commit = true;
            } else if c.eat("force_commit") {
                ct.force_commit = true;
            } else if c.eat("zone=") {
                let z = c.int_u().and_then(|z| u16::try_from(z).ok());
                ct.zone = num(c, z, "ct zone")?;
            } else if c.eat("mark=") {
                let v = c.int_x().and_then(|v| u32::try_from(v).ok());
                let v = num(c, v, "ct mark")?;
                let m = if c.eat("/") {
                    let m = c.int_x().and_then(|v| u32::try_from(v).ok());
                    num(c, m, "ct mark mask")?
                } else {
                    u32::MAX
                };
                ct.mark = Some((v, m)).filter(|(_, m)| *m != 0);
            } else if c.eat("label=") {
                let v = c.int_string(16);
                let v = u128::from_be_bytes(to16(num(c, v, "ct label")?));
                let m = if c.eat("/") {
                    let m = c.int_string(16);
                    u128::from_be_bytes(to16(num(c, m, "ct label mask")?))
                } else {
                    u128::MAX
                };
                ct.label = Some((v, m)).filter(|(_, m)| *m != 0);
            } else if c.eat("helper=") {
                ct.helper = Some(name_arg(c, "ct helper", 15)?);
            } else if c.eat("timeout=") {
                ct.timeout = Some(name_arg(c, "ct timeout", 31)?);
            } else if c.eat("nat") {
                ct.nat = Some(parse_nat(c)?);
            } else {
                return Err(c.err(&format!("ct: unknown argument '{}'", c.word())));
            }
        }
    }
    if ct.commit && ct.force_commit {
        return Err(OdpError::Invalid(
            "ct: commit and force_commit are exclusive".into(),
        ));
    }
    // Like OVS, commit wins and force_commit is only kept alone.
    Ok(Action::Ct(ct))
}

fn to16(v: Vec<u8>) -> [u8; 16] {
    let mut a = [0u8; 16];
    let n = v.len().min(16);
    a[16 - n..].copy_from_slice(&v[v.len() - n..]);
    a
}

fn name_arg(c: &mut Cursor, what: &str, max: usize) -> Result<String> {
    let r = c.rest();
    let n = r.iter().take_while(|b| !b", \t\r\n)".contains(b)).count();
    if n == 0 || n > max {
        return Err(OdpError::Invalid(format!(
            "{what}: must be 1 to {max} characters"
        )));
    }
    let s = String::from_utf8_lossy(&r[..n]).into_owned();
    c.set_pos(c.pos() + n);
    Ok(s)
}

fn parse_nat(c: &mut Cursor) -> Result<Nat> {
    let mut nat = Nat::default();
    if !c.eat("(") {
        return Ok(nat);
    }
    loop {
        c.skip_delims();
        if c.eat(")") {
            break;
        }
        if c.at_end() {
            return Err(c.err("nat: missing ')'"));
        }
        if c.eat("src") {
            if nat.kind == Some(NatKind::Dst) {
                return Err(OdpError::Invalid("nat: only one of src or dst".into()));
            }
            nat.kind = Some(NatKind::Src);
            parse_nat_range(c, &mut nat)?;
        } else if c.eat("dst") {
            if nat.kind == Some(NatKind::Src) {
                return Err(OdpError::Invalid("nat: only one of src or dst".into()));
            }
            nat.kind = Some(NatKind::Dst);
            parse_nat_range(c, &mut nat)?;
        } else if c.eat("persistent") {
            nat.persistent = true;
        } else if c.eat("hash") {
            nat.hash = true;
        } else if c.eat("random") {
            nat.random = true;
        } else {
            return Err(c.err(&format!("nat: unknown argument '{}'", c.word())));
        }
    }
    if nat.hash && nat.random {
        return Err(OdpError::Invalid(
            "nat: hash and random are exclusive".into(),
        ));
    }
    if let Some((min, Some(max))) = nat.ports
        && max < min
    {
        return Err(OdpError::Invalid("nat: port range max below min".into()));
    }
    // What OVS encodes: nothing without a side; no flags without an
    // address; a max only when above the min.
    if nat.kind.is_none() {
        return Ok(Nat::default());
    }
    if nat.addrs.is_none() {
        nat.ports = None;
        nat.persistent = false;
        nat.hash = false;
        nat.random = false;
    }
    match &mut nat.addrs {
        Some(NatAddrs::V4 { min, max }) => {
            if max.is_some_and(|m| m < *min) {
                return Err(OdpError::Invalid("nat: address range max below min".into()));
            }
            if *max == Some(*min) {
                *max = None;
            }
        }
        Some(NatAddrs::V6 { min, max }) => {
            if max.is_some_and(|m| m < *min) {
                return Err(OdpError::Invalid("nat: address range max below min".into()));
            }
            if *max == Some(*min) {
                *max = None;
            }
        }
        None => {}
    }
    if let Some((min, max)) = &mut nat.ports
        && *max == Some(*min)
    {
        *max = None;
    }
    Ok(nat)
}

fn scan_v6_maybe_bracketed(c: &mut Cursor) -> Option<[u8; 16]> {
    let start = c.pos();
    if c.eat("[") {
        match c.ipv6() {
            Some(a) if c.eat("]") => Some(a),
            _ => {
                c.set_pos(start);
                None
            }
        }
    } else {
        c.ipv6()
    }
}

fn parse_nat_range(c: &mut Cursor, nat: &mut Nat) -> Result<()> {
    if !c.eat("=") {
        return Ok(());
    }
    if let Some(min) = c.ipv4() {
        let max = if c.eat("-") {
            let m = c.ipv4();
            Some(num(c, m, "nat address range")?)
        } else {
            None
        };
        nat.addrs = Some(NatAddrs::V4 { min, max });
    } else if let Some(min) = scan_v6_maybe_bracketed(c) {
        let max = if c.eat("-") {
            let m = scan_v6_maybe_bracketed(c);
            Some(num(c, m, "nat address range")?)
        } else {
            None
        };
        nat.addrs = Some(NatAddrs::V6 { min, max });
    } else {
        return Err(c.err("nat: expected an address"));
    }
    if c.eat(":") {
        let p = c.int_u().and_then(|p| u16::try_from(p).ok());
        let min = num(c, p, "nat port")?;
        let max = if c.eat("-") {
            let p = c.int_u().and_then(|p| u16::try_from(p).ok());
            Some(num(c, p, "nat port range")?)
        } else {
            None
        };
        if min != 0 {
            nat.ports = Some((min, max));
        }
    }
    Ok(())
}

pub(super) fn format_ct(out: &mut String, ct: &Ct) {
    out.push_str("ct");
    let any = ct.commit
        || ct.force_commit
        || ct.zone != 0
        || ct.mark.is_some()
        || ct.label.is_some()
        || ct.helper.is_some()
        || ct.timeout.is_some()
        || ct.nat.is_some();
    if !any {
        return;
    }
    out.push('(');
    if ct.commit {
        out.push_str("commit,");
    } else if ct.force_commit {
        out.push_str("force_commit,");
    }
    if ct.zone != 0 {
        let _ = write!(out, "zone={},", ct.zone);
    }
    if let Some((v, m)) = ct.mark {
        let _ = write!(out, "mark={}/{},", hexp(v.into()), hexp(m.into()));
    }
    if let Some((v, m)) = ct.label {
        out.push_str("label=");
        fmt::put_hex(out, &v.to_be_bytes());
        if m != u128::MAX {
            out.push('/');
            fmt::put_hex(out, &m.to_be_bytes());
        }
        out.push(',');
    }
    if let Some(h) = &ct.helper {
        let _ = write!(out, "helper={h},");
    }
    if let Some(t) = &ct.timeout {
        let _ = write!(out, "timeout={t},");
    }
    if let Some(nat) = &ct.nat {
        format_nat(out, nat);
    }
    fmt::chomp(out, ',');
    out.push(')');
}

fn format_nat(out: &mut String, nat: &Nat) {
    out.push_str("nat");
    let Some(kind) = nat.kind else { return };
    out.push('(');
    out.push_str(match kind {
        NatKind::Src => "src",
        NatKind::Dst => "dst",
    });
    let proto_min = nat.ports.map_or(0, |p| p.0);
    if let Some(addrs) = &nat.addrs {
        out.push('=');
        match addrs {
            NatAddrs::V4 { min, max } => {
                fmt::ipv4(out, min);
                if let Some(max) = max.filter(|m| m != min && *m != [0; 4]) {
                    out.push('-');
                    fmt::ipv4(out, &max);
                }
            }
            NatAddrs::V6 { min, max } => {
                let br = |out: &mut String, a: &[u8; 16]| {
                    if proto_min != 0 {
                        out.push('[');
                    }
                    fmt::ipv6(out, a);
                    if proto_min != 0 {
                        out.push(']');
                    }
                };
                br(out, min);
                if let Some(max) = max.filter(|m| m != min && *m != [0; 16]) {
                    out.push('-');
                    br(out, &max);
                }
            }
        }
        if let Some((pmin, pmax)) = nat.ports.filter(|p| p.0 != 0) {
            let _ = write!(out, ":{pmin}");
            if let Some(pmax) = pmax.filter(|m| *m != pmin && *m != 0) {
                let _ = write!(out, "-{pmax}");
            }
        }
    }
    out.push(',');
    if nat.persistent {
        out.push_str("persistent,");
    }
    if nat.hash {
        out.push_str("hash,");
    }
    if nat.random {
        out.push_str("random,");
    }
    fmt::chomp(out, ',');
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::super::actions;

    fn norm(s: &str) -> Result<String, String> {
        actions::parse(s, None)
            .map(|a| actions::format(&a, None))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn test_nat_keeps_only_what_ovs_encodes() {
        assert_eq!(
            norm("ct(commit,nat(src,random))").unwrap(),
            "ct(commit,nat(src))"
        );
        assert_eq!(norm("ct(nat(persistent))").unwrap(), "ct(nat)");
        assert_eq!(
            norm("ct(commit,nat(src=10.0.0.1-10.0.0.1:80-80))").unwrap(),
            "ct(commit,nat(src=10.0.0.1:80))"
        );
        assert_eq!(norm("ct(zone=0,mark=0/0)").unwrap(), "ct");
    }

    #[test]
    fn test_ct_errors_name_the_argument() {
        for (bad, what) in [
            ("ct(commit,force_commit)", "commit"),
            ("ct(nat(src,dst))", "nat"),
            ("ct(commit,nat(src=10.0.0.2-10.0.0.1))", "nat"),
            ("ct(commit,nat(src=10.0.0.1:90-80))", "nat"),
            ("ct(commit,nat(src=10.0.0.1,hash,random))", "nat"),
            ("ct(helper=abcdefghijklmnopq)", "helper"),
            ("ct(bogus)", "bogus"),
            ("ct(commit", "ct"),
        ] {
            let e = norm(bad).unwrap_err();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }
}
