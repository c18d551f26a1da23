//! `tap` and `internal` ports: a TUN/TAP device whose other side is the
//! kernel's network stack.
//!
//! # How it works
//! Opening attaches `/dev/net/tun` to the named tap device (`IFF_TAP |
//! IFF_NO_PI`), creating it if it does not exist, and sets it up. Every
//! frame is one `read`/`write` of the non-blocking descriptor: receive
//! reads into buffers from the port's heap pool until the batch is full or
//! the kernel has nothing (`EAGAIN`); transmit writes each packet.
//! Without `IFF_VNET_HDR` the device offers no checksum offload, so the
//! kernel hands over complete checksums.
//!
//! An `internal` port is the same device under the bridge's name: the
//! host stack sees it as the bridge interface (OVS's LOCAL port). A device
//! created here is not persistent: it disappears when the port closes.
//!
//! # Threads
//! `is_pmd() == false`: the non-PMD thread polls these ports. The rx queue
//! has one owner; tx queues may be opened by every thread and share the
//! descriptor (each `write` is one whole frame, so no lock is needed).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dp_core::netdev::{
    Capabilities, LinkState, Netdev, NetdevError, NetdevInfo, NetdevStats, RxQueue, TxOutcome,
    TxQueue, check_qid,
};
use dp_core::packet::{DEFAULT_HEADROOM, MAX_BURST, Packet, PacketBatch, PacketPool, PoolConfig};

use crate::afxdp::link_state;
use crate::error::{OpenCause, OpenError};
use crate::stats::{QueueStats, bump};
use crate::sys;

/// Buffers per port (received packets in flight plus one burst).
const POOL_CAPACITY: usize = 2048;

/// Which flavour of tap port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapKind {
    /// `type = "tap"`.
    Tap,
    /// `type = "internal"`: the bridge's own interface.
    Internal,
}

/// An open tap or internal port.
#[derive(Debug)]
pub struct TapNetdev {
    name: String,
    kind: TapKind,
    fd: Arc<OwnedFd>,
    mac: [u8; 6],
    mtu: u16,
    pool: PacketPool,
    rx_taken: AtomicBool,
    stats: Arc<QueueStats>,
}

impl TapNetdev {
    /// Opens (creating if needed) tap device `name`.
    pub fn open(name: &str, kind: TapKind) -> Result<TapNetdev, OpenError> {
        let fd = sys::tap_open(name).map_err(|e| match e.raw_os_error() {
            // TUNSETIFF refuses a name taken by another kind of device, or
            // a tap that another process holds.
            Some(libc::EINVAL) | Some(libc::EBUSY) if sys::ifindex(name).is_ok() => OpenError::new(
                name,
                OpenCause::BadConfig(format!(
                    "the interface exists and is not a tap device this process can attach ({e})"
                )),
            ),
            Some(libc::ENOENT) => OpenError::new(
                name,
                OpenCause::BadConfig("/dev/net/tun is missing (tun module not loaded?)".into()),
            ),
            _ => OpenError::io(name, "attaching to /dev/net/tun", e),
        })?;
        sys::if_set_up(name).map_err(|e| OpenError::io(name, "bringing the interface up", e))?;
        let mtu = sys::if_mtu(name).map_err(|e| OpenError::io(name, "reading the MTU", e))?;
        let mac =
            sys::if_mac(name).map_err(|e| OpenError::io(name, "reading the MAC address", e))?;
        let frame = (mtu as usize + 18).max(2048);
        let pool = PacketPool::new(
            format!("{}:{name}", kind_name(kind)),
            PoolConfig {
                capacity: POOL_CAPACITY,
                buffer_size: DEFAULT_HEADROOM + frame,
            },
        );
        Ok(TapNetdev {
            name: name.to_string(),
            kind,
            fd: Arc::new(fd),
            mac,
            mtu: mtu.min(u16::MAX as u32) as u16,
            pool,
            rx_taken: AtomicBool::new(false),
            stats: Arc::new(QueueStats::default()),
        })
    }

