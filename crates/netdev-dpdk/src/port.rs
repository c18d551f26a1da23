//! The `dpdk` port: one DPDK ethdev (a PCI NIC or any vdev devargs string),
//! configured with n_rxq/n_txq, descriptors, MTU and RSS, receiving into
//! the shared mbuf pool for its (socket, MTU).
//!
//! # Lifetime
//! [`DpdkNetdev`] and every queue opened from it hold one `Arc<PortShared>`;
//! the device is stopped, closed and (when this port plugged it) removed
//! when the last of them goes, so deleting a port under traffic never pulls
//! the device from under a polling thread. Mbufs already lent to packets
//! stay valid: their pool lives for the process.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dp_core::netdev::{
    Capabilities, LinkState, Netdev, NetdevError, NetdevInfo, NetdevStats, RxQueue, TxQueue,
    check_qid,
};
use dp_core::packet::{PacketPool, PoolConfig};
use dpdk_sys as sys;

use crate::ffi;
use crate::mempool::{self, Mempool};
use crate::queue::{DpdkRxq, DpdkTxq};

/// Smallest and largest MTU a `dpdk` port accepts (as OVS).
pub const MTU_MIN: u16 = 68;
pub const MTU_MAX: u16 = 9702;
/// OVS's default descriptor counts.
pub const DEFAULT_DESC: u16 = 2048;

const RSS_HF: u64 = (1 << 2) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 10) | (1 << 11);
const RX_OFFLOAD_RSS_HASH: u64 = 1 << 19;

/// How to open a `dpdk` port (the port's `options` in the daemon config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkConfig {
    /// `dpdk-devargs`: a PCI address or a vdev string such as
    /// `net_pcap0,rx_pcap=f.pcap,infinite_rx=1` or `net_null0,no-rx=1`.
    pub devargs: String,
    pub n_rxq: usize,
    pub n_txq: usize,
    pub n_rxq_desc: u16,
    pub n_txq_desc: u16,
    pub mtu: u16,
    /// Size of the shared mbuf pool when this port creates it (`None`:
    /// OVS-like sizing).
    pub n_mbufs: Option<u32>,
}

impl Default for DpdkConfig {
    fn default() -> DpdkConfig {
        DpdkConfig {
            devargs: String::new(),
            n_rxq: 1,
            n_txq: 1,
            n_rxq_desc: DEFAULT_DESC,
            n_txq_desc: DEFAULT_DESC,
            mtu: 1500,
            n_mbufs: None,
        }
    }
}

/// Why a port could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenError(pub String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

/// Ports currently open, so one device is not driven by two ports.
static OPEN_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

#[derive(Debug, Default)]
pub(crate) struct DriverCounters {
    /// Received mbufs dropped by the driver (no packet cell, chain could
    /// not be linearised).
    pub rx_dropped: AtomicU64,
    /// Packets dropped on transmit (ring full remainder, no mbuf for a
    /// copy, too big).
    pub tx_dropped: AtomicU64,
    /// Packets from other pools copied into an mbuf.
    pub tx_copied: AtomicU64,
    /// Multi-segment chains linearised on receive.
    pub rx_linearised: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct PortShared {
    pub name: String,
    pub port_id: u16,
    pub mempool: Arc<Mempool>,
    pub counters: DriverCounters,
    /// One lock per tx queue: several PMDs may share a queue when the
    /// port has fewer tx queues than PMDs (taken once per batch).
    pub tx_locks: Vec<Mutex<()>>,
    /// Packet cells for each rx queue, for mbufs that arrive from a pool
    /// other than the port's (their own private area holds no cell).
    pub rx_cells: Vec<PacketPool>,
    /// The device delivers RSS hashes (RX_OFFLOAD_RSS_HASH enabled): only
    /// then do receive queues look for one in each mbuf.
    pub rx_rss_hash: bool,
    plugged_here: bool,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // Every queue is gone (they hold this Arc), so nothing polls now.
        ffi::lsc_callback_unregister(self.port_id);
        if self.plugged_here {
            ffi::stop_close_remove(self.port_id);
        }
        if let Some(open) = OPEN_PORTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            open.remove(&self.port_id);
        }
        tracing::info!(port = %self.name, port_id = self.port_id, "dpdk port closed");
    }
}

/// A `dpdk` port.
#[derive(Debug)]
pub struct DpdkNetdev {
    shared: Arc<PortShared>,
    info: NetdevInfo,
    rx_taken: Vec<AtomicBool>,
}

fn err(name: &str, what: impl std::fmt::Display) -> OpenError {
    OpenError(format!("dpdk port {name}: {what}"))
}

