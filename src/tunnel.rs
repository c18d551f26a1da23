//! Native tunnelling in the daemon: `vxlan`/`geneve` ports from the
//! config, the route table learned from the host over rtnetlink, ARP
//! requests for unresolved next hops, and the `tnl/*` and `ovs/route/*`
//! commands.
//!
//! # How it works
//! A tunnel port is a datapath port without queues ([`TunnelNetdev`]):
//! packets reach it only through `tnl_pop` (the datapath sets the tunnel
//! port as input port and recirculates) and leave it only as
//! `clone(tnl_push(...), ...)`, which translation builds from the port's
//! [`TunnelConfig`] and the shared [`TunnelState`] (route table,
//! neighbour cache, MACs of the internal ports that carry VTEP addresses).
//!
//! [`Tunnels`] owns that state for the daemon. At start it dumps the
//! host's IPv4 main routing table and links over a `NETLINK_ROUTE` socket
//! and subscribes to link, address and route changes; the periodic task
//! ([`Tunnels::run`], about once a second) re-reads the table when a
//! change arrived, ages the neighbour cache and sends the ARP requests
//! translation asked for. A request is built as the bridge's own port
//! would send it (from the route's device, with its MAC and the route's
//! source address), translated through that bridge and sent on the ports
//! the resulting `output` actions name, through the daemon's own tx queue
//! on each (kernel-facing drivers allow a second opener).
//!
//! Geneve options: each bridge's TLV map (`tlv_map` in its config
//! section, `tnl/tlv-map/{add,del,show}` at run time) lives in the shared
//! [`TunnelState`]; its (class, type) pairs are pushed to the bridge's
//! tunnel ports in the datapath, whose `tnl_pop` then lets those critical
//! options through.
//!
//! # Threads
//! Everything here runs on the control thread; translation on PMD threads
//! reads and writes the shared state through its own locks (see
//! `ofproto::tunnel`).

use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dp_core::action::Action;
use dp_core::execute::tunnel::GeneveKnown;
use dp_core::execute::{TunnelKind as RxKind, TunnelPort};
use dp_core::flow::{FlowKey, extract_frame};
use dp_core::netdev::{
    Capabilities, LinkState, Netdev, NetdevError, NetdevInfo, NetdevStats, RxQueue, TxOutcome,
    TxQueue, check_qid,
};
use dp_core::packet::{PacketBatch, PacketPool, PoolConfig};
use ofproto::neigh::Solicit;
use ofproto::route::{Route, RouteOrigin, parse_prefix};
use ofproto::tlv_map::parse_mappings;
use ofproto::tunnel::TunnelState;
use ofproto::{TunnelConfig, TunnelKey, TunnelKind};

use crate::config::PortSection;
use crate::daemon::Daemon;

/// Port types that are tunnels.
pub const TUNNEL_TYPES: &[&str] = &["vxlan", "geneve", "gre"];

/// Options a tunnel port takes.
const TUNNEL_OPTIONS: &[&str] = &[
    "remote_ip",
    "local_ip",
    "key",
    "tun_id",
    "dst_port",
    "csum",
    "ttl",
    "tos",
];

/// True for `vxlan` and `geneve`.
pub fn is_tunnel_type(port_type: &str) -> bool {
    TUNNEL_TYPES.contains(&port_type)
}

/// A tunnel port's two halves: what translation needs to send, and what
/// the datapath checks on receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelSpec {
    pub config: TunnelConfig,
    pub rx: TunnelPort,
}

fn option_text(port: &PortSection, key: &str) -> Result<Option<String>, String> {
    match port.options.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(toml::Value::Integer(i)) => Ok(Some(i.to_string())),
        Some(toml::Value::Boolean(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(format!(
            "option \"{key}\": expected a string or a number, found {}",
            other.type_str()
        )),
    }
}

fn number<T: TryFrom<u64>>(key: &str, text: &str, max: u64) -> Result<T, String> {
    let n = if let Some(hex) = text.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else {
        text.parse::<u64>().ok()
    };
    n.filter(|n| *n <= max)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("option \"{key}\": \"{text}\" is not a number in 0..={max}"))
}

fn ip(key: &str, text: &str) -> Result<IpAddr, String> {
    text.parse::<IpAddr>()
        .map_err(|_| format!("option \"{key}\": \"{text}\" is not an IPv4 or IPv6 address"))
}

/// Reads a `vxlan`/`geneve` port's options (OVS names and meanings:
/// `remote_ip` = address or `flow`, `local_ip`, `key`/`tun_id` = number
/// or `flow`, `dst_port`, `csum`, `ttl`, `tos`).
pub fn tunnel_spec(port: &PortSection) -> Result<TunnelSpec, String> {
    for key in port.options.keys() {
        if !TUNNEL_OPTIONS.contains(&key.as_str()) {
            return Err(format!(
                "unknown option \"{key}\" for type \"{}\" (expected one of: {})",
                port.port_type,
                TUNNEL_OPTIONS.join(", ")
            ));
        }
    }
    let (kind, rx_kind) = match port.port_type.as_str() {
        "vxlan" => (TunnelKind::Vxlan, RxKind::Vxlan),
        "geneve" => (TunnelKind::Geneve, RxKind::Geneve),
        "gre" => (TunnelKind::Gre, RxKind::Gre),
        other => return Err(format!("\"{other}\" is not a tunnel type")),
    };
    let remote = option_text(port, "remote_ip")?
        .ok_or("option \"remote_ip\" is required (an IPv4 or IPv6 address, or \"flow\")")?;
    let local_ip = match option_text(port, "local_ip")? {
        Some(t) => ip("local_ip", &t)?,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let (remote_ip, remote_from_flow) = if remote == "flow" {
        // The family comes from the flow's tun_dst/tun_ipv6_dst.
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), true)
    } else {
        let r = ip("remote_ip", &remote)?;
        if r.is_unspecified() || r.is_multicast() {
            return Err(format!(
                "option \"remote_ip\": \"{remote}\" is not a unicast address"
            ));
        }
        (r, false)
    };
    if !local_ip.is_unspecified() && !remote_from_flow && local_ip.is_ipv6() != remote_ip.is_ipv6()
    {
        return Err(format!(
            "option \"local_ip\": {local_ip} and remote_ip {remote_ip} are of different address families"
        ));
    }
    let mut config = match kind {
        TunnelKind::Vxlan => TunnelConfig::vxlan(local_ip, remote_ip, 0),
        TunnelKind::Geneve => TunnelConfig::geneve(local_ip, remote_ip, 0),
        TunnelKind::Gre => TunnelConfig::gre(local_ip, remote_ip, 0),
    };
    config.remote_from_flow = remote_from_flow;
    let key = match (option_text(port, "key")?, option_text(port, "tun_id")?) {
        (Some(_), Some(_)) => return Err("set either \"key\" or \"tun_id\", not both".into()),
        (Some(k), None) => Some(("key", k)),
        (None, Some(k)) => Some(("tun_id", k)),
        (None, None) => None,
    };
    // OVS's default is key 0; "flow" takes it from set_tunnel.
    config.key = match key {
        Some((_, k)) if k == "flow" => TunnelKey::Flow,
        Some((name, k)) => TunnelKey::Fixed(number(name, &k, 0xff_ffff)?),
        None => TunnelKey::Fixed(0),
    };
    if let Some(p) = option_text(port, "dst_port")? {
        if kind == TunnelKind::Gre {
            return Err("option \"dst_port\": GRE has no UDP port".into());
        }
        config.dst_port = number("dst_port", &p, 65535)?;
        if config.dst_port == 0 {
            return Err("option \"dst_port\": 0 is not a UDP port".into());
        }
    }
    if let Some(c) = option_text(port, "csum")? {
        config.csum = match c.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(format!("option \"csum\": \"{c}\" is not true or false")),
        };
        config.csum_default = false;
    }
    if let Some(t) = option_text(port, "ttl")? {
        config.ttl = number("ttl", &t, 255)?;
        if config.ttl == 0 {
            return Err("option \"ttl\": must be 1..255".into());
        }
    }
    if let Some(t) = option_text(port, "tos")? {
        config.tos = number("tos", &t, 255)?;
    }
    let rx = TunnelPort {
        kind: rx_kind,
        key: match config.key {
            TunnelKey::Fixed(k) => Some(k),
            TunnelKey::Flow => None,
        },
        csum_required: config.csum,
        geneve_known: dp_core::execute::tunnel::GeneveKnown::NONE,
    };
    Ok(TunnelSpec { config, rx })
}

