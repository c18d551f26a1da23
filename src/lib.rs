//! The oxvs daemon as a library: everything `oxvsd` (src/main.rs) runs,
//! reachable by the fuzz targets and tests too.
//!
//! - [`config`]: the TOML config file and its validation.
//! - [`drivers`]: opening ports by type.
//! - [`dpdk`]: the `netdev-dpdk/*` commands.
//! - [`bridge`]: bridges (ofproto-lite) as the datapath's upcall handler.
//! - [`daemon`]: start-up, ports at run time, reload, shutdown.
//! - [`control`]: the unixctl control socket (JSON-RPC 1.0).
//! - [`commands`]: the control commands.
//! - [`logging`]: tracing with a runtime-changeable filter.
//! - [`metrics`]: the Prometheus/OpenMetrics text endpoint.
//! - [`capture`]: live capture to pcap files (`capture/*`).
//! - [`port_health`]: link states watched, changes logged.
//! - [`pmd_cores`]: the PMD core list changed by reload.
//! - [`observe`]: pmd-perf-show/-log-set, trace --generate, drop-reason coverage.
#![forbid(unsafe_code)]

pub mod bridge;
pub mod capture;
pub mod commands;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dpdk;
pub mod drivers;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod pmd_cores;
pub mod port_health;
pub mod tunnel;
