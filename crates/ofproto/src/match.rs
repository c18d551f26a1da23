//! A rule's match: an [`OfFlow`] value and mask, its ofctl text syntax
//! (`ip,nw_dst=10.0.0.0/24,tp_dst=80`) and OVS's canonical formatting.
//!
//! # Invariants
//! - `flow == flow & mask` always ([`Match::set`] keeps it).
//! - A parsed match satisfies every field's prerequisite (`tp_dst` needs
//!   `tcp`/`udp`/`sctp`, `nw_dst` needs `ip`, ...); otherwise the parser
//!   fails naming the field, as OpenFlow 1.2+ requires.
//! - `format` prints fields in `lib/match.c`'s order, so `parse(format(m))
//!   == m` and the text matches `ovs-ofctl dump-flows`.

use crate::field::*;
use crate::parse::{ParseError, parse_uint};
use crate::ports::{PortNamer, format_port, parse_port};
use dp_core::flow::key::*;
use dp_core::odp::fmt as odpfmt;
use std::fmt::Write;

/// OpenFlow's default rule priority (not printed).
pub const DEFAULT_PRIORITY: u16 = 32768;

/// A value and mask over [`OfFlow`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub flow: OfFlow,
    pub mask: OfFlow,
}

impl Match {
    /// Matches every packet.
    pub fn catchall() -> Match {
        Match::default()
    }

    /// Matches exactly `flow` on every bit.
    pub fn exact(flow: &OfFlow) -> Match {
        let mut mask = OfFlow::from_key(FlowKey::exact_mask());
        mask.metadata = u64::MAX;
        mask.regs = [u32::MAX; N_REGS];
        Match {
            flow: flow.masked(&mask),
            mask,
        }
    }

    /// Sets `field` to `value` on the bits of `mask` (other bits of the
    /// field become wildcards).
    pub fn set(&mut self, field: Field, value: u128, mask: u128) {
        field.set(&mut self.mask, mask);
        field.set(&mut self.flow, value & mask);
        if let Field::TunMetadata(i) = field {
            // Matching an option's value also means "the option is there"
            // (OVS: a `tun_metadata` match sets its presence bit).
            let bit = 1u64 << (i % N_TUN_METADATA as u8);
            if mask != 0 {
                self.mask.tun_metadata_present |= bit;
                self.flow.tun_metadata_present |= bit;
            } else {
                self.mask.tun_metadata_present &= !bit;
                self.flow.tun_metadata_present &= !bit;
            }
        }
    }

    /// Exact match on `field`.
    pub fn set_exact(&mut self, field: Field, value: u128) {
        self.set(field, value, field.full());
    }

    /// True when `flow` matches.
    pub fn matches(&self, flow: &OfFlow) -> bool {
        flow.masked(&self.mask) == self.flow
    }

    /// True when every packet `other` matches is matched by `self` (the
    /// loose delete/modify selection: `self` is the request).
    pub fn covers(&self, other: &Match) -> bool {
        self.mask.is_subset_of(&other.mask) && other.flow.equal_in(&self.flow, &self.mask)
    }

    /// True when some packet matches both.
    pub fn overlaps(&self, other: &Match) -> bool {
        let both = self.mask.masked(&other.mask);
        self.flow.equal_in(&other.flow, &both)
    }

    fn exact_on(&self, field: Field) -> Option<u128> {
        (field.get(&self.mask) == field.full()).then(|| field.get(&self.flow))
    }

    /// True when the match's prerequisite fields satisfy `p`.
    pub fn prereq_ok(&self, p: Prereq) -> bool {
        let dl = self.exact_on(Field::EthType).map(|v| v as u16);
        let proto = self.exact_on(Field::IpProto).map(|v| v as u8);
        let ip_any = matches!(dl, Some(ETH_TYPE_IPV4 | ETH_TYPE_IPV6));
        let icmp6 = dl == Some(ETH_TYPE_IPV6) && proto == Some(IPPROTO_ICMPV6);
        let icmp_type = (Field::TpSrc.get(&self.mask) & 0xff == 0xff)
            .then(|| Field::TpSrc.get(&self.flow) & 0xff);
        match p {
            Prereq::None => true,
            Prereq::Ip => dl == Some(ETH_TYPE_IPV4),
            Prereq::Ipv6 => dl == Some(ETH_TYPE_IPV6),
            Prereq::IpAny => ip_any,
            Prereq::Arp => matches!(dl, Some(ETH_TYPE_ARP | ETH_TYPE_RARP)),
            Prereq::L4 => ip_any && matches!(proto, Some(IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)),
            Prereq::Tcp => ip_any && proto == Some(IPPROTO_TCP),
            Prereq::Icmp => dl == Some(ETH_TYPE_IPV4) && proto == Some(IPPROTO_ICMP),
            Prereq::Icmp6 => icmp6,
            Prereq::IcmpAny => icmp6 || (dl == Some(ETH_TYPE_IPV4) && proto == Some(IPPROTO_ICMP)),
            Prereq::Nd => icmp6 && matches!(icmp_type, Some(135 | 136)),
            Prereq::NdSolicit => icmp6 && icmp_type == Some(135),
            Prereq::NdAdvert => icmp6 && icmp_type == Some(136),
        }
    }

