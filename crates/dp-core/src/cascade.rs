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
//!    [`crate::flow_table`]), then the EMC while it is in use (see below;
//!    never when `emc_insert_inv_prob` is 0);
//! 2. the SMC when enabled; a hit is offered to the EMC;
//! 3. the classifier of each `in_port` present among the misses (one
//!    batch call per port); a hit is offered to the EMC (with its insert
//!    probability) and to the SMC.
//!
//! Subtable re-ranking is driven from here: each call passes `now_ms` to
//! [`FlowTable::maybe_sort`], which re-sorts once per interval.
//!
//! # SMC on demand (`smc-enable = "auto"`, the default)
//! The SMC pays when the classifier does not: with many subtables a
//! megaflow hit probes several of them (20 masks, uniform traffic: ~10
//! ranks a hit), while an SMC hit costs one bucket, one flow slot and one
//! rule whatever the subtable count. With one subtable the classifier
//! costs a bucket and a rule, and the SMC would only add its bucket. So
//! in auto mode the SMC is used while the classifier needs it: at each
//! re-sort, or once [`SMC_AUTO_SAMPLE`] megaflow hits have been seen
//! since the last decision (whichever comes first), the average subtable
//! rank of the megaflow hits since the last decision (OVS's "avg.
//! subtable lookups per megaflow hit") turns it on at
//! [`SMC_AUTO_ON_LOOKUPS`] or more and off below
//! [`SMC_AUTO_OFF_LOOKUPS`] (the gap keeps it from flapping). Fewer than
//! [`SMC_AUTO_MIN_HITS`] hits decide nothing, except that a table whose
//! ports have one subtable at most turns it off. While it is on, the
//! megaflow hits are its misses, which still measure the classifier.
//! The auto SMC is allocated the first time it turns on (once: a PMD
//! whose classifier never needs it never holds its memory) and kept when
//! it turns off, so later switches allocate nothing; entries left from
//! an earlier "on" period are verified like any other.
//!
//! # EMC on demand (`emc-enable = "auto"`, the default)
//! OVS always probes its EMC. Here a one-subtable classifier hit (one
//! masked hash, one bucket, one rule, the batch's probes prefetched
//! together) costs less than an EMC probe (two entry positions, each a
//! full key): DPDK bench, one PMD, 64-byte UDP, EMC on → off: 1,000 flows
//! (99.8 % EMC hits) 200 → 177 cycles a packet, 10k flows 230 → 175,
//! 100k flows 330 → 260. With many subtables the SMC serves the hits at
//! an EMC hit's cost. So in auto mode the EMC is in use only while the
//! megaflow hits average [`EMC_AUTO_ON_LOOKUPS`] or more subtable
//! lookups (off below [`EMC_AUTO_OFF_LOOKUPS`]) and the SMC is not in
//! use, decided with the SMC's decision (same points, same sample;
//! fewer hits than [`SMC_AUTO_MIN_HITS`] keep it as it is, or off with
//! one subtable a port). It starts unused. While unused it is neither
//! probed nor filled (the entries left are verified like any other when
//! it comes back). Its entry array comes from zeroed memory, so until
//! it is used it holds no resident memory, and when it is its pages
//! fault in as inserts touch them (see [`Emc::new`]). `On` is OVS's
//! behaviour. A batch that is one run of
//! one key ([`Cascade::lookup_whole_run`]) is looked up once whichever
//! level serves it, so one busy flow needs no EMC either.
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
use crate::flow::FlowKey;
use crate::flow::simple::parse_simple_packet;
use crate::flow_table::{FlowRef, FlowTable, SimpleKey};
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

/// Average subtable lookups per megaflow hit at or above which the auto
/// SMC turns on.
pub const SMC_AUTO_ON_LOOKUPS: f64 = 4.0;
/// Average subtable lookups per megaflow hit below which the auto SMC
/// turns off.
pub const SMC_AUTO_OFF_LOOKUPS: f64 = 2.0;
/// Fewest megaflow hits an auto decision is based on.
pub const SMC_AUTO_MIN_HITS: u64 = 1024;
/// Megaflow hits after which the auto SMC decides without waiting for the
/// next re-sort.
pub const SMC_AUTO_SAMPLE: u64 = 1 << 16;

