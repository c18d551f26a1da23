//! The lookup cascade of one PMD thread: simple match → EMC → SMC →
//! megaflow classifier, for a whole batch at once.
//!
//! # What
//! [`Cascade::lookup_batch_mapped`] takes a batch of extracted keys with
//! their word maps and packet hashes (RSS or 5-tuple, see
//! [`prepare_batch_mapped`]) and fills, per
//! packet, a [`Disposition`]: the flow it hit and at which level, or a
//! miss for the upcall path. It keeps the counters OVS's
//! `dpif-netdev/pmd-stats-show` prints for these levels ([`LookupStats`]).
//!
//! # How
//! VPP style: each stage runs over the whole batch and records
//! dispositions, then the next stage takes the remaining misses (a `u32`
//! bitmap, one bit per packet):
//! 1. simple match, for ports whose flows are all simple (see
//!    [`crate::flow_table`]), then the EMC (skipped when
//!    `emc_insert_inv_prob` is 0);
//! 2. the SMC when enabled; a hit is offered to the EMC;
//! 3. the classifier of each `in_port` present among the misses (one
//!    batch call per port); a hit is offered to the EMC (with its insert
//!    probability) and to the SMC.
//!
//! Subtable re-ranking is driven from here: each call passes `now_ms` to
//! [`FlowTable::maybe_sort`], which re-sorts once per interval.
//!
//! # Invariants
//! - Every returned flow is live in the table at return time, and its
//!   megaflow matches the packet (every level verifies; none trusts a
//!   cached reference).
//! - Per call: `simple + emc + smc + megaflow hits + misses == packets`.
//!
//! # Thread story
//! One cascade (EMC + SMC + counters) per PMD thread beside that thread's
//! [`FlowTable`], all used through `&mut`; no allocation, no clock reads.
//! Flow statistics (packets, bytes, used, TCP flags) are credited by the
//! caller per flow group after execution ([`FlowTable::record_use`]), as
//! OVS does in `dp_netdev_flow_used`.

use crate::emc::{EMC_DEFAULT_ENTRIES, EMC_DEFAULT_INSERT_INV_PROB, Emc};
use crate::flow::hash::packet_rss_hash;
use crate::flow::simple::parse_simple_packet;
use crate::flow::{FlowKey, extract_mapped};
use crate::flow_table::{FlowRef, FlowTable};
use crate::packet::{MAX_BURST, PacketBatch};
use crate::smc::{SMC_DEFAULT_ENTRIES, Smc};

/// The level that found a packet's flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HitLevel {
    SimpleMatch,
    Emc,
    Smc,
    Megaflow,
}

/// What the cascade decided for one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Disposition {
    /// No megaflow matches: the packet goes to the upcall path.
    #[default]
    Miss,
    Hit {
        flow: FlowRef,
        level: HitLevel,
    },
}

impl Disposition {
    /// The flow hit, if any.
    pub fn flow(self) -> Option<FlowRef> {
        match self {
            Disposition::Hit { flow, .. } => Some(flow),
            Disposition::Miss => None,
        }
    }
}

/// Lookup counters, with the names `dpif-netdev/pmd-stats-show` uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Packets looked up.
    pub packets: u64,
    /// "simple match hits".
    pub simple_match_hits: u64,
    /// "emc hits".
    pub emc_hits: u64,
    /// "smc hits".
    pub smc_hits: u64,
    /// "megaflow hits".
    pub megaflow_hits: u64,
    /// Sum of subtable ranks over megaflow hits (OVS `masked_lookup`).
    pub subtable_lookups: u64,
    /// Packets that matched no flow. OVS splits these into "miss with
    /// success upcall" and "miss with failed upcall"; that split belongs
    /// to the upcall path.
    pub misses: u64,
}

impl LookupStats {
    /// "avg. subtable lookups per megaflow hit".
    pub fn avg_subtable_lookups_per_megaflow_hit(&self) -> f64 {
        if self.megaflow_hits == 0 {
            0.0
        } else {
            self.subtable_lookups as f64 / self.megaflow_hits as f64
        }
    }
}

