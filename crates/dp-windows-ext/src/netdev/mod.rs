//! `windows`: a port of the Hyper-V switch, reached through the shim.
//!
//! # How it works
//! Opening the port opens one control socket, says hello, finds the
//! Hyper-V port whose friendly name is `OVS-<port name>` (or exactly the
//! port name), and attaches one ring set per queue. A PMD thread then polls
//! the rx queue like any other driver: refill the fill ring from the free
//! list, consume up to a burst of punt descriptors, lend each frame to a
//! packet without a copy. A tx queue copies each packet into a free frame,
//! names this port as the destination, publishes the burst on the inject
//! ring, reaps the completion ring, and rings the doorbell only when the
//! shim asked for it (one syscall per burst at most, none while the shim
//! polls).
//!
//! # Threads
//! The rx side of a queue is owned by the PMD that opened it; the tx side
//! is behind a mutex because several PMDs may share a tx queue when there
//! are fewer queues than PMDs (one uncontended lock per burst). The
//! control socket is behind a mutex and never touched on the fast path.

mod frames;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dp_core::netdev::{
    Capabilities, LinkState, Netdev, NetdevError, NetdevInfo, NetdevStats, RxQueue, TxOutcome,
    TxQueue, check_qid,
};
use dp_core::packet::{MAX_BURST, PacketBatch, PacketPool, PoolConfig};

pub use frames::QueueFrames;

use crate::bad_input::{BadInput, BadInputCounters};
use crate::client::{Client, ClientError};
use crate::codec::VportInfo;
use crate::contract::{INJECT_MAX_PORTS, RING_NEED_WAKEUP, friendly_name};
use crate::device::Doorbell;
use crate::ring::{Consumer, InjectDesc, Layout, Producer, PuntDesc, index_from_bytes};

/// How to open a `windows` port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowsConfig {
    /// The device path (Windows) or emulator socket (elsewhere).
    pub device: String,
    pub n_queues: u32,
    /// Descriptors per ring (a power of two).
    pub ring_size: u32,
    /// Frames per queue region.
    pub n_frames: u32,
    pub frame_size: u32,
}

impl Default for WindowsConfig {
    fn default() -> Self {
        WindowsConfig {
            device: crate::device::default_path(),
            n_queues: 1,
            ring_size: 1024,
            n_frames: 4096,
            frame_size: 2048,
        }
    }
}

impl WindowsConfig {
    /// Options a `type = "windows"` port accepts: `device`, `n_rxq`,
    /// `ring_size`, `n_frames`. An unknown key or bad value is an error
    /// naming the field.
    pub fn from_options(options: &[(&str, &str)]) -> Result<WindowsConfig, String> {
        let mut config = WindowsConfig::default();
        for (key, value) in options {
            let number = || {
                value
                    .parse::<u32>()
                    .map_err(|_| format!("option {key}: `{value}` is not a number"))
            };
            match *key {
                "device" => config.device = value.to_string(),
                "n_rxq" => config.n_queues = number()?,
                "ring_size" => config.ring_size = number()?,
                "n_frames" => config.n_frames = number()?,
                _ => {
                    return Err(format!(
                        "option {key}: unknown for a windows port (device, n_rxq, ring_size, n_frames)"
                    ));
                }
            }
        }
        if config.n_queues == 0 || config.n_queues > 64 {
            return Err(format!(
                "option n_rxq: {} is not in 1..=64",
                config.n_queues
            ));
        }
        Layout::new(config.ring_size, config.n_frames, config.frame_size).map_err(|_| {
            "option ring_size/n_frames: ring_size must be a power of two in 8..=32768 and \
             n_frames in 1..=1048576"
                .to_string()
        })?;
        Ok(config)
    }
}

/// Opens a `windows` port named `name` with config-file `options` (what
/// the daemon calls for `type = "windows"`).
pub fn open_netdev(name: &str, options: &[(&str, &str)]) -> Result<Arc<dyn Netdev>, NetdevError> {
    let config = WindowsConfig::from_options(options).map_err(|reason| NetdevError::Device {
        port: name.to_string(),
        reason,
    })?;
    Ok(Arc::new(WindowsNetdev::open(name, &config)?))
}

