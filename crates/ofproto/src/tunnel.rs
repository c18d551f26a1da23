//! Native tunnelling in the slow path: the outer headers for `tnl_push`
//! (Ethernet + IPv4 or IPv6 + UDP + VXLAN/Geneve, or GRE, built once per
//! translation from
//! the tunnel port's configuration and the resolved underlay) and the
//! state that resolves the underlay, [`TunnelState`]: the route table and
//! the neighbour cache, shared by every bridge of a daemon.
//!
//! Per dp-core's `TnlPush` contract the IPv4 total length and checksum,
//! the IPv6 payload length and the UDP length, source port and checksum
//! are left zero: the executor fills them per packet (the UDP source port
//! from the packet hash, as OVS does for entropy). A non-zero UDP checksum
//! field in the header asks the executor to compute the checksum: with
//! `csum=true`, and by default over IPv6 (see
//! [`TunnelConfig::udp_csum`]: a zero UDP checksum over IPv6 is only
//! allowed where both ends opt in, RFC 6935, and OVS sends one by
//! default). The IPv6 header has flow label 0 and no extension headers.
//!
//! # Threads
//! [`TunnelState`] is read by translation on PMD/handler threads and
//! written by the control thread (route changes, commands) and by
//! translation (ARP snooping, solicitations). The route table sits behind
//! a read-write lock taken for one lookup; the neighbour cache has its own
//! mutex. [`TunnelState::seq`] moves on every change either makes, and is
//! part of the bridges' version, so megaflows built on an old answer are
//! revalidated.

use crate::neigh::NeighCache;
use crate::ports::{TunnelConfig, TunnelKind};
use crate::route::{RouteResult, RouteTable};
use crate::tlv_map::TlvMap;
use dp_core::action::{TnlPush, vport_type};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

/// Route table, neighbour cache and device addresses for native
/// tunnelling (see the module docs).
#[derive(Debug, Default)]
pub struct TunnelState {
    routes: RwLock<RouteTable>,
    neigh: NeighCache,
    /// MAC address of each port that can be a route's output device.
    dev_macs: RwLock<HashMap<String, [u8; 6]>>,
    /// Every bridge using this state: a route may leave by another
    /// bridge's port (OVS's br-int + br-phy), and a packet terminated on
    /// one bridge may belong to another's tunnel port.
    bridges: RwLock<Vec<Weak<crate::Ofproto>>>,
    /// Each bridge's Geneve TLV map (`tnl/tlv-map/*`), by bridge name.
    tlv_maps: RwLock<HashMap<String, Arc<TlvMap>>>,
    /// Set (for good) once any bridge has had a TLV map: until then a
    /// translation needs neither the map's lock nor a refcount.
    any_tlv_map: AtomicBool,
    seq: AtomicU64,
}

impl TunnelState {
    pub fn new() -> TunnelState {
        TunnelState::default()
    }

    /// Moves on every route, device or neighbour change.
    pub fn seq(&self) -> u64 {
        self.seq
            .load(Ordering::Acquire)
            .wrapping_add(self.neigh.seq() << 32)
    }

    pub fn neigh(&self) -> &NeighCache {
        &self.neigh
    }

    /// Runs `f` on the route table for a change, then moves the sequence.
    pub fn update_routes<R>(&self, f: impl FnOnce(&mut RouteTable) -> R) -> R {
        let r = {
            let mut t = self.routes.write().unwrap_or_else(|e| e.into_inner());
            f(&mut t)
        };
        self.seq.fetch_add(1, Ordering::Release);
        r
    }

    /// A copy of the route table.
    pub fn routes(&self) -> RouteTable {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Longest-prefix match.
    pub fn route(&self, dst: IpAddr) -> Option<RouteResult> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(dst)
    }

    /// True when `ip` is a source address of some route (an address of
    /// this host), so ARP replies and Neighbor Advertisements to it are
    /// worth learning from, and tunnel packets to it are terminated.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|r| r.src == Some(ip))
    }

    /// Sets the MAC address of port `dev` (used as the outer source MAC).
    pub fn set_dev_mac(&self, dev: &str, mac: [u8; 6]) {
        self.dev_macs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dev.to_string(), mac);
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// Makes `bridge` reachable from the others' translations (call after
    /// [`crate::Ofproto::set_tunnel_state`]).
    pub fn register_bridge(&self, bridge: &Arc<crate::Ofproto>) {
        self.bridges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(bridge));
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// The registered bridges still alive.
    pub fn bridges(&self) -> Vec<Arc<crate::Ofproto>> {
        self.bridges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Bridge `bridge`'s TLV map (empty when none was set).
    pub fn tlv_map(&self, bridge: &str) -> Arc<TlvMap> {
        self.tlv_maps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(bridge)
            .cloned()
            .unwrap_or_else(TlvMap::shared_empty)
    }

    /// Bridge `bridge`'s TLV map when any bridge has ever had one; `None`
    /// means empty (one atomic load, no lock: every translation asks).
    pub fn tlv_map_if_any(&self, bridge: &str) -> Option<Arc<TlvMap>> {
        self.any_tlv_map
            .load(Ordering::Acquire)
            .then(|| self.tlv_map(bridge))
    }

    /// Changes bridge `bridge`'s TLV map through `f` (nothing changes
    /// when `f` fails), then moves the sequence so megaflows that decoded
    /// options under the old map are revalidated.
    pub fn update_tlv_map<R>(
        &self,
        bridge: &str,
        f: impl FnOnce(&mut TlvMap) -> Result<R, String>,
    ) -> Result<R, String> {
        let mut maps = self.tlv_maps.write().unwrap_or_else(|e| e.into_inner());
        let mut map = maps.get(bridge).map(|m| (**m).clone()).unwrap_or_default();
        let r = f(&mut map)?;
        maps.insert(bridge.to_string(), Arc::new(map));
        self.any_tlv_map.store(true, Ordering::Release);
        drop(maps);
        self.seq.fetch_add(1, Ordering::Release);
        Ok(r)
    }

    pub fn dev_mac(&self, dev: &str) -> Option<[u8; 6]> {
        self.dev_macs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dev)
            .copied()
    }
}

