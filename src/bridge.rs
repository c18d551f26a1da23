//! Bridges: each is an ofproto-lite instance owning some datapath ports.
//! [`Bridges`] is the datapath's upcall handler: it finds the bridge of
//! the packet's input port and translates there.
//!
//! # Rule statistics
//! A megaflow serves many packets without asking the bridge, so the rules
//! it came from are remembered at upcall time and credited with the
//! megaflow's packet and byte deltas each time the daemon samples the
//! datapath's flows, as OVS's revalidators do: [`Bridges::begin_credit_pass`],
//! then the flow dump, then [`Bridges::credit_flow_stats`]; and when the
//! datapath deletes a copy (revalidator, `dpctl/del-flow`, flush, port
//! removal, its PMD's exit) its final statistics arrive through
//! [`UpcallHandler::flow_removed`], which credits what it forwarded since
//! the last pass and forgets its entry, as OVS pushes a deleted flow's
//! stats; `dpctl/mod-flow --clear` likewise credits the copy through
//! [`UpcallHandler::flow_stats_cleared`] and restarts its baseline at
//! zero. Each entry's baseline moves under its shard's lock, so a pass
//! and a delete never credit the same packets twice. Entries are
//! keyed by UFID *and* PMD, as OVS's ukeys: every PMD that sees a
//! megaflow installs its own copy under the same UFID, each counting its
//! own packets from its own upcall, so each copy is credited against its
//! own baseline.
//!
//! An upcall records its entry *before* the PMD installs the flow, so a
//! dump can miss a flow whose entry is already here. Entries are therefore
//! stamped with the credit epoch current when they were recorded, and a
//! pass forgets only an entry that is absent from its dump **and** older
//! than the pass (its epoch below the one the pass began). Why that never
//! forgets a live flow's entry: a PMD (and the non-PMD thread) translates
//! and installs (or refuses) a flow within one `Pmd::poll_once` *or one
//! handled control message* (a `trace` runs its packet through
//! `process_batch`, upcall and install included: `upcall_and_install` in
//! dp-pmd's `pmd/install.rs`), and handles control messages, the dump
//! request among them, one whole message at a time and only between two
//! `poll_once` calls (`pmd/thread.rs` `run`). A message or iteration that
//! upcalled and left the install to a later one would break this. The
//! pass bumps the epoch before it sends the dump request. If the upcall's
//! epoch load came after the PMD received that request, it happens after
//! the bump and (by the atomic's coherence) reads the new epoch: the entry
//! is kept. Otherwise the whole `poll_once` or message of that upcall,
//! install included, ran before the PMD answered: the flow is in the dump
//! unless it was refused or deleted since, and then forgetting its entry
//! is right. The epoch involves no clock (the daemon's and the PMDs'
//! clocks are different epochs).
//!
//! A copy can also be deleted after a pass's dump and the megaflow set up
//! again on the same PMD (same UFID) before the pass credits: the new
//! upcall replaces the entry, and the dump's total is the old copy's.
//! Entries therefore carry their copy's creation time (the PMD's `now_ms`
//! of the upcall, which it installs with and the dump reports as
//! `created_ms`), and a pass credits an entry only from a dumped copy
//! created at that time. Deleted and set up again within the same
//! millisecond, the two copies are told apart by nothing: that pass may
//! credit the old copy's packets again.
//!
//! # Locks
//! Every PMD thread upcalls through here, so the per-upcall path takes no
//! lock that all of them share for long: the port map is an [`ArcSwap`]
//! snapshot read with a `load()` guard (no refcount written per upcall,
//! and a port attach never waits for translations in flight), and the
//! rules to credit are remembered in one of [`CREDIT_SHARDS`] maps picked
//! by the UFID, so two PMDs setting up flows at once rarely meet on the
//! same mutex. A credit pass locks one shard at a time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
use dp_core::flow::FlowKey;
use dp_core::flow_table::{FlowStats, ufid_from_match_memo};
use dp_core::packet::Packet;
use dp_pmd::pmd::FlowDump;
use dp_pmd::stats::PmdIdentity;
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler, Upcalled};
use ofproto::Ofproto;