    /// Applies a protocol shorthand (`ip`, `tcp6`, `arp`, ...). Returns
    /// false when `name` is not one.
    pub fn set_protocol(&mut self, name: &str) -> bool {
        let (dl, proto) = match name {
            "eth" => return true,
            "ip" | "ipv4" => (ETH_TYPE_IPV4, None),
            "ipv6" => (ETH_TYPE_IPV6, None),
            "icmp" => (ETH_TYPE_IPV4, Some(IPPROTO_ICMP)),
            "icmp6" => (ETH_TYPE_IPV6, Some(IPPROTO_ICMPV6)),
            "tcp" => (ETH_TYPE_IPV4, Some(IPPROTO_TCP)),
            "tcp6" => (ETH_TYPE_IPV6, Some(IPPROTO_TCP)),
            "udp" => (ETH_TYPE_IPV4, Some(IPPROTO_UDP)),
            "udp6" => (ETH_TYPE_IPV6, Some(IPPROTO_UDP)),
            "sctp" => (ETH_TYPE_IPV4, Some(IPPROTO_SCTP)),
            "sctp6" => (ETH_TYPE_IPV6, Some(IPPROTO_SCTP)),
            "igmp" => (ETH_TYPE_IPV4, Some(IPPROTO_IGMP)),
            "arp" => (ETH_TYPE_ARP, None),
            "rarp" => (ETH_TYPE_RARP, None),
            "mpls" => (ETH_TYPE_MPLS, None),
            "mplsm" => (ETH_TYPE_MPLS_MCAST, None),
            _ => return false,
        };
        self.set_exact(Field::EthType, u128::from(dl));
        if let Some(p) = proto {
            self.set_exact(Field::IpProto, u128::from(p));
        }
        true
    }

    /// Parses `name=value` for one match field into `self`. Returns
    /// `Ok(None)` when `name` is not a match field, else the field set.
    pub fn parse_field(
        &mut self,
        name: &str,
        value: &str,
        names: &dyn PortNamer,
    ) -> Result<Option<Field>, ParseError> {
        let Some(field) = Field::from_name(name) else {
            return Ok(None);
        };
        let err = |m: String| ParseError::new(name, m);
        match field {
            Field::InPort => {
                let p = parse_port(value, names).map_err(err)?;
                self.set_exact(Field::InPort, u128::from(p));
            }
            Field::VlanVid if name == "dl_vlan" => {
                let v =
                    parse_uint(value).ok_or_else(|| err(format!("{value}: expected a VLAN id")))?;
                if v == 0xffff {
                    // OpenFlow 1.0's "no VLAN header".
                    self.set(Field::VlanTci, 0, 0xffff);
                } else if v > 4095 {
                    return Err(err(format!("{v} is not a VLAN id (0..4095 or 0xffff)")));
                } else {
                    let tci = Field::VlanTci.get(&self.flow) as u16;
                    let m = Field::VlanTci.get(&self.mask) as u16;
                    let tci = (tci & 0xe000) | VLAN_CFI | v as u16;
                    self.set(Field::VlanTci, u128::from(tci), u128::from(m | 0x1fff));
                }
            }
            Field::VlanVid => {
                // OpenFlow 1.2 vlan_vid: the 0x1000 bit means "present".
                let (v, m) = parse_masked_int(value, 0x1fff).map_err(err)?;
                let tci = (Field::VlanTci.get(&self.flow) as u16 & !0x1fff) | v as u16;
                let mm = (Field::VlanTci.get(&self.mask) as u16 & !0x1fff) | m as u16;
                self.set(Field::VlanTci, u128::from(tci), u128::from(mm));
            }
            Field::VlanPcp => {
                let v = parse_uint(value)
                    .filter(|v| *v <= 7)
                    .ok_or_else(|| err(format!("{value}: expected a priority 0..7")))?;
                let tci = Field::VlanTci.get(&self.flow) as u16;
                let m = Field::VlanTci.get(&self.mask) as u16;
                let tci = (tci & 0x1fff) | VLAN_CFI | ((v as u16) << 13);
                self.set(Field::VlanTci, u128::from(tci), u128::from(m | 0xf000));
            }
            Field::NwTos => {
                let v = parse_uint(value)
                    .filter(|v| *v <= 255)
                    .ok_or_else(|| err(format!("{value}: expected 0..255")))?;
                if v & 3 != 0 {
                    return Err(err(format!("{v}: the low 2 bits (ECN) must be zero")));
                }
                self.set_exact(Field::NwTos, v);
            }
            Field::IcmpType | Field::IcmpCode | Field::Icmpv6Type | Field::Icmpv6Code => {
                // OVS matches the whole 16-bit transport field.
                let v = parse_uint(value)
                    .filter(|v| *v <= 255)
                    .ok_or_else(|| err(format!("{value}: expected 0..255")))?;
                let tp = if matches!(field, Field::IcmpType | Field::Icmpv6Type) {
                    Field::TpSrc
                } else {
                    Field::TpDst
                };
                self.set_exact(tp, v);
            }
            _ => {
                let (v, m) = parse_value(field, value).map_err(err)?;
                self.set(field, v, m);
            }
        }
        Ok(Some(field))
    }

