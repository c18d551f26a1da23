//! Translation ("xlate"): one packet's flow key through the OpenFlow
//! tables into datapath actions plus the megaflow mask (OVS
//! `ofproto/ofproto-dpif-xlate.c`, reduced).
//!
//! # How it works
//! The translator keeps two views of the packet: `flow`, what the
//! pipeline has made of it so far (set_field, VLAN edits, registers), and
//! `base`, what the datapath packet looks like given the actions emitted
//! so far. A masked `set` covers exactly the bits the pipeline wrote in
//! the fields that differ, so its text does not depend on what lookups
//! happened to examine. Actions that only change `flow` emit nothing; before anything
//! that lets the packet out (output, controller, tunnel push) the
//! difference is *committed* as `pop_vlan`/`push_vlan` and (masked) `set`
//! actions, as OVS's `commit_odp_actions` does.
//!
//! # Wildcards
//! `wc` starts with what is always examined (`in_port`, `dl_type`,
//! `packet_type`, `recirc_id`, `nw_frag` for IP, VLAN presence, tunnel
//! fields for tunnelled packets) and grows with every bit consulted:
//! each classifier lookup adds what it examined, NORMAL adds `dl_src`,
//! `dl_dst` and the VLAN id, a field write adds the bits it wrote (so the
//! "did it change?" decision of the commit is fixed by the megaflow), a
//! `move` adds its source bits, prerequisite checks add what they read.
//! Registers and metadata are pipeline state that starts at zero, so they
//! never appear in the mask.
//!
//! Soundness, the invariant every change here must keep: any packet that
//! agrees with the translated one on the bits of the mask translates to
//! the same actions (`tests/megaflow.rs` checks it with random rule sets).
//!
//! # Tunnels
//! Output to a tunnel port becomes `clone(tnl_push(...), <outer actions>)`.
//! With a [`TunnelState`] (the daemon's case) the underlay is resolved as
//! OVS's native tunnelling does: the route table gives the output device
//! (a port of this bridge, normally `LOCAL` carrying the VTEP address),
//! the next hop and the source address; the neighbour cache the next
//! hop's MAC; the outer packet is then translated through this bridge's
//! tables as if it came in on the output device, and those actions follow
//! the push. A neighbour miss asks for an ARP request and drops without
//! installing a megaflow (`install = false`), so the flow is tried again
//! once the reply is snooped. Without a tunnel state the port's static
//! underlay (egress port, MACs) is used and the packet goes straight out.
//!
//! A UDP packet sent to the bridge's `LOCAL` port and addressed to a
//! tunnel port's local IP and UDP port is decapsulated instead
//! (`tnl_pop`), so it comes back as an upcall on the tunnel's datapath
//! port with its tunnel metadata (first fragments too: the datapath drops
//! them by name, tunnel packets are never reassembled). Only tunnel ports
//! of the same bridge are considered.
//!
//! ARP replies addressed to one of this host's addresses (a route's
//! source) are snooped into the neighbour cache when they are translated,
//! and never installed as megaflows, so every reply refreshes the cache
//! (OVS gets the same from its xlate cache's neighbour entries).
//!
//! # Limits (as OVS)
//! Resubmit depth 64 and 4096 table lookups per translation; past either
//! the translation fails and the megaflow drops.
//!
//! # Threads
//! Runs on the calling (PMD/handler) thread against an immutable
//! snapshot; the only shared write is MAC learning, and only when the
//! caller allows side effects (a trace does not).

use crate::actions::{OfAction, SetStyle, SubField};
use crate::field::{Field, OfFlow, Prereq, eth_is_multicast, eth_is_reserved};
use crate::mac_learning::MacLearning;
use crate::r#match::Match;
use crate::neigh::Solicit;
use crate::ports::*;
use crate::tables::{Rule, RuleSet};
use crate::tlv_map::TlvMap;
use crate::tunnel::{TunnelState, build_push_opts};
use dp_core::action::{Action, Userdata, Userspace};
use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use dp_core::odp::attr::{EthKey, Ipv4Key, Ipv6Key, KeyAttr, PortsKey};
use smallvec::SmallVec;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Most nested resubmits (OVS `MAX_DEPTH`).
pub const MAX_DEPTH: u32 = 64;
/// Most table lookups in one translation (OVS `MAX_RESUBMITS`).
pub const MAX_RESUBMITS: u32 = 4096;

/// OpenFlow packet-in reasons used in `controller(reason=...)`.
pub const OFPR_ACTION: u16 = 1;
pub const OFPR_INVALID_TTL: u16 = 2;

/// Why a translation failed (the megaflow then drops).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlateError {
    /// Resubmits nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_RESUBMITS`] table lookups.
    TooManyResubmits,
    /// More VLAN headers than the flow key can hold.
    TooManyVlans,
}

impl std::fmt::Display for XlateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XlateError::TooDeep => write!(f, "over max translation depth {MAX_DEPTH}"),
            XlateError::TooManyResubmits => write!(f, "over {MAX_RESUBMITS} resubmit actions"),
            XlateError::TooManyVlans => write!(f, "too many VLAN headers"),
        }
    }
}

/// The rules one translation hit, in order. Inline up to four: most
/// pipelines hit one to three rules, and a heap `Vec` was a malloc and a
/// free on every flow setup.
pub type HitRules = SmallVec<[Arc<Rule>; 4]>;

/// The result of translating one flow key.
#[derive(Clone, Debug)]
pub struct Translation {
    /// Datapath actions; empty means drop. Shared, as the datapath
    /// installs them: made once from the context's inline list, so a
    /// flow setup allocates for its actions once.
    pub actions: Arc<[Action]>,
    /// The megaflow mask over the datapath key (install `key & mask`).
    pub mask: FlowKey,
    /// Rule table version translated against.
    pub version: u64,
    /// MAC learning sequence number seen (meaningful when
    /// `uses_mac_learning`).
    pub mac_seq: u64,
    /// True when NORMAL ran, so MAC table changes must revalidate.
    pub uses_mac_learning: bool,
    /// Rules the packet hit, in order, for statistics.
    pub rules: HitRules,
    /// Set when translation failed; `actions` is then empty.
    pub error: Option<XlateError>,
    /// Number of packets sent to the controller per packet.
    pub n_controller: u32,
    /// The flow as the pipeline left it, kept only for a traced
    /// translation: a copy in every flow setup was ~80 instructions.
    pub final_flow: Option<Box<OfFlow>>,
    /// True when the translation read the tunnel state (routes,
    /// neighbours), so its changes must revalidate.
    pub uses_tunnel_state: bool,
    /// The tunnel state's sequence number seen.
    pub tnl_seq: u64,
    /// False when the result must not be installed as a megaflow (a
    /// neighbour miss, or an ARP reply the neighbour cache learns from:
    /// execute it on this packet only).
    pub install: bool,
}

impl Translation {
    /// Credits `packets`/`bytes` to every rule the translation hit.
    pub fn credit(&self, packets: u64, bytes: u64, now_ms: u64) {
        for r in &self.rules {
            r.credit(packets, bytes, now_ms);
        }
    }
}

