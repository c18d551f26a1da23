//! ofproto-lite: the slow path that makes the datapath a switch.
//!
//! # What it is
//! One [`Ofproto`] per bridge: OpenFlow-style rule tables (0..=254) in
//! `ovs-ofctl` syntax, a port table mapping OpenFlow ports to datapath
//! ports, NORMAL with MAC learning, and the translator that turns a
//! missed packet's flow key into datapath actions plus the widest sound
//! megaflow mask. `ofproto/trace` explains a translation rule by rule.
//!
//! # Map
//! - [`field`]: the pipeline's view of a packet ([`field::OfFlow`]) and
//!   the fields rules match and actions write.
//! - `match` ([`Match`]), [`parse`], [`actions`]: ofctl syntax for matches, flow
//!   mods and actions; parsers whose errors name the field.
//! - [`classifier`]: priority tuple-space classifier with staged lookup
//!   and prefix tries that reports the bits it examined.
//! - [`tables`]: versioned, immutable rule tables and flow-mod semantics.
//! - [`ports`], [`mac_learning`], [`tunnel`]: bridge state NORMAL and
//!   output need.
//! - [`xlate`]: translation; [`trace`]: its explanation;
//!   [`odp_actions`]: datapath action text.
//!
//! # Threads and state
//! - Rule tables and the port table are immutable, held together in one
//!   snapshot behind [`arc_swap::ArcSwap`]: translation (on PMD or
//!   handler threads) loads the current `Arc` without locking, once per
//!   translation, and sees rules and ports of the same moment (a port
//!   change and its version bump are one swap); control operations (flow
//!   mods, port changes, expiry) build the next snapshot and swap it in,
//!   one writer at a time (a control mutex that readers never take).
//! - MAC learning is the only state translation writes: a small table
//!   under its own mutex ([`mac_learning::MacLearning`]).
//! - Rule counters are atomics shared across snapshot versions.
//! - Nothing here reads a clock or spawns a thread: every entry point
//!   that cares about time takes `now_ms`.
//!
//! # Wiring to the datapath (upcall)
//! On a miss the datapath's upcall handler calls [`Ofproto::translate`]
//! with the packet's key (`in_port` = datapath port), installs
//! `(key & t.mask, t.mask)` with `t.actions`, executes `t.actions` on the
//! packet and calls `t.credit(1, len, now)`. The revalidator re-translates
//! with [`Ofproto::translate_readonly`] (never learn MACs from a masked
//! key) when the handler's version moves: combine [`Ofproto::version`]
//! (rules and ports) with [`MacLearning::seq`] (NORMAL's table), or ask
//! [`Ofproto::revalidate`] for the keep/modify/delete decision of one
//! flow; it credits datapath statistics to `t.rules`. Periodically the
//! daemon calls [`Ofproto::run`] for rule timeouts and MAC aging. A
//! `userspace(controller(...))` action reaching the daemon goes to
//! [`Ofproto::packet_in`].

#![forbid(unsafe_code)]

pub mod actions;
pub mod classifier;
pub mod field;
pub mod mac_learning;
pub mod r#match;
pub mod neigh;
pub mod odp_actions;
pub mod parse;
pub mod ports;
pub mod route;
pub mod tables;
pub mod tlv_map;
pub mod trace;
pub mod tunnel;
pub mod xlate;

use arc_swap::ArcSwap;
use dp_core::flow::FlowKey;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use actions::OfAction;
pub use field::{Field, OfFlow};
pub use mac_learning::MacLearning;
pub use r#match::Match;
pub use parse::{FlowMod, FlowModCommand, ParseError, parse_flow_mod};
pub use ports::{
    Port, PortConfig, PortError, PortTable, TunnelConfig, TunnelKey, TunnelKind, VlanMode,
};
pub use tables::{ExpireReason, FlowModError, Rule, RuleSet};
pub use xlate::{HitRules, Translation, XlateError};

/// Anything an [`Ofproto`] operation can refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfprotoError {
    Parse(ParseError),
    FlowMod(FlowModError),
    Port(PortError),
}

impl std::fmt::Display for OfprotoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfprotoError::Parse(e) => e.fmt(f),
            OfprotoError::FlowMod(e) => e.fmt(f),
            OfprotoError::Port(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OfprotoError {}

impl From<ParseError> for OfprotoError {
    fn from(e: ParseError) -> Self {
        OfprotoError::Parse(e)
    }
}
impl From<FlowModError> for OfprotoError {
    fn from(e: FlowModError) -> Self {
        OfprotoError::FlowMod(e)
    }
}
impl From<PortError> for OfprotoError {
    fn from(e: PortError) -> Self {
        OfprotoError::Port(e)
    }
}

/// A packet the datapath sent to the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketIn {
    /// OpenFlow reason (1 = action, 2 = invalid TTL).
    pub reason: u16,
    pub cookie: u64,
    /// The packet, truncated to the action's `max_len`.
    pub data: Vec<u8>,
}

