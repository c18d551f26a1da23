//! The bridge's port table: OpenFlow port numbers and names on one side,
//! datapath port numbers on the other, plus what NORMAL needs to know
//! about each port (VLAN mode, flooding) and tunnel configuration.
//!
//! # How it is used
//! The table is an immutable value; [`crate::Ofproto`] publishes a new
//! `Arc<PortTable>` on every `add_port`/`del_port`, so translation reads
//! it without locks. Lookups go both ways (`by_odp` for a miss's
//! `in_port`, `get` for an output), and names resolve for the ofctl
//! parser through [`PortNamer`].
//!
//! # Reserved ports
//! OpenFlow's reserved numbers (`IN_PORT`, `NORMAL`, `FLOOD`, `ALL`,
//! `CONTROLLER`, `LOCAL`, `ANY`) are the OpenFlow 1.0 values. The bridge's
//! own internal port is `LOCAL`; the daemon adds it like any other port
//! with `ofport: Some(OFPP_LOCAL)`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

pub const OFPP_MAX: u32 = 0xff00;
pub const OFPP_IN_PORT: u32 = 0xfff8;
pub const OFPP_TABLE: u32 = 0xfff9;
pub const OFPP_NORMAL: u32 = 0xfffa;
pub const OFPP_FLOOD: u32 = 0xfffb;
pub const OFPP_ALL: u32 = 0xfffc;
pub const OFPP_CONTROLLER: u32 = 0xfffd;
pub const OFPP_LOCAL: u32 = 0xfffe;
/// `ANY` (also called `NONE`): no port.
pub const OFPP_NONE: u32 = 0xffff;

const RESERVED: &[(&str, u32)] = &[
    ("IN_PORT", OFPP_IN_PORT),
    ("TABLE", OFPP_TABLE),
    ("NORMAL", OFPP_NORMAL),
    ("FLOOD", OFPP_FLOOD),
    ("ALL", OFPP_ALL),
    ("CONTROLLER", OFPP_CONTROLLER),
    ("LOCAL", OFPP_LOCAL),
    ("ANY", OFPP_NONE),
    ("NONE", OFPP_NONE),
];

/// Port name resolution for the ofctl parser and formatter.
pub trait PortNamer {
    /// The OpenFlow port number of `name`.
    fn ofport_of(&self, name: &str) -> Option<u32>;
    /// The name of OpenFlow port `ofport`.
    fn name_of(&self, ofport: u32) -> Option<&str>;
}

/// A namer that knows no names (numbers and reserved names only).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNames;

impl PortNamer for NoNames {
    fn ofport_of(&self, _: &str) -> Option<u32> {
        None
    }
    fn name_of(&self, _: u32) -> Option<&str> {
        None
    }
}

/// Parses an OpenFlow port: a number below `OFPP_MAX`, a reserved name,
/// or a port name `names` knows (optionally in double quotes).
pub fn parse_port(s: &str, names: &dyn PortNamer) -> Result<u32, String> {
    let s = s.trim();
    let unquoted = s
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s);
    if let Some(n) = crate::parse::parse_uint(unquoted) {
        return match u32::try_from(n) {
            Ok(p) if p < OFPP_MAX || RESERVED.iter().any(|(_, r)| *r == p) => Ok(p),
            _ => Err(format!("port {s} is out of range")),
        };
    }
    if let Some((_, p)) = RESERVED
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(unquoted))
    {
        return Ok(*p);
    }
    names
        .ofport_of(unquoted)
        .ok_or_else(|| format!("unknown port {s}"))
}

/// Writes an OpenFlow port as OVS does: reserved ports by name, others by
/// name when `names` knows them (quoted when the name could be mistaken
/// for syntax), else by number.
pub fn format_port(out: &mut String, port: u32, names: Option<&dyn PortNamer>) {
    if let Some((n, _)) = RESERVED.iter().find(|(_, p)| *p == port) {
        out.push_str(n);
        return;
    }
    match names.and_then(|n| n.name_of(port)) {
        Some(name)
            if name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                && name.parse::<u64>().is_err() =>
        {
            out.push_str(name)
        }
        Some(name) => {
            let _ = write!(out, "\"{name}\"");
        }
        None => {
            let _ = write!(out, "{port}");
        }
    }
}

