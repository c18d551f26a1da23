//! Bridges: each is an ofproto-lite instance owning some datapath ports.
//! [`Bridges`] is the datapath's upcall handler: it finds the bridge of
//! the packet's input port and translates there.
//!
//! Rule statistics: a megaflow serves many packets without asking the
//! bridge, so the rules it came from are remembered by UFID at upcall time
//! and credited with the megaflow's packet and byte deltas each time the
//! daemon samples the datapath's flows ([`Bridges::credit_flow_stats`]),
//! as OVS's revalidators do.
//!
//! Every PMD thread upcalls through here, so the per-upcall path takes no
//! lock that all of them share for long: the port map is read under its
//! read lock without refcounting the bridge, and the rules to credit are
//! remembered in one of [`CREDIT_SHARDS`] maps picked by the UFID, so two
//! PMDs setting up flows at once rarely meet on the same mutex.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use dp_core::flow::FlowKey;
use dp_core::flow_table::ufid_from_match_memo;
use dp_core::packet::Packet;
use dp_pmd::pmd::FlowDump;
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use ofproto::Ofproto;

#[derive(Debug)]
struct RuleCredit {
    rules: ofproto::HitRules,
    /// The tunnel ports the megaflow counts on (see `crate::tunnel`).
    tunnel: Option<crate::tunnel::TunnelCredit>,
    packets: u64,
    bytes: u64,
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
}

type CreditMap = HashMap<u128, RuleCredit, BuildHasherDefault<UfidHasher>>;

/// The shard of the credits that holds `ufid` (its top bits: the hasher
/// folds the low ones).
fn credit_shard(ufid: u128) -> usize {
    (ufid >> 124) as usize % CREDIT_SHARDS
}

/// Every bridge of the daemon, as the datapath's upcall handler.
#[derive(Debug, Default)]
pub struct Bridges {
    /// Datapath port → its bridge.
    by_port: RwLock<HashMap<u32, Arc<Ofproto>>>,
    /// Bridges by name.
    by_name: RwLock<Vec<Arc<Ofproto>>>,
    /// The rules (and tunnel ports) each megaflow credits, by UFID, in
    /// [`CREDIT_SHARDS`] shards ([`credit_shard`]).
    credits: [Mutex<CreditMap>; CREDIT_SHARDS],
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
        self.by_port
            .write()
            .expect("bridges lock")
            .insert(port_no, bridge);
    }

    pub fn detach_port(&self, port_no: u32) {
        self.by_port.write().expect("bridges lock").remove(&port_no);
    }

    /// Credits rules with what their megaflows forwarded since the last
    /// call, and forgets megaflows that are gone.
    pub fn credit_flow_stats(&self, flows: &[FlowDump], now_ms: u64) {
        let mut totals: HashMap<u128, (u64, u64)> = HashMap::new();
        for f in flows {
            let t = totals.entry(f.ufid).or_default();
            t.0 += f.stats.packets;
            t.1 += f.stats.bytes;
        }
        let mut shards: Vec<_> = self
            .credits
            .iter()
            .map(|shard| shard.lock().expect("credits lock"))
            .collect();
        for credits in &mut shards {
            credits.retain(|ufid, _| totals.contains_key(ufid));
        }
        for (ufid, (packets, bytes)) in totals {
            if let Some(c) = shards[credit_shard(ufid)].get_mut(&ufid) {
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
        }
    }
}

impl Bridges {
    /// The translation, and for an upcall (`packet` given) the megaflow's
    /// UFID, computed here anyway to remember the rules to credit; the PMD
    /// installs under it instead of hashing the match again.
    fn translate_with_ufid(
        &self,
        key: &FlowKey,
        packet: Option<&Packet>,
        now_ms: u64,
    ) -> Result<(Translation, Option<u128>), UpcallError> {
        // Read under the map's read lock, not cloned out of it: a
        // refcount on the bridge would be one more cache line every PMD
        // writes on every upcall.
        let by_port = self.by_port.read().expect("bridges lock");
        let bridge = by_port
            .get(&key.in_port)
            .ok_or_else(|| UpcallError(format!("datapath port {} is on no bridge", key.in_port)))?;
        let mut t = match packet {
            Some(_) => bridge.translate(key, now_ms),
            None => bridge.translate_readonly(key, now_ms),
        };
        if let Some(err) = &t.error {
            return Err(UpcallError(format!("bridge {}: {err}", bridge.name())));
        }
        let mut ufid = None;
        if let Some(packet) = packet {
            // The upcalled packet itself is credited now; the megaflow's
            // later packets through credit_flow_stats.
            t.credit(1, packet.len() as u64, now_ms);
            let tunnel = self.tunnel_counters.credit_for(key.in_port, &t.actions);
            if let Some(tc) = &tunnel {
                self.tunnel_counters.credit(tc, 1, packet.len() as u64);
            }
            // The key need not be masked for its UFID (nor the mask's
            // in_port made exact): ufid_from_match does both.
            let id = ufid_from_match_memo(key, &t.mask);
            self.credits[credit_shard(id)]
                .lock()
                .expect("credits lock")
                .insert(
                    id,
                    RuleCredit {
                        // Moved, not cloned: nothing below reads them, and a
                        // clone was an allocation per flow setup.
                        rules: std::mem::take(&mut t.rules),
                        tunnel,
                        // The megaflow will count this packet too: start
                        // from it so it is not credited twice.
                        packets: 1,
                        bytes: packet.len() as u64,
                    },
                );
            ufid = Some(id);
        }
        if !t.install {
            // A neighbour miss: drop this packet, install nothing, so the
            // flow is translated again once the neighbour is known.
            return Ok((Translation::ExecuteOnly { actions: t.actions }, None));
        }
        // The table makes `in_port` exact itself, so this is the UFID of
        // the flow it installs for `t.mask`.
        Ok((
            Translation::Megaflow {
                mask: t.mask,
                actions: t.actions,
            },
            ufid,
        ))
    }
}

impl UpcallHandler for Bridges {
    fn translate(
        &self,
        key: &FlowKey,
        packet: Option<&Packet>,
        now_ms: u64,
    ) -> Result<Translation, UpcallError> {
        self.translate_with_ufid(key, packet, now_ms)
            .map(|(t, _)| t)
    }

    fn translate_upcall(
        &self,
        key: &FlowKey,
        packet: &Packet,
        now_ms: u64,
    ) -> Result<(Translation, Option<u128>), UpcallError> {
        self.translate_with_ufid(key, Some(packet), now_ms)
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
