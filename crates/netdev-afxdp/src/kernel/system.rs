//! `system` ports: an existing Linux interface reached through an
//! AF_PACKET socket (OVS's `system` port type on a netdev bridge).
//!
//! # How it works
//! One raw `ETH_P_ALL` packet socket bound to the interface, promiscuous,
//! with `PACKET_IGNORE_OUTGOING` (so our own transmissions do not come
//! back as receptions). Receive reads a PACKET_MMAP ring (TPACKET_V2, see
//! [`super::packet_ring`]): no system call per packet or per burst; each
//! frame is copied into a buffer from the port's heap pool and its slot
//! given back. Should the ring be refused, receive falls back to one
//! `recvmmsg` per burst (with `PACKET_AUXDATA`). In both, a VLAN tag the
//! kernel stripped is put back into the frame. Transmit is one `sendmmsg`
//! per batch. Frames longer than a buffer are counted as rx errors and
//! dropped.
//!
//! Why not a TPACKET_V3 ring: V3 hands blocks of frames to user space
//! when a block fills or its retire timer (whole milliseconds) fires, so
//! at low rates every packet waits up to a timer tick — a ping through the
//! switch would take milliseconds.
//!
//! Checksum offload: packets the local stack sent with tx checksum offload
//! on arrive with a partial L4 checksum, flagged `TP_STATUS_CSUMNOTREADY`
//! (in the ring slot, or in `PACKET_AUXDATA`); the port completes them in
//! software ([`crate::csum`]) before anyone forwards them, so the senders
//! may keep `tx` offload on. Segmentation offload is another matter: a
//! TSO/GSO super-frame is longer than a buffer and is dropped as an rx
//! error, so the sending side needs `tso off gso off` (or `tx off`, which
//! implies both).
//!
//! # Threads
//! `is_pmd() == false`. The rx queue has one owner; tx queues share the
//! socket (each `sendmmsg` is independent, so no lock is needed).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dp_core::netdev::{
    Capabilities, LinkState, Netdev, NetdevError, NetdevInfo, NetdevStats, RxQueue, TxOutcome,
    TxQueue, check_qid,
};
use dp_core::packet::{DEFAULT_HEADROOM, MAX_BURST, Packet, PacketBatch, PacketPool, PoolConfig};

use super::packet_ring::{RingFrame, RxRing};
use crate::afxdp::link_state;
use crate::csum;
use crate::error::OpenError;
use crate::stats::{QueueStats, bump};
use crate::sys::{self, RecvInfo};

const POOL_CAPACITY: usize = 2048;
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// An open `system` port.
#[derive(Debug)]
pub struct SystemNetdev {
    name: String,
    fd: Arc<OwnedFd>,
    mac: [u8; 6],
    mtu: u16,
    pool: PacketPool,
    rx_taken: AtomicBool,
    /// The receive ring, until the rx queue takes it (`None`: recvmmsg).
    rx_ring: std::sync::Mutex<Option<RxRing>>,
    stats: Arc<QueueStats>,
}

impl SystemNetdev {
    /// Opens interface `name` (which must exist) as a system port.
    pub fn open(name: &str) -> Result<SystemNetdev, OpenError> {
        Self::open_with(name, true)
    }

    /// Opens a system port that receives with `recvmmsg` (the fallback
    /// used when the kernel refuses the ring; tests exercise it with this).
    pub fn open_with_recvmmsg(name: &str) -> Result<SystemNetdev, OpenError> {
        Self::open_with(name, false)
    }