/// The datapath side of a tunnel port: no receive queue (packets arrive
/// through `tnl_pop`), and a transmit queue that drops and counts what is
/// sent to it directly (translation never does; `dpctl` flows could).
/// Its rx/tx packet and byte counters are credited from megaflow
/// statistics ([`TunnelCounters`]), as OVS credits tunnel vports.
#[derive(Debug)]
pub struct TunnelNetdev {
    name: String,
    type_name: &'static str,
    pub spec: TunnelSpec,
    dropped: Arc<AtomicU64>,
    pub counters: Arc<PortCounters>,
}

/// A tunnel port's rx/tx counters: inner packets and bytes that left
/// through it (a `tnl_push` naming it) and that arrived through it (a
/// flow whose input port it is, after `tnl_pop`).
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
}

/// What one megaflow counts on tunnel ports per packet: rx on its input
/// port when that is a tunnel port, tx on each tunnel port its actions
/// push to (once per `tnl_push`: a flood to two tunnels counts on both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelCredit {
    rx: Option<u32>,
    tx: Vec<u32>,
    /// The outer destination MAC of each push: the neighbour entries the
    /// megaflow depends on, kept alive while it forwards.
    next_hops: Vec<[u8; 6]>,
}

/// Tunnel port statistics (OVS's tunnel vport stats, which its xlate
/// cache credits from datapath flow statistics).
///
/// # How it works
/// The datapath never counts per tunnel port on the packet path (no
/// shared counter, no atomic per packet). At upcall time the bridges ask
/// [`TunnelCounters::credit_for`] which tunnel ports a new megaflow
/// touches and remember it by UFID beside the rules they credit; each
/// time the daemon samples the flows (periodically, and for `dpctl/show`)
/// the packet and byte deltas go to those ports' [`PortCounters`], which
/// the port's `stats()` reports (`dpctl/show -s`, metrics). Counts lag
/// the packets by at most one sample, and what a megaflow forwarded after
/// its last sample before deletion is not counted (as rule counters).
///
/// The same samples keep the neighbour entries a forwarding megaflow
/// sends to alive ([`ofproto::neigh::NeighCache::refresh_mac`]), as OVS's
/// xlate cache does: without it a busy tunnel's next hop would age out
/// every 15 minutes and drop packets until solicited again.
///
/// # Threads
/// Registration on the control thread (serialised by a mutex all the same,
/// see `registry`), `credit_for` on upcalling threads, crediting on the
/// control thread and on PMD threads (a deleted megaflow's final stats,
/// `crate::bridge`): the port map is an `ArcSwap`
/// snapshot, replaced whole on a (rare) registration, so an upcall reads
/// it with no shared lock word written (a read lock per upcall was ~100
/// instructions and a cache line every PMD wrote); relaxed atomics for
/// the counters.
#[derive(Debug, Default)]
pub struct TunnelCounters {
    ports: arc_swap::ArcSwap<HashMap<u32, Arc<PortCounters>>>,
    /// Whether `ports` has any: read first by `credit_for`, so an upcall
    /// on a switch without tunnels costs one relaxed load.
    any_ports: std::sync::atomic::AtomicBool,
    /// Held by [`Self::register`] and [`Self::unregister`] across the map
    /// update and the `any_ports` store, so the flag always ends as the
    /// last update left the map: two unserialised updates could store
    /// them in the other order (an unregister's `false` computed before a
    /// register's insert, stored after its `true`), and every upcall would
    /// then skip tunnel crediting until the next registration.
    registry: std::sync::Mutex<()>,
    /// The tunnel state whose neighbour entries traffic keeps alive.
    state: std::sync::OnceLock<Arc<TunnelState>>,
}

impl TunnelCounters {
    /// Megaflows that forward keep `state`'s neighbour entries alive
    /// (set once, at start).
    pub fn keep_alive(&self, state: Arc<TunnelState>) {
        let _ = self.state.set(state);
    }

    /// Datapath port `port_no` is a tunnel port counting into `c`.
    pub fn register(&self, port_no: u32, c: Arc<PortCounters>) {
        self.update_ports(|ports| {
            ports.insert(port_no, c);
        });
    }

    pub fn unregister(&self, port_no: u32) {
        self.update_ports(|ports| {
            ports.remove(&port_no);
        });
    }

    /// Replaces the port map with `change` applied to it, and `any_ports`
    /// with what the new map says, as one step ([`Self::registry`]).
    fn update_ports(&self, change: impl FnOnce(&mut HashMap<u32, Arc<PortCounters>>)) {
        // A panic elsewhere while holding it left nothing half done: the
        // map and the flag are each stored whole.
        let _serial = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ports = HashMap::clone(&self.ports.load());
        change(&mut ports);
        let any = !ports.is_empty();
        self.ports.store(Arc::new(ports));
        self.any_ports.store(any, Ordering::Relaxed);
    }

    /// What a megaflow entered on `in_port` with `actions` counts on
    /// tunnel ports; `None` when it touches none.
    pub fn credit_for(&self, in_port: u32, actions: &[Action]) -> Option<TunnelCredit> {
        fn pushes(actions: &[Action], out: &mut Vec<(u32, [u8; 6])>) {
            for a in actions {
                match a {
                    Action::TnlPush(p) => {
                        let mac = p.header.get(..6).and_then(|m| m.try_into().ok());
                        out.push((p.tnl_port, mac.unwrap_or([0; 6])));
                    }
                    Action::Clone(inner) => pushes(inner, out),
                    _ => {}
                }
            }
        }
        if !self.any_ports.load(Ordering::Relaxed) {
            // No tunnel port: nothing to count (the common case).
            return None;
        }
        let ports = self.ports.load();
        let mut pushed = Vec::new();
        pushes(actions, &mut pushed);
        pushed.retain(|(p, _)| ports.contains_key(p));
        let tx: Vec<u32> = pushed.iter().map(|(p, _)| *p).collect();
        let mut next_hops: Vec<[u8; 6]> = pushed.iter().map(|(_, m)| *m).collect();
        next_hops.sort_unstable();
        next_hops.dedup();
        let rx = ports.contains_key(&in_port).then_some(in_port);
        (rx.is_some() || !tx.is_empty()).then_some(TunnelCredit { rx, tx, next_hops })
    }

