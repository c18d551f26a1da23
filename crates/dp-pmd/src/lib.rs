//! dp-pmd: the running datapath (ports, poll-mode threads, upcalls,
//! revalidation). It builds on `dp-core`; the PMD loop lands with the
//! datapath issue, and this crate holds nothing else until then.
#![forbid(unsafe_code)]

pub use dp_core;