    fn open_with(name: &str, want_ring: bool) -> Result<SystemNetdev, OpenError> {
        let ifindex =
            sys::ifindex(name).map_err(|e| OpenError::io(name, "looking up the interface", e))?;
        let mtu = sys::if_mtu(name).map_err(|e| OpenError::io(name, "reading the MTU", e))?;
        let mac =
            sys::if_mac(name).map_err(|e| OpenError::io(name, "reading the MAC address", e))?;
        let fd = sys::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            ETH_P_ALL_BE as libc::c_int,
        )
        .map_err(|e| OpenError::io(name, "creating an AF_PACKET socket", e))?;
        let one: libc::c_int = 1;
        sys::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &one)
            .map_err(|e| OpenError::io(name, "setting PACKET_AUXDATA", e))?;
        sys::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)
            .map_err(|e| OpenError::io(name, "setting PACKET_IGNORE_OUTGOING", e))?;
        // SAFETY: sockaddr_ll and packet_mreq are plain data; all-zero is
        // valid for both.
        let (mut addr, mut mreq): (libc::sockaddr_ll, libc::packet_mreq) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL_BE;
        addr.sll_ifindex = ifindex as i32;
        sys::bind_packet(&fd, &addr)
            .map_err(|e| OpenError::io(name, "binding the AF_PACKET socket", e))?;
        mreq.mr_ifindex = ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        sys::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| OpenError::io(name, "entering promiscuous mode", e))?;
        sys::if_set_up(name).map_err(|e| OpenError::io(name, "bringing the interface up", e))?;
        let frame = (mtu as usize + 18).max(2048);
        let rx_ring = match want_ring.then(|| RxRing::new(&fd, mtu as usize + 18)) {
            None => None,
            Some(Ok(ring)) => Some(ring),
            Some(Err(e)) => {
                tracing::warn!("port {name}: no PACKET_MMAP rx ring ({e}); using recvmmsg");
                None
            }
        };
        let pool = PacketPool::new(
            format!("system:{name}"),
            PoolConfig {
                capacity: POOL_CAPACITY,
                buffer_size: DEFAULT_HEADROOM + frame,
            },
        );
        Ok(SystemNetdev {
            name: name.to_string(),
            fd: Arc::new(fd),
            mac,
            mtu: mtu.min(u16::MAX as u32) as u16,
            pool,
            rx_taken: AtomicBool::new(false),
            rx_ring: std::sync::Mutex::new(rx_ring),
            stats: Arc::new(QueueStats::default()),
        })
    }

    /// True when receive uses the PACKET_MMAP ring (else `recvmmsg`).
    pub fn has_rx_ring(&self) -> bool {
        self.rx_ring.lock().map(|r| r.is_some()).unwrap_or(false)
    }

    /// Received packets whose partial L4 checksum this port completed.
    pub fn checksums_completed(&self) -> u64 {
        self.stats.rx_csum_completed.load(Ordering::Relaxed)
    }

    /// The port's buffer pool (leak checks).
    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }
}

impl Netdev for SystemNetdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn type_name(&self) -> &'static str {
        "system"
    }

    fn info(&self) -> NetdevInfo {
        NetdevInfo {
            n_rxq: 1,
            n_txq: 1,
            mac: self.mac,
            mtu: self.mtu,
            capabilities: Capabilities::default(),
        }
    }

    fn link_state(&self) -> LinkState {
        link_state(&self.name)
    }

    fn is_pmd(&self) -> bool {
        false
    }

    fn stats(&self) -> NetdevStats {
        let mut out = NetdevStats::default();
        self.stats.add_to(&mut out);
        out
    }

    fn custom_stats(&self) -> Vec<(&'static str, u64)> {
        vec![(
            "rx_csum_completed",
            self.stats.rx_csum_completed.load(Ordering::Relaxed),
        )]
    }

    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        check_qid(&self.name, qid, 1)?;
        if self.rx_taken.swap(true, Ordering::AcqRel) {
            return Err(NetdevError::QueueTaken {
                port: self.name.clone(),
                qid,
            });
        }
        let ring = self
            .rx_ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        Ok(Box::new(SystemRxq {
            ring,
            port: self.name.clone(),
            fd: Arc::clone(&self.fd),
            pool: self.pool.clone(),
            spares: Vec::with_capacity(MAX_BURST),
            stats: Arc::clone(&self.stats),
        }))
    }

    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        check_qid(&self.name, qid, 1)?;
        Ok(Box::new(SystemTxq {
            fd: Arc::clone(&self.fd),
            stats: Arc::clone(&self.stats),
        }))
    }
}

