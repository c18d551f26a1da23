//! [`Topology`]: namespaces and veth pairs with names unique to the test
//! process, deleted on drop.
//!
//! Names are `oxvs-<tag>-<id>-a|b` for namespaces and `ox<tag><id>a|b`
//! (host ends) / `ox<tag><id>A|B` (namespace ends) for links, where `id`
//! is the process id (five hex digits) and a per-process counter (two at
//! most): tests running at once, in one process or several, never collide. Interface names must fit Linux's
//! 15 characters, so tags are short (two or three characters).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{sh, sh_quiet};

/// The address of namespace `a`'s interface (a /24 shared with `b`).
pub const IP_A: &str = "10.77.0.1";
/// The address of namespace `b`'s interface.
pub const IP_B: &str = "10.77.0.2";

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Two namespaces `a` and `b`, the host-side names of their links, and
/// any extra links the test asked to delete. Everything is deleted on
/// drop.
#[derive(Debug)]
pub struct Topology {
    pub ns_a: String,
    pub ns_b: String,
    /// Host-side interface names (veth ends, or taps before they move).
    pub host_a: String,
    pub host_b: String,
    /// Interface names inside the namespaces.
    pub inner_a: String,
    pub inner_b: String,
    extra_links: Vec<String>,
    extra_namespaces: Vec<String>,
}

impl Topology {
    fn names(tag: &str) -> Topology {
        // Fixed-width process id, then the counter: "1a2b3" + "10" can not
        // also be read as "1a2b" + "310" from another process.
        let id = format!(
            "{:05x}{:x}",
            std::process::id() % 0xfffff,
            NEXT_ID.fetch_add(1, Ordering::Relaxed) % 0x100
        );
        let topo = Topology {
            ns_a: format!("oxvs-{tag}-{id}-a"),
            ns_b: format!("oxvs-{tag}-{id}-b"),
            host_a: format!("ox{tag}{id}a"),
            host_b: format!("ox{tag}{id}b"),
            inner_a: format!("ox{tag}{id}A"),
            inner_b: format!("ox{tag}{id}B"),
            extra_links: Vec::new(),
            extra_namespaces: Vec::new(),
        };
        assert!(
            topo.host_a.len() <= 15,
            "interface name {} is longer than 15 characters: shorten the tag {tag:?}",
            topo.host_a
        );
        topo
    }

    /// Namespaces joined to the host by single-queue veth pairs; the
    /// namespace ends carry [`IP_A`]/[`IP_B`] with tx checksum offload off
    /// and IPv6 off.
    pub fn veth(tag: &str) -> Topology {
        // The guard exists before anything is created: a failure half way
        // still cleans up what was made.
        let topo = Topology::names(tag);
        for (ns, host, inner, ip) in [
            (&topo.ns_a, &topo.host_a, &topo.inner_a, IP_A),
            (&topo.ns_b, &topo.host_b, &topo.inner_b, IP_B),
        ] {
            sh(&["ip", "netns", "add", ns]);
            add_veth(host, inner);
            sh(&["ip", "link", "set", inner, "netns", ns]);
            sh(&["ip", "link", "set", host, "up"]);
            configure_inner(ns, inner, ip);
        }
        topo
    }

    /// Namespaces only; the test creates tap ports named `host_a`/`host_b`
    /// and calls [`Topology::move_tap`].
    pub fn namespaces(tag: &str) -> Topology {
        let topo = Topology::names(tag);
        sh(&["ip", "netns", "add", &topo.ns_a]);
        sh(&["ip", "netns", "add", &topo.ns_b]);
        topo
    }

    /// Turns GRO, TSO and GSO off on both host ends, so whatever reads them
    /// sees MTU-sized frames (a port that cannot take super-frames).
    pub fn host_offloads_off(&self) {
        for host in [&self.host_a, &self.host_b] {
            sh_quiet(&[
                "ethtool", "-K", host, "gro", "off", "tso", "off", "gso", "off",
            ]);
        }
    }

    /// Moves tap `host` (already open) into `ns` and gives it `ip`.
    pub fn move_tap(&self, host: &str, ns: &str, ip: &str) {
        sh(&["ip", "link", "set", host, "netns", ns]);
        configure_inner(ns, host, ip);
    }

    /// Deletes `link` from the host namespace on drop too.
    pub fn also_delete(&mut self, link: &str) {
        self.extra_links.push(link.to_string());
    }

    /// Creates one more namespace, named after this topology with
    /// `suffix`, deleted on drop; returns its name.
    pub fn add_namespace(&mut self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.ns_a.trim_end_matches("-a"));
        sh(&["ip", "netns", "add", &name]);
        self.extra_namespaces.push(name.clone());
        name
    }
}

/// `ip link add HOST type veth peer name INNER`, one queue each way (the
/// caller deletes it, e.g. with [`Topology::also_delete`]).
pub fn add_veth(host: &str, inner: &str) {
    sh(&[
        "ip",
        "link",
        "add",
        host,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
        "type",
        "veth",
        "peer",
        "name",
        inner,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
    ]);
}

fn configure_inner(ns: &str, dev: &str, ip: &str) {
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    sh(&[
        "ip",
        "-n",
        ns,
        "addr",
        "add",
        &format!("{ip}/24"),
        "dev",
        dev,
    ]);
    sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    // The switch does not complete partial checksums (see the AF_XDP notes):
    // the stack must send full ones.
    sh(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]);
    // No IPv6 chatter (router solicitations, DAD) in the counters.
    sh_quiet(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
    ]);
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth and tap ends inside it, and
        // with a veth end its peer.
        for ns in [&self.ns_a, &self.ns_b]
            .into_iter()
            .chain(self.extra_namespaces.iter())
        {
            sh_quiet(&["ip", "netns", "del", ns]);
        }
        for link in [&self.host_a, &self.host_b]
            .into_iter()
            .chain(self.extra_links.iter())
        {
            if std::path::Path::new(&format!("/sys/class/net/{link}")).exists() {
                sh_quiet(&["ip", "link", "del", link]);
            }
        }
    }
}