#[derive(Debug, Default)]
struct Stats {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    rx_errors: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
    tx_errors: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    if n > 0 {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct QueueSlot {
    ring_id: u64,
    frames: Arc<QueueFrames>,
    rx: Mutex<Option<WindowsRxq>>,
    tx: Arc<Mutex<TxState>>,
}

/// A Hyper-V port through the shim.
#[derive(Debug)]
pub struct WindowsNetdev {
    name: String,
    vport: VportInfo,
    control: Mutex<Client>,
    queues: Vec<QueueSlot>,
    pool: PacketPool,
    stats: Arc<Stats>,
    bad: Arc<BadInputCounters>,
    link_up: AtomicBool,
}

fn device_error(port: &str, e: impl std::fmt::Display) -> NetdevError {
    NetdevError::Device {
        port: port.to_string(),
        reason: e.to_string(),
    }
}

impl WindowsNetdev {
    /// Opens the port; see the module docs.
    pub fn open(name: &str, config: &WindowsConfig) -> Result<WindowsNetdev, NetdevError> {
        let err =
            |e: ClientError| device_error(name, format!("windows shim at {}: {e}", config.device));
        let bad = Arc::new(BadInputCounters::default());
        let device = crate::device::open(&config.device)
            .map_err(|e| device_error(name, format!("cannot open {}: {e}", config.device)))?;
        let mut client = Client::connect(device, Arc::clone(&bad)).map_err(err)?;
        let vport = match client.vport_by_name(&friendly_name(name)).map_err(err)? {
            Some(v) => v,
            None => client.vport_by_name(name).map_err(err)?.ok_or_else(|| {
                device_error(
                    name,
                    format!(
                        "no Hyper-V port named `{}` (or `{name}`) on the switch",
                        friendly_name(name)
                    ),
                )
            })?,
        };
        let layout = Layout::new(config.ring_size, config.n_frames, config.frame_size)
            .map_err(|e| device_error(name, e))?;
        let n_queues = config.n_queues.min(vport.n_queues).max(1);
        let pool = PacketPool::new(
            format!("windows:{name}"),
            PoolConfig::metadata_only(layout.n_frames as usize * n_queues as usize),
        );
        let stats = Arc::new(Stats::default());
        let mut queues = Vec::new();
        for q in 0..n_queues {
            let (grant, region) = client
                .attach_ring(
                    vport.port_no,
                    q,
                    layout.n_desc,
                    layout.n_frames,
                    layout.frame_size,
                )
                .map_err(err)?;
            if let Err(b) = layout.check_region(&region) {
                bad.count(b);
                return Err(device_error(name, format!("ring region of queue {q}: {b}")));
            }
            let doorbell = client
                .doorbell(grant.ring_id)
                .map_err(|e| device_error(name, format!("doorbell: {e}")))?;
            let frames = QueueFrames::new(region, layout, Arc::clone(&bad));
            let region = &frames.region;
            let tx = TxState {
                inject: Producer::new(layout.inject, region),
                completion: Consumer::new(layout.completion, region),
                doorbell,
            };
            let rx = WindowsRxq {
                frames: Arc::clone(&frames),
                fill: Producer::new(layout.fill, region),
                punt: Consumer::new(layout.punt, region),
                pool: pool.clone(),
                port_no: vport.port_no,
                stats: Arc::clone(&stats),
            };
            queues.push(QueueSlot {
                ring_id: grant.ring_id,
                frames,
                rx: Mutex::new(Some(rx)),
                tx: Arc::new(Mutex::new(tx)),
            });
        }
        Ok(WindowsNetdev {
            name: name.to_string(),
            link_up: AtomicBool::new(vport.link_up),
            vport,
            control: Mutex::new(client),
            queues,
            pool,
            stats,
            bad,
        })
    }

    /// The Hyper-V port this netdev drives.
    pub fn vport(&self) -> &VportInfo {
        &self.vport
    }

    /// Malformed input from the shim, per reason.
    pub fn bad_input(&self) -> &BadInputCounters {
        &self.bad
    }

    /// Frames lent to packets now, over every queue (0 when every packet
    /// came back).
    pub fn frames_lent(&self) -> usize {
        self.queues.iter().map(|q| q.frames.lent()).sum()
    }

    /// The packet pool of received packets (its in-use count is the
    /// number of received packets still alive).
    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }

    /// Frames the shim holds now (on the fill ring, or injected and not
    /// yet completed).
    pub fn frames_with_shim(&self) -> usize {
        self.queues.iter().map(|q| q.frames.held_by_shim()).sum()
    }

    /// Frames on the free lists (the rest are with the shim or lent).
    pub fn frames_free(&self) -> usize {
        self.queues.iter().map(|q| q.frames.free_count()).sum()
    }
}

impl Drop for WindowsNetdev {
    fn drop(&mut self) {
        let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        for q in &self.queues {
            // The shim stops using the region; frames still lent keep
            // our mapping alive until their packets drop.
            let _ = control.detach_ring(q.ring_id);
        }
    }
}

impl Netdev for WindowsNetdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn type_name(&self) -> &'static str {
        "windows"
    }

    fn info(&self) -> NetdevInfo {
        NetdevInfo {
            n_rxq: self.queues.len(),
            n_txq: self.queues.len(),
            mac: self.vport.mac,
            mtu: self.vport.mtu.min(u32::from(u16::MAX)) as u16,
            capabilities: Capabilities::default(),
        }
    }

    fn link_state(&self) -> LinkState {
        let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(Some(v)) = control.vport_by_number(self.vport.port_no) {
            self.link_up.store(v.link_up, Ordering::Relaxed);
        }
        if self.link_up.load(Ordering::Relaxed) {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }

    fn stats(&self) -> NetdevStats {
        let s = &self.stats;
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetdevStats {
            rx_packets: l(&s.rx_packets),
            rx_bytes: l(&s.rx_bytes),
            rx_dropped: l(&s.rx_dropped),
            rx_errors: l(&s.rx_errors),
            tx_packets: l(&s.tx_packets),
            tx_bytes: l(&s.tx_bytes),
            tx_dropped: l(&s.tx_dropped),
            tx_errors: l(&s.tx_errors),
        }
    }

    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        check_qid(&self.name, qid, self.queues.len())?;
        let mut slot = self.queues[qid]
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rx = slot.take().ok_or_else(|| NetdevError::QueueTaken {
            port: self.name.clone(),
            qid,
        })?;
        Ok(Box::new(rx))
    }

    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        check_qid(&self.name, qid, self.queues.len())?;
        let q = &self.queues[qid];
        Ok(Box::new(WindowsTxq {
            frames: Arc::clone(&q.frames),
            state: Arc::clone(&q.tx),
            port_no: self.vport.port_no,
            stats: Arc::clone(&self.stats),
        }))
    }
}