/// How NORMAL treats VLANs on a port (OVS `vlan_mode` reduced to the two
/// classic modes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VlanMode {
    /// Carries these VLANs tagged (VLAN 0 = untagged); empty means every
    /// VLAN. This is OVS's default for a port without `tag`.
    Trunk(Vec<u16>),
    /// Untagged port in this VLAN; tagged input is dropped.
    Access(u16),
}

impl Default for VlanMode {
    fn default() -> Self {
        VlanMode::Trunk(Vec::new())
    }
}

impl VlanMode {
    /// True when this port carries `vlan`.
    pub fn includes(&self, vlan: u16) -> bool {
        match self {
            VlanMode::Trunk(v) => v.is_empty() || v.contains(&vlan),
            VlanMode::Access(tag) => *tag == vlan,
        }
    }
}

/// Tunnel protocols with a prebuilt header for `tnl_push`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKind {
    Vxlan,
    Geneve,
    /// GRE with Transparent Ethernet Bridging (OVS `gre`), always keyed.
    Gre,
}

/// Where a tunnel's key (VNI) comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKey {
    /// A fixed VNI (`options:key=N`).
    Fixed(u64),
    /// The flow's `tun_id`, set by `set_tunnel` (`options:key=flow`).
    Flow,
}

/// A tunnel port's configuration.
///
/// With a [`crate::tunnel::TunnelState`] attached to the bridge (the
/// daemon's case) the underlay is resolved per translation: the route
/// table picks the output device and source address, the neighbour cache
/// the next hop's MAC, and `underlay_odp_port`, `local_mac` and
/// `next_hop_mac` are ignored (an unspecified `local_ip` means "the
/// route's source"). Without one they are used as configured (static
/// underlay). The underlay is IPv4 or IPv6 as `remote_ip` is (or, with
/// `remote_from_flow`, as the flow's `tun_dst`/`tun_ipv6_dst` is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    pub kind: TunnelKind,
    pub local_ip: IpAddr,
    pub remote_ip: IpAddr,
    /// `options:remote_ip=flow`: the remote comes from the flow's
    /// `tun_dst` or `tun_ipv6_dst` (set with `set_field:...->tun_dst`).
    pub remote_from_flow: bool,
    pub key: TunnelKey,
    /// `options:csum=true`: send with a UDP checksum and refuse received
    /// packets without one.
    pub csum: bool,
    /// `options:csum` was not set: as OVS, VXLAN and Geneve then send
    /// with a UDP checksum over an IPv6 underlay (RFC 8200 makes it
    /// mandatory for UDP over IPv6) and without one over IPv4; GRE never.
    pub csum_default: bool,
    /// UDP destination port (4789 for VXLAN, 6081 for Geneve by default).
    pub dst_port: u16,
    /// Datapath port the encapsulated packet leaves from.
    pub underlay_odp_port: u32,
    pub local_mac: [u8; 6],
    pub next_hop_mac: [u8; 6],
    pub ttl: u8,
    pub tos: u8,
}

impl TunnelConfig {
    /// A VXLAN tunnel with OVS's defaults (port 4789, TTL 64, key from the
    /// flow, checksum by address family).
    pub fn vxlan(
        local_ip: impl Into<IpAddr>,
        remote_ip: impl Into<IpAddr>,
        underlay_odp_port: u32,
    ) -> Self {
        TunnelConfig {
            kind: TunnelKind::Vxlan,
            local_ip: local_ip.into(),
            remote_ip: remote_ip.into(),
            remote_from_flow: false,
            key: TunnelKey::Flow,
            csum: false,
            csum_default: true,
            dst_port: 4789,
            underlay_odp_port,
            local_mac: [0; 6],
            next_hop_mac: [0; 6],
            ttl: 64,
            tos: 0,
        }
    }

