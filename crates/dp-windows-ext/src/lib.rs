//! dp-windows-ext: the Hyper-V extensible-switch extension reduced to a
//! thin shim that punts every packet to userspace, and the userspace side
//! of it.
//!
//! - [`contract`]: the kernel/user contract, a short spec a driver author
//!   implements (control channel, port identity, data rings, wakeups).
//! - [`codec`]: the control-message codec; [`ring`]: the shared-memory
//!   ring layout and its checked producer/consumer; [`BadInput`]: every way
//!   the device side can be wrong, each a counter.
//! - [`client`]: the userspace end of the control channel over a
//!   [`device::Device`] (the one choke point for the transport).
//! - [`netdev`]: the `windows` [`dp_core::netdev::Netdev`] that PMD threads
//!   poll.
//! - `sys`: the unsafe code, one module per platform: the Windows device
//!   (windows-sys: `CreateFileW`, overlapped `DeviceIoControl`, events) or
//!   the Unix transport (socket, shared-memory mapping, AF_PACKET).
//! - [`emulator`] (not on Windows): the shim played in userspace over a
//!   Unix socket and `/dev/shm` rings, with emulated Hyper-V ports backed
//!   by real Linux interfaces, so the whole path runs in CI.
#![deny(unsafe_code)]

pub mod bad_input;
pub mod client;
pub mod codec;
pub mod contract;
pub mod device;
#[cfg(not(windows))]
pub mod emulator;
#[doc(hidden)]
pub mod fuzzing;
pub mod netdev;
pub mod ring;
mod sys;

pub use bad_input::{BadInput, BadInputCounters};
pub use dp_core;
pub use netdev::{WindowsConfig, WindowsNetdev, open_netdev};