/// The two halves of one queue over `frames`, without a device (fuzzing
/// and tests play the shim on the same region).
pub(crate) fn queue_pair(
    frames: &Arc<QueueFrames>,
    port_no: u32,
    pool: &PacketPool,
    doorbell: Box<dyn Doorbell>,
) -> (WindowsRxq, WindowsTxq) {
    let region = &frames.region;
    let layout = frames.layout;
    let stats = Arc::new(Stats::default());
    let rx = WindowsRxq {
        frames: Arc::clone(frames),
        fill: Producer::new(layout.fill, region),
        punt: Consumer::new(layout.punt, region),
        pool: pool.clone(),
        port_no,
        stats: Arc::clone(&stats),
    };
    let tx = WindowsTxq {
        frames: Arc::clone(frames),
        state: Arc::new(Mutex::new(TxState {
            inject: Producer::new(layout.inject, region),
            completion: Consumer::new(layout.completion, region),
            doorbell,
        })),
        port_no,
        stats,
    };
    (rx, tx)
}

/// Fill ring refills per call: enough for two bursts.
const REFILL: u32 = 2 * MAX_BURST as u32;

/// The rx side of one queue (owned by one PMD).
#[derive(Debug)]
pub struct WindowsRxq {
    frames: Arc<QueueFrames>,
    fill: Producer,
    punt: Consumer,
    pool: PacketPool,
    port_no: u32,
    stats: Arc<Stats>,
}

impl WindowsRxq {
    fn refill(&mut self) {
        let region = &self.frames.region;
        let free = match self.fill.free(region) {
            Ok(n) => n.min(REFILL),
            Err(b) => {
                self.frames.bad.count(b);
                return;
            }
        };
        let mut n = 0;
        while n < free {
            let Some(frame) = self.frames.take_free() else {
                break;
            };
            self.frames.give_to_shim(frame);
            self.fill.put(region, n, &frame.to_le_bytes());
            n += 1;
        }
        if n > 0 {
            self.fill.submit(region, n);
        }
    }
}

