//! Raw bindings to DPDK 22.11: EAL, mempool, mbuf, ethdev, vdev/bus,
//! devargs, log.
//!
//! - `bindings.rs` is bindgen's output, committed; `tests/bindings.rs`
//!   regenerates it (`DPDK_SYS_REGENERATE=1 cargo test -p dpdk-sys --test
//!   bindings`) and fails when the committed file drifts from the headers.
//! - DPDK's fast path is static inline in its headers (rx/tx burst, mbuf
//!   alloc/free, refcount); `shim/shim.c` gives each an out-of-line copy
//!   named `oxvs_<name>`, declared below, compiled with DPDK's own cflags.
//! - Linking follows pkg-config (`libdpdk`): Debian's shared libraries.
//!   The EAL loads the vdev/PMD drivers (`net_pcap`, `net_null`,
//!   `net_ring`, `net_vhost`, `net_virtio_user`, ...) from its plugin
//!   directory at `rte_eal_init`, so no driver is lost to `--as-needed`.
//!
//! Nothing here is safe to call without reading DPDK's documentation for
//! it; `netdev-dpdk` is the safe layer.

#![no_std]
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    reason = "names follow DPDK's C API"
)]
#![allow(
    clippy::missing_safety_doc,
    clippy::useless_transmute,
    clippy::too_many_arguments,
    clippy::ptr_offset_with_cast,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn,
    missing_debug_implementations,
    reason = "bindgen output: the C API's contracts are DPDK's documentation"
)]

#[allow(clippy::all, reason = "bindgen output, regenerated, never edited")]
#[rustfmt::skip]
mod bindings;
pub use bindings::*;

unsafe extern "C" {
    /// `rte_eth_rx_burst`.
    pub fn oxvs_rte_eth_rx_burst(
        port_id: u16,
        queue_id: u16,
        rx_pkts: *mut *mut rte_mbuf,
        nb_pkts: u16,
    ) -> u16;
    /// `rte_eth_tx_burst`: the mbufs it did not take stay the caller's.
    pub fn oxvs_rte_eth_tx_burst(
        port_id: u16,
        queue_id: u16,
        tx_pkts: *mut *mut rte_mbuf,
        nb_pkts: u16,
    ) -> u16;
    /// `rte_pktmbuf_alloc`: null when the pool is empty.
    pub fn oxvs_rte_pktmbuf_alloc(mp: *mut rte_mempool) -> *mut rte_mbuf;
    /// `rte_pktmbuf_alloc_bulk`: 0, or a negative errno with nothing
    /// allocated.
    pub fn oxvs_rte_pktmbuf_alloc_bulk(
        mp: *mut rte_mempool,
        mbufs: *mut *mut rte_mbuf,
        count: core::ffi::c_uint,
    ) -> core::ffi::c_int;
    /// `rte_pktmbuf_free`: frees every segment of the chain.
    pub fn oxvs_rte_pktmbuf_free(m: *mut rte_mbuf);
    /// `rte_pktmbuf_reset`.
    pub fn oxvs_rte_pktmbuf_reset(m: *mut rte_mbuf);
    /// `rte_mbuf_refcnt_update`.
    pub fn oxvs_rte_mbuf_refcnt_update(m: *mut rte_mbuf, value: i16) -> u16;
    /// `rte_pktmbuf_linearize`: 0, or -1 when the first segment lacks room.
    pub fn oxvs_rte_pktmbuf_linearize(m: *mut rte_mbuf) -> core::ffi::c_int;
    /// `rte_pktmbuf_data_room_size`.
    pub fn oxvs_rte_pktmbuf_data_room_size(mp: *mut rte_mempool) -> u16;
    /// `rte_pktmbuf_priv_size`: the private area after each mbuf header.
    pub fn oxvs_rte_pktmbuf_priv_size(mp: *mut rte_mempool) -> u16;
    /// The calling thread's `rte_errno`.
    pub fn oxvs_rte_errno() -> core::ffi::c_int;
    /// `rte_lcore_id`: `LCORE_ID_ANY` in a thread DPDK does not know.
    pub fn oxvs_rte_lcore_id() -> core::ffi::c_uint;
}
