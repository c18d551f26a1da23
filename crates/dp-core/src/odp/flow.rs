//! Key attribute lists ↔ [`FlowKey`]: what `dpctl/add-flow` installs and
//! what `dpctl/dump-flows` prints for an installed megaflow.
//!
//! # How it works
//! `attrs → FlowKey` follows OVS's `odp_flow_key_to_flow`: metadata
//! attributes fill their fields, `eth_type` decides which L3 attribute is
//! expected, the IP protocol and fragment type decide which L4 attribute
//! is expected, and a VLAN `encap()` moves one tag deeper. The result
//! carries a [`Fitness`]: attributes the key did not expect make it
//! `TooMuch`, expected ones that are missing (or an MPLS stack without a
//! bottom-of-stack label) make it `TooLittle`.
//!
//! `FlowKey → attrs` follows `odp_flow_key_from_flow`: which attributes
//! appear is decided by the key (its `dl_type`, `nw_proto`, `nw_frag`,
//! VLAN tags), their values come from the key or, for the mask list, from
//! the mask, so key and mask lists always have the same shape.
//!
//! # Limits
//! FlowKey has no room for Geneve options or ERSPAN metadata; converting
//! a key that carries them is an [`OdpError::Unsupported`] naming the
//! field. (The text-level normaliser keeps ERSPAN on the side so the
//! conformance round trip still works.)

use super::attr::*;
use super::scan::{OdpError, Result};
use crate::flow::FlowKey;
use crate::flow::key::*;
use std::collections::HashMap;

/// `FLOW_TNL_F_OAM`.
pub const TNL_F_OAM: u16 = 1 << 0;
/// `FLOW_TNL_F_DONT_FRAGMENT`.
pub const TNL_F_DONT_FRAGMENT: u16 = 1 << 1;
/// `FLOW_TNL_F_CSUM`.
pub const TNL_F_CSUM: u16 = 1 << 2;
/// `FLOW_TNL_F_KEY`.
pub const TNL_F_KEY: u16 = 1 << 3;
/// OVS's "no port" (`ODPP_NONE`): a key without `in_port`.
pub const ODPP_NONE: u32 = u32::MAX;

/// How well an attribute list described a flow (OVS `odp_key_fitness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fitness {
    Perfect,
    /// Attributes were present that the key does not explain.
    TooMuch,
    /// Attributes the key calls for were missing.
    TooLittle,
}

/// Tunnel metadata that the ODP text carries but FlowKey cannot hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelExtras {
    pub erspan: Option<ErspanOpts>,
}

/// Converts an exact key to a FlowKey. Keys with ERSPAN metadata, or
/// more Geneve option bytes than the key holds, are rejected as
/// unsupported.
pub fn key_to_flow(attrs: &[KeyAttr]) -> Result<(FlowKey, Fitness)> {
    let (flow, extras, fit) = key_to_flow_ext(attrs)?;
    if extras.erspan.is_some() {
        return Err(OdpError::Unsupported(
            "tunnel erspan: ERSPAN metadata is not part of the flow key".into(),
        ));
    }
    Ok((flow, fit))
}

/// Converts a key and its mask to a masked FlowKey pair `(key & mask,
/// mask)`, what add-flow installs.
pub fn masked_key_to_flow(key: &[KeyAttr], mask: &[KeyAttr]) -> Result<(FlowKey, FlowKey)> {
    let (flow, _fit) = key_to_flow(key)?;
    let mut m = FlowKey::ZERO;
    let mut extras = TunnelExtras::default();
    apply_mask(mask, &mut m, 0, &mut extras)?;
    if extras.erspan.is_some() {
        return Err(OdpError::Unsupported(
            "tunnel erspan: not part of the flow key".into(),
        ));
    }
    // OVS always matches the packet type exactly in userspace.
    m.packet_type = u32::MAX;
    // In ODP text an Ethernet type outside `encap()` says "untagged": the
    // FlowKey keeps the inner type for tagged packets, so without the tag
    // presence bit this megaflow would also match every tagged packet with
    // that inner type.
    let untagged = flow.vlans[0].tci & VLAN_CFI == 0;
    if flow.is_ethernet() && untagged && m.dl_type != 0 {
        m.vlans[0].tci |= VLAN_CFI;
    }
    Ok((flow.masked(&m), m))
}

/// The attributes OVS would print for an exact key.
pub fn flow_to_key(flow: &FlowKey) -> Vec<KeyAttr> {
    from_flow(flow, flow, None, false, &TunnelExtras::default())
}

/// The key and mask attribute lists for a megaflow (same shape).
pub fn flow_to_masked_key(flow: &FlowKey, mask: &FlowKey) -> (Vec<KeyAttr>, Vec<KeyAttr>) {
    let none = TunnelExtras::default();
    (
        from_flow(flow, flow, Some(mask), false, &none),
        from_flow(flow, mask, Some(mask), true, &none),
    )
}