impl DpdkNetdev {
    /// Opens (plugging when needed), configures and starts the device.
    pub fn open(name: &str, config: &DpdkConfig) -> Result<DpdkNetdev, OpenError> {
        if !crate::eal::is_initialized() {
            return Err(err(
                name,
                "DPDK is not initialised (no [datapath.dpdk] section?)",
            ));
        }
        if !(MTU_MIN..=MTU_MAX).contains(&config.mtu) {
            return Err(err(
                name,
                format!(
                    "unsupported MTU {} (a dpdk port takes {MTU_MIN} to {MTU_MAX})",
                    config.mtu
                ),
            ));
        }
        if config.devargs.is_empty() {
            return Err(err(name, "option dpdk-devargs is required"));
        }
        if config.n_rxq == 0 || config.n_txq == 0 || config.n_rxq > 1024 || config.n_txq > 1024 {
            return Err(err(name, "n_rxq and n_txq must be between 1 and 1024"));
        }
        let dev_name = config.devargs.split(',').next().unwrap_or_default().trim();
        let hotplug = ffi::HOTPLUG.lock().unwrap_or_else(|e| e.into_inner());
        let (port_id, plugged_here) = match ffi::port_by_name(dev_name) {
            Some(id) => (id, false),
            None => {
                ffi::dev_probe(&config.devargs)
                    .map_err(|e| err(name, format!("cannot attach {}: {e}", config.devargs)))?;
                let id = ffi::port_by_name(dev_name).ok_or_else(|| {
                    err(
                        name,
                        format!("{} attached but no ethdev named {dev_name}", config.devargs),
                    )
                })?;
                (id, true)
            }
        };
        drop(hotplug);
        {
            let mut open = OPEN_PORTS.lock().unwrap_or_else(|e| e.into_inner());
            if !open.get_or_insert_with(HashSet::new).insert(port_id) {
                return Err(err(
                    name,
                    format!("device {dev_name} is already used by another port"),
                ));
            }
        }
        // From here a failure must undo the reservation (and the plug).
        let result = Self::configure(name, config, port_id, plugged_here);
        if result.is_err() {
            if plugged_here {
                ffi::stop_close_remove(port_id);
            }
            if let Some(open) = OPEN_PORTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                open.remove(&port_id);
            }
        }
        result
    }

    fn configure(
        name: &str,
        config: &DpdkConfig,
        port_id: u16,
        plugged_here: bool,
    ) -> Result<DpdkNetdev, OpenError> {
        let dev = ffi::dev_info(port_id).map_err(|e| err(name, e))?;
        if config.n_rxq > usize::from(dev.max_rx_queues)
            || config.n_txq > usize::from(dev.max_tx_queues)
        {
            return Err(err(
                name,
                format!(
                    "{} rx / {} tx queues asked, the device has at most {} / {}",
                    config.n_rxq, config.n_txq, dev.max_rx_queues, dev.max_tx_queues
                ),
            ));
        }
        if dev.max_mtu != 0 && u32::from(config.mtu) > u32::from(dev.max_mtu) {
            return Err(err(
                name,
                format!(
                    "unsupported MTU {} (the device allows at most {})",
                    config.mtu, dev.max_mtu
                ),
            ));
        }
        let mut conf = sys::rte_eth_conf::default();
        conf.rxmode.mtu = u32::from(config.mtu);
        let rss_hf = dev.flow_type_rss_offloads & RSS_HF;
        if config.n_rxq > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // Link changes as events where the device has them (see `link`).
        let lsc = ffi::has_lsc_interrupt(&dev);
        if lsc {
            conf.intr_conf.set_lsc(1);
        }
        let rss_hash = dev.rx_offload_capa & RX_OFFLOAD_RSS_HASH != 0;
        if rss_hash {
            conf.rxmode.offloads |= RX_OFFLOAD_RSS_HASH;
        }
        ffi::configure(port_id, config.n_rxq as u16, config.n_txq as u16, &conf)
            .map_err(|e| err(name, format!("configure: {e}")))?;
        let socket = ffi::socket_id(port_id);
        let pool =
            mempool::get_or_create(socket, config.mtu, config.n_mbufs).map_err(|e| err(name, e))?;
        let clamp = |n: u16, lim: &sys::rte_eth_desc_lim| {
            let max = if lim.nb_max == 0 {
                u16::MAX
            } else {
                lim.nb_max
            };
            n.clamp(lim.nb_min.max(1), max)
        };
        let rx_desc = clamp(config.n_rxq_desc, &dev.rx_desc_lim);
        let tx_desc = clamp(config.n_txq_desc, &dev.tx_desc_lim);
        for q in 0..config.n_rxq as u16 {
            ffi::rx_queue_setup(port_id, q, rx_desc, socket, &pool)
                .map_err(|e| err(name, format!("rx queue {q}: {e}")))?;
        }
        for q in 0..config.n_txq as u16 {
            ffi::tx_queue_setup(port_id, q, tx_desc, socket)
                .map_err(|e| err(name, format!("tx queue {q}: {e}")))?;
        }
        if lsc {
            ffi::lsc_callback_register(port_id)
                .map_err(|e| err(name, format!("link state events: {e}")))?;
        }
        crate::link::reset(port_id);
        if let Err(e) = ffi::start(port_id) {
            ffi::lsc_callback_unregister(port_id);
            return Err(err(name, format!("start: {e}")));
        }
        ffi::promiscuous(port_id);
        tracing::info!(port = name, port_id, devargs = %config.devargs, n_rxq = config.n_rxq,
            n_txq = config.n_txq, mtu = config.mtu, pool = pool.name(), "dpdk port started");
        Ok(DpdkNetdev {
            info: NetdevInfo {
                n_rxq: config.n_rxq,
                n_txq: config.n_txq,
                mac: ffi::mac(port_id),
                mtu: config.mtu,
                capabilities: Capabilities {
                    rx_rss_hash: rss_hash,
                    ..Capabilities::default()
                },
            },
            rx_taken: (0..config.n_rxq).map(|_| AtomicBool::new(false)).collect(),
            shared: Arc::new(PortShared {
                name: name.to_string(),
                port_id,
                mempool: Arc::clone(&pool),
                counters: DriverCounters::default(),
                tx_locks: (0..config.n_txq).map(|_| Mutex::new(())).collect(),
                rx_cells: (0..config.n_rxq)
                    .map(|q| {
                        PacketPool::new(
                            format!("{name}-rxq{q}"),
                            PoolConfig::metadata_only(pool.info().n_mbufs as usize),
                        )
                    })
                    .collect(),
                rx_rss_hash: rss_hash,
                plugged_here,
            }),
        })
    }

    /// The ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.shared.port_id
    }

    /// The mbuf pool this port receives into.
    pub fn mempool(&self) -> &Arc<Mempool> {
        &self.shared.mempool
    }

    /// Mbufs received on this port and lent to packets that have not come
    /// back yet (sent or dropped): 0 once traffic has drained, whatever
    /// the device itself holds in its rings.
    pub fn packets_in_use(&self) -> usize {
        crate::queue::lent(self.shared.port_id)
    }

    /// DPDK's extended counters plus the driver's own.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        let c = &self.shared.counters;
        let mut x = ffi::xstats(self.shared.port_id);
        x.push((
            "ovs_rx_dropped".into(),
            c.rx_dropped.load(Ordering::Relaxed),
        ));
        x.push((
            "ovs_rx_linearised".into(),
            c.rx_linearised.load(Ordering::Relaxed),
        ));
        x.push((
            "ovs_tx_dropped".into(),
            c.tx_dropped.load(Ordering::Relaxed),
        ));
        x.push(("ovs_tx_copied".into(), c.tx_copied.load(Ordering::Relaxed)));
        x.push(("ovs_link_resets".into(), self.link_resets()));
        x
    }

    /// Link speed in Mbps as the device reports it.
    pub fn link_speed(&self) -> u32 {
        crate::link::changed(self.shared.port_id, crate::link::Source::Read).1
    }

    /// Link state changes since the port started (OVS's `link_resets`),
    /// from DPDK's events or seen when the state was read.
    pub fn link_resets(&self) -> u64 {
        crate::link::resets(self.shared.port_id)
    }
}

