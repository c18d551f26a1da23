//! Bridges: each is an ofproto-lite instance owning some datapath ports.
//! [`Bridges`] is the datapath's upcall handler: it finds the bridge of
//! the packet's input port and translates there.
//!
//! Rule statistics: a megaflow serves many packets without asking the
//! bridge, so the rules it came from are remembered by UFID at upcall time
//! and credited with the megaflow's packet and byte deltas each time the
//! daemon samples the datapath's flows ([`Bridges::credit_flow_stats`]),
//! as OVS's revalidators do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use dp_core::flow::FlowKey;
use dp_core::flow_table::ufid_from_match;
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

/// Every bridge of the daemon, as the datapath's upcall handler.
#[derive(Debug, Default)]
pub struct Bridges {
    /// Datapath port → its bridge.
    by_port: RwLock<HashMap<u32, Arc<Ofproto>>>,
    /// Bridges by name.
    by_name: RwLock<Vec<Arc<Ofproto>>>,
    credits: Mutex<HashMap<u128, RuleCredit>>,
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

    fn bridge_of(&self, port_no: u32) -> Option<Arc<Ofproto>> {
        self.by_port
            .read()
            .expect("bridges lock")
            .get(&port_no)
            .cloned()
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
        let mut credits = self.credits.lock().expect("credits lock");
        credits.retain(|ufid, _| totals.contains_key(ufid));
        for (ufid, (packets, bytes)) in totals {
            if let Some(c) = credits.get_mut(&ufid) {
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
        let bridge = self
            .bridge_of(key.in_port)
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
            let mut mask = t.mask;
            mask.in_port = u32::MAX;
            let id = ufid_from_match(&key.masked(&mask), &mask);
            self.credits.lock().expect("credits lock").insert(
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