/// [`key_to_flow`] that keeps ERSPAN metadata on the side.
pub fn key_to_flow_ext(attrs: &[KeyAttr]) -> Result<(FlowKey, TunnelExtras, Fitness)> {
    let mut flow = FlowKey::ZERO;
    let mut extras = TunnelExtras::default();
    let fit = key_level(attrs, &mut flow, &mut extras, 0, true)?;
    Ok((flow, extras, fit))
}

/// [`flow_to_key`] with ERSPAN metadata from the side.
pub fn flow_to_key_ext(flow: &FlowKey, extras: &TunnelExtras) -> Vec<KeyAttr> {
    from_flow(flow, flow, None, false, extras)
}

fn index(attrs: &[KeyAttr]) -> Result<HashMap<KeyAttrKind, &KeyAttr>> {
    let mut map = HashMap::new();
    for a in attrs {
        if map.insert(a.kind(), a).is_some() {
            return Err(OdpError::Invalid(format!(
                "duplicate {} attribute",
                a.kind().name()
            )));
        }
    }
    Ok(map)
}

fn is_vlan(t: u16) -> bool {
    t == ETH_TYPE_VLAN_8021Q || t == ETH_TYPE_VLAN_8021AD
}

fn frag_to_flow(frag: u8, attr: &str) -> Result<u8> {
    match frag {
        FRAG_NO => Ok(0),
        FRAG_FIRST => Ok(FLOW_NW_FRAG_ANY),
        FRAG_LATER => Ok(FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER),
        f => Err(OdpError::Invalid(format!(
            "{attr} frag: unknown fragment type {f}"
        ))),
    }
}

fn tunnel_to_flow(
    t: &[TunAttr],
    flow: &mut FlowKey,
    extras: &mut TunnelExtras,
    is_mask: bool,
) -> Result<()> {
    let mut ttl = false;
    for a in t {
        match a {
            TunAttr::Id(v) => {
                flow.tun_id = *v;
                flow.tun_flags |= TNL_F_KEY;
            }
            TunAttr::Ipv4Src(v) => flow.tun_ipv4_src = *v,
            TunAttr::Ipv4Dst(v) => flow.tun_ipv4_dst = *v,
            TunAttr::Ipv6Src(v) => flow.tun_ipv6_src = *v,
            TunAttr::Ipv6Dst(v) => flow.tun_ipv6_dst = *v,
            TunAttr::Tos(v) => flow.tun_tos = *v,
            TunAttr::Ttl(v) => {
                flow.tun_ttl = *v;
                ttl = true;
            }
            TunAttr::DontFragment => flow.tun_flags |= TNL_F_DONT_FRAGMENT,
            TunAttr::Csum => flow.tun_flags |= TNL_F_CSUM,
            TunAttr::Oam => flow.tun_flags |= TNL_F_OAM,
            TunAttr::TpSrc(v) => flow.tun_tp_src = *v,
            TunAttr::TpDst(v) => flow.tun_tp_dst = *v,
            TunAttr::VxlanGbp(v) => {
                flow.tun_gbp_id = *v as u16;
                flow.tun_gbp_flags = (*v >> 16) as u8;
            }
            TunAttr::Geneve(opts) => {
                if opts.len() > GENEVE_KEY_OPTS {
                    return Err(OdpError::Unsupported(format!(
                        "tunnel geneve: {} bytes of options, the flow key holds at most {GENEVE_KEY_OPTS}",
                        opts.len()
                    )));
                }
                // A mask attribute says "these option bytes matter": the
                // length then matters too.
                flow.tun_geneve_len = if is_mask { u8::MAX } else { opts.len() as u8 };
                flow.tun_geneve = [0; GENEVE_KEY_OPTS];
                flow.tun_geneve[..opts.len()].copy_from_slice(opts);
            }
            TunAttr::Erspan(e) => extras.erspan = Some(*e),
        }
    }
    if !ttl && !is_mask {
        return Err(OdpError::Invalid("tunnel: missing ttl".into()));
    }
    Ok(())
}