    /// Checks every field in `fields` against its prerequisite.
    pub fn check_prereqs(&self, fields: &[(String, Field)]) -> Result<(), ParseError> {
        for (name, f) in fields {
            let p = f.prereq();
            if !self.prereq_ok(p) {
                return Err(ParseError::new(
                    name,
                    format!("missing prerequisite: match on {} first", p.describe()),
                ));
            }
        }
        Ok(())
    }

    /// The ofctl text of this match (OVS `match_format`); `priority` is
    /// printed unless it is the default.
    pub fn format(&self, priority: Option<u16>, names: Option<&dyn PortNamer>) -> String {
        let mut s = String::new();
        self.format_into(&mut s, priority, names);
        s
    }

    /// [`Match::format`] appending to `s`.
    pub fn format_into(
        &self,
        s: &mut String,
        priority: Option<u16>,
        names: Option<&dyn PortNamer>,
    ) {
        let start = s.len();
        let f = &self.flow.key;
        let m = &self.mask.key;
        if let Some(p) = priority.filter(|p| *p != DEFAULT_PRIORITY) {
            let _ = write!(s, "priority={p},");
        }
        fmt_u32(s, "pkt_mark", f.pkt_mark, m.pkt_mark);
        if m.recirc_id != 0 {
            fmt_u32(s, "recirc_id", f.recirc_id, m.recirc_id);
        }
        if m.packet_type != 0 && f.packet_type == 0 {
            s.push_str("eth,");
        }
        let mut skip_type = false;
        let mut skip_proto = false;
        if m.dl_type != 0 {
            skip_type = true;
            let proto_known = m.nw_proto != 0;
            let name = match (f.dl_type, proto_known, f.nw_proto) {
                (ETH_TYPE_IPV4, true, IPPROTO_ICMP) => Some("icmp"),
                (ETH_TYPE_IPV4, true, IPPROTO_IGMP) => Some("igmp"),
                (ETH_TYPE_IPV4, true, IPPROTO_TCP) => Some("tcp"),
                (ETH_TYPE_IPV4, true, IPPROTO_UDP) => Some("udp"),
                (ETH_TYPE_IPV4, true, IPPROTO_SCTP) => Some("sctp"),
                (ETH_TYPE_IPV6, true, IPPROTO_ICMPV6) => Some("icmp6"),
                (ETH_TYPE_IPV6, true, IPPROTO_TCP) => Some("tcp6"),
                (ETH_TYPE_IPV6, true, IPPROTO_UDP) => Some("udp6"),
                (ETH_TYPE_IPV6, true, IPPROTO_SCTP) => Some("sctp6"),
                _ => None,
            };
            if let Some(n) = name {
                skip_proto = true;
                let _ = write!(s, "{n},");
            } else {
                match f.dl_type {
                    ETH_TYPE_IPV4 => s.push_str("ip,"),
                    ETH_TYPE_IPV6 => s.push_str("ipv6,"),
                    ETH_TYPE_ARP => s.push_str("arp,"),
                    ETH_TYPE_RARP => s.push_str("rarp,"),
                    ETH_TYPE_MPLS => s.push_str("mpls,"),
                    ETH_TYPE_MPLS_MCAST => s.push_str("mplsm,"),
                    _ => skip_type = false,
                }
            }
        }
        for i in 0..N_REGS {
            fmt_u32(
                s,
                Field::Reg(i as u8).name(),
                self.flow.regs[i],
                self.mask.regs[i],
            );
        }
        fmt_u64(s, "tun_id", f.tun_id, m.tun_id);
        fmt_ip(s, "tun_src", &f.tun_ipv4_src, &m.tun_ipv4_src);
        fmt_ip(s, "tun_dst", &f.tun_ipv4_dst, &m.tun_ipv4_dst);
        fmt_ip6(s, "tun_ipv6_src", &f.tun_ipv6_src, &m.tun_ipv6_src);
        fmt_ip6(s, "tun_ipv6_dst", &f.tun_ipv6_dst, &m.tun_ipv6_dst);
        if m.tun_tos != 0 {
            let _ = write!(s, "tun_tos={:x},", f.tun_tos);
        }
        if m.tun_flags != 0 {
            s.push_str("tun_flags=");
            let max = u32::from(
                dp_core::odp::flow::TNL_F_DONT_FRAGMENT
                    | dp_core::odp::flow::TNL_F_CSUM
                    | dp_core::odp::flow::TNL_F_KEY
                    | dp_core::odp::flow::TNL_F_OAM,
            );
            let mask = u32::from(m.tun_flags) & max;
            if mask == max {
                odpfmt::flags(s, odpfmt::tun_flag_name, u32::from(f.tun_flags), '|');
            } else {
                odpfmt::flags_masked(s, odpfmt::tun_flag_name, u32::from(f.tun_flags), mask, max);
            }
            s.push(',');
        }
        for i in 0..N_TUN_METADATA {
            if self.mask.tun_metadata_present & (1 << i) != 0 {
                let name = Field::TunMetadata(i as u8).name();
                let (v, mk) = (self.flow.tun_metadata[i], self.mask.tun_metadata[i]);
                let _ = write!(s, "{name}={}", odpfmt::hexp(u128::from(v)));
                if mk != u64::MAX {
                    let _ = write!(s, "/{}", odpfmt::hexp(u128::from(mk)));
                }
                s.push(',');
            }
        }
        fmt_u64(s, "metadata", self.flow.metadata, self.mask.metadata);
        if m.in_port != 0 {
            s.push_str("in_port=");
            format_port(s, f.in_port, names);
            s.push(',');
        }
        let tm = m.vlans[0].tci;
        if tm != 0 {
            let t = f.vlans[0].tci;
            let vid_m = tm & 0x0fff;
            let pcp_m = tm & 0xe000;
            if tm & VLAN_CFI != 0
                && t & VLAN_CFI != 0
                && (vid_m == 0 || vid_m == 0x0fff)
                && (pcp_m == 0 || pcp_m == 0xe000)
                && (vid_m != 0 || pcp_m != 0)
            {
                if vid_m != 0 {
                    let _ = write!(s, "dl_vlan={},", t & 0x0fff);
                }
                if pcp_m != 0 {
                    let _ = write!(s, "dl_vlan_pcp={},", t >> 13);
                }
            } else if tm == 0xffff {
                let _ = write!(s, "vlan_tci=0x{t:04x},");
            } else {
                let _ = write!(s, "vlan_tci=0x{t:04x}/0x{tm:04x},");
            }
        }
        fmt_eth(s, "dl_src", &f.dl_src, &m.dl_src);
        fmt_eth(s, "dl_dst", &f.dl_dst, &m.dl_dst);
        if !skip_type && m.dl_type != 0 {
            let _ = write!(s, "dl_type=0x{:04x},", f.dl_type);
        }
        let is_arp = f.dl_type == ETH_TYPE_ARP || f.dl_type == ETH_TYPE_RARP;
        if f.dl_type == ETH_TYPE_IPV6 {
            fmt_ip6(s, "ipv6_src", &f.ipv6_src, &m.ipv6_src);
            fmt_ip6(s, "ipv6_dst", &f.ipv6_dst, &m.ipv6_dst);
            if m.ipv6_label != 0 {
                if m.ipv6_label == 0xf_ffff {
                    let _ = write!(s, "ipv6_label=0x{:05x},", f.ipv6_label);
                } else {
                    let _ = write!(
                        s,
                        "ipv6_label=0x{:05x}/0x{:05x},",
                        f.ipv6_label, m.ipv6_label
                    );
                }
            }
        } else if is_arp {
            fmt_ip(s, "arp_spa", &f.nw_src, &m.nw_src);
            fmt_ip(s, "arp_tpa", &f.nw_dst, &m.nw_dst);
        } else {
            fmt_ip(s, "nw_src", &f.nw_src, &m.nw_src);
            fmt_ip(s, "nw_dst", &f.nw_dst, &m.nw_dst);
        }
        if !skip_proto && m.nw_proto != 0 {
            let n = if is_arp { "arp_op" } else { "nw_proto" };
            let _ = write!(s, "{n}={},", f.nw_proto);
        }
        if is_arp {
            fmt_eth(s, "arp_sha", &f.arp_sha, &m.arp_sha);
            fmt_eth(s, "arp_tha", &f.arp_tha, &m.arp_tha);
        }
        if m.nw_tos & 0xfc != 0 {
            let _ = write!(s, "nw_tos={},", f.nw_tos & 0xfc);
        }
        if m.nw_tos & 0x03 != 0 {
            let _ = write!(s, "nw_ecn={},", f.nw_tos & 0x03);
        }
        if m.nw_ttl != 0 {
            let _ = write!(s, "nw_ttl={},", f.nw_ttl);
        }
        let any = f.nw_frag & FLOW_NW_FRAG_ANY != 0;
        let later = f.nw_frag & FLOW_NW_FRAG_LATER != 0;
        match m.nw_frag & 3 {
            3 => {
                let v = match (any, later) {
                    (true, true) => "later",
                    (true, false) => "first",
                    (false, true) => "<error>",
                    (false, false) => "no",
                };
                let _ = write!(s, "nw_frag={v},");
            }
            FLOW_NW_FRAG_ANY => {
                let _ = write!(s, "nw_frag={},", if any { "yes" } else { "no" });
            }
            FLOW_NW_FRAG_LATER => {
                let _ = write!(s, "nw_frag={},", if later { "later" } else { "not_later" });
            }
            _ => {}
        }
        let (ty, code) = match (f.dl_type, f.nw_proto) {
            (ETH_TYPE_IPV4, IPPROTO_ICMP) => ("icmp_type", "icmp_code"),
            (ETH_TYPE_IPV4, IPPROTO_IGMP) => ("igmp_type", "igmp_code"),
            (ETH_TYPE_IPV6, IPPROTO_ICMPV6) => ("icmp_type", "icmp_code"),
            _ => ("tp_src", "tp_dst"),
        };
        fmt_u16(s, ty, f.tp_src, m.tp_src);
        fmt_u16(s, code, f.tp_dst, m.tp_dst);
        if f.dl_type == ETH_TYPE_IPV6 && f.nw_proto == IPPROTO_ICMPV6 {
            fmt_ip6(s, "nd_target", &f.nd_target, &m.nd_target);
            fmt_eth(s, "nd_sll", &f.arp_sha, &m.arp_sha);
            fmt_eth(s, "nd_tll", &f.arp_tha, &m.arp_tha);
        }
        let ip_any = f.dl_type == ETH_TYPE_IPV4 || f.dl_type == ETH_TYPE_IPV6;
        if ip_any && f.nw_proto == IPPROTO_TCP && m.tcp_flags & 0x0fff != 0 {
            s.push_str("tcp_flags=");
            let mask = u32::from(m.tcp_flags & 0x0fff);
            if mask == 0x0fff {
                odpfmt::flags(s, odpfmt::tcp_flag_name, u32::from(f.tcp_flags), '|');
            } else {
                odpfmt::flags_masked(
                    s,
                    odpfmt::tcp_flag_name,
                    u32::from(f.tcp_flags),
                    mask,
                    0x0fff,
                );
            }
            s.push(',');
        }
        if s.len() > start {
            odpfmt::chomp(s, ',');
        }
    }
}