impl RxQueue for WindowsRxq {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError> {
        self.refill();
        let room = (MAX_BURST - batch.len()) as u32;
        let frames = Arc::clone(&self.frames);
        let region = &frames.region;
        let ready = match self.punt.available(region) {
            Ok(n) => n.min(room),
            Err(b) => {
                frames.bad.count(b);
                return Ok(0);
            }
        };
        let (mut got, mut bytes, mut dropped, mut errors) = (0, 0, 0, 0);
        for i in 0..ready {
            let desc = PuntDesc::from_bytes(self.punt.get(region, i));
            if frames.take_from_shim(desc.frame).is_err() {
                errors += 1;
                continue;
            }
            // The frame is ours again whatever else is wrong with it.
            let source = if desc.src_port == self.port_no {
                Ok(0)
            } else {
                Err(BadInput::WrongSourcePort)
            };
            let checked = frames
                .layout
                .check_frame(desc.frame, desc.offset, desc.len)
                .and(source);
            if let Err(b) = checked {
                frames.bad.count(b);
                frames.put_free(desc.frame);
                errors += 1;
                continue;
            }
            let len = usize::from(desc.len);
            match frames.lend(&self.pool, desc.frame, usize::from(desc.offset), len) {
                Some(packet) => {
                    // Room was checked above.
                    let _ = batch.push(packet);
                    got += 1;
                    bytes += len;
                }
                None => dropped += 1,
            }
        }
        if ready > 0 {
            self.punt.release(region, ready);
        }
        add(&self.stats.rx_packets, got);
        add(&self.stats.rx_bytes, bytes);
        add(&self.stats.rx_dropped, dropped);
        add(&self.stats.rx_errors, errors);
        Ok(got)
    }
}

#[derive(Debug)]
struct TxState {
    inject: Producer,
    completion: Consumer,
    doorbell: Box<dyn Doorbell>,
}

/// The tx side of one queue (may be shared by several PMDs).
#[derive(Debug)]
pub struct WindowsTxq {
    frames: Arc<QueueFrames>,
    state: Arc<Mutex<TxState>>,
    port_no: u32,
    stats: Arc<Stats>,
}

impl WindowsTxq {
    fn reap(&self, state: &mut TxState) {
        let region = &self.frames.region;
        let n = match state.completion.available(region) {
            Ok(n) => n,
            Err(b) => {
                self.frames.bad.count(b);
                return;
            }
        };
        for i in 0..n {
            let frame = index_from_bytes(state.completion.get(region, i));
            if self.frames.take_from_shim(frame).is_ok() {
                self.frames.put_free(frame);
            }
        }
        if n > 0 {
            state.completion.release(region, n);
        }
    }
}

impl TxQueue for WindowsTxq {
    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.reap(&mut state);
        let frames = &self.frames;
        let region = &frames.region;
        let mut room = match state.inject.free(region) {
            Ok(n) => n,
            Err(b) => {
                frames.bad.count(b);
                0
            }
        };
        let frame_size = frames.layout.frame_size as usize;
        let (mut sent, mut bytes, mut dropped) = (0u32, 0usize, 0usize);
        let mut ports = [0u32; INJECT_MAX_PORTS];
        ports[0] = self.port_no;
        for packet in batch.drain() {
            let len = packet.len();
            if room == 0 || len > frame_size || len > usize::from(u16::MAX) {
                dropped += 1;
                continue;
            }
            let Some(frame) = frames.take_free() else {
                dropped += 1;
                continue;
            };
            region.write(frames.layout.frame_offset(frame), packet.data());
            let desc = InjectDesc {
                frame,
                offset: 0,
                len: len as u16,
                n_ports: 1,
                ports,
            };
            frames.give_to_shim(frame);
            state.inject.put(region, sent, &desc.to_bytes());
            sent += 1;
            room -= 1;
            bytes += len;
        }
        if sent > 0 {
            state.inject.submit(region, sent);
            if state.inject.flags(region) & RING_NEED_WAKEUP != 0 && state.doorbell.ring().is_err()
            {
                self.stats.tx_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        add(&self.stats.tx_packets, sent as usize);
        add(&self.stats.tx_bytes, bytes);
        add(&self.stats.tx_dropped, dropped);
        TxOutcome {
            sent: sent as usize,
            dropped,
        }
    }
}
