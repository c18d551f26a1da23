//! The `afxdp` port: a Linux interface driven through AF_XDP sockets, one
//! per queue. Each socket has its own UMEM (as OVS's `netdev-afxdp`), or,
//! when the port is opened with a [`UmemGroup`], shares one with the
//! group's other sockets ([`shared`]): a packet received on one port and
//! sent out of another of the same UMEM then goes out without a copy.
//!
//! # Opening a port
//! 1. Resolve the interface, check its MTU against the frame size and its
//!    rx-queue count against `n_rxq`.
//! 2. Clear a stale program (see [`xdp`]), load ours and its XSKMAP.
//! 3. Walk the mode ladder of the configured `xdp-mode`: `best-effort`
//!    tries native with zero-copy, then native (copy), then generic;
//!    the other modes try just their own step. A step attaches the program
//!    in its mode (bpf_link) and binds one socket per queue with its copy
//!    flag; the first step where everything succeeds wins and is logged,
//!    with the reasons the earlier ones failed.
//! 4. Put each socket in the XSKMAP at its queue index.
//!
//! # Offloads, and what the hosts behind a port must set
//! An AF_XDP frame is one Ethernet frame of at most [`max_mtu`] bytes with
//! no metadata. So:
//! - no TSO/GSO super-frames: the kernel turns segmentation offload off by
//!   itself on a veth whose peer runs a native XDP program (the peer's
//!   "fix features" hook); in generic mode the sending side needs
//!   `ethtool -K IFACE tso off gso off`;
//! - no checksum offload: a packet the sending stack left `CHECKSUM_PARTIAL`
//!   reaches the socket with only the pseudo-header sum in its TCP/UDP
//!   checksum, and no flag says so (XDP has no rx metadata for the
//!   checksum state). The receiver drops it as corrupt — TCP never
//!   connects, while ping and checksum-less UDP work. The sending
//!   interface needs `ethtool -K IFACE tx off` (which also turns TSO off).
//!   The port recognises such packets ([`crate::csum::is_partial`], on
//!   the first packet of each received burst: a sample, so the fast path
//!   pays one header walk per burst), counts them and warns (at most once
//!   a minute per queue), so the cause is visible; it does not rewrite
//!   them, since nothing tells a partial checksum from a corrupt one that
//!   happens to equal the pseudo-header sum. (`system` ports are told, and
//!   complete them.)
//!
//! # Invariants
//! - Every UMEM frame is accounted (see [`umem`]); a port's frames are
//!   all back once its packets are dropped, whatever the order of port
//!   removal and packet drops.
//! - The XDP program is attached exactly while the [`AfxdpNetdev`] lives
//!   (bpf_link), so removing the port detaches it.
//!
//! # Threads
//! The netdev is shared; each rx queue belongs to its polling thread; tx
//! queues are shared handles over one locked tx state per queue.

pub mod queue;
pub mod ring;
pub mod shared;
pub mod umem;
pub mod xdp;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use dp_core::netdev::{
    Capabilities, LinkState, Netdev, NetdevError, NetdevInfo, NetdevStats, RxQueue, TxQueue,
    check_qid,
};

use crate::error::{OpenCause, OpenError};
use crate::stats::QueueStats;
use crate::sys::{self, XdpLinkMode};
use queue::{AfxdpRxq, AfxdpTxq, QueueGeometry, RxParts, TxState, UmemSource, Xsk, XskSocket};
pub use shared::UmemGroup;
use umem::UmemWatch;
use xdp::{XdpLink, XdpProgram};

/// Space the kernel keeps in front of received data (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;
const ETH_OVERHEAD: u32 = 14 + 4;

/// The `xdp-mode` option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native with zero-copy, else native, else generic.
    #[default]
    BestEffort,
    NativeWithZerocopy,
    Native,
    Generic,
}

