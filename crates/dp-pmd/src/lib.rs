//! dp-pmd: the running datapath (OVS's dpif-netdev).
//!
//! - [`netdev`]: the in-tree drivers that need no hardware (`dummy`,
//!   `dummy-pmd`, `pcap`).
//! - [`pmd`]: one poll-mode thread's datapath and the loop that runs it.
//! - [`datapath`]: ports, PMD threads and the control operations.
//! - [`upcall`]: the interface to the translation layer.
//! - [`revalidator`]: idle expiry, re-translation, the dynamic flow limit.
//! - [`sched`]: placing rx queues on PMD threads.
//! - [`stats`]: PMD counters and their `pmd-stats-show` text.
//! - [`cycles`]: the cycle counter used for PMD accounting.
//! - [`perf`]: per-iteration histograms and the suspicious-iteration log.
//! - [`capture`]: the live-capture tap and its rings.
//!
//! dp-pmd does not know ofproto exists: the daemon wires an
//! [`upcall::UpcallHandler`] in. Unsafe code is denied except the one
//! RDTSC read in [`cycles`].
#![deny(unsafe_code)]

pub mod capture;
pub mod cycles;
pub mod datapath;
pub mod netdev;
pub mod perf;
pub mod pmd;
pub mod revalidator;
pub mod sched;
pub mod stats;
pub mod upcall;

pub use dp_core;
