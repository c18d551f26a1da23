//! One AF_XDP socket per queue, and the rx/tx queue objects the datapath
//! owns.
//!
//! # The UMEM of a socket
//! Its own (registered by it), or one it shares with sockets of other
//! ports or queues ([`super::shared`]): either way the socket has its own
//! four rings and its own id in the UMEM, under which the frames on its
//! rings are accounted ([`super::umem`]).
//!
//! # Teardown order
//! Every holder of a socket's rings ([`RxParts`], [`TxState`]) also
//! holds the [`XskSocket`], declared after the rings so that it drops
//! after them; the `XskSocket` closes the descriptor before its
//! [`SocketFrames`] reclaims the frames. So the last ring mapping, then
//! the descriptor, go before any frame of the socket is reused: the
//! kernel has released the socket (the last file reference was ours) and
//! can no longer write into those frames.
//!
//! # Split of the socket
//! A socket has four rings. The [`AfxdpRxq`] (owned by the polling thread)
//! owns rx and fill; the [`TxState`] owns tx and completion and sits
//! behind a mutex, because the datapath gives every thread a tx queue and
//! ports with one queue share it (one lock per batch, uncontended in the
//! common case). The rx queue only `try_lock`s it, to drain completions
//! when its free list runs dry.
//!
//! # Per call
//! `recv`: refill the fill ring from the free list, kick the kernel when
//! it asks for it (`need_wakeup`), then lend each received frame to a
//! packet (zero-copy), counting packets whose checksum a sender left to
//! offload (see [`crate::csum`]: AF_XDP has no way to carry that state, so
//! such packets are reported, not repaired). `send`: drain completions, put each packet on the
//! tx ring (as is when it lives in this UMEM, else copied once into a free
//! frame), publish, and kick once.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dp_core::netdev::{NetdevError, RxQueue, TxOutcome, TxQueue};
use dp_core::packet::{MAX_BURST, Packet, PacketBatch, PacketPool, PoolConfig};

use super::ring::{ConsRing, ProdRing, mmap_offsets};
use super::shared::{Placement, UmemGroup};
use super::umem::{SocketFrames, Umem};
use crate::csum;
use crate::stats::{QueueStats, bump};
use crate::sys;

/// How long binding waits for a queue that a just-closed socket still
/// holds (see `open_xsk`); longer means another program owns it.
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Descriptors the kernel sends per `sendto` in copy mode (its
/// `TX_BATCH_SIZE`; older kernels used 16, which only means one more try).
const KERNEL_TX_BATCH: u32 = 32;

/// Frames moved between the free list and a ring per lock of the list.
const FRAME_CHUNK: usize = 64;

/// Ring sizes and UMEM size of one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueGeometry {
    pub n_frames: u32,
    pub frame_size: u32,
    /// Fill and rx rings.
    pub rx_ring_size: u32,
    /// Tx and completion rings.
    pub tx_ring_size: u32,
}

/// The socket and its UMEM. The descriptor is declared first so it
/// closes before `frames` reclaims what the socket's rings held (see the
/// module docs).
#[derive(Debug)]
pub struct XskSocket {
    pub fd: OwnedFd,
    pub umem: Arc<Umem>,
    /// This socket's id in the UMEM (the owner of its rings' frames).
    pub id: u32,
    /// The last kick left descriptors on the tx ring (a hint the rx poll
    /// reads without taking the tx lock).
    pub tx_stuck: AtomicBool,
    /// Declared last: see the module docs.
    _frames: SocketFrames,
}

/// The rx half before a thread takes it.
#[derive(Debug)]
pub struct RxParts {
    rx: ConsRing<libc::xdp_desc>,
    fill: ProdRing<u64>,
    /// After the rings (see the module docs).
    _socket: Arc<XskSocket>,
}

