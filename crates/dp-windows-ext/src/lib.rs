//! dp-windows-ext: the Hyper-V extensible-switch shim reduced to punting
//! packets to userspace. The contract, the Windows netdev and the Linux
//! emulator land with the Windows shim issue; this crate is empty until
//! then.
#![forbid(unsafe_code)]

pub use dp_core;
