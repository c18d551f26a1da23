//! Meters: token-bucket policers with drop bands and per-meter stats
//! (OVS `dp_netdev_run_meter`, OpenFlow meter semantics).
//!
//! # How it works
//! A meter has one or more bands, each a token bucket with a rate and a
//! burst size, counted either in kilobits or in packets. Buckets hold
//! fixed-point tokens so no division happens per packet: one bit is 10^6
//! units and one packet 10^9 units, so `elapsed_ns * rate` is exactly the
//! refill (rate in kbit/s or packets/s). A bucket is capped at its burst
//! (the rate when the burst is 0, as OVS) and starts full.
//!
//! Each packet is charged to every band whose bucket can pay for it; a
//! packet that some band cannot pay for is assigned to the exceeded band
//! with the highest rate and dropped (the only band type the datapath
//! implements), counted in that band's stats.
//!
//! The caller passes `now_ns` (monotonic); time going backwards refills
//! nothing. Meters belong to one PMD thread's executor; a meter shared by
//! several PMDs is configured on each (each polices its own share, as
//! OVS's per-PMD meter locks would otherwise serialize).

use crate::packet::{MAX_BURST, PacketBatch};

const UNITS_PER_BIT: u64 = 1_000_000;
const UNITS_PER_PACKET: u64 = 1_000_000_000;

/// What a meter's rates count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeterUnit {
    /// Rates in kbit/s, bursts in kbit.
    Kbps,
    /// Rates in packets/s, bursts in packets.
    Pktps,
}

/// A drop band's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandConfig {
    pub rate: u32,
    /// 0 means "same as the rate" (one second's worth).
    pub burst: u32,
}

/// A meter's configuration (`ovs-ofctl add-meter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterConfig {
    pub unit: MeterUnit,
    pub bands: Vec<BandConfig>,
}

/// Counters of one band.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BandStats {
    pub packets: u64,
    pub bytes: u64,
}

/// Counters of one meter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Packets and bytes that went through the meter (passed or not).
    pub packets: u64,
    pub bytes: u64,
    /// Per band, in configuration order: packets dropped by that band.
    pub bands: Vec<BandStats>,
}

#[derive(Clone, Debug)]
struct Band {
    rate: u64,
    cap: u64,
    bucket: u64,
}

#[derive(Clone, Debug)]
struct Meter {
    unit: MeterUnit,
    bands: Vec<Band>,
    last_ns: Option<u64>,
    stats: MeterStats,
}

/// The meters of one executor, by meter id.
#[derive(Clone, Debug, Default)]
pub struct MeterTable {
    meters: Vec<Option<Meter>>,
}

/// Most bands per meter.
pub const MAX_BANDS: usize = 8;

/// Most meters a table holds (meter ids are below this).
pub const MAX_METERS: u32 = 65536;

impl MeterTable {
    pub fn new() -> MeterTable {
        MeterTable::default()
    }

    /// Adds or replaces meter `id` (its buckets start full, its stats at
    /// zero). Control path: allocates.
    pub fn set(&mut self, id: u32, config: &MeterConfig) -> Result<(), String> {
        if id >= MAX_METERS {
            return Err(format!(
                "meter id {id} out of range (max {})",
                MAX_METERS - 1
            ));
        }
        if config.bands.is_empty() || config.bands.len() > MAX_BANDS {
            return Err(format!("meter {id}: 1 to {MAX_BANDS} bands required"));
        }
        if let Some(b) = config.bands.iter().find(|b| b.rate == 0) {
            return Err(format!("meter {id}: band rate must be non-zero ({b:?})"));
        }
        let per = match config.unit {
            MeterUnit::Kbps => 1000 * UNITS_PER_BIT,
            MeterUnit::Pktps => UNITS_PER_PACKET,
        };
        let bands: Vec<Band> = config
            .bands
            .iter()
            .map(|b| {
                let burst = if b.burst == 0 { b.rate } else { b.burst };
                let cap = u64::from(burst).saturating_mul(per);
                Band {
                    rate: u64::from(b.rate),
                    cap,
                    bucket: cap,
                }
            })
            .collect();
        let idx = id as usize;
        if self.meters.len() <= idx {
            self.meters.resize(idx + 1, None);
        }
        self.meters[idx] = Some(Meter {
            unit: config.unit,
            stats: MeterStats {
                bands: vec![BandStats::default(); bands.len()],
                ..MeterStats::default()
            },
            bands,
            last_ns: None,
        });
        Ok(())
    }

    /// Removes meter `id`; `false` when there was none.
    pub fn remove(&mut self, id: u32) -> bool {
        self.meters
            .get_mut(id as usize)
            .and_then(Option::take)
            .is_some()
    }

    /// Meter `id`'s counters.
    pub fn stats(&self, id: u32) -> Option<&MeterStats> {
        Some(&self.meters.get(id as usize)?.as_ref()?.stats)
    }

    /// Polices `batch` with meter `id` at `now_ns` and returns the bit set
    /// of packet indices to drop. A meter that does not exist passes
    /// everything, as in OVS.
    pub fn run(&mut self, id: u32, batch: &PacketBatch, now_ns: u64) -> u32 {
        let Some(Some(meter)) = self.meters.get_mut(id as usize) else {
            return 0;
        };
        let elapsed = match meter.last_ns {
            Some(last) => now_ns.saturating_sub(last),
            None => 0,
        };
        meter.last_ns = Some(meter.last_ns.map_or(now_ns, |l| l.max(now_ns)));
        for band in &mut meter.bands {
            let refill = elapsed.saturating_mul(band.rate);
            band.bucket = band.bucket.saturating_add(refill).min(band.cap);
        }
        let mut rates = [0u64; MAX_BANDS];
        for (r, band) in rates.iter_mut().zip(&meter.bands) {
            *r = band.rate;
        }
        let mut exceeded_band = [0usize; MAX_BURST];
        let mut drop = 0u32;
        for (i, packet) in batch.iter().enumerate() {
            let len = packet.len() as u64;
            meter.stats.packets += 1;
            meter.stats.bytes += len;
            let cost = match meter.unit {
                MeterUnit::Kbps => len * 8 * UNITS_PER_BIT,
                MeterUnit::Pktps => UNITS_PER_PACKET,
            };
            // The exceeded band with the highest rate decides.
            let mut exceeded: Option<usize> = None;
            for (b, band) in meter.bands.iter_mut().enumerate() {
                if band.bucket >= cost {
                    band.bucket -= cost;
                } else if exceeded.is_none_or(|x| band.rate > rates[x]) {
                    exceeded = Some(b);
                }
            }
            if let Some(b) = exceeded {
                exceeded_band[i] = b;
                drop |= 1 << i;
            }
        }
        for (i, packet) in batch.iter().enumerate() {
            if drop & (1 << i) != 0 {
                let s = &mut meter.stats.bands[exceeded_band[i]];
                s.packets += 1;
                s.bytes += packet.len() as u64;
            }
        }
        drop
    }
}