impl XdpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::BestEffort => "best-effort",
            XdpMode::NativeWithZerocopy => "native-with-zerocopy",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }

    fn ladder(self) -> &'static [XdpMode] {
        match self {
            XdpMode::BestEffort => &[
                XdpMode::NativeWithZerocopy,
                XdpMode::Native,
                XdpMode::Generic,
            ],
            XdpMode::NativeWithZerocopy => &[XdpMode::NativeWithZerocopy],
            XdpMode::Native => &[XdpMode::Native],
            XdpMode::Generic => &[XdpMode::Generic],
        }
    }

    fn link_mode(self) -> XdpLinkMode {
        match self {
            XdpMode::Generic => XdpLinkMode::Generic,
            _ => XdpLinkMode::Native,
        }
    }

    fn bind_flags(self) -> u16 {
        match self {
            XdpMode::NativeWithZerocopy => libc::XDP_ZEROCOPY,
            _ => libc::XDP_COPY,
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for XdpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "best-effort" => XdpMode::BestEffort,
            "native-with-zerocopy" => XdpMode::NativeWithZerocopy,
            "native" => XdpMode::Native,
            "generic" => XdpMode::Generic,
            _ => {
                return Err(format!(
                    "xdp-mode {s:?}: expected best-effort, native-with-zerocopy, native or generic"
                ));
            }
        })
    }
}

/// Options of an `afxdp` port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfxdpConfig {
    /// Queues to bind (`n_rxq`); tx queues are the same sockets.
    pub n_rxq: usize,
    pub xdp_mode: XdpMode,
    /// `use-need-wakeup`: kick the kernel only when a ring asks.
    pub use_need_wakeup: bool,
    /// UMEM frames per queue.
    pub frames_per_queue: u32,
    /// Entries of the fill and rx rings (`n_rxq_desc`, a power of two):
    /// how long a burst the kernel can queue while the polling thread is
    /// away (preempted, busy elsewhere) before it counts `rx_ring_full`.
    pub rx_ring_size: u32,
    /// Entries of the tx and completion rings (`n_txq_desc`, a power of
    /// two).
    pub tx_ring_size: u32,
    /// The MTU to give the interface (the port's `mtu` key); `None` keeps
    /// the interface's own. Either way it must fit a frame ([`max_mtu`]).
    pub mtu: Option<u32>,
    /// The group whose UMEMs the port's sockets share (`shared-umem`);
    /// `None`: a UMEM per queue. The option parser
    /// ([`crate::afxdp_config`]) joins [`UmemGroup::process`] by default.
    pub umem_group: Option<UmemGroup>,
}

impl Default for AfxdpConfig {
    fn default() -> Self {
        AfxdpConfig {
            n_rxq: 1,
            xdp_mode: XdpMode::BestEffort,
            use_need_wakeup: true,
            frames_per_queue: DEFAULT_RING_SIZE * 2,
            rx_ring_size: DEFAULT_RING_SIZE,
            tx_ring_size: DEFAULT_RING_SIZE,
            mtu: None,
            umem_group: None,
        }
    }
}

/// Ring entries of each ring by default (as OVS: libxdp's default 2048).
pub const DEFAULT_RING_SIZE: u32 = 2048;

/// The ring sizes `n_rxq_desc` and `n_txq_desc` may take.
pub const RING_SIZES: std::ops::RangeInclusive<u32> = 64..=16384;

impl AfxdpConfig {
    /// Sets the fill/rx ring size and gives the UMEM twice as many frames
    /// (a full fill ring and a full rx ring at once), never fewer than the
    /// default.
    pub fn set_rx_ring_size(&mut self, size: u32) {
        self.rx_ring_size = size;
        self.frames_per_queue = (2 * size).max(2 * DEFAULT_RING_SIZE);
    }
}

/// Frame size: one page, as the kernel wants for copy and zero-copy mode.
pub const FRAME_SIZE: u32 = 4096;

/// The largest MTU an AF_XDP port carries: a received frame holds the
/// kernel's headroom plus the whole Ethernet frame (with a VLAN tag), and
/// there is no multi-buffer support (one packet, one frame).
pub const fn max_mtu() -> u32 {
    FRAME_SIZE - XDP_PACKET_HEADROOM - ETH_OVERHEAD
}

