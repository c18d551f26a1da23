//! The neighbour (ARP) cache of native tunnelling: which MAC address an
//! underlay next hop has (OVS `lib/tnl-neigh-cache.c`, IPv4 only).
//!
//! # How it works
//! Entries are learned by snooping ARP replies that translation sees on
//! any bridge ([`NeighCache::snoop`]), or set by hand (static entries
//! never age). Only a reply for an address the cache already holds or is
//! soliciting is learned: any underlay host can send replies for any
//! sender address, and learning those would let it grow the cache without
//! bound (unsolicited ones are counted, [`NeighCache::unsolicited`]).
//! Together with [`MAX_WANTED`] this bounds the cache by what routes and
//! `remote_ip=flow` rules actually ask for. A lookup that misses records a *solicitation*: the daemon
//! collects the due ones ([`NeighCache::take_due_requests`]) and sends an
//! ARP request out of the route's device, at most once a second per
//! address, until a reply is snooped. Learned entries age out after
//! [`NEIGH_IDLE_MS`] (OVS's 15 minutes); a lookup does not refresh them.
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
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long a learned entry lives without being seen again.
pub const NEIGH_IDLE_MS: u64 = 15 * 60 * 1000;
/// Least time between two ARP requests for one address.
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

/// An ARP request the daemon should send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solicit {
    pub target: Ipv4Addr,
    /// The route's output device (a port name).
    pub dev: String,
    /// The sender address to put in the request.
    pub src: Ipv4Addr,
    /// The sender MAC (the device's).
    pub src_mac: [u8; 6],
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Ipv4Addr, Entry>,
    /// Wanted addresses: the request, when one last went out (`None`: not
    /// yet) and when a lookup last missed it.
    wanted: HashMap<Ipv4Addr, (Solicit, Option<u64>, u64)>,
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
    pub fn lookup(&self, ip: Ipv4Addr, now_ms: u64) -> Option<[u8; 6]> {
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
    pub fn snoop(&self, ip: Ipv4Addr, mac: [u8; 6], bridge: &str, now_ms: u64) -> bool {
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

    /// ARP replies ignored because nobody asked for their address.
    pub fn unsolicited(&self) -> u64 {
        self.unsolicited.load(Ordering::Relaxed)
    }

    /// `tnl/neigh/set BRIDGE IP MAC`: a static entry.
    pub fn set_static(&self, ip: Ipv4Addr, mac: [u8; 6], bridge: &str) {
        self.insert(ip, mac, bridge, None);
    }

    fn insert(&self, ip: Ipv4Addr, mac: [u8; 6], bridge: &str, expires_ms: Option<u64>) {
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

    const IP: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 2);

    fn solicit() -> Solicit {
        Solicit {
            target: IP,
            dev: "br0".into(),
            src: Ipv4Addr::new(172, 31, 0, 1),
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
        let other = Ipv4Addr::new(172, 31, 0, 3);
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
            let ip = Ipv4Addr::from(0x0a00_0000 + i);
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
}
