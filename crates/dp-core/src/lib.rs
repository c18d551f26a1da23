//! dp-core: the data of the oxvs datapath, with no threads and no I/O.
//!
//! - [`packet`]: packet buffers, pools and batches.
//! - [`flow`]: the datapath flow key, its extraction and hashing.
//! - [`netdev`]: the provider interface every port driver implements.
//! - [`pcap`]: the pcap file format (read and write, in memory).
//! - Lookup, as a PMD owns it: [`flow_table`] (megaflows, UFIDs, stats),
//!   [`emc`] (exact-match cache), [`smc`] (signature-match cache),
//!   [`dpcls`] (the megaflow classifier) and [`cascade`] (all of them over
//!   a batch, with OVS's hit counters).
//! - Actions: [`action`] (the typed datapath action model) and
//!   [`execute`] (running an action list on a batch, drop reasons).
//! - [`odp`]: OVS's datapath flow text (keys, masks, actions, dump lines,
//!   packets built from keys).
//!
//! Everything here is deterministic: callers pass buffers and the time, so
//! a whole datapath iteration can be stepped in a unit test.
//!
//! Unsafe code is denied crate-wide. Three places are allowed it, and each
//! block says why it is sound: the packet module's buffer code (cells and
//! driver-lent frames), and in the classifier `dpcls::prefetch` (the
//! prefetch intrinsic) and `dpcls::large` (tables in their own
//! huge-page-advised mappings).
#![deny(unsafe_code)]

#[allow(
    unsafe_code,
    reason = "packet cells and driver-lent frames need raw buffer access"
)]
pub mod packet;

pub mod flow;
pub mod netdev;
pub mod pcap;

pub mod action;
pub mod execute;
pub mod odp;

pub mod cascade;
pub mod dpcls;
pub mod emc;
pub mod flow_table;
pub mod smc;