#[derive(Debug)]
struct RuleCredit {
    rules: ofproto::HitRules,
    /// The tunnel ports the megaflow counts on (see `crate::tunnel`).
    /// Boxed: most megaflows touch no tunnel port, and inline it made the
    /// entry 128 bytes, which the map's insert copied through two
    /// `memcpy` calls (~60 instructions an upcall).
    tunnel: Option<Box<crate::tunnel::TunnelCredit>>,
    packets: u64,
    bytes: u64,
    /// The credit epoch when the entry was recorded (see the module doc).
    epoch: u64,
    /// The credit epoch when the copy's counters were last cleared (0:
    /// never; see [`Bridges::flow_stats_cleared`]): a pass that began at
    /// or before it may hold a dump from before the clear, and credits
    /// nothing.
    cleared_epoch: u64,
    /// When the PMD installs the copy this entry credits: the `now_ms` it
    /// upcalled with, which it installs with and which the flow dump
    /// reports as [`FlowDump::created_ms`]. A dumped copy of the same
    /// UFID on the same PMD with another creation time is an older copy,
    /// deleted since and replaced by the upcall that recorded this entry:
    /// its packets are not this entry's.
    created_ms: u64,
}

/// How many independently locked maps hold the rule credits.
pub const CREDIT_SHARDS: usize = 16;

/// Hashes a UFID, already a uniform 128-bit hash, by folding its halves
/// (the default SipHash cost ~100 instructions an upcall for nothing).
#[derive(Default)]
struct UfidHasher(u64);

