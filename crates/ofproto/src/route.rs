//! The userspace route table native tunnelling uses to pick a tunnel's
//! underlay: output device, next hop (gateway) and source address (OVS
//! `lib/ovs-router.c`), for IPv4 and IPv6.
//!
//! # How it works
//! Entries are prefixes with an output device name (a port of some
//! bridge, normally the bridge's internal port that carries the VTEP
//! address), an optional gateway and a source address. Lookup is longest
//! prefix match; at equal length a `User` entry (`ovs/route/add`) wins
//! over a `Cached` one (learned from the host's table), as in OVS.
//! Lookup probes one hash map per prefix length present in the
//! destination's family, longest first (at most 33 probes for IPv4, 129
//! for IPv6, whatever the table's size: a host carrying a full
//! routing table does not slow flow setup down), and replacing the host
//! routes sorts once.
//! The daemon replaces every `Cached` entry whenever the host's table
//! changes ([`RouteTable::replace_system`]); user entries stay until
//! deleted.
//!
//! # Invariants
//! Prefixes are stored masked (`10.1.2.3/8` is kept as `10.0.0.0/8`);
//! at most one entry per (prefix, plen, origin); `routes` is sorted most
//! specific first, user before cached; `index` maps each present length
//! to its prefixes' first (winning) position in `routes` and is rebuilt
//! after every change.
//!
//! # Threads
//! The table is plain data; [`crate::tunnel::TunnelState`] keeps it behind a
//! lock that translation takes for one lookup.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a route came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteOrigin {
    /// Learned from the host's routing table.
    Cached,
    /// Added with `ovs/route/add` or the config.
    User,
}

/// One route. `prefix`, `gateway` and `src` are of one address family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpAddr,
    pub plen: u8,
    /// Output device: a port name.
    pub dev: String,
    pub gateway: Option<IpAddr>,
    /// Source address for packets sent by this route.
    pub src: Option<IpAddr>,
    pub origin: RouteOrigin,
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteResult {
    pub dev: String,
    /// Where to send: the gateway, or the destination itself when the
    /// route is on-link.
    pub next_hop: IpAddr,
    pub src: Option<IpAddr>,
}

/// An address as (is IPv6, bits), the bits right-aligned in a `u128`.
fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn from_bits(v6: bool, b: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::from(b as u32))
    }
}

/// Longest prefix length of the family.
fn max_plen(v6: bool) -> u8 {
    if v6 { 128 } else { 32 }
}

fn mask(v6: bool, plen: u8) -> u128 {
    let width = u32::from(max_plen(v6));
    let plen = u32::from(plen).min(width);
    if plen == 0 {
        0
    } else {
        let full = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        (u128::MAX << (width - plen)) & full
    }
}

/// `ip` with the bits past `plen` cleared.
pub fn masked(ip: IpAddr, plen: u8) -> IpAddr {
    let (v6, b) = bits(ip);
    from_bits(v6, b & mask(v6, plen))
}

/// Parses `ADDR/N` (IPv4 or IPv6; a bare address is a host route, /32 or
/// /128) and returns the prefix masked.
pub fn parse_prefix(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, plen) = match text.split_once('/') {
        Some((ip, plen)) => (ip, Some(plen)),
        None => (text, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("\"{text}\" is not an IPv4 or IPv6 prefix"))?;
    let max = max_plen(ip.is_ipv6());
    let plen = match plen {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("\"{text}\": prefix length must be 0..{max}"))?,
    };
    Ok((masked(ip, plen), plen))
}