/// One level of an exact key (the top level, or one `encap()`).
fn key_level(
    attrs: &[KeyAttr],
    flow: &mut FlowKey,
    extras: &mut TunnelExtras,
    vlan_idx: usize,
    top: bool,
) -> Result<Fitness> {
    let map = index(attrs)?;
    let mut used: Vec<KeyAttrKind> = Vec::new();
    let mut missing = false;
    let get = |k: KeyAttrKind, used: &mut Vec<KeyAttrKind>| {
        let a = map.get(&k).copied();
        if a.is_some() {
            used.push(k);
        }
        a
    };
    if top {
        for a in attrs {
            let mut hit = true;
            match a {
                KeyAttr::RecircId(v) => flow.recirc_id = *v,
                KeyAttr::DpHash(v) => flow.dp_hash = *v,
                KeyAttr::Priority(v) => flow.skb_priority = *v,
                KeyAttr::SkbMark(v) => flow.pkt_mark = *v,
                KeyAttr::CtState(v) => flow.ct_state = *v as u8,
                KeyAttr::CtZone(v) => flow.ct_zone = *v,
                KeyAttr::CtMark(v) => flow.ct_mark = *v,
                KeyAttr::CtLabels(v) => flow.ct_label = v.to_be_bytes(),
                KeyAttr::CtTuple4(t) => {
                    flow.ct_nw_src = t.src;
                    flow.ct_nw_dst = t.dst;
                    flow.ct_tp_src = t.src_port;
                    flow.ct_tp_dst = t.dst_port;
                    flow.ct_nw_proto = t.proto;
                }
                KeyAttr::CtTuple6(t) => {
                    flow.ct_ipv6_src = t.src;
                    flow.ct_ipv6_dst = t.dst;
                    flow.ct_tp_src = t.src_port;
                    flow.ct_tp_dst = t.dst_port;
                    flow.ct_nw_proto = t.proto;
                }
                KeyAttr::Tunnel(t) => tunnel_to_flow(t, flow, extras, false)?,
                KeyAttr::InPort(v) => flow.in_port = *v,
                KeyAttr::PacketType(v) => flow.packet_type = *v,
                _ => hit = false,
            }
            if hit {
                used.push(a.kind());
            }
        }
        if !map.contains_key(&KeyAttrKind::InPort) {
            flow.in_port = ODPP_NONE;
        }
    }
    let ethernet = if top {
        let eth = get(KeyAttrKind::Ethernet, &mut used);
        if let Some(KeyAttr::Ethernet(e)) = eth {
            flow.dl_src = e.src;
            flow.dl_dst = e.dst;
        }
        if !map.contains_key(&KeyAttrKind::PacketType) {
            flow.packet_type = if eth.is_some() {
                0
            } else {
                match map.get(&KeyAttrKind::EthType) {
                    Some(KeyAttr::EthType(t)) => (1 << 16) | u32::from(*t),
                    _ => 0,
                }
            };
        }
        flow.packet_type == 0
    } else {
        true
    };
    match get(KeyAttrKind::EthType, &mut used) {
        Some(KeyAttr::EthType(t)) => {
            if *t < ETH_TYPE_MIN {
                return Err(OdpError::Invalid(format!(
                    "eth_type: {t:#06x} is a length, not a type"
                )));
            }
            flow.dl_type = *t;
        }
        _ => flow.dl_type = ETH_TYPE_NONE,
    }
    let mut fit = Fitness::Perfect;
    if ethernet && is_vlan(flow.dl_type) && vlan_idx < FLOW_MAX_VLAN_HEADERS {
        let tpid = flow.dl_type;
        let tci = match get(KeyAttrKind::Vlan, &mut used) {
            Some(KeyAttr::Vlan(t)) => *t,
            _ => {
                missing = true;
                0
            }
        };
        let encap = get(KeyAttrKind::Encap, &mut used);
        flow.vlans[vlan_idx] = VlanHeader { tpid, tci };
        if tci & VLAN_CFI == 0 {
            if tci != 0 {
                return Err(OdpError::Invalid("vlan: tci without the CFI bit".into()));
            }
            if matches!(encap, Some(KeyAttr::Encap(e)) if !e.is_empty()) {
                return Err(OdpError::Invalid(
                    "vlan: truncated tag with encapsulated attributes".into(),
                ));
            }
        } else if let Some(KeyAttr::Encap(inner)) = encap {
            fit = key_level(inner, flow, extras, vlan_idx + 1, false)?;
        } else {
            missing = true;
        }
    } else {
        l3_l4(&map, flow, &mut used, &mut missing, &mut fit)?;
    }
    if map.keys().any(|k| !used.contains(k)) && fit == Fitness::Perfect {
        fit = Fitness::TooMuch;
    }
    if missing && fit == Fitness::Perfect {
        fit = Fitness::TooLittle;
    }
    Ok(fit)
}

