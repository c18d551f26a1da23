//! Mbuf pools, shared per (NUMA socket, MTU) as in OVS's shared-memory
//! model: every port with the same MTU on the same socket receives into
//! the same pool, so forwarding between them never copies.
//!
//! Sizing: OVS-like by default ([`DEFAULT_N_MBUFS`] = 262,144, halved on
//! failure down to [`MIN_N_MBUFS`]), or the port's `n_mbufs`; the first
//! port that creates a pool decides its size. Pools are never freed: mbufs
//! lent to packets may outlive every port, and DPDK cannot free a pool
//! with mbufs out. In-use counts come from DPDK itself
//! (`rte_mempool_in_use_count`), so leak tests see what DPDK sees.
//!
//! Each mbuf carries the packet's cell (metadata) in its private area, as
//! OVS keeps its `dp_packet` around the mbuf: the pool is created with
//! room for a `dp_core` embedded cell after every mbuf header, and each
//! cell is initialised once, here, before any mbuf leaves the pool.

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use dpdk_sys as sys;

use crate::ffi;

/// OVS's cap on a shared pool.
pub const DEFAULT_N_MBUFS: u32 = 262_144;
/// The smallest pool the halving retry goes down to.
pub const MIN_N_MBUFS: u32 = 16_384;
/// Per-lcore cache (DPDK's usual 256 is too big for small test pools).
const CACHE_SIZE: u32 = 128;
/// The cache line the private area is rounded to.
const CACHE_LINE: usize = 64;

/// Private area per mbuf: the embedded packet cell, rounded up to a whole
/// cache line (a multiple of DPDK's `RTE_MBUF_PRIV_ALIGN`, 8). The mbuf
/// header is two lines and the headroom two more, so a received packet's
/// data then starts on a cache line, as in a pool without a private area:
/// a 64-byte frame is one line, its headers never straddle two. Rounded
/// only to 8, the cell's 440 bytes (432 before it gained its fresh flag)
/// put the data 56 bytes into a line, and the DPDK bench's `100k-inport`
/// went from ~330 to ~420 cycles a packet and `10k` from ~400 to ~550
/// (alternating runs, one PMD); with the rounding they are back (~330,
/// ~410) and `1flow` keeps its gain.
pub(crate) const PRIV_SIZE: u16 = {
    assert!(dp_core::packet::EMBEDDED_CELL_ALIGN <= 8);
    let size = dp_core::packet::EMBEDDED_CELL_SIZE.div_ceil(CACHE_LINE) * CACHE_LINE;
    assert!(size <= u16::MAX as usize);
    // Where a received packet's data starts, from the mbuf's start.
    let data = std::mem::size_of::<sys::rte_mbuf>() + size + sys::RTE_PKTMBUF_HEADROOM as usize;
    assert!(data.is_multiple_of(CACHE_LINE));
    size as u16
};

/// Writes an empty packet cell into `m`'s private area.
fn init_cell(m: ffi::Mbuf) {
    // SAFETY: called only by `get_or_create` on a pool created with
    // PRIV_SIZE bytes of private area, before any of its mbufs is handed
    // out: the area is ours, 8-byte aligned (the mbuf header is 128 bytes,
    // cache-line aligned) and EMBEDDED_CELL_SIZE long.
    unsafe { dp_core::packet::init_embedded_cell(ffi::mbuf_priv(m)) }
}

/// Ethernet header + CRC + two VLAN tags on top of the MTU.
pub(crate) fn frame_len(mtu: u16) -> u32 {
    u32::from(mtu) + 14 + 4 + 8
}

/// Data room for `mtu`: headroom + frame, rounded up to 1 KiB as OVS does.
pub(crate) fn data_room(mtu: u16) -> u16 {
    let room = frame_len(mtu) + sys::RTE_PKTMBUF_HEADROOM;
    room.div_ceil(1024)
        .saturating_mul(1024)
        .min(u32::from(u16::MAX)) as u16
}