/// The tx half, shared by the threads that send on this queue.
#[derive(Debug)]
pub struct TxState {
    tx: ProdRing<libc::xdp_desc>,
    comp: ConsRing<u64>,
    need_wakeup: bool,
    /// After the rings (see the module docs).
    xsk: Arc<XskSocket>,
}

impl TxState {
    /// Asks the kernel to transmit, when it wants asking. `false` on a
    /// hard error; busy and out-of-buffer answers leave the descriptors on
    /// the ring for the next kick.
    ///
    /// In copy mode transmission is synchronous and one call sends at most
    /// [`KERNEL_TX_BATCH`] descriptors, answering `EAGAIN` when it stopped
    /// with more on the ring (also when the device pushed back or the
    /// completion ring was full). With one call per kick, descriptors a
    /// previous kick left behind went out one kernel batch per later send
    /// or rx poll, so a backlog on the ring never shrank below what each
    /// send added. So a kick calls again on `EAGAIN`, as many times as the
    /// descriptors waiting need (as OVS's `kick_tx` does); a device that
    /// keeps pushing back costs at most that many calls, and is retried by
    /// the next send or the rx poll (see `kick_stuck_tx`).
    fn kick(&mut self) -> bool {
        if self.need_wakeup && !self.tx.needs_wakeup() {
            return true;
        }
        let mut tries = self.tx.pending() / KERNEL_TX_BATCH + 1;
        let ok = loop {
            match sys::xsk_kick_tx(&self.xsk.fd) {
                Ok(()) => break true,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries > 1 => tries -= 1,
                Err(e) => {
                    break matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN)
                            | Some(libc::EBUSY)
                            | Some(libc::ENOBUFS)
                            | Some(libc::EINTR)
                    );
                }
            }
        };
        let stuck = self.tx.pending() > 0;
        self.xsk.tx_stuck.store(stuck, Ordering::Relaxed);
        ok
    }

    /// Returns completed tx frames to the free list (one lock per chunk).
    fn drain_completions(&mut self) -> u32 {
        let n = self.comp.available(u32::MAX);
        let mut chunk = [0u32; FRAME_CHUNK];
        let mut i = 0;
        while i < n {
            let m = (n - i).min(FRAME_CHUNK as u32);
            for (j, slot) in chunk[..m as usize].iter_mut().enumerate() {
                *slot = self.xsk.umem.frame_of_addr(self.comp.get(i + j as u32));
            }
            self.xsk.umem.put_free_all(&chunk[..m as usize]);
            i += m;
        }
        self.comp.release(n);
        n
    }
}

/// A bound socket, split into its halves.
#[derive(Debug)]
pub struct Xsk {
    pub socket: Arc<XskSocket>,
    pub rx: RxParts,
    pub tx: TxState,
}

/// Where a socket gets its UMEM: its own, or one of a group.
#[derive(Clone, Copy, Debug)]
pub enum UmemSource<'a> {
    /// A UMEM of its own, registered by it.
    Own,
    /// A UMEM of the group (see [`super::shared`]).
    Shared(&'a UmemGroup),
}

/// Creates a socket on `ifindex` queue `qid` with rings of `geometry` on
/// a UMEM from `source`, bound with `bind_flags` (`XDP_COPY` or
/// `XDP_ZEROCOPY`, plus `XDP_USE_NEED_WAKEUP` when `need_wakeup`; a
/// socket joining a UMEM inherits these from its first socket), and fills
/// the fill ring.
pub fn open_xsk(
    ifindex: u32,
    qid: u32,
    geometry: QueueGeometry,
    bind_flags: u16,
    need_wakeup: bool,
    source: UmemSource<'_>,
) -> Result<Xsk, (&'static str, io::Error)> {
    let open = |placement| open_on(ifindex, qid, geometry, bind_flags, need_wakeup, placement);
    match source {
        UmemSource::Own => {
            let umem = Umem::new(geometry.n_frames, geometry.frame_size)
                .map_err(|e| ("mapping the UMEM", e))?;
            let reserved = umem.try_reserve(geometry.n_frames);
            debug_assert!(reserved);
            open(Placement {
                frames: umem.new_socket(geometry.n_frames),
                share_with: None,
            })
        }
        UmemSource::Shared(group) => group.open_socket(
            geometry.n_frames,
            geometry.frame_size,
            bind_flags,
            need_wakeup,
            open,
        ),
    }
}