    /// A Geneve tunnel with OVS's defaults (port 6081, TTL 64).
    pub fn geneve(
        local_ip: impl Into<IpAddr>,
        remote_ip: impl Into<IpAddr>,
        underlay_odp_port: u32,
    ) -> Self {
        TunnelConfig {
            kind: TunnelKind::Geneve,
            dst_port: 6081,
            ..TunnelConfig::vxlan(local_ip, remote_ip, underlay_odp_port)
        }
    }

    /// A GRE tunnel (IP protocol 47: `dst_port` is unused and 0).
    pub fn gre(
        local_ip: impl Into<IpAddr>,
        remote_ip: impl Into<IpAddr>,
        underlay_odp_port: u32,
    ) -> Self {
        TunnelConfig {
            kind: TunnelKind::Gre,
            dst_port: 0,
            ..TunnelConfig::vxlan(local_ip, remote_ip, underlay_odp_port)
        }
    }

    /// Whether packets sent now carry a UDP checksum (see `csum_default`).
    pub fn udp_csum(&self) -> bool {
        self.kind != TunnelKind::Gre
            && (self.csum || (self.csum_default && self.remote_ip.is_ipv6()))
    }

    /// Whether GRE packets carry a checksum (never by default, as OVS).
    pub fn gre_csum(&self) -> bool {
        self.kind == TunnelKind::Gre && self.csum
    }
}

/// What `add_port` takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    /// Requested OpenFlow port number; `None` picks the lowest free one.
    pub ofport: Option<u32>,
    /// Datapath port number (what the datapath's `in_port` and `output`
    /// use). For a tunnel port this is the tunnel's virtual port.
    pub odp_port: u32,
    pub vlan: VlanMode,
    /// False excludes the port from `FLOOD` and NORMAL flooding (OpenFlow
    /// `no-flood`).
    pub flood: bool,
    pub tunnel: Option<TunnelConfig>,
}

impl PortConfig {
    /// A plain trunk port carrying every VLAN.
    pub fn new(name: impl Into<String>, odp_port: u32) -> Self {
        PortConfig {
            name: name.into(),
            ofport: None,
            odp_port,
            vlan: VlanMode::default(),
            flood: true,
            tunnel: None,
        }
    }

    pub fn with_ofport(mut self, ofport: u32) -> Self {
        self.ofport = Some(ofport);
        self
    }

    pub fn with_vlan(mut self, vlan: VlanMode) -> Self {
        self.vlan = vlan;
        self
    }

    pub fn with_tunnel(mut self, tunnel: TunnelConfig) -> Self {
        self.tunnel = Some(tunnel);
        self
    }
}

/// One port of the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub ofport: u32,
    pub odp_port: u32,
    pub vlan: VlanMode,
    pub flood: bool,
    pub tunnel: Option<TunnelConfig>,
}

/// Why a port change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortError {
    NameInUse(String),
    OfportInUse(u32),
    OdpPortInUse(u32),
    BadOfport(u32),
    NoSuchPort(String),
    NoFreeOfport,
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::NameInUse(n) => write!(f, "name: port {n} already exists"),
            PortError::OfportInUse(p) => write!(f, "ofport: {p} is already in use"),
            PortError::OdpPortInUse(p) => write!(f, "odp_port: {p} is already in use"),
            PortError::BadOfport(p) => write!(f, "ofport: {p} is reserved or out of range"),
            PortError::NoSuchPort(n) => write!(f, "name: no port named {n}"),
            PortError::NoFreeOfport => write!(f, "ofport: no free OpenFlow port number"),
        }
    }
}

impl std::error::Error for PortError {}

/// Port numbers (datapath or OpenFlow) below this are looked up by
/// index in a [`PortIndex`]; larger ones (rare: both are allocated
/// densely from the bottom, `LOCAL` aside) through the maps.
const ODP_INDEX_MAX: u32 = 1024;

/// Ports by a number below [`ODP_INDEX_MAX`], indexed by the number.
/// As long as the largest number present plus one.
#[derive(Clone, Debug, Default)]
struct PortIndex(Vec<Option<Arc<Port>>>);

impl PortIndex {
    #[inline]
    fn get(&self, n: u32) -> Option<&Arc<Port>> {
        self.0.get(n as usize)?.as_ref()
    }