/// Builds the `tnl_push` for sending through `cfg` with key `vni` (no
/// Geneve options).
pub fn build_push(cfg: &TunnelConfig, tnl_port: u32, vni: u64) -> TnlPush {
    build_push_opts(cfg, tnl_port, vni, &[])
}

/// [`build_push`] with Geneve option TLVs `geneve_opts` (a multiple of 4
/// bytes, at most 252; ignored for VXLAN and GRE).
pub fn build_push_opts(cfg: &TunnelConfig, tnl_port: u32, vni: u64, geneve_opts: &[u8]) -> TnlPush {
    let mut h = Vec::with_capacity(70);
    h.extend_from_slice(&cfg.next_hop_mac);
    h.extend_from_slice(&cfg.local_mac);
    let proto = if cfg.kind == TunnelKind::Gre { 47 } else { 17 };
    match cfg.remote_ip {
        IpAddr::V4(remote) => {
            h.extend_from_slice(&0x0800u16.to_be_bytes());
            // IPv4, no options, don't fragment.
            h.extend_from_slice(&[0x45, cfg.tos, 0, 0, 0, 0, 0x40, 0x00, cfg.ttl, proto, 0, 0]);
            let local = match cfg.local_ip {
                IpAddr::V4(l) => l.octets(),
                IpAddr::V6(_) => [0; 4],
            };
            h.extend_from_slice(&local);
            h.extend_from_slice(&remote.octets());
        }
        IpAddr::V6(remote) => {
            h.extend_from_slice(&0x86ddu16.to_be_bytes());
            // Version 6, traffic class `tos`, flow label 0; the payload
            // length is the executor's; hop limit `ttl`.
            let word = (6u32 << 28) | (u32::from(cfg.tos) << 20);
            h.extend_from_slice(&word.to_be_bytes());
            h.extend_from_slice(&[0, 0, proto, cfg.ttl]);
            let local = match cfg.local_ip {
                IpAddr::V6(l) => l.octets(),
                IpAddr::V4(_) => [0; 16],
            };
            h.extend_from_slice(&local);
            h.extend_from_slice(&remote.octets());
        }
    }
    if cfg.kind == TunnelKind::Gre {
        // Key present (K), checksum (C) when asked; Transparent Ethernet
        // Bridging; the executor fills the checksum.
        let flags: u16 = 0x2000 | if cfg.gre_csum() { 0x8000 } else { 0 };
        h.extend_from_slice(&flags.to_be_bytes());
        h.extend_from_slice(&0x6558u16.to_be_bytes());
        if cfg.gre_csum() {
            h.extend_from_slice(&[0; 4]);
        }
        h.extend_from_slice(&(vni as u32).to_be_bytes());
        return TnlPush {
            tnl_port,
            out_port: cfg.underlay_odp_port,
            tnl_type: vport_type::GRE,
            header: h,
        };
    }
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&cfg.dst_port.to_be_bytes());
    // Length; checksum: any non-zero value asks the executor for one.
    let csum = if cfg.udp_csum() { 0xffff_u16 } else { 0 };
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&csum.to_be_bytes());
    let vni_field = ((vni as u32) & 0x00ff_ffff) << 8;
    let tnl_type = match cfg.kind {
        TunnelKind::Vxlan => {
            // Flags word: "VNI present".
            h.extend_from_slice(&0x0800_0000u32.to_be_bytes());
            h.extend_from_slice(&vni_field.to_be_bytes());
            vport_type::VXLAN
        }
        TunnelKind::Geneve => {
            // Version 0, options length in 4-byte words, critical bit when
            // an option is, protocol Transparent Ethernet Bridging.
            let opt_words = (geneve_opts.len() / 4).min(0x3f);
            let opts = &geneve_opts[..opt_words * 4];
            let critical = opts_have_critical(opts);
            h.extend_from_slice(&[opt_words as u8, if critical { 0x40 } else { 0 }, 0x65, 0x58]);
            h.extend_from_slice(&vni_field.to_be_bytes());
            h.extend_from_slice(opts);
            vport_type::GENEVE
        }
        TunnelKind::Gre => unreachable!("GRE returned above"),
    };
    TnlPush {
        tnl_port,
        out_port: cfg.underlay_odp_port,
        tnl_type,
        header: h,
    }
}

