//! `tnl_push` and `tnl_pop`: VXLAN, Geneve and GRE over IPv4 and IPv6.
//!
//! # Push
//! The action carries the whole outer header (Ethernet, IP, UDP or GRE,
//! tunnel header with Geneve options) as it goes on the wire, with the
//! per-packet fields left for us: IPv4 total length and header checksum,
//! IPv6 payload length, UDP length, UDP source port and, when the action's
//! UDP checksum field is non-zero ("csum on"), the UDP checksum; the GRE
//! checksum when the GRE C bit is set. [`PushPlan`] parses the header once
//! per batch (where the IP and L4 headers start, the IPv4 header sum
//! without the length), so the per-packet work is one copy of the header
//! into the headroom plus a few 16-bit stores, as OVS's
//! `netdev_tnl_push_udp_header`. The UDP source port is spread over
//! 32768..61000 by the inner flow's 5-tuple hash, so ECMP in the underlay
//! keeps a flow on one path.
//!
//! # Pop
//! [`pop`] validates the outer headers (IPv4 header checksum, lengths,
//! no fragments, no IPv4 options, UDP checksum when present, the tunnel
//! header's flags, version and protocol; Geneve critical options the
//! port's [`GeneveKnown`] set does not name; on a port that knows some
//! options, option lists longer than the flow key holds), strips them,
//! and rewrites the
//! packet metadata as a fresh packet carrying [`TunnelMetadata`] (tun_id,
//! outer addresses, TOS, TTL, UDP ports, flags, Geneve options), as OVS's
//! `pkt_metadata_init_tnl` + `*_pop_header`. The executor then sets the
//! tunnel port as the input port and hands the packet to recirculation.
//! Anything unexpected drops the packet as a tunnel pop error: a
//! malformed outer header is never decapsulated.
//!
//! GRE sequence numbers come from a counter per tunnel port that the
//! executor keeps (OVS's per-netdev `gre_seqno`), starting at 0.
//!
//! # Not done here
//! `tnl_push` of ERSPAN, GTP-U and SRv6 headers is refused as
//! unsupported. `tnl_pop` does not decode VXLAN-GBP (a VXLAN header with
//! the G flag is a pop error, as in OVS without the `gbp` extension) and
//! refuses IPv6 outer headers with extension headers.
//!
//! [`TunnelMetadata`]: crate::packet::TunnelMetadata

use crate::action::{TnlPush, vport_type};
use crate::flow::key::{ETH_TYPE_IPV4, ETH_TYPE_IPV6, GENEVE_KEY_OPTS, IPPROTO_GRE, IPPROTO_UDP};
use crate::packet::{HeaderOffsets, OFS_NONE, Packet, PacketType};

use super::DropReason;
use super::checksum::{checksum, fold, pseudo_sum_v4, pseudo_sum_v6, sum_bytes};
use super::set_field::{be16, be32, put16};

/// OVS `FLOW_TNL_F_*`: bits of [`TunnelMetadata::flags`], which flow
/// extraction copies into the flow key's `tun_flags` as they are, so they
/// are the same bits as `odp::flow::TNL_F_*` (what `dump-flows` prints as
/// `flags(...)`).
///
/// [`TunnelMetadata::flags`]: crate::packet::TunnelMetadata::flags
pub mod tnl_flags {
    pub const OAM: u16 = 1 << 0;
    pub const DONT_FRAGMENT: u16 = 1 << 1;
    pub const CSUM: u16 = 1 << 2;
    pub const KEY: u16 = 1 << 3;
}

/// Lowest and highest tunnel UDP source port (OVS's defaults).
pub const TNL_SRC_PORT_MIN: u16 = 32768;
pub const TNL_SRC_PORT_MAX: u16 = 61000;

const ETH_TYPE_TEB: u16 = 0x6558;
const VXLAN_FLAGS: u32 = 0x0800_0000;
const GRE_CSUM: u16 = 0x8000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQ: u16 = 0x1000;
const VXLAN_HLEN: usize = 8;
const GENEVE_HLEN: usize = 8;