    /// The port's buffer pool (leak checks).
    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }
}

fn kind_name(kind: TapKind) -> &'static str {
    match kind {
        TapKind::Tap => "tap",
        TapKind::Internal => "internal",
    }
}

impl Netdev for TapNetdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn type_name(&self) -> &'static str {
        kind_name(self.kind)
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

    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        check_qid(&self.name, qid, 1)?;
        if self.rx_taken.swap(true, Ordering::AcqRel) {
            return Err(NetdevError::QueueTaken {
                port: self.name.clone(),
                qid,
            });
        }
        Ok(Box::new(TapRxq {
            port: self.name.clone(),
            fd: Arc::clone(&self.fd),
            pool: self.pool.clone(),
            spare: None,
            stats: Arc::clone(&self.stats),
        }))
    }

    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        check_qid(&self.name, qid, 1)?;
        Ok(Box::new(TapTxq {
            fd: Arc::clone(&self.fd),
            stats: Arc::clone(&self.stats),
        }))
    }
}

/// The receive side of a tap port.
#[derive(Debug)]
struct TapRxq {
    port: String,
    fd: Arc<OwnedFd>,
    pool: PacketPool,
    /// A buffer kept from a read that found nothing.
    spare: Option<Packet>,
    stats: Arc<QueueStats>,
}

impl RxQueue for TapRxq {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError> {
        let mut added = 0;
        let mut bytes = 0u64;
        while batch.len() < MAX_BURST {
            let Some(mut packet) = self.spare.take().or_else(|| self.pool.alloc()) else {
                bump(&self.stats.rx_dropped, 1);
                break;
            };
            let room = packet.tailroom();
            let buf = packet.push_back(room).expect("tailroom is free");
            match sys::read(&self.fd, buf) {
                Ok(n) if n > 0 => {
                    packet.truncate(n);
                    bytes += n as u64;
                    let _ = batch.push(packet);
                    added += 1;
                }
                Ok(_) => {
                    packet.truncate(0);
                    self.spare = Some(packet);
                    break;
                }
                Err(e) if sys::would_block(&e) => {
                    packet.truncate(0);
                    self.spare = Some(packet);
                    break;
                }
                Err(e) => {
                    bump(&self.stats.rx_packets, added as u64);
                    bump(&self.stats.rx_bytes, bytes);
                    if added > 0 {
                        return Ok(added);
                    }
                    return Err(match e.raw_os_error() {
                        Some(libc::EIO) | Some(libc::EBADFD) => NetdevError::Disconnected {
                            port: self.port.clone(),
                        },
                        _ => NetdevError::Device {
                            port: self.port.clone(),
                            reason: format!("read: {e}"),
                        },
                    });
                }
            }
        }
        bump(&self.stats.rx_packets, added as u64);
        bump(&self.stats.rx_bytes, bytes);
        Ok(added)
    }
}

/// The transmit side of a tap port (shared descriptor, no lock).
#[derive(Debug)]
struct TapTxq {
    fd: Arc<OwnedFd>,
    stats: Arc<QueueStats>,
}

impl TxQueue for TapTxq {
    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome {
        let mut out = TxOutcome::default();
        let mut bytes = 0u64;
        let mut errors = 0u64;
        for packet in batch.drain() {
            match sys::write(&self.fd, packet.data()) {
                Ok(_) => {
                    out.sent += 1;
                    bytes += packet.len() as u64;
                }
                Err(e) => {
                    out.dropped += 1;
                    if !sys::would_block(&e) {
                        errors += 1;
                    }
                }
            }
        }
        bump(&self.stats.tx_packets, out.sent as u64);
        bump(&self.stats.tx_bytes, bytes);
        bump(&self.stats.tx_dropped, out.dropped as u64);
        bump(&self.stats.tx_errors, errors);
        out
    }
}
