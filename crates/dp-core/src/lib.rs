//! dp-core: the data of the oxvs datapath, with no threads and no I/O.
//!
//! - [`packet`]: packet buffers, pools and batches.
//! - [`flow`]: the datapath flow key, its extraction and hashing.
//! - [`netdev`]: the provider interface every port driver implements.
//! - [`pcap`]: the pcap file format (read and write, in memory).
//!
//! Everything here is deterministic: callers pass buffers and the time, so
//! a whole datapath iteration can be stepped in a unit test.
//!
//! Unsafe code is denied crate-wide; the packet module's buffer code is the
//! one place allowed to use it, and each block says why it is sound.
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