/// The route table (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// (is IPv6, plen, masked prefix bits → position in `routes`), each
    /// family's lengths longest first.
    index: Vec<(bool, u8, HashMap<u128, usize>)>,
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Adds or replaces the entry for (prefix, origin).
    pub fn insert(&mut self, mut route: Route) {
        route.prefix = masked(route.prefix, route.plen);
        self.routes.retain(|r| {
            !(r.prefix == route.prefix && r.plen == route.plen && r.origin == route.origin)
        });
        self.routes.push(route);
        self.sort_and_index();
    }

    /// IPv4 before IPv6 (as `ovs/route/show` lists them), most specific
    /// first, user before cached (the first hit wins), then the per-length
    /// index over that order.
    fn sort_and_index(&mut self) {
        self.routes.sort_by(|a, b| {
            (a.prefix.is_ipv6(), b.plen, b.origin, a.prefix).cmp(&(
                b.prefix.is_ipv6(),
                a.plen,
                a.origin,
                b.prefix,
            ))
        });
        self.index.clear();
        for (i, r) in self.routes.iter().enumerate() {
            let (v6, b) = bits(r.prefix);
            if self
                .index
                .last()
                .is_none_or(|(f, plen, _)| (*f, *plen) != (v6, r.plen))
            {
                self.index.push((v6, r.plen, HashMap::new()));
            }
            if let Some((_, _, by_prefix)) = self.index.last_mut() {
                by_prefix.entry(b).or_insert(i);
            }
        }
    }

    /// Deletes the user entry for `prefix/plen`; false when there is none.
    pub fn remove_user(&mut self, prefix: IpAddr, plen: u8) -> bool {
        let prefix = masked(prefix, plen);
        let before = self.routes.len();
        self.routes
            .retain(|r| !(r.prefix == prefix && r.plen == plen && r.origin == RouteOrigin::User));
        self.sort_and_index();
        self.routes.len() != before
    }

    /// Replaces every cached (host) route with `routes`.
    pub fn replace_system(&mut self, routes: Vec<Route>) {
        self.routes.retain(|r| r.origin == RouteOrigin::User);
        // One entry per (prefix, plen): the last one given wins, as
        // inserting them one by one would do, with a single sort.
        let mut seen = HashMap::new();
        for mut r in routes {
            r.origin = RouteOrigin::Cached;
            r.prefix = masked(r.prefix, r.plen);
            seen.insert((r.prefix, r.plen), r);
        }
        self.routes.extend(seen.into_values());
        self.sort_and_index();
    }

    /// Longest-prefix match for `dst` among the routes of its family.
    pub fn lookup(&self, dst: IpAddr) -> Option<RouteResult> {
        let (v6, d) = bits(dst);
        self.index
            .iter()
            .filter(|(f, _, _)| *f == v6)
            .find_map(|(_, plen, by_prefix)| by_prefix.get(&(d & mask(v6, *plen))))
            .map(|&i| &self.routes[i])
            .map(|r| RouteResult {
                dev: r.dev.clone(),
                next_hop: r.gateway.unwrap_or(dst),
                src: r.src,
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// `ovs-appctl ovs/route/show`, in OVS's layout (IPv6 prefixes in
    /// their compressed text form, as OVS prints them).
    pub fn show(&self) -> String {
        let mut s = String::from("Route Table:\n");
        for r in &self.routes {
            let origin = match r.origin {
                RouteOrigin::Cached => "Cached",
                RouteOrigin::User => "User",
            };
            let _ = write!(s, "{origin}: {}/{} dev {}", r.prefix, r.plen, r.dev);
            if let Some(gw) = r.gateway {
                let _ = write!(s, " GW {gw}");
            }
            if let Some(src) = r.src {
                let _ = write!(s, " SRC {src}");
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route to `p` whose source is 10.0.0.1 or 2001:db8::1, by the
    /// prefix's family.
    fn route(p: &str, dev: &str, gw: Option<&str>, origin: RouteOrigin) -> Route {
        let (prefix, plen) = parse_prefix(p).unwrap();
        let src = if prefix.is_ipv4() {
            "10.0.0.1"
        } else {
            "2001:db8::1"
        };
        Route {
            prefix,
            plen,
            dev: dev.into(),
            gateway: gw.map(|g| g.parse().unwrap()),
            src: Some(src.parse().unwrap()),
            origin,
        }
    }

    #[test]
    fn longest_prefix_wins_and_user_beats_cached() {
        let mut t = RouteTable::new();
        t.replace_system(vec![
            route("0.0.0.0/0", "br0", Some("10.0.0.254"), RouteOrigin::Cached),
            route("10.0.0.0/24", "br0", None, RouteOrigin::Cached),
        ]);
        t.insert(route("10.0.0.0/24", "br1", None, RouteOrigin::User));
        t.insert(route(
            "10.0.0.7/32",
            "br2",
            Some("10.0.0.9"),
            RouteOrigin::User,
        ));
        let r = t.lookup("10.0.0.5".parse().unwrap()).unwrap();
        assert_eq!(
            (r.dev.as_str(), r.next_hop.to_string()),
            ("br1", "10.0.0.5".into())
        );
        let r = t.lookup("10.0.0.7".parse().unwrap()).unwrap();
        assert_eq!(
            (r.dev.as_str(), r.next_hop.to_string()),
            ("br2", "10.0.0.9".into())
        );
        let r = t.lookup("8.8.8.8".parse().unwrap()).unwrap();
        assert_eq!(r.next_hop.to_string(), "10.0.0.254");
        // A new host table keeps user routes.
        t.replace_system(vec![]);
        assert!(t.lookup("8.8.8.8".parse().unwrap()).is_none());
        assert_eq!(t.lookup("10.0.0.5".parse().unwrap()).unwrap().dev, "br1");
        assert!(t.remove_user("10.0.0.99".parse().unwrap(), 24));
        assert!(!t.remove_user("10.0.0.0".parse().unwrap(), 24));
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.show(),
            "Route Table:\nUser: 10.0.0.7/32 dev br2 GW 10.0.0.9 SRC 10.0.0.1\n"
        );
    }

    #[test]
    fn prefixes_parse_masked_and_errors_name_the_text() {
        assert_eq!(
            parse_prefix("10.1.2.3/8").unwrap(),
            ("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(parse_prefix("1.2.3.4").unwrap().1, 32);
        assert!(
            parse_prefix("1.2.3.4/33")
                .unwrap_err()
                .contains("1.2.3.4/33")
        );
        assert_eq!(
            parse_prefix("2001:db8:1:2::7/64").unwrap(),
            ("2001:db8:1:2::".parse().unwrap(), 64)
        );
        assert_eq!(parse_prefix("fe80::1").unwrap().1, 128);
        assert!(
            parse_prefix("fe80::1/129")
                .unwrap_err()
                .contains("fe80::1/129")
        );
        assert!(parse_prefix("fe80::x/64").unwrap_err().contains("fe80::x"));
    }

    #[test]
    fn ipv6_routes_match_only_ipv6_destinations() {
        let mut t = RouteTable::new();
        t.replace_system(vec![
            route("::/0", "br0", Some("2001:db8::fe"), RouteOrigin::Cached),
            route("2001:db8::/64", "br0", None, RouteOrigin::Cached),
            route("0.0.0.0/0", "br9", Some("10.0.0.254"), RouteOrigin::Cached),
        ]);
        t.insert(route("2001:db8::7/128", "br2", None, RouteOrigin::User));
        let r = t.lookup("2001:db8::5".parse().unwrap()).unwrap();
        assert_eq!(
            (r.dev.as_str(), r.next_hop.to_string()),
            ("br0", "2001:db8::5".into())
        );
        assert_eq!(r.src, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(t.lookup("2001:db8::7".parse().unwrap()).unwrap().dev, "br2");
        // Off-link: the gateway; an IPv4 default never answers for IPv6
        // (and the other way round).
        let r = t.lookup("2001:db9::1".parse().unwrap()).unwrap();
        assert_eq!(
            (r.dev.as_str(), r.next_hop.to_string()),
            ("br0", "2001:db8::fe".into())
        );
        assert_eq!(t.lookup("8.8.8.8".parse().unwrap()).unwrap().dev, "br9");
        // ::/0 holds no IPv4 destinations even though 0.0.0.0's bits match.
        t.replace_system(vec![route("::/0", "br0", None, RouteOrigin::Cached)]);
        assert!(t.lookup("8.8.8.8".parse().unwrap()).is_none());
        assert_eq!(
            t.show(),
            "Route Table:\nUser: 2001:db8::7/128 dev br2 SRC 2001:db8::1\nCached: ::/0 dev br0 SRC 2001:db8::1\n"
        );
        assert!(t.remove_user("2001:db8::7".parse().unwrap(), 128));
    }

    /// The linear longest-prefix match the index must agree with.
    fn reference(routes: &[Route], dst: IpAddr) -> Option<String> {
        routes
            .iter()
            .filter(|r| r.prefix.is_ipv6() == dst.is_ipv6() && masked(dst, r.plen) == r.prefix)
            .max_by_key(|r| (r.plen, r.origin))
            .map(|r| r.dev.clone())
    }

    #[test]
    fn a_large_host_table_is_indexed_and_agrees_with_a_linear_search() {
        // 20,000 host routes of mixed lengths (a full table's shape), a
        // few user routes over them: built with one sort (the old
        // insert-and-sort per route was quadratic in the table's size).
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut host = Vec::new();
        for i in 0..20_000 {
            let plen = [8u8, 16, 20, 22, 24, 24, 24, 32][(next() % 8) as usize];
            host.push(Route {
                prefix: masked(IpAddr::V4(Ipv4Addr::from(next() as u32)), plen),
                plen,
                dev: format!("h{i}"),
                gateway: None,
                src: None,
                origin: RouteOrigin::Cached,
            });
        }
        let mut t = RouteTable::new();
        t.replace_system(host);
        let mut user = Vec::new();
        for i in 0..20 {
            let r = t.routes[(next() % t.len() as u64) as usize].clone();
            let r = Route {
                dev: format!("u{i}"),
                origin: RouteOrigin::User,
                ..r
            };
            t.insert(r.clone());
            user.push(r);
        }
        let all: Vec<Route> = t.iter().cloned().collect();
        for _ in 0..2_000 {
            // Half the probes inside a known prefix, half anywhere.
            let dst = if next() % 2 == 0 {
                let r = &all[(next() % all.len() as u64) as usize];
                let (v6, b) = bits(r.prefix);
                from_bits(
                    v6,
                    b | (next() as u128 & !mask(v6, r.plen) & u128::from(u32::MAX)),
                )
            } else {
                IpAddr::V4(Ipv4Addr::from(next() as u32))
            };
            assert_eq!(t.lookup(dst).map(|r| r.dev), reference(&all, dst), "{dst}");
        }
        for r in &user {
            assert_eq!(t.lookup(r.prefix).map(|x| x.dev), reference(&all, r.prefix));
        }
    }
}