/// True when an option TLV list holds a critical option (type bit 7):
/// RFC 8926's C bit in the Geneve header says so.
fn opts_have_critical(opts: &[u8]) -> bool {
    let mut pos = 0;
    while pos + 4 <= opts.len() {
        if opts[pos + 2] & 0x80 != 0 {
            return true;
        }
        pos += 4 + usize::from(opts[pos + 3] & 0x1f) * 4;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odp_actions::format_odp_actions;
    use dp_core::action::Action;

    #[test]
    fn vxlan_header_formats_like_ovs() {
        let mut cfg = TunnelConfig::vxlan([1, 1, 1, 1], [2, 2, 2, 2], 1);
        cfg.local_mac = [0xaa, 0x55, 0xaa, 0x55, 0, 0];
        cfg.next_hop_mac = [0, 0x0b, 0, 0, 0, 2];
        let p = build_push(&cfg, 4, 123);
        assert_eq!(p.header.len(), 50);
        assert_eq!(
            format_odp_actions(&[Action::TnlPush(p)]),
            "tnl_push(tnl_port(4),header(size=50,type=4,eth(dst=00:0b:00:00:00:02,src=aa:55:aa:55:00:00,dl_type=0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x7b)),out_port(1))"
        );
    }

    #[test]
    fn gre_and_checksummed_headers() {
        let mut cfg = TunnelConfig::gre([1, 1, 1, 1], [2, 2, 2, 2], 1);
        let p = build_push(&cfg, 4, 123);
        assert_eq!(p.header.len(), 42, "14 + 20 + GRE with key");
        assert_eq!(p.tnl_type, vport_type::GRE);
        assert_eq!(&p.header[23..24], &[47]);
        assert_eq!(&p.header[34..], &[0x20, 0, 0x65, 0x58, 0, 0, 0, 123]);
        cfg.csum = true;
        let p = build_push(&cfg, 4, 123);
        assert_eq!(&p.header[34..38], &[0xa0, 0, 0x65, 0x58]);
        assert_eq!(p.header.len(), 46);
        // The executor accepts both.
        assert!(dp_core::execute::PushPlan::new(&p).is_ok());
        let mut udp = TunnelConfig::geneve([1, 1, 1, 1], [2, 2, 2, 2], 1);
        assert_eq!(
            &build_push(&udp, 4, 1).header[40..42],
            &[0, 0],
            "IPv4 default: off"
        );
        udp.csum = true;
        let p = build_push(&udp, 4, 1);
        assert_eq!(&p.header[40..42], &[0xff, 0xff], "csum on: non-zero field");
        assert!(dp_core::execute::PushPlan::new(&p).is_ok());
    }

    fn v6(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_vxlan_header_formats_like_ovs_and_checksums_by_default() {
        let mut cfg = TunnelConfig::vxlan(v6("2001:db8::1"), v6("2001:db8::2"), 1);
        cfg.local_mac = [0xaa, 0x55, 0xaa, 0x55, 0, 0];
        cfg.next_hop_mac = [0, 0x0b, 0, 0, 0, 2];
        cfg.tos = 0x10;
        let p = build_push(&cfg, 4, 123);
        assert_eq!(p.header.len(), 70, "14 + 40 + 8 + 8");
        assert_eq!(
            format_odp_actions(&[Action::TnlPush(p.clone())]),
            "tnl_push(tnl_port(4),header(size=70,type=4,eth(dst=00:0b:00:00:00:02,src=aa:55:aa:55:00:00,dl_type=0x86dd),ipv6(src=2001:db8::1,dst=2001:db8::2,label=0,proto=17,tclass=0x10,hlimit=64),udp(src=0,dst=4789,csum=0xffff),vxlan(flags=0x8000000,vni=0x7b)),out_port(1))"
        );
        assert!(dp_core::execute::PushPlan::new(&p).is_ok());
        // Explicitly off: no checksum even over IPv6.
        cfg.csum_default = false;
        let p = build_push(&cfg, 4, 123);
        assert_eq!(&p.header[60..62], &[0, 0]);
        // Geneve and GRE over IPv6.
        let g = build_push(
            &TunnelConfig::geneve(v6("2001:db8::1"), v6("2001:db8::2"), 1),
            4,
            5,
        );
        assert_eq!((g.header.len(), &g.header[12..14]), (70, &[0x86, 0xdd][..]));
        assert_eq!(&g.header[60..62], &[0xff, 0xff]);
        let gre = build_push(
            &TunnelConfig::gre(v6("2001:db8::1"), v6("2001:db8::2"), 1),
            4,
            5,
        );
        assert_eq!(gre.header.len(), 62, "14 + 40 + GRE with key");
        assert_eq!(gre.header[20], 47, "next header GRE");
        assert_eq!(
            &gre.header[54..58],
            &[0x20, 0, 0x65, 0x58],
            "no GRE checksum by default"
        );
        assert!(dp_core::execute::PushPlan::new(&gre).is_ok());
    }
}