fn fmt_u16(s: &mut String, name: &str, v: u16, m: u16) {
    if m != 0 {
        let _ = write!(s, "{name}={v}");
        if m != u16::MAX {
            let _ = write!(s, "/0x{m:x}");
        }
        s.push(',');
    }
}

fn fmt_u32(s: &mut String, name: &str, v: u32, m: u32) {
    if m != 0 {
        let _ = write!(s, "{name}={}", odpfmt::hexp(u128::from(v)));
        if m != u32::MAX {
            let _ = write!(s, "/{}", odpfmt::hexp(u128::from(m)));
        }
        s.push(',');
    }
}

fn fmt_u64(s: &mut String, name: &str, v: u64, m: u64) {
    if m != 0 {
        let _ = write!(s, "{name}={}", odpfmt::hexp(u128::from(v)));
        if m != u64::MAX {
            let _ = write!(s, "/{}", odpfmt::hexp(u128::from(m)));
        }
        s.push(',');
    }
}

fn fmt_eth(s: &mut String, name: &str, v: &[u8; 6], m: &[u8; 6]) {
    if *m != [0; 6] {
        let _ = write!(s, "{name}=");
        odpfmt::mac(s, v);
        if *m != [0xff; 6] {
            s.push('/');
            odpfmt::mac(s, m);
        }
        s.push(',');
    }
}