/// One line of an explanation, at a nesting depth.
#[derive(Clone, Debug)]
pub enum TraceEvent {
    /// A table lookup and its result (`None`: no match).
    Lookup {
        depth: u32,
        table_id: u8,
        rule: Option<Arc<Rule>>,
    },
    /// An action being executed.
    Action { depth: u32, text: String },
    /// A remark about what an action did.
    Note { depth: u32, text: String },
}

/// Inputs of a translation.
pub(crate) struct XlateEnv<'a> {
    pub rules: &'a RuleSet,
    pub ports: &'a PortTable,
    pub mac: &'a MacLearning,
    pub now_ms: u64,
    /// False for traces: do not learn MACs (or neighbours).
    pub may_learn: bool,
    pub tnl: Option<&'a TunnelState>,
    /// The bridge's name (for the neighbour cache).
    pub bridge: &'a str,
}

struct Ctx<'a, 't, 'k> {
    env: &'a XlateEnv<'a>,
    flow: OfFlow,
    base: FlowKey,
    /// The datapath key as it came in, borrowed: a copy was a 328-byte
    /// memcpy per translation.
    orig: &'k FlowKey,
    wc: OfFlow,
    /// Bits the pipeline wrote: what a masked `set` may touch.
    written: OfFlow,
    /// The actions so far, inline (a flow usually has one to three): a
    /// growing `Vec` later copied into the shared result was a malloc, a
    /// copy and a free more per flow setup.
    odp: OdpActions,
    table_id: u8,
    depth: u32,
    resubmits: u32,
    rules: HitRules,
    cookie: u64,
    uses_mac: bool,
    mac_seq: u64,
    /// The pipeline wrote the whole `tun_id` (so it no longer depends on
    /// the packet).
    tun_id_written: bool,
    error: Option<XlateError>,
    n_controller: u32,
    trace: Option<&'t mut Vec<TraceEvent>>,
    uses_tnl: bool,
    tnl_seq: u64,
    no_install: bool,
    /// The bridge's Geneve TLV map (`tun_metadata` fields).
    tlv: Tlv,
    /// `tun_metadata` slots the pipeline wrote (bit per slot).
    tun_md_written: u64,
}

/// A translation's TLV map: the static empty one (no refcount: every
/// PMD incrementing one shared counter per translation would bounce its
/// cache line between them), or the bridge's.
enum Tlv {
    Empty,
    Shared(Arc<TlvMap>),
}

impl std::ops::Deref for Tlv {
    type Target = TlvMap;
    fn deref(&self) -> &TlvMap {
        match self {
            Tlv::Empty => &crate::tlv_map::EMPTY_TLV_MAP,
            Tlv::Shared(map) => map,
        }
    }
}

/// A context's datapath actions (see `Ctx::odp`).
type OdpActions = SmallVec<[Action; 4]>;

/// How many recent action lists each thread keeps for reuse.
const RECENT_ACTION_LISTS: usize = 4;

/// `odp` as a shared list: one this thread built recently when it is
/// equal, else a new one (which then replaces the oldest remembered).
///
/// Many megaflows get the same actions (every 5-tuple through one
/// `output` rule, every flow NORMAL sends to one port): sharing the list
/// saves each flow setup an allocation, its free when the flow goes,
/// and a cache line per installed flow. Equality is checked on the
/// contents every time, so a reused list is exactly the one that would
/// have been built: nothing here can go stale. Per thread, so PMD
/// threads neither lock nor share a cache line for it.
fn shared_actions(odp: &[Action]) -> Arc<[Action]> {
    use std::cell::RefCell;
    struct Recent {
        lists: [Option<Arc<[Action]>>; RECENT_ACTION_LISTS],
        next: usize,
    }
    thread_local! {
        static RECENT: RefCell<Recent> = const {
            RefCell::new(Recent {
                lists: [const { None }; RECENT_ACTION_LISTS],
                next: 0,
            })
        };
    }
    let lookup = |recent: &mut Recent| {
        if let Some(hit) = recent.lists.iter().flatten().find(|list| list[..] == *odp) {
            return Arc::clone(hit);
        }
        let list: Arc<[Action]> = Arc::from(odp);
        let slot = recent.next;
        recent.next = (slot + 1) % RECENT_ACTION_LISTS;
        recent.lists[slot] = Some(Arc::clone(&list));
        list
    };
    // A thread being torn down (its locals gone) just builds the list.
    RECENT
        .try_with(|recent| lookup(&mut recent.borrow_mut()))
        .unwrap_or_else(|_| Arc::from(odp))
}

/// Translates `key` (a datapath key, `in_port` a datapath port number).
pub(crate) fn translate(
    env: &XlateEnv<'_>,
    key: &FlowKey,
    trace: Option<&mut Vec<TraceEvent>>,
) -> Translation {
    // The tunnel sequence number before any tunnel state, the TLV map
    // first: a change published after this read moves the sequence past
    // it, so a translation that saw the old state is revalidated. Read
    // after the map (as it was), a change between the two reads left a
    // megaflow decoded under the old map stamped with the new sequence,
    // never revalidated.
    let tnl_seq = env.tnl.map_or(0, |t| t.seq());
    let tlv = match env.tnl.and_then(|t| t.tlv_map_if_any(env.bridge)) {
        Some(map) => Tlv::Shared(map),
        None => Tlv::Empty,
    };
    // The context starts all zero and the key is copied into it in place
    // afterwards: a struct literal holding `*key` built each `OfFlow` and
    // `FlowKey` in a temporary and moved it in, five memcpys of hundreds
    // of bytes on every flow setup where two are needed.
    let mut ctx = Ctx {
        env,
        flow: OfFlow::ZERO,
        base: FlowKey::ZERO,
        orig: key,
        wc: OfFlow::ZERO,
        written: OfFlow::ZERO,
        odp: OdpActions::new(),
        table_id: 0,
        depth: 0,
        resubmits: 0,
        rules: HitRules::new(),
        cookie: 0,
        uses_mac: false,
        mac_seq: env.mac.seq(),
        tun_id_written: false,
        error: None,
        n_controller: 0,
        trace,
        tnl_seq,
        no_install: false,
        // What the options decode to follows the map: a map change must
        // revalidate this megaflow.
        uses_tnl: key.tun_geneve_len != 0,
        tlv,
        tun_md_written: 0,
    };
    ctx.flow.key = *key;
    ctx.base = *key;
    ctx.tlv.decode(key, &mut ctx.flow);
    let in_port = env.ports.by_odp(key.in_port).map(|p| p.ofport);
    ctx.flow.key.in_port = in_port.unwrap_or(OFPP_NONE);
    ctx.wc_init();
    if key.tun_geneve_len != 0 && ctx.trace.is_some() {
        ctx.note_geneve_options();
    }
    ctx.snoop_arp();
    ctx.snoop_nd();
    if in_port.is_none() {
        ctx.note(format!(
            "no OpenFlow port for datapath port {}, dropping",
            key.in_port
        ));
    } else {
        ctx.table(0);
    }
    ctx.finish()
}