/// How a tunnel port decapsulates (the port's netdev type in OVS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKind {
    Vxlan,
    Geneve,
    Gre,
}

/// Most Geneve options a port can know (OVS's TLV map holds 64).
pub const MAX_KNOWN_GENEVE_OPTS: usize = 64;

/// The Geneve options (class, type) a tunnel port knows: those its
/// bridge's TLV map names (`tnl/tlv-map/add`). A critical option in this
/// set is not dropped by `tnl_pop`; translation decides what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneveKnown {
    n: u8,
    /// `class << 8 | type`, the first `n` in use.
    opts: [u32; MAX_KNOWN_GENEVE_OPTS],
}

impl GeneveKnown {
    /// Knows no option: every critical option is dropped.
    pub const NONE: GeneveKnown = GeneveKnown {
        n: 0,
        opts: [0; MAX_KNOWN_GENEVE_OPTS],
    };

    /// The set of `(class, type)` pairs; `None` when there are more than
    /// [`MAX_KNOWN_GENEVE_OPTS`].
    pub fn new(opts: impl IntoIterator<Item = (u16, u8)>) -> Option<GeneveKnown> {
        let mut k = GeneveKnown::NONE;
        for (class, typ) in opts {
            let v = u32::from(class) << 8 | u32::from(typ);
            if k.contains(class, typ) {
                continue;
            }
            *k.opts.get_mut(usize::from(k.n))? = v;
            k.n += 1;
        }
        Some(k)
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn contains(&self, class: u16, typ: u8) -> bool {
        let v = u32::from(class) << 8 | u32::from(typ);
        self.opts[..usize::from(self.n)].contains(&v)
    }
}

/// What `tnl_pop` on one tunnel port accepts (the receive side of the
/// port's options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelPort {
    pub kind: TunnelKind,
    /// `options:key=N`: packets with another VNI/key are dropped as
    /// [`DropReason::TunnelWrongVni`]; `None` (`key=flow`) takes any.
    pub key: Option<u64>,
    /// `options:csum=true`: a packet without a UDP (or GRE) checksum is
    /// dropped as [`DropReason::TunnelBadChecksum`] (a wrong checksum is
    /// dropped either way).
    pub csum_required: bool,
    /// Geneve options this port's bridge maps (see [`GeneveKnown`]).
    pub geneve_known: GeneveKnown,
}

impl TunnelPort {
    /// A port of `kind` that takes any key, with or without checksum.
    pub const fn new(kind: TunnelKind) -> TunnelPort {
        TunnelPort {
            kind,
            key: None,
            csum_required: false,
            geneve_known: GeneveKnown::NONE,
        }
    }
}

/// The source port for a packet whose inner flow hashes to `hash`
/// (OVS `netdev_tnl_get_src_port`).
#[inline]
pub fn src_port(hash: u32) -> u16 {
    let span = u64::from(TNL_SRC_PORT_MAX - TNL_SRC_PORT_MIN);
    ((u64::from(hash) * span) >> 32) as u16 + TNL_SRC_PORT_MIN
}

#[derive(Clone, Copy, Debug)]
enum L4Plan {
    Udp {
        csum: bool,
    },
    /// `seq_at`: offset of the sequence number from the GRE header.
    Gre {
        csum: bool,
        seq_at: Option<usize>,
    },
}

/// A `tnl_push` header, parsed once per batch.
#[derive(Clone, Copy, Debug)]
pub struct PushPlan {
    l3: usize,
    ipv6: bool,
    l4: usize,
    l4plan: L4Plan,
    /// IPv4: the header's one's-complement sum with length and checksum
    /// taken as zero.
    ip_sum: u64,
}

fn l2_len(h: &[u8]) -> Option<(usize, u16)> {
    let mut pos = 12;
    loop {
        if h.len() < pos + 2 {
            return None;
        }
        let t = be16(h, pos);
        if t == 0x8100 || t == 0x88a8 {
            pos += 4;
        } else {
            return Some((pos + 2, t));
        }
    }
}