/// Most packet-ins kept for a consumer; older ones are dropped (and
/// still counted).
pub const PACKET_IN_QUEUE: usize = 256;

/// What to do with an installed megaflow after a change.
#[derive(Debug)]
pub enum Revalidation {
    /// Nothing it depended on changed.
    Unchanged,
    /// Still correct; remember this translation (new version, rules).
    Keep(Translation),
    /// Same megaflow, new actions: modify the flow's actions.
    Modify(Translation),
    /// The megaflow itself is no longer right: delete it.
    Delete,
}

/// What [`Ofproto::run`] did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub expired_rules: Vec<tables::ExpiredRule>,
    pub expired_macs: usize,
}

/// The rule tables and the port table of one moment. One snapshot, not
/// two `ArcSwap`s: each load costs ~100 instructions of arc-swap's debt
/// bookkeeping, paid on every flow setup.
#[derive(Debug, Default)]
struct Snapshot {
    rules: Arc<RuleSet>,
    ports: Arc<PortTable>,
}

/// One bridge (see the crate docs).
#[derive(Debug)]
pub struct Ofproto {
    name: String,
    state: ArcSwap<Snapshot>,
    mac: MacLearning,
    /// Serialises writers of `rules` and `ports`; readers never take it.
    control: Mutex<()>,
    packet_ins: Mutex<VecDeque<PacketIn>>,
    n_packet_in: AtomicU64,
    /// Route table and neighbour cache for native tunnelling (the
    /// daemon's, shared by its bridges); unset means static underlays.
    tnl: std::sync::OnceLock<Arc<tunnel::TunnelState>>,
}

impl Ofproto {
    /// A bridge with empty tables (OVS `fail_mode=secure`): everything
    /// drops until rules are added.
    pub fn new(name: impl Into<String>) -> Ofproto {
        Ofproto {
            name: name.into(),
            state: ArcSwap::from_pointee(Snapshot::default()),
            mac: MacLearning::default(),
            control: Mutex::new(()),
            packet_ins: Mutex::new(VecDeque::new()),
            n_packet_in: AtomicU64::new(0),
            tnl: std::sync::OnceLock::new(),
        }
    }

    /// Resolves tunnel underlays with `state` from now on (once; later
    /// calls are ignored and return false).
    pub fn set_tunnel_state(&self, state: Arc<tunnel::TunnelState>) -> bool {
        let set = self.tnl.set(state).is_ok();
        if set {
            let _g = self.lock();
            self.store_rules(self.state.load().rules.bumped());
        }
        set
    }

    /// The tunnel state, when attached.
    pub fn tunnel_state(&self) -> Option<&Arc<tunnel::TunnelState>> {
        self.tnl.get()
    }

    /// The tunnel state's sequence number (0 without one): part of what
    /// makes an installed translation stale.
    pub fn tunnel_seq(&self) -> u64 {
        self.tnl.get().map_or(0, |t| t.seq())
    }

    /// A bridge that starts as a learning switch (OVS `fail_mode=
    /// standalone` without a controller): `priority=0,actions=NORMAL`.
    pub fn new_standalone(name: impl Into<String>) -> Ofproto {
        let o = Ofproto::new(name);
        o.add_flow("priority=0,actions=NORMAL", 0)
            .unwrap_or_else(|e| unreachable!("the built-in NORMAL rule parses: {e}"));
        o
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps in `rules` beside the current ports (under the control lock).
    fn store_rules(&self, rules: RuleSet) {
        let ports = Arc::clone(&self.state.load().ports);
        self.state.store(Arc::new(Snapshot {
            rules: Arc::new(rules),
            ports,
        }));
    }

    /// Swaps in `ports` and the current rules with their version bumped,
    /// in one step (under the control lock).
    fn store_ports(&self, ports: PortTable) {
        let rules = self.state.load().rules.bumped();
        self.state.store(Arc::new(Snapshot {
            rules: Arc::new(rules),
            ports: Arc::new(ports),
        }));
    }

    /// The current rule tables.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.state.load().rules)
    }

    /// The current port table.
    pub fn ports(&self) -> Arc<PortTable> {
        Arc::clone(&self.state.load().ports)
    }

    /// The current version (moves on every rule or port change).
    pub fn version(&self) -> u64 {
        self.state.load().rules.version
    }