fn fmt_ip(s: &mut String, name: &str, v: &[u8; 4], m: &[u8; 4]) {
    if *m != [0; 4] {
        let _ = write!(s, "{name}=");
        odpfmt::ipv4(s, v);
        let mu = u32::from_be_bytes(*m);
        if mu != u32::MAX {
            match cidr_len(u128::from(mu), 32) {
                Some(p) => {
                    let _ = write!(s, "/{p}");
                }
                None => {
                    s.push('/');
                    odpfmt::ipv4(s, m);
                }
            }
        }
        s.push(',');
    }
}

fn fmt_ip6(s: &mut String, name: &str, v: &[u8; 16], m: &[u8; 16]) {
    if *m != [0; 16] {
        let _ = write!(s, "{name}=");
        odpfmt::ipv6(s, v);
        let mu = u128::from_be_bytes(*m);
        if mu != u128::MAX {
            match cidr_len(mu, 128) {
                Some(p) => {
                    let _ = write!(s, "/{p}");
                }
                None => {
                    s.push('/');
                    odpfmt::ipv6(s, m);
                }
            }
        }
        s.push(',');
    }
}

/// `value[/mask]` for an integer field of `full` bits.
fn parse_masked_int(value: &str, full: u128) -> Result<(u128, u128), String> {
    let (v, m) = match value.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (value, None),
    };
    let v = parse_uint(v).ok_or_else(|| format!("{v}: expected an integer"))?;
    if v & !full != 0 {
        return Err(format!("{v:#x} does not fit in the field (max {full:#x})"));
    }
    let m = match m {
        Some(m) => {
            let m = parse_uint(m).ok_or_else(|| format!("{m}: expected an integer mask"))?;
            if m & !full != 0 {
                return Err(format!(
                    "mask {m:#x} does not fit in the field (max {full:#x})"
                ));
            }
            m
        }
        None => full,
    };
    Ok((v & m, m))
}