/// [`open_xsk`] once the UMEM is chosen.
fn open_on(
    ifindex: u32,
    qid: u32,
    geometry: QueueGeometry,
    bind_flags: u16,
    need_wakeup: bool,
    placement: Placement,
) -> Result<Xsk, (&'static str, io::Error)> {
    // Declared first, so that on an early return it drops last, after the
    // rings and the descriptor: it returns the frames put on the fill ring.
    let frames = placement.frames;
    let umem = Arc::clone(frames.umem());
    let id = frames.id();
    let fd = sys::socket(libc::AF_XDP, libc::SOCK_RAW, 0)
        .map_err(|e| ("creating an AF_XDP socket", e))?;
    let (addr, len) = umem.area();
    let reg = libc::xdp_umem_reg_v1 {
        addr,
        len,
        chunk_size: geometry.frame_size,
        headroom: 0,
    };
    let size = geometry.rx_ring_size;
    let tx_size = geometry.tx_ring_size;
    let setup = || -> io::Result<()> {
        if placement.share_with.is_none() {
            sys::setsockopt(&fd, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)?;
        }
        // A socket sharing a UMEM with one on another device or queue
        // still brings its own fill and completion rings.
        sys::setsockopt(&fd, libc::SOL_XDP, libc::XDP_UMEM_FILL_RING, &size)?;
        sys::setsockopt(&fd, libc::SOL_XDP, libc::XDP_UMEM_COMPLETION_RING, &tx_size)?;
        sys::setsockopt(&fd, libc::SOL_XDP, libc::XDP_RX_RING, &size)?;
        sys::setsockopt(&fd, libc::SOL_XDP, libc::XDP_TX_RING, &tx_size)?;
        Ok(())
    };
    setup().map_err(|e| ("registering the UMEM and rings", e))?;
    let off = mmap_offsets(&fd).map_err(|e| ("reading ring offsets", e))?;
    let map = || -> io::Result<_> {
        Ok((
            ConsRing::<libc::xdp_desc>::map(&fd, &off.rx, size, libc::XDP_PGOFF_RX_RING as u64)?,
            ProdRing::<u64>::map(&fd, &off.fr, size, libc::XDP_UMEM_PGOFF_FILL_RING)?,
            ProdRing::<libc::xdp_desc>::map(&fd, &off.tx, tx_size, libc::XDP_PGOFF_TX_RING as u64)?,
            ConsRing::<u64>::map(&fd, &off.cr, tx_size, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?,
        ))
    };
    let (rx, mut fill, tx, comp) = map().map_err(|e| ("mapping the rings", e))?;

    // Give the kernel frames to receive into before it can see traffic.
    let n = fill.free(size).min(size);
    let mut filled = 0;
    while filled < n {
        let Some(index) = umem.take_free() else { break };
        umem.give_to_kernel(index, id);
        fill.set(filled, umem.frame_addr(index));
        filled += 1;
    }
    fill.submit(filled);

    let (flags, shared_umem_fd) = match &placement.share_with {
        // The kernel refuses mode flags here: the UMEM's first socket
        // set them for all.
        Some(via) => (libc::XDP_SHARED_UMEM, via.fd.as_raw_fd() as u32),
        None if need_wakeup => (bind_flags | libc::XDP_USE_NEED_WAKEUP, 0),
        None => (bind_flags, 0),
    };
    let sxdp = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: qid,
        sxdp_shared_umem_fd: shared_umem_fd,
    };
    // A socket closed on this queue (the port removed, then added again)
    // lets go of the queue only when the kernel's deferred release of its
    // buffer pool has run, so for a few milliseconds bind can find the
    // queue still taken: retry, bounded.
    let deadline = std::time::Instant::now() + BIND_BUSY_WAIT;
    loop {
        match sys::bind_xdp(&fd, &sxdp) {
            Ok(()) => break,
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(("binding the AF_XDP socket", e)),
        }
    }
    // Not needed any more; it must not keep the other socket alive.
    drop(placement.share_with);
    let socket = Arc::new(XskSocket {
        fd,
        umem,
        id,
        tx_stuck: AtomicBool::new(false),
        _frames: frames,
    });
    Ok(Xsk {
        rx: RxParts {
            rx,
            fill,
            _socket: Arc::clone(&socket),
        },
        tx: TxState {
            tx,
            comp,
            need_wakeup,
            xsk: Arc::clone(&socket),
        },
        socket,
    })
}

