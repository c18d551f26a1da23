//! The DPDK environment (EAL), initialised once per process from the
//! config. DPDK cannot be re-initialised after `rte_eal_init`, so the first
//! successful call wins and later calls must agree with it; a failed
//! initialisation is remembered and reported again.

use std::sync::Mutex;

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