impl std::fmt::Display for LookupStats {
    /// The cascade's lines of `pmd-stats-show`, in its order and format.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  simple match hits: {}", self.simple_match_hits)?;
        writeln!(f, "  emc hits: {}", self.emc_hits)?;
        writeln!(f, "  smc hits: {}", self.smc_hits)?;
        writeln!(f, "  megaflow hits: {}", self.megaflow_hits)?;
        writeln!(
            f,
            "  avg. subtable lookups per megaflow hit: {:.2}",
            self.avg_subtable_lookups_per_megaflow_hit()
        )?;
        writeln!(f, "  miss: {}", self.misses)
    }
}

/// Tunables of the caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CascadeConfig {
    /// EMC entries (power of two; OVS 8192).
    pub emc_entries: usize,
    /// OVS `emc-insert-inv-prob`: 0 disables the EMC, 1 always inserts.
    pub emc_insert_inv_prob: u32,
    /// OVS `smc-enable` (default false).
    pub smc_enabled: bool,
    /// SMC entries when enabled (OVS 1 << 20).
    pub smc_entries: usize,
    /// Seed of the caches' insert/replacement draws.
    pub seed: u32,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        CascadeConfig {
            emc_entries: EMC_DEFAULT_ENTRIES,
            emc_insert_inv_prob: EMC_DEFAULT_INSERT_INV_PROB,
            smc_enabled: false,
            smc_entries: SMC_DEFAULT_ENTRIES,
            seed: 0x0a5c_ade5,
        }
    }
}

/// The caches and counters of one PMD thread; see the module docs.
#[derive(Clone, Debug)]
pub struct Cascade {
    emc: Emc,
    smc: Smc,
    smc_entries: usize,
    seed: u32,
    stats: LookupStats,
}

impl Default for Cascade {
    fn default() -> Self {
        Cascade::new(CascadeConfig::default())
    }
}

impl Cascade {
    pub fn new(config: CascadeConfig) -> Cascade {
        let mut cascade = Cascade {
            emc: Emc::new(config.emc_entries, config.emc_insert_inv_prob, config.seed),
            smc: Smc::disabled(),
            smc_entries: config.smc_entries,
            seed: config.seed,
            stats: LookupStats::default(),
        };
        cascade.set_smc_enabled(config.smc_enabled);
        cascade
    }

    pub fn emc(&self) -> &Emc {
        &self.emc
    }

    pub fn emc_mut(&mut self) -> &mut Emc {
        &mut self.emc
    }

    pub fn smc(&self) -> &Smc {
        &self.smc
    }

    /// Turns the SMC on (allocating it, empty) or off (freeing it).
    pub fn set_smc_enabled(&mut self, enabled: bool) {
        if enabled == self.smc.is_enabled() {
            return;
        }
        self.smc = if enabled {
            Smc::new(self.smc_entries, self.seed.rotate_left(16) ^ 0x5a5a)
        } else {
            Smc::disabled()
        };
    }

    /// The counters since construction or the last reset.
    pub fn stats(&self) -> &LookupStats {
        &self.stats
    }

    /// `pmd-stats-clear`.
    pub fn reset_stats(&mut self) {
        self.stats = LookupStats::default();
    }

    /// Looks up `keys[i]` (packet hash `hashes[i]`) for every packet of the
    /// batch and writes `out[i]`. `now_ms` is the caller's monotonic
    /// clock in milliseconds (drives subtable re-ranking). The EMC
    /// compares whole keys; [`Cascade::lookup_batch_mapped`] is the fast
    /// path for extracted keys.
    ///
    /// # Panics
    /// When the slices differ in length or exceed [`MAX_BURST`].
    pub fn lookup_batch<A>(
        &mut self,
        table: &mut FlowTable<A>,
        keys: &[FlowKey],
        hashes: &[u32],
        now_ms: u64,
        out: &mut [Disposition],
    ) {
        let maps = [FlowKey::ALL_WORDS; MAX_BURST];
        let n = keys.len().min(MAX_BURST);
        self.lookup_batch_mapped(table, keys, &maps[..n], hashes, now_ms, out);
    }