impl PushPlan {
    /// True when the header carries a GRE sequence number, which
    /// [`push`] fills from the caller's per-tunnel-port counter.
    pub fn has_gre_seq(&self) -> bool {
        matches!(
            self.l4plan,
            L4Plan::Gre {
                seq_at: Some(_),
                ..
            }
        )
    }

    /// Checks `push`'s header and finds its fields. `Err` gives the drop
    /// reason: a malformed header is a push error, a tunnel type this
    /// executor cannot build is unsupported.
    pub fn new(push: &TnlPush) -> Result<PushPlan, DropReason> {
        let h = &push.header[..];
        let bad = DropReason::TunnelPushError;
        let is_udp = match push.tnl_type {
            vport_type::VXLAN | vport_type::GENEVE => true,
            vport_type::GRE | vport_type::IP6GRE => false,
            _ => return Err(DropReason::Unsupported),
        };
        if h.len() > u16::MAX as usize {
            return Err(bad);
        }
        let (l3, ethertype) = l2_len(h).ok_or(bad)?;
        let (ipv6, proto, l4, ip_sum) = match ethertype {
            ETH_TYPE_IPV4 => {
                if h.len() < l3 + 20 || h[l3] >> 4 != 4 || h[l3] & 0xf < 5 {
                    return Err(bad);
                }
                let ihl = usize::from(h[l3] & 0xf) * 4;
                if h.len() < l3 + ihl {
                    return Err(bad);
                }
                let hdr = &h[l3..l3 + ihl];
                let sum = sum_bytes(0, &hdr[..2]);
                let sum = sum_bytes(sum, &hdr[4..10]);
                let sum = sum_bytes(sum, &hdr[12..]);
                (false, hdr[9], l3 + ihl, sum)
            }
            ETH_TYPE_IPV6 => {
                if h.len() < l3 + 40 || h[l3] >> 4 != 6 {
                    return Err(bad);
                }
                (true, h[l3 + 6], l3 + 40, 0)
            }
            _ => return Err(bad),
        };
        let l4plan = if is_udp {
            if proto != IPPROTO_UDP || h.len() < l4 + 8 {
                return Err(bad);
            }
            let tnl = l4 + 8;
            let expect = if push.tnl_type == vport_type::VXLAN {
                if h.len() < tnl + VXLAN_HLEN || be32(h, tnl) & VXLAN_FLAGS == 0 {
                    return Err(bad);
                }
                tnl + VXLAN_HLEN
            } else {
                if h.len() < tnl + GENEVE_HLEN || h[tnl] >> 6 != 0 {
                    return Err(bad);
                }
                tnl + GENEVE_HLEN + usize::from(h[tnl] & 0x3f) * 4
            };
            if h.len() != expect {
                return Err(bad);
            }
            L4Plan::Udp {
                csum: be16(h, l4 + 6) != 0,
            }
        } else {
            if proto != IPPROTO_GRE || h.len() < l4 + 4 {
                return Err(bad);
            }
            let flags = be16(h, l4);
            if flags & !(GRE_CSUM | GRE_KEY | GRE_SEQ) != 0 {
                return Err(bad);
            }
            let opts = [GRE_CSUM, GRE_KEY, GRE_SEQ]
                .iter()
                .filter(|f| flags & **f != 0)
                .count();
            if h.len() != l4 + 4 + 4 * opts {
                return Err(bad);
            }
            let seq_at = (flags & GRE_SEQ != 0).then(|| {
                4 + if flags & GRE_CSUM != 0 { 4 } else { 0 }
                    + if flags & GRE_KEY != 0 { 4 } else { 0 }
            });
            L4Plan::Gre {
                csum: flags & GRE_CSUM != 0,
                seq_at,
            }
        };
        Ok(PushPlan {
            l3,
            ipv6,
            l4,
            l4plan,
            ip_sum,
        })
    }
}