    /// Counts `packets` and `bytes` more of a megaflow with credit `c`
    /// (and, when it forwarded any, keeps its next hops alive).
    pub fn credit(&self, c: &TunnelCredit, packets: u64, bytes: u64) {
        // The neighbour cache's clock (translation stamps it so too).
        self.credit_at(
            c,
            packets,
            bytes,
            dp_pmd::cycles::monotonic_ns() / 1_000_000,
        );
    }

    /// [`Self::credit`] at `now_ms` on the neighbour cache's clock.
    pub fn credit_at(&self, c: &TunnelCredit, packets: u64, bytes: u64, now_ms: u64) {
        if packets > 0
            && let Some(state) = self.state.get()
        {
            for mac in &c.next_hops {
                state.neigh().refresh_mac(*mac, now_ms);
            }
        }
        let ports = self.ports.load();
        if let Some(p) = c.rx.and_then(|rx| ports.get(&rx)) {
            p.rx_packets.fetch_add(packets, Ordering::Relaxed);
            p.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        for p in c.tx.iter().filter_map(|tx| ports.get(tx)) {
            p.tx_packets.fetch_add(packets, Ordering::Relaxed);
            p.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

impl TunnelNetdev {
    pub fn open(port: &PortSection) -> Result<TunnelNetdev, String> {
        let spec = tunnel_spec(port)?;
        let type_name = match spec.config.kind {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
        };
        Ok(TunnelNetdev {
            name: port.name.clone(),
            type_name,
            spec,
            dropped: Arc::default(),
            counters: Arc::default(),
        })
    }
}

impl Netdev for TunnelNetdev {
    fn name(&self) -> &str {
        &self.name
    }
    fn type_name(&self) -> &'static str {
        self.type_name
    }
    fn info(&self) -> NetdevInfo {
        NetdevInfo {
            n_rxq: 0,
            n_txq: 1,
            mac: [0; 6],
            mtu: 1500,
            capabilities: Capabilities::default(),
        }
    }
    fn link_state(&self) -> LinkState {
        LinkState::Up
    }
    fn is_pmd(&self) -> bool {
        false
    }
    fn stats(&self) -> NetdevStats {
        let c = &self.counters;
        NetdevStats {
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            rx_bytes: c.rx_bytes.load(Ordering::Relaxed),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            tx_bytes: c.tx_bytes.load(Ordering::Relaxed),
            tx_dropped: self.dropped.load(Ordering::Relaxed),
            ..NetdevStats::default()
        }
    }
    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        // Packets reach a tunnel port only through tnl_pop.
        Err(NetdevError::NoSuchQueue {
            port: self.name.clone(),
            qid,
            n_queues: 0,
        })
    }
    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        check_qid(&self.name, qid, 1)?;
        Ok(Box::new(TunnelTxq {
            dropped: self.dropped.clone(),
        }))
    }
}

#[derive(Debug)]
struct TunnelTxq {
    dropped: Arc<AtomicU64>,
}

impl TxQueue for TunnelTxq {
    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome {
        let n = batch.len();
        batch.clear();
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        TxOutcome {
            sent: 0,
            dropped: n,
        }
    }
}

/// rtnetlink: the host's IPv4 and IPv6 routes, addresses and links, and
/// change notifications.
pub mod rtnl {
    use std::collections::HashMap;
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::os::fd::OwnedFd;

    use rustix::net::netlink::SocketAddrNetlink;
    use rustix::net::{
        AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, bind, recv, send, socket_with,
    };

    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;
    const RTM_NEWROUTE: u16 = 24;
    const RTM_GETROUTE: u16 = 26;
    const RTM_NEWADDR: u16 = 20;
    const RTM_GETADDR: u16 = 22;
    const AF_INET6: u8 = 10;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    const IFA_F_TENTATIVE: u8 = 0x40;
    const RT_SCOPE_UNIVERSE: u8 = 0;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_DUMP: u16 = 0x300;
    const AF_INET: u8 = 2;
    const RT_TABLE_MAIN: u32 = 254;
    const RTN_UNICAST: u8 = 1;
    const RTA_DST: u16 = 1;
    const RTA_OIF: u16 = 4;
    const RTA_GATEWAY: u16 = 5;
    const RTA_PREFSRC: u16 = 7;
    const RTA_TABLE: u16 = 15;
    const IFLA_ADDRESS: u16 = 1;
    const IFLA_IFNAME: u16 = 3;
    /// RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE |
    /// RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE.
    const GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

    /// A host route (IPv4 or IPv6, main table, unicast).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct HostRoute {
        pub prefix: IpAddr,
        pub plen: u8,
        pub dev: String,
        pub gateway: Option<IpAddr>,
        pub src: Option<IpAddr>,
    }

