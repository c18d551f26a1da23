//! Every DPDK call of the crate goes through here (the one FFI choke
//! point). Control-path wrappers are safe functions that check DPDK's
//! return codes; the fast-path ones (bursts, mbuf fields) are `unsafe fn`s
//! whose `# Safety` sections carry DPDK's preconditions to the queue code.

use std::ffi::{CStr, CString, c_char};
use std::ptr::NonNull;

use dpdk_sys as sys;

/// A DPDK packet buffer (the head of a chain).
pub(crate) type Mbuf = *mut sys::rte_mbuf;

/// `RTE_MBUF_F_RX_RSS_HASH`: `hash.rss` holds the NIC's RSS hash.
pub(crate) const RX_RSS_HASH: u64 = 1 << 1;
/// `RTE_MBUF_F_EXTERNAL | RTE_MBUF_F_INDIRECT`: buffer-ownership flags,
/// the only ones kept when a received mbuf is sent again.
pub(crate) const OWNERSHIP_FLAGS: u64 = (1 << 61) | (1 << 62);

/// A DPDK error: a negative return value or `rte_errno`, with DPDK's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkError {
    pub code: i32,
    pub text: String,
}

impl std::fmt::Display for DpdkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (error {})", self.text, self.code)
    }
}

fn error(code: i32) -> DpdkError {
    let code = code.abs();
    // SAFETY: rte_strerror accepts any value and returns a static or
    // per-thread NUL-terminated string.
    let text = unsafe { CStr::from_ptr(sys::rte_strerror(code)) }
        .to_string_lossy()
        .into_owned();
    DpdkError { code, text }
}

fn check(ret: i32) -> Result<(), DpdkError> {
    if ret < 0 { Err(error(ret)) } else { Ok(()) }
}

fn rte_errno() -> DpdkError {
    // SAFETY: reads the calling thread's rte_errno; no preconditions.
    error(unsafe { sys::oxvs_rte_errno() })
}

fn cstring(s: &str) -> Result<CString, DpdkError> {
    CString::new(s).map_err(|_| DpdkError {
        code: libc_einval(),
        text: format!("{s:?} contains a NUL byte"),
    })
}

const fn libc_einval() -> i32 {
    22
}

/// `rte_eal_init` with `args` (program name first). The argument strings
/// are leaked: the EAL may keep pointers into argv for the process's life.
pub(crate) fn eal_init(args: &[String]) -> Result<(), DpdkError> {
    let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
    for a in args {
        argv.push(cstring(a)?.into_raw());
    }
    let argc = argv.len() as i32;
    argv.push(std::ptr::null_mut());
    let argv = Box::leak(argv.into_boxed_slice());
    // SAFETY: argv is a NULL-terminated array of `argc` valid C strings
    // that live forever (leaked above); the caller (eal.rs) calls this at
    // most once per process.
    let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 { Err(rte_errno()) } else { Ok(()) }
}

/// Held while a device is plugged or unplugged: DPDK's hotplug
/// (`rte_dev_probe`, `rte_dev_remove`) walks and edits the bus's device
/// and devargs lists without a lock of its own, so two threads opening
/// and closing ports at once could see "No such device" (ENODEV) for a
/// vdev being created (seen: 1 in 6 runs of `tests/port.rs`, whose tests
/// run in parallel). Callers also hold it from looking a device up to
/// plugging it, so two opens of one device cannot both plug it.
pub(crate) static HOTPLUG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `rte_dev_probe(devargs)`: plugs a PCI device or creates a vdev. The
/// caller holds [`HOTPLUG`].
pub(crate) fn dev_probe(devargs: &str) -> Result<(), DpdkError> {
    let c = cstring(devargs)?;
    // SAFETY: `c` is a valid C string for the call; EAL is initialised
    // (callers hold an `Eal` token).
    check(unsafe { sys::rte_dev_probe(c.as_ptr()) })
}

/// The ethdev port id of the device named `name`.
pub(crate) fn port_by_name(name: &str) -> Option<u16> {
    let c = cstring(name).ok()?;
    let mut port = 0u16;
    // SAFETY: valid C string and out pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut port) };
    (ret == 0).then_some(port)
}