    pub fn mac_learning(&self) -> &MacLearning {
        &self.mac
    }

    /// Adds a port; the version moves so installed flows get revalidated.
    pub fn add_port(&self, cfg: PortConfig) -> Result<Arc<Port>, OfprotoError> {
        let _g = self.lock();
        let (t, p) = self.state.load().ports.with_port(cfg)?;
        self.store_ports(t);
        Ok(p)
    }

    /// Removes a port, forgetting the MACs learned on it.
    pub fn del_port(&self, name: &str) -> Result<Arc<Port>, OfprotoError> {
        let _g = self.lock();
        let (t, p) = self.state.load().ports.without_port(name)?;
        self.store_ports(t);
        self.mac.flush_port(p.ofport);
        Ok(p)
    }

    /// Applies a batch of flow mods atomically (one new version). Returns
    /// the rules removed.
    pub fn apply_flow_mods(
        &self,
        mods: &[FlowMod],
        now_ms: u64,
    ) -> Result<Vec<Arc<Rule>>, OfprotoError> {
        let _g = self.lock();
        let (next, removed) = self.state.load().rules.apply(mods, now_ms)?;
        self.store_rules(next);
        Ok(removed)
    }

    fn parse(&self, text: &str, cmd: FlowModCommand) -> Result<FlowMod, OfprotoError> {
        let state = self.state.load();
        Ok(parse_flow_mod(text, cmd, &*state.ports)?)
    }

    /// `ovs-ofctl add-flow BRIDGE TEXT`.
    pub fn add_flow(&self, text: &str, now_ms: u64) -> Result<(), OfprotoError> {
        let fm = self.parse(text, FlowModCommand::Add)?;
        self.apply_flow_mods(&[fm], now_ms).map(|_| ())
    }