/// Average subtable lookups per megaflow hit at or above which the auto
/// EMC turns on (while the SMC is not in use).
pub const EMC_AUTO_ON_LOOKUPS: f64 = 2.0;
/// Average subtable lookups per megaflow hit below which the auto EMC
/// turns off.
pub const EMC_AUTO_OFF_LOOKUPS: f64 = 1.5;

/// Whether a cache level is used: `smc-enable` (OVS's, plus `auto`) and
/// `emc-enable` (oxvs's; OVS always uses its EMC unless
/// `emc-insert-inv-prob` is 0). See the module docs for `auto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CacheMode {
    /// Never used (OVS `smc-enable=false`, OVS's SMC default).
    Off,
    /// Always used (OVS `smc-enable=true`; OVS's EMC).
    On,
    /// Used while the megaflow hits' average subtable lookups say the
    /// classifier needs it.
    #[default]
    Auto,
}

/// How `pmd-stats-show` names whether a cache level is in use now.
pub fn cache_state(active: bool) -> &'static str {
    if active { "active" } else { "inactive" }
}

/// `smc-enable`.
pub type SmcMode = CacheMode;
/// `emc-enable`.
pub type EmcMode = CacheMode;

impl CacheMode {
    /// The config value's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SmcMode::Off => "false",
            SmcMode::On => "true",
            SmcMode::Auto => "auto",
        }
    }
}

impl std::fmt::Display for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CacheMode {
    type Err = String;
    fn from_str(s: &str) -> Result<CacheMode, String> {
        match s {
            "false" | "off" => Ok(CacheMode::Off),
            "true" | "on" => Ok(CacheMode::On),
            "auto" => Ok(CacheMode::Auto),
            other => Err(format!("expected true, false or \"auto\", got {other:?}")),
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
    /// Whether the EMC is in use now (a state, as `smc_active`).
    pub emc_active: bool,
    /// Whether the SMC is in use now (a state, not a counter: a reset
    /// keeps it, totals over PMDs ignore it).
    pub smc_active: bool,
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
        writeln!(f, "  miss: {}", self.misses)?;
        writeln!(f, "  emc: {}", cache_state(self.emc_active))?;
        writeln!(f, "  smc: {}", cache_state(self.smc_active))
    }
}

/// Tunables of the caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CascadeConfig {
    /// EMC entries (power of two; OVS 8192).
    pub emc_entries: usize,
    /// OVS `emc-insert-inv-prob`: 0 disables the EMC, 1 always inserts.
    pub emc_insert_inv_prob: u32,
    /// `emc-enable`: auto (the default; see the module docs), or on
    /// always as OVS.
    pub emc: EmcMode,
    /// OVS `smc-enable`, plus auto (the default; see the module docs).
    pub smc: SmcMode,
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
            emc: EmcMode::Auto,
            smc: SmcMode::Auto,
            smc_entries: SMC_DEFAULT_ENTRIES,
            seed: 0x0a5c_ade5,
        }
    }
}

