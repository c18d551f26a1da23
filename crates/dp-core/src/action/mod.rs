//! Datapath actions: what a megaflow does to the packets that match it.
//!
//! # What it is
//! [`Action`] is OVS's `OVS_ACTION_ATTR_*` set as a Rust enum with typed
//! fields, ready for an executor to walk: ports are numbers, addresses are
//! bytes, a tunnel push carries the exact header bytes to prepend, nested
//! lists (`sample`, `clone`, `check_pkt_len`) are `Vec<Action>`. An empty
//! list means drop. Nothing here parses or prints; the ODP text for these
//! types lives in [`crate::odp`] (`odp::actions`), so the executor never
//! depends on text and the text never depends on execution.
//!
//! # Invariants
//! - Values that came out of the ODP parser are in range for their field
//!   (a VLAN id fits 12 bits, a tunnel header length matches its bytes).
//! - `SetMasked` always carries a key and a mask of the same
//!   [`KeyAttr`] variant; `Set` writes every field of its attribute.
//! - Nesting depth is bounded by the parser (`odp::MAX_NESTING`), so an
//!   executor may recurse.
//!
//! Actions are plain data: `Clone + Send + Sync`, built by whoever
//! installs the flow and read by the PMD thread that executes it.

use crate::odp::attr::{Ip4, Ip6, KeyAttr, Mac};

/// Tunnel vport types as numbered by OVS (`OVS_VPORT_TYPE_*`), as they
/// appear in `tnl_push(...,header(type=N,...))`.
pub mod vport_type {
    pub const GRE: u32 = 3;
    pub const VXLAN: u32 = 4;
    pub const GENEVE: u32 = 5;
    pub const ERSPAN: u32 = 107;
    pub const IP6ERSPAN: u32 = 108;
    pub const IP6GRE: u32 = 109;
    pub const GTPU: u32 = 110;
    pub const SRV6: u32 = 112;
}

/// Hash algorithms for [`Action::Hash`] (`OVS_HASH_ALG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// 5-tuple hash.
    L4,
    /// Symmetric 5-tuple hash (same value in both directions).
    SymL4,
    /// An algorithm this build does not know, kept for display.
    Unknown(u32),
}

/// One datapath action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a copy to a datapath port.
    Output(u32),
    /// Output through a balance-tcp bond's load-balancing table.
    LbOutput(u32),
    /// Truncate the packet to at most this many bytes for the following
    /// outputs.
    Trunc(u32),
    /// Send the packet to userspace (upcall).
    Userspace(Userspace),
    /// Write every field of one key attribute.
    Set(KeyAttr),
    /// Write the bits of `key` selected by `mask` (same variant).
    SetMasked {
        key: KeyAttr,
        mask: KeyAttr,
    },
    /// Push an 802.1Q/802.1ad tag; `tci` includes the CFI bit (0x1000).
    PushVlan {
        tpid: u16,
        tci: u16,
    },
    PopVlan,
    /// Push an MPLS label stack entry, setting the Ethernet type.
    PushMpls {
        lse: u32,
        ethertype: u16,
    },
    /// Pop the outer MPLS label; the new Ethernet type is given.
    PopMpls {
        ethertype: u16,
    },
    /// Push an Ethernet header (for L3 packets).
    PushEth {
        src: Mac,
        dst: Mac,
    },
    PopEth,
    /// Restart lookup with this recirculation id.
    Recirc(u32),
    /// Compute the datapath hash into `dp_hash`.
    Hash {
        alg: HashAlg,
        basis: u32,
    },
    /// With probability `probability / u32::MAX`, run `actions` on a copy.
    Sample {
        probability: u32,
        actions: Vec<Action>,
    },
    /// Run `actions` on a copy, leaving the original untouched.
    Clone(Vec<Action>),
    /// Run `gt` when the packet is longer than `pkt_len`, else `le`.
    CheckPktLen {
        pkt_len: u16,
        gt: Vec<Action>,
        le: Vec<Action>,
    },
    /// Send through conntrack.
    Ct(Ct),
    /// Forget the conntrack state.
    CtClear,
    /// Prepend a tunnel header.
    TnlPush(TnlPush),
    /// Strip a tunnel header and continue as if received on this port.
    TnlPop(u32),
    /// Police with this meter.
    Meter(u32),
    /// Send a sample to a psample group.
    Psample {
        group: u32,
        cookie: Vec<u8>,
    },
    /// Explicit drop (OVS's `OVS_ACTION_ATTR_DROP`); ends the list.
    Drop,
}