    /// [`Cascade::lookup_batch`] for keys whose non-zero words are all in
    /// `maps[i]` (the word maps [`prepare_batch_mapped`] returns): the
    /// EMC compares only those words.
    ///
    /// # Panics
    /// When the slices differ in length or exceed [`MAX_BURST`].
    pub fn lookup_batch_mapped<A>(
        &mut self,
        table: &mut FlowTable<A>,
        keys: &[FlowKey],
        maps: &[u64],
        hashes: &[u32],
        now_ms: u64,
        out: &mut [Disposition],
    ) {
        let n = keys.len();
        assert!(
            n <= MAX_BURST && hashes.len() == n && maps.len() == n && out.len() >= n,
            "cascade batch: {n} keys, {} maps, {} hashes, {} outputs (max {MAX_BURST})",
            maps.len(),
            hashes.len(),
            out.len()
        );
        // Sliced to the batch, so the per-packet stores need no bounds
        // checks.
        let (out, maps, hashes) = (&mut out[..n], &maps[..n], &hashes[..n]);
        table.maybe_sort(now_ms);
        self.stats.packets += n as u64;

        // Stage 1: simple match, then EMC. A packet left pending gets its
        // `Miss` only if stage 3 finds nothing (one store, not two, for a
        // megaflow hit).
        let emc_on = self.emc.is_enabled();
        let mut pending = 0u32;
        let (mut simple_hits, mut emc_hits) = (0u64, 0u64);
        let mut port_cache: Option<(u32, bool)> = None;
        // Whether every key has the first key's in_port (a received batch:
        // stage 3 then needs no per-packet port test).
        let mut one_port = true;
        for (i, key) in keys.iter().enumerate() {
            let simple_on = match port_cache {
                Some((port, on)) if port == key.in_port => on,
                _ => {
                    one_port &= port_cache.is_none();
                    let on = table.simple_match_enabled(key.in_port);
                    port_cache = Some((key.in_port, on));
                    on
                }
            };
            let simple_hit = if simple_on {
                table.simple_lookup(key)
            } else {
                None
            };
            if let Some(flow) = simple_hit {
                out[i] = Disposition::Hit {
                    flow,
                    level: HitLevel::SimpleMatch,
                };
                simple_hits += 1;
                continue;
            }
            let emc_hit = if emc_on {
                self.emc.lookup_mapped(key, maps[i], hashes[i], table)
            } else {
                None
            };
            if let Some(flow) = emc_hit {
                out[i] = Disposition::Hit {
                    flow,
                    level: HitLevel::Emc,
                };
                emc_hits += 1;
                continue;
            }
            pending |= 1 << i;
        }
        self.stats.simple_match_hits += simple_hits;
        self.stats.emc_hits += emc_hits;

        // Stage 2: SMC.
        if pending != 0 && self.smc.is_enabled() {
            let mut bits = pending;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(flow) = self.smc.lookup(&keys[i], hashes[i], table) {
                    out[i] = Disposition::Hit {
                        flow,
                        level: HitLevel::Smc,
                    };
                    pending &= !(1 << i);
                    self.stats.smc_hits += 1;
                    self.emc.probabilistic_insert_mapped(
                        &keys[i],
                        Some(maps[i]),
                        hashes[i],
                        flow,
                        table,
                    );
                }
            }
        }