#[derive(Debug)]
struct SystemRxq {
    ring: Option<RxRing>,
    port: String,
    fd: Arc<OwnedFd>,
    pool: PacketPool,
    /// Empty buffers kept between calls, so an idle poll allocates nothing.
    spares: Vec<Packet>,
    stats: Arc<QueueStats>,
}

/// Puts `(tpid, tci)` back after the Ethernet addresses.
fn reinsert_vlan(packet: &mut Packet, tpid: u16, tci: u16) -> bool {
    if packet.len() < 12 || packet.push_front(4).is_none() {
        return false;
    }
    let data = packet.data_mut();
    data.copy_within(4..16, 0);
    data[12..14].copy_from_slice(&tpid.to_be_bytes());
    data[14..16].copy_from_slice(&tci.to_be_bytes());
    true
}

/// Copies a ring frame into `packet`; `false` when it does not fit or was
/// truncated.
fn fill_from_ring(packet: &mut Packet, frame: RingFrame, bytes: &[u8]) -> bool {
    if frame.len > bytes.len() || bytes.len() > packet.tailroom() {
        return false;
    }
    let Some(room) = packet.push_back(bytes.len()) else {
        return false;
    };
    room.copy_from_slice(bytes);
    match frame.vlan {
        Some((tpid, tci)) => reinsert_vlan(packet, tpid, tci),
        None => true,
    }
}

/// Completes a partial L4 checksum (see the module docs); `true` when it
/// was completed. A frame the parser cannot place (not TCP/UDP) is left as
/// the kernel gave it: only TCP and UDP are offloaded by the stack.
#[inline]
fn complete_checksum(packet: &mut Packet, partial: bool) -> bool {
    partial && csum::complete_partial_checksum(packet.data_mut()).is_ok()
}

impl SystemRxq {
    fn recv_ring(&mut self, batch: &mut PacketBatch) -> usize {
        let Some(ring) = self.ring.as_mut() else {
            return 0;
        };
        let mut added = 0;
        let mut bytes = 0u64;
        let mut errors = 0u64;
        let mut dropped = 0u64;
        let mut completed = 0u64;
        while batch.len() < MAX_BURST {
            let Some(mut packet) = self.spares.pop().or_else(|| self.pool.alloc()) else {
                break;
            };
            match ring.next_frame(|frame, data| {
                (
                    fill_from_ring(&mut packet, frame, data),
                    frame.losing,
                    frame.csum_partial,
                )
            }) {
                None => {
                    self.spares.push(packet);
                    break;
                }
                // `losing`: the kernel dropped frames before this one (ring
                // full); counted once per flagged frame, a lower bound.
                Some((true, losing, partial)) => {
                    dropped += losing as u64;
                    completed += complete_checksum(&mut packet, partial) as u64;
                    bytes += packet.len() as u64;
                    let _ = batch.push(packet);
                    added += 1;
                }
                Some((false, losing, _)) => {
                    dropped += losing as u64;
                    errors += 1;
                    packet.truncate(0);
                    self.spares.push(packet);
                }
            }
        }
        bump(&self.stats.rx_packets, added as u64);
        bump(&self.stats.rx_bytes, bytes);
        bump(&self.stats.rx_errors, errors);
        bump(&self.stats.rx_dropped, dropped);
        bump(&self.stats.rx_csum_completed, completed);
        added
    }
}

