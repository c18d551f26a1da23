//! dp-pmd: the running datapath (ports, poll-mode threads, upcalls,
//! revalidation).
//!
//! - [`netdev`]: the in-tree drivers that need no hardware (`dummy`,
//!   `dummy-pmd`, `pcap`).
#![forbid(unsafe_code)]

pub mod netdev;

pub use dp_core;