pub(crate) fn dev_info(port: u16) -> Result<sys::rte_eth_dev_info, DpdkError> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: `info` is a valid out pointer; DPDK checks `port`.
    check(unsafe { sys::rte_eth_dev_info_get(port, &mut info) })?;
    Ok(info)
}

/// The NUMA socket of `port` (0 when unknown, as for vdevs).
pub(crate) fn socket_id(port: u16) -> u32 {
    // SAFETY: DPDK checks `port`.
    let s = unsafe { sys::rte_eth_dev_socket_id(port) };
    s.max(0) as u32
}

pub(crate) fn configure(
    port: u16,
    n_rxq: u16,
    n_txq: u16,
    conf: &sys::rte_eth_conf,
) -> Result<(), DpdkError> {
    // SAFETY: `conf` is valid for the call (DPDK copies it).
    check(unsafe { sys::rte_eth_dev_configure(port, n_rxq, n_txq, conf) })
}

pub(crate) fn rx_queue_setup(
    port: u16,
    qid: u16,
    n_desc: u16,
    socket: u32,
    pool: &crate::mempool::Mempool,
) -> Result<(), DpdkError> {
    // SAFETY: the mempool lives for the process (mempools are never
    // freed); a null rxconf means the driver's defaults.
    check(unsafe {
        sys::rte_eth_rx_queue_setup(port, qid, n_desc, socket, std::ptr::null(), pool.raw())
    })
}

pub(crate) fn tx_queue_setup(
    port: u16,
    qid: u16,
    n_desc: u16,
    socket: u32,
) -> Result<(), DpdkError> {
    // SAFETY: a null txconf means the driver's defaults.
    check(unsafe { sys::rte_eth_tx_queue_setup(port, qid, n_desc, socket, std::ptr::null()) })
}

pub(crate) fn start(port: u16) -> Result<(), DpdkError> {
    // SAFETY: DPDK checks `port`.
    check(unsafe { sys::rte_eth_dev_start(port) })
}

pub(crate) fn promiscuous(port: u16) {
    // SAFETY: DPDK checks `port`; not every vdev supports it (ignored).
    let _ = unsafe { sys::rte_eth_promiscuous_enable(port) };
}

/// Stops, closes and unplugs `port`.
///
/// The caller guarantees no queue of the port is polled any more (the
/// queues hold the port alive, so this runs after the last one is gone).
pub(crate) fn stop_close_remove(port: u16) {
    let _hotplug = HOTPLUG.lock().unwrap_or_else(|e| e.into_inner());
    let device = dev_info(port)
        .map(|i| i.device)
        .unwrap_or(std::ptr::null_mut());
    // SAFETY: no queue of `port` is in use (precondition above); DPDK
    // checks `port`.
    unsafe {
        let _ = sys::rte_eth_dev_stop(port);
        let _ = sys::rte_eth_dev_close(port);
    }
    if !device.is_null() {
        // SAFETY: `device` came from dev_info of the closed port; removing
        // it frees the vdev (its replayed pcap, its rings).
        let _ = unsafe { sys::rte_dev_remove(device) };
    }
}

pub(crate) fn mac(port: u16) -> [u8; 6] {
    let mut addr = sys::rte_ether_addr::default();
    // SAFETY: valid out pointer.
    let _ = unsafe { sys::rte_eth_macaddr_get(port, &mut addr) };
    addr.addr_bytes
}

/// `RTE_ETH_DEV_INTR_LSC` in `rte_eth_dev_info.dev_flags`: the device
/// raises link-state-change events.
const DEV_INTR_LSC: u32 = 1 << 1;

/// True when `info`'s device raises link-state-change events.
pub(crate) fn has_lsc_interrupt(info: &sys::rte_eth_dev_info) -> bool {
    // SAFETY: `dev_flags` points into the device's `rte_eth_dev_data`,
    // which lives as long as the ethdev; null checked.
    !info.dev_flags.is_null() && unsafe { *info.dev_flags } & DEV_INTR_LSC != 0
}