fn l3_l4(
    map: &HashMap<KeyAttrKind, &KeyAttr>,
    flow: &mut FlowKey,
    used: &mut Vec<KeyAttrKind>,
    missing: &mut bool,
    fit: &mut Fitness,
) -> Result<()> {
    let mut get = |k: KeyAttrKind| {
        let a = map.get(&k).copied();
        if a.is_some() {
            used.push(k);
        }
        a
    };
    match flow.dl_type {
        ETH_TYPE_IPV4 => match get(KeyAttrKind::Ipv4) {
            Some(KeyAttr::Ipv4(k)) => {
                flow.nw_src = k.src;
                flow.nw_dst = k.dst;
                flow.nw_proto = k.proto;
                flow.nw_tos = k.tos;
                flow.nw_ttl = k.ttl;
                flow.nw_frag = frag_to_flow(k.frag, "ipv4")?;
            }
            _ => *missing = true,
        },
        ETH_TYPE_IPV6 => match get(KeyAttrKind::Ipv6) {
            Some(KeyAttr::Ipv6(k)) => {
                flow.ipv6_src = k.src;
                flow.ipv6_dst = k.dst;
                flow.ipv6_label = k.label & 0xfffff;
                flow.nw_proto = k.proto;
                flow.nw_tos = k.tclass;
                flow.nw_ttl = k.hlimit;
                flow.nw_frag = frag_to_flow(k.frag, "ipv6")?;
            }
            _ => *missing = true,
        },
        ETH_TYPE_ARP | ETH_TYPE_RARP => match get(KeyAttrKind::Arp) {
            Some(KeyAttr::Arp(k)) => {
                if k.op > 0xff {
                    return Err(OdpError::Invalid(format!(
                        "arp op: {} does not fit 8 bits",
                        k.op
                    )));
                }
                flow.nw_src = k.sip;
                flow.nw_dst = k.tip;
                flow.nw_proto = k.op as u8;
                flow.arp_sha = k.sha;
                flow.arp_tha = k.tha;
            }
            _ => *missing = true,
        },
        ETH_TYPE_MPLS | ETH_TYPE_MPLS_MCAST => match get(KeyAttrKind::Mpls) {
            Some(KeyAttr::Mpls(lses)) => {
                for (i, l) in lses.iter().take(FLOW_MAX_MPLS_LABELS).enumerate() {
                    flow.mpls_lse[i] = *l;
                }
                if lses.len() > FLOW_MAX_MPLS_LABELS {
                    *fit = Fitness::TooMuch;
                } else if let Some((last, rest)) = lses.split_last() {
                    if rest.iter().any(|l| l & 0x100 != 0) {
                        return Err(OdpError::Invalid("mpls: bos set on an outer label".into()));
                    }
                    if last & 0x100 == 0 {
                        *fit = Fitness::TooLittle;
                    }
                }
            }
            _ => *missing = true,
        },
        _ => {}
    }
    let ip = flow.is_ip_any();
    if ip && flow.nw_frag & FLOW_NW_FRAG_LATER == 0 {
        let ports = |flow: &mut FlowKey, p: &PortsKey| {
            flow.tp_src = p.src;
            flow.tp_dst = p.dst;
        };
        match flow.nw_proto {
            IPPROTO_TCP => {
                match get(KeyAttrKind::Tcp) {
                    Some(KeyAttr::Tcp(p)) => ports(flow, p),
                    _ => *missing = true,
                }
                if let Some(KeyAttr::TcpFlags(f)) = get(KeyAttrKind::TcpFlags) {
                    flow.tcp_flags = *f & 0x0fff;
                }
            }
            IPPROTO_UDP => match get(KeyAttrKind::Udp) {
                Some(KeyAttr::Udp(p)) => ports(flow, p),
                _ => *missing = true,
            },
            IPPROTO_SCTP => match get(KeyAttrKind::Sctp) {
                Some(KeyAttr::Sctp(p)) => ports(flow, p),
                _ => *missing = true,
            },
            IPPROTO_ICMP if flow.dl_type == ETH_TYPE_IPV4 => match get(KeyAttrKind::Icmp) {
                Some(KeyAttr::Icmp(k)) => {
                    flow.tp_src = k.icmp_type.into();
                    flow.tp_dst = k.code.into();
                }
                _ => *missing = true,
            },
            IPPROTO_ICMPV6 if flow.dl_type == ETH_TYPE_IPV6 => match get(KeyAttrKind::Icmpv6) {
                Some(KeyAttr::Icmpv6(k)) => {
                    flow.tp_src = k.icmp_type.into();
                    flow.tp_dst = k.code.into();
                    if is_nd(flow) {
                        match get(KeyAttrKind::Nd) {
                            Some(KeyAttr::Nd(nd)) => {
                                flow.nd_target = nd.target;
                                flow.arp_sha = nd.sll;
                                flow.arp_tha = nd.tll;
                            }
                            _ => *missing = true,
                        }
                        if let Some(KeyAttr::NdExt(x)) = get(KeyAttrKind::NdExt) {
                            flow.nd_reserved = x.reserved;
                            flow.nd_options_type = x.options_type;
                        }
                    }
                }
                _ => *missing = true,
            },
            _ => {}
        }
    }
    Ok(())
}

fn is_nd(flow: &FlowKey) -> bool {
    flow.dl_type == ETH_TYPE_IPV6
        && flow.nw_proto == IPPROTO_ICMPV6
        && (flow.tp_src == 135 || flow.tp_src == 136)
        && flow.tp_dst == 0
}

