//! The DPDK environment (EAL), initialised once per process from the
//! config. DPDK cannot be re-initialised after `rte_eal_init`, so the first
//! successful call wins and later calls must agree with it; a failed
//! initialisation is remembered and reported again.
//!
//! Polling threads that DPDK did not start (the daemon's PMD threads)
//! register themselves ([`register_thread`], `rte_thread_register`): an
//! unregistered thread has no lcore id, so every mbuf it allocates or
//! frees goes through the mempool's shared ring instead of a per-lcore
//! cache.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ffi;

/// EAL settings, as `[datapath.dpdk]` in the daemon config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EalConfig {
    /// The main lcore's CPU (`dpdk-lcore`): DPDK pins the initialising
    /// thread there, so put it on the PMD core when the main thread polls.
    pub lcore: Option<usize>,
    /// `--no-huge`: ordinary memory, for tests and machines without
    /// hugepages.
    pub no_huge: bool,
    /// Memory in MiB (`-m` with `--no-huge`, `--socket-mem` otherwise).
    pub memory_mb: Option<u32>,
    /// Global DPDK log level (1 = emergency … 8 = debug).
    pub log_level: u32,
    /// Anything else, passed through verbatim (`--vdev`, `--huge-dir`,
    /// `-a 0000:01:00.0`, ...).
    pub extra_args: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> EalConfig {
        EalConfig {
            lcore: None,
            no_huge: false,
            memory_mb: None,
            log_level: 5,
            extra_args: Vec::new(),
        }
    }
}

impl EalConfig {
    /// What tests and CI use: no hugepages, no PCI, nothing left on disk.
    pub fn for_tests() -> EalConfig {
        EalConfig {
            no_huge: true,
            memory_mb: Some(512),
            extra_args: vec!["--no-pci".into()],
            ..EalConfig::default()
        }
    }

    /// The `rte_eal_init` argument vector.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["oxvsd".to_string()];
        match self.lcore {
            Some(core) => args.extend(["-l".into(), core.to_string()]),
            // Without a core, lcore 0 floats over every CPU, so DPDK does
            // not pin the initialising thread (and every thread it later
            // spawns) to CPU 0.
            None => {
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                args.push(format!("--lcores=0@(0-{})", n - 1));
            }
        }
        if self.no_huge {
            args.push("--no-huge".into());
            if let Some(mb) = self.memory_mb {
                args.extend(["-m".into(), mb.to_string()]);
            }
        } else if let Some(mb) = self.memory_mb {
            args.extend(["--socket-mem".into(), mb.to_string()]);
        }
        // No files under /var/run/dpdk, no multi-process, no telemetry
        // thread competing with the PMD. (`--no-huge` implies legacy
        // memory, which `--in-memory` refuses; `--no-shconf` is its part
        // that still applies.)
        args.push(
            if self.no_huge {
                "--no-shconf"
            } else {
                "--in-memory"
            }
            .into(),
        );
        args.push("--no-telemetry".into());
        args.push(format!("--log-level={}", self.log_level));
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

static EAL: Mutex<Option<Result<EalConfig, String>>> = Mutex::new(None);

/// Initialises the EAL with `config`, once. Later calls succeed when the
/// EAL is already up (the first configuration stays in force) and repeat
/// the first error when it failed.
pub fn init(config: &EalConfig) -> Result<(), String> {
    let mut state = EAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(result) = &*state {
        return result.clone().map(drop);
    }
    let args = config.args();
    tracing::info!(args = ?args, "initialising DPDK EAL");
    let result = ffi::eal_init(&args)
        .map(|()| config.clone())
        .map_err(|e| format!("DPDK EAL initialisation failed ({}): {e}", args.join(" ")));
    if result.is_ok() {
        ffi::set_log_level(config.log_level);
    }
    *state = Some(result.clone());
    result.map(drop)
}

/// True once [`init`] has succeeded.
pub fn is_initialized() -> bool {
    matches!(&*EAL.lock().unwrap_or_else(|e| e.into_inner()), Some(Ok(_)))
}

/// The configuration the EAL runs with, if it is up.
pub fn running_config() -> Option<EalConfig> {
    EAL.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|r| r.as_ref().ok().cloned())
}

/// Threads registered through [`register_thread`] and not yet
/// unregistered.
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The lcore id this thread got from [`register_thread`].
    static LCORE: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Gives the calling thread a DPDK lcore id (and so its own mempool
/// caches), once; a no-op before the EAL is up, on a thread DPDK already
/// knows (the main lcore), or when every lcore id is taken (logged: the
/// thread still works, through the shared ring). Call it after pinning
/// the thread: DPDK records the thread's CPU set at registration.
pub fn register_thread() {
    if !is_initialized() || LCORE.get().is_some() || ffi::lcore_id().is_some() {
        return;
    }
    match ffi::thread_register() {
        Ok(()) => {
            let id = ffi::lcore_id();
            LCORE.set(id);
            REGISTERED.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                thread = std::thread::current().name().unwrap_or("?"),
                lcore = id,
                "thread registered with DPDK"
            );
        }
        Err(e) => tracing::warn!(
            thread = std::thread::current().name().unwrap_or("?"),
            error = %e,
            "cannot register thread with DPDK: no per-lcore mempool cache"
        ),
    }
}

/// Gives back the lcore id [`register_thread`] took on this thread.
pub fn unregister_thread() {
    if LCORE.take().is_some() {
        ffi::thread_unregister();
        REGISTERED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The calling thread's lcore id, if DPDK knows the thread.
pub fn current_lcore() -> Option<u32> {
    ffi::lcore_id()
}

/// Threads registered with [`register_thread`] right now.
pub fn registered_threads() -> usize {
    REGISTERED.load(Ordering::Relaxed)
}
