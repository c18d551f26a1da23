//! The platform code: every system call and FFI call of the crate, one
//! module per platform (aya's `sys` choke point). Nothing else in the
//! crate is `unsafe` except the ring region accessor.

#[cfg(not(windows))]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(not(windows))]
pub(crate) use unix::*;
#[cfg(windows)]
pub(crate) use windows::*;