/// A receive queue (see the module docs).
#[derive(Debug)]
pub struct AfxdpRxq {
    port: String,
    xsk: Arc<XskSocket>,
    parts: RxParts,
    pool: PacketPool,
    tx: Arc<Mutex<TxState>>,
    stats: Arc<QueueStats>,
    need_wakeup: bool,
    /// When the partial-checksum warning was last logged.
    partial_warned: Option<std::time::Instant>,
}

/// Least time between two partial-checksum warnings of one queue: the
/// condition is a host's setting, and the log must not become a cost a
/// remote sender can impose on the PMD.
const PARTIAL_WARN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl AfxdpRxq {
    pub fn new(
        port: &str,
        qid: usize,
        xsk: Arc<XskSocket>,
        parts: RxParts,
        tx: Arc<Mutex<TxState>>,
        stats: Arc<QueueStats>,
        need_wakeup: bool,
    ) -> AfxdpRxq {
        // Every frame can be out in a packet at once; the metadata cells
        // are small.
        let pool = PacketPool::new(
            format!("afxdp:{port}:{qid}"),
            PoolConfig::metadata_only(xsk.umem.n_frames() as usize),
        );
        AfxdpRxq {
            port: port.to_string(),
            xsk,
            parts,
            pool,
            tx,
            stats,
            need_wakeup,
            partial_warned: None,
        }
    }

    /// Moves free frames to the fill ring; kicks the kernel if asked.
    fn refill(&mut self) {
        let umem = &self.xsk.umem;
        // Refill in bursts (as OVS does): fewer producer-index writes on a
        // cache line the kernel reads, and the ring holds plenty.
        let free = self.parts.fill.free(MAX_BURST as u32);
        if free < MAX_BURST as u32 {
            self.kick_stuck_tx();
            return;
        }
        if umem.free_frames() < MAX_BURST {
            // Completed tx frames may be waiting; take them if the tx side
            // is not busy right now (never wait for it here).
            if let Ok(mut tx) = self.tx.try_lock() {
                tx.drain_completions();
            }
        }
        let mut filled = 0;
        let mut chunk = [0u32; FRAME_CHUNK];
        while filled < free {
            let want = ((free - filled) as usize).min(FRAME_CHUNK);
            let got = umem.take_free_into(&mut chunk[..want]);
            for &index in &chunk[..got] {
                umem.give_to_kernel(index, self.xsk.id);
                self.parts.fill.set(filled, umem.frame_addr(index));
                filled += 1;
            }
            if got < want {
                break;
            }
        }
        if filled > 0 {
            self.parts.fill.submit(filled);
        }
        if self.need_wakeup && self.parts.fill.needs_wakeup() {
            // Errors here are transient (the next poll retries).
            let _ = sys::xsk_kick_rx(&self.xsk.fd);
            return;
        }
        self.kick_stuck_tx();
    }

    /// Counts sampled packets with partial checksums and says what is
    /// wrong: at once, then at most every [`PARTIAL_WARN_INTERVAL`].
    #[cold]
    fn report_partial(&mut self, n: u64) {
        let before = self.stats.rx_csum_partial.fetch_add(n, Ordering::Relaxed);
        let now = std::time::Instant::now();
        if self
            .partial_warned
            .is_none_or(|t| now.duration_since(t) >= PARTIAL_WARN_INTERVAL)
        {
            self.partial_warned = Some(now);
            tracing::warn!(
                "port {}: {} received TCP/UDP packets carry a partial checksum: the sending \
                 host relies on tx checksum offload, which AF_XDP cannot carry, so their \
                 receivers will drop them as corrupt; turn it off on the sending interface \
                 (ethtool -K IFACE tx off)",
                self.port,
                before + n
            );
        }
    }

    /// In copy mode the kernel transmits only when kicked, a bounded
    /// number of descriptors per kick, and refuses when busy: frames a send
    /// left on the tx ring would wait for the next send, which may never
    /// come. The rx poll (which runs all the time) pushes them on, with
    /// this call's one syscall.
    fn kick_stuck_tx(&mut self) {
        if self.xsk.tx_stuck.load(Ordering::Relaxed)
            && let Ok(mut tx) = self.tx.try_lock()
        {
            tx.kick();
            tx.drain_completions();
        }
    }
}