/// Parses `s` as an Ethernet address.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Parses `s` as a dotted IPv4 address.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    s.parse::<std::net::Ipv4Addr>().ok().map(|a| a.octets())
}

/// Parses `s` as an IPv6 address.
pub fn parse_ipv6(s: &str) -> Option<[u8; 16]> {
    s.parse::<std::net::Ipv6Addr>().ok().map(|a| a.octets())
}

fn parse_prefix_or_mask(
    m: &str,
    bits: u32,
    addr: impl Fn(&str) -> Option<u128>,
) -> Result<u128, String> {
    if let Ok(p) = m.parse::<u32>() {
        if p > bits {
            return Err(format!("prefix length {p} is longer than {bits}"));
        }
        return Ok(prefix_mask(p, bits));
    }
    addr(m).ok_or_else(|| format!("{m}: expected a prefix length or mask"))
}

/// Parses a TCP flags value: an integer, `+syn-ack` (match set/unset
/// bits), or `syn|ack` (exact).
fn parse_tcp_flags(value: &str) -> Result<(u128, u128), String> {
    if value.starts_with('+') || value.starts_with('-') {
        let (mut v, mut m) = (0u128, 0u128);
        let mut rest = value;
        while !rest.is_empty() {
            let sign = rest.as_bytes()[0];
            rest = &rest[1..];
            let end = rest.find(['+', '-']).unwrap_or(rest.len());
            let name = &rest[..end];
            rest = &rest[end..];
            let bit = tcp_flag_bit(name).ok_or_else(|| format!("{name}: unknown TCP flag"))?;
            if m & bit != 0 {
                return Err(format!("{name}: flag given twice"));
            }
            m |= bit;
            if sign == b'+' {
                v |= bit;
            }
        }
        return Ok((v, m));
    }
    if value.contains('|')
        || value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
    {
        let mut v = 0u128;
        for name in value.split('|') {
            v |= tcp_flag_bit(name).ok_or_else(|| format!("{name}: unknown TCP flag"))?;
        }
        return Ok((v, 0x0fff));
    }
    parse_masked_int(value, 0x0fff)
}

