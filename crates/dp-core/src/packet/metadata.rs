//! Metadata the datapath keeps beside each packet.

/// Header offset meaning "this header is not present".
pub const OFS_NONE: u16 = u16::MAX;

/// Where the parsed headers start, as byte offsets from the start of the
/// packet data (OVS's `l2_5_ofs`, `l3_ofs`, `l4_ofs`), plus the number of
/// Ethernet padding bytes after the L3 payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderOffsets {
    /// MPLS label stack start, or [`OFS_NONE`].
    pub l2_5: u16,
    /// Network header start, or [`OFS_NONE`].
    pub l3: u16,
    /// Transport header start, or [`OFS_NONE`].
    pub l4: u16,
    /// Bytes of link-layer padding after the end of the L3 packet.
    pub l2_pad: u16,
}

impl HeaderOffsets {
    /// No header parsed.
    pub const NONE: HeaderOffsets = HeaderOffsets {
        l2_5: OFS_NONE,
        l3: OFS_NONE,
        l4: OFS_NONE,
        l2_pad: 0,
    };

    fn each(&mut self, mut f: impl FnMut(u16) -> u16) {
        for ofs in [&mut self.l2_5, &mut self.l3, &mut self.l4] {
            if *ofs != OFS_NONE {
                *ofs = f(*ofs);
            }
        }
    }

    /// `n` bytes were pushed in front of the data.
    pub(crate) fn shift_forward(&mut self, n: u16) {
        self.each(|ofs| {
            ofs.checked_add(n)
                .filter(|o| *o != OFS_NONE)
                .unwrap_or(OFS_NONE)
        });
    }

    /// `n` bytes were pulled from the front of the data.
    pub(crate) fn shift_back(&mut self, n: u16) {
        self.each(|ofs| ofs.checked_sub(n).unwrap_or(OFS_NONE));
    }

    /// The data was truncated to `len` bytes.
    pub(crate) fn clamp_to(&mut self, len: usize) {
        self.each(|ofs| if (ofs as usize) > len { OFS_NONE } else { ofs });
        self.l2_pad = 0;
    }
}

impl Default for HeaderOffsets {
    fn default() -> Self {
        Self::NONE
    }
}

/// OVS packet type: a namespace and a type within it. Namespace 0 type 0 is
/// Ethernet; namespace 1 carries an Ethernet type (an L3 packet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketType(pub u32);

impl PacketType {
    pub const ETHERNET: PacketType = PacketType(0);
    /// Namespace of packet types that are Ethernet types.
    pub const NS_ETHERTYPE: u16 = 1;

    pub fn new(namespace: u16, ns_type: u16) -> PacketType {
        PacketType((u32::from(namespace) << 16) | u32::from(ns_type))
    }
    pub fn namespace(self) -> u16 {
        (self.0 >> 16) as u16
    }
    pub fn ns_type(self) -> u16 {
        self.0 as u16
    }
}

/// Tunnel metadata: set by `tnl_pop` on a decapsulated packet, used by
/// `set(tunnel(...))` before encapsulation. Valid when `ipv4_dst` or
/// `ipv6_dst` is non-zero, as in OVS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelMetadata {
    pub tun_id: u64,
    pub ipv4_src: [u8; 4],
    pub ipv4_dst: [u8; 4],
    pub ipv6_src: [u8; 16],
    pub ipv6_dst: [u8; 16],
    pub flags: u16,
    pub tos: u8,
    pub ttl: u8,
    pub tp_src: u16,
    pub tp_dst: u16,
    pub gbp_id: u16,
    pub gbp_flags: u8,
    /// Length of the Geneve options in `geneve_opts`.
    pub geneve_len: u8,
    /// Raw Geneve option TLVs (at most 252 bytes, the protocol's limit).
    pub geneve_opts: [u8; 252],
}

