//! `tnl_push(...)` text ↔ the outer header bytes an executor prepends.
//!
//! # How it works
//! Parsing follows OVS's `ovs_parse_tnl_push`: Ethernet, IPv4 or IPv6,
//! then UDP + VXLAN/Geneve (with options), GRE (checksum, key, sequence
//! number as its flags say) or an SRv6 routing header, and checks that
//! the declared `type` and `size` match what was built. Formatting decodes
//! the bytes back (bounds-checked: a short header prints as truncated, it
//! never panics). ERSPAN headers are unsupported (OVS itself cannot
//! parse the ERSPAN text it prints).

use super::actions::num;
use super::fmt::{self, hexp};
use super::scan::{Cursor, OdpError, Result};
use super::{PortNames, format_port, key};
use crate::action::*;
use std::fmt::Write;

/// Most segments an SRv6 `tnl_push` may carry (OVS `SRV6_MAX_SEGS`).
pub const SRV6_MAX_SEGS: usize = 6;

/// Internet checksum of `bytes`.
fn csum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for ch in bytes.chunks(2) {
        let w = u16::from_be_bytes([ch[0], *ch.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub(super) fn parse_tnl_push(c: &mut Cursor) -> Result<Action> {
    const W: &str = "tnl_push";
    c.expect("tnl_port(", W)?;
    let v = c.u32_i();
    let tnl_port = num(c, v, "tnl_push tnl_port")?;
    c.expect("),header(size=", W)?;
    let v = c.u32_i();
    let size = num(c, v, "tnl_push header size")?;
    c.expect(",type=", W)?;
    let v = c.u32_i();
    let tnl_type = num(c, v, "tnl_push header type")?;
    c.expect(",eth(dst=", W)?;
    let m = c.mac();
    let dst = num(c, m, "tnl_push eth dst")?;
    c.expect(",src=", W)?;
    let m = c.mac();
    let src = num(c, m, "tnl_push eth src")?;
    c.expect(",dl_type=0x", W)?;
    let t = c.int_x().and_then(|t| u16::try_from(t).ok());
    let dl_type = num(c, t, "tnl_push eth dl_type")?;
    c.expect("),", W)?;
    let mut h = Vec::with_capacity(128);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dl_type.to_be_bytes());
    let ipv4 = dl_type == 0x0800;
    if ipv4 {
        c.expect("ipv4(src=", W)?;
        let a = c.ipv4();
        let sip = num(c, a, "tnl_push ipv4 src")?;
        c.expect(",dst=", W)?;
        let a = c.ipv4();
        let dip = num(c, a, "tnl_push ipv4 dst")?;
        c.expect(",proto=", W)?;
        let v = c.u8_i();
        let proto = num(c, v, "tnl_push ipv4 proto")?;
        c.expect(",tos=", W)?;
        let v = c.u8_i();
        let tos = num(c, v, "tnl_push ipv4 tos")?;
        c.expect(",ttl=", W)?;
        let v = c.u8_i();
        let ttl = num(c, v, "tnl_push ipv4 ttl")?;
        c.expect(",frag=0x", W)?;
        let v = c.int_x().and_then(|v| u16::try_from(v).ok());
        let frag = num(c, v, "tnl_push ipv4 frag")?;
        c.expect("),", W)?;
        let start = h.len();
        h.extend_from_slice(&[0x45, tos, 0, 0, 0, 0]);
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[ttl, proto, 0, 0]);
        h.extend_from_slice(&sip);
        h.extend_from_slice(&dip);
        let sum = csum(&h[start..]);
        h[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
    } else {
        c.expect("ipv6(src=", W)?;
        let a = c.ipv6();
        let sip = num(c, a, "tnl_push ipv6 src")?;
        c.expect(",dst=", W)?;
        let a = c.ipv6();
        let dip = num(c, a, "tnl_push ipv6 dst")?;
        c.expect(",label=", W)?;
        let v = c.int_max(0xfffff);
        let label = num(c, v, "tnl_push ipv6 label")? as u32;
        c.expect(",proto=", W)?;
        let v = c.u8_i();
        let proto = num(c, v, "tnl_push ipv6 proto")?;
        c.expect(",tclass=0x", W)?;
        let v = c.int_x().and_then(|v| u8::try_from(v).ok());
        let tclass = num(c, v, "tnl_push ipv6 tclass")?;
        c.expect(",hlimit=", W)?;
        let v = c.u8_i();
        let hlimit = num(c, v, "tnl_push ipv6 hlimit")?;
        c.expect("),", W)?;
        let flow = (6u32 << 28) | (u32::from(tclass) << 20) | label;
        h.extend_from_slice(&flow.to_be_bytes());
        h.extend_from_slice(&[0, 0, proto, hlimit]);
        h.extend_from_slice(&sip);
        h.extend_from_slice(&dip);
    }
    let expect_type;
    if c.eat("udp(src=") {
        let v = c.u16_i();
        let usrc = num(c, v, "tnl_push udp src")?;
        c.expect(",dst=", W)?;
        let v = c.u16_i();
        let udst = num(c, v, "tnl_push udp dst")?;
        c.expect(",csum=0x", W)?;
        let v = c.int_x().and_then(|v| u16::try_from(v).ok());
        let ucsum = num(c, v, "tnl_push udp csum")?;
        c.expect("),", W)?;
        h.extend_from_slice(&usrc.to_be_bytes());
        h.extend_from_slice(&udst.to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&ucsum.to_be_bytes());
        if c.eat("vxlan(flags=0x") {
            let v = c.int_x().and_then(|v| u32::try_from(v).ok());
            let flags = num(c, v, "tnl_push vxlan flags")?;
            c.expect(",vni=0x", W)?;
            let v = c.int_x().filter(|v| *v <= 0xff_ffff);
            let vni = num(c, v, "tnl_push vxlan vni")? as u32;
            c.expect("))", W)?;
            h.extend_from_slice(&flags.to_be_bytes());
            h.extend_from_slice(&(vni << 8).to_be_bytes());
            expect_type = vport_type::VXLAN;
        } else if c.eat("geneve(") {
            let oam = c.eat("oam,");
            let crit = c.eat("crit,");
            c.expect("vni=", W)?;
            let v = c.int_max(0xff_ffff);
            let vni = num(c, v, "tnl_push geneve vni")? as u32;
            let mut opts = Vec::new();
            if c.eat(",options(") {
                opts = key::parse_geneve(c, false)?.0;
            }
            c.expect("))", W)?;
            h.push((opts.len() / 4) as u8 & 0x3f);
            h.push(if oam { 0x80 } else { 0 } | if crit { 0x40 } else { 0 });
            h.extend_from_slice(&0x6558u16.to_be_bytes());
            h.extend_from_slice(&(vni << 8).to_be_bytes());
            h.extend_from_slice(&opts);
            expect_type = vport_type::GENEVE;
        } else if c.eat("gtpu(flags=") {
            let v = c.u8_i();
            let flags = num(c, v, "tnl_push gtpu flags")?;
            c.expect(",msgtype=", W)?;
            let v = c.int_u().and_then(|v| u8::try_from(v).ok());
            let msgtype = num(c, v, "tnl_push gtpu msgtype")?;
            c.expect(",teid=0x", W)?;
            let v = c.int_x().and_then(|v| u32::try_from(v).ok());
            let teid = num(c, v, "tnl_push gtpu teid")?;
            c.expect("))", W)?;
            // Length is filled per packet.
            h.extend_from_slice(&[flags, msgtype, 0, 0]);
            h.extend_from_slice(&teid.to_be_bytes());
            expect_type = vport_type::GTPU;
        } else {
            return Err(c.err("tnl_push: expected vxlan( or geneve("));
        }
    } else if c.eat("gre((flags=0x") {
        let v = c.int_x().and_then(|v| u16::try_from(v).ok());
        let flags = num(c, v, "tnl_push gre flags")?;
        c.expect(",proto=0x", W)?;
        let v = c.int_x().and_then(|v| u16::try_from(v).ok());
        let proto = num(c, v, "tnl_push gre proto")?;
        c.expect(")", W)?;
        h.extend_from_slice(&flags.to_be_bytes());
        h.extend_from_slice(&proto.to_be_bytes());
        if flags & 0x8000 != 0 {
            c.expect(",csum=0x", W)?;
            let v = c.int_x().and_then(|v| u16::try_from(v).ok());
            let gcsum = num(c, v, "tnl_push gre csum")?;
            h.extend_from_slice(&gcsum.to_be_bytes());
            h.extend_from_slice(&[0, 0]);
        }
        if flags & 0x2000 != 0 {
            c.expect(",key=0x", W)?;
            let v = c.int_x().and_then(|v| u32::try_from(v).ok());
            let key = num(c, v, "tnl_push gre key")?;
            h.extend_from_slice(&key.to_be_bytes());
        }
        if flags & 0x1000 != 0 {
            c.expect(",seq=0x", W)?;
            let v = c.int_x().and_then(|v| u32::try_from(v).ok());
            let seq = num(c, v, "tnl_push gre seq")?;
            h.extend_from_slice(&seq.to_be_bytes());
        }
        c.expect("))", W)?;
        expect_type = if ipv4 {
            vport_type::GRE
        } else {
            vport_type::IP6GRE
        };
    } else if c.starts("erspan(") {
        return Err(OdpError::Unsupported(
            "tnl_push erspan: ERSPAN headers are not implemented".into(),
        ));
    } else if c.eat("srv6(segments_left=") {
        if ipv4 {
            return Err(OdpError::Invalid(
                "tnl_push srv6: needs an IPv6 outer header".into(),
            ));
        }
        let v = c.u8_i().filter(|v| usize::from(*v) < SRV6_MAX_SEGS);
        let segments_left = num(c, v, "tnl_push srv6 segments_left")?;
        let n_segs = usize::from(segments_left) + 1;
        c.expect(",segs(", W)?;
        let mut segs = Vec::with_capacity(n_segs);
        while let Some(seg) = c.ipv6() {
            if segs.len() == n_segs {
                return Err(OdpError::Invalid(format!(
                    "tnl_push srv6 segs: more than segments_left + 1 = {n_segs} segments"
                )));
            }
            segs.push(seg);
            c.eat(",");
        }
        if segs.len() != n_segs {
            return Err(OdpError::Invalid(format!(
                "tnl_push srv6 segs: expected {n_segs} segments"
            )));
        }
        c.expect(")))", W)?;
        // Routing header type 4; next header is filled per packet.
        h.extend_from_slice(&[
            0,
            (2 * n_segs) as u8,
            4,
            segments_left,
            segments_left,
            0,
            0,
            0,
        ]);
        // The segment list is stored last segment first.
        for seg in segs.iter().rev() {
            h.extend_from_slice(seg);
        }
        expect_type = vport_type::SRV6;
    } else {
        return Err(c.err("tnl_push: expected udp(, gre(, erspan( or srv6("));
    }
    if tnl_type != expect_type {
        return Err(OdpError::Invalid(format!(
            "tnl_push header type: {tnl_type} does not match the header ({expect_type})"
        )));
    }
    if size as usize != h.len() {
        return Err(OdpError::Invalid(format!(
            "tnl_push header size: {size} but the header is {} bytes",
            h.len()
        )));
    }
    c.expect(",out_port(", W)?;
    let v = c.u32_i();
    let out_port = num(c, v, "tnl_push out_port")?;
    c.expect("))", W)?;
    Ok(Action::TnlPush(TnlPush {
        tnl_port,
        out_port,
        tnl_type,
        header: h,
    }))
}

/// Bounds-checked big-endian reads over a header.
struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn u8(&self, i: usize) -> Option<u8> {
        self.0.get(i).copied()
    }
    fn u16(&self, i: usize) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8(i)?, self.u8(i + 1)?]))
    }
    fn u32(&self, i: usize) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.u8(i)?,
            self.u8(i + 1)?,
            self.u8(i + 2)?,
            self.u8(i + 3)?,
        ]))
    }
    fn arr<const N: usize>(&self, i: usize) -> Option<[u8; N]> {
        self.0.get(i..i + N)?.try_into().ok()
    }
}