unsafe extern "C" fn on_lsc(
    port_id: u16,
    _event: sys::rte_eth_event_type,
    _arg: *mut std::ffi::c_void,
    _ret: *mut std::ffi::c_void,
) -> std::ffi::c_int {
    // Runs on DPDK's interrupt thread; touches only per-port statics.
    crate::link::changed(port_id, crate::link::Source::Event);
    0
}

/// Calls `crate::link::changed` on `port`'s link-state-change events.
pub(crate) fn lsc_callback_register(port: u16) -> Result<(), DpdkError> {
    // SAFETY: `on_lsc` has the callback signature and needs no argument.
    check(unsafe {
        sys::rte_eth_dev_callback_register(
            port,
            sys::RTE_ETH_EVENT_INTR_LSC,
            Some(on_lsc),
            std::ptr::null_mut(),
        )
    })
}

/// Removes the callback of [`lsc_callback_register`], waiting while it
/// runs (DPDK answers `-EAGAIN` then).
pub(crate) fn lsc_callback_unregister(port: u16) {
    const EAGAIN: i32 = 11;
    for _ in 0..1000 {
        // SAFETY: the same (function, argument) pair that was registered.
        let ret = unsafe {
            sys::rte_eth_dev_callback_unregister(
                port,
                sys::RTE_ETH_EVENT_INTR_LSC,
                Some(on_lsc),
                std::ptr::null_mut(),
            )
        };
        if ret != -EAGAIN {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `(up, speed in Mbps)` without waiting.
pub(crate) fn link(port: u16) -> (bool, u32) {
    let mut link = sys::rte_eth_link::default();
    // SAFETY: valid out pointer.
    let _ = unsafe { sys::rte_eth_link_get_nowait(port, &mut link) };
    (link.link_status() != 0, link.link_speed)
}

pub(crate) fn stats(port: u16) -> sys::rte_eth_stats {
    let mut stats = sys::rte_eth_stats::default();
    // SAFETY: valid out pointer.
    let _ = unsafe { sys::rte_eth_stats_get(port, &mut stats) };
    stats
}

/// Every extended counter of `port`, by name.
pub(crate) fn xstats(port: u16) -> Vec<(String, u64)> {
    // SAFETY: a null buffer with size 0 asks for the count.
    let n = unsafe { sys::rte_eth_xstats_get_names(port, std::ptr::null_mut(), 0) };
    if n <= 0 {
        return Vec::new();
    }
    let mut names = vec![sys::rte_eth_xstat_name::default(); n as usize];
    let mut values = vec![sys::rte_eth_xstat::default(); n as usize];
    // SAFETY: both buffers hold `n` entries.
    let got_names = unsafe { sys::rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as u32) };
    // SAFETY: as above.
    let got = unsafe { sys::rte_eth_xstats_get(port, values.as_mut_ptr(), n as u32) };
    if got_names != n || got != n {
        return Vec::new();
    }
    values
        .iter()
        .filter_map(|v| {
            let name = names.get(v.id as usize)?;
            // SAFETY: DPDK NUL-terminates names within the fixed array.
            let name = unsafe { CStr::from_ptr(name.name.as_ptr()) };
            Some((name.to_string_lossy().into_owned(), v.value))
        })
        .collect()
}

/// `rte_pktmbuf_pool_create`, with `priv_size` bytes (a multiple of 8)
/// after each mbuf header.
pub(crate) fn pktmbuf_pool_create(
    name: &str,
    n_mbufs: u32,
    cache: u32,
    priv_size: u16,
    data_room: u16,
    socket: u32,
) -> Result<NonNull<sys::rte_mempool>, DpdkError> {
    let c = cstring(name)?;
    // SAFETY: valid C string; DPDK copies the name.
    let mp = unsafe {
        sys::rte_pktmbuf_pool_create(
            c.as_ptr(),
            n_mbufs,
            cache,
            priv_size,
            data_room,
            socket as i32,
        )
    };
    NonNull::new(mp).ok_or_else(rte_errno)
}

/// The private area right after `m`'s header (DPDK's
/// `rte_mbuf_to_priv`); as big as the pool's `priv_size`.
#[inline]
pub(crate) fn mbuf_priv(m: Mbuf) -> NonNull<u8> {
    // Pointer arithmetic only; `m` is non-null (a received mbuf).
    let p = m
        .cast::<u8>()
        .wrapping_add(std::mem::size_of::<sys::rte_mbuf>());
    NonNull::new(p).unwrap_or(NonNull::dangling())
}

/// Calls `init(mbuf)` for every mbuf of a pool nobody uses yet.
pub(crate) fn mempool_for_each_mbuf(mp: NonNull<sys::rte_mempool>, init: fn(Mbuf)) -> u32 {
    unsafe extern "C" fn each(
        _mp: *mut sys::rte_mempool,
        arg: *mut std::ffi::c_void,
        obj: *mut std::ffi::c_void,
        _idx: std::ffi::c_uint,
    ) {
        // SAFETY: `arg` is the `fn(Mbuf)` passed below, alive for the
        // call; `obj` is an mbuf of a pktmbuf pool.
        let init = unsafe { *arg.cast::<fn(Mbuf)>() };
        init(obj.cast());
    }
    let mut init = init;
    // SAFETY: the pool is valid (never freed) and its objects are mbufs;
    // the callback only runs during this call, while `init` lives.
    unsafe {
        sys::rte_mempool_obj_iter(
            mp.as_ptr(),
            Some(each),
            (&raw mut init).cast::<std::ffi::c_void>(),
        )
    }
}

/// Mbufs of `mp` out of the pool (per-lcore caches count as available).
pub(crate) fn mempool_in_use(mp: NonNull<sys::rte_mempool>) -> u32 {
    // SAFETY: mempools are never freed, so `mp` is valid.
    unsafe { sys::rte_mempool_in_use_count(mp.as_ptr()) }
}

/// Object layout of a pool, as `rte_mempool_dump` prints it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MempoolLayout {
    pub elt_size: u32,
    pub header_size: u32,
    pub private_data_size: u32,
    pub cache_size: u32,
}

pub(crate) fn mempool_layout(mp: NonNull<sys::rte_mempool>) -> MempoolLayout {
    // SAFETY: mempools are never freed; these fields are written once at
    // creation.
    let mp = unsafe { mp.as_ref() };
    // SAFETY: every pool of this crate is a pktmbuf pool, whose private
    // data (an `rte_pktmbuf_pool_private`, written at creation) is what
    // `rte_pktmbuf_priv_size` reads.
    let mbuf_priv = unsafe { sys::oxvs_rte_pktmbuf_priv_size(std::ptr::from_ref(mp).cast_mut()) };
    MempoolLayout {
        elt_size: mp.elt_size,
        header_size: mp.header_size,
        private_data_size: u32::from(mbuf_priv),
        cache_size: mp.cache_size,
    }
}

/// `(lcore id, count)` for every non-empty per-lcore cache of `mp`.
pub(crate) fn mempool_cache_counts(mp: NonNull<sys::rte_mempool>) -> Vec<(u32, u32)> {
    // SAFETY: mempools are never freed.
    let mp = unsafe { mp.as_ref() };
    if mp.cache_size == 0 || mp.local_cache.is_null() {
        return Vec::new();
    }
    (0..sys::RTE_MAX_LCORE)
        .filter_map(|lcore| {
            // SAFETY: `local_cache` points to RTE_MAX_LCORE caches when
            // `cache_size` is non-zero, and mempools (with their caches)
            // are never freed, so the pointer is valid for the whole read.
            // `len` is a naturally aligned u32 (AtomicU32's alignment) that
            // the lcore owning the cache updates while we look: an atomic
            // load, not a plain or volatile read, is what makes that
            // concurrent access sound on our side (the value is a
            // snapshot, as in DPDK's own `rte_mempool_avail_count`).
            let len = unsafe {
                let len = &raw mut (*mp.local_cache.add(lcore as usize)).len;
                std::sync::atomic::AtomicU32::from_ptr(len)
                    .load(std::sync::atomic::Ordering::Relaxed)
            };
            (len > 0).then_some((lcore, len))
        })
        .collect()
}

pub(crate) fn mempool_avail(mp: NonNull<sys::rte_mempool>) -> u32 {
    // SAFETY: as above.
    unsafe { sys::rte_mempool_avail_count(mp.as_ptr()) }
}

/// `rte_thread_register`: an lcore id for the calling thread.
pub(crate) fn thread_register() -> Result<(), DpdkError> {
    // SAFETY: the EAL is initialised (callers check); registers only the
    // calling thread.
    let ret = unsafe { sys::rte_thread_register() };
    if ret < 0 { Err(rte_errno()) } else { Ok(()) }
}

/// `rte_thread_unregister` for the calling thread.
pub(crate) fn thread_unregister() {
    // SAFETY: only called on a thread `thread_register` registered.
    unsafe { sys::rte_thread_unregister() }
}

/// The calling thread's lcore id; `None` for a thread DPDK does not know.
pub(crate) fn lcore_id() -> Option<u32> {
    // SAFETY: reads the calling thread's per-lcore variable.
    let id = unsafe { sys::oxvs_rte_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

pub(crate) fn set_log_level(level: u32) {
    // SAFETY: any level is accepted.
    unsafe { sys::rte_log_set_global_level(level) };
}

// ---- fast path ----

/// Receives up to `out.len()` (≤ 65535) mbufs into `out`; returns how many.
///
/// # Safety
/// `port` is started, `qid` is one of its set-up rx queues, and no other
/// thread polls that queue during the call.
#[inline]
pub(crate) unsafe fn rx_burst(port: u16, qid: u16, out: &mut [Mbuf]) -> usize {
    debug_assert!(out.len() <= u16::MAX as usize);
    // SAFETY: the caller's contract; `out` is writable for its length.
    usize::from(unsafe {
        sys::oxvs_rte_eth_rx_burst(port, qid, out.as_mut_ptr(), out.len() as u16)
    })
}

/// Hands the leading mbufs of `pkts` to the device; returns how many it
/// took. The rest stay the caller's.
///
/// # Safety
/// As [`rx_burst`] for a tx queue, and every entry of `pkts` is a valid
/// mbuf chain the caller owns.
#[inline]
pub(crate) unsafe fn tx_burst(port: u16, qid: u16, pkts: &mut [Mbuf]) -> usize {
    debug_assert!(pkts.iter().all(|m| !m.is_null()));
    // SAFETY: the caller's contract.
    usize::from(unsafe {
        sys::oxvs_rte_eth_tx_burst(port, qid, pkts.as_mut_ptr(), pkts.len() as u16)
    })
}

/// One mbuf from `mp`, reset; `None` when the pool is empty.
#[inline]
pub(crate) fn pktmbuf_alloc(mp: NonNull<sys::rte_mempool>) -> Option<Mbuf> {
    // SAFETY: mempools are never freed; `mp` is a pktmbuf pool.
    let m = unsafe { sys::oxvs_rte_pktmbuf_alloc(mp.as_ptr()) };
    (!m.is_null()).then_some(m)
}

/// Frees every segment of `m` back to its pool(s).
///
/// # Safety
/// `m` is a valid mbuf chain the caller owns, and no reference to it or
/// its data is used afterwards.
#[inline]
pub(crate) unsafe fn pktmbuf_free(m: Mbuf) {
    debug_assert!(!m.is_null());
    // SAFETY: the caller's contract.
    unsafe { sys::oxvs_rte_pktmbuf_free(m) }
}

/// Copies a chain's data into its first segment and frees the others.
///
/// # Safety
/// `m` is a valid mbuf chain the caller owns.
pub(crate) unsafe fn pktmbuf_linearize(m: Mbuf) -> bool {
    // SAFETY: the caller's contract.
    unsafe { sys::oxvs_rte_pktmbuf_linearize(m) == 0 }
}