impl RxQueue for AfxdpRxq {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError> {
        self.refill();
        let room = MAX_BURST.saturating_sub(batch.len()) as u32;
        let n = self.parts.rx.available(room);
        if n == 0 {
            return Ok(0);
        }
        // Every frame's headers first, then the packets (see
        // `Umem::prefetch_data`).
        for i in 0..n {
            self.xsk.umem.prefetch_data(self.parts.rx.get(i).addr);
        }
        let mut bytes = 0u64;
        let mut dropped = 0u64;
        let mut partial = 0u64;
        let mut added = 0;
        for i in 0..n {
            let desc = self.parts.rx.get(i);
            match self.xsk.umem.lend(desc.addr, desc.len, &self.pool) {
                Some(packet) => {
                    bytes += desc.len as u64;
                    // A diagnostic, sampled: the first packet of each
                    // burst only, so the fast path pays one header walk
                    // per burst, not per packet.
                    if i == 0 {
                        partial = csum::is_partial(packet.data()) as u64;
                    }
                    // Cannot fail: at most `room` descriptors are read.
                    let _ = batch.push(packet);
                    added += 1;
                }
                None => dropped += 1,
            }
        }
        self.parts.rx.release(n);
        bump(&self.stats.rx_packets, added as u64);
        bump(&self.stats.rx_bytes, bytes);
        bump(&self.stats.rx_dropped, dropped);
        if partial > 0 {
            self.report_partial(partial);
        }
        if added == 0 && dropped > 0 {
            return Err(NetdevError::Device {
                port: self.port.clone(),
                reason: "rx: no packet metadata left for received frames".into(),
            });
        }
        Ok(added)
    }
}

/// A transmit queue handle (see the module docs).
#[derive(Debug)]
pub struct AfxdpTxq {
    state: Arc<Mutex<TxState>>,
    stats: Arc<QueueStats>,
    /// The socket's UMEM, where [`TxQueue::clone_packet`] makes copies.
    umem: Arc<Umem>,
    /// Cells for those copies, made lazily: a queue that never clones
    /// holds none. Bounded, so clones cannot take the UMEM's frames from
    /// the fill ring; when it runs out the executor copies instead.
    clone_cells: PacketPool,
}

/// Most clones of one transmit queue alive at once (a few bursts' worth:
/// they live from the executor's copy to the next send).
const CLONE_CELLS: usize = 4 * MAX_BURST;

/// Bytes kept in front of a clone's data in its frame, for headers a
/// later action might push (as a heap packet's headroom).
const CLONE_HEADROOM: usize = dp_core::packet::DEFAULT_HEADROOM;