impl Netdev for DpdkNetdev {
    fn name(&self) -> &str {
        &self.shared.name
    }
    fn type_name(&self) -> &'static str {
        "dpdk"
    }
    fn info(&self) -> NetdevInfo {
        self.info.clone()
    }
    fn link_state(&self) -> LinkState {
        if crate::link::changed(self.shared.port_id, crate::link::Source::Read).0 {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }
    fn stats(&self) -> NetdevStats {
        let s = ffi::stats(self.shared.port_id);
        let c = &self.shared.counters;
        NetdevStats {
            rx_packets: s.ipackets,
            rx_bytes: s.ibytes,
            rx_dropped: s.imissed + s.rx_nombuf + c.rx_dropped.load(Ordering::Relaxed),
            rx_errors: s.ierrors,
            tx_packets: s.opackets,
            tx_bytes: s.obytes,
            tx_dropped: c.tx_dropped.load(Ordering::Relaxed),
            tx_errors: s.oerrors,
        }
    }
    /// The driver's own counters and `link_resets` (OVS shows that one as
    /// an Interface column; here it is also where `dpctl/show -s` and the
    /// metrics find it). DPDK's xstats stay in [`DpdkNetdev::xstats`]:
    /// their names are the device's, not static.
    fn custom_stats(&self) -> Vec<(&'static str, u64)> {
        let c = &self.shared.counters;
        vec![
            ("ovs_rx_dropped", c.rx_dropped.load(Ordering::Relaxed)),
            ("ovs_rx_linearised", c.rx_linearised.load(Ordering::Relaxed)),
            ("ovs_tx_dropped", c.tx_dropped.load(Ordering::Relaxed)),
            ("ovs_tx_copied", c.tx_copied.load(Ordering::Relaxed)),
            ("link_resets", self.link_resets()),
        ]
    }
    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        check_qid(&self.shared.name, qid, self.info.n_rxq)?;
        if self.rx_taken[qid].swap(true, Ordering::AcqRel) {
            return Err(NetdevError::QueueTaken {
                port: self.shared.name.clone(),
                qid,
            });
        }
        Ok(Box::new(DpdkRxq::new(Arc::clone(&self.shared), qid as u16)))
    }
    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        check_qid(&self.shared.name, qid, self.info.n_txq)?;
        Ok(Box::new(DpdkTxq::new(Arc::clone(&self.shared), qid as u16)))
    }
}