/// `userspace(...)`: the upcall action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Userspace {
    /// Netlink port id of the handler (kept for compatibility).
    pub pid: u32,
    /// The cookie handed back with the upcall.
    pub userdata: Option<Userdata>,
    /// Include the flow's actions with the upcall.
    pub include_actions: bool,
    /// Egress tunnel port, for sampling of tunnelled output.
    pub tunnel_out_port: Option<u32>,
}

/// Direction of a flow sample (`NX_ACTION_SAMPLE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleDirection {
    Default,
    Ingress,
    Egress,
}

/// The userspace cookie: why the packet comes up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Userdata {
    /// sFlow sample; `vlan_tci` has CFI set when a VLAN is present.
    SFlow { vlan_tci: u16, output: u32 },
    /// Slow-path processing; `reasons` is a `slow_path_reason` bit set.
    SlowPath { reasons: u32 },
    /// Per-flow IPFIX sample.
    FlowSample {
        probability: u16,
        collector_set_id: u32,
        obs_domain_id: u32,
        obs_point_id: u32,
        output_port: u32,
        direction: SampleDirection,
    },
    /// Per-bridge IPFIX sample.
    Ipfix { output_port: u32 },
    /// Send to the controller.
    Controller {
        reason: u16,
        dont_send: bool,
        continuation: bool,
        recirc_id: u32,
        rule_cookie: u64,
        controller_id: u16,
        max_len: u16,
    },
    /// Opaque bytes.
    Opaque(Vec<u8>),
}

/// Slow-path reason bits, in OVS order (`SLOW_*`).
pub mod slow_path {
    pub const CFM: u32 = 1 << 0;
    pub const BFD: u32 = 1 << 1;
    pub const LACP: u32 = 1 << 2;
    pub const STP: u32 = 1 << 3;
    pub const LLDP: u32 = 1 << 4;
    pub const ACTION: u32 = 1 << 5;
    pub const MATCH: u32 = 1 << 6;
}

/// `ct(...)`: conntrack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ct {
    pub commit: bool,
    pub force_commit: bool,
    /// Zone; 0 is the default zone.
    pub zone: u16,
    /// `(value, mask)` to write into `ct_mark`.
    pub mark: Option<(u32, u32)>,
    /// `(value, mask)` to write into `ct_label`.
    pub label: Option<(u128, u128)>,
    /// Application-layer helper, e.g. `ftp` (at most 15 bytes).
    pub helper: Option<String>,
    /// Timeout policy name.
    pub timeout: Option<String>,
    pub nat: Option<Nat>,
}

/// Which side NAT rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    Src,
    Dst,
}

/// Address range of a NAT; both ends have the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatAddrs {
    V4 { min: Ip4, max: Option<Ip4> },
    V6 { min: Ip6, max: Option<Ip6> },
}

/// `nat(...)` inside `ct`. `kind: None` is a bare `nat`: re-apply the NAT
/// already recorded for the connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nat {
    pub kind: Option<NatKind>,
    pub addrs: Option<NatAddrs>,
    /// `(min, max)` ports; `max` absent means a single port.
    pub ports: Option<(u16, Option<u16>)>,
    pub persistent: bool,
    pub hash: bool,
    pub random: bool,
}

/// `tnl_push(...)`: prepend a prebuilt outer header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TnlPush {
    /// The tunnel port the flow was translated for.
    pub tnl_port: u32,
    /// The port to send out of after the push.
    pub out_port: u32,
    /// `vport_type::*`.
    pub tnl_type: u32,
    /// Ethernet + IP + tunnel header bytes, as sent. Per-packet fields are
    /// left zero for the executor to fill: IPv4 total length (the IPv4
    /// checksum is computed with that length as zero, ready for an
    /// incremental update), IPv6 payload length, UDP length, GTP-U length
    /// and the SRv6 routing header's next-header byte.
    pub header: Vec<u8>,
}