    /// An address of the host: on which device, with which prefix
    /// length, of global scope or not.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct HostAddr {
        pub dev: String,
        pub addr: IpAddr,
        pub plen: u8,
        pub global: bool,
    }

    /// A link: index, name, MAC.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Link {
        pub index: u32,
        pub name: String,
        pub mac: Option<[u8; 6]>,
    }

    fn open(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
        let flags = if nonblocking {
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK
        } else {
            SocketFlags::CLOEXEC
        };
        let fd = socket_with(AddressFamily::NETLINK, SocketType::RAW, flags, None)?;
        bind(&fd, &SocketAddrNetlink::new(0, groups))?;
        Ok(fd)
    }

    /// One dump request: `ty` with a zeroed family header of `hdr_len`
    /// bytes whose first byte is `family`.
    fn dump(ty: u16, family: u8, hdr_len: usize) -> io::Result<Vec<(u16, Vec<u8>)>> {
        let fd = open(0, false)?;
        let len = 16 + hdr_len;
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.push(family);
        msg.resize(len, 0);
        send(&fd, &msg, SendFlags::empty())?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, _) = recv(&fd, &mut buf[..], RecvFlags::empty())?;
            let mut pos = 0;
            while pos + 16 <= n {
                let mlen =
                    u32::from_ne_bytes(buf[pos..pos + 4].try_into().expect("4 bytes")) as usize;
                let mty = u16::from_ne_bytes([buf[pos + 4], buf[pos + 5]]);
                if mlen < 16 || pos + mlen > n {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "rtnetlink: truncated message",
                    ));
                }
                match mty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = buf
                            .get(pos + 16..pos + 20)
                            .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                            .unwrap_or(0);
                        return Err(io::Error::from_raw_os_error(errno.saturating_neg()));
                    }
                    _ => out.push((mty, buf[pos + 16..pos + mlen].to_vec())),
                }
                pos += (mlen + 3) & !3;
            }
            if n == 0 {
                return Ok(out);
            }
        }
    }

    /// Attributes after a fixed header of `hdr_len` bytes.
    fn attrs(body: &[u8], hdr_len: usize) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        let mut pos = hdr_len;
        while pos + 4 <= body.len() {
            let len = usize::from(u16::from_ne_bytes([body[pos], body[pos + 1]]));
            let ty = u16::from_ne_bytes([body[pos + 2], body[pos + 3]]) & 0x3fff;
            if len < 4 || pos + len > body.len() {
                break;
            }
            out.push((ty, &body[pos + 4..pos + len]));
            pos += (len + 3) & !3;
        }
        out
    }

    fn ip(b: &[u8]) -> Option<IpAddr> {
        if let Ok(a) = <[u8; 4]>::try_from(b) {
            Some(IpAddr::V4(Ipv4Addr::from(a)))
        } else {
            <[u8; 16]>::try_from(b)
                .ok()
                .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
        }
    }

    fn unspecified(family: u8) -> IpAddr {
        if family == AF_INET6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }
    }

    /// The host's IPv4 and IPv6 addresses, with device names (IPv6
    /// addresses still in duplicate address detection are left out: the
    /// kernel does not use them as a source yet).
    pub fn addresses() -> io::Result<Vec<HostAddr>> {
        let names: HashMap<u32, String> = links()?.into_iter().map(|l| (l.index, l.name)).collect();
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            // struct ifaddrmsg: 8 bytes.
            for (ty, body) in dump(RTM_GETADDR, family, 8)? {
                if ty != RTM_NEWADDR || body.len() < 8 || body[0] != family {
                    continue;
                }
                let (plen, flags, scope) = (body[1], body[2], body[3]);
                let index = u32::from_ne_bytes(body[4..8].try_into().expect("4 bytes"));
                if flags & IFA_F_TENTATIVE != 0 {
                    continue;
                }
                let (mut local, mut address) = (None, None);
                for (aty, val) in attrs(&body, 8) {
                    match aty {
                        IFA_LOCAL => local = ip(val),
                        IFA_ADDRESS => address = ip(val),
                        _ => {}
                    }
                }
                // IFA_LOCAL is the address on point-to-point links.
                if let (Some(addr), Some(dev)) = (local.or(address), names.get(&index)) {
                    out.push(HostAddr {
                        dev: dev.clone(),
                        addr,
                        plen,
                        global: scope == RT_SCOPE_UNIVERSE,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The host's links.
    pub fn links() -> io::Result<Vec<Link>> {
        // struct ifinfomsg: 16 bytes.
        let mut out = Vec::new();
        for (ty, body) in dump(RTM_GETLINK, 0, 16)? {
            if ty != RTM_NEWLINK || body.len() < 16 {
                continue;
            }
            let index = u32::from_ne_bytes(body[4..8].try_into().expect("4 bytes"));
            let mut link = Link {
                index,
                name: String::new(),
                mac: None,
            };
            for (aty, val) in attrs(&body, 16) {
                match aty {
                    IFLA_IFNAME => {
                        let end = val.iter().position(|b| *b == 0).unwrap_or(val.len());
                        link.name = String::from_utf8_lossy(&val[..end]).into_owned();
                    }
                    IFLA_ADDRESS => link.mac = <[u8; 6]>::try_from(val).ok(),
                    _ => {}
                }
            }
            out.push(link);
        }
        Ok(out)
    }

    /// The host's IPv4 and IPv6 unicast routes of the main table, with
    /// device names.
    pub fn routes() -> io::Result<Vec<HostRoute>> {
        let names: HashMap<u32, String> = links()?.into_iter().map(|l| (l.index, l.name)).collect();
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            routes_of(family, &names, &mut out)?;
        }
        Ok(out)
    }

    fn routes_of(
        family: u8,
        names: &HashMap<u32, String>,
        out: &mut Vec<HostRoute>,
    ) -> io::Result<()> {
        // struct rtmsg: 12 bytes.
        for (ty, body) in dump(RTM_GETROUTE, family, 12)? {
            if ty != RTM_NEWROUTE || body.len() < 12 || body[0] != family {
                continue;
            }
            let (plen, mut table, rtype) = (body[1], u32::from(body[4]), body[7]);
            let mut route = HostRoute {
                prefix: unspecified(family),
                plen,
                dev: String::new(),
                gateway: None,
                src: None,
            };
            for (aty, val) in attrs(&body, 12) {
                match aty {
                    RTA_DST => route.prefix = ip(val).unwrap_or(unspecified(family)),
                    RTA_GATEWAY => route.gateway = ip(val),
                    RTA_PREFSRC => route.src = ip(val),
                    RTA_TABLE if val.len() == 4 => {
                        table = u32::from_ne_bytes(val.try_into().expect("4 bytes"))
                    }
                    RTA_OIF if val.len() == 4 => {
                        let index = u32::from_ne_bytes(val.try_into().expect("4 bytes"));
                        route.dev = names.get(&index).cloned().unwrap_or_default();
                    }
                    _ => {}
                }
            }
            if table == RT_TABLE_MAIN && rtype == RTN_UNICAST && !route.dev.is_empty() {
                out.push(route);
            }
        }
        Ok(())
    }

    /// A socket subscribed to link, address and route changes (both
    /// families).
    #[derive(Debug)]
    pub struct Watch {
        fd: OwnedFd,
    }

    impl Watch {
        pub fn open() -> io::Result<Watch> {
            Ok(Watch {
                fd: open(GROUPS, true)?,
            })
        }

        /// True when anything arrived since the last call (drains it). A
        /// lost notification (buffer overrun) also counts as a change.
        pub fn changed(&self) -> bool {
            let mut buf = [0u8; 8192];
            let mut any = false;
            loop {
                match recv(&self.fd, &mut buf[..], RecvFlags::DONTWAIT) {
                    Ok((0, _)) => return any,
                    Ok(_) => any = true,
                    Err(rustix::io::Errno::AGAIN) => return any,
                    Err(rustix::io::Errno::INTR) => {}
                    // ENOBUFS: notifications were lost; re-read everything.
                    Err(_) => return true,
                }
            }
        }
    }
}

/// The daemon's tunnelling state (see the module docs).
#[derive(Debug)]
pub struct Tunnels {
    pub state: Arc<TunnelState>,
    watch: Option<rtnl::Watch>,
    /// Buffers for ARP requests.
    pool: PacketPool,
    /// The daemon's own tx queue per datapath port, for ARP requests.
    txqs: HashMap<u32, Box<dyn TxQueue>>,
    /// Internal ports whose MAC is a source MAC for outer headers.
    internal: Vec<String>,
    /// ARP requests sent (for `tnl/neigh/show`'s footer and tests).
    pub arp_requests_sent: u64,
    /// Tunnel port statistics; the daemon shares this with the bridges,
    /// which credit it.
    pub counters: Arc<TunnelCounters>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels::new()
    }
}

fn route_of(r: rtnl::HostRoute) -> Route {
    Route {
        prefix: r.prefix,
        plen: r.plen,
        dev: r.dev,
        gateway: r.gateway,
        src: r.src,
        origin: RouteOrigin::Cached,
    }
}

/// Gives each host route without a preferred source (IPv6 routes never
/// carry one, IPv4 gateway routes often do not) an address of its device
/// and family, as OVS's router does: one whose subnet holds the gateway
/// (or the route's prefix), else the device's first global address.
fn fill_sources(routes: &mut [rtnl::HostRoute], addrs: &[rtnl::HostAddr]) {
    use ofproto::route::masked;
    for r in routes.iter_mut().filter(|r| r.src.is_none()) {
        let on_dev = || {
            addrs
                .iter()
                .filter(|a| a.dev == r.dev && a.addr.is_ipv6() == r.prefix.is_ipv6())
        };
        let near = r.gateway.unwrap_or(r.prefix);
        r.src = on_dev()
            .find(|a| a.global && masked(a.addr, a.plen) == masked(near, a.plen))
            .or_else(|| on_dev().find(|a| a.global))
            .map(|a| a.addr);
    }
}

impl Tunnels {
    /// Subscribes to host changes and reads the host's routes; failures
    /// are logged (a host without rtnetlink still has static routes).
    pub fn new() -> Tunnels {
        let watch = match rtnl::Watch::open() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("rtnetlink: cannot watch route changes: {e}");
                None
            }
        };
        let t = Tunnels {
            state: Arc::new(TunnelState::new()),
            watch,
            pool: PacketPool::new("tnl-arp", PoolConfig::heap(64)),
            txqs: HashMap::new(),
            internal: Vec::new(),
            arp_requests_sent: 0,
            counters: Arc::default(),
        };
        t.refresh();
        t
    }

    /// Re-reads the host's routes and the MACs of internal ports.
    pub fn refresh(&self) {
        match rtnl::routes() {
            Ok(mut routes) => {
                match rtnl::addresses() {
                    Ok(addrs) => fill_sources(&mut routes, &addrs),
                    Err(e) => tracing::warn!("rtnetlink: cannot read the host's addresses: {e}"),
                }
                let n = routes.len();
                self.state.update_routes(|t| {
                    t.replace_system(routes.into_iter().map(route_of).collect())
                });
                tracing::debug!("rtnetlink: {n} host routes");
            }
            Err(e) => tracing::warn!("rtnetlink: cannot read the host's routes: {e}"),
        }
        if self.internal.is_empty() {
            return;
        }
        if let Ok(links) = rtnl::links() {
            for l in links {
                if let Some(mac) = l.mac
                    && self.internal.contains(&l.name)
                    && self.state.dev_mac(&l.name) != Some(mac)
                {
                    self.state.set_dev_mac(&l.name, mac);
                }
            }
        }
    }

    /// Port `name` (an internal or tap port) can carry a VTEP address:
    /// its MAC is the outer source MAC of tunnels routed through it.
    pub fn add_internal(&mut self, name: &str, mac: [u8; 6]) {
        self.state.set_dev_mac(name, mac);
        if !self.internal.iter().any(|n| n == name) {
            self.internal.push(name.to_string());
        }
    }

    /// Forgets port `port_no`'s tx queue (the port is being removed).
    pub fn forget_port(&mut self, port_no: u32, name: &str) {
        self.txqs.remove(&port_no);
        self.internal.retain(|n| n != name);
    }

    fn changed(&self) -> bool {
        self.watch.as_ref().is_some_and(|w| w.changed())
    }
}

