//! The `dpdk` netdev: DPDK 22.11 ethdevs (PCI NICs and vdevs: `net_pcap`,
//! `net_null`, `net_ring`, `net_tap`, `net_af_packet`, `net_vhost`,
//! `net_virtio_user`) as oxvs ports, with zero-copy mbufs.
//!
//! # Map
//! - [`eal`]: the EAL, initialised once from `[datapath.dpdk]`.
//! - [`mempool`]: mbuf pools shared per (socket, MTU), sized like OVS or
//!   by config, with DPDK's own in-use counts.
//! - [`port`]: the port (devargs, queues, descriptors, MTU, RSS, stats,
//!   xstats) and its lifetime.
//! - `queue`: the fast path (mbuf ⇄ packet, zero-copy both ways).
//! - `link`: link-state changes (DPDK events or reads), logged and counted.
//! - `ffi`: every DPDK call (the one FFI choke point).
//!
//! # Threads
//! Any thread may poll: DPDK's mempool works without an lcore id, but
//! without a per-lcore cache, so polling threads register
//! ([`eal::register_thread`]). Each rx queue has one owner; a tx queue shared by
//! several PMDs is locked once per batch.

pub mod eal;
mod ffi;
mod link;
pub mod mempool;
pub mod port;
mod queue;

pub use eal::EalConfig;
pub use ffi::DpdkError;
pub use mempool::{Mempool, MempoolInfo};
pub use port::{DpdkConfig, DpdkNetdev, MTU_MAX, MTU_MIN, OpenError};