pub(super) fn format_tnl_push(out: &mut String, t: &TnlPush, names: Option<&PortNames>) {
    out.push_str("tnl_push(tnl_port(");
    format_port(out, names, t.tnl_port);
    out.push_str("),");
    let _ = write!(out, "header(size={},type={},", t.header.len(), t.tnl_type);
    if format_tnl_header(out, t).is_none() {
        out.push_str("<truncated header>");
    }
    out.push_str("),out_port(");
    format_port(out, names, t.out_port);
    out.push_str("))");
}

fn format_tnl_header(out: &mut String, t: &TnlPush) -> Option<()> {
    let r = Rd(&t.header);
    out.push_str("eth(dst=");
    fmt::mac(out, &r.arr::<6>(0)?);
    out.push_str(",src=");
    fmt::mac(out, &r.arr::<6>(6)?);
    let dl_type = r.u16(12)?;
    let _ = write!(out, ",dl_type=0x{dl_type:04x}),");
    let l4 = if dl_type == 0x0800 {
        let ip = 14;
        out.push_str("ipv4(src=");
        fmt::ipv4(out, &r.arr::<4>(ip + 12)?);
        out.push_str(",dst=");
        fmt::ipv4(out, &r.arr::<4>(ip + 16)?);
        let _ = write!(
            out,
            ",proto={},tos={},ttl={},frag=0x{:x}),",
            r.u8(ip + 9)?,
            hexp(r.u8(ip + 1)?.into()),
            r.u8(ip + 8)?,
            r.u16(ip + 6)?
        );
        ip + 20
    } else {
        let ip = 14;
        let flow = r.u32(ip)?;
        out.push_str("ipv6(src=");
        fmt::ipv6(out, &r.arr::<16>(ip + 8)?);
        out.push_str(",dst=");
        fmt::ipv6(out, &r.arr::<16>(ip + 24)?);
        let _ = write!(
            out,
            ",label={},proto={},tclass=0x{:x},hlimit={}),",
            flow & 0xfffff,
            r.u8(ip + 6)?,
            (flow >> 20) & 0xff,
            r.u8(ip + 7)?
        );
        ip + 40
    };
    let udp = |out: &mut String| -> Option<()> {
        let _ = write!(
            out,
            "udp(src={},dst={},csum=0x{:x}),",
            r.u16(l4)?,
            r.u16(l4 + 2)?,
            r.u16(l4 + 6)?
        );
        Some(())
    };
    match t.tnl_type {
        vport_type::VXLAN => {
            udp(out)?;
            let _ = write!(
                out,
                "vxlan(flags=0x{:x},vni=0x{:x})",
                r.u32(l4 + 8)?,
                r.u32(l4 + 12)? >> 8
            );
        }
        vport_type::GENEVE => {
            udp(out)?;
            let g = l4 + 8;
            let opt_len = usize::from(r.u8(g)? & 0x3f) * 4;
            let b1 = r.u8(g + 1)?;
            let _ = write!(
                out,
                "geneve({}{}vni=0x{:x}",
                if b1 & 0x80 != 0 { "oam," } else { "" },
                if b1 & 0x40 != 0 { "crit," } else { "" },
                r.u32(g + 4)? >> 8
            );
            if opt_len > 0 {
                out.push_str(",options(");
                key::format_geneve(out, t.header.get(g + 8..g + 8 + opt_len)?, None, false);
                out.push(')');
            }
            out.push(')');
        }
        vport_type::GRE | vport_type::IP6GRE => {
            let flags = r.u16(l4)?;
            let _ = write!(out, "gre((flags=0x{flags:x},proto=0x{:x})", r.u16(l4 + 2)?);
            let mut o = l4 + 4;
            if flags & 0x8000 != 0 {
                let _ = write!(out, ",csum=0x{:x}", r.u16(o)?);
                o += 4;
            }
            if flags & 0x2000 != 0 {
                let _ = write!(out, ",key=0x{:x}", r.u32(o)?);
                o += 4;
            }
            if flags & 0x1000 != 0 {
                let _ = write!(out, ",seq=0x{:x}", r.u32(o)?);
            }
            out.push(')');
        }
        vport_type::GTPU => {
            udp(out)?;
            let _ = write!(
                out,
                "gtpu(flags=0x{:x},msgtype={},teid=0x{:x})",
                r.u8(l4 + 8)?,
                r.u8(l4 + 9)?,
                r.u32(l4 + 12)?
            );
        }
        vport_type::SRV6 => {
            let nr_segs = usize::from(r.u8(l4 + 4)?) + 1;
            let _ = write!(out, "srv6(segments_left={},segs(", r.u8(l4 + 3)?);
            for i in 0..nr_segs {
                if i > 0 {
                    out.push(',');
                }
                fmt::ipv6(out, &r.arr::<16>(l4 + 8 + 16 * (nr_segs - i - 1))?);
            }
            out.push_str("))");
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::super::actions;
    use super::*;

    fn header(s: &str) -> Vec<u8> {
        match actions::parse(s, None).unwrap().pop() {
            Some(Action::TnlPush(t)) => t.header,
            other => panic!("{other:?}"),
        }
    }

    const ETH4: &str = "eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=47,tos=0,ttl=64,frag=0x4000)";

    #[test]
    fn test_emit_gre_header_bytes() {
        let h = header(&format!(
            "tnl_push(tnl_port(4),header(size=46,type=3,{ETH4},gre((flags=0xa000,proto=0x6558),csum=0x0,key=0x1e241)),out_port(1))"
        ));
        assert_eq!(&h[12..14], &[0x08, 0x00]);
        // IPv4: version/IHL, DF, TTL, protocol, and a checksum that verifies.
        assert_eq!((h[14], h[20], h[22], h[23]), (0x45, 0x40, 64, 47));
        assert_eq!(csum(&h[14..34]), 0);
        // GRE: flags, protocol, checksum + reserved, key.
        assert_eq!(
            &h[34..46],
            &[0xa0, 0, 0x65, 0x58, 0, 0, 0, 0, 0, 0x01, 0xe2, 0x41]
        );
    }

    #[test]
    fn test_emit_geneve_header_bytes() {
        let s = "tnl_push(tnl_port(6),header(size=58,type=5,eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=6081,csum=0x0),geneve(oam,crit,vni=0x1c7,options({class=0xffff,type=0x80,len=4,0xa}))),out_port(1))";
        let h = header(s);
        let g = 14 + 20 + 8;
        assert_eq!(&h[14 + 20 + 2..g - 4], &[0x17, 0xc1]);
        assert_eq!(&h[g..g + 8], &[2, 0xc0, 0x65, 0x58, 0, 0x01, 0xc7, 0]);
        assert_eq!(&h[g + 8..], &[0xff, 0xff, 0x80, 1, 0, 0, 0, 0xa]);
        assert_eq!(actions::format(&actions::parse(s, None).unwrap(), None), s);
    }

    #[test]
    fn test_parse_rejects_mismatched_size_and_type() {
        let ok = format!(
            "tnl_push(tnl_port(4),header(size=42,type=3,{ETH4},gre((flags=0x2000,proto=0x6558),key=0x1)),out_port(1))"
        );
        assert!(actions::parse(&ok, None).is_ok());
        for bad in [
            ok.replace("size=42", "size=43"),
            ok.replace("type=3", "type=4"),
        ] {
            assert!(
                matches!(actions::parse(&bad, None), Err(OdpError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn test_parse_emit_gtpu() {
        let s = "tnl_push(tnl_port(6),header(size=50,type=110,eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=51283,dst=2152,csum=0x0),gtpu(flags=0x30,msgtype=255,teid=0x3039)),out_port(1))";
        let h = header(s);
        assert_eq!(&h[42..50], &[0x30, 255, 0, 0, 0, 0, 0x30, 0x39]);
        assert_eq!(actions::format(&actions::parse(s, None).unwrap(), None), s);
    }

    #[test]
    fn test_emit_truncated_header_never_panics() {
        for n in 0..60 {
            let t = TnlPush {
                tnl_port: 1,
                out_port: 2,
                tnl_type: vport_type::GENEVE,
                header: vec![0x11; n],
            };
            let s = actions::format(&[Action::TnlPush(t)], None);
            assert!(s.starts_with("tnl_push(tnl_port(1),header(size="));
        }
    }
}