/// The [`TunnelConfig`] of a `vxlan`/`geneve` port (`None` for others).
pub fn port_tunnel_config(port: &PortSection) -> Result<Option<TunnelConfig>, String> {
    if is_tunnel_type(&port.port_type) {
        Ok(Some(tunnel_spec(port)?.config))
    } else {
        Ok(None)
    }
}

/// Wires a port just added to the datapath: a tunnel port becomes one for
/// `tnl_pop`; an internal or tap port can carry a VTEP address.
pub fn attach(
    tunnels: &mut Tunnels,
    datapath: &dp_pmd::datapath::Datapath,
    port_no: u32,
    opened: &crate::drivers::OpenedPort,
) {
    match opened {
        crate::drivers::OpenedPort::Tunnel(t) => {
            let mut rx = t.spec.rx;
            rx.geneve_known = known_options(&tunnels.state, port_no);
            datapath.set_tunnel_port(port_no, Some(rx));
            tunnels.counters.register(port_no, t.counters.clone());
        }
        crate::drivers::OpenedPort::Tap(t) => tunnels.add_internal(t.name(), t.info().mac),
        _ => {}
    }
}

/// The Geneve options the bridge of datapath port `port_no` maps (its
/// tunnel port lets those through `tnl_pop` even when critical).
fn known_options(state: &TunnelState, port_no: u32) -> GeneveKnown {
    state
        .bridges()
        .iter()
        .find(|b| b.ports().by_odp(port_no).is_some())
        .map(|b| state.tlv_map(b.name()).known())
        .unwrap_or(GeneveKnown::NONE)
}

/// Checks a bridge's `tlv_map` entries as one map (config validation):
/// `Err((index, reason))` for the first bad entry.
pub fn check_tlv_map(entries: &[String]) -> Result<(), (usize, String)> {
    let mut map = ofproto::tlv_map::TlvMap::default();
    for (i, text) in entries.iter().enumerate() {
        parse_mappings(text)
            .and_then(|m| map.add(&m))
            .map_err(|e| (i, e))?;
    }
    Ok(())
}

/// Sets each bridge's TLV map from its `tlv_map` config entries (before
/// its ports are attached). Errors name the entry.
pub fn configure_tlv_maps(
    state: &TunnelState,
    bridges: &[crate::config::BridgeSection],
) -> Result<(), String> {
    for b in bridges {
        for (i, text) in b.tlv_map.iter().enumerate() {
            state
                .update_tlv_map(&b.name, |m| m.add(&parse_mappings(text)?))
                .map_err(|e| format!("bridge {}.tlv_map[{i}]: {e}", b.name))?;
        }
    }
    Ok(())
}

/// `reload`: replaces the TLV map of every bridge whose `tlv_map` entries
/// changed (maps changed at run time by `tnl/tlv-map/*` are kept
/// otherwise). Every new map is checked before any is applied, so an
/// error changes nothing; it names the entry.
pub fn reload_tlv_maps(
    d: &Daemon,
    new: &[crate::config::BridgeSection],
    summary: &mut Vec<String>,
) -> Result<(), String> {
    let mut replaced = Vec::new();
    for b in new {
        let old = d.config.bridges.iter().find(|o| o.name == b.name);
        if old.is_some_and(|o| o.tlv_map == b.tlv_map) {
            continue;
        }
        let mut map = ofproto::tlv_map::TlvMap::default();
        for (i, text) in b.tlv_map.iter().enumerate() {
            parse_mappings(text)
                .and_then(|m| map.add(&m))
                .map_err(|e| format!("bridge {}.tlv_map[{i}]: {e}", b.name))?;
        }
        replaced.push((b.name.as_str(), map));
    }
    for (bridge, map) in replaced {
        d.tunnels.state.update_tlv_map(bridge, |m| {
            *m = map;
            Ok(())
        })?;
        push_known_options(d, bridge);
        summary.push(format!("replaced the TLV map of bridge {bridge}"));
    }
    Ok(())
}