/// One DPDK pktmbuf pool.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    socket: u32,
    mtu: u16,
    n_mbufs: u32,
    data_room: u16,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer (the default
// ring ops), so allocation and free are thread-safe; the pointer is never
// freed (see the module docs).
unsafe impl Send for Mempool {}
// SAFETY: as above; `&Mempool` only reads immutable fields or calls
// thread-safe DPDK functions.
unsafe impl Sync for Mempool {}

impl Mempool {
    pub(crate) fn raw(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }
    pub(crate) fn ptr(&self) -> NonNull<sys::rte_mempool> {
        self.ptr
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Mbufs currently out of the pool (lent to packets, in device rings,
    /// held by a vdev such as net_pcap's replay buffer).
    pub fn in_use(&self) -> u32 {
        ffi::mempool_in_use(self.ptr)
    }
    pub fn available(&self) -> u32 {
        ffi::mempool_avail(self.ptr)
    }
    /// `netdev-dpdk/get-mempool-info`.
    pub fn info(&self) -> MempoolInfo {
        let layout = ffi::mempool_layout(self.ptr);
        let lcore_caches = ffi::mempool_cache_counts(self.ptr);
        MempoolInfo {
            name: self.name.clone(),
            socket: self.socket,
            mtu: self.mtu,
            n_mbufs: self.n_mbufs,
            data_room: self.data_room,
            in_use: self.in_use(),
            available: self.available(),
            elt_size: layout.elt_size,
            header_size: layout.header_size,
            private_data_size: layout.private_data_size,
            cache_size: layout.cache_size,
            lcore_caches,
        }
    }
    /// Bytes of data room per mbuf (headroom included).
    pub fn data_room(&self) -> u16 {
        self.data_room
    }
}

/// A pool's size and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolInfo {
    pub name: String,
    pub socket: u32,
    pub mtu: u16,
    pub n_mbufs: u32,
    pub data_room: u16,
    /// Mbufs out of the pool (in packets, device rings, a vdev's buffers).
    pub in_use: u32,
    /// Mbufs in the pool: the shared ring plus every per-lcore cache.
    pub available: u32,
    /// Bytes per object (mbuf header + private area + data room).
    pub elt_size: u32,
    pub header_size: u32,
    /// The mbuf private area (the embedded packet cell).
    pub private_data_size: u32,
    /// Per-lcore cache capacity.
    pub cache_size: u32,
    /// `(lcore id, mbufs cached)` for every lcore whose cache holds some.
    pub lcore_caches: Vec<(u32, u32)>,
}

impl MempoolInfo {
    /// Mbufs sitting in per-lcore caches.
    pub fn cached(&self) -> u32 {
        self.lcore_caches.iter().map(|(_, n)| n).sum()
    }

    /// The `netdev-dpdk/get-mempool-info` text: the fields of DPDK's
    /// `rte_mempool_dump` that matter here, in its shape, plus oxvs's
    /// in-use count.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "mempool <{}>", self.name);
        let _ = writeln!(s, "  socket_id={}", self.socket);
        let _ = writeln!(s, "  size={}", self.n_mbufs);
        let _ = writeln!(s, "  header_size={}", self.header_size);
        let _ = writeln!(s, "  elt_size={}", self.elt_size);
        let _ = writeln!(s, "  private_data_size={}", self.private_data_size);
        let _ = writeln!(s, "  data_room_size={} (mtu {})", self.data_room, self.mtu);
        let _ = writeln!(s, "  internal cache infos:");
        let _ = writeln!(s, "    cache_size={}", self.cache_size);
        for (lcore, n) in &self.lcore_caches {
            let _ = writeln!(s, "    cache_count[{lcore}]={n}");
        }
        let _ = writeln!(s, "    total_cache_count={}", self.cached());
        let _ = writeln!(
            s,
            "  common_pool_count={}",
            self.available.saturating_sub(self.cached())
        );
        let _ = writeln!(s, "  avail_count={}", self.available);
        let _ = writeln!(s, "  in_use_count={}", self.in_use);
        s
    }
}

/// Pools by (NUMA socket, MTU).
type PoolMap = HashMap<(u32, u16), Arc<Mempool>>;

static POOLS: Mutex<Option<PoolMap>> = Mutex::new(None);

/// The shared pool for (`socket`, `mtu`), created with `n_mbufs` (or the
/// default sizing) when it does not exist yet.
pub fn get_or_create(socket: u32, mtu: u16, n_mbufs: Option<u32>) -> Result<Arc<Mempool>, String> {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(pool) = pools.get(&(socket, mtu)) {
        return Ok(Arc::clone(pool));
    }
    let room = data_room(mtu);
    let (mut n, floor) = match n_mbufs {
        Some(n) => (n, n),
        None => (DEFAULT_N_MBUFS, MIN_N_MBUFS),
    };
    let name = format!("ovs_mp_{}_{socket}", frame_len(mtu));
    loop {
        match ffi::pktmbuf_pool_create(&name, n, CACHE_SIZE.min(n / 2), PRIV_SIZE, room, socket) {
            Ok(ptr) => {
                ffi::mempool_for_each_mbuf(ptr, init_cell);
                tracing::info!(pool = %name, n_mbufs = n, data_room = room, "created mbuf pool");
                let pool = Arc::new(Mempool {
                    ptr,
                    name,
                    socket,
                    mtu,
                    n_mbufs: n,
                    data_room: room,
                });
                pools.insert((socket, mtu), Arc::clone(&pool));
                return Ok(pool);
            }
            Err(e) if n / 2 >= floor => {
                tracing::warn!(pool = %name, n_mbufs = n, error = %e, "mbuf pool too big, halving");
                n /= 2;
            }
            Err(e) => {
                return Err(format!(
                    "cannot create mbuf pool {name} ({n} mbufs of {room} bytes on socket {socket}): {e}"
                ));
            }
        }
    }
}

/// Every pool created so far.
pub fn all() -> Vec<Arc<Mempool>> {
    POOLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|p| p.values().cloned().collect())
        .unwrap_or_default()
}