/// Prepends `header` (checked by `plan`) to `packet` and fills the
/// per-packet fields; `inner_hash` picks the UDP source port, `gre_seq`
/// is the GRE sequence number (when [`PushPlan::has_gre_seq`]). A header
/// longer than the headroom slides the packet into its tailroom first.
/// `false` when the buffer is too small (the packet is unchanged).
#[inline]
pub fn push(
    packet: &mut Packet,
    header: &[u8],
    plan: &PushPlan,
    inner_hash: u32,
    gre_seq: u32,
) -> bool {
    if !packet.reserve_headroom(header.len()) {
        return false;
    }
    let Some(front) = packet.push_front(header.len()) else {
        return false;
    };
    front.copy_from_slice(header);
    let PushPlan {
        l3,
        ipv6,
        l4,
        l4plan,
        ip_sum,
    } = *plan;
    let data = packet.data_mut();
    let total = data.len();
    if ipv6 {
        put16(data, l3 + 4, (total - l3 - 40) as u16);
    } else {
        let tot_len = (total - l3) as u16;
        put16(data, l3 + 2, tot_len);
        put16(data, l3 + 10, !fold(ip_sum + u64::from(tot_len)));
    }
    match l4plan {
        L4Plan::Udp { csum } => {
            put16(data, l4, src_port(inner_hash));
            put16(data, l4 + 4, (total - l4) as u16);
            if csum {
                put16(data, l4 + 6, 0);
                let pseudo = if ipv6 {
                    pseudo_sum_v6(
                        &data[l3 + 8..l3 + 24],
                        &data[l3 + 24..l3 + 40],
                        IPPROTO_UDP,
                        total - l4,
                    )
                } else {
                    pseudo_sum_v4(
                        &data[l3 + 12..l3 + 16],
                        &data[l3 + 16..l3 + 20],
                        IPPROTO_UDP,
                        total - l4,
                    )
                };
                let c = !fold(sum_bytes(pseudo, &data[l4..]));
                put16(data, l4 + 6, if c == 0 { 0xffff } else { c });
            }
        }
        L4Plan::Gre { csum, seq_at } => {
            if let Some(at) = seq_at {
                data[l4 + at..l4 + at + 4].copy_from_slice(&gre_seq.to_be_bytes());
            }
            if csum {
                put16(data, l4 + 4, 0);
                let c = checksum(&data[l4..]);
                put16(data, l4 + 4, c);
            }
        }
    }
    let meta = packet.meta_mut();
    meta.offsets = HeaderOffsets {
        l2_5: OFS_NONE,
        l3: l3 as u16,
        l4: l4 as u16,
        l2_pad: 0,
    };
    meta.packet_type = PacketType::ETHERNET;
    true
}

/// True when a Geneve option list (TLVs of class, type, length in 4-byte
/// words) holds an option with the critical bit (type bit 7) that is not
/// in `known`: RFC 8926 says such a packet must be dropped. A truncated
/// list counts as critical: it cannot be proven harmless.
fn geneve_has_unknown_critical(opts: &[u8], known: &GeneveKnown) -> bool {
    let mut pos = 0;
    while pos < opts.len() {
        if opts.len() < pos + 4 {
            return true;
        }
        let class = u16::from_be_bytes([opts[pos], opts[pos + 1]]);
        if opts[pos + 2] & 0x80 != 0 && !known.contains(class, opts[pos + 2]) {
            return true;
        }
        pos += 4 + usize::from(opts[pos + 3] & 0x1f) * 4;
    }
    pos != opts.len()
}

/// What the outer IP header said.
struct Outer {
    ipv6: bool,
    l3: usize,
    l4: usize,
    /// End of the IP packet (Ethernet padding excluded).
    end: usize,
    proto: u8,
}