    fn insert(&mut self, n: u32, port: &Arc<Port>) {
        if n < ODP_INDEX_MAX {
            let i = n as usize;
            if self.0.len() <= i {
                self.0.resize(i + 1, None);
            }
            self.0[i] = Some(port.clone());
        }
    }

    fn remove(&mut self, n: u32) {
        if let Some(slot) = self.0.get_mut(n as usize) {
            *slot = None;
        }
        while self.0.last().is_some_and(Option::is_none) {
            self.0.pop();
        }
    }
}

/// The immutable port table (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct PortTable {
    by_ofport: BTreeMap<u32, Arc<Port>>,
    by_odp: HashMap<u32, u32>,
    /// `by_odp` for datapath numbers below [`ODP_INDEX_MAX`]: every
    /// upcall maps its `in_port` here, and a hash and a B-tree walk cost
    /// ~190 instructions of each flow setup. Holds exactly the ports of
    /// `by_odp` below the bound.
    odp_index: PortIndex,
    /// `by_ofport` below the bound, for every output translated.
    ofport_index: PortIndex,
    by_name: HashMap<String, u32>,
}

impl PortTable {
    /// The port with OpenFlow number `ofport`.
    pub fn get(&self, ofport: u32) -> Option<&Arc<Port>> {
        if ofport < ODP_INDEX_MAX {
            return self.ofport_index.get(ofport);
        }
        self.by_ofport.get(&ofport)
    }

    /// The port with datapath number `odp_port`.
    pub fn by_odp(&self, odp_port: u32) -> Option<&Arc<Port>> {
        if odp_port < ODP_INDEX_MAX {
            return self.odp_index.get(odp_port);
        }
        self.by_odp
            .get(&odp_port)
            .and_then(|p| self.by_ofport.get(p))
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Port>> {
        self.by_name.get(name).and_then(|p| self.by_ofport.get(p))
    }

    /// Ports in ascending OpenFlow number order (the flooding order).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Port>> {
        self.by_ofport.values()
    }

    pub fn len(&self) -> usize {
        self.by_ofport.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ofport.is_empty()
    }

    /// A copy with `cfg` added.
    pub fn with_port(&self, cfg: PortConfig) -> Result<(PortTable, Arc<Port>), PortError> {
        if self.by_name.contains_key(&cfg.name) {
            return Err(PortError::NameInUse(cfg.name));
        }
        if self.by_odp.contains_key(&cfg.odp_port) {
            return Err(PortError::OdpPortInUse(cfg.odp_port));
        }
        let ofport = match cfg.ofport {
            Some(p) if p == 0 || (p >= OFPP_MAX && p != OFPP_LOCAL) => {
                return Err(PortError::BadOfport(p));
            }
            Some(p) if self.by_ofport.contains_key(&p) => return Err(PortError::OfportInUse(p)),
            Some(p) => p,
            None => (1..OFPP_MAX)
                .find(|p| !self.by_ofport.contains_key(p))
                .ok_or(PortError::NoFreeOfport)?,
        };
        let port = Arc::new(Port {
            name: cfg.name,
            ofport,
            odp_port: cfg.odp_port,
            vlan: cfg.vlan,
            flood: cfg.flood,
            tunnel: cfg.tunnel,
        });
        let mut t = self.clone();
        t.by_ofport.insert(ofport, port.clone());
        t.by_odp.insert(port.odp_port, ofport);
        t.odp_index.insert(port.odp_port, &port);
        t.ofport_index.insert(ofport, &port);
        t.by_name.insert(port.name.clone(), ofport);
        Ok((t, port))
    }

    /// A copy without the port called `name`.
    pub fn without_port(&self, name: &str) -> Result<(PortTable, Arc<Port>), PortError> {
        let port = self
            .by_name(name)
            .cloned()
            .ok_or_else(|| PortError::NoSuchPort(name.to_string()))?;
        let mut t = self.clone();
        t.by_ofport.remove(&port.ofport);
        t.by_odp.remove(&port.odp_port);
        t.odp_index.remove(port.odp_port);
        t.ofport_index.remove(port.ofport);
        t.by_name.remove(&port.name);
        Ok((t, port))
    }