/// Tells the datapath what bridge `bridge`'s tunnel ports now know.
fn push_known_options(d: &Daemon, bridge: &str) {
    let known = d.tunnels.state.tlv_map(bridge).known();
    for state in d.ports.values() {
        if let (true, crate::drivers::OpenedPort::Tunnel(t)) =
            (state.bridge == bridge, &state.opened)
        {
            let mut rx = t.spec.rx;
            rx.geneve_known = known;
            d.datapath.set_tunnel_port(state.port_no, Some(rx));
        }
    }
}

fn tlv_bridge(d: &Daemon, name: &str) -> Result<(), String> {
    match d.bridges.bridge(name) {
        Some(_) => Ok(()),
        None => Err(format!("no such bridge: {name}")),
    }
}

/// `tnl/tlv-map/add BRIDGE MAP...`: `ovs-ofctl add-tlv-map` (MAP is
/// `{class=C,type=T,len=L}->tun_metadataN`, several separated by commas
/// or given as more arguments).
pub fn tlv_map_add(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    tlv_bridge(d, &args[0])?;
    let entries = parse_mappings(&args[1..].join(","))?;
    d.tunnels
        .state
        .update_tlv_map(&args[0], |m| m.add(&entries))?;
    push_known_options(d, &args[0]);
    Ok("OK\n".into())
}

/// `tnl/tlv-map/del BRIDGE [MAP...]`: `ovs-ofctl del-tlv-map` (no MAP:
/// the whole table).
pub fn tlv_map_del(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    tlv_bridge(d, &args[0])?;
    if args.len() == 1 {
        d.tunnels.state.update_tlv_map(&args[0], |m| {
            m.clear();
            Ok(())
        })?;
    } else {
        let entries = parse_mappings(&args[1..].join(","))?;
        d.tunnels
            .state
            .update_tlv_map(&args[0], |m| m.remove(&entries))?;
    }
    push_known_options(d, &args[0]);
    Ok("OK\n".into())
}