        // Stage 3: the classifier of each in_port among the misses.
        let mut found_index = [0u32; MAX_BURST];
        let mut todo = pending;
        while todo != 0 {
            let port = keys[todo.trailing_zeros() as usize].in_port;
            let mut group = 0u32;
            if one_port {
                group = todo;
            } else {
                let mut bits = todo;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    group |= u32::from(keys[i].in_port == port) << i;
                }
            }
            todo &= !group;
            let res = table.classify_batch(port, keys, group, &mut found_index);
            self.stats.megaflow_hits += u64::from(res.found.count_ones());
            self.stats.subtable_lookups += res.subtable_lookups;
            let missed = group & !res.found;
            self.stats.misses += u64::from(missed.count_ones());
            let mut bits = missed;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                out[i] = Disposition::Miss;
            }
            let mut bits = res.found;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let flow = table.flow_at(found_index[i]);
                out[i] = Disposition::Hit {
                    flow,
                    level: HitLevel::Megaflow,
                };
                self.emc.probabilistic_insert_mapped(
                    &keys[i],
                    Some(maps[i]),
                    hashes[i],
                    flow,
                    table,
                );
                self.smc.insert(hashes[i], flow);
            }
        }
    }
}

impl Cascade {
    /// The simple-match fast path for a batch just received on `in_port`
    /// (metadata reset by the driver, `in_port` set), as OVS 3.x serves a
    /// port whose flows are all simple: each packet's simple fields are
    /// read without extracting its key ([`crate::flow::simple`]) and
    /// looked up in the simple table, skipping the hash and the EMC.
    ///
    /// All or nothing: when every packet hits, `out[i]` gets its flow (a
    /// simple-match hit, counted) and `tcp_flags[i]` its TCP flags, and
    /// the count is returned; the packets' header offsets are written as
    /// extraction writes them, and their keys are never built. Otherwise
    /// (the port is not all-simple, a packet needs the full parse or
    /// misses) it returns `None` having counted nothing, and the caller
    /// takes the usual path ([`prepare_batch_mapped`], then
    /// [`Cascade::lookup_batch_mapped`]), which gives the same answer for
    /// every packet this one would have served.
    pub fn lookup_simple_rx<A>(
        &mut self,
        table: &mut FlowTable<A>,
        batch: &mut PacketBatch,
        in_port: u32,
        now_ms: u64,
        out: &mut [Disposition; MAX_BURST],
        tcp_flags: &mut [u16; MAX_BURST],
    ) -> Option<usize> {
        if !table.simple_match_enabled(in_port) {
            return None;
        }
        let mut n = 0;
        for (i, packet) in batch.iter_mut().enumerate() {
            let fields = parse_simple_packet(packet)?;
            let flow = table.simple_lookup_fields(in_port, packet.meta(), &fields)?;
            out[i] = Disposition::Hit {
                flow,
                level: HitLevel::SimpleMatch,
            };
            tcp_flags[i] = fields.tcp_flags;
            n = i + 1;
        }
        table.maybe_sort(now_ms);
        self.stats.packets += n as u64;
        self.stats.simple_match_hits += n as u64;
        Some(n)
    }
}

/// Extracts the key and the packet hash (NIC RSS hash, or the 5-tuple
/// hash when the NIC gave none) of every packet of `batch` into `keys` and
/// `hashes`, ready for [`Cascade::lookup_batch`]; returns the count.
pub fn prepare_batch(
    batch: &mut PacketBatch,
    keys: &mut [FlowKey; MAX_BURST],
    hashes: &mut [u32; MAX_BURST],
) -> usize {
    let mut maps = [0u64; MAX_BURST];
    prepare_batch_mapped(batch, keys, &mut maps, hashes)
}

/// [`prepare_batch`], also writing each key's word map into `maps`, ready
/// for [`Cascade::lookup_batch_mapped`].
pub fn prepare_batch_mapped(
    batch: &mut PacketBatch,
    keys: &mut [FlowKey; MAX_BURST],
    maps: &mut [u64; MAX_BURST],
    hashes: &mut [u32; MAX_BURST],
) -> usize {
    let mut n = 0;
    for (i, packet) in batch.iter_mut().enumerate() {
        maps[i] = extract_mapped(packet, &mut keys[i]);
        hashes[i] = packet_rss_hash(packet, &keys[i]);
        n = i + 1;
    }
    n
}

#[cfg(test)]
mod tests;