/// Writes each mask attribute's bits into the FlowKey mask `m`.
fn apply_mask(
    attrs: &[KeyAttr],
    m: &mut FlowKey,
    vlan_idx: usize,
    extras: &mut TunnelExtras,
) -> Result<()> {
    let has_vlan = attrs.iter().any(|a| matches!(a, KeyAttr::Vlan(_)));
    for a in attrs {
        match a {
            KeyAttr::RecircId(v) => m.recirc_id = *v,
            KeyAttr::DpHash(v) => m.dp_hash = *v,
            KeyAttr::Priority(v) => m.skb_priority = *v,
            KeyAttr::SkbMark(v) => m.pkt_mark = *v,
            KeyAttr::CtState(v) => m.ct_state = *v as u8,
            KeyAttr::CtZone(v) => m.ct_zone = *v,
            KeyAttr::CtMark(v) => m.ct_mark = *v,
            KeyAttr::CtLabels(v) => m.ct_label = v.to_be_bytes(),
            KeyAttr::CtTuple4(t) => {
                m.ct_nw_src = t.src;
                m.ct_nw_dst = t.dst;
                m.ct_tp_src = t.src_port;
                m.ct_tp_dst = t.dst_port;
                m.ct_nw_proto = t.proto;
            }
            KeyAttr::CtTuple6(t) => {
                m.ct_ipv6_src = t.src;
                m.ct_ipv6_dst = t.dst;
                m.ct_tp_src = t.src_port;
                m.ct_tp_dst = t.dst_port;
                m.ct_nw_proto = t.proto;
            }
            KeyAttr::Tunnel(t) => tunnel_to_flow(t, m, extras, true)?,
            KeyAttr::InPort(v) => m.in_port = *v,
            KeyAttr::PacketType(v) => m.packet_type = *v,
            KeyAttr::Ethernet(e) => {
                m.dl_src = e.src;
                m.dl_dst = e.dst;
            }
            KeyAttr::EthType(t) => {
                if has_vlan && vlan_idx < FLOW_MAX_VLAN_HEADERS {
                    m.vlans[vlan_idx].tpid = *t;
                } else {
                    m.dl_type = *t;
                }
            }
            KeyAttr::Vlan(t) => {
                if vlan_idx < FLOW_MAX_VLAN_HEADERS {
                    m.vlans[vlan_idx].tci = *t;
                }
            }
            KeyAttr::Encap(inner) => apply_mask(inner, m, vlan_idx + 1, extras)?,
            KeyAttr::Ipv4(k) => {
                m.nw_src = k.src;
                m.nw_dst = k.dst;
                m.nw_proto = k.proto;
                m.nw_tos = k.tos;
                m.nw_ttl = k.ttl;
                m.nw_frag = if k.frag != 0 {
                    FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER
                } else {
                    0
                };
            }
            KeyAttr::Ipv6(k) => {
                m.ipv6_src = k.src;
                m.ipv6_dst = k.dst;
                m.ipv6_label = k.label & 0xfffff;
                m.nw_proto = k.proto;
                m.nw_tos = k.tclass;
                m.nw_ttl = k.hlimit;
                m.nw_frag = if k.frag != 0 {
                    FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER
                } else {
                    0
                };
            }
            KeyAttr::Arp(k) => {
                m.nw_src = k.sip;
                m.nw_dst = k.tip;
                m.nw_proto = k.op as u8;
                m.arp_sha = k.sha;
                m.arp_tha = k.tha;
            }
            KeyAttr::Mpls(l) => {
                for (i, v) in l.iter().take(FLOW_MAX_MPLS_LABELS).enumerate() {
                    m.mpls_lse[i] = *v;
                }
            }
            KeyAttr::Tcp(p) | KeyAttr::Udp(p) | KeyAttr::Sctp(p) => {
                m.tp_src = p.src;
                m.tp_dst = p.dst;
            }
            KeyAttr::TcpFlags(f) => m.tcp_flags = *f & 0x0fff,
            KeyAttr::Icmp(k) | KeyAttr::Icmpv6(k) => {
                m.tp_src = k.icmp_type.into();
                m.tp_dst = k.code.into();
            }
            KeyAttr::Nd(nd) => {
                m.nd_target = nd.target;
                m.arp_sha = nd.sll;
                m.arp_tha = nd.tll;
            }
            KeyAttr::NdExt(x) => {
                m.nd_reserved = x.reserved;
                m.nd_options_type = x.options_type;
            }
        }
    }
    Ok(())
}

fn tunnel_attrs(flow: &FlowKey, d: &FlowKey, extras: &TunnelExtras) -> Vec<TunAttr> {
    let mut t = Vec::new();
    if d.tun_id != 0 || d.tun_flags & TNL_F_KEY != 0 {
        t.push(TunAttr::Id(d.tun_id));
    }
    if d.tun_ipv4_src != [0; 4] {
        t.push(TunAttr::Ipv4Src(d.tun_ipv4_src));
    }
    if d.tun_ipv4_dst != [0; 4] {
        t.push(TunAttr::Ipv4Dst(d.tun_ipv4_dst));
    }
    if d.tun_ipv6_src != [0; 16] {
        t.push(TunAttr::Ipv6Src(d.tun_ipv6_src));
    }
    if d.tun_ipv6_dst != [0; 16] {
        t.push(TunAttr::Ipv6Dst(d.tun_ipv6_dst));
    }
    if d.tun_tos != 0 {
        t.push(TunAttr::Tos(d.tun_tos));
    }
    t.push(TunAttr::Ttl(d.tun_ttl));
    if d.tun_flags & TNL_F_DONT_FRAGMENT != 0 {
        t.push(TunAttr::DontFragment);
    }
    if d.tun_flags & TNL_F_CSUM != 0 {
        t.push(TunAttr::Csum);
    }
    if d.tun_tp_src != 0 {
        t.push(TunAttr::TpSrc(d.tun_tp_src));
    }
    if d.tun_tp_dst != 0 {
        t.push(TunAttr::TpDst(d.tun_tp_dst));
    }
    if d.tun_flags & TNL_F_OAM != 0 {
        t.push(TunAttr::Oam);
    }
    if d.tun_gbp_flags != 0 || d.tun_gbp_id != 0 {
        t.push(TunAttr::VxlanGbp(
            (u32::from(d.tun_gbp_flags) << 16) | u32::from(d.tun_gbp_id),
        ));
    }
    // The flow gives the options' length, `d` (flow or mask) the bytes.
    let n = usize::from(flow.tun_geneve_len).min(GENEVE_KEY_OPTS);
    if n != 0 && d.tun_geneve_len != 0 {
        t.push(TunAttr::Geneve(d.tun_geneve[..n].to_vec()));
    }
    if let Some(e) = extras.erspan.filter(|e| e.version == 1 || e.version == 2) {
        t.push(TunAttr::Erspan(e));
    }
    t
}