/// `tnl/tlv-map/show [BRIDGE]`: `ovs-ofctl dump-tlv-map`.
pub fn tlv_map_show(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let names: Vec<String> = match args.first() {
        Some(b) => {
            tlv_bridge(d, b)?;
            vec![b.clone()]
        }
        None => d
            .bridges
            .all()
            .iter()
            .map(|b| b.name().to_string())
            .collect(),
    };
    Ok(names
        .iter()
        .map(|b| d.tunnels.state.tlv_map(b).show(b))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Undoes [`attach`] before the port leaves the datapath.
pub fn detach(
    tunnels: &mut Tunnels,
    datapath: &dp_pmd::datapath::Datapath,
    port_no: u32,
    name: &str,
) {
    datapath.set_tunnel_port(port_no, None);
    tunnels.counters.unregister(port_no);
    tunnels.forget_port(port_no, name);
}

fn outputs(actions: &[Action], out: &mut Vec<u32>) {
    for a in actions {
        match a {
            Action::Output(p) => out.push(*p),
            Action::Clone(inner) => outputs(inner, out),
            _ => {}
        }
    }
}

/// The periodic task: follow host route changes, age neighbours, send
/// the ARP requests and Neighbor Solicitations translation asked for.
pub fn run(d: &mut Daemon) {
    // The datapath's clock: translations (snooping, misses) stamp the
    // neighbour cache with it.
    let now = dp_pmd::cycles::monotonic_ns() / 1_000_000;
    if d.tunnels.changed() {
        d.tunnels.refresh();
    }
    d.tunnels.state.neigh().expire(now);
    for req in d.tunnels.state.neigh().take_due_requests(now) {
        if let Err(e) = send_arp_request(d, &req, now) {
            tracing::warn!(
                "tunnel: neighbour request for {} via {}: {e}",
                req.target,
                req.dev
            );
        }
    }
}

fn send_arp_request(d: &mut Daemon, req: &Solicit, now: u64) -> Result<(), String> {
    let state = d
        .ports
        .get(&req.dev)
        .ok_or_else(|| format!("no port {}", req.dev))?;
    let bridge = d
        .bridges
        .bridge(&state.bridge)
        .ok_or_else(|| format!("no bridge {}", state.bridge))?;
    let frame = req.frame();
    let mut key = FlowKey::ZERO;
    let meta = dp_core::packet::PacketMetadata {
        in_port: state.port_no,
        ..Default::default()
    };
    extract_frame(&frame, &meta, &mut key);
    let t = bridge.translate_readonly(&key, now);
    let mut ports = Vec::new();
    outputs(&t.actions, &mut ports);
    if ports.is_empty() {
        return Err(format!(
            "bridge {} sends it nowhere (rules for in_port={})",
            bridge.name(),
            req.dev
        ));
    }
    for port_no in ports {
        if !d.tunnels.txqs.contains_key(&port_no) {
            let netdev = d
                .datapath
                .ports()
                .find(|(n, _, _)| *n == port_no)
                .map(|(_, _, nd)| nd.clone())
                .ok_or_else(|| format!("datapath port {port_no} is gone"))?;
            let txq = netdev.open_txq(0).map_err(|e| e.to_string())?;
            d.tunnels.txqs.insert(port_no, txq);
        }
        let packet = d
            .tunnels
            .pool
            .alloc_from(&frame)
            .ok_or("no buffer for a neighbour request")?;
        let mut batch = PacketBatch::new();
        let _ = batch.push(packet);
        let txq = d.tunnels.txqs.get_mut(&port_no).expect("opened above");
        let outcome = txq.send(&mut batch);
        if outcome.sent > 0 {
            d.tunnels.arp_requests_sent += 1;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- commands

/// `tnl/ports/show`: every tunnel port with its configuration.
pub fn ports_show(d: &mut Daemon, _args: &[String]) -> Result<String, String> {
    let mut s = String::from("Listening ports:\n");
    for (name, p) in &d.ports {
        let crate::drivers::OpenedPort::Tunnel(t) = &p.opened else {
            continue;
        };
        let c = &t.spec.config;
        let listen = if c.kind == TunnelKind::Gre {
            "ip proto 47".to_string()
        } else {
            c.dst_port.to_string()
        };
        let _ = write!(
            s,
            "{name} ({listen}) type={} bridge={} remote_ip=",
            t.type_name(),
            p.bridge
        );
        if c.remote_from_flow {
            s.push_str("flow");
        } else {
            let _ = write!(s, "{}", c.remote_ip);
        }
        if !c.local_ip.is_unspecified() {
            let _ = write!(s, " local_ip={}", c.local_ip);
        }
        match c.key {
            TunnelKey::Fixed(k) => {
                let _ = write!(s, " key={k}");
            }
            TunnelKey::Flow => s.push_str(" key=flow"),
        }
        let _ = writeln!(
            s,
            " csum={} ttl={} tos={:#x} dp_port={}",
            c.csum || (c.csum_default && c.remote_ip.is_ipv6() && c.kind != TunnelKind::Gre),
            c.ttl,
            c.tos,
            p.port_no
        );
    }
    Ok(s)
}

/// `tnl/neigh/show`.
pub fn neigh_show(d: &mut Daemon, _args: &[String]) -> Result<String, String> {
    Ok(d.tunnels
        .state
        .neigh()
        .show(dp_pmd::cycles::monotonic_ns() / 1_000_000))
}

/// `tnl/neigh/flush`.
pub fn neigh_flush(d: &mut Daemon, _args: &[String]) -> Result<String, String> {
    d.tunnels.state.neigh().flush();
    Ok("OK\n".into())
}

/// `tnl/neigh/set BRIDGE IP MAC`: a static entry.
pub fn neigh_set(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    if d.bridges.bridge(&args[0]).is_none() {
        return Err(format!("no such bridge: {}", args[0]));
    }
    let ip: IpAddr = args[1]
        .parse()
        .map_err(|_| format!("IP: \"{}\" is not an IPv4 or IPv6 address", args[1]))?;
    let mac = crate::config::parse_mac(&args[2]).map_err(|e| format!("MAC: {e}"))?;
    d.tunnels.state.neigh().set_static(ip, mac, &args[0]);
    Ok("OK\n".into())
}

/// `ovs/route/show`.
pub fn route_show(d: &mut Daemon, _args: &[String]) -> Result<String, String> {
    Ok(d.tunnels.state.routes().show())
}

/// `ovs/route/add IP/PLEN DEV [GW] [src=IP]` (IPv4 or IPv6; the gateway
/// and source must be of the prefix's family).
pub fn route_add(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let (prefix, plen) = parse_prefix(&args[0]).map_err(|e| format!("IP/PLEN: {e}"))?;
    let dev = args[1].clone();
    if !d.ports.contains_key(&dev) {
        return Err(format!("output device: no port named {dev}"));
    }
    let mut gateway = None;
    let mut src = None;
    let family = if prefix.is_ipv6() { "IPv6" } else { "IPv4" };
    let same_family = |what: &str, text: &str| -> Result<IpAddr, String> {
        text.parse::<IpAddr>()
            .ok()
            .filter(|ip| ip.is_ipv6() == prefix.is_ipv6())
            .ok_or_else(|| format!("{what}: \"{text}\" is not an {family} address"))
    };
    for a in &args[2..] {
        if let Some(v) = a.strip_prefix("src=") {
            src = Some(same_family("src", v)?);
        } else if a.starts_with("pkt_mark=") {
            return Err("pkt_mark: policy routing by mark is not supported".into());
        } else {
            gateway = Some(same_family("GW", a)?);
        }
    }
    if src.is_none() {
        // As OVS: the source of a host route of the family that reaches
        // the device.
        src = d
            .tunnels
            .state
            .routes()
            .iter()
            .filter_map(|r| r.src.filter(|_| r.dev == dev))
            .find(|s| s.is_ipv6() == prefix.is_ipv6());
    }
    d.tunnels.state.update_routes(|t| {
        t.insert(Route {
            prefix,
            plen,
            dev,
            gateway,
            src,
            origin: RouteOrigin::User,
        })
    });
    Ok("OK\n".into())
}

/// `ovs/route/del IP/PLEN`.
pub fn route_del(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let (prefix, plen) = parse_prefix(&args[0]).map_err(|e| format!("IP/PLEN: {e}"))?;
    if d.tunnels
        .state
        .update_routes(|t| t.remove_user(prefix, plen))
    {
        Ok("OK\n".into())
    } else {
        Err(format!("Not found: no user route {prefix}/{plen}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn port(ty: &str, opts: &[(&str, toml::Value)]) -> PortSection {
        PortSection {
            name: "vx0".into(),
            port_type: ty.into(),
            ofport: None,
            n_rxq: 1,
            n_txq: 1,
            pmd_rxq_affinity: None,
            mtu: None,
            mac: None,
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn s(v: &str) -> toml::Value {
        toml::Value::String(v.into())
    }

    #[test]
    fn options_as_ovs_names_them() {
        let spec = tunnel_spec(&port(
            "geneve",
            &[
                ("remote_ip", s("172.31.0.2")),
                ("key", toml::Value::Integer(5000)),
                ("csum", toml::Value::Boolean(true)),
                ("ttl", s("9")),
            ],
        ))
        .unwrap();
        assert_eq!(spec.config.kind, TunnelKind::Geneve);
        assert_eq!(spec.config.dst_port, 6081);
        assert_eq!(spec.config.key, TunnelKey::Fixed(5000));
        assert_eq!((spec.config.csum, spec.config.ttl), (true, 9));
        assert_eq!(spec.rx.key, Some(5000));
        assert!(spec.rx.csum_required);

        let spec = tunnel_spec(&port(
            "vxlan",
            &[("remote_ip", s("flow")), ("tun_id", s("flow"))],
        ))
        .unwrap();
        assert!(spec.config.remote_from_flow);
        assert_eq!((spec.config.key, spec.rx.key), (TunnelKey::Flow, None));

        let err = |opts: &[(&str, toml::Value)]| tunnel_spec(&port("vxlan", opts)).unwrap_err();
        assert!(err(&[]).contains("\"remote_ip\" is required"));
        assert!(err(&[("remote_ip", s("1.2.3"))]).contains("remote_ip"));
        assert!(err(&[("remote_ip", s("1.2.3.4")), ("key", s("16777216"))]).contains("\"key\""));
        assert!(err(&[("remote_ip", s("1.2.3.4")), ("bogus", s("1"))]).contains("\"bogus\""));
        assert!(err(&[("remote_ip", s("1.2.3.4")), ("csum", s("yes"))]).contains("csum"));
    }

    #[test]
    fn ipv6_underlay_options() {
        let spec = tunnel_spec(&port(
            "vxlan",
            &[
                ("remote_ip", s("2001:db8::2")),
                ("local_ip", s("2001:db8::1")),
            ],
        ))
        .unwrap();
        assert_eq!(
            spec.config.remote_ip,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            spec.config.local_ip,
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert!(
            spec.config.udp_csum(),
            "IPv6: checksummed unless csum=false"
        );
        assert!(
            !spec.rx.csum_required,
            "receive accepts a zero checksum, as OVS"
        );
        let off = tunnel_spec(&port(
            "geneve",
            &[("remote_ip", s("2001:db8::2")), ("csum", s("false"))],
        ))
        .unwrap();
        assert!(!off.config.udp_csum());
        let v4 = tunnel_spec(&port("vxlan", &[("remote_ip", s("172.31.0.2"))])).unwrap();
        assert!(!v4.config.udp_csum(), "IPv4: off by default");
        let err = |opts: &[(&str, toml::Value)]| tunnel_spec(&port("vxlan", opts)).unwrap_err();
        let e = err(&[("remote_ip", s("2001:db8::2")), ("local_ip", s("10.0.0.1"))]);
        assert!(
            e.contains("local_ip") && e.contains("different address families"),
            "{e}"
        );
        assert!(err(&[("remote_ip", s("ff02::1"))]).contains("not a unicast address"));
        assert!(err(&[("remote_ip", s("2001:db8::g"))]).contains("\"remote_ip\""));
    }

    #[test]
    fn host_routes_without_a_source_take_their_device_address() {
        let a = |dev: &str, addr: &str, plen, global| rtnl::HostAddr {
            dev: dev.into(),
            addr: addr.parse().unwrap(),
            plen,
            global,
        };
        let addrs = [
            a("br0", "fe80::1", 64, false),
            a("br0", "2001:db8:1::1", 64, true),
            a("br0", "2001:db8:2::1", 64, true),
            a("br0", "172.31.0.1", 24, true),
            a("eth0", "2001:db8:9::1", 64, true),
        ];
        let r = |prefix: &str, plen, gw: Option<&str>| rtnl::HostRoute {
            prefix: prefix.parse().unwrap(),
            plen,
            dev: "br0".into(),
            gateway: gw.map(|g| g.parse().unwrap()),
            src: None,
        };
        let mut routes = vec![
            r("2001:db8:2::", 64, None),
            r("::", 0, Some("2001:db8:2::fe")),
            r("2001:db8:7::", 64, None),
            r("0.0.0.0", 0, Some("172.31.0.254")),
        ];
        fill_sources(&mut routes, &addrs);
        let srcs: Vec<String> = routes.iter().map(|r| r.src.unwrap().to_string()).collect();
        assert_eq!(
            srcs,
            [
                "2001:db8:2::1",
                "2001:db8:2::1",
                "2001:db8:1::1",
                "172.31.0.1"
            ],
            "the subnet's address, else the device's first global one of the family"
        );
    }

    #[test]
    fn tunnel_ports_are_credited_from_megaflow_stats() {
        use dp_core::action::{TnlPush, vport_type};
        let counters = TunnelCounters::default();
        let (vx, gnv) = (
            Arc::new(PortCounters::default()),
            Arc::new(PortCounters::default()),
        );
        counters.register(4789, vx.clone());
        counters.register(6081, gnv.clone());
        let push = |tnl_port| {
            Action::TnlPush(TnlPush {
                tnl_port,
                out_port: 1,
                tnl_type: vport_type::VXLAN,
                header: Vec::new(),
            })
        };
        // Not a tunnel flow: nothing to credit.
        assert_eq!(counters.credit_for(1, &[Action::Output(2)]), None);
        // A flood out of both tunnels (and an unregistered port number).
        let flood = [
            Action::Clone(vec![push(4789), Action::Output(1)]),
            Action::Clone(vec![push(6081), Action::Output(1)]),
            Action::Clone(vec![push(9999), Action::Output(1)]),
        ];
        let c = counters.credit_for(1, &flood).expect("tunnel flow");
        counters.credit(&c, 3, 300);
        // Decapsulated packets arriving on the VXLAN port, sent back out.
        let back = counters
            .credit_for(4789, &[Action::Output(2)])
            .expect("rx flow");
        counters.credit(&back, 2, 120);
        let stats = |p: &PortCounters| {
            [&p.rx_packets, &p.rx_bytes, &p.tx_packets, &p.tx_bytes]
                .map(|c| c.load(Ordering::Relaxed))
        };
        assert_eq!(stats(&vx), [2, 120, 3, 300]);
        assert_eq!(stats(&gnv), [0, 0, 3, 300]);
        // The port's netdev reports them (dpctl/show -s, metrics).
        let mut netdev =
            TunnelNetdev::open(&port("vxlan", &[("remote_ip", s("10.0.0.2"))])).unwrap();
        netdev.counters = vx.clone();
        let st = netdev.stats();
        assert_eq!(
            (st.rx_packets, st.rx_bytes, st.tx_packets, st.tx_bytes),
            (2, 120, 3, 300)
        );
        // A removed port counts no more.
        counters.unregister(6081);
        counters.credit(&c, 1, 100);
        assert_eq!(stats(&gnv), [0, 0, 3, 300]);
        assert_eq!(stats(&vx)[2], 4);
    }

    /// Registrations racing on several threads: a thread's port, once
    /// registered, is credited (the "any tunnel port" flag is never left
    /// false over a registered port), and when all are gone, none is.
    #[test]
    fn racing_registrations_leave_the_any_ports_flag_right() {
        let counters = Arc::new(TunnelCounters::default());
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    let port = 100 + t;
                    let mut missed = 0;
                    for _ in 0..3000 {
                        counters.register(port, Arc::new(PortCounters::default()));
                        if counters.credit_for(port, &[Action::Output(2)]).is_none() {
                            missed += 1;
                        }
                        counters.unregister(port);
                    }
                    missed
                })
            })
            .collect();
        let missed: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(missed, 0, "registered ports not credited");
        assert!(!counters.any_ports.load(Ordering::Relaxed));
        assert_eq!(counters.credit_for(100, &[Action::Output(2)]), None);
    }

    #[test]
    fn forwarding_megaflows_keep_their_next_hop_alive() {
        use dp_core::action::{TnlPush, vport_type};
        use ofproto::neigh::{NEIGH_IDLE_MS, Solicit};
        let state = Arc::new(TunnelState::new());
        let counters = TunnelCounters::default();
        counters.keep_alive(state.clone());
        counters.register(4789, Arc::new(PortCounters::default()));
        let peer: IpAddr = "2001:db8::2".parse().unwrap();
        let mac = [2, 0, 0, 0, 0, 0xb];
        // Learned at 1000: it expires at 1000 + NEIGH_IDLE_MS unless
        // refreshed.
        let learned = 1000;
        let now = learned + NEIGH_IDLE_MS - 50;
        state.neigh().want(
            Solicit {
                target: peer,
                dev: "br0".into(),
                src: "2001:db8::1".parse().unwrap(),
                src_mac: [2, 0, 0, 0, 0, 0xa],
            },
            learned,
        );
        assert!(state.neigh().snoop(peer, mac, "br0", learned));
        let mut header = mac.to_vec();
        header.extend_from_slice(&[0; 44]);
        let push = Action::TnlPush(TnlPush {
            tnl_port: 4789,
            out_port: 1,
            tnl_type: vport_type::VXLAN,
            header,
        });
        let c = counters
            .credit_for(1, &[Action::Clone(vec![push, Action::Output(1)])])
            .unwrap();
        // A sample without new packets refreshes nothing.
        counters.credit_at(&c, 0, 0, now);
        assert_eq!(state.neigh().lookup(peer, now + 100), None, "aged out");
        counters.credit_at(&c, 5, 500, now);
        assert_eq!(
            state.neigh().lookup(peer, now + 100),
            Some(mac),
            "traffic kept it"
        );
    }
}