    /// `ovs-ofctl add-flows`: every line (blank lines and `#` comments
    /// skipped) in one version; an error names the line.
    pub fn add_flows(&self, text: &str, now_ms: u64) -> Result<(), OfprotoError> {
        let mut mods = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let fm = self.parse(l, FlowModCommand::Add).map_err(|e| match e {
                OfprotoError::Parse(p) => OfprotoError::Parse(ParseError::new(
                    p.field,
                    format!("{} (line {})", p.message, i + 1),
                )),
                other => other,
            })?;
            mods.push(fm);
        }
        self.apply_flow_mods(&mods, now_ms).map(|_| ())
    }

    /// `ovs-ofctl mod-flows [--strict] BRIDGE TEXT`.
    pub fn mod_flows(&self, text: &str, strict: bool, now_ms: u64) -> Result<(), OfprotoError> {
        let fm = self.parse(text, FlowModCommand::Modify { strict })?;
        self.apply_flow_mods(&[fm], now_ms).map(|_| ())
    }

    /// `ovs-ofctl del-flows [--strict] BRIDGE [TEXT]`; returns the
    /// removed rules.
    pub fn del_flows(
        &self,
        text: &str,
        strict: bool,
        now_ms: u64,
    ) -> Result<Vec<Arc<Rule>>, OfprotoError> {
        let fm = self.parse(text, FlowModCommand::Delete { strict })?;
        self.apply_flow_mods(&[fm], now_ms)
    }

    /// `ovs-ofctl dump-flows BRIDGE`.
    pub fn dump_flows(&self, now_ms: u64) -> String {
        let rules = self.state.load().rules.rules();
        self.format_flows(&rules, false, now_ms)
    }

    /// `ovs-ofctl dump-flows [--names] BRIDGE FILTER`: the rules the
    /// filter selects the way `del-flows` would (covering match, `table`,
    /// `cookie=V/M`, `out_port`); `names` prints port names.
    pub fn dump_flows_filtered(
        &self,
        filter: &str,
        names: bool,
        now_ms: u64,
    ) -> Result<String, OfprotoError> {
        let fm = self.parse(filter, FlowModCommand::Delete { strict: false })?;
        let rules = self.state.load().rules.select(&fm, false);
        Ok(self.format_flows(&rules, names, now_ms))
    }

    fn format_flows(&self, rules: &[Arc<Rule>], names: bool, now_ms: u64) -> String {
        let ports = self.ports();
        let namer: Option<&dyn ports::PortNamer> = if names { Some(&*ports) } else { None };
        let mut s = String::new();
        for r in rules {
            let dur = now_ms.saturating_sub(r.created_ms);
            let _ = write!(
                s,
                " cookie={:#x}, duration={}.{:03}s, table={}, n_packets={}, n_bytes={}, ",
                r.cookie,
                dur / 1000,
                dur % 1000,
                r.table_id,
                r.n_packets(),
                r.n_bytes()
            );
            if r.idle_timeout > 0 {
                let _ = write!(s, "idle_timeout={}, ", r.idle_timeout);
            }
            if r.hard_timeout > 0 {
                let _ = write!(s, "hard_timeout={}, ", r.hard_timeout);
            }
            let m = r.r#match.format(Some(r.priority), namer);
            let _ = writeln!(
                s,
                "{}{}actions={}",
                m,
                if m.is_empty() { "" } else { " " },
                actions::format_actions(&r.actions, namer)
            );
        }
        s
    }

    fn xlate(
        &self,
        key: &FlowKey,
        now_ms: u64,
        may_learn: bool,
        trace: Option<&mut Vec<xlate::TraceEvent>>,
    ) -> Translation {
        let state = self.state.load();
        let env = xlate::XlateEnv {
            rules: &state.rules,
            ports: &state.ports,
            mac: &self.mac,
            now_ms,
            may_learn,
            tnl: self.tnl.get().map(|t| &**t),
            bridge: &self.name,
        };
        xlate::translate(&env, key, trace)
    }

    /// Translates a missed packet (the upcall entry point). `key.in_port`
    /// is the datapath port. NORMAL learns the source MAC.
    pub fn translate(&self, key: &FlowKey, now_ms: u64) -> Translation {
        self.xlate(key, now_ms, true, None)
    }

    /// [`Ofproto::translate`] without side effects (revalidation, tests).
    pub fn translate_readonly(&self, key: &FlowKey, now_ms: u64) -> Translation {
        self.xlate(key, now_ms, false, None)
    }

    /// True when `t` may no longer be what a translation would give:
    /// the rules or ports changed, or (for NORMAL) the MAC table did.
    pub fn is_stale(&self, t: &Translation) -> bool {
        t.version != self.version()
            || (t.uses_mac_learning && t.mac_seq != self.mac.seq())
            || (t.uses_tunnel_state && t.tnl_seq != self.tunnel_seq())
    }

    /// The revalidator's decision for an installed megaflow: `key` is
    /// the key it was translated from, `installed` what was installed.
    pub fn revalidate(&self, key: &FlowKey, installed: &Translation, now_ms: u64) -> Revalidation {
        if !self.is_stale(installed) {
            return Revalidation::Unchanged;
        }
        let t = self.translate_readonly(key, now_ms);
        if t.mask != installed.mask {
            // A different mask is a different megaflow: remove it and let
            // the next packet upcall.
            Revalidation::Delete
        } else if t.actions == installed.actions {
            Revalidation::Keep(t)
        } else {
            Revalidation::Modify(t)
        }
    }

    /// `ofproto/trace BRIDGE FLOW` (the bridge is this one).
    pub fn trace(&self, flow: &str, now_ms: u64) -> Result<String, OfprotoError> {
        let ports = self.ports();
        let key = trace::parse_trace_flow(flow, &ports)?;
        let mut events = Vec::new();
        let t = self.xlate(&key, now_ms, false, Some(&mut events));
        Ok(trace::render(&self.name, &key, &events, &t, &ports))
    }

    /// Expires rules (idle/hard timeouts) and MAC entries at `now_ms`.
    pub fn run(&self, now_ms: u64) -> RunReport {
        let mut report = RunReport {
            expired_macs: self.mac.expire(now_ms),
            ..Default::default()
        };
        let _g = self.lock();
        if let Some((next, gone)) = self.state.load().rules.expire(now_ms) {
            self.store_rules(next);
            report.expired_rules = gone;
        }
        report
    }

    /// `ovs-appctl fdb/show BRIDGE`.
    pub fn fdb_show(&self, now_ms: u64) -> String {
        // OVS prints port numbers here.
        self.mac.format_fdb(None, now_ms)
    }

    /// `ovs-appctl fdb/flush BRIDGE`; returns how many entries went.
    pub fn fdb_flush(&self) -> usize {
        self.mac.flush()
    }

    /// Delivers a packet that a `controller` action sent up.
    pub fn packet_in(&self, p: PacketIn) {
        self.n_packet_in.fetch_add(1, Ordering::Relaxed);
        let mut q = self.packet_ins.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == PACKET_IN_QUEUE {
            q.pop_front();
        }
        q.push_back(p);
    }

    /// Takes the queued packet-ins.
    pub fn take_packet_ins(&self) -> Vec<PacketIn> {
        let mut q = self.packet_ins.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }

    /// Packets sent to the controller so far.
    pub fn n_packet_in(&self) -> u64 {
        self.n_packet_in.load(Ordering::Relaxed)
    }
}