fn parse_outer(data: &[u8], l3_hint: u16) -> Result<Outer, DropReason> {
    let bad = DropReason::TunnelPopError;
    let (l3, ethertype) = if l3_hint != OFS_NONE && l3_hint >= 14 && data.len() >= l3_hint as usize
    {
        (l3_hint as usize, be16(data, l3_hint as usize - 2))
    } else {
        l2_len(data).ok_or(bad)?
    };
    match ethertype {
        ETH_TYPE_IPV4 => {
            // IPv4 options are refused on tunnel packets, as in OVS.
            if data.len() < l3 + 20 || data[l3] != 0x45 {
                return Err(bad);
            }
            let ihl = 20;
            let tot_len = usize::from(be16(data, l3 + 2));
            if data.len() < l3 + ihl || tot_len < ihl || data.len() < l3 + tot_len {
                return Err(bad);
            }
            if checksum(&data[l3..l3 + ihl]) != 0 {
                return Err(bad);
            }
            // MF set or a fragment offset: a piece of a tunnel packet.
            if be16(data, l3 + 6) & 0x3fff != 0 {
                return Err(DropReason::TunnelFragment);
            }
            Ok(Outer {
                ipv6: false,
                l3,
                l4: l3 + ihl,
                end: l3 + tot_len,
                proto: data[l3 + 9],
            })
        }
        ETH_TYPE_IPV6 => {
            if data.len() < l3 + 40 || data[l3] >> 4 != 6 {
                return Err(bad);
            }
            let end = l3 + 40 + usize::from(be16(data, l3 + 4));
            if data.len() < end {
                return Err(bad);
            }
            if data[l3 + 6] == 44 {
                // IPv6 fragment header.
                return Err(DropReason::TunnelFragment);
            }
            Ok(Outer {
                ipv6: true,
                l3,
                l4: l3 + 40,
                end,
                proto: data[l3 + 6],
            })
        }
        _ => Err(bad),
    }
}

/// Validates and strips the outer headers of a `kind` tunnel packet and
/// leaves it with fresh metadata plus the tunnel metadata (the caller sets
/// the input port). `false` on any malformed or unexpected header; the
/// packet is then unchanged.
pub fn pop(packet: &mut Packet, kind: TunnelKind) -> bool {
    pop_port(packet, &TunnelPort::new(kind)).is_ok()
}