impl Ctx<'_, '_, '_> {
    fn note(&mut self, text: String) {
        let depth = self.depth;
        if let Some(t) = self.trace.as_deref_mut() {
            t.push(TraceEvent::Note { depth, text });
        }
    }

    fn wc_init(&mut self) {
        let k = self.orig;
        let w = &mut self.wc.key;
        w.in_port = u32::MAX;
        w.dl_type = u16::MAX;
        w.packet_type = u32::MAX;
        w.recirc_id = u32::MAX;
        if k.is_ip_any() {
            w.nw_frag |= FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER;
        }
        // The datapath key keeps the inner Ethernet type with the tags
        // beside it, so tag presence must always be part of the match.
        w.vlans[0].tci |= VLAN_CFI;
        if k.vlans[0].is_present() {
            w.vlans[1].tci |= VLAN_CFI;
        }
        if k.tun_ipv4_dst != [0; 4] || k.tun_ipv6_dst != [0; 16] {
            w.tun_id = u64::MAX;
            if k.tun_ipv4_dst != [0; 4] {
                w.tun_ipv4_src = [0xff; 4];
                w.tun_ipv4_dst = [0xff; 4];
            } else {
                w.tun_ipv6_src = [0xff; 16];
                w.tun_ipv6_dst = [0xff; 16];
            }
            w.tun_flags = dp_core::odp::flow::TNL_F_DONT_FRAGMENT
                | dp_core::odp::flow::TNL_F_CSUM
                | dp_core::odp::flow::TNL_F_KEY;
            w.tun_tos = u8::MAX;
        }
    }

    /// Builds the result. Takes `&mut self` rather than `self`: moving
    /// the whole context into a non-inlined call was a ~2 KB memcpy per
    /// translation. The context is not used afterwards.
    fn finish(&mut self) -> Translation {
        if self.error.is_some() {
            self.odp.clear();
        }
        // The mask is finished in place in the wildcards (the context is
        // done with them) and the result is built in the return slot: a
        // result finished in a local was copied whole (~450 bytes) on
        // return.
        let mask = &mut self.wc.key;
        let k = self.orig;
        mask.in_port = u32::MAX;
        let icmp = (k.dl_type == ETH_TYPE_IPV4 && k.nw_proto == IPPROTO_ICMP)
            || (k.dl_type == ETH_TYPE_IPV6 && k.nw_proto == IPPROTO_ICMPV6);
        if icmp {
            mask.tp_src &= 0xff;
            mask.tp_dst &= 0xff;
        }
        if k.nw_frag & FLOW_NW_FRAG_LATER != 0 {
            mask.tp_src = 0;
            mask.tp_dst = 0;
        }
        for v in mask.vlans.iter_mut() {
            if v.tci != 0 {
                v.tci |= VLAN_CFI;
            }
        }
        if k.dl_type != ETH_TYPE_MPLS && k.dl_type != ETH_TYPE_MPLS_MCAST {
            mask.mpls_lse = [0; 3];
        }
        if !self.tlv.is_empty() {
            // It reads the wildcards' tun_metadata, never their key.
            let wc = self.wc;
            self.tlv.key_mask(self.orig, &wc, &mut self.wc.key);
        }
        self.wc.key.clear_padding();
        Translation {
            actions: shared_actions(&self.odp),
            mask: self.wc.key,
            version: self.env.rules.version,
            mac_seq: self.mac_seq,
            uses_mac_learning: self.uses_mac,
            rules: std::mem::take(&mut self.rules),
            error: self.error.take(),
            n_controller: self.n_controller,
            final_flow: self.trace.is_some().then(|| Box::new(self.flow)),
            uses_tunnel_state: self.uses_tnl,
            tnl_seq: self.tnl_seq,
            install: !self.no_install,
        }
    }

    /// Learns the sender of an ARP reply to one of this host's addresses
    /// into the neighbour cache (OVS `tnl_neigh_snoop`).
    fn snoop_arp(&mut self) {
        let Some(tnl) = self.env.tnl else {
            return;
        };
        let k = self.orig;
        if k.dl_type != ETH_TYPE_ARP {
            return;
        }
        // The ARP opcode is kept in nw_proto.
        self.wc.key.nw_proto = u8::MAX;
        if k.nw_proto != 2 {
            return;
        }
        // Matched before deciding: a megaflow for a reply without a
        // sender MAC must not swallow the real replies after it.
        self.wc.key.nw_src = [0xff; 4];
        self.wc.key.nw_dst = [0xff; 4];
        self.wc.key.arp_sha = [0xff; 6];
        if k.arp_sha == [0; 6] {
            return;
        }
        self.uses_tnl = true;
        if !tnl.is_local(IpAddr::V4(Ipv4Addr::from(k.nw_dst))) {
            return;
        }
        // Every such reply goes through here (no megaflow), so a
        // flushed or aged entry is learned again from the next one.
        self.no_install = true;
        // Only addresses the cache knows or is soliciting are learned
        // (an underlay host must not be able to grow it at will).
        if self.env.may_learn {
            tnl.neigh().snoop(
                IpAddr::V4(Ipv4Addr::from(k.nw_src)),
                k.arp_sha,
                self.env.bridge,
                self.env.now_ms,
            );
        }
        self.note(format!(
            "neighbour {} is at {}",
            Ipv4Addr::from(k.nw_src),
            fmt_mac(&k.arp_sha)
        ));
    }

    /// Learns the target of a Neighbor Advertisement sent to one of this
    /// host's addresses, at its target link-layer address, into the
    /// neighbour cache (OVS `tnl_nd_snoop`); as [`Self::snoop_arp`], never
    /// installed. An advertisement without the option (the answer to a
    /// unicast solicitation, RFC 4861 7.2.4) teaches nothing.
    fn snoop_nd(&mut self) {
        /// ICMPv6 type of a Neighbor Advertisement (RFC 4861).
        const ND_NEIGHBOR_ADVERT: u16 = 136;
        let Some(tnl) = self.env.tnl else {
            return;
        };
        let k = self.orig;
        if k.dl_type != ETH_TYPE_IPV6 {
            return;
        }
        self.wc.key.nw_proto = u8::MAX;
        if k.nw_proto != IPPROTO_ICMPV6 || k.nw_frag & FLOW_NW_FRAG_LATER != 0 {
            return;
        }
        // ICMPv6 type and code are kept in tp_src and tp_dst.
        self.wc.key.tp_src = u16::MAX;
        self.wc.key.tp_dst = u16::MAX;
        if k.tp_src != ND_NEIGHBOR_ADVERT || k.tp_dst != 0 {
            return;
        }
        self.wc.key.ipv6_dst = [0xff; 16];
        self.wc.key.nd_target = [0xff; 16];
        self.wc.key.arp_tha = [0xff; 6];
        self.uses_tnl = true;
        if k.arp_tha == [0; 6] || !tnl.is_local(IpAddr::V6(Ipv6Addr::from(k.ipv6_dst))) {
            return;
        }
        self.no_install = true;
        let target = IpAddr::V6(Ipv6Addr::from(k.nd_target));
        if self.env.may_learn {
            tnl.neigh()
                .snoop(target, k.arp_tha, self.env.bridge, self.env.now_ms);
        }
        self.note(format!("neighbour {target} is at {}", fmt_mac(&k.arp_tha)));
    }

    /// Looks `flow` up in `table_id` and runs the winner's actions.
    fn table(&mut self, table_id: u8) {
        if self.error.is_some() {
            return;
        }
        if self.depth >= MAX_DEPTH {
            self.fail(XlateError::TooDeep);
            return;
        }
        if self.resubmits >= MAX_RESUBMITS {
            self.fail(XlateError::TooManyResubmits);
            return;
        }
        self.resubmits += 1;
        // The rule set outlives the context: the hit is borrowed, and
        // refcounted once, into the rules the translation credits.
        let env = self.env;
        let Some(table) = env.rules.table(table_id) else {
            return;
        };
        let hit = table.lookup(&self.flow, &mut self.wc).map(|e| &e.rule);
        let depth = self.depth;
        if let Some(t) = self.trace.as_deref_mut() {
            t.push(TraceEvent::Lookup {
                depth,
                table_id,
                rule: hit.cloned(),
            });
        }
        let Some(rule) = hit else {
            return;
        };
        self.rules.push(Arc::clone(rule));
        let (saved_table, saved_cookie) = (self.table_id, self.cookie);
        self.table_id = table_id;
        self.cookie = rule.cookie;
        self.depth += 1;
        self.actions(&rule.actions);
        self.depth -= 1;
        self.table_id = saved_table;
        self.cookie = saved_cookie;
    }

    fn fail(&mut self, e: XlateError) {
        self.note(format!("{e}, dropping"));
        self.error = Some(e);
    }

    fn actions(&mut self, acts: &[OfAction]) {
        for a in acts {
            if self.error.is_some() {
                return;
            }
            if self.trace.is_some() {
                let mut text = String::new();
                crate::actions::format_action(&mut text, a, None);
                let depth = self.depth;
                if let Some(t) = self.trace.as_deref_mut() {
                    t.push(TraceEvent::Action { depth, text });
                }
            }
            match a {
                OfAction::Output { port } => self.output(*port),
                OfAction::Controller { max_len } => self.controller(OFPR_ACTION, *max_len),
                OfAction::SetVlanVid(vid) => {
                    self.wc.key.vlans[0].tci |= 0x0fff | VLAN_CFI;
                    if !self.flow.key.vlans[0].is_present() && !self.push_tag(ETH_TYPE_VLAN_8021Q) {
                        return;
                    }
                    let v = &mut self.flow.key.vlans[0];
                    v.tci = (v.tci & !0x0fff) | vid | VLAN_CFI;
                }
                OfAction::SetVlanPcp(pcp) => {
                    self.wc.key.vlans[0].tci |= 0xe000 | VLAN_CFI;
                    if !self.flow.key.vlans[0].is_present() && !self.push_tag(ETH_TYPE_VLAN_8021Q) {
                        return;
                    }
                    let v = &mut self.flow.key.vlans[0];
                    v.tci = (v.tci & 0x1fff) | (u16::from(*pcp) << 13) | VLAN_CFI;
                }
                OfAction::StripVlan => {
                    if self.flow.key.vlans[0].is_present() {
                        let k = &mut self.flow.key;
                        k.vlans[0] = k.vlans[1];
                        k.vlans[1] = VlanHeader::default();
                    }
                }
                OfAction::PushVlan(tpid) => {
                    if !self.push_tag(*tpid) {
                        return;
                    }
                }
                OfAction::SetField {
                    field,
                    value,
                    mask,
                    style,
                } => {
                    if !self.write_field(*field, *value, *mask) && *style == SetStyle::Legacy {
                        self.note(format!(
                            "{} skipped: packet lacks {}",
                            field.name(),
                            field.prereq().describe()
                        ));
                    }
                }
                OfAction::DecTtl => {
                    if !self.flow.key.is_ip_any() {
                        continue;
                    }
                    self.wc.key.nw_ttl = u8::MAX;
                    self.written.key.nw_ttl = u8::MAX;
                    if self.flow.key.nw_ttl > 1 {
                        self.flow.key.nw_ttl -= 1;
                    } else {
                        self.note("TTL exceeded, sending to controller".into());
                        self.controller(OFPR_INVALID_TTL, u16::MAX);
                        return;
                    }
                }
                OfAction::Load { value, dst } => {
                    self.write_field(dst.field, value << dst.ofs, dst.mask());
                }
                OfAction::Move { src, dst } => self.move_bits(src, dst),
                OfAction::Resubmit { port, table } => {
                    let old_in = self.flow.key.in_port;
                    if let Some(p) = port
                        && *p != OFPP_IN_PORT
                    {
                        self.flow.key.in_port = *p;
                    }
                    self.table(table.unwrap_or(self.table_id));
                    self.flow.key.in_port = old_in;
                }
                OfAction::GotoTable(t) => self.table(*t),
                OfAction::Note(_) => {}
                OfAction::SetTunnel(id) => {
                    self.flow.key.tun_id = *id;
                    self.tun_id_written = true;
                }
                OfAction::Meter(m) => self.odp.push(Action::Meter(*m)),
            }
        }
    }

    /// Pushes a new outer tag; false (and the translation fails) when the
    /// key cannot hold another tag.
    fn push_tag(&mut self, tpid: u16) -> bool {
        if self.flow.key.vlans[1].is_present() {
            self.fail(XlateError::TooManyVlans);
            return false;
        }
        let k = &mut self.flow.key;
        k.vlans[1] = k.vlans[0];
        k.vlans[0] = VlanHeader {
            tpid,
            tci: VLAN_CFI,
        };
        true
    }

    /// Checks a prerequisite against the current flow, unwildcarding what
    /// it reads beyond `dl_type` (which is always exact).
    fn prereq(&mut self, p: Prereq) -> bool {
        let k = self.flow.key;
        let ip_any = k.is_ip_any();
        let proto = |ctx: &mut Self| {
            ctx.wc.key.nw_proto = u8::MAX;
            k.nw_proto
        };
        match p {
            Prereq::None => true,
            Prereq::Ip => k.dl_type == ETH_TYPE_IPV4,
            Prereq::Ipv6 => k.dl_type == ETH_TYPE_IPV6,
            Prereq::IpAny => ip_any,
            Prereq::Arp => k.dl_type == ETH_TYPE_ARP || k.dl_type == ETH_TYPE_RARP,
            Prereq::L4 => ip_any && matches!(proto(self), IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP),
            Prereq::Tcp => ip_any && proto(self) == IPPROTO_TCP,
            Prereq::Icmp => k.dl_type == ETH_TYPE_IPV4 && proto(self) == IPPROTO_ICMP,
            Prereq::Icmp6 => k.dl_type == ETH_TYPE_IPV6 && proto(self) == IPPROTO_ICMPV6,
            Prereq::IcmpAny => {
                (k.dl_type == ETH_TYPE_IPV4 && proto(self) == IPPROTO_ICMP)
                    || (k.dl_type == ETH_TYPE_IPV6 && proto(self) == IPPROTO_ICMPV6)
            }
            Prereq::Nd | Prereq::NdSolicit | Prereq::NdAdvert => {
                if !(k.dl_type == ETH_TYPE_IPV6 && proto(self) == IPPROTO_ICMPV6) {
                    return false;
                }
                self.wc.key.tp_src |= 0xff;
                let t = k.tp_src & 0xff;
                match p {
                    Prereq::NdSolicit => t == 135,
                    Prereq::NdAdvert => t == 136,
                    _ => t == 135 || t == 136,
                }
            }
        }
    }

    /// Writes `value` on `mask` bits of `field` if its prerequisites hold
    /// (for the current flow). Returns whether it wrote.
    fn write_field(&mut self, field: Field, value: u128, mask: u128) -> bool {
        if !self.prereq(field.prereq()) {
            return false;
        }
        if matches!(field, Field::VlanVid | Field::VlanPcp | Field::VlanTci) {
            self.wc.key.vlans[0].tci |= VLAN_CFI;
            if !self.flow.key.vlans[0].is_present() {
                self.note(format!(
                    "{}: packet has no VLAN header, skipped",
                    field.name()
                ));
                return false;
            }
        }
        if !field.is_pipeline_only() {
            let old = field.get(&self.wc);
            field.set(&mut self.wc, old | mask);
            let old = field.get(&self.written);
            field.set(&mut self.written, old | mask);
        }
        field.set_masked(&mut self.flow, value, mask);
        if let Field::TunMetadata(i) = field {
            // A write makes the option present (OVS sets its bit).
            self.flow.tun_metadata_present |= 1 << i;
            if mask == field.full() {
                self.tun_md_written |= 1 << i;
            }
        }
        if field == Field::TunId && mask == field.full() {
            self.tun_id_written = true;
        }
        if field == Field::VlanTci {
            // The CFI bit is presence, not data: a write cannot remove a tag.
            self.flow.key.vlans[0].tci |= VLAN_CFI;
        }
        true
    }

    fn move_bits(&mut self, src: &SubField, dst: &SubField) {
        if !self.prereq(src.field.prereq()) {
            return;
        }
        if !src.field.is_pipeline_only() {
            let old = src.field.get(&self.wc);
            src.field.set(&mut self.wc, old | src.mask());
        }
        if let Field::TunMetadata(i) = src.field {
            // Pipeline-only, but read from the packet unless written.
            if self.tun_md_written & (1 << i) == 0 {
                let old = src.field.get(&self.wc);
                src.field.set(&mut self.wc, old | src.mask());
                self.wc.tun_metadata_present |= 1 << i;
            }
        }
        let bits = (src.field.get(&self.flow) & src.mask()) >> src.ofs;
        self.write_field(dst.field, bits << dst.ofs, dst.mask());
    }

    fn output(&mut self, port: u32) {
        match port {
            OFPP_IN_PORT => {
                let p = self.flow.key.in_port;
                self.compose_output(p);
            }
            OFPP_NORMAL => self.normal(),
            OFPP_FLOOD => self.flood(false),
            OFPP_ALL => self.flood(true),
            OFPP_CONTROLLER => self.controller(OFPR_ACTION, u16::MAX),
            OFPP_TABLE | OFPP_NONE => {
                self.note("output to this reserved port does nothing here".into())
            }
            p if p == self.flow.key.in_port => {
                self.note("skipping output to input port".into());
            }
            p => self.compose_output(p),
        }
    }

    fn flood(&mut self, all: bool) {
        // The environment outlives the context: its ports are borrowed,
        // not collected and refcounted, on every flooded flow setup.
        let env = self.env;
        for p in env.ports.iter() {
            if p.ofport == self.flow.key.in_port || (!all && !p.flood) {
                continue;
            }
            self.compose_output(p.ofport);
        }
    }

    fn compose_output(&mut self, ofport: u32) {
        let env = self.env;
        let Some(port) = env.ports.get(ofport) else {
            self.note(format!("output to nonexistent port {ofport}"));
            return;
        };
        self.commit();
        // The bridge's own port, or an internal port that can carry a
        // VTEP address (one the tunnel state knows a MAC for).
        let internal = port.ofport == OFPP_LOCAL
            || self
                .env
                .tnl
                .is_some_and(|t| t.dev_mac(&port.name).is_some());
        if internal && let Some(tnl) = self.tunnel_termination() {
            self.note(format!(
                "native tunnel termination, continuing on datapath port {tnl}"
            ));
            self.odp.push(Action::TnlPop(tnl));
            return;
        }
        match &port.tunnel {
            Some(t) => self.tunnel_output(port, t),
            None => self.odp.push(Action::Output(port.odp_port)),
        }
    }

    /// Output to tunnel port `port`: see "Tunnels" in the module docs.
    fn tunnel_output(&mut self, port: &Port, t: &TunnelConfig) {
        let vni = match t.key {
            TunnelKey::Fixed(k) => k,
            TunnelKey::Flow => {
                if !self.tun_id_written {
                    self.wc.key.tun_id = u64::MAX;
                }
                self.flow.key.tun_id
            }
        };
        let mut cfg = t.clone();
        if t.remote_from_flow {
            // OVS: an IPv4 tun_dst wins; otherwise tun_ipv6_dst.
            self.wc.key.tun_ipv4_dst = [0xff; 4];
            let (v4, v6) = (self.flow.key.tun_ipv4_dst, self.flow.key.tun_ipv6_dst);
            cfg.remote_ip = if v4 != [0; 4] {
                IpAddr::V4(Ipv4Addr::from(v4))
            } else {
                self.wc.key.tun_ipv6_dst = [0xff; 16];
                IpAddr::V6(Ipv6Addr::from(v6))
            };
            if cfg.remote_ip.is_unspecified() {
                self.note(format!(
                    "tunnel port {}: remote_ip=flow but the flow has no tun_dst, dropping",
                    port.name
                ));
                return;
            }
        }
        let opts = self.geneve_options(t);
        let Some(tnl) = self.env.tnl else {
            let push = build_push_opts(&cfg, port.odp_port, vni, &opts);
            self.odp.push(Action::Clone(vec![
                Action::TnlPush(push),
                Action::Output(cfg.underlay_odp_port),
            ]));
            return;
        };
        self.uses_tnl = true;
        let remote = cfg.remote_ip;
        if !cfg.local_ip.is_unspecified() && cfg.local_ip.is_ipv6() != remote.is_ipv6() {
            self.note(format!(
                "native tunnel: local_ip {} and remote {remote} are of different families, dropping",
                cfg.local_ip
            ));
            return;
        }
        let Some(route) = tnl.route(remote) else {
            self.note(format!("native tunnel: no route to {remote}, dropping"));
            return;
        };
        // The device is a port of this bridge, or of another bridge that
        // shares the tunnel state (OVS's br-int + br-phy layout).
        let (dev, other) = match self.env.ports.by_name(&route.dev) {
            Some(dev) => (dev.clone(), None),
            None => match tnl.bridges().into_iter().find_map(|b| {
                let p = b.ports().by_name(&route.dev).cloned()?;
                Some((p, b))
            }) {
                Some((dev, b)) => (dev, Some(b)),
                None => {
                    self.note(format!(
                        "native tunnel: route to {remote} leaves by {}, which is not a port of any bridge, dropping",
                        route.dev
                    ));
                    return;
                }
            },
        };
        if cfg.local_ip.is_unspecified() {
            match route.src {
                Some(src) => cfg.local_ip = src,
                None => {
                    self.note(format!(
                        "native tunnel: no source address for {remote} (set local_ip), dropping"
                    ));
                    return;
                }
            }
        }
        cfg.local_mac = tnl.dev_mac(&dev.name).unwrap_or([0; 6]);
        let Some(nh_mac) = tnl.neigh().lookup(route.next_hop, self.env.now_ms) else {
            self.note(format!(
                "neighbour cache miss for {} on bridge {}, sending {}",
                route.next_hop,
                self.env.bridge,
                if route.next_hop.is_ipv6() {
                    "Neighbor Solicitation"
                } else {
                    "ARP request"
                }
            ));
            if self.env.may_learn {
                tnl.neigh().want(
                    Solicit {
                        target: route.next_hop,
                        dev: dev.name.clone(),
                        src: cfg.local_ip,
                        src_mac: cfg.local_mac,
                    },
                    self.env.now_ms,
                );
            }
            self.no_install = true;
            return;
        };
        cfg.next_hop_mac = nh_mac;
        cfg.underlay_odp_port = dev.odp_port;
        let push = build_push_opts(&cfg, port.odp_port, vni, &opts);
        self.note(format!(
            "native tunnel: {remote} via {} ({}), continuing as the outer packet from port {}{}",
            route.next_hop,
            fmt_mac(&nh_mac),
            dev.name,
            other
                .as_ref()
                .map(|b| format!(" of bridge {}", b.name()))
                .unwrap_or_default()
        ));
        let outer = match &other {
            None => self.outer_actions(self.env, &cfg, dev.ofport),
            Some(b) => {
                let state = b.state.load();
                let env = XlateEnv {
                    rules: &state.rules,
                    ports: &state.ports,
                    mac: &b.mac,
                    now_ms: self.env.now_ms,
                    may_learn: self.env.may_learn,
                    tnl: self.env.tnl,
                    bridge: &b.name,
                };
                self.outer_actions(&env, &cfg, dev.ofport)
            }
        };
        if outer.is_empty() {
            self.note("native tunnel: the outer packet goes nowhere, dropping".into());
            return;
        }
        let mut clone = vec![Action::TnlPush(push)];
        clone.extend(outer);
        self.odp.push(Action::Clone(clone));
    }

    /// Explains what the packet's Geneve options decoded to (traces only).
    fn note_geneve_options(&mut self) {
        let mut text = format!("Geneve options ({} bytes): ", self.orig.tun_geneve_len);
        let mapped: Vec<String> = self
            .tlv
            .entries()
            .iter()
            .filter(|e| self.flow.tun_metadata_present & (1 << e.index) != 0)
            .map(|e| {
                format!(
                    "tun_metadata{}={:#x}",
                    e.index,
                    self.flow.tun_metadata[usize::from(e.index)]
                )
            })
            .collect();
        if mapped.is_empty() {
            text.push_str("none mapped by this bridge's TLV map");
        } else {
            text.push_str(&mapped.join(", "));
        }
        self.note(text);
    }

    /// The Geneve options to send on tunnel `t`: the flow's present
    /// `tun_metadata` slots. Slots the pipeline did not write come from
    /// the received packet, so the megaflow must match them.
    fn geneve_options(&mut self, t: &TunnelConfig) -> Vec<u8> {
        if t.kind != TunnelKind::Geneve || self.tlv.is_empty() {
            return Vec::new();
        }
        for e in self.tlv.entries() {
            let bit = 1u64 << e.index;
            if self.tun_md_written & bit != 0 {
                continue;
            }
            self.wc.tun_metadata_present |= bit;
            if self.flow.tun_metadata_present & bit != 0 {
                self.wc.tun_metadata[usize::from(e.index)] = u64::MAX;
            }
        }
        self.tlv.encode(&self.flow)
    }

    /// Translates the outer packet of tunnel `cfg` through the bridge of
    /// `env` (this one or another) as if it came in on `in_ofport`. Its
    /// wildcards are dropped: every field of the outer packet follows from
    /// the tunnel's configuration and state, which the inner megaflow
    /// already depends on. (Another bridge's rule or MAC table changes
    /// reach this megaflow through the daemon's all-bridges version.)
    fn outer_actions(
        &mut self,
        env: &XlateEnv<'_>,
        cfg: &TunnelConfig,
        in_ofport: u32,
    ) -> Vec<Action> {
        let same_bridge = std::ptr::eq(env, self.env);
        let mut key = FlowKey::ZERO;
        key.dl_dst = cfg.next_hop_mac;
        key.dl_src = cfg.local_mac;
        match (cfg.local_ip, cfg.remote_ip) {
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                key.dl_type = ETH_TYPE_IPV6;
                key.ipv6_src = src.octets();
                key.ipv6_dst = dst.octets();
            }
            (src, dst) => {
                key.dl_type = ETH_TYPE_IPV4;
                if let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) {
                    key.nw_src = src.octets();
                    key.nw_dst = dst.octets();
                }
            }
        }
        key.nw_proto = if cfg.kind == TunnelKind::Gre {
            IPPROTO_GRE
        } else {
            IPPROTO_UDP
        };
        key.nw_ttl = cfg.ttl;
        key.nw_tos = cfg.tos;
        key.tp_dst = cfg.dst_port;
        let mut flow = OfFlow::from_key(key);
        flow.key.in_port = in_ofport;
        let mut sub = Ctx {
            env,
            flow,
            base: key,
            orig: &key,
            wc: OfFlow::ZERO,
            written: OfFlow::ZERO,
            odp: OdpActions::new(),
            table_id: 0,
            depth: self.depth + 1,
            resubmits: self.resubmits,
            rules: HitRules::new(),
            cookie: 0,
            uses_mac: false,
            mac_seq: self.mac_seq,
            tun_id_written: false,
            error: None,
            n_controller: 0,
            trace: self.trace.take(),
            uses_tnl: false,
            tnl_seq: self.tnl_seq,
            no_install: false,
            tlv: Tlv::Empty,
            tun_md_written: 0,
        };
        sub.table(0);
        self.trace = sub.trace.take();
        self.resubmits = sub.resubmits;
        self.rules.append(&mut sub.rules);
        self.n_controller += sub.n_controller;
        if same_bridge && sub.uses_mac && !self.uses_mac {
            self.uses_mac = true;
            self.mac_seq = sub.mac_seq;
        }
        self.uses_tnl |= sub.uses_tnl;
        self.no_install |= sub.no_install;
        if let Some(e) = sub.error {
            self.error = Some(e);
        }
        sub.odp.into_vec()
    }

    /// A packet sent to the bridge's own port that is addressed to one of
    /// its tunnel ports (UDP to the local IP and tunnel port) is
    /// decapsulated there instead (OVS's native tunnel termination).
    fn tunnel_termination(&mut self) -> Option<u32> {
        let k = self.flow.key;
        // Later fragments carry no UDP header: nothing to match them by.
        let dst = match k.dl_type {
            ETH_TYPE_IPV4 => IpAddr::V4(Ipv4Addr::from(k.nw_dst)),
            ETH_TYPE_IPV6 => IpAddr::V6(Ipv6Addr::from(k.ipv6_dst)),
            _ => return None,
        };
        if k.nw_frag & FLOW_NW_FRAG_LATER != 0 {
            return None;
        }
        self.wc.key.nw_proto = u8::MAX;
        let gre = k.nw_proto == IPPROTO_GRE;
        if k.nw_proto != IPPROTO_UDP && !gre {
            return None;
        }
        if dst.is_ipv6() {
            self.wc.key.ipv6_dst = [0xff; 16];
        } else {
            self.wc.key.nw_dst = [0xff; 4];
        }
        if !gre {
            self.wc.key.tp_dst = u16::MAX;
        }
        let tnl = self.env.tnl;
        let mut uses_tnl = false;
        let mut terminates = |p: &Arc<Port>| {
            let t = p.tunnel.as_ref()?;
            let matches = if gre {
                t.kind == TunnelKind::Gre
            } else {
                t.kind != TunnelKind::Gre && t.dst_port == k.tp_dst
            };
            if !matches {
                return None;
            }
            // No fixed local_ip: any address of this host (a route source).
            let local = if t.local_ip.is_unspecified() {
                uses_tnl = true;
                tnl.is_some_and(|s| s.is_local(dst))
            } else {
                t.local_ip == dst
            };
            local.then_some(p.odp_port)
        };
        // This bridge's tunnel ports first, then the other bridges' (the
        // VTEP on br-phy, the tunnel port on br-int).
        let found = self.env.ports.iter().find_map(&mut terminates).or_else(|| {
            tnl?.bridges()
                .iter()
                .find_map(|b| b.ports().iter().find_map(&mut terminates))
        });
        self.uses_tnl |= uses_tnl;
        found
    }

    fn controller(&mut self, reason: u16, max_len: u16) {
        self.commit();
        self.n_controller += 1;
        self.odp.push(Action::Userspace(Userspace {
            pid: 0,
            userdata: Some(Userdata::Controller {
                reason,
                dont_send: false,
                continuation: false,
                recirc_id: 0,
                rule_cookie: self.cookie,
                controller_id: 0,
                max_len,
            }),
            include_actions: false,
            tunnel_out_port: None,
        }));
    }

    /// The L2 learning switch.
    fn normal(&mut self) {
        let w = &mut self.wc.key;
        w.dl_src = [0xff; 6];
        w.dl_dst = [0xff; 6];
        w.vlans[0].tci |= 0x0fff | VLAN_CFI;
        let env = self.env;
        let Some(in_port) = env.ports.get(self.flow.key.in_port) else {
            self.note("no input bundle, dropping".into());
            return;
        };
        let tag = self.flow.key.vlans[0];
        let vid = if tag.is_present() { tag.vid() } else { 0 };
        let vlan = match &in_port.vlan {
            VlanMode::Access(a) => {
                if vid != 0 {
                    self.note("disallowed VLAN VID for this input port, dropping".into());
                    return;
                }
                *a
            }
            VlanMode::Trunk(_) => {
                if !in_port.vlan.includes(vid) {
                    self.note("disallowed VLAN VID for this input port, dropping".into());
                    return;
                }
                vid
            }
        };
        let (src, dst) = (self.flow.key.dl_src, self.flow.key.dl_dst);
        if eth_is_reserved(&dst) {
            self.note("dropping packet with reserved multicast destination".into());
            return;
        }
        if self.env.may_learn && !eth_is_multicast(&src) {
            self.env
                .mac
                .learn(vlan, src, in_port.ofport, self.env.now_ms);
        }
        if !self.uses_mac {
            // Read after our own learning and before the lookup: a change
            // by anyone after this point makes the translation stale.
            self.mac_seq = self.env.mac.seq();
        }
        self.uses_mac = true;
        if !eth_is_multicast(&dst) {
            match self.env.mac.lookup(vlan, dst, self.env.now_ms) {
                Some(p) if p == in_port.ofport => {
                    self.note("learned port is input port, dropping".into());
                    return;
                }
                Some(p) => match env.ports.get(p) {
                    Some(out) if out.vlan.includes(vlan) => {
                        self.note("forwarding to learned port".into());
                        self.output_normal(out, vlan);
                        return;
                    }
                    _ => {
                        self.note("learned port is unknown, dropping".into());
                        return;
                    }
                },
                None => self.note("no learned MAC for destination, flooding".into()),
            }
        } else {
            self.note("multicast or broadcast destination, flooding".into());
        }
        for p in env.ports.iter() {
            if p.ofport != in_port.ofport && p.flood && p.vlan.includes(vlan) {
                self.output_normal(p, vlan);
            }
        }
    }

    /// Outputs with the tag the port wants for `vlan`.
    fn output_normal(&mut self, port: &Port, vlan: u16) {
        let saved = self.flow.key.vlans;
        let untagged = matches!(port.vlan, VlanMode::Access(_)) || vlan == 0;
        let k = &mut self.flow.key;
        if untagged {
            if k.vlans[0].is_present() {
                k.vlans[0] = k.vlans[1];
                k.vlans[1] = VlanHeader::default();
            }
        } else if k.vlans[0].is_present() {
            k.vlans[0].tci = (k.vlans[0].tci & !0x0fff) | vlan | VLAN_CFI;
        } else {
            k.vlans[0] = VlanHeader {
                tpid: ETH_TYPE_VLAN_8021Q,
                tci: vlan | VLAN_CFI,
            };
        }
        self.compose_output(port.ofport);
        self.flow.key.vlans = saved;
    }

    /// Emits the actions that turn `base` into `flow` (see the module docs).
    fn commit(&mut self) {
        self.commit_vlans();
        // Borrowed, not copied: each `FlowKey` copy is a memcpy on every
        // output of every flow setup. The fields are disjoint.
        let f = &self.flow.key;
        let w = &self.written.key;
        let b = &mut self.base;
        let out = &mut self.odp;
        // Ethernet.
        if f.dl_src != b.dl_src || f.dl_dst != b.dl_dst {
            let m = EthKey {
                src: if f.dl_src != b.dl_src {
                    w.dl_src
                } else {
                    [0; 6]
                },
                dst: if f.dl_dst != b.dl_dst {
                    w.dl_dst
                } else {
                    [0; 6]
                },
            };
            let k = EthKey {
                src: and6(&f.dl_src, &m.src),
                dst: and6(&f.dl_dst, &m.dst),
            };
            out.push(set_action(
                KeyAttr::Ethernet(k),
                KeyAttr::Ethernet(m),
                m.src == [0xff; 6] && m.dst == [0xff; 6],
                KeyAttr::Ethernet(EthKey {
                    src: f.dl_src,
                    dst: f.dl_dst,
                }),
            ));
            b.dl_src = f.dl_src;
            b.dl_dst = f.dl_dst;
        }
        if f.dl_type == ETH_TYPE_IPV4
            && (f.nw_src != b.nw_src
                || f.nw_dst != b.nw_dst
                || f.nw_tos != b.nw_tos
                || f.nw_ttl != b.nw_ttl)
        {
            let pick4 = |x: [u8; 4], y: [u8; 4], m: [u8; 4]| if x != y { m } else { [0; 4] };
            let pick1 = |x: u8, y: u8, m: u8| if x != y { m } else { 0 };
            let m = Ipv4Key {
                src: pick4(f.nw_src, b.nw_src, w.nw_src),
                dst: pick4(f.nw_dst, b.nw_dst, w.nw_dst),
                tos: pick1(f.nw_tos, b.nw_tos, w.nw_tos),
                ttl: pick1(f.nw_ttl, b.nw_ttl, w.nw_ttl),
                ..Default::default()
            };
            let k = Ipv4Key {
                src: and4(&f.nw_src, &m.src),
                dst: and4(&f.nw_dst, &m.dst),
                tos: f.nw_tos & m.tos,
                ttl: f.nw_ttl & m.ttl,
                ..Default::default()
            };
            // ODP ipv4 also carries proto and frag, which are never set:
            // a full `set` is only possible when everything is exact.
            out.push(Action::SetMasked {
                key: KeyAttr::Ipv4(k),
                mask: KeyAttr::Ipv4(m),
            });
            b.nw_src = f.nw_src;
            b.nw_dst = f.nw_dst;
            b.nw_tos = f.nw_tos;
            b.nw_ttl = f.nw_ttl;
        }
        if f.dl_type == ETH_TYPE_IPV6
            && (f.ipv6_src != b.ipv6_src
                || f.ipv6_dst != b.ipv6_dst
                || f.ipv6_label != b.ipv6_label
                || f.nw_tos != b.nw_tos
                || f.nw_ttl != b.nw_ttl)
        {
            let pick16 = |x: [u8; 16], y: [u8; 16], m: [u8; 16]| if x != y { m } else { [0; 16] };
            let m = Ipv6Key {
                src: pick16(f.ipv6_src, b.ipv6_src, w.ipv6_src),
                dst: pick16(f.ipv6_dst, b.ipv6_dst, w.ipv6_dst),
                label: if f.ipv6_label != b.ipv6_label {
                    w.ipv6_label
                } else {
                    0
                },
                tclass: if f.nw_tos != b.nw_tos { w.nw_tos } else { 0 },
                hlimit: if f.nw_ttl != b.nw_ttl { w.nw_ttl } else { 0 },
                ..Default::default()
            };
            let k = Ipv6Key {
                src: and16(&f.ipv6_src, &m.src),
                dst: and16(&f.ipv6_dst, &m.dst),
                label: f.ipv6_label & m.label,
                tclass: f.nw_tos & m.tclass,
                hlimit: f.nw_ttl & m.hlimit,
                ..Default::default()
            };
            out.push(Action::SetMasked {
                key: KeyAttr::Ipv6(k),
                mask: KeyAttr::Ipv6(m),
            });
            b.ipv6_src = f.ipv6_src;
            b.ipv6_dst = f.ipv6_dst;
            b.ipv6_label = f.ipv6_label;
            b.nw_tos = f.nw_tos;
            b.nw_ttl = f.nw_ttl;
        }
        if f.is_ip_any()
            && f.nw_frag & FLOW_NW_FRAG_LATER == 0
            && (f.tp_src != b.tp_src || f.tp_dst != b.tp_dst)
        {
            let m = PortsKey {
                src: if f.tp_src != b.tp_src { w.tp_src } else { 0 },
                dst: if f.tp_dst != b.tp_dst { w.tp_dst } else { 0 },
            };
            let k = PortsKey {
                src: f.tp_src & m.src,
                dst: f.tp_dst & m.dst,
            };
            let full = m.src == u16::MAX && m.dst == u16::MAX;
            let whole = PortsKey {
                src: f.tp_src,
                dst: f.tp_dst,
            };
            let wrap = match f.nw_proto {
                IPPROTO_TCP => Some(KeyAttr::Tcp as fn(PortsKey) -> KeyAttr),
                IPPROTO_UDP => Some(KeyAttr::Udp as fn(PortsKey) -> KeyAttr),
                IPPROTO_SCTP => Some(KeyAttr::Sctp as fn(PortsKey) -> KeyAttr),
                _ => None,
            };
            if let Some(wrap) = wrap {
                out.push(set_action(wrap(k), wrap(m), full, wrap(whole)));
            }
            b.tp_src = f.tp_src;
            b.tp_dst = f.tp_dst;
        }
        if f.pkt_mark != b.pkt_mark {
            let m = w.pkt_mark;
            out.push(set_action(
                KeyAttr::SkbMark(f.pkt_mark & m),
                KeyAttr::SkbMark(m),
                m == u32::MAX,
                KeyAttr::SkbMark(f.pkt_mark),
            ));
            b.pkt_mark = f.pkt_mark;
        }
    }

    fn commit_vlans(&mut self) {
        // The tags present, outermost first: a prefix of `vlans` (slices of
        // the keys' own arrays; a `Vec` of them was an allocation per
        // output).
        let present = |k: &FlowKey| k.vlans.iter().take_while(|v| v.is_present()).count();
        let (base_vlans, flow_vlans) = (self.base.vlans, self.flow.key.vlans);
        let b = &base_vlans[..present(&self.base)];
        let f = &flow_vlans[..present(&self.flow.key)];
        if b == f {
            return;
        }
        let (lb, lf) = (b.len(), f.len());
        let mut keep = lb.min(lf);
        while keep > 0 && b[lb - keep..] != f[lf - keep..] {
            keep -= 1;
        }
        for _ in 0..lb - keep {
            self.odp.push(Action::PopVlan);
        }
        let pushes = &f[..lf - keep];
        if !pushes.is_empty() {
            // The pushed tags may carry bits of the original tags (PCP,
            // TPID), so the original tags become exact.
            for (i, v) in self.orig.vlans.iter().enumerate() {
                if v.is_present() {
                    self.wc.key.vlans[i] = VlanHeader {
                        tpid: u16::MAX,
                        tci: u16::MAX,
                    };
                }
            }
        }
        for v in pushes.iter().rev() {
            self.odp.push(Action::PushVlan {
                tpid: v.tpid,
                tci: v.tci,
            });
        }
        self.base.vlans = self.flow.key.vlans;
    }
}

fn set_action(masked_key: KeyAttr, mask: KeyAttr, full: bool, whole: KeyAttr) -> Action {
    if full {
        Action::Set(whole)
    } else {
        Action::SetMasked {
            key: masked_key,
            mask,
        }
    }
}

fn fmt_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn and4(a: &[u8; 4], m: &[u8; 4]) -> [u8; 4] {
    std::array::from_fn(|i| a[i] & m[i])
}
fn and6(a: &[u8; 6], m: &[u8; 6]) -> [u8; 6] {
    std::array::from_fn(|i| a[i] & m[i])
}
fn and16(a: &[u8; 16], m: &[u8; 16]) -> [u8; 16] {
    std::array::from_fn(|i| a[i] & m[i])
}

/// The megaflow as an ofctl match (for the trace `Megaflow:` line):
/// the original key with the OpenFlow in_port, masked.
pub fn megaflow_match(key: &FlowKey, ofport: u32, mask: &FlowKey) -> Match {
    let mut flow = OfFlow::from_key(*key);
    flow.key.in_port = ofport;
    let mut m = OfFlow::from_key(*mask);
    m.key.in_port = if mask.in_port != 0 { 0xffff } else { 0 };
    Match {
        flow: flow.masked(&m),
        mask: m,
    }
}