#[derive(Debug)]
struct QueueSlot {
    socket: Arc<XskSocket>,
    rx: Mutex<Option<RxParts>>,
    tx: Arc<Mutex<TxState>>,
    stats: Arc<QueueStats>,
}

/// An open AF_XDP port; see the module docs.
#[derive(Debug)]
pub struct AfxdpNetdev {
    name: String,
    mac: [u8; 6],
    mtu: u16,
    mode: XdpMode,
    need_wakeup: bool,
    queues: Vec<QueueSlot>,
    /// Detaches the program when dropped (declared before the program).
    _link: XdpLink,
    _program: XdpProgram,
}

impl AfxdpNetdev {
    /// Opens interface `name` as an AF_XDP port.
    pub fn open(name: &str, config: &AfxdpConfig) -> Result<AfxdpNetdev, OpenError> {
        if config.n_rxq == 0
            || !config.rx_ring_size.is_power_of_two()
            || !config.tx_ring_size.is_power_of_two()
            || config.frames_per_queue < 2 * config.rx_ring_size
        {
            return Err(OpenError::new(
                name,
                OpenCause::BadConfig(format!(
                    "n_rxq must be ≥ 1, ring sizes powers of two and frames ≥ 2 × rx ring size \
                     (n_rxq {}, rx ring {}, tx ring {}, frames {})",
                    config.n_rxq, config.rx_ring_size, config.tx_ring_size, config.frames_per_queue
                )),
            ));
        }
        let max_mtu = max_mtu();
        if let Some(mtu) = config.mtu
            && mtu > max_mtu
        {
            // Refused before the interface is touched.
            return Err(OpenError::new(
                name,
                OpenCause::MtuTooLarge { mtu, max: max_mtu },
            ));
        }
        let ifindex =
            sys::ifindex(name).map_err(|e| OpenError::io(name, "looking up the interface", e))?;
        let mut mtu = sys::if_mtu(name).map_err(|e| OpenError::io(name, "reading the MTU", e))?;
        if let Some(wanted) = config.mtu
            && wanted != mtu
        {
            // Before the program is attached: a driver checks the MTU
            // against its XDP limits at attach time.
            sys::if_set_mtu(name, wanted)
                .map_err(|e| OpenError::io(name, "setting the MTU from the config", e))?;
            tracing::info!("port {name}: MTU {mtu} -> {wanted} (config)");
            mtu = wanted;
        }
        if mtu > max_mtu {
            return Err(OpenError::new(
                name,
                OpenCause::MtuTooLarge { mtu, max: max_mtu },
            ));
        }
        let mac =
            sys::if_mac(name).map_err(|e| OpenError::io(name, "reading the MAC address", e))?;
        let available = rx_queue_count(name);
        if let Some(available) = available
            && config.n_rxq > available
        {
            return Err(OpenError::new(
                name,
                OpenCause::TooManyQueues {
                    requested: config.n_rxq,
                    available,
                },
            ));
        }
        // Sockets need the device up; bringing it up is what a switch port
        // wants anyway.
        sys::if_set_up(name).map_err(|e| OpenError::io(name, "bringing the interface up", e))?;
        if let Some(line) = xdp::clear_stale_program(name, ifindex)? {
            tracing::warn!("{line}");
        }
        let program = XdpProgram::load(name, config.n_rxq as u32)?;
        let geometry = QueueGeometry {
            n_frames: config.frames_per_queue,
            frame_size: FRAME_SIZE,
            rx_ring_size: config.rx_ring_size,
            tx_ring_size: config.tx_ring_size,
        };
        let mut refusals: Vec<String> = Vec::new();
        for &mode in config.xdp_mode.ladder() {
            let link = match program.attach(ifindex, mode.link_mode()) {
                Ok(link) => link,
                Err(err) => {
                    if matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                        return Err(OpenError::io(name, "attaching the XDP program", err));
                    }
                    if err.raw_os_error() == Some(libc::EBUSY) {
                        let now = sys::xdp_query(ifindex).unwrap_or_default();
                        return Err(OpenError::new(
                            name,
                            OpenCause::Io {
                                op: "attaching the XDP program (another program is attached)",
                                err: std::io::Error::new(
                                    err.kind(),
                                    format!("{err}; attached now: {now:?}, ifindex {ifindex}"),
                                ),
                            },
                        ));
                    }
                    refusals.push(format!("{mode}: attach: {err}"));
                    continue;
                }
            };
            match open_queues(ifindex, config, geometry, mode, &program) {
                Ok(sockets) => {
                    let note = if refusals.is_empty() {
                        String::new()
                    } else {
                        format!(" (refused: {})", refusals.join("; "))
                    };
                    tracing::info!(
                        "port {name}: afxdp xdp-mode {mode} in use, {} queue(s){note}",
                        config.n_rxq
                    );
                    let queues = sockets
                        .into_iter()
                        .map(|xsk| QueueSlot {
                            socket: xsk.socket,
                            rx: Mutex::new(Some(xsk.rx)),
                            tx: Arc::new(Mutex::new(xsk.tx)),
                            stats: Arc::new(QueueStats::default()),
                        })
                        .collect();
                    return Ok(AfxdpNetdev {
                        name: name.to_string(),
                        mac,
                        mtu: mtu as u16,
                        mode,
                        need_wakeup: config.use_need_wakeup,
                        queues,
                        _link: link,
                        _program: program,
                    });
                }
                Err((op, err)) => {
                    drop(link);
                    if matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                        return Err(OpenError::io(name, op, err));
                    }
                    refusals.push(format!("{mode}: {op}: {err}"));
                }
            }
        }
        drop(program);
        Err(OpenError::new(
            name,
            OpenCause::NoXdpSupport {
                mode: config.xdp_mode.as_str(),
                detail: refusals.join("; "),
            },
        ))
    }

    /// The mode that was chosen (for `best-effort`, the step that worked).
    pub fn xdp_mode_in_use(&self) -> XdpMode {
        self.mode
    }

    /// Watches on the UMEMs of the port's queues (each once), valid after
    /// the port is gone (leak checks).
    pub fn umem_watches(&self) -> Vec<UmemWatch> {
        self.umems().map(|u| UmemWatch(Arc::clone(u))).collect()
    }

    /// The UMEMs of the port's queues, each once (queues of a port may
    /// share one).
    fn umems(&self) -> impl Iterator<Item = &Arc<umem::Umem>> {
        self.queues.iter().enumerate().filter_map(|(i, q)| {
            let u = &q.socket.umem;
            (!self.queues[..i]
                .iter()
                .any(|p| Arc::ptr_eq(&p.socket.umem, u)))
            .then_some(u)
        })
    }

    /// Packets sent without a copy (received into the same queue's UMEM).
    pub fn tx_zero_copy_packets(&self) -> u64 {
        self.queues
            .iter()
            .map(|q| {
                q.stats
                    .tx_zero_copy
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    }

    /// Packets copied into a UMEM frame to be sent (from another UMEM or
    /// port type, or a flood's clones).
    pub fn tx_copied_packets(&self) -> u64 {
        self.queues
            .iter()
            .map(|q| q.stats.tx_copied.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Received TCP/UDP packets whose checksum was left to an offload
    /// AF_XDP cannot carry (see [`crate::csum`]), among those sampled (the
    /// first of each received burst).
    pub fn rx_partial_checksums(&self) -> u64 {
        self.queues
            .iter()
            .map(|q| {
                q.stats
                    .rx_csum_partial
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    }

    /// Frames lent to packets now, over the port's UMEMs (a shared UMEM's
    /// count includes the packets of the other ports using it).
    pub fn umem_in_use(&self) -> usize {
        self.umems().map(|u| u.in_use()).sum()
    }
}

/// Creates and binds every queue's socket and enters it in the XSKMAP.
fn open_queues(
    ifindex: u32,
    config: &AfxdpConfig,
    geometry: QueueGeometry,
    mode: XdpMode,
    program: &XdpProgram,
) -> Result<Vec<Xsk>, (&'static str, std::io::Error)> {
    let mut out = Vec::with_capacity(config.n_rxq);
    let source = match &config.umem_group {
        Some(group) => UmemSource::Shared(group),
        None => UmemSource::Own,
    };
    for qid in 0..config.n_rxq as u32 {
        let xsk = queue::open_xsk(
            ifindex,
            qid,
            geometry,
            mode.bind_flags(),
            config.use_need_wakeup,
            source,
        )?;
        program
            .bind_queue(qid, &xsk.socket.fd)
            .map_err(|e| ("adding the socket to the XSKMAP", e))?;
        out.push(xsk);
    }
    Ok(out)
}

/// The device's rx-queue count from sysfs (`None` when unknown).
fn rx_queue_count(name: &str) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    (n > 0).then_some(n)
}

impl Netdev for AfxdpNetdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn type_name(&self) -> &'static str {
        "afxdp"
    }

    fn info(&self) -> NetdevInfo {
        NetdevInfo {
            n_rxq: self.queues.len(),
            n_txq: self.queues.len(),
            mac: self.mac,
            mtu: self.mtu,
            capabilities: Capabilities::default(),
        }
    }

    fn link_state(&self) -> LinkState {
        link_state(&self.name)
    }

    fn stats(&self) -> NetdevStats {
        let mut out = NetdevStats::default();
        for q in &self.queues {
            q.stats.add_to(&mut out);
            if let Ok((kstats, _)) = sys::getsockopt::<libc::xdp_statistics>(
                &q.socket.fd,
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
            ) {
                out.rx_dropped += kstats.rx_dropped + kstats.rx_ring_full;
                out.rx_errors += kstats.rx_invalid_descs;
                out.tx_errors += kstats.tx_invalid_descs;
            }
        }
        out
    }

    fn custom_stats(&self) -> Vec<(&'static str, u64)> {
        // The kernel's per-socket counters (struct xdp_statistics), summed
        // over the queues; a kernel with an older, shorter struct leaves
        // the fields it does not know at zero.
        let mut kernel = [0u64; 6];
        for q in &self.queues {
            if let Ok((k, _)) = sys::getsockopt::<libc::xdp_statistics>(
                &q.socket.fd,
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
            ) {
                let fields = [
                    k.rx_dropped,
                    k.rx_invalid_descs,
                    k.tx_invalid_descs,
                    k.rx_ring_full,
                    k.rx_fill_ring_empty_descs,
                    k.tx_ring_empty_descs,
                ];
                for (sum, v) in kernel.iter_mut().zip(fields) {
                    *sum += v;
                }
            }
        }
        vec![
            ("rx_csum_partial", self.rx_partial_checksums()),
            ("tx_zero_copy_packets", self.tx_zero_copy_packets()),
            ("tx_copied_packets", self.tx_copied_packets()),
            ("xsk_rx_dropped", kernel[0]),
            ("xsk_rx_invalid_descs", kernel[1]),
            ("xsk_tx_invalid_descs", kernel[2]),
            ("xsk_rx_ring_full", kernel[3]),
            ("xsk_rx_fill_ring_empty_descs", kernel[4]),
            ("xsk_tx_ring_empty_descs", kernel[5]),
        ]
    }

    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        check_qid(&self.name, qid, self.queues.len())?;
        let slot = &self.queues[qid];
        let parts = slot
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| NetdevError::QueueTaken {
                port: self.name.clone(),
                qid,
            })?;
        Ok(Box::new(AfxdpRxq::new(
            &self.name,
            qid,
            Arc::clone(&slot.socket),
            parts,
            Arc::clone(&slot.tx),
            Arc::clone(&slot.stats),
            self.need_wakeup,
        )))
    }

    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        check_qid(&self.name, qid, self.queues.len())?;
        let slot = &self.queues[qid];
        Ok(Box::new(AfxdpTxq::new(
            Arc::clone(&slot.tx),
            Arc::clone(&slot.stats),
        )))
    }
}

/// Up when the interface is administratively up and has carrier.
pub(crate) fn link_state(name: &str) -> LinkState {
    match sys::if_flags(name) {
        Ok(flags) if flags & libc::IFF_UP as u32 != 0 && flags & libc::IFF_RUNNING as u32 != 0 => {
            LinkState::Up
        }
        _ => LinkState::Down,
    }
}