/// The caches and counters of one PMD thread; see the module docs.
#[derive(Clone, Debug)]
pub struct Cascade {
    emc: Emc,
    emc_mode: EmcMode,
    /// The EMC is looked up and filled (never while its insert
    /// probability is 0).
    emc_active: bool,
    smc: Smc,
    smc_entries: usize,
    smc_mode: SmcMode,
    /// The SMC is looked up and filled (allocated whenever this is true).
    smc_active: bool,
    /// Megaflow hits and their subtable lookups since the last auto
    /// decision.
    auto_hits: u64,
    auto_lookups: u64,
    /// The EMC hit every packet of the last batch (its entries are hot).
    emc_served_last: bool,
    /// [`Cascade::lookup_whole_run`] sorted and decided for a batch it
    /// then handed back: the batch's [`Cascade::lookup_batch_runs`] must
    /// not do it again (a second sort in one interval is not a no-op).
    lookup_started: bool,
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
            emc_mode: EmcMode::Off,
            emc_active: false,
            smc: Smc::disabled(),
            smc_entries: config.smc_entries,
            smc_mode: SmcMode::Off,
            smc_active: false,
            auto_hits: 0,
            auto_lookups: 0,
            emc_served_last: false,
            lookup_started: false,
            seed: config.seed,
            stats: LookupStats::default(),
        };
        cascade.set_smc_mode(config.smc);
        cascade.set_emc_mode(config.emc);
        cascade
    }

    pub fn emc(&self) -> &Emc {
        &self.emc
    }

    /// The EMC itself; changing its insert probability to or from 0
    /// takes effect at once (a 0 keeps it unused whatever the mode).
    pub fn emc_mut(&mut self) -> &mut Emc {
        &mut self.emc
    }

    /// Sets the EMC mode: `On` uses it from the next batch, `Off` stops,
    /// `Auto` starts unused and decides from the next megaflow hits.
    pub fn set_emc_mode(&mut self, mode: EmcMode) {
        self.emc_mode = mode;
        self.auto_hits = 0;
        self.auto_lookups = 0;
        self.set_emc_active(mode == EmcMode::On);
    }

    /// The configured EMC mode.
    pub fn emc_mode(&self) -> EmcMode {
        self.emc_mode
    }

    /// Whether the EMC is in use now: looked up and filled (always in
    /// `On`, never in `Off`, as last decided in `Auto`; never while its
    /// insert probability is 0).
    #[inline]
    pub fn emc_active(&self) -> bool {
        self.emc_active && self.emc.is_enabled()
    }

    fn set_emc_active(&mut self, active: bool) {
        self.emc_active = active;
        self.stats.emc_active = self.emc_active();
        self.emc_served_last = false;
    }

    /// Offers a flow just found or installed for `key` to the EMC (with
    /// its insert probability) when the EMC is in use.
    #[inline]
    pub fn offer_emc<A>(
        &mut self,
        key: &FlowKey,
        map: u64,
        hash: u32,
        flow: FlowRef,
        table: &FlowTable<A>,
    ) {
        if self.emc_active {
            self.emc
                .probabilistic_insert_mapped(key, Some(map), hash, flow, table);
        }
    }

    pub fn smc(&self) -> &Smc {
        &self.smc
    }

    /// Turns the SMC on or off for good ([`SmcMode::On`] /
    /// [`SmcMode::Off`]).
    pub fn set_smc_enabled(&mut self, enabled: bool) {
        self.set_smc_mode(if enabled { SmcMode::On } else { SmcMode::Off });
    }

    /// Sets the SMC mode: `On` allocates the SMC (empty) if it is not,
    /// `Off` frees it. `Auto` starts inactive and decides from the next
    /// megaflow hits.
    pub fn set_smc_mode(&mut self, mode: SmcMode) {
        if mode == SmcMode::Off {
            self.smc = Smc::disabled();
        }
        self.smc_mode = mode;
        self.auto_hits = 0;
        self.auto_lookups = 0;
        self.set_smc_active(mode == SmcMode::On);
    }

    /// The configured SMC mode.
    pub fn smc_mode(&self) -> SmcMode {
        self.smc_mode
    }

    /// Whether the SMC is in use now (always in `On`, never in `Off`, as
    /// last decided in `Auto`).
    pub fn smc_active(&self) -> bool {
        self.smc_active
    }

    fn set_smc_active(&mut self, active: bool) {
        if active && !self.smc.is_enabled() {
            self.smc = Smc::new(self.smc_entries, self.seed.rotate_left(16) ^ 0x5a5a);
        }
        self.smc_active = active;
        self.stats.smc_active = active;
    }

    /// The auto decisions (see the module docs), from the megaflow hits
    /// since the last one; `sorted` says whether the table just re-sorted.
    /// The SMC's first: the EMC is not used beside an SMC in use.
    fn decide_caches<A>(&mut self, table: &FlowTable<A>, sorted: bool) {
        if !(sorted || self.auto_hits >= SMC_AUTO_SAMPLE) {
            return;
        }
        let measured = (self.auto_hits >= SMC_AUTO_MIN_HITS)
            .then(|| self.auto_lookups as f64 / self.auto_hits as f64);
        let several_subtables = table.max_port_subtables() > 1;
        // (is it on now, the average at which it turns on, and off).
        let decide = |on: bool, on_at: f64, off_below: f64| match measured {
            Some(avg) if on => avg >= off_below,
            Some(avg) => avg >= on_at,
            None => on && several_subtables,
        };
        if self.smc_mode == SmcMode::Auto {
            let active = decide(self.smc_active, SMC_AUTO_ON_LOOKUPS, SMC_AUTO_OFF_LOOKUPS);
            self.set_smc_active(active);
        }
        if self.emc_mode == EmcMode::Auto {
            let active = !self.smc_active
                && decide(self.emc_active, EMC_AUTO_ON_LOOKUPS, EMC_AUTO_OFF_LOOKUPS);
            self.set_emc_active(active);
        }
        self.auto_hits = 0;
        self.auto_lookups = 0;
    }

    /// Counts `hits` megaflow hits that took `lookups` subtable lookups
    /// in all: in the statistics, and in the auto modes' sample.
    #[inline(always)]
    fn count_megaflow_hits(&mut self, hits: u64, lookups: u64) {
        self.stats.megaflow_hits += hits;
        self.stats.subtable_lookups += lookups;
        self.auto_hits += hits;
        self.auto_lookups += lookups;
    }

    /// The counters since construction or the last reset.
    pub fn stats(&self) -> &LookupStats {
        &self.stats
    }

    /// `pmd-stats-clear` (the SMC's state is kept).
    pub fn reset_stats(&mut self) {
        self.stats = LookupStats {
            emc_active: self.emc_active(),
            smc_active: self.smc_active,
            ..LookupStats::default()
        };
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
    #[inline]
    pub fn lookup_batch_mapped<A>(
        &mut self,
        table: &mut FlowTable<A>,
        keys: &[FlowKey],
        maps: &[u64],
        hashes: &[u32],
        now_ms: u64,
        out: &mut [Disposition],
    ) {
        self.lookup_batch_runs(table, keys, maps, hashes, 0, now_ms, out);
    }

    /// [`Cascade::lookup_batch_mapped`] given the run mask of
    /// [`prepare_batch_runs`]: bit `i` of `runs` says packet `i`'s key, map
    /// and hash are packet `i - 1`'s, and such a packet takes packet
    /// `i - 1`'s simple-match or EMC answer without a probe (stage 1 reads
    /// nothing else and changes nothing, so the probe would give the same
    /// answer). Same dispositions and counters as without the mask.
    /// Callgrind, DPDK bench `1flow`: 556 -> 484 instructions a packet.
    ///
    /// # Panics
    /// When the slices differ in length or exceed [`MAX_BURST`].
    #[allow(
        clippy::too_many_arguments,
        reason = "the batch's parallel arrays, as lookup_batch_mapped's"
    )]
    pub fn lookup_batch_runs<A>(
        &mut self,
        table: &mut FlowTable<A>,
        keys: &[FlowKey],
        maps: &[u64],
        hashes: &[u32],
        runs: u32,
        now_ms: u64,
        out: &mut [Disposition],
    ) {
        let n = keys.len();
        debug_assert!(
            runs & 1 == 0 && (n >= 32 || runs >> n == 0),
            "run mask {runs:#x} for {n} packets: bit 0 set or bits past the batch"
        );
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
        self.start_batch(table, n, now_ms);

        // Stage 1: simple match, then EMC. A packet left pending gets its
        // `Miss` only if stage 3 finds nothing (one store, not two, for a
        // megaflow hit).
        let emc_on = self.emc_active();
        // Every packet's EMC entries first: with more flows than entries
        // most probes miss the cache, and asked for together those misses
        // overlap instead of stalling the loop below one by one. Not after
        // a batch the EMC served whole: its entries are hot, and the
        // prefetches would only cost instructions (~17 a packet, 1 flow).
        if emc_on && !self.emc_served_last {
            for &hash in hashes {
                self.emc.prefetch(hash);
            }
        }
        // Two copies of the loop, so the per-packet path tests neither
        // whether the EMC is on nor holds what only the other one needs.
        let stage1 = if emc_on {
            self.stage1::<true, A>(table, keys, maps, hashes, runs, out)
        } else {
            self.stage1::<false, A>(table, keys, maps, hashes, runs, out)
        };
        let Stage1 {
            mut pending,
            simple_hits,
            emc_hits,
            one_port,
        } = stage1;
        self.stats.simple_match_hits += simple_hits;
        self.stats.emc_hits += emc_hits;
        self.emc_served_last = emc_hits == n as u64;

        // Stage 2: SMC.
        let smc_on = self.smc_active;
        if pending != 0 && smc_on {
            let mut found = [None; MAX_BURST];
            let hits = self
                .smc
                .lookup_batch(keys, hashes, pending, table, &mut found);
            pending &= !hits;
            self.stats.smc_hits += u64::from(hits.count_ones());
            let mut bits = hits;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(flow) = found[i] else {
                    continue;
                };
                out[i] = Disposition::Hit {
                    flow,
                    level: HitLevel::Smc,
                };
                self.offer_emc(&keys[i], maps[i], hashes[i], flow, table);
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
            let hits = u64::from(res.found.count_ones());
            self.count_megaflow_hits(hits, res.subtable_lookups);
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
                self.offer_emc(&keys[i], maps[i], hashes[i], flow, table);
                if smc_on {
                    self.smc.insert(hashes[i], flow);
                }
            }
        }
    }
}