impl AfxdpTxq {
    pub fn new(state: Arc<Mutex<TxState>>, stats: Arc<QueueStats>) -> AfxdpTxq {
        let umem = Arc::clone(
            &state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .xsk
                .umem,
        );
        AfxdpTxq {
            state,
            stats,
            umem,
            clone_cells: PacketPool::new("afxdp-clone", PoolConfig::metadata_only(CLONE_CELLS)),
        }
    }
}

impl TxQueue for AfxdpTxq {
    /// The copy for one output of a multi-output action (a flood) goes
    /// straight into a frame of this socket's UMEM, so `send` then puts
    /// that frame on the tx ring as it is: one copy, where the executor's
    /// heap copy and a second copy into the UMEM at send were two.
    fn clone_packet(&mut self, packet: &Packet) -> Option<Packet> {
        let len = packet.len();
        if len == 0 || CLONE_HEADROOM + len > self.umem.frame_size() as usize {
            return None;
        }
        let index = self.umem.take_free()?;
        // SAFETY: the frame just came off the free list, so nothing else
        // uses it until `lend` below makes it the clone's.
        let frame = unsafe { self.umem.frame_mut(index) };
        frame[CLONE_HEADROOM..CLONE_HEADROOM + len].copy_from_slice(packet.data());
        // On failure (no cell) the frame is back on the free list.
        let addr = self.umem.frame_addr(index) + CLONE_HEADROOM as u64;
        let mut copy = self.umem.lend(addr, len as u32, &self.clone_cells)?;
        copy.meta_mut().clone_from(packet.meta());
        bump(&self.stats.tx_copied, 1);
        Some(copy)
    }

    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome {
        if batch.is_empty() {
            return TxOutcome::default();
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.drain_completions();
        let umem = Arc::clone(&st.xsk.umem);
        let frame_size = umem.frame_size() as usize;
        let room = st.tx.free(batch.len() as u32);
        let mut queued = 0u32;
        let mut dropped = 0usize;
        let mut bytes = 0u64;
        let mut zero_copy = 0u64;
        let mut copied = 0u64;
        for packet in batch.drain() {
            if queued >= room || packet.len() > frame_size || packet.is_empty() {
                dropped += 1;
                continue;
            }
            let len = packet.len() as u32;
            let addr = match umem.locate(packet.data().as_ptr()) {
                // Received into this UMEM: send the frame itself. Dropping
                // the packet below leaves the frame to the completion ring.
                Some((index, offset)) => {
                    umem.hand_off(index, st.xsk.id);
                    zero_copy += 1;
                    umem.frame_addr(index) + offset as u64
                }
                None => {
                    let Some(index) = umem.take_free() else {
                        dropped += 1;
                        continue;
                    };
                    // SAFETY: the frame just came off the free list, so we
                    // own it until it goes on the tx ring below.
                    let frame = unsafe { umem.frame_mut(index) };
                    frame[..len as usize].copy_from_slice(packet.data());
                    umem.give_to_kernel(index, st.xsk.id);
                    copied += 1;
                    umem.frame_addr(index)
                }
            };
            st.tx.set(
                queued,
                libc::xdp_desc {
                    addr,
                    len,
                    options: 0,
                },
            );
            queued += 1;
            bytes += len as u64;
        }
        let mut errors = 0;
        if queued > 0 {
            st.tx.submit(queued);
            if !st.kick() {
                errors = 1;
            }
            st.drain_completions();
        }
        drop(st);
        bump(&self.stats.tx_packets, queued as u64);
        bump(&self.stats.tx_bytes, bytes);
        bump(&self.stats.tx_dropped, dropped as u64);
        bump(&self.stats.tx_errors, errors);
        bump(&self.stats.tx_zero_copy, zero_copy);
        bump(&self.stats.tx_copied, copied);
        TxOutcome {
            sent: queued as usize,
            dropped,
        }
    }
}