fn mpls_count(flow: &FlowKey) -> usize {
    let mut cnt = 0;
    for (i, l) in flow.mpls_lse.iter().enumerate() {
        if l & 0x100 != 0 {
            return i + 1;
        }
        if *l != 0 {
            cnt += 1;
        }
    }
    cnt
}

/// OVS `odp_flow_key_from_flow__`: `flow` decides the shape, `d` (the
/// flow itself, or the mask) gives the values.
fn from_flow(
    flow: &FlowKey,
    d: &FlowKey,
    mask: Option<&FlowKey>,
    export_mask: bool,
    extras: &TunnelExtras,
) -> Vec<KeyAttr> {
    let mut levels: Vec<Vec<KeyAttr>> = vec![Vec::new()];
    macro_rules! put {
        ($a:expr) => {
            if let Some(l) = levels.last_mut() {
                l.push($a);
            }
        };
    }
    put!(KeyAttr::RecircId(d.recirc_id));
    put!(KeyAttr::DpHash(d.dp_hash));
    put!(KeyAttr::Priority(d.skb_priority));
    if flow.tun_ipv4_dst != [0; 4] || flow.tun_ipv6_dst != [0; 16] || export_mask {
        put!(KeyAttr::Tunnel(tunnel_attrs(flow, d, extras)));
    }
    if export_mask || flow.in_port != ODPP_NONE {
        put!(KeyAttr::InPort(d.in_port));
    }
    put!(KeyAttr::SkbMark(d.pkt_mark));
    put!(KeyAttr::CtState(d.ct_state.into()));
    put!(KeyAttr::CtZone(d.ct_zone));
    put!(KeyAttr::CtMark(d.ct_mark));
    put!(KeyAttr::CtLabels(u128::from_be_bytes(d.ct_label)));
    if flow.ct_nw_proto != 0 {
        if flow.dl_type == ETH_TYPE_IPV4 {
            put!(KeyAttr::CtTuple4(CtTuple4 {
                src: d.ct_nw_src,
                dst: d.ct_nw_dst,
                src_port: d.ct_tp_src,
                dst_port: d.ct_tp_dst,
                proto: d.ct_nw_proto,
            }));
        } else if flow.dl_type == ETH_TYPE_IPV6 {
            put!(KeyAttr::CtTuple6(CtTuple6 {
                src: d.ct_ipv6_src,
                dst: d.ct_ipv6_dst,
                src_port: d.ct_tp_src,
                dst_port: d.ct_tp_dst,
                proto: d.ct_nw_proto,
            }));
        }
    }
    put!(KeyAttr::PacketType(d.packet_type));
    'body: {
        if flow.packet_type == 0 {
            put!(KeyAttr::Ethernet(EthKey {
                src: d.dl_src,
                dst: d.dl_dst
            }));
            for i in 0..FLOW_MAX_VLAN_HEADERS {
                let mut tpid = flow.vlans[i].tpid;
                if flow.vlans[i].tci == 0 {
                    if is_vlan(flow.dl_type) {
                        tpid = flow.dl_type;
                    } else {
                        break;
                    }
                }
                put!(KeyAttr::EthType(if export_mask { u16::MAX } else { tpid }));
                put!(KeyAttr::Vlan(d.vlans[i].tci));
                levels.push(Vec::new());
                if flow.vlans[i].tci == 0 {
                    break 'body;
                }
            }
        }
        if flow.dl_type < ETH_TYPE_MIN {
            if export_mask {
                put!(KeyAttr::EthType(u16::MAX));
            }
            break 'body;
        }
        put!(KeyAttr::EthType(d.dl_type));
        if is_vlan(flow.dl_type) {
            break 'body;
        }
        let frag = |nw_frag: u8| -> u8 {
            if export_mask {
                if nw_frag & FLOW_NW_FRAG_ANY != 0 {
                    0xff
                } else {
                    0
                }
            } else if nw_frag & FLOW_NW_FRAG_ANY == 0 {
                FRAG_NO
            } else if nw_frag & FLOW_NW_FRAG_LATER != 0 {
                FRAG_LATER
            } else {
                FRAG_FIRST
            }
        };
        match flow.dl_type {
            ETH_TYPE_IPV4 => put!(KeyAttr::Ipv4(Ipv4Key {
                src: d.nw_src,
                dst: d.nw_dst,
                proto: d.nw_proto,
                tos: d.nw_tos,
                ttl: d.nw_ttl,
                frag: frag(d.nw_frag),
            })),
            ETH_TYPE_IPV6 => put!(KeyAttr::Ipv6(Ipv6Key {
                src: d.ipv6_src,
                dst: d.ipv6_dst,
                label: d.ipv6_label,
                proto: d.nw_proto,
                tclass: d.nw_tos,
                hlimit: d.nw_ttl,
                frag: frag(d.nw_frag),
            })),
            ETH_TYPE_ARP | ETH_TYPE_RARP => put!(KeyAttr::Arp(ArpKey {
                sip: d.nw_src,
                tip: d.nw_dst,
                op: d.nw_proto.into(),
                sha: d.arp_sha,
                tha: d.arp_tha,
            })),
            ETH_TYPE_MPLS | ETH_TYPE_MPLS_MCAST => {
                let n = mpls_count(flow);
                put!(KeyAttr::Mpls(d.mpls_lse[..n].to_vec()));
            }
            _ => {}
        }
        if flow.is_ip_any() && flow.nw_frag & FLOW_NW_FRAG_LATER == 0 {
            let ports = PortsKey {
                src: d.tp_src,
                dst: d.tp_dst,
            };
            match flow.nw_proto {
                IPPROTO_TCP => {
                    put!(KeyAttr::Tcp(ports));
                    if d.tcp_flags != 0 || mask.is_some_and(|m| m.tcp_flags != 0) {
                        put!(KeyAttr::TcpFlags(d.tcp_flags));
                    }
                }
                IPPROTO_UDP => put!(KeyAttr::Udp(ports)),
                IPPROTO_SCTP => put!(KeyAttr::Sctp(ports)),
                IPPROTO_ICMP if flow.dl_type == ETH_TYPE_IPV4 => put!(KeyAttr::Icmp(IcmpKey {
                    icmp_type: d.tp_src as u8,
                    code: d.tp_dst as u8,
                })),
                IPPROTO_ICMPV6 if flow.dl_type == ETH_TYPE_IPV6 => {
                    put!(KeyAttr::Icmpv6(IcmpKey {
                        icmp_type: d.tp_src as u8,
                        code: d.tp_dst as u8
                    }));
                    if is_nd(flow) && (!export_mask || (d.tp_src == 0xff && d.tp_dst == 0xff)) {
                        put!(KeyAttr::Nd(NdKey {
                            target: d.nd_target,
                            sll: d.arp_sha,
                            tll: d.arp_tha
                        }));
                        if d.nd_reserved != 0 || d.nd_options_type != 0 {
                            put!(KeyAttr::NdExt(NdExtKey {
                                reserved: d.nd_reserved,
                                options_type: d.nd_options_type,
                            }));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    while levels.len() > 1 {
        let inner = levels.pop().unwrap_or_default();
        put!(KeyAttr::Encap(inner));
    }
    levels.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odp::key;

    #[test]
    fn test_megaflow_prints_like_dump_flows() {
        let m = key::parse_masked(
            "recirc_id(0),in_port(2),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0800),ipv4(dst=10.0.0.0/255.0.0.0,frag=no)",
            None,
        )
        .unwrap();
        let (flow, mask) = masked_key_to_flow(&m.key, &m.mask).unwrap();
        assert_eq!(flow.in_port, 2);
        assert_eq!(mask.nw_dst, [255, 0, 0, 0]);
        let (k, mk) = flow_to_masked_key(&flow, &mask);
        assert_eq!(
            key::format_masked(&k, Some(&mk), None, false),
            "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0800),ipv4(dst=10.0.0.0/255.0.0.0,frag=no)"
        );
    }

    #[test]
    fn test_geneve_options_round_trip_through_the_flow_key() {
        let text = "tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,geneve({class=0xffff,type=0x80,len=4,0x1234})),in_port(1)";
        let k = key::parse(text, None).unwrap();
        let (flow, _) = key_to_flow(&k).unwrap();
        assert_eq!(flow.tun_geneve_len, 8);
        assert_eq!(
            &flow.tun_geneve[..8],
            &[0xff, 0xff, 0x80, 1, 0, 0, 0x12, 0x34]
        );
        assert!(
            key::format(&flow_to_key(&flow), None)
                .contains("geneve({class=0xffff,type=0x80,len=4,0x1234})")
        );
        // A masked option: the mask keeps the TLV header and the data bits.
        let mk = key::parse_masked(
            "tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,geneve({class=0xffff,type=0x80,len=4,0x1234/0xff00})),in_port(1)",
            None,
        )
        .unwrap();
        let (f, m) = masked_key_to_flow(&mk.key, &mk.mask).unwrap();
        assert_eq!(m.tun_geneve_len, 0xff);
        assert_eq!(&m.tun_geneve[6..8], &[0xff, 0]);
        assert_eq!(&f.tun_geneve[6..8], &[0x12, 0]);
        // More option bytes than the key holds: refused, naming why.
        let long = format!(
            "tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,geneve({{class=0,type=0,len=36,0x{}}})),in_port(1)",
            "ab".repeat(36)
        );
        let k = key::parse(&long, None).unwrap();
        assert!(matches!(key_to_flow(&k), Err(OdpError::Unsupported(_))));
    }

    #[test]
    fn test_qinq_key_round_trips() {
        let text = "recirc_id(0),dp_hash(0),skb_priority(0),in_port(1),skb_mark(0),ct_state(0),ct_zone(0),ct_mark(0),ct_label(0),packet_type(ns=0,id=0),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x88a8),vlan(vid=10,pcp=1),encap(eth_type(0x8100),vlan(vid=20,pcp=0),encap(eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1,dst=2)))";
        let (f, fit) = key_to_flow(&key::parse(text, None).unwrap()).unwrap();
        assert_eq!(fit, Fitness::Perfect);
        assert_eq!(
            f.vlans[0],
            VlanHeader {
                tpid: ETH_TYPE_VLAN_8021AD,
                tci: 0x1000 | (1 << 13) | 10
            }
        );
        assert_eq!(
            f.vlans[1],
            VlanHeader {
                tpid: ETH_TYPE_VLAN_8021Q,
                tci: 0x1000 | 20
            }
        );
        assert_eq!(f.dl_type, ETH_TYPE_IPV4);
        assert_eq!(key::format(&flow_to_key(&f), None), text);
    }

    #[test]
    fn test_fitness() {
        let base = "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,ttl=64,frag=no)";
        let fit = |s: &str| key_to_flow(&key::parse(s, None).unwrap()).unwrap().1;
        assert_eq!(fit(&format!("{base},udp(src=1,dst=2)")), Fitness::Perfect);
        assert_eq!(fit(base), Fitness::TooLittle);
        assert_eq!(
            fit(&format!("{base},udp(src=1,dst=2),tcp(src=1,dst=2)")),
            Fitness::TooMuch
        );
        let dup = format!("{base},in_port(2)");
        assert!(matches!(
            key_to_flow(&key::parse(&dup, None).unwrap()),
            Err(OdpError::Invalid(_))
        ));
    }

    #[test]
    fn test_vlan_megaflow_mask() {
        let m = key::parse_masked(
            "in_port(1),eth(),eth_type(0x8100),vlan(vid=99/0xfff,pcp=0/0),encap(eth_type(0x0800),ipv4(frag=no))",
            None,
        )
        .unwrap();
        let (f, mask) = masked_key_to_flow(&m.key, &m.mask).unwrap();
        assert_eq!(f.vlans[0].tci, 0x1000 | 99);
        assert_eq!(mask.vlans[0].tci, 0x1fff);
        assert_eq!(mask.dl_type, 0xffff);
        assert_eq!(mask.nw_frag, FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER);
        let (k, mk) = flow_to_masked_key(&f, &mask);
        assert_eq!(
            key::format_masked(&k, Some(&mk), None, false),
            "in_port(1),packet_type(ns=0,id=0),eth_type(0x8100),vlan(vid=99),encap(eth_type(0x0800),ipv4(frag=no))"
        );
    }
}

#[cfg(test)]
mod untagged_mask_tests {
    use super::*;
    use crate::odp::key::parse_masked;

    /// `eth_type(0x0800)` outside `encap()` means untagged: a tagged packet
    /// whose inner type is IPv4 must not match the megaflow.
    #[test]
    fn untagged_megaflow_does_not_match_tagged_packets() {
        let mk =
            parse_masked("in_port(1),eth(),eth_type(0x0800),ipv4(dst=10.0.0.2)", None).unwrap();
        let (key, mask) = masked_key_to_flow(&mk.key, &mk.mask).unwrap();
        let mut untagged = FlowKey::ZERO;
        untagged.in_port = 1;
        untagged.dl_type = ETH_TYPE_IPV4;
        untagged.nw_dst = [10, 0, 0, 2];
        assert!(untagged.matches_masked(&mask, &key));
        let mut tagged = untagged;
        tagged.vlans[0] = VlanHeader {
            tpid: ETH_TYPE_VLAN_8021Q,
            tci: VLAN_CFI | 10,
        };
        assert!(!tagged.matches_masked(&mask, &key));
        // And the dump of that megaflow still reads as it was written.
        let (k, m) = flow_to_masked_key(&key, &mask);
        let text = crate::odp::key::format_masked(&k, Some(&m), None, false);
        assert!(!text.contains("vlan"), "{text}");
    }
}