impl Cascade {
    /// What a batch lookup does before probing ([`Cascade::lookup_batch_runs`],
    /// [`Cascade::lookup_whole_run`]): [`Cascade::start_lookup`], and
    /// counts the batch's `n` packets.
    #[inline(always)]
    fn start_batch<A>(&mut self, table: &mut FlowTable<A>, n: usize, now_ms: u64) {
        self.start_lookup(table, now_ms);
        self.stats.packets += n as u64;
    }

    /// Re-ranks the subtables when due and lets the auto modes decide,
    /// unless [`Cascade::lookup_whole_run`] just did for this batch.
    #[inline(always)]
    fn start_lookup<A>(&mut self, table: &mut FlowTable<A>, now_ms: u64) {
        if std::mem::take(&mut self.lookup_started) {
            return;
        }
        let sorted = table.maybe_sort(now_ms);
        if self.smc_mode == SmcMode::Auto || self.emc_mode == EmcMode::Auto {
            self.decide_caches(table, sorted);
        }
    }

    /// Stage 1 of [`Cascade::lookup_batch_mapped`]: simple match, then
    /// the EMC when `EMC` (this batch probes it); writes the hits to
    /// `out` and returns the rest as pending.
    #[inline(always)]
    fn stage1<const EMC: bool, A>(
        &self,
        table: &FlowTable<A>,
        keys: &[FlowKey],
        maps: &[u64],
        hashes: &[u32],
        runs: u32,
        out: &mut [Disposition],
    ) -> Stage1 {
        let mut pending = 0u32;
        let (mut simple_hits, mut emc_hits) = (0u64, 0u64);
        // The port of the packets so far and whether its flows are all
        // simple, re-read only when the port changes (a received batch:
        // never). Plain locals, so the per-packet test is one compare.
        let mut port = keys.first().map_or(0, |k| k.in_port);
        let mut simple_on = !keys.is_empty() && table.simple_match_enabled(port);
        // Whether every key has the first key's in_port (a received batch:
        // stage 3 then needs no per-packet port test).
        let mut one_port = true;
        // The last probed packet's answer (flow and level; `None`:
        // pending), for the run packets after it. A local, not a read of
        // `out[i - 1]`: copying the disposition back out and matching its
        // level cost ~20 instructions a packet.
        let mut last: Option<(FlowRef, HitLevel)> = None;
        for (i, key) in keys.iter().enumerate() {
            if runs & (1 << i) != 0 {
                // Key, map and hash are packet `i - 1`'s (so is its port).
                match last {
                    Some((flow, level)) => {
                        out[i] = Disposition::Hit { flow, level };
                        if level == HitLevel::SimpleMatch {
                            simple_hits += 1;
                        } else {
                            emc_hits += 1;
                        }
                    }
                    None => pending |= 1 << i,
                }
                continue;
            }
            if key.in_port != port {
                port = key.in_port;
                one_port = false;
                simple_on = table.simple_match_enabled(port);
            }
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
                last = Some((flow, HitLevel::SimpleMatch));
                simple_hits += 1;
                continue;
            }
            if EMC
                && let (Some(&map), Some(&hash)) = (maps.get(i), hashes.get(i))
                && let Some(flow) = self.emc.lookup_mapped(key, map, hash, table)
            {
                out[i] = Disposition::Hit {
                    flow,
                    level: HitLevel::Emc,
                };
                last = Some((flow, HitLevel::Emc));
                emc_hits += 1;
                continue;
            }
            last = None;
            pending |= 1 << i;
        }
        Stage1 {
            pending,
            simple_hits,
            emc_hits,
            one_port,
        }
    }
}