impl TunnelMetadata {
    pub const NONE: TunnelMetadata = TunnelMetadata {
        tun_id: 0,
        ipv4_src: [0; 4],
        ipv4_dst: [0; 4],
        ipv6_src: [0; 16],
        ipv6_dst: [0; 16],
        flags: 0,
        tos: 0,
        ttl: 0,
        tp_src: 0,
        tp_dst: 0,
        gbp_id: 0,
        gbp_flags: 0,
        geneve_len: 0,
        geneve_opts: [0; 252],
    };

    /// True when the packet carries tunnel metadata.
    #[inline]
    pub fn is_valid(&self) -> bool {
        self.ipv4_dst != [0; 4] || self.ipv6_dst != [0; 16]
    }

    /// The Geneve options present.
    pub fn geneve_options(&self) -> &[u8] {
        &self.geneve_opts[..self.geneve_len as usize]
    }

    /// Forgets the tunnel without touching the option bytes (cheap reset).
    #[inline]
    pub fn clear(&mut self) {
        self.tun_id = 0;
        self.ipv4_src = [0; 4];
        self.ipv4_dst = [0; 4];
        self.ipv6_src = [0; 16];
        self.ipv6_dst = [0; 16];
        self.flags = 0;
        self.tos = 0;
        self.ttl = 0;
        self.tp_src = 0;
        self.tp_dst = 0;
        self.gbp_id = 0;
        self.gbp_flags = 0;
        self.geneve_len = 0;
    }
}

impl Default for TunnelMetadata {
    fn default() -> Self {
        Self::NONE
    }
}

/// Per-packet metadata (OVS `struct pkt_metadata` plus the dp_packet
/// fields the fast path uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketMetadata {
    /// Datapath port the packet arrived on.
    pub in_port: u32,
    pub recirc_id: u32,
    pub dp_hash: u32,
    pub skb_priority: u32,
    pub pkt_mark: u32,
    /// RSS or software hash; meaningful only when `rss_hash_valid`.
    pub rss_hash: u32,
    pub rss_hash_valid: bool,
    /// How many times the packet has been recirculated (depth limit).
    pub recirc_depth: u8,
    pub packet_type: PacketType,
    // Connection tracking state: filled by conntrack once it exists; the
    // key extracts them so megaflows can already match on them.
    pub ct_state: u8,
    pub ct_zone: u16,
    pub ct_mark: u32,
    pub ct_label: [u8; 16],
    pub tunnel: TunnelMetadata,
    pub offsets: HeaderOffsets,
}

impl PacketMetadata {
    /// Metadata of a freshly received Ethernet packet on `in_port`.
    pub fn new(in_port: u32) -> PacketMetadata {
        PacketMetadata {
            in_port,
            ..PacketMetadata::default()
        }
    }

    /// Resets to the state of a fresh packet, skipping the Geneve option
    /// bytes (they are only read up to `geneve_len`).
    #[inline]
    pub fn reset(&mut self) {
        self.in_port = 0;
        self.recirc_id = 0;
        self.dp_hash = 0;
        self.skb_priority = 0;
        self.pkt_mark = 0;
        self.rss_hash = 0;
        self.rss_hash_valid = false;
        self.recirc_depth = 0;
        self.packet_type = PacketType::ETHERNET;
        self.ct_state = 0;
        self.ct_zone = 0;
        self.ct_mark = 0;
        self.ct_label = [0; 16];
        self.tunnel.clear();
        self.offsets = HeaderOffsets::NONE;
    }
}

impl Default for PacketMetadata {
    fn default() -> Self {
        PacketMetadata {
            in_port: 0,
            recirc_id: 0,
            dp_hash: 0,
            skb_priority: 0,
            pkt_mark: 0,
            rss_hash: 0,
            rss_hash_valid: false,
            recirc_depth: 0,
            packet_type: PacketType::ETHERNET,
            ct_state: 0,
            ct_zone: 0,
            ct_mark: 0,
            ct_label: [0; 16],
            tunnel: TunnelMetadata::NONE,
            offsets: HeaderOffsets::NONE,
        }
    }
}
