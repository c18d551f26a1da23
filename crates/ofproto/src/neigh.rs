//! The neighbour (ARP and ND) cache of native tunnelling: which MAC
//! address an underlay next hop has (OVS `lib/tnl-neigh-cache.c`), for
//! IPv4 and IPv6 next hops.
//!
//! # How it works
//! Entries are learned by snooping ARP replies and IPv6 Neighbor
//! Advertisements that translation sees on any bridge
//! ([`NeighCache::snoop`]), or set by hand (static entries
//! never age). Only a reply for an address the cache already holds or is
//! soliciting is learned: any underlay host can send replies for any
//! sender address, and learning those would let it grow the cache without
//! bound (unsolicited ones are counted, [`NeighCache::unsolicited`]).
//! Together with [`MAX_WANTED`] this bounds the cache by what routes and
//! `remote_ip=flow` rules actually ask for. A lookup that misses records a *solicitation*: the daemon
//! collects the due ones ([`NeighCache::take_due_requests`]) and sends an
//! ARP request (IPv4) or a Neighbor Solicitation to the target's
//! solicited-node multicast address (IPv6) out of the route's device, at
//! most once a second per address, until a reply is snooped. Learned
//! entries age out after [`NEIGH_IDLE_MS`] (OVS's 15 minutes) unless
//! traffic keeps them alive: a translation's lookup does not refresh them,
//! but installed megaflows that send to an entry's MAC do
//! ([`NeighCache::refresh_mac`], called as their statistics grow, as OVS's
//! xlate cache refreshes the entries its megaflows used), so a busy tunnel
//! never loses its next hop.
//!
//! Every change that could alter a translation (new entry, new MAC,
//! flush, expiry) moves [`NeighCache::seq`], so megaflows built on an old
//! answer (including the drops installed while unresolved) are
//! revalidated.
//!
//! # Threads
//! Called from translation on PMD/handler threads and from the control
//! thread: one mutex over a small map, taken once per upcall at most.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long a learned entry lives without being seen again.
pub const NEIGH_IDLE_MS: u64 = 15 * 60 * 1000;
/// Least time between two ARP requests (or NS) for one address.
pub const SOLICIT_INTERVAL_MS: u64 = 1000;
/// A wanted address nobody asked for again in this long is given up (no
/// more requests until traffic asks again).
pub const SOLICIT_GIVE_UP_MS: u64 = 5000;
/// Most addresses waiting for an answer at once (`remote_ip=flow` could
/// otherwise ask for any number).
pub const MAX_WANTED: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    mac: [u8; 6],
    /// The bridge it was learned on (or set for).
    bridge: String,
    expires_ms: Option<u64>,
}

/// An ARP request or Neighbor Solicitation the daemon should send
/// (`target` and `src` are of one family).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solicit {
    pub target: IpAddr,
    /// The route's output device (a port name).
    pub dev: String,
    /// The sender address to put in the request.
    pub src: IpAddr,
    /// The sender MAC (the device's).
    pub src_mac: [u8; 6],
}

impl Solicit {
    /// The request on the wire: an ARP request broadcast for an IPv4
    /// target; for an IPv6 one a Neighbor Solicitation (RFC 4861 4.3) to
    /// the target's solicited-node multicast address `ff02::1:ffXX:XXXX`
    /// and its MAC `33:33:ff:XX:XX:XX`, hop limit 255, with a source
    /// link-layer address option, as OVS's `compose_nd_ns`. Padded to
    /// the 60-byte Ethernet minimum.
    pub fn frame(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(86);
        match (self.target, self.src) {
            (IpAddr::V6(target), src) => {
                let src = match src {
                    IpAddr::V6(s) => s.octets(),
                    IpAddr::V4(_) => [0; 16],
                };
                let t = target.octets();
                let mut group = [0u8; 16];
                group[..2].copy_from_slice(&[0xff, 0x02]);
                group[11..13].copy_from_slice(&[0x01, 0xff]);
                group[13..].copy_from_slice(&t[13..]);
                f.extend_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
                f.extend_from_slice(&self.src_mac);
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                // ICMPv6 NS: 24 bytes + an 8-byte SLL option.
                const ICMP_LEN: u16 = 32;
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&ICMP_LEN.to_be_bytes());
                f.extend_from_slice(&[58, 255]);
                f.extend_from_slice(&src);
                f.extend_from_slice(&group);
                let icmp = f.len();
                f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
                f.extend_from_slice(&t);
                f.extend_from_slice(&[1, 1]);
                f.extend_from_slice(&self.src_mac);
                let csum = icmpv6_checksum(&src, &group, &f[icmp..]);
                f[icmp + 2..icmp + 4].copy_from_slice(&csum.to_be_bytes());
            }
            (IpAddr::V4(target), src) => {
                let src = match src {
                    IpAddr::V4(s) => s.octets(),
                    IpAddr::V6(_) => [0; 4],
                };
                f.extend_from_slice(&[0xff; 6]);
                f.extend_from_slice(&self.src_mac);
                f.extend_from_slice(&0x0806u16.to_be_bytes());
                f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
                f.extend_from_slice(&self.src_mac);
                f.extend_from_slice(&src);
                f.extend_from_slice(&[0; 6]);
                f.extend_from_slice(&target.octets());
            }
        }
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    }
}