fn tcp_flag_bit(name: &str) -> Option<u128> {
    (0..12)
        .map(|i| 1u32 << i)
        .find(|b| odpfmt::tcp_flag_name(*b) == Some(name))
        .map(u128::from)
}

/// Parses a value (with optional mask) for a field of plain syntax.
pub fn parse_value(field: Field, value: &str) -> Result<(u128, u128), String> {
    let (v, m) = match value.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (value, None),
    };
    match field.syntax() {
        Syntax::Mac => {
            let a = parse_mac(v).ok_or_else(|| format!("{v}: expected an Ethernet address"))?;
            let mask = match m {
                Some(m) => {
                    field_u(&parse_mac(m).ok_or_else(|| format!("{m}: expected an Ethernet mask"))?)
                }
                None => field.full(),
            };
            Ok((field_u(&a) & mask, mask))
        }
        Syntax::Ipv4 => {
            let a = parse_ipv4(v).ok_or_else(|| format!("{v}: expected an IPv4 address"))?;
            let mask = match m {
                Some(m) => parse_prefix_or_mask(m, 32, |x| {
                    parse_ipv4(x).map(|a| u128::from(u32::from_be_bytes(a)))
                })?,
                None => field.full(),
            };
            Ok((u128::from(u32::from_be_bytes(a)) & mask, mask))
        }
        Syntax::Ipv6 => {
            let a = parse_ipv6(v).ok_or_else(|| format!("{v}: expected an IPv6 address"))?;
            let mask = match m {
                Some(m) => {
                    parse_prefix_or_mask(m, 128, |x| parse_ipv6(x).map(u128::from_be_bytes))?
                }
                None => u128::MAX,
            };
            Ok((u128::from_be_bytes(a) & mask, mask))
        }
        Syntax::Frag => {
            let any = u128::from(FLOW_NW_FRAG_ANY);
            let later = u128::from(FLOW_NW_FRAG_LATER);
            match value {
                "no" => Ok((0, any)),
                "yes" => Ok((any, any)),
                "first" => Ok((any, any | later)),
                "later" => Ok((any | later, any | later)),
                "not_later" => Ok((0, later)),
                _ => Err(format!(
                    "{value}: expected no, yes, first, later or not_later"
                )),
            }
        }
        Syntax::TcpFlags => parse_tcp_flags(value),
        Syntax::Int | Syntax::Port => parse_masked_int(value, field.full()),
    }
}

fn field_u(m: &[u8; 6]) -> u128 {
    m.iter().fold(0u128, |a, b| (a << 8) | u128::from(*b))
}