/// [`pop`] with the receive checks of a configured port; `Err` is the
/// drop reason (the packet is then unchanged): an outer IP fragment, a
/// bad UDP checksum, a key the port does not take and an unknown critical
/// Geneve option each have their own, anything else malformed is
/// [`DropReason::TunnelPopError`].
pub fn pop_port(packet: &mut Packet, port: &TunnelPort) -> Result<(), DropReason> {
    let kind = port.kind;
    let bad = DropReason::TunnelPopError;
    if packet.meta().packet_type != PacketType::ETHERNET {
        return Err(bad);
    }
    let data = packet.data();
    let outer = parse_outer(data, packet.meta().offsets.l3)?;
    let Outer {
        ipv6,
        l3,
        l4,
        end,
        proto,
    } = outer;
    // The outer header's DF bit is not carried into the metadata: OVS's
    // userspace tnl_pop (`netdev_tnl_ip_extract_tnl_md`) leaves
    // FLOW_TNL_F_DONT_FRAGMENT clear, and OVS 3.1 dumps such flows as
    // `flags(-df…)` whatever the outer header said, so rules and megaflows
    // that match `tun_flags` see what they see under OVS.
    let mut flags = 0u16;
    let mut tun_id = 0u64;
    let (mut tp_src, mut tp_dst) = (0, 0);
    let mut inner_type = PacketType::ETHERNET;
    let mut geneve = (0usize, 0usize); // (offset, len) of the options
    let hlen;
    let mut end = end;
    match kind {
        TunnelKind::Vxlan | TunnelKind::Geneve => {
            if proto != IPPROTO_UDP || end < l4 + 16 {
                return Err(bad);
            }
            let udp_len = usize::from(be16(data, l4 + 4));
            if udp_len < 16 || l4 + udp_len > end {
                return Err(bad);
            }
            end = l4 + udp_len;
            let udp_csum = be16(data, l4 + 6);
            if udp_csum != 0 {
                let pseudo = if ipv6 {
                    pseudo_sum_v6(
                        &data[l3 + 8..l3 + 24],
                        &data[l3 + 24..l3 + 40],
                        IPPROTO_UDP,
                        udp_len,
                    )
                } else {
                    pseudo_sum_v4(
                        &data[l3 + 12..l3 + 16],
                        &data[l3 + 16..l3 + 20],
                        IPPROTO_UDP,
                        udp_len,
                    )
                };
                if fold(sum_bytes(pseudo, &data[l4..end])) != 0xffff {
                    return Err(DropReason::TunnelBadChecksum);
                }
                flags |= tnl_flags::CSUM;
            } else if port.csum_required {
                return Err(DropReason::TunnelBadChecksum);
            }
            tp_src = be16(data, l4);
            tp_dst = be16(data, l4 + 2);
            let tnl = l4 + 8;
            if kind == TunnelKind::Vxlan {
                if be32(data, tnl) != VXLAN_FLAGS || be32(data, tnl + 4) & 0xff != 0 {
                    return Err(bad);
                }
                tun_id = u64::from(be32(data, tnl + 4) >> 8);
                hlen = tnl + VXLAN_HLEN;
            } else {
                let opt_len = usize::from(data[tnl] & 0x3f) * 4;
                if data[tnl] >> 6 != 0
                    || be16(data, tnl + 2) != ETH_TYPE_TEB
                    || tnl + GENEVE_HLEN + opt_len > end
                {
                    return Err(bad);
                }
                if data[tnl + 1] & 0x80 != 0 {
                    flags |= tnl_flags::OAM;
                }
                let opts = &data[tnl + GENEVE_HLEN..tnl + GENEVE_HLEN + opt_len];
                if geneve_has_unknown_critical(opts, &port.geneve_known) {
                    return Err(DropReason::TunnelGeneveCritical);
                }
                // Rules can match mapped options only as far as the flow
                // key holds them: a longer list would be misclassified.
                if opt_len > GENEVE_KEY_OPTS && !port.geneve_known.is_empty() {
                    return Err(DropReason::TunnelGeneveOptsTooLong);
                }
                tun_id = u64::from(be32(data, tnl + 4) >> 8);
                geneve = (tnl + GENEVE_HLEN, opt_len);
                hlen = tnl + GENEVE_HLEN + opt_len;
            }
            flags |= tnl_flags::KEY;
        }
        TunnelKind::Gre => {
            if proto != IPPROTO_GRE || end < l4 + 4 {
                return Err(bad);
            }
            let gre_flags = be16(data, l4);
            if gre_flags & !(GRE_CSUM | GRE_KEY | GRE_SEQ) != 0 {
                return Err(bad);
            }
            let mut pos = l4 + 4;
            if gre_flags & GRE_CSUM != 0 {
                if end < pos + 4 {
                    return Err(bad);
                }
                if checksum(&data[l4..end]) != 0 {
                    return Err(DropReason::TunnelBadChecksum);
                }
                flags |= tnl_flags::CSUM;
                pos += 4;
            } else if port.csum_required {
                return Err(DropReason::TunnelBadChecksum);
            }
            if gre_flags & GRE_KEY != 0 {
                if end < pos + 4 {
                    return Err(bad);
                }
                tun_id = u64::from(be32(data, pos));
                flags |= tnl_flags::KEY;
                pos += 4;
            }
            if gre_flags & GRE_SEQ != 0 {
                pos += 4;
            }
            if end < pos {
                return Err(bad);
            }
            let inner = be16(data, l4 + 2);
            if inner != ETH_TYPE_TEB {
                inner_type = PacketType::new(PacketType::NS_ETHERTYPE, inner);
            }
            hlen = pos;
        }
    }
    if inner_type == PacketType::ETHERNET && end - hlen < 14 {
        return Err(bad);
    }
    if let Some(want) = port.key
        && (flags & tnl_flags::KEY == 0 || tun_id != want)
    {
        return Err(DropReason::TunnelWrongVni);
    }

    // Everything is valid: write the metadata, then strip. The outer
    // fields are read into small locals first (the bytes and the metadata
    // are behind one borrow of the packet); the Geneve option bytes are
    // copied only when there are some, so a VXLAN or GRE pop never touches
    // a 252-byte buffer (zeroing one cost ~20 instructions a packet).
    let (tos, ttl) = if ipv6 {
        (((be32(data, l3) >> 20) & 0xff) as u8, data[l3 + 7])
    } else {
        (data[l3 + 1], data[l3 + 8])
    };
    let (mut src4, mut dst4) = ([0u8; 4], [0u8; 4]);
    let (mut src6, mut dst6) = ([0u8; 16], [0u8; 16]);
    if ipv6 {
        src6.copy_from_slice(&data[l3 + 8..l3 + 24]);
        dst6.copy_from_slice(&data[l3 + 24..l3 + 40]);
    } else {
        src4.copy_from_slice(&data[l3 + 12..l3 + 16]);
        dst4.copy_from_slice(&data[l3 + 16..l3 + 20]);
    }
    let (opt_at, opt_len) = geneve;

    let depth = packet.meta().recirc_depth;
    let meta = packet.meta_mut();
    meta.reset();
    meta.recirc_depth = depth;
    meta.packet_type = inner_type;
    let tun = &mut meta.tunnel;
    tun.tun_id = tun_id;
    if ipv6 {
        tun.ipv6_src = src6;
        tun.ipv6_dst = dst6;
    } else {
        tun.ipv4_src = src4;
        tun.ipv4_dst = dst4;
    }
    tun.tos = tos;
    tun.ttl = ttl;
    tun.flags = flags;
    tun.tp_src = tp_src;
    tun.tp_dst = tp_dst;
    tun.geneve_len = opt_len as u8;
    if opt_len > 0 {
        let mut opts = [0u8; 252];
        opts[..opt_len].copy_from_slice(&packet.data()[opt_at..opt_at + opt_len]);
        packet.meta_mut().tunnel.geneve_opts[..opt_len].copy_from_slice(&opts[..opt_len]);
    }
    packet.truncate(end);
    if packet.pull_front(hlen) {
        Ok(())
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    //! The IPv6 underlay's receive checks on frames this module pushes
    //! (the round trips and outer-header checks of both families are in
    //! `tests/execute_tunnel.rs`).
    use super::*;
    use crate::action::TnlPush;
    use crate::packet::{PacketPool, PoolConfig};

    const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// A VXLAN-over-IPv6 `tnl_push` header, UDP checksum on or off.
    fn vxlan6(csum: bool) -> TnlPush {
        let mut h = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        h.extend_from_slice(&(6u32 << 28).to_be_bytes());
        h.extend_from_slice(&[0, 0, IPPROTO_UDP, 64]);
        h.extend_from_slice(&SRC6);
        h.extend_from_slice(&DST6);
        let c = if csum { 0xff } else { 0 };
        h.extend_from_slice(&[0, 0, 0x12, 0xb5, 0, 0, c, c]);
        h.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0x7b, 0]);
        TnlPush {
            tnl_port: 4789,
            out_port: 1,
            tnl_type: vport_type::VXLAN,
            header: h,
        }
    }

    fn inner() -> Vec<u8> {
        let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        f.resize(60, 0xab);
        f
    }

    fn encapsulated(pool: &PacketPool, csum: bool) -> Vec<u8> {
        let action = vxlan6(csum);
        let plan = PushPlan::new(&action).expect("valid header");
        let mut p = pool.alloc_from(&inner()).expect("a buffer");
        assert!(push(&mut p, &action.header, &plan, 0x1234_5678, 0));
        p.data().to_vec()
    }

    fn pop_frame(
        pool: &PacketPool,
        frame: &[u8],
        port: &TunnelPort,
    ) -> Result<Vec<u8>, DropReason> {
        let mut p = pool.alloc_from(frame).expect("a buffer");
        pop_port(&mut p, port).map(|()| {
            let tun = &p.meta().tunnel;
            assert_eq!((tun.ipv6_src, tun.ipv6_dst), (SRC6, DST6));
            assert_eq!(
                tun.ipv4_dst, [0; 4],
                "an IPv6 underlay sets no IPv4 addresses"
            );
            p.data().to_vec()
        })
    }

    #[test]
    fn ipv6_udp_checksum_is_checked_and_zero_is_allowed_unless_required() {
        let pool = PacketPool::new("tnl6", PoolConfig::heap(8));
        let plain = TunnelPort::new(TunnelKind::Vxlan);
        let required = TunnelPort {
            csum_required: true,
            ..plain
        };
        let with = encapsulated(&pool, true);
        assert_eq!(&with[12..14], &[0x86, 0xdd]);
        assert_eq!(be16(&with, 18) as usize, with.len() - 54, "payload length");
        assert_ne!(be16(&with, 60), 0, "a UDP checksum");
        assert_eq!(pop_frame(&pool, &with, &required), Ok(inner()));
        // One flipped payload bit: the checksum no longer verifies.
        let mut bad = with.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            pop_frame(&pool, &bad, &plain),
            Err(DropReason::TunnelBadChecksum)
        );
        // RFC 6935's zero checksum: taken unless the port requires one.
        let zero = encapsulated(&pool, false);
        assert_eq!(be16(&zero, 60), 0);
        assert_eq!(pop_frame(&pool, &zero, &plain), Ok(inner()));
        assert_eq!(
            pop_frame(&pool, &zero, &required),
            Err(DropReason::TunnelBadChecksum)
        );
        assert_eq!(pool.in_use(), 0, "every buffer back");
    }

    #[test]
    fn metadata_flags_are_the_flow_keys_tunnel_flags() {
        use crate::odp::flow::{TNL_F_CSUM, TNL_F_DONT_FRAGMENT, TNL_F_KEY, TNL_F_OAM};
        assert_eq!(
            [
                tnl_flags::OAM,
                tnl_flags::DONT_FRAGMENT,
                tnl_flags::CSUM,
                tnl_flags::KEY
            ],
            [TNL_F_OAM, TNL_F_DONT_FRAGMENT, TNL_F_CSUM, TNL_F_KEY]
        );
        // A popped IPv6 packet: checksum and key, no DF.
        let pool = PacketPool::new("tnl6f", PoolConfig::heap(2));
        let mut p = pool.alloc_from(&encapsulated(&pool, true)).unwrap();
        pop_port(&mut p, &TunnelPort::new(TunnelKind::Vxlan)).unwrap();
        assert_eq!(p.meta().tunnel.flags, TNL_F_CSUM | TNL_F_KEY);
    }

    #[test]
    fn the_ipv6_fuzz_seed_is_a_valid_checksummed_tunnel_packet() {
        // Selector byte 0x80: VXLAN, any key, checksum required.
        let seed = include_bytes!("../../../../fuzz/seeds/tnl_pop/vxlan6-csum.bin");
        let pool = PacketPool::new("tnl6s", PoolConfig::heap(1));
        let required = TunnelPort {
            csum_required: true,
            ..TunnelPort::new(TunnelKind::Vxlan)
        };
        assert_eq!(seed[0], 0x80);
        assert_eq!(pop_frame(&pool, &seed[1..], &required), Ok(inner()));
    }

    #[test]
    fn ipv6_fragments_extension_headers_and_bad_lengths_are_refused() {
        let pool = PacketPool::new("tnl6x", PoolConfig::heap(8));
        let port = TunnelPort::new(TunnelKind::Vxlan);
        let good = encapsulated(&pool, true);
        let mut frag = good.clone();
        frag[20] = 44;
        assert_eq!(
            pop_frame(&pool, &frag, &port),
            Err(DropReason::TunnelFragment)
        );
        let mut hop_by_hop = good.clone();
        hop_by_hop[20] = 0;
        assert_eq!(
            pop_frame(&pool, &hop_by_hop, &port),
            Err(DropReason::TunnelPopError)
        );
        let mut long = good.clone();
        long[18..20].copy_from_slice(&((good.len() - 54 + 1) as u16).to_be_bytes());
        assert_eq!(
            pop_frame(&pool, &long, &port),
            Err(DropReason::TunnelPopError)
        );
        let mut version = good;
        version[14] = 0x40;
        assert_eq!(
            pop_frame(&pool, &version, &port),
            Err(DropReason::TunnelPopError)
        );
        assert_eq!(pool.in_use(), 0);
    }
}