impl Hasher for UfidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, ufid: u128) {
        self.0 ^= (ufid as u64) ^ ((ufid >> 64) as u64);
    }
    fn write_u64(&mut self, pmd: u64) {
        // The PMD half of a credit key: the UFID's bits are uniform, a
        // PMD's core number needs spreading.
        self.0 ^= pmd.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, port_no: u32) {
        // Datapath port numbers are small and dense: a multiply spreads
        // them over the table's top bits, which hashbrown uses.
        self.0 = u64::from(port_no).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A megaflow copy: its UFID and the PMD that installed it ([`pmd_key`]).
type CreditKey = (u128, u64);

type CreditMap = HashMap<CreditKey, RuleCredit, BuildHasherDefault<UfidHasher>>;

/// What a dump says a megaflow copy counted, and which copy it is.
#[derive(Clone, Copy, Debug)]
struct CopyTotal {
    packets: u64,
    bytes: u64,
    created_ms: u64,
}

/// A PMD as a credit key's second half.
fn pmd_key(pmd: PmdIdentity) -> u64 {
    match pmd {
        PmdIdentity::Pmd { numa_id, core_id } => ((numa_id as u64) << 32) ^ core_id as u64,
        PmdIdentity::Main => u64::MAX,
    }
}

/// Datapath port → its bridge.
type PortMap = HashMap<u32, Arc<Ofproto>, BuildHasherDefault<UfidHasher>>;

/// A credit pass, begun ([`Bridges::begin_credit_pass`]) before the flow
/// dump it credits from.
#[derive(Clone, Copy, Debug)]
#[must_use = "a pass credits nothing until given to credit_flow_stats"]
pub struct CreditPass {
    /// Entries recorded at an epoch below this one were recorded before
    /// the dump was requested.
    epoch: u64,
}

/// The shard of the credits that holds `ufid` (its top bits: the hasher
/// folds the low ones).
fn credit_shard(ufid: u128) -> usize {
    (ufid >> 124) as usize % CREDIT_SHARDS
}

/// Every bridge of the daemon, as the datapath's upcall handler.
#[derive(Debug, Default)]
pub struct Bridges {
    /// Datapath port → its bridge; replaced whole on a port change.
    by_port: ArcSwap<PortMap>,
    /// Bridges by name.
    by_name: RwLock<Vec<Arc<Ofproto>>>,
    /// The rules (and tunnel ports) each megaflow copy credits, by UFID
    /// and PMD, in [`CREDIT_SHARDS`] shards ([`credit_shard`]).
    credits: [Mutex<CreditMap>; CREDIT_SHARDS],
    /// The current credit epoch (see the module doc).
    credit_epoch: AtomicU64,
    /// Tunnel port rx/tx statistics, credited beside the rules.
    pub tunnel_counters: Arc<crate::tunnel::TunnelCounters>,
}

impl Bridges {
    pub fn new() -> Bridges {
        Bridges::default()
    }

    pub fn add_bridge(&self, bridge: Arc<Ofproto>) {
        self.by_name.write().expect("bridges lock").push(bridge);
    }

    pub fn bridge(&self, name: &str) -> Option<Arc<Ofproto>> {
        self.by_name
            .read()
            .expect("bridges lock")
            .iter()
            .find(|b| b.name() == name)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Ofproto>> {
        self.by_name.read().expect("bridges lock").clone()
    }

    /// Datapath port `port_no` belongs to `bridge`.
    pub fn attach_port(&self, port_no: u32, bridge: Arc<Ofproto>) {
        self.by_port.rcu(|map| {
            let mut map = PortMap::clone(map);
            map.insert(port_no, Arc::clone(&bridge));
            map
        });
    }

    pub fn detach_port(&self, port_no: u32) {
        self.by_port.rcu(|map| {
            let mut map = PortMap::clone(map);
            map.remove(&port_no);
            map
        });
    }

    /// Begins a credit pass: call it before dumping the datapath's flows,
    /// and give the dump with it to [`Self::credit_flow_stats`].
    pub fn begin_credit_pass(&self) -> CreditPass {
        CreditPass {
            epoch: self.credit_epoch.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    /// Credits rules with what their megaflows forwarded since the last
    /// pass, and forgets the megaflows that are gone: not in `flows` (a
    /// dump taken after `pass` began) and recorded before `pass` began.
    pub fn credit_flow_stats(&self, pass: CreditPass, flows: &[FlowDump], now_ms: u64) {
        // Totals by shard, so each shard is locked once, alone, and PMDs
        // upcalling into the others go on.
        // A PMD holds one copy of a UFID at a time: one total a key.
        let mut totals: [HashMap<CreditKey, CopyTotal, BuildHasherDefault<UfidHasher>>;
            CREDIT_SHARDS] = Default::default();
        for f in flows {
            totals[credit_shard(f.ufid)].insert(
                (f.ufid, pmd_key(f.pmd)),
                CopyTotal {
                    packets: f.stats.packets,
                    bytes: f.stats.bytes,
                    created_ms: f.created_ms,
                },
            );
        }
        for (shard, totals) in self.credits.iter().zip(totals) {
            let mut credits = shard.lock().expect("credits lock");
            credits.retain(|key, c| c.epoch >= pass.epoch || totals.contains_key(key));
            for (key, t) in totals {
                let Some(c) = credits.get_mut(&key) else {
                    continue;
                };
                // The dump shows an older copy, deleted after the dump and
                // replaced by a new upcall (RuleCredit::created_ms): its
                // packets were counted against the old entry's baseline,
                // not this one's.
                if t.created_ms != c.created_ms {
                    continue;
                }
                // The copy's counters were cleared after this pass began:
                // its dump may show the totals from before the clear,
                // which the clear credited already.
                if pass.epoch <= c.cleared_epoch {
                    continue;
                }
                self.credit_delta(c, t.packets, t.bytes, now_ms);
            }
        }
    }

    /// Credits `c`'s rules (and tunnel ports) with what its copy counted
    /// beyond the entry's baseline (`packets`, `bytes` in all), and moves
    /// the baseline there.
    fn credit_delta(&self, c: &mut RuleCredit, packets: u64, bytes: u64, now_ms: u64) {
        let (dp, db) = (
            packets.saturating_sub(c.packets),
            bytes.saturating_sub(c.bytes),
        );
        if dp > 0 {
            for r in &c.rules {
                r.credit(dp, db, now_ms);
            }
            if let Some(tc) = &c.tunnel {
                self.tunnel_counters.credit(tc, dp, db);
            }
        }
        c.packets = packets;
        c.bytes = bytes;
    }

    /// How many megaflows' credits are remembered.
    #[cfg(test)]
    fn credit_entries(&self) -> usize {
        self.credits
            .iter()
            .map(|s| s.lock().expect("credits lock").len())
            .sum()
    }
}

impl Bridges {
    /// The bridge of datapath port `in_port` in the port map `by_port`.
    fn bridge_of(by_port: &PortMap, in_port: u32) -> Result<&Ofproto, UpcallError> {
        by_port
            .get(&in_port)
            .map(|b| &**b)
            .ok_or_else(|| UpcallError(format!("datapath port {in_port} is on no bridge")))
    }
}

/// A failed translation as the PMD counts it.
fn xlate_error(bridge: &Ofproto, err: &ofproto::XlateError) -> UpcallError {
    UpcallError(format!("bridge {}: {err}", bridge.name()))
}

impl UpcallHandler for Bridges {
    /// Revalidation (`packet` is `None`: no side effect, nothing
    /// credited), or an upcall from a caller without a mask buffer (and
    /// PMD: its megaflow is credited as the non-PMD thread's; the PMDs
    /// call `translate_upcall`).
    fn translate(
        &self,
        key: &FlowKey,
        packet: Option<&Packet>,
        now_ms: u64,
    ) -> Result<Translation, UpcallError> {
        if let Some(packet) = packet {
            let mut mask = FlowKey::ZERO;
            let up = self.translate_upcall(key, packet, now_ms, PmdIdentity::Main, &mut mask)?;
            return Ok(if up.install {
                Translation::Megaflow {
                    mask,
                    actions: up.actions,
                }
            } else {
                Translation::ExecuteOnly {
                    actions: up.actions,
                }
            });
        }
        let by_port = self.by_port.load();
        let bridge = Self::bridge_of(&by_port, key.in_port)?;
        let t = bridge.translate_readonly(key, now_ms);
        if let Some(err) = &t.error {
            return Err(xlate_error(bridge, err));
        }
        Ok(if t.install {
            Translation::Megaflow {
                mask: t.mask,
                actions: t.actions,
            }
        } else {
            Translation::ExecuteOnly { actions: t.actions }
        })
    }

    /// The upcall: translates, credits the upcalled packet, and remembers
    /// the megaflow's rules under its UFID (computed here anyway, so the
    /// PMD installs under it instead of hashing the match again).
    fn translate_upcall(
        &self,
        key: &FlowKey,
        packet: &Packet,
        now_ms: u64,
        pmd: PmdIdentity,
        mask: &mut FlowKey,
    ) -> Result<Upcalled, UpcallError> {
        // A guard, not a clone of the map's or the bridge's Arc: a
        // refcount would be one more cache line every PMD writes on every
        // upcall.
        let by_port = self.by_port.load();
        let bridge = Self::bridge_of(&by_port, key.in_port)?;
        let mut t = bridge.translate(key, now_ms);
        if let Some(err) = &t.error {
            return Err(xlate_error(bridge, err));
        }
        // The upcalled packet itself is credited now; the megaflow's
        // later packets through credit_flow_stats.
        t.credit(1, packet.len() as u64, now_ms);
        let tunnel = self.tunnel_counters.credit_for(key.in_port, &t.actions);
        if let Some(tc) = &tunnel {
            self.tunnel_counters.credit(tc, 1, packet.len() as u64);
        }
        if !t.install {
            // A neighbour miss: drop this packet, install nothing, so the
            // flow is translated again once the neighbour is known; no
            // megaflow will count more packets, so nothing to remember.
            return Ok(Upcalled {
                actions: t.actions,
                install: false,
                ufid: None,
            });
        }
        *mask = t.mask;
        // The key need not be masked for its UFID (nor the mask's in_port
        // made exact): ufid_from_match does both. The table makes
        // `in_port` exact itself, so this is the UFID of the flow it
        // installs for the mask.
        let id = ufid_from_match_memo(key, mask);
        // Loaded before the PMD installs the flow: the module doc's
        // argument rests on that order.
        let epoch = self.credit_epoch.load(Ordering::Relaxed);
        self.credits[credit_shard(id)]
            .lock()
            .expect("credits lock")
            .insert(
                (id, pmd_key(pmd)),
                RuleCredit {
                    // Moved, not cloned: nothing below reads them, and a
                    // clone was an allocation per flow setup.
                    rules: std::mem::take(&mut t.rules),
                    tunnel: tunnel.map(Box::new),
                    // The megaflow will count this packet too: start from
                    // it so it is not credited twice.
                    packets: 1,
                    bytes: packet.len() as u64,
                    epoch,
                    cleared_epoch: 0,
                    // The PMD installs with the `now_ms` it upcalled with
                    // (dp-pmd's `upcall_and_install`).
                    created_ms: now_ms,
                },
            );
        Ok(Upcalled {
            actions: t.actions,
            install: true,
            ufid: Some(id),
        })
    }

    /// The copy's final packets since the last pass are credited, and its
    /// entry forgotten. Runs on the PMD's thread: it holds one shard's
    /// lock for a lookup and a remove (a pass holds a shard no longer
    /// than that shard's crediting).
    fn flow_removed(&self, ufid: u128, pmd: PmdIdentity, created_ms: u64, stats: &FlowStats) {
        let key = (ufid, pmd_key(pmd));
        let mut credits = self.credits[credit_shard(ufid)]
            .lock()
            .expect("credits lock");
        // An entry of another copy (created_ms, as in credit_flow_stats)
        // is left to the passes.
        if credits.get(&key).is_none_or(|c| c.created_ms != created_ms) {
            return;
        }
        let Some(mut c) = credits.remove(&key) else {
            return;
        };
        drop(credits);
        // Gone from the map, the entry is no pass's any more: crediting
        // it outside the lock cannot race one.
        self.credit_delta(&mut c, stats.packets, stats.bytes, stats.used_ms);
    }

    /// The copy's packets since the last pass are credited and its
    /// baseline goes back to zero, as its counters just did (else nothing
    /// would be credited until the copy passed its old total). Credited
    /// under the shard's lock: the entry stays, and a pass may be about
    /// to credit it. A pass that began before this reads the epoch may
    /// have dumped the totals from before the clear: it must not credit
    /// them against the zero baseline, so the entry remembers the epoch
    /// (`cleared_epoch`). A pass that begins after it sends its dump
    /// request after this load, and the PMD answers it after this
    /// message: its dump shows the cleared counters.
    fn flow_stats_cleared(&self, ufid: u128, pmd: PmdIdentity, created_ms: u64, stats: &FlowStats) {
        let key = (ufid, pmd_key(pmd));
        let mut credits = self.credits[credit_shard(ufid)]
            .lock()
            .expect("credits lock");
        let Some(c) = credits.get_mut(&key).filter(|c| c.created_ms == created_ms) else {
            return;
        };
        self.credit_delta(c, stats.packets, stats.bytes, stats.used_ms);
        (c.packets, c.bytes) = (0, 0);
        c.cleared_epoch = self.credit_epoch.load(Ordering::Relaxed);
    }

    fn version(&self) -> u64 {
        // Any rule, port or MAC-table change on any bridge.
        self.by_name
            .read()
            .expect("bridges lock")
            .iter()
            .fold(0u64, |v, b| {
                v.wrapping_mul(31)
                    .wrapping_add(b.version())
                    .wrapping_add(b.mac_learning().seq() << 32)
                    .wrapping_add(b.tunnel_seq().rotate_left(16))
            })
    }
}

#[cfg(test)]
mod tests;