/// What stage 1 leaves for the next stages.
struct Stage1 {
    /// Packets neither level served.
    pending: u32,
    simple_hits: u64,
    emc_hits: u64,
    /// Every key has the first key's in_port.
    one_port: bool,
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
        // The last probed packet's simple key and its flow: a packet with
        // the same key has the same flow (nothing changes the table in
        // this loop), without the hash-table probe. Callgrind, DPDK bench
        // `100k-inport` (every packet one in_port-only flow): 486.7 ->
        // 447.1 instructions a packet.
        let mut last: Option<(SimpleKey, FlowRef)> = None;
        for (i, packet) in batch.iter_mut().enumerate() {
            let fields = parse_simple_packet(packet)?;
            let key = FlowTable::<A>::simple_key_of_fields(in_port, packet.meta(), &fields);
            let flow = match last {
                Some((probed, flow)) if probed == key => flow,
                _ => {
                    let flow = table.simple_lookup_key(&key)?;
                    last = Some((key, flow));
                    flow
                }
            };
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

impl Cascade {
    /// [`Cascade::lookup_batch_runs`] for a batch of `n` packets that is
    /// one run (run mask bits 1 to `n - 1`: every packet has the first
    /// one's key, map and hash; [`crate::flow::same::Runs::is_whole`]),
    /// given only the first packet's key, map and hash: the other slots
    /// need not hold their keys ([`crate::flow::same::prepare_runs_deferred`]).
    ///
    /// When the first packet is served by the simple-match table, the
    /// EMC, or (with the EMC not in use) the SMC or the classifier,
    /// `lookup_batch_runs` gives every packet of the run that answer, and
    /// so does this, probing once: it returns the flow and level every
    /// packet's disposition would be, with the same effects (table sorted
    /// when due, the auto decisions, the counters with the run's
    /// subtable lookups, the subtable's hits, the SMC insert, the
    /// EMC-served flag). Otherwise (a miss, or an EMC miss, whose per
    /// packet inserts are left to the batch path) it returns `None`
    /// having counted nothing, and the caller takes `lookup_batch_runs`
    /// with the keys materialised, which does not sort or decide again.
    /// Test `a_whole_run_gets_what_lookup_batch_runs_gives`.
    pub fn lookup_whole_run<A>(
        &mut self,
        table: &mut FlowTable<A>,
        key: &FlowKey,
        map: u64,
        hash: u32,
        n: usize,
        now_ms: u64,
    ) -> Option<(FlowRef, HitLevel)> {
        assert!(
            n <= MAX_BURST,
            "cascade batch of {n} packets (max {MAX_BURST})"
        );
        self.start_lookup(table, now_ms);
        let runs = n as u64;
        let emc_on = self.emc_active();
        let hit = if let Some(flow) = table
            .simple_match_enabled(key.in_port)
            .then(|| table.simple_lookup(key))
            .flatten()
        {
            self.stats.simple_match_hits += runs;
            (flow, HitLevel::SimpleMatch)
        } else if emc_on {
            let Some(flow) = self.emc.lookup_mapped(key, map, hash, table) else {
                self.lookup_started = true;
                return None;
            };
            self.stats.emc_hits += runs;
            (flow, HitLevel::Emc)
        } else if let Some(flow) = self
            .smc_active
            .then(|| self.smc.lookup(key, hash, table))
            .flatten()
        {
            self.stats.smc_hits += runs;
            (flow, HitLevel::Smc)
        } else if let Some((index, rank)) = table.classify_run(key.in_port, key, n as u32) {
            self.count_megaflow_hits(runs, runs * u64::from(rank));
            let flow = table.flow_at(index);
            if self.smc_active {
                self.smc.insert(hash, flow);
            }
            (flow, HitLevel::Megaflow)
        } else {
            self.lookup_started = true;
            return None;
        };
        self.stats.packets += runs;
        self.emc_served_last = hit.1 == HitLevel::Emc;
        Some(hit)
    }
}

/// Extracts the key and the packet hash (NIC RSS hash, or the 5-tuple
/// hash when the NIC gave none) of every packet of `batch` into `keys` and
/// `hashes`, ready for [`Cascade::lookup_batch`]; returns the count. Any
/// contents of `keys` are overwritten.
pub fn prepare_batch(
    batch: &mut PacketBatch,
    keys: &mut [FlowKey; MAX_BURST],
    hashes: &mut [u32; MAX_BURST],
) -> usize {
    let mut maps = [FlowKey::ALL_WORDS; MAX_BURST];
    prepare_batch_mapped(batch, keys, &mut maps, hashes)
}

/// [`prepare_batch`], also writing each key's word map into `maps`, ready
/// for [`Cascade::lookup_batch_mapped`].
///
/// `keys` and `maps` are slots kept from batch to batch: on entry
/// `maps[i]` must name every non-zero word of `keys[i]` (what this
/// function left there, or zero keys with maps 0, or
/// [`FlowKey::ALL_WORDS`] for unknown keys), so that each extraction
/// zeroes only what the slot's previous key had beyond the new one's
/// words ([`crate::flow::extract_reusing`]) instead of all 41 words, and a plain
/// packet's 5-tuple hash comes from its extraction. Callgrind, DPDK bench
/// `1flow`: 722 -> 667 instructions a packet in `Pmd::poll_once`.
pub fn prepare_batch_mapped(
    batch: &mut PacketBatch,
    keys: &mut [FlowKey; MAX_BURST],
    maps: &mut [u64; MAX_BURST],
    hashes: &mut [u32; MAX_BURST],
) -> usize {
    prepare_batch_runs(batch, keys, maps, hashes).0
}

/// [`prepare_batch_mapped`], also returning the run mask: bit `i` set
/// when packet `i`'s key, map and hash are packet `i - 1`'s. A packet
/// whose headers are the previous packet's takes its key by a few word
/// compares instead of an extraction ([`crate::flow::same`]). Callgrind,
/// DPDK bench `1flow`: see `flow::same`.
#[inline]
pub fn prepare_batch_runs(
    batch: &mut PacketBatch,
    keys: &mut [FlowKey; MAX_BURST],
    maps: &mut [u64; MAX_BURST],
    hashes: &mut [u32; MAX_BURST],
) -> (usize, u32) {
    crate::flow::same::prepare_runs(batch, keys, maps, hashes)
}

#[cfg(test)]
mod tests;