/// Fields that are meaningful for `flow` (OVS prints these in the trace
/// `Flow:` line): metadata, L2, and whatever the protocol carries.
pub fn relevant_mask(flow: &FlowKey) -> OfFlow {
    let mut m = OfFlow::ZERO;
    let mut on = |f: Field| {
        let full = f.full();
        f.set(&mut m, full);
    };
    on(Field::InPort);
    on(Field::VlanTci);
    on(Field::EthSrc);
    on(Field::EthDst);
    on(Field::EthType);
    if flow.tun_ipv4_dst != [0; 4] {
        on(Field::TunId);
        on(Field::TunSrc);
        on(Field::TunDst);
    } else if flow.tun_ipv6_dst != [0; 16] {
        on(Field::TunId);
        on(Field::TunIpv6Src);
        on(Field::TunIpv6Dst);
    }
    match flow.dl_type {
        ETH_TYPE_IPV4 | ETH_TYPE_IPV6 => {
            if flow.dl_type == ETH_TYPE_IPV4 {
                on(Field::IpSrc);
                on(Field::IpDst);
            } else {
                on(Field::Ipv6Src);
                on(Field::Ipv6Dst);
                on(Field::Ipv6Label);
            }
            on(Field::IpProto);
            on(Field::NwTos);
            on(Field::IpEcn);
            on(Field::NwTtl);
            on(Field::IpFrag);
            if matches!(flow.nw_proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
                || matches!(flow.nw_proto, IPPROTO_ICMP | IPPROTO_ICMPV6 | IPPROTO_IGMP)
            {
                on(Field::TpSrc);
                on(Field::TpDst);
            }
            if flow.nw_proto == IPPROTO_TCP {
                on(Field::TcpFlags);
            }
            if flow.dl_type == ETH_TYPE_IPV6
                && flow.nw_proto == IPPROTO_ICMPV6
                && matches!(flow.tp_src, 135 | 136)
            {
                on(Field::NdTarget);
                on(Field::NdSll);
                on(Field::NdTll);
            }
        }
        ETH_TYPE_ARP | ETH_TYPE_RARP => {
            on(Field::ArpSpa);
            on(Field::ArpTpa);
            on(Field::ArpOp);
            on(Field::ArpSha);
            on(Field::ArpTha);
        }
        _ => {}
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::NoNames;

    fn parse(s: &str) -> Result<Match, ParseError> {
        let mut m = Match::catchall();
        let mut set = Vec::new();
        for tok in s.split(',') {
            match tok.split_once('=') {
                Some((k, v)) => {
                    let f = m.parse_field(k, v, &NoNames)?.expect(k);
                    set.push((k.to_string(), f));
                }
                None => assert!(m.set_protocol(tok), "{tok}"),
            }
        }
        m.check_prereqs(&set)?;
        Ok(m)
    }

    #[test]
    fn formats_in_ovs_order() {
        let m = parse("nw_dst=10.0.0.0/24,tcp,in_port=3,tp_dst=80,reg1=5").unwrap();
        assert_eq!(
            m.format(Some(100), None),
            "priority=100,tcp,reg1=0x5,in_port=3,nw_dst=10.0.0.0/24,tp_dst=80"
        );
        let m =
            parse("dl_vlan=10,dl_vlan_pcp=3,dl_src=00:11:22:33:44:55/ff:ff:ff:00:00:00").unwrap();
        assert_eq!(
            m.format(None, None),
            "dl_vlan=10,dl_vlan_pcp=3,dl_src=00:11:22:00:00:00/ff:ff:ff:00:00:00"
        );
        let m = parse("dl_vlan=0xffff").unwrap();
        assert_eq!(m.format(None, None), "vlan_tci=0x0000");
        let m = parse("tcp6,ipv6_src=2001:db8::/32,tcp_flags=+syn-ack").unwrap();
        assert_eq!(
            m.format(None, None),
            "tcp6,ipv6_src=2001:db8::/32,tcp_flags=+syn-ack"
        );
        let m = parse("icmp,icmp_type=8,icmp_code=0").unwrap();
        assert_eq!(m.format(None, None), "icmp,icmp_type=8,icmp_code=0");
        let m = parse("arp,arp_spa=1.2.3.4,arp_op=1").unwrap();
        assert_eq!(m.format(None, None), "arp,arp_spa=1.2.3.4,arp_op=1");
        let m = parse("ip,ip_frag=first,nw_tos=8,nw_ecn=1").unwrap();
        assert_eq!(m.format(None, None), "ip,nw_tos=8,nw_ecn=1,nw_frag=first");
    }

    #[test]
    fn prerequisites_are_enforced_naming_the_field() {
        let e = parse("tp_dst=80").unwrap_err();
        assert_eq!(e.field, "tp_dst");
        let e = parse("ip,udp_src=1").unwrap_err();
        assert_eq!(e.field, "udp_src");
        assert!(parse("udp,udp_src=1").is_ok());
        let e = parse("nw_src=1.2.3.4").unwrap_err();
        assert!(e.to_string().starts_with("nw_src: "), "{e}");
        assert!(parse("icmp6,icmp_type=135,nd_target=::1").is_ok());
        assert_eq!(parse("icmp6,nd_target=::1").unwrap_err().field, "nd_target");
    }

    #[test]
    fn bad_values_name_the_field() {
        for (s, field) in [
            ("ip,nw_dst=10.0.0.300", "nw_dst"),
            ("dl_vlan=5000", "dl_vlan"),
            ("ip,nw_tos=3", "nw_tos"),
            ("dl_src=00:11", "dl_src"),
            ("reg0=0x1ffffffff", "reg0"),
            ("ip,nw_src=1.2.3.4/33", "nw_src"),
            ("tcp,tcp_flags=+bogus", "tcp_flags"),
        ] {
            let e = parse(s).unwrap_err();
            assert_eq!(e.field, field, "{s}: {e}");
        }
    }

    #[test]
    fn covers_and_overlaps() {
        let wide = parse("ip,nw_dst=10.0.0.0/8").unwrap();
        let narrow = parse("tcp,nw_dst=10.1.0.0/16").unwrap();
        let other = parse("ip,nw_dst=11.0.0.0/8").unwrap();
        assert!(wide.covers(&narrow));
        assert!(!narrow.covers(&wide));
        assert!(wide.overlaps(&narrow));
        assert!(!wide.overlaps(&other));
    }
}