/// The ICMPv6 checksum of `msg` (its checksum field zero) from `src` to
/// `dst` (RFC 4443 2.3: over the IPv6 pseudo-header and the message).
fn icmpv6_checksum(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |b| u64::from(*b));
        }
    };
    add(src);
    add(dst);
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<IpAddr, Entry>,
    /// Wanted addresses: the request, when one last went out (`None`: not
    /// yet) and when a lookup last missed it.
    wanted: HashMap<IpAddr, (Solicit, Option<u64>, u64)>,
}

/// The cache (see the module docs).
#[derive(Debug, Default)]
pub struct NeighCache {
    inner: Mutex<Inner>,
    seq: AtomicU64,
    unsolicited: AtomicU64,
}

fn fmt_mac(mac: &[u8; 6]) -> String {
    let m = mac;
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

impl NeighCache {
    pub fn new() -> NeighCache {
        NeighCache::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// Moves on every change a translation could depend on.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The MAC of `ip`, if known and not expired at `now_ms`.
    pub fn lookup(&self, ip: IpAddr, now_ms: u64) -> Option<[u8; 6]> {
        let g = self.lock();
        g.entries
            .get(&ip)
            .filter(|e| e.expires_ms.is_none_or(|t| t > now_ms))
            .map(|e| e.mac)
    }

    /// Records that `req.target` is wanted (a lookup missed at `now_ms`).
    pub fn want(&self, req: Solicit, now_ms: u64) {
        let mut g = self.lock();
        if let Some(w) = g.wanted.get_mut(&req.target) {
            w.2 = now_ms;
        } else if g.wanted.len() < MAX_WANTED {
            g.wanted.insert(req.target, (req, None, now_ms));
        }
    }

    /// The ARP requests due at `now_ms` (each wanted address at most once
    /// per [`SOLICIT_INTERVAL_MS`]).
    pub fn take_due_requests(&self, now_ms: u64) -> Vec<Solicit> {
        let mut g = self.lock();
        g.wanted
            .retain(|_, w| now_ms.saturating_sub(w.2) < SOLICIT_GIVE_UP_MS);
        let mut due = Vec::new();
        for (req, last, _) in g.wanted.values_mut() {
            if last.is_none_or(|t| now_ms >= t + SOLICIT_INTERVAL_MS) {
                *last = Some(now_ms);
                due.push(req.clone());
            }
        }
        due
    }

    /// Learns `ip` at `mac` from an ARP reply seen on `bridge`, when `ip`
    /// is already known or wanted; otherwise counts the reply as
    /// unsolicited and ignores it (see the module docs). Returns whether
    /// it was learned.
    pub fn snoop(&self, ip: IpAddr, mac: [u8; 6], bridge: &str, now_ms: u64) -> bool {
        let asked = {
            let g = self.lock();
            g.entries.contains_key(&ip) || g.wanted.contains_key(&ip)
        };
        if !asked {
            self.unsolicited.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.insert(ip, mac, bridge, Some(now_ms + NEIGH_IDLE_MS));
        true
    }

    /// Keeps every learned entry at `mac` alive for another
    /// [`NEIGH_IDLE_MS`] from `now_ms` (a megaflow sending to it forwarded
    /// packets). Static and expired entries are left alone; nothing a
    /// translation depends on changes, so the sequence does not move.
    /// Returns how many entries were refreshed.
    pub fn refresh_mac(&self, mac: [u8; 6], now_ms: u64) -> usize {
        let mut g = self.lock();
        let mut n = 0;
        for e in g.entries.values_mut() {
            if e.mac == mac
                && let Some(t) = e.expires_ms.as_mut()
                && *t > now_ms
            {
                *t = (*t).max(now_ms + NEIGH_IDLE_MS);
                n += 1;
            }
        }
        n
    }

    /// ARP replies ignored because nobody asked for their address.
    pub fn unsolicited(&self) -> u64 {
        self.unsolicited.load(Ordering::Relaxed)
    }

    /// `tnl/neigh/set BRIDGE IP MAC`: a static entry.
    pub fn set_static(&self, ip: IpAddr, mac: [u8; 6], bridge: &str) {
        self.insert(ip, mac, bridge, None);
    }

    fn insert(&self, ip: IpAddr, mac: [u8; 6], bridge: &str, expires_ms: Option<u64>) {
        let mut g = self.lock();
        g.wanted.remove(&ip);
        let changed = match g.entries.get_mut(&ip) {
            // A static entry is not overwritten by snooping.
            Some(e) if e.expires_ms.is_none() && expires_ms.is_some() => false,
            Some(e) => {
                let changed = e.mac != mac || e.bridge != bridge;
                e.mac = mac;
                e.bridge = bridge.to_string();
                e.expires_ms = expires_ms;
                changed
            }
            None => {
                g.entries.insert(
                    ip,
                    Entry {
                        mac,
                        bridge: bridge.to_string(),
                        expires_ms,
                    },
                );
                true
            }
        };
        drop(g);
        if changed {
            self.bump();
        }
    }

    /// Forgets expired entries; returns how many.
    pub fn expire(&self, now_ms: u64) -> usize {
        let mut g = self.lock();
        let before = g.entries.len();
        g.entries
            .retain(|_, e| e.expires_ms.is_none_or(|t| t > now_ms));
        let n = before - g.entries.len();
        drop(g);
        if n > 0 {
            self.bump();
        }
        n
    }

    /// `tnl/neigh/flush`: forgets every learned entry (static ones stay,
    /// as in OVS); returns how many went.
    pub fn flush(&self) -> usize {
        let mut g = self.lock();
        let before = g.entries.len();
        g.entries.retain(|_, e| e.expires_ms.is_none());
        g.wanted.clear();
        let n = before - g.entries.len();
        drop(g);
        self.bump();
        n
    }

    /// Number of entries (learned and static).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `tnl/neigh/show`, in OVS's layout.
    pub fn show(&self, now_ms: u64) -> String {
        let g = self.lock();
        let mut rows: Vec<_> = g
            .entries
            .iter()
            .filter(|(_, e)| e.expires_ms.is_none_or(|t| t > now_ms))
            .collect();
        rows.sort_by_key(|(ip, _)| **ip);
        let mut s = format!("{:<38}  {:<17} {}\n", "IP", "MAC", "Bridge");
        s.push_str(&"=".repeat(74));
        s.push('\n');
        for (ip, e) in rows {
            let _ = write!(
                s,
                "{:<38}  {}   {}",
                ip.to_string(),
                fmt_mac(&e.mac),
                e.bridge
            );
            if e.expires_ms.is_none() {
                s.push_str(" STATIC");
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 31, 0, 2));

    fn solicit() -> Solicit {
        Solicit {
            target: IP,
            dev: "br0".into(),
            src: IpAddr::V4(Ipv4Addr::new(172, 31, 0, 1)),
            src_mac: [2, 0, 0, 0, 0, 1],
        }
    }

    #[test]
    fn misses_solicit_at_most_once_a_second_until_snooped() {
        let n = NeighCache::new();
        assert_eq!(n.lookup(IP, 0), None);
        n.want(solicit(), 0);
        n.want(solicit(), 50);
        assert_eq!(n.take_due_requests(100), vec![solicit()]);
        assert!(n.take_due_requests(600).is_empty());
        assert_eq!(n.take_due_requests(1100).len(), 1);
        // Nobody asks any more: given up, until traffic asks again.
        assert!(n.take_due_requests(50 + SOLICIT_GIVE_UP_MS).is_empty());
        n.want(solicit(), 6000);
        assert_eq!(n.take_due_requests(6000).len(), 1);
        let seq = n.seq();
        n.snoop(IP, [2, 0, 0, 0, 0, 2], "br0", 2000);
        assert!(n.seq() > seq, "a new entry revalidates");
        assert_eq!(n.lookup(IP, 2001), Some([2, 0, 0, 0, 0, 2]));
        assert!(
            n.take_due_requests(5000).is_empty(),
            "resolved: no more requests"
        );
        // The same answer again changes nothing; a new MAC does.
        let seq = n.seq();
        n.snoop(IP, [2, 0, 0, 0, 0, 2], "br0", 3000);
        assert_eq!(n.seq(), seq);
        n.snoop(IP, [2, 0, 0, 0, 0, 3], "br0", 3000);
        assert!(n.seq() > seq);
        // Aging.
        assert_eq!(n.lookup(IP, 3000 + NEIGH_IDLE_MS), None);
        assert_eq!(n.expire(3000 + NEIGH_IDLE_MS), 1);
        assert!(n.is_empty());
    }

    #[test]
    fn static_entries_survive_flush_and_snooping() {
        let n = NeighCache::new();
        n.set_static(IP, [2, 0, 0, 0, 0, 9], "br0");
        n.snoop(IP, [2, 0, 0, 0, 0, 2], "br0", 0);
        let other = IpAddr::V4(Ipv4Addr::new(172, 31, 0, 3));
        n.want(
            Solicit {
                target: other,
                ..solicit()
            },
            0,
        );
        assert!(n.snoop(other, [2, 0, 0, 0, 0, 3], "br1", 0));
        assert_eq!(n.lookup(IP, 1), Some([2, 0, 0, 0, 0, 9]));
        let shown = n.show(1);
        assert!(
            shown
                .contains("172.31.0.2                              02:00:00:00:00:09   br0 STATIC"),
            "{shown}"
        );
        assert!(shown.contains("02:00:00:00:00:03   br1\n"), "{shown}");
        assert_eq!(n.flush(), 1);
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn replies_nobody_asked_for_are_counted_not_learned() {
        let n = NeighCache::new();
        let seq = n.seq();
        // A flood of replies for made-up sender addresses.
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert!(!n.snoop(ip, [2, 0, 0, 0, 0, 7], "br0", 0));
        }
        assert!(n.is_empty());
        assert_eq!(n.unsolicited(), 10_000);
        assert_eq!(n.seq(), seq, "ignored replies revalidate nothing");
        // Once wanted, the reply is learned.
        n.want(solicit(), 0);
        assert!(n.snoop(IP, [2, 0, 0, 0, 0, 2], "br0", 1));
        assert_eq!(n.lookup(IP, 2), Some([2, 0, 0, 0, 0, 2]));
    }

    #[test]
    fn ipv6_neighbours_are_solicited_learned_and_shown_like_ovs() {
        let n = NeighCache::new();
        let v6: IpAddr = "2001:db8::2".parse().unwrap();
        let req = Solicit {
            target: v6,
            dev: "br0".into(),
            src: "2001:db8::1".parse().unwrap(),
            src_mac: [2, 0, 0, 0, 0, 1],
        };
        assert!(
            !n.snoop(v6, [2, 0, 0, 0, 0, 2], "br0", 0),
            "not asked for yet"
        );
        n.want(req.clone(), 0);
        assert_eq!(n.take_due_requests(0), vec![req]);
        assert!(n.snoop(v6, [2, 0, 0, 0, 0, 2], "br0", 1));
        assert_eq!(n.lookup(v6, 2), Some([2, 0, 0, 0, 0, 2]));
        // An IPv4 entry and an IPv6 one with the same low bits are
        // different neighbours.
        assert_eq!(
            n.lookup(
                IpAddr::V6(Ipv6Addr::from(u128::from(u32::from(Ipv4Addr::new(
                    172, 31, 0, 2
                ))))),
                2
            ),
            None
        );
        n.set_static(IP, [2, 0, 0, 0, 0, 9], "br1");
        let shown = n.show(2);
        // IPv4 rows first, then IPv6, each address padded to 38 columns.
        assert_eq!(
            shown.lines().skip(2).collect::<Vec<_>>(),
            vec![
                "172.31.0.2                              02:00:00:00:00:09   br1 STATIC",
                "2001:db8::2                             02:00:00:00:00:02   br0",
            ],
            "{shown}"
        );
    }

    fn v6_octets(ip: IpAddr) -> [u8; 16] {
        match ip {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(_) => panic!("{ip} is not IPv6"),
        }
    }

    #[test]
    fn neighbor_solicitation_bytes_decode_with_etherparse() {
        use etherparse::{NetSlice, SlicedPacket, TransportSlice};
        let req = Solicit {
            target: "2001:db8:31::2".parse().unwrap(),
            dev: "br0".into(),
            src: "2001:db8:31::1".parse().unwrap(),
            src_mac: [2, 0, 0, 0, 0, 1],
        };
        let f = req.frame();
        assert_eq!(f.len(), 86, "14 + 40 + 24 + 8");
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0, 0, 2], "solicited-node MAC");
        let p = SlicedPacket::from_ethernet(&f).expect("parses");
        let Some(NetSlice::Ipv6(ip)) = &p.net else {
            panic!("not IPv6: {:?}", p.net)
        };
        let h = ip.header();
        assert_eq!(h.source_addr().to_string(), "2001:db8:31::1");
        assert_eq!(h.destination_addr().to_string(), "ff02::1:ff00:2");
        assert_eq!((h.hop_limit(), h.payload_length()), (255, 32));
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
            panic!("not ICMPv6: {:?}", p.transport)
        };
        assert_eq!((icmp.type_u8(), icmp.code_u8()), (135, 0));
        // The checksum verifies over the pseudo-header.
        let expected = icmp
            .icmp_type()
            .calc_checksum(h.source(), h.destination(), icmp.payload())
            .unwrap();
        assert_eq!(icmp.checksum(), expected);
        // Target and source link-layer address option.
        let target = v6_octets(req.target);
        let msg = icmp.slice();
        assert_eq!(&msg[8..24], &target);
        assert_eq!(&msg[24..], &[1, 1, 2, 0, 0, 0, 0, 1]);
        // The same request in dp-core's extraction: an NS for the target
        // with the SLL option.
        let mut key = dp_core::flow::FlowKey::ZERO;
        dp_core::flow::extract_frame(&f, &dp_core::packet::PacketMetadata::default(), &mut key);
        assert_eq!((key.nw_proto, key.tp_src), (58, 135));
        assert_eq!(key.nd_target, target);
        assert_eq!(key.arp_sha, [2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn arp_request_bytes() {
        let f = solicit().frame();
        assert_eq!(f.len(), 60);
        let mut key = dp_core::flow::FlowKey::ZERO;
        dp_core::flow::extract_frame(&f, &dp_core::packet::PacketMetadata::default(), &mut key);
        assert_eq!(key.dl_type, 0x0806);
        assert_eq!(key.nw_proto, 1, "request");
        assert_eq!((key.nw_src, key.nw_dst), ([172, 31, 0, 1], [172, 31, 0, 2]));
        assert_eq!(key.arp_sha, [2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[..6], &[0xff; 6]);
    }

    #[test]
    fn traffic_to_a_neighbour_keeps_it_alive() {
        let n = NeighCache::new();
        let mac = [2, 0, 0, 0, 0, 2];
        n.want(solicit(), 0);
        n.snoop(IP, mac, "br0", 0);
        let seq = n.seq();
        // Refreshed a minute before it would expire: alive a lookup later.
        assert_eq!(n.refresh_mac(mac, NEIGH_IDLE_MS - 60_000), 1);
        assert_eq!(n.seq(), seq, "a refresh changes no translation");
        assert_eq!(n.lookup(IP, NEIGH_IDLE_MS + 1), Some(mac));
        assert_eq!(n.expire(NEIGH_IDLE_MS + 1), 0);
        // Another MAC refreshes nothing; without traffic it ages out.
        assert_eq!(n.refresh_mac([2, 0, 0, 0, 0, 3], NEIGH_IDLE_MS), 0);
        assert_eq!(n.lookup(IP, 2 * NEIGH_IDLE_MS), None);
        // An expired entry is not brought back, a static one needs nothing.
        assert_eq!(n.refresh_mac(mac, 2 * NEIGH_IDLE_MS), 0);
        n.set_static(IP, mac, "br0");
        assert_eq!(n.refresh_mac(mac, 0), 0);
    }
}