    /// The datapath-number → name map for ODP text (`in_port(p1)`).
    pub fn odp_names(&self) -> dp_core::odp::PortNames {
        let mut n = dp_core::odp::PortNames::new();
        for p in self.iter() {
            n.insert(p.odp_port, p.name.clone());
        }
        n
    }
}

impl PortNamer for PortTable {
    fn ofport_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }
    fn name_of(&self, ofport: u32) -> Option<&str> {
        self.by_ofport.get(&ofport).map(|p| p.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_remove_keep_both_maps() {
        let t = PortTable::default();
        let (t, p1) = t.with_port(PortConfig::new("p1", 5)).unwrap();
        assert_eq!(p1.ofport, 1);
        let (t, p2) = t
            .with_port(PortConfig::new("p2", 6).with_ofport(10))
            .unwrap();
        assert_eq!(t.by_odp(6).unwrap().ofport, p2.ofport);
        assert_eq!(
            t.with_port(PortConfig::new("p3", 5)).unwrap_err(),
            PortError::OdpPortInUse(5)
        );
        assert_eq!(
            t.with_port(PortConfig::new("p1", 9)).unwrap_err(),
            PortError::NameInUse("p1".into())
        );
        let (t, _) = t.without_port("p1").unwrap();
        assert!(t.by_odp(5).is_none());
        assert_eq!(t.ofport_of("p2"), Some(10));
        assert_eq!(parse_port("p2", &t), Ok(10));
        assert_eq!(parse_port("LOCAL", &t), Ok(OFPP_LOCAL));
        assert!(parse_port("nope", &t).unwrap_err().contains("nope"));
        let mut s = String::new();
        format_port(&mut s, 10, Some(&t));
        format_port(&mut s, OFPP_NORMAL, Some(&t));
        format_port(&mut s, 77, Some(&t));
        assert_eq!(s, "p2NORMAL77");
    }

    #[test]
    fn by_odp_finds_small_and_large_datapath_numbers() {
        let t = PortTable::default();
        let (t, a) = t.with_port(PortConfig::new("a", 0)).unwrap();
        let (t, b) = t.with_port(PortConfig::new("b", 1023)).unwrap();
        let (t, c) = t.with_port(PortConfig::new("c", 1024)).unwrap();
        let (t, d) = t.with_port(PortConfig::new("d", u32::MAX - 1)).unwrap();
        for (odp, p) in [(0, &a), (1023, &b), (1024, &c), (u32::MAX - 1, &d)] {
            assert_eq!(t.by_odp(odp).unwrap().ofport, p.ofport, "odp {odp}");
            assert_eq!(
                t.get(p.ofport).unwrap().odp_port,
                odp,
                "ofport {}",
                p.ofport
            );
        }
        let (t, big) = t
            .with_port(PortConfig::new("big", 7).with_ofport(5000))
            .unwrap();
        let (t, local) = t
            .with_port(PortConfig::new("br", 8).with_ofport(OFPP_LOCAL))
            .unwrap();
        assert_eq!(t.get(5000).unwrap().name, big.name);
        assert_eq!(t.get(OFPP_LOCAL).unwrap().name, local.name);
        assert!(t.get(4999).is_none() && t.get(0).is_none());
        assert!(t.by_odp(1).is_none() && t.by_odp(1025).is_none());
        assert!(t.by_odp(u32::MAX).is_none());
        let (t, _) = t.without_port("b").unwrap();
        let (t, _) = t.without_port("c").unwrap();
        assert!(t.by_odp(1023).is_none() && t.by_odp(1024).is_none());
        assert!(t.get(b.ofport).is_none() && t.get(c.ofport).is_none());
        assert_eq!(t.by_odp(0).unwrap().ofport, a.ofport);
        // The slot of a removed port can be taken again.
        let (t, e) = t.with_port(PortConfig::new("e", 1023)).unwrap();
        assert_eq!(t.by_odp(1023).unwrap().ofport, e.ofport);
    }
}