impl RxQueue for SystemRxq {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError> {
        if self.ring.is_some() {
            return Ok(self.recv_ring(batch));
        }
        let want = MAX_BURST.saturating_sub(batch.len());
        while self.spares.len() < want {
            match self.pool.alloc() {
                Some(p) => self.spares.push(p),
                None => break,
            }
        }
        let n = want.min(self.spares.len());
        if n == 0 {
            return Ok(0);
        }
        let mut info = [RecvInfo::default(); MAX_BURST];
        let got = {
            let mut slices: [&mut [u8]; MAX_BURST] = Default::default();
            for (slot, packet) in slices.iter_mut().zip(self.spares[..n].iter_mut()) {
                let room = packet.tailroom();
                *slot = packet.push_back(room).expect("tailroom is free");
            }
            sys::recvmmsg(&self.fd, &mut slices[..n], &mut info[..n])
        };
        let got = match got {
            Ok(got) => got,
            Err(e) => {
                for p in &mut self.spares[..n] {
                    p.truncate(0);
                }
                if sys::would_block(&e) {
                    return Ok(0);
                }
                return Err(match e.raw_os_error() {
                    Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV) => {
                        NetdevError::Disconnected {
                            port: self.port.clone(),
                        }
                    }
                    _ => NetdevError::Device {
                        port: self.port.clone(),
                        reason: format!("recvmmsg: {e}"),
                    },
                });
            }
        };
        // The first `got` buffers hold frames; hand them over in order and
        // keep the rest (emptied) for next time.
        let mut rest = self.spares.split_off(got);
        for p in &mut rest[..n - got] {
            p.truncate(0);
        }
        let mut added = 0;
        let mut bytes = 0u64;
        let mut errors = 0u64;
        let mut completed = 0u64;
        for (mut packet, info) in self.spares.drain(..).zip(info.iter()) {
            if info.len > packet.len() {
                errors += 1;
                continue;
            }
            packet.truncate(info.len);
            if let Some((tpid, tci)) = info.vlan
                && !reinsert_vlan(&mut packet, tpid, tci)
            {
                errors += 1;
                continue;
            }
            completed += complete_checksum(&mut packet, info.csum_partial) as u64;
            bytes += packet.len() as u64;
            let _ = batch.push(packet);
            added += 1;
        }
        self.spares = rest;
        bump(&self.stats.rx_packets, added as u64);
        bump(&self.stats.rx_bytes, bytes);
        bump(&self.stats.rx_errors, errors);
        bump(&self.stats.rx_csum_completed, completed);
        Ok(added)
    }
}

#[derive(Debug)]
struct SystemTxq {
    fd: Arc<OwnedFd>,
    stats: Arc<QueueStats>,
}

impl TxQueue for SystemTxq {
    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome {
        let n = batch.len();
        if n == 0 {
            return TxOutcome::default();
        }
        let mut frames: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
        for (slot, packet) in frames.iter_mut().zip(batch.iter()) {
            *slot = packet.data();
        }
        // Send what the kernel takes; a frame it refuses (too big, queue
        // full) is skipped so one bad frame does not sink the batch.
        let mut sent = 0;
        let mut dropped = 0;
        let mut errors = 0u64;
        let mut bytes = 0u64;
        let mut next = 0;
        while next < n {
            match sys::sendmmsg(&self.fd, &frames[next..n]) {
                Ok(k) if k > 0 => {
                    bytes += frames[next..next + k]
                        .iter()
                        .map(|f| f.len() as u64)
                        .sum::<u64>();
                    sent += k;
                    next += k;
                }
                Ok(_) => {
                    dropped += 1;
                    next += 1;
                }
                Err(e) => {
                    if !sys::would_block(&e) {
                        errors += 1;
                    }
                    dropped += 1;
                    next += 1;
                }
            }
        }
        batch.clear();
        bump(&self.stats.tx_packets, sent as u64);
        bump(&self.stats.tx_bytes, bytes);
        bump(&self.stats.tx_dropped, dropped as u64);
        bump(&self.stats.tx_errors, errors);
        TxOutcome { sent, dropped }
    }
}
